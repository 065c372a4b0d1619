"""The sweep over many due jobs: each fires at its own instant, and a lease that ran out mid-batch fires nothing twice.

A real batch takes seconds (the three-process test fires 1000 timers); these cases replay what happens meanwhile
with a clock that moves on while the batch runs, the only thing tests may patch.
"""

import threading
from datetime import datetime
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy import text

from engine.engine import Engine
from engine.jobs import LEASE
from engine.models import Job
from tests.factories import actor
from tests.factories import bpmn_file
from tests.factories import deploy
from tests.processes_support import wait_until

DANA = actor("dana", roles=("designer",), groups=())
SUE = actor("sue", roles=("supervisor",), groups=())


class SlowBatch:
    """The clock of a sweeper that is slow after claiming: from its second reading on, `pause` has passed and
    `meanwhile` (another sweeper, an operator) has run; then it reads the shared clock again."""

    def __init__(self, clock, pause: timedelta, meanwhile=lambda: None):
        self.clock, self.pause, self.meanwhile, self.reads = clock, pause, meanwhile, 0

    def __call__(self):
        self.reads += 1
        if self.reads == 2:
            self.clock.advance(seconds=self.pause.total_seconds())
            self.meanwhile()
        elif self.reads > 2:
            self.clock.advance(seconds=self.pause.total_seconds())
        return self.clock()


def _fired(engine, instance_id):
    return [e for e in engine.history(instance_id) if e.event == "timer_fired"]


def _start(engine, session_factory):
    deploy(session_factory, bpmn_file("timers.bpmn"))
    return engine.start_instance("timers", actor=DANA, business_key="DEAL-7").id


def _remind_job(session_factory):
    with session_factory() as s:
        return s.scalar(select(Job).where(Job.element_id == "Remind"))


def test_each_job_of_a_slow_batch_fires_at_its_own_instant(engine, session_factory, clock, script_pool):
    ids = [_start(engine, session_factory) for _ in range(3)]
    claimed_at = clock.advance(hours=1)
    slow = Engine(session_factory, clock=SlowBatch(clock, timedelta(seconds=4)), script_pool=script_pool)
    assert slow.fire_due_jobs() == 3
    fired_at = [_fired(engine, i)[0].at for i in ids]
    # The audit says when each timer really fired, not when the batch was claimed...
    assert fired_at == sorted(fired_at) and len(set(fired_at)) == 3 and min(fired_at) > claimed_at
    # ...and the timers that follow count from there: the review's 5-day escalation starts at the firing.
    with session_factory() as s:
        escalations = {j.instance_id: j.due_at for j in s.scalars(select(Job).where(Job.element_id == "Escalate"))}
    assert [escalations[i] for i in ids] == [at + timedelta(days=5) for at in fired_at]


def test_a_cycle_whose_lease_ran_out_mid_batch_fires_once(engine, session_factory, clock, script_pool):
    instance_id = _start(engine, session_factory)
    clock.advance(hours=1)
    engine.fire_due_jobs()
    first_due = clock.advance(days=1)
    other = Engine(session_factory, clock=clock, script_pool=script_pool)
    swept = []
    # Sweeper A claims the daily reminder, then stalls past its lease; sweeper B claims the job and fires it,
    # which moves the cycle's job to tomorrow. A must not fire it again: that would be tomorrow's reminder, today.
    slow = Engine(session_factory, script_pool=script_pool, clock=SlowBatch(
        clock, LEASE + timedelta(seconds=1), lambda: swept.append(other.fire_due_jobs(worker="B"))))
    assert slow.fire_due_jobs(worker="A") == 0
    assert swept == [1]
    assert len([e for e in engine.history(instance_id) if e.event == "milestone_reached"]) == 1
    assert _remind_job(session_factory).due_at == first_due + timedelta(days=1)


def test_a_job_rescheduled_while_a_sweep_holds_it_waits_for_its_new_time(engine, session_factory, clock,
                                                                          script_pool):
    instance_id = _start(engine, session_factory)
    later = clock() + timedelta(hours=3)
    # The sweep claims the one-hour timer; before it fires, an operator moves the job to three hours from the start.
    slow = Engine(session_factory, script_pool=script_pool, clock=SlowBatch(
        clock, timedelta(seconds=1), lambda: engine.reschedule_job(job_id, later, actor=SUE)))
    with session_factory() as s:
        job_id = s.scalar(select(Job.id))
    clock.advance(hours=1)
    assert slow.fire_due_jobs() == 0
    assert _fired(engine, instance_id) == []
    clock.now = later
    assert engine.fire_due_jobs() == 1
    assert datetime.fromisoformat(_fired(engine, instance_id)[0].details["due_at"]) == later


def test_a_firing_waits_for_a_command_holding_the_instance_instead_of_deadlocking(
        engine, session_factory, clock, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: there are no row locks to take in the wrong order")
    instance_id = _start(engine, session_factory)
    with session_factory() as s:
        job_id = s.scalar(select(Job.id))
    clock.advance(hours=1)
    outcome = {}

    def fire():
        try:
            outcome["fired"] = engine.fire_job(job_id)
        except Exception as exc:  # noqa: BLE001 - the deadlock this test is about surfaces here or below
            outcome["error"] = exc

    # What a task completion does: hold the instance, then delete the task's jobs. The firing must queue behind
    # the instance lock without holding its job, or PostgreSQL finds a deadlock and aborts one of the two.
    with session_factory() as holder, holder.begin():
        holder.execute(text("SELECT id FROM process_instance WHERE id = :id FOR UPDATE"), {"id": instance_id})
        firing = threading.Thread(target=fire)
        firing.start()
        assert wait_until(lambda: _lock_waits(session_factory) > 0, timeout=10)
        deleted = holder.execute(text("DELETE FROM job WHERE id = :id"), {"id": job_id}).rowcount
    firing.join(30)
    assert deleted == 1 and outcome == {"fired": False}
    assert _fired(engine, instance_id) == []


def _lock_waits(session_factory) -> int:
    with session_factory() as s:
        return s.scalar(text("SELECT count(*) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND wait_event_type = 'Lock'"))
