"""What one engine step costs the database, counted at the driver: a start or a completion is one write
transaction of at most 10 statements, whether the workflow comes from the cache or from its row.

The counter (bench/sqlcount.py) sees what reaches SQLite or PostgreSQL, including the hot path's prepared
statements that bypass SQLAlchemy's execution events.
"""

import pytest

from bench.common import DIAGRAM
from bench.common import FORMS
from bench.common import PROCESS_KEY
from bench.common import variables
from bench.sqlcount import SqlCounter
from engine.engine import Engine
from engine.views import OPEN_TASKS_IN_VIEW
from tests.factories import actor
from tests.factories import deploy

ALICE = actor("alice", groups=("sales",))
MAX_STATEMENTS = 10


@pytest.fixture
def counter(db_engine):
    counter = SqlCounter()
    counter.attach(db_engine)
    yield counter
    counter.detach(db_engine)


def _steps(engine: Engine, counter: SqlCounter, i: int) -> list[tuple[str, int, int, int]]:
    """(kind, transactions, write transactions, statements) of each command of one bench instance."""
    measured = []

    def measure(kind, command):
        with counter.counting():
            view = command()
        measured.append((kind, len(counter.transactions), counter.write_transactions, counter.statements))
        return view

    view = measure("start", lambda: engine.start_instance(PROCESS_KEY, actor=ALICE, business_key=f"B-{i}",
                                                          variables=variables(i)))
    while view.open_tasks:
        task = view.open_tasks[0]
        view = measure("complete", lambda t=task: engine.complete_task(t.id, actor=ALICE, data=FORMS[t.bpmn_id]))
    assert view.status == "completed"
    return measured


@pytest.mark.parametrize("cache", [0, 16], ids=["from-the-row", "cached"])
def test_a_step_is_one_write_transaction_of_at_most_ten_statements(session_factory, clock, script_pool, counter,
                                                                    cache):
    deploy(session_factory, (DIAGRAM.name, DIAGRAM.read_bytes()))
    engine = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=cache)
    steps = [step for i in range(2) for step in _steps(engine, counter, i)]
    assert [kind for kind, *_ in steps] == ["start", "complete", "complete", "complete"] * 2
    for kind, transactions, writes, statements in steps:
        assert (transactions, writes) == (1, 1), (kind, transactions, writes)
        # The prepared statements are seen: a start inserts the instance, its task and the audit events at least.
        assert 4 <= statements <= MAX_STATEMENTS, (kind, statements)


@pytest.mark.parametrize("cache", [0, 16], ids=["from-the-row", "cached"])
def test_a_completion_that_counts_its_open_tasks_stays_within_the_budget(session_factory, clock, script_pool, counter,
                                                                         cache):
    # A multi-instance approval over more items than a view lists: the start answers from the rows it created, a
    # completion reads one page and then counts the rest, the one command that needs that extra statement.
    deploy(session_factory, "approvals.bpmn")
    engine = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=cache)
    items = [{"sku": f"SKU-{n}"} for n in range(OPEN_TASKS_IN_VIEW + 10)]
    with counter.counting():
        view = engine.start_instance("approvals", actor=ALICE, variables={"items": items})
    assert view.open_task_count == len(items) and len(view.open_tasks) == OPEN_TASKS_IN_VIEW
    # The start counts the rows it created, without a query.
    assert (len(counter.transactions), counter.write_transactions) == (1, 1)
    assert counter.statements <= MAX_STATEMENTS, counter.statements
    for done in range(1, 4):
        with counter.counting():
            view = engine.complete_task(view.open_tasks[0].id, actor=ALICE, data={"ok": True})
        assert view.open_task_count == len(items) - done and len(view.open_tasks) == OPEN_TASKS_IN_VIEW
        assert (len(counter.transactions), counter.write_transactions) == (1, 1)
        assert counter.statements <= MAX_STATEMENTS, counter.statements


def test_a_completion_reads_the_stored_state_only_when_its_workflow_is_not_cached(session_factory, clock,
                                                                                  script_pool, counter):
    deploy(session_factory, (DIAGRAM.name, DIAGRAM.read_bytes()))
    for cache, reads in ((0, 1), (16, 0)):
        engine = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=cache)
        view = engine.start_instance(PROCESS_KEY, actor=ALICE, business_key=f"S-{cache}", variables=variables(cache))
        task = view.open_tasks[0]
        with counter.counting():
            view = engine.complete_task(task.id, actor=ALICE, data=FORMS[task.bpmn_id])
        assert view.status == "running" and view.open_tasks[0].id != task.id
        [transaction] = counter.transactions
        selects = [sql for sql in transaction.sql if sql.lstrip().upper().startswith("SELECT")]
        assert sum("state_json" in sql for sql in selects) == reads, (cache, selects)


def test_the_counter_sees_statements_that_bypass_sqlalchemy(db_engine, counter):
    from sqlalchemy import text

    with db_engine.connect() as connection:
        with counter.counting():
            with connection.begin():
                connection.connection.dbapi_connection.cursor().execute("SELECT 1")
                connection.execute(text("SELECT 2"))
    assert [(t.statements, t.wrote) for t in counter.transactions] == [(2, False)]
