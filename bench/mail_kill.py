"""The issue's mail figure: SIGKILL the worker at random moments while 200 mails go out; prints one line per run.

    .venv/bin/python bench/mail_kill.py                     # SQLite, and PostgreSQL from $DEALFLOW_TEST_DATABASE_URL
    .venv/bin/python bench/mail_kill.py --runs 3 --kills 8  # three seeds per backend, eight kills each
    .venv/bin/python bench/mail_kill.py --pg URL --hold 0   # an SMTP server that answers at once

The scenario is tests/test_handlers__processes.py's (run_mail_kill): `--mails` mail.send jobs wait while no app
runs; an app process (sweep every 0.2 s, service lease PT2S) sends them to an aiosmtpd server in this process and is
SIGKILLed `--kills` times, 0.3-1.5 s after each start, until every instance completed. Target: 0 lost; every
duplicate carries its first copy's Message-ID and is the mail a kill caught in flight (at most one per kill).
"""

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timer_latency import database  # noqa: E402
from bench.timer_latency import quiet_spiff_loggers  # noqa: E402
from engine.database import create_db_engine  # noqa: E402
from engine.database import make_session_factory  # noqa: E402
from tests import dbutil  # noqa: E402
from tests.test_handlers__processes import HOLD  # noqa: E402
from tests.test_handlers__processes import KILLS  # noqa: E402
from tests.test_handlers__processes import MAILS  # noqa: E402
from tests.test_handlers__processes import SEED  # noqa: E402
from tests.test_handlers__processes import MailKillResult  # noqa: E402
from tests.test_handlers__processes import run_mail_kill  # noqa: E402


def measure(url: str, log_dir: Path, args: argparse.Namespace, seed: int) -> MailKillResult:
    log_dir.mkdir(parents=True, exist_ok=True)
    db = create_db_engine(url)
    try:
        return run_mail_kill(url, make_session_factory(db), log_dir, mails=args.mails, kills=args.kills, seed=seed,
                             hold=args.hold)
    finally:
        db.dispose()


def format_run(backend: str, seed: int, r: MailKillResult) -> str:
    met = r.finished_at is not None and not (r.lost() or r.mislabelled() or r.unexplained())
    resent = r.resent_after()
    return (f"{backend:<10} seed={seed} mails={len(r.expected)} received={len(r.arrivals)} lost={len(r.lost())} "
            f"kills={r.kills} duplicates={len(r.duplicates())} (same Message-ID: {'no' if r.mislabelled() else 'yes'}"
            f", outside the send window: {len(r.unexplained())}) | all done {r.seconds_to_finish():.1f} s after the "
            f"first spawn | a caught mail resent at most {max(resent, default=float('nan')):.1f} s after its kill | "
            f"target met: {'yes' if met else 'NO'}")


def format_total(backend: str, results: list[MailKillResult]) -> str:
    return (f"{backend:<10} total: mails={sum(len(r.expected) for r in results)} "
            f"lost={sum(len(r.lost()) for r in results)} kills={sum(r.kills for r in results)} "
            f"duplicates={sum(len(r.duplicates()) for r in results)} "
            f"max time to finish={max(r.seconds_to_finish() for r in results):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=dbutil.pg_base_url(),
                        help=f"PostgreSQL server URL (default: ${dbutil.PG_ENV}); throw-away databases are made on it")
    parser.add_argument("--mails", type=int, default=MAILS)
    parser.add_argument("--kills", type=int, default=KILLS)
    parser.add_argument("--runs", type=int, default=1, help="runs per backend, seeds --seed, --seed + 1, ...")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--hold", type=float, default=HOLD, help="seconds the SMTP server holds each 250 to DATA")
    args = parser.parse_args()
    quiet_spiff_loggers()
    with tempfile.TemporaryDirectory(prefix="dealflow-mail-kill-") as tmp:
        for backend in ("sqlite", "postgresql") if args.pg else ("sqlite",):
            results = []
            for n in range(args.runs):
                directory = Path(tmp) / f"{backend}-{n}"
                with database(backend, args.pg, directory) as url:
                    results.append(measure(url, directory, args, args.seed + n))
                print(format_run(backend, args.seed + n, results[-1]), flush=True)
            print(format_total(backend, results), flush=True)


if __name__ == "__main__":
    main()
