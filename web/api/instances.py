"""Process instances: start, list, read, cancel, and their history."""

from dataclasses import replace

from flask import url_for
from flask_smorest import Blueprint
from sqlalchemy import select

from engine.models import ProcessInstance
from web.api.common import actor
from web.api.common import check_id
from web.api.common import errors
from web.api.common import page_of_list
from web.api.common import page_of_query
from web.api.common import services
from web.api.common import viewer
from web.api.policy import Op
from web.api.policy import Scope
from web.api.policy import check
from web.api.policy import reach
from web.api.policy import require
from web.api.schemas import CancelRequestSchema
from web.api.schemas import EventPage
from web.api.schemas import InstancePage
from web.api.schemas import InstanceQuerySchema
from web.api.schemas import InstanceSchema
from web.api.schemas import PageArgsSchema
from web.api.schemas import StartRequestSchema

bp = Blueprint("api_instances", __name__, url_prefix="/api/v1/process-instances",
               description="Start and follow process instances (usually one per deal).")
SUMMARY = (ProcessInstance.id, ProcessInstance.process_key, ProcessInstance.definition_id,
           ProcessInstance.business_key, ProcessInstance.status, ProcessInstance.started_at,
           ProcessInstance.started_by, ProcessInstance.ended_at)


def as_seen(view):
    """The instance with only the open tasks this user may see, and how many of those it has in all.

    Someone who may read every task gets the view as it is. For anyone else the count is of the tasks they may see
    (the instance's own count would tell them about hidden ones), and the tasks listed are the oldest of those: the
    view's list filtered when it holds every open task, else a page and a count read as the task list reads them.
    """
    scope = reach(actor(), Op.TASK_READ)
    if scope >= Scope.ALL:
        return view
    if view.open_task_count <= len(view.open_tasks):
        tasks = viewer().visible_tasks(view.open_tasks, scope)
        return replace(view, open_tasks=tasks, open_task_count=len(tasks))
    tasks, count = viewer().visible_open_tasks(view.id, scope)
    return replace(view, open_tasks=tasks, open_task_count=count)


def _label(instance_id: int) -> str:
    return f"process instance {instance_id}"


@bp.route("", methods=["POST"])
@bp.arguments(StartRequestSchema)
@bp.response(201, InstanceSchema)
@errors(bp, 400, 403, 404, 409, 422, 503)
def instance_start(body):
    """Start the latest (or the given) version of a process and run it to its first wait state."""
    require(actor(), Op.INSTANCE_START)
    view = services().engine.start_instance(body["process_key"], actor=actor(), business_key=body.get("business_key"),
                                            variables=body["variables"], version=body.get("version"))
    return as_seen(view), 201, {"Location": url_for(".instance_get", instance_id=view.id)}


@bp.route("", methods=["GET"])
@bp.arguments(InstanceQuerySchema, location="query")
@bp.response(200, InstancePage)
@errors(bp, 400, 503)
def instance_list(args):
    """Instances you may see, newest first, filtered by business key, process key and status."""
    query = select(*SUMMARY).where(viewer().instance_clause(reach(actor(), Op.INSTANCE_READ)))
    for column, name in ((ProcessInstance.business_key, "business_key"), (ProcessInstance.process_key, "process_key"),
                         (ProcessInstance.status, "status")):
        if name in args:
            query = query.where(column == args[name])
    with services().session_factory() as session:
        return page_of_query(session, query.order_by(ProcessInstance.id.desc()), args, lambda r: dict(r._mapping))


@bp.route("/<int:instance_id>", methods=["GET"])
@bp.response(200, InstanceSchema)
@errors(bp, 404, 503)
def instance_get(instance_id: int):
    """Status, variables, open tasks, and the BPMN elements active and completed."""
    check(actor(), Op.INSTANCE_READ, viewer().instance_relation(check_id(instance_id, "process instance")),
          _label(instance_id))
    engine = services().engine
    return replace(as_seen(engine.get_instance(instance_id)), incidents=engine.list_incidents(instance_id=instance_id))


@bp.route("/<int:instance_id>/cancel", methods=["POST"])
@bp.arguments(CancelRequestSchema, required=False)
@bp.response(200, InstanceSchema)
@errors(bp, 400, 403, 404, 409, 503)
def instance_cancel(body, instance_id: int):
    """Stop an instance for good: its open tasks are cancelled, its history kept."""
    check(actor(), Op.INSTANCE_CANCEL, viewer().instance_relation(check_id(instance_id, "process instance")),
          _label(instance_id))
    view = services().engine.cancel_instance(instance_id, actor=actor(), reason=(body or {}).get("reason"))
    return as_seen(view)


@bp.route("/<int:instance_id>/history", methods=["GET"])
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, EventPage)
@errors(bp, 400, 404, 503)
def instance_history(args, instance_id: int):
    """The instance's audit events, oldest first: who did what, when, and what data changed."""
    check(actor(), Op.INSTANCE_READ, viewer().instance_relation(check_id(instance_id, "process instance")),
          _label(instance_id))
    return page_of_list(services().engine.history(instance_id), args)
