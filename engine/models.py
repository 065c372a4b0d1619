"""Engine tables: definitions, instances, the inbox (human tasks) and the audit log."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import LargeBinary
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
    # The head of the instance's audit trail: its last event's position and hash (engine.audit).
    audit_seq: Mapped[int] = mapped_column(Integer, server_default="0")
    audit_hash: Mapped[str] = mapped_column(String(64), server_default="0" * 64)

    __mapper_args__ = {"version_id_col": lock_version}


class InstanceTaskState(Base):
    """One SpiffWorkflow task of an instance, as the stock task converter writes it (engine.serialization).

    The instance row keeps the rest of the state (its head: workflow data, events, sub-process heads). A command
    writes only the tasks whose text changed, so its write does not grow with the instance: a 300-item approval
    rewrote 135 KB per completion when the whole state was one text.
    """

    __tablename__ = "instance_task_state"

    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"),
                                             primary_key=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the SpiffWorkflow task id
    # "" for the instance's own workflow, else the id of the task that runs the sub-process the task belongs to.
    workflow: Mapped[str] = mapped_column(String(36))
    # The task's place in its workflow's task map (SpiffWorkflow's insertion order), restored as it was.
    seq: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)


class HumanTask(Base):
    """A user task as the inbox sees it: one row, queried without touching the workflow state."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_human_task_status_assignee", "status", "assignee"),
        Index("ix_human_task_status_due", "status", "due_at"),
        # The inbox's default order: walked in order, so a page of 50 stops after 50 visible rows.
        Index("ix_human_task_status_created", "status", "created_at", "id"),
        # An instance's open tasks, oldest first (every view after a command lists them and counts them): walked in
        # order from the index, so a multi-instance task with hundreds of open siblings costs a page, not a sort.
        # Its first column also serves every lookup by instance.
        Index("ix_human_task_instance_status_created", "instance_id", "status", "created_at", "id"),
        # ix_human_task_status_priority is declared after the class.
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the SpiffWorkflow task id
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"))
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


# The inbox sorted by priority (highest first, then oldest): walked in order like the default sort. Declared after the
# class because its key runs downwards, which needs the column itself, not its name.
Index("ix_human_task_status_priority", HumanTask.status, HumanTask.priority.desc(), HumanTask.created_at,
      HumanTask.id)


class TaskCandidate(Base):
    """(task, group-or-user) pairs, so 'tasks my groups may claim' is an indexed join, not a JSON scan."""

    __tablename__ = "task_candidate"
    __table_args__ = (Index("ix_task_candidate_kind_name", "kind", "name"),)

    task_id: Mapped[str] = mapped_column(ForeignKey("human_task.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(5), primary_key=True)  # "group" | "user"
    name: Mapped[str] = mapped_column(String(150), primary_key=True)


class AuditEvent(Base):
    """Append-only, hash-chained history (engine.audit). `seq` orders the whole log; each event is number
    `trail_seq` of its trail (its instance's, or the log's own: 0) and hashes the event before it there."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("trail", "trail_seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(150))
    event: Mapped[str] = mapped_column(String(50))
    instance_id: Mapped[int | None] = mapped_column(Integer, index=True)
    task_id: Mapped[str | None] = mapped_column(String(36))
    element_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trail: Mapped[int] = mapped_column(Integer)
    trail_seq: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The row that names the last event of the log's own trail (events of no instance); locking it serialises
    those appends. An instance's trail is headed by its own row (ProcessInstance.audit_seq/audit_hash)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class JobKind(StrEnum):
    TIMER = "timer"
    REMINDER = "reminder"  # a user task's due date is near
    OVERDUE = "overdue"  # a user task's due date has passed
    SERVICE = "service"
    MAIL = "mail"  # a reminder or overdue notice by mail, to the people of the task (through mail.send)


CALLS = (JobKind.SERVICE, JobKind.MAIL)  # jobs that call a handler


class JobStatus(StrEnum):
    PENDING = "pending"
    INCIDENT = "incident"  # a service call out of attempts: waits for an operator's retry


class Job(Base):
    """Work that comes due: a BPMN timer, a deadline, a service call. The database, not a scheduler, holds it.

    A row exists while the job is pending; firing deletes it in the same transaction that applies it, which is
    what makes a firing happen exactly once however many sweepers race for it. A service job that ran out of
    attempts stays, with status `incident`, until an operator retries it or its task goes away.
    """

    __tablename__ = "job"
    # AUTOINCREMENT: a fired job's id must never come back as another job's (operators and late firings use ids).
    __table_args__ = (Index("ix_job_due_at", "due_at"), Index("ix_job_instance_task", "instance_id", "task_id"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"))
    task_id: Mapped[str] = mapped_column(String(36))  # the waiting SpiffWorkflow task (event or gateway)
    element_id: Mapped[str] = mapped_column(String(255))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.PENDING, server_default=JobStatus.PENDING)
    # Service calls only: the handler's topic, its evaluated input parameters and how often it may be tried.
    topic: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    max_attempts: Mapped[int | None] = mapped_column(Integer)


class Incident(Base):
    """A service call that failed for good: visible on its instance, retryable by an operator, kept as history."""

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_open", "resolved_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(Integer, index=True)  # no foreign key: the job row goes when resolved
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(150))
    resolution: Mapped[str | None] = mapped_column(String(20))  # "retried" | "task_gone"


class Document(Base):
    """A rendered document (proposal, contract, invoice) of a deal: version N of its kind, bytes kept here."""

    __tablename__ = "document"
    __table_args__ = (UniqueConstraint("business_key", "kind", "version", name="uq_document_version"),
                      UniqueConstraint("idempotency_key", name="uq_document_idempotency_key"),
                      UniqueConstraint("kind", "number", name="uq_document_number"))

    id: Mapped[int] = mapped_column(primary_key=True)
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    instance_id: Mapped[int | None] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(50))
    version: Mapped[int] = mapped_column(Integer)
    number: Mapped[str | None] = mapped_column(String(50))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    template: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DocumentCounter(Base):
    """The last number given to a kind of document in a year: locked while the next one is taken (no gaps)."""

    __tablename__ = "document_counter"

    kind: Mapped[str] = mapped_column(String(50), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)


class EventSubscription(Base):
    """An instance waiting for a message or signal, so correlation is a query, not a scan of workflows."""

    __tablename__ = "event_subscription"
    __table_args__ = (Index("ix_event_subscription_kind_name", "kind", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(10))  # "message" | "signal"
    name: Mapped[str] = mapped_column(String(255))
    element_id: Mapped[str] = mapped_column(String(255))


class Notification(Base):
    """An in-app message to one user or to every member of a group (reminders, escalations, handlers)."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_user", "recipient_user"),
                      Index("ix_notification_group", "recipient_group"))

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recipient_user: Mapped[str | None] = mapped_column(String(150))
    recipient_group: Mapped[str | None] = mapped_column(String(150))
    kind: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(Text)
    instance_id: Mapped[int | None] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(36))
    business_key: Mapped[str | None] = mapped_column(String(255))
    # Handlers post notifications at least once; the same key twice is one notification.
    dedup_key: Mapped[str | None] = mapped_column(String(255), unique=True)


class NotificationRead(Base):
    """Who has read a notification: a group notification is read per member, not once for all."""

    __tablename__ = "notification_read"

    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(String(150), primary_key=True)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)
