"""One time per command: every part of a command (timers, due dates, audit rows) sees the same instant."""

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

_frozen: ContextVar[datetime | None] = ContextVar("dealflow_now", default=None)


class CommandClock:
    """Wraps the injected clock; inside `frozen(now)` it answers `now` (per thread and per task)."""

    def __init__(self, base: Callable[[], datetime]):
        self._base = base

    def __call__(self) -> datetime:
        return _frozen.get() or self._base()

    @contextmanager
    def frozen(self, now: datetime | None = None) -> Iterator[datetime]:
        now = now or self._base()
        token = _frozen.set(now)
        try:
            yield now
        finally:
            _frozen.reset(token)
