"""Running service jobs: call the handler outside any transaction, then finish, retry or open an incident.

    claim (sweep) -> renew lease + read the request (short transaction) -> handler(request) (no transaction)
                  -> finish command: the task must still wait, and the job still be this worker's

At least once: a worker killed after the handler did its work and before the finish committed leaves the job
leased; when the lease runs out, another worker calls the handler again with the same idempotency key.
"""

import copy
import logging
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from types import MappingProxyType
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.task import TaskState
from sqlalchemy import delete
from sqlalchemy import select

from engine import audit
from engine import step
from engine.actor import Actor
from engine.contention import retried
from engine.errors import Conflict
from engine.errors import Forbidden
from engine.errors import InvalidInput
from engine.errors import NotFound
from engine.forms import check_variables
from engine.handlers import BpmnError
from engine.handlers import HandlerError
from engine.handlers import HandlerRegistry
from engine.handlers import HandlerRequest
from engine.handlers import HandlerServices
from engine.handlers import RetryPolicy
from engine.history import Recorder
from engine.models import CALLS
from engine.models import Incident
from engine.models import Job
from engine.models import JobKind
from engine.models import JobStatus
from engine.models import ProcessInstance
from engine.parameters import ParameterError
from engine.parameters import evaluate_parameters
from engine.runtime import load_workflow
from engine.service_jobs import Failure
from engine.service_jobs import incident_dict
from engine.service_jobs import lease
from engine.service_jobs import record_failure
from engine.service_jobs import retry_policy
from engine.status import FINAL
from engine.task_rows import touch

log = logging.getLogger(__name__)

DEFAULT_SERVICE_LEASE = timedelta(minutes=2)


@dataclass
class _Call:
    request: HandlerRequest
    instance_id: int
    result_variable: str | None
    output_parameters: dict | None
    policy: RetryPolicy
    detached: bool = False  # a mail job of a reminder: no workflow task waits for it


class ServiceCommands:
    """Mixed into Engine: needs _command, _sf, _specs, _script_engine, _clock, _persist, _handlers, _services."""

    _handlers: HandlerRegistry
    _services: HandlerServices | None
    _service_lease: timedelta

    def run_service_job(self, job_id: int, *, worker: str, now: datetime | None = None) -> bool:
        """Call the handler of a service job leased to `worker` and apply what came of it; False if not ours."""
        call = self._prepare_call(job_id, worker, now)
        if call is None:
            return False
        if isinstance(call, Failure):
            return self._finish_failed(job_id, worker, call, RetryPolicy(attempts=1), None, now)
        try:
            result = self._call(call.request)
        except BpmnError as error:
            return self._finish_bpmn_error(job_id, worker, call, error, now)
        except HandlerError as exc:
            return self._finish_failed(job_id, worker, Failure(exc.message, exc.retryable), call.policy, call, now)
        except Exception as exc:  # noqa: BLE001 - a handler's bug is a retryable failure, never a crashed sweep
            log.exception("Handler for %r failed on job %s", call.request.topic, job_id)
            failure = Failure(f"{type(exc).__name__} in the {call.request.topic!r} handler: {exc}", True)
            return self._finish_failed(job_id, worker, failure, call.policy, call, now)
        return self._finish_done(job_id, worker, call, result, now)

    # -- phase 1: lease and request --------------------------------------------------------------------------------

    @retried
    def _prepare_call(self, job_id: int, worker: str, now: datetime | None) -> _Call | Failure | None:
        with self._command(now) as (session, now):
            if not lease(session, job_id, worker, now, self._service_lease):
                return None
            job = session.get(Job, job_id)
            instance = session.get(ProcessInstance, job.instance_id)
            registered = self._handlers.get(job.topic or "")
            payload = job.payload or {}
            if payload.get("error"):
                return Failure(payload["error"], False)
            if registered is None:
                return Failure(f"No handler is installed for the topic {job.topic!r}. Install it, then retry "
                               "this incident.", False)
            if instance is None or instance.status in FINAL:
                return None

            def request(variables: dict, key: str) -> HandlerRequest:
                return HandlerRequest(
                    topic=job.topic, parameters=MappingProxyType(copy.deepcopy(payload.get("parameters") or {})),
                    instance_id=instance.id, business_key=instance.business_key,
                    variables=MappingProxyType(copy.deepcopy(variables)), idempotency_key=key,
                    element_id=job.element_id, attempt=job.attempts + 1, services=self._services)

            if job.kind == JobKind.MAIL:  # a reminder's mail: no task waits for it
                return _Call(request({}, f"dealflow-mail-{job.id}"), instance.id, None, None, registered.retry,
                             detached=True)
            workflow = load_workflow(session, instance.id, self._specs.get(session, instance.definition_id),
                                     self._script_engine)
            task = workflow.get_task_from_id(UUID(job.task_id))
            if task is None or task.state != TaskState.STARTED:
                return None
            extensions = task.task_spec.extensions or {}
            policy = retry_policy(extensions.get("properties") or {}, registered.retry)
            return _Call(request(dict(task.data), f"dealflow-{instance.id}-{job.task_id}"), instance.id,
                         payload.get("result_variable"), extensions.get("outputParameters"), policy)

    def _call(self, request: HandlerRequest) -> dict[str, Any]:
        result = self._handlers.get(request.topic).handler(request)
        if result is None:
            return {}
        try:
            return check_variables(dict(result), f"the result of the {request.topic!r} handler")
        except (InvalidInput, TypeError, ValueError) as exc:
            raise HandlerError(f"{exc} Handlers return a JSON object of named values.", retryable=False) from exc

    # -- phase 3: finish --------------------------------------------------------------------------------------------

    def _finish_done(self, job_id: int, worker: str, call: _Call, result: dict, now: datetime | None) -> bool:
        if call.detached:
            return self._finish_detached(job_id, worker, call, result, now)

        def apply(task: SpiffTask) -> None:
            touch(task.workflow, [task])
            task.set_data(**self._mapped(call, task, result))
            task.complete()

        return self._finish(job_id, worker, call, now, "service_completed", {"result": result}, apply)

    def _finish_bpmn_error(self, job_id: int, worker: str, call: _Call, error: BpmnError,
                           now: datetime | None) -> bool:
        payload = dict(error.data) | {"error_code": error.code, "error_message": error.message}
        uncaught: list[str] = []

        def throw(task: SpiffTask) -> None:
            if not throw_bpmn_error(task, error.code, payload):
                uncaught.append(error.code)

        details = {"code": error.code, "message": error.message}
        done = self._finish(job_id, worker, call, now, "service_bpmn_error", details, throw, give_up=uncaught)
        if uncaught:
            failure = Failure(f"The handler reported BPMN error {error.code!r} ({error.message}), and no error "
                              f"boundary event on {call.request.element_id!r} catches it. Add an error boundary "
                              f"event with error code {error.code!r}, or fix the cause and retry.", False)
            return self._finish_failed(job_id, worker, failure, call.policy, call, now)
        return done

    @retried
    def _finish(self, job_id: int, worker: str, call: _Call, now: datetime | None, event: str, details: dict,
                action, give_up: list | None = None) -> bool:
        """Apply `action(task)` to the waiting task in one command; a late result is recorded and dropped."""
        with self._command(now) as (session, now):
            job, instance = _lock_service_job(session, job_id, worker)
            task = workflow = None
            if job is not None and instance is not None and instance.status not in FINAL:
                loaded = self._specs.get(session, instance.definition_id)
                workflow = load_workflow(session, instance.id, loaded, self._script_engine)
                task = workflow.get_task_from_id(UUID(job.task_id))
            if task is None or task.state != TaskState.STARTED:
                if job is not None:
                    session.execute(delete(Job).where(Job.id == job_id))
                audit.append(session, [_dropped(call, worker, now, job_id, event)])
                return False
            recorder = Recorder(worker, now, instance.id)
            recorder.add(event, task_id=job.task_id, element_id=job.element_id, topic=job.topic,
                         attempt=job.attempts + 1, job_id=job_id, **details)
            outcome = step.run(workflow, lambda: action(task), recorder)
            if give_up:
                return False  # nothing caught the error: the caller opens an incident instead
            recorder.records[0].details["path"] = outcome.path
            self._persist(session, instance, workflow, outcome, recorder, now)
            return True

    @retried
    def _finish_detached(self, job_id: int, worker: str, call: _Call, result: dict, now: datetime | None) -> bool:
        """A reminder's mail went out: the job is done; the audit says to whom and with which Message-ID."""
        with self._command(now) as (session, now):
            job, _ = _lock_service_job(session, job_id, worker)
            if job is None:
                audit.append(session, [_dropped(call, worker, now, job_id, "mailed")])
                return False
            session.delete(job)
            audit.append(session, [audit.AuditRecord(
                event="deadline_mailed", actor=worker, at=now, instance_id=job.instance_id, task_id=job.task_id,
                element_id=job.element_id, details={"job_id": job_id, "attempt": job.attempts + 1,
                                                    "result": result})])
            return True

    @retried
    def _finish_failed(self, job_id: int, worker: str, failure: Failure, policy: RetryPolicy, call: _Call | None,
                       now: datetime | None) -> bool:
        with self._command(now) as (session, now):
            job, _ = _lock_service_job(session, job_id, worker)
            if job is None:
                if call is not None:
                    audit.append(session, [_dropped(call, worker, now, job_id, "service_failed")])
                return False
            audit.append(session, [record_failure(session, job, failure, policy, worker, now)])
            return False

    @staticmethod
    def _mapped(call: _Call, task: SpiffTask, result: dict) -> dict[str, Any]:
        """What the result adds to the task data: under the result variable, through output parameters, or all."""
        if call.result_variable:
            return {call.result_variable: result}
        if call.output_parameters:
            try:
                return evaluate_parameters(call.output_parameters, dict(task.data) | result,
                                           f"the service task {task.task_spec.bpmn_id!r}")
            except ParameterError as exc:
                raise InvalidInput(str(exc)) from exc
        return result

    # -- incidents --------------------------------------------------------------------------------------------------

    def list_incidents(self, *, instance_id: int | None = None, include_resolved: bool = False,
                       limit: int = 100, offset: int = 0) -> list[dict]:
        """Incidents, newest first: open ones only unless `include_resolved`."""
        query = select(Incident).order_by(Incident.created_at.desc(), Incident.id.desc())
        if instance_id is not None:
            query = query.where(Incident.instance_id == instance_id)
        if not include_resolved:
            query = query.where(Incident.resolved_at.is_(None))
        query = query.limit(min(max(limit, 1), 500)).offset(max(offset, 0))
        with self._sf() as session:
            return [incident_dict(incident) for incident in session.scalars(query)]

    def get_incident(self, incident_id: int) -> dict:
        with self._sf() as session:
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise NotFound(f"There is no incident {incident_id}.")
            return incident_dict(incident)

    @retried
    def retry_incident(self, incident_id: int, *, actor: Actor, now: datetime | None = None) -> dict:
        """Give the failed call a new set of attempts, starting now (admins and supervisors); audited."""
        if not actor.has_role("admin", "supervisor"):
            raise Forbidden(f"{actor.username!r} may not retry incidents: only admins and supervisors may.")
        with self._command(now) as (session, now):
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise NotFound(f"There is no incident {incident_id}.")
            session.get(ProcessInstance, incident.instance_id, with_for_update=True, populate_existing=True)
            session.refresh(incident, with_for_update=True)
            if incident.resolved_at is not None:
                raise Conflict(f"Incident {incident_id} was already resolved ({incident.resolution} by "
                               f"{incident.resolved_by}); there is nothing to retry.")
            job = session.get(Job, incident.job_id, with_for_update=True)
            if job is None or job.status != JobStatus.INCIDENT:
                raise Conflict(f"The service call of incident {incident_id} no longer waits; refresh.")
            job.status, job.attempts, job.due_at = JobStatus.PENDING, 0, now
            job.locked_by = job.locked_until = None
            if job.max_attempts is None or job.max_attempts < 1:
                job.max_attempts = 1
            incident.resolved_at, incident.resolved_by, incident.resolution = now, actor.username, "retried"
            audit.append(session, [audit.AuditRecord(
                event="incident_retried", actor=actor.username, at=now, instance_id=incident.instance_id,
                task_id=incident.task_id, element_id=incident.element_id,
                details={"incident_id": incident_id, "job_id": job.id, "topic": job.topic})])
            return incident_dict(incident)

    @retried
    def claim_for_operator(self, job_id: int, worker: str, now: datetime) -> bool:
        """Lease a pending service job to an operator's "execute now", unless a sweeper holds it."""
        with self._command(now) as (session, now):
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.kind not in CALLS or job.status != JobStatus.PENDING:
                return False
            if job.locked_until is not None and job.locked_until >= now:
                raise Conflict(f"Job {job_id} is running right now; wait for it to finish.")
            job.locked_by, job.locked_until = worker, now + self._service_lease
            return True


def throw_bpmn_error(task: SpiffTask, code: str, payload: dict) -> bool:
    """Throw error `code` from a waiting task to its error boundary events (or enclosing ones); False if none."""
    catchers = [t for t in task.workflow.top_workflow.event_manager.tasks.values()
                if isinstance(getattr(t.task_spec, "event_definition", None), ErrorEventDefinition)
                and t.state == TaskState.WAITING and t.task_spec.event_definition.code in (None, code)
                and _encloses(t, task)]
    if not catchers:
        return False
    definition = catchers[0].task_spec.event_definition
    event = BpmnEvent(type(definition)(definition.name, code=code), payload=payload, target=task.workflow)
    task.workflow.top_workflow.catch(event)
    # The boundary event is ready now; the next engine steps run it and cancel the task it is attached to.
    return any(c.state != TaskState.WAITING or c.task_spec.event_definition.has_fired(c) for c in catchers)


def _encloses(catcher: SpiffTask, task: SpiffTask) -> bool:
    """True if `catcher` is a boundary event of `task` or of an activity (sub-process, call) that contains it."""
    node: SpiffTask | None = task
    while node is not None:
        if catcher.parent is not None and catcher.parent is node.parent and catcher is not node:
            return True
        parent = getattr(node.workflow, "parent_workflow", None)
        node = parent.get_task_from_id(node.workflow.parent_task_id) if parent is not None else None
    return False


def _lock_service_job(session, job_id: int, worker: str) -> tuple[Job | None, ProcessInstance | None]:
    """Lock the job's instance, then the job; (None, None) unless the job is still pending and this worker's."""
    pending = session.get(Job, job_id)
    if pending is None:
        return None, None
    instance = session.get(ProcessInstance, pending.instance_id, with_for_update=True, populate_existing=True)
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.locked_by != worker or job.status != JobStatus.PENDING:
        return None, None
    return job, instance


def _dropped(call: _Call, worker: str, now: datetime, job_id: int, outcome: str) -> audit.AuditRecord:
    return audit.AuditRecord(
        event="service_result_dropped", actor=worker, at=now, instance_id=call.instance_id,
        element_id=call.request.element_id,
        details={"job_id": job_id, "topic": call.request.topic, "outcome": outcome,
                 "reason": "the task no longer waits for this call (completed, cancelled, or taken over by "
                           "another worker after this one's lease ran out)"})
