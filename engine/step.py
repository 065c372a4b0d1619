"""The shared second half of every command: run the engine, then persist tasks, status and audit."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import TypeVar

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import TaskState
from sqlalchemy import bindparam
from sqlalchemy import insert
from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine import assignment
from engine import audit
from engine import inbox
from engine import jobs
from engine import messages
from engine import reminders
from engine import service_jobs
from engine import state_store
from engine.db import plain
from engine.errors import DealflowError
from engine.handlers import HandlerRegistry
from engine.history import Recorder
from engine.listeners import Listener
from engine.listeners import events_of
from engine.models import HumanTask
from engine.models import InstanceStatus
from engine.models import ProcessInstance
from engine.runtime import Changes
from engine.runtime import diff
from engine.runtime import iter_tasks
from engine.runtime import snapshot
from engine.serialization import StateDump
from engine.serialization import dump_state
from engine.sql import Batch
from engine.sql import Prepared
from engine.status import transition
from engine.workflow import share_parent_values
from engine.workflow import tracked

OPEN_WORK = TaskState.READY | TaskState.STARTED
T = TypeVar("T")


@dataclass
class Outcome:
    changes: Changes
    failure: str | None
    path: list[str]
    timers_before: jobs.TimerMap
    subscriptions_before: messages.Subscriptions
    services_before: service_jobs.ServiceMap


def describe_failure(exc: Exception) -> str:
    """One sentence naming the BPMN element that failed and why."""
    task = getattr(exc, "task", None)
    spec = getattr(task, "task_spec", None) or getattr(exc, "task_spec", None)
    cause = getattr(exc, "exception", None) or exc
    reason = getattr(cause, "message", None) or str(cause) or type(cause).__name__
    if spec is None:
        return f"The process failed: {reason}"
    name = getattr(spec, "bpmn_name", None) or getattr(spec, "bpmn_id", spec.name)
    return f"{type(spec).__name__} {name!r} ({getattr(spec, 'bpmn_id', spec.name)}) failed: {reason}"


def run(workflow: BpmnWorkflow, action: Callable[[], None] | None, recorder: Recorder, *,
        new: bool = False) -> Outcome:
    """Apply `action`, then run every engine step; a failure of designer code is returned, not raised.

    `new`: the workflow of an instance not stored yet, which has no job or subscription rows to compare with.
    """
    before = snapshot(workflow)
    timers_before = {} if new else jobs.waiting_timers(workflow)
    subscriptions_before = set() if new else messages.waiting_subscriptions(workflow)
    services_before = {} if new else service_jobs.waiting_services(workflow)
    failure = None
    try:
        if action is not None:
            action()
        workflow.do_engine_steps()
    except (SpiffWorkflowException, DealflowError) as exc:
        failure = describe_failure(exc)
    changes = diff(before, workflow)
    share_parent_values(changes.created)
    return Outcome(changes, failure, recorder.engine_steps(changes), timers_before, subscriptions_before,
                   services_before)


def status_of(workflow: BpmnWorkflow, failure: str | None) -> InstanceStatus:
    if failure:
        return InstanceStatus.ERROR
    # The states present: from the workflow's tracker, else from one pass over the task maps (SpiffWorkflow's tree
    # iterator costs far more per task).
    if tracked(workflow) is not None:
        states = workflow.states()
    else:
        states = {task._state for task in iter_tasks(workflow)}
    if TaskState.ERROR in states:
        return InstanceStatus.ERROR
    if workflow.is_completed():  # DealflowWorkflow's: a map scan, the flag set as SpiffWorkflow sets it
        return InstanceStatus.COMPLETED
    return InstanceStatus.RUNNING if any(state & OPEN_WORK for state in states) else InstanceStatus.WAITING


def persist(session: Session, instance: ProcessInstance, workflow: BpmnWorkflow, outcome: Outcome,
            recorder: Recorder, now: datetime, reminder_before: timedelta = reminders.DEFAULT_BEFORE,
            view: Callable[[list[HumanTask], int], T] | None = None, registry: HandlerRegistry | None = None,
            listener: Listener | None = None, writes: Callable[[Batch], None] | None = None,
            locked: bool = False) -> T | None:
    """Write the instance state, the new and cancelled inbox rows, the status and the audit trail.

    A new instance is inserted here, once, with its final state (no insert-then-update). `view(new_rows)`, if
    given, runs after every write but the audit trail, and its result is returned: the caller's answer is built
    from what is in memory, and the audit trail's head (the instance's, or the log's) is locked last. It is also
    told how many open rows the command cancelled.
    `writes(batch)` adds the command's own writes to the batch of the instance and inbox rows (one round trip on
    PostgreSQL).
    `locked`: the instance was inserted by this transaction or read FOR UPDATE with its audit head (a plain object,
    `load_task_and_instance`), so its trail goes on from that head without reading it again.
    """
    failure = outcome.failure
    resolved = []
    for task in outcome.changes.new_ready_human:
        try:
            resolved.append((task, assignment.resolve(task, now)))
        except assignment.AssignmentError as exc:
            # The task still gets its row (nothing is lost); the instance shows the error until fixed.
            resolved.append((task, assignment.Assignment()))
            failure = failure or str(exc)
    old_status = instance.status
    new_status = transition(instance.id, old_status, status_of(workflow, failure))
    dump = write_instance(instance, workflow, new_status, failure, now)
    is_new = instance.id is None
    if is_new:  # inserted at once: the task rows need its id
        insert_instance(session, instance)
        recorder.bind(instance.id)
    new_rows = [inbox.new_row(task, instance, a, now) for task, a in resolved]
    with Batch(session) as batch:
        if writes is not None:
            writes(batch)
        if not is_new:
            update_instance(batch, instance, status_changed=new_status != old_status)
        state_store.write(batch, instance.id, dump)
        inbox.insert_rows(batch, new_rows)
    for (task, _), row in zip(resolved, new_rows, strict=True):
        properties = (task.task_spec.extensions or {}).get("properties", {})
        session.add_all(reminders.deadline_jobs(row, reminders.lead_time(row, properties, reminder_before), now))
    jobs.sync_timer_jobs(session, instance.id, outcome.timers_before, jobs.waiting_timers(workflow))
    messages.sync_subscriptions(session, instance.id, outcome.subscriptions_before,
                                messages.waiting_subscriptions(workflow))
    recorder.records.extend(service_jobs.sync_service_jobs(
        session, instance.id, workflow, outcome.services_before, service_jobs.waiting_services(workflow), registry,
        now, recorder.actor))
    cancelled = inbox.cancel_rows(session, [str(tid) for tid in outcome.changes.cancelled_human_ids], now)
    if listener is not None:
        events = events_of(outcome.changes.completed, instance, recorder.actor, now)
        if events:
            recorder.records.extend(listener(session, events) or [])
    _record_tasks(recorder, new_rows, outcome)
    _record_status(recorder, new_status, failure)
    result = view(new_rows, cancelled) if view is not None else None
    audit.append(session, recorder.records, instance if locked else None)
    return result


_INSTANCE = ProcessInstance.__table__
_INSERTED = tuple(column.key for column in _INSTANCE.columns if column.key != "id")
_INSERT_INSTANCE = Prepared(insert(_INSTANCE).returning(_INSTANCE.c.id), _INSERTED)
_SAVED = ("state_json", "status", "updated_at", "ended_at", "error_message")


def _update_instance(saved: tuple[str, ...]) -> Prepared:
    return Prepared(
        update(_INSTANCE)
        .where(_INSTANCE.c.id == bindparam("b_id"), _INSTANCE.c.lock_version == bindparam("b_version"))
        .values({name: bindparam(f"b_{name}") for name in saved} | {"lock_version": _INSTANCE.c.lock_version + 1})
    )


# Assigning a column rewrites its index entries even to the same value (SQLite: one more page per command), so
# the status, which is indexed, is only assigned when it changes.
_UPDATE_INSTANCE = {True: _update_instance(_SAVED), False: _update_instance(tuple(n for n in _SAVED if n != "status"))}


def insert_instance(session: Session, instance: ProcessInstance) -> None:
    """Insert a new instance with one plain statement; it gets its id and version 1."""
    instance.lock_version = 1
    values = {key: getattr(instance, key) for key in _INSERTED}
    instance.id = _INSERT_INSTANCE.first(session, values)["id"]


def update_instance(batch: Batch, instance: ProcessInstance, status_changed: bool = True) -> None:
    """Write back an instance read with `load_task_and_instance`, as one plain statement of `batch`.

    The update is the optimistic lock by hand: it names the version it read, and losing the race raises the
    StaleDataError the ORM would (the command turns it into a Conflict). An instance loaded through the ORM (the
    sweep's) is left to the ORM's flush, which does the same.
    """
    if inspect(instance).persistent:
        return
    params = {f"b_{name}": getattr(instance, name) for name in _SAVED}
    params |= {"b_id": instance.id, "b_version": instance.lock_version}
    message = f"Process instance {instance.id} was changed by another command."
    batch.write(_UPDATE_INSTANCE[status_changed], params, expect=1, error=lambda: StaleDataError(message))
    instance.lock_version += 1


_TASK = HumanTask.__table__
# Without the state: the worker that ran the instance's last command still holds its workflow (WorkflowCache), and
# then its head would be read for nothing (the rows, which are most of it, are read only to load it).
_SELECT_TASK_AND_INSTANCE = Prepared(
    select(*(c.label(f"t_{c.key}") for c in _TASK.columns),
           *(c.label(f"i_{c.key}") for c in _INSTANCE.columns if c.key != "state_json"))
    .join_from(_TASK, _INSTANCE, _TASK.c.instance_id == _INSTANCE.c.id)
    .where(_TASK.c.id == bindparam("b_id"))
    .with_for_update(of=_INSTANCE)
)


def load_task_and_instance(session: Session, task_id: str) -> tuple[HumanTask, ProcessInstance] | None:
    """A task row and its instance row in one statement, the instance locked (PostgreSQL: FOR UPDATE), as plain
    objects (the instance is what `update_instance` writes back); None if there is no such task.

    The instance's state is not read: take the workflow from the cache, else `runtime.load_workflow` (same lock).
    """
    row = _SELECT_TASK_AND_INSTANCE.first(session, {"b_id": task_id})
    if row is None:
        return None
    return (plain(HumanTask, {key[2:]: value for key, value in row.items() if key[0] == "t"}),
            plain(ProcessInstance, {key[2:]: value for key, value in row.items() if key[0] == "i"}))


def write_instance(instance, workflow, status, failure, now) -> StateDump:
    """Set the instance's columns after a command; the task rows to write go back to the caller."""
    dump = dump_state(workflow)
    instance.state_json = dump.head
    instance.status = status
    instance.updated_at = now
    if status == InstanceStatus.ERROR:
        instance.error_message = failure or instance.error_message
    else:
        instance.error_message = None
    if status == InstanceStatus.COMPLETED:
        instance.ended_at = now
    return dump


def _record_tasks(recorder: Recorder, new_rows, outcome: Outcome) -> None:
    for row in new_rows:
        recorder.add("task_created", task_id=row.id, element_id=row.bpmn_id, name=row.name,
                     assignee=row.assignee, candidate_groups=row.candidate_groups,
                     candidate_users=row.candidate_users, due_at=row.due_at)
    for task_id in outcome.changes.cancelled_human_ids:
        recorder.add("task_cancelled", task_id=str(task_id))


def _record_status(recorder: Recorder, status: InstanceStatus, failure: str | None) -> None:
    if status == InstanceStatus.COMPLETED:
        recorder.add("instance_completed")
    elif status == InstanceStatus.ERROR and failure:
        recorder.add("instance_failed", message=failure)
