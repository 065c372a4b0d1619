"""Turn specs and workflow state into JSON and back.

A definition's spec is serialized once, at deploy time. An instance stores only its state (tasks and data);
on load the cached spec objects are plugged back in, which is what makes a command cheap.

The state is written after every command, so its cost per command must not grow with the instance: each task's
JSON is kept between dumps of the same workflow object (see `TaskJsonCache`) and re-encoded only when what the
stock task converter would write for it changed. The text is the stock state, byte for byte the same content.
"""

import json
import threading
import weakref
from copy import deepcopy
from datetime import date
from decimal import Decimal
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

from engine.timers import CLOCKED

STATE_FORMAT = "dealflow-state-1"


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


def state_to_json(workflow: BpmnWorkflow) -> str:
    """The workflow's state without its spec (what `StateOnlyWorkflowConverter` writes), tasks from `TASK_JSON`."""
    head = _workflow_head(workflow)
    head["bpmn_events"] = REGISTRY.convert(workflow.bpmn_events)
    head["format"] = STATE_FORMAT
    subprocesses = ",".join(f'"{task_id}":{_subprocess_json(sub)}' for task_id, sub in workflow.subprocesses.items())
    return _close(_ENCODE(head), f',"subprocesses":{{{subprocesses}}},"tasks":{TASK_JSON.tasks_json(workflow)}')


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


def _subprocess_json(sub) -> str:
    """BpmnSubWorkflowConverter.to_dict as JSON, its tasks from the cache."""
    head = _workflow_head(sub)
    head["parent_task_id"] = str(sub.parent_task_id)
    head["spec"] = sub.spec.name
    return _close(_ENCODE(head), f',"tasks":{TASK_JSON.tasks_json(sub)}')


def _close(head_json: str, members: str) -> str:
    """Append members (',"key":value' text) to an encoded, non-empty JSON object."""
    return head_json[:-1] + members + "}"


# json.dumps(dct, separators=...) builds a new encoder per call; one, built once, writes the same text.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class TaskJsonCache:
    """Each task's JSON from the last dump of a workflow object, reused while the task is what it was.

    SpiffWorkflow's task converter writes a task's data as a delta against its parent's data, so a task's text
    depends on the task's own fields and on its parent's data; both are compared on every dump (a multi-instance
    child sees every merge into its parent). Scalars are compared as they are; the delta and the internal data
    by their repr (type-exact for JSON values: True is not 1, 1.0 is not 1, and key order counts). A task whose
    fingerprint is unchanged keeps its text; the others go through the stock converter. The comparison is
    O(tasks) in cheap steps; converting and encoding, the expensive part, is O(changed tasks).
    """

    def __init__(self):
        self._entries: weakref.WeakKeyDictionary[Any, dict[UUID, tuple]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def tasks_json(self, workflow) -> str:
        """The JSON object {task id: task} of one (sub-)workflow."""
        with self._lock:
            before = self._entries.get(workflow, {})
        after = {}
        tasks = workflow.tasks
        for task_id, task in tasks.items():
            parent = tasks.get(task._parent)
            key = (task.state, task.last_state_change, task.triggered, task.task_spec.name, parent is not None,
                   task._parent, tuple(task._children), _content_of(task, parent))
            entry = before.get(task_id)
            if entry is None or entry[0] != key:
                entry = (key, f'"{task_id}":{_ENCODE(REGISTRY.convert(task))}')
            after[task_id] = entry
        with self._lock:
            self._entries[workflow] = after
        return "{" + ",".join([entry[1] for entry in after.values()]) + "}"


def _content_of(task, parent) -> str:
    """What the task converter writes of the task's data and internal data, type-exact.

    repr, not JSON: a few times cheaper on small values, and as exact for the JSON types the state can hold
    (a value the encoder cannot write never gets a cached entry: encoding it raises, as it always did).
    """
    data = task.data
    if parent is None:
        return repr((data, task.internal_data))
    # DeepMerge.get_updated_keys / get_deleted_keys, as TaskConverter.to_dict computes the delta.
    pdata = parent.data
    return repr(({key: value for key, value in data.items() if key not in pdata or value != pdata[key]},
                 [key for key in pdata if key not in data], task.internal_data))


TASK_JSON = TaskJsonCache()


def workflow_from_json(
    text: str, spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec], script_engine
) -> BpmnWorkflow:
    """Rebuild a workflow from its state and its (cached) specs, with our script engine attached."""
    dct = json.loads(text)
    fmt = dct.pop("format", None)
    if fmt != STATE_FORMAT:
        raise ValueError(f"Unknown workflow state format {fmt!r}; expected {STATE_FORMAT!r}.")
    workflow = REGISTRY.restore(dct, spec=spec, subprocess_specs=subprocess_specs)
    # The serializer does not keep the script engine; without this the stock, unsandboxed eval would run.
    workflow.script_engine = script_engine
    return workflow
