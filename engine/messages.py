"""Messages and signals: which events a workflow waits for, keeping subscriptions in step, delivering them."""

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import TaskState
from sqlalchemy import delete
from sqlalchemy.orm import Session

from engine.models import EventSubscription

KINDS = {MessageEventDefinition: "message", SignalEventDefinition: "signal"}
Subscriptions = set[tuple[str, str, str, str]]  # (task id, kind, name, element id)
PAYLOAD_VARIABLE = "message_payload"


def _leaves(definition) -> list:
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [definition]


def _kind(definition) -> str | None:
    for cls, kind in KINDS.items():
        if isinstance(definition, cls):
            return kind
    return None


def waiting_subscriptions(workflow: BpmnWorkflow) -> Subscriptions:
    """(task, kind, name, element) for every message/signal catch the workflow waits on."""
    found: Subscriptions = set()
    for task in workflow.event_manager.tasks.values():
        if task.state != TaskState.WAITING:
            continue
        for definition in _leaves(getattr(task.task_spec, "event_definition", None)):
            kind = _kind(definition)
            if kind and definition.name:
                found.add((str(task.id), kind, definition.name, task.task_spec.bpmn_id))
    return found


def sync_subscriptions(session: Session, instance_id: int, before: Subscriptions, after: Subscriptions) -> None:
    gone = {s[0] for s in before - after}
    if gone:
        session.execute(delete(EventSubscription).where(
            EventSubscription.instance_id == instance_id, EventSubscription.task_id.in_(gone),
        ).execution_options(synchronize_session=False))
    session.add_all([EventSubscription(instance_id=instance_id, task_id=t, kind=k, name=n, element_id=e)
                     for t, k, n, e in sorted(after - before) if t not in {s[0] for s in before}])


def delete_instance_subscriptions(session: Session, instance_id: int) -> None:
    session.execute(delete(EventSubscription).where(EventSubscription.instance_id == instance_id)
                    .execution_options(synchronize_session=False))


def deliver(workflow: BpmnWorkflow, kind: str, name: str, payload: dict[str, Any]) -> int:
    """Hand the event to every task of `workflow` waiting for it; the payload's fields become process data."""
    matches = [
        (task, definition)
        for task in list(workflow.event_manager.tasks.values()) if task.state == TaskState.WAITING
        for definition in _leaves(getattr(task.task_spec, "event_definition", None))
        if _kind(definition) == kind and definition.name == name
    ]
    if not matches:
        return 0
    for task, _ in matches:
        # The catching task's data flows on to the path it opens: the payload's fields become variables.
        task.data.update(payload)
    definition = matches[0][1]
    # Built from a waiting task's own definition: SpiffWorkflow matches on class and name, and one catch reaches
    # every task waiting for it.
    body = {"payload": payload, "result_var": PAYLOAD_VARIABLE} if hasattr(definition, "result_var") else payload
    workflow.catch(BpmnEvent(definition, payload=body))
    return len(matches)
