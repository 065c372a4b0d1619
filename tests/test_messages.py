"""Messages from outside correlate by deal (business key); signals broadcast; payloads become process data."""

import pytest

from engine.errors import NotFound
from tests.factories import actor
from tests.factories import deploy

DANA = actor("dana", roles=("designer",), groups=())
ALICE = actor("alice", groups=("sales",))
CRM = actor("crm-bot", roles=("admin",), groups=())


@pytest.fixture
def contracts(engine, session_factory):
    deploy(session_factory, "messages.bpmn", "timers.bpmn")
    return engine


def _to_signature(engine, business_key):
    view = engine.start_instance("contract_signing", actor=DANA, business_key=business_key)
    return engine.complete_task(view.open_tasks[0].id, actor=ALICE, data={})


def test_receive_task_gets_the_message_and_its_payload(contracts):
    waiting = _to_signature(contracts, "DEAL-1")
    assert waiting.status == "waiting" and waiting.active_elements == ["Wait_signature"]
    delivery = contracts.correlate_message("contract signed", business_key="DEAL-1", actor=CRM,
                                           payload={"signed_by": "Ivan Petrov", "pages": 12})
    assert delivery.instances == [waiting.id] and delivery.started is False
    view = contracts.get_instance(waiting.id)
    assert view.active_elements == ["Prices"]  # now waits for the signal
    assert view.variables["signed_by"] == "Ivan Petrov" and view.variables["pages"] == 12
    assert "message_received" in [e.event for e in contracts.history(waiting.id)]


def test_interrupting_message_boundary_cancels_the_task(contracts):
    view = contracts.start_instance("contract_signing", actor=DANA, business_key="DEAL-2")
    contracts.correlate_message("deal withdrawn", business_key="DEAL-2", actor=CRM, payload={"reason": "budget"})
    after = contracts.get_instance(view.id)
    assert after.status == "completed" and "End_withdrawn" in after.completed_elements
    assert contracts.get_task(view.open_tasks[0].id).status == "cancelled"


def test_nobody_waits_is_a_clear_not_found(contracts):
    _to_signature(contracts, "DEAL-3")
    with pytest.raises(NotFound) as err:
        contracts.correlate_message("contract signed", business_key="DEAL-404", actor=CRM)
    assert "DEAL-404" in err.value.message
    with pytest.raises(NotFound):  # the deal exists, but does not wait for this message (yet)
        contracts.correlate_message("payment received", business_key="DEAL-3", actor=CRM)


def test_two_instances_of_one_deal_both_receive_it(contracts):
    first, second = _to_signature(contracts, "DEAL-4"), _to_signature(contracts, "DEAL-4")
    other = _to_signature(contracts, "DEAL-5")
    delivery = contracts.correlate_message("contract signed", business_key="DEAL-4", actor=CRM)
    assert delivery.instances == [first.id, second.id]
    assert contracts.get_instance(other.id).active_elements == ["Wait_signature"]  # another deal: untouched


def test_message_start_event_starts_an_instance(contracts):
    started = contracts.correlate_message("lead received", business_key="LEAD-1", actor=CRM,
                                          payload={"phone": "+7 900 000 00 00"})
    assert started.started is True
    view = contracts.get_instance(started.instances[0])
    assert view.process_key == "inbound_lead" and view.business_key == "LEAD-1"
    assert [t.bpmn_id for t in view.open_tasks] == ["Call_lead"] and view.variables["phone"] == "+7 900 000 00 00"


def test_event_based_gateway_takes_the_message_path(contracts, clock):
    view = contracts.start_instance("timers", actor=DANA, business_key="DEAL-6")
    clock.advance(hours=1)
    contracts.fire_due_jobs()
    review = contracts.get_instance(view.id).open_tasks[0]
    contracts.complete_task(review.id, actor=actor("lena", groups=("legal",)), data={})
    contracts.correlate_message("payment received", business_key="DEAL-6", actor=CRM, payload={"paid": 100})
    after = contracts.get_instance(view.id)
    assert after.status == "completed" and "End_paid" in after.completed_elements
    clock.advance(days=8)
    assert contracts.fire_due_jobs() == 0  # the gateway's week timer went with the gateway


def test_signal_reaches_every_waiting_instance(contracts):
    ids = []
    for key in ("DEAL-7", "DEAL-8"):
        view = _to_signature(contracts, key)
        contracts.correlate_message("contract signed", business_key=key, actor=CRM)
        ids.append(view.id)
    not_yet = _to_signature(contracts, "DEAL-9")
    assert contracts.broadcast_signal("price list updated", actor=CRM) == ids
    assert all(contracts.get_instance(i).status == "completed" for i in ids)
    assert contracts.get_instance(not_yet.id).status == "waiting"
    assert contracts.broadcast_signal("price list updated", actor=CRM) == []
