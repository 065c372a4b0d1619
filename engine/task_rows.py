"""Each task's stored row (instance_task_state), kept per workflow object between dumps, so that a dump encodes
and writes only the tasks a command changed (see `TaskRows`); a row's text is made by `engine.task_text`."""

import marshal
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import NamedTuple

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.task import TaskState

from engine.task_text import SCALARS
from engine.task_text import TaskTexts
from engine.task_text import stock_json
from engine.task_text import task_json
from engine.values import detached


def workflows(workflow) -> Iterator[tuple[str, Any]]:
    """(key, workflow) of the workflow and of each live sub-process: the `workflow` column of their task rows."""
    yield "", workflow
    for task_id, sub in workflow.subprocesses.items():
        yield str(task_id), sub


# A task's stored row as the dump knows it. `cheap`: the task's own fields but its data, None when loaded and not
# compared yet; `content`: the data fingerprint (`_content_of`); `seq`: the row's sequence number, which orders a
# workflow's tasks as its task map does (a new task's is the next one, given in the order the task map got them;
# a load restores the map in its order), and engine.runtime.diff relies on it; `delta`: the keys of its data's delta
# against its parent's ((updated, deleted), None without a parent); `sig`: a copy of its data (`_snapshot`), kept for
# tasks with children that are checked in full.
class Entry(NamedTuple):
    cheap: tuple | None
    content: bytes | str | None
    body: str
    texts: "TaskTexts | None"
    seq: int
    delta: tuple[frozenset, frozenset] | None
    sig: dict[str, Any] | None


@dataclass
class _Rows:
    entries: dict[Any, Entry]
    upserts: list[dict[str, Any]]
    deletes: list[str]
    next_seq: int
    marks: dict[Any, tuple]
    nonquiet: list = field(default_factory=list)  # the workflow's own tasks checked that are not quiet


_ALL = object()  # every task of the workflow is touched / every key of a task's data changed
_STORED = "_dealflow_rows"  # the attribute of a workflow that holds its _Stored
_MISSING = object()
_QUIET_STATES = TaskState.COMPLETED | TaskState.CANCELLED


class TaskRows:
    """Each task's row as stored, per workflow object, so that a dump encodes and writes only what changed.

    SpiffWorkflow's task converter writes a task's data as a delta against its parent's data, so a task's text
    depends on its own fields, its own data and its parent's data.

    A dump checks in full only the tasks that can have changed, so its cost follows what the command did, not
    the size of the instance. A *quiet* task (finished, or a ready user task) keeps its data while it stays as it
    is: nothing writes into its data. SpiffWorkflow changes data only of tasks it runs, merges into (a
    multi-instance parent, a join) or lets an event reach (waiting tasks), and its merges copy on write
    (`engine.workflow`), so no nested object of a quiet task is changed through another task. Dealflow's own
    commands that put data on a task (a completion, `set_variables`, a message payload, a handler's result)
    `touch` it first. So a dump checks in full:
    - every task that is new, not quiet, touched, or whose state, timestamp or children moved since the last dump
      (the workflow's tracker noted them; after a load, and in sub-processes, one comprehension over the task map
      finds them: the quiet tasks' marks are kept);
    - a quiet child of a checked task whose data changed at a key where the child's delta could change: each
      checked task with children keeps a copy of its data (`_snapshot`), and its quiet children
      look only at the keys that changed (`_unaffected`).

    A full check compares the delta and the internal data by a type-exact fingerprint (`_content_of`: True is not
    1, 1.0 is not 1, and key order counts), re-encodes the task as the stock converter would (`_task_json`) when
    it changed, and writes it if the text differs from the stored one. A completion in a multi-instance approval
    thus checks the completed child and its parent in full, and each sibling at the one or two keys the merge
    changed. A workflow just loaded starts from the rows it was read from (`seed`) and checks every task once.
    With `verify`, every dump is also made by checking every task in full and must come out the same (the test
    suite runs so).
    """

    def __init__(self, verify: bool = False):
        self.verify = verify

    @staticmethod
    def stored(workflow) -> "_Stored | None":
        """What the database holds of the workflow's rows, as its last dump (or its load) left them.

        Kept on the workflow object itself, so that it goes with it: a map keyed by workflows (even weakly) would
        keep each one alive through the tasks its entries hold. Only the command holding the workflow touches it
        (engine.runtime.WorkflowCache hands a workflow to one command at a time). Entries are keyed by the task
        object (hashed by identity in C; a UUID hashes in Python, 20x dearer)."""
        return workflow.__dict__.get(_STORED)

    def seed(self, workflow, stored: dict[Any, tuple[str, int]], next_seq: int) -> None:
        """Take `stored` ({task: (body, seq)}, every task of a workflow just loaded) as the rows in the database; the
        next dump checks every task once."""
        entries = {task: Entry(None, None, body, None, seq, None, None) for task, (body, seq) in stored.items()}
        # The tracker notes every move from here on (engine.runtime.snapshot relies on it being this one).
        tracker = workflow.tracker() if hasattr(workflow, "tracker") else None
        workflow.__dict__[_STORED] = _Stored(entries, {}, next_seq, set(), tracker=tracker)

    def record(self, workflow, rows: _Rows) -> None:
        # From now on the workflow's tracker (engine.workflow.Tracker) notes the tasks that move, if it has one.
        tracker = workflow.tracker() if hasattr(workflow, "tracker") else None
        if tracker is not None:
            tracker.reset()
        workflow.__dict__[_STORED] = _Stored(rows.entries, rows.marks, rows.next_seq, set(), rows.nonquiet, tracker)

    def touch(self, workflow, tasks: Iterable | None = None) -> None:
        """Announce data put on `tasks` (None: on any task) outside SpiffWorkflow's run of them: the next dump
        checks them in full."""
        stored = self.stored(workflow)
        if stored is None or stored.touched is _ALL:
            return
        if tasks is None:
            stored.touched = _ALL
        else:
            stored.touched.update(tasks)

    def rows(self, workflow) -> _Rows:
        """Every task's entry now, and the rows that differ from the stored ones."""
        stored = self.stored(workflow) or _Stored({}, {}, 0, _ALL)
        rows = self._rows(workflow, stored, stored.touched)
        if self.verify:
            _verify_texts(workflow, rows)
        if self.verify and stored.touched is not _ALL:
            full = self._rows(workflow, stored, _ALL)
            if _written(rows) != _written(full):
                raise AssertionError(f"A dump that skipped quiet tasks wrote {_written(rows)}, not the "
                                     f"{_written(full)} of a dump that checked every task: a task's data was "
                                     "changed without touching it.")
        return rows

    def _rows(self, workflow, stored: "_Stored", touched) -> _Rows:
        before, marks = stored.entries, stored.marks
        everything = touched is _ALL
        rows = _Rows(dict(before), [], [], stored.next_seq, {} if everything else dict(marks))
        present = new = 0
        for key_of_workflow, wf in workflows(workflow):
            tasks = wf.tasks
            present += len(tasks)
            if everything:
                todo = list(tasks.values())
            elif not key_of_workflow and stored.tracks(wf):
                # The tasks that were not quiet, and those the tracker saw move since the last dump.
                todo = [t for t in stored.nonquiet if tasks.get(t.id) is t]
                listed = set(todo)
                todo.extend(t for t in stored.tracker.moved if t not in listed and tasks.get(t.id) is t)
                if self.verify:
                    _verify_tracked(todo, tasks, marks)
            else:
                todo = [t for t in tasks.values()
                        if marks.get(t) != (t._state, t.last_state_change, tuple(t._children))]
            if touched and not everything:
                listed = set(todo)
                todo.extend(t for t in touched if t not in listed and tasks.get(t.id) is t)
            # The keys of its data that changed, per task checked in full (_ALL: unknown, or all).
            changed: dict[Any, Any] = {}
            for task in todo:
                new += task not in before
                changed[task] = self._check(task, tasks, key_of_workflow, rows)
            parents = [task for task in todo if task._children and changed[task]]
            while parents:
                parent = parents.pop()
                keys = changed[parent]
                for child_id in parent._children:
                    child = tasks.get(child_id)
                    if child is None or child in changed:
                        continue
                    if not child._children and _unaffected(child, parent, keys, rows.entries[child]):
                        continue
                    changed[child] = self._check(child, tasks, key_of_workflow, rows)
                    if child._children and changed[child]:
                        parents.append(child)
        if present - new != len(before):
            current = {task for _, wf in workflows(workflow) for task in wf.tasks.values()}
            for task in before:
                if task not in current:
                    rows.deletes.append(str(task.id))
                    del rows.entries[task]
                    rows.marks.pop(task, None)
        return rows

    @staticmethod
    def _check(task, tasks, key_of_workflow: str, rows: _Rows) -> Any:
        """Check one task in full: its entry in `rows`, its row among the upserts if its text changed; returns the
        keys of its data that changed (for its children)."""
        parent = tasks.get(task._parent)
        state = task._state
        cheap = (state, task.last_state_change, task.triggered, task.task_spec.name, parent is not None,
                 task._parent, tuple(task._children))
        content, delta = _content_of(task, parent)
        entry = rows.entries.get(task)
        if entry is None:
            body, texts = task_json(task, parent, None, cheap[6])
            seq = rows.next_seq
            rows.next_seq += 1
            rows.upserts.append({"id": str(task.id), "workflow": key_of_workflow, "seq": seq, "body": body})
        else:
            body, texts, seq = entry.body, entry.texts, entry.seq
            if entry.cheap != cheap or entry.content != content:
                if texts is not None and (entry.cheap is None or entry.cheap[6] != cheap[6]):
                    texts = texts._replace(children=None)
                body, texts = task_json(task, parent, texts, cheap[6])
                if body != entry.body:
                    rows.upserts.append({"id": str(task.id), "workflow": key_of_workflow, "seq": seq, "body": body})
        keys, sig = _snapshot(task.data, entry.sig if entry is not None else None) if cheap[6] else (_ALL, None)
        rows.entries[task] = Entry(cheap, content, body, texts, seq, delta, sig)
        if state & _QUIET_STATES or (state == TaskState.READY and task.task_spec.manual):
            rows.marks[task] = (state, cheap[1], cheap[6])
        else:
            rows.marks.pop(task, None)
            if not key_of_workflow:
                rows.nonquiet.append(task)
        return keys


@dataclass
class _Stored:
    entries: dict[Any, Entry]
    marks: dict[Any, tuple]  # the quiet tasks' (state, last_state_change, children) at the last dump
    next_seq: int
    touched: Any  # a set of tasks, or _ALL
    nonquiet: list | None = None  # the workflow's own tasks that were not quiet at the last dump
    tracker: Any = None  # the workflow's tracker since the last dump (engine.workflow.Tracker)

    def tracks(self, workflow) -> bool:
        """Whether the tracker has seen every move of the workflow's own tasks since the last dump: it is still the
        workflow's, and still over its task map."""
        tracker = self.tracker
        return (tracker is not None and self.nonquiet is not None and workflow.__dict__.get("_tracker") is tracker
                and tracker.tasks is workflow.tasks and tracker.count == len(workflow.tasks))


def _verify_tracked(todo: list, tasks: dict, marks: dict) -> None:
    """Every task whose state, timestamp or children moved since the last dump is among those the tracker gave."""
    walked = {t for t in tasks.values() if marks.get(t) != (t._state, t.last_state_change, tuple(t._children))}
    if not walked <= set(todo):
        raise AssertionError(f"The tracker missed tasks that moved: {sorted(str(t.id) for t in walked - set(todo))}")


def _verify_texts(workflow, rows: _Rows) -> None:
    """Each row to write is, byte for byte, what the stock task converter writes (the parts kept between dumps
    included)."""
    if not rows.upserts:
        return
    tasks = {str(task.id): task for _, wf in workflows(workflow) for task in wf.tasks.values()}
    for row in rows.upserts:
        stock = stock_json(tasks[row["id"]])
        if row["body"] != stock:
            raise AssertionError(f"The row of task {row['id']} is {row['body']!r}, not the stock {stock!r}.")


def _written(rows: _Rows) -> tuple:
    return sorted((row["id"], row["body"]) for row in rows.upserts), sorted(rows.deletes)


def _snapshot(data: dict, old: dict | None) -> tuple[Any, dict]:
    """(the keys at which `data` changed since `old`, a snapshot of it, was taken; a snapshot of `data` now).

    A snapshot holds a deep copy of each value (a plain scalar is its own copy). A value still equal (==) to its
    copy is taken as unchanged, and the copy is kept: a children's delta is made by comparing with !=
    (DeepMerge.get_updated_keys), so a change that keeps the value equal cannot move a child's value in or out of
    its delta. Comparing costs a fraction of fingerprinting the value again (a multi-instance parent's 300-item
    input, on every completion).
    The keys are _ALL when there is no `old`, or when the keys that stayed changed their order (a delta lists its
    deletions in the parent's key order); else those whose value changed, appeared or went.
    """
    snap: dict[str, Any] = {}
    keys: Any = _ALL if old is None else set()
    for name, value in data.items():
        if old is not None:
            kept = old.get(name, _MISSING)
            if kept is not _MISSING:
                try:
                    same = not value != kept
                except Exception:  # noqa: BLE001 - a value that cannot be compared has changed, for all we know
                    same = False
                if same:
                    snap[name] = kept
                    continue
            keys.add(name)
        snap[name] = value if value.__class__ in SCALARS else detached(value)
    if old is not None and list(old) != list(data):  # keys came, went or moved
        if [name for name in data if name in old] != [name for name in old if name in data]:
            return _ALL, snap
        keys.update(name for name in old if name not in data)
    return keys, snap


def _unaffected(task, parent, keys, entry: Entry) -> bool:
    """Whether the delta of a quiet task (its own data unchanged) against its parent's data is unchanged, the
    parent's data having changed at `keys` (_ALL: unknown) since the entry was made: at each such key, the task's
    value stays in the delta's updates, its deletions, or neither, as it was."""
    if keys is _ALL or entry.delta is None:
        return False
    data, pdata = task.data, parent.data
    updated, deleted = entry.delta
    for name in keys:
        if name in data:
            value = data[name]
            shared = pdata.get(name, _MISSING)
            if shared is _MISSING:
                now = True
            elif value is shared:
                now = value.__class__ is float and value != value
            else:
                now = bool(value != shared)
            if now is not (name in updated) or name in deleted:
                return False
        elif (name in pdata) is not (name in deleted) or name in updated:
            return False
    return True


def _content_of(task, parent) -> tuple[bytes | str, tuple[frozenset, frozenset] | None]:
    """What the task converter writes of the task's data and internal data, as a type-exact fingerprint; and the
    keys of the delta (updated, deleted), None for a task without a parent.

    marshal, not JSON: several times cheaper, and as exact for the JSON types (it tells True from 1 and 1.0 from
    1, and keeps key order); a value marshal cannot take (a date, a Decimal) falls back to repr. A value the
    encoder cannot write never gets a cached entry: encoding it raises, as it always did.
    """
    data = task.data
    if parent is None:
        content, delta = (data, task.internal_data), None
    else:
        # DeepMerge.get_updated_keys / get_deleted_keys, as TaskConverter.to_dict computes the delta; a value that
        # is its parent's own object is equal to it unless it is a NaN (share_parent_values makes that common).
        pdata = parent.data
        updated = {}
        for name, value in data.items():
            if name in pdata:
                shared = pdata[name]
                if value is shared:
                    if value.__class__ is not float or value == value:
                        continue
                elif not value != shared:
                    continue
            updated[name] = value
        deleted = [name for name in pdata if name not in data]
        content, delta = (updated, deleted, task.internal_data), (frozenset(updated), frozenset(deleted))
    try:
        return marshal.dumps(content, 2), delta  # version 2: no back-references, so equal content, equal bytes
    except ValueError:
        return repr(content), delta


TASK_ROWS = TaskRows()


def touch(workflow: BpmnWorkflow, tasks: Iterable | None = None) -> None:
    """Announce data put on `tasks` (None: on any task) of `workflow` outside SpiffWorkflow's run of them, before
    the next dump (see TaskRows): a completion's form values, changed process data, a message's payload."""
    TASK_ROWS.touch(workflow, tasks)
