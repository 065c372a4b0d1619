"""The engine tells its listener about milestones and end events inside the command that reached them."""

import pytest

from engine.audit import AuditRecord
from tests.factories import actor
from tests.factories import deploy

ALICE = actor("alice", groups=("sales",))
LENA = actor("lena", roles=("lawyer",), groups=("legal",))


class Stages:
    def __init__(self, fail_on: str | None = None):
        self.heard, self.fail_on = [], fail_on

    def __call__(self, session, events):
        for event in events:
            if event.name == self.fail_on:
                raise RuntimeError("the CRM refused the stage")
        self.heard.extend(events)
        return [AuditRecord(event="deal_stage_changed", actor=e.actor, at=e.at, instance_id=e.instance_id,
                            element_id=e.element_id, details={"to": e.name}) for e in events if e.kind == "milestone"]


def _engine(session_factory, clock, script_pool, listener):
    from engine.engine import Engine

    return Engine(session_factory, clock=clock, script_pool=script_pool, listener=listener)


def _run_to_end(engine, session_factory):
    deploy(session_factory, "deal_approval.bpmn")
    started = engine.start_instance("deal_approval", actor=ALICE, business_key="DEAL-9", variables={"amount": 5})
    view = engine.complete_task(started.open_tasks[0].id, actor=ALICE, data={"approved": True})
    return engine.complete_task(view.open_tasks[0].id, actor=LENA, data={})


def test_milestones_and_end_events_reach_the_listener_with_the_step(session_factory, clock, script_pool):
    stages = Stages()
    engine = _engine(session_factory, clock, script_pool, stages)
    ended = _run_to_end(engine, session_factory)
    assert [(e.kind, e.element_id, e.name, e.actor, e.top_level) for e in stages.heard] == [
        ("milestone", "Milestone_contract", "Contract", "lena", True),
        ("end", "End_won", "Contract ready", "lena", True)]
    assert stages.heard[0].business_key == "DEAL-9" and stages.heard[0].variables["approved"] is True
    assert "deal_stage_changed" in [e.event for e in engine.history(ended.id)]


def test_a_failing_listener_fails_the_whole_step(session_factory, clock, script_pool):
    engine = _engine(session_factory, clock, script_pool, Stages(fail_on="Contract"))
    deploy(session_factory, "deal_approval.bpmn")
    started = engine.start_instance("deal_approval", actor=ALICE, business_key="DEAL-9", variables={"amount": 5})
    view = engine.complete_task(started.open_tasks[0].id, actor=ALICE, data={"approved": True})
    with pytest.raises(RuntimeError):
        engine.complete_task(view.open_tasks[0].id, actor=LENA, data={})
    assert [t.bpmn_id for t in engine.get_instance(started.id).open_tasks] == ["Prepare_contract"]  # nothing applied


def test_set_variables_reaches_what_the_process_does_next_and_is_audited(session_factory, clock, script_pool):
    from engine.engine import Engine
    from engine.errors import Forbidden

    engine = Engine(session_factory, clock=clock, script_pool=script_pool)
    deploy(session_factory, "deal_approval.bpmn")
    started = engine.start_instance("deal_approval", actor=ALICE, business_key="DEAL-9", variables={"amount": 5})
    with pytest.raises(Forbidden):
        engine.set_variables(started.id, {"amount": 7}, actor=ALICE)
    sue = actor("sue", roles=("supervisor",), groups=("sales",))
    changed = engine.set_variables(started.id, {"amount": 70000, "note": "re-priced"}, actor=sue, reason="new quote")
    assert changed.variables["amount"] == 70000 and changed.variables["note"] == "re-priced"
    assert engine.get_task(started.open_tasks[0].id).variables["amount"] == 70000
    [event] = [e for e in engine.history(started.id) if e.event == "variables_changed"]
    assert event.details["changes"]["amount"] == {"from": 5, "to": 70000} and event.details["reason"] == "new quote"
    engine.set_variables(started.id, {"amount": 70000}, actor=sue)  # no change: nothing recorded
    assert [e.event for e in engine.history(started.id)].count("variables_changed") == 1
