"""Racing clicks: exactly one completion wins, the rest get a clean Conflict, and the audit shows one."""

import threading

from sqlalchemy import func
from sqlalchemy import select

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
