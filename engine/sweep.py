"""Firing due jobs: the command that fires one timer, and the sweep that claims and fires all due ones."""

import logging
import os
import socket
from datetime import datetime
from uuid import UUID

from SpiffWorkflow.task import TaskState
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit
from engine import jobs
from engine import reminders
from engine import step
from engine.actor import Actor
from engine.contention import retried
from engine.errors import Conflict
from engine.errors import Forbidden
from engine.errors import InvalidInput
from engine.errors import NotFound
from engine.history import Recorder
from engine.models import CALLS
from engine.models import Job
from engine.models import JobKind
from engine.models import ProcessInstance
from engine.runtime import load_workflow
from engine.runtime import save_workflow
from engine.status import FINAL
from engine.task_rows import touch

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobCommands:
    """Mixed into Engine: needs _command, _specs, _script_engine and _clock."""

    @retried
    def fire_job(self, job_id: int, *, now: datetime | None = None, actor: str = "timer",
                 worker: str | None = None) -> bool:
        """Fire one timer job if it is still pending; returns False when there was nothing (left) to fire.

        A late firing of a timer whose task was completed or cancelled meanwhile does nothing but drop the job.
        With `worker` (the sweep), only a job still leased to that worker and due is fired: if the lease ran out
        mid-batch, another sweeper may have fired it already, and a cycle or a rescheduled job has a new due time.
        """
        with self._command(now) as (session, now):
            job, instance = _lock_job(session, job_id, worker, now)
            if job is None:
                return False
            if job.kind in CALLS:
                return False  # handler calls run through run_service_job, never as timers
            session.expunge(job)  # its row may be deleted in bulk below; keep the identity map truthful
            if job.kind in (JobKind.REMINDER, JobKind.OVERDUE):
                session.execute(delete(Job).where(Job.id == job_id))
                record = reminders.notify_deadline(session, job, now)
                if record is not None:
                    self._mail_deadline(session, job, record, now)
                    audit.append(session, [record])
                return record is not None
            workflow = task = None
            if instance is not None and instance.status not in FINAL:
                loaded = self._specs.get(session, instance.definition_id)
                workflow = load_workflow(session, instance.id, loaded, self._script_engine)
                task = workflow.get_task_from_id(UUID(job.task_id))
            if task is None or task.state != TaskState.WAITING:
                session.execute(delete(Job).where(Job.id == job_id))
                return False
            # At the due time or later: "execute now" on a job due tomorrow must still make the timer fire.
            with self._clock.frozen(max(now, job.due_at)) as fire_at:
                recorder = Recorder(actor, fire_at, instance.id)
                recorder.add("timer_fired", task_id=job.task_id, element_id=job.element_id, due_at=job.due_at)
                outcome = step.run(workflow, workflow.refresh_timers, recorder)
                recorder.records[0].details["path"] = outcome.path
                self._persist(session, instance, workflow, outcome, recorder, fire_at)
            return True

    def _mail_deadline(self, session: Session, job: Job, record: audit.AuditRecord, now: datetime) -> None:
        """With a directory and a mail.send handler, the reminder goes out by mail too (a job of its own)."""
        registered = self._handlers.get("mail.send")
        if self._mail_directory is None or registered is None:
            return
        mail = reminders.deadline_mail(session, job, record, self._mail_directory, registered.retry.attempts, now)
        if mail is not None:
            session.add(mail)
            record.details["mail_to"] = mail.payload["parameters"]["to"]

    def fire_due_jobs(self, *, now: datetime | None = None, limit: int = 50, worker: str | None = None) -> int:
        """Claim every job due at `now` and fire each in its own transaction; returns how many fired.

        One broken instance never stops the sweep: its job is retried later with backoff. Batches are small: the
        sweeper loops while jobs fire, and a job leased in a batch waits for the batch before it (a handler call
        that a killed worker left leased comes back only after the restarted worker's first batch).
        """
        claimed_at = now or self._clock()
        worker = worker or worker_name()
        with self._command(claimed_at) as (session, _):
            claimed = jobs.claim_due(session, claimed_at, worker, limit, self._service_lease)
        fired = 0
        for job_id, kind in claimed:
            try:
                # Without an explicit `now`, each job fires at the time it is fired: a batch takes seconds, and
                # its audit rows and follow-up timers must not carry the moment the batch was claimed.
                if kind in CALLS:
                    fired += self.run_service_job(job_id, worker=worker, now=now)
                else:
                    fired += self.fire_job(job_id, now=now, worker=worker)
            except Conflict:
                continue  # someone changed the instance meanwhile; the lease expires and the job comes back
            except Exception as exc:  # noqa: BLE001 - failures are data: record, back off, go on
                log.exception("Firing job %s failed", job_id)
                with self._command(now) as (session, failed_at):
                    jobs.record_failure(session, job_id, f"{type(exc).__name__}: {exc}", failed_at)
        return fired

    def sweep(self) -> int:
        """Fire everything due now, batch after batch, until a batch fires nothing; how many fired in all.

        What the scheduler does each tick, the CLI's `sweep` and the demo: a backlog (after downtime) is drained
        at once, not one batch per tick.
        """
        total = fired = self.fire_due_jobs()
        while fired:
            fired = self.fire_due_jobs()
            total += fired
        return total

    def list_jobs(self, *, instance_id: int | None = None, due_before: datetime | None = None,
                  limit: int = 100, offset: int = 0) -> list[dict]:
        """Pending jobs, soonest first (operators: what will fire, and when)."""
        query = select(Job).order_by(Job.due_at, Job.id).limit(min(max(limit, 1), 500)).offset(max(offset, 0))
        if instance_id is not None:
            query = query.where(Job.instance_id == instance_id)
        if due_before is not None:
            query = query.where(Job.due_at < due_before)
        with self._sf() as session:
            return [_job_dict(job) for job in session.scalars(query)]

    def execute_job(self, job_id: int, *, actor: Actor) -> bool:
        """Fire a job now, whatever its due time (admins and supervisors); audited."""
        _ensure_operator(actor)
        with self._sf() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound(f"There is no pending job {job_id}; it may have fired already.")
            instance_id, element_id, kind = job.instance_id, job.element_id, job.kind
        if kind in CALLS:
            operator = f"{actor.username}@{worker_name()}"
            claimed = self.claim_for_operator(job_id, operator, self._clock())
            fired = claimed and self.run_service_job(job_id, worker=operator)
        else:
            fired = self.fire_job(job_id, actor=actor.username)
        with self._command() as (session, now):
            audit.append(session, [audit.AuditRecord(event="job_executed", actor=actor.username, at=now,
                                                     instance_id=instance_id, element_id=element_id,
                                                     details={"job_id": job_id, "fired": fired})])
        return fired

    @retried
    def reschedule_job(self, job_id: int, due_at: datetime, *, actor: Actor) -> dict:
        """Move a pending job to `due_at` (admins and supervisors); audited with the old and new time."""
        _ensure_operator(actor)
        if due_at.tzinfo is None:
            raise InvalidInput("The new due time needs a time zone, e.g. 2026-05-01T10:00:00Z.")
        with self._command() as (session, now):
            job, instance = _lock_job(session, job_id, None, now)
            if job is None:
                raise NotFound(f"There is no pending job {job_id}; it may have fired already.")
            previous = job.due_at
            if job.kind == JobKind.TIMER:
                self._move_timer(session, instance, job.task_id, due_at, now)
            job.due_at, job.locked_by, job.locked_until = due_at, None, None
            audit.append(session, [audit.AuditRecord(
                event="job_rescheduled", actor=actor.username, at=now, instance_id=job.instance_id,
                element_id=job.element_id, details={"job_id": job_id, "from": previous, "to": due_at})])
            return _job_dict(job)

    def _move_timer(self, session: Session, instance: ProcessInstance | None, task_id: str, due_at: datetime,
                    now: datetime) -> None:
        """Move the timer's own due time in the workflow: it, not the job row, decides whether the timer fires.

        Moving only the row made a timer moved earlier "fire" at the new time without firing, again each time
        its lease ran out, until the old time.
        """
        if instance is None or instance.status in FINAL:
            return
        workflow = load_workflow(session, instance.id, self._specs.get(session, instance.definition_id),
                                 self._script_engine)
        task = workflow.get_task_from_id(UUID(task_id))
        value = task.internal_data.get("event_value") if task is not None else None
        touch(workflow, [task] if task is not None else [])
        if isinstance(value, dict):  # a cycle: its next occurrence moves
            value["next"] = due_at.isoformat()
        elif isinstance(value, str):
            task.internal_data["event_value"] = due_at.isoformat()
        else:
            return
        save_workflow(session, instance, workflow)
        instance.updated_at = now


def _lock_job(session: Session, job_id: int, worker: str | None,
              now: datetime) -> tuple[Job | None, ProcessInstance | None]:
    """Lock the job's instance, then the job; (None, None) when the job is gone (or, for `worker`, not its to fire).

    Every command locks an instance before its jobs (a task completion holds the instance while it deletes the
    task's boundary jobs); locking the job first deadlocked with it on PostgreSQL.
    """
    pending = session.get(Job, job_id)
    if pending is None:
        return None, None
    instance = jobs.active_instance(session, pending.instance_id)
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or (worker is not None and (job.locked_by != worker or job.due_at > now)):
        return None, None
    return job, instance


def _ensure_operator(actor: Actor) -> None:
    if not actor.has_role("admin", "supervisor"):
        raise Forbidden(f"{actor.username!r} may not operate jobs: only admins and supervisors may.")


def _job_dict(job: Job) -> dict:
    return {"id": job.id, "kind": job.kind, "instance_id": job.instance_id, "task_id": job.task_id,
            "element_id": job.element_id, "due_at": job.due_at, "attempts": job.attempts,
            "last_error": job.last_error, "locked_by": job.locked_by, "locked_until": job.locked_until,
            "status": job.status, "topic": job.topic, "max_attempts": job.max_attempts}
