"""Idempotency-Key: a retried POST replays the first answer and runs nothing twice."""

from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from app import services
from crm.models import IdempotencyRecord
from engine.db import utcnow
from engine.models import ProcessInstance
from tests.api_support import DEAL_VARS
from tests.api_support import assert_error
from tests.api_support import deploy
from tests.api_support import start

BODY = {"process_key": "deal_approval", "business_key": "DEAL-9", "variables": DEAL_VARS}


@pytest.fixture
def alice(client, api_users):
    dana = api_users.add("dana", roles=("designer",), groups=())
    assert deploy(client, dana).status_code == 201
    return api_users.add("alice", roles=("manager",), groups=("sales",))


def _instances(client) -> int:
    with services(client.application).session_factory() as session:
        return session.scalar(select(func.count()).select_from(ProcessInstance))


def test_same_key_same_body_replays_the_stored_response(client, alice):
    headers = {**alice, "Idempotency-Key": "start-deal-9"}
    first = client.post("/api/v1/process-instances", headers=headers, json=BODY)
    # Same JSON with other spacing and key order is the same request.
    again = client.post("/api/v1/process-instances", headers=headers, data='{"variables": {"customer": "Acme", '
                        '"amount": 20000}, "business_key": "DEAL-9",   "process_key": "deal_approval"}',
                        content_type="application/json")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert _instances(client) == 1


def test_same_key_different_body_is_422_and_runs_nothing(client, alice):
    headers = {**alice, "Idempotency-Key": "k-1"}
    assert client.post("/api/v1/process-instances", headers=headers, json=BODY).status_code == 201
    other = client.post("/api/v1/process-instances", headers=headers, json={**BODY, "business_key": "DEAL-10"})
    assert_error(other, 422, "idempotency_key_reused")
    # The same key on another endpoint is another request too.
    assert_error(client.post("/api/v1/tasks/x/claim", headers=headers), 422, "idempotency_key_reused")
    assert _instances(client) == 1


def test_keys_are_per_user(client, alice, api_users):
    bob = api_users.add("bob")
    assert client.post("/api/v1/process-instances", headers={**alice, "Idempotency-Key": "k"}, json=BODY
                       ).status_code == 201
    assert client.post("/api/v1/process-instances", headers={**bob, "Idempotency-Key": "k"}, json=BODY
                       ).status_code == 201
    assert _instances(client) == 2


def test_key_in_flight_is_409(client, alice):
    headers = {**alice, "Idempotency-Key": "slow"}
    # Another worker process holds this key right now (its record is still pending).
    with services(client.application).session_factory() as session, session.begin():
        session.add(IdempotencyRecord(username="alice", key="slow", fingerprint="?", state="pending",
                                      expires_at=utcnow() + timedelta(hours=1), headers={}))
    response = client.post("/api/v1/process-instances", headers=headers, json=BODY)
    # A different body is caught first (422); the same body waits for the first answer (409).
    assert response.status_code == 422
    with services(client.application).session_factory() as session, session.begin():
        first = client.post("/api/v1/process-instances", headers={**alice, "Idempotency-Key": "other"}, json=BODY)
        session.execute(update(IdempotencyRecord).where(IdempotencyRecord.key == "other")
                        .values(state="pending"))
    assert first.status_code == 201
    assert_error(client.post("/api/v1/process-instances", headers={**alice, "Idempotency-Key": "other"}, json=BODY),
                 409, "conflict")


def test_failed_conflicts_are_not_stored_and_expired_keys_are_reused(client, alice):
    task_id = start(client, alice)["open_tasks"][0]["id"]
    done = client.post(f"/api/v1/tasks/{task_id}/complete", headers=alice, json={"data": {"approved": False}})
    assert done.status_code == 200
    headers = {**alice, "Idempotency-Key": "retry-me"}
    # A 409 is about the moment, not the request: it is not replayed, the retry runs again.
    assert client.post(f"/api/v1/tasks/{task_id}/claim", headers=headers).status_code == 409
    with services(client.application).session_factory() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
    assert client.post("/api/v1/process-instances", headers=headers, json=BODY).status_code == 201
    with services(client.application).session_factory() as session, session.begin():
        session.execute(update(IdempotencyRecord).values(expires_at=utcnow() - timedelta(seconds=1)))
    # After 24 h the key is free again: the same key now starts a second instance.
    assert client.post("/api/v1/process-instances", headers=headers, json=BODY).status_code == 201
    assert _instances(client) == 3  # the one `start` made, then one per run of the key


def test_multipart_deploy_replays_although_boundaries_differ(client, api_users):
    dana = api_users.add("dana", roles=("designer",), groups=())
    headers = {**dana, "Idempotency-Key": "deploy-1"}
    first, again = deploy(client, headers), deploy(client, headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"


def test_bad_key_is_400(client, alice):
    assert_error(client.post("/api/v1/process-instances", headers={**alice, "Idempotency-Key": "x" * 300},
                             json=BODY), 400, "invalid_input")
