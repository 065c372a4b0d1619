"""Lead intake over HTTP: a web form, a CRM or a manager posts a lead; it becomes a deal and its process starts.

One call, two transactions: the lead (client, contact, deal, manager, audit) commits first, then the sales process
(DEALFLOW_SALES_PROCESS, `sales_funnel` by default) starts with the deal id as business key. A lead is never lost
to a process problem: when the process is not deployed (or refuses to start), the deal stays open without an
instance and the answer is 422 `process_not_deployed` / `process_not_started` naming the deal in `details`.
Deploy bpmn/ first; the deal keeps its stage "New lead" until a process runs for it.
"""

from flask import current_app
from flask import url_for
from flask_smorest import Blueprint

from crm.leads import take_lead_and_start
from engine.db import utcnow
from engine.errors import NotFound
from engine.errors import Unprocessable
from web.api.common import actor
from web.api.common import errors
from web.api.common import services
from web.api.policy import Op
from web.api.policy import require
from web.api.sales_schemas import LeadRequestSchema
from web.api.sales_schemas import LeadSchema

bp = Blueprint("api_leads", __name__, url_prefix="/api/v1/leads",
               description="Take in leads: each becomes a deal with a manager and a running sales process.")


def now():
    """The app's clock (the engine's: DEALFLOW_CLOCK in tests), so a deal's dates and its process's agree."""
    return (current_app.config.get("DEALFLOW_CLOCK") or utcnow)()


class ProcessNotDeployed(Unprocessable):
    code = "process_not_deployed"


class ProcessNotStarted(Unprocessable):
    code = "process_not_started"


@bp.route("", methods=["POST"])
@bp.arguments(LeadRequestSchema)
@bp.response(201, LeadSchema)
@errors(bp, 400, 403, 409, 422, 503)
def lead_create(body):
    """Record a lead (deduplicated by email or phone, a returning client recognised), assign a manager, start the
    sales process. 409 when nobody in the team can take it (nothing saved); 422 when the process could not start
    (the deal is kept, see `details.deal_id`)."""
    require(actor(), Op.LEAD_CREATE)
    svc, process_key = services(), current_app.config["DEALFLOW_SALES_PROCESS"]
    intake = take_lead_and_start(svc.session_factory, svc.engine, now(), process_key, actor(), **body)
    deal_id = intake.deal["id"]
    if isinstance(intake.error, NotFound):
        raise ProcessNotDeployed(
            f"Lead saved as deal {deal_id}, but the sales process {process_key!r} is not deployed, so nothing runs "
            f"for it yet. Deploy the diagrams of bpmn/ (POST /api/v1/deployments) before taking leads.",
            details={"deal_id": deal_id, "process_key": process_key}) from intake.error
    if intake.error is not None:
        raise ProcessNotStarted(f"Lead saved as deal {deal_id}, but the sales process {process_key!r} refused to "
                                f"start: {intake.error.message}", details={
                                    "deal_id": deal_id, "process_key": process_key,
                                    "cause": intake.error.to_dict()}) from intake.error
    answer = {**intake.deal, "returning_client": intake.returning_client}
    return answer, 201, {"Location": url_for("api_deals.deal_get", deal_id=deal_id)}
