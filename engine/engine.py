"""The Engine facade: every change to a process is a command in one database transaction."""

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from datetime import timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.task import TaskState
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from engine import audit
from engine import inbox
from engine import jobs
from engine import messages
from engine import queries
from engine import reminders
from engine import service_jobs
from engine import step
from engine.actor import Actor
from engine.clock import CommandClock
from engine.contention import retried
from engine.correlation import EventCommands
from engine.db import utcnow
from engine.definitions import SpecCache
from engine.definitions import resolve_definition_id
from engine.errors import Conflict
from engine.errors import Forbidden
from engine.errors import NotFound
from engine.forms import check_variables
from engine.forms import validate_form
from engine.handlers import HandlerRegistry
from engine.handlers import HandlerServices
from engine.history import Recorder
from engine.listeners import Listener
from engine.models import HumanTask
from engine.models import InstanceStatus
from engine.models import ProcessInstance
from engine.models import TaskStatus
from engine.open_tasks import WINDOW
from engine.open_tasks import Window
from engine.open_tasks import Windows
from engine.runtime import WorkflowCache
from engine.runtime import is_human
from engine.runtime import iter_tasks
from engine.runtime import load_workflow
from engine.runtime import new_workflow
from engine.runtime import save_workflow
from engine.runtime import variables_of
from engine.sandbox import ScriptPool
from engine.sandbox import make_script_engine
from engine.service_commands import DEFAULT_SERVICE_LEASE
from engine.service_commands import ServiceCommands
from engine.sql import bind_dbapi
from engine.status import FINAL
from engine.status import ensure_active
from engine.status import transition
from engine.sweep import JobCommands
from engine.task_rows import touch
from engine.views import InstanceView
from engine.views import TaskView

# A caller's access policy, asked inside a task command about the task as the command read it; raises to refuse.
# The session is the command's (None when asked outside one): what the policy reads, it reads there.
Authorize = Callable[[Session | None, TaskView], None]


# Off unless asked for: without it, every command reads its workflow back from the database (the app turns it on).
DEFAULT_WORKFLOW_CACHE = 0


class Engine(JobCommands, ServiceCommands, EventCommands, queries.Queries):
    """Start instances, work tasks, cancel; read instances, tasks and history (see `queries.Queries`)."""

    def __init__(self, session_factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow,
                 script_pool: ScriptPool | None = None, spec_cache: SpecCache | None = None,
                 reminder_before: timedelta = reminders.DEFAULT_BEFORE, workflow_cache: int | None = None,
                 handlers: HandlerRegistry | None = None, services: HandlerServices | None = None,
                 service_lease: timedelta = DEFAULT_SERVICE_LEASE, mail_directory: reminders.Directory | None = None,
                 listener: Listener | None = None):
        """`workflow_cache`: how many live workflows to keep in memory between commands (see WorkflowCache;
        default DEFAULT_WORKFLOW_CACHE, off).

        `handlers` run service tasks by topic, with `services` (documents, notifications) at hand;
        `service_lease` is how long a worker may take over one call before another may try it again;
        with `mail_directory` (people -> e-mail addresses) reminders and overdue notices also go out by mail;
        `listener` hears milestones and end events inside each command (the CRM's deal stages).
        """
        self._clock = CommandClock(clock)
        self._reminder_before = reminder_before
        self._handlers = handlers or HandlerRegistry()
        self._services = services
        self._service_lease = service_lease
        self._mail_directory = mail_directory
        self._listener = listener
        self._windows = Windows()
        super().__init__(session_factory, spec_cache or SpecCache(), make_script_engine(script_pool, self._clock),
                         WorkflowCache(DEFAULT_WORKFLOW_CACHE if workflow_cache is None else workflow_cache))

    def now(self) -> datetime:
        """The engine's clock (the injected one: tests and the demo move it by hand)."""
        return self._clock()

    @contextmanager
    def _command(self, now: datetime | None = None) -> Iterator[tuple[Session, datetime]]:
        """One write transaction at one frozen instant; a lost optimistic-lock race is a Conflict, nothing applied.

        The transaction is the connection's; the command's Session joins it, and its pending ORM changes are flushed
        before the commit. Half the price of a Session's own begin/commit, which every command would pay.
        """
        try:
            with self._clock.frozen(now) as frozen, self._sf.kw["bind"].connect() as connection:
                connection.execution_options(dealflow_write=True)
                with connection.begin(), self._sf(bind=connection, join_transaction_mode="rollback_only") as session:
                    bind_dbapi(session, connection)
                    yield session, frozen
                    session.flush()
        except StaleDataError as exc:
            raise Conflict("Someone else changed this process instance at the same moment; "
                           "nothing of yours was applied. Refresh and try again.") from exc

    @retried
    def start_instance(self, process_key: str, *, actor: Actor, business_key: str | None = None,
                       variables: dict[str, Any] | None = None, version: int | None = None) -> InstanceView:
        """Start the latest (or the given) version of `process_key` and run it to its first wait state."""
        variables = check_variables(variables or {})
        with self._command() as (session, now):
            loaded = self._specs.get(session, resolve_definition_id(session, process_key, version))
            kept: list = []
            self._start(session, now, loaded, actor, business_key, variables, keep=kept)
        view, instance, workflow = kept[0]
        self._keep(instance, workflow)
        return view

    def _start(self, session: Session, now: datetime, loaded, actor: Actor, business_key: str | None,
               variables: dict[str, Any], then: Callable | None = None, keep: list | None = None) -> int:
        """Create and run a new instance inside the caller's transaction; `then(workflow)` runs after the start.

        With `keep`, (the instance's view as the caller will see it after commit, the instance, the workflow) is
        appended to it.
        """
        variables = _apply_start_form(loaded.spec, variables)
        workflow = new_workflow(loaded, variables, self._script_engine)
        recorder = Recorder(actor.username, now)
        recorder.add("instance_started", process_key=loaded.key, version=loaded.version,
                     business_key=business_key, variables=variables)

        def begin():
            workflow.do_engine_steps()
            if then is not None:
                then(workflow)

        outcome = step.run(workflow, begin, recorder, new=True)
        recorder.records[0].details["path"] = outcome.path
        instance = ProcessInstance(
            definition_id=loaded.definition_id, process_key=loaded.key, business_key=business_key,
            status=InstanceStatus.RUNNING, state_json="", started_at=now, started_by=actor.username,
            updated_at=now, audit_seq=0, audit_hash=audit.GENESIS,
        )
        view = self._persist(session, instance, workflow, outcome, recorder, now,
                             loaded if keep is not None else None, locked=True)
        if keep is not None:
            keep.append((view, instance, workflow))
        return instance.id

    @retried
    def complete_task(self, task_id: str, *, actor: Actor, data: dict[str, Any] | None = None,
                      answer: bool = True, authorize: Authorize | None = None) -> InstanceView | None:
        """Complete a user task with form data (validated), then run the process to its next wait state.

        The answer is the instance's view; `answer=False` skips building it (a client completing tasks in bulk
        does not read it, and on an instance with hundreds of open tasks it is most of a completion's work).
        `authorize(session, task)`: the caller's own access policy, asked inside the command about the task as the
        command read it, its instance locked (raises to refuse): no change between a check and the command slips
        through.
        """
        with self._command() as (session, now):
            found = step.load_task_and_instance(session, str(task_id))
            if found is None:
                raise NotFound(_NO_TASK.format(task_id=task_id))
            row, instance = found
            if authorize is not None:
                authorize(session, TaskView.of(row))
            inbox.ensure_can_work(row, actor)
            cleaned = validate_form(row.form, data or {}, row.name or row.bpmn_id)
            ensure_active(instance.id, instance.status)
            loaded = self._specs.get(session, instance.definition_id)
            workflow = self._workflows.take(instance.id, instance.lock_version)
            if workflow is None:
                workflow = load_workflow(session, instance.id, loaded, self._script_engine)
            task = workflow.get_task_from_id(UUID(task_id))
            if task is None or task.state != TaskState.READY:
                raise Conflict(f"The {inbox.label(row)} no longer waits for input; refresh your inbox.")
            changed = {k: {"old": task.data.get(k), "new": v} for k, v in cleaned.items() if task.data.get(k) != v}
            recorder = Recorder(actor.username, now, instance.id)
            recorder.add("task_completed", task_id=row.id, element_id=row.bpmn_id, name=row.name,
                         data=cleaned, changed=changed)
            touch(workflow, [task])
            task.data.update(cleaned)
            outcome = step.run(workflow, task.run, recorder)
            recorder.records[0].details["path"] = outcome.path
            outcome.changes.cancelled_human_ids[:] = [t for t in outcome.changes.cancelled_human_ids if t != task.id]
            view = self._persist(session, instance, workflow, outcome, recorder, now, loaded if answer else None,
                                 writes=lambda batch: inbox.close(batch, row, TaskStatus.COMPLETED, actor.username,
                                                                  now), locked=True, closed=row.id)
        self._keep(instance, workflow)
        return view

    def _keep(self, instance: ProcessInstance, workflow) -> None:
        """After a commit: keep the workflow of an instance that will see more commands, with the window of open
        tasks its command left (true for the instance row as committed)."""
        if instance.status not in FINAL:
            self._windows.seal(workflow, (instance.lock_version, instance.audit_seq))
            self._workflows.put(instance.id, instance.lock_version, workflow)

    def claim_task(self, task_id: str, *, actor: Actor, authorize: Authorize | None = None) -> TaskView:
        """Take a task offered to one of your groups, so that nobody else works on it (`authorize`: as for
        complete_task)."""
        return self._reassign(task_id, actor, lambda s, row, now: inbox.claim(s, row, actor, now) and
                              ("task_claimed", {}), authorize)

    def unclaim_task(self, task_id: str, *, actor: Actor, authorize: Authorize | None = None) -> TaskView:
        """Give a claimed task back to its candidate groups (`authorize`: as for complete_task)."""
        return self._reassign(task_id, actor, lambda s, row, now:
                              ("task_unclaimed", {"previous": inbox.unclaim(s, row, actor, now)}), authorize)

    def assign_task(self, task_id: str, username: str, *, actor: Actor, authorize: Authorize | None = None) -> TaskView:
        """Give a task to `username` (supervisors and admins); the caller checks that the user exists (`authorize`:
        as for complete_task)."""
        return self._reassign(task_id, actor, lambda s, row, now:
                              ("task_assigned", {"previous": inbox.assign(s, row, username, actor, now),
                                                 "assignee": username}), authorize)

    @retried
    def _reassign(self, task_id: str, actor: Actor, apply, authorize: Authorize | None = None) -> TaskView:
        with self._command() as (session, now):
            row = self._task_row(session, task_id)
            if authorize is not None:
                authorize(session, TaskView.of(row))
            # The instance first, then the task row (the compare-and-set of its assignee), as a completion locks them.
            instance = audit.lock_trail(session, row.instance_id)
            event = apply(session, row, now)
            if event:
                name, details = event
                audit.append(session, [audit.AuditRecord(
                    event=name, actor=actor.username, at=now, instance_id=row.instance_id, task_id=row.id,
                    element_id=row.bpmn_id, details=details)], instance)
            view = TaskView.of(row)
        return view

    @retried
    def set_variables(self, instance_id: int, variables: dict[str, Any], *, actor: Actor,
                      reason: str | None = None) -> InstanceView:
        """Change process data of a running instance (admins and supervisors; the CRM after a deal's handover).

        The values go to every task that is open or waiting, so what the process does next sees them (a task whose
        assignee is `${owner}`, a gateway over `amount`); finished tasks keep the data they ran with. Audited with
        the old and new values; nothing is recorded when nothing changes.
        """
        if not actor.has_role("admin", "supervisor"):
            raise Forbidden(f"{actor.username!r} may not change process data: only admins and supervisors may.")
        variables = check_variables(variables)
        with self._command() as (session, now):
            instance = self._lock_instance(session, instance_id)
            loaded = self._specs.get(session, instance.definition_id)
            workflow = self._workflows.take(instance.id, instance.lock_version) or load_workflow(
                session, instance.id, loaded, self._script_engine)
            frontier = [t for t in iter_tasks(workflow) if t.state in (TaskState.READY, TaskState.WAITING,
                                                                          TaskState.STARTED)]
            current = variables_of(workflow)
            changed = {name: {"from": current.get(name), "to": value} for name, value in variables.items()
                       if current.get(name) != value}
            if changed:
                recorder = Recorder(actor.username, now, instance_id)
                recorder.add("variables_changed", changes=changed, reason=reason)

                def apply() -> None:
                    touch(workflow, frontier)
                    for task in frontier:
                        task.data.update({name: variables[name] for name in changed})

                outcome = step.run(workflow, apply, recorder)
                view = self._persist(session, instance, workflow, outcome, recorder, now, loaded)
        self._keep(instance, workflow)
        return view if changed else self.get_instance(instance_id)

    @retried
    def cancel_instance(self, instance_id: int, *, actor: Actor, reason: str | None = None) -> InstanceView:
        """Stop an instance for good: its open tasks are cancelled, its history kept."""
        with self._command() as (session, now):
            instance = self._lock_instance(session, instance_id)
            loaded = self._specs.get(session, instance.definition_id)
            workflow = load_workflow(session, instance.id, loaded, self._script_engine)
            workflow.cancel()
            open_ids = [r.id for r in session.query(HumanTask.id).filter_by(instance_id=instance_id,
                                                                            status=TaskStatus.OPEN)]
            inbox.cancel_rows(session, open_ids, now)
            jobs.delete_instance_jobs(session, instance_id)
            messages.delete_instance_subscriptions(session, instance_id)
            resolved = service_jobs.resolve_incidents(session, instance_id, None, "instance_cancelled",
                                                      actor.username, now)
            instance.status = transition(instance_id, instance.status, InstanceStatus.CANCELLED)
            save_workflow(session, instance, workflow)
            instance.updated_at, instance.ended_at = now, now
            records = [audit.AuditRecord(event="task_cancelled", actor=actor.username, at=now,
                                         instance_id=instance_id, task_id=tid) for tid in open_ids]
            records.append(audit.AuditRecord(event="instance_cancelled", actor=actor.username, at=now,
                                             instance_id=instance_id, details={"reason": reason}))
            audit.append(session, records + resolved)
        return self.get_instance(instance_id)

    @retried
    def mark_notification_read(self, notification_id: int, *, actor: Actor) -> None:
        """Mark a notification read for this user (group notifications are read per member)."""
        with self._command() as (session, now):
            reminders.mark_read(session, notification_id, actor.username, actor.groups, now)

    def _persist(self, session, instance, workflow, outcome, recorder, now, loaded=None,
                 writes=None, locked=False, closed: str | None = None) -> InstanceView | None:
        """step.persist; with `loaded`, also the instance's view, built in memory before the audit head is locked.
        `locked`: this transaction inserted the instance or read its row FOR UPDATE (see step.persist).
        `closed`: the task row that `writes` closes (a completion's)."""
        # The window of open tasks the last command left, if the instance row is still as it left it.
        key = None if instance.id is None else (instance.lock_version, instance.audit_seq)
        window = self._windows.take(workflow, key)
        view = None
        if loaded is not None:
            def view(new_rows, cancelled):
                removed = {str(task_id) for task_id in outcome.changes.cancelled_human_ids}
                if closed is not None:
                    removed.add(closed)
                return self._view_after(session, instance, loaded, workflow, new_rows, window, removed,
                                        cancelled + (closed is not None))
        return step.persist(session, instance, workflow, outcome, recorder, now, self._reminder_before, view,
                            self._handlers, self._listener, writes, locked)

    def _view_after(self, session: Session, instance: ProcessInstance, loaded, workflow, new_rows: list[HumanTask],
                    window: Window | None, removed: set[str], removed_count: int) -> InstanceView:
        """What get_instance would answer after this command, without a second transaction or deserialization.

        The open tasks come from the window the last command left (`open_tasks.Window`), moved on by the rows this
        command took out of the open ones (`removed`: ids, `removed_count` in all) and the rows it created. Without
        a window, they are the rows it created, unless the workflow has other ready user tasks (parallel branches,
        multi-instance): then, or when the window runs short, they are read, in the transaction, as get_instance
        reads them. Either way the view lists the oldest OPEN_TASKS_IN_VIEW and counts them all; the window is
        kept with the workflow for the next command (`_keep`).
        """
        added = [TaskView.of(row) for row in new_rows]
        if window is not None:
            window = window.follow(removed, removed_count, added)
        # Every row this command created is a ready user task: any more of them were there before.
        elif not _more_ready_human_tasks(workflow, len(new_rows)):
            window = Window.of(added)
        if window is None or not window.enough:
            window = Window(*queries.open_task_views(session, instance.id, WINDOW))
        self._windows.put(workflow, window)
        tasks, count = window.view()
        return queries.instance_view(instance, loaded, workflow, tasks, count, detach=self._workflows.maxsize > 0)

    def _task_row(self, session: Session, task_id: str) -> HumanTask:
        row = inbox.load_row(session, str(task_id))
        if row is None:
            raise NotFound(_NO_TASK.format(task_id=task_id))
        return row

    def _lock_instance(self, session: Session, instance_id: int) -> ProcessInstance:
        instance = session.get(ProcessInstance, instance_id, with_for_update=True, populate_existing=True)
        if instance is None:
            raise NotFound(f"There is no process instance {instance_id}.")
        ensure_active(instance.id, instance.status)
        return instance


def _more_ready_human_tasks(workflow, count: int) -> bool:
    """Whether the workflow has more than `count` ready user tasks (it stops at the first one past `count`)."""
    for task in iter_tasks(workflow):
        if task._state == TaskState.READY and is_human(task):
            if count == 0:
                return True
            count -= 1
    return False


_NO_TASK = "There is no task {task_id!r}; it may belong to another system or never existed."


def _apply_start_form(spec, variables: dict[str, Any]) -> dict[str, Any]:
    """A start event's form checks the fields it names; other variables (from the CRM) pass through."""
    for start in spec.start.outputs:
        fields = (getattr(start, "extensions", None) or {}).get("form")
        if fields:
            named = {f["id"] for f in fields}
            cleaned = validate_form(fields, {k: v for k, v in variables.items() if k in named},
                                    start.bpmn_name or start.bpmn_id)
            return {**variables, **cleaned}
    return variables
