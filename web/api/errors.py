"""One error shape for every API error: {"error": code, "message": sentence, "details": {...}}."""

from typing import Any

from flask import Flask
from flask import current_app
from flask import jsonify
from flask import request
from flask_smorest import Api
from sqlalchemy.exc import DataError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from engine.contention import busy
from engine.contention import contention
from engine.errors import DealflowError
from web.api.schemas import ErrorSchema

API_PREFIX = "/api/"
DOCS = "/api/v1/openapi.json"


_HTTP = {
    400: ("bad_request", "The request could not be read; check its syntax and headers."),
    401: ("unauthorized", "Send a bearer token: get one with POST /api/v1/tokens."),
    404: ("not_found", "There is no API endpoint {method} {path}; see " + DOCS + " for the endpoints."),
    405: ("method_not_allowed", "{method} is not allowed on {path}; use {allowed}."),
    413: ("payload_too_large", "The request is larger than {limit} bytes; send smaller files or fewer at once."),
    415: ("unsupported_media_type", "This content type is not accepted here; see " + DOCS + "."),
    429: ("too_many_requests", "Too many failed logins for this username from your address ({limit}); wait and "
                              "try again later."),
}


def error_response(code: str, message: str, status: int, details: dict[str, Any] | None = None, headers=None):
    """The JSON response of an error."""
    response = jsonify({"error": code, "message": message, "details": details or {}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="dealflow"'
    response.headers.extend(headers or {})
    return response


def _is_api() -> bool:
    return request.path.startswith(API_PREFIX)


class DealflowApi(Api):
    """flask-smorest's Api with our error shape (schema errors become 400 naming the field)."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        """Every HTTP error of the API in our shape; other pages keep Flask's default."""
        if not _is_api():
            return error
        data = getattr(error, "data", None) or {}
        if "messages" in data:
            return schema_error(data["messages"])
        code, template = _HTTP.get(error.code or 500, (_snake(error.name), "{description}"))
        message = template.format(
            method=request.method, path=request.path, description=error.description,
            allowed=", ".join(sorted(getattr(error, "valid_methods", None) or [])),
            limit=getattr(getattr(error, "limit", None), "limit", None) or current_app.config.get("MAX_CONTENT_LENGTH"),
        )
        headers = {"Allow": ", ".join(sorted(error.valid_methods))} if getattr(error, "valid_methods", None) else {}
        return error_response(code, message, error.code or 500, headers=headers)


def _snake(name: str) -> str:
    return name.lower().replace(" ", "_").replace("'", "")


def schema_error(messages: dict) -> Any:
    """A 400 that names the offending field(s): unknown, missing, of the wrong type, or a body that is not JSON."""
    problems = list(_flatten(messages))
    unknown = [path for path, text in problems if text == "Unknown field."]
    if any(text == "Invalid JSON body." for _, text in problems):
        message = "The request body is not valid JSON; send a JSON object with Content-Type: application/json."
    elif unknown:
        message = f"Unknown field(s) {', '.join(map(repr, unknown))}; remove them (see {DOCS} for the fields taken)."
    else:
        path, text = problems[0] if problems else ("request", "is not valid")
        message = f"{path!r}: {text.rstrip('.')}." + (f" ({len(problems) - 1} more problems in details.)"
                                                      if len(problems) > 1 else "")
    return error_response("invalid_input", message, 400, {"fields": messages})


def _flatten(messages: Any, prefix: str = ""):
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = str(key) if key not in ("json", "query", "files", "form", "_schema") else ""
            yield from _flatten(value, f"{prefix}.{name}".strip(".") if name else prefix)
    elif isinstance(messages, list):
        for item in messages:
            yield from _flatten(item, prefix) if isinstance(item, dict | list) else [(prefix or "body", str(item))]
    else:
        yield prefix or "body", str(messages)


def _dealflow(exc: DealflowError):
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return error_response(exc.code, exc.message, exc.http_status, exc.details, headers)


def _unavailable(exc: Exception):
    if contention(exc) is not None:  # a write outside the engine's commands (a token, a lead) that met a lock
        return _dealflow(busy(exc))
    current_app.logger.warning("Database unavailable: %s", exc)
    return error_response("database_unavailable", "The database is unreachable at the moment; nothing was changed. "
                          "Try again in a few seconds.", 503, headers={"Retry-After": "5"})


def _data_error(exc: DataError):
    return error_response("invalid_input", "The database refused a value of this request (too long or out of "
                          "range); shorten or correct it.", 400)


def _integrity(exc: IntegrityError):
    return error_response("conflict", "This request collided with another change to the same data; nothing was "
                          "applied. Refresh and try again.", 409)


def _unexpected(exc: Exception):
    current_app.logger.exception("Unexpected error on %s %s", request.method, request.path)
    return error_response("internal_error", "Something went wrong on our side; nothing you can fix. The error was "
                          "logged; try again or report it.", 500)


def _api_only(handler):
    """Apply `handler` under /api/ only; elsewhere the error goes on to Flask's default handling."""

    def handle(exc: Exception):
        if not _is_api():
            raise exc
        return handler(exc)

    return handle


def init_app(app: Flask) -> None:
    """Register the handlers (smorest's Api handles HTTPException through `DealflowApi`)."""
    app.register_error_handler(DealflowError, _api_only(_dealflow))
    for exc_type in (OperationalError, InterfaceError, PoolTimeout):
        app.register_error_handler(exc_type, _api_only(_unavailable))
    app.register_error_handler(DataError, _api_only(_data_error))
    app.register_error_handler(IntegrityError, _api_only(_integrity))
    app.register_error_handler(Exception, _api_only(_unexpected))
