"""Plain read models the engine hands out: no ORM objects leave the engine."""

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from datetime import date
from datetime import datetime
from typing import Any

from engine.models import AuditEvent
from engine.models import HumanTask
from engine.values import Frozen

# An instance view lists at most this many open tasks, the oldest first, and counts them all (`open_task_count`):
# a multi-instance approval over hundreds of items would otherwise answer every completion with every task. The
# rest are in the inbox, filtered by instance.
OPEN_TASKS_IN_VIEW = 50


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class _View:
    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class TaskView(_View):
    id: str
    instance_id: int
    process_key: str
    business_key: str | None
    bpmn_id: str
    name: str | None
    lane: str | None
    status: str
    assignee: str | None
    candidate_groups: list[str]
    candidate_users: list[str]
    form: list[dict[str, Any]]
    priority: int
    due_at: datetime | None
    follow_up_at: datetime | None
    created_at: datetime
    claimed_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    # The data the task sees (e.g. the line item of a multi-instance approval); only on the single-task view.
    variables: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: HumanTask, variables: dict[str, Any] | None = None) -> "TaskView":
        fields = {name: getattr(row, name) for name in cls.__dataclass_fields__ if name != "variables"}
        return cls(**fields, variables=variables)

    @classmethod
    def of_columns(cls, columns: dict[str, Any]) -> "TaskView":
        """`cls(**columns)` for a row read as exactly the columns named like the fields (all but `variables`),
        without the frozen dataclass's object.__setattr__ per field (7 us a row; a page has 50)."""
        view = object.__new__(cls)
        view.__dict__.update(columns, variables=None)
        return view


class _Thawed:
    """A dataclass field that may be given a `values.Frozen` copy: it is built into the value when first read, and
    kept (every reader sees that one value, as for any other field). None stands for an empty dict."""

    def __set_name__(self, owner, name: str) -> None:
        self._slot = f"_{name}"

    def __get__(self, obj, owner=None):
        if obj is None:
            return None  # the field's default
        value = obj.__dict__[self._slot]
        if isinstance(value, Frozen):
            value = obj.__dict__[self._slot] = value.thaw()
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self._slot] = {} if value is None else value


@dataclass(frozen=True)
class InstanceView(_View):
    id: int
    process_key: str
    version: int
    definition_id: int
    business_key: str | None
    status: str
    started_at: datetime
    started_by: str
    ended_at: datetime | None
    error_message: str | None
    # How many open tasks the instance has in all; `open_tasks` holds the oldest OPEN_TASKS_IN_VIEW of them.
    open_task_count: int
    # The process data after the command; an answer built in a command holds a frozen copy until it is read.
    variables: dict[str, Any] = _Thawed()  # noqa: RUF009 - a descriptor, not a shared default
    open_tasks: list[TaskView] = field(default_factory=list)
    active_elements: list[str] = field(default_factory=list)
    completed_elements: list[str] = field(default_factory=list)
    # Open incidents (service calls out of attempts); filled in where an operator needs them (the instance detail).
    incidents: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class EventView(_View):
    seq: int
    at: datetime
    actor: str
    event: str
    instance_id: int | None
    task_id: str | None
    element_id: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEvent) -> "EventView":
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})
