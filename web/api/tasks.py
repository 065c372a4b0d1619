"""The inbox over HTTP: list and read tasks, claim, unclaim, assign and complete them."""

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

from flask import Response
from flask_smorest import Blueprint
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.models import User
from engine.db import utcnow
from engine.engine import Authorize
from engine.errors import Forbidden
from engine.errors import NotFound
from engine.errors import Unprocessable
from engine.models import HumanTask
from engine.queries import MAX_PAGE
from engine.queries import TaskFilter
from engine.queries import task_query
from engine.views import TaskView
from web.api.common import actor
from web.api.common import errors
from web.api.common import page_of_query
from web.api.common import prefers_minimal
from web.api.common import services
from web.api.common import viewer
from web.api.instances import as_seen
from web.api.policy import Op
from web.api.policy import Scope
from web.api.policy import check
from web.api.policy import reach
from web.api.schemas import AssignRequestSchema
from web.api.schemas import CompleteRequestSchema
from web.api.schemas import InstanceSchema
from web.api.schemas import TaskPage
from web.api.schemas import TaskQuerySchema
from web.api.schemas import TaskSchema

bp = Blueprint("api_tasks", __name__, url_prefix="/api/v1/tasks", description="User tasks: the inbox.")
TASK_ID_MAX = 36
T = TypeVar("T")


@bp.route("", methods=["GET"])
@bp.arguments(TaskQuerySchema, location="query")
@bp.response(200, TaskPage)
@errors(bp, 400, 503)
def task_list(args):
    """Open tasks you may see (yours, your groups', your team's), filtered and sorted."""
    assignee = args.get("assignee")
    now = utcnow()
    task_filter = TaskFilter(
        assignee=actor().username if assignee == "me" else assignee, candidate_group=args.get("candidate_group"),
        business_key=args.get("business_key"), instance_id=args.get("instance"), due_before=args.get("due_before"),
        sort=args["sort"], overdue_at=now if args.get("overdue") is True else None, limit=MAX_PAGE,
    )
    query = task_query(task_filter).where(viewer().task_clause(reach(actor(), Op.TASK_READ)))
    if args.get("overdue") is False:
        query = query.where(or_(HumanTask.due_at.is_(None), HumanTask.due_at >= now))
    with services().session_factory() as session:
        return page_of_query(session, query, args, lambda row: TaskView.of(row[0]))


def _task(task_id: str, op: Op) -> TaskView:
    """The task, if this user may do `op` on it (404 when they may not even see it, else 403)."""
    with _hidden_if_missing(task_id):
        # Only reading a task shows its variables; the other operations need the row, not the workflow.
        task = services().engine.get_task(task_id, with_variables=op is Op.TASK_READ)
    _policy(op)(None, task)
    return task


def _command(task_id: str, op: Op, command: Callable[..., T], then: Authorize | None = None) -> T:
    """Run an engine command on a task with this user's policy for `op` (and `then`) asked inside it.

    A user whose roles grant `op` on no task at all (a designer completing, an auditor claiming) is refused from
    one plain read of the task first, before the command takes its write lock for nothing (on SQLite, the whole
    database's); the refusal is the same 404 or 403.
    """
    if reach(actor(), op) == Scope.NONE:
        _task(task_id, op)  # raises: 404 if they may not see the task either, else 403 naming it
    with _hidden_if_missing(task_id):
        return command(task_id, actor=actor(), authorize=_policy(op, then))


@contextmanager
def _hidden_if_missing(task_id: str) -> Iterator[str]:
    """A task that does not exist answers as one the user may not see: the 404 does not tell them apart."""
    if len(task_id) > TASK_ID_MAX:
        raise NotFound(f"There is no task {task_id[:TASK_ID_MAX]!r}...")
    try:
        yield task_id
    except NotFound:
        raise NotFound(_HIDDEN.format(task_id=task_id)) from None


_HIDDEN = "There is no task {task_id!r}, or you may not see it."


def _policy(op: Op, then: Authorize | None = None) -> Authorize:
    """This user's right to do `op` on a task (404 when they may not even see it, else 403), and `then` whatever
    else the operation needs, for the engine to ask inside its command about the task as the command read it:
    what is checked is what is changed."""
    def authorize(session: Session | None, task: TaskView) -> None:
        check(actor(), op, viewer().task_relation(task, session), f"task {task.name or task.bpmn_id!r} ({task.id})",
              hidden=f"task {task.id!r}")
        if then is not None:
            then(session, task)
    return authorize


@bp.route("/<string:task_id>", methods=["GET"])
@bp.response(200, TaskSchema)
@errors(bp, 404, 503)
def task_get(task_id: str):
    """One task with its form fields (what `complete` expects in `data`)."""
    return _task(task_id, Op.TASK_READ)


@bp.route("/<string:task_id>/claim", methods=["POST"])
@bp.response(200, TaskSchema)
@errors(bp, 403, 404, 409, 503)
def task_claim(task_id: str):
    """Take a task offered to one of your groups, so that nobody else works on it."""
    return _command(task_id, Op.TASK_CLAIM, services().engine.claim_task)


@bp.route("/<string:task_id>/unclaim", methods=["POST"])
@bp.response(200, TaskSchema)
@errors(bp, 403, 404, 409, 503)
def task_unclaim(task_id: str):
    """Give a claimed task back to its candidate groups."""
    return _command(task_id, Op.TASK_UNCLAIM, services().engine.unclaim_task)


@bp.route("/<string:task_id>/assign", methods=["POST"])
@bp.arguments(AssignRequestSchema)
@bp.response(200, TaskSchema)
@errors(bp, 400, 403, 404, 409, 422, 503)
def task_assign(body, task_id: str):
    """Give a task to a user: supervisors to members of their groups, admins to anyone active."""
    username = body["username"]

    def assignable(session: Session | None, task: TaskView) -> None:
        active = session.scalar(select(User.active).where(User.username == username))
        if not active:
            raise Unprocessable(f"There is no active user {username!r} to assign the task to; check the username.",
                                details={"username": username})
        if reach(actor(), Op.TASK_ASSIGN) < Scope.ALL and username not in viewer().team_in(session):
            raise Forbidden(f"{actor().username!r} may assign tasks only to members of their groups "
                            f"({', '.join(sorted(actor().groups)) or 'none'}); {username!r} is not one.")

    return _command(task_id, Op.TASK_ASSIGN, partial(services().engine.assign_task, username=username), assignable)


@bp.route("/<string:task_id>/complete", methods=["POST"])
@bp.arguments(CompleteRequestSchema)
@bp.response(200, InstanceSchema, description="The instance after the task, run to its next wait state.")
@bp.alt_response(204, description="With `Prefer: return=minimal`: the task is completed and the process run on; "
                 "no body (`Preference-Applied: return=minimal`).")
@bp.doc(parameters=[{"in": "header", "name": "Prefer", "required": False, "schema": {"type": "string"},
                     "example": "return=minimal",
                     "description": "`return=minimal` answers 204 without the instance: cheaper when completing "
                                    "many tasks (a multi-instance approval) and reading none of the answers."}])
@errors(bp, 400, 403, 404, 409, 422, 503)
def task_complete(body, task_id: str):
    """Complete a task with its form data (validated against the form), then run the process on."""
    minimal = prefers_minimal()
    view = _command(task_id, Op.TASK_COMPLETE,
                    partial(services().engine.complete_task, data=body["data"], answer=not minimal))
    if minimal:
        return Response(status=204, headers={"Preference-Applied": "return=minimal"})
    return as_seen(view)
