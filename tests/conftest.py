"""Shared fixtures: real databases (SQLite file, PostgreSQL when configured), a controllable clock."""

import os
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from engine import engine as engine_module
from engine import workflow as engine_workflow
from engine.database import create_db_engine
from engine.database import make_session_factory
from engine.task_rows import TASK_ROWS
from tests import dbutil
from tests.api_support import own_app

BACKENDS = ["sqlite", "postgresql"]

# Every dump in the suite is also made by checking every task in full, and must come out the same: a change to a
# task's data that a dump would skip fails the test that made it (engine.task_rows.TaskRows).
TASK_ROWS.verify = True
# Every answer of a workflow's task tracker is checked against a walk of its task map (engine.workflow.Tracker).
engine_workflow.VERIFY = True

# `make test` runs the suite a second time with every engine keeping its workflows between commands, as the app
# does: then most dumps are of a workflow dumped before, where the verification above has something to compare.
if os.environ.get("DEALFLOW_TEST_WORKFLOW_CACHE"):
    engine_module.DEFAULT_WORKFLOW_CACHE = int(os.environ["DEALFLOW_TEST_WORKFLOW_CACHE"])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    return dbutil.make_sqlite_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def pg_database():
    base = dbutil.pg_base_url()
    if base is None:
        yield None
        return
    url = dbutil.create_pg_database(base)
    yield url
    dbutil.drop_pg_database(base, url)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, sqlite_template):
    """A migrated, empty database: a fresh SQLite file, or the run's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return dbutil.fresh_sqlite(sqlite_template, tmp_path)
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip(f"The PostgreSQL run needs {dbutil.PG_ENV}, e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test (.ci/run sets it)")
    dbutil.reset_pg(url)
    return url


@pytest.fixture
def db_engine(db_url):
    eng = create_db_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(db_engine):
    return make_session_factory(db_engine)


@pytest.fixture
def session(session_factory):
    with session_factory() as s:
        yield s


class Clock:
    """A clock tests move by hand; the only thing tests are allowed to patch."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock():
    return Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def script_pool():
    from engine.sandbox import ScriptPool

    pool = ScriptPool(workers=2)
    yield pool
    pool.close()


@pytest.fixture
def engine(session_factory, clock, script_pool):
    from engine.engine import Engine

    return Engine(session_factory, clock=clock, script_pool=script_pool)


@pytest.fixture
def app(db_url, tmp_path):
    with own_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test"}) as flask_app:
        yield flask_app


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()  # click >= 8.2 keeps stdout and stderr apart

    def invoke(*args):
        return runner.invoke(args=list(args), catch_exceptions=False)

    return invoke


# --- HTTP API ---------------------------------------------------------------------------------------------------

@pytest.fixture
def client(app):
    return app.test_client()


class ApiUsers:
    """Accounts and bearer tokens made straight in the database (no password, so no argon2 cost per user)."""

    def __init__(self, flask_app):
        from app import services

        self._sf = services(flask_app).session_factory
        self.tokens: dict[str, str] = {}

    def add(self, username: str, roles=("manager",), groups=("sales",), password: str | None = None) -> dict:
        """Create the user and a token; returns the Authorization header for them."""
        from crm.tokens import issue_token
        from crm.users import create_user
        from engine.db import utcnow

        with self._sf() as session, session.begin():
            create_user(session, username, password=password, roles=roles, groups=groups)
            self.tokens[username], _ = issue_token(session, username, ttl=timedelta(hours=1), now=utcnow())
        return self.headers(username)

    def headers(self, username: str) -> dict:
        return {"Authorization": f"Bearer {self.tokens[username]}"}


@pytest.fixture
def api_users(app):
    return ApiUsers(app)


@pytest.fixture
def live_server(app):
    """The app under a real threaded WSGI server on a free port; yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def clocked_app(db_url, clock):
    """The app with its engine on the test's `clock` (DEALFLOW_CLOCK): due dates and timers move by hand, while
    tokens and Idempotency-Keys keep the wall clock."""
    with own_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test", "DEALFLOW_CLOCK": clock}) as flask_app:
        yield flask_app
