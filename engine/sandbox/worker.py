"""The script worker process: hardens itself, then runs one request at a time from its pipe.

A request is a pickle from the server: {"script", "data" (checked by wire.copy_data), "now", "steps",
"seconds"}. A reply is wire JSON, never pickle: {"ok": true, "data": ...} or
{"ok": false, "kind": "failed" | "timeout" | "memory", "message": ..., "line": ...}.
"""

import json
import math
import os
import pickle
import resource
import signal
from multiprocessing.connection import Connection
from typing import Any

from engine.sandbox import limits
from engine.sandbox import wire
from engine.sandbox.errors import CodeFailed
from engine.sandbox.errors import CodeMemoryExceeded
from engine.sandbox.errors import CodeTimeout
from engine.sandbox.script_runtime import execute

READY = b"ready"  # sent once after start, so a script's wall clock never includes the worker's imports
MAX_MESSAGE_BYTES = 8 * wire.MAX_DATA_BYTES  # ASCII JSON writes a non-ASCII character in up to 6 bytes


def serve(conn: Connection, memory_mb: int, cpu_seconds: float) -> None:
    """Worker entry point (module level so forkserver/spawn can import it): serve until the pipe closes."""
    _harden(memory_mb)
    conn.send_bytes(READY)
    while True:
        try:
            request = conn.recv_bytes(MAX_MESSAGE_BYTES)
        except (EOFError, OSError):
            return
        _arm_cpu_limit(cpu_seconds)
        conn.send_bytes(handle(request).encode())


def _harden(memory_mb: int) -> None:
    # The worker is as privileged as the server; these limit what an escape could reach or exhaust.
    os.environ.clear()
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, no kill
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is for the server, which stops us


def _arm_cpu_limit(cpu_seconds: float) -> None:
    # RLIMIT_CPU counts the process lifetime, so each call gets "used so far + its allowance".
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def handle(raw: bytes) -> str:
    """Run one pickled request (from the server only) and return the reply text; never raises."""
    try:
        request = pickle.loads(raw)
        result = execute(request["script"], request["data"], request["now"],
                         request.get("steps", limits.MAX_STEPS), request.get("seconds", 2.0))
        reply = {"ok": True, "data": wire.to_wire(result)}
        return json.dumps(reply, separators=(",", ":"))  # ASCII: a lone surrogate in a str stays encodable
    except wire.WireError as exc:
        return _error("failed", f"Script produced data that cannot be stored: {exc}.", None)
    except CodeTimeout as exc:
        return _error("timeout", exc.message, exc.line)
    except CodeMemoryExceeded as exc:
        return _error("memory", exc.message, exc.line)
    except CodeFailed as exc:
        return _error("failed", exc.message, exc.line)
    except MemoryError:
        return _error("memory", "Script ran out of memory; work on fewer or smaller values.", None)
    except Exception as exc:  # a bug of ours, reported rather than killing the worker
        return _error("failed", f"The script worker failed: {type(exc).__name__}: {str(exc)[:200]}", None)


def _error(kind: str, message: str, line: Any) -> str:
    return json.dumps({"ok": False, "kind": kind, "message": message, "line": line})
