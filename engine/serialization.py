"""Turn specs and workflow state into JSON and back.

A definition's spec is serialized once, at deploy time. An instance stores only its state (tasks and data);
on load the cached spec objects are plugged back in, which is what makes a command cheap.

The state is written after every command, so its cost per command must not grow with the instance. It is stored
as a head (the process_instance row: workflow data, events, sub-process heads) and one row per task
(instance_task_state), whose body is what the stock task converter writes for it. Each task's row is kept
between dumps of the same workflow object (see `TaskRows`); a dump re-encodes only the tasks whose content
changed and writes only the rows whose text changed. Head and rows together are the stock state, byte for byte
the same content.
"""

import json
import marshal
import threading
import weakref
from collections.abc import Iterable
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import ModuleType
from typing import Any
from typing import NamedTuple
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.event_definition import TimerConditionalEventDefinitionConverter
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import WorkflowConverter
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG as CAMUNDA_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.task import TaskState
from SpiffWorkflow.util.deep_merge import DeepMerge

from engine.timers import CLOCKED
from engine.workflow import DealflowWorkflow

STATE_FORMAT = "dealflow-state-2"


class StateOnlyWorkflowConverter(BpmnWorkflowConverter):
    """The stock converter minus the embedded specs, which live on the definition row."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None):
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _build_registry():
    config = deepcopy(CAMUNDA_CONFIG)
    # Camunda external tasks are plain ServiceTask specs; the stock config has no converter for them.
    config[ServiceTask] = BpmnTaskSpecConverter
    config[BpmnWorkflow] = StateOnlyWorkflowConverter
    for timer_class in CLOCKED.values():
        config[timer_class] = TimerConditionalEventDefinitionConverter
    registry = BpmnWorkflowSerializer.configure(config)
    # Dealflow's workflow class is written and read as the stock one: the state stays SpiffWorkflow's own, and the
    # rows stored before the class existed load as it.
    StateOnlyWorkflowConverter(DealflowWorkflow, registry, typename=registry.typenames[BpmnWorkflow])
    # Typed form values (date fields, money) must survive a round trip as what they are.
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    return registry


REGISTRY = _build_registry()


def specs_to_json(spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec]) -> str:
    """Serialize a process spec and the specs of everything it calls, for the definition row."""
    return json.dumps(
        {
            "spec": REGISTRY.convert(spec),
            "subprocess_specs": {name: REGISTRY.convert(sub) for name, sub in subprocess_specs.items()},
        },
        separators=(",", ":"),
    )


def specs_from_json(text: str) -> tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]:
    dct = json.loads(text)
    spec = REGISTRY.restore(dct["spec"])
    subs = {name: REGISTRY.restore(sub) for name, sub in dct["subprocess_specs"].items()}
    return spec, subs


@dataclass
class StateDump:
    """What a dump changed: the head (process_instance.state_json) and the task rows to write and to delete."""

    head: str
    upserts: list[dict[str, Any]]  # {"id", "workflow", "seq", "body"}: instance_task_state rows
    deletes: list[str]  # ids of tasks gone from the workflow


def dump_state(workflow: BpmnWorkflow) -> StateDump:
    """The head and the task rows whose text changed since the last dump of this workflow object (or since it was
    loaded); what it returns is from then on taken as stored. Call it once per write of the state."""
    rows = TASK_ROWS.rows(workflow)
    TASK_ROWS.record(workflow, rows)
    return StateDump(_head_json(workflow), rows.upserts, rows.deletes)


def touch(workflow: BpmnWorkflow, tasks: Iterable | None = None) -> None:
    """Announce data put on `tasks` (None: on any task) of `workflow` outside SpiffWorkflow's run of them, before
    the next dump (see TaskRows): a completion's form values, changed process data, a message's payload."""
    TASK_ROWS.touch(workflow, tasks)


def state_to_json(workflow: BpmnWorkflow) -> str:
    """The whole state as one document: the head with every task inline, what StateOnlyWorkflowConverter writes
    (tests compare it with the stock converter's; the bench's ceilings persist it). Records nothing."""
    entries = TASK_ROWS.rows(workflow).entries
    tasks = {key: [f'"{task.id}":{entries[task].body}' for task in wf.tasks.values()]
             for key, wf in _workflows(workflow)}

    def with_tasks(head: dict[str, Any], key: str) -> str:
        return _close(_ENCODE(head), f',"tasks":{{{",".join(tasks.get(key, ()))}}}')

    subprocesses = ",".join(f'"{key}":{with_tasks(_subprocess_head(sub), key)}'
                            for key, sub in _workflows(workflow) if key)
    own = ",".join(tasks.get("", ()))
    return _close(_ENCODE(_top_head(workflow)), f',"subprocesses":{{{subprocesses}}},"tasks":{{{own}}}')


def _head_json(workflow: BpmnWorkflow) -> str:
    """StateOnlyWorkflowConverter.to_dict without any task: the instance row's part of the state."""
    head = _top_head(workflow)
    head["subprocesses"] = {key: _subprocess_head(sub) for key, sub in _workflows(workflow) if key}
    return _ENCODE(head)


def _top_head(workflow: BpmnWorkflow) -> dict[str, Any]:
    head = _workflow_head(workflow)
    head["bpmn_events"] = REGISTRY.convert(workflow.bpmn_events)
    head["format"] = STATE_FORMAT
    return head


def _workflow_head(workflow) -> dict[str, Any]:
    """WorkflowConverter.to_dict without the tasks (SpiffWorkflow 3.2), with the registry's typename."""
    return {
        "data": REGISTRY.convert(REGISTRY.clean(workflow.data)),
        "correlations": workflow.correlations,
        "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
        "success": workflow.success,
        "completed": workflow.completed,
        "root": str(workflow.task_tree.id),
        "typename": REGISTRY.typenames[type(workflow)],
    }


def _subprocess_head(sub) -> dict[str, Any]:
    """BpmnSubWorkflowConverter.to_dict without the tasks."""
    head = _workflow_head(sub)
    head["parent_task_id"] = str(sub.parent_task_id)
    head["spec"] = sub.spec.name
    return head


def _close(head_json: str, members: str) -> str:
    """Append members (',"key":value' text) to an encoded, non-empty JSON object."""
    return head_json[:-1] + members + "}"


# json.dumps(dct, separators=...) builds a new encoder per call; one, built once, writes the same text.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _workflows(workflow) -> Iterator[tuple[str, Any]]:
    """(key, workflow) of the workflow and of each live sub-process: the `workflow` column of their task rows."""
    yield "", workflow
    for task_id, sub in workflow.subprocesses.items():
        yield str(task_id), sub


# A task's stored row as the dump knows it. `cheap`: the task's own fields but its data, None when loaded and not
# compared yet; `content`: the data fingerprint (`_content_of`); `delta`: the keys of its data's delta against its
# parent's ((updated, deleted), None without a parent); `sig`: its data's fingerprint per key (`_signature`), kept
# for tasks with children that are checked in full.
class Entry(NamedTuple):
    cheap: tuple | None
    content: bytes | str | None
    body: str
    children: list[str] | None  # the children's ids as text
    seq: int
    delta: tuple[frozenset, frozenset] | None
    sig: dict[str, bytes | str] | None


@dataclass
class _Rows:
    entries: dict[Any, Entry]
    upserts: list[dict[str, Any]]
    deletes: list[str]
    next_seq: int
    marks: dict[Any, tuple]


_ALL = object()  # every task of the workflow is touched / every key of a task's data changed
_MISSING = object()
_QUIET_STATES = TaskState.COMPLETED | TaskState.CANCELLED


class TaskRows:
    """Each task's row as stored, per workflow object, so that a dump encodes and writes only what changed.

    SpiffWorkflow's task converter writes a task's data as a delta against its parent's data, so a task's text
    depends on its own fields, its own data and its parent's data.

    A dump checks in full only the tasks that can have changed, so its cost follows what the command did, not
    the size of the instance. A *quiet* task (finished, or a ready user task) keeps its data while it stays as it
    is: nothing writes into its data. SpiffWorkflow changes data only of tasks it runs, merges into (a
    multi-instance parent, a join) or lets an event reach (waiting tasks), and its merges copy on write
    (`engine.workflow`), so no nested object of a quiet task is changed through another task. Dealflow's own
    commands that put data on a task (a completion, `set_variables`, a message payload, a handler's result)
    `touch` it first. So a dump checks in full:
    - every task that is new, not quiet, touched, or whose state, timestamp or children moved since the last dump
      (one comprehension over the task map finds them: the quiet tasks' marks are kept);
    - a quiet child of a checked task whose data changed at a key where the child's delta could change: each
      checked task with children keeps a fingerprint of its data per key (`_signature`), and its quiet children
      look only at the keys that changed (`_unaffected`).

    A full check compares the delta and the internal data by a type-exact fingerprint (`_content_of`: True is not
    1, 1.0 is not 1, and key order counts), re-encodes the task as the stock converter would (`_task_json`) when
    it changed, and writes it if the text differs from the stored one. A completion in a multi-instance approval
    thus checks the completed child and its parent in full, and each sibling at the one or two keys the merge
    changed. A workflow just loaded starts from the rows it was read from (`seed`) and checks every task once.
    With `verify`, every dump is also made by checking every task in full and must come out the same (the test
    suite runs so).
    """

    def __init__(self, verify: bool = False):
        # Keyed by the task object (hashed by identity in C; a UUID hashes in Python, 20x dearer).
        self._stored: weakref.WeakKeyDictionary[Any, _Stored] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.verify = verify

    def seed(self, workflow, entries: dict[Any, Entry], next_seq: int) -> None:
        with self._lock:
            self._stored[workflow] = _Stored(entries, {}, next_seq, set())

    def record(self, workflow, rows: _Rows) -> None:
        with self._lock:
            self._stored[workflow] = _Stored(rows.entries, rows.marks, rows.next_seq, set())

    def touch(self, workflow, tasks: Iterable | None = None) -> None:
        """Announce data put on `tasks` (None: on any task) outside SpiffWorkflow's run of them: the next dump
        checks them in full."""
        with self._lock:
            stored = self._stored.get(workflow)
            if stored is None or stored.touched is _ALL:
                return
            if tasks is None:
                stored.touched = _ALL
            else:
                stored.touched.update(tasks)

    def rows(self, workflow) -> _Rows:
        """Every task's entry now, and the rows that differ from the stored ones."""
        with self._lock:
            stored = self._stored.get(workflow) or _Stored({}, {}, 0, _ALL)
        rows = self._rows(workflow, stored, stored.touched)
        if self.verify and stored.touched is not _ALL:
            full = self._rows(workflow, stored, _ALL)
            if _written(rows) != _written(full):
                raise AssertionError(f"A dump that skipped quiet tasks wrote {_written(rows)}, not the "
                                     f"{_written(full)} of a dump that checked every task: a task's data was "
                                     "changed without touching it.")
        return rows

    def _rows(self, workflow, stored: "_Stored", touched) -> _Rows:
        before, marks = stored.entries, stored.marks
        everything = touched is _ALL
        rows = _Rows(dict(before), [], [], stored.next_seq, {} if everything else dict(marks))
        present = new = 0
        for key_of_workflow, wf in _workflows(workflow):
            tasks = wf.tasks
            present += len(tasks)
            if everything:
                todo = list(tasks.values())
            else:
                todo = [t for t in tasks.values()
                        if marks.get(t) != (t._state, t.last_state_change, tuple(t._children))]
                if touched:
                    listed = set(todo)
                    todo.extend(t for t in touched if t not in listed and tasks.get(t.id) is t)
            # The keys of its data that changed, per task checked in full (_ALL: unknown, or all).
            changed: dict[Any, Any] = {}
            for task in todo:
                new += task not in before
                changed[task] = self._check(task, tasks, key_of_workflow, rows)
            parents = [task for task in todo if task._children and changed[task]]
            while parents:
                parent = parents.pop()
                keys = changed[parent]
                for child_id in parent._children:
                    child = tasks.get(child_id)
                    if child is None or child in changed:
                        continue
                    if not child._children and _unaffected(child, parent, keys, rows.entries[child]):
                        continue
                    changed[child] = self._check(child, tasks, key_of_workflow, rows)
                    if child._children and changed[child]:
                        parents.append(child)
        if present - new != len(before):
            current = {task for _, wf in _workflows(workflow) for task in wf.tasks.values()}
            for task in before:
                if task not in current:
                    rows.deletes.append(str(task.id))
                    del rows.entries[task]
                    rows.marks.pop(task, None)
        return rows

    @staticmethod
    def _check(task, tasks, key_of_workflow: str, rows: _Rows) -> Any:
        """Check one task in full: its entry in `rows`, its row among the upserts if its text changed; returns the
        keys of its data that changed (for its children)."""
        parent = tasks.get(task._parent)
        state = task._state
        cheap = (state, task.last_state_change, task.triggered, task.task_spec.name, parent is not None,
                 task._parent, tuple(task._children))
        content, delta = _content_of(task, parent)
        entry = rows.entries.get(task)
        if entry is None:
            children = [str(c) for c in cheap[6]]
            body = _task_json(task, parent, children)
            seq = rows.next_seq
            rows.next_seq += 1
            rows.upserts.append({"id": str(task.id), "workflow": key_of_workflow, "seq": seq, "body": body})
        else:
            body, children, seq = entry.body, entry.children, entry.seq
            if entry.cheap != cheap or entry.content != content:
                # The children's ids as text, kept while they are the same (hundreds under a multi-instance task).
                if entry.cheap is None or entry.cheap[6] != cheap[6]:
                    children = [str(c) for c in cheap[6]]
                body = _task_json(task, parent, children)
                if body != entry.body:
                    rows.upserts.append({"id": str(task.id), "workflow": key_of_workflow, "seq": seq, "body": body})
        sig = _signature(task) if cheap[6] else None
        rows.entries[task] = Entry(cheap, content, body, children, seq, delta, sig)
        if state & _QUIET_STATES or (state == TaskState.READY and task.task_spec.manual):
            rows.marks[task] = (state, cheap[1], cheap[6])
        else:
            rows.marks.pop(task, None)
        if entry is None or sig is None:
            return _ALL
        return _changed_keys(entry.sig, sig)


@dataclass
class _Stored:
    entries: dict[Any, Entry]
    marks: dict[Any, tuple]  # the quiet tasks' (state, last_state_change, children) at the last dump
    next_seq: int
    touched: Any  # a set of tasks, or _ALL


def _written(rows: _Rows) -> tuple:
    return sorted((row["id"], row["body"]) for row in rows.upserts), sorted(rows.deletes)


def _signature(task) -> dict[str, bytes | str]:
    """The task's data, fingerprinted per key (type-exact, as `_content_of`)."""
    sig = {}
    for name, value in task.data.items():
        try:
            sig[name] = marshal.dumps(value, 2)
        except ValueError:
            sig[name] = repr(value)
    return sig


def _changed_keys(old: dict | None, new: dict) -> Any:
    """The keys whose value changed, appeared or went between two signatures; _ALL if unknown, or if the keys
    that stayed changed their order (a delta lists its deletions in the parent's key order)."""
    if old is None:
        return _ALL
    keys = {name for name, value in new.items() if old.get(name, _MISSING) != value}
    if list(old) != list(new):  # keys came, went or moved
        if [name for name in new if name in old] != [name for name in old if name in new]:
            return _ALL
        keys.update(name for name in old if name not in new)
    return keys


def _unaffected(task, parent, keys, entry: Entry) -> bool:
    """Whether the delta of a quiet task (its own data unchanged) against its parent's data is unchanged, the
    parent's data having changed at `keys` (_ALL: unknown) since the entry was made: at each such key, the task's
    value stays in the delta's updates, its deletions, or neither, as it was."""
    if keys is _ALL or entry.delta is None:
        return False
    data, pdata = task.data, parent.data
    updated, deleted = entry.delta
    for name in keys:
        if name in data:
            value = data[name]
            shared = pdata.get(name, _MISSING)
            if shared is _MISSING:
                now = True
            elif value is shared:
                now = value.__class__ is float and value != value
            else:
                now = bool(value != shared)
            if now is not (name in updated) or name in deleted:
                return False
        elif (name in pdata) is not (name in deleted) or name in updated:
            return False
    return True


def _task_json(task, parent, children: list[str]) -> str:
    """`_ENCODE(REGISTRY.convert(task))`, the stock TaskConverter.to_dict, with the children's ids given as text
    and the internal data converted without a Python call per plain item (a multi-instance task's list of merged
    children grows to one id per item)."""
    if parent is None:
        data, delta = task.data, {}
    else:
        data, delta = {}, {"updates": DeepMerge.get_updated_keys(parent.data, task.data),
                           "deletions": DeepMerge.get_deleted_keys(parent.data, task.data)}
    return _ENCODE({
        "id": str(task.id),
        "parent": str(task._parent) if parent is not None else None,
        "children": children,
        "last_state_change": task.last_state_change,
        "state": task._state,
        "task_spec": task.task_spec.name,
        "triggered": task.triggered,
        "internal_data": _converted(task.internal_data),
        "data": data,
        "delta": delta,
        "typename": _TASK_TYPENAME,
    })


_TASK_TYPENAME = REGISTRY.typenames[Task]
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _converted(value: Any) -> Any:
    """REGISTRY.convert(value) (clean, then convert registered types inside dicts and lists), returning plain JSON
    values as they are."""
    cls = value.__class__
    if cls in _SCALARS or (cls is list and all(item.__class__ in _SCALARS for item in value)):
        return value
    if cls is dict:
        return {key: _converted(item) for key, item in value.items()
                if not callable(item) and not isinstance(item, ModuleType)}
    return REGISTRY.convert(value)


def _content_of(task, parent) -> tuple[bytes | str, tuple[frozenset, frozenset] | None]:
    """What the task converter writes of the task's data and internal data, as a type-exact fingerprint; and the
    keys of the delta (updated, deleted), None for a task without a parent.

    marshal, not JSON: several times cheaper, and as exact for the JSON types (it tells True from 1 and 1.0 from
    1, and keeps key order); a value marshal cannot take (a date, a Decimal) falls back to repr. A value the
    encoder cannot write never gets a cached entry: encoding it raises, as it always did.
    """
    data = task.data
    if parent is None:
        content, delta = (data, task.internal_data), None
    else:
        # DeepMerge.get_updated_keys / get_deleted_keys, as TaskConverter.to_dict computes the delta; a value that
        # is its parent's own object is equal to it unless it is a NaN (share_parent_values makes that common).
        pdata = parent.data
        updated = {}
        for name, value in data.items():
            if name in pdata:
                shared = pdata[name]
                if value is shared:
                    if value.__class__ is not float or value == value:
                        continue
                elif not value != shared:
                    continue
            updated[name] = value
        deleted = [name for name in pdata if name not in data]
        content, delta = (updated, deleted, task.internal_data), (frozenset(updated), frozenset(deleted))
    try:
        return marshal.dumps(content, 2), delta  # version 2: no back-references, so equal content, equal bytes
    except ValueError:
        return repr(content), delta


TASK_ROWS = TaskRows()


def workflow_from_state(head: str, rows: Iterable[tuple[str, str, int, str]], spec: BpmnProcessSpec,
                        subprocess_specs: dict[str, BpmnProcessSpec], script_engine) -> BpmnWorkflow:
    """Rebuild a workflow from its head and its task rows ((id, workflow, seq, body), in seq order), with our script
    engine attached; its next dump writes only the rows that then differ."""
    dct = json.loads(head)
    fmt = dct.pop("format", None)
    if fmt != STATE_FORMAT:
        raise ValueError(f"Unknown workflow state format {fmt!r}; expected {STATE_FORMAT!r}.")
    members: dict[str, list[str]] = {}
    stored: dict[str, tuple[str, int]] = {}
    next_seq = 0
    for task_id, key_of_workflow, seq, body in rows:
        members.setdefault(key_of_workflow, []).append(f'"{task_id}":{body}')
        stored[task_id] = (body, seq)
        next_seq = max(next_seq, seq + 1)
    dct["tasks"] = json.loads("{" + ",".join(members.get("", ())) + "}")
    for sub_id, sub in dct["subprocesses"].items():
        sub["tasks"] = json.loads("{" + ",".join(members.get(sub_id, ())) + "}")
    workflow = _restore(dct, spec, subprocess_specs, script_engine)
    entries = {}
    for _, wf in _workflows(workflow):
        for task in wf.tasks.values():
            body, seq = stored[str(task.id)]
            entries[task] = Entry(None, None, body, None, seq, None, None)
    TASK_ROWS.seed(workflow, entries, next_seq)
    return workflow


def workflow_from_json(text: str, spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec],
                       script_engine) -> BpmnWorkflow:
    """Rebuild a workflow from a whole-state document (`state_to_json`; also a "dealflow-state-1" text, the format
    stored before task rows), with our script engine attached. Its first `dump_state` writes every task's row."""
    dct = json.loads(text)
    fmt = dct.pop("format", None)
    if fmt not in (STATE_FORMAT, "dealflow-state-1"):
        raise ValueError(f"Unknown workflow state format {fmt!r}; expected {STATE_FORMAT!r}.")
    return _restore(dct, spec, subprocess_specs, script_engine)


def _restore(dct, spec, subprocess_specs, script_engine) -> BpmnWorkflow:
    workflow = REGISTRY.restore(dct, spec=spec, subprocess_specs=subprocess_specs)
    # The serializer does not keep the script engine; without this the stock, unsandboxed eval would run.
    workflow.script_engine = script_engine
    return workflow
