"""Racing clicks: exactly one completion wins, the rest get a clean Conflict, and the audit shows one."""

import logging
import threading
import time

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text

from engine.engine import Engine
from engine.errors import Conflict
from engine.models import AuditEvent
from tests.factories import actor
from tests.factories import deploy

THREADS = 20


def _race(fn, n=THREADS):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = ("ok", fn(i))
        except Exception as exc:  # noqa: BLE001 - the test sorts outcomes by type below
            results[i] = ("error", exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_twenty_threads_complete_the_same_task(session_factory, clock, script_pool):
    deploy(session_factory, "deal_approval.bpmn")
    engine = Engine(session_factory, clock=clock, script_pool=script_pool)
    started = engine.start_instance("deal_approval", actor=actor("dana"), variables={"amount": 10})
    task_id = started.open_tasks[0].id
    # Each thread is a different member of the sales group, each with its own Engine (like separate requests).
    users = [actor(f"seller{i}", groups=("sales",)) for i in range(THREADS)]
    engines = [Engine(session_factory, clock=clock, script_pool=script_pool) for _ in range(THREADS)]
    results = _race(lambda i: engines[i].complete_task(task_id, actor=users[i], data={"approved": False}))
    wins = [r for kind, r in results if kind == "ok"]
    errors = [r for kind, r in results if kind == "error"]
    assert len(wins) == 1, errors[:3]
    assert len(errors) == THREADS - 1 and all(isinstance(e, Conflict) for e in errors), errors[:3]
    with session_factory() as s:
        completions = s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "task_completed"))
    assert completions == 1
    assert engine.get_instance(started.id).status == "completed"


def test_twenty_threads_claim_the_same_task(session_factory, clock, script_pool):
    deploy(session_factory, "deal_approval.bpmn")
    engine = Engine(session_factory, clock=clock, script_pool=script_pool)
    task_id = engine.start_instance("deal_approval", actor=actor("dana"), variables={"amount": 10}).open_tasks[0].id
    users = [actor(f"seller{i}", groups=("sales",)) for i in range(THREADS)]
    results = _race(lambda i: engine.claim_task(task_id, actor=users[i]))
    wins = [r for kind, r in results if kind == "ok"]
    assert len(wins) == 1
    assert all(isinstance(r, Conflict) for kind, r in results if kind == "error")
    assert engine.get_task(task_id).assignee == wins[0].assignee


@pytest.fixture
def pg_task(session_factory, clock, script_pool, db_url):
    """(engine, instance view, id of its open task) on PostgreSQL, the one backend that runs two writers at once."""
    if not db_url.startswith("postgresql"):
        pytest.skip("Only PostgreSQL runs two writers at once (and can deadlock them); SQLite queues them")
    deploy(session_factory, "deal_approval.bpmn")
    engine = Engine(session_factory, clock=clock, script_pool=script_pool)
    started = engine.start_instance("deal_approval", actor=actor("dana"), variables={"amount": 10})
    return engine, started, started.open_tasks[0].id


def test_a_claim_waits_behind_a_completion_of_the_same_instance_instead_of_deadlocking(session_factory, pg_task):
    engine, started, task_id = pg_task
    with session_factory() as completion, completion.begin():
        # A completion locks its instance first, and closes its task row later in the same transaction.
        completion.execute(text("SET LOCAL lock_timeout = '5s'"))
        completion.execute(text("SELECT id FROM process_instance WHERE id = :id FOR UPDATE"), {"id": started.id})
        claimed = _claim_behind_a_lock(engine, task_id, session_factory)
        # The claim waits on the instance, not holding the task row: the completion closes it without a deadlock.
        completion.execute(text("UPDATE human_task SET completed_by = NULL WHERE id = :id"), {"id": task_id})
    assert claimed().assignee == "seller"


def test_a_command_that_loses_a_deadlock_runs_again_and_goes_through(session_factory, pg_task, caplog):
    engine, started, task_id = pg_task
    caplog.set_level(logging.WARNING, logger="engine.contention")
    with session_factory() as other, other.begin():
        # A transaction outside Dealflow takes the rows in the other order: the task first, then its instance. The
        # claim (instance, then task) waits on it; this side waits longer before it checks for a deadlock, so
        # PostgreSQL aborts the claim's transaction, and the claim must run again once this one is done.
        other.execute(text("SET LOCAL deadlock_timeout = '10s'"))
        other.execute(text("SELECT id FROM human_task WHERE id = :id FOR UPDATE"), {"id": task_id})
        claimed = _claim_behind_a_lock(engine, task_id, session_factory)
        other.execute(text("SELECT id FROM process_instance WHERE id = :id FOR UPDATE"), {"id": started.id})
    assert claimed().assignee == "seller"
    assert any("a deadlock" in record.getMessage() for record in caplog.records), caplog.text
    with session_factory() as session:
        claims = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "task_claimed"))
    assert claims == 1


def _claim_behind_a_lock(engine: Engine, task_id: str, session_factory):
    """Start a claim of the task in a thread and return once it waits for a lock; the returned function joins the
    thread and gives the claim's result (failing the test with whatever the claim raised)."""
    outcome = []

    def claim():
        try:
            outcome.append(engine.claim_task(task_id, actor=actor("seller", groups=("sales",))))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever the claim raised
            outcome.append(exc)

    thread = threading.Thread(target=claim)
    thread.start()
    _wait_for_a_lock_wait(session_factory)

    def result():
        thread.join(10)
        assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
        return outcome[0]

    return result


def _wait_for_a_lock_wait(session_factory, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    with session_factory() as watcher:
        while time.monotonic() < deadline:
            if watcher.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")):
                return
            watcher.rollback()
            time.sleep(0.02)
    raise AssertionError("the claim never waited for a lock")
