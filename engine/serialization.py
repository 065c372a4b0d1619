"""Turn specs and workflow state into JSON and back.

A definition's spec is serialized once, at deploy time. An instance stores only its state (tasks and data);
on load the cached spec objects are plugged back in, which is what makes a command cheap.
"""

import json
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
    """The workflow's state without its spec."""
    dct: dict[str, Any] = REGISTRY.convert(workflow)
    dct["format"] = STATE_FORMAT
    return json.dumps(dct, separators=(",", ":"))


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
