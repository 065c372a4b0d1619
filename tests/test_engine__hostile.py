"""Hostile diagrams at run time: designer code that loops, bombs memory or reaches for the OS fails that
task only; the instance records the failure and the engine keeps serving other commands."""

import pytest

from tests.factories import actor
from tests.factories import bpmn_file
from tests.factories import deploy

DANA = actor("dana", roles=("designer",), groups=())
SCRIPT = "discount = 10 if amount &gt; 10000 else 0\nnet = amount - amount * discount // 100"


@pytest.mark.parametrize("script", [
    "while True:\n    pass",
    "x = 'a' * (10 ** 10)",
    "x = [1]\nwhile True:\n    x = x + x",
])
def test_runaway_script_fails_the_instance_not_the_engine(engine, session_factory, script):
    deploy(session_factory, bpmn_file("deal_approval.bpmn", **{SCRIPT: script.replace(">", "&gt;")}))
    failed = engine.start_instance("deal_approval", actor=DANA, variables={"amount": 1})
    assert failed.status == "error"
    assert "Compute_discount" in failed.error_message and failed.open_tasks == []
    assert [e.event for e in engine.history(failed.id)][-1] == "instance_failed"
    # The engine still serves: a healthy diagram runs right after.
    deploy(session_factory, bpmn_file("deal_approval.bpmn", **{'id="deal_approval"': 'id="healthy"'}))
    assert engine.start_instance("healthy", actor=DANA, variables={"amount": 1}).status == "running"


def test_assignee_expression_failure_keeps_the_task(engine, session_factory):
    deploy(session_factory, bpmn_file("deal_approval.bpmn", **{
        'camunda:candidateGroups="sales"': 'camunda:assignee="${owner}"'}))
    started = engine.start_instance("deal_approval", actor=DANA, variables={"amount": 1})
    assert started.status == "error" and "camunda:assignee" in started.error_message
    assert [t.bpmn_id for t in started.open_tasks] == ["Review_deal"]  # nothing lost; a supervisor can assign it


def test_assignee_expression(engine, session_factory):
    deploy(session_factory, bpmn_file("deal_approval.bpmn", **{
        'camunda:candidateGroups="sales"': 'camunda:assignee="${owner}"'}))
    started = engine.start_instance("deal_approval", actor=DANA, variables={"amount": 1, "owner": "bob"})
    assert started.status == "running" and started.open_tasks[0].assignee == "bob"
