"""The oldest open tasks of an instance, kept with its cached workflow between commands (see `Window`)."""

import bisect
from dataclasses import dataclass
from operator import attrgetter

from engine.views import OPEN_TASKS_IN_VIEW
from engine.views import TaskView

# How many of the oldest open tasks a window holds at most: twice a view's, so that it is read again only after
# a view's worth of them are done.
WINDOW = 2 * OPEN_TASKS_IN_VIEW
_ORDER = attrgetter("created_at", "id")  # the order of a view's open tasks (queries.SORTS["created"])


@dataclass
class Window:
    """The oldest open tasks of an instance in a view's order, and how many it has in all, as they are while its
    row has `key` (its lock_version and audit_seq).

    Every command answers with the instance's oldest OPEN_TASKS_IN_VIEW open tasks. Reading them costs a few µs a
    row: in a multi-instance approval over 300 items, 50 rows for every item approved. A window holds up to
    WINDOW of them and follows each command's own changes to the rows (the rows it closed, cancelled and
    created), so a command reads them again only when fewer than a view's worth are left.

    It stands for the rows while the instance row is as the last command left it. A task row is written only by
    a command on its instance, which bumps the instance's lock_version, or by a claim, unclaim or assignment,
    which is audited on the instance's trail and so moves its audit_seq: a window whose key is not the row's as
    the next command locked it is dropped, and that command reads the rows. Answers share its task views, as the
    rows of one read share their parsed forms: callers only read them.
    """

    tasks: list[TaskView]
    count: int
    key: tuple[int, int] | None = None

    @property
    def complete(self) -> bool:
        """Whether it holds every open task of the instance."""
        return len(self.tasks) == self.count

    @property
    def enough(self) -> bool:
        """Whether it holds the oldest tasks a view lists."""
        return len(self.tasks) >= min(self.count, OPEN_TASKS_IN_VIEW)

    def follow(self, removed: set[str], removed_count: int, added: list[TaskView]) -> "Window | None":
        """The window after a command took `removed_count` rows out of the open ones (the ids `removed`) and
        created `added`; None if what it holds does not square with that (the rows are then read)."""
        tasks = [task for task in self.tasks if task.id not in removed] if removed else list(self.tasks)
        gone = len(self.tasks) - len(tasks)
        if gone > removed_count or (self.complete and gone != removed_count):
            return None
        count = self.count - removed_count
        complete = len(tasks) == count
        for task in sorted(added, key=_ORDER):
            # A new task past the last one held belongs in the window only if the window holds every task.
            if complete or (tasks and _ORDER(task) < _ORDER(tasks[-1])):
                bisect.insort(tasks, task, key=_ORDER)
        del tasks[WINDOW:]
        return Window(tasks, count + len(added))

    @classmethod
    def of(cls, tasks: list[TaskView]) -> "Window":
        """The window of an instance whose open tasks are exactly `tasks`."""
        return cls([], 0).follow(set(), 0, tasks)

    def view(self) -> tuple[list[TaskView], int]:
        """What a view lists, and the count."""
        return self.tasks[:OPEN_TASKS_IN_VIEW], self.count


class Windows:
    """Each cached workflow's window, kept on the workflow object so that it goes with it (only the command holding
    the workflow touches it)."""

    _ATTRIBUTE = "_dealflow_window"

    def take(self, workflow, key: tuple[int, int] | None) -> Window | None:
        """The workflow's window if it stands for the instance row at `key`, removed (a command changes it)."""
        window = workflow.__dict__.pop(self._ATTRIBUTE, None)
        return window if window is not None and key is not None and window.key == key else None

    def put(self, workflow, window: Window) -> None:
        """Keep `window` with `workflow`, without a key until its command has committed (`seal`)."""
        window.key = None
        workflow.__dict__[self._ATTRIBUTE] = window

    def seal(self, workflow, key: tuple[int, int]) -> None:
        """After the commit of the command that `put` the workflow's window: it stands for the row at `key`."""
        window = workflow.__dict__.get(self._ATTRIBUTE)
        if window is not None and window.key is None:
            window.key = key
