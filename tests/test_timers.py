"""BPMN timers on a controlled clock: each kind fires when due (not before), once, and leaves no stale job."""

import threading
from datetime import timedelta

from sqlalchemy import select

from engine.engine import Engine
from engine.errors import Conflict
from engine.models import Job
from tests.factories import actor
from tests.factories import bpmn_file
from tests.factories import deploy

DANA = actor("dana", roles=("designer",), groups=())
LENA = actor("lena", roles=("lawyer",), groups=("legal",))
SUE = actor("sue", roles=("supervisor",), groups=())


def _jobs(session_factory):
    with session_factory() as s:
        return sorted((j.element_id, j.due_at) for j in s.scalars(select(Job)))


def _start(engine, session_factory, **replacements):
    deploy(session_factory, bpmn_file("timers.bpmn", **replacements))
    return engine.start_instance("timers", actor=DANA, business_key="DEAL-9")


def test_catch_timer_fires_when_due_and_not_before(engine, session_factory, clock):
    started = _start(engine, session_factory)
    t0 = clock()
    assert started.status == "waiting" and started.active_elements == ["Wait_hour"]
    assert _jobs(session_factory) == [("Wait_hour", t0 + timedelta(hours=1))]
    clock.advance(minutes=59)
    assert engine.fire_due_jobs() == 0
    clock.advance(minutes=1)
    assert engine.fire_due_jobs() == 1
    after = engine.get_instance(started.id)
    assert after.status == "running" and [t.bpmn_id for t in after.open_tasks] == ["Review"]
    # The boundary timers of the review are now jobs of their own: the daily reminder and the 5-day escalation.
    assert _jobs(session_factory) == [("Escalate", clock() + timedelta(days=5)),
                                      ("Remind", clock() + timedelta(days=1))]
    assert engine.fire_due_jobs() == 0  # fired exactly once
    assert [e.event for e in engine.history(started.id)].count("timer_fired") == 1


def test_cycle_reminder_repeats_then_stops_without_touching_the_task(engine, session_factory, clock):
    started = _start(engine, session_factory, **{"<bpmn:timeDuration>P5D": "<bpmn:timeDuration>P30D"})
    clock.advance(hours=1)
    engine.fire_due_jobs()
    for day in range(1, 4):
        clock.advance(days=1)
        assert engine.fire_due_jobs() == 1, day
    view = engine.get_instance(started.id)
    assert [t.bpmn_id for t in view.open_tasks] == ["Review"]  # non-interrupting: the review stays open
    reminders = [e for e in engine.history(started.id) if e.event == "milestone_reached"]
    assert len(reminders) == 3
    assert [j[0] for j in _jobs(session_factory)] == ["Escalate"]  # R3: after three firings the cycle is done
    clock.advance(days=1)
    assert engine.fire_due_jobs() == 0


def test_interrupting_boundary_cancels_the_task_and_its_other_timers(engine, session_factory, clock):
    started = _start(engine, session_factory)
    clock.advance(hours=1)
    engine.fire_due_jobs()
    review_id = engine.get_instance(started.id).open_tasks[0].id
    clock.advance(days=5)
    assert engine.fire_due_jobs() >= 1
    view = engine.get_instance(started.id)
    assert view.status == "completed" and "End_escalated" in view.completed_elements
    assert engine.get_task(review_id).status == "cancelled"
    assert _jobs(session_factory) == []
    try:
        engine.complete_task(review_id, actor=LENA, data={})
    except Conflict:
        pass
    else:
        raise AssertionError("completing an escalated task must be refused")


def test_completing_the_task_removes_its_boundary_timers_and_a_late_firing_does_nothing(
        engine, session_factory, clock):
    started = _start(engine, session_factory)
    clock.advance(hours=1)
    engine.fire_due_jobs()
    with session_factory() as s:
        escalate_job = s.scalar(select(Job.id).where(Job.element_id == "Escalate"))
    engine.complete_task(engine.get_instance(started.id).open_tasks[0].id, actor=LENA, data={})
    # Now the event-based gateway waits for the payment message or a week, whichever comes first.
    assert [j[0] for j in _jobs(session_factory)] == ["Gw"]
    assert engine.fire_job(escalate_job) is False
    clock.advance(days=7)
    assert engine.fire_due_jobs() == 1
    view = engine.get_instance(started.id)
    assert view.status == "completed" and "End_unpaid" in view.completed_elements


def test_time_date_from_process_data(engine, session_factory, clock):
    deploy(session_factory, bpmn_file("timers.bpmn", **{
        "<bpmn:timeDuration>PT1H</bpmn:timeDuration>": "<bpmn:timeDate>${call_at}</bpmn:timeDate>"}))
    call_at = clock() + timedelta(days=1, hours=1)
    started = engine.start_instance("timers", actor=DANA, variables={"call_at": call_at.isoformat()})
    assert _jobs(session_factory) == [("Wait_hour", call_at)]
    clock.advance(days=1, hours=1)
    assert engine.fire_due_jobs() == 1
    assert engine.get_instance(started.id).open_tasks[0].bpmn_id == "Review"


def test_jobs_survive_a_new_engine(engine, session_factory, clock, script_pool):
    # The database, not the engine object, holds the timers: a fresh engine (a restarted process) fires them.
    _start(engine, session_factory)
    clock.advance(hours=3)
    assert Engine(session_factory, clock=clock, script_pool=script_pool).fire_due_jobs() == 1


def test_interrupting_timer_racing_a_completion_has_one_winner(engine, session_factory, clock, script_pool):
    started = _start(engine, session_factory)
    clock.advance(hours=1)
    engine.fire_due_jobs()
    review_id = engine.get_instance(started.id).open_tasks[0].id
    clock.advance(days=5)
    other = Engine(session_factory, clock=clock, script_pool=script_pool)
    barrier, results = threading.Barrier(2), {}

    def complete():
        barrier.wait()
        try:
            engine.complete_task(review_id, actor=LENA, data={})
            results["complete"] = "ok"
        except Conflict:
            results["complete"] = "conflict"

    def fire():
        barrier.wait()
        results["fired"] = other.fire_due_jobs()

    threads = [threading.Thread(target=complete), threading.Thread(target=fire)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    view = engine.get_instance(started.id)
    if results["complete"] == "ok":
        # The completion won: the escalation never happened and the deal moved on to the payment gateway.
        assert "End_escalated" not in view.completed_elements and view.active_elements == ["Gw"]
    else:
        assert "End_escalated" in view.completed_elements and view.status == "completed"
    events = [e.event for e in engine.history(started.id)]
    assert events.count("task_completed") + events.count("task_cancelled") == 1


def test_a_timer_moved_earlier_by_an_operator_fires_then_and_once(engine, session_factory, clock):
    started = _start(engine, session_factory)
    with session_factory() as s:
        job_id = s.scalar(select(Job.id))
    engine.reschedule_job(job_id, clock() + timedelta(minutes=10), actor=SUE)
    clock.advance(minutes=10)
    assert engine.fire_due_jobs() == 1
    assert engine.get_instance(started.id).open_tasks[0].bpmn_id == "Review"  # it really fired, 50 minutes early
    # Moving only the job row used to "fire" it (an audit row, nothing else) each time its lease ran out.
    clock.advance(seconds=11)
    assert engine.fire_due_jobs() == 0
    assert [e.event for e in engine.history(started.id)].count("timer_fired") == 1


def test_a_sweep_drains_a_backlog_larger_than_one_batch(engine, session_factory, clock):
    deploy(session_factory, "timer_at.bpmn")
    fire_at = (clock() + timedelta(hours=1)).isoformat()
    for _ in range(60):
        engine.start_instance("timer_at", actor=DANA, variables={"fire_at": fire_at})
    clock.advance(hours=2)
    assert engine.sweep() == 60  # batches of 50, then the rest, in one call
    assert engine.sweep() == 0 and _jobs(session_factory) == []
