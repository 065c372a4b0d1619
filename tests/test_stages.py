"""The stage listener (crm.stages) driven by real diagrams through the real Engine: milestones move the deal,
Won/Lost end events close it, every move is a stage_transition row and an audit event of the same command."""

from datetime import UTC
from datetime import datetime

import pytest
from sqlalchemy import select

from crm.deals import process_variables
from crm.leads import take_lead
from crm.models import Deal
from crm.models import StageTransition
from crm.stages import StageListener
from crm.stages import deal_id_of
from crm.users import create_user
from engine.actor import Actor
from engine.database import begin_write
from engine.engine import Engine
from engine.models import AuditEvent
from tests.factories import deploy

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANN = Actor("ann", frozenset({"manager"}), frozenset({"sales"}))


@pytest.fixture
def engine(session_factory, clock, script_pool):
    """The Engine with the CRM's listener, over mini_funnel and deal_approval; ann is the only manager."""
    with session_factory() as session, session.begin():
        create_user(session, "ann", password=None, roles=["manager"], groups=["sales"])
    deploy(session_factory, "mini_funnel.bpmn", "deal_approval.bpmn")
    return Engine(session_factory, clock=clock, script_pool=script_pool, listener=StageListener())


def new_deal(session_factory) -> tuple[int, dict]:
    with session_factory() as session, session.begin():
        begin_write(session)
        deal = take_lead(session, NOW, channel="call", source=None, contact={"phone": "+7 999 000 00 01"},
                         company={"name": "Acme"}, message=None, amount=1000).deal
        return deal.id, process_variables(deal)


def start(engine, session_factory, process_key="mini_funnel", variables=None):
    deal_id, deal_variables = new_deal(session_factory)
    view = engine.start_instance(process_key, actor=ANN, business_key=str(deal_id),
                                 variables={**deal_variables, **(variables or {})})
    return deal_id, view


def timeline(session_factory, deal_id) -> list[tuple]:
    with session_factory() as session:
        return [(t.from_stage, t.to_stage, t.reason) for t in session.scalars(
            select(StageTransition).where(StageTransition.deal_id == deal_id).order_by(StageTransition.id))]


def deal_row(session_factory, deal_id) -> Deal:
    with session_factory() as session:
        return session.get(Deal, deal_id)


def stage_events(session_factory) -> list[tuple]:
    with session_factory() as session:
        return [(e.event, e.instance_id, e.details) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.event.in_(("deal_stage_changed", "deal_won", "deal_lost")))
            .order_by(AuditEvent.seq))]


def test_a_milestone_at_the_start_moves_the_deal_in_the_start_command(engine, session_factory, clock):
    deal_id, view = start(engine, session_factory)
    deal = deal_row(session_factory, deal_id)
    assert (deal.stage, deal.status, deal.updated_at) == ("Qualified", "open", clock.now)
    assert timeline(session_factory, deal_id) == [(None, "New lead", "lead received by call"),
                                                  ("New lead", "Qualified", None)]
    assert stage_events(session_factory) == [("deal_stage_changed", view.id, {
        "deal_id": deal_id, "from": "New lead", "to": "Qualified", "reason": None})]
    # The task the process made is the owner's (the variables carried the deal's owner).
    assert view.open_tasks[0].assignee == "ann"


def test_won_closes_the_deal_after_the_proposal_milestone(engine, session_factory, clock):
    deal_id, view = start(engine, session_factory)
    at = clock.advance(hours=2)
    # complete_task loads the instance from the database: the process state round-trips between the commands.
    engine.complete_task(view.open_tasks[0].id, actor=ANN, data={"outcome": "proposal",
                                                                 "stage_reason": "budget confirmed"})
    deal = deal_row(session_factory, deal_id)
    assert (deal.stage, deal.status, deal.closed_at) == ("Won", "won", at)
    assert timeline(session_factory, deal_id)[2:] == [("Qualified", "Proposal", "budget confirmed"),
                                                      ("Proposal", "Won", "budget confirmed")]
    with session_factory() as session:
        moved = session.scalars(select(StageTransition).where(StageTransition.deal_id == deal_id)).all()
    assert {(t.at, t.actor) for t in moved[2:]} == {(at, "ann")}
    assert [name for name, *_ in stage_events(session_factory)] == ["deal_stage_changed", "deal_stage_changed",
                                                                    "deal_won"]


def test_lost_closes_the_deal_with_its_reason_and_comment(engine, session_factory, clock):
    deal_id, view = start(engine, session_factory)
    at = clock.advance(days=1)
    engine.complete_task(view.open_tasks[0].id, actor=ANN, data={"outcome": "lost", "lost_reason": "price",
                                                                 "lost_comment": "Went with a cheaper vendor"})
    deal = deal_row(session_factory, deal_id)
    assert (deal.stage, deal.status, deal.closed_at) == ("Lost", "lost", at)
    assert (deal.lost_reason, deal.lost_comment) == ("price", "Went with a cheaper vendor")
    assert timeline(session_factory, deal_id)[-1] == ("Qualified", "Lost", "price")
    assert stage_events(session_factory)[-1][2] == {"deal_id": deal_id, "from": "Qualified", "lost_reason": "price",
                                                    "lost_comment": "Went with a cheaper vendor"}


def test_lost_without_a_reason_is_visibly_unspecified(engine, session_factory):
    deal_id, view = start(engine, session_factory)
    engine.complete_task(view.open_tasks[0].id, actor=ANN, data={"outcome": "lost"})
    deal = deal_row(session_factory, deal_id)
    assert (deal.status, deal.lost_reason, deal.lost_comment) == ("lost", "unspecified", None)


def test_a_milestone_of_another_diagram_moves_the_deal_and_a_plain_end_does_not_close_it(engine, session_factory):
    deal_id, view = start(engine, session_factory, "deal_approval", {"customer": "Acme"})
    engine.complete_task(view.open_tasks[0].id, actor=ANN, data={"approved": True})
    lawyer = Actor("lena", frozenset({"lawyer"}), frozenset({"legal"}))
    task_id = engine.get_instance(view.id).open_tasks[0].id
    engine.claim_task(task_id, actor=lawyer)
    engine.complete_task(task_id, actor=lawyer)
    deal = deal_row(session_factory, deal_id)
    # "Contract ready" is neither Won nor Lost: the deal stays open at the last milestone.
    assert (deal.stage, deal.status) == ("Contract", "open")


def test_instances_that_are_not_deals_pass_by(engine, session_factory):
    for key in ("DEAL-1", "999999", "0042", None):
        engine.start_instance("mini_funnel", actor=ANN, business_key=key, variables={"owner": "ann"})
    with session_factory() as session:
        assert session.scalars(select(StageTransition)).all() == []
    assert stage_events(session_factory) == []


def test_a_closed_deal_is_not_moved_by_a_process_that_runs_on(engine, session_factory):
    deal_id, view = start(engine, session_factory)
    engine.complete_task(view.open_tasks[0].id, actor=ANN, data={"outcome": "lost", "lost_reason": "timing"})
    # A second instance for the same deal reaches a milestone: the lost deal keeps its stage and status.
    engine.start_instance("mini_funnel", actor=ANN, business_key=str(deal_id), variables={"owner": "ann"})
    deal = deal_row(session_factory, deal_id)
    assert (deal.stage, deal.status) == ("Lost", "lost")


@pytest.mark.parametrize("key, expected", [("42", 42), ("042", None), ("DEAL-42", None), ("", None), (None, None),
                                           ("٤٢", None), ("99999999999", None), ("2147483648", None)])
def test_which_business_keys_name_a_deal(key, expected):
    assert deal_id_of(key) == expected


def test_a_deal_lost_message_closes_the_deal_from_its_event_subprocess(engine, session_factory, clock):
    deploy(session_factory, "deal_lost.bpmn")
    deal_id, view = start(engine, session_factory, process_key="deal_lost")
    engine.correlate_message("deal lost", business_key=str(deal_id), actor=ANN)
    record = engine.get_instance(view.id).open_tasks[0]
    assert record.bpmn_id == "Record_loss"
    engine.complete_task(record.id, actor=ANN, data={"lost_reason": "competitor", "lost_comment": "Went elsewhere"})
    deal = deal_row(session_factory, deal_id)
    assert (deal.stage, deal.status, deal.lost_reason) == ("Lost", "lost", "competitor")
