"""The Dealflow engine on the bench diagram: databases to run it on, the run itself, and SQL counting."""

import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine as SqlEngine
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from bench.common import ACTOR
from bench.common import DESIGNER
from bench.common import DIAGRAM
from bench.common import FORMS
from bench.common import PROCESS_KEY
from bench.common import ROOT
from bench.common import variables
from bench.sqlcount import SqlCounter
from bench.sqlcount import Transaction
from engine.database import create_db_engine
from engine.database import make_session_factory
from engine.engine import Engine
from engine.migrate import upgrade
from processes.catalogue import Catalogue

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests import dbutil  # noqa: E402  (the test suite's throw-away PostgreSQL databases)

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Database:
    """A migrated database with the bench diagram deployed."""

    url: str
    sql: SqlEngine
    session_factory: sessionmaker[Session]
    drop: object = None  # called at close (PostgreSQL: drop the throw-away database)

    def analyze(self) -> None:
        """Bring PostgreSQL's planner statistics up to date, as autovacuum does on a server that has run a minute.

        Its first pass comes a minute (autovacuum_naptime) after a fresh database gets rows, later than a scale run's
        warm-up ends. Until then the planner has no row counts: it closed two task rows in three through an inbox
        index, walking every open entry, instead of by primary key. Call it once the tables hold a representative
        load (statistics of a few dozen rows made every later round slower as the tables grew: a sequential scan
        planned for 30 rows). SQLite's planner keeps no statistics.
        """
        if self.sql.dialect.name == "postgresql":
            with self.sql.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()

    def close(self) -> None:
        self.sql.dispose()
        if self.drop:
            self.drop()


def deploy(session_factory: sessionmaker[Session], *files: Path) -> None:
    Catalogue(session_factory).deploy([(f.name, f.read_bytes()) for f in files], DESIGNER)


def sqlite_database(path: Path, *files: Path) -> Database:
    """A fresh SQLite file, migrated, with `files` (default: the bench diagram) deployed."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    sql = create_db_engine(url)
    db = Database(url, sql, make_session_factory(sql))
    deploy(db.session_factory, *(files or (DIAGRAM,)))
    return db


def pg_database(base_url: str = PG_BASE, *files: Path) -> Database:
    """A throw-away PostgreSQL database on `base_url`'s server (dropped at close), migrated and deployed."""
    url = dbutil.create_pg_database(base_url)
    sql = create_db_engine(url)
    db = Database(url, sql, make_session_factory(sql), drop=lambda: dbutil.drop_pg_database(base_url, url))
    deploy(db.session_factory, *(files or (DIAGRAM,)))
    return db


def run_instances(engine: Engine, count: int, first: int = 0) -> None:
    """Start `count` instances and complete their 3 user tasks, as the API does (the view names the next task)."""
    for i in range(first, first + count):
        view = engine.start_instance(PROCESS_KEY, actor=ACTOR, business_key=f"BENCH-{i}", variables=variables(i))
        while view.open_tasks:
            task = view.open_tasks[0]
            view = engine.complete_task(task.id, actor=ACTOR, data=FORMS[task.bpmn_id])
        assert view.status == "completed", view


def count_per_step(db: Database, engine: Engine, instances: int = 20) -> dict:
    """Statements, write transactions and commits per engine step (start or completion), measured per command."""
    counter = SqlCounter()
    counter.attach(db.sql)
    per_kind: dict[str, list[Transaction]] = {"start": [], "complete": []}
    per_command: dict[str, list[tuple[int, int, int]]] = {"start": [], "complete": []}

    def measure(kind, fn):
        with counter.counting():
            result = fn()
        per_kind[kind].extend(counter.transactions)
        per_command[kind].append((counter.statements, counter.write_transactions, counter.write_statements))
        return result

    try:
        for i in range(instances):
            view = measure("start", lambda i=i: engine.start_instance(
                PROCESS_KEY, actor=ACTOR, business_key=f"COUNT-{i}", variables=variables(i)))
            while view.open_tasks:
                task = view.open_tasks[0]
                view = measure("complete", lambda t=task: engine.complete_task(
                    t.id, actor=ACTOR, data=FORMS[t.bpmn_id]))
    finally:
        counter.detach(db.sql)
    result = {}
    for kind, commands in per_command.items():
        n = len(commands)
        result[kind] = {
            "commands": n,
            "statements": sum(c[0] for c in commands) / n,
            "write_transactions": sum(c[1] for c in commands) / n,
            "statements_in_write_transaction": sum(c[2] for c in commands) / n,
            "transactions": len(per_kind[kind]) / n,
            "max_statements": max(c[0] for c in commands),
        }
    return result


def state_sizes(db: Database, engine: Engine, default_serializer) -> dict:
    """Bytes of the stored state at each wait state of one instance, against SpiffWorkflow's serialize_json."""
    from engine import state_store
    from engine.models import ProcessInstance
    from engine.runtime import load_workflow

    ours, theirs = [], []

    def sample(instance_id: int) -> None:
        with db.session_factory() as session:
            instance = session.get(ProcessInstance, instance_id)
            loaded = engine._specs.get(session, instance.definition_id)
            workflow = load_workflow(session, instance_id, loaded, None)
            head, rows = state_store.read(session, instance_id)
            # The head and each task's body (its id and order are columns of the row, as they are keys in a document)
            ours.append(len(head.encode()) + sum(len(f'"{row[0]}":{row[3]},'.encode()) for row in rows))
            theirs.append(len(default_serializer.serialize_json(workflow).encode()))

    view = engine.start_instance(PROCESS_KEY, actor=ACTOR, business_key="SIZE-0", variables=variables(0))
    sample(view.id)
    while view.open_tasks:
        task = view.open_tasks[0]
        view = engine.complete_task(task.id, actor=ACTOR, data=FORMS[task.bpmn_id])
        if view.open_tasks:
            sample(view.id)
    return {"stored_bytes": sum(ours) / len(ours), "serialize_json_bytes": sum(theirs) / len(theirs),
            "ratio": sum(ours) / sum(theirs), "samples": len(ours)}
