"""The stored state: head and task rows, applied dump after dump as the database applies them, must be what
SpiffWorkflow's own converter writes; and a dump writes only the rows that changed."""

import json
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.task import TaskState

from engine import state_store
from engine.registry import REGISTRY
from engine.serialization import STATE_FORMAT
from engine.serialization import dump_state
from engine.serialization import state_to_json
from engine.serialization import workflow_from_json
from engine.serialization import workflow_from_state
from engine.task_rows import touch
from engine.workflow import DealflowWorkflow
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


def document(head: str, rows) -> dict:
    """Head and rows ((id, workflow, seq, body) in seq order) as one whole-state document."""
    state = json.loads(head)
    tasks = {"": {}} | {key: {} for key in state["subprocesses"]}
    for task_id, key, _, body in rows:
        tasks[key][task_id] = json.loads(body)
    for key, sub in state["subprocesses"].items():
        sub["tasks"] = tasks[key]
    state["tasks"] = tasks[""]
    return state


class Stored:
    """What the database holds after each `dump_state`, applied as engine.state_store applies it."""

    def __init__(self):
        self.head, self.rows, self.written = None, {}, []

    def dump(self, workflow) -> dict:
        dump = dump_state(workflow)
        self.head = dump.head
        self.written = [row["id"] for row in dump.upserts]
        for row in dump.upserts:
            self.rows[row["id"]] = (row["id"], row["workflow"], row["seq"], row["body"])
        for task_id in dump.deletes:
            del self.rows[task_id]
        return document(self.head, self.ordered())

    def ordered(self):
        return sorted(self.rows.values(), key=lambda row: row[2])

    def load(self, spec, subs, script_engine=None):
        return workflow_from_state(self.head, self.ordered(), spec, subs, script_engine)


def ready_user_tasks(workflow):
    return [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]


def approval(items, workflow_class=BpmnWorkflow):
    spec, subs = specs("approvals.bpmn", process="approvals")
    workflow = workflow_class(spec, subs)
    workflow.task_tree.data["items"] = items
    workflow.do_engine_steps()
    return workflow, spec, subs


@pytest.mark.parametrize("items", [6, 40])
def test_every_dump_of_a_multi_instance_approval_matches_the_stock_state(items):
    # Each completion merges the child's data into the multi-instance parent, which shifts the other children's
    # deltas: reused task texts must follow, or a reload would hand a task its sibling's item. At 40 items the
    # parent's children and merged ids are long lists, whose texts are kept and extended between dumps.
    workflow, spec, subs = approval([{"sku": f"SKU-{n}", "qty": n} for n in range(items)])
    stored = Stored()
    assert canonical(stored.dump(workflow)) == canonical(stock_state(workflow))
    assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))
    for task in ready_user_tasks(workflow):
        task.data["ok"] = True
        task.run()
        workflow.do_engine_steps()
        assert canonical(stored.dump(workflow)) == canonical(stock_state(workflow))
        assert canonical(state_to_json(workflow)) == canonical(stock_state(workflow))
    assert workflow.is_completed()


def test_changes_without_a_state_change_reach_the_next_dump_when_touched():
    # What set_variables does (new values on open tasks), and a value changed in place, leave every task's state
    # and timestamp alone: the command touches the tasks, and the dump compares their data.
    workflow, _, _ = approval([{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}])
    stored = Stored()
    stored.dump(workflow)
    first, second = ready_user_tasks(workflow)
    touch(workflow, [first, second])
    first.data["owner"] = "bob"
    second.data["item"]["qty"] = 5  # in place: the same dict object, other contents
    assert canonical(stored.dump(workflow)) == canonical(stock_state(workflow))
    assert sorted(stored.written) == sorted([str(first.id), str(second.id)])
    touch(workflow)  # every task
    first.data["owner"] = "carol"
    second.data["item"]["qty"] = 5.0  # equal to 5, but JSON writes 5.0: a reload must see the float
    assert canonical(stored.dump(workflow)) == canonical(stock_state(workflow))
    assert '"qty":5.0' in stored.rows[str(second.id)][3]
    touch(workflow, [first])
    first.data["flag"] = 1
    stored.dump(workflow)
    touch(workflow, [first])
    first.data["flag"] = True  # equal to 1 in Python, not in JSON
    stored.dump(workflow)
    assert stored.written == [str(first.id)] and '"flag":true' in stored.rows[str(first.id)][3]


def test_an_untouched_change_to_a_quiet_task_fails_the_verified_dump():
    # A ready user task is quiet: a dump does not compare its data unless it was touched. The suite runs every
    # dump verified, so a command that forgets to touch fails its tests instead of storing a stale row.
    workflow, _, _ = approval([{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}])
    stored = Stored()
    stored.dump(workflow)
    ready_user_tasks(workflow)[0].data["owner"] = "bob"
    with pytest.raises(AssertionError, match="changed without touching it"):
        stored.dump(workflow)


@pytest.mark.parametrize(("before", "after", "changed"), [
    # A value changed inside is a changed key; one that came or went too.
    ({"items": [{"qty": 1}], "ok": True}, {"items": [{"qty": 2}], "ok": True}, {"items"}),
    ({"items": [1]}, {"items": [1], "item": 2}, {"item"}),
    ({"items": [1], "item": 2}, {"items": [1]}, {"item"}),
    # Equal values are unchanged, even of another type: a child's delta compares with !=, so it cannot move.
    ({"n": 1, "l": [1.0]}, {"n": True, "l": [1]}, set()),
    # Keys that stayed but moved: every key (a delta lists its deletions in the parent's key order).
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}, "all"),
])
def test_a_parent_snapshot_tells_the_keys_where_a_childs_delta_can_change(before, after, changed):
    # A task with children keeps a snapshot of its data (engine.task_rows._snapshot): its quiet children are
    # looked at only at the keys it tells.
    from engine.task_rows import _ALL
    from engine.task_rows import _snapshot

    keys, snap = _snapshot(before, None)
    assert keys is _ALL and snap == before
    keys, _ = _snapshot(after, snap)
    assert keys == (_ALL if changed == "all" else changed)


def test_a_parent_snapshot_sees_a_change_made_in_place():
    from engine.task_rows import _snapshot

    data = {"items": [{"sku": "A", "qty": 1}], "ok": True}
    _, snap = _snapshot(data, None)
    data["items"][0]["qty"] = 2  # the snapshot holds copies: the change shows against them
    keys, snap = _snapshot(data, snap)
    assert keys == {"items"} and snap["items"] == [{"sku": "A", "qty": 2}] and snap["items"] is not data["items"]


def test_a_reloaded_workflow_dumps_the_same_and_finishes():
    workflow, spec, subs = approval(["chair", "desk", "lamp"])
    ready_user_tasks(workflow)[1].data["ok"] = True
    ready_user_tasks(workflow)[1].run()
    workflow.do_engine_steps()
    stored = Stored()
    text = canonical(stored.dump(workflow))
    loaded = stored.load(spec, subs, workflow.script_engine)
    assert canonical(stored.dump(loaded)) == text
    assert stored.written == []  # a loaded workflow's rows are what was read
    assert [t.id for t in loaded.tasks.values()] == [t.id for t in workflow.tasks.values()]  # in the same order
    assert canonical(workflow_from_json(state_to_json(workflow), spec, subs, None).task_tree.data) == canonical(
        workflow.task_tree.data)
    assert sorted(t.data["item"] for t in ready_user_tasks(loaded)) == ["chair", "lamp"]
    for task in ready_user_tasks(loaded):
        task.run()
        loaded.do_engine_steps()
    assert loaded.is_completed()


def test_a_state_written_by_the_old_whole_workflow_dump_still_loads():
    # States stored before per-task caching were json.dumps(REGISTRY.convert(workflow)) with the same format tag.
    workflow, spec, subs = approval(["chair", "desk"])
    old_text = json.dumps(stock_state(workflow) | {"format": "dealflow-state-1"}, separators=(",", ":"))
    loaded = workflow_from_json(old_text, spec, subs, workflow.script_engine)
    assert sorted(t.data["item"] for t in ready_user_tasks(loaded)) == ["chair", "desk"]
    assert canonical(state_to_json(loaded)) == canonical(stock_state(loaded))


def test_a_call_activity_state_matches_the_stock_state_and_reloads():
    # Sub-processes carry their own task maps; each goes through the same cache.
    spec, subs = specs("order_caller.bpmn", "contract_review.bpmn", process="order_caller")
    workflow = BpmnWorkflow(spec, subs)
    workflow.do_engine_steps()
    assert workflow.subprocesses
    stored = Stored()
    for _ in range(10):
        assert canonical(stored.dump(workflow)) == canonical(stock_state(workflow))
        workflow = stored.load(spec, subs, workflow.script_engine)
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

    deploy(session_factory, "approvals.bpmn")
    cached = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=8)
    plain = Engine(session_factory, clock=clock, script_pool=script_pool)
    view = cached.start_instance("approvals", actor=ALICE, variables={"items": ["chair", "desk", "lamp", "sofa"]})
    for n, task in enumerate(view.open_tasks):
        view = (cached if n % 2 == 0 else plain).complete_task(task.id, actor=ALICE, data={"ok": True})
        with session_factory() as session:
            head, rows = state_store.read(session, view.id)
        spec, subs = specs("approvals.bpmn", process="approvals")
        loaded = workflow_from_state(head, rows, spec, subs, None)
        assert canonical(document(head, rows)) == canonical(stock_state(loaded))
    assert view.status == "completed"


@pytest.mark.parametrize("workflow_class", [BpmnWorkflow, DealflowWorkflow])
def test_a_completion_writes_only_the_rows_it_changed_however_many_items(workflow_class):
    # The first merge into the multi-instance parent changes every sibling's delta (the parent gains "ok"); after
    # it, a completion writes the completed child and the parent, whatever the number of items. Dealflow's
    # workflow class has a tracker: its dumps look only at the tasks it saw move (and those that were not quiet).
    from engine.task_rows import TASK_ROWS

    for items in (5, 60):
        workflow, _, _ = approval([{"sku": f"SKU-{n}", "qty": n} for n in range(items)], workflow_class)
        stored = Stored()
        stored.dump(workflow)
        assert len(stored.written) == len(workflow.tasks)  # the first dump writes every task
        parent = ready_user_tasks(workflow)[0].parent
        for n, task in enumerate(ready_user_tasks(workflow)):
            task.data["ok"] = True
            task.run()
            workflow.do_engine_steps()
            assert TASK_ROWS.stored(workflow).tracks(workflow) == (workflow_class is DealflowWorkflow)
            stock = canonical(stock_state(workflow))
            assert canonical(stored.dump(workflow)) == stock
            if 0 < n < items - 1:
                assert sorted(stored.written) == sorted([str(task.id), str(parent.id)]), n


def test_rows_of_tasks_that_left_the_workflow_are_deleted():
    # Resetting to the start event removes the sub-process and every task after the event; running on makes a new
    # sub-process.
    spec, subs = specs("order_caller.bpmn", "contract_review.bpmn", process="order_caller")
    workflow = BpmnWorkflow(spec, subs)
    workflow.do_engine_steps()
    stored = Stored()
    stored.dump(workflow)
    old_sub = str(next(iter(workflow.subprocesses)))
    assert any(row[1] == old_sub for row in stored.rows.values())
    start = next(t for t in workflow.get_tasks() if t.task_spec.bpmn_id == "caller_start")
    workflow.reset_from_task_id(start.id)
    assert canonical(stored.dump(workflow)) == canonical(stock_state(workflow))
    assert not any(row[1] for row in stored.rows.values())
    workflow.do_engine_steps()
    assert canonical(stored.dump(workflow)) == canonical(stock_state(workflow))
    assert {row[1] for row in stored.rows.values()} == {"", str(next(iter(workflow.subprocesses)))} != {"", old_sub}
    loaded = stored.load(spec, subs)
    ready_user_tasks(loaded)[0].run()
    loaded.do_engine_steps()
    assert loaded.is_completed()


@pytest.mark.parametrize("payload", [
    [{"n": n} for n in range(20)],  # records: changed in place, they keep their identity
    [[n] for n in range(20)],
])
def test_a_long_internal_list_changed_inside_its_items_is_written(payload):
    # A long list of plain scalars is kept as text and extended by its tail; any other long list is encoded whole
    # every time, so a change inside one of its items reaches the row.
    workflow, _, _ = approval(["a", "b"], DealflowWorkflow)
    stored = Stored()
    stored.dump(workflow)
    parent = ready_user_tasks(workflow)[0].parent  # not quiet: checked in full at every dump
    parent.internal_data["payload"] = payload
    stored.dump(workflow)
    parent.internal_data["payload"][0][next(iter(payload[0])) if isinstance(payload[0], dict) else 0] = 99
    assert canonical(stored.dump(workflow)) == canonical(stock_state(workflow))
    assert str(parent.id) in stored.written


def test_workflows_that_were_dumped_are_released():
    # What a dump keeps of a workflow (its rows, its tracker) lives on the workflow object: a map keyed by
    # workflows, even weakly, would keep every one alive through the tasks its entries hold.
    import gc
    import weakref

    refs = []
    for _ in range(3):
        workflow, _, _ = approval(["a", "b", "c"], DealflowWorkflow)
        dump_state(workflow)
        ready_user_tasks(workflow)[0].run()
        workflow.do_engine_steps()
        dump_state(workflow)
        refs.append(weakref.ref(workflow))
        del workflow
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
