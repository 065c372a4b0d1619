"""`make demo`: five deals through the shipped sales process on a simulated clock, against a fresh SQLite file.

Each deal comes in as a lead (crm: deduplicated, a manager assigned, the process started), then the demo team
works it along one path of bpmn/sales_funnel.bpmn while the clock jumps ahead and the sweep fires timers and runs
the handlers (PDFs rendered and stored, mails to the console transport, notifications). At the end it prints each
deal's stage timeline and the documents and mails it produced.

    make demo                      # .venv/bin/python -m web.sales_demo
    .venv/bin/python -m web.sales_demo --dir /tmp/demo    # keep the SQLite file
"""

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crm import users as user_service
from crm.deals import stage_timeline
from crm.leads import take_lead_and_start
from crm.models import Deal
from engine.actor import Actor
from engine.documents import StoredDocument
from engine.documents import list_documents
from engine.engine import Engine
from engine.migrate import upgrade
from engine.models import Job
from engine.models import Notification
from engine.queries import MAX_PAGE
from engine.queries import TaskFilter
from engine.views import InstanceView
from engine.views import TaskView
from handlers import mail as mail_handler
from web.demo import BPMN_DIR
from web.demo import create_team

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
WEB_FORM = Actor("web-form", frozenset({"integration"}), frozenset())


class SimClock:
    """The demo's time: it moves only when the demo says so."""

    def __init__(self, start: datetime = START):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class DealDriver:
    """One deal's instance of the sales process, worked by hand on a clock that moves only when told to: its tasks
    by BPMN id, the sweep, and what it produced (milestones, stages, documents, mails, notifications, jobs)."""

    def __init__(self, engine: Engine, session_factory, clock, *, key: str, instance_id: int, owner: str,
                 contact_email: str):
        self.engine, self.sf, self.clock = engine, session_factory, clock
        self.key, self.instance_id, self.owner = key, instance_id, owner
        self.contact_email = contact_email.lower()
        self.sweep()

    def actor(self, who: Actor | str | None = None) -> Actor:
        """`who` as an Actor: itself, a username, or (None) the deal's owner."""
        if isinstance(who, Actor):
            return who
        with self.sf() as session:
            return user_service.actor_for(session, who or self.owner)

    # --- moving the deal --------------------------------------------------------------------------------------
    def sweep(self) -> int:
        return self.engine.sweep()

    def later(self, **delta: float) -> int:
        """Move the clock on and sweep."""
        self.clock.advance(**delta)
        return self.sweep()

    def open_tasks(self) -> list[TaskView]:
        """Every open task of the deal's instance (its view would list only the oldest 50)."""
        return self.engine.list_tasks(TaskFilter(instance_id=self.instance_id, limit=MAX_PAGE))

    def open_ids(self) -> list[str]:
        return sorted(t.bpmn_id for t in self.open_tasks())

    def task(self, bpmn_id: str) -> TaskView:
        found = [t for t in self.open_tasks() if t.bpmn_id == bpmn_id]
        if len(found) != 1:
            raise AssertionError(f"Deal {self.key}: expected one open {bpmn_id}, open: {self.open_ids()}")
        return found[0]

    def complete(self, bpmn_id: str, who: Actor | str | None = None, **data: Any) -> InstanceView:
        """`who` (default: the deal's owner) claims the task if it is offered, completes it with `data`, sweeps."""
        task, actor = self.task(bpmn_id), self.actor(who)
        if task.assignee is None:
            self.engine.claim_task(task.id, actor=actor)
        view = self.engine.complete_task(task.id, actor=actor, data=data)
        self.sweep()
        return view

    def message(self, name: str, **payload: Any) -> None:
        delivery = self.engine.correlate_message(name, business_key=self.key, actor=WEB_FORM, payload=payload)
        if self.instance_id not in delivery.instances:
            raise AssertionError(f"Deal {self.key}: message {name!r} reached {delivery.instances}, not this deal")
        self.sweep()

    def view(self) -> InstanceView:
        return self.engine.get_instance(self.instance_id)

    @property
    def data(self) -> dict[str, Any]:
        return self.view().variables

    # --- what it produced ---------------------------------------------------------------------------------------
    def events(self, kind: str | None = None) -> list:
        return [e for e in self.engine.history(self.instance_id) if kind is None or e.event == kind]

    def milestones(self) -> list[str]:
        return [e.details["name"] for e in self.events("milestone_reached")]

    def documents(self) -> list[StoredDocument]:
        """The deal's documents, oldest first."""
        return sorted(list_documents(self.sf, business_key=self.key), key=lambda d: d.id)

    def mails(self) -> list[EmailMessage]:
        """Mails to the deal's contact that the console transport kept."""
        return [m for m in mail_handler.OUTBOX if self.contact_email in str(m["To"]).lower()]

    def notifications(self) -> list[tuple[str, str]]:
        """(recipient, message) of every notification for this deal, oldest first; groups as 'group:<name>'."""
        with self.sf() as session:
            rows = session.scalars(select(Notification).where(Notification.business_key == self.key)
                                   .order_by(Notification.id))
            return [(n.recipient_user or f"group:{n.recipient_group}", n.message) for n in rows]

    def jobs(self) -> list[Job]:
        with self.sf() as session:
            return list(session.scalars(select(Job).where(Job.instance_id == self.instance_id).order_by(Job.due_at)))

    def timer_elements(self) -> list[str]:
        return sorted(j.element_id for j in self.jobs() if j.kind == "timer")


class DealRun(DealDriver):
    """A deal that came in as a lead through the CRM (deduplicated, assigned, its process started)."""

    def __init__(self, app, clock: SimClock, lead: dict[str, Any]):
        from app import services

        svc = services(app)
        intake = take_lead_and_start(svc.session_factory, svc.engine, clock(), app.config["DEALFLOW_SALES_PROCESS"],
                                     WEB_FORM, **lead)
        if intake.error is not None:
            raise intake.error
        self.deal_id, self.amount = intake.deal["id"], float(intake.deal["amount"])
        super().__init__(svc.engine, svc.session_factory, clock, key=str(self.deal_id),
                         instance_id=intake.instance.id, owner=intake.deal["owner"],
                         contact_email=lead["contact"]["email"])

    def timeline(self) -> list[dict[str, Any]]:
        with self.sf() as session:
            return stage_timeline(session, self.deal_id)

    def status(self) -> tuple[str, str | None]:
        with self.sf() as session:
            deal = session.get(Deal, self.deal_id)
            return deal.status, deal.lost_reason


# --- the paths ------------------------------------------------------------------------------------------------------

def qualify(deal: DealRun) -> None:
    deal.later(minutes=10)
    deal.complete("First_contact", first_contact_notes="Called the buyer: they want a demo")
    deal.later(hours=2)
    deal.complete("Qualify", need="A CRM for 10 sales managers", budget=400000, decision_maker="CEO",
                  timeline="2026-04-30", fit=True)


def to_negotiation(deal: DealRun, discount: int = 5) -> None:
    qualify(deal)
    meeting = deal.clock() + timedelta(days=1)
    deal.complete("Schedule_call", meeting_at=meeting.isoformat())
    deal.clock.now = meeting + timedelta(hours=1)  # the reminders a day and an hour before went out meanwhile
    deal.sweep()
    deal.complete("Log_call", call_summary="Needs pipeline reports and telephony")
    deal.later(days=1)
    deal.message("client replied", interested=True)
    deal.later(hours=3)
    deal.complete("Edit_proposal", discount_percent=discount, proposal_notes="Implementation in 30 days")
    deal.later(hours=1)
    deal.complete("Review_proposal", proposal_ok=True)
    deal.later(days=2)
    deal.message("client replied", accepted=True)
    deal.later(days=3)
    deal.complete("Negotiate_terms", negotiation_notes="Agreed: payment in 5 days, start in two weeks")
    deal.later(days=1)


def pay_and_win(deal: DealRun, paid: float) -> None:
    deal.message("payment received", paid=paid)
    deal.later(days=1)
    deal.complete("Hand_off", handoff_notes="Kick-off on Monday")


def sign_and_invoice(deal: DealRun, payment_days: int = 5) -> None:
    deal.later(days=2)
    deal.message("contract signed", signed_by="the client's CEO")
    deal.later(hours=2)
    deal.complete("Prepare_invoice", "artem", payment_days=payment_days)


def won_first_time(deal: DealRun) -> None:
    to_negotiation(deal)
    deal.complete("Review_contract", "lena", legal_decision="approve", legal_comment="Standard terms")
    sign_and_invoice(deal)
    deal.later(days=4)
    pay_and_win(deal, deal.amount)


def lawyer_asks_for_changes_twice(deal: DealRun) -> None:
    to_negotiation(deal)
    deal.complete("Review_contract", "lena", legal_decision="changes", legal_comment="Cap the penalty at 5%")
    deal.later(days=1)
    deal.complete("Revise_contract", revision_notes="Penalty capped at 5%, agreed with the client")
    deal.later(hours=4)
    deal.complete("Review_contract", "lena", legal_decision="changes", legal_comment="Add an NDA clause")
    deal.later(days=1)
    deal.complete("Revise_contract", revision_notes="NDA clause added")
    deal.later(hours=4)
    deal.complete("Review_contract", "lena", legal_decision="approve")
    sign_and_invoice(deal)
    deal.later(days=3)
    pay_and_win(deal, deal.amount)


def invoice_rejected_once(deal: DealRun) -> None:
    to_negotiation(deal)
    deal.complete("Review_contract", "lena", legal_decision="approve")
    sign_and_invoice(deal, payment_days=30)
    deal.later(hours=5)
    deal.complete("Approve_invoice", "finn", invoice_approved=False,
                  invoice_approval_comment="30 days is too long for this client: 10 at most")
    deal.later(hours=1)
    deal.complete("Prepare_invoice", "artem", payment_days=10)
    deal.later(hours=2)
    deal.complete("Approve_invoice", "finn", invoice_approved=True)
    deal.later(days=8)
    pay_and_win(deal, deal.amount)


def lost_at_qualification(deal: DealRun) -> None:
    deal.later(minutes=20)  # past the 15-minute first-contact reminder
    deal.complete("First_contact", first_contact_notes="Reached the buyer")
    deal.later(hours=1)
    deal.complete("Qualify", need="Just looking", budget=0, decision_maker="unknown", timeline="none", fit=False)
    deal.complete("Record_loss_reason", lost_reason="no_budget", lost_comment="No budget this year")


def payment_overdue_and_escalated(deal: DealRun) -> None:
    to_negotiation(deal)
    deal.complete("Review_contract", "lena", legal_decision="approve")
    sign_and_invoice(deal)
    due = datetime.fromisoformat(deal.data["payment_due_at"])
    for days in (-1, 0, 3):  # reminders the day before, on the day, 3 days late (mail + call task)
        deal.clock.now = max(deal.clock.now, due + timedelta(days=days))
        deal.sweep()
    deal.message("payment received", paid=100000.0)  # a partial payment: the rest is awaited
    deal.clock.now = due + timedelta(days=7)  # a week late: the head of sales hears of it
    deal.sweep()
    deal.complete("Call_payment", payment_call_notes="They pay the rest on Monday")
    deal.later(days=2)
    pay_and_win(deal, deal.amount - 100000.0)


@dataclass
class DemoPath:
    title: str
    run: Callable[[DealRun], None]
    company: str
    amount: float


PATHS = [
    DemoPath("Won first time", won_first_time, "Romashka", 360000.0),
    DemoPath("Lawyer asks for changes twice", lawyer_asks_for_changes_twice, "Vector Logistics", 480000.0),
    DemoPath("Invoice above the threshold, rejected once", invoice_rejected_once, "Severstal Trade", 720000.0),
    DemoPath("Lost at qualification", lost_at_qualification, "Small Bakery", 90000.0),
    DemoPath("Payment overdue and escalated", payment_overdue_and_escalated, "Ural Machines", 360000.0),
]


def lead_for(path: DemoPath, n: int) -> dict[str, Any]:
    slug = path.company.lower().replace(" ", "-")
    seats = int(path.amount * 5 / 6 / 30000)
    return {
        "channel": "web_form", "source": "site", "message": f"Please call back about a CRM ({path.title.lower()})",
        "title": f"CRM roll-out for {path.company}",
        "contact": {"name": f"Buyer {n}", "email": f"buyer@{slug}.example", "phone": f"+7 495 000-00-0{n}"},
        "company": {"name": path.company, "legal_form": "ООО", "region": "Moscow"},
        "line_items": [{"name": f"CRM licence, {seats} seats", "quantity": seats, "unit_price": 30000},
                       {"name": "Implementation", "quantity": 1, "unit_price": path.amount - seats * 30000}],
    }


def make_app(directory: Path, clock: SimClock):
    from app import create_app

    url = f"sqlite:///{directory / 'demo.sqlite'}"
    upgrade(url)
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "DEALFLOW_CLOCK": clock, "DEALFLOW_SCHEDULER": "off",
                       "DEALFLOW_SMTP_HOST": None, "DEALFLOW_MAIL_FROM": "Dealflow Sales <sales@dealflow.example>"})


def run_demo(directory: Path, out: Callable[[str], None] = print) -> list[DealRun]:
    """Set up a fresh database in `directory`, run every path, print what happened; the deals, for tests."""
    from app import services

    clock = SimClock()
    app = make_app(directory, clock)
    svc = services(app)
    try:
        files = sorted(BPMN_DIR.glob("*.bpmn"))
        svc.catalogue.deploy([(f.name, f.read_bytes()) for f in files], "demo")
        with svc.session_factory() as session, session.begin():
            create_team(session)
        mail_handler.OUTBOX.clear()
        deals = []
        for n, path in enumerate(PATHS, start=1):
            clock.now = START + timedelta(days=n - 1)  # one new lead a day
            deal = DealRun(app, clock, lead_for(path, n))
            path.run(deal)
            deals.append(deal)
            report(deal, path, out)
        return deals
    finally:
        svc.script_pool.close()


def report(deal: DealRun, path: DemoPath, out: Callable[[str], None]) -> None:
    status, reason = deal.status()
    out(f"\n=== Deal {deal.key}: {path.title} — {path.company}, owner {deal.owner}: "
        f"{status}{f' ({reason})' if reason else ''}")
    out("  stages:")
    for step in deal.timeline():
        out(f"    {step['at']:%Y-%m-%d %H:%M}  {step['from_stage'] or '-':>17} -> {step['to_stage']:<17} "
            f"by {_who(step['actor'])}")
    for document in deal.documents():
        number = f" No. {document.number}" if document.number else ""
        out(f"  document: {document.kind} v{document.version}{number}  {document.filename} ({document.size} bytes)")
    for mail in deal.mails():
        files = ", ".join(part.get_filename() for part in mail.iter_attachments())
        out(f"  mail: {mail['Subject']}" + (f"  [{files}]" if files else ""))
    notes = deal.notifications()
    if notes:
        out(f"  notifications: {len(notes)}, the last: {notes[-1][1]}")


def _who(actor: str) -> str:
    """A sweeper's name (host:pid) is the system at work: a timer, or a service call that finished."""
    return f"system ({actor})" if ":" in actor else actor


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the shipped sales process through five demo deals.")
    parser.add_argument("--dir", type=Path, default=None, help="where to keep the SQLite file (default: temporary)")
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        (args.dir / "demo.sqlite").unlink(missing_ok=True)
        run_demo(args.dir)
        print(f"\nThe demo database is {args.dir / 'demo.sqlite'}.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        run_demo(Path(tmp))


if __name__ == "__main__":
    main()
