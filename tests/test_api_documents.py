"""GET /api/v1/documents: download a deal's documents and list them, as visible as the deal's process instance."""

import hashlib

import pytest

from app import services
from engine.documents import DocumentServices
from tests.api_support import assert_error
from tests.api_support import deploy
from tests.api_support import start


@pytest.fixture
def deal(app, client, api_users, clock):
    """An instance of DEAL-1 started by alice (sales), with a contract, an invoice, and an invoice of no instance."""
    designer = api_users.add("dana", roles=("designer",), groups=())
    assert deploy(client, designer).status_code == 201
    alice = api_users.add("alice", roles=("manager",), groups=("sales",))
    instance = start(client, alice, business_key="DEAL-1")
    store = DocumentServices(services(app).session_factory, clock).store_document
    contract = store(key="job-1", business_key="DEAL-1", instance_id=instance["id"], kind="contract",
                     filename="contract-DEAL-1-v{version}.pdf", render=lambda n: b"%PDF-1.7 contract")
    clock.advance(minutes=1)
    invoice = store(key="job-2", business_key="DEAL-1", instance_id=instance["id"], kind="invoice",
                    filename="invoice-{number}.pdf", render=lambda n: f"%PDF-1.7 invoice {n}".encode(), numbered=True)
    clock.advance(minutes=1)
    orphan = store(key="job-3", business_key=None, instance_id=None, kind="invoice", filename="invoice-{number}.pdf",
                   render=lambda n: b"%PDF-1.7 orphan", numbered=True)
    return {"instance": instance, "alice": alice, "contract": contract, "invoice": invoice, "orphan": orphan}


def test_download_gives_the_bytes_as_an_attachment(client, deal):
    response = client.get(f"/api/v1/documents/{deal['invoice'].id}", headers=deal["alice"])

    assert response.status_code == 200
    assert response.data == b"%PDF-1.7 invoice 2026-000001"
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=invoice-2026-000001.pdf"
    assert response.headers["ETag"] == f'"{hashlib.sha256(response.data).hexdigest()}"'
    assert "private" in response.headers["Cache-Control"]
    # The browser's copy is still good: revalidating with the ETag costs no bytes.
    again = client.get(f"/api/v1/documents/{deal['invoice'].id}",
                       headers={**deal["alice"], "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_list_is_newest_first_and_filters(client, deal):
    listed = client.get("/api/v1/documents?business_key=DEAL-1", headers=deal["alice"]).get_json()

    assert [d["id"] for d in listed["items"]] == [deal["invoice"].id, deal["contract"].id]
    assert listed["total"] == 2 and listed["next"] is None
    assert listed["items"][0] | {"created_at": None} == {
        "id": deal["invoice"].id, "kind": "invoice", "version": 1, "number": "2026-000001",
        "filename": "invoice-2026-000001.pdf", "content_type": "application/pdf", "sha256": deal["invoice"].sha256,
        "size": deal["invoice"].size, "business_key": "DEAL-1", "instance_id": deal["instance"]["id"],
        "template": None, "created_at": None}
    by_instance = client.get(f"/api/v1/documents?instance_id={deal['instance']['id']}&per_page=1",
                             headers=deal["alice"]).get_json()
    assert [d["id"] for d in by_instance["items"]] == [deal["invoice"].id] and by_instance["next"]


def test_who_may_see_a_deal_may_see_its_documents(client, api_users, deal):
    outsider = api_users.add("bob", roles=("manager",), groups=("support",))  # not his deal, no task of his
    auditor = api_users.add("audrey", roles=("auditor",), groups=())
    integration = api_users.add("crm", roles=("integration",), groups=())
    lawyer = api_users.add("lena", roles=("lawyer",), groups=("sales",))  # the deal's task is offered to sales

    for headers in (outsider, integration):
        # Invisible like the instance itself (404, not 403): its existence is not given away.
        body = assert_error(client.get(f"/api/v1/documents/{deal['contract'].id}", headers=headers), 404, "not_found")
        assert f"document {deal['contract'].id}" in body["message"]
        assert assert_error(client.get(f"/api/v1/process-instances/{deal['instance']['id']}", headers=headers), 404)
        assert client.get("/api/v1/documents", headers=headers).get_json()["items"] == []
    assert client.get(f"/api/v1/documents/{deal['contract'].id}", headers=lawyer).status_code == 200
    # A document of no instance: only for those who see every instance.
    assert_error(client.get(f"/api/v1/documents/{deal['orphan'].id}", headers=deal["alice"]), 404)
    assert client.get(f"/api/v1/documents/{deal['orphan'].id}", headers=auditor).data == b"%PDF-1.7 orphan"
    everything = client.get("/api/v1/documents", headers=auditor).get_json()
    assert [d["id"] for d in everything["items"]] == [deal["orphan"].id, deal["invoice"].id, deal["contract"].id]


@pytest.mark.parametrize("path", ["/api/v1/documents/999", "/api/v1/documents/99999999999"])
def test_unknown_documents_are_404(client, deal, path):
    body = assert_error(client.get(path, headers=deal["alice"]), 404, "not_found")
    assert "no document" in body["message"]


def test_bad_filters_and_no_token(client, deal):
    assert_error(client.get("/api/v1/documents?instance_id=abc", headers=deal["alice"]), 400, "invalid_input")
    assert_error(client.get(f"/api/v1/documents/{deal['contract'].id}"), 401)
