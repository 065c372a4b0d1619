"""Timer jobs: which timers a workflow waits on, keeping job rows in step, and claiming due jobs."""

from datetime import datetime
from datetime import timedelta

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.task import TaskState
from sqlalchemy import case
from sqlalchemy import delete
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.models import CALLS
from engine.models import Job
from engine.models import JobKind
from engine.models import JobStatus
from engine.models import ProcessInstance

LEASE = timedelta(seconds=10)
TimerMap = dict[str, tuple[str, datetime]]  # task id -> (element id, due at)


def _has_timer(definition) -> bool:
    if isinstance(definition, TimerEventDefinition):
        return True
    if isinstance(definition, MultipleEventDefinition):
        return any(isinstance(d, TimerEventDefinition) for d in definition.event_definitions)
    return False


def _due(value) -> datetime | None:
    if isinstance(value, dict):  # a cycle: {'cycles', 'next', 'duration'}; cycles == 0 means done
        return TimerEventDefinition.get_datetime(value["next"]) if value.get("cycles") != 0 else None
    if isinstance(value, str):
        return TimerEventDefinition.get_datetime(value)
    return None


def waiting_timers(workflow: BpmnWorkflow) -> TimerMap:
    """Every timer the workflow waits on (catch and boundary events, event-based gateways) with its due time."""
    timers: TimerMap = {}
    for task in workflow.event_manager.tasks.values():
        definition = getattr(task.task_spec, "event_definition", None)
        if task.state != TaskState.WAITING or not _has_timer(definition):
            continue
        due = _due(task.internal_data.get("event_value"))
        if due is not None:
            timers[str(task.id)] = (task.task_spec.bpmn_id, due)
    return timers


def sync_timer_jobs(session: Session, instance_id: int, before: TimerMap, after: TimerMap) -> None:
    """Insert jobs for new timers, delete those of timers gone, move those whose due time changed (cycles)."""
    gone = [task_id for task_id in before if task_id not in after]
    if gone:
        session.execute(delete(Job).where(Job.instance_id == instance_id, Job.task_id.in_(gone),
                                          Job.kind == JobKind.TIMER).execution_options(synchronize_session=False))
    for task_id, (element_id, due) in after.items():
        if task_id not in before:
            session.add(Job(kind=JobKind.TIMER, instance_id=instance_id, task_id=task_id, element_id=element_id,
                            due_at=due, attempts=0))
        elif before[task_id][1] != due:
            session.execute(update(Job).where(Job.instance_id == instance_id, Job.task_id == task_id)
                            .values(due_at=due, locked_by=None, locked_until=None)
                            .execution_options(synchronize_session=False))


def delete_instance_jobs(session: Session, instance_id: int) -> None:
    session.execute(delete(Job).where(Job.instance_id == instance_id).execution_options(synchronize_session=False))


def claim_due(session: Session, now: datetime, worker: str, limit: int,
              service_lease: timedelta = LEASE) -> list[tuple[int, str]]:
    """Lease up to `limit` due jobs to `worker` (PostgreSQL skips rows other sweepers hold); their (id, kind).

    A service call gets the longer `service_lease` (a handler may take a while); incidents are never claimed.
    """
    free = or_(Job.locked_until.is_(None), Job.locked_until < now)
    claimed = [(row.id, row.kind) for row in session.execute(
        select(Job.id, Job.kind).where(Job.due_at <= now, free, Job.status == JobStatus.PENDING)
        .order_by(Job.due_at, Job.id).limit(limit).with_for_update(skip_locked=True)
    )]
    if claimed:
        until = case((Job.kind.in_(CALLS), now + service_lease), else_=now + LEASE)
        session.execute(update(Job).where(Job.id.in_([job_id for job_id, _ in claimed]))
                        .values(locked_by=worker, locked_until=until)
                        .execution_options(synchronize_session=False))
    return claimed


def record_failure(session: Session, job_id: int, error: str, now: datetime) -> None:
    """A firing that failed for a reason outside the process: retry later with backoff, keep the reason."""
    job = session.get(Job, job_id)
    if job is None:
        return
    job.attempts += 1
    job.last_error = error[:2000]
    job.locked_by = None
    job.locked_until = now + timedelta(seconds=min(2 ** job.attempts, 300))


def active_instance(session: Session, instance_id: int) -> ProcessInstance | None:
    return session.get(ProcessInstance, instance_id, with_for_update=True, populate_existing=True)
