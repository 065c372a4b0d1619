"""What handlers may change in Dealflow (engine.handlers.HandlerServices), each idempotent under a key."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.documents import DocumentServices
from engine.models import Notification


class EngineServices(DocumentServices):
    """Documents (engine/documents.py) and notifications, on the engine's database."""

    def notify(self, *, key: str, message: str, user: str | None = None, group: str | None = None,
               instance_id: int | None = None, business_key: str | None = None, kind: str = "handler") -> int:
        """Post a notification once per `key` (a repeated call returns the first one's id)."""
        existing = self._notification_by_key(key)
        if existing is not None:
            return existing
        try:
            with self._sf() as session, session.begin():
                row = Notification(created_at=self._clock(), recipient_user=user, recipient_group=group,
                                   kind=kind, message=message, instance_id=instance_id, business_key=business_key,
                                   dedup_key=key)
                session.add(row)
                session.flush()
                return row.id
        except IntegrityError:
            found = self._notification_by_key(key)  # a concurrent call with the same key won
            if found is None:
                raise
            return found

    def _notification_by_key(self, key: str) -> int | None:
        with self._sf() as session:
            return session.scalar(select(Notification.id).where(Notification.dedup_key == key))
