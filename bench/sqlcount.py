"""Count the SQL statements and transactions an engine sends, at the driver: what reaches SQLite or PostgreSQL.

SQLAlchemy's own statement events would miss the engine's prepared hot-path statements (engine/sql.py), which go
to the driver's cursor directly. So the counter listens where every statement passes: sqlite3's trace callback,
and a counting cursor class on each psycopg connection. Transactions are delimited by SQLAlchemy's begin, commit
and rollback events (BEGIN and COMMIT are not statements); what runs in no transaction (an autocommit read, a
pool's liveness ping, but for a new connection's first) is listed apart, in `outside`. A statement
run for several parameter sets (executemany) counts once per set, as the database runs it.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field

from sqlalchemy import Engine
from sqlalchemy import event

NOT_STATEMENTS = ("BEGIN", "COMMIT", "ROLLBACK", "END")


@dataclass
class Transaction:
    statements: int = 0
    wrote: bool = False  # changed or locked rows, and committed
    # Took a writer's locks, committed or not: began as a writer (BEGIN IMMEDIATE on SQLite, the engine's commands)
    # or changed or locked rows.
    locked: bool = False
    sql: list[str] = field(default_factory=list)  # the text of each statement, in order


@dataclass
class SqlCounter:
    """Statements per transaction on one SQLAlchemy engine, while `counting()`."""

    transactions: list[Transaction] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # statements run in no transaction (autocommit reads)
    current: dict[int, Transaction] = field(default_factory=dict)
    active: bool = False
    _hooked: dict[int, tuple[object, object]] = field(default_factory=dict)

    def attach(self, sql: Engine) -> None:
        event.listen(sql, "checkout", self._checkout)  # a connection used without a transaction is seen too
        event.listen(sql, "begin", self._begin)
        event.listen(sql, "commit", self._commit)
        event.listen(sql, "rollback", self._rollback)

    def detach(self, sql: Engine) -> None:
        event.remove(sql, "checkout", self._checkout)
        event.remove(sql, "begin", self._begin)
        event.remove(sql, "commit", self._commit)
        event.remove(sql, "rollback", self._rollback)
        for dbapi, original in self._hooked.values():
            if isinstance(dbapi, sqlite3.Connection):
                dbapi.set_trace_callback(None)
            else:
                dbapi.cursor_factory = original
        self._hooked.clear()

    @contextmanager
    def counting(self) -> Iterator["SqlCounter"]:
        self.transactions.clear()
        self.outside.clear()
        self.current.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    @property
    def statements(self) -> int:
        return sum(t.statements for t in self.transactions)

    @property
    def write_transactions(self) -> int:
        return sum(1 for t in self.transactions if t.wrote)

    @property
    def write_statements(self) -> int:
        return sum(t.statements for t in self.transactions if t.wrote)

    def statement(self, key: int, sql: str, times: int = 1) -> None:
        tx = self.current.get(key)
        text = sql.lstrip().upper()
        if text.startswith(NOT_STATEMENTS) or not self.active:
            return
        if tx is None:
            self.outside.append(sql)
            return
        tx.statements += times
        tx.sql.append(sql)
        if text.startswith(("INSERT", "UPDATE", "DELETE")) or "FOR UPDATE" in text:
            tx.wrote = tx.locked = True

    def _hook(self, dbapi) -> int:
        key = id(dbapi)
        if key in self._hooked:
            return key
        if isinstance(dbapi, sqlite3.Connection):
            dbapi.set_trace_callback(lambda sql: self.statement(key, sql))
            self._hooked[key] = (dbapi, None)
        else:  # psycopg 3
            original = dbapi.cursor_factory
            dbapi.cursor_factory = _counting_cursor(original, self, key)
            self._hooked[key] = (dbapi, original)
        return key

    def _checkout(self, dbapi, record, proxy) -> None:
        self._hook(dbapi)

    def _begin(self, conn) -> None:
        key = self._hook(conn.connection.dbapi_connection)
        if self.active:
            self.current[key] = Transaction(locked=bool(conn.get_execution_options().get("dealflow_write")))

    def _end(self, conn, committed: bool) -> None:
        tx = self.current.pop(id(conn.connection.dbapi_connection), None)
        if self.active and tx is not None:
            tx.wrote = tx.wrote and committed
            self.transactions.append(tx)

    def _commit(self, conn) -> None:
        self._end(conn, True)

    def _rollback(self, conn) -> None:
        self._end(conn, False)


def _counting_cursor(base: type, counter: SqlCounter, key: int) -> type:
    class CountingCursor(base):
        def execute(self, query, params=None, **kwargs):
            counter.statement(key, _text(query))
            return super().execute(query, params, **kwargs)

        def executemany(self, query, params_seq, **kwargs):
            params_seq = list(params_seq)
            counter.statement(key, _text(query), len(params_seq))
            return super().executemany(query, params_seq, **kwargs)

    return CountingCursor


def _text(query) -> str:
    return query.decode() if isinstance(query, bytes) else str(query)
