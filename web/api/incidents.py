"""Incidents: service calls that ran out of attempts. List them, and give one a fresh set of attempts.

Operators (admins, supervisors) list and retry; auditors list. The engine checks the retrying roles again and
audits every retry.
"""

from flask_smorest import Blueprint
from sqlalchemy import func
from sqlalchemy import select

from engine.models import Incident
from web.api.common import actor
from web.api.common import check_id
from web.api.common import envelope
from web.api.common import errors
from web.api.common import services
from web.api.policy import Op
from web.api.policy import require
from web.api.schemas import IncidentPage
from web.api.schemas import IncidentQuerySchema
from web.api.schemas import IncidentSchema

bp = Blueprint("api_incidents", __name__, url_prefix="/api/v1/incidents",
               description="Service calls that failed for good (mail server down, webhook refused): see, retry.")


@bp.route("", methods=["GET"])
@bp.arguments(IncidentQuerySchema, location="query")
@bp.response(200, IncidentPage)
@errors(bp, 400, 403, 503)
def incident_list(args):
    """Open incidents, newest first (`include_resolved=true` adds the resolved ones)."""
    require(actor(), Op.INCIDENT_READ)
    instance_id, include_resolved = args.get("instance"), args["include_resolved"]
    items = services().engine.list_incidents(instance_id=instance_id, include_resolved=include_resolved,
                                             limit=args["per_page"], offset=(args["page"] - 1) * args["per_page"])
    return envelope(items, _count(instance_id, include_resolved), args)


def _count(instance_id: int | None, include_resolved: bool) -> int:
    query = select(func.count()).select_from(Incident)
    if instance_id is not None:
        query = query.where(Incident.instance_id == instance_id)
    if not include_resolved:
        query = query.where(Incident.resolved_at.is_(None))
    with services().session_factory() as session:
        return session.scalar(query)


@bp.route("/<int:incident_id>", methods=["GET"])
@bp.response(200, IncidentSchema)
@errors(bp, 403, 404, 503)
def incident_get(incident_id: int):
    """One incident, open or resolved."""
    require(actor(), Op.INCIDENT_READ)
    return services().engine.get_incident(check_id(incident_id, "incident"))


@bp.route("/<int:incident_id>/retry", methods=["POST"])
@bp.response(200, IncidentSchema)
@errors(bp, 403, 404, 409, 503)
def incident_retry(incident_id: int):
    """Try the failed call again now, with a fresh set of attempts; the incident is resolved as `retried`."""
    require(actor(), Op.INCIDENT_RETRY)
    return services().engine.retry_incident(check_id(incident_id, "incident"), actor=actor())
