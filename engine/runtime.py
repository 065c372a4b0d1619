"""Workflow objects: create, load, dump, and see what a command changed (SpiffWorkflow keeps no history)."""

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from itertools import chain
from operator import attrgetter
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.task import TaskState
from sqlalchemy.orm import Session

from engine import state_store
from engine import workflow as workflow_module
from engine.definitions import LoadedSpec
from engine.serialization import dump_state
from engine.serialization import workflow_from_state
from engine.sql import Batch
from engine.task_rows import TASK_ROWS
from engine.workflow import DealflowWorkflow
from engine.workflow import share_parent_values
from engine.workflow import tracked

# Control tasks SpiffWorkflow adds to every spec; never shown to users or auditors.
INTERNAL_SPECS = ("Start", "End", "Root")


def iter_tasks(workflow: BpmnWorkflow) -> Iterable[SpiffTask]:
    """Every task of the workflow and of its live sub-processes (iterated in C: a command makes several passes)."""
    if not workflow.subprocesses:
        return workflow.tasks.values()
    return chain(workflow.tasks.values(), *(sub.tasks.values() for sub in workflow.subprocesses.values()))


@dataclass
class Snapshot:
    """Every task, in the task maps' order, and its state (two lists: cheaper to take than a map, and `diff` walks
    them side by side)."""

    tasks: list[SpiffTask]
    states: list[int]


@dataclass
class Tracked:
    """The start of a command whose changes the workflow's tracker notes (`engine.workflow.Tracker`): nothing to
    copy; `diff` reads the tasks that moved. `entries`: the task rows as stored, whose `seq` orders the tasks as the
    task map does (`engine.task_rows.Entry`). `full`: a Snapshot as well, for `diff` to check itself against
    (engine.workflow.VERIFY)."""

    tracker: Any
    entries: dict
    full: Snapshot | None = None


def snapshot(workflow: BpmnWorkflow) -> Snapshot | Tracked:
    """What `diff` needs to tell a command's changes: the tracker, when it notes them all (a workflow with no
    sub-process, stored, and nothing noted since its dump), else every task and its state."""
    tracker, stored = tracked(workflow), TASK_ROWS.stored(workflow)
    # The tracker the last dump (or the load) left, which has seen every move since, and nothing moved yet.
    if tracker is not None and stored is not None and tracker is stored.tracker and not tracker.moved \
            and not tracker.gone:
        return Tracked(tracker, stored.entries, _snapshot(workflow) if workflow_module.VERIFY else None)
    return _snapshot(workflow)


def _snapshot(workflow: BpmnWorkflow) -> Snapshot:
    tasks = list(iter_tasks(workflow))
    return Snapshot(tasks, [task._state for task in tasks])


def is_bpmn_element(task: SpiffTask) -> bool:
    spec = task.task_spec
    return getattr(spec, "bpmn_id", None) is not None and spec.name not in INTERNAL_SPECS


def is_human(task: SpiffTask) -> bool:
    return bool(task.task_spec.manual) and is_bpmn_element(task)


@dataclass
class Changes:
    """What one command did to the task tree, in the order things happened."""

    new_ready_human: list[SpiffTask]
    completed: list[SpiffTask]
    cancelled_human_ids: list[UUID]
    errored: list[SpiffTask]
    created: list[SpiffTask] = field(default_factory=list)


def diff(before: Snapshot | Tracked, workflow: BpmnWorkflow) -> Changes:
    """Compare the start of a command (`snapshot`) with the workflow after it."""
    if isinstance(before, Tracked):
        changes = _classify(*_tracked_moves(before, workflow))
        if before.full is not None:
            _same_changes(changes, diff(before.full, workflow))
        return changes
    tasks = list(iter_tasks(workflow))
    count = len(before.tasks)
    if tasks[:count] == before.tasks:  # (by identity) none left, none moved in the maps: the new ones follow
        # The tasks whose state moved, found side by side in C (most of a big instance's tasks did not move).
        moved = [(task, old) for task, old in zip(before.tasks, before.states, strict=True) if task._state != old]
        moved.extend((task, None) for task in tasks[count:])
        return _classify(moved, [])
    states = dict(zip(before.tasks, before.states, strict=True))
    moved = [(task, states.get(task)) for task in tasks if states.get(task) != task._state]
    # Human tasks removed from the tree (a cancelled branch, a finished sub-process) are cancelled too; tasks were
    # removed only if fewer of the old ones are left than there were.
    created = sum(old is None for _, old in moved)
    if len(tasks) - created == count:
        return _classify(moved, [])
    after = set(tasks)
    return _classify(moved, [task for task, state in states.items() if task not in after and state == TaskState.READY])


def _tracked_moves(before: Tracked, workflow: BpmnWorkflow) -> tuple[list, list]:
    """(task, state before or None if new) of each task that moved, in the task maps' order, and the tasks removed
    that were ready, from the tracker's notes."""
    tracker, entries = before.tracker, before.entries
    if workflow.tracker() is not tracker:  # rebuilt: its task map changed behind SpiffWorkflow's notifications
        raise RuntimeError("The workflow's task map changed behind its tracker during a command; nothing was saved.")
    tasks = workflow.tasks
    moved, created = [], []
    for task, old in tracker.moved.items():
        if old is None:
            created.append((task, None))
        elif task._state != old and tasks.get(task.id) is task:
            moved.append((task, old))
    # The map's order: the stored ones by their rows' sequence numbers, then the new ones in the order the tracker
    # noted them (their creation, as the map has them), then the tasks of the sub-processes the command started.
    moved.sort(key=lambda pair: entries[pair[0]].seq)
    moved.extend(created)
    for sub in workflow.subprocesses.values():
        moved.extend((task, None) for task in sub.tasks.values())
    return moved, sorted(tracker.gone, key=lambda task: entries[task].seq)


def _classify(moved: list, removed_ready: list) -> Changes:
    changes = Changes([], [], [], [])
    for task, old in moved:
        state = task._state
        if old is None:
            changes.created.append(task)
        if state == TaskState.READY and is_human(task):
            changes.new_ready_human.append(task)
        elif state == TaskState.COMPLETED and is_bpmn_element(task):
            changes.completed.append(task)
        elif state == TaskState.ERROR:
            changes.errored.append(task)
        if old == TaskState.READY and state != TaskState.COMPLETED and is_human(task):
            changes.cancelled_human_ids.append(task.id)
    changes.cancelled_human_ids.extend(task.id for task in removed_ready if is_human(task))
    changes.completed.sort(key=lambda t: t.last_state_change)
    return changes


def _same_changes(tracked: Changes, walked: Changes) -> None:
    for name in ("new_ready_human", "completed", "cancelled_human_ids", "errored", "created"):
        mine, theirs = getattr(tracked, name), getattr(walked, name)
        if mine != theirs:
            raise AssertionError(f"The tracker's diff gave {name} {mine}, a walk of the task maps {theirs}.")


def new_workflow(loaded: LoadedSpec, variables: dict[str, Any], script_engine) -> BpmnWorkflow:
    workflow = DealflowWorkflow(loaded.spec, loaded.subprocess_specs, script_engine=script_engine)
    # Seed data goes on the root task: workflow.data is not visible to scripts (notes/spiffworkflow-3.2.md).
    workflow.task_tree.data.update(variables)
    return workflow


def load_workflow(session: Session, instance_id: int, loaded: LoadedSpec, script_engine) -> BpmnWorkflow:
    """The instance's workflow as stored (head and task rows, read in one statement)."""
    head, rows = state_store.read(session, instance_id)
    workflow = workflow_from_state(head, rows, loaded.spec, loaded.subprocess_specs, script_engine)
    share_parent_values(iter_tasks(workflow))
    return workflow


class WorkflowCache:
    """Workflows kept in memory between commands, each tagged with the instance row version it was saved as.

    Deserializing is the largest cost of a command on a big instance (SpiffWorkflow rebuilds every task and
    deep-copies its parent's data into it). A command `take`s the entry, so no other thread can touch the same
    objects, and gets it only if the row it locked still has that version: every write to an instance row bumps
    the version, so an entry never stands for anything but the state in the database. A command `put`s its
    workflow back only after its transaction committed; a failed one leaves nothing behind. `maxsize=0` turns
    the cache off (the library default: tests then round-trip every step through the database).
    """

    def __init__(self, maxsize: int = 0):
        self._entries: OrderedDict[int, tuple[int, BpmnWorkflow]] = OrderedDict()
        self._lock = threading.Lock()
        self.maxsize = maxsize

    def take(self, instance_id: int, version: int) -> BpmnWorkflow | None:
        """The cached workflow of this instance at exactly this version (removed from the cache), or None."""
        if not self.maxsize:
            return None
        with self._lock:
            entry = self._entries.pop(instance_id, None)
        return entry[1] if entry is not None and entry[0] == version else None

    def put(self, instance_id: int, version: int, workflow: BpmnWorkflow) -> None:
        """Keep `workflow` as the instance's state at `version` (call after the commit that saved it)."""
        if not self.maxsize:
            return
        with self._lock:
            self._entries[instance_id] = (version, workflow)
            self._entries.move_to_end(instance_id)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)


def save_workflow(session: Session, instance, workflow: BpmnWorkflow) -> None:
    """Store the workflow of an existing ORM instance: its head on the instance (its flush writes it), the task rows
    that changed at once. The command paths write both in one batch instead (step.persist)."""
    dump = dump_state(workflow)
    instance.state_json = dump.head
    with Batch(session) as batch:
        state_store.write(batch, instance.id, dump)


_OPEN = TaskState.READY | TaskState.WAITING | TaskState.STARTED
_CHANGED = attrgetter("last_state_change")
_SPEC = attrgetter("task_spec")
_ACTIVE = _OPEN | TaskState.ERROR
_COMPLETED = TaskState.COMPLETED


def variables_of(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The process data as a user thinks of it: what the newest task sees."""
    if workflow.is_completed():
        data = dict(workflow.data)
        if workflow.last_task is not None:
            data.update(workflow.last_task.data)
        return data
    # The open tasks from the tracker, else from one pass over the task maps; SpiffWorkflow's tree walk (several
    # times dearer per task) only breaks a tie, so the newest task is the one it would pick.
    open_tasks = _in_states(workflow, _OPEN)
    if open_tasks:
        changed = list(map(_CHANGED, open_tasks))
        latest = max(changed)
        if changed.count(latest) > 1:
            return dict(max(workflow.get_tasks(state=_OPEN), key=_CHANGED).data)
        return dict(open_tasks[changed.index(latest)].data)
    last = workflow.last_task or workflow.task_tree
    return dict(last.data)


def element_ids(workflow: BpmnWorkflow) -> tuple[list[str], list[str]]:
    """(active, completed) BPMN element ids, for drawing the path on the diagram."""
    # Sets of specs first (hashed by identity, one per element however many tasks it has), then their ids.
    active = set(map(_SPEC, _in_states(workflow, _ACTIVE)))
    completed = set(map(_SPEC, _in_states(workflow, _COMPLETED)))
    return _bpmn_ids(active), _bpmn_ids(completed)


def _in_states(workflow: BpmnWorkflow, mask: int) -> list[SpiffTask]:
    """The tasks in any state of `mask`: from the workflow's tracker, else from one pass over the task maps."""
    tracker = tracked(workflow)
    if tracker is not None:
        return list(chain.from_iterable([tasks for (state, _), tasks in tracker.by_key.items() if state & mask]))
    return [t for t in iter_tasks(workflow) if t._state & mask]


def _bpmn_ids(specs) -> list[str]:
    return sorted({spec.bpmn_id for spec in specs
                   if getattr(spec, "bpmn_id", None) is not None and spec.name not in INTERNAL_SPECS})
