"""Engine tables: definitions, instances, the inbox (human tasks) and the audit log."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from engine.db import Base
from engine.db import UTCDateTime
from engine.db import utcnow


class InstanceStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ERROR = "error"


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Deployment(Base):
    """One upload of one or more BPMN files, kept for provenance."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deployed_by: Mapped[str] = mapped_column(String(150))
    file_names: Mapped[list[str]] = mapped_column(JSON, default=list)


class ProcessDefinition(Base):
    """An immutable version of one executable BPMN process; its parsed spec is stored once, here."""

    __tablename__ = "process_definition"
    __table_args__ = (UniqueConstraint("key", "version", name="uq_process_definition_key_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(255))
    resource_name: Mapped[str] = mapped_column(String(255))
    bpmn_xml: Mapped[str] = mapped_column(Text)
    xml_sha256: Mapped[str] = mapped_column(String(64))
    # {"spec": ..., "subprocess_specs": {...}} as produced by engine.serialization.specs_to_json
    spec_json: Mapped[str] = mapped_column(Text)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessInstance(Base):
    """One running (or finished) process, usually one per deal; the workflow state is stored state-only."""

    __tablename__ = "process_instance"
    __table_args__ = (Index("ix_process_instance_status_key", "status", "process_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(20))
    state_json: Mapped[str] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_by: Mapped[str] = mapped_column(String(150))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lock_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": lock_version}


class HumanTask(Base):
    """A user task as the inbox sees it: one row, queried without touching the workflow state."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_human_task_status_assignee", "status", "assignee"),
        Index("ix_human_task_status_due", "status", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the SpiffWorkflow task id
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    bpmn_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.OPEN)
    assignee: Mapped[str | None] = mapped_column(String(150))
    candidate_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    candidate_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    form: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=50)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    follow_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by: Mapped[str | None] = mapped_column(String(150))


class TaskCandidate(Base):
    """(task, group-or-user) pairs, so 'tasks my groups may claim' is an indexed join, not a JSON scan."""

    __tablename__ = "task_candidate"
    __table_args__ = (Index("ix_task_candidate_kind_name", "kind", "name"),)

    task_id: Mapped[str] = mapped_column(ForeignKey("human_task.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(5), primary_key=True)  # "group" | "user"
    name: Mapped[str] = mapped_column(String(150), primary_key=True)


class AuditEvent(Base):
    """Append-only, hash-chained history. `seq` is contiguous; each row hashes the previous row's hash."""

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(150))
    event: Mapped[str] = mapped_column(String(50))
    instance_id: Mapped[int | None] = mapped_column(Integer, index=True)
    task_id: Mapped[str | None] = mapped_column(String(36))
    element_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row that names the chain's last event; locking it serialises appends across processes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
