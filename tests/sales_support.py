"""Driving the shipped sales process (bpmn/) through the real engine and handlers, one deal at a time."""

from collections.abc import Iterable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from engine.actor import Actor
from engine.engine import Engine
from engine.views import InstanceView
from tests.factories import actor
from web.sales_demo import DealDriver

SHIPPED = Path(__file__).resolve().parent.parent / "bpmn"
MILESTONES = ["New lead", "Qualified", "Proposal", "Negotiation", "Contract", "Invoice", "Awaiting payment"]

DANA = actor("dana", roles=("designer",), groups=())
ALICE = actor("alice", roles=("manager",), groups=("sales",))
BOB = actor("bob", roles=("manager",), groups=("sales",))
HEAD = actor("hector", roles=("manager", "supervisor"), groups=("sales", "head_of_sales"))
LENA = actor("lena", roles=("lawyer",), groups=("legal",))
BACKUP = actor("leo", roles=("lawyer",), groups=("legal", "legal_backup"))
ARTEM = actor("artem", roles=("accountant",), groups=("accounting",))
FINN = actor("finn", roles=("accountant",), groups=("finance_director",))
CRM = actor("crm-bot", roles=("integration",), groups=())


def shipped_files() -> list[tuple[str, bytes]]:
    """Every diagram of bpmn/, as the app deploys them at start-up."""
    return [(p.name, p.read_bytes()) for p in sorted(SHIPPED.glob("*.bpmn"))]


def deal_variables(deal_id: str = "DEAL-42", **overrides: Any) -> dict[str, Any]:
    """What the CRM starts a deal with (amount 360 000 RUB: below the invoice approval threshold)."""
    variables = {
        "deal_id": deal_id, "deal_title": "CRM roll-out for the sales team", "amount": 360000.0,
        "currency": "RUB", "client_name": "Romashka", "client_legal_form": "LLC", "contact_name": "Ivan Petrov",
        "contact_email": f"ivan.petrov+{deal_id.lower()}@romashka.example", "contact_phone": "+7 495 000-00-00",
        "owner": "alice", "line_items": [
            {"name": "CRM licence, 10 seats", "quantity": 10, "unit_price": 30000.0},
            {"name": "Implementation", "quantity": 1, "unit_price": 60000.0}],
        "channel": "web", "source": "web form", "region": "Moscow",
    }
    variables.update(overrides)
    return variables


class Deal(DealDriver):
    """One deal's instance of `sales_funnel`, started straight on the engine (no CRM): the demo's driver."""

    def __init__(self, engine: Engine, session_factory, clock, deal_id: str = "DEAL-42", **overrides: Any):
        self.variables = deal_variables(deal_id, **overrides)
        self.instance: InstanceView = engine.start_instance("sales_funnel", actor=ALICE, business_key=deal_id,
                                                            variables=self.variables)
        super().__init__(engine, session_factory, clock, key=deal_id, instance_id=self.instance.id,
                         owner=self.variables["owner"], contact_email=self.variables["contact_email"])

    def actor(self, who: Actor | str | None = None) -> Actor:
        """These tests have no user accounts: the actors are built here, the owner is alice."""
        return who if isinstance(who, Actor) else ALICE


def attachments(message: EmailMessage) -> list[str]:
    return [part.get_filename() for part in message.iter_attachments()]


def subjects(messages: Iterable[EmailMessage]) -> list[str]:
    return [str(m["Subject"]) for m in messages]
