"""Deals: read, list, change (title, amount, currency, expected close, owner, line items), and the variables a
deal's process starts with. Every change is audited in the same transaction.
"""

from datetime import datetime
from decimal import ROUND_HALF_UP
from decimal import Decimal
from typing import Any

from sqlalchemy import Select
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.models import Client
from crm.models import Deal
from crm.models import DealLineItem
from crm.models import DealStatus
from crm.models import StageTransition
from crm.models import User
from engine import audit
from engine.errors import Conflict
from engine.errors import NotFound
from engine.errors import Unprocessable

CENTS = Decimal("0.01")
EDITABLE = ("title", "amount", "currency", "expected_close_date", "owner", "line_items")


def get_deal(session: Session, deal_id: int, *, lock: bool = False) -> Deal:
    deal = session.get(Deal, deal_id, with_for_update=lock or None)
    if deal is None:
        raise NotFound(f"There is no deal {deal_id}.")
    return deal


def deal_query(*, stage: str | None = None, status: str | None = None, owner: str | None = None,
               client: int | None = None) -> Select:
    """SELECT Deal, newest first, filtered by stage, status, owner and client id."""
    query = select(Deal).order_by(Deal.id.desc())
    for column, value in ((Deal.stage, stage), (Deal.status, status), (Deal.owner, owner), (Deal.client_id, client)):
        if value is not None:
            query = query.where(column == value)
    return query


def line_items_of(items: list[dict[str, Any]] | None) -> list[DealLineItem]:
    """Line item rows from plain dicts {name, quantity, unit_price}, in the given order."""
    return [DealLineItem(position=i, name=item["name"], quantity=Decimal(str(item["quantity"])),
                         unit_price=Decimal(str(item["unit_price"]))) for i, item in enumerate(items or [])]


def total_of(items: list[DealLineItem]) -> Decimal:
    return sum((item.quantity * item.unit_price for item in items), Decimal("0")).quantize(CENTS, ROUND_HALF_UP)


def update_deal(session: Session, now: datetime, deal_id: int, changes: dict[str, Any], *, actor: str) -> str | None:
    """Apply a PATCH (validated fields of EDITABLE) and audit it; returns the previous owner when it changed.

    New line items without an amount recompute the amount from them.
    """
    deal = get_deal(session, deal_id, lock=True)
    if deal.status != DealStatus.OPEN:
        raise Conflict(f"Deal {deal_id} is {deal.status}; a closed deal is not changed any more.")
    changed: dict[str, dict[str, Any]] = {}
    if "line_items" in changes:
        old = [_item_dict(item) for item in deal.line_items]
        deal.line_items = line_items_of(changes["line_items"])
        changed["line_items"] = {"old": old, "new": [_item_dict(item) for item in deal.line_items]}
        if "amount" not in changes:
            changes = {**changes, "amount": total_of(deal.line_items)}
    if "owner" in changes:
        _check_owner(session, changes["owner"])
    for name in ("title", "amount", "currency", "expected_close_date", "owner"):
        if name in changes:
            value = _clean(name, changes[name])
            if getattr(deal, name) != value:
                changed[name] = {"old": getattr(deal, name), "new": value}
                setattr(deal, name, value)
    if not changed:
        return None
    deal.updated_at = now
    records = [audit.AuditRecord(event="deal_updated", actor=actor, at=now, instance_id=deal.instance_id,
                                 details={"deal_id": deal.id, "changed": changed})]
    previous = changed.get("owner", {}).get("old")
    if "owner" in changed:
        records.append(audit.AuditRecord(event="deal_assigned", actor=actor, at=now, instance_id=deal.instance_id,
                                         details={"deal_id": deal.id, "owner": deal.owner, "previous": previous,
                                                  "strategy": "manual"}))
    audit.append(session, records)
    return previous if "owner" in changed else None


def _clean(name: str, value: Any) -> Any:
    if name == "amount":
        return Decimal(str(value)).quantize(CENTS, ROUND_HALF_UP)
    if name == "currency":
        return value.upper()
    return value


def _check_owner(session: Session, username: str) -> None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        raise Unprocessable(f"User {username!r} does not exist or is deactivated; give the deal to an active user.")


def _item_dict(item: DealLineItem) -> dict[str, Any]:
    return {"name": item.name, "quantity": item.quantity, "unit_price": item.unit_price}


def deal_dict(deal: Deal) -> dict[str, Any]:
    """The deal as the API shows it (client, contact and line items included)."""
    contact = deal.contact
    return {
        "id": deal.id, "title": deal.title, "status": deal.status, "stage": deal.stage, "owner": deal.owner,
        "amount": deal.amount, "currency": deal.currency, "channel": deal.channel, "source": deal.source,
        "region": deal.region, "message": deal.message, "expected_close_date": deal.expected_close_date,
        "lost_reason": deal.lost_reason, "lost_comment": deal.lost_comment, "created_at": deal.created_at,
        "updated_at": deal.updated_at, "closed_at": deal.closed_at, "instance_id": deal.instance_id,
        "client": client_summary(deal.client),
        "contact": None if contact is None else {"id": contact.id, "name": contact.name, "email": contact.email,
                                                 "phone": contact.phone},
        "line_items": [_item_dict(item) for item in deal.line_items],
    }


def client_summary(client: Client) -> dict[str, Any]:
    return {"id": client.id, "name": client.name, "legal_form": client.legal_form, "inn": client.inn,
            "region": client.region}


def stage_timeline(session: Session, deal_id: int) -> list[dict[str, Any]]:
    """The deal's stage transitions, oldest first."""
    rows = session.scalars(select(StageTransition).where(StageTransition.deal_id == deal_id)
                           .order_by(StageTransition.at, StageTransition.id))
    return [{"from_stage": r.from_stage, "to_stage": r.to_stage, "at": r.at, "actor": r.actor, "reason": r.reason}
            for r in rows]


def process_variables(deal: Deal) -> dict[str, Any]:
    """The variables a deal's process starts with (plain JSON: floats for money, the BPMN compares numbers)."""
    client, contact = deal.client, deal.contact
    return {
        "deal_id": deal.id, "deal_title": deal.title, "amount": float(deal.amount), "currency": deal.currency,
        "client_name": client.name, "client_legal_form": client.legal_form,
        "contact_name": contact.name if contact else None, "contact_email": contact.email if contact else None,
        "contact_phone": contact.phone if contact else None, "owner": deal.owner,
        "line_items": [{"name": i.name, "quantity": float(i.quantity), "unit_price": float(i.unit_price)}
                       for i in deal.line_items],
        "channel": deal.channel, "source": deal.source, "region": deal.region,
    }
