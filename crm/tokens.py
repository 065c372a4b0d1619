"""API bearer tokens: issue, resolve, revoke. Only a token's SHA-256 is stored; the token itself is shown once."""

import hashlib
import secrets
from datetime import datetime
from datetime import timedelta

from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from crm.models import ApiToken
from crm.models import GroupMember
from crm.models import User
from crm.users import get_user
from engine.actor import Actor
from engine.sql import Prepared

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


# The token, its user and the user's groups (a row per group), in one statement: every API request asks it.
_HOLDER = Prepared(
    select(ApiToken.revoked_at, ApiToken.expires_at, User.username, User.roles, User.active, GroupMember.group_name)
    .join_from(ApiToken, User, User.id == ApiToken.user_id)
    .outerjoin(GroupMember, GroupMember.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("b_hash"))
)


def resolve_token(session: Session, token: str, now: datetime) -> Actor | None:
    """The actor a token stands for, or None when it is unknown, expired, revoked or its account deactivated."""
    rows = _HOLDER.all(session, {"b_hash": token_hash(token)})
    if not rows:
        return None
    holder = rows[0]
    if holder["revoked_at"] is not None or holder["expires_at"] <= now or not holder["active"]:
        return None
    return Actor(username=holder["username"], roles=frozenset(holder["roles"]),
                 groups=frozenset(row["group_name"] for row in rows if row["group_name"] is not None))


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
