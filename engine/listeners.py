"""What the domain around the engine hears of a process: funnel milestones and end events, inside the command.

The CRM (crm/) turns a milestone into the deal's stage and a Won/Lost end event into a closed deal. The listener
runs in the command's transaction, so the stage changes with the step or not at all; what it returns is appended
to the audit trail of that step.
"""

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.events.end_event import EndEvent
from SpiffWorkflow.task import Task as SpiffTask
from sqlalchemy.orm import Session

from engine.audit import AuditRecord
from engine.history import is_milestone


@dataclass(frozen=True)
class ProcessEvent:
    kind: str  # "milestone" | "end"
    instance_id: int
    process_key: str
    business_key: str | None
    element_id: str
    name: str | None
    top_level: bool  # the process or one of its event sub-processes; False inside a call activity or sub-process
    variables: Mapping[str, Any]  # the data the element saw
    actor: str
    at: datetime


Listener = Callable[[Session, list[ProcessEvent]], list[AuditRecord] | None]


def events_of(completed: list[SpiffTask], instance, actor: str, now: datetime) -> list[ProcessEvent]:
    """Milestones and end events among the tasks a command completed, in the order they completed."""
    events = []
    for task in completed:
        spec = task.task_spec
        kind = "milestone" if is_milestone(task) else "end" if isinstance(spec, EndEvent) else None
        if kind is None:
            continue
        events.append(ProcessEvent(
            kind=kind, instance_id=instance.id, process_key=instance.process_key, business_key=instance.business_key,
            element_id=spec.bpmn_id, name=spec.bpmn_name, top_level=_process_level(task),
            variables=dict(task.data), actor=actor, at=now))
    return events


def _process_level(task: SpiffTask) -> bool:
    """True in the process itself or in one of its event sub-processes ("deal lost" ends the deal from there);
    False inside a call activity or an embedded sub-process."""
    workflow, top = task.workflow, task.workflow.top_workflow
    if workflow is top:
        return True
    return getattr(workflow, "parent_workflow", None) is top and workflow.spec.name in top.spec.start.trigger_specs
