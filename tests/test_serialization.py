"""The stored state: what state_to_json writes must be what SpiffWorkflow's own converter writes, dump after dump."""

import json
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.task import TaskState

from engine.serialization import REGISTRY
from engine.serialization import STATE_FORMAT
from engine.serialization import state_to_json
from engine.serialization import workflow_from_json
from processes.parser import DealflowParser
from tests.factories import actor
from tests.factories import deploy

BPMN = Path(__file__).parent / "bpmn"
ALICE = actor("alice", groups=("sales",))


def specs(*files: str, process: str):
    parser = DealflowParser()
    for name in files:
        parser.add_bpmn_file(str(BPMN / name))
    return parser.get_spec(process), parser.get_subprocess_specs(process)


def stock_state(workflow) -> dict:
    """The state as written before per-task caching: the whole workflow through the registry, then json."""
    dct = REGISTRY.convert(workflow)
    dct["format"] = STATE_FORMAT
    return json.loads(json.dumps(dct, separators=(",", ":")))


def canonical(state: str | dict) -> str:
    """The state as sorted JSON text: type-exact (True is not 1, 5.0 is not 5), unlike comparing parsed dicts."""
    return json.dumps(json.loads(state) if isinstance(state, str) else state, sort_keys=True)


def ready_user_tasks(workflow):
    return [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]


def approval(items):
    spec, subs = specs("approvals.bpmn", process="approvals")
    workflow = BpmnWorkflow(spec, subs)
    workflow.task_tree.data["items"] = items
    workflow.do_engine_steps()
    return workflow, spec, subs


def test_every_dump_of_a_multi_instance_approval_matches_the_stock_state():
    # Each completion merges the child's data into the multi-instance parent, which shifts the other children's
    # deltas: reused task texts must follow, or a reload would hand a task its sibling's item.
    workflow, spec, subs = approval([{"sku": f"SKU-{n}", "qty": n} for n in range(6)])
    assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))
    for task in ready_user_tasks(workflow):
        task.data["ok"] = True
        task.run()
        workflow.do_engine_steps()
        assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))
    assert workflow.is_completed()


def test_changes_without_a_state_change_reach_the_next_dump():
    # What set_variables does (new values on open tasks) and what DeepMerge does (nested values changed in
    # place) leave every task's state and timestamp alone; the dump must still see them.
    workflow, _, _ = approval([{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}])
    state_to_json(workflow)
    first, second = ready_user_tasks(workflow)
    first.data["owner"] = "bob"
    second.data["item"]["qty"] = 5  # in place: the same dict object, other contents
    assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))
    first.data["owner"] = "carol"
    second.data["item"]["qty"] = 5.0  # equal to 5, but JSON writes 5.0: a reload must see the float
    text = state_to_json(workflow)
    assert canonical(text) == canonical(stock_state(workflow))
    assert '"qty":5.0' in text
    first.data["flag"] = 1
    state_to_json(workflow)
    first.data["flag"] = True  # equal to 1 in Python, not in JSON
    assert '"flag":true' in state_to_json(workflow)


def test_a_reloaded_workflow_dumps_the_same_and_finishes():
    workflow, spec, subs = approval(["chair", "desk", "lamp"])
    ready_user_tasks(workflow)[1].data["ok"] = True
    ready_user_tasks(workflow)[1].run()
    workflow.do_engine_steps()
    text = state_to_json(workflow)
    loaded = workflow_from_json(text, spec, subs, workflow.script_engine)
    assert json.loads(state_to_json(loaded)) == json.loads(text)
    assert sorted(t.data["item"] for t in ready_user_tasks(loaded)) == ["chair", "lamp"]
    for task in ready_user_tasks(loaded):
        task.run()
        loaded.do_engine_steps()
    assert loaded.is_completed()


def test_a_state_written_by_the_old_whole_workflow_dump_still_loads():
    # States stored before per-task caching were json.dumps(REGISTRY.convert(workflow)) with the same format tag.
    workflow, spec, subs = approval(["chair", "desk"])
    old_text = json.dumps(stock_state(workflow), separators=(",", ":"))
    assert json.loads(old_text)["format"] == "dealflow-state-1"
    loaded = workflow_from_json(old_text, spec, subs, workflow.script_engine)
    assert sorted(t.data["item"] for t in ready_user_tasks(loaded)) == ["chair", "desk"]
    assert canonical(state_to_json(loaded)) == canonical(stock_state(loaded))


def test_a_call_activity_state_matches_the_stock_state_and_reloads():
    # Sub-processes carry their own task maps; each goes through the same cache.
    spec, subs = specs("order_caller.bpmn", "contract_review.bpmn", process="order_caller")
    workflow = BpmnWorkflow(spec, subs)
    workflow.do_engine_steps()
    assert workflow.subprocesses
    for _ in range(10):
        text = state_to_json(workflow)
        assert canonical(text) == canonical(stock_state(workflow))
        workflow = workflow_from_json(text, spec, subs, workflow.script_engine)
        ready = ready_user_tasks(workflow)
        if not ready:
            break
        ready[0].run()
        workflow.do_engine_steps()
    assert workflow.is_completed()
    assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))


def test_a_cached_approval_and_a_reloaded_one_store_the_same_state(session_factory, clock, script_pool):
    # The workflow cache keeps one workflow object across commands (and with it the cached task texts); a
    # second engine without the cache reads every step back from the database. Both must store what the
    # stock converter writes.
    from engine.engine import Engine
    from engine.models import ProcessInstance

    deploy(session_factory, "approvals.bpmn")
    cached = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=8)
    plain = Engine(session_factory, clock=clock, script_pool=script_pool)
    view = cached.start_instance("approvals", actor=ALICE, variables={"items": ["chair", "desk", "lamp", "sofa"]})
    for n, task in enumerate(view.open_tasks):
        view = (cached if n % 2 == 0 else plain).complete_task(task.id, actor=ALICE, data={"ok": True})
        with session_factory() as session:
            text = session.get(ProcessInstance, view.id).state_json
        spec, subs = specs("approvals.bpmn", process="approvals")
        loaded = workflow_from_json(text, spec, subs, None)
        assert canonical(text) == canonical(stock_state(loaded))
    assert view.status == "completed"
