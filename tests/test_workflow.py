"""DealflowWorkflow answers SpiffWorkflow's per-step tree walks from the task map: it must run every diagram exactly
as the stock BpmnWorkflow does, step for step, and its multi-instance tasks must store the stock state."""

import json
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import TaskState

from engine.messages import deliver
from engine.runtime import Snapshot
from engine.runtime import Tracked
from engine.runtime import diff
from engine.runtime import iter_tasks
from engine.runtime import snapshot
from engine.serialization import dump_state
from engine.serialization import state_to_json
from engine.serialization import workflow_from_json
from engine.workflow import DealflowWorkflow
from engine.workflow import share_parent_values
from processes.parser import DealflowParser
from tests.test_serialization import canonical
from tests.test_serialization import stock_state

ROOT = Path(__file__).resolve().parent.parent
DIAGRAMS = sorted([*(ROOT / "tests" / "bpmn").glob("*.bpmn"), *(ROOT / "bpmn").glob("*.bpmn"),
                   ROOT / "bench" / "bench_process.bpmn"])
# What every user task is completed with, and what the processes start with: enough for their gateways.
FORM = {"approved": True, "ok": True, "signed": True, "contract_no": "C-1", "reason": "price", "won": True}
START = {"trace": [], "amount": 20_000, "customer": "ACME", "items": [{"sku": f"SKU-{n}", "qty": n} for n in range(4)],
         "discount": 5, "owner": "alice", "email": "a@example.com"}


def processes():
    for path in DIAGRAMS:
        parser = DealflowParser()
        try:
            parser.add_bpmn_files([str(p) for p in DIAGRAMS if p.parent == path.parent])
            ids = [pid for pid in parser.get_process_ids() if pid in path.read_text()]
        except Exception:  # noqa: BLE001 - a diagram that does not parse with its neighbours parses alone
            parser = DealflowParser()
            parser.add_bpmn_file(str(path))
            ids = parser.get_process_ids()
        for pid in ids:
            yield pytest.param(parser, pid, id=f"{path.parent.name}/{path.stem}:{pid}")


def trace(workflow) -> list:
    """Every task in the tree's order, with its state and data, and the workflow's own flags."""
    return [(t.task_spec.name, t.state, json.dumps(t.data, sort_keys=True, default=str), t.triggered)
            for t in workflow.get_tasks()] + [workflow.completed, workflow.is_completed()]


def step(workflow, action) -> str:
    try:
        action()
        workflow.do_engine_steps()
    except (SpiffWorkflowException, KeyError, TypeError, NameError) as exc:
        return type(exc).__name__
    return "ok"


# Diagrams that exist to be refused (tests/test_processes_deploy.py): they cannot start, so there is no run to compare.
CANNOT_START = {"no_start"}


def test_the_diagrams_that_cannot_start_are_refused_by_the_parser():
    refused = [p.values for p in processes() if p.values[1] in CANNOT_START]
    assert {process_id for _, process_id in refused} == CANNOT_START
    for parser, process_id in refused:
        with pytest.raises(ValidationException, match="No start event"):
            parser.get_spec(process_id)


@pytest.mark.parametrize(("parser", "process_id"), [p for p in processes() if p.values[1] not in CANNOT_START])
def test_dealflow_workflow_runs_every_diagram_as_the_stock_one(parser, process_id):
    spec, subs = parser.get_spec(process_id), parser.get_subprocess_specs(process_id)
    runs = []
    for cls in (BpmnWorkflow, DealflowWorkflow):
        workflow = cls(spec, subs)
        workflow.task_tree.data.update(json.loads(json.dumps(START)))
        steps = [step(workflow, lambda: None)]
        traces = [trace(workflow)]
        for _ in range(40):
            ready = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
            if not ready:
                break
            task = ready[0]
            steps.append(step(workflow, lambda task=task: (task.data.update(FORM), task.run())))
            traces.append(trace(workflow))
        runs.append((steps, traces))
    assert runs[0] == runs[1]


def test_multi_instance_tasks_that_share_their_parents_values_store_and_reload_the_stock_state():
    parser = DealflowParser()
    parser.add_bpmn_file(str(ROOT / "tests" / "bpmn" / "approvals.bpmn"))
    spec, subs = parser.get_spec("approvals"), parser.get_subprocess_specs("approvals")
    workflow = DealflowWorkflow(spec, subs)
    workflow.task_tree.data["items"] = [{"sku": f"SKU-{n}", "qty": n} for n in range(5)]
    workflow.do_engine_steps()
    share_parent_values(iter_tasks(workflow))
    children = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
    parent = workflow.tasks[children[0]._parent]
    assert all(child.data["items"] is parent.data["items"] for child in children)
    assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))
    for n, child in enumerate(children):
        child.data["ok"] = n % 2 == 0
        child.run()
        workflow.do_engine_steps()
        assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))
        if n == 2:  # a reload mid-way stores the same and shares again
            workflow = workflow_from_json(state_to_json(workflow), spec, subs, None)
            share_parent_values(iter_tasks(workflow))
            assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))
            children[3:] = [workflow.get_task_from_id(c.id) for c in children[3:]]
    assert workflow.is_completed()
    assert workflow.last_task.data["items"] == [{"sku": f"SKU-{n}", "qty": n} for n in range(5)]


def test_a_nested_value_changed_in_place_on_the_parent_reaches_the_next_dump():
    # Shared objects are the parent's own: a change the library makes inside them in place (DeepMerge does)
    # shows in every task that shares them, exactly as a reload would show it.
    parser = DealflowParser()
    parser.add_bpmn_file(str(ROOT / "tests" / "bpmn" / "approvals.bpmn"))
    workflow = DealflowWorkflow(parser.get_spec("approvals"), parser.get_subprocess_specs("approvals"))
    workflow.task_tree.data["items"] = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]
    workflow.do_engine_steps()
    share_parent_values(iter_tasks(workflow))
    state_to_json(workflow)
    first, second = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
    workflow.tasks[first._parent].data["items"][1]["qty"] = 2.0
    text = state_to_json(workflow)
    assert canonical(text) == canonical(stock_state(workflow))
    assert '"qty":2.0' in text


def test_a_merge_never_changes_what_an_earlier_merge_took_from_another_task():
    # A multi-instance parent without an output collection merges each child's data into its own (DeepMerge). The
    # stock merge shallow-copies what it takes, then merges the next child's values into those copies in place:
    # the first child's nested price would become the second's, in the finished first child's data.
    # engine.workflow's merge copies on write.
    from SpiffWorkflow.util.deep_merge import DeepMerge

    parent = {"items": 2}
    first = {"item": {"sku": "A", "price": {"amount": 1}}, "ok": True}
    second = {"item": {"sku": "B", "price": {"amount": 2}}, "ok": True}
    DeepMerge.merge(parent, first)
    DeepMerge.merge(parent, second)
    assert first == {"item": {"sku": "A", "price": {"amount": 1}}, "ok": True}
    assert parent == {"items": 2, "item": {"sku": "B", "price": {"amount": 2}}, "ok": True}


@pytest.mark.parametrize(("a", "b", "merged"), [
    # The stock merge of lists appends what is new, then trims to the length of b.
    ({"x": {"y": 1, "z": [1, 2]}}, {"x": {"y": 2, "z": [2, 3]}, "w": {}}, {"x": {"y": 2, "z": [1, 2]}, "w": {}}),
    ({"x": {"z": [1]}}, {"x": {"z": [1, 3]}}, {"x": {"z": [1, 3]}}),
    ({"l": [{"k": 1}, {"k": 2}]}, {"l": [{"k": 3}]}, {"l": [{"k": 3}]}),
    ({"s": "a"}, {"s": {"t": 1}}, {"s": {"t": 1}}),
])
def test_the_copy_on_write_merge_gives_the_stock_values_and_leaves_its_inputs_alone(a, b, merged):
    from copy import deepcopy

    from SpiffWorkflow.util.deep_merge import DeepMerge

    a_nested, b_before = dict(a), deepcopy(b)
    nested_before = deepcopy(a_nested)
    result = DeepMerge.merge(a, b)
    assert result is a and result == merged
    assert b == b_before  # nothing taken from b is changed
    for key, value in nested_before.items():
        assert a_nested[key] == value  # the nested objects a held before are not changed in place


@pytest.mark.parametrize("order", ["in order", "reversed", "shuffled", "one cancelled"])
def test_multi_instance_completion_is_answered_as_the_stock_method_answers_it(order):
    # engine.workflow's children_complete starts from the child found unfinished last time (the stock method
    # lists every child on every merge): whatever the order the items are approved in, it answers the same.
    import random

    from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import ParallelMultiInstanceTask

    from engine.workflow import _stock_children_complete

    parser = DealflowParser()
    parser.add_bpmn_file(str(ROOT / "tests" / "bpmn" / "approvals.bpmn"))
    workflow = DealflowWorkflow(parser.get_spec("approvals"), parser.get_subprocess_specs("approvals"))
    workflow.task_tree.data["items"] = [{"sku": f"SKU-{n}", "qty": n} for n in range(12)]
    workflow.do_engine_steps()
    children = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
    parent = workflow.tasks[children[0]._parent]
    spec = parent.task_spec
    assert isinstance(spec, ParallelMultiInstanceTask)
    if order == "reversed":
        children.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(children)
    elif order == "one cancelled":
        children[5].cancel()
    answers = []
    for child in children:
        for _ in range(2):  # the second time from the remembered child
            answers.append(spec.children_complete(parent))
            assert answers[-1] == _stock_children_complete(spec, parent)
        if child.state == TaskState.READY:
            child.data["ok"] = True
            child.run()
            workflow.do_engine_steps()
    assert spec.children_complete(parent) == _stock_children_complete(spec, parent) == (order != "one cancelled")
    assert workflow.is_completed() == (order != "one cancelled")
    assert not any(answers)


def test_a_commands_changes_come_from_the_tracker_as_a_walk_of_the_task_map_finds_them():
    """A stored workflow with no sub-process tells a command's changes from its tracker (`runtime.Tracked`): the
    user task an interrupting message removes is cancelled, the path taken is completed. The suite also compares
    every tracked diff with a walk (engine.workflow.VERIFY); here the expected changes are written out."""
    parser = DealflowParser()
    parser.add_bpmn_file(str(ROOT / "tests" / "bpmn" / "messages.bpmn"))
    workflow = DealflowWorkflow(parser.get_spec("contract_signing"), parser.get_subprocess_specs("contract_signing"))
    workflow.do_engine_steps()
    assert isinstance(snapshot(workflow), Snapshot)  # never stored: nothing to sort the moved tasks by
    dump_state(workflow)
    send = next(t for t in workflow.tasks.values() if t.task_spec.name == "Send_contract")
    assert send.state == TaskState.READY

    before = snapshot(workflow)
    assert isinstance(before, Tracked)
    assert deliver(workflow, "message", "deal withdrawn", {"reason": "budget"}) == 1
    workflow.do_engine_steps()
    changes = diff(before, workflow)

    assert changes.cancelled_human_ids == [send.id]
    assert [t.task_spec.name for t in changes.completed] == ["Withdrawn", "End_withdrawn"]
    assert not changes.new_ready_human and not changes.errored
    assert workflow.is_completed()
    # Until the next dump the tracker holds this command's moves: the next command snapshots the task map instead.
    assert isinstance(snapshot(workflow), Snapshot)
    dump_state(workflow)
    assert isinstance(snapshot(workflow), Tracked)
