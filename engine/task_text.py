"""A task's row text: what SpiffWorkflow's task converter writes for it, `ENCODE(REGISTRY.convert(task))`, made
without a Python call per plain item and, for a task with long lists (a multi-instance parent's 300 children and
merged ids), in parts kept between dumps (`TaskTexts`)."""

from operator import is_
from types import ModuleType
from typing import Any
from typing import NamedTuple

from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge

from engine.registry import ENCODE
from engine.registry import REGISTRY


class TaskTexts(NamedTuple):
    """The JSON text of a task's long lists, kept between dumps so that a task with hundreds of children (a
    multi-instance parent) is not re-encoded whole each time one of them finishes: its children's ids while they
    are the same, and each long list of its internal data (the merged children) with the items it was made of,
    extended by its new tail while the items before it stay the same objects."""

    children: str | None
    internal: dict[str, tuple[list, str]]


def task_json(task, parent, texts: TaskTexts | None, children: tuple) -> tuple[str, TaskTexts | None]:
    """`ENCODE(REGISTRY.convert(task))`, the stock TaskConverter.to_dict, and the texts of its long lists to keep
    (`TaskTexts`, None when it has none). The internal data is converted without a Python call per plain item.

    A task with a long list is encoded in parts, each as the encoder writes it, joined as the encoder joins an
    object's members; `texts`, the parts kept from its last encoding, are taken where they still hold."""
    if parent is None:
        data, delta = task.data, {}
    else:
        data, delta = {}, {"updates": DeepMerge.get_updated_keys(parent.data, task.data),
                           "deletions": DeepMerge.get_deleted_keys(parent.data, task.data)}
    internal = task.internal_data
    long_internal = [key for key, value in internal.items()
                     if key.__class__ is str and value.__class__ is list and len(value) >= _LONG]
    if len(children) < _LONG and not long_internal:
        return ENCODE({
            "id": str(task.id),
            "parent": str(task._parent) if parent is not None else None,
            "children": [str(c) for c in children],
            "last_state_change": task.last_state_change,
            "state": task._state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": _converted(internal),
            "data": data,
            "delta": delta,
            "typename": _TASK_TYPENAME,
        }), None
    children_text = texts.children if texts is not None and texts.children is not None else \
        ENCODE([str(c) for c in children])
    kept = texts.internal if texts is not None else {}
    lists = {key: text for key in long_internal if (text := _list_text(internal[key], kept.get(key))) is not None}
    own = ENCODE({"id": str(task.id), "parent": str(task._parent) if parent is not None else None})
    fields = ENCODE({"last_state_change": task.last_state_change, "state": task._state,
                     "task_spec": task.task_spec.name, "triggered": task.triggered})
    rest = ENCODE({"data": data, "delta": delta, "typename": _TASK_TYPENAME})
    members = []
    for key, value in internal.items():
        if key in lists:
            members.append(f"{ENCODE(key)}:{lists[key][1]}")
        elif not callable(value) and not isinstance(value, ModuleType):
            members.append(ENCODE({key: _converted(value)})[1:-1])
    body = (f'{own[:-1]},"children":{children_text},{fields[1:-1]},"internal_data":{{{",".join(members)}}},'
            f'{rest[1:]}')
    return body, TaskTexts(children_text, lists)


# A list this long is kept as text between dumps (`TaskTexts`).
_LONG = 16


def _list_text(value: list, kept: tuple[list, str] | None) -> tuple[list, str] | None:
    """(a copy of `value`, its JSON text as `ENCODE(value)` writes it) for a list of plain scalars (None for any
    other list: it is encoded whole, every time), from `kept`, the copy and text of an earlier encoding, when
    `value` begins with the very objects it held: only the new tail is encoded. Scalars cannot change in place, so
    the same objects have the same text."""
    if kept is not None:
        items, text = kept
        n = len(items)
        if len(value) >= n and all(map(is_, value[:n], items)):
            tail = value[n:]
            if not tail:
                return items, text
            if not all(item.__class__ in SCALARS for item in tail):
                return None
            tail_text = ENCODE(tail)
            return value[:], (f"{text[:-1]},{tail_text[1:]}" if n else tail_text)
    if not all(item.__class__ in SCALARS for item in value):
        return None
    return value[:], ENCODE(value)


_TASK_TYPENAME = REGISTRY.typenames[Task]
SCALARS = frozenset({str, int, float, bool, type(None)})


def _converted(value: Any) -> Any:
    """REGISTRY.convert(value) (clean, then convert registered types inside dicts and lists), returning plain JSON
    values as they are."""
    cls = value.__class__
    if cls in SCALARS or (cls is list and all(item.__class__ in SCALARS for item in value)):
        return value
    if cls is dict:
        return {key: _converted(item) for key, item in value.items()
                if not callable(item) and not isinstance(item, ModuleType)}
    return REGISTRY.convert(value)


def stock_json(task) -> str:
    """The stock converter's text for `task`, made the slow way (the suite checks every row written against it)."""
    return ENCODE(REGISTRY.convert(task))
