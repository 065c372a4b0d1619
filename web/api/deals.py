"""Deals over HTTP: list, read, change, and the stage timeline. Who sees which deal: web.api.deal_scopes.

A change is audited (`deal_updated`); a new owner (supervisors and admins only: handing a deal over is the team
lead's call) is audited as `deal_assigned`, and the old owner's open tasks in the deal's process move to the new
owner. The process variable `owner` keeps its start value (the engine has no command to change variables), so
tasks created later with `${owner}` go to the first owner: reassign them too, or re-read the owner in the diagram.
"""

from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import select

from crm.deals import deal_dict
from crm.deals import deal_query
from crm.deals import get_deal
from crm.deals import process_variables
from crm.deals import stage_timeline
from crm.deals import update_deal
from engine.actor import Actor
from engine.database import begin_write
from engine.db import utcnow
from engine.errors import Conflict
from engine.errors import Forbidden
from engine.models import HumanTask
from engine.models import TaskStatus
from web.api.common import actor
from web.api.common import check_id
from web.api.common import errors
from web.api.common import page_of_list
from web.api.common import page_of_query
from web.api.common import services
from web.api.common import viewer
from web.api.deal_scopes import deal_clause
from web.api.deal_scopes import deal_relation
from web.api.policy import OWN
from web.api.policy import TEAM
from web.api.policy import Op
from web.api.policy import check
from web.api.policy import reach
from web.api.policy import require
from web.api.sales_schemas import DealPage
from web.api.sales_schemas import DealPatchSchema
from web.api.sales_schemas import DealQuerySchema
from web.api.sales_schemas import DealSchema
from web.api.sales_schemas import StagePage
from web.api.schemas import PageArgsSchema

bp = Blueprint("api_deals", __name__, url_prefix="/api/v1/deals",
               description="Deals: the sales funnel's objects, one process instance each.")


def _checked(op: Op, deal_id: int) -> None:
    """The deal exists and the actor may `op` it (404 when they may not even see it)."""
    require(actor(), op, OWN)
    with services().session_factory() as session:
        deal = get_deal(session, check_id(deal_id, "deal"))
        owner, instance_id = deal.owner, deal.instance_id
    check(actor(), op, deal_relation(viewer(), owner, instance_id), f"deal {deal_id}")


@bp.route("", methods=["GET"])
@bp.arguments(DealQuerySchema, location="query")
@bp.response(200, DealPage)
@errors(bp, 400, 403, 503)
def deal_list(args):
    """Deals you may see, newest first, filtered by stage, status, owner ('me') and client."""
    require(actor(), Op.DEAL_READ, OWN)
    owner = actor().username if args.get("owner") == "me" else args.get("owner")
    query = deal_query(stage=args.get("stage"), status=args.get("status"), owner=owner, client=args.get("client"))
    query = query.where(deal_clause(viewer(), reach(actor(), Op.DEAL_READ)))
    with services().session_factory() as session:
        return page_of_query(session, query, args, lambda row: deal_dict(row[0]))


@bp.route("/<int:deal_id>", methods=["GET"])
@bp.response(200, DealSchema)
@errors(bp, 403, 404, 503)
def deal_get(deal_id: int):
    """One deal with its client, contact and line items."""
    _checked(Op.DEAL_READ, deal_id)
    with services().session_factory() as session:
        return deal_dict(get_deal(session, deal_id))


@bp.route("/<int:deal_id>", methods=["PATCH"])
@bp.arguments(DealPatchSchema)
@bp.response(200, DealSchema)
@errors(bp, 400, 403, 404, 409, 422, 503)
def deal_update(body, deal_id: int):
    """Change title, amount, currency, expected close date, line items or (supervisors, admins) the owner."""
    _checked(Op.DEAL_UPDATE, deal_id)
    if "owner" in body and reach(actor(), Op.DEAL_UPDATE) < TEAM:
        raise Forbidden(f"{actor().username!r} may not hand deal {deal_id} over: ask a supervisor.",
                        details={"operation": Op.DEAL_UPDATE.value})
    now = (current_app.config.get("DEALFLOW_CLOCK") or utcnow)()
    with services().session_factory() as session, session.begin():
        begin_write(session)
        previous = update_deal(session, now, deal_id, dict(body), actor=actor().username)
        deal = get_deal(session, deal_id)
        instance_id, owner = deal.instance_id, deal.owner
    if previous is not None and instance_id is not None:
        _move_tasks(instance_id, previous, owner)
    with services().session_factory() as session:
        deal = get_deal(session, deal_id)
        answer, variables = deal_dict(deal), process_variables(deal)
    if instance_id is not None:
        _sync_process(instance_id, variables, previous)
    return answer


def _sync_process(instance_id: int, variables: dict, previous: str | None) -> None:
    """The deal's running process sees its new data (tasks to `${owner}` go to the new owner from now on)."""
    what = f"handed over from {previous}" if previous is not None else "updated"
    try:
        services().engine.set_variables(instance_id, variables, actor=Actor.system("crm"),
                                        reason=f"deal {what} by {actor().username}")
    except Conflict:
        pass  # the process has ended: nothing of it runs on this data any more


def _move_tasks(instance_id: int, previous: str, owner: str) -> None:
    """The old owner's open tasks in the deal's process go to the new owner (each an audited engine command)."""
    with services().session_factory() as session:
        task_ids = list(session.scalars(select(HumanTask.id).where(
            HumanTask.instance_id == instance_id, HumanTask.status == TaskStatus.OPEN,
            HumanTask.assignee == previous)))
    for task_id in task_ids:
        services().engine.assign_task(task_id, owner, actor=actor())


@bp.route("/<int:deal_id>/stages", methods=["GET"])
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, StagePage)
@errors(bp, 400, 403, 404, 503)
def deal_stages(args, deal_id: int):
    """The deal's stage timeline, oldest first: from, to, when, who, why (the funnel metrics' source)."""
    _checked(Op.DEAL_READ, deal_id)
    with services().session_factory() as session:
        return page_of_list(stage_timeline(session, deal_id), args)
