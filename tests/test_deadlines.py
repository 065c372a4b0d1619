"""Task deadlines and operator controls: reminders and overdue notices as notifications; jobs an operator can
list, fire early and move; and a stage-wide timer that goes away when the deal leaves the stage."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import Forbidden
from engine.models import Job
from engine.queries import TaskFilter
from tests.factories import actor
from tests.factories import deploy

DANA = actor("dana", roles=("designer",), groups=())
ALICE = actor("alice", groups=("sales",))
SUE = actor("sue", roles=("supervisor",), groups=("sales",))
SALES = frozenset({"sales"})


def _kinds(session_factory):
    with session_factory() as s:
        return sorted((j.kind, j.due_at) for j in s.scalars(select(Job)))


@pytest.fixture
def review(engine, session_factory):
    deploy(session_factory, "deal_approval.bpmn")
    return engine.start_instance("deal_approval", actor=DANA, business_key="DEAL-1", variables={"amount": 5})


def test_reminder_then_overdue_reach_the_group(engine, review, session_factory, clock):
    due = review.open_tasks[0].due_at
    assert _kinds(session_factory) == [("overdue", due), ("reminder", due - timedelta(hours=4))]
    clock.now = due - timedelta(hours=4)
    assert engine.fire_due_jobs() == 1
    (note,) = engine.list_notifications("alice", SALES)
    assert note["kind"] == "task_reminder" and "Review deal" in note["message"] and "DEAL-1" in note["message"]
    assert note["to"] == "group:sales" and note["read"] is False
    assert engine.list_notifications("lena", frozenset({"legal"})) == []
    engine.mark_notification_read(note["id"], actor=ALICE)
    assert engine.list_notifications("alice", SALES)[0]["read"] is True
    assert engine.list_notifications("bob", SALES)[0]["read"] is False  # read per member, not for the group
    assert engine.list_tasks(TaskFilter(overdue_at=clock())) == []
    clock.now = due + timedelta(minutes=1)
    assert engine.fire_due_jobs() == 1
    assert [n["kind"] for n in engine.list_notifications("bob", SALES, unread_only=True)] == ["task_overdue",
                                                                                               "task_reminder"]
    assert [t.id for t in engine.list_tasks(TaskFilter(overdue_at=clock()))] == [review.open_tasks[0].id]
    assert "task_overdue" in [e.event for e in engine.history(review.id)]


def test_an_assigned_task_reminds_only_its_assignee(engine, review, clock):
    engine.claim_task(review.open_tasks[0].id, actor=ALICE)
    clock.now = review.open_tasks[0].due_at
    engine.fire_due_jobs()
    assert [n["to"] for n in engine.list_notifications("alice", SALES)] == ["alice", "alice"]
    assert engine.list_notifications("bob", SALES) == []


def test_finished_tasks_are_not_reminded(engine, review, clock):
    engine.complete_task(review.open_tasks[0].id, actor=ALICE, data={"approved": False})
    clock.advance(days=3)
    assert engine.fire_due_jobs() == 0
    assert engine.list_notifications("alice", SALES) == []


def test_operator_lists_fires_and_moves_jobs(engine, session_factory, clock):
    deploy(session_factory, "timers.bpmn")
    view = engine.start_instance("timers", actor=DANA)
    (job,) = engine.list_jobs(instance_id=view.id)
    assert job["element_id"] == "Wait_hour" and job["due_at"] == clock() + timedelta(hours=1)
    with pytest.raises(Forbidden):
        engine.execute_job(job["id"], actor=ALICE)
    moved = engine.reschedule_job(job["id"], clock() + timedelta(hours=5), actor=SUE)
    assert moved["due_at"] == clock() + timedelta(hours=5)
    clock.advance(hours=2)
    assert engine.fire_due_jobs() == 0  # moved later: not yet
    assert engine.execute_job(job["id"], actor=SUE) is True  # fire now, ahead of time
    assert engine.get_instance(view.id).open_tasks[0].bpmn_id == "Review"
    events = [e.event for e in engine.history(view.id)]
    assert {"job_rescheduled", "timer_fired", "job_executed"} <= set(events)


def test_stage_timer_is_cancelled_when_the_deal_leaves_the_stage(engine, session_factory, clock):
    deploy(session_factory, "stage_limit.bpmn")
    left = engine.start_instance("stage_limit", actor=DANA, business_key="DEAL-2")
    stuck = engine.start_instance("stage_limit", actor=DANA, business_key="DEAL-3")
    # The per-task property reminderBefore=P1D overrides the default lead time.
    due = left.open_tasks[0].due_at
    assert ("reminder", due - timedelta(days=1)) in _kinds(session_factory)
    engine.complete_task(left.open_tasks[0].id, actor=ALICE, data={})
    assert [j["instance_id"] for j in engine.list_jobs() if j["kind"] == "timer"] == [stuck.id]
    clock.advance(days=14)
    engine.fire_due_jobs()
    assert engine.get_instance(left.id).status == "completed"
    after = engine.get_instance(stuck.id)
    assert after.status == "completed" and "End_stale" in after.completed_elements
    assert engine.get_task(stuck.open_tasks[0].id).status == "cancelled"
