"""SMTP delivery for mail.send: settings from DEALFLOW_SMTP_*, plain / STARTTLS / implicit TLS, optional login.

Every failure becomes a HandlerError that says whether a retry can help (4xx, network) or not (5xx, settings) and
which setting to check; the password never appears in a message.
"""

import smtplib
import ssl
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from email.message import EmailMessage
from typing import Any

from engine.handlers import HandlerError

_DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send; read once from the DEALFLOW_SMTP_* config keys."""

    host: str | None
    port: int
    tls: str
    user: str | None
    password: str = field(repr=False)
    timeout: float
    ca_file: str | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SmtpSettings":
        """:raises ValueError: naming the config key whose value is wrong."""
        tls = str(config.get("DEALFLOW_SMTP_TLS") or "none").strip().lower()
        if tls not in _DEFAULT_PORTS:
            raise ValueError(f"DEALFLOW_SMTP_TLS must be 'starttls', 'ssl' or 'none', not {tls!r}.")
        values = {}
        for key, kind, default in (("PORT", int, _DEFAULT_PORTS[tls]), ("TIMEOUT", float, 30.0)):
            raw = config.get(f"DEALFLOW_SMTP_{key}")
            try:
                values[key] = kind(raw) if raw not in (None, "") else default
            except (TypeError, ValueError):
                raise ValueError(f"DEALFLOW_SMTP_{key} must be a number, not {raw!r}.") from None
        return cls(host=str(config.get("DEALFLOW_SMTP_HOST") or "").strip() or None, port=values["PORT"], tls=tls,
                   user=config.get("DEALFLOW_SMTP_USER") or None, password=config.get("DEALFLOW_SMTP_PASSWORD") or "",
                   timeout=values["TIMEOUT"], ca_file=config.get("DEALFLOW_SMTP_CA_FILE") or None)


class SmtpTransport:
    """Sends through an SMTP server: plain, implicit TLS (`ssl`) or STARTTLS, with a login when a user is set."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> dict[str, str]:
        """Deliver `message`; returns the recipients the server refused while accepting others."""
        s = self.settings
        try:
            with self._session() as smtp:
                if s.tls == "starttls":
                    smtp.starttls(context=self._tls_context())
                if s.user:
                    smtp.login(s.user, s.password)
                refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
        except (smtplib.SMTPException, OSError) as exc:
            error = _smtp_failure(exc, s)
            raise HandlerError(error.message.replace(s.password, "***") if s.password else error.message,
                               retryable=error.retryable) from exc
        return {address: f"{code} {reply.decode(errors='replace')}" for address, (code, reply) in refused.items()}

    @contextmanager
    def _session(self) -> Iterator[smtplib.SMTP]:
        s = self.settings
        if s.tls == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls_context())
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            yield smtp
        except BaseException:
            smtp.close()  # no QUIT on a broken session: it would only wait for the timeout again
            raise
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()  # the mail is accepted: QUIT's answer cannot change that

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.settings.ca_file:
            context.load_verify_locations(cafile=self.settings.ca_file)
        return context


def _smtp_failure(exc: Exception, s: SmtpSettings) -> HandlerError:
    """Permanent (5xx, bad settings) or worth a retry (4xx, network): the sentence says which setting to check."""
    where = f"SMTP server {s.host}:{s.port}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return HandlerError(f"{where} rejected the login of {s.user!r} ({_reply(exc)}). Check DEALFLOW_SMTP_USER "
                            "and DEALFLOW_SMTP_PASSWORD.", retryable=False)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return HandlerError(f"{where} does not support what the settings ask for: {exc} Check DEALFLOW_SMTP_TLS, "
                            "and leave DEALFLOW_SMTP_USER empty if the server takes mail without a login.",
                            retryable=False)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        who = ", ".join(f"{address} ({code} {reply.decode(errors='replace')})"
                        for address, (code, reply) in exc.recipients.items())
        temporary = any(400 <= code < 500 for code in codes)
        advice = "It may accept them later." if temporary else "Check the 'to', 'cc' and 'bcc' addresses."
        return HandlerError(f"{where} refused every recipient: {who}. {advice}", retryable=temporary)
    if isinstance(exc, smtplib.SMTPSenderRefused) and exc.smtp_code >= 500:
        return HandlerError(f"{where} refused the sender {exc.sender!r} ({_reply(exc)}). Check DEALFLOW_MAIL_FROM: "
                            "the server must allow sending as this address.", retryable=False)
    if isinstance(exc, smtplib.SMTPResponseException):
        return HandlerError(f"{where} answered {_reply(exc)}.", retryable=not 500 <= exc.smtp_code < 600)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return HandlerError(f"{where} closed the connection unexpectedly ({exc}).")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return HandlerError(f"{where} sent a certificate that could not be verified ({exc.verify_message}). Check "
                            "that DEALFLOW_SMTP_HOST is the name on the certificate, or set DEALFLOW_SMTP_CA_FILE "
                            "to the bundle of the CA that issued it.", retryable=False)
    if isinstance(exc, ssl.SSLError):
        return HandlerError(f"TLS with {where} failed ({exc.reason or exc}). Check DEALFLOW_SMTP_TLS and "
                            "DEALFLOW_SMTP_PORT: port 465 usually means 'ssl', 587 'starttls'.", retryable=False)
    if isinstance(exc, TimeoutError):
        return HandlerError(f"{where} did not answer within {s.timeout:g} s (DEALFLOW_SMTP_TIMEOUT).")
    if isinstance(exc, ConnectionRefusedError):
        return HandlerError(f"{where} refused the connection. Check that it is running and that DEALFLOW_SMTP_HOST "
                            "and DEALFLOW_SMTP_PORT point at it.")
    return HandlerError(f"Sending through {where} failed: {type(exc).__name__}: {exc}.")


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {text}"
