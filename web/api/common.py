"""What every API module uses: the services, the acting user, documented errors and pagination."""

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from flask import current_app
from flask import g
from flask import request
from sqlalchemy import Select
from sqlalchemy import func
from sqlalchemy import select

from engine.actor import Actor
from engine.errors import NotFound
from web.api.schemas import MAX_INT
from web.api.schemas import ErrorSchema
from web.api.scopes import Viewer

ERROR_TEXT = {
    400: "The request does not fit the API: a field is unknown, missing or of the wrong type.",
    401: "No valid bearer token.",
    403: "Your roles do not allow this.",
    404: "No such object, or you may not see it.",
    409: "Somebody changed the same thing first, or the same Idempotency-Key is still in flight.",
    413: "The request or one of its files is too large.",
    422: "Well-formed, but refused: invalid BPMN, form data, or an Idempotency-Key reused with another body.",
    429: "Too many failed logins.",
    503: "The database is unreachable or busy (a lock held too long); nothing was applied. Try again after "
         "Retry-After seconds.",
}


def services():
    """The app's Services (engine, catalogue, session factory)."""
    from app import services as app_services

    return app_services(current_app)


def actor() -> Actor:
    """The authenticated user of this request."""
    return g.actor


def viewer() -> Viewer:
    """The authenticated user as a Viewer of tasks and instances (one per request)."""
    if "viewer" not in g:
        g.viewer = Viewer(g.actor, services().session_factory)
    return g.viewer


def errors(bp, *codes: int):
    """Document the error responses an operation may give (always also 401 and 503 unless public)."""

    def wrap(fn):
        for code in sorted(set(codes)):
            fn = bp.alt_response(code, schema=ErrorSchema, description=ERROR_TEXT[code])(fn)
        return fn

    return wrap


def check_id(value: int, what: str) -> int:
    """A path id the database can hold; larger ones cannot exist."""
    if not 0 < value <= MAX_INT:
        raise NotFound(f"There is no {what} {value}.")
    return value


def page_of_list(items: Sequence[Any], args: dict) -> dict:
    """One page of an in-memory list."""
    start = (args["page"] - 1) * args["per_page"]
    return envelope(list(items[start:start + args["per_page"]]), len(items), args)


def page_of_query(session, query: Select, args: dict, convert=lambda row: row) -> dict:
    """One page of a query (ordered by the caller), with the total count; `convert` maps each result row."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).limit(None).offset(None)
                                                            .subquery()))
    rows = session.execute(query.limit(args["per_page"]).offset((args["page"] - 1) * args["per_page"]))
    return envelope([convert(row) for row in rows], total, args)


def envelope(items: list, total: int, args: dict) -> dict:
    """The list envelope with the URL of the next page (null on the last one)."""
    following = None
    if args["page"] * args["per_page"] < total:
        query = request.args.to_dict(flat=False)
        query["page"] = [str(args["page"] + 1)]
        following = f"{request.path}?{urlencode(query, doseq=True)}"
    return {"items": items, "page": args["page"], "per_page": args["per_page"], "total": total, "next": following}


def prefers_minimal() -> bool:
    """Whether the request says `Prefer: return=minimal` (RFC 7240): the client does not want the result's body."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
                return True
    return False
