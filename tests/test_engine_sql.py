"""Prepared statements (engine/sql.py) against SQLAlchemy Core on the same rows: same SQL, same types back."""

from datetime import UTC
from datetime import datetime

import pytest
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from engine.database import make_read_session_factory
from engine.models import AuditEvent
from engine.sql import Batch
from engine.sql import InsertRows
from engine.sql import Prepared

EVENTS = AuditEvent.__table__
AT = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC)


def _event(seq: int, **values) -> dict:
    return {"seq": seq, "at": AT, "actor": "alice", "event": "task_completed", "instance_id": seq % 3 or None,
            "task_id": f"task-{seq}", "element_id": "Review", "details": {"data": {"ok": True}, "n": [seq, "x"]},
            "trail": 0, "trail_seq": seq, "prev_hash": "0" * 64, "hash": f"{seq:064d}"} | values


def test_rows_written_and_read_through_prepared_statements_match_core(session_factory):
    by_seq = Prepared(select(EVENTS).where(EVENTS.c.seq == bindparam("b_seq")))
    with session_factory() as session, session.begin():
        InsertRows(EVENTS).execute(session, [_event(1), _event(2, at=datetime(2027, 1, 1, tzinfo=UTC), details={})])
        prepared = [by_seq.first(session, {"b_seq": n}) for n in (1, 2)]
        core = [dict(session.execute(select(EVENTS).where(EVENTS.c.seq == n)).mappings().one()) for n in (1, 2)]
        missing = by_seq.first(session, {"b_seq": 3})
    assert prepared == core and missing is None
    assert prepared[0]["at"] == AT and prepared[0]["at"].tzinfo is not None
    assert prepared[0]["details"] == {"data": {"ok": True}, "n": [1, "x"]} and prepared[1]["details"] == {}
    assert prepared[0]["instance_id"] == 1 and prepared[1]["instance_id"] == 2


def test_an_insert_larger_than_one_statement_is_split(session_factory):
    insert = InsertRows(EVENTS)
    rows = [_event(n) for n in range(1, insert.chunk * 2 + 8)]
    everything = Prepared(select(EVENTS.c.seq, EVENTS.c.hash).order_by(EVENTS.c.seq))
    with session_factory() as session, session.begin():
        insert.execute(session, rows)
        stored = everything.all(session)
    assert stored == [{"seq": row["seq"], "hash": row["hash"]} for row in rows]


def test_an_update_reports_the_rows_it_changed(session_factory):
    rename = Prepared(EVENTS.update().where(EVENTS.c.seq == bindparam("b_seq"), EVENTS.c.actor == "alice")
                      .values(actor=bindparam("b_actor"), at=bindparam("b_at")))
    later = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with session_factory() as session, session.begin():
        InsertRows(EVENTS).execute(session, [_event(1)])
        first = rename.execute(session, {"b_seq": 1, "b_actor": "bob", "b_at": later})
        second = rename.execute(session, {"b_seq": 1, "b_actor": "carol", "b_at": later})
        row = session.execute(select(EVENTS.c.actor, EVENTS.c.at)).one()
    assert (first, second) == (1, 0) and (row.actor, row.at) == ("bob", later)


def test_expanding_parameters_are_refused(session_factory):
    query = Prepared(select(EVENTS.c.seq).where(EVENTS.c.seq.in_(bindparam("seqs", expanding=True))))
    with session_factory() as session, session.begin(), pytest.raises(ValueError, match="IN parameters"):
        query.all(session, {"seqs": [1, 2]})


def test_driver_errors_arrive_as_sqlalchemys_and_nothing_is_applied(session_factory):
    insert = InsertRows(EVENTS)
    count = Prepared(select(func.count().label("n")).select_from(EVENTS))
    for attempt in (lambda s: insert.execute(s, [_event(1), _event(1)]),
                    lambda s: _pipelined_duplicate(s, insert)):
        with pytest.raises(IntegrityError), session_factory() as session, session.begin():
            attempt(session)
    with session_factory() as session, session.begin():
        assert count.first(session)["n"] == 0


def _pipelined_duplicate(session, insert: InsertRows) -> None:
    with Batch(session) as batch:
        batch.insert(insert, [_event(5)])
        batch.insert(insert, [_event(5)])


class Lost(Exception):
    pass


def test_a_batch_checks_each_writes_row_count_when_it_ends(session_factory):
    rename = Prepared(EVENTS.update().where(EVENTS.c.seq == bindparam("b_seq")).values(actor="bob"))
    with session_factory() as session, session.begin():
        with Batch(session) as batch:
            batch.insert(InsertRows(EVENTS), [_event(1), _event(2)])
            batch.write(rename, {"b_seq": 1}, expect=1, error=Lost)
            batch.write(rename, {"b_seq": 2})
        assert sorted(Prepared(select(EVENTS.c.actor)).all(session), key=str) == [{"actor": "bob"}] * 2
    to_carol = Prepared(EVENTS.update().where(EVENTS.c.seq == bindparam("b_seq")).values(actor="carol"))
    with pytest.raises(Lost), session_factory() as session, session.begin(), Batch(session) as batch:
        batch.write(to_carol, {"b_seq": 1}, expect=1, error=Lost)
        batch.write(to_carol, {"b_seq": 99}, expect=1, error=Lost)  # no such row: the batch fails, carol is undone
    with session_factory() as session, session.begin():
        assert Prepared(select(EVENTS.c.actor)).all(session) == [{"actor": "bob"}] * 2


def test_rows_holding_the_same_json_text_share_one_parsed_value(session_factory):
    # A page of a multi-instance task's siblings holds one form and one group list, parsed once for the page.
    shared = {"data": {"ok": True}, "n": [1, "x"]}
    page = Prepared(select(EVENTS.c.seq, EVENTS.c.details, EVENTS.c.at).order_by(EVENTS.c.seq))
    with session_factory() as session, session.begin():
        InsertRows(EVENTS).execute(session, [_event(1, details=shared), _event(2, details=shared),
                                             _event(3, details={"n": 3})])
        rows = page.all(session)
        core = [dict(row) for row in session.execute(page.statement).mappings()]
    assert rows == core
    assert [row["details"] for row in rows] == [shared, shared, {"n": 3}]
    if session_factory.kw["bind"].dialect.name == "sqlite":  # psycopg parses JSON itself, a value per row
        assert rows[0]["details"] is rows[1]["details"] and rows[2]["details"] is not rows[0]["details"]
    assert all(row["at"] == AT and row["at"].utcoffset().total_seconds() == 0 for row in rows)


def test_datetimes_stored_without_microseconds_read_back_as_aware_utc(session_factory):
    # Rows written by SQL by hand (a migration, an operator's fix) may lack the fraction SQLAlchemy writes.
    with session_factory() as session, session.begin():
        InsertRows(EVENTS).execute(session, [_event(1)])
        session.execute(EVENTS.update().values(at=text("'2026-11-23 09:30:15'")))
        prepared = Prepared(select(EVENTS.c.at)).first(session)["at"]
        orm = session.execute(select(EVENTS.c.at)).scalar_one()
    assert prepared == orm == datetime(2026, 11, 23, 9, 30, 15, tzinfo=UTC)
    assert prepared.utcoffset().total_seconds() == 0
    if session_factory.kw["bind"].dialect.name == "sqlite":  # text with an offset of its own, as SQLite keeps it
        with session_factory() as session, session.begin():
            session.execute(EVENTS.update().values(at=text("'2026-11-23 11:30:15+02:00'")))
            again = Prepared(select(EVENTS.c.at)).first(session)["at"]
        assert again == datetime(2026, 11, 23, 9, 30, 15, tzinfo=UTC) and again.utcoffset().total_seconds() == 0


def test_one_statement_reads_run_without_a_transaction_on_postgresql(session_factory):
    reads = make_read_session_factory(session_factory)
    if session_factory.kw["bind"].dialect.name != "postgresql":
        assert reads is session_factory  # SQLite has no round trips to save
        return
    from psycopg.pq import TransactionStatus

    count = Prepared(select(func.count().label("n")).select_from(EVENTS))
    for factory, status in ((reads, TransactionStatus.IDLE), (session_factory, TransactionStatus.INTRANS)):
        with factory() as session:
            assert count.first(session)["n"] == 0
            assert session.connection().connection.driver_connection.info.transaction_status == status
    # The pooled connection goes back to transactions: a write that is rolled back leaves nothing.
    for _ in range(3):
        with reads() as session:
            count.first(session)
        with session_factory() as session:
            InsertRows(EVENTS).execute(session, [_event(1)])
            session.rollback()
    with session_factory() as session:
        assert count.first(session)["n"] == 0
