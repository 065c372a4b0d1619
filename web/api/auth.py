"""Bearer-token authentication of API requests, and the failed-login limit (Flask-Limiter)."""

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from crm.tokens import resolve_token
from engine.db import utcnow
from engine.errors import Unauthorized
from web.api.common import services

PUBLIC = {"api_tokens.token_create"}


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate() -> None:
    """Resolve the bearer token to the acting user (g.actor), or answer 401."""
    token = bearer_token()
    if token is None:
        raise Unauthorized("This endpoint needs a bearer token: get one with POST /api/v1/tokens and send it as "
                           "'Authorization: Bearer <token>'.")
    with services().read_session_factory() as session:
        actor = resolve_token(session, token, utcnow())
    if actor is None:
        raise Unauthorized("The bearer token is unknown, expired or revoked, or its account is deactivated; get a "
                           "new one with POST /api/v1/tokens.")
    g.actor, g.token = actor, token


def _login_key() -> str:
    """Failed logins are counted per username and client address."""
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    return f"{username if isinstance(username, str) else ''}|{get_remote_address()}"


def init_limiter(app: Flask, tokens_bp: Blueprint) -> Limiter:
    """One limiter per app (its memory storage is per process; set RATELIMIT_STORAGE_URI to share it)."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter = Limiter(key_func=get_remote_address, app=app)
    limiter.limit(lambda: current_app.config["DEALFLOW_LOGIN_RATE_LIMIT"], key_func=_login_key, methods=["POST"],
                  deduct_when=lambda response: response.status_code == 401)(tokens_bp)
    return limiter
