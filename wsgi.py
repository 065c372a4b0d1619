"""The WSGI entry point for production servers: `gunicorn -c gunicorn.conf.py wsgi:app` (what `make serve` runs).

gunicorn imports this module in every worker after it forked (gunicorn.conf.py keeps preload_app off), so each
worker builds its own app: its own database pool, its own script-worker pool (a forkserver started in the
worker) and, with DEALFLOW_SCHEDULER=on, its own sweeper thread. Threads do not survive a fork, so building the
app in the master and forking it (--preload) would leave every worker without a running sweeper.
"""

import logging

from app import create_app

# SpiffWorkflow attaches task data to every state-change log record unless its loggers are above INFO.
for _name in ("spiff", "spiff.task", "spiff.workflow", "spiff.data"):
    logging.getLogger(_name).setLevel(logging.WARNING)

app = create_app()
