"""Accounts (users, roles, groups, API tokens, idempotency keys) and the sales domain: clients, contacts, deals,
their line items and stage transitions, and the sales teams' lead-assignment settings."""

from datetime import date
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import JSON
from sqlalchemy import Boolean
from sqlalchemy import Date
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import Numeric
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy import false
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from engine.db import Base
from engine.db import UTCDateTime
from engine.db import utcnow


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # On leave or sick: keeps the account and its work, but new leads skip them (crm.assignment).
    absent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships: Mapped[list["GroupMember"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def groups(self) -> list[str]:
        return sorted(m.group_name for m in self.memberships)


class Group(Base):
    __tablename__ = "app_group"

    name: Mapped[str] = mapped_column(String(150), primary_key=True)
    description: Mapped[str] = mapped_column(String(255), default="")


class GroupMember(Base):
    __tablename__ = "group_member"

    group_name: Mapped[str] = mapped_column(ForeignKey("app_group.name"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)

    user: Mapped[User] = relationship(back_populates="memberships")


class ApiToken(Base):
    """A bearer token of the HTTP API; only its SHA-256 is stored, so a copy of the table opens no account."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """One user's state-changing request sent with an Idempotency-Key: still in flight, or its stored response."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("username", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    state: Mapped[str] = mapped_column(String(10))  # "pending" | "done"
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# --- the sales domain --------------------------------------------------------------------------------------------

class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Client(Base):
    """A company that buys (or may buy); `name_key` is the name case-folded, for matching a returning client."""

    __tablename__ = "client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(255), index=True)
    legal_form: Mapped[str] = mapped_column(String(20), default="")  # ООО, АО, ИП, ...
    inn: Mapped[str | None] = mapped_column(String(12), index=True)
    region: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contacts: Mapped[list["Contact"]] = relationship(back_populates="client", order_by="Contact.id")


class Contact(Base):
    """A person at a client; email lowercased, phone as digits with the country code (crm.contacts)."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str | None] = mapped_column(String(255), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    client: Mapped[Client] = relationship(back_populates="contacts")


class Deal(Base):
    """One sale to one client; its business key in the engine is str(id), its stage set by the process."""

    __tablename__ = "deal"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    owner: Mapped[str | None] = mapped_column(String(150), index=True)
    stage: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default=DealStatus.OPEN, index=True)
    lost_reason: Mapped[str | None] = mapped_column(String(100))
    lost_comment: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(30))
    source: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(Text)
    expected_close_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"), index=True)

    client: Mapped[Client] = relationship()
    contact: Mapped[Contact | None] = relationship()
    line_items: Mapped[list["DealLineItem"]] = relationship(
        cascade="all, delete-orphan", order_by="DealLineItem.position", lazy="selectin")


class DealLineItem(Base):
    __tablename__ = "deal_line_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deal.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))


class StageTransition(Base):
    """Append-only: a deal entered `to_stage` (from `from_stage`, None for a new lead). Every funnel metric reads it."""

    __tablename__ = "stage_transition"
    __table_args__ = (
        Index("ix_stage_transition_deal_at", "deal_id", "at"),
        Index("ix_stage_transition_to_stage_at", "to_stage", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deal.id"))
    from_stage: Mapped[str | None] = mapped_column(String(100))
    to_stage: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(150))
    reason: Mapped[str | None] = mapped_column(Text)


class TeamSettings(Base):
    """How leads are spread within a group (a team, or a sub-group a rule names) and its round-robin cursor.

    The row is locked (SELECT ... FOR UPDATE) while a lead is taken, so concurrent leads queue on it.
    """

    __tablename__ = "team_settings"

    group_name: Mapped[str] = mapped_column(String(150), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(30), default="round_robin")
    last_assigned: Mapped[str | None] = mapped_column(String(150))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AssignmentRule(Base):
    """Leads of a team whose `field` (source or region) equals `value` go to `assignee`, or to `group_name`."""

    __tablename__ = "assignment_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    team: Mapped[str] = mapped_column(String(150), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    field: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(255))
    assignee: Mapped[str | None] = mapped_column(String(150))
    group_name: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
