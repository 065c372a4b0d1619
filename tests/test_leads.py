"""Lead intake (crm.leads) and manager assignment (crm.assignment) on real databases: deduplication, strategies,
rules, absence, nobody available, and concurrent leads."""

import threading
from collections import Counter
from datetime import UTC
from datetime import datetime

import pytest
from sqlalchemy import func
from sqlalchemy import select

from crm.assignment import NoManagerAvailable
from crm.assignment import add_rule
from crm.assignment import configure_team
from crm.leads import take_lead
from crm.models import Client
from crm.models import Contact
from crm.models import Deal
from crm.models import StageTransition
from crm.models import TeamSettings
from crm.users import create_user
from crm.users import update_user
from engine.actor import Actor
from engine.database import begin_write
from engine.engine import Engine
from engine.models import AuditEvent
from tests.factories import deploy

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MANAGERS = ("ann", "bob", "cat")


@pytest.fixture
def team(session_factory):
    """Three sales managers, plus a supervisor in the same group who must never get a lead."""
    with session_factory() as session, session.begin():
        for name in MANAGERS:
            create_user(session, name, password=None, roles=["manager"], groups=["sales"])
        create_user(session, "sue", password=None, roles=["supervisor"], groups=["sales"])
    return session_factory


def lead(session_factory, *, email=None, phone=None, company="Acme", inn=None, source="site", region=None, **extra):
    """Take one lead in its own transaction; returns (deal id, owner, returning_client)."""
    with session_factory() as session, session.begin():
        begin_write(session)
        taken = take_lead(session, NOW, channel="web_form", source=source,
                          contact={"name": "Ivan", "email": email, "phone": phone},
                          company={"name": company, "legal_form": "ООО", "inn": inn, "region": region},
                          message="Call me", actor="webform", **extra)
        return taken.deal.id, taken.deal.owner, taken.returning_client


def count(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_lead_becomes_an_open_deal_at_new_lead_with_a_first_transition_and_audit(team):
    deal_id, owner, returning = lead(team, email="ivan@acme.ru", line_items=[
        {"name": "Audit", "quantity": 2, "unit_price": "1500.50"}])
    with team() as session:
        deal = session.get(Deal, deal_id)
        assert (deal.stage, deal.status, deal.owner, str(deal.amount), deal.currency) == (
            "New lead", "open", "ann", "3001.00", "RUB")
        assert not returning and deal.client.name == "Acme"
        transitions = session.scalars(select(StageTransition).where(StageTransition.deal_id == deal_id)).all()
        assert [(t.from_stage, t.to_stage, t.actor) for t in transitions] == [(None, "New lead", "webform")]
        events = {e.event: e.details for e in session.scalars(select(AuditEvent))}
    assert events["deal_assigned"]["owner"] == "ann" and events["deal_assigned"]["strategy"] == "round_robin"
    assert events["lead_received"]["deal_id"] == deal_id


def test_the_same_email_finds_the_returning_client_whatever_its_case_and_spaces(team):
    first, _, _ = lead(team, email="Ivan@Acme.ru", company="Acme")
    second, _, returning = lead(team, email="  ivan@acme.RU ", company="Other name the caller used")
    with team() as session:
        assert session.get(Deal, first).client_id == session.get(Deal, second).client_id
    assert returning
    assert count(team, Client) == 1 and count(team, Contact) == 1


def test_the_same_phone_written_differently_finds_the_returning_client(team):
    lead(team, phone="+7 (999) 123-45-67", company="Romashka")
    _, _, returning = lead(team, phone="8 999 123 45 67", company="Something else")
    _, _, again = lead(team, phone="9991234567", email="new@romashka.ru", company="Third")
    assert returning and again
    assert count(team, Client) == 1 and count(team, Contact) == 1
    with team() as session:
        # The email the third lead added is kept on the known contact (filled in, not overwritten).
        assert session.scalar(select(Contact.email)) == "new@romashka.ru"


def test_a_new_person_at_a_known_company_joins_it_by_inn_or_by_name(team):
    lead(team, email="a@romashka.ru", company="ООО «Ромашка»", inn="7701234567")
    _, _, by_inn = lead(team, email="b@romashka.ru", company="Romashka Ltd", inn="7701234567")
    _, _, by_name = lead(team, email="c@romashka.ru", company="ромашка")
    _, _, other = lead(team, email="d@romashka.ru", company="Ромашка", inn="7709999999")
    # The same name with another INN on file is another company.
    assert (by_inn, by_name, other) == (True, True, False)
    assert count(team, Client) == 2 and count(team, Contact) == 4


def test_round_robin_goes_around_the_team_in_order(team):
    owners = [lead(team, email=f"lead{i}@x.ru")[1] for i in range(4)]
    assert owners == ["ann", "bob", "cat", "ann"]
    with team() as session:
        assert session.get(TeamSettings, "sales").last_assigned == "ann"


def test_an_absent_user_is_skipped_and_the_skip_is_audited(team):
    with team() as session, session.begin():
        update_user(session, "bob", absent=True)
    owners = [lead(team, email=f"lead{i}@x.ru")[1] for i in range(3)]
    assert owners == ["ann", "cat", "ann"]
    with team() as session:
        details = [e.details for e in session.scalars(select(AuditEvent).where(AuditEvent.event == "deal_assigned"))]
    assert all(d["skipped_absent"] == ["bob"] for d in details)


def test_deactivated_users_are_skipped(team):
    with team() as session, session.begin():
        update_user(session, "ann", active=False)
    assert [lead(team, email=f"lead{i}@x.ru")[1] for i in range(3)] == ["bob", "cat", "bob"]


def test_nobody_available_is_a_clear_error_and_nothing_is_half_created(team):
    with team() as session, session.begin():
        for name in MANAGERS:
            update_user(session, name, absent=True)
    audit_before = count(team, AuditEvent)
    with pytest.raises(NoManagerAvailable) as raised:
        lead(team, email="ivan@acme.ru")
    assert "'ann', 'bob', 'cat' marked absent" in raised.value.message
    assert '"absent": false' in raised.value.message and raised.value.http_status == 409
    assert (count(team, Client), count(team, Contact), count(team, Deal), count(team, StageTransition)) == (0, 0, 0, 0)
    assert count(team, AuditEvent) == audit_before


def test_least_open_tasks_picks_the_least_loaded_from_real_inbox_rows(team, clock, script_pool):
    deploy(team, "mini_funnel.bpmn")
    engine = Engine(team, clock=clock, script_pool=script_pool)
    # ann holds two open tasks, bob one, cat none: real human_task rows of running instances.
    for owner in ("ann", "ann", "bob"):
        engine.start_instance("mini_funnel", actor=Actor.system(), business_key=f"X-{owner}",
                              variables={"owner": owner})
    with team() as session, session.begin():
        configure_team(session, "sales", NOW, strategy="least_open_tasks")
    assert lead(team, email="one@x.ru")[1] == "cat"
    engine.start_instance("mini_funnel", actor=Actor.system(), business_key="X-cat", variables={"owner": "cat"})
    # bob and cat now hold one each: the tie goes round-robin after the last pick (cat), so to bob.
    assert lead(team, email="two@x.ru")[1] == "bob"


def test_a_rule_by_source_sends_the_lead_to_its_user_before_the_strategy(team):
    with team() as session, session.begin():
        add_rule(session, "sales", field_name="source", value="Partner-X", assignee="cat")
    assert lead(team, email="p@x.ru", source="partner-x")[1] == "cat"
    assert lead(team, email="q@x.ru", source="site")[1] == "ann"
    with team() as session:
        strategies = [e.details["strategy"] for e in session.scalars(
            select(AuditEvent).where(AuditEvent.event == "deal_assigned").order_by(AuditEvent.seq))]
    assert strategies == ["rule", "round_robin"]


def test_a_rule_by_region_spreads_leads_within_its_subgroup_and_falls_back_when_all_are_absent(team):
    with team() as session, session.begin():
        for name in ("dan", "eve"):
            create_user(session, name, password=None, roles=["manager"], groups=["sales", "siberia"])
        add_rule(session, "sales", field_name="region", value="Siberia", group="siberia")
    owners = [lead(team, email=f"s{i}@x.ru", region="siberia")[1] for i in range(3)]
    assert owners == ["dan", "eve", "dan"]
    with team() as session, session.begin():
        update_user(session, "dan", absent=True)
        update_user(session, "eve", absent=True)
    # The sub-group is away: the team's round-robin takes over, skipping the absent ones.
    assert lead(team, email="s9@x.ru", region="Siberia")[1] == "ann"


def test_an_absent_rule_user_falls_back_to_the_team(team):
    with team() as session, session.begin():
        add_rule(session, "sales", field_name="source", value="vip", assignee="cat")
        update_user(session, "cat", absent=True)
    assert lead(team, email="v@x.ru", source="vip")[1] == "ann"


def test_ten_concurrent_leads_spread_4_3_3_and_one_person_stays_one_client(team):
    owners, errors = [], []

    def take(i):
        try:
            # Every lead is the same person, the phone written in two ways: one client, one contact.
            phone = "+7 (999) 555-00-11" if i % 2 else "8 999 555 00 11"
            owners.append(lead(team, email="same@client.ru", phone=phone, company=f"Company {i}")[1])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(Counter(owners).values()) == [3, 3, 4]
    assert count(team, Client) == 1 and count(team, Contact) == 1 and count(team, Deal) == 10
