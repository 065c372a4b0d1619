"""The append-only, hash-chained audit log: append events, and verify that nobody edited history."""

import hashlib
import json
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.models import AuditEvent
from engine.models import AuditHead
from engine.sql import Batch
from engine.sql import InsertRows
from engine.sql import Prepared

GENESIS = "0" * 64
HEAD_ID = 1


@dataclass
class AuditRecord:
    """One event to append; `details` must be JSON-able (datetimes become ISO strings)."""

    event: str
    actor: str
    at: datetime
    instance_id: int | None = None
    task_id: str | None = None
    element_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


# Built once: json.dumps with any non-default argument builds a new encoder per call (~1.5 us, 2 calls per event).
_SAFE_ENCODER = json.JSONEncoder(default=str, sort_keys=True)
# What json.dumps(..., default=str, sort_keys=True, separators=(",", ":")) builds: the hashed bytes stay the same.
_DIGEST_ENCODER = json.JSONEncoder(default=str, sort_keys=True, separators=(",", ":"))


def _json_safe(details: dict[str, Any]) -> dict[str, Any]:
    return json.loads(_SAFE_ENCODER.encode(details))


def _digest(prev_hash: str, seq: int, row: AuditEvent) -> str:
    return _digest_of(prev_hash, seq, row.at, row.actor, row.event, row.instance_id, row.task_id, row.element_id,
                      row.details)


def _digest_of(prev_hash: str, seq: int, at: datetime, actor: str, event: str, instance_id: int | None,
               task_id: str | None, element_id: str | None, details: dict[str, Any]) -> str:
    body = _DIGEST_ENCODER.encode(
        [prev_hash, seq, at.isoformat(), actor, event, instance_id, task_id, element_id, details])
    return hashlib.sha256(body.encode()).hexdigest()


_HEAD = AuditHead.__table__
_LOCK_HEAD = Prepared(select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == HEAD_ID).with_for_update())
_MOVE_HEAD = Prepared(update(_HEAD).where(_HEAD.c.id == HEAD_ID)
                      .values(last_seq=bindparam("b_seq"), last_hash=bindparam("b_hash")))
_INSERT_EVENTS = InsertRows(AuditEvent.__table__)


def append(session: Session, records: list[AuditRecord]) -> None:
    """Chain `records` onto the log inside the caller's transaction (locks the head row until commit).

    Everything else the transaction wrote is flushed first, so the head row, which every command of every
    process needs, stays locked only for the chain's own two statements and the commit. Call it last.
    """
    if not records:
        return
    prepared = [(record, _json_safe(record.details)) for record in records]
    session.flush()
    head = _LOCK_HEAD.first(session)
    seq, prev = head["last_seq"], head["last_hash"]
    rows = []
    for record, details in prepared:
        seq += 1
        digest = _digest_of(prev, seq, record.at, record.actor, record.event, record.instance_id, record.task_id,
                            record.element_id, details)
        rows.append({"seq": seq, "at": record.at, "actor": record.actor, "event": record.event,
                     "instance_id": record.instance_id, "task_id": record.task_id, "element_id": record.element_id,
                     "details": details, "prev_hash": prev, "hash": digest})
        prev = digest
    # Plain statements on the transaction's connection: one multi-row INSERT and one UPDATE, sent together.
    with Batch(session) as batch:
        batch.insert(_INSERT_EVENTS, rows)
        batch.write(_MOVE_HEAD, {"b_seq": seq, "b_hash": prev})


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain; report the first row that was edited, deleted, inserted or reordered."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    last_seen = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last_seen).order_by(AuditEvent.seq).limit(batch)
        ).all()
        for row in rows:
            if row.seq != expected_seq:
                return VerifyResult(False, checked, expected_seq, f"Event #{expected_seq} is missing.")
            if row.prev_hash != expected_prev:
                return VerifyResult(False, checked, row.seq, f"Event #{row.seq} does not follow the event before it.")
            if _digest(row.prev_hash, row.seq, row) != row.hash:
                return VerifyResult(False, checked, row.seq, f"Event #{row.seq} was changed after it was written.")
            expected_prev, expected_seq, last_seen = row.hash, row.seq + 1, row.seq
            checked += 1
        if len(rows) < batch:
            break
    head = session.get(AuditHead, HEAD_ID)
    if head is None or head.last_seq != last_seen or head.last_hash != expected_prev:
        return VerifyResult(False, checked, last_seen + 1, "Events at the end of the log were deleted.")
    return VerifyResult(True, checked)
