"""Create and look up accounts; resolve a username to the Actor the engine needs."""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.models import Group
from crm.models import GroupMember
from crm.models import User
from engine.actor import ROLES
from engine.actor import Actor
from engine.errors import Conflict
from engine.errors import Forbidden
from engine.errors import InvalidInput
from engine.errors import NotFound

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
GROUP = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MIN_PASSWORD = 8
_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserView:
    username: str
    name: str
    email: str | None
    roles: list[str]
    groups: list[str]
    active: bool
    absent: bool = False  # skipped by lead assignment (crm.assignment)

    @classmethod
    def of(cls, user: User) -> "UserView":
        return cls(user.username, user.name, user.email, sorted(user.roles), user.groups, user.active,
                   bool(user.absent))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _check_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted(set(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidInput(f"Unknown role(s) {', '.join(map(repr, unknown))}; use {', '.join(ROLES)}.")
    return roles


def _check_groups(groups: Iterable[str]) -> list[str]:
    groups = sorted(set(groups))
    bad = [g for g in groups if not GROUP.match(g)]
    if bad:
        raise InvalidInput(f"Group name(s) {', '.join(map(repr, bad))} are not valid: use lowercase letters, "
                           "digits, _ or - (BPMN candidate groups name them).")
    return groups


def _set_groups(session: Session, user: User, groups: list[str]) -> None:
    for name in groups:
        if session.get(Group, name) is None:
            session.add(Group(name=name, description=""))
    session.flush()
    user.memberships = [GroupMember(group_name=name) for name in groups]


def create_user(session: Session, username: str, *, password: str | None, roles: Iterable[str] = (),
                groups: Iterable[str] = (), name: str = "", email: str | None = None) -> UserView:
    """Add an account; raises InvalidInput for bad names/roles and Conflict when the username is taken."""
    if not USERNAME.match(username or ""):
        raise InvalidInput(f"Username {username!r} is not valid: use 2-63 lowercase letters, digits, '.', '_' or '-'.")
    if password is not None and len(password) < MIN_PASSWORD:
        raise InvalidInput(f"The password must have at least {MIN_PASSWORD} characters.")
    roles, groups = _check_roles(roles), _check_groups(groups)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"A user {username!r} already exists; choose another username.")
    user = User(username=username, name=name or username, email=email, roles=roles, active=True,
                password_hash=_hasher.hash(password) if password else None)
    session.add(user)
    _set_groups(session, user, groups)
    session.flush()
    return UserView.of(user)


def update_user(session: Session, username: str, *, roles: Iterable[str] | None = None,
                groups: Iterable[str] | None = None, active: bool | None = None, name: str | None = None,
                email: str | None = None, password: str | None = None, absent: bool | None = None) -> UserView:
    user = get_user(session, username)
    if absent is not None:
        user.absent = absent
    if roles is not None:
        user.roles = _check_roles(roles)
    if groups is not None:
        _set_groups(session, user, _check_groups(groups))
    if active is not None:
        user.active = active
    if name is not None:
        user.name = name
    if email is not None:
        user.email = email
    if password is not None:
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"The password must have at least {MIN_PASSWORD} characters.")
        user.password_hash = _hasher.hash(password)
    session.flush()
    return UserView.of(user)


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"There is no user {username!r}; create it with `flask --app app users create`.")
    return user


def list_users(session: Session) -> list[UserView]:
    return [UserView.of(u) for u in session.scalars(select(User).order_by(User.username))]


def actor_for(session: Session, username: str) -> Actor:
    """The Actor for an active user; an inactive account may not act."""
    user = get_user(session, username)
    if not user.active:
        raise Forbidden(f"User {username!r} is deactivated and may not act.")
    return Actor(username=user.username, roles=frozenset(user.roles), groups=frozenset(user.groups))


def authenticate(session: Session, username: str, password: str) -> Actor | None:
    """The actor when the password matches an active account, else None (no hint which part was wrong)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not user.password_hash:
        _hasher.hash(password)  # spend the same time as a real check, so usernames cannot be probed by timing
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return actor_for(session, username)


def emails_for(session: Session, usernames: list[str], groups: list[str]) -> list[str]:
    """The addresses of these active users and of the active members of these groups (reminders by mail)."""
    query = select(User.email).where(User.active.is_(True), User.email.is_not(None), User.email != "")
    members = select(GroupMember.user_id).where(GroupMember.group_name.in_(groups or [""]))
    query = query.where((User.username.in_(usernames or [""])) | User.id.in_(members))
    return sorted(set(session.scalars(query)))
