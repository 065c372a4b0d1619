"""Racing clicks: exactly one completion wins, the rest get a clean Conflict, and the audit shows one."""

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


def test_a_claim_waits_behind_a_completion_of_the_same_instance_instead_of_deadlocking(session_factory, clock,
                                                                                         script_pool, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("Only PostgreSQL runs two writers at once (and can deadlock them); SQLite queues them")
    deploy(session_factory, "deal_approval.bpmn")
    engine = Engine(session_factory, clock=clock, script_pool=script_pool)
    started = engine.start_instance("deal_approval", actor=actor("dana"), variables={"amount": 10})
    task_id = started.open_tasks[0].id
    outcome = []

    def claim():
        try:
            outcome.append(engine.claim_task(task_id, actor=actor("seller", groups=("sales",))))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever the claim raised
            outcome.append(exc)

    with session_factory() as completion, completion.begin():
        # A completion locks its instance first, and closes its task row later in the same transaction.
        completion.execute(text("SET LOCAL lock_timeout = '5s'"))
        completion.execute(text("SELECT id FROM process_instance WHERE id = :id FOR UPDATE"), {"id": started.id})
        thread = threading.Thread(target=claim)
        thread.start()
        _wait_for_a_lock_wait(session_factory)
        # The claim waits on the instance, not holding the task row: the completion closes it without a deadlock.
        completion.execute(text("UPDATE human_task SET completed_by = NULL WHERE id = :id"), {"id": task_id})
    thread.join(10)
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    assert outcome[0].assignee == "seller"


def _wait_for_a_lock_wait(session_factory, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    with session_factory() as watcher:
        while time.monotonic() < deadline:
            if watcher.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")):
                return
            watcher.rollback()
            time.sleep(0.02)
    raise AssertionError("the claim never waited for the instance's lock")
