"""Task deadlines: a reminder before a user task is due and a notice when it is overdue, as notifications."""

from collections.abc import Callable
from datetime import datetime
from datetime import timedelta

from sqlalchemy import and_
from sqlalchemy import exists
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import AuditRecord
from engine.errors import NotFound
from engine.isodates import duration_of
from engine.isodates import is_duration
from engine.models import HumanTask
from engine.models import Job
from engine.models import JobKind
from engine.models import Notification
from engine.models import NotificationRead
from engine.models import TaskStatus

DEFAULT_BEFORE = timedelta(hours=4)


def lead_time(row: HumanTask, properties: dict, default: timedelta) -> timedelta:
    """How long before the due date to remind: camunda:property 'reminderBefore' (ISO duration) or the default."""
    text = (properties or {}).get("reminderBefore")
    if isinstance(text, str) and is_duration(text):
        return duration_of(text)
    return default


def deadline_jobs(row: HumanTask, before: timedelta, now: datetime) -> list[Job]:
    """The reminder (if still ahead) and the overdue notice for a new task with a due date."""
    if row.due_at is None:
        return []
    made = []
    if row.due_at - before > now:
        made.append(Job(kind=JobKind.REMINDER, instance_id=row.instance_id, task_id=row.id,
                        element_id=row.bpmn_id, due_at=row.due_at - before, attempts=0))
    made.append(Job(kind=JobKind.OVERDUE, instance_id=row.instance_id, task_id=row.id, element_id=row.bpmn_id,
                    due_at=row.due_at, attempts=0))
    return made


def _recipients(row: HumanTask) -> list[tuple[str | None, str | None]]:
    if row.assignee:
        return [(row.assignee, None)]
    return [(None, g) for g in row.candidate_groups] + [(u, None) for u in row.candidate_users]


def notify_deadline(session: Session, job: Job, now: datetime) -> AuditRecord | None:
    """Send the reminder or overdue notice of `job`; nothing when the task was finished meanwhile."""
    row = session.get(HumanTask, job.task_id)
    if row is None or row.status != TaskStatus.OPEN:
        return None
    what = f"{row.name or row.bpmn_id!r}" + (f" for {row.business_key}" if row.business_key else "")
    if job.kind == JobKind.OVERDUE:
        kind, message = "task_overdue", f"{what} was due {row.due_at:%Y-%m-%d %H:%M} UTC and is overdue."
    else:
        kind, message = "task_reminder", f"Reminder: {what} is due {row.due_at:%Y-%m-%d %H:%M} UTC."
    recipients = _recipients(row)
    session.add_all([Notification(created_at=now, recipient_user=user, recipient_group=group, kind=kind,
                                  message=message, instance_id=row.instance_id, task_id=row.id,
                                  business_key=row.business_key) for user, group in recipients])
    return AuditRecord(event=kind, actor="timer", at=now, instance_id=row.instance_id, task_id=row.id,
                       element_id=row.bpmn_id, details={"recipients": [u or g for u, g in recipients],
                                                        "users": [u for u, _ in recipients if u],
                                                        "groups": [g for _, g in recipients if g]})


# (session, usernames, group names) -> the e-mail addresses of those users and of every member of those groups.
Directory = Callable[[Session, list[str], list[str]], list[str]]


def deadline_mail(session: Session, job: Job, record: AuditRecord, directory: Directory, attempts: int,
                  now: datetime) -> Job | None:
    """The mail job that sends a reminder or overdue notice by mail too; None when nobody has an address."""
    row = session.get(HumanTask, job.task_id)
    emails = sorted(set(directory(session, record.details["users"], record.details["groups"])))
    if row is None or not emails:
        return None
    context = {"task_name": row.name or row.bpmn_id, "due_at": row.due_at.strftime("%Y-%m-%d %H:%M UTC"),
               "overdue": job.kind == JobKind.OVERDUE, "business_key": row.business_key,
               "process_key": row.process_key}
    return Job(kind=JobKind.MAIL, instance_id=row.instance_id, task_id=row.id, element_id=row.bpmn_id,
               due_at=now, attempts=0, topic="mail.send", max_attempts=attempts, created_at=now,
               payload={"parameters": {"to": emails, "template": "task_reminder", "context": context}})


def _visible(username: str, groups: frozenset[str]):
    return or_(Notification.recipient_user == username, Notification.recipient_group.in_(sorted(groups)))


def list_for(session: Session, username: str, groups: frozenset[str], unread_only: bool, limit: int,
             offset: int) -> list[dict]:
    """A user's notifications, newest first, each with its read flag for that user."""
    read = exists().where(and_(NotificationRead.notification_id == Notification.id,
                               NotificationRead.username == username))
    query = select(Notification, read.label("read")).where(_visible(username, groups))
    if unread_only:
        query = query.where(~read)
    rows = session.execute(query.order_by(Notification.id.desc()).limit(limit).offset(offset))
    return [{"id": n.id, "created_at": n.created_at, "kind": n.kind, "message": n.message,
             "instance_id": n.instance_id, "task_id": n.task_id, "business_key": n.business_key,
             "to": n.recipient_user or f"group:{n.recipient_group}", "read": bool(is_read)} for n, is_read in rows]


def mark_read(session: Session, notification_id: int, username: str, groups: frozenset[str], now: datetime) -> None:
    visible = session.scalar(select(Notification.id).where(Notification.id == notification_id,
                                                           _visible(username, groups)))
    if visible is None:
        raise NotFound(f"There is no notification {notification_id} for {username!r}.")
    if session.get(NotificationRead, (notification_id, username)) is None:
        session.add(NotificationRead(notification_id=notification_id, username=username, read_at=now))
