"""Real databases for tests: a migrated SQLite file per test, and a migrated PostgreSQL database per run."""

import os
import shutil
import uuid
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url

import crm.models  # noqa: F401  (all tables on the metadata)
import engine.models  # noqa: F401
from engine.audit import GENESIS
from engine.db import Base
from engine.migrate import upgrade

PG_ENV = "DEALFLOW_TEST_DATABASE_URL"


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def make_sqlite_template(directory: Path) -> Path:
    """Migrate one SQLite file; each test copies it (a copy costs far less than running migrations)."""
    path = directory / "template.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


def fresh_sqlite(template: Path, directory: Path) -> str:
    target = directory / "dealflow.sqlite"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def create_pg_database(base_url: str) -> str:
    """Create and migrate a throw-away database on the server of `base_url`; return its URL."""
    url = make_url(base_url)
    name = f"dealflow_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    test_url = url.set(database=name).render_as_string(hide_password=False)
    upgrade(test_url)
    return test_url


def drop_pg_database(base_url: str, test_url: str) -> None:
    name = make_url(test_url).database
    admin = create_engine(make_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_pg(test_url: str) -> None:
    """Empty every table between tests, keeping the schema and the audit chain's head row."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    eng = create_engine(test_url)
    with eng.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, :h)"), {"h": GENESIS})
    eng.dispose()
