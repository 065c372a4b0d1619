"""How a user relates to a task or an instance (own, involved, team, other): in Python for one object, in SQL
for lists. The two must agree; `policy` decides what each relation allows.

Reads compose SQL on the engine's inbox tables because `TaskFilter` cannot express "visible to" (see NOTES-api.md).
"""

from collections.abc import Iterable

from sqlalchemy import ColumnElement
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import true
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from crm.teams import members_of
from crm.teams import members_query
from engine.actor import Actor
from engine.errors import NotFound
from engine.models import HumanTask
from engine.models import ProcessInstance
from engine.queries import TaskFilter
from engine.queries import offered_task_ids
from engine.queries import task_query
from engine.views import OPEN_TASKS_IN_VIEW
from engine.views import TaskView
from web.api.policy import Scope

OWN, INV, TEAM, ALL = Scope.OWN, Scope.INVOLVED, Scope.TEAM, Scope.ALL


class Viewer:
    """One actor looking at tasks and instances; the team (members of the actor's groups) is read once, lazily."""

    def __init__(self, actor: Actor, session_factory: sessionmaker[Session]):
        self.actor = actor
        self._sf = session_factory
        self._team: frozenset[str] | None = None

    @property
    def team(self) -> frozenset[str]:
        return self.team_in(None)

    def team_in(self, session: Session | None) -> frozenset[str]:
        """The team, read in `session` if given (a command's transaction: no second connection while it holds its
        locks, which could wait for a free one in the pool forever), else in a session of its own."""
        if self._team is None:
            if session is not None:
                self._team = frozenset(members_of(session, self.actor.groups))
            else:
                with self._sf() as own:
                    self._team = frozenset(members_of(own, self.actor.groups))
        return self._team

    # --- one object -------------------------------------------------------------------------------------------

    def task_relation(self, task: TaskView, session: Session | None = None) -> Scope:
        """OWN (assigned to me), INVOLVED (offered to me or my groups, or done by me), TEAM, or ALL (anyone's).
        `session`: where to read the team if it is needed and not read yet (else a session of its own)."""
        me = self.actor.username
        if task.assignee == me:
            return OWN
        if task.completed_by == me or me in task.candidate_users or self.actor.groups & set(task.candidate_groups):
            return INV
        if self.actor.groups:
            team = self.team_in(session)
            if task.assignee in team or task.completed_by in team:
                return TEAM
        return ALL

    def instance_relation(self, instance_id: int) -> Scope:
        """OWN (I started it), INVOLVED (I have a task in it), TEAM (a member started it or has a task), or ALL."""
        with self._sf() as session:
            started_by = session.scalar(select(ProcessInstance.started_by).where(ProcessInstance.id == instance_id))
            if started_by is None:
                raise NotFound(f"There is no process instance {instance_id}.")
            tasks = [TaskView.of(row) for row in session.scalars(
                select(HumanTask).where(HumanTask.instance_id == instance_id))]
        if started_by == self.actor.username:
            return OWN
        closest = min((self.task_relation(t) for t in tasks), default=ALL)
        if closest <= INV:
            return INV
        if closest == TEAM or (self.actor.groups and started_by in self.team):
            return TEAM
        return ALL

    # --- lists ------------------------------------------------------------------------------------------------

    def task_clause(self, scope: Scope) -> ColumnElement[bool]:
        """SQL: the tasks whose relation to the actor is within `scope`."""
        me = self.actor.username
        if scope >= ALL:
            return true()
        if scope <= Scope.NONE:
            return false()
        own = HumanTask.assignee == me
        if scope == OWN:
            return own
        # Offered to me or my groups whoever holds it now: wider than the engine's `visible_to` (see task_relation).
        offered = offered_task_ids(me, self.actor.groups)
        involved = or_(own, HumanTask.completed_by == me, HumanTask.id.in_(offered))
        if scope == INV or not self.actor.groups:
            return involved
        members = members_query(self.actor.groups)
        return or_(involved, HumanTask.assignee.in_(members), HumanTask.completed_by.in_(members))

    def instance_clause(self, scope: Scope) -> ColumnElement[bool]:
        """SQL: the instances whose relation to the actor is within `scope`."""
        if scope >= ALL:
            return true()
        if scope <= Scope.NONE:
            return false()
        own = ProcessInstance.started_by == self.actor.username
        if scope == OWN:
            return own
        with_tasks = ProcessInstance.id.in_(select(HumanTask.instance_id).where(self.task_clause(scope)))
        if scope == TEAM and self.actor.groups:
            return or_(own, with_tasks, ProcessInstance.started_by.in_(members_query(self.actor.groups)))
        return or_(own, with_tasks)

    def visible_tasks(self, tasks: Iterable[TaskView], scope: Scope) -> list[TaskView]:
        """Only the tasks within `scope` (an instance's open tasks, as this actor may see them)."""
        return [t for t in tasks if self.task_relation(t) <= scope]

    def visible_open_tasks(self, instance_id: int, scope: Scope) -> tuple[list[TaskView], int]:
        """The instance's oldest open tasks within `scope` (as many as a view lists), and how many there are in all.

        For an instance with more open tasks than its view lists: the view's page, filtered, could leave out tasks
        this actor may see, and its count would include tasks they may not.
        """
        query = task_query(TaskFilter(instance_id=instance_id, limit=OPEN_TASKS_IN_VIEW)).where(
            self.task_clause(scope))
        with self._sf() as session:
            tasks = [TaskView.of(row) for row in session.scalars(query)]
            if len(tasks) < OPEN_TASKS_IN_VIEW:
                return tasks, len(tasks)
            every = query.order_by(None).limit(None).offset(None).subquery()
            return tasks, session.scalar(select(func.count()).select_from(every))
