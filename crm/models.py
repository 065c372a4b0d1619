"""Accounts: users, their roles and the groups that BPMN candidate groups name."""

from datetime import datetime

from sqlalchemy import JSON
from sqlalchemy import Boolean
from sqlalchemy import ForeignKey
from sqlalchemy import String
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
