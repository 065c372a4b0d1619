"""Idempotency-Key on state-changing POSTs: replay the stored response, refuse a reused key (422) or one in flight
(409). Records live in the database, per user, for DEALFLOW_IDEMPOTENCY_HOURS (24 h).
"""

import hashlib
import json
import re
from datetime import timedelta

from flask import Response
from flask import current_app
from flask import g
from flask import request
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm.models import IdempotencyRecord
from engine.database import begin_write
from engine.db import utcnow
from engine.errors import Conflict
from engine.errors import IdempotencyKeyReused
from engine.errors import InvalidInput
from web.api.common import services

HEADER = "Idempotency-Key"
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
ENDPOINTS = {
    "api_deployments.deployment_create", "api_instances.instance_start", "api_instances.instance_cancel",
    "api_tasks.task_claim", "api_tasks.task_unclaim", "api_tasks.task_assign", "api_tasks.task_complete",
    "api_users.user_create", "api_events.message_send", "api_events.signal_send",
    "api_notifications.notification_mark_read", "api_jobs.job_execute", "api_incidents.incident_retry",
    "api_leads.lead_create", "api_deals.deal_update",
}
# A result worth replaying: 409 and 429 are about the moment, not the request, so a retry runs it again.
NOT_STORED = {409, 429}
# The same, for one endpoint: "nobody waits for this message" may be true only *yet*. A webhook that retries with
# the same key must get its message delivered once the deal waits for it, not the first 404 again for 24 h.
NOT_STORED_FOR = {"api_events.message_send": {404}}
KEPT_HEADERS = ("Content-Type", "Location", "Preference-Applied")


def fingerprint() -> str:
    """What makes two requests "the same": method, path and body (parsed, so JSON spacing and multipart
    boundaries do not matter)."""
    if request.files or request.form:
        body = sorted([name, f.filename or "", hashlib.sha256(_read(f)).hexdigest()]
                      for name, f in request.files.items(multi=True))
        body += sorted([name, value] for name, value in request.form.items(multi=True))
    elif request.is_json and request.get_json(silent=True) is not None:
        body = request.get_json(silent=True)
    else:
        body = hashlib.sha256(request.get_data()).hexdigest()
    text = json.dumps([request.method, request.path, body], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _read(storage) -> bytes:
    data = storage.stream.read()
    storage.stream.seek(0)
    return data


def begin() -> Response | None:
    """Before the view: claim the key, or answer with the stored response, 409 (in flight) or 422 (reused)."""
    key = request.headers.get(HEADER)
    if key is None or request.endpoint not in ENDPOINTS:
        return None
    if not KEY.match(key):
        raise InvalidInput(f"The {HEADER} header must be 1-255 visible ASCII characters, such as a UUID.")
    username, now, digest = g.actor.username, utcnow(), fingerprint()
    try:
        with services().session_factory() as session, session.begin():
            begin_write(session)
            record = session.scalar(select(IdempotencyRecord).where(
                IdempotencyRecord.username == username, IdempotencyRecord.key == key))
            if record is not None and record.expires_at <= now:
                session.delete(record)
                session.flush()
                record = None
            if record is None:
                hours = current_app.config["DEALFLOW_IDEMPOTENCY_HOURS"]
                session.add(IdempotencyRecord(username=username, key=key, fingerprint=digest, state="pending",
                                              created_at=now, expires_at=now + timedelta(hours=hours), headers={}))
                session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.username == username,
                                                                IdempotencyRecord.expires_at <= now))
                g.idempotency = (username, key)
                return None
            return _answer(record, digest)
    except IntegrityError:
        raise _in_flight() from None


def _answer(record: IdempotencyRecord, digest: str) -> Response:
    if record.fingerprint != digest:
        raise IdempotencyKeyReused(
            f"The {HEADER} {record.key!r} was already used with a different request; use a new key for a new "
            "request, or resend exactly the same one.", details={"key": record.key})
    if record.state != "done":
        raise _in_flight()
    response = Response(record.body, status=record.status_code)
    response.headers.update(record.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _in_flight() -> Conflict:
    return Conflict(f"A request with this {HEADER} is still being processed; wait for its answer, then resend to "
                    "get the same answer again.")


def finish(response: Response) -> Response:
    """After the view: store a final response for replay, or release the key so that a retry runs again."""
    claimed = g.pop("idempotency", None)
    if claimed is None:
        return response
    username, key = claimed
    with services().session_factory() as session, session.begin():
        begin_write(session)
        record = session.scalar(select(IdempotencyRecord).where(
            IdempotencyRecord.username == username, IdempotencyRecord.key == key))
        if record is None:
            return response
        if not _kept(response.status_code):
            session.delete(record)
        else:
            record.state, record.status_code = "done", response.status_code
            record.body = response.get_data(as_text=True)
            record.headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
    return response


def _kept(status: int) -> bool:
    """Whether this endpoint's answer with `status` is replayed for a retry (else the retry runs again)."""
    return status < 500 and status not in NOT_STORED | NOT_STORED_FOR.get(request.endpoint, set())


def release(exc: BaseException | None) -> None:
    """Teardown: a request that died before `finish` frees its key."""
    claimed = g.pop("idempotency", None)
    if claimed is not None:
        with services().session_factory() as session, session.begin():
            begin_write(session)
            session.execute(delete(IdempotencyRecord).where(
                IdempotencyRecord.username == claimed[0], IdempotencyRecord.key == claimed[1],
                IdempotencyRecord.state == "pending"))
