"""webhook.post against a real HTTP server on 127.0.0.1, and the signature helper receivers use."""

import json
from datetime import date

import pytest

from engine.handlers import HandlerError
from engine.handlers import HandlerRequest
from handlers.webhook import RESPONSE_LIMIT
from handlers.webhook import WebhookHandler
from handlers.webhook import sign
from handlers.webhook import verify_signature
from tests import handler_support

http_server = handler_support.http_server

SECRET = "whsec-7f3a9c"
PAYLOAD = {"event": "deal.won", "deal": {"business_key": "DEAL-2025-007", "amount": 1250000, "currency": "RUB"},
           "customer": "Ромашка"}


def request(url: str, key: str = "job-77", **parameters) -> HandlerRequest:
    return HandlerRequest(topic="webhook.post", parameters={"url": url, "payload": PAYLOAD, **parameters},
                          instance_id=7, business_key="DEAL-2025-007", variables={}, idempotency_key=key,
                          element_id="Notify_erp", attempt=1)


def post(url: str, secret: str | None = SECRET, timeout: str = "5", **parameters):
    return WebhookHandler({"DEALFLOW_WEBHOOK_SECRET": secret, "DEALFLOW_WEBHOOK_TIMEOUT": timeout,
                           "DEALFLOW_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"})(
        request(url, **parameters))


def failure(call) -> HandlerError:
    with pytest.raises(HandlerError) as caught:
        call()
    return caught.value


def test_delivery_is_signed_canonical_json_with_the_idempotency_key_as_delivery_id(http_server):
    result = post(http_server.url(), key="job-77")

    [received] = http_server.requests
    assert received.body == json.dumps(PAYLOAD, separators=(",", ":"), sort_keys=True).encode()
    assert json.loads(received.body) == PAYLOAD
    # The receiver checks the body it got against the secret it shares with us.
    assert verify_signature(SECRET, received.body, received.headers["X-Dealflow-Signature"])
    assert received.headers["X-Dealflow-Delivery"] == "job-77"
    assert received.headers["X-Dealflow-Topic"] == "webhook.post"
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["User-Agent"] == "Dealflow"
    assert result == {"webhook": {"status": 200, "response": {"received": True}}}


def test_a_retry_carries_the_same_delivery_id_so_the_receiver_can_drop_it(http_server):
    post(http_server.url(), key="job-77")
    post(http_server.url(), key="job-77")
    post(http_server.url(), key="job-78")

    assert [r.headers["X-Dealflow-Delivery"] for r in http_server.requests] == ["job-77", "job-77", "job-78"]


def test_without_a_secret_the_delivery_is_sent_unsigned(http_server):
    post(http_server.url(), secret=None)
    assert "X-Dealflow-Signature" not in http_server.requests[0].headers


def test_payload_defaults_to_an_empty_object_and_odd_values_are_sent_as_text(http_server):
    WebhookHandler({"DEALFLOW_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"})(HandlerRequest(
        topic="webhook.post", parameters={"url": http_server.url()}, instance_id=1, business_key=None, variables={},
        idempotency_key="k", element_id="e", attempt=1))
    post(http_server.url(), payload={"due": date(2025, 3, 31)})

    assert [r.body for r in http_server.requests] == [b"{}", b'{"due":"2025-03-31"}']


@pytest.mark.parametrize("payload", [{"amount": float("nan")}, {1: "a", "b": 2}])
def test_a_payload_that_is_not_json_is_not_retried(http_server, payload):
    assert failure(lambda: post(http_server.url(), payload=payload)).retryable is False
    assert http_server.requests == []


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (408, True),
                                                   (400, False), (404, False), (422, False)])
def test_server_errors_and_throttling_are_retried_client_errors_are_not(http_server, status, retryable):
    url = http_server.route("/hook", status=status, body=b'{"error":"amount must be positive"}',
                            headers={"Content-Type": "application/json", "Retry-After": "120"})
    error = failure(lambda: post(url))

    assert error.retryable is retryable
    assert str(status) in error.message
    if not retryable:
        # The receiver's reason is what the operator needs to fix the payload.
        assert "amount must be positive" in error.message


def test_a_receiver_slower_than_the_timeout_is_retried(http_server):
    url = http_server.route("/slow", delay=3.0)
    error = failure(lambda: post(url, timeout="0.5"))

    assert error.retryable is True and "DEALFLOW_WEBHOOK_TIMEOUT" in error.message


def test_nothing_listening_is_retried():
    error = failure(lambda: post(f"http://127.0.0.1:{handler_support.free_port()}/hook"))
    assert error.retryable is True


def test_a_redirect_is_not_followed_and_asks_for_the_final_url(http_server):
    # Following it would hand the signed body to whatever host the Location names.
    url = http_server.route("/old", status=302, body=b"", headers={"Location": "http://elsewhere.example/new"})
    error = failure(lambda: post(url))

    assert error.retryable is False
    assert "final" in error.message and "http://elsewhere.example/new" in error.message
    assert [r.path for r in http_server.requests] == ["/old"]


@pytest.mark.parametrize("url", ["ftp://erp.example/hook", "file:///etc/passwd", "erp.example/hook", "http://",
                                 "javascript:alert(1)", "", None, 42])
def test_a_url_that_is_not_http_is_not_retried(url):
    assert failure(lambda: post(url)).retryable is False


def test_credentials_in_the_url_do_not_reach_the_error_message(http_server):
    url = http_server.route("/hook", status=400).replace("http://", "http://erp:p4ss@") + "?token=t0ken"
    error = failure(lambda: post(url))

    assert "p4ss" not in error.message and "t0ken" not in error.message


def test_only_a_small_json_answer_is_kept(http_server):
    text = http_server.route("/text", headers={"Content-Type": "text/plain"}, body=b'{"a":1}')
    large = http_server.route("/large", body=json.dumps({"blob": "x" * RESPONSE_LIMIT}).encode())
    not_json = http_server.route("/nan", body=b'{"a":NaN}')
    empty = http_server.route("/empty", status=204, body=b"", headers={})

    assert [post(url)["webhook"] for url in (text, large, not_json, empty)] == [
        {"status": 200, "response": None}, {"status": 200, "response": None}, {"status": 200, "response": None},
        {"status": 204, "response": None}]


def test_verify_signature_accepts_only_the_exact_body_and_secret():
    body = b'{"event":"deal.won"}'
    header = sign(SECRET, body)

    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_signature(SECRET, body, header)
    assert verify_signature(SECRET.encode(), body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature("other", body, header)
    assert not verify_signature(SECRET, body, header.removeprefix("sha256="))
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(SECRET, body, "sha256=ЖЖ")
    assert not verify_signature("", body, sign("", body))


def test_a_wrong_timeout_setting_fails_when_the_handler_is_built():
    with pytest.raises(ValueError, match="DEALFLOW_WEBHOOK_TIMEOUT"):
        WebhookHandler({"DEALFLOW_WEBHOOK_TIMEOUT": "ten"})


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.1.2.3/hook",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]:9/hook",
                                 "http://192.168.0.10/1c/invoices"])
def test_internal_targets_are_refused_unless_their_host_is_allowed(url):
    request = HandlerRequest(topic="webhook.post", parameters={"url": url}, instance_id=1, business_key=None,
                             variables={}, idempotency_key="k", element_id="Notify_accounting", attempt=1)
    with pytest.raises(HandlerError) as refused:
        WebhookHandler({})(request)
    assert refused.value.retryable is False and "DEALFLOW_WEBHOOK_ALLOWED_HOSTS" in refused.value.message


def test_an_allowed_internal_host_is_posted_to(http_server):
    allowed = WebhookHandler({"DEALFLOW_WEBHOOK_ALLOWED_HOSTS": "accounting.local, 127.0.0.1"})
    request = HandlerRequest(topic="webhook.post", parameters={"url": http_server.url()}, instance_id=1,
                             business_key=None, variables={}, idempotency_key="k", element_id="e", attempt=1)
    assert allowed(request)["webhook"]["status"] == 200
