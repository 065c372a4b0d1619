"""Alembic environment shared by `flask db ...` (Flask-Migrate) and by code (tests, `make run`).

Outside Flask, pass the URL as `config.attributes["url"]` or an open connection as `config.attributes["connection"]`.
"""

from alembic import context
from sqlalchemy import create_engine

import crm.models  # noqa: F401  (registers the tables on the metadata)
import engine.models  # noqa: F401
from engine.db import Base

config = context.config
target_metadata = Base.metadata


def _flask_engine():
    try:
        from flask import current_app
    except ImportError:  # pragma: no cover - flask is a dependency, but the engine runs without it
        return None
    try:
        return current_app.extensions["migrate"].db.engine
    except (RuntimeError, KeyError):
        return None


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = _flask_engine()
    owned = engine is None
    if owned:
        engine = create_engine(config.attributes.get("url") or config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        if owned:
            engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
