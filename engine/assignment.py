"""Work out who owns a new user task, and when it is due, from its Camunda attributes."""

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from SpiffWorkflow.task import Task as SpiffTask

from engine.isodates import to_datetime
from engine.sandbox import evaluate

DEFAULT_PRIORITY = 50


@dataclass
class Assignment:
    assignee: str | None = None
    candidate_groups: list[str] = field(default_factory=list)
    candidate_users: list[str] = field(default_factory=list)
    due_at: datetime | None = None
    follow_up_at: datetime | None = None
    priority: int = DEFAULT_PRIORITY


class AssignmentError(Exception):
    """A designer's assignment expression failed; the message names the attribute and the task."""


def lane_group(lane: str) -> str:
    """The candidate group a lane stands for: 'Sales manager' -> 'sales_manager'."""
    return "_".join(lane.lower().split())


def _is_expression(raw: str) -> bool:
    raw = raw.strip()
    return raw.startswith("${") and raw.endswith("}")


def _value(raw: str | None, task: SpiffTask, now: datetime) -> Any:
    if raw is None or raw.strip() == "":
        return None
    if _is_expression(raw):
        return evaluate(raw, task.data, clock=lambda: now)
    return raw.strip()


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple | set):
        return [str(item).strip() for item in value if str(item).strip()]
    raise ValueError(f"gave {value!r}; expected a name or a list of names")


def _attribute(ext: dict, name: str, task: SpiffTask, now: datetime, convert):
    try:
        return convert(_value(ext.get(name), task, now))
    except Exception as exc:  # noqa: BLE001 - any failure of designer input is reported the same way
        label = task.task_spec.bpmn_name or task.task_spec.bpmn_id
        raise AssignmentError(
            f"camunda:{name} of user task {label!r} ({task.task_spec.bpmn_id}) failed: {exc}. "
            "Fix the attribute in the diagram, or set the variables it uses before this task."
        ) from exc


def _single_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"gave {value!r}; expected a user name")
    return value


def _optional_time(now: datetime):
    return lambda value: None if value is None else to_datetime(value, now)


def _priority(value: Any) -> int:
    return DEFAULT_PRIORITY if value is None else int(value)


def resolve(task: SpiffTask, now: datetime) -> Assignment:
    """Evaluate assignee, candidates, due and follow-up dates and priority of a READY user task."""
    ext = task.task_spec.extensions or {}
    result = Assignment(
        assignee=_attribute(ext, "assignee", task, now, _single_name),
        candidate_groups=_attribute(ext, "candidateGroups", task, now, _names),
        candidate_users=_attribute(ext, "candidateUsers", task, now, _names),
        due_at=_attribute(ext, "dueDate", task, now, _optional_time(now)),
        follow_up_at=_attribute(ext, "followUpDate", task, now, _optional_time(now)),
        priority=_attribute(ext, "priority", task, now, _priority),
    )
    lane = getattr(task.task_spec, "lane", None)
    if lane and not (result.assignee or result.candidate_groups or result.candidate_users):
        result.candidate_groups = [lane_group(lane)]
    return result
