"""A lock held too long by another transaction: a clean Busy (HTTP 503 with Retry-After), nothing applied.

A command that loses a deadlock and runs again: test_engine__concurrency.py.
"""

import logging
from contextlib import contextmanager

import pytest
from sqlalchemy import func
from sqlalchemy import select

from app import services
from engine.database import begin_write
from engine.database import create_db_engine
from engine.database import make_session_factory
from engine.engine import Engine
from engine.errors import Busy
from engine.models import AuditEvent
from engine.models import HumanTask
from engine.models import ProcessInstance
from tests.api_support import assert_error
from tests.api_support import deploy as deploy_over_http
from tests.api_support import own_app
from tests.api_support import snapshot
from tests.api_support import start
from tests.conftest import ApiUsers
from tests.factories import actor
from tests.factories import deploy

LOCK_TIMEOUT_MS = 200


@contextmanager
def holding_the_instance(session_factory, instance_id: int):
    """Another transaction holds what a command on the instance must lock until the block ends: on SQLite the
    database's write lock (it began as a writer), on PostgreSQL the instance row."""
    with session_factory() as other, other.begin():
        begin_write(other)
        other.execute(select(ProcessInstance.id).where(ProcessInstance.id == instance_id).with_for_update())
        yield


@pytest.fixture
def impatient(db_url, clock, script_pool):
    """An engine whose commands wait at most LOCK_TIMEOUT_MS for a lock."""
    db = create_db_engine(db_url, lock_timeout_ms=LOCK_TIMEOUT_MS)
    factory = make_session_factory(db)
    deploy(factory, "deal_approval.bpmn")
    yield Engine(factory, clock=clock, script_pool=script_pool, workflow_cache=8), factory
    db.dispose()


def _completions(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "task_completed"))


def test_a_lock_held_past_the_timeout_is_busy_and_applies_nothing(impatient, caplog):
    engine, factory = impatient
    started = engine.start_instance("deal_approval", actor=actor("dana"), variables={"amount": 10})
    task_id = started.open_tasks[0].id
    caplog.set_level(logging.WARNING, logger="engine.contention")
    with holding_the_instance(factory, started.id), pytest.raises(Busy) as raised:
        engine.complete_task(task_id, actor=actor("seller"), data={"approved": True})
    message = raised.value.message
    assert "longer than the lock timeout" in message and "Nothing of it was applied" in message
    # Not run again: the request already waited the whole timeout, and another attempt would only wait as long.
    assert not caplog.records, caplog.text
    with factory() as session:
        assert session.get(HumanTask, task_id).status == "open"
    assert _completions(factory) == 0
    # With the lock released the same completion goes through: the failed attempt left nothing behind (the cached
    # workflow it had taken included).
    engine.complete_task(task_id, actor=actor("seller"), data={"approved": True})
    with factory() as session:
        assert session.get(HumanTask, task_id).status == "completed"
    assert _completions(factory) == 1


def test_the_api_answers_503_busy_with_retry_after(db_url):
    with own_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test",
                  "DEALFLOW_LOCK_TIMEOUT_MS": LOCK_TIMEOUT_MS}) as app:
        users = ApiUsers(app)
        designer, seller = users.add("dora", roles=("designer",)), users.add("sam")
        client = app.test_client()
        assert deploy_over_http(client, designer).status_code == 201
        instance = start(client, seller)
        task_id = instance["open_tasks"][0]["id"]
        factory = services(app).session_factory
        before = snapshot(factory)
        with holding_the_instance(factory, instance["id"]):
            response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=seller,
                                   json={"data": {"approved": True}})
        body = assert_error(response, 503, "busy")
        assert response.headers["Retry-After"] == "2"
        assert "try again in a few seconds" in body["message"]
        assert snapshot(factory) == before
        response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=seller, json={"data": {"approved": True}})
        assert response.status_code == 200, response.get_json()
