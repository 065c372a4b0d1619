"""gunicorn settings for `make serve` (and the bench's HTTP runs); every value comes from a DEALFLOW_* variable.

    DEALFLOW_WORKERS   worker processes (default 2). Each has its own database pool, script pool and sweeper.
    DEALFLOW_THREADS   threads per worker (default 2): a thread waiting on the database lets another one run.
    DEALFLOW_BIND      address to listen on (default 127.0.0.1:8000).
"""

import os

bind = os.environ.get("DEALFLOW_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DEALFLOW_WORKERS", "2"))
threads = int(os.environ.get("DEALFLOW_THREADS", "2"))
worker_class = "gthread"
# Never preload: the app must be built in each worker after the fork (see wsgi.py).
preload_app = False
# Keep-alive between a proxy (or the bench's load generator) and the workers.
keepalive = 5
timeout = 60
graceful_timeout = 30
accesslog = os.environ.get("DEALFLOW_ACCESS_LOG") or None
errorlog = "-"
# gunicorn's control socket (gunicornc) has one default path per user, which several servers on one machine (the
# bench starts several) would share; Dealflow does not use it.
control_socket_disable = True
loglevel = os.environ.get("DEALFLOW_LOG_LEVEL", "info")
