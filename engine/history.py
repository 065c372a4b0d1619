"""Turn what a command changed into audit records: path taken, gateways, milestones, tasks."""

from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import IntermediateThrowEvent
from SpiffWorkflow.bpmn.specs.mixins.exclusive_gateway import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.task import TaskState

from engine.audit import AuditRecord
from engine.runtime import Changes
from engine.runtime import is_bpmn_element

DECIDING = (ExclusiveGateway, InclusiveGateway)


def is_milestone(task: SpiffTask) -> bool:
    """An intermediate throw event with no event definition marks a funnel stage."""
    spec = task.task_spec
    return isinstance(spec, IntermediateThrowEvent) and type(spec.event_definition) is NoneEventDefinition


def taken_targets(task: SpiffTask) -> list[str]:
    return [
        child.task_spec.bpmn_id for child in task.children
        if is_bpmn_element(child) and not child.has_state(TaskState.PREDICTED_MASK)
    ]


class Recorder:
    """Collects the audit records of one command; appended to its trail in one go before commit."""

    def __init__(self, actor: str, now: datetime, instance_id: int | None = None):
        self.actor, self.now, self.instance_id = actor, now, instance_id
        self.records: list[AuditRecord] = []

    def add(self, event: str, *, task_id: str | None = None, element_id: str | None = None, **details: Any) -> None:
        self.records.append(AuditRecord(
            event=event, actor=self.actor, at=self.now, instance_id=self.instance_id, task_id=task_id,
            element_id=element_id, details=details,
        ))

    def bind(self, instance_id: int) -> None:
        """Set the instance id once it is known (a new instance gets it at insert)."""
        self.instance_id = instance_id
        for record in self.records:
            record.instance_id = instance_id

    def engine_steps(self, changes: Changes) -> list[str]:
        """Record gateway decisions and milestones; return the element ids completed, in order."""
        path = []
        for task in changes.completed:
            spec = task.task_spec
            path.append(spec.bpmn_id)
            if isinstance(spec, DECIDING):
                self.add("gateway_path_taken", element_id=spec.bpmn_id, name=spec.bpmn_name,
                         taken=taken_targets(task))
            elif is_milestone(task):
                self.add("milestone_reached", element_id=spec.bpmn_id, name=spec.bpmn_name)
        return path
