"""The audit chain detects edits, deletions and reorderings, on every backend."""

from datetime import UTC
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy import update

from engine import audit
from engine.database import begin_write
from engine.models import AuditEvent


def _write(session_factory, n=5):
    with session_factory() as s, s.begin():
        begin_write(s)
        audit.append(s, [
            audit.AuditRecord(event="task_completed", actor=f"user{i}", at=datetime(2026, 1, 1, 9, i, tzinfo=UTC),
                              instance_id=1, details={"amount": i * 10, "note": f"n{i}"})
            for i in range(n)
        ])


def _verify(session_factory):
    with session_factory() as s:
        return audit.verify(s)


def test_untouched_chain_verifies(session_factory):
    _write(session_factory)
    _write(session_factory, 3)  # a second append continues the same chain
    result = _verify(session_factory)
    assert result.ok and result.checked == 8


def test_edited_row_is_caught(session_factory):
    _write(session_factory)
    with session_factory() as s, s.begin():
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(details={"amount": 9999, "note": "n2"}))
    result = _verify(session_factory)
    assert not result.ok and result.first_bad_seq == 3 and "changed" in result.reason


def test_deleted_row_is_caught(session_factory):
    _write(session_factory)
    with session_factory() as s, s.begin():
        s.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    result = _verify(session_factory)
    assert not result.ok and result.first_bad_seq == 2


def test_deleted_last_row_is_caught(session_factory):
    # The tail has no successor to notice it is gone: the head row must.
    _write(session_factory)
    with session_factory() as s, s.begin():
        s.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
    result = _verify(session_factory)
    assert not result.ok and result.first_bad_seq == 5


def test_swapped_rows_are_caught(session_factory):
    _write(session_factory)
    with session_factory() as s, s.begin():
        rows = {r.seq: r for r in s.query(AuditEvent).filter(AuditEvent.seq.in_([2, 4]))}
        a, b = rows[2], rows[4]
        fields = ("at", "actor", "event", "details", "prev_hash", "hash")
        va, vb = ({f: getattr(a, f) for f in fields}, {f: getattr(b, f) for f in fields})
        for f in fields:
            setattr(a, f, vb[f])
            setattr(b, f, va[f])
    result = _verify(session_factory)
    assert not result.ok and result.first_bad_seq == 2


def test_digest_bytes_are_pinned():
    # Rows already written were hashed this way: any change to the serialization stops old chains verifying.
    digest = audit._digest_of("0" * 64, 7, datetime(2026, 1, 1, 9, 30, tzinfo=UTC), "zoë", "task_completed", 3,
                              "t-1", "Review", {"amount": 12.5, "tags": ["a", "ü"], "nested": {"b": None, "a": True}})
    assert digest == "9e62e2989c98a5d24f643922c2c93dbcc251cab83b4eb96f2577fbdd4503ad3f"
