"""Real Dealflow app processes for tests and benchmarks: start on a free port, wait for /health, kill for sure.

Each process is `create_app()` behind werkzeug's threaded server (what `flask run` uses), configured only through
DEALFLOW_* variables as in production, with its job sweeper on. It runs in a session of its own, so that
teardown can kill it together with anything it started (script workers), whatever state it is in.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select

from engine.models import AuditEvent
from engine.models import Job

REPO = Path(__file__).resolve().parents[1]

# The child binds port 0 and reports the port it got through a file: no race for a "free" port.
_SERVE = """
import logging, sys
from pathlib import Path
from werkzeug.serving import make_server
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
logging.getLogger("engine").setLevel(logging.INFO)  # ours; SpiffWorkflow's INFO lines cost ~20% of a firing
from app import create_app
server = make_server("127.0.0.1", 0, create_app(), threaded=True)
ready = Path(sys.argv[1] + ".tmp")
ready.write_text(str(server.server_port))
ready.rename(sys.argv[1])  # atomic: the test never reads half a port number
server.serve_forever()
"""


class AppProcess:
    """One app process with its sweeper on, against `database_url`; its output goes to `log_path`."""

    def __init__(self, database_url: str, log_path: Path, *, sweep_seconds: float = 1.0):
        self.database_url = database_url
        self.log_path = log_path
        self.sweep_seconds = sweep_seconds
        self.proc: subprocess.Popen | None = None
        self.base_url: str | None = None
        self.started_at: datetime | None = None

    def environment(self) -> dict[str, str]:
        # Nothing DEALFLOW_* leaks in from the test run (DEALFLOW_TEST_DATABASE_URL names the server, not this
        # database): the process sees exactly the configuration a deployment would give it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEALFLOW_")}
        env.update(DEALFLOW_DATABASE_URL=self.database_url, DEALFLOW_SCHEDULER="on",
                   DEALFLOW_SWEEP_SECONDS=str(self.sweep_seconds), DEALFLOW_SECRET_KEY="processes-test",
                   PYTHONUNBUFFERED="1")
        return env

    def start(self, timeout: float = 60) -> "AppProcess":
        """Spawn the process and return once GET /health answers 200; raises with the log tail otherwise."""
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> "AppProcess":
        """Start the process without waiting for it (start several at once, then `wait_ready` each)."""
        self._port_file.unlink(missing_ok=True)
        self.started_at = datetime.now(UTC)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVE, str(self._port_file)], cwd=REPO, env=self.environment(),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 60) -> "AppProcess":
        """Return once GET /health answers 200; kill the process and raise with its log tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"The app process exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.base_url is None and self._port_file.exists() and self._port_file.read_text():
                self.base_url = f"http://127.0.0.1:{self._port_file.read_text()}"
            if self.base_url is not None and self._healthy():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"The app process did not become healthy within {timeout} s:\n{self.log_tail()}")

    @property
    def _port_file(self) -> Path:
        return self.log_path.with_suffix(".port")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
                return response.status == 200 and json.load(response)["status"] == "ok"
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL the app (no atexit, no shutdown: a crash), then anything else left in its session."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session we created for it: its children only
        except ProcessLookupError:
            pass
        self.base_url = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> "AppProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.kill()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def pending_jobs(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Job))


def firings(session_factory) -> list[dict]:
    """Every `timer_fired` audit row: instance, element, task, when it fired (`at`) and when it was due."""
    with session_factory() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.event == "timer_fired")
                               .order_by(AuditEvent.seq)).all()
        return [{"instance_id": r.instance_id, "element_id": r.element_id, "task_id": r.task_id, "at": r.at,
                 "due_at": datetime.fromisoformat(r.details["due_at"]), "actor": r.actor} for r in rows]


def firing_counts(rows: list[dict]) -> dict[tuple[int, str], int]:
    """How often each timer (instance, waiting task) fired."""
    counts: dict[tuple[int, str], int] = {}
    for row in rows:
        key = (row["instance_id"], row["task_id"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def lateness(rows: list[dict]) -> list[float]:
    """Seconds from due time to firing, per firing."""
    return [(row["at"] - row["due_at"]).total_seconds() for row in rows]


def summary(seconds: list[float]) -> dict[str, float]:
    """n, p50, p95 and max of a list of durations (seconds)."""
    ordered = sorted(seconds)
    if not ordered:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def describe(seconds: list[float]) -> str:
    s = summary(seconds)
    return f"n={s['n']} p50={s['p50']:.3f}s p95={s['p95']:.3f}s max={s['max']:.3f}s"


def in_seconds(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
