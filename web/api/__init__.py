"""The REST API under /api/v1: flask-smorest blueprints, bearer tokens, one error shape, OpenAPI 3.

`init_app(app)` wires it: OpenAPI at /api/v1/openapi.json, Swagger UI at /api/docs.
"""

from typing import Any

from flask import Flask
from flask import request

from engine.errors import InvalidInput
from web.api import audit
from web.api import auth
from web.api import clients
from web.api import deals
from web.api import definitions
from web.api import deployments
from web.api import documents
from web.api import errors
from web.api import events
from web.api import idempotency
from web.api import incidents
from web.api import instances
from web.api import jobs
from web.api import leads
from web.api import notifications
from web.api import tasks
from web.api import tokens
from web.api import users

BLUEPRINTS = (tokens, deployments, definitions, instances, tasks, events, notifications, jobs, incidents, documents,
              audit, users, leads, deals, clients)
SPEC_OPTIONS = {
    "info": {"description": "Deploy BPMN, start processes, work the inbox, read a deal's history, send messages and "
                            "signals from outside, operate timers. Every error is "
                            '`{"error": code, "message": sentence, "details": {...}}`.'},
    "security": [{"bearerAuth": []}],
    "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
}
DEFAULTS = {
    "API_TITLE": "Dealflow", "API_VERSION": "v1", "OPENAPI_VERSION": "3.0.3", "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "v1/openapi.json", "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist/", "API_SPEC_OPTIONS": SPEC_OPTIONS,
    "DEALFLOW_TOKEN_TTL_HOURS": 12, "DEALFLOW_IDEMPOTENCY_HOURS": 24, "DEALFLOW_LOGIN_RATE_LIMIT": "5 per minute",
}


def _is_api_view() -> bool:
    return bool(request.blueprint and request.blueprint.startswith("api_"))


def _before():
    """Every API request: refuse text a database cannot store, authenticate, then claim an Idempotency-Key."""
    if not _is_api_view():
        return None
    _check_text(request.view_args or {}, "the path")
    _check_text(request.args.to_dict(flat=False), "the query string")
    if request.is_json:
        _check_text(request.get_json(silent=True), "the JSON body")
    if request.endpoint not in auth.PUBLIC:
        auth.authenticate()
        return idempotency.begin()
    return None


def _check_text(value: Any, where: str) -> None:
    """NUL characters and lone surrogates cannot be stored (PostgreSQL refuses them): a 400, not a 500."""
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            raise InvalidInput(f"Text in {where} contains a NUL character or an unpaired surrogate; remove it.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where)
            _check_text(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, where)


def _after(response):
    return idempotency.finish(response) if _is_api_view() else response


def init_app(app: Flask) -> None:
    """Register the API on `app`."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    api = errors.DealflowApi(app)
    errors.init_app(app)
    auth.init_limiter(app, tokens.bp)
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(idempotency.release)
    for module in BLUEPRINTS:
        api.register_blueprint(module.bp)
