"""SpiffWorkflow's BpmnWorkflow with its per-step tree walks answered from its tasks by state when that is exact,
and three process-wide corrections to SpiffWorkflow 3.2.

After every task it runs, SpiffWorkflow walks the whole task tree twice: once for the WAITING tasks to update
(`update_waiting_tasks`) and once for the READY engine tasks to run (`_do_engine_steps`); `is_completed` walks it
past every finished task to the first unfinished one. Its tree iterator costs
3-4 µs per task, so a multi-instance approval over 300 items pays ~2 ms of walking for each item approved, and
O(items²) for the approval. Most steps find nothing to do or exactly one thing, which the workflow's `Tracker`
(its tasks by state, kept up to date by SpiffWorkflow's own notifications) tells at once; only then is the walk
skipped. Every other case (several candidates, whose order is the tree's; live sub-processes, whose tasks the
walk interleaves; a tree deeper than the iterator's limit) goes to SpiffWorkflow's own code, so what runs, and in
which order, never differs from the library's.

Process-wide (every SpiffWorkflow module calls them through the class): the notifications feed the trackers;
`DeepMerge` copies on write; a parallel multi-instance task's `children_complete` starts from the child found
unfinished last time. Each gives the stock results (tests/test_workflow.py).
"""

from collections.abc import Iterable
from copy import copy

from SpiffWorkflow import workflow as spiff_workflow
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import ParallelMultiInstanceTask
from SpiffWorkflow.task import Task
from SpiffWorkflow.task import TaskState
from SpiffWorkflow.util.deep_merge import DeepMerge

# The iterator's default max_depth: it does not descend below it (nor may we answer for tasks down there).
_MAX_DEPTH = 1000
# The iterator only descends into a task in at least this state when asked for READY or WAITING tasks.
_MIN_STATE = TaskState.FUTURE
# Module constants: a comprehension over hundreds of tasks would look each up on the class per task.
_READY, _WAITING, _NOT_FINISHED = TaskState.READY, TaskState.WAITING, TaskState.NOT_FINISHED_MASK


class DealflowWorkflow(BpmnWorkflow):
    """A BpmnWorkflow whose engine steps skip the tree walk when the task map answers exactly.

    Stored as, and restored from, the stock "BpmnWorkflow" state (engine.registry registers it so): the
    class only changes how fast a step finds its work, not what the state holds.
    """

    def tracker(self) -> "Tracker":
        """This workflow's tasks by state, kept up to date as they change (built on first use, and again if its task
        map changed behind SpiffWorkflow's notifications: a restore replaces it)."""
        tracker = self.__dict__.get("_tracker")
        if tracker is None or tracker.tasks is not self.tasks or tracker.count != len(self.tasks):
            tracker = self._tracker = Tracker(self.tasks)
        elif VERIFY:
            tracker.verify()
        return tracker

    def states(self) -> set[int]:
        """The states its own tasks are in (not its sub-processes')."""
        return {state for (state, _), tasks in self.tracker().by_key.items() if tasks}

    def is_completed(self) -> bool:
        # Workflow.is_completed walks the tree (in order: past every finished task) to the first unfinished one.
        if not self.completed:
            for task in self.tasks.values():
                if task._state & _NOT_FINISHED:
                    return False if _reachable(task, TaskState.MAYBE) else super().is_completed()
            self.completed = True
        return self.completed

    def update_waiting_tasks(self) -> None:
        # Workflow.update_waiting_tasks walks this workflow's tree (not its sub-processes') for WAITING tasks.
        if _WAITING in self.states():
            return super().update_waiting_tasks()
        return None

    def _do_engine_steps(self, will_complete_task=None, did_complete_task=None):
        # With a sub-process alive the walk interleaves its tasks with ours: the library's code decides.
        if self.subprocesses:
            return super()._do_engine_steps(will_complete_task, did_complete_task)
        ready = list(self.tracker().by_key.get((_READY, False), ()))
        if len(ready) > 1 or (ready and not _reachable(ready[0], _MIN_STATE)):
            return super()._do_engine_steps(will_complete_task, did_complete_task)
        for task in ready:
            if will_complete_task is not None:
                will_complete_task(task)
            task.run()
            if did_complete_task is not None:
                did_complete_task(task)
        # BpmnWorkflow._do_engine_steps: another round if a task ran or a sub-process started.
        return bool(ready) or len(self.get_active_subprocesses()) > 0


# Checks every answer of a Tracker against a walk of the task map (the test suite sets it).
VERIFY = False


def tracked(workflow) -> "Tracker | None":
    """The workflow's tracker when it answers for every task of the workflow (a DealflowWorkflow with no live
    sub-process, whose tasks are in maps of their own), else None: the caller walks the task maps."""
    if workflow.subprocesses or not isinstance(workflow, DealflowWorkflow):
        return None
    return workflow.tracker()


class Tracker:
    """A workflow's tasks by (state, whether a person works them), and what moved since it was last `reset`, kept up
    to date by SpiffWorkflow's own notifications (a state set, a child added, a task removed: patched below), so
    that a step need not walk every task to find the few it is after.

    What moved since the last reset (after each dump, by `engine.task_rows`):
    - `moved` (in the order first noted: a new task when it was created) maps each task whose state or children
      changed to its state when first noted, and each task created since to None;
    - `gone` holds the tasks removed from the map that were ready at the last reset (not those created since).
    `engine.task_rows` reads `moved` at a dump, `engine.runtime.diff` reads both at the end of a command.
    """

    __slots__ = ("tasks", "count", "by_key", "moved", "gone")

    def __init__(self, tasks: dict):
        self.tasks, self.count = tasks, len(tasks)
        self.by_key: dict[tuple[int, bool], set] = {}
        for task in tasks.values():
            self.by_key.setdefault((task._state, bool(task.task_spec.manual)), set()).add(task)
        self.moved: dict = {}
        self.gone: dict = {}

    def reset(self) -> None:
        self.moved.clear()
        self.gone.clear()

    def moved_to(self, task, old: int) -> None:
        if self.tasks.get(task.id) is not task:  # SpiffWorkflow also sets the state of tasks it removed
            return
        manual = bool(task.task_spec.manual)
        self.by_key[(old, manual)].discard(task)
        self.by_key.setdefault((task._state, manual), set()).add(task)
        self.moved.setdefault(task, old)

    def added(self, child, parent) -> None:
        self.by_key.setdefault((child._state, bool(child.task_spec.manual)), set()).add(child)
        self.count += 1
        self.moved[child] = None
        self.moved.setdefault(parent, parent._state)

    def removed(self, task) -> None:
        self.by_key[(task._state, bool(task.task_spec.manual))].discard(task)
        self.count -= 1
        if self.moved.pop(task, task._state) == _READY:  # None for a task created since: never ready before
            self.gone[task] = None
        parent = self.tasks.get(task._parent)
        if parent is not None:
            self.moved.setdefault(parent, parent._state)

    def verify(self) -> None:
        walked = Tracker(self.tasks).by_key
        mine = {key: tasks for key, tasks in self.by_key.items() if tasks}
        if mine != {key: tasks for key, tasks in walked.items() if tasks} or self.count != len(self.tasks):
            raise AssertionError("A task changed without SpiffWorkflow's notifications: the tracker is stale.")


_stock_set_state = Task._set_state
_stock_child_added = Task._child_added_notify
_stock_task_removed = spiff_workflow.Workflow._task_removed_notify


def _set_state(self, value: int) -> None:
    old = self._state
    _stock_set_state(self, value)
    if self._state != old:
        tracker = self.workflow.__dict__.get("_tracker")
        if tracker is not None and tracker.tasks is self.workflow.tasks:
            tracker.moved_to(self, old)


def _child_added_notify(self, child) -> None:
    _stock_child_added(self, child)
    tracker = self.workflow.__dict__.get("_tracker")
    if tracker is not None and tracker.tasks is self.workflow.tasks:
        tracker.added(child, self)


def _task_removed_notify(self, task) -> None:
    tracker = self.__dict__.get("_tracker")
    if tracker is not None and tracker.tasks is self.tasks:
        tracker.removed(task)
    _stock_task_removed(self, task)


def _set_children(self, tasks) -> None:
    self._children = [child.id for child in tasks]
    tracker = self.workflow.__dict__.get("_tracker")
    if tracker is not None and tracker.tasks is self.workflow.tasks and tracker.tasks.get(self.id) is self:
        tracker.moved.setdefault(self, self._state)


# Process-wide, as the merge below: other workflows have no tracker, and pay one dictionary lookup per change.
Task._set_state = _set_state
Task._child_added_notify = _child_added_notify
Task.children = Task.children.setter(_set_children)
spiff_workflow.Workflow._task_removed_notify = _task_removed_notify


def _reachable(task, min_state: int) -> bool:
    """Whether SpiffWorkflow's iterator, from the root, would reach `task`: it does not descend into a task in a
    state below `min_state` (FUTURE when asked for READY or WAITING tasks: not into predicted ones), nor below its
    maximum depth."""
    tasks, depth = task.workflow.tasks, 0
    parent = tasks.get(task._parent)
    while parent is not None:
        depth += 1
        if parent._state < min_state or depth > _MAX_DEPTH:
            return False
        parent = tasks.get(parent._parent)
    return True


def share_parent_values(tasks: Iterable) -> None:
    """Let each multi-instance user task hold its parent's own objects for the values it inherited unchanged.

    SpiffWorkflow gives every instance of a multi-instance activity a copy of its parent's data, the whole input
    collection included, and the state stores each task's data as its difference from its parent's: a copy
    that still equals the parent's value is stored as nothing, and restored as the parent's value. Pointing such
    a value at the parent's object changes nothing a dump, a reload or a form can see; it makes the comparison a
    dump does per task an identity check instead of a walk over the collection (O(items) per instance, O(items²)
    per step). Only user and manual tasks: their data changes by whole form fields, never inside a value in
    place, so the shared objects are never mutated through them.
    """
    for task in tasks:
        if not task.task_spec.manual:
            continue
        parent = task.workflow.tasks.get(task._parent)
        if parent is None or not isinstance(parent.task_spec, MultiInstanceTask):
            continue
        pdata = parent.data
        for key, value in list(task.data.items()):
            shared = pdata.get(key, _MISSING)
            if shared is not value and type(shared) is type(value) and type(value) in (list, dict) and shared == value:
                task.data[key] = shared


_MISSING = object()


def _merge(a, b, path=None):
    """DeepMerge.merge(a, b) (SpiffWorkflow 3.2) that copies on write: what it changes below `a`'s own keys it
    copies first, and it never changes a nested dict or list in place.

    The stock merge shallow-copies the values it takes from `b` and then merges later values into them in place,
    so the nested objects it shares get changed through another task: merging the second multi-instance child
    into its parent changes the first child's nested item, a finished task's data after it finished. Here a
    shared nested object is only ever replaced, never changed; the values are the same as the stock merge's.
    """
    for key in b:
        value = b[key]
        if key in a:
            mine = a[key]
            if mine == value:
                continue
            if isinstance(mine, dict) and isinstance(value, dict):
                a[key] = _merge(copy(mine), value)
                continue
            if isinstance(mine, list) and isinstance(value, list):
                a[key] = mine = copy(mine)
                _merge_array(mine, value)
                continue
        a[key] = copy(value) if isinstance(value, (dict, list, set)) else value
    return a


def _merge_array(a, b, path=None):
    """DeepMerge.merge_array(a, b), copying a dict of `a` before merging into it (see `_merge`)."""
    seen_hashable = set()
    seen_unhashable = []
    for item in a:
        try:
            seen_hashable.add(item)
        except TypeError:
            seen_unhashable.append(item)
    for index, value in enumerate(b):
        if isinstance(value, dict):
            if len(a) > index:
                mine = a[index]
                a[index] = _merge(copy(mine) if isinstance(mine, dict) else mine, value)
            else:
                a.append(value)
        else:
            try:
                if value in seen_hashable:
                    continue
                seen_hashable.add(value)
            except TypeError:
                if value in seen_unhashable:
                    continue
                seen_unhashable.append(value)
            a.append(value)
    del a[len(b):]


# Every SpiffWorkflow module calls DeepMerge.merge through the class, so this reaches all of them (the
# serializer's restore, `merge({}, parent.data)`, included: it only adds keys, and copies as before).
DeepMerge.merge = staticmethod(_merge)
DeepMerge.merge_array = staticmethod(_merge_array)


_stock_children_complete = ParallelMultiInstanceTask.children_complete


def _children_complete(self, my_task) -> bool:
    """ParallelMultiInstanceTask.children_complete (SpiffWorkflow 3.2): whether every instance is COMPLETED.

    The stock method lists all the children on every merge, hashing each one's UUID: at 300 items, 300 lookups
    for each item approved, O(items²) for the approval. The answer is the same when found from the child that
    was unfinished the last time: while it still is, the answer is no; else the children are looked at from
    there on, round to it, and stop at the first unfinished one, which is remembered.
    """
    ids, tasks, name = my_task._children, my_task.workflow.tasks, self.task_spec
    count = len(ids)
    # Kept on the task (as the tracker on its workflow): only the command holding the workflow touches either.
    start = my_task.__dict__.get("_unfinished", 0)
    if start >= count:
        start = 0
    for offset in range(count):
        index = start + offset
        if index >= count:
            index -= count
        child = tasks.get(ids[index])
        if child is None:  # the stock method fails on such a tree: let it
            return _stock_children_complete(self, my_task)
        if child._state != TaskState.COMPLETED and child.task_spec.name == name:
            my_task._unfinished = index
            return False
    return True


ParallelMultiInstanceTask.children_complete = _children_complete
