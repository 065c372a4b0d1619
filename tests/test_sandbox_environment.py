"""The sandbox as SpiffWorkflow's script environment, alone and inside a running workflow."""

import time
from datetime import UTC
from datetime import date
from datetime import datetime

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.util.task import TaskState

from engine.sandbox import CodeFailed
from engine.sandbox import CodeTimeout
from engine.sandbox import SandboxEnvironment
from engine.sandbox import ScriptPool
from engine.sandbox import make_script_engine

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="http://dealflow.test">
  <bpmn:process id="{process}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare" />
    <bpmn:scriptTask id="prepare" name="Prepare" scriptFormat="python">
      <bpmn:script>{script}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="route" />
    <bpmn:exclusiveGateway id="route" default="to_small" />
    <bpmn:sequenceFlow id="to_big" sourceRef="route" targetRef="big">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        >${{amount &gt; 10}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_small" sourceRef="route" targetRef="small" />
    <bpmn:scriptTask id="big" name="Big"><bpmn:script>size = 'big'</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="small" name="Small"><bpmn:script>size = 'small'</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="big" targetRef="end" />
    <bpmn:sequenceFlow id="f4" sourceRef="small" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""

MOMENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def fixed_clock():
    """The engine clock stood still; the sandbox must read time only through it."""
    return lambda: MOMENT



def _workflow(script, engine, data, process="deal"):
    parser = BpmnParser()
    parser.add_bpmn_str(BPMN.format(process=process, script=script).encode(), filename=f"{process}.bpmn")
    spec, subprocesses = parser.get_spec(process), parser.get_subprocess_specs(process)
    workflow = BpmnWorkflow(spec, subprocesses, script_engine=engine)
    workflow.task_tree.data.update(data)
    return workflow


@pytest.fixture(scope="module")
def pool():
    with ScriptPool(workers=2, wall_seconds=1.0) as shared:
        yield shared


@pytest.mark.parametrize(("amount", "size"), [(5, "small"), (50, "big")])
def test_workflow_with_script_and_gateway(pool, amount, size):
    engine = make_script_engine(pool)
    workflow = _workflow("doubled = amount * 2\ndel scratch", engine, {"amount": amount, "scratch": 1})
    workflow.do_engine_steps()
    assert workflow.is_completed()
    assert workflow.last_task.data == {"amount": amount, "doubled": amount * 2, "size": size}


def test_endless_script_ends_in_error_state(pool):
    # A stuck script must become a task ERROR (an incident), not hang the server or leave the task READY.
    workflow = _workflow("while True: pass", make_script_engine(pool), {"amount": 1}, process="stuck")
    started = time.monotonic()
    with pytest.raises(WorkflowTaskException) as info:
        workflow.do_engine_steps()
    assert time.monotonic() - started < 10
    assert info.value.error_type == "CodeTimeout"
    [failed] = workflow.get_tasks(state=TaskState.ERROR)
    assert failed.task_spec.name == "prepare"


def test_inline_engine_also_errors_cleanly():
    workflow = _workflow("while True: pass", make_script_engine(None), {"amount": 1}, process="stuck_inline")
    with pytest.raises(WorkflowTaskException):
        workflow.do_engine_steps()
    assert [task.task_spec.name for task in workflow.get_tasks(state=TaskState.ERROR)] == ["prepare"]


def test_evaluate_merges_contexts_with_task_data_winning(fixed_clock):
    env = SandboxEnvironment(None, fixed_clock)
    assert env.evaluate("a + b", {"a": 1}, {"a": 100, "b": 2}) == 3
    assert env.evaluate("today()", {}) == date(2026, 3, 2)


def test_execute_updates_context_in_place():
    env = SandboxEnvironment(None)
    context = {"keep": 1, "drop": 2, "change": 3}
    same = context
    assert env.execute("del drop\nchange = 4\nnew = keep + ext\next = 9", context, {"ext": 10}) is True
    # The dict object SpiffWorkflow holds must be the one changed; external names stay out of task data.
    assert same is context
    assert context == {"keep": 1, "change": 4, "new": 11}


def test_execute_through_the_pool_uses_the_clock(pool, fixed_clock):
    context = {}
    SandboxEnvironment(pool, fixed_clock).execute("when = now()", context)
    assert context == {"when": MOMENT}


def test_failed_script_leaves_context_untouched(pool):
    context = {"a": 1}
    with pytest.raises(CodeFailed):
        SandboxEnvironment(pool).execute("a = 2\nb = 1 / 0", context)
    assert context == {"a": 1}


def test_call_service_is_refused():
    with pytest.raises(CodeFailed, match="run by handlers"):
        SandboxEnvironment(None).call_service({}, operation_name="send_mail", operation_params={})


def test_budget_errors_are_exceptions_at_the_boundary():
    # SpiffWorkflow only turns Exception into a task ERROR; a BaseException would escape and rerun the task.
    with pytest.raises(CodeTimeout) as info:
        SandboxEnvironment(None).execute("while True: pass", {})
    assert isinstance(info.value, Exception)
