"""Teams: the members of a set of groups (a supervisor's team is everyone in the supervisor's groups)."""

from collections.abc import Iterable

from sqlalchemy import Select
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.models import GroupMember
from crm.models import User


def members_query(groups: Iterable[str]) -> Select:
    """SELECT username of every member of `groups` (usable as a subquery)."""
    return (select(User.username).join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_name.in_(sorted(set(groups)))))


def members_of(session: Session, groups: Iterable[str]) -> set[str]:
    """Usernames of the members of any of `groups`."""
    groups = set(groups)
    return set(session.scalars(members_query(groups))) if groups else set()
