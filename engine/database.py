"""Database engines as Dealflow needs them: SQLite tuned for one writer at a time, a lock timeout on both."""

import sqlite3
import weakref

from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from engine.contention import LOCK_TIMEOUT_MS

WRITE = {"dealflow_write": True}
# How the file is written: WAL (readers never wait for the writer), no fsync per commit (the WAL is synced at each
# checkpoint; a power cut may lose the last commits, never corrupt the file), and a checkpoint every 10,000 pages
# (~40 MB) instead of SQLite's 1,000: a command changes ~17 pages, so the default made every ~60th command copy and
# fsync the log, and pages changed by many commands (the audit head, index roots) are now copied once per batch.
SQLITE_STORAGE = ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=10000")
_configured: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def create_db_engine(url: str, lock_timeout_ms: int = LOCK_TIMEOUT_MS, **options) -> Engine:
    """An engine for `url`; on SQLite with WAL, a busy timeout and BEGIN IMMEDIATE for writers."""
    if url.startswith("sqlite"):
        options.setdefault("connect_args", {})["timeout"] = lock_timeout_ms / 1000
    else:
        options.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **options)
    configure_engine(engine, lock_timeout_ms)
    return engine


def configure_engine(engine: Engine, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> None:
    """Install the lock timeout, and SQLite's pragmas and transaction handling, on an engine made elsewhere
    (Flask-SQLAlchemy).

    `lock_timeout_ms`: how long a statement waits for a lock another transaction holds (SQLite's busy timeout,
    PostgreSQL's lock_timeout) before the command fails as busy (engine.contention), instead of hanging until the
    server's worker timeout kills it. Set once per connection: no statement per command.
    """
    if engine in _configured:
        return
    _configured.add(engine)
    if engine.dialect.name == "postgresql":
        @event.listens_for(engine, "connect")
        def _on_pg_connect(dbapi_connection, _record):
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
            dbapi_connection.commit()
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # pysqlite's own transaction handling would issue a deferred BEGIN; we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_STORAGE:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A writer takes the write lock up front: two racing commands then queue on the busy timeout and the
        # second one sees the first one's commit, instead of failing with "database is locked" mid-way.
        # Straight to the driver: through exec_driver_sql, BEGIN cost more than the statements after it.
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get("dealflow_write") else "BEGIN"
        try:
            conn.connection.driver_connection.execute(statement)
        except sqlite3.Error as exc:  # "database is locked" past the busy timeout: SQLAlchemy's error, as elsewhere
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error, dialect=conn.dialect) from exc


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def make_read_session_factory(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for reads of one statement (the bearer token of every API request, a task row read alone).

    On PostgreSQL they run in autocommit: the statement goes alone instead of between a BEGIN and a ROLLBACK.
    Each round trip costs the server ~0.15 ms of CPU, and the server is what every worker shares: an API request
    made six of them before its command. SQLite has no round trips to save: the same sessions as for the rest.
    """
    engine = session_factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        return session_factory
    return sessionmaker(bind=engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


def begin_write(session: Session) -> None:
    """Start the session's transaction as a writer (BEGIN IMMEDIATE on SQLite). Call before any query."""
    session.connection(execution_options=WRITE)
