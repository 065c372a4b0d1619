"""Event sub-processes started by a message: an interrupting one replaces the running process ("deal lost" from any
stage), a non-interrupting one runs beside it."""

import pytest
from sqlalchemy import select

from engine.errors import NotFound
from engine.models import EventSubscription
from engine.models import Job
from tests.factories import actor
from tests.factories import deploy

ALICE = actor("alice", groups=("sales",))
CRM = actor("crm", roles=("integration",), groups=())


@pytest.fixture
def deal(engine, session_factory):
    deploy(session_factory, "deal_lost.bpmn")
    return engine.start_instance("deal_lost", actor=ALICE, business_key="DEAL-1")


def _subscriptions(session_factory):
    with session_factory() as session:
        return sorted((s.name, s.element_id) for s in session.scalars(select(EventSubscription)))


def _jobs(session_factory):
    with session_factory() as session:
        return sorted(j.element_id for j in session.scalars(select(Job).where(Job.kind == "timer")))


def test_an_interrupting_event_subprocess_cancels_the_running_work_from_any_stage(engine, deal, session_factory):
    assert _subscriptions(session_factory) == [("client question", "Start_interest"), ("deal lost", "Start_lost")]
    assert _jobs(session_factory) == ["Remind_work"]

    delivery = engine.correlate_message("deal lost", business_key="DEAL-1", actor=CRM, payload={"by": "client"})
    assert delivery.instances == [deal.id]
    view = engine.get_instance(deal.id)
    assert [t.bpmn_id for t in view.open_tasks] == ["Record_loss"]  # "Work the deal" was cancelled
    assert view.variables["by"] == "client"
    assert _jobs(session_factory) == []  # the reminder went with the task
    assert _subscriptions(session_factory) == []  # nothing else can happen to this deal now
    events = [e.event for e in engine.history(deal.id)]
    assert "task_cancelled" in events

    done = engine.complete_task(view.open_tasks[0].id, actor=ALICE, data={"lost_reason": "price"})
    assert done.status == "completed" and "End_lost" in done.completed_elements
    assert "End_won" not in done.completed_elements
    with pytest.raises(NotFound):
        engine.correlate_message("payment received", business_key="DEAL-1", actor=CRM)


def test_a_non_interrupting_event_subprocess_runs_beside_the_process(engine, deal, session_factory):
    engine.correlate_message("client question", business_key="DEAL-1", actor=CRM)
    view = engine.get_instance(deal.id)
    assert sorted(t.bpmn_id for t in view.open_tasks) == ["Answer_question", "Work_deal"]
    assert ("deal lost", "Start_lost") in _subscriptions(session_factory)
    engine.complete_task(next(t.id for t in view.open_tasks if t.bpmn_id == "Answer_question"), actor=ALICE)
    view = engine.complete_task(engine.get_instance(deal.id).open_tasks[0].id, actor=ALICE)
    engine.correlate_message("payment received", business_key="DEAL-1", actor=CRM)
    final = engine.get_instance(deal.id)
    assert final.status == "completed" and "End_won" in final.completed_elements
