"""The inbox side of user tasks: rows for new tasks, who may act on one, claim/unclaim/assign.

Every write to a task row is made by a command on its instance (which bumps the instance's lock_version) or is
audited on the instance's trail (a claim, unclaim or assignment moves its audit_seq): the window of open tasks an
engine keeps with a cached workflow relies on it (`engine.open_tasks`).
"""

import copy
from datetime import datetime

from SpiffWorkflow.task import Task as SpiffTask
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.assignment import Assignment
from engine.db import plain
from engine.errors import Conflict
from engine.errors import Forbidden
from engine.models import HumanTask
from engine.models import ProcessInstance
from engine.models import TaskCandidate
from engine.models import TaskStatus
from engine.sql import Batch
from engine.sql import InsertRows
from engine.sql import Prepared

MANAGERS = ("admin", "supervisor")


def label(row: HumanTask) -> str:
    return f"task {row.name or row.bpmn_id!r} ({row.id})"


def new_row(task: SpiffTask, instance: ProcessInstance, assignment: Assignment, now: datetime) -> HumanTask:
    spec = task.task_spec
    # The form is copied: the row and the answers built from it must not share the cached spec's lists.
    row = plain(HumanTask, dict(
        id=str(task.id), instance_id=instance.id, process_key=instance.process_key,
        business_key=instance.business_key, bpmn_id=spec.bpmn_id, name=spec.bpmn_name,
        lane=getattr(spec, "lane", None), status=TaskStatus.OPEN, assignee=assignment.assignee,
        candidate_groups=assignment.candidate_groups, candidate_users=assignment.candidate_users,
        form=copy.deepcopy((spec.extensions or {}).get("form", [])), priority=assignment.priority,
        due_at=assignment.due_at, follow_up_at=assignment.follow_up_at, created_at=now,
    ))
    return row


_TASK = HumanTask.__table__
_INSERT_TASKS = InsertRows(_TASK)
_SELECT_TASK = Prepared(select(_TASK).where(_TASK.c.id == bindparam("b_id")))
_INSERT_CANDIDATES = InsertRows(TaskCandidate.__table__)


def insert_rows(batch: Batch, rows: list[HumanTask]) -> None:
    """Insert new task rows and their candidate rows: two plain statements, not the ORM's unit of work.

    The rows stay plain objects (what `load_row` gives too): nothing later in a command changes them through
    the ORM, and the ORM would otherwise write each attribute the inbox functions set a second time.
    """
    if not rows:
        return
    batch.insert(_INSERT_TASKS, [row.__dict__ for row in rows])
    batch.insert(_INSERT_CANDIDATES, [{"task_id": row.id, "kind": kind, "name": name}
                                      for row in rows for kind, name in candidate_pairs(row)])


def load_row(session: Session, task_id: str) -> HumanTask | None:
    """One task row as a plain object (see insert_rows), or None."""
    row = _SELECT_TASK.first(session, {"b_id": task_id})
    return None if row is None else plain(HumanTask, row)


def candidate_pairs(row: HumanTask) -> list[tuple[str, str]]:
    """(kind, name) of the task's candidate rows: each group, then each user, once."""
    return [("group", g) for g in dict.fromkeys(row.candidate_groups)] + [
        ("user", u) for u in dict.fromkeys(row.candidate_users)]


def is_candidate(row: HumanTask, actor: Actor) -> bool:
    return actor.username in row.candidate_users or bool(actor.groups.intersection(row.candidate_groups))


def ensure_open(row: HumanTask) -> None:
    if row.status == TaskStatus.COMPLETED:
        raise Conflict(
            f"The {label(row)} was already completed by {row.completed_by!r}; refresh your inbox.",
            details={"task_id": row.id, "completed_by": row.completed_by},
        )
    if row.status != TaskStatus.OPEN:
        raise Conflict(f"The {label(row)} is {row.status}; it no longer waits for anyone.")


def ensure_can_work(row: HumanTask, actor: Actor) -> None:
    """The assignee may complete; so may a candidate while nobody has claimed it. Anyone else: Forbidden."""
    ensure_open(row)
    if row.assignee == actor.username:
        return
    if row.assignee is None and is_candidate(row, actor):
        return
    if row.assignee is not None and is_candidate(row, actor):
        raise Conflict(f"The {label(row)} was claimed by {row.assignee!r}; ask them or a supervisor to release it.")
    raise Forbidden(f"{actor.username!r} may not work on the {label(row)}: it is assigned to "
                    f"{_owner_text(row)}.")


def _owner_text(row: HumanTask) -> str:
    if row.assignee:
        return repr(row.assignee)
    who = [f"group {g!r}" for g in row.candidate_groups] + [f"user {u!r}" for u in row.candidate_users]
    return " or ".join(who) if who else "nobody yet (a supervisor must assign it)"


def _set_assignee(session: Session, row: HumanTask, expected: str | None, new: str | None, now: datetime) -> None:
    """Compare-and-set the assignee: a racing claim makes this a Conflict, never a silent overwrite."""
    guard = HumanTask.assignee.is_(None) if expected is None else HumanTask.assignee == expected
    result = session.execute(
        update(HumanTask)
        .where(HumanTask.id == row.id, HumanTask.status == TaskStatus.OPEN, guard)
        .values(assignee=new, claimed_at=now if new else None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"The {label(row)} changed while you were acting on it; refresh and try again.")
    row.assignee, row.claimed_at = new, (now if new else None)


def claim(session: Session, row: HumanTask, actor: Actor, now: datetime) -> bool:
    """Take an unclaimed task; returns False when the actor already holds it."""
    ensure_open(row)
    if row.assignee == actor.username:
        return False
    if row.assignee is not None:
        raise Conflict(f"The {label(row)} was already claimed by {row.assignee!r}.")
    if not (is_candidate(row, actor) or actor.has_role(*MANAGERS)):
        raise Forbidden(f"{actor.username!r} may not claim the {label(row)}: it is offered to {_owner_text(row)}.")
    _set_assignee(session, row, None, actor.username, now)
    return True


def unclaim(session: Session, row: HumanTask, actor: Actor, now: datetime) -> str:
    """Give a task back to its candidates; returns who held it."""
    ensure_open(row)
    if row.assignee is None:
        raise Conflict(f"The {label(row)} is not claimed by anyone.")
    if row.assignee != actor.username and not actor.has_role(*MANAGERS):
        raise Forbidden(f"Only {row.assignee!r} or a supervisor may release the {label(row)}.")
    previous = row.assignee
    _set_assignee(session, row, previous, None, now)
    return previous


def assign(session: Session, row: HumanTask, username: str, actor: Actor, now: datetime) -> str | None:
    """Give a task to `username` (already checked to exist by the caller); supervisors and admins only."""
    ensure_open(row)
    if not actor.has_role(*MANAGERS):
        raise Forbidden(f"{actor.username!r} may not assign the {label(row)}: only supervisors and admins may.")
    previous = row.assignee
    if previous != username:
        _set_assignee(session, row, previous, username, now)
    return previous


_CLOSE = Prepared(update(HumanTask.__table__)
                  .where(HumanTask.id == bindparam("task_id"), HumanTask.status == TaskStatus.OPEN)
                  .values(status=bindparam("new_status"), completed_at=bindparam("at"), completed_by=bindparam("by")))


def close(batch: Batch, row: HumanTask, status: TaskStatus, actor: str | None, now: datetime) -> None:
    """Mark an open task completed or cancelled, guarded so two closers cannot both succeed (checked when the
    batch ends)."""
    message = f"The {label(row)} was closed by someone else a moment ago; refresh your inbox."
    batch.write(_CLOSE, {"task_id": row.id, "new_status": status, "at": now, "by": actor}, expect=1,
                error=lambda: Conflict(message))
    row.status, row.completed_at, row.completed_by = status, now, actor


def cancel_rows(session: Session, task_ids: list[str], now: datetime) -> int:
    """Cancel the open rows among `task_ids`; how many there were."""
    if not task_ids:
        return 0
    return session.execute(
        update(HumanTask)
        .where(HumanTask.id.in_(task_ids), HumanTask.status == TaskStatus.OPEN)
        .values(status=TaskStatus.CANCELLED, completed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
