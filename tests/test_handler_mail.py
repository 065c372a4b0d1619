"""mail.send against a real SMTP server (aiosmtpd on a free port), and through the console transport."""

import logging
from datetime import UTC
from datetime import datetime

import pytest
from aiosmtpd.smtp import AuthResult

from engine.handlers import HandlerError
from engine.handlers import HandlerRequest
from engine.handlers import StoredDocument
from handlers import mail
from handlers.mail import DEFAULT_TEMPLATES_DIR
from handlers.mail import MailHandler
from handlers.mail import message_id
from handlers.smtp import SmtpSettings
from tests import handler_support
from tests.handler_support import SmtpServer

smtp_server = handler_support.smtp_server
tls_files = handler_support.tls_files

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
DEAL = {"customer": "Romashka LLC", "contact_name": "Irina Sokolova", "amount": 1250000, "vat_rate": 20,
        "company_name": "Vector Systems JSC", "manager_name": "Pavel Orlov"}
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


class DocumentStore:
    """The one HandlerServices method mail.send calls, over a dict: a stand-in at the protocol boundary."""

    def __init__(self, *documents: tuple[StoredDocument, bytes]):
        self.documents = {document.id: (document, data) for document, data in documents}

    def get_document(self, document_id: int) -> tuple[StoredDocument, bytes]:
        if document_id not in self.documents:
            raise HandlerError(f"There is no document {document_id}.", retryable=False)
        return self.documents[document_id]


def document(id: int, filename: str, content_type: str, data: bytes) -> tuple[StoredDocument, bytes]:
    return StoredDocument(id=id, kind="proposal", version=1, number=f"KP-2025-{id:04d}", filename=filename,
                          content_type=content_type, sha256="0" * 64, size=len(data)), data


def request(key: str = "job-41", variables=None, services=None, **parameters) -> HandlerRequest:
    parameters = {"to": "i.sokolova@romashka.example", "template": "proposal", **parameters}
    return HandlerRequest(topic="mail.send", parameters=parameters, instance_id=7, business_key="DEAL-2025-007",
                          variables=DEAL if variables is None else variables, idempotency_key=key,
                          element_id="Send_proposal", attempt=1, services=services)


def handler(server: SmtpServer | None = None, templates_dir=DEFAULT_TEMPLATES_DIR, **config) -> MailHandler:
    settings = {"DEALFLOW_MAIL_FROM": "Vector Systems Sales <sales@vector.example>",
                **(server.config() if server else {}), **config}
    return MailHandler(settings, templates_dir, clock=lambda: NOW)


def failure(call) -> HandlerError:
    with pytest.raises(HandlerError) as caught:
        call()
    return caught.value


def test_a_mail_reaches_the_server_with_the_rendered_template_and_our_headers(smtp_server):
    result = handler(smtp_server)(request())

    [received] = smtp_server.messages
    assert received["Subject"] == "Commercial proposal for Romashka LLC"
    assert received["From"] == "Vector Systems Sales <sales@vector.example>"
    assert received["To"] == "i.sokolova@romashka.example"
    assert received["X-Dealflow-Idempotency-Key"] == "job-41"
    assert received["Date"].datetime == NOW
    text = received.get_body(("plain",)).get_content()
    assert "Dear Irina Sokolova," in text and "1,250,000.00 RUB, including VAT 20%" in text
    assert result == {"mail": {"message_id": message_id("job-41", "vector.example"),
                               "to": ["i.sokolova@romashka.example"], "subject": received["Subject"],
                               "transport": "smtp"}}
    assert received["Message-ID"] == result["mail"]["message_id"]


def test_html_body_is_an_alternative_and_escapes_process_data_that_only_the_text_shows_verbatim(smtp_server):
    variables = {**DEAL, "customer": "R&D <Labs>"}
    handler(smtp_server)(request(variables=variables))

    [received] = smtp_server.messages
    assert received.get_content_type() == "multipart/alternative"
    assert "for R&D <Labs>." in received.get_body(("plain",)).get_content()
    # The customer's name is data typed by a person; in HTML it must not become markup.
    assert "<strong>R&amp;D &lt;Labs&gt;</strong>" in received.get_body(("html",)).get_content()


def test_attachments_are_fetched_by_id_and_keep_their_filename_and_type(smtp_server):
    store = DocumentStore(document(3, "KP-2025-0003.pdf", "application/pdf", PDF),
                          document(4, "price list.csv", "text/csv; charset=utf-8", b"sku;price\nA-1;100\n"))
    handler(smtp_server)(request(services=store, attachments=[3, "4"]))

    [received] = smtp_server.messages
    assert received.get_content_type() == "multipart/mixed"
    parts = {part.get_filename(): part for part in received.iter_attachments()}
    assert parts["KP-2025-0003.pdf"].get_content_type() == "application/pdf"
    assert parts["KP-2025-0003.pdf"].get_content() == PDF
    assert parts["price list.csv"].get_content_type() == "text/csv"
    assert received.get_body(("html",)) is not None  # the alternative survives next to the attachments


def test_an_unknown_document_or_a_missing_document_service_is_not_retried(smtp_server):
    send = handler(smtp_server)
    assert failure(lambda: send(request(services=DocumentStore(), attachments=[99]))).retryable is False
    error = failure(lambda: send(request(attachments=[3])))
    assert error.retryable is False and "document service" in error.message
    assert failure(lambda: send(request(services=DocumentStore(), attachments=["../3"]))).retryable is False
    assert smtp_server.messages == []


def test_message_id_is_the_same_for_a_resend_of_one_task_and_differs_between_tasks(smtp_server):
    # A crash after the server accepted the mail runs the handler again with the same key: the second copy must
    # carry the first one's Message-ID so that servers and mail clients can tell it is the same mail.
    send = handler(smtp_server)
    first, again, other = send(request("job-41")), send(request("job-41")), send(request("job-42"))

    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert ids[0] == ids[1] == first["mail"]["message_id"] == again["mail"]["message_id"]
    assert ids[2] == other["mail"]["message_id"] != ids[0]
    assert ids[0].endswith("@vector.example>")


def test_cc_bcc_reply_to_and_several_recipients(smtp_server):
    handler(smtp_server)(request(to='i.sokolova@romashka.example, "Petrov, Oleg" <o.petrov@romashka.example>',
                                 cc=["Legal <legal@romashka.example>"], bcc="archive@vector.example",
                                 reply_to="p.orlov@vector.example"))

    [received], [envelope] = smtp_server.messages, smtp_server.envelopes
    assert [a.addr_spec for a in received["To"].addresses] == ["i.sokolova@romashka.example",
                                                               "o.petrov@romashka.example"]
    assert received["To"].addresses[1].display_name == "Petrov, Oleg"
    assert received["Cc"] == "Legal <legal@romashka.example>"
    assert received["Reply-To"] == "p.orlov@vector.example"
    # Bcc is envelope only: the client must not see who else got the mail.
    assert received["Bcc"] is None
    assert envelope.rcpt_tos == ("i.sokolova@romashka.example", "o.petrov@romashka.example",
                                 "legal@romashka.example", "archive@vector.example")
    assert envelope.mail_from == "sales@vector.example"


def test_cyrillic_names_and_domains_are_encoded_for_smtp(smtp_server):
    result = handler(smtp_server)(request(to="Ирина Соколова <irina@ромашка.рф>"))

    [received] = smtp_server.messages
    assert received["To"].addresses[0].display_name == "Ирина Соколова"
    assert result["mail"]["to"] == ["irina@xn--80aa3agjl3d.xn--p1ai"]
    assert smtp_server.envelopes[0].rcpt_tos == ("irina@xn--80aa3agjl3d.xn--p1ai",)


@pytest.mark.parametrize("bad", [
    "not-an-address", "irina@", "@romashka.example", "irina smith@romashka.example", "irina@roma shka.example",
    "irina@romashka.example\r\nBcc: spy@evil.example", "Irina <irina@romashka.example> Bcc: spy@evil.example",
    "иван@почта.рф", "irina@romashka@example", "irina@-romashka.example", "irina..s@romashka.example",
    "Irina <irina@romashka.example", "irina@[127.0.0.1]",
])
def test_a_wrong_recipient_is_named_and_not_retried(smtp_server, bad):
    error = failure(lambda: handler(smtp_server)(request(to=["ok@romashka.example", bad])))

    assert error.retryable is False
    assert "'to'" in error.message and repr(bad) in error.message
    assert smtp_server.messages == []


@pytest.mark.parametrize("to", [None, "", [], 42, [42]])
def test_missing_or_malformed_to_is_not_retried(smtp_server, to):
    assert failure(lambda: handler(smtp_server)(request(to=to))).retryable is False


def test_subject_parameter_replaces_the_template_subject_and_any_subject_is_one_line(smtp_server):
    send = handler(smtp_server)
    send(request(subject="Updated proposal"))
    # A newline in data rendered into the subject must not start a header of its own.
    send(request(template="generic", context={"subject": "Hello\r\nBcc: spy@evil.example\n\nbody", "body": "Hi"}))

    first, second = smtp_server.messages
    assert first["Subject"] == "Updated proposal"
    assert second["Subject"] == "Hello Bcc: spy@evil.example body"
    assert second["Bcc"] is None and smtp_server.envelopes[1].rcpt_tos == ("i.sokolova@romashka.example",)


@pytest.mark.parametrize("name", ["../generic", "generic/../proposal", "..", "/etc/passwd", "generic\\x", ".hidden"])
def test_a_template_name_that_is_a_path_is_refused(smtp_server, name):
    error = failure(lambda: handler(smtp_server)(request(template=name)))
    assert error.retryable is False and "not a path" in error.message


def test_a_missing_template_names_itself_and_the_templates_that_exist(smtp_server):
    error = failure(lambda: handler(smtp_server)(request(template="proposl")))

    assert error.retryable is False
    assert "'proposl'" in error.message
    assert "contract, generic, invoice, payment_reminder, proposal, task_reminder" in error.message


def test_a_missing_variable_names_the_variable_and_the_template(smtp_server):
    variables = {key: value for key, value in DEAL.items() if key != "customer"}
    error = failure(lambda: handler(smtp_server)(request(variables=variables)))

    assert error.retryable is False
    assert "'proposal/subject.txt'" in error.message and "'customer' is undefined" in error.message


def test_context_overrides_process_variables_and_template_syntax_in_data_stays_text(smtp_server):
    # Process data comes from clients and forms: it is a value to print, never a template to run.
    hostile = "{{ 7*7 }} {% for x in range(3) %}x{% endfor %} {{ ''.__class__.__mro__ }}"
    handler(smtp_server)(request(context={"customer": hostile}))

    [received] = smtp_server.messages
    assert hostile in received.get_body(("plain",)).get_content()
    assert "49" not in received["Subject"]


@pytest.mark.parametrize("expression", [
    "{{ cycler.__init__.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ customer.__class__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ contacts.append('spy@evil.example') }}",
])
def test_a_malicious_template_fails_in_the_sandbox_and_is_not_retried(smtp_server, tmp_path, expression):
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "subject.txt").write_text("Hello")
    (tmp_path / "evil" / "body.txt").write_text(f"Body {expression}")

    error = failure(lambda: handler(smtp_server, tmp_path)(request(template="evil",
                                                                    context={"contacts": ["a@b.example"]})))

    assert error.retryable is False
    assert "'evil/body.txt'" in error.message and "sandbox forbids" in error.message
    assert smtp_server.messages == []


def test_a_template_error_of_its_own_is_not_retried(smtp_server, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "subject.txt").write_text("{% if %}")
    (tmp_path / "broken" / "body.txt").write_text("{{ amount / 0 }}")
    send = handler(smtp_server, tmp_path)

    assert "syntax error on line 1" in failure(lambda: send(request(template="broken"))).message
    error = failure(lambda: send(request(template="broken", subject="Fine")))
    assert error.retryable is False and "ZeroDivisionError" in error.message


def test_a_permanently_refused_recipient_is_not_retried(smtp_server):
    smtp_server.refuse["i.sokolova@romashka.example"] = "550 5.1.1 Mailbox unavailable"
    error = failure(lambda: handler(smtp_server)(request()))

    assert error.retryable is False
    assert "i.sokolova@romashka.example (550 5.1.1 Mailbox unavailable)" in error.message


def test_a_temporarily_refused_recipient_is_retried(smtp_server):
    smtp_server.refuse["i.sokolova@romashka.example"] = "450 4.2.1 Mailbox busy"
    assert failure(lambda: handler(smtp_server)(request())).retryable is True


def test_when_some_recipients_are_refused_the_others_get_the_mail_and_the_result_says_who_did_not(smtp_server):
    # Retrying would mail the accepted recipients twice, so this is a success that reports the refusals.
    smtp_server.refuse["gone@romashka.example"] = "550 5.1.1 No such user"
    result = handler(smtp_server)(request(to=["i.sokolova@romashka.example", "gone@romashka.example"]))

    assert smtp_server.envelopes[0].rcpt_tos == ("i.sokolova@romashka.example",)
    assert result["mail"]["refused"] == {"gone@romashka.example": "550 5.1.1 No such user"}


def test_a_4xx_answer_to_data_is_retried_and_a_5xx_is_not(smtp_server):
    smtp_server.data_reply = "451 4.3.0 Try again later"
    assert failure(lambda: handler(smtp_server)(request())).retryable is True
    smtp_server.data_reply = "554 5.7.1 Message rejected as spam"
    error = failure(lambda: handler(smtp_server)(request()))
    assert error.retryable is False and "554 5.7.1" in error.message


def test_nothing_listening_is_retried_and_names_the_settings():
    config = {"DEALFLOW_SMTP_HOST": "127.0.0.1", "DEALFLOW_SMTP_PORT": str(handler_support.free_port())}
    error = failure(lambda: handler(**config)(request()))

    assert error.retryable is True
    assert "DEALFLOW_SMTP_HOST" in error.message and "DEALFLOW_SMTP_PORT" in error.message


def accept_only(user: bytes, password: bytes, seen: list):
    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((mechanism, auth_data.login, auth_data.password))
        # handled=False: aiosmtpd then answers a failure with its 535 itself.
        return AuthResult(success=(auth_data.login, auth_data.password) == (user, password), handled=False)
    return authenticator


def test_login_is_used_when_a_user_is_set_and_a_wrong_password_is_not_retried_nor_shown():
    seen = []
    with SmtpServer(authenticator=accept_only(b"sales", b"s3cret-Pa55", seen), auth_require_tls=False) as server:
        handler(server, DEFAULT_TEMPLATES_DIR, DEALFLOW_SMTP_USER="sales", DEALFLOW_SMTP_PASSWORD="s3cret-Pa55")(
            request())
        assert len(server.messages) == 1 and seen[0][1:] == (b"sales", b"s3cret-Pa55")

        error = failure(lambda: handler(server, DEFAULT_TEMPLATES_DIR, DEALFLOW_SMTP_USER="sales",
                                        DEALFLOW_SMTP_PASSWORD="wrong-Pa55")(request()))
    assert error.retryable is False
    assert "DEALFLOW_SMTP_PASSWORD" in error.message and "wrong-Pa55" not in error.message


def test_starttls_with_a_trusted_certificate_then_login(tls_files):
    seen = []
    with SmtpServer(tls_context=tls_files.server_context(), require_starttls=True,
                    authenticator=accept_only(b"sales", b"pw", seen)) as server:
        # aiosmtpd refuses AUTH before STARTTLS (auth_require_tls), so a delivered mail proves the order.
        result = handler(server, DEFAULT_TEMPLATES_DIR, DEALFLOW_SMTP_TLS="starttls", DEALFLOW_SMTP_USER="sales",
                         DEALFLOW_SMTP_PASSWORD="pw", DEALFLOW_SMTP_CA_FILE=str(tls_files.cert))(request())
        assert result["mail"]["transport"] == "smtp" and len(server.messages) == 1 and seen

        # The same server without our CA: a configuration fault, not a reason to retry.
        error = failure(lambda: handler(server, DEFAULT_TEMPLATES_DIR, DEALFLOW_SMTP_TLS="starttls")(request()))
    assert error.retryable is False and "DEALFLOW_SMTP_CA_FILE" in error.message


def test_implicit_tls(tls_files):
    with SmtpServer(ssl_context=tls_files.server_context()) as server:
        handler(server, DEFAULT_TEMPLATES_DIR, DEALFLOW_SMTP_TLS="ssl", DEALFLOW_SMTP_CA_FILE=str(tls_files.cert))(
            request())
        assert len(server.messages) == 1


def test_starttls_against_a_server_without_it_is_a_setting_to_fix(smtp_server):
    error = failure(lambda: handler(smtp_server, DEFAULT_TEMPLATES_DIR, DEALFLOW_SMTP_TLS="starttls")(request()))
    assert error.retryable is False and "DEALFLOW_SMTP_TLS" in error.message


def test_without_an_smtp_host_the_mail_goes_to_the_log_and_the_outbox(caplog):
    mail.OUTBOX.clear()
    with caplog.at_level(logging.INFO, logger="dealflow.mail"):
        result = handler(DEALFLOW_SMTP_HOST="")(request())

    assert result["mail"]["transport"] == "console"
    [kept] = mail.OUTBOX
    assert kept["Message-ID"] == result["mail"]["message_id"]
    assert "Commercial proposal for Romashka LLC" in caplog.text
    assert mail.OUTBOX.maxlen == 200


@pytest.mark.parametrize(("template", "context", "subject"), [
    ("proposal", {"proposal_number": "KP-0042", "valid_until": "31.03.2025"},
     "Commercial proposal No. KP-0042 for Romashka LLC"),
    ("contract", {"contract_number": "D-2025/118"}, "Contract No. D-2025/118 for signature — Romashka LLC"),
    ("invoice", {"invoice_number": "1187", "due_date": "24.03.2025"}, "Invoice No. 1187 from Vector Systems JSC"),
    ("payment_reminder", {"invoice_number": "1187", "days_overdue": 5},
     "Payment reminder: invoice No. 1187 is 5 days overdue"),
    ("task_reminder", {"task_name": "Approve discount", "due_at": "2025-03-14 12:00 UTC", "overdue": True},
     "Overdue: Approve discount — DEAL-2025-007"),
    ("generic", {"subject": "Meeting notes", "body": "First.\n\nSecond."}, "Meeting notes"),
])
def test_every_shipped_template_renders_text_and_html(template, context, subject):
    mail.OUTBOX.clear()
    result = handler()(request(template=template, context=context))

    [kept] = mail.OUTBOX
    assert result["mail"]["subject"] == subject
    assert kept.get_body(("plain",)).get_content().strip()
    assert kept.get_body(("html",)).get_content().strip()


@pytest.mark.parametrize(("config", "named"), [
    ({"DEALFLOW_SMTP_TLS": "tls"}, "DEALFLOW_SMTP_TLS"),
    ({"DEALFLOW_SMTP_PORT": "smtp"}, "DEALFLOW_SMTP_PORT"),
    ({"DEALFLOW_MAIL_FROM": "sales at vector"}, "DEALFLOW_MAIL_FROM"),
    ({"DEALFLOW_MAIL_FROM": "a@vector.example, b@vector.example"}, "DEALFLOW_MAIL_FROM"),
])
def test_wrong_settings_fail_when_the_handler_is_built(config, named):
    with pytest.raises(ValueError, match=named):
        MailHandler(config)


def test_default_ports_follow_the_tls_mode():
    ports = [SmtpSettings.from_config({"DEALFLOW_SMTP_TLS": tls}).port for tls in ("none", "starttls", "ssl")]
    assert ports == [25, 587, 465]
    assert "secret" not in repr(SmtpSettings.from_config({"DEALFLOW_SMTP_PASSWORD": "secret"}))
