"""How late timers fire under a running app process with a 1 s sweep (the issue's figure: within 2 s).

    .venv/bin/python bench/timer_latency.py                   # SQLite file, 60 instances x 3 timers
    .venv/bin/python bench/timer_latency.py --pg URL          # also on a throw-away database on that server

One app process (`create_app()`, DEALFLOW_SCHEDULER=on, DEALFLOW_SWEEP_SECONDS=1) fires the timers of
tests/bpmn/short_timers.bpmn: a 3 s catch timer whose due times the bench spreads over whole sweep periods, then
a 2 s reminder and a 5 s escalation the app schedules itself. Two lateness figures per firing:

- audit: the `timer_fired` row's `at` (when the app began the firing) minus its `due_at`;
- observed: when a poller (every 20 ms) first saw the job row gone, i.e. the firing committed, minus `due_at`.
"""

import argparse
import contextlib
import logging
import sys
import tempfile
import threading
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from engine.actor import Actor  # noqa: E402
from engine.database import create_db_engine  # noqa: E402
from engine.database import make_session_factory  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.models import Job  # noqa: E402
from tests import dbutil  # noqa: E402
from tests.factories import deploy  # noqa: E402
from tests.processes_support import AppProcess  # noqa: E402
from tests.processes_support import firing_counts  # noqa: E402
from tests.processes_support import firings  # noqa: E402
from tests.processes_support import lateness  # noqa: E402
from tests.processes_support import pending_jobs  # noqa: E402
from tests.processes_support import summary  # noqa: E402
from tests.processes_support import wait_until  # noqa: E402

ACTOR = Actor("bench-dana", roles=frozenset({"manager"}), groups=frozenset({"sales"}))
TARGET_SECONDS = 2.0


def quiet_spiff_loggers() -> None:
    for name in ("spiff", "spiff.task", "spiff.workflow", "spiff.data"):
        logging.getLogger(name).setLevel(logging.WARNING)


def sqlite_url(directory: Path) -> str:
    """A migrated SQLite file in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'dealflow.sqlite'}"
    upgrade(url)
    return url


@contextlib.contextmanager
def pg_database(base_url: str):
    """A migrated throw-away database on the server of `base_url`, dropped afterwards."""
    url = dbutil.create_pg_database(base_url)
    try:
        yield url
    finally:
        dbutil.drop_pg_database(base_url, url)


@contextlib.contextmanager
def database(backend: str, pg_base: str | None, directory: Path):
    """A migrated SQLite file in `directory`, or a throw-away PostgreSQL database on `pg_base`."""
    if backend == "sqlite":
        yield sqlite_url(directory)
    else:
        with pg_database(pg_base) as url:
            yield url


class JobWatcher:
    """Polls the job table; remembers when each job row was last seen pending, and when it was first seen gone."""

    def __init__(self, session_factory, interval: float = 0.02):
        self._sf, self._interval = session_factory, interval
        self.due: dict[int, datetime] = {}
        self.gone: dict[int, datetime] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "JobWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._sf() as session:
                pending = {job_id: due for job_id, due in session.execute(select(Job.id, Job.due_at))}
            seen_at = datetime.now(UTC)
            self.due.update(pending)
            for job_id in self.due.keys() - pending.keys() - self.gone.keys():
                self.gone[job_id] = seen_at
            time.sleep(self._interval)

    def lateness(self) -> list[float]:
        return [(self.gone[j] - self.due[j]).total_seconds() for j in self.gone]


def measure_latency(url: str, log_dir: Path, instances: int = 60) -> dict:
    """Run one app process on `url`; start `instances` short_timers instances; return the lateness figures."""
    sessions = make_session_factory(create_db_engine(url))
    engine = Engine(sessions)
    deploy(sessions, "short_timers.bpmn")
    with AppProcess(url, log_dir / "latency-app.log") as app, JobWatcher(sessions) as watcher:
        for i in range(instances):
            engine.start_instance("short_timers", actor=ACTOR, business_key=f"DEAL-{i}")
            time.sleep(1 / 12)  # due times spread evenly over sweep periods
        drained = wait_until(lambda: pending_jobs(sessions) == 0, timeout=60)
        time.sleep(0.1)  # let the watcher see the last job go
    rows = firings(sessions)
    counts = firing_counts(rows)
    return {"drained": drained, "firings": len(rows), "exactly_once": set(counts.values()) == {1},
            "expected": instances * 3, "audit": summary(lateness(rows)), "observed": summary(watcher.lateness()),
            "log": app.log_path}


def format_latency(backend: str, result: dict) -> str:
    a, o = result["audit"], result["observed"]
    met = result["drained"] and result["exactly_once"] and result["firings"] == result["expected"] \
        and o["max"] <= TARGET_SECONDS
    return (f"{backend:<10} firings={result['firings']}/{result['expected']} once={result['exactly_once']} | "
            f"audit p50={a['p50']:.3f}s p95={a['p95']:.3f}s max={a['max']:.3f}s | "
            f"observed p50={o['p50']:.3f}s p95={o['p95']:.3f}s max={o['max']:.3f}s | "
            f"within {TARGET_SECONDS:g} s: {'yes' if met else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=60)
    parser.add_argument("--pg", default=dbutil.pg_base_url(), help="PostgreSQL server URL (default: "
                        f"${dbutil.PG_ENV}); a throw-away database is created on it")
    args = parser.parse_args()
    quiet_spiff_loggers()
    with tempfile.TemporaryDirectory(prefix="dealflow-timers-") as tmp:
        directory = Path(tmp)
        print(format_latency("sqlite", measure_latency(sqlite_url(directory), directory, args.instances)))
        if args.pg:
            with pg_database(args.pg) as url:
                print(format_latency("postgresql", measure_latency(url, directory, args.instances)))


if __name__ == "__main__":
    main()
