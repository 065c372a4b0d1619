"""The audit log's trails detect edits, deletions and reorderings, on every backend."""

from datetime import UTC
from datetime import datetime

import pytest
from sqlalchemy import delete
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from engine import audit
from engine.database import begin_write
from engine.models import AuditEvent
from engine.models import ProcessInstance
from tests.factories import actor
from tests.factories import deploy


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
    # The event after the gap is the first one that notices it.
    assert not result.ok and result.first_bad_seq == 3 and "1 event(s) before event #3 are missing" in result.reason


def test_deleted_last_row_is_caught(session_factory):
    # The tail has no successor to notice it is gone: the head row must.
    _write(session_factory)
    with session_factory() as s, s.begin():
        s.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
    result = _verify(session_factory)
    assert not result.ok and result.first_bad_seq is None
    assert result.reason == "The last 1 event(s) of the log's own trail were deleted."


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


def test_events_of_no_instance_and_of_an_instance_without_a_row_share_the_logs_trail(session_factory):
    # Both go on the log's own trail in one append: it is taken once, and its head moves once.
    at = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    with session_factory() as s, s.begin():
        begin_write(s)
        audit.append(s, [audit.AuditRecord(event="user_created", actor="admin", at=at),
                         audit.AuditRecord(event="task_completed", actor="alice", at=at, instance_id=404),
                         audit.AuditRecord(event="user_changed", actor="admin", at=at)])
    with session_factory() as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert sorted((e.trail, e.trail_seq) for e in events) == [(0, 1), (0, 2), (0, 3)]
    result = _verify(session_factory)
    assert result.ok and result.checked == 3, result.reason


def test_digest_bytes_are_pinned():
    # Rows already written were hashed this way: any change to the serialization stops old chains verifying.
    digest = audit._digest_of("0" * 64, 7, datetime(2026, 1, 1, 9, 30, tzinfo=UTC), "zoë", "task_completed", 3,
                              "t-1", "Review", {"amount": 12.5, "tags": ["a", "ü"], "nested": {"b": None, "a": True}})
    assert digest == "9e62e2989c98a5d24f643922c2c93dbcc251cab83b4eb96f2577fbdd4503ad3f"


# Trails: each process instance's events are chained on the instance's own trail, headed by its row.

DESIGNER = actor("dana", roles=("designer",), groups=())


def _two_instances(engine, session_factory):
    deploy(session_factory, "deal_approval.bpmn")
    a = engine.start_instance("deal_approval", actor=DESIGNER, variables={"amount": 20000})
    b = engine.start_instance("deal_approval", actor=DESIGNER, variables={"amount": 500})
    engine.complete_task(a.open_tasks[0].id, actor=actor("alice", groups=("sales",)), data={"approved": False})
    return a.id, b.id


def _trail(session, instance_id):
    return session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance_id)
                           .order_by(AuditEvent.seq)).all()


def test_each_instance_has_its_own_trail_headed_by_its_row(engine, session_factory):
    a, b = _two_instances(engine, session_factory)
    with session_factory() as s:
        for instance_id in (a, b):
            events = _trail(s, instance_id)
            assert [e.trail for e in events] == [instance_id] * len(events)
            assert [e.trail_seq for e in events] == list(range(1, len(events) + 1))
            assert events[0].prev_hash == audit.GENESIS
            assert all(e.prev_hash == before.hash for before, e in zip(events, events[1:], strict=False))
            instance = s.get(ProcessInstance, instance_id)
            assert (instance.audit_seq, instance.audit_hash) == (len(events), events[-1].hash)
        # The deployment is an event of no instance: the log's own trail.
        assert [e.trail for e in s.scalars(select(AuditEvent).where(AuditEvent.instance_id.is_(None)))] == [0]
    result = _verify(session_factory)
    assert result.ok and result.checked >= 7


def test_an_edit_in_an_instance_trail_is_caught(engine, session_factory):
    a, _ = _two_instances(engine, session_factory)
    with session_factory() as s, s.begin():
        event = _trail(s, a)[1]
        event.actor = "mallory"
        seq = event.seq
    result = _verify(session_factory)
    assert not result.ok and result.first_bad_seq == seq and "changed" in result.reason


def test_a_deleted_tail_of_an_instance_trail_is_caught(engine, session_factory):
    a, b = _two_instances(engine, session_factory)
    with session_factory() as s, s.begin():
        last = _trail(s, b)[-1]
        s.delete(last)
    result = _verify(session_factory)
    assert not result.ok and result.first_bad_seq is None
    assert result.reason == f"The last 1 event(s) of the trail of process instance {b} were deleted."


def test_an_event_moved_to_another_trail_is_caught(engine, session_factory):
    a, b = _two_instances(engine, session_factory)
    with session_factory() as s, s.begin():
        first_of_b = _trail(s, b)[0]
        first_of_b.trail, first_of_b.trail_seq = a, 99
        seq = first_of_b.seq
    result = _verify(session_factory)
    assert not result.ok and result.first_bad_seq == seq


def test_appends_to_different_instances_do_not_wait_for_each_other(engine, session_factory, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("Only PostgreSQL has writers that run together and wait on each other's row locks; SQLite "
                    "runs one writer at a time, so there a trail never waits on another")
    a, b = _two_instances(engine, session_factory)
    at = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    with session_factory() as holder, holder.begin():
        # One transaction holds the head of instance a's trail, uncommitted ...
        audit.append(holder, [audit.AuditRecord(event="note", actor="x", at=at, instance_id=a)])
        with session_factory() as other:
            with other.begin():
                other.execute(text("SET LOCAL lock_timeout = '2s'"))
                # ... while another appends to instance b's trail and to the log's own, without waiting.
                audit.append(other, [audit.AuditRecord(event="note", actor="y", at=at, instance_id=b),
                                     audit.AuditRecord(event="note", actor="y", at=at)])
            with pytest.raises(OperationalError, match="lock timeout"), other.begin():
                # Instance a's trail is the one that waits: its head is locked.
                other.execute(text("SET LOCAL lock_timeout = '200ms'"))
                audit.append(other, [audit.AuditRecord(event="note", actor="y", at=at, instance_id=a)])
    result = _verify(session_factory)
    assert result.ok, result.reason


def test_a_verify_reads_one_moment_of_the_log_while_commands_append(engine, session_factory, db_engine):
    # An append committed while a verify walks the events (here: right before it reads the heads, the last step)
    # is either wholly seen or wholly unseen; it is never taken for a deleted or forged event.
    a, b = _two_instances(engine, session_factory)
    at = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    appended = []

    def append_meanwhile(conn, cursor, statement, parameters, context, executemany):
        # The first statement on the heads once listening is the verify's (the append's own comes after the flag).
        if not appended and "audit_head" in statement:
            appended.append(True)
            with session_factory() as other, other.begin():
                begin_write(other)
                audit.append(other, [audit.AuditRecord(event="note", actor="y", at=at, instance_id=a),
                                     audit.AuditRecord(event="note", actor="y", at=at)])

    event.listen(db_engine, "before_cursor_execute", append_meanwhile)
    try:
        with session_factory() as s:
            s.execute(select(AuditEvent.seq).limit(1))  # a session that has run a query already may verify too
            result = audit.verify(s, batch=2)
    finally:
        event.remove(db_engine, "before_cursor_execute", append_meanwhile)
    assert appended and result.ok, result.reason
    # The next verify sees the appended events, and they verify.
    again = _verify(session_factory)
    assert again.ok and again.checked == result.checked + 2, (again, result)
