"""The engine end to end on a real database: start, work tasks, gateways, milestones, audit, statuses.

Every command loads the instance from the database and saves it back, so each step below is a round trip;
several tests also read through a second Engine (cold caches) to prove nothing lives only in memory.
"""

from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func
from sqlalchemy import select

from engine import audit
from engine.engine import Engine
from engine.errors import Conflict
from engine.errors import Forbidden
from engine.errors import FormInvalid
from engine.errors import InvalidInput
from engine.errors import NotFound
from engine.models import AuditEvent
from engine.queries import TaskFilter
from tests.factories import actor
from tests.factories import deploy

ALICE = actor("alice", groups=("sales",))
BOB = actor("bob", groups=("sales",))
LENA = actor("lena", roles=("lawyer",), groups=("legal",))
SUE = actor("sue", roles=("supervisor",), groups=())
DESIGNER = actor("dana", roles=("designer",), groups=())


@pytest.fixture
def started(engine, session_factory):
    deploy(session_factory, "deal_approval.bpmn")
    return engine.start_instance("deal_approval", actor=DESIGNER, business_key="deal-1",
                                 variables={"amount": 20000, "customer": "Acme"})


def _events(engine, instance_id):
    return [e.event for e in engine.history(instance_id)]


def test_start_runs_to_first_user_task(started, engine, session_factory, clock):
    assert started.status == "running"
    assert [t.bpmn_id for t in started.open_tasks] == ["Review_deal"]
    task = started.open_tasks[0]
    assert task.candidate_groups == ["sales"] and task.assignee is None
    assert task.priority == 70 and task.due_at == clock() + timedelta(days=2)
    # The script task ran in the sandbox and its results are process data.
    assert started.variables["discount"] == 10 and started.variables["net"] == 18000
    assert "Compute_discount" in started.completed_elements and started.active_elements == ["Review_deal"]
    # A second engine (cold caches) sees the same state: it came from the database.
    again = Engine(session_factory, clock=clock).get_instance(started.id)
    assert again.variables == started.variables and again.open_tasks == started.open_tasks


def test_approved_path_runs_to_the_end_with_audit(started, engine):
    review = started.open_tasks[0]
    after = engine.complete_task(review.id, actor=ALICE, data={"approved": True, "comment": "fine"})
    assert [t.bpmn_id for t in after.open_tasks] == ["Prepare_contract"]
    assert after.variables["approved"] is True and after.variables["region"] == "north"  # default applied
    contract = after.open_tasks[0]
    done = engine.complete_task(contract.id, actor=LENA, data={})
    assert done.status == "completed" and done.open_tasks == [] and done.ended_at is not None
    history = engine.history(started.id)
    kinds = [e.event for e in history]
    assert kinds == ["instance_started", "task_created", "task_completed", "gateway_path_taken", "task_created",
                     "task_completed", "milestone_reached", "instance_completed"]
    gateway = next(e for e in history if e.event == "gateway_path_taken")
    assert gateway.element_id == "Gateway_approved" and gateway.details["taken"] == ["Prepare_contract"]
    completed = next(e for e in history if e.event == "task_completed")
    assert completed.actor == "alice" and completed.details["data"]["approved"] is True
    assert completed.details["path"] == ["Review_deal", "Gateway_approved"]
    assert next(e for e in history if e.event == "milestone_reached").details["name"] == "Contract"


def test_rejected_path_takes_the_default_flow(started, engine):
    done = engine.complete_task(started.open_tasks[0].id, actor=ALICE, data={"approved": False})
    assert done.status == "completed" and "End_rejected" in done.completed_elements
    assert "Prepare_contract" not in done.completed_elements


def test_form_errors_list_every_field_and_change_nothing(started, engine, session_factory):
    task_id = started.open_tasks[0].id
    with session_factory() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(FormInvalid) as err:
        engine.complete_task(task_id, actor=ALICE, data={"comment": "x" * 201, "region": "west", "hack": 1})
    assert set(err.value.details["fields"]) == {"approved", "comment", "region", "hack"}
    with pytest.raises(FormInvalid) as err:
        engine.complete_task(task_id, actor=ALICE, data={"approved": "yes please"})
    assert err.value.details["fields"] == {"approved": "must be true or false"}
    assert engine.get_task(task_id).status == "open"
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_form_values_are_data_never_code(started, engine):
    payload = "${__import__('os').system('touch /tmp/dealflow-pwned')}"
    after = engine.complete_task(started.open_tasks[0].id, actor=ALICE,
                                 data={"approved": True, "comment": payload[:200]})
    assert after.variables["comment"] == payload[:200]


def test_who_may_act(started, engine):
    task_id = started.open_tasks[0].id
    with pytest.raises(Forbidden):
        engine.complete_task(task_id, actor=LENA, data={"approved": True})
    with pytest.raises(Forbidden):
        engine.claim_task(task_id, actor=LENA)
    claimed = engine.claim_task(task_id, actor=ALICE)
    assert claimed.assignee == "alice" and claimed.claimed_at is not None
    with pytest.raises(Conflict):
        engine.claim_task(task_id, actor=BOB)
    with pytest.raises(Conflict):  # claimed by alice: bob, a candidate, must ask her
        engine.complete_task(task_id, actor=BOB, data={"approved": True})
    with pytest.raises(Forbidden):
        engine.unclaim_task(task_id, actor=BOB)
    assert engine.unclaim_task(task_id, actor=ALICE).assignee is None
    with pytest.raises(Forbidden):
        engine.assign_task(task_id, "lena", actor=BOB)
    assert engine.assign_task(task_id, "lena", actor=SUE).assignee == "lena"
    # Assigned directly, lena may now complete although she is not in the sales group.
    engine.complete_task(task_id, actor=LENA, data={"approved": False})
    events = _events(engine, started.id)
    assert events.count("task_claimed") == 1 and "task_unclaimed" in events and "task_assigned" in events


def test_inbox_queries(started, engine, session_factory):
    second = engine.start_instance("deal_approval", actor=DESIGNER, business_key="deal-2", variables={"amount": 5})
    mine = engine.list_tasks(TaskFilter(user="alice", groups=frozenset({"sales"})))
    assert {t.instance_id for t in mine} == {started.id, second.id}
    assert engine.list_tasks(TaskFilter(user="lena", groups=frozenset({"legal"}))) == []
    engine.claim_task(mine[0].id, actor=BOB)
    assert {t.id for t in engine.list_tasks(TaskFilter(user="alice", groups=frozenset({"sales"})))} == {mine[1].id}
    assert [t.business_key for t in engine.list_tasks(TaskFilter(business_key="deal-2"))] == ["deal-2"]
    assert len(engine.list_tasks(TaskFilter(candidate_group="sales", sort="priority"))) == 2
    with pytest.raises(InvalidInput):
        engine.list_tasks(TaskFilter(sort="nonsense"))


def test_cancel_instance(started, engine):
    cancelled = engine.cancel_instance(started.id, actor=SUE, reason="duplicate deal")
    assert cancelled.status == "cancelled" and cancelled.open_tasks == []
    assert engine.get_task(started.open_tasks[0].id).status == "cancelled"
    with pytest.raises(Conflict):
        engine.complete_task(started.open_tasks[0].id, actor=ALICE, data={"approved": True})
    with pytest.raises(Conflict):
        engine.cancel_instance(started.id, actor=SUE)
    assert _events(engine, started.id)[-2:] == ["task_cancelled", "instance_cancelled"]


def test_start_form_and_variables_are_validated(engine, session_factory):
    deploy(session_factory, "deal_approval.bpmn")
    with pytest.raises(FormInvalid) as err:
        engine.start_instance("deal_approval", actor=DESIGNER, variables={"amount": -5})
    assert "amount" in err.value.details["fields"]
    with pytest.raises(InvalidInput):
        engine.start_instance("deal_approval", actor=DESIGNER, variables={"__class__": 1})
    with pytest.raises(NotFound):
        engine.start_instance("no_such_process", actor=DESIGNER)
    assert engine.list_instances() == []


def test_dates_from_python_callers_become_iso_text_and_other_types_are_refused(engine, session_factory):
    deploy(session_factory, "deal_approval.bpmn")
    started = engine.start_instance("deal_approval", actor=DESIGNER, variables={
        "amount": 20000, "close_on": date(2026, 12, 31), "signed_at": datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        "lines": ({"until": date(2027, 1, 31)},)})
    assert started.variables["close_on"] == "2026-12-31" and started.variables["lines"] == [{"until": "2027-01-31"}]
    assert started.variables["signed_at"] == "2026-12-01T09:30:00+00:00"
    again = Engine(session_factory).get_instance(started.id)  # stored and loaded from the row
    assert again.variables["close_on"] == "2026-12-31" and again.status == "running"
    with pytest.raises(InvalidInput, match="only JSON values"):
        engine.start_instance("deal_approval", actor=DESIGNER, variables={"amount": Decimal("1.50")})


def test_unknown_task_and_instance(engine):
    with pytest.raises(NotFound):
        engine.complete_task("00000000-0000-0000-0000-000000000000", actor=ALICE)
    with pytest.raises(NotFound):
        engine.get_instance(12345)


def test_running_instances_keep_their_version(engine, session_factory):
    deploy(session_factory, "deal_approval.bpmn")
    old = engine.start_instance("deal_approval", actor=DESIGNER, variables={"amount": 1})
    from tests.factories import bpmn_file

    deploy(session_factory, bpmn_file("deal_approval.bpmn", **{'camunda:priority="70"': 'camunda:priority="90"'}))
    new = engine.start_instance("deal_approval", actor=DESIGNER, variables={"amount": 1})
    assert (old.version, new.version) == (1, 2)
    assert new.open_tasks[0].priority == 90
    done = engine.complete_task(old.open_tasks[0].id, actor=ALICE, data={"approved": False})
    assert done.status == "completed" and done.version == 1


def test_audit_chain_verifies_after_a_run(started, engine, session_factory):
    engine.complete_task(started.open_tasks[0].id, actor=ALICE, data={"approved": False})
    with session_factory() as s:
        result = audit.verify(s)
    assert result.ok and result.checked >= 5


def test_each_multi_instance_task_sees_its_own_item(engine, session_factory):
    # A parallel approval over line items: the inbox shows one task per item, and each task's detail tells the
    # approver which item it is about.
    deploy(session_factory, "approvals.bpmn")
    view = engine.start_instance("approvals", actor=DESIGNER, variables={"items": ["chair", "desk", "lamp"]})
    items = sorted(engine.get_task(t.id).variables["item"] for t in view.open_tasks)
    assert items == ["chair", "desk", "lamp"]
    for task in view.open_tasks:
        engine.complete_task(task.id, actor=ALICE, data={"ok": True})
    assert engine.get_instance(view.id).status == "completed"


def test_the_variables_an_answer_carries_are_deep_copies_that_keep_their_types():
    from engine.values import detached

    plain = {"items": [{"sku": "A", "qty": 1}], "flags": [True, 1, 1.0, None], "note": "x"}
    typed = {"lines": [{"until": date(2027, 1, 31)}], "price": Decimal("1.50")}  # marshal refuses these: pickle
    for value in (plain, typed):
        copied = detached(value)
        assert copied == value and copied is not value
        assert all(copied[key] is not value[key] for key in value if isinstance(value[key], list | dict))
    copied = detached(plain)
    assert [type(flag) for flag in copied["flags"]] == [bool, int, float, type(None)]
    assert type(detached(typed)["lines"][0]["until"]) is date and type(detached(typed)["price"]) is Decimal


def test_an_answer_keeps_the_variables_of_its_own_command_until_it_is_read(session_factory, clock, script_pool):
    # With workflows cached, an answer holds a frozen copy of the process data (engine.values.Frozen), built when
    # it is first read: read after later commands, it still shows the data as its own command left it.
    from engine.engine import Engine
    from engine.values import frozen

    data = {"items": [{"sku": "A", "qty": 1}]}
    copy = frozen(data)
    data["items"][0]["qty"] = 2
    assert copy.thaw() == {"items": [{"sku": "A", "qty": 1}]}

    deploy(session_factory, "approvals.bpmn")
    cached = Engine(session_factory, clock=clock, script_pool=script_pool, workflow_cache=8)
    admin = actor("sue", roles=("admin",))
    view = cached.start_instance("approvals", actor=DESIGNER, variables={"items": ["chair", "desk", "lamp"]})
    first = cached.set_variables(view.id, {"note": {"text": "first"}}, actor=admin)
    second = cached.set_variables(view.id, {"note": {"text": "second"}}, actor=admin)
    cached.complete_task(view.open_tasks[0].id, actor=ALICE, data={"ok": True})
    assert first.variables["note"] == {"text": "first"} and second.variables["note"] == {"text": "second"}
    assert first.to_dict()["variables"]["items"] == ["chair", "desk", "lamp"]
