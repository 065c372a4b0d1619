"""SpiffWorkflow's serializer as Dealflow configures it: the converters for our specs and values, and the state
without the embedded specs (they live on the definition row)."""

import json
from copy import deepcopy
from datetime import date
from decimal import Decimal
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.event_definition import TimerConditionalEventDefinitionConverter
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import WorkflowConverter
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG as CAMUNDA_CONFIG

from engine.timers import CLOCKED
from engine.workflow import DealflowWorkflow


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

# json.dumps(dct, separators=...) builds a new encoder per call; one, built once, writes the same text.
ENCODE = json.JSONEncoder(separators=(",", ":")).encode
