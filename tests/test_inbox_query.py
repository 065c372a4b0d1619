"""The inbox query (`Engine.list_tasks` with a user) against a plain Python statement of its rules.

Rows are inserted through `inbox.insert_rows`, the engine's own writer, so each test controls created_at, due
dates, priorities and assignees exactly; ties are deliberate, because the page order must not depend on the plan.
"""

import random
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy import select

from engine import inbox
from engine.models import HumanTask
from engine.models import ProcessDefinition
from engine.models import ProcessInstance
from engine.models import TaskStatus
from engine.queries import SORTS
from engine.queries import TaskFilter
from engine.sql import Batch
from tests.factories import deploy

USERS = {  # who asks, with their groups: two group users, one named candidate in no group, one who sees nothing
    "alice": frozenset({"sales"}),
    "bob": frozenset({"legal", "sales_north"}),
    "carol": frozenset(),
    "zed": frozenset({"nobody_offers_to_this_group"}),
}


def _sees(task: HumanTask, user: str, groups: frozenset[str]) -> bool:
    """The rule, in Python: assigned to the user, or unassigned and offered to them or one of their groups."""
    if task.assignee is not None:
        return task.assignee == user
    return user in task.candidate_users or bool(groups & set(task.candidate_groups))


def _key(sort: str):
    return {  # due: dated tasks first, earliest first, undated last; ties: oldest first, then id
        "created": lambda t: (t.created_at, t.id),
        "due": lambda t: (t.due_at is None, t.due_at or t.created_at, t.created_at, t.id),
        "priority": lambda t: (-t.priority, t.created_at, t.id),
    }[sort]


@pytest.fixture
def tasks(engine, session_factory, clock) -> list[HumanTask]:
    """60 tasks on one instance: few distinct created_at/due_at/priority values (ties), mixed owners, some done."""
    deploy(session_factory, "deal_approval.bpmn")
    rng = random.Random(5)
    rows = []
    with session_factory() as session, session.begin():
        definition_id = session.scalar(select(ProcessDefinition.id))
        instance_id = session.execute(insert(ProcessInstance).values(
            definition_id=definition_id, process_key="deal_approval", business_key="deal-1", status="running",
            state_json="{}", started_by="dana", lock_version=1).returning(ProcessInstance.id)).scalar_one()
        for n in range(60):
            created = clock() + timedelta(minutes=rng.choice((0, 0, 1, 2)))
            rows.append(HumanTask(
                id=f"00000000-0000-4000-8000-{rng.randrange(10**12):012d}", instance_id=instance_id,
                process_key="deal_approval", business_key=f"deal-{n % 3}", bpmn_id="Review_deal", name="Review",
                status=TaskStatus.COMPLETED if n % 10 == 9 else TaskStatus.OPEN,
                assignee=rng.choice((None, None, None, "alice", "bob", "mallory")),
                candidate_groups=rng.choice(([], ["sales"], ["legal"], ["sales", "legal"], ["sales_north"])),
                candidate_users=rng.choice(([], [], ["carol"], ["alice"])), form=[],
                priority=rng.choice((30, 50, 70)), created_at=created,
                due_at=rng.choice((None, created + timedelta(days=1), clock() + timedelta(days=2)))))
        with Batch(session) as batch:
            inbox.insert_rows(batch, rows)
    return rows


def _expected(tasks, user, sort, **filters) -> list[str]:
    groups = USERS[user]
    chosen = [t for t in tasks if t.status == TaskStatus.OPEN and _sees(t, user, groups)
              and all(getattr(t, name) == value for name, value in filters.items())]
    return [t.id for t in sorted(chosen, key=_key(sort))]


@pytest.mark.parametrize("sort", list(SORTS))
@pytest.mark.parametrize("user", list(USERS))
def test_inbox_shows_what_the_rule_says_in_the_sorts_order(tasks, engine, user, sort):
    # Each sort reads the page by a different plan (index walk or collect-and-sort); all must agree with the rule.
    got = [t.id for t in engine.list_tasks(TaskFilter(user=user, groups=USERS[user], sort=sort, limit=500))]
    assert got == _expected(tasks, user, sort)
    assert bool(got) == (user != "zed")  # zed is offered nothing: the walk reads every open task, finds none


@pytest.mark.parametrize("sort", list(SORTS))
def test_pages_follow_each_other_without_gaps_or_repeats(tasks, engine, sort):
    # Many tasks share created_at (and due dates): only the id tie-break keeps page 2 from repeating page 1.
    expected = _expected(tasks, "alice", sort)
    assert len(expected) > 12
    pages = [engine.list_tasks(TaskFilter(user="alice", groups=USERS["alice"], sort=sort, limit=5, offset=offset))
             for offset in range(0, len(expected) + 5, 5)]
    assert [t.id for page in pages for t in page] == expected
    assert all(len(page) == 5 for page in pages[:len(expected) // 5])


@pytest.mark.parametrize("sort", list(SORTS))
def test_tasks_claimed_by_someone_else_do_not_leak(tasks, engine, sort):
    # mallory holds tasks offered to sales and legal: candidates no longer see them, and she sees only hers.
    theirs = {t.id for t in tasks if t.assignee == "mallory"}
    assert any(t.assignee == "mallory" and "sales" in t.candidate_groups for t in tasks)
    for user, groups in USERS.items():
        seen = {t.id for t in engine.list_tasks(TaskFilter(user=user, groups=groups, sort=sort, limit=500))}
        assert not seen & theirs
    mine = engine.list_tasks(TaskFilter(user="mallory", sort=sort, limit=500))
    assert {t.id for t in mine} == {t.id for t in tasks if t.assignee == "mallory" and t.status == TaskStatus.OPEN}


@pytest.mark.parametrize("sort", list(SORTS))
def test_user_combines_with_the_other_filters(tasks, engine, clock, sort):
    # The visibility test is one condition among others: narrowing must not widen what a user sees.
    got = engine.list_tasks(TaskFilter(user="bob", groups=USERS["bob"], business_key="deal-1", sort=sort, limit=500))
    assert [t.id for t in got] == _expected(tasks, "bob", sort, business_key="deal-1")
    soon = clock() + timedelta(days=2)
    got = engine.list_tasks(TaskFilter(user="alice", groups=USERS["alice"], due_before=soon, sort=sort, limit=500))
    due_soon = {t.id for t in tasks if t.due_at is not None and t.due_at < soon}
    assert [t.id for t in got] == [i for i in _expected(tasks, "alice", sort) if i in due_soon]
    mine = engine.list_tasks(TaskFilter(user="alice", groups=USERS["alice"], assignee="alice", sort=sort, limit=500))
    assert [t.id for t in mine] == _expected(tasks, "alice", sort, assignee="alice")
    done = engine.list_tasks(TaskFilter(user="alice", groups=USERS["alice"], status=TaskStatus.COMPLETED,
                                        sort=sort, limit=500))
    assert [t.id for t in done] == [t.id for t in sorted(tasks, key=_key(sort))
                                    if t.status == TaskStatus.COMPLETED and _sees(t, "alice", USERS["alice"])]
