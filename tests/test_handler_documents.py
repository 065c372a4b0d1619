"""`document.render` end to end: real templates, real PDF bytes read back with pypdf, a real database behind it."""

import base64
import io
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import func
from sqlalchemy import select

from engine.documents import DocumentServices
from engine.handlers import HandlerError
from engine.handlers import HandlerRequest
from engine.models import Document
from handlers.documents import DocumentHandler

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "documents"
DEAL = {
    "client": {"name": "Ромашка", "legal_form": "ООО", "inn": "7701234567", "kpp": "770101001",
               "contact": {"name": "Ирина Соколова", "position": "директор по закупкам"},
               "signatory": {"name": "И. С. Соколова", "position": "генерального директора"}},
    "seller": {"name": "Дилфлоу", "legal_form": "АО", "inn": "7700000000",
               "signatory": {"name": "А. Б. Смирнов"}},
    "deal_title": "Внедрение CRM для отдела продаж",
    "currency": "RUB",
    "items": [{"name": "Лицензия CRM на год", "qty": 1, "unit_price": 1234.5},
              {"name": "Настройка воронки", "qty": 2, "unit_price": "10000"}],
    "vat_rate": 20,
    "bank": {"name": "ПАО Сбербанк", "bik": "044525225", "account": "40702810938000012345"},
}


@pytest.fixture
def services(session_factory, clock):
    return DocumentServices(session_factory, clock)


@pytest.fixture(scope="module")
def handler():
    return DocumentHandler({"DEALFLOW_LOCALE": "ru_RU"}, TEMPLATES)


def request_for(services, template=None, *, key="job-1", variables=None, context=None, business_key="DEAL-42",
                **parameters) -> HandlerRequest:
    if template is not None:
        parameters["template"] = template
    if context is not None:
        parameters["context"] = context
    return HandlerRequest(topic="document.render", parameters=parameters, instance_id=7, business_key=business_key,
                          variables=DEAL if variables is None else variables, idempotency_key=key,
                          element_id="make_document", attempt=1, services=services)


def pdf_text(content: bytes) -> str:
    """The PDF's text with the no-break spaces Babel puts into amounts made plain, so tests can quote them."""
    assert content.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return text.replace("\xa0", " ").replace("\u202f", " ")


@pytest.mark.parametrize("template", ["proposal", "contract", "invoice"])
def test_each_document_is_a_real_pdf_with_the_deal_in_it(services, handler, template):
    result = handler(request_for(services, template))

    doc, content = services.get_document(result["document"]["id"])
    text = pdf_text(content)
    assert "Ромашка" in text and "Внедрение CRM для отдела продаж" in text
    # 1 x 1234.50 + 2 x 10000 = 21 234.50; VAT 20 % = 4 246.90; total 25 481.40, in the Russian way of writing.
    assert "1 234,50 ₽" in text and "21 234,50 ₽" in text and "25 481,40 ₽" in text
    assert result["document"] == {"id": doc.id, "kind": template, "version": 1, "number": doc.number,
                                  "filename": doc.filename, "sha256": doc.sha256, "size": len(content)}
    if template == "invoice":
        assert doc.number == "2026-000001" and "2026-000001" in text and "044525225" in text
        assert doc.filename == "invoice-2026-000001.pdf"
    else:
        assert doc.number is None and doc.filename == f"{template}-DEAL-42-v1.pdf"


def test_euro_amounts_in_the_locale_of_the_call(services, handler):
    context = {"currency": "EUR", "locale": "en_US"}

    result = handler(request_for(services, "proposal", context=context, kind="proposal-en"))

    text = pdf_text(services.get_document(result["document"]["id"])[1])
    assert "€1,234.50" in text and "€25,481.40" in text
    assert result["document"]["kind"] == "proposal-en"


def test_versions_and_the_same_call_twice(services, handler, session_factory):
    first = handler(request_for(services, "contract", key="job-1"))["document"]
    # The worker crashed before recording the result: the same call again must not make a second contract.
    again = handler(request_for(services, "contract", key="job-1"))["document"]
    second = handler(request_for(services, "contract", key="job-2"))["document"]

    assert again == first
    assert (first["version"], second["version"]) == (1, 2)
    assert second["filename"] == "contract-DEAL-42-v2.pdf"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 2


@pytest.mark.parametrize("name", [None, "missing", "base", "_items", "../documents/invoice", "invoice.html",
                                  "/etc/passwd", 42])
def test_unknown_templates_are_refused_naming_the_real_ones(services, handler, name):
    with pytest.raises(HandlerError) as caught:
        handler(request_for(services, name))

    assert caught.value.retryable is False
    assert "contract, invoice, proposal" in caught.value.message and "'make_document'" in caught.value.message


def test_a_missing_variable_names_itself_and_the_template_and_uses_no_number(services, handler):
    variables = {k: v for k, v in DEAL.items() if k != "client"}

    with pytest.raises(HandlerError) as caught:
        handler(request_for(services, "invoice", variables=variables))

    assert caught.value.retryable is False
    assert "'client' is undefined" in caught.value.message and "'invoice.html'" in caught.value.message
    # The failed invoice took its number inside the transaction that rolled back: the next one gets 000001.
    assert handler(request_for(services, "invoice", key="job-2"))["document"]["number"] == "2026-000001"


def test_bad_parameters_are_not_retried(services, handler):
    for parameters in ({"template": "invoice", "kind": "../x"}, {"template": "invoice", "context": ["a"]}):
        with pytest.raises(HandlerError) as caught:
            handler(request_for(services, **parameters))
        assert caught.value.retryable is False


@pytest.mark.parametrize("expression", ["{{ cycler.__init__.__globals__ }}", "{{ ''.__class__.__mro__ }}",
                                        "{{ self._TemplateReference__context }}",
                                        "{{ items.append(1) }}"])
def test_template_injection_in_a_template_fails_safely(services, tmp_path, expression):
    (tmp_path / "evil.html").write_text(f"<p>{expression}</p>")
    evil = DocumentHandler({}, tmp_path)

    with pytest.raises(HandlerError) as caught:
        evil(request_for(services, "evil", variables={"items": []}))

    assert caught.value.retryable is False and "'evil.html'" in caught.value.message


def test_injection_in_the_data_is_printed_as_text(services, handler):
    hostile = "{{ 7*7 }} <b>bold</b> {{ cycler.__init__.__globals__ }}"
    variables = {**DEAL, "client": {**DEAL["client"], "name": hostile}}

    result = handler(request_for(services, "invoice", variables=variables))

    text = pdf_text(services.get_document(result["document"]["id"])[1])
    # Data is a value of the context, never compiled: the braces and the tags come out as typed.
    assert "{{ 7*7 }}" in text and "<b>bold</b>" in text and "cycler.__init__.__globals__" in text
    assert "49" not in text


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args):
        pass


PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
                       "rkJggg==")  # one pixel


@pytest.fixture
def web_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_only_local_files_and_data_uris_are_loaded(services, tmp_path, web_server):
    (tmp_path / "logo.png").write_bytes(PNG)
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    (tmp_path / "remote.html").write_text(f"""<html><head>
        <link rel="stylesheet" href="{web_server}/style.css"><style>@import url("{web_server}/more.css");</style>
        </head><body><p>Images</p>
        <img src="{web_server}/tracker.png"><img src="file:///etc/hostname"><img src="../secret.png">
        <img src="logo.png"><img src="{data_uri}"></body></html>""")
    (tmp_path.parent / "secret.png").write_bytes(PNG)

    result = DocumentHandler({}, tmp_path)(request_for(services, "remote", variables={}))

    assert _Recorder.hits == []  # nothing was fetched over the network
    content = services.get_document(result["document"]["id"])[1]
    # Two images made it: the template's own logo and the data: URI; the file outside the directory did not.
    assert len(PdfReader(io.BytesIO(content)).pages[0].images) == 2
