"""create_app(config): the one place that wires Dealflow together. Run `flask --app app --help` for the CLI."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from crm.stages import StageListener
from crm.users import emails_for
from engine.contention import LOCK_TIMEOUT_MS
from engine.database import configure_engine
from engine.database import make_read_session_factory
from engine.database import make_session_factory
from engine.db import Base
from engine.db import utcnow
from engine.engine import Engine
from engine.handlers import HandlerRegistry
from engine.isodates import duration_of
from engine.isodates import is_duration
from engine.sandbox import ScriptPool
from engine.services import EngineServices
from handlers import build_registry
from processes.catalogue import Catalogue

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass
class Services:
    """What the web layer and the CLI use; built once per app."""

    session_factory: sessionmaker[Session]
    # One-statement reads (the bearer token of every API request): autocommit on PostgreSQL.
    read_session_factory: sessionmaker[Session]
    engine: Engine
    catalogue: Catalogue
    script_pool: ScriptPool
    handlers: HandlerRegistry


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"DEALFLOW_{name}", default)


def _pool_options() -> dict[str, Any]:
    """Connection pool size per process (DEALFLOW_DB_POOL_SIZE, DEALFLOW_DB_MAX_OVERFLOW); SQLAlchemy's when unset."""
    options = {}
    for name, option in (("DB_POOL_SIZE", "pool_size"), ("DB_MAX_OVERFLOW", "max_overflow")):
        if _env(name, None) is not None:
            options[option] = int(_env(name, None))
    return options


def default_config(instance_path: str) -> dict[str, Any]:
    """Defaults from DEALFLOW_* environment variables: the only place that reads the environment."""
    sqlite_file = Path(instance_path) / "dealflow.sqlite"
    return {
        "SQLALCHEMY_DATABASE_URI": _env("DATABASE_URL", f"sqlite:///{sqlite_file}"),
        "SECRET_KEY": _env("SECRET_KEY", "dev-only-change-me"),
        "DEALFLOW_MAX_UPLOAD_BYTES": int(_env("MAX_UPLOAD_BYTES", 5 * 1024 * 1024)),
        "DEALFLOW_SCRIPT_WORKERS": int(_env("SCRIPT_WORKERS", 2)),
        "DEALFLOW_SCRIPT_SECONDS": float(_env("SCRIPT_SECONDS", 2.0)),
        "DEALFLOW_SCRIPT_MEMORY_MB": int(_env("SCRIPT_MEMORY_MB", 512)),
        "DEALFLOW_SCHEDULER": _env("SCHEDULER", "off"),
        "DEALFLOW_SWEEP_SECONDS": float(_env("SWEEP_SECONDS", 1)),
        "DEALFLOW_REMINDER_BEFORE": _env("REMINDER_BEFORE", "PT4H"),
        "DEALFLOW_TOKEN_TTL_HOURS": float(_env("TOKEN_TTL_HOURS", 12)),
        "DEALFLOW_IDEMPOTENCY_HOURS": float(_env("IDEMPOTENCY_HOURS", 24)),
        "DEALFLOW_LOGIN_RATE_LIMIT": _env("LOGIN_RATE_LIMIT", "5 per minute"),
        "RATELIMIT_ENABLED": _env("RATELIMIT_ENABLED", "on") != "off",
        "RATELIMIT_STORAGE_URI": _env("RATELIMIT_STORAGE_URI", "memory://"),
        "SQLALCHEMY_ENGINE_OPTIONS": _pool_options(),
        "DEALFLOW_WORKFLOW_CACHE": int(_env("WORKFLOW_CACHE", 256)),
        # How long a request waits for a row (or SQLite's write lock) another transaction holds before it answers
        # 503 busy: SQLite's busy timeout, PostgreSQL's lock_timeout.
        "DEALFLOW_LOCK_TIMEOUT_MS": int(_env("LOCK_TIMEOUT_MS", LOCK_TIMEOUT_MS)),
        # Service tasks: how long one handler call may take before another worker may try it again.
        "DEALFLOW_SERVICE_LEASE": _env("SERVICE_LEASE", "PT2M"),
        # Handlers (handlers/): mail, webhooks, documents. Without an SMTP host, mail goes to the console.
        "DEALFLOW_SMTP_HOST": _env("SMTP_HOST", None),
        "DEALFLOW_SMTP_PORT": _env("SMTP_PORT", None),
        "DEALFLOW_SMTP_USER": _env("SMTP_USER", None),
        "DEALFLOW_SMTP_PASSWORD": _env("SMTP_PASSWORD", None),
        "DEALFLOW_SMTP_TLS": _env("SMTP_TLS", "none"),
        "DEALFLOW_SMTP_TIMEOUT": _env("SMTP_TIMEOUT", None),
        "DEALFLOW_SMTP_CA_FILE": _env("SMTP_CA_FILE", None),
        "DEALFLOW_MAIL_FROM": _env("MAIL_FROM", "dealflow@localhost"),
        "DEALFLOW_WEBHOOK_SECRET": _env("WEBHOOK_SECRET", None),
        "DEALFLOW_WEBHOOK_TIMEOUT": _env("WEBHOOK_TIMEOUT", None),
        "DEALFLOW_WEBHOOK_ALLOWED_HOSTS": _env("WEBHOOK_ALLOWED_HOSTS", ""),
        "DEALFLOW_LOCALE": _env("LOCALE", "ru_RU"),
        # Reminders and overdue notices also go out by mail to the task's people (their e-mail in their account).
        "DEALFLOW_REMINDER_MAIL": _env("REMINDER_MAIL", "on"),
        # The process every new lead starts (POST /api/v1/leads), with the deal id as business key.
        "DEALFLOW_SALES_PROCESS": _env("SALES_PROCESS", "sales_funnel"),
    }


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; `config` (tests pass a dict) overrides the DEALFLOW_* defaults."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(default_config(app.instance_path))
    if config:
        app.config.update(config)
    app.config["MAX_CONTENT_LENGTH"] = app.config["DEALFLOW_MAX_UPLOAD_BYTES"] * 4
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    with app.app_context():
        configure_engine(db.engine, app.config["DEALFLOW_LOCK_TIMEOUT_MS"])
        app.extensions["dealflow"] = _services(app, make_session_factory(db.engine))

    from web import api
    from web import cli
    from web import pages

    api.init_app(app)
    cli.init_app(app)
    pages.init_app(app)
    if app.config["DEALFLOW_SCHEDULER"] == "on":
        _start_sweeper(app)
    return app


def _start_sweeper(app: Flask) -> None:
    """Fire due timers from this process (every app process may: claims are leased in the database)."""
    import atexit

    from engine.worker import start_sweeper

    scheduler = start_sweeper(services(app).engine, app.config["DEALFLOW_SWEEP_SECONDS"])
    app.extensions["dealflow_scheduler"] = scheduler
    atexit.register(scheduler.shutdown, wait=False)


def _services(app: Flask, session_factory: sessionmaker[Session]) -> Services:
    pool = ScriptPool(
        workers=app.config["DEALFLOW_SCRIPT_WORKERS"], memory_mb=app.config["DEALFLOW_SCRIPT_MEMORY_MB"],
        cpu_seconds=app.config["DEALFLOW_SCRIPT_SECONDS"], wall_seconds=app.config["DEALFLOW_SCRIPT_SECONDS"],
    )
    # DEALFLOW_CLOCK is for tests only: a callable returning an aware UTC datetime, passed in the config dict.
    clock = app.config.get("DEALFLOW_CLOCK") or utcnow
    handlers = build_registry(app.config)
    return Services(
        session_factory=session_factory,
        read_session_factory=make_read_session_factory(session_factory),
        engine=Engine(session_factory, script_pool=pool, clock=clock,
                      reminder_before=_duration(app.config["DEALFLOW_REMINDER_BEFORE"], "DEALFLOW_REMINDER_BEFORE"),
                      workflow_cache=app.config["DEALFLOW_WORKFLOW_CACHE"], handlers=handlers,
                      services=EngineServices(session_factory, clock),
                      service_lease=_duration(app.config["DEALFLOW_SERVICE_LEASE"], "DEALFLOW_SERVICE_LEASE"),
                      mail_directory=emails_for if app.config["DEALFLOW_REMINDER_MAIL"] == "on" else None,
                      listener=StageListener()),
        catalogue=Catalogue(session_factory, known_topics=handlers.knows),
        script_pool=pool,
        handlers=handlers,
    )


def _duration(text: str, name: str) -> timedelta:
    if not is_duration(text):
        raise ValueError(f"{name}={text!r} is not an ISO 8601 duration; write e.g. PT4H or P1D.")
    return duration_of(text)


def services(app: Flask) -> Services:
    return app.extensions["dealflow"]
