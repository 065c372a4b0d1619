"""POST /api/v1/tokens (log in) and DELETE /api/v1/tokens/current (log out)."""

from datetime import timedelta

from flask import current_app
from flask import g
from flask_smorest import Blueprint

from crm.tokens import issue_token
from crm.tokens import revoke_token
from crm.users import authenticate
from engine.database import begin_write
from engine.db import utcnow
from engine.errors import Unauthorized
from web.api.common import errors
from web.api.common import services
from web.api.schemas import TokenRequestSchema
from web.api.schemas import TokenSchema

bp = Blueprint("api_tokens", __name__, url_prefix="/api/v1/tokens", description="Log in and out: bearer tokens.")


@bp.route("", methods=["POST"])
@bp.doc(security=[])
@bp.arguments(TokenRequestSchema)
@bp.response(201, TokenSchema)
@errors(bp, 400, 401, 429, 503)
def token_create(body):
    """Exchange a username and password for a bearer token that expires (DEALFLOW_TOKEN_TTL_HOURS)."""
    sf = services().session_factory
    with sf() as session:
        who = authenticate(session, body["username"], body["password"])
    if who is None:
        raise Unauthorized("Wrong username or password, or the account is deactivated; check them and try again.")
    ttl = timedelta(hours=current_app.config["DEALFLOW_TOKEN_TTL_HOURS"])
    with sf() as session, session.begin():
        begin_write(session)
        token, expires_at = issue_token(session, who.username, ttl=ttl, now=utcnow())
    return {"token": token, "token_type": "Bearer", "expires_at": expires_at}


@bp.route("/current", methods=["DELETE"])
@bp.response(204)
@errors(bp, 401, 503)
def token_revoke():
    """Revoke the token this request was sent with; it stops working at once."""
    with services().session_factory() as session, session.begin():
        begin_write(session)
        revoke_token(session, g.token, utcnow())
