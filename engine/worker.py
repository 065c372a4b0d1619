"""The in-process sweeper: APScheduler only ticks; due times live in the database.

APScheduler's own misfire handling drops jobs that came due while the process was down, so it never holds a
Dealflow job; each tick asks the database what is due. Every app process may run one: claims are leased.
"""

import logging
from datetime import UTC

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)


def start_sweeper(engine, seconds: float) -> BackgroundScheduler:
    """Start a background thread that fires due jobs every `seconds`."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        _sweep, "interval", args=[engine], seconds=seconds, id="dealflow-sweep",
        coalesce=True, max_instances=1, misfire_grace_time=None,
    )
    scheduler.start()
    log.info("Dealflow job sweeper started (every %ss)", seconds)
    return scheduler


def _sweep(engine) -> None:
    try:
        engine.sweep()
    except Exception:  # noqa: BLE001 - a failing tick (database down) must not kill the scheduler thread
        log.exception("Dealflow job sweep failed; retrying on the next tick")
