"""Read side of the engine: instances, the inbox and history. Only the instance detail loads a workflow."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement
from sqlalchemy import Select
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from engine import inbox
from engine import reminders
from engine.database import make_read_session_factory
from engine.definitions import LoadedSpec
from engine.definitions import SpecCache
from engine.errors import InvalidInput
from engine.errors import NotFound
from engine.models import AuditEvent
from engine.models import HumanTask
from engine.models import InstanceStatus
from engine.models import ProcessInstance
from engine.models import TaskCandidate
from engine.models import TaskStatus
from engine.open_tasks import WINDOW
from engine.runtime import WorkflowCache
from engine.runtime import element_ids
from engine.runtime import load_workflow
from engine.runtime import variables_of
from engine.sql import Prepared
from engine.values import detached
from engine.values import frozen
from engine.views import OPEN_TASKS_IN_VIEW
from engine.views import EventView
from engine.views import InstanceView
from engine.views import TaskView

SORTS = {
    "created": (HumanTask.created_at, HumanTask.id),
    # NULLS LAST (not `due_at IS NULL, due_at`): the same order, but one ix_human_task_status_due can serve.
    "due": (HumanTask.due_at.asc().nulls_last(), HumanTask.created_at, HumanTask.id),
    "priority": (HumanTask.priority.desc(), HumanTask.created_at, HumanTask.id),
}
# Sorts an index on (status, <first sort key>) serves in order: a page walks it and stops after `limit` rows.
WALKED_SORTS = frozenset({"created", "due", "priority"})
MAX_PAGE = 500


@dataclass(frozen=True)
class TaskFilter:
    """What an inbox asks for. `user`/`groups` select tasks that user may work on (assigned or offered)."""

    user: str | None = None
    groups: frozenset[str] = frozenset()
    assignee: str | None = None
    candidate_group: str | None = None
    business_key: str | None = None
    instance_id: int | None = None
    status: str = TaskStatus.OPEN
    due_before: datetime | None = None
    overdue_at: datetime | None = None
    sort: str = "created"
    limit: int = 50
    offset: int = 0


def _offered_match(user: str, groups: frozenset[str]) -> ColumnElement[bool]:
    return or_(and_(TaskCandidate.kind == "user", TaskCandidate.name == user),
               and_(TaskCandidate.kind == "group", TaskCandidate.name.in_(sorted(groups))))


def offered_task_ids(user: str, groups: frozenset[str]) -> Select:
    """SELECT the ids of tasks offered to `user` or one of `groups` (candidate rows; any status or assignee)."""
    return select(TaskCandidate.task_id).where(_offered_match(user, groups))


def visible_to(user: str, groups: frozenset[str], *, walk: bool = True) -> ColumnElement[bool]:
    """SQL: the tasks `user` may work on: assigned to them, or unassigned and offered to them or one of `groups`.

    Two forms of the same test. `walk` suits a page read in the order of an index: no OR for the planner to split
    into index lookups, so it walks the index in order and stops after a page, checking each unassigned row's
    1-3 candidate rows by their primary key. The check is a scalar subquery, not EXISTS, or PostgreSQL hashes every
    candidate row of the user's groups (completed tasks' included) before the first row; and it matches
    `kind:name`, so that no planner (PostgreSQL before its first ANALYZE did) probes ix_task_candidate_kind_name,
    which holds a whole group's rows, once per task. The other form collects the visible tasks through that index,
    for when all of them are read anyway (a count, a sort no index serves: none today) or they are few (a user in no
    group).
    """
    if not walk:
        return or_(HumanTask.assignee == user,
                   and_(HumanTask.assignee.is_(None), HumanTask.id.in_(offered_task_ids(user, groups))))
    keys = [f"user:{user}", *(f"group:{group}" for group in sorted(groups))]
    probe = (select(TaskCandidate.task_id)
             .where(TaskCandidate.task_id == HumanTask.id, (TaskCandidate.kind + ":" + TaskCandidate.name).in_(keys))
             .limit(1).scalar_subquery())
    return case((HumanTask.assignee.is_(None), probe.is_not(None)), else_=HumanTask.assignee == user)


def task_query(f: TaskFilter) -> Select:
    if f.sort not in SORTS:
        raise InvalidInput(f"Unknown sort {f.sort!r}; use one of {', '.join(SORTS)}.")
    query = select(HumanTask)
    if f.status:
        query = query.where(HumanTask.status == f.status)
    if f.user is not None:
        query = query.where(visible_to(f.user, f.groups, walk=f.sort in WALKED_SORTS and bool(f.groups)))
    if f.assignee is not None:
        query = query.where(HumanTask.assignee == f.assignee)
    if f.candidate_group is not None:
        query = query.where(HumanTask.id.in_(select(TaskCandidate.task_id).where(
            TaskCandidate.kind == "group", TaskCandidate.name == f.candidate_group)))
    if f.business_key is not None:
        query = query.where(HumanTask.business_key == f.business_key)
    if f.instance_id is not None:
        query = query.where(HumanTask.instance_id == f.instance_id)
    if f.due_before is not None:
        query = query.where(HumanTask.due_at < f.due_before)
    if f.overdue_at is not None:
        query = query.where(HumanTask.status == TaskStatus.OPEN, HumanTask.due_at < f.overdue_at)
    return query.order_by(*SORTS[f.sort]).limit(min(max(f.limit, 1), MAX_PAGE)).offset(max(f.offset, 0))


_TASK_FIELDS = [HumanTask.__table__.c[name] for name in TaskView.__dataclass_fields__ if name != "variables"]
_OPEN = (HumanTask.instance_id == bindparam("b_instance"), HumanTask.status == TaskStatus.OPEN)
# One row more than they list: it tells whether the count needs a query of its own.
_OPEN_TASKS = {limit: Prepared(select(*_TASK_FIELDS).where(*_OPEN).order_by(*SORTS["created"]).limit(limit + 1))
               for limit in (OPEN_TASKS_IN_VIEW, WINDOW)}
_OPEN_TASK_COUNT = Prepared(select(func.count().label("n")).select_from(HumanTask).where(*_OPEN))


_INSTANCE_STATE = select(ProcessInstance.definition_id, ProcessInstance.lock_version).where(
    ProcessInstance.id == bindparam("b_id"))


def open_task_views(session: Session, instance_id: int, limit: int = OPEN_TASKS_IN_VIEW) -> tuple[list[TaskView], int]:
    """The instance's oldest open tasks (at most `limit`: OPEN_TASKS_IN_VIEW, or open_tasks.WINDOW) as plain rows,
    and how many it has in all.

    The count is a second query only when there are more than that: most instances have a few open tasks, and
    every command's answer reads them.
    """
    params = {"b_instance": instance_id}
    rows = _OPEN_TASKS[limit].all(session, params)
    count = len(rows) if len(rows) <= limit else _OPEN_TASK_COUNT.first(session, params)["n"]
    return [TaskView.of_columns(row) for row in rows[:limit]], count


def instance_view(instance: ProcessInstance, loaded: LoadedSpec, workflow, open_tasks: list[TaskView],
                  open_task_count: int, *, detach: bool = False) -> InstanceView:
    """The view of an instance from its row, its workflow, its oldest open tasks and how many it has in all.

    `detach` copies the variables deeply (`values.frozen`: taken now, built when first read): a workflow that stays
    cached must not share objects with an answer that another thread may still be serializing while the next
    command changes them.
    """
    active, completed = element_ids(workflow)
    variables = variables_of(workflow)
    return InstanceView(
        id=instance.id, process_key=instance.process_key, version=loaded.version,
        definition_id=instance.definition_id, business_key=instance.business_key,
        status=instance.status, started_at=instance.started_at, started_by=instance.started_by,
        ended_at=instance.ended_at, error_message=instance.error_message, open_task_count=open_task_count,
        variables=frozen(variables) if detach else variables, open_tasks=open_tasks,
        active_elements=active, completed_elements=completed,
    )


class Queries:
    def __init__(self, session_factory: sessionmaker[Session], spec_cache: SpecCache, script_engine,
                 workflows: WorkflowCache | None = None):
        self._sf = session_factory
        self._reads = make_read_session_factory(session_factory)
        self._specs = spec_cache
        self._workflows = workflows or WorkflowCache()
        # Attached to every loaded workflow, reads included: no workflow ever holds the unsandboxed default.
        self._script_engine = script_engine

    def get_instance(self, instance_id: int) -> InstanceView:
        """Status, variables, the oldest open tasks and their count, and the BPMN elements active and done."""
        with self._sf() as session:
            instance = session.get(ProcessInstance, instance_id)
            if instance is None:
                raise NotFound(f"There is no process instance {instance_id}.")
            loaded = self._specs.get(session, instance.definition_id)
            workflow = load_workflow(session, instance_id, loaded, self._script_engine)
            tasks, count = open_task_views(session, instance_id)
            return instance_view(instance, loaded, workflow, tasks, count)

    def list_instances(self, *, business_key: str | None = None, process_key: str | None = None,
                       status: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
        """Instance summaries (no workflow loading), newest first."""
        if status is not None and status not in set(InstanceStatus):
            raise InvalidInput(f"Unknown status {status!r}; use one of {', '.join(InstanceStatus)}.")
        query = select(ProcessInstance.id, ProcessInstance.process_key, ProcessInstance.business_key,
                       ProcessInstance.status, ProcessInstance.started_at, ProcessInstance.ended_at,
                       ProcessInstance.definition_id)
        for column, value in ((ProcessInstance.business_key, business_key),
                              (ProcessInstance.process_key, process_key), (ProcessInstance.status, status)):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(ProcessInstance.id.desc()).limit(min(max(limit, 1), MAX_PAGE)).offset(max(offset, 0))
        with self._sf() as session:
            return [dict(row._mapping) for row in session.execute(query)]

    def get_task(self, task_id: str, *, with_variables: bool = True) -> TaskView:
        """One task; with the variables it sees (this loads its workflow, unlike the inbox lists)."""
        # Without variables, one statement and no transaction (the API asks it before assigning a task).
        with (self._sf if with_variables else self._reads)() as session:
            row = inbox.load_row(session, str(task_id))  # a plain row, not an ORM object
            if row is None:
                raise NotFound(f"There is no task {task_id!r}.")
            if not with_variables:
                return TaskView.of(row)
            instance = session.connection().execute(_INSTANCE_STATE, {"b_id": row.instance_id}).one()
            loaded = self._specs.get(session, instance.definition_id)
            # Borrow the cached workflow while reading (no command can take it meanwhile), then give it back.
            workflow = self._workflows.take(row.instance_id, instance.lock_version)
            if workflow is None:
                workflow = load_workflow(session, row.instance_id, loaded, self._script_engine)
                task = workflow.get_task_from_id(UUID(row.id))
                return TaskView.of(row, dict(task.data) if task is not None else {})
            try:
                task = workflow.get_task_from_id(UUID(row.id))
                return TaskView.of(row, detached(task.data) if task is not None else {})
            finally:
                self._workflows.put(row.instance_id, instance.lock_version, workflow)

    def list_tasks(self, task_filter: TaskFilter | None = None) -> list[TaskView]:
        """The inbox: one indexed query over task rows, never a workflow deserialization."""
        with self._sf() as session:
            return [TaskView.of(row) for row in session.scalars(task_query(task_filter or TaskFilter()))]

    def history(self, instance_id: int) -> list[EventView]:
        """The instance's audit events, oldest first."""
        with self._sf() as session:
            if session.get(ProcessInstance, instance_id) is None:
                raise NotFound(f"There is no process instance {instance_id}.")
            rows = session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance_id)
                                   .order_by(AuditEvent.seq))
            return [EventView.of(row) for row in rows]

    def list_notifications(self, username: str, groups: frozenset[str], *, unread_only: bool = False,
                           limit: int = 50, offset: int = 0) -> list[dict]:
        """Notifications for a user and their groups, newest first, with that user's read flag."""
        with self._sf() as session:
            return reminders.list_for(session, username, groups, unread_only, min(max(limit, 1), MAX_PAGE),
                                      max(offset, 0))
