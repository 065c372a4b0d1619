"""Small builders for API tests: deploy and start over HTTP, snapshot the tables a request could change."""

import io
from contextlib import contextmanager

from sqlalchemy import func
from sqlalchemy import select

from crm.models import ApiToken
from crm.models import User
from engine.models import AuditEvent
from engine.models import Deployment
from engine.models import EventSubscription
from engine.models import HumanTask
from engine.models import Incident
from engine.models import Job
from engine.models import Notification
from engine.models import NotificationRead
from engine.models import ProcessDefinition
from engine.models import ProcessInstance
from tests.factories import bpmn_file

DEAL_VARS = {"amount": 20000, "customer": "Acme"}


@contextmanager
def own_app(config):
    """The app with `config` over the defaults (TESTING on), closed after the block: its script pool, its
    connections."""
    from app import create_app
    from app import db
    from app import services

    flask_app = create_app({"TESTING": True, **config})
    try:
        yield flask_app
    finally:
        services(flask_app).script_pool.close()
        with flask_app.app_context():
            db.engine.dispose()


def deploy(client, headers, *files):
    """POST the given fixture diagrams (names under tests/bpmn or (name, bytes) pairs) as one deployment."""
    pairs = [bpmn_file(f) if isinstance(f, str) else f for f in files] or [bpmn_file("deal_approval.bpmn")]
    data = {"file": [(io.BytesIO(content), name) for name, content in pairs]}
    return client.post("/api/v1/deployments", headers=headers, data=data, content_type="multipart/form-data")


def start(client, headers, business_key="DEAL-1", process_key="deal_approval", variables=None):
    response = client.post("/api/v1/process-instances", headers=headers, json={
        "process_key": process_key, "business_key": business_key, "variables": variables or DEAL_VARS})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def snapshot(session_factory) -> tuple:
    """Everything a denied request must leave untouched: the audit chain, instances, tasks, users, definitions,
    tokens, pending jobs, incidents, event subscriptions, notifications and who read them."""
    with session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(AuditEvent)),
            session.execute(select(ProcessInstance.id, ProcessInstance.status, ProcessInstance.lock_version)
                            .order_by(ProcessInstance.id)).all(),
            session.execute(select(HumanTask.id, HumanTask.status, HumanTask.assignee, HumanTask.completed_by)
                            .order_by(HumanTask.id)).all(),
            session.execute(select(User.username, User.roles, User.active, User.name, User.password_hash)
                            .order_by(User.username)).all(),
            session.scalar(select(func.count()).select_from(Deployment)),
            session.scalar(select(func.count()).select_from(ProcessDefinition)),
            session.execute(select(ApiToken.id, ApiToken.revoked_at).order_by(ApiToken.id)).all(),
            session.execute(select(Job.id, Job.due_at, Job.attempts, Job.locked_by, Job.status).order_by(Job.id)).all(),
            session.execute(select(Incident.id, Incident.resolved_at).order_by(Incident.id)).all(),
            session.execute(select(EventSubscription.id).order_by(EventSubscription.id)).all(),
            session.scalar(select(func.count()).select_from(Notification)),
            session.execute(select(NotificationRead.notification_id, NotificationRead.username)
                            .order_by(NotificationRead.notification_id, NotificationRead.username)).all(),
        )


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is our error shape with this status (and code)."""
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"error", "message", "details"}, body
    assert isinstance(body["message"], str) and body["message"].endswith((".", ")")), body
    if code:
        assert body["error"] == code, body
    return body
