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


def state_to_json(workflow: BpmnWorkflow) -> str:
    """The whole state as one document: the head with every task inline, what StateOnlyWorkflowConverter writes
    (tests compare it with the stock converter's; the bench's ceilings persist it). Records nothing."""
    entries = TASK_ROWS.rows(workflow).entries
    tasks = {key: [f'"{task.id}":{entries[task][1]}' for task in wf.tasks.values()] for key, wf in _workflows(workflow)}

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


# A task's stored row as the dump knows it: (fingerprint key or None when loaded and not compared yet, body,
# the children's ids as text or None, seq).
Entry = tuple[tuple | None, str, list[str] | None, int]


@dataclass
class _Rows:
    entries: dict[Any, Entry]
    upserts: list[dict[str, Any]]
    deletes: list[str]
    next_seq: int


class TaskRows:
    """Each task's row as stored, per workflow object, so that a dump encodes and writes only what changed.

    SpiffWorkflow's task converter writes a task's data as a delta against its parent's data, so a task's text
    depends on the task's own fields and on its parent's data; both are compared on every dump (a multi-instance
    child sees every merge into its parent). Scalars are compared as they are; the delta and the internal data
    by a type-exact fingerprint (`_content_of`: True is not 1, 1.0 is not 1, and key order counts). A task whose
    fingerprint is unchanged keeps its text; the others are encoded as the stock converter would (`_task_json`),
    and written if the text differs from the stored one. A workflow just loaded starts from the rows it was read
    from (`seed`), so its first dump writes only what the command changed, too.
    The comparison is O(tasks) in cheap steps; converting, encoding and writing are O(changed tasks).
    """

    def __init__(self):
        # Entries are keyed by the task object (hashed by identity in C; a UUID hashes in Python, 20x dearer).
        self._stored: weakref.WeakKeyDictionary[Any, tuple[dict[Any, Entry], int]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def seed(self, workflow, entries: dict[Any, Entry], next_seq: int) -> None:
        with self._lock:
            self._stored[workflow] = (entries, next_seq)

    def record(self, workflow, rows: _Rows) -> None:
        self.seed(workflow, rows.entries, rows.next_seq)

    def rows(self, workflow) -> _Rows:
        """Every task's entry now, and the rows that differ from the stored ones."""
        with self._lock:
            before, next_seq = self._stored.get(workflow, ({}, 0))
        after: dict[Any, Entry] = {}
        upserts = []
        kept = 0
        for key_of_workflow, wf in _workflows(workflow):
            tasks = wf.tasks
            parent_id = parent = None
            for task in tasks.values():
                if task._parent is not parent_id:  # siblings share their parent's id object: one lookup for them all
                    parent_id = task._parent
                    parent = tasks.get(parent_id)
                key = (task._state, task.last_state_change, task.triggered, task.task_spec.name, parent is not None,
                       parent_id, tuple(task._children), _content_of(task, parent))
                entry = before.get(task)
                if entry is None:
                    children = [str(c) for c in key[6]]
                    entry = (key, _task_json(task, parent, children), children, next_seq)
                    next_seq += 1
                    upserts.append({"id": str(task.id), "workflow": key_of_workflow, "seq": entry[3],
                                    "body": entry[1]})
                else:
                    kept += 1
                    if entry[0] != key:
                        # The children's ids as text, kept while they are the same (hundreds under a multi-instance
                        # task).
                        old = entry[0]
                        children = entry[2] if old is not None and old[6] == key[6] else [str(c) for c in key[6]]
                        body = _task_json(task, parent, children)
                        if body != entry[1]:
                            upserts.append({"id": str(task.id), "workflow": key_of_workflow, "seq": entry[3],
                                            "body": body})
                        entry = (key, body, children, entry[3])
                after[task] = entry
        deletes = [str(task.id) for task in before if task not in after] if kept != len(before) else []
        return _Rows(after, upserts, deletes, next_seq)


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


def _content_of(task, parent) -> bytes | str:
    """What the task converter writes of the task's data and internal data, as a type-exact fingerprint.

    marshal, not JSON: several times cheaper, and as exact for the JSON types (it tells True from 1 and 1.0 from
    1, and keeps key order); a value marshal cannot take (a date, a Decimal) falls back to repr. A value the
    encoder cannot write never gets a cached entry: encoding it raises, as it always did.
    """
    data = task.data
    if parent is None:
        content = (data, task.internal_data)
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
        content = (updated, [name for name in pdata if name not in data], task.internal_data)
    try:
        return marshal.dumps(content, 2)  # version 2: no back-references, so equal content gives equal bytes
    except ValueError:
        return repr(content)


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
            entries[task] = (None, body, None, seq)
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
