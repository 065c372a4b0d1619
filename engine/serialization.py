"""Turn specs and workflow state into JSON and back.

A definition's spec is serialized once, at deploy time. An instance stores only its state (tasks and data);
on load the cached spec objects are plugged back in, which is what makes a command cheap.

The state is written after every command, so its cost per command must not grow with the instance. It is stored
as a head (the process_instance row: workflow data, events, sub-process heads) and one row per task
(instance_task_state), whose body is what the stock task converter writes for it. A dump re-encodes and writes
only the tasks the command changed (`engine.task_rows`). Head and rows together are the stock state, byte for
byte the same content.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec

from engine.registry import ENCODE
from engine.registry import REGISTRY
from engine.task_rows import TASK_ROWS
from engine.task_rows import workflows

STATE_FORMAT = "dealflow-state-2"


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
    tasks = {key: [f'"{task.id}":{entries[task].body}' for task in wf.tasks.values()]
             for key, wf in workflows(workflow)}

    def with_tasks(head: dict[str, Any], key: str) -> str:
        return _close(ENCODE(head), f',"tasks":{{{",".join(tasks.get(key, ()))}}}')

    subprocesses = ",".join(f'"{key}":{with_tasks(_subprocess_head(sub), key)}'
                            for key, sub in workflows(workflow) if key)
    own = ",".join(tasks.get("", ()))
    return _close(ENCODE(_top_head(workflow)), f',"subprocesses":{{{subprocesses}}},"tasks":{{{own}}}')


def _head_json(workflow: BpmnWorkflow) -> str:
    """StateOnlyWorkflowConverter.to_dict without any task: the instance row's part of the state."""
    head = _top_head(workflow)
    head["subprocesses"] = {key: _subprocess_head(sub) for key, sub in workflows(workflow) if key}
    return ENCODE(head)


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
    loaded = {task: stored[str(task.id)] for _, wf in workflows(workflow) for task in wf.tasks.values()}
    TASK_ROWS.seed(workflow, loaded, next_seq)
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
