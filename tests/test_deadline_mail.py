"""Reminders and overdue notices go out by mail too: to the task's people, through the real mail handler and a
real SMTP server, retried like any handler call."""

from datetime import timedelta

import pytest

from crm.users import create_user
from crm.users import emails_for
from handlers import build_registry
from tests import handler_support
from tests.factories import actor
from tests.factories import deploy

DANA = actor("dana", roles=("designer",), groups=())
smtp_server = handler_support.smtp_server


@pytest.fixture
def people(session_factory):
    with session_factory() as session, session.begin():
        create_user(session, "alice", password=None, roles=("manager",), groups=("sales",), email="alice@example.ru")
        create_user(session, "bob", password=None, roles=("manager",), groups=("sales",), email="bob@example.ru")
        create_user(session, "nomail", password=None, roles=("manager",), groups=("sales",))
        create_user(session, "lena", password=None, roles=("lawyer",), groups=("legal",), email="lena@example.ru")


def _engine(session_factory, clock, script_pool, config):
    from engine.engine import Engine

    return Engine(session_factory, clock=clock, script_pool=script_pool, handlers=build_registry(config),
                  mail_directory=emails_for)


def test_a_reminder_mails_every_member_of_the_group_once(session_factory, clock, script_pool, people, smtp_server):
    engine = _engine(session_factory, clock, script_pool, smtp_server.config())
    deploy(session_factory, "deal_approval.bpmn")
    started = engine.start_instance("deal_approval", actor=DANA, business_key="DEAL-1", variables={"amount": 5})
    due = started.open_tasks[0].due_at
    clock.now = due - timedelta(hours=4)
    assert engine.fire_due_jobs() == 1  # the reminder: a notification, and a mail job
    assert engine.fire_due_jobs() == 1  # the mail job
    [mail] = smtp_server.wait_for(1)
    assert sorted(mail["To"].addresses[i].addr_spec for i in range(2)) == ["alice@example.ru", "bob@example.ru"]
    assert mail["Subject"].startswith("Due soon: Review deal") and "DEAL-1" in mail["Subject"]
    assert engine.fire_due_jobs() == 0
    events = [e.event for e in engine.history(started.id)]
    assert events.count("task_reminder") == 1 and events.count("deadline_mailed") == 1

    clock.now = due + timedelta(minutes=1)
    engine.fire_due_jobs()
    engine.fire_due_jobs()
    overdue = smtp_server.wait_for(2)[1]
    assert overdue["Subject"].startswith("Overdue: Review deal")


def test_a_mail_server_outage_delays_the_reminder_mail_and_loses_nothing(session_factory, clock, script_pool,
                                                                          people, smtp_server):
    engine = _engine(session_factory, clock, script_pool, smtp_server.config())
    deploy(session_factory, "deal_approval.bpmn")
    started = engine.start_instance("deal_approval", actor=DANA, business_key="DEAL-2", variables={"amount": 5})
    clock.now = started.open_tasks[0].due_at - timedelta(hours=4)
    smtp_server.data_reply = "451 4.3.0 Try again later"
    engine.fire_due_jobs()
    engine.fire_due_jobs()
    [job] = [j for j in engine.list_jobs(instance_id=started.id) if j["kind"] == "mail"]
    assert job["attempts"] == 1 and "451" in job["last_error"]
    smtp_server.data_reply = None
    clock.advance(minutes=1)  # mail.send backs off one minute first
    assert engine.fire_due_jobs() == 1
    assert len(smtp_server.wait_for(1)) == 1


def test_without_addresses_no_mail_job_is_made(session_factory, clock, script_pool, smtp_server):
    engine = _engine(session_factory, clock, script_pool, smtp_server.config())
    deploy(session_factory, "deal_approval.bpmn")
    started = engine.start_instance("deal_approval", actor=DANA, business_key="DEAL-3", variables={"amount": 5})
    clock.now = started.open_tasks[0].due_at - timedelta(hours=4)
    engine.fire_due_jobs()
    assert [j["kind"] for j in engine.list_jobs(instance_id=started.id)] == ["overdue"]
