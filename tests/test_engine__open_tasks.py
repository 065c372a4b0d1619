"""An instance view lists at most OPEN_TASKS_IN_VIEW open tasks, the oldest first, and counts them all.

A parallel multi-instance approval (tests/bpmn/approvals.bpmn, one user task per line item) is the instance with
many open tasks. Every command loads the instance from its row (the fixture's engine keeps no workflow cache).
"""

import pytest

from engine.engine import Engine
from engine.queries import TaskFilter
from engine.views import OPEN_TASKS_IN_VIEW
from tests.factories import actor
from tests.factories import deploy

ALICE = actor("alice", groups=("sales",))


@pytest.fixture
def approve(engine, session_factory):
    deploy(session_factory, "approvals.bpmn")

    def start(items: int):
        return engine.start_instance("approvals", actor=ALICE, variables={"items": [f"item-{n}" for n in range(items)]})

    return start


def _all_open(engine, instance_id: int) -> list[str]:
    return [t.id for t in engine.list_tasks(TaskFilter(instance_id=instance_id, limit=500))]


def test_a_view_lists_the_oldest_fifty_and_counts_all_sixty(approve, engine, session_factory, clock):
    started = approve(60)
    assert (len(started.open_tasks), started.open_task_count) == (OPEN_TASKS_IN_VIEW, 60)
    # The answer to the start comes from the rows it created; it is the same page the database gives.
    assert [t.id for t in started.open_tasks] == _all_open(engine, started.id)[:OPEN_TASKS_IN_VIEW]
    done = engine.complete_task(started.open_tasks[0].id, actor=ALICE, data={"ok": True})
    # The completion reads the other tasks from the database: 51 rows, so it counts them.
    assert (len(done.open_tasks), done.open_task_count) == (OPEN_TASKS_IN_VIEW, 59)
    assert [t.id for t in done.open_tasks] == _all_open(engine, started.id)[:OPEN_TASKS_IN_VIEW]
    assert started.open_tasks[0].id not in {t.id for t in done.open_tasks}
    # The page's rows are read by plain statements; the inbox's through the ORM: the same views, field by field.
    inbox = engine.list_tasks(TaskFilter(instance_id=started.id, limit=OPEN_TASKS_IN_VIEW))
    assert done.open_tasks == inbox and [t.to_dict() for t in done.open_tasks] == [t.to_dict() for t in inbox]
    # A second engine (cold caches) reads the same view through get_instance.
    again = Engine(session_factory, clock=clock).get_instance(started.id)
    assert again.open_tasks == done.open_tasks and again.open_task_count == 59


def test_a_small_approval_lists_every_task(approve, engine):
    started = approve(10)
    assert (len(started.open_tasks), started.open_task_count) == (10, 10)
    done = engine.complete_task(started.open_tasks[3].id, actor=ALICE, data={"ok": True})
    assert (len(done.open_tasks), done.open_task_count) == (9, 9)
    assert engine.get_instance(started.id).open_task_count == 9


def test_the_count_is_exact_around_the_page_size(approve, engine):
    # 52 -> 51 -> 50 open tasks: the read of 51 rows decides whether to count, so the edges must not be off by one.
    view = approve(OPEN_TASKS_IN_VIEW + 2)
    counts = [view.open_task_count]
    for _ in range(3):
        view = engine.complete_task(view.open_tasks[-1].id, actor=ALICE, data={"ok": True})
        counts.append(view.open_task_count)
        assert len(view.open_tasks) == min(view.open_task_count, OPEN_TASKS_IN_VIEW)
        assert engine.get_instance(view.id).open_task_count == view.open_task_count
    assert counts == [52, 51, 50, 49]


def test_a_finished_or_cancelled_instance_counts_none(approve, engine):
    started = approve(3)
    cancelled = engine.cancel_instance(started.id, actor=actor("sue", roles=("admin",)))
    assert cancelled.open_tasks == [] and cancelled.open_task_count == 0
    view = approve(2)
    for task in list(view.open_tasks):
        view = engine.complete_task(task.id, actor=ALICE, data={"ok": True})
    assert view.status == "completed" and (view.open_tasks, view.open_task_count) == ([], 0)


def test_a_completion_without_an_answer_does_the_same_work(approve, engine, session_factory, clock):
    started = approve(3)
    ids = [t.id for t in started.open_tasks]
    assert engine.complete_task(ids[0], actor=ALICE, data={"ok": True}, answer=False) is None
    view = Engine(session_factory, clock=clock).get_instance(started.id)
    assert view.open_task_count == 2 and ids[0] not in {t.id for t in view.open_tasks}
    assert engine.complete_task(ids[1], actor=ALICE, data={"ok": True}, answer=False) is None
    assert engine.complete_task(ids[2], actor=ALICE, data={"ok": True}).status == "completed"
    assert [e.event for e in engine.history(started.id)].count("task_completed") == 3


def _as_read(engine, session_factory, clock, instance_id: int):
    """What an engine with nothing cached reads of the instance's open tasks."""
    view = Engine(session_factory, clock=clock).get_instance(instance_id)
    return [t.to_dict() for t in view.open_tasks], view.open_task_count


@pytest.mark.parametrize("order", ["oldest first", "newest first", "shuffled"])
def test_a_cached_engine_answers_every_approval_with_the_open_tasks_the_database_holds(
        approve, session_factory, clock, script_pool, order):
    # An engine that keeps workflows keeps each one's window of oldest open tasks (engine.open_tasks) and moves it
    # on by what each command did, reading the rows again only when it runs short: whatever the order the items
    # are approved in, every answer is what a cold engine reads from the database.
    import random

    cached = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=8)
    items = 2 * OPEN_TASKS_IN_VIEW + 25
    view = cached.start_instance("approvals", actor=ALICE, variables={"items": [f"i-{n}" for n in range(items)]})
    ids = _all_open(cached, view.id)
    if order == "newest first":
        ids.reverse()
    elif order == "shuffled":
        random.Random(3).shuffle(ids)
    for n, task_id in enumerate(ids):
        view = cached.complete_task(task_id, actor=ALICE, data={"ok": True})
        if n % 5 == 0 or len(ids) - n < OPEN_TASKS_IN_VIEW + 3:
            assert ([t.to_dict() for t in view.open_tasks], view.open_task_count) == \
                _as_read(cached, session_factory, clock, view.id)
    assert view.status == "completed" and (view.open_tasks, view.open_task_count) == ([], 0)


def test_a_claim_or_assignment_between_commands_shows_in_the_next_answer(
        approve, session_factory, clock, script_pool):
    # A claim writes a task row without a command on its instance; it is audited on the instance's trail, so the
    # window the last command left no longer stands for the rows and the next answer reads them, whichever
    # process (engine) made the claim.
    cached = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=8)
    other = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=8)
    view = cached.start_instance("approvals", actor=ALICE, variables={"items": [f"i-{n}" for n in range(8)]})
    first, second, third = [t.id for t in view.open_tasks[:3]]
    view = cached.complete_task(first, actor=ALICE, data={"ok": True})
    other.claim_task(second, actor=ALICE)
    view = cached.complete_task(third, actor=ALICE, data={"ok": True})
    assert {t.id: t.assignee for t in view.open_tasks}[second] == "alice"
    cached.unclaim_task(second, actor=ALICE)
    cached.assign_task(view.open_tasks[-1].id, "bob", actor=actor("sue", roles=("supervisor",)))
    view = cached.complete_task(view.open_tasks[2].id, actor=ALICE, data={"ok": True})
    assert ([t.to_dict() for t in view.open_tasks], view.open_task_count) == \
        _as_read(cached, session_factory, clock, view.id)
    assert {t.id: t.assignee for t in view.open_tasks}[second] is None
    assert view.open_tasks[-1].assignee == "bob"
