"""Operator controls over pending jobs (timers, reminders, overdue notices): list, fire now, reschedule.

Admins and supervisors only; the engine checks the same roles again and audits every firing and move.
"""

from datetime import datetime

from flask_smorest import Blueprint
from sqlalchemy import func
from sqlalchemy import select

from engine.models import Job
from web.api.common import actor
from web.api.common import check_id
from web.api.common import envelope
from web.api.common import errors
from web.api.common import services
from web.api.policy import Op
from web.api.policy import require
from web.api.schemas import JobDueSchema
from web.api.schemas import JobExecutedSchema
from web.api.schemas import JobPage
from web.api.schemas import JobQuerySchema
from web.api.schemas import JobSchema

bp = Blueprint("api_jobs", __name__, url_prefix="/api/v1/jobs",
               description="Pending timers, reminders and overdue notices: what fires when; fire early, move.")


@bp.route("", methods=["GET"])
@bp.arguments(JobQuerySchema, location="query")
@bp.response(200, JobPage)
@errors(bp, 400, 403, 503)
def job_list(args):
    """Pending jobs, soonest first, with their failed attempts and who is firing them right now."""
    require(actor(), Op.JOB_READ)
    instance_id, due_before = args.get("instance"), args.get("due_before")
    items = services().engine.list_jobs(instance_id=instance_id, due_before=due_before, limit=args["per_page"],
                                        offset=(args["page"] - 1) * args["per_page"])
    return envelope(items, _count(instance_id, due_before), args)


def _count(instance_id: int | None, due_before: datetime | None) -> int:
    """How many jobs `list_jobs` would list in all (it lists a page but does not count; same filter)."""
    query = select(func.count()).select_from(Job)
    if instance_id is not None:
        query = query.where(Job.instance_id == instance_id)
    if due_before is not None:
        query = query.where(Job.due_at < due_before)
    with services().session_factory() as session:
        return session.scalar(query)


@bp.route("/<int:job_id>/execute", methods=["POST"])
@bp.response(200, JobExecutedSchema)
@errors(bp, 403, 404, 409, 503)
def job_execute(job_id: int):
    """Fire a job now, ahead of its due time: the timer fires, or the reminder is sent."""
    require(actor(), Op.JOB_EXECUTE)
    return {"id": job_id, "fired": services().engine.execute_job(check_id(job_id, "pending job"), actor=actor())}


@bp.route("/<int:job_id>/due", methods=["PUT"])
@bp.arguments(JobDueSchema)
@bp.response(200, JobSchema)
@errors(bp, 400, 403, 404, 409, 503)
def job_reschedule(body, job_id: int):
    """Move a pending job to another due time (a time zone is required); a time past fires at the next sweep."""
    require(actor(), Op.JOB_RESCHEDULE)
    return services().engine.reschedule_job(check_id(job_id, "pending job"), body["due_at"], actor=actor())
