"""Stored documents on a real database: versions, gap-free numbers, one copy per idempotency key."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import datetime

import pytest
from sqlalchemy import func
from sqlalchemy import select

from engine.documents import DocumentServices
from engine.documents import get_document
from engine.documents import list_documents
from engine.documents import store_document
from engine.errors import NotFound
from engine.handlers import HandlerError
from engine.models import Document
from engine.models import DocumentCounter

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _store(session_factory, key, *, business_key="DEAL-42", kind="contract", numbered=False, now=NOW,
           instance_id=None, render=None, filename="{version}.pdf"):
    return store_document(session_factory, now, key=key, business_key=business_key, instance_id=instance_id,
                          kind=kind, filename=filename, numbered=numbered,
                          render=render or (lambda number: f"%PDF {key} {number}".encode()))


def test_versions_count_per_deal_and_kind(session_factory):
    first = _store(session_factory, "job-1", filename="contract-DEAL-42-v{version}.pdf")
    second = _store(session_factory, "job-2", filename="contract-DEAL-42-v{version}.pdf")
    other_kind = _store(session_factory, "job-3", kind="proposal")
    other_deal = _store(session_factory, "job-4", business_key="DEAL-43")

    assert (first.version, second.version, other_kind.version, other_deal.version) == (1, 2, 1, 1)
    assert second.filename == "contract-DEAL-42-v2.pdf"
    # Versioned kinds are not numbered: only invoices use up a number of the year.
    assert first.number is None
    stored, content = get_document(session_factory, second.id)
    assert stored == second and content == b"%PDF job-2 None"
    assert second.size == len(content) and len(second.sha256) == 64


def test_the_same_key_returns_the_first_document_without_rendering_again(session_factory):
    calls = []

    def render(number):
        calls.append(number)
        return b"%PDF invoice"

    first = _store(session_factory, "job-7", kind="invoice", numbered=True, render=render)
    # The worker crashed after storing and runs the handler again with the same idempotency key.
    again = _store(session_factory, "job-7", kind="invoice", numbered=True, render=render)

    assert again == first and calls == ["2026-000001"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 1
        assert session.scalar(select(DocumentCounter.last_number)) == 1


def test_numbers_run_per_kind_and_year(session_factory):
    a = _store(session_factory, "a", kind="invoice", numbered=True, filename="invoice-{number}.pdf")
    b = _store(session_factory, "b", kind="invoice", numbered=True, business_key="DEAL-9")
    act = _store(session_factory, "c", kind="act", numbered=True)
    next_year = _store(session_factory, "d", kind="invoice", numbered=True, now=datetime(2027, 1, 1, tzinfo=UTC))

    assert (a.number, b.number, act.number, next_year.number) == ("2026-000001", "2026-000002", "2026-000001",
                                                                  "2027-000001")
    assert a.filename == "invoice-2026-000001.pdf"


def test_a_failed_render_gives_its_number_back(session_factory):
    def broken(number):
        raise HandlerError(f"template broke while printing {number}", retryable=False)

    # The number was taken inside the transaction; the failure must roll it back, or the year has a gap.
    with pytest.raises(HandlerError, match="2026-000001"):
        _store(session_factory, "bad", kind="invoice", numbered=True, render=broken)
    good = _store(session_factory, "good", kind="invoice", numbered=True)

    assert good.number == "2026-000001" and good.version == 1


def test_get_and_list(session_factory):
    old = _store(session_factory, "x1", instance_id=7)
    new = _store(session_factory, "x2", instance_id=7, kind="invoice", numbered=True)
    elsewhere = _store(session_factory, "x3", instance_id=8, business_key="DEAL-43")

    assert list_documents(session_factory, business_key="DEAL-42") == [new, old]
    assert list_documents(session_factory, instance_id=8) == [elsewhere]
    assert list_documents(session_factory, business_key="DEAL-42", instance_id=8) == []
    assert [d.id for d in list_documents(session_factory)] == [elsewhere.id, new.id, old.id]
    with pytest.raises(NotFound, match="no document 999"):
        get_document(session_factory, 999)


def test_services_adapter_stores_on_its_clock_and_refuses_unknown_ids(session_factory, clock):
    services = DocumentServices(session_factory, clock)
    clock.now = datetime(2031, 5, 1, tzinfo=UTC)

    doc = services.store_document(key="k", business_key=None, instance_id=None, kind="invoice",
                                  filename="invoice-{number}.pdf", render=lambda n: b"%PDF", numbered=True)

    assert doc.filename == "invoice-2031-000001.pdf" and doc.version == 1
    assert services.get_document(doc.id) == (doc, b"%PDF")
    # A handler asking for a document that is not there cannot succeed by retrying.
    with pytest.raises(HandlerError) as caught:
        services.get_document(doc.id + 1)
    assert caught.value.retryable is False


def _in_threads(count, fn):
    """Run fn(i) in `count` threads released at once; the results in order of i."""
    gate = threading.Barrier(count)

    def run(i):
        gate.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_fifty_concurrent_invoices_get_fifty_consecutive_numbers(session_factory):
    docs = _in_threads(50, lambda i: _store(session_factory, f"job-{i}", kind="invoice", numbered=True,
                                            business_key=f"DEAL-{i % 5}"))

    assert sorted(d.number for d in docs) == [f"2026-{n:06d}" for n in range(1, 51)]
    # Each of the five deals got versions 1..10 of its invoice: nobody read the same max(version) twice.
    with session_factory() as session:
        versions = session.execute(select(Document.business_key, func.count(), func.max(Document.version))
                                   .group_by(Document.business_key)).all()
        assert sorted(tuple(v) for v in versions) == [(f"DEAL-{i}", 10, 10) for i in range(5)]
        assert session.scalar(select(DocumentCounter.last_number)) == 50


def test_concurrent_versions_of_one_deal_do_not_collide(session_factory):
    docs = _in_threads(20, lambda i: _store(session_factory, f"job-{i}"))

    assert sorted(d.version for d in docs) == list(range(1, 21))


def test_concurrent_retries_of_one_call_store_one_document(session_factory):
    # Twenty attempts of one task's call (same key) racing: one document, one number used up.
    docs = _in_threads(20, lambda i: _store(session_factory, "same", kind="invoice", numbered=True))

    assert {d.id for d in docs} == {docs[0].id} and docs[0].number == "2026-000001"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 1
        assert session.scalar(select(DocumentCounter.last_number)) == 1
