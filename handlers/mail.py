"""`mail.send`: render a mail from templates/email/<template>/ and send it over SMTP, or to the console in a demo.

Parameters (the task's input parameters):
    to           required; an address, a comma- or semicolon-separated string of them, or a list
                 ("Ivan Petrov <i.petrov@example.ru>" and bare "i.petrov@example.ru" both work)
    template     required; a folder under templates/email holding subject.txt, body.txt and optionally body.html
    context      optional dict, rendered on top of the process variables
    attachments  optional list of stored document ids (or one id)
    cc, bcc, reply_to   optional, like `to`
    subject      optional; replaces the template's subject

Config (strings, as from the environment):
    DEALFLOW_SMTP_HOST       empty: console transport (logged on `dealflow.mail` and kept in OUTBOX)
    DEALFLOW_SMTP_PORT       default 25; 465 with ssl; 587 with starttls
    DEALFLOW_SMTP_TLS        none | starttls | ssl (default none)
    DEALFLOW_SMTP_USER, DEALFLOW_SMTP_PASSWORD   login only when a user is set
    DEALFLOW_SMTP_CA_FILE    optional PEM bundle to trust besides the system's (e.g. a company or national CA)
    DEALFLOW_SMTP_TIMEOUT    seconds, default 30
    DEALFLOW_MAIL_FROM       default dealflow@localhost

The Message-ID is derived from the request's idempotency key, so a mail sent again after a crash carries the
same id as the first one and mail servers and clients can recognise it as the same message.
"""

import hashlib
import logging
import re
from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from engine.handlers import HandlerError
from engine.handlers import HandlerRequest
from engine.handlers import StoredDocument
from handlers.smtp import SmtpSettings
from handlers.smtp import SmtpTransport
from handlers.templating import make_environment
from handlers.templating import render_template

DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "email"

logger = logging.getLogger("dealflow.mail")

# The console transport's mails, newest last, for the demo to print. Bounded: a long demo run must not grow it.
OUTBOX: deque[EmailMessage] = deque(maxlen=200)

_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_NAME_ADDR = re.compile(r"(?P<name>.*?)\s*<(?P<addr>[^<>]*)>", re.S)
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Quoted or commented local parts are legal but never seen in business mail; refusing them keeps parsing simple.
_SPECIALS = re.compile(r'[\s<>"(),;:\[\]\\]')


def message_id(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the mail sent for `idempotency_key`: the same on every attempt, unique across keys."""
    return f"<dealflow-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def parse_addresses(value: Any, what: str) -> list[Address]:
    """Addresses from a string (comma- or semicolon-separated) or a list of strings.

    :raises ValueError: with a sentence naming `what` and the address that is wrong.
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{what} must be an e-mail address, a comma-separated string or a list of addresses, "
                         f"not {type(value).__name__}.")
    return [_parse_address(piece, what) for item in items for piece in _split_addresses(item) if piece]


def _split_addresses(text: str) -> list[str]:
    """Split on commas and semicolons outside quotes and angle brackets ("Ivanov, Ivan" <i@x.ru> stays whole)."""
    pieces, current, quoted, angle, escaped = [], [], False, False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char in "<>" and not quoted:
            angle = char == "<"
        elif char in ",;" and not (quoted or angle):
            pieces.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    pieces.append("".join(current).strip())
    return pieces


def _parse_address(piece: str, what: str) -> Address:
    invalid = ValueError(f"{what} has an invalid e-mail address {piece!r}: write it as 'name@example.com' or "
                         "'Ivan Petrov <name@example.com>'.")
    # Checked before parsing: the stdlib parsers quietly repair "a@b.com\nBcc: x@y" into two recipients.
    if _CONTROL.search(piece):
        raise invalid
    match = _NAME_ADDR.fullmatch(piece)
    name, spec = (match["name"].strip(), match["addr"].strip()) if match else ("", piece)
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    local, at, domain = spec.rpartition("@")
    if not at or not local or _SPECIALS.search(spec):
        raise invalid
    try:
        # Cyrillic domains (.рф) are sent in their ASCII form; a non-ASCII local part would need SMTPUTF8.
        domain = domain.encode("idna").decode("ascii")
        address = Address(display_name=name, addr_spec=f"{local}@{domain}")
    except (UnicodeError, ValueError, IndexError, MessageError) as exc:
        raise invalid from exc
    if not address.username or not _DOMAIN.fullmatch(address.domain):
        raise invalid
    return address


class ConsoleTransport:
    """Sends nothing: logs the whole message at INFO and keeps it in OUTBOX (the demo's mail server)."""

    name = "console"

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> dict[str, str]:
        logger.info("Mail to %s (console transport, not sent):\n%s", ", ".join(recipients), message.as_string())
        OUTBOX.append(message)
        return {}


class MailHandler:
    """The `mail.send` handler; see the module docstring for its parameters and config."""

    def __init__(self, config: Mapping[str, Any], templates_dir: Path = DEFAULT_TEMPLATES_DIR,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._templates_dir = Path(templates_dir)
        self._environment = make_environment(self._templates_dir)
        self._clock = clock
        self._sender = parse_addresses(config.get("DEALFLOW_MAIL_FROM") or "dealflow@localhost",
                                       "DEALFLOW_MAIL_FROM")
        if len(self._sender) != 1:
            raise ValueError("DEALFLOW_MAIL_FROM must be exactly one address, such as 'Sales <sales@example.ru>'.")
        settings = SmtpSettings.from_config(config)
        self.transport = SmtpTransport(settings) if settings.host else ConsoleTransport()

    def __call__(self, request: HandlerRequest) -> dict[str, Any]:
        """Render and send one mail; its result names the Message-ID, recipients, subject and transport."""
        parameters = request.parameters
        template = self._template_name(parameters.get("template"))
        recipients = {field: self._addresses(parameters, field, required=field == "to")
                      for field in ("to", "cc", "bcc", "reply_to")}
        context = self._context(request)
        subject, text, html = self._render(template, context, parameters.get("subject"))
        message = self._message(request, recipients, subject, text, html)
        self._attach(message, request)
        envelope = [a.addr_spec for field in ("to", "cc", "bcc") for a in recipients[field]]
        refused = self.transport.send(message, self._sender[0].addr_spec, list(dict.fromkeys(envelope)))
        result = {"message_id": message["Message-ID"], "to": [a.addr_spec for a in recipients["to"]],
                  "subject": subject, "transport": self.transport.name}
        if refused:
            # Some recipients got the mail: retrying would send it to them twice, so the refusals are reported.
            logger.warning("Mail %s: the server refused %s", result["message_id"], refused)
            result["refused"] = refused
        return {"mail": result}

    def _template_name(self, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise HandlerError("mail.send needs a 'template' parameter: the name of a folder under templates/email.",
                               retryable=False)
        if not _TEMPLATE_NAME.fullmatch(name):
            raise HandlerError(f"Mail template name {name!r} must be a folder name under templates/email (letters, "
                               "digits, '_' and '-'), not a path.", retryable=False)
        if not (self._templates_dir / name / "body.txt").is_file():
            known = sorted(p.parent.name for p in self._templates_dir.glob("*/body.txt"))
            raise HandlerError(f"Mail template {name!r} does not exist: there is no {name}/body.txt in "
                               f"{self._templates_dir}. Known templates: {', '.join(known) or 'none'}.",
                               retryable=False)
        return name

    @staticmethod
    def _addresses(parameters: Mapping[str, Any], field: str, required: bool) -> list[Address]:
        value = parameters.get(field)
        try:
            addresses = parse_addresses(value, f"The {field!r} parameter") if value not in (None, "", []) else []
        except ValueError as exc:
            raise HandlerError(f"{exc} Fix it in the process data or in the task's parameters.",
                               retryable=False) from exc
        if required and not addresses:
            raise HandlerError(f"mail.send needs a {field!r} parameter with at least one e-mail address.",
                               retryable=False)
        return addresses

    @staticmethod
    def _context(request: HandlerRequest) -> dict[str, Any]:
        extra = request.parameters.get("context")
        if extra is not None and not isinstance(extra, Mapping):
            raise HandlerError(f"The 'context' parameter must be a mapping of names to values, not "
                               f"{type(extra).__name__}.", retryable=False)
        return {**request.variables, **(extra or {}), "business_key": request.business_key,
                "instance_id": request.instance_id}

    def _render(self, template: str, context: Mapping[str, Any], subject: Any) -> tuple[str, str, str | None]:
        if subject is None:
            subject = render_template(self._environment, f"{template}/subject.txt", context)
        # One line, always: a newline in a rendered subject must never start a new header.
        subject = " ".join(str(subject).split())
        if not subject:
            raise HandlerError(f"Mail template {template!r} rendered an empty subject; give its subject.txt some "
                               "text or pass a 'subject' parameter.", retryable=False)
        text = render_template(self._environment, f"{template}/body.txt", context)
        html = None
        if (self._templates_dir / template / "body.html").is_file():
            html = render_template(self._environment, f"{template}/body.html", context)
        return subject, text, html

    def _message(self, request: HandlerRequest, recipients: Mapping[str, list[Address]], subject: str, text: str,
                 html: str | None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = recipients["to"]
        if recipients["cc"]:
            message["Cc"] = recipients["cc"]
        if recipients["reply_to"]:
            message["Reply-To"] = recipients["reply_to"]
        message["Subject"] = subject
        message["Date"] = format_datetime(self._clock())
        message["Message-ID"] = message_id(request.idempotency_key, self._sender[0].domain)
        message["X-Dealflow-Idempotency-Key"] = request.idempotency_key
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    def _attach(self, message: EmailMessage, request: HandlerRequest) -> None:
        ids = request.parameters.get("attachments") or []
        ids = ids if isinstance(ids, list | tuple) else [ids]
        if ids and request.services is None:
            raise HandlerError("mail.send was given attachments but no document service to fetch them from.",
                               retryable=False)
        for document_id in ids:
            if isinstance(document_id, bool) or not isinstance(document_id, int | str) \
                    or not str(document_id).isdigit():
                raise HandlerError(f"The 'attachments' parameter must list document ids, and {document_id!r} is "
                                   "not one.", retryable=False)
            document, data = request.services.get_document(int(document_id))
            maintype, subtype = _content_type(document)
            message.add_attachment(data, maintype=maintype, subtype=subtype,
                                   filename=document.filename.replace("/", "_").replace("\\", "_"))


def _content_type(document: StoredDocument) -> tuple[str, str]:
    maintype, _, subtype = document.content_type.partition(";")[0].strip().lower().partition("/")
    if not maintype or not subtype:
        return "application", "octet-stream"
    return maintype, subtype
