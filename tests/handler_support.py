"""Real peers for handler tests: an aiosmtpd SMTP server, a local HTTP server, a self-signed certificate.

A test module takes the fixtures by assigning them (`smtp_server = handler_support.smtp_server`), or uses the
classes directly (`with SmtpServer() as server: ...`) when it needs one with special settings.
"""

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from dataclasses import field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Envelope:
    """What the SMTP conversation said, as opposed to the headers: Bcc recipients only show up here."""

    mail_from: str
    rcpt_tos: tuple[str, ...]


class _Collector:
    """The aiosmtpd handler: refuses what the test asks it to, keeps the rest."""

    def __init__(self, server: "SmtpServer"):
        self._server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        reply = self._server.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self._server.data_reply:
            return self._server.data_reply
        message = email.message_from_bytes(envelope.original_content or envelope.content, _class=EmailMessage,
                                           policy=email.policy.default)
        self._server.keep(message, Envelope(envelope.mail_from, tuple(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 and a free port that keeps every accepted mail as an EmailMessage.

    `refuse` maps a recipient to the reply its RCPT gets (e.g. "550 5.1.1 No such user"); `data_reply` answers
    every DATA instead of accepting it (e.g. "451 4.3.0 Try again later"). Both may be changed while it runs.
    Keyword arguments go to aiosmtpd's SMTP (tls_context, authenticator, auth_require_tls, ...);
    `ssl_context` makes it an implicit-TLS server.
    """

    host = "127.0.0.1"

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, **smtp_kwargs: Any):
        self.refuse: dict[str, str] = {}
        self.data_reply: str | None = None
        self._ssl_context = ssl_context
        self._smtp_kwargs = smtp_kwargs
        self._received: list[tuple[EmailMessage, Envelope]] = []
        self._changed = threading.Condition()
        self._controller: Controller | None = None
        self.port = 0

    def start(self) -> "SmtpServer":
        for _ in range(3):  # the free port may be taken between asking and binding
            self.port = free_port()
            controller = Controller(_Collector(self), hostname=self.host, port=self.port, ready_timeout=5,
                                    ssl_context=self._ssl_context, **self._smtp_kwargs)
            try:
                controller.start()
            except OSError:
                continue
            self._controller = controller
            return self
        raise RuntimeError("Could not start the test SMTP server on a free port.")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def keep(self, message: EmailMessage, envelope: Envelope) -> None:
        with self._changed:
            self._received.append((message, envelope))
            self._changed.notify_all()

    @property
    def messages(self) -> list[EmailMessage]:
        """The accepted mails so far, oldest first (a copy: safe to read while mail arrives)."""
        with self._changed:
            return [message for message, _ in self._received]

    @property
    def envelopes(self) -> list[Envelope]:
        with self._changed:
            return [envelope for _, envelope in self._received]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until at least `count` mails arrived (for senders in another thread or process)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._received) >= count, timeout):
                raise AssertionError(f"Expected {count} mails within {timeout} s, got {len(self._received)}.")
            return [message for message, _ in self._received]

    def config(self, **extra: str) -> dict[str, str]:
        """Mail handler config pointing at this server."""
        return {"DEALFLOW_SMTP_HOST": self.host, "DEALFLOW_SMTP_PORT": str(self.port),
                "DEALFLOW_SMTP_TIMEOUT": "5", **extra}


@pytest.fixture
def smtp_server():
    """A plain SMTP server (no TLS, no login) for one test."""
    with SmtpServer() as server:
        yield server


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_self_signed(directory: Path) -> TlsFiles:
    """A certificate for 127.0.0.1 and localhost, made by the openssl CLI (EC: quick to generate)."""
    files = TlsFiles(directory / "cert.pem", directory / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(files.key), "-out", str(files.cert)],
                   check=True, capture_output=True, timeout=60)
    return files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("The TLS tests make their certificate with the openssl CLI, which is not installed.")
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b'{"received":true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0  # seconds to wait before answering


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: "HttpServer"

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.record(RecordedRequest("POST", self.path, dict(self.headers.items()), body))
        reply = self.server.routes.get(urlsplit(self.path).path, Reply())
        if reply.delay and self.server.stopping.wait(reply.delay):
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass  # the test reads self.server.requests instead


class HttpServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 and a free port, in a thread: records each request, answers per `routes`.

    `routes` maps a path (without the query) to its Reply; any other path gets `Reply()`, a 200 with a JSON body.
    """

    # Request threads are joined on close, and a delayed reply ends as soon as the server stops.
    daemon_threads = False
    block_on_close = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Reply] = {}
        self.stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-http-server")

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def route(self, path: str, **reply: Any) -> str:
        """Answer `path` as `Reply(**reply)` says; returns its URL."""
        self.routes[path] = Reply(**reply)
        return self.url(path)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is part of the tests, not a failure of the server

    def __enter__(self) -> "HttpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.shutdown()
        self._thread.join()
        self.server_close()


@pytest.fixture
def http_server():
    with HttpServer() as server:
        yield server

