"""Hot-path statements: SQLAlchemy Core compiled once per dialect, run on the transaction's DBAPI connection.

A command runs 7-8 statements. Through `Connection.execute` each costs 35-45 us of SQLAlchemy bookkeeping (cache
key, execution context, result object) around a 3-10 us driver call, which is more than the whole statement on
SQLite. A `Prepared` statement keeps what SQLAlchemy would compute anyway -- the SQL text for the dialect, the
order of its parameters, the type processors of every parameter and result column -- and hands values straight
to the driver's cursor, inside the transaction the Session already began. The SQL is SQLAlchemy's own, so it is
the same on SQLite and PostgreSQL as the rest of the code's, and types round-trip exactly as through the ORM
(aware UTC datetimes, JSON columns).

What it does not do: unit-of-work flushes (call it for rows you do not also change through the ORM), Python-side
column defaults (give every column of an insert), expanding IN parameters.
"""

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import Table
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

_DBAPI = "dealflow.dbapi"

Processor = Callable[[Any], Any]


def _driver(session: Session) -> tuple[Any, Dialect]:
    """The DBAPI connection of the session's transaction (beginning it if needed) and its dialect.

    `bind_dbapi` keeps both for a session that lives in one transaction; otherwise they are looked up each time.
    """
    found = session.info.get(_DBAPI)
    if found is None:
        connection = session.connection()
        found = connection.connection.dbapi_connection, connection.dialect
    return found


def bind_dbapi(session: Session, connection: Connection) -> None:
    """Remember the DBAPI connection under `connection`, whose transaction `session` joined for its whole life."""
    session.info[_DBAPI] = connection.connection.dbapi_connection, connection.dialect


class Batch:
    """Writes sent to the database together, their row counts checked when the block ends.

    On PostgreSQL the writes go out in one round trip (psycopg's pipeline mode) and the counts arrive at the end;
    on SQLite, which has no round trips to save, each write runs and is checked at once. A write names the row
    count it needs and the exception to raise otherwise; the first failed check raises, and the caller's
    transaction rolls back everything.
    """

    def __init__(self, session: Session):
        self.session = session
        self._stack: ExitStack | None = None
        self._pending: list[tuple[Any, int, Callable[[], Exception]]] = []

    def __enter__(self) -> "Batch":
        connection, dialect = _driver(self.session)
        pipeline = getattr(connection, "pipeline", None)
        if pipeline is not None:
            with ExitStack() as stack:
                stack.enter_context(driver_errors(dialect, "(batched statements)", None))
                stack.enter_context(pipeline())
                self._stack = stack.pop_all()
        return self

    def write(self, prepared: "Prepared", params: Mapping[str, Any], expect: int | None = None,
              error: Callable[[], Exception] | None = None) -> None:
        """Run `prepared`; with `expect`, raise `error()` unless it changes exactly that many rows."""
        if self._stack is None:
            changed = prepared.execute(self.session, params)
            if expect is not None and changed != expect:
                raise error()
            return
        cursor = prepared.send(self.session, params)
        if expect is None:
            cursor.close()
        else:
            self._pending.append((cursor, expect, error))

    def insert(self, rows_insert: "InsertRows", rows: Sequence[Mapping[str, Any]]) -> None:
        rows_insert.execute(self.session, rows)

    def __exit__(self, exc_type, exc, tb) -> None:
        pending, self._pending = self._pending, []
        try:
            if self._stack is not None:
                self._stack.__exit__(exc_type, exc, tb)
            if exc_type is None:
                for cursor, expect, error in pending:
                    if cursor.rowcount != expect:
                        raise error()
        finally:
            for cursor, _, _ in pending:
                cursor.close()


@contextmanager
def driver_errors(dialect: Dialect, statement: str, params: Any) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's (IntegrityError, OperationalError, DataError...), as the rest of
    the code, the API's error handlers included, expects them."""
    try:
        yield
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, params, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # positional dialects: the parameter names in order; None: by name
    bind: dict[str, Processor]
    fixed: dict[str, Any]  # literal values SQLAlchemy turned into parameters (LIMIT 1, x + 1)
    columns: tuple[str, ...]
    results: tuple[Processor | None, ...]
    decoded: tuple[int, ...]  # the result columns whose processor parses text into a new object (JSON)

    def parameters(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = dict(self.fixed)
        values.update(params)
        for name, process in self.bind.items():
            value = values.get(name)
            if value is not None:
                values[name] = process(value)
        if self.names is None:
            return values
        return tuple(values.get(name) for name in self.names)

    @cached_property
    def processed(self) -> tuple[tuple[int, str, Processor], ...]:
        return self._processed(self.results)

    def row(self, raw: Sequence[Any]) -> dict[str, Any]:
        return self._row(self.processed, raw)

    def _processed(self, results: tuple[Processor | None, ...]) -> tuple[tuple[int, str, Processor], ...]:
        return tuple((index, self.columns[index], process) for index, process in enumerate(results)
                     if process is not None)

    def _row(self, processed: tuple[tuple[int, str, Processor], ...], raw: Sequence[Any]) -> dict[str, Any]:
        # The values as read (zipped in C), then the few columns with a processor (dates, JSON) over them.
        row = dict(zip(self.columns, raw, strict=True))
        for index, name, process in processed:
            value = raw[index]
            if value is not None:
                row[name] = process(value)
        return row

    def rows(self, raws: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Every row; a JSON text that several rows hold (the form and the groups of a multi-instance task's
        hundred siblings) is parsed once, and those rows share the value, which callers only read."""
        if len(raws) < 2 or not self.decoded:
            processed = self.processed
            return [self._row(processed, raw) for raw in raws]
        results = list(self.results)
        for index in self.decoded:
            results[index] = _once(results[index])
        processed = self._processed(tuple(results))
        return [self._row(processed, raw) for raw in raws]


def _once(process: Processor) -> Processor:
    """`process`, remembering its result for each distinct value."""
    seen: dict[Any, Any] = {}

    def parse(value):  # text: a driver that decodes JSON itself gets no processor, so no `_once`
        try:
            return seen[value]
        except KeyError:
            result = seen[value] = process(value)
            return result

    return parse


def _compile(statement: Executable, dialect: Dialect, column_keys: Iterable[str] | None = None) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
    if "POSTCOMPILE" in compiled.string:
        raise ValueError("A Prepared statement cannot expand IN parameters; build the list into the statement.")
    bind, fixed = {}, {}
    for param, name in compiled.bind_names.items():
        process = param.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            bind[name] = process
        if not param.required and param.value is not None:
            fixed[name] = param.effective_value
    columns, results, decoded = [], [], []
    for column in getattr(statement, "selected_columns", None) or getattr(statement, "_returning", ()) or ():
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None and isinstance(column.type, JSON):
            decoded.append(len(results))
        columns.append(column.key)
        results.append(process)
    names = tuple(compiled.positiontup) if dialect.positional else None
    return _Compiled(compiled.string, names, bind, fixed, tuple(columns), tuple(results), tuple(decoded))


class Prepared:
    """One Core statement, compiled once per dialect, executed on the current transaction's DBAPI cursor."""

    def __init__(self, statement: Executable, column_keys: Iterable[str] | None = None):
        self.statement = statement
        self._column_keys = tuple(column_keys) if column_keys else None
        self._compiled: dict[type, _Compiled] = {}

    def _for(self, session: Session) -> tuple[_Compiled, Any, Dialect]:
        connection, dialect = _driver(session)
        compiled = self._compiled.get(type(dialect))
        if compiled is None:
            compiled = self._compiled[type(dialect)] = _compile(self.statement, dialect, self._column_keys)
        return compiled, connection, dialect

    def _send(self, session: Session, params: Mapping[str, Any] | None) -> tuple[_Compiled, Any, Dialect]:
        compiled, connection, dialect = self._for(session)
        values = compiled.parameters(params or {})
        with driver_errors(dialect, compiled.sql, values):
            cursor = connection.cursor()
            try:
                cursor.execute(compiled.sql, values)
            except BaseException:
                cursor.close()
                raise
        return compiled, cursor, dialect

    def _run(self, session: Session, params: Mapping[str, Any] | None, fetch: Callable[[Any], Any]) -> Any:
        compiled, cursor, dialect = self._send(session, params)
        try:
            with driver_errors(dialect, compiled.sql, None):
                return compiled, fetch(cursor)
        finally:
            cursor.close()

    def send(self, session: Session, params: Mapping[str, Any] | None = None):
        """Run it and return the open cursor (a `Batch` reads its row count after the pipeline's results)."""
        return self._send(session, params)[1]

    def execute(self, session: Session, params: Mapping[str, Any] | None = None) -> int:
        """Run it; the number of rows it changed."""
        return self._run(session, params, lambda cursor: cursor.rowcount)[1]

    def first(self, session: Session, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The first row (SELECT, or INSERT/UPDATE ... RETURNING) as {column key: value}, or None."""
        compiled, raw = self._run(session, params, lambda cursor: cursor.fetchone())
        return None if raw is None else compiled.row(raw)

    def all(self, session: Session, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        compiled, raws = self._run(session, params, lambda cursor: cursor.fetchall())
        return compiled.rows(raws)


# SQLite before 3.32 allowed 999 parameters per statement; staying under it keeps every build and PostgreSQL happy.
MAX_PARAMETERS = 999


class InsertRows:
    """INSERT of whole rows into one table as one statement per up to MAX_PARAMETERS values (multi-row VALUES)."""

    def __init__(self, table: Table, generated: tuple[str, ...] = ()):
        """`generated`: columns the database fills (an identity), left out of the statement."""
        self.table = table
        self.keys = tuple(column.key for column in table.columns if column.key not in generated)
        self.chunk = max(1, MAX_PARAMETERS // len(self.keys))
        self._by_count: dict[tuple[str, int], Prepared] = {}

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        for first in range(0, len(rows), self.chunk):
            self._insert(session, rows[first:first + self.chunk])

    def _statement(self, count: int, dialect: Dialect) -> Executable:
        """INSERT of `count` rows (more than one: named parameters <key>_m<i>, which `_insert` fills)."""
        statement = insert(self.table)
        return statement if count == 1 else statement.values([dict.fromkeys(self.keys) for _ in range(count)])

    def _insert(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        dialect = _driver(session)[1]
        prepared = self._by_count.get((dialect.name, len(rows)))
        if prepared is None:
            statement = self._statement(len(rows), dialect)
            prepared = Prepared(statement, self.keys if len(rows) == 1 else None)
            self._by_count[(dialect.name, len(rows))] = prepared
        if len(rows) == 1:
            prepared.execute(session, {key: rows[0].get(key) for key in self.keys})
            return
        prepared.execute(session, {f"{key}_m{i}": row.get(key) for i, row in enumerate(rows) for key in self.keys})


class UpsertRows(InsertRows):
    """INSERT ... ON CONFLICT (key) DO UPDATE of whole rows (SQLite 3.24+ and PostgreSQL share the syntax)."""

    def __init__(self, table: Table, key: tuple[str, ...]):
        super().__init__(table)
        self.key = key

    def _statement(self, count: int, dialect: Dialect) -> Executable:
        module = sqlite if dialect.name == "sqlite" else postgresql
        statement = module.insert(self.table)
        if count > 1:
            statement = statement.values([dict.fromkeys(self.keys) for _ in range(count)])
        return statement.on_conflict_do_update(
            index_elements=list(self.key),
            set_={name: statement.excluded[name] for name in self.keys if name not in self.key})
