"""Messages and signals: which events a workflow waits for, keeping subscriptions in step, delivering them."""

from typing import Any
from uuid import uuid5

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import TaskState
from sqlalchemy import delete
from sqlalchemy.orm import Session

from engine.models import EventSubscription
from engine.task_rows import touch

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
    """(task, kind, name, element) for every message/signal catch the workflow waits on, event sub-process starts
    of the process included."""
    found: Subscriptions = set()
    for task in workflow.event_manager.tasks.values():
        if task.state != TaskState.WAITING:
            continue
        for definition in _leaves(getattr(task.task_spec, "event_definition", None)):
            kind = _kind(definition)
            if kind and definition.name:
                found.add((str(task.id), kind, definition.name, task.task_spec.bpmn_id))
    for start, definition in _event_subprocess_starts(workflow):
        # No task waits for an event sub-process's start until it fires; the subscription stands for the start
        # event itself, under an id derived from the instance's root task and the element.
        found.add((str(uuid5(workflow.task_tree.id, start.bpmn_id)), _kind(definition), definition.name,
                   start.bpmn_id))
    return found


def _event_subprocess_starts(workflow: BpmnWorkflow) -> list[tuple[Any, Any]]:
    """(start event spec, message/signal definition) of the process's event sub-processes that may fire now: the
    process runs, and no instance of that event sub-process is running already."""
    # Most processes have none: nothing to look at.
    if not workflow.spec.start.trigger_specs:
        return []
    if workflow.is_completed() or workflow.task_tree.state == TaskState.CANCELLED:
        return []
    fired = {sub.spec.name: sub for sub in workflow.subprocesses.values()
             if sub.spec.name in workflow.spec.start.trigger_specs}
    if any(_interrupting(sub.spec) for sub in fired.values()):
        return []  # the process was interrupted: nothing else starts in it
    running = {name for name, sub in fired.items() if not sub.is_completed()}
    starts = []
    for name in workflow.spec.start.trigger_specs:
        spec = workflow.subprocess_specs.get(name)
        if spec is None or name in running:
            continue
        for start in spec.bpmn_start_events:
            for definition in _leaves(getattr(start, "event_definition", None)):
                if _kind(definition) and definition.name:
                    starts.append((start, definition))
    return starts


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
    """Hand the event to every task of `workflow` waiting for it; the payload's fields become process data.

    An event sub-process of the process that starts with this event starts; an interrupting one (the default in
    BPMN) cancels everything else the process was doing.
    """
    matches = [
        (task, definition)
        for task in list(workflow.event_manager.tasks.values()) if task.state == TaskState.WAITING
        for definition in _leaves(getattr(task.task_spec, "event_definition", None))
        if _kind(definition) == kind and definition.name == name
    ]
    starts = [(start, d) for start, d in _event_subprocess_starts(workflow) if _kind(d) == kind and d.name == name]
    if not matches and starts:
        return _start_event_subprocess(workflow, starts[0][0], starts[0][1], payload)
    if not matches:
        return 0
    touch(workflow, [task for task, _ in matches])
    for task, _ in matches:
        # The catching task's data flows on to the path it opens: the payload's fields become variables.
        task.data.update(payload)
    definition = matches[0][1]
    # Built from a waiting task's own definition: SpiffWorkflow matches on class and name, and one catch reaches
    # every task waiting for it.
    body = {"payload": payload, "result_var": PAYLOAD_VARIABLE} if hasattr(definition, "result_var") else payload
    workflow.catch(BpmnEvent(definition, payload=body))
    return len(matches)


def _interrupting(spec) -> bool:
    return any((getattr(start, "extensions", None) or {}).get("interrupting", True) for start in spec.bpmn_start_events)


def _start_event_subprocess(workflow: BpmnWorkflow, start, definition, payload: dict[str, Any]) -> int:
    """Fire an event sub-process of the process with `definition`; interrupting, cancel the rest of the process."""
    root = workflow.task_tree
    before = {child.id for child in root.children}
    body = {"payload": payload, "result_var": PAYLOAD_VARIABLE} if hasattr(definition, "result_var") else payload
    workflow.catch(BpmnEvent(definition, payload=body))
    fired = [child for child in root.children if child.id not in before]
    touch(workflow)
    for task in fired:
        task.data.update(payload)
        sub = workflow.subprocesses.get(task.id)
        if sub is not None:
            for waiting in sub.get_tasks(state=TaskState.WAITING | TaskState.READY):
                waiting.data.update(payload)
    if fired and (getattr(start, "extensions", None) or {}).get("interrupting", True):
        for child in list(root.children):
            if child not in fired:
                child.cancel()
    return len(fired)
