"""Service tasks through the engine: parked as jobs, called outside the transaction, retried, incidents, BPMN errors."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import Conflict
from engine.errors import Forbidden
from engine.handlers import BpmnError
from engine.handlers import HandlerError
from engine.handlers import HandlerRegistry
from engine.handlers import RetryPolicy
from engine.models import Incident
from engine.models import Job
from engine.models import JobKind
from tests.factories import actor
from tests.factories import bpmn_file
from tests.factories import deploy

ALICE = actor("alice")
SUE = actor("sue", roles=("supervisor",), groups=())
VARIABLES = {"email": "buyer@example.com", "company": "Acme LLC", "amount": 21}


class Scripted:
    """A handler that answers from a script of outcomes (a result, an exception, or a function of the request)."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        outcome = self.outcomes.pop(0) if self.outcomes else {"ok": True}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome(request) if callable(outcome) else outcome


@pytest.fixture
def handler():
    return Scripted()


@pytest.fixture
def service_engine(session_factory, clock, script_pool, handler):
    from engine.engine import Engine

    registry = HandlerRegistry()
    registry.register("test.echo", handler, RetryPolicy(attempts=5, backoff=timedelta(seconds=10)))
    return Engine(session_factory, clock=clock, script_pool=script_pool, handlers=registry)


def _start(engine, session_factory, variables=None, **replacements):
    diagram = bpmn_file("service_call.bpmn", **replacements)
    deploy(session_factory, diagram)
    return engine.start_instance("service_call", actor=ALICE, business_key="DEAL-1", variables=variables or VARIABLES)


def _service_jobs(session_factory):
    with session_factory() as session:
        return list(session.scalars(select(Job).where(Job.kind == JobKind.SERVICE)))


def _events(engine, instance_id):
    return [event.event for event in engine.history(instance_id)]


def test_a_service_task_parks_with_its_parameters_evaluated_and_finishes_with_the_handlers_result(
        service_engine, session_factory, handler):
    started = _start(service_engine, session_factory)
    assert started.status == "running" and started.active_elements == ["Event_rejected", "Task_send"]
    [job] = _service_jobs(session_factory)
    assert job.topic == "test.echo" and job.max_attempts == 3  # the task's maxAttempts beats the topic's 5
    assert job.payload["parameters"] == {"to": "buyer@example.com", "subject": "Offer for Acme LLC",
                                         "template": "offer", "context": {"amount": 42, "note": "fixed"}}
    handler.outcomes = [{"message_id": "<m1@x>"}]

    assert service_engine.fire_due_jobs() == 1

    [request] = handler.requests
    assert request.business_key == "DEAL-1" and request.attempt == 1 and request.element_id == "Task_send"
    assert request.variables["company"] == "Acme LLC"
    with pytest.raises(TypeError):
        request.variables["company"] = "changed"  # read-only
    view = service_engine.get_instance(started.id)
    assert [t.bpmn_id for t in view.open_tasks] == ["Task_follow_up"]
    assert view.variables["message_id"] == "<m1@x>"
    assert _service_jobs(session_factory) == []
    assert {"service_scheduled", "service_completed"} <= set(_events(service_engine, started.id))


def test_a_result_variable_keeps_the_result_apart(service_engine, session_factory, handler):
    started = _start(service_engine, session_factory, **{
        '<camunda:property name="maxAttempts" value="3" />':
            '<camunda:property name="maxAttempts" value="3" /><camunda:property name="resultVariable" '
            'value="sent" />'})
    handler.outcomes = [{"message_id": "<m1@x>"}]
    service_engine.fire_due_jobs()
    variables = service_engine.get_instance(started.id).variables
    assert variables["sent"] == {"message_id": "<m1@x>"} and "message_id" not in variables


def test_failures_back_off_exponentially_then_become_an_incident_an_operator_retries(
        service_engine, session_factory, handler, clock):
    started = _start(service_engine, session_factory)
    handler.outcomes = [HandlerError("SMTP 451 try later"), HandlerError("SMTP 451 try later"),
                        HandlerError("SMTP 451 try later"), {"message_id": "<late@x>"}]
    assert service_engine.fire_due_jobs() == 0
    [job] = _service_jobs(session_factory)
    assert job.attempts == 1 and job.due_at == clock() + timedelta(minutes=1)  # the task's PT1M backoff
    clock.advance(seconds=59)
    assert service_engine.fire_due_jobs() == 0 and len(handler.requests) == 1  # not due yet
    clock.advance(seconds=1)
    service_engine.fire_due_jobs()
    [job] = _service_jobs(session_factory)
    assert job.attempts == 2 and job.due_at == clock() + timedelta(minutes=2)  # doubled
    clock.advance(minutes=2)
    service_engine.fire_due_jobs()
    [job] = _service_jobs(session_factory)
    assert job.status == "incident" and job.attempts == 3
    [incident] = service_engine.list_incidents(instance_id=started.id)
    assert incident["message"] == "SMTP 451 try later" and incident["attempts"] == 3
    clock.advance(hours=5)
    assert service_engine.fire_due_jobs() == 0 and len(handler.requests) == 3  # incidents wait for an operator

    with pytest.raises(Forbidden):
        service_engine.retry_incident(incident["id"], actor=ALICE)
    service_engine.retry_incident(incident["id"], actor=SUE)
    with pytest.raises(Conflict):
        service_engine.retry_incident(incident["id"], actor=SUE)
    assert service_engine.fire_due_jobs() == 1
    assert handler.requests[-1].attempt == 1  # a fresh set of attempts
    assert service_engine.list_incidents(instance_id=started.id) == []
    [resolved] = service_engine.list_incidents(instance_id=started.id, include_resolved=True)
    assert resolved["resolution"] == "retried" and resolved["resolved_by"] == "sue"
    assert service_engine.get_instance(started.id).variables["message_id"] == "<late@x>"
    events = _events(service_engine, started.id)
    assert events.count("service_failed") == 2 and "incident_created" in events and "incident_retried" in events


def test_a_non_retryable_failure_is_an_incident_at_once(service_engine, session_factory, handler):
    started = _start(service_engine, session_factory)
    handler.outcomes = [HandlerError("550 no such mailbox", retryable=False)]
    service_engine.fire_due_jobs()
    [incident] = service_engine.list_incidents()
    assert incident["attempts"] == 1 and incident["instance_id"] == started.id


def test_a_handler_bug_is_retried_not_a_crashed_sweep(service_engine, session_factory, handler):
    _start(service_engine, session_factory)
    handler.outcomes = [ZeroDivisionError("division by zero")]
    assert service_engine.fire_due_jobs() == 0
    [job] = _service_jobs(session_factory)
    assert job.attempts == 1 and "ZeroDivisionError" in job.last_error


def test_a_bpmn_error_is_caught_by_the_error_boundary_event(service_engine, session_factory, handler):
    started = _start(service_engine, session_factory)
    handler.outcomes = [BpmnError("REJECTED", "The client declined", {"reason": "price"})]
    assert service_engine.fire_due_jobs() == 1
    view = service_engine.get_instance(started.id)
    assert [t.bpmn_id for t in view.open_tasks] == ["Task_rejection"]
    assert view.variables["error_code"] == "REJECTED" and view.variables["reason"] == "price"
    assert _service_jobs(session_factory) == []


def test_an_uncaught_bpmn_error_is_an_incident_that_names_the_missing_boundary(
        service_engine, session_factory, handler):
    started = _start(service_engine, session_factory)
    handler.outcomes = [BpmnError("FRAUD", "Suspicious client")]
    service_engine.fire_due_jobs()
    [incident] = service_engine.list_incidents(instance_id=started.id)
    assert "FRAUD" in incident["message"] and "error boundary event" in incident["message"]
    assert service_engine.get_instance(started.id).active_elements == ["Event_rejected", "Task_send"]


def test_a_late_result_for_a_cancelled_task_is_recorded_and_dropped(service_engine, session_factory, handler):
    started = _start(service_engine, session_factory)

    def cancel_meanwhile(request):
        service_engine.cancel_instance(request.instance_id, actor=SUE, reason="client gone")
        return {"message_id": "<too-late@x>"}

    handler.outcomes = [cancel_meanwhile]
    assert service_engine.fire_due_jobs() == 0
    view = service_engine.get_instance(started.id)
    assert view.status == "cancelled" and "message_id" not in view.variables
    assert "service_result_dropped" in _events(service_engine, started.id)
    assert _service_jobs(session_factory) == []


def test_an_unknown_topic_at_run_time_is_an_incident_not_a_loss(session_factory, clock, script_pool):
    from engine.engine import Engine

    engine = Engine(session_factory, clock=clock, script_pool=script_pool)  # no handlers installed
    started = _start(engine, session_factory)
    engine.fire_due_jobs()
    [incident] = engine.list_incidents(instance_id=started.id)
    assert "No handler is installed for the topic 'test.echo'" in incident["message"]


def test_a_parameter_that_cannot_be_evaluated_is_an_incident_naming_it(service_engine, session_factory, handler):
    started = _start(service_engine, session_factory, variables={"company": "Acme", "amount": 1})  # no email
    service_engine.fire_due_jobs()
    [incident] = service_engine.list_incidents(instance_id=started.id)
    assert "Parameter 'to'" in incident["message"] and "email" in incident["message"]
    assert handler.requests == []


def test_cancelling_an_instance_resolves_its_incidents(service_engine, session_factory, handler):
    started = _start(service_engine, session_factory)
    handler.outcomes = [HandlerError("down", retryable=False)]
    service_engine.fire_due_jobs()
    service_engine.cancel_instance(started.id, actor=SUE)
    with session_factory() as session:
        [incident] = session.scalars(select(Incident))
        assert incident.resolution == "instance_cancelled"
    assert _service_jobs(session_factory) == []


def test_a_job_whose_lease_was_taken_over_drops_its_result(service_engine, session_factory, handler, clock):
    started = _start(service_engine, session_factory)

    def slow(request):
        # While this worker is busy past its lease, another worker takes the job over and finishes it.
        clock.advance(minutes=3)
        other = Scripted({"message_id": "<other@x>"})
        service_engine._handlers.register("test.echo", other)
        assert service_engine.fire_due_jobs(worker="other-worker") == 1
        return {"message_id": "<first@x>"}

    handler.outcomes = [slow]
    assert service_engine.fire_due_jobs(worker="first-worker") == 0
    view = service_engine.get_instance(started.id)
    assert view.variables["message_id"] == "<other@x>"
    assert "service_result_dropped" in _events(service_engine, started.id)
