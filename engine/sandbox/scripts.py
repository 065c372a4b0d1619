"""Script tasks: the static check, in-process runs, and the worker pool that runs them out of process.

The pool keeps `workers` forkserver processes (never fork: the server has threads), each with RLIMIT_AS,
a per-call RLIMIT_CPU and an empty environment. A call past its wall-clock limit SIGKILLs the worker and a
replacement is started before the caller gets CodeTimeout. Requests are pickles of checked plain data (the
worker trusts the server); replies are wire JSON (the server never unpickles what a worker sends).
"""

import multiprocessing
import pickle
import signal
import threading
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.sandbox import limits
from engine.sandbox import wire
from engine.sandbox import worker as worker_module
from engine.sandbox.errors import CodeFailed
from engine.sandbox.errors import CodeMemoryExceeded
from engine.sandbox.errors import CodeTimeout
from engine.sandbox.script_runtime import cached_code
from engine.sandbox.script_runtime import execute

_BOOT_SECONDS = 30.0  # a worker imports the sandbox once; generous for a loaded machine
_GRACE_SECONDS = 0.5  # the worker's own budget stops bytecode loops at wall_seconds; this covers the reply
_START_LOCK = threading.Lock()  # multiprocessing's child bookkeeping is not safe for concurrent starts
_REPLY_ERRORS = {"timeout": CodeTimeout, "memory": CodeMemoryExceeded}

__all__ = ["ScriptPool", "check_script", "run_inline"]


def check_script(text: str) -> None:
    """Raise CodeRejected, with the line, if `text` is not an allowed script (used at deploy)."""
    cached_code(text)


def run_inline(script: str, data: Mapping[str, Any], *, now: datetime | None = None,
               max_steps: int = limits.MAX_STEPS, seconds: float = 2.0) -> dict[str, Any]:
    """Run `script` in this process over a copy of `data`; return the new data. Raises CodeFailed.

    The step/time budget stops bytecode loops, but nothing bounds memory or a long C-level call here:
    this is for tests and for `ScriptPool(workers=0)`.
    """
    try:
        copy = wire.copy_data(dict(data))
    except wire.WireError as exc:
        raise CodeFailed(f"Task data cannot be passed to a script: {exc}.") from None
    result = execute(script, copy, now, max_steps, seconds)
    try:
        return wire.copy_data(result)
    except wire.WireError as exc:
        raise CodeFailed(f"Script produced data that cannot be stored: {exc}.") from None


class _Worker:
    __slots__ = ("process", "conn")

    def __init__(self, process: Any, conn: Any):
        self.process = process
        self.conn = conn

    def stop(self) -> None:
        """SIGKILL and reap; workers hold no state worth a graceful exit."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


def _stop_all(live: set[_Worker]) -> None:
    for worker in list(live):
        worker.stop()
    live.clear()


class _WorkerLost(Exception):
    """The worker was gone before it took the request; safe to retry on another."""


class ScriptPool:
    """Runs scripts in worker processes, started lazily on first use; thread-safe; a context manager."""

    def __init__(self, workers: int = 2, memory_mb: int = 512, cpu_seconds: float = 2.0,
                 wall_seconds: float = 2.0):
        self.workers = workers
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds
        self.wall_seconds = wall_seconds
        self._context = multiprocessing.get_context("forkserver")
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._starting = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._live)

    def __enter__(self) -> "ScriptPool":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def start(self) -> None:
        """Start every worker now (at boot) instead of on the first calls."""
        started = [self._acquire() for _ in range(self.workers)]
        for worker in started:
            self._release(worker, healthy=True)

    def close(self) -> None:
        """Stop all workers; later calls to run() raise RuntimeError."""
        with self._cond:
            self._closed = True
            self._idle.clear()
            self._cond.notify_all()
        self._finalizer()

    def run(self, script: str, data: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
        """Run `script` over `data` in a worker; return the new data. Raises CodeFailed (or a subclass)."""
        if self.workers <= 0:
            return run_inline(script, data, now=now, seconds=self.wall_seconds)
        request = self._request(script, data, now)
        for attempt in range(2):
            worker = self._acquire()
            healthy = False
            try:
                reply = self._exchange(worker, request)
                healthy = True
                return _result(reply)
            except _WorkerLost:
                if attempt:
                    raise CodeFailed("No script worker could be started; check the server log.") from None
            finally:
                self._release(worker, healthy)
        raise AssertionError("unreachable")

    def _request(self, script: str, data: Mapping[str, Any], now: datetime | None) -> bytes:
        try:
            checked = wire.copy_data(dict(data))
        except wire.WireError as exc:
            raise CodeFailed(f"Task data cannot be passed to a script: {exc}.") from None
        # Pickle only in this direction: the worker trusts the server, never the other way round.
        envelope = {"script": script, "data": checked, "now": now, "steps": limits.MAX_STEPS,
                    "seconds": self.wall_seconds}
        return pickle.dumps(envelope, protocol=pickle.HIGHEST_PROTOCOL)

    def _exchange(self, worker: _Worker, request: bytes) -> dict[str, Any]:
        try:
            worker.conn.send_bytes(request)
        except (OSError, ValueError):
            raise _WorkerLost() from None
        if not worker.conn.poll(self.wall_seconds + _GRACE_SECONDS):
            raise CodeTimeout(f"Script ran longer than {self.wall_seconds:g} s and was stopped; look for a "
                              "loop that never ends or a very large computation.")
        try:
            raw = worker.conn.recv_bytes(worker_module.MAX_MESSAGE_BYTES)
        except (EOFError, OSError):
            raise self._death(worker) from None
        try:
            reply = wire.loads(raw)
        except (ValueError, TypeError, RecursionError):
            raise CodeFailed("The script worker sent an unreadable reply.") from None
        if not isinstance(reply, dict):
            raise CodeFailed("The script worker sent an unreadable reply.")
        return reply

    def _death(self, worker: _Worker) -> CodeFailed:
        worker.process.join(1)
        if worker.process.exitcode == -signal.SIGXCPU:
            return CodeTimeout(f"Script used more than {self.cpu_seconds:g} s of CPU and was stopped; "
                               "look for a very large computation.")
        return CodeFailed(f"The script worker stopped unexpectedly (exit code {worker.process.exitcode}); "
                          "the script may have used too much memory.")

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("This ScriptPool is closed.")
                if self._idle:
                    return self._idle.pop()
                if len(self._live) + self._starting < self.workers:
                    self._starting += 1
                    break
                self._cond.wait()
        return self._spawn()

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._live.discard(worker)
            replace = not self._closed
            self._starting += replace
        worker.stop()
        if replace:  # start the replacement now, so the next caller does not pay for it
            try:
                self._release(self._spawn(), healthy=True)
            except Exception:  # noqa: BLE001 - a later _acquire() retries the start
                pass

    def _spawn(self) -> _Worker:
        """Start one worker; the caller has counted it in `_starting`."""
        worker = None
        try:
            parent_end, child_end = self._context.Pipe()
            process = self._context.Process(
                target=worker_module.serve, args=(child_end, self.memory_mb, self.cpu_seconds),
                name="dealflow-script-worker", daemon=True,
            )
            with _START_LOCK:
                process.start()
            child_end.close()
            candidate = _Worker(process, parent_end)
            _await_ready(candidate)
            worker = candidate
        finally:
            with self._cond:
                self._starting -= 1
                closed = self._closed
                if worker is not None and not closed:
                    self._live.add(worker)
                self._cond.notify()
        if closed:
            worker.stop()
            raise RuntimeError("This ScriptPool is closed.")
        return worker


def _await_ready(worker: _Worker) -> None:
    """Wait for the worker's ready signal; stop it and raise CodeFailed if it never comes."""
    try:
        ready = worker.conn.poll(_BOOT_SECONDS) and worker.conn.recv_bytes(16) == worker_module.READY
    except (EOFError, OSError):
        ready = False
    if not ready:
        worker.stop()
        raise CodeFailed("A script worker did not start; check the server log for its error.")


def _result(reply: dict[str, Any]) -> dict[str, Any]:
    """The new data from a worker reply, or the error it reports."""
    if reply.get("ok") is True and isinstance(reply.get("data"), dict):
        return reply["data"]
    line = reply.get("line")
    cls = _REPLY_ERRORS.get(reply.get("kind"), CodeFailed)
    raise cls(str(reply.get("message")), line=line if isinstance(line, int) else None)
