"""The issue's timer figures against real app processes: each a `create_app()` subprocess with its sweeper on.

Marked `processes` (`pytest -m "not processes"` leaves them out while working on something else); together they
take about two minutes. The test process deploys diagrams and starts instances through the real catalogue and
engine on the wall clock; the app processes fire the timers; the audit log says what fired and when.

What is asserted is what must hold on any machine: every timer fires, exactly once, and within the issue's bound
after a restart. How soon a timer fires in normal operation is a figure, not a property:
it is printed here and measured by bench/timer_figures.py; the test only bounds it loosely (LIVE_BOUND), so that a
sweeper that stopped ticking every second fails, and a busy CI machine does not.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import datetime

import pytest
from sqlalchemy import select

from engine import audit
from engine.database import create_db_engine
from engine.database import make_session_factory
from engine.engine import Engine
from engine.models import Job
from engine.models import ProcessInstance
from tests import dbutil
from tests.factories import actor
from tests.factories import bpmn_file
from tests.factories import deploy
from tests.processes_support import AppProcess
from tests.processes_support import describe
from tests.processes_support import firing_counts
from tests.processes_support import firings
from tests.processes_support import in_seconds
from tests.processes_support import lateness
from tests.processes_support import pending_jobs
from tests.processes_support import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(300)]

DANA = actor("dana", roles=("manager",), groups=("sales",))
LIVE_BOUND = 10.0  # seconds: 5x the 2 s figure; a 60 s sweep (or none) is caught, a loaded machine is not
RESTART_BOUND = 30.0  # seconds from the restart: the figure, and 3x the lease a killed sweeper leaves behind
SHORT_TIMERS = ("Event_wait", "Event_remind", "Event_give_up")


@pytest.fixture
def start_apps(tmp_path):
    """start_apps(database_url, count=1): app processes started together and healthy; killed at teardown."""
    started: list[AppProcess] = []

    def start(database_url: str, count: int = 1) -> list[AppProcess]:
        apps = [AppProcess(database_url, tmp_path / f"app-{len(started) + n}.log") for n in range(count)]
        started.extend(apps)
        return [app.wait_ready() for app in [app.spawn() for app in apps]]

    yield start
    for app in started:
        app.kill()


@pytest.fixture
def live_engine(session_factory, script_pool):
    """The engine on the wall clock, as the app processes run."""
    return Engine(session_factory, script_pool=script_pool)


def _report(title: str, rows: list[dict]) -> None:
    print(f"\n{title}: lateness {describe(lateness(rows))}")


def _elements_by_instance(rows: list[dict]) -> dict[int, list[str]]:
    fired: dict[int, list[str]] = {}
    for row in rows:
        fired.setdefault(row["instance_id"], []).append(row["element_id"])
    return fired


def test_timers_fire_soon_after_they_come_due_under_a_running_sweeper(start_apps, db_url, live_engine,
                                                                      session_factory):
    [app] = start_apps(db_url)
    deploy(session_factory, "short_timers.bpmn")
    ids = []
    for i in range(12):
        ids.append(live_engine.start_instance("short_timers", actor=DANA, business_key=f"DEAL-{i}").id)
        time.sleep(0.085)  # due times spread over a whole sweep period, not all just after one tick
    # Each instance: the catch timer, then the reminder (non-interrupting) and the escalation (interrupting)
    # that the app itself schedules when it fires the first. ~10 s in all.
    assert wait_until(lambda: pending_jobs(session_factory) == 0, timeout=30), app.log_tail()
    rows = firings(session_factory)
    _report("Timers under a running 1 s sweep", rows)
    assert _elements_by_instance(rows) == {i: list(SHORT_TIMERS) for i in ids}
    assert set(firing_counts(rows).values()) == {1}
    assert max(lateness(rows)) < LIVE_BOUND, describe(lateness(rows))


def test_timers_due_while_the_app_was_killed_fire_once_after_the_restart(start_apps, db_url, live_engine,
                                                                         session_factory):
    """A few seconds of downtime stand in for the issue's ten minutes (bench/timer_figures.py --downtime 600 runs
    those): a restarted process has nothing but the database, which after 3 s or 10 min holds the same rows, only
    further in the past. Moving due times back in the database instead would fake a state the engine never
    writes: each timer's due time also lives in its workflow's state."""
    # The escalation comes due well after the restart: this test is about the timers that came due meanwhile.
    # (Had both come due, firing the reminder would fire the escalation in the same command, which writes a
    # `timer_fired` row for the reminder only: every due timer of an instance fires whenever it takes a step.)
    deploy(session_factory, bpmn_file("short_timers.bpmn", PT5S="PT12S"), "timer_at.bpmn")
    [app] = start_apps(db_url)
    calls = [live_engine.start_instance("short_timers", actor=DANA).id for _ in range(4)]
    # The app fires the 3-second waits, and so creates the calls' reminder and escalation timers itself.
    assert wait_until(lambda: len([r for r in firings(session_factory) if r["element_id"] == "Event_wait"]) == 4,
                      timeout=20), app.log_tail()
    held = [_call_back(live_engine, in_seconds(1.5)) for _ in range(4)]
    app.kill()  # SIGKILL: no shutdown hook, no last sweep
    scheduled_while_down = [_call_back(live_engine, in_seconds(1)) for _ in range(4)]
    overdue = _wait_until_overdue(session_factory, but_not="Event_give_up")
    [restarted] = start_apps(db_url)
    assert wait_until(lambda: _all_fired(session_factory, overdue), timeout=RESTART_BOUND + 5), restarted.log_tail()
    rows = firings(session_factory)
    after_restart = [r for r in rows if (r["instance_id"], r["task_id"]) in overdue]
    print(f"\nOverdue timers after a SIGKILL: {len(overdue)}; fired {describe(_since(restarted, after_restart))} "
          "after the restart")
    assert len(after_restart) == len(overdue) == 3 * 4
    assert max(_since(restarted, after_restart)) < RESTART_BOUND
    assert wait_until(lambda: pending_jobs(session_factory) == 0, timeout=30), restarted.log_tail()
    fired = _elements_by_instance(firings(session_factory))
    assert {i: fired[i] for i in calls} == {i: list(SHORT_TIMERS) for i in calls}
    assert all(fired[i] == ["Event_call_back"] for i in held + scheduled_while_down)
    assert set(firing_counts(firings(session_factory)).values()) == {1}


def test_a_kill_in_the_middle_of_a_batch_neither_loses_nor_repeats_a_timer(start_apps, db_url, live_engine,
                                                                          session_factory):
    deploy(session_factory, "timer_at.bpmn")
    # 240 timers come due while no app runs, so the first sweep finds a batch of 200 (the claim limit) at once.
    ids = [_call_back(live_engine, in_seconds(1)) for _ in range(240)]
    assert wait_until(lambda: _overdue_count(session_factory) == len(ids), timeout=10)
    [app] = start_apps(db_url)
    assert wait_until(lambda: len(firings(session_factory)) >= 10, timeout=30, interval=0.01), app.log_tail()
    app.kill()
    fired_before, leased = len(firings(session_factory)), _leased_unfired(session_factory)
    print(f"\nSIGKILL after {fired_before} firings, with {leased} claimed timers not fired yet")
    # The kill hit a batch: the dead process still holds leases on timers it claimed and never fired. Restarting
    # at once is the hard case: those timers wait out the lease (10 s); after ten minutes they would not.
    assert leased > 0 and fired_before < len(ids)
    [restarted] = start_apps(db_url)
    assert wait_until(lambda: pending_jobs(session_factory) == 0, timeout=RESTART_BOUND + 5), restarted.log_tail()
    rows = firings(session_factory)
    late = [r for r in rows if r["at"] >= restarted.started_at]
    print(f"after the restart: {describe(_since(restarted, late))} from the restart")
    assert firing_counts(rows) == {key: 1 for key in firing_counts(rows)} and len(rows) == len(ids)
    assert sorted(r["instance_id"] for r in rows) == sorted(ids)
    assert max(_since(restarted, late)) < RESTART_BOUND
    with session_factory() as s:
        assert audit.verify(s).ok


@pytest.fixture
def pg_url():
    """A PostgreSQL database of this test's own (the run's shared one is emptied between tests)."""
    base = dbutil.pg_base_url()
    if base is None:
        pytest.skip(f"The three-process test needs PostgreSQL: set {dbutil.PG_ENV} (.ci/run sets it)")
    url = dbutil.create_pg_database(base)
    yield url
    dbutil.drop_pg_database(base, url)


def test_three_processes_on_one_postgresql_fire_each_of_1000_timers_once(pg_url, start_apps, script_pool):
    db = create_db_engine(pg_url)
    sessions = make_session_factory(db)
    try:
        engine = Engine(sessions, script_pool=script_pool)
        deploy(sessions, "timer_at.bpmn")
        apps = start_apps(pg_url, count=3)
        # All due at one instant, 20 s from now (or, should creating them take longer, as soon as possible).
        due = in_seconds(20)
        with ThreadPoolExecutor(6) as pool:  # each start waits mostly on its commit: threads overlap them
            ids = list(pool.map(lambda _: _call_back(engine, max(due, in_seconds(2))), range(1000)))
        print(f"\n1000 instances started, {(due - datetime.now(UTC)).total_seconds():.1f} s before they come due")
        workers = set()

        def drained() -> bool:
            with sessions() as s:
                workers.update(w for w in s.scalars(select(Job.locked_by).where(Job.locked_by.is_not(None))))
            return pending_jobs(sessions) == 0

        assert wait_until(drained, timeout=150, interval=0.2), "\n".join(a.log_tail(10) for a in apps)
        rows = firings(sessions)
        _report(f"1000 timers, 3 processes (claims seen from {len(workers)} workers)", rows)
        assert len(rows) == 1000 and set(firing_counts(rows).values()) == {1}
        assert (max(r["due_at"] for r in rows) - min(r["due_at"] for r in rows)).total_seconds() < 60
        assert sorted(r["instance_id"] for r in rows) == sorted(ids)
        with sessions() as s:
            assert set(s.scalars(select(ProcessInstance.status))) == {"completed"}
            assert audit.verify(s).ok
    finally:
        db.dispose()


def _call_back(engine: Engine, at: datetime) -> int:
    return engine.start_instance("timer_at", actor=DANA, variables={"fire_at": at.isoformat()}).id


def _keys(session_factory, *conditions) -> set[tuple[int, str]]:
    with session_factory() as s:
        return {(j.instance_id, j.task_id) for j in s.scalars(select(Job).where(*conditions))}


def _wait_until_overdue(session_factory, but_not: str) -> set[tuple[int, str]]:
    """Wait (the downtime) until every pending timer but the `but_not` ones is due; return those timers."""
    with session_factory() as s:
        jobs = s.scalars(select(Job).where(Job.element_id != but_not)).all()
    latest = max(j.due_at for j in jobs)
    time.sleep(max(0.0, (latest - datetime.now(UTC)).total_seconds()) + 0.5)
    return {(j.instance_id, j.task_id) for j in jobs}


def _all_fired(session_factory, timers: set[tuple[int, str]]) -> bool:
    return timers <= set(firing_counts(firings(session_factory)))


def _overdue_count(session_factory) -> int:
    return len(_keys(session_factory, Job.due_at <= datetime.now(UTC)))


def _leased_unfired(session_factory) -> int:
    return len(_keys(session_factory, Job.locked_until > datetime.now(UTC)))


def _since(app: AppProcess, rows: list[dict]) -> list[float]:
    return [(r["at"] - app.started_at).total_seconds() for r in rows]
