"""API bearer tokens: issue, resolve, revoke. Only a token's SHA-256 is stored; the token itself is shown once."""

import hashlib
import secrets
from datetime import datetime
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from crm.models import ApiToken
from crm.models import User
from crm.users import get_user
from engine.actor import Actor

PREFIX = "dft_"


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue_token(session: Session, username: str, *, ttl: timedelta, now: datetime) -> tuple[str, datetime]:
    """A new token for `username`, valid until now + ttl; returns (token, expires_at)."""
    user = get_user(session, username)
    token = PREFIX + secrets.token_urlsafe(32)
    expires_at = now + ttl
    session.add(ApiToken(token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=expires_at))
    session.flush()
    return token, expires_at


def resolve_token(session: Session, token: str, now: datetime) -> Actor | None:
    """The actor a token stands for, or None when it is unknown, expired, revoked or its account deactivated."""
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == token_hash(token))
    ).first()
    if row is None:
        return None
    api_token, user = row
    if api_token.revoked_at is not None or api_token.expires_at <= now or not user.active:
        return None
    return Actor(username=user.username, roles=frozenset(user.roles), groups=frozenset(user.groups))


def revoke_token(session: Session, token: str, now: datetime) -> bool:
    """Revoke one token; False when it was not active."""
    result = session.execute(
        update(ApiToken).where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def revoke_user_tokens(session: Session, username: str, now: datetime) -> int:
    """Revoke every active token of a user (after a password change or a deactivation)."""
    user = get_user(session, username)
    result = session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount
