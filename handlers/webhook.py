"""`webhook.post`: POST a JSON payload to a URL, signed so the receiver can tell it came from Dealflow.

Parameters:
    url      required; http or https
    payload  optional JSON-safe value, default {}

Config:
    DEALFLOW_WEBHOOK_SECRET   when set, each request carries `X-Dealflow-Signature: sha256=<hex HMAC of the body>`;
                              when unset the request is sent unsigned (receivers that check will reject it)
    DEALFLOW_WEBHOOK_TIMEOUT  seconds for connecting and for each read, default 10
    DEALFLOW_WEBHOOK_ALLOWED_HOSTS  comma list of host names or addresses that may resolve to private, loopback or
                              link-local addresses (an internal accounting system); any other such target is refused,
                              so a URL taken from process data cannot reach the inside of the network

Every request carries `X-Dealflow-Delivery: <idempotency key>`, the same on every retry of one task's call, so the
receiver can drop a delivery it has already processed. Redirects are not followed: the signed body goes only to
the host that was configured.
"""

import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from engine.handlers import HandlerError
from engine.handlers import HandlerRequest

RESPONSE_LIMIT = 64 * 1024  # a larger answer is not kept in the task's result
_RETRYABLE_STATUS = {408, 425, 429}


def sign(secret: str | bytes, body: bytes) -> str:
    """The `X-Dealflow-Signature` value for `body`: `sha256=` and the hex HMAC-SHA256 under `secret`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` under `secret`; for receivers. Constant-time."""
    if not header or not secret:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode(errors="replace"))


class WebhookHandler:
    """The `webhook.post` handler; see the module docstring for its parameters and config."""

    def __init__(self, config: Mapping[str, Any]):
        self._secret = config.get("DEALFLOW_WEBHOOK_SECRET") or None
        raw = config.get("DEALFLOW_WEBHOOK_TIMEOUT")
        try:
            self._timeout = float(raw) if raw not in (None, "") else 10.0
        except (TypeError, ValueError):
            raise ValueError(f"DEALFLOW_WEBHOOK_TIMEOUT must be a number of seconds, not {raw!r}.") from None
        allowed = config.get("DEALFLOW_WEBHOOK_ALLOWED_HOSTS") or ""
        self._internal = {host.strip().lower().strip("[]") for host in str(allowed).split(",") if host.strip()}

    def __call__(self, request: HandlerRequest) -> dict[str, Any]:
        """POST the payload once; the result holds the receiver's status and its JSON answer, if small."""
        url = _check_url(request.parameters.get("url"))
        _check_target(url, self._internal)
        body = _body(request.parameters.get("payload", {}))
        headers = {"Content-Type": "application/json", "User-Agent": "Dealflow",
                   "X-Dealflow-Delivery": request.idempotency_key, "X-Dealflow-Topic": request.topic}
        if self._secret:
            headers["X-Dealflow-Signature"] = sign(self._secret, body)
        where = f"Webhook {_shown(url)!r}"
        try:
            with requests.post(url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False,
                               stream=True) as response:
                content = _read_capped(response)
                return {"webhook": {"status": _check_status(response, content, where),
                                    "response": _json_or_none(response, content)}}
        except requests.Timeout as exc:
            raise HandlerError(f"{where} did not answer within {self._timeout:g} s (DEALFLOW_WEBHOOK_TIMEOUT).") \
                from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise HandlerError(f"{where} could not be reached: {type(exc).__name__}.") from exc
        except requests.RequestException as exc:
            raise HandlerError(f"{where} could not be called: {exc}.", retryable=False) from exc


def _check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise HandlerError("webhook.post needs a 'url' parameter: the http(s) address to POST to.", retryable=False)
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url.strip()):
        raise HandlerError(f"Webhook URL {_shown(url)!r} must be an absolute http:// or https:// address.",
                           retryable=False)
    return url.strip()


def _check_target(url: str, internal: set[str]) -> None:
    """Refuse a host that resolves to a private, loopback, link-local or reserved address unless it is allowed."""
    host = (urlsplit(url).hostname or "").lower()
    if host in internal:
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise HandlerError(f"Webhook host {host!r} could not be resolved ({exc.strerror}).") from exc
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if not address.is_global:
            raise HandlerError(
                f"Webhook {_shown(url)!r} resolves to the internal address {address}; internal targets are refused "
                f"unless their host is listed in DEALFLOW_WEBHOOK_ALLOWED_HOSTS.", retryable=False)


def _shown(url: str) -> str:
    """The URL without credentials or query: both may carry secrets that must not reach an incident message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if host else url[:100]


def _body(payload: Any) -> bytes:
    try:
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise HandlerError(f"The webhook 'payload' cannot be sent as JSON: {exc}.", retryable=False) from exc
    return text.encode()


def _read_capped(response: requests.Response) -> bytes:
    """At most RESPONSE_LIMIT + 1 bytes: enough to tell a small answer from one that is too large to keep."""
    content = bytearray()
    for chunk in response.iter_content(chunk_size=16384):
        content += chunk
        if len(content) > RESPONSE_LIMIT:
            break
    return bytes(content)


def _check_status(response: requests.Response, content: bytes, where: str) -> int:
    status = response.status_code
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        location = _shown(response.headers.get("Location", "")) or "nowhere"
        raise HandlerError(f"{where} answered {status}, a redirect to {location!r}. Redirects are not followed so "
                           "the signed payload reaches only the configured host: set the task's URL to the final "
                           "address.", retryable=False)
    excerpt = content[:200].decode(errors="replace")
    if status in _RETRYABLE_STATUS or status >= 500:
        wait = response.headers.get("Retry-After")
        hint = f" It asked to retry after {wait[:40]!r}." if wait else ""
        raise HandlerError(f"{where} answered {status}: {excerpt!r}.{hint}")
    raise HandlerError(f"{where} rejected the delivery with {status}: {excerpt!r}. Fix the URL or the payload the "
                       "receiver expects; retrying the same request will not help.", retryable=False)


def _json_or_none(response: requests.Response, content: bytes) -> Any:
    media_type = response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if len(content) > RESPONSE_LIMIT or not (media_type == "application/json" or media_type.endswith("+json")):
        return None
    try:
        # NaN and Infinity are valid in Python's parser but not in JSON columns: such an answer is not kept.
        return json.loads(content, parse_constant=_reject_constant)
    except ValueError:
        return None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")

