"""The API's contract: one error shape everywhere, tokens (hashed, expiring, revocable), login limits, 413, 503."""

import io
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy import update

from app import services
from crm.models import ApiToken
from crm.tokens import issue_token
from crm.tokens import resolve_token
from crm.tokens import token_hash
from crm.users import create_user
from engine.actor import Actor
from engine.db import utcnow
from tests.api_support import assert_error
from tests.api_support import deploy
from tests.api_support import own_app


@pytest.fixture
def alice(api_users):
    return api_users.add("alice", roles=("manager",), groups=("sales",), password="alice-secret-1")


def test_openapi_document_and_docs_page(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/tasks/{task_id}/complete" in spec["paths"]
    # Logging in is the one operation without a bearer token.
    assert spec["paths"]["/api/v1/tokens"]["post"]["security"] == []
    assert set(spec["components"]["schemas"]["Error"]["required"]) == {"error", "message", "details"}
    assert client.get("/api/docs").status_code == 200


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("get", "/api/v1/no-such-thing", 404, "not_found"),
    ("delete", "/api/v1/tasks", 405, "method_not_allowed"),
    ("get", "/api/v1/tasks", 401, "unauthorized"),
])
def test_routing_errors_have_our_shape(client, method, path, status, code):
    response = getattr(client, method)(path)
    assert_error(response, status, code)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_field_is_400_naming_it(client, alice):
    response = client.post("/api/v1/process-instances", headers=alice,
                           json={"process_key": "deal_approval", "colour": "red"})
    body = assert_error(response, 400, "invalid_input")
    assert "'colour'" in body["message"] and body["details"]["fields"]["json"]["colour"]


def test_malformed_json_and_wrong_types_are_400(client, alice):
    bad = client.post("/api/v1/process-instances", headers=alice, data="{not json",
                      content_type="application/json")
    assert "not valid JSON" in assert_error(bad, 400, "invalid_input")["message"]
    typed = client.post("/api/v1/process-instances", headers=alice, json={"process_key": 7})
    assert "'process_key'" in assert_error(typed, 400, "invalid_input")["message"]
    # Text PostgreSQL cannot store is refused up front, never a 500 from the driver.
    nul = client.post("/api/v1/process-instances", headers=alice, json={"process_key": "a\x00b"})
    assert_error(nul, 400, "invalid_input")
    assert_error(client.get("/api/v1/tasks?sort=sideways", headers=alice), 400, "invalid_input")


def test_token_login_use_and_revoke(client, alice):
    response = client.post("/api/v1/tokens", json={"username": "alice", "password": "alice-secret-1"})
    assert response.status_code == 201
    token = response.get_json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/tasks", headers=auth).status_code == 200
    with services(client.application).session_factory() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    # Only the hash is stored: a copy of the table opens no account.
    assert token not in stored and token_hash(token) in stored
    assert client.delete("/api/v1/tokens/current", headers=auth).status_code == 204
    assert_error(client.get("/api/v1/tasks", headers=auth), 401, "unauthorized")


def test_wrong_password_and_expired_or_deactivated_token_are_401(client, alice, api_users):
    assert_error(client.post("/api/v1/tokens", json={"username": "alice", "password": "wrong-one"}), 401)
    assert_error(client.post("/api/v1/tokens", json={"username": "nobody", "password": "wrong-one"}), 401)
    with services(client.application).session_factory() as session, session.begin():
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_error(client.get("/api/v1/tasks", headers=alice), 401)
    admin = api_users.add("root", roles=("admin",), groups=())
    bob = api_users.add("bob")
    assert client.patch("/api/v1/users/bob", headers=admin, json={"active": False}).status_code == 200
    assert_error(client.get("/api/v1/tasks", headers=bob), 401)


def test_a_token_stands_for_its_user_with_every_role_and_group(client):
    now = utcnow()
    with services(client.application).session_factory() as session, session.begin():
        create_user(session, "gina", password=None, roles=("manager", "lawyer"), groups=("sales", "legal"))
        create_user(session, "hal", password=None)
        tokens = [issue_token(session, name, ttl=timedelta(hours=1), now=now)[0] for name in ("gina", "hal")]
    with services(client.application).session_factory() as session:
        gina, hal = (resolve_token(session, token, now) for token in tokens)
        unknown = resolve_token(session, "dft_" + "x" * 43, now)
        expired = resolve_token(session, tokens[0], now + timedelta(hours=1))
    assert gina == Actor("gina", roles=frozenset({"manager", "lawyer"}), groups=frozenset({"sales", "legal"}))
    assert hal == Actor("hal") and unknown is None and expired is None


def test_repeated_failed_logins_get_429(app, client, alice):
    assert app.config["RATELIMIT_ENABLED"]
    for _ in range(5):
        assert client.post("/api/v1/tokens", json={"username": "alice", "password": "guess-123"}).status_code == 401
    body = assert_error(client.post("/api/v1/tokens", json={"username": "alice", "password": "alice-secret-1"}),
                        429, "too_many_requests")
    assert "wait" in body["message"]
    # The limit is per username: another account from the same address can still log in.
    assert client.post("/api/v1/tokens", json={"username": "bob", "password": "guess-123"}).status_code == 401


def test_successful_logins_are_not_limited(client, alice):
    login = {"username": "alice", "password": "alice-secret-1"}
    for _ in range(6):
        assert client.post("/api/v1/tokens", json=login).status_code == 201


def test_login_limit_can_be_switched_off(db_url):
    with own_app({"SQLALCHEMY_DATABASE_URI": db_url, "RATELIMIT_ENABLED": False}) as flask_app:
        client = flask_app.test_client()
        codes = {client.post("/api/v1/tokens", json={"username": "x", "password": "guess-123"}).status_code
                 for _ in range(6)}
        assert codes == {401}


def test_oversized_upload_is_413_with_our_shape(app, client, api_users):
    dana = api_users.add("dana", roles=("designer",), groups=())
    app.config["DEALFLOW_MAX_UPLOAD_BYTES"] = 1000
    body = assert_error(deploy(client, dana, ("big.bpmn", b"x" * 1001)), 413, "payload_too_large")
    assert "1000 bytes" in body["message"]
    # Past the request limit werkzeug refuses before parsing: still our shape.
    app.config["MAX_CONTENT_LENGTH"] = 2000
    whole = client.post("/api/v1/deployments", headers=dana, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(b"x" * 5000), "huge.bpmn")})
    assert_error(whole, 413, "payload_too_large")


def test_database_unreachable_is_503(tmp_path):
    # Nothing listens on port 1: every connection attempt fails at once.
    with own_app({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1:1/none"}) as flask_app:
        response = flask_app.test_client().get("/api/v1/tasks", headers={"Authorization": "Bearer dft_x"})
        body = assert_error(response, 503, "database_unavailable")
        assert "try again" in body["message"].lower()
