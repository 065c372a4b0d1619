"""Stored documents: versions per deal and kind, gap-free numbers per kind and year, one copy per idempotency key.

A handler may run twice for one task (at-least-once delivery), so a document is stored under the call's
idempotency key and a second call returns the first call's document. A numbered document takes its number from
the `document_counter` row of its kind and year *in the transaction that stores it*, and `render(number)` runs in
that transaction too: if rendering or storing fails, the number is rolled back with it, so numbers have no gaps.
"""

import contextlib
import hashlib
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from engine.database import begin_write
from engine.errors import Conflict
from engine.errors import NotFound
from engine.handlers import HandlerError
from engine.handlers import StoredDocument
from engine.models import Document
from engine.models import DocumentCounter

ATTEMPTS = 5
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_META = (Document.id, Document.kind, Document.version, Document.number, Document.filename, Document.content_type,
         Document.sha256, Document.size)


def stored(row) -> StoredDocument:
    """The handler-facing view of a `document` row (an ORM object or a row with the `_META` columns)."""
    return StoredDocument(id=row.id, kind=row.kind, version=row.version, number=row.number, filename=row.filename,
                          content_type=row.content_type, sha256=row.sha256, size=row.size)


_NUMBERED = threading.Lock()

def format_number(year: int, sequence: int) -> str:
    """A document number as printed: `2026-000123`."""
    return f"{year}-{sequence:06d}"


def store_document(session_factory: sessionmaker[Session], now: datetime, *, key: str, business_key: str | None,
                   instance_id: int | None, kind: str, filename: str, render: Callable[[str | None], bytes],
                   numbered: bool = False, content_type: str = "application/pdf",
                   template: str | None = None) -> StoredDocument:
    """Store the next version of the deal's document of `kind`, or return the one already stored under `key`.

    `{number}` and `{version}` in `filename` are replaced by the document's number and version (the caller
    cannot know them before the document is stored). An unnumbered document is rendered before the
    transaction, a numbered one inside it (its number must be rolled back if it cannot be stored).

    :raises Conflict: when concurrent writers kept colliding (after `ATTEMPTS` tries).
    """
    found = _by_key(session_factory, key)
    if found is not None:
        return found
    content = None if numbered else render(None)
    # Numbered documents render inside their transaction: in one process they queue here, not on the database's
    # lock (SQLite would give up on its busy timeout after a few renders in a row).
    with _NUMBERED if numbered else contextlib.nullcontext():
        for _ in range(ATTEMPTS):
            try:
                return _insert(session_factory, now, key=key, business_key=business_key, instance_id=instance_id,
                               kind=kind, filename=filename, render=render, content=content,
                               content_type=content_type, template=template)
            except IntegrityError:
                # Another writer stored this key first (return its document) or took the same version: try again.
                found = _by_key(session_factory, key)
                if found is not None:
                    return found
    raise Conflict(f"Could not store the {kind!r} document of {business_key!r}: concurrent writers kept taking the "
                   f"same version; try again.", details={"key": key})


def _insert(session_factory, now, *, key, business_key, instance_id, kind, filename, render, content, content_type,
            template) -> StoredDocument:
    """One attempt, one transaction: lock, number, version, render (if numbered), insert, commit."""
    # Leaving the block without the commit (an early return, an exception) closes the session: a rollback.
    with session_factory() as session:
        begin_write(session)  # SQLite: BEGIN IMMEDIATE, so the counter and max(version) are read under the lock
        _lock_versions(session, business_key, kind)
        number = _next_number(session, kind, now.year) if content is None else None
        found = session.scalar(select(Document).where(Document.idempotency_key == key))
        if found is not None:  # a writer with the same key committed while we waited for the lock
            return stored(found)
        same_deal = Document.business_key.is_(None) if business_key is None else Document.business_key == business_key
        version = (session.scalar(select(func.max(Document.version)).where(same_deal, Document.kind == kind)) or 0) + 1
        data = render(number) if content is None else content
        row = Document(business_key=business_key, instance_id=instance_id, kind=kind, version=version, number=number,
                       filename=filename.replace("{number}", number or "").replace("{version}", str(version)),
                       content_type=content_type, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                       content=data, template=template, idempotency_key=key, created_at=now)
        session.add(row)
        session.commit()
        return stored(row)


def _lock_versions(session: Session, business_key: str | None, kind: str) -> None:
    """PostgreSQL: serialize writers of one deal's kind, so two never read the same max(version).

    SQLite needs nothing: BEGIN IMMEDIATE already made this the only writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"document:{kind}:{business_key}"))))


def _next_number(session: Session, kind: str, year: int) -> str:
    """Take the next number of `kind` in `year`: the counter row is created race-free, then locked and incremented.

    The row lock is held until the transaction ends, so concurrent writers queue here and a rollback returns the
    number: no gaps, no duplicates.
    """
    insert = _INSERT[session.get_bind().dialect.name]
    session.execute(insert(DocumentCounter).values(kind=kind, year=year, last_number=0)
                    .on_conflict_do_nothing(index_elements=["kind", "year"]))
    counter = session.scalars(select(DocumentCounter).where(DocumentCounter.kind == kind, DocumentCounter.year == year)
                              .with_for_update()).one()
    counter.last_number += 1
    session.flush()
    return format_number(year, counter.last_number)


def _by_key(session_factory: sessionmaker[Session], key: str) -> StoredDocument | None:
    with session_factory() as session:
        row = session.execute(select(*_META).where(Document.idempotency_key == key)).one_or_none()
    return None if row is None else stored(row)


def get_document(session_factory: sessionmaker[Session], document_id: int) -> tuple[StoredDocument, bytes]:
    """A stored document and its bytes.

    :raises NotFound: if there is no document `document_id`.
    """
    with session_factory() as session:
        row = session.get(Document, document_id)
        if row is None:
            raise NotFound(f"There is no document {document_id}.")
        return stored(row), row.content


def document_owner(session_factory: sessionmaker[Session], document_id: int) -> tuple[int | None, str | None]:
    """The instance id and business key a document belongs to, for access checks before its bytes are read.

    :raises NotFound: if there is no document `document_id`.
    """
    with session_factory() as session:
        row = session.execute(select(Document.instance_id, Document.business_key)
                              .where(Document.id == document_id)).one_or_none()
    if row is None:
        raise NotFound(f"There is no document {document_id}.")
    return row.instance_id, row.business_key


def list_documents(session_factory: sessionmaker[Session], *, business_key: str | None = None,
                   instance_id: int | None = None) -> list[StoredDocument]:
    """Documents of a deal and/or an instance (all when neither is given), newest first, without their bytes."""
    query = select(*_META).order_by(Document.created_at.desc(), Document.id.desc())
    if business_key is not None:
        query = query.where(Document.business_key == business_key)
    if instance_id is not None:
        query = query.where(Document.instance_id == instance_id)
    with session_factory() as session:
        return [stored(row) for row in session.execute(query)]


class DocumentServices:
    """The document half of `HandlerServices`, on the engine's database and clock."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], datetime]):
        self._sf = session_factory
        self._clock = clock

    def store_document(self, *, key: str, business_key: str | None, instance_id: int | None, kind: str,
                       filename: str, render: Callable[[str | None], bytes], numbered: bool = False,
                       content_type: str = "application/pdf", template: str | None = None) -> StoredDocument:
        """See `HandlerServices.store_document`; `{number}` and `{version}` in `filename` are filled in."""
        return store_document(self._sf, self._clock(), key=key, business_key=business_key, instance_id=instance_id,
                              kind=kind, filename=filename, render=render, numbered=numbered,
                              content_type=content_type, template=template)

    def get_document(self, document_id: int) -> tuple[StoredDocument, bytes]:
        """See `HandlerServices.get_document`: a missing document is a non-retryable HandlerError."""
        try:
            return get_document(self._sf, document_id)
        except NotFound as exc:
            raise HandlerError(f"There is no document {document_id}; check the id the process passed.",
                               retryable=False) from exc
