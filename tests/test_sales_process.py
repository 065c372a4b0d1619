"""The shipped B2B sales process (bpmn/sales_funnel.bpmn, contract_review.bpmn, invoicing.bpmn), end to end.

Real engine, real handlers (`handlers.build_registry`): PDFs rendered by WeasyPrint and stored per deal, mail to the
console transport (handlers.mail.OUTBOX), notifications in the database. Time moves with the `clock` fixture and
`engine.fire_due_jobs()` runs the service calls and timers. tests/sales_support.py drives one deal.
"""

from datetime import UTC
from datetime import datetime

import pytest
from lxml import etree

from engine.engine import Engine
from engine.services import EngineServices
from handlers import build_registry
from handlers import mail as mail_handler
from processes.catalogue import Catalogue
from tests.sales_support import ARTEM
from tests.sales_support import BACKUP
from tests.sales_support import BOB
from tests.sales_support import DANA
from tests.sales_support import FINN
from tests.sales_support import HEAD
from tests.sales_support import LENA
from tests.sales_support import MILESTONES
from tests.sales_support import SHIPPED
from tests.sales_support import Deal
from tests.sales_support import attachments
from tests.sales_support import shipped_files

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC", "di": "http://www.omg.org/spec/DD/20100524/DI"}
FLOW_KINDS = ("sequenceFlow", "subProcess", "callActivity", "textAnnotation", "association")


@pytest.fixture
def registry(clock):
    return build_registry({"DEALFLOW_CLOCK": clock, "DEALFLOW_MAIL_FROM": "sales@dealflow.example"})


@pytest.fixture
def sales(session_factory, clock, script_pool, registry):
    """The engine with the real handlers, and every shipped diagram deployed."""
    mail_handler.OUTBOX.clear()
    Catalogue(session_factory).deploy(shipped_files(), DANA.username, known_topics=registry.knows)
    return Engine(session_factory, clock=clock, script_pool=script_pool, handlers=registry,
                  services=EngineServices(session_factory, clock))


def test_every_shipped_diagram_deploys_together_and_the_funnel_runs_to_its_first_wait_state(
        session_factory, registry, sales, clock):
    assert Catalogue(session_factory).validate(shipped_files(), known_topics=registry.knows) == []
    deal = Deal(sales, session_factory, clock)
    assert deal.view().status in ("running", "waiting")
    assert deal.open_ids() == ["First_contact"]
    assert deal.task("First_contact").assignee == "alice"
    assert deal.milestones() == ["New lead"]
    assert deal.notifications() == [("alice", "New lead CRM roll-out for the sales team (Romashka) is yours: "
                                              "contact Ivan Petrov within 15 minutes.")]
    data = deal.data
    assert data["discount_threshold"] == 10 and data["invoice_approval_threshold"] == 500000
    assert data["items"][0] == {"name": "CRM licence, 10 seats", "qty": 10, "unit_price": 30000.0}
    assert deal.timer_elements() == ["First_contact_15m", "First_contact_60m"]


def test_every_element_of_the_shipped_diagrams_has_a_shape_or_an_edge_and_no_two_shapes_overlap():
    """What Camunda Modeler and bpmn-js need to open them cleanly: diagram interchange for every element."""
    for name in ("sales_funnel.bpmn", "contract_review.bpmn", "invoicing.bpmn"):
        root = etree.fromstring((SHIPPED / name).read_bytes())
        planes = root.findall(".//bpmndi:BPMNPlane", NS)
        drawn = {}
        for plane in planes:
            for shape in plane.findall("bpmndi:BPMNShape", NS):
                bounds = shape.find("dc:Bounds", NS)
                drawn[shape.get("bpmnElement")] = tuple(float(bounds.get(k)) for k in ("x", "y", "width", "height"))
            for edge in plane.findall("bpmndi:BPMNEdge", NS):
                assert len(edge.findall("di:waypoint", NS)) >= 2, edge.get("id")
                drawn[edge.get("bpmnElement")] = None
        for element in root.iter():
            kind = etree.QName(element).localname if isinstance(element.tag, str) else ""
            if element.get("id") and (kind in FLOW_KINDS or kind.endswith(("Task", "Event", "Gateway"))):
                assert element.get("id") in drawn, f"{name}: {element.get('id')} has no diagram element"
        for plane in planes:
            boxes = []
            for shape in plane.findall("bpmndi:BPMNShape", NS):
                element = root.find(f".//*[@id='{shape.get('bpmnElement')}']")
                if etree.QName(element).localname not in ("participant", "lane", "boundaryEvent"):
                    boxes.append((shape.get("bpmnElement"), drawn[shape.get("bpmnElement")]))
            for i, (a_id, (ax, ay, aw, ah)) in enumerate(boxes):
                for b_id, (bx, by, bw, bh) in boxes[i + 1:]:
                    assert not (ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah), \
                        f"{name}: {a_id} overlaps {b_id}"


# --- the demo paths -----------------------------------------------------------------------------------------------

def qualify(deal: Deal) -> None:
    deal.complete("First_contact", first_contact_notes="Called Ivan, he wants a demo")
    deal.complete("Qualify", need="A CRM for 10 sales managers", budget=400000, decision_maker="Ivan Petrov, CEO",
                  timeline="2026-04-30", fit=True)


def to_proposal(deal: Deal) -> None:
    qualify(deal)
    deal.complete("Schedule_call", meeting_at="2026-03-04T10:00:00+00:00")
    deal.complete("Log_call", call_summary="Needs pipeline reports and telephony")
    deal.message("client replied", interested=True)


def to_negotiation(deal: Deal, discount: int = 5) -> None:
    to_proposal(deal)
    deal.complete("Edit_proposal", discount_percent=discount, proposal_notes="Implementation in 30 days")
    deal.complete("Review_proposal", proposal_ok=True)
    deal.message("client replied", accepted=True)


def pay_and_win(deal: Deal, paid: float) -> None:
    deal.message("payment received", paid=paid)
    assert "End_won" in deal.view().completed_elements
    assert deal.open_ids() == ["Hand_off"]
    deal.complete("Hand_off", handoff_notes="Kick-off with Ivan on Monday")
    assert deal.view().status == "completed"


def test_won_first_time(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    to_negotiation(deal)
    assert deal.milestones() == ["New lead", "Qualified", "Proposal", "Negotiation"]
    deal.complete("Negotiate_terms", negotiation_notes="Payment in 5 days, start on March 16")
    assert deal.milestones()[-1] == "Contract"
    review = deal.task("Review_contract")
    assert review.assignee is None and review.candidate_groups == ["legal"]
    deal.complete("Review_contract", LENA, legal_decision="approve", legal_comment="Standard terms")
    assert deal.open_ids() == [] and "Wait_signature" in deal.view().active_elements
    deal.message("contract signed", signed_by="Ivan Petrov")
    assert deal.task("Prepare_invoice").candidate_groups == ["accounting"]
    deal.complete("Prepare_invoice", ARTEM, payment_days=5)  # 360 000: below the approval threshold
    pay_and_win(deal, 360000.0)

    assert deal.milestones() == MILESTONES
    data = deal.data
    assert data["close_date"] == "2026-03-02" and data["revenue"] == 360000.0 and data["paid_total"] == 360000.0
    docs = deal.documents()
    assert [(d.kind, d.version, d.number) for d in docs] == [
        ("proposal", 1, None), ("contract", 1, None), ("invoice", 1, "2026-000001")]
    assert all(d.content_type == "application/pdf" and d.size > 1000 for d in docs)
    mails = deal.mails()
    assert [(str(m["Subject"]), attachments(m)) for m in mails] == [
        ("Commercial proposal for Romashka", ["proposal-DEAL-42-v1.pdf"]),
        ("Contract No. DEAL-42 for signature — Romashka", ["contract-DEAL-42-v1.pdf"]),
        ("Invoice No. 2026-000001 from Dealflow", ["invoice-2026-000001.pdf"]),
        ("Thank you for choosing Dealflow: CRM roll-out for the sales team", []),
    ]
    assert "Payment due by: 2026-03-07" in mails[2].get_body(("plain",)).get_content()
    assert deal.notifications() == [("alice", "New lead CRM roll-out for the sales team (Romashka) is yours: "
                                              "contact Ivan Petrov within 15 minutes.")]
    assert deal.jobs() == []  # no reminder or stage timer outlives the deal


def test_the_lawyer_requests_changes_twice_then_approves(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    to_negotiation(deal)
    deal.complete("Negotiate_terms", negotiation_notes="Agreed")

    # Round 1 lies unreviewed for 2 days: head of legal escalated and the lawyer reminded, the task stays.
    deal.later(days=2)
    assert deal.notifications()[-2:] == [
        ("group:head_of_legal", "Deal CRM roll-out for the sales team: contract round 1 not reviewed within 2 days."),
        ("group:legal", "Reminder: review the contract for CRM roll-out for the sales team (round 1)."),
    ]
    deal.complete("Review_contract", LENA, legal_decision="changes", legal_comment="Cap the penalty at 5%")
    assert deal.task("Revise_contract").assignee == "alice"
    deal.complete("Revise_contract", revision_notes="Penalty capped at 5%, agreed with Ivan")

    # Round 2 lies for 3 days: reassigned to the backup lawyer, who asks for changes again.
    deal.later(days=3)
    assert deal.open_ids() == ["Review_contract_backup"]
    assert deal.task("Review_contract_backup").candidate_groups == ["legal_backup"]
    assert sorted(deal.notifications()[-3:]) == [
        ("group:head_of_legal", "Deal CRM roll-out for the sales team: contract round 2 not reviewed within 2 days."),
        ("group:legal", "Reminder: review the contract for CRM roll-out for the sales team (round 2)."),
        ("group:legal_backup", "Contract for CRM roll-out for the sales team is reassigned to you: not reviewed "
                               "within 3 days."),
    ]
    deal.complete("Review_contract_backup", BACKUP, legal_decision="changes", legal_comment="Add an NDA clause")
    deal.complete("Revise_contract", revision_notes="NDA clause added")

    # Round 3: the head of sales hears of it; the lawyer approves.
    assert deal.notifications()[-1] == (
        "group:head_of_sales", "Deal CRM roll-out for the sales team: the contract is in review round 3.")
    deal.complete("Review_contract", LENA, legal_decision="approve")
    assert deal.data["contract_round"] == 3
    contracts = [(d.version, d.filename) for d in deal.documents() if d.kind == "contract"]
    assert contracts == [(1, "contract-DEAL-42-v1.pdf"), (2, "contract-DEAL-42-v2.pdf"), (3, "contract-DEAL-42-v3.pdf")]
    [contract_mail] = [m for m in deal.mails() if str(m["Subject"]).startswith("Contract")]
    assert attachments(contract_mail) == ["contract-DEAL-42-v3.pdf"]
    assert deal.milestones() == MILESTONES[:5]
    assert "Wait_signature" in deal.view().active_elements


def test_a_rejected_contract_goes_back_to_negotiation(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    to_negotiation(deal)
    deal.complete("Negotiate_terms", negotiation_notes="Agreed")
    deal.complete("Review_contract", LENA, legal_decision="reject", legal_comment="Unacceptable liability terms")
    assert deal.open_ids() == ["Negotiate_terms"]
    assert deal.milestones() == ["New lead", "Qualified", "Proposal", "Negotiation", "Contract", "Negotiation"]
    assert deal.timer_elements() == ["Negotiation_limit"]  # a fresh stage limit


def test_an_invoice_above_the_threshold_is_rejected_once_by_the_finance_director_then_approved(
        sales, session_factory, clock):
    items = [{"name": "CRM licence, 20 seats", "quantity": 20, "unit_price": 30000.0},
             {"name": "Implementation", "quantity": 1, "unit_price": 120000.0}]
    deal = Deal(sales, session_factory, clock, amount=720000.0, line_items=items)
    to_negotiation(deal)
    deal.complete("Negotiate_terms", negotiation_notes="Agreed")
    deal.complete("Review_contract", LENA, legal_decision="approve")
    deal.message("contract signed")
    deal.complete("Prepare_invoice", ARTEM, payment_days=30)
    approval = deal.task("Approve_invoice")
    assert approval.candidate_groups == ["finance_director"]
    assert [d.kind for d in deal.documents()] == ["proposal", "contract"]  # nothing rendered before approval

    deal.later(days=1)  # a day without a decision: escalated, the task stays
    assert deal.notifications()[-1] == (
        "group:head_of_sales", "Invoice for CRM roll-out for the sales team (720000.0 RUB) waits for the finance "
                               "director for over a day.")
    deal.complete("Approve_invoice", FINN, invoice_approved=False,
                  invoice_approval_comment="30 days is too long for this client: 10 at most")
    prepare = deal.task("Prepare_invoice")
    assert prepare.candidate_groups == ["accounting"]
    assert deal.engine.get_task(prepare.id).variables["invoice_approval_comment"].startswith("30 days")
    deal.complete("Prepare_invoice", ARTEM, payment_days=10)
    deal.complete("Approve_invoice", FINN, invoice_approved=True)

    [invoice] = [d for d in deal.documents() if d.kind == "invoice"]
    assert invoice.number == "2026-000001" and invoice.version == 1
    [mail] = [m for m in deal.mails() if str(m["Subject"]).startswith("Invoice")]
    assert attachments(mail) == ["invoice-2026-000001.pdf"]
    assert "Amount due: 720,000.00 RUB" in mail.get_body(("plain",)).get_content()
    assert "Payment due by: 2026-03-13" in mail.get_body(("plain",)).get_content()  # approved on March 3, + 10
    assert deal.data["payment_days"] == 10 and deal.data["payment_due_at"] == "2026-03-13T09:00:00+00:00"
    assert deal.milestones() == MILESTONES
    pay_and_win(deal, 720000.0)


def test_lost_at_qualification_with_a_reason_after_the_lead_was_reassigned(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    deal.later(minutes=15)
    assert deal.notifications()[-1] == ("alice", "Lead CRM roll-out for the sales team: no first contact yet after "
                                                 "15 minutes.")
    assert deal.open_ids() == ["First_contact"]  # a reminder only
    deal.later(minutes=45)
    assert deal.open_ids() == ["Reassign_lead"]
    assert deal.notifications()[-1] == (
        "group:head_of_sales", "Lead CRM roll-out for the sales team (Romashka) got no first contact within 60 "
                               "minutes: reassign it.")
    deal.complete("Reassign_lead", HEAD, new_owner="bob")
    assert deal.task("First_contact").assignee == "bob"
    deal.complete("First_contact", BOB, first_contact_notes="Reached Ivan")
    deal.complete("Qualify", BOB, need="Just looking", budget=0, decision_maker="unknown", timeline="none",
                  fit=False)
    assert deal.task("Record_loss_reason").assignee == "bob"
    deal.complete("Record_loss_reason", BOB, lost_reason="no_budget", lost_comment="No budget this year")

    view = deal.view()
    assert view.status == "completed" and "End_lost_unqualified" in view.completed_elements
    assert view.variables["lost_reason"] == "no_budget" and view.variables["lost_comment"] == "No budget this year"
    assert deal.milestones() == ["New lead"]
    assert deal.documents() == [] and deal.mails() == [] and deal.jobs() == []


def test_needs_analysis_reminders_then_no_answer_for_14_days_is_lost(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    qualify(deal)
    deal.complete("Schedule_call", meeting_at="2026-03-04T10:00:00+00:00")
    clock.now = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # a day before the call
    deal.sweep()
    clock.now = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)  # an hour before
    deal.sweep()
    clock.now = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)  # outcome not logged a day after
    deal.sweep()
    clock.now = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)  # two days after: head of sales
    deal.sweep()
    assert deal.notifications()[1:] == [
        ("alice", "Needs-analysis call with Romashka tomorrow at 2026-03-04T10:00:00+00:00."),
        ("alice", "Needs-analysis call with Romashka in one hour (2026-03-04T10:00:00+00:00)."),
        ("alice", "Log the outcome of the needs-analysis call with Romashka."),
        ("group:head_of_sales", "Deal CRM roll-out for the sales team: the needs-analysis call outcome is 2 days "
                                "overdue."),
    ]
    deal.complete("Log_call", call_summary="Interested, will think")

    assert deal.later(days=5) > 0  # no answer in 5 days: a follow-up mail and a call task
    [follow_up] = deal.mails()
    assert str(follow_up["Subject"]) == "CRM roll-out for the sales team: shall we continue?"
    assert deal.task("Follow_up_call").assignee == "alice"
    deal.later(days=9)  # 14 days in all
    view = deal.view()
    assert view.status == "completed" and "End_lost_no_response" in view.completed_elements
    assert view.variables["lost_reason"] == "no_response"
    assert deal.milestones() == ["New lead", "Qualified"]


def test_a_discount_above_the_threshold_needs_the_head_of_sales(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    to_proposal(deal)
    deal.complete("Edit_proposal", discount_percent=15)
    assert deal.task("Approve_discount").candidate_groups == ["head_of_sales"]
    deal.complete("Approve_discount", HEAD, discount_approved=False, discount_comment="10% at most")
    assert deal.task("Edit_proposal").assignee == "alice"
    deal.complete("Edit_proposal", discount_percent=10)  # not above the threshold
    [proposal] = deal.documents()
    assert proposal.kind == "proposal"
    deal.complete("Review_proposal", proposal_ok=True)
    assert [str(m["Subject"]) for m in deal.mails()] == ["Commercial proposal for Romashka"]
    deal.later(days=3)
    assert deal.task("Follow_up_proposal").assignee == "alice"
    deal.later(days=4)
    assert deal.notifications()[-1] == (
        "group:head_of_sales", "Deal CRM roll-out for the sales team: no reply to the proposal for 7 days.")


def test_payment_overdue_is_reminded_and_escalated_then_paid_in_two_parts(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    to_negotiation(deal)
    deal.complete("Negotiate_terms", negotiation_notes="Agreed")
    deal.complete("Review_contract", LENA, legal_decision="approve")
    deal.message("contract signed")
    deal.complete("Prepare_invoice", ARTEM, payment_days=5)  # on March 2: due March 7, reminders from 09:00 UTC
    assert deal.data["payment_due_at"] == "2026-03-07T09:00:00+00:00"
    sent = len(deal.mails())

    def at(day: int, hour: int = 9, minute: int = 0) -> list[str]:
        clock.now = datetime(2026, 3, day, hour, minute, tzinfo=UTC)
        deal.sweep()
        new = [str(m["Subject"]) for m in deal.mails()[sent:]]
        return new

    assert at(6, 8, 59) == []
    assert at(6) == ["Invoice No. 2026-000001 is due on 2026-03-07"]
    assert at(7)[1:] == ["Payment reminder: invoice No. 2026-000001"]
    assert at(10)[2:] == ["Payment reminder: invoice No. 2026-000001 is 3 days overdue"]
    assert deal.task("Call_payment").assignee == "alice"
    deal.message("payment received", paid=100000.0)  # partial: waits for the rest, the reminders run on
    assert deal.data["payment_outstanding"] == 260000.0
    assert "Wait_payment" in deal.view().active_elements
    assert deal.notifications()[-1][0] == "alice"
    at(14)
    assert deal.notifications()[-1] == (
        "group:head_of_sales", "Deal CRM roll-out for the sales team: invoice 2026-000001 is 7 days overdue.")
    assert deal.timer_elements() == ["Payment_30d"]
    deal.complete("Call_payment", payment_call_notes="They pay the rest on Monday")
    clock.now = datetime(2026, 3, 16, 11, 0, tzinfo=UTC)
    pay_and_win(deal, 260000.0)
    assert deal.data["revenue"] == 360000.0 and deal.data["close_date"] == "2026-03-16"
    assert deal.jobs() == []
    assert deal.milestones() == MILESTONES


def test_the_negotiation_stage_limit_goes_when_the_deal_leaves_negotiation(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock, deal_id="DEAL-1")
    to_negotiation(deal)
    [limit] = [j for j in deal.jobs() if j.element_id == "Negotiation_limit"]
    assert limit.due_at == datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
    deal.later(days=3)
    deal.complete("Negotiate_terms", negotiation_notes="Agreed in 3 days")
    assert "Negotiation_limit" not in deal.timer_elements()
    assert deal.timer_elements() == ["Review_2d", "Review_3d"]

    stale = Deal(sales, session_factory, clock, deal_id="DEAL-2")
    to_negotiation(stale)
    stale.later(days=14)
    assert "Flag_stale" in stale.view().completed_elements
    assert stale.notifications()[-1] == (
        "group:head_of_sales", "Deal CRM roll-out for the sales team (Romashka) has been in negotiation for 14 days: "
                               "stale.")
    assert stale.open_ids() == ["Negotiate_terms"]  # flagged, not stopped
    assert "Negotiation_limit" not in stale.timer_elements()


def test_lost_in_negotiation_with_a_reason(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    to_negotiation(deal)
    deal.later(days=2)
    deal.complete("Negotiate_terms", negotiation_outcome="lost", negotiation_notes="They chose a cheaper vendor")
    assert deal.task("Record_loss_reason_negotiation").assignee == "alice"
    deal.complete("Record_loss_reason_negotiation", lost_reason="competitor", lost_comment="Price 20% lower")
    view = deal.view()
    assert view.status == "completed" and "End_lost_negotiation" in view.completed_elements
    assert view.variables["lost_reason"] == "competitor" and view.variables["lost_comment"] == "Price 20% lower"
    assert deal.milestones() == ["New lead", "Qualified", "Proposal", "Negotiation"]
    assert deal.jobs() == []


def test_a_deal_lost_message_ends_the_deal_from_any_stage(sales, session_factory, clock):
    deal = Deal(sales, session_factory, clock)
    to_negotiation(deal)
    assert "Negotiation_limit" in deal.timer_elements()
    deal.message("deal lost", reason_hint="client chose a competitor")
    assert deal.open_ids() == ["Record_loss_reason_any"]  # negotiation was interrupted
    assert deal.task("Record_loss_reason_any").assignee == "alice"
    assert deal.timer_elements() == []  # the stage limit went with it
    deal.complete("Record_loss_reason_any", lost_reason="competitor", lost_comment="Signed with a competitor")
    view = deal.view()
    assert view.status == "completed" and "End_lost_any" in view.completed_elements
    assert "End_won" not in view.completed_elements and deal.jobs() == []
