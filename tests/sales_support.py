"""Driving the shipped sales process (bpmn/) through the real engine and handlers, one deal at a time."""

from collections.abc import Iterable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.actor import Actor
from engine.documents import StoredDocument
from engine.documents import list_documents
from engine.engine import Engine
from engine.models import Job
from engine.models import Notification
from engine.views import InstanceView
from engine.views import TaskView
from handlers import mail as mail_handler
from tests.factories import actor

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


class Deal:
    """One deal's instance of `sales_funnel`: its tasks by BPMN id, the sweep, its milestones, documents, mails."""

    def __init__(self, engine: Engine, session_factory, clock, deal_id: str = "DEAL-42", **overrides: Any):
        self.engine, self.sf, self.clock, self.key = engine, session_factory, clock, deal_id
        self.variables = deal_variables(deal_id, **overrides)
        self.instance: InstanceView = engine.start_instance("sales_funnel", actor=ALICE, business_key=deal_id,
                                                            variables=self.variables)
        self.id = self.instance.id
        self.sweep()

    # --- moving the deal --------------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Fire everything due now (service calls and timers) until nothing is left; how many fired."""
        fired = total = self.engine.fire_due_jobs()
        while fired:
            fired = self.engine.fire_due_jobs()
            total += fired
        return total

    def later(self, **delta: Any) -> int:
        """Move the clock on and sweep."""
        self.clock.advance(**delta)
        return self.sweep()

    def open_tasks(self) -> list[TaskView]:
        return self.engine.get_instance(self.id).open_tasks

    def task(self, bpmn_id: str) -> TaskView:
        found = [t for t in self.open_tasks() if t.bpmn_id == bpmn_id]
        assert len(found) == 1, f"expected one open {bpmn_id}, open: {self.open_ids()}"
        return found[0]

    def open_ids(self) -> list[str]:
        return sorted(t.bpmn_id for t in self.open_tasks())

    def complete(self, bpmn_id: str, who: Actor = ALICE, **data: Any) -> InstanceView:
        task = self.task(bpmn_id)
        if task.assignee is None:
            self.engine.claim_task(task.id, actor=who)
        view = self.engine.complete_task(task.id, actor=who, data=data)
        self.sweep()
        return view

    def message(self, name: str, **payload: Any) -> None:
        delivery = self.engine.correlate_message(name, business_key=self.key, actor=CRM, payload=payload)
        assert self.id in delivery.instances
        self.sweep()

    def view(self) -> InstanceView:
        return self.engine.get_instance(self.id)

    @property
    def data(self) -> dict[str, Any]:
        return self.view().variables

    # --- what happened ----------------------------------------------------------------------------------------
    def events(self, kind: str | None = None) -> list:
        return [e for e in self.engine.history(self.id) if kind is None or e.event == kind]

    def milestones(self) -> list[str]:
        return [e.details["name"] for e in self.events("milestone_reached")]

    def documents(self) -> list[StoredDocument]:
        """The deal's documents, oldest first."""
        return sorted(list_documents(self.sf, business_key=self.key), key=lambda d: d.id)

    def notifications(self) -> list[tuple[str, str]]:
        """(recipient, message) of every notification for this deal, oldest first; groups as 'group:<name>'."""
        with self.sf() as session:
            rows = session.scalars(select(Notification).where(Notification.business_key == self.key)
                                   .order_by(Notification.id))
            return [(n.recipient_user or f"group:{n.recipient_group}", n.message) for n in rows]

    def mails(self) -> list[EmailMessage]:
        """Mails to this deal's contact that the console transport kept."""
        address = self.variables["contact_email"]
        return [m for m in mail_handler.OUTBOX if address in str(m["To"])]

    def jobs(self) -> list[Job]:
        with self.sf() as session:
            return list(session.scalars(select(Job).where(Job.instance_id == self.id).order_by(Job.due_at)))

    def timer_elements(self) -> list[str]:
        return sorted(j.element_id for j in self.jobs() if j.kind == "timer")


def attachments(message: EmailMessage) -> list[str]:
    return [part.get_filename() for part in message.iter_attachments()]


def subjects(messages: Iterable[EmailMessage]) -> list[str]:
    return [str(m["Subject"]) for m in messages]
