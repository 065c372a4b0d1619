"""Who gets a new lead: rules by source or region first, else the team's strategy (round-robin or least open
tasks) among its sales managers, skipping absent and deactivated users.

A team is a group (`sales` by default). Its settings and round-robin cursor live in `team_settings`, one row per
group, locked (SELECT ... FOR UPDATE) for the whole lead intake: concurrent leads of one team queue there, so the
cursor never hands two leads to the same turn. On SQLite the writer lock (BEGIN IMMEDIATE) does the same.
"""

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from crm.models import AssignmentRule
from crm.models import GroupMember
from crm.models import TeamSettings
from crm.models import User
from crm.users import GROUP
from engine.errors import Conflict
from engine.errors import InvalidInput
from engine.models import HumanTask
from engine.models import TaskStatus

DEFAULT_TEAM = "sales"
SELLER_ROLE = "manager"  # only sales managers take leads; a supervisor or auditor in the group does not
RULE_FIELDS = ("source", "region")


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_OPEN_TASKS = "least_open_tasks"


class NoManagerAvailable(Conflict):
    """Nobody in the team can take a lead right now; the message says whom to bring back or add."""

    code = "no_manager_available"


@dataclass
class Choice:
    """The manager picked for a lead, and why (what the audit trail records)."""

    username: str
    strategy: str  # round_robin | least_open_tasks | rule
    group: str
    rule_id: int | None = None
    skipped_absent: list[str] = field(default_factory=list)
    skipped_inactive: list[str] = field(default_factory=list)

    def details(self) -> dict:
        return {"owner": self.username, "strategy": self.strategy, "group": self.group, "rule_id": self.rule_id,
                "skipped_absent": self.skipped_absent, "skipped_inactive": self.skipped_inactive}


def configure_team(session: Session, team: str, now: datetime, *, strategy: str) -> TeamSettings:
    """Set how a team's leads are spread (round_robin or least_open_tasks)."""
    if strategy not in set(Strategy):
        raise InvalidInput(f"Unknown strategy {strategy!r}; use {', '.join(Strategy)}.")
    settings = lock_team(session, team, now)
    settings.strategy, settings.updated_at = strategy, now
    session.flush()
    return settings


def add_rule(session: Session, team: str, *, field_name: str, value: str, assignee: str | None = None,
             group: str | None = None, position: int = 0) -> AssignmentRule:
    """Route a team's leads whose source or region is `value` to one user or to a sub-group (checked first,
    lowest position first)."""
    if field_name not in RULE_FIELDS:
        raise InvalidInput(f"A rule matches {' or '.join(RULE_FIELDS)}, not {field_name!r}.")
    if (assignee is None) == (group is None):
        raise InvalidInput("A rule sends leads to either one user (assignee) or one group, not both or neither.")
    if group is not None and not GROUP.match(group):
        raise InvalidInput(f"Group name {group!r} is not valid.")
    rule = AssignmentRule(team=team, field=field_name, value=value.strip(), assignee=assignee, group_name=group,
                          position=position)
    session.add(rule)
    session.flush()
    return rule


def lock_team(session: Session, team: str, now: datetime) -> TeamSettings:
    """The team's settings row, created if missing, locked until the transaction ends."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(TeamSettings).values(group_name=team, strategy=Strategy.ROUND_ROBIN,
                                                        updated_at=now).on_conflict_do_nothing())
    return session.scalars(select(TeamSettings).where(TeamSettings.group_name == team).with_for_update()
                           .execution_options(populate_existing=True)).one()


def pick_manager(session: Session, now: datetime, *, team: str = DEFAULT_TEAM, source: str | None = None,
                 region: str | None = None) -> Choice:
    """The manager for a new lead; call with the team locked (`lock_team`). Moves the round-robin cursor.

    :raises NoManagerAvailable: when no rule target and no member of the team can take it.
    """
    settings = lock_team(session, team, now)
    skipped_absent: set[str] = set()
    skipped_inactive: set[str] = set()
    for rule in _matching_rules(session, team, source, region):
        choice = _by_rule(session, now, rule, settings.strategy, skipped_absent, skipped_inactive)
        if choice is not None:
            return _with_skips(choice, skipped_absent, skipped_inactive)
    available = _available(session, team, skipped_absent, skipped_inactive)
    if not available:
        raise NoManagerAvailable(_nobody_message(team, skipped_absent, skipped_inactive),
                                 details={"team": team, "absent": sorted(skipped_absent),
                                          "inactive": sorted(skipped_inactive)})
    choice = Choice(_by_strategy(session, now, settings, available), settings.strategy, team)
    return _with_skips(choice, skipped_absent, skipped_inactive)


def _with_skips(choice: Choice, absent: set[str], inactive: set[str]) -> Choice:
    choice.skipped_absent, choice.skipped_inactive = sorted(absent), sorted(inactive)
    return choice


def _matching_rules(session: Session, team: str, source: str | None, region: str | None) -> list[AssignmentRule]:
    wanted = {"source": (source or "").strip().casefold(), "region": (region or "").strip().casefold()}
    rules = session.scalars(select(AssignmentRule).where(AssignmentRule.team == team)
                            .order_by(AssignmentRule.position, AssignmentRule.id))
    return [r for r in rules if wanted.get(r.field) and r.value.casefold() == wanted[r.field]]


def _by_rule(session: Session, now: datetime, rule: AssignmentRule, strategy: str, absent: set[str],
             inactive: set[str]) -> Choice | None:
    """The rule's user if they can take it, or a member of the rule's group by the team's strategy; else None."""
    if rule.assignee is not None:
        user = session.scalar(select(User).where(User.username == rule.assignee))
        if user is None or not user.active:
            inactive.add(rule.assignee)
            return None
        if user.absent:
            absent.add(rule.assignee)
            return None
        return Choice(user.username, "rule", rule.team, rule.id)
    available = _available(session, rule.group_name, absent, inactive)
    if not available:
        return None
    settings = lock_team(session, rule.group_name, now)
    return Choice(_by_strategy(session, now, settings, available, strategy), "rule", rule.group_name, rule.id)


def _available(session: Session, group: str, absent: set[str], inactive: set[str]) -> list[str]:
    """The group's sales managers who can take a lead, by username; the others are added to `absent`/`inactive`."""
    rows = session.execute(select(User.username, User.active, User.absent, User.roles)
                           .join(GroupMember, GroupMember.user_id == User.id)
                           .where(GroupMember.group_name == group).order_by(User.username)).all()
    available = []
    for username, active, is_absent, roles in rows:
        if SELLER_ROLE not in (roles or []):
            continue
        if not active:
            inactive.add(username)
        elif is_absent:
            absent.add(username)
        else:
            available.append(username)
    return available


def _by_strategy(session: Session, now: datetime, settings: TeamSettings, available: list[str],
                 strategy: str | None = None) -> str:
    """Round-robin: the next username after the cursor. Least open tasks: the least loaded, ties round-robin."""
    if (strategy or settings.strategy) == Strategy.LEAST_OPEN_TASKS:
        load = dict(session.execute(
            select(HumanTask.assignee, func.count()).where(HumanTask.status == TaskStatus.OPEN,
                                                           HumanTask.assignee.in_(available))
            .group_by(HumanTask.assignee)).all())
        lightest = min(load.get(name, 0) for name in available)
        available = [name for name in available if load.get(name, 0) == lightest]
    last = settings.last_assigned or ""
    chosen = next((name for name in available if name > last), available[0])
    settings.last_assigned = chosen
    settings.updated_at = now
    return chosen


def _nobody_message(team: str, absent: set[str], inactive: set[str]) -> str:
    reasons = []
    if absent:
        reasons.append(f"{', '.join(map(repr, sorted(absent)))} marked absent")
    if inactive:
        reasons.append(f"{', '.join(map(repr, sorted(inactive)))} deactivated or missing")
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return (f"Nobody in team {team!r} can take this lead{why}; nothing was saved. Mark a manager back "
            f"(PATCH /api/v1/users/<username> {{\"absent\": false}}) or add a user with the role 'manager' to the "
            f"group {team!r}, then send the lead again.")
