"""Service tasks as jobs: which external tasks a workflow waits on, their job rows, retries and incidents.

A service task with a topic parks in STARTED (SpiffWorkflow's default service task does nothing when run). The
command that parked it evaluates its input parameters and inserts a `service` job in the same transaction. The
sweep runs the handler outside any transaction and finishes the task with another command (ServiceCommands in
engine/service_commands.py). A failed call is retried with backoff; out of attempts, the job stays as an
incident until an operator retries it.
"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.task import TaskState
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.audit import AuditRecord
from engine.handlers import HandlerRegistry
from engine.handlers import RetryPolicy
from engine.isodates import duration_of
from engine.models import Incident
from engine.models import Job
from engine.models import JobKind
from engine.models import JobStatus
from engine.parameters import ParameterError
from engine.parameters import evaluate_parameters
from engine.runtime import iter_tasks
from engine.workflow import tracked

ServiceMap = dict[str, str]  # task id -> element id


def topic_of(task: SpiffTask) -> str | None:
    extensions = getattr(task.task_spec, "extensions", None) or {}
    return extensions.get("topic") if extensions.get("type") == "external" else None


_STARTED = TaskState.STARTED


def waiting_services(workflow: BpmnWorkflow) -> ServiceMap:
    """Every external task parked in STARTED, waiting for its handler, in the task map's order."""
    tracker = tracked(workflow)
    if tracker is not None:
        # The workflow's tracker holds its STARTED tasks (a multi-instance parent is one): with at most one of them
        # a service, there is no order to keep and no walk over every task is needed.
        by_key = tracker.by_key
        found = [task for manual in (False, True) for task in by_key.get((_STARTED, manual), ())
                 if topic_of(task) is not None]
        if len(found) <= 1:
            return {str(task.id): task.task_spec.bpmn_id for task in found}
    return {str(task.id): task.task_spec.bpmn_id for task in iter_tasks(workflow)
            if task._state == _STARTED and topic_of(task) is not None}


def retry_policy(task_properties: dict, default: RetryPolicy) -> RetryPolicy:
    """The topic's policy, with the task's `maxAttempts` / `retryBackoff` camunda:properties on top."""
    attempts, backoff = default.attempts, default.backoff
    if task_properties.get("maxAttempts"):
        attempts = max(int(task_properties["maxAttempts"]), 1)
    if task_properties.get("retryBackoff"):
        backoff = duration_of(task_properties["retryBackoff"])
    return RetryPolicy(attempts=attempts, backoff=backoff, max_backoff=max(default.max_backoff, backoff))


def new_job(task: SpiffTask, instance_id: int, registry: HandlerRegistry | None, now: datetime) -> Job:
    """The job of a freshly parked external task, its parameters evaluated over the task's data now."""
    spec = task.task_spec
    extensions = spec.extensions or {}
    topic = extensions["topic"]
    properties = extensions.get("properties") or {}
    registered = registry.get(topic) if registry is not None else None
    payload: dict = {"result_variable": properties.get("resultVariable") or None}
    try:
        policy = retry_policy(properties, registered.retry if registered else RetryPolicy())
        payload["parameters"] = evaluate_parameters(extensions.get("inputParameters"), task.data,
                                                    f"the service task {spec.bpmn_id!r}", clock=lambda: now)
    except (ParameterError, ValueError) as exc:
        # Kept on the job: the call fails for good at its first attempt and becomes an incident that says why.
        policy, payload["error"] = RetryPolicy(attempts=1), str(exc)
    return Job(kind=JobKind.SERVICE, instance_id=instance_id, task_id=str(task.id), element_id=spec.bpmn_id,
               due_at=now, attempts=0, status=JobStatus.PENDING, topic=topic, payload=payload,
               max_attempts=policy.attempts, created_at=now,
               last_error=None if "error" not in payload else payload["error"][:2000])


def sync_service_jobs(session: Session, instance_id: int, workflow: BpmnWorkflow, before: ServiceMap,
                      after: ServiceMap, registry: HandlerRegistry | None, now: datetime, actor: str) -> list:
    """Insert jobs for newly parked tasks; drop those of tasks no longer waiting (and close their incidents)."""
    gone = [task_id for task_id in before if task_id not in after]
    records = resolve_incidents(session, instance_id, gone, "task_gone", actor, now) if gone else []
    if gone:
        session.execute(delete(Job).where(Job.instance_id == instance_id, Job.task_id.in_(gone),
                                          Job.kind == JobKind.SERVICE).execution_options(synchronize_session=False))
    for task_id in after:
        if task_id not in before:
            job = new_job(workflow.get_task_from_id(UUID(task_id)), instance_id, registry, now)
            session.add(job)
            records.append(AuditRecord(event="service_scheduled", actor=actor, at=now, instance_id=instance_id,
                                       task_id=task_id, element_id=job.element_id,
                                       details={"topic": job.topic, "parameters": job.payload.get("parameters"),
                                                "error": job.payload.get("error")}))
    return records


def resolve_incidents(session: Session, instance_id: int, task_ids: list[str] | None, resolution: str,
                      actor: str, now: datetime) -> list[AuditRecord]:
    """Close the open incidents of these tasks (all of the instance's with None); their audit records."""
    query = select(Incident).where(Incident.instance_id == instance_id, Incident.resolved_at.is_(None))
    if task_ids is not None:
        query = query.where(Incident.task_id.in_(task_ids))
    records = []
    for incident in session.scalars(query):
        incident.resolved_at, incident.resolved_by, incident.resolution = now, actor, resolution
        records.append(AuditRecord(event="incident_resolved", actor=actor, at=now, instance_id=instance_id,
                                   task_id=incident.task_id, element_id=incident.element_id,
                                   details={"incident_id": incident.id, "resolution": resolution}))
    return records


@dataclass
class Failure:
    message: str
    retryable: bool


def record_failure(session: Session, job: Job, failure: Failure, policy_backoff: RetryPolicy, actor: str,
                   now: datetime) -> AuditRecord:
    """Count a failed call: back off and retry, or, out of attempts (or not retryable), open an incident."""
    job.attempts += 1
    job.last_error = failure.message[:2000]
    job.locked_by, job.locked_until = None, None
    details = {"job_id": job.id, "topic": job.topic, "attempt": job.attempts, "message": failure.message}
    if failure.retryable and job.attempts < (job.max_attempts or 1):
        job.due_at = now + policy_backoff.delay(job.attempts)
        return AuditRecord(event="service_failed", actor=actor, at=now, instance_id=job.instance_id,
                           task_id=job.task_id, element_id=job.element_id, details=details | {"retry_at": job.due_at})
    job.status = JobStatus.INCIDENT
    incident = Incident(job_id=job.id, instance_id=job.instance_id, task_id=job.task_id, element_id=job.element_id,
                        topic=job.topic or "", message=failure.message[:2000], attempts=job.attempts,
                        created_at=now)
    session.add(incident)
    session.flush()
    return AuditRecord(event="incident_created", actor=actor, at=now, instance_id=job.instance_id,
                       task_id=job.task_id, element_id=job.element_id, details=details | {"incident_id": incident.id})


def lease(session: Session, job_id: int, worker: str, now: datetime, length: timedelta) -> bool:
    """Renew this worker's lease on a pending service job from now; False if the job is no longer its own."""
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.locked_by == worker, Job.status == JobStatus.PENDING)
        .values(locked_until=now + length).execution_options(synchronize_session=False))
    return result.rowcount == 1


def incident_dict(incident: Incident) -> dict:
    return {"id": incident.id, "job_id": incident.job_id, "instance_id": incident.instance_id,
            "task_id": incident.task_id, "element_id": incident.element_id, "topic": incident.topic,
            "message": incident.message, "attempts": incident.attempts, "created_at": incident.created_at,
            "resolved_at": incident.resolved_at, "resolved_by": incident.resolved_by,
            "resolution": incident.resolution}

