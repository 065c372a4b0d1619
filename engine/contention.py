"""Transactions that lose to other transactions: run the command again, or answer that the database is busy.

Several app processes on one PostgreSQL lock the same rows. Every command locks an instance before its tasks and
jobs, so the engine itself does not deadlock, but a transaction outside the engine (an operator's psql session, a
migration, a CRM write) can still lose a lock-order race, and PostgreSQL then aborts one side with 40P01. Such a
loss is instant and says nothing about the request: the command is run again from the start, in a new
transaction, after a short random pause, up to ATTEMPTS times. A lock held longer than the lock timeout (SQLite's
busy timeout, PostgreSQL's `lock_timeout`, both `LOCK_TIMEOUT_MS` unless configured) is not retried: the request
already waited that long. Either way the caller gets `Busy` (HTTP 503 with Retry-After), never a driver error, and
nothing of the command is applied (its transaction was rolled back).
"""

import functools
import itertools
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import ParamSpec
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from engine.errors import Busy

log = logging.getLogger(__name__)

# How long a command waits for a row or the SQLite write lock that another transaction holds.
LOCK_TIMEOUT_MS = 10_000
ATTEMPTS = 3
# The pause before attempt n (n = 1, 2) is random in [0, PAUSE * 2**n) seconds: two losers do not collide again.
PAUSE = 0.02

# SQLSTATEs of a lost race, which the next attempt does not repeat: a deadlock victim, a serialization failure.
_LOST = {"40P01": "a deadlock", "40001": "a serialization failure"}
# A lock waited for longer than the lock timeout.
_WAITED = "55P03"

P = ParamSpec("P")
T = TypeVar("T")


def contention(exc: BaseException) -> str | None:
    """What contention `exc` reports: "lost" (a race the next attempt may win), "waited" (a lock timeout), or
    None (any other error)."""
    if not isinstance(exc, DBAPIError):
        return None
    cause = exc.orig
    sqlstate = getattr(cause, "sqlstate", None)  # psycopg 3
    if sqlstate in _LOST:
        return "lost"
    if sqlstate == _WAITED:
        return "waited"
    if isinstance(cause, sqlite3.OperationalError) and getattr(cause, "sqlite_errorname", "").startswith(
            ("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "waited"
    return None


def busy(exc: BaseException, attempts: int = 1) -> Busy:
    """The error a caller sees for a contention error of the database (`contention(exc)` is not None)."""
    if contention(exc) == "waited":
        reason = "another transaction held the data it needs longer than the lock timeout"
    else:
        reason = f"it lost to another transaction touching the same data {attempts} time(s) in a row"
    return Busy(f"The database could not run this request now: {reason}. Nothing of it was applied; "
                "try again in a few seconds.")


def retried(command: Callable[P, T]) -> Callable[P, T]:
    """Run `command` (one transaction, called outside any other) again when its transaction lost a race.

    :raises Busy: a lock timeout, or still losing after ATTEMPTS attempts.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in itertools.count(1):
            try:
                return command(*args, **kwargs)
            except DBAPIError as exc:
                kind = contention(exc)
                if kind is None:
                    raise
                if kind == "waited" or attempt == ATTEMPTS:
                    raise busy(exc, attempt) from exc
                log.warning("%s lost to another transaction (%s, attempt %d of %d); running it again",
                            command.__qualname__, _LOST[exc.orig.sqlstate], attempt, ATTEMPTS)
                time.sleep(random.uniform(0, PAUSE * 2 ** attempt))  # noqa: S311 - jitter, not a secret

    return run
