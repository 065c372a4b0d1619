"""GET /api/v1/audit/verify: check the hash chains of the whole audit log (a trail per instance, and its own)."""

from flask_smorest import Blueprint

from engine import audit
from web.api.common import actor
from web.api.common import errors
from web.api.common import services
from web.api.policy import Op
from web.api.policy import require
from web.api.schemas import VerifySchema

bp = Blueprint("api_audit", __name__, url_prefix="/api/v1/audit", description="The tamper-evident audit log.")


@bp.route("/verify", methods=["GET"])
@bp.response(200, VerifySchema)
@errors(bp, 403, 503)
def audit_verify():
    """Walk every trail; `ok` is false and `first_bad_seq` names the first edited, inserted or reordered event, or
    the event after a deleted one (null when a trail's last events were deleted: `reason` names the trail)."""
    require(actor(), Op.AUDIT_VERIFY)
    with services().session_factory() as session:
        return audit.verify(session)
