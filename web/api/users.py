"""Accounts over HTTP (admins only): create, list, change roles, groups, password or deactivate."""

from flask import url_for
from flask_smorest import Blueprint

from crm import users as user_service
from crm.tokens import revoke_user_tokens
from engine import audit
from engine.database import begin_write
from engine.db import utcnow
from web.api.common import actor
from web.api.common import errors
from web.api.common import page_of_list
from web.api.common import services
from web.api.policy import Op
from web.api.policy import require
from web.api.schemas import PageArgsSchema
from web.api.schemas import UserCreateSchema
from web.api.schemas import UserPage
from web.api.schemas import UserPatchSchema
from web.api.schemas import UserSchema

bp = Blueprint("api_users", __name__, url_prefix="/api/v1/users", description="Accounts, roles and groups.")


def _record(session, event: str, username: str, changes: dict) -> None:
    """Account changes go to the audit log too (never the password itself)."""
    shown = {k: v for k, v in changes.items() if k != "password"}
    if "password" in changes:
        shown["password_changed"] = changes["password"] is not None
    audit.append(session, [audit.AuditRecord(event=event, actor=actor().username, at=utcnow(),
                                             details={"username": username, **shown})])


@bp.route("", methods=["POST"])
@bp.arguments(UserCreateSchema)
@bp.response(201, UserSchema)
@errors(bp, 400, 403, 409, 503)
def user_create(body):
    """Create an account with roles and candidate groups."""
    require(actor(), Op.USER_MANAGE)
    with services().session_factory() as session, session.begin():
        begin_write(session)
        body.setdefault("password", None)
        view = user_service.create_user(session, body.pop("username"), **body)
        _record(session, "user_created", view.username, body)
    return view, 201, {"Location": url_for(".user_update", username=view.username)}


@bp.route("", methods=["GET"])
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, UserPage)
@errors(bp, 400, 403, 503)
def user_list(args):
    """Every account, by username."""
    require(actor(), Op.USER_MANAGE)
    with services().session_factory() as session:
        return page_of_list(user_service.list_users(session), args)


@bp.route("/<string:username>", methods=["PATCH"])
@bp.arguments(UserPatchSchema)
@bp.response(200, UserSchema)
@errors(bp, 400, 403, 404, 503)
def user_update(body, username: str):
    """Change roles, groups, name, email or password, mark absent (new leads skip them), or (de)activate; a new
    password or a deactivation revokes the user's tokens."""
    require(actor(), Op.USER_MANAGE)
    with services().session_factory() as session, session.begin():
        begin_write(session)
        view = user_service.update_user(session, username, **body)
        if "password" in body or body.get("active") is False:
            revoke_user_tokens(session, username, utcnow())
        _record(session, "user_updated", username, body)
    return view
