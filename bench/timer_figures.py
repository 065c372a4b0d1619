"""The issue's three timer figures at full size, against real app processes; prints one table.

    .venv/bin/python bench/timer_figures.py                    # ~3 minutes; PostgreSQL from $DEALFLOW_TEST_DATABASE_URL
    .venv/bin/python bench/timer_figures.py --downtime 600     # the issue's real 10-minute downtime (~13 minutes)
    .venv/bin/python bench/timer_figures.py --pg URL --timers 1000 --processes 3

1. latency: one app process, 1 s sweep, timers firing while it runs (see bench/timer_latency.py); target 2 s.
2. restart: timers come due while no app runs; an app starts firing them and is SIGKILLed mid-batch (it holds
   leases on timers it claimed and never fired); it stays down `--downtime` seconds and is started again. Every
   timer must fire exactly once; target: the overdue ones within 30 s of the restart (measured from the spawn).
3. processes: `--processes` app processes on one PostgreSQL database, `--timers` timers due at one instant.
   Target: each fires exactly once (and the audit chain verifies); drain time and lateness are reported.
"""

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from bench.timer_latency import ACTOR  # noqa: E402
from bench.timer_latency import database  # noqa: E402
from bench.timer_latency import format_latency  # noqa: E402
from bench.timer_latency import measure_latency  # noqa: E402
from bench.timer_latency import pg_database  # noqa: E402
from bench.timer_latency import quiet_spiff_loggers  # noqa: E402
from engine import audit  # noqa: E402
from engine.database import create_db_engine  # noqa: E402
from engine.database import make_session_factory  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.models import Job  # noqa: E402
from tests import dbutil  # noqa: E402
from tests.factories import deploy  # noqa: E402
from tests.processes_support import AppProcess  # noqa: E402
from tests.processes_support import firing_counts  # noqa: E402
from tests.processes_support import firings  # noqa: E402
from tests.processes_support import in_seconds  # noqa: E402
from tests.processes_support import lateness  # noqa: E402
from tests.processes_support import pending_jobs  # noqa: E402
from tests.processes_support import summary  # noqa: E402
from tests.processes_support import wait_until  # noqa: E402

RESTART_TARGET = 30.0


def call_backs(engine: Engine, count: int, at, threads: int = 1) -> list[int]:
    """Start `count` instances of timer_at.bpmn, each due at `at()` (evaluated per instance)."""
    def one(_):
        return engine.start_instance("timer_at", actor=ACTOR, variables={"fire_at": at().isoformat()}).id

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def once(sessions, expected: int) -> tuple[bool, list[dict]]:
    rows = firings(sessions)
    counts = firing_counts(rows)
    with sessions() as session:
        verified = audit.verify(session).ok
    return len(rows) == expected and set(counts.values()) == {1} and verified, rows


def restart(url: str, log_dir: Path, timers: int, downtime: float) -> dict:
    """SIGKILL an app in the middle of a batch, keep it down `downtime` s, restart it; time the overdue firings."""
    sessions = make_session_factory(create_db_engine(url))
    engine = Engine(sessions)
    deploy(sessions, "timer_at.bpmn")
    call_backs(engine, timers, lambda: in_seconds(1), threads=4)
    wait_until(lambda: _overdue(sessions) == timers, timeout=30)
    first = AppProcess(url, log_dir / "restart-first.log").start()
    wait_until(lambda: len(firings(sessions)) >= 20, timeout=60, interval=0.01)
    first.kill()
    killed_at = datetime.now(UTC)
    fired_before, leased = len(firings(sessions)), _leased(sessions)
    time.sleep(downtime)
    with AppProcess(url, log_dir / "restart-second.log") as second:
        drained = wait_until(lambda: pending_jobs(sessions) == 0, timeout=downtime + 120)
    ok, rows = once(sessions, timers)
    after = [(r["at"] - second.started_at).total_seconds() for r in rows if r["at"] >= second.started_at]
    return {"timers": timers, "downtime": (second.started_at - killed_at).total_seconds(), "drained": drained,
            "fired_before_kill": fired_before, "leased_at_kill": leased, "exactly_once": ok,
            "from_restart": summary(after), "met": ok and drained and max(after) <= RESTART_TARGET}


def processes(url: str, log_dir: Path, timers: int, count: int) -> dict:
    """`count` app processes, `timers` timers due at one instant; each must fire exactly once."""
    sessions = make_session_factory(create_db_engine(url))
    engine = Engine(sessions)
    deploy(sessions, "timer_at.bpmn")
    apps = [AppProcess(url, log_dir / f"processes-{n}.log").spawn() for n in range(count)]
    try:
        for app in apps:
            app.wait_ready()
        due = in_seconds(max(20.0, timers * 0.03))
        started = time.monotonic()
        call_backs(engine, timers, lambda: max(due, in_seconds(2)), threads=6)
        created_in = time.monotonic() - started
        claims: dict[str, set[int]] = {}
        drained = wait_until(lambda: _sample_claims(sessions, claims), timeout=300, interval=0.05)
        drained_at = datetime.now(UTC)
    finally:
        for app in apps:
            app.kill()
    ok, rows = once(sessions, timers)
    return {"timers": timers, "processes": count, "created_in": created_in, "drained": drained,
            "drain_after_due": (drained_at - due).total_seconds(), "exactly_once": ok,
            "claims": {w: len(ids) for w, ids in sorted(claims.items())}, "lateness": summary(lateness(rows)),
            "met": ok and drained}


def _overdue(sessions) -> int:
    with sessions() as s:
        return len(s.scalars(select(Job.id).where(Job.due_at <= datetime.now(UTC))).all())


def _leased(sessions) -> int:
    with sessions() as s:
        return len(s.scalars(select(Job.id).where(Job.locked_until > datetime.now(UTC))).all())


def _sample_claims(sessions, claims: dict[str, set[int]]) -> bool:
    """Record which worker holds which job (to see the work spread); True once no job is left."""
    with sessions() as s:
        rows = s.execute(select(Job.id, Job.locked_by)).all()
    for job_id, worker in rows:
        if worker:
            claims.setdefault(worker, set()).add(job_id)
    return not rows


def format_restart(backend: str, r: dict) -> str:
    s = r["from_restart"]
    return (f"{backend:<10} timers={r['timers']} downtime={r['downtime']:.1f}s killed after "
            f"{r['fired_before_kill']} firings holding {r['leased_at_kill']} leases | once={r['exactly_once']} | "
            f"fired after restart: n={s['n']} p50={s['p50']:.2f}s p95={s['p95']:.2f}s max={s['max']:.2f}s | "
            f"within {RESTART_TARGET:g} s: {'yes' if r['met'] else 'NO'}")


def format_processes(r: dict) -> str:
    s = r["lateness"]
    return (f"postgresql timers={r['timers']} processes={r['processes']} (created in {r['created_in']:.1f}s) | "
            f"once={r['exactly_once']} | drained {r['drain_after_due']:.1f}s after due | lateness "
            f"p50={s['p50']:.2f}s p95={s['p95']:.2f}s max={s['max']:.2f}s | claims per worker "
            f"{sorted(r['claims'].values(), reverse=True)} | exactly once: {'yes' if r['met'] else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=dbutil.pg_base_url(),
                        help=f"PostgreSQL server URL (default: ${dbutil.PG_ENV}); throw-away databases are made on it")
    parser.add_argument("--downtime", type=float, default=5.0, help="seconds the killed app stays down (600: 10 min)")
    parser.add_argument("--latency-instances", type=int, default=60)
    parser.add_argument("--restart-timers", type=int, default=500)
    parser.add_argument("--timers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)")
    args = parser.parse_args()
    quiet_spiff_loggers()
    with tempfile.TemporaryDirectory(prefix="dealflow-timers-") as tmp:
        run(args, Path(tmp), set(args.only or SCENARIOS))


SCENARIOS = ("latency", "restart", "processes")


def run(args, directory: Path, chosen: set[str]) -> list[str]:
    """Run the chosen scenarios, printing each figure's line as soon as it is measured; return the lines."""
    lines = []
    for backend in ("sqlite", "postgresql") if args.pg else ("sqlite",):
        for scenario in ("latency", "restart"):
            if scenario not in chosen:
                continue
            with database(backend, args.pg, directory / scenario) as url:
                if scenario == "latency":
                    figure = format_latency(backend, measure_latency(url, directory, args.latency_instances))
                else:
                    figure = format_restart(backend, restart(url, directory, args.restart_timers, args.downtime))
            lines.append(f"{SCENARIOS.index(scenario) + 1}. {scenario:<10}{figure}")
            print(lines[-1], flush=True)
    if "processes" in chosen and args.pg:
        with pg_database(args.pg) as url:
            lines.append("3. processes " + format_processes(processes(url, directory, args.timers, args.processes)))
    elif "processes" in chosen:
        lines.append(f"3. processes skipped: no PostgreSQL (--pg or ${dbutil.PG_ENV})")
    if "processes" in chosen:
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
