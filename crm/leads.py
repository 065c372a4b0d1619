"""Lead intake: a call, an email or a web form becomes a deal at "New lead", with a client recognised if it
already exists and a manager assigned, in one transaction (the caller's).

Deduplication, in order: a contact with the same normalised email or phone (the person is known: same client);
else a client with the same INN, or the same name (case-folded, quotes and legal form dropped); else a new client.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from crm.assignment import DEFAULT_TEAM
from crm.assignment import Choice
from crm.assignment import lock_team
from crm.assignment import pick_manager
from crm.contacts import name_key
from crm.contacts import normalise_email
from crm.contacts import normalise_phone
from crm.deals import CENTS
from crm.deals import deal_dict
from crm.deals import get_deal
from crm.deals import line_items_of
from crm.deals import process_variables
from crm.deals import total_of
from crm.models import Client
from crm.models import Contact
from crm.models import Deal
from crm.models import DealStatus
from crm.models import StageTransition
from crm.stages import NEW_LEAD
from engine import audit
from engine.actor import Actor
from engine.database import begin_write
from engine.engine import Engine
from engine.errors import DealflowError
from engine.views import InstanceView

DEFAULT_CURRENCY = "RUB"


@dataclass
class Lead:
    deal: Deal
    returning_client: bool
    choice: Choice


def take_lead(session: Session, now: datetime, *, channel: str, source: str | None, contact: dict[str, Any],
              company: dict[str, Any], message: str | None, title: str | None = None,
              amount: Decimal | float | None = None, currency: str | None = None,
              line_items: list[dict[str, Any]] | None = None, actor: str = "system",
              team: str = DEFAULT_TEAM) -> Lead:
    """Record a lead as a new open deal at "New lead" with an assigned manager; audit the intake and assignment.

    :raises crm.assignment.NoManagerAvailable: nobody can take it; the caller rolls back, nothing is kept.
    """
    # The team row is locked first: concurrent leads queue here, so two leads of one person find one client.
    lock_team(session, team, now)
    choice = pick_manager(session, now, team=team, source=source, region=company.get("region"))
    client, person, returning = _match_or_create(session, now, contact, company)
    items = line_items_of(line_items)
    deal = Deal(
        title=title or f"{company['name']}: {channel} lead", client=client, contact=person,
        amount=Decimal(str(amount)).quantize(CENTS) if amount is not None else total_of(items),
        currency=(currency or DEFAULT_CURRENCY).upper(), owner=choice.username, stage=NEW_LEAD,
        status=DealStatus.OPEN, channel=channel, source=source, region=company.get("region") or client.region,
        message=message, created_at=now, updated_at=now, line_items=items,
    )
    session.add(deal)
    session.flush()
    # A new lead enters the funnel from nowhere: the first transition of every deal.
    session.add(StageTransition(deal_id=deal.id, from_stage=None, to_stage=NEW_LEAD, at=now, actor=actor,
                                reason=f"lead received by {channel}"))
    audit.append(session, [
        audit.AuditRecord(event="lead_received", actor=actor, at=now, details={
            "deal_id": deal.id, "client_id": client.id, "contact_id": person.id, "returning_client": returning,
            "channel": channel, "source": source}),
        audit.AuditRecord(event="deal_assigned", actor=actor, at=now, details={"deal_id": deal.id,
                                                                               **choice.details()}),
    ])
    return Lead(deal, returning, choice)


def _match_or_create(session: Session, now: datetime, contact: dict[str, Any],
                     company: dict[str, Any]) -> tuple[Client, Contact, bool]:
    """(client, contact, whether the client existed): by the person first, then by the company."""
    email, phone = normalise_email(contact.get("email")), normalise_phone(contact.get("phone"))
    same_person = [column == value for column, value in ((Contact.email, email), (Contact.phone, phone)) if value]
    if same_person:
        person = session.scalars(select(Contact).where(or_(*same_person)).order_by(Contact.id)).first()
        if person is not None:
            # Fill in what the earlier lead did not say; never overwrite what is on file.
            person.email, person.phone = person.email or email, person.phone or phone
            return person.client, person, True
    client = _find_client(session, company)
    returning = client is not None
    if client is None:
        client = Client(name=company["name"].strip(), name_key=name_key(company["name"]),
                        legal_form=(company.get("legal_form") or "").strip(), inn=company.get("inn") or None,
                        region=company.get("region") or None, created_at=now)
        session.add(client)
    person = Contact(client=client, name=(contact.get("name") or "").strip(), email=email, phone=phone,
                     created_at=now)
    session.add(person)
    session.flush()
    return client, person, returning


def _find_client(session: Session, company: dict[str, Any]) -> Client | None:
    inn = company.get("inn")
    if inn:
        client = session.scalars(select(Client).where(Client.inn == inn).order_by(Client.id)).first()
        if client is not None:
            return client
    # Same name, but another INN on file, is another company.
    query = select(Client).where(Client.name_key == name_key(company["name"]))
    if inn:
        query = query.where(or_(Client.inn.is_(None), Client.inn == inn))
    return session.scalars(query.order_by(Client.id)).first()


@dataclass
class Intake:
    """A lead taken in and its process started, or the reason it did not start (the deal is kept either way)."""

    deal: dict[str, Any]
    returning_client: bool
    instance: InstanceView | None
    error: DealflowError | None


def take_lead_and_start(session_factory: sessionmaker[Session], engine: Engine, now: datetime, process_key: str,
                        who: Actor, **lead: Any) -> Intake:
    """The whole intake (what POST /leads does): the lead commits first, then the process starts for its deal.

    :raises crm.assignment.NoManagerAvailable: nobody can take it; nothing is kept.
    """
    with session_factory() as session, session.begin():
        begin_write(session)
        taken = take_lead(session, now, actor=who.username, **lead)
        deal_id, returning, variables = taken.deal.id, taken.returning_client, process_variables(taken.deal)
    try:
        view = engine.start_instance(process_key, actor=who, business_key=str(deal_id), variables=variables)
    except DealflowError as exc:
        with session_factory() as session:
            return Intake(deal_dict(get_deal(session, deal_id)), returning, None, exc)
    with session_factory() as session, session.begin():
        begin_write(session)
        deal = get_deal(session, deal_id, lock=True)
        deal.instance_id = view.id
        return Intake(deal_dict(deal), returning, view, None)
