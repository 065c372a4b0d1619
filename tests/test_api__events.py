"""Messages and signals over HTTP: what a CRM or a payment system sends, with the account an admin makes for it."""

import pytest

from app import services
from engine.actor import Actor
from tests.api_support import assert_error
from tests.api_support import deploy
from tests.api_support import snapshot

SIGNED = {"name": "contract signed", "payload": {"signed_by": "Ivan Petrov", "pages": 12}}
MATE = Actor("mate", frozenset({"manager"}), frozenset({"sales"}))


@pytest.fixture
def crm(client, api_users):
    """An integration account, made the way an admin would: over the API, with a password, then logged in."""
    dana = api_users.add("dana", roles=("designer",), groups=())
    assert deploy(client, dana, "messages.bpmn").status_code == 201
    admin = api_users.add("root", roles=("admin",), groups=())
    made = client.post("/api/v1/users", headers=admin, json={"username": "crm", "roles": ["integration"],
                                                             "password": "crm-secret-42"})
    assert made.status_code == 201 and made.get_json()["roles"] == ["integration"]
    token = client.post("/api/v1/tokens", json={"username": "crm", "password": "crm-secret-42"}).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}


def _waiting(client, business_key: str) -> int:
    """A contract_signing instance of the deal that waits for "contract signed" (its first task done)."""
    engine = services(client.application).engine
    view = engine.start_instance("contract_signing", actor=Actor.system("dana"), business_key=business_key)
    engine.complete_task(view.open_tasks[0].id, actor=MATE, data={})
    return view.id


def _instance(client, instance_id: int, headers) -> dict:
    response = client.get(f"/api/v1/process-instances/{instance_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_message_reaches_the_waiting_instance_and_its_payload_becomes_data(client, crm, api_users):
    waiting = _waiting(client, "DEAL-1")
    response = client.post("/api/v1/messages", headers=crm, json={**SIGNED, "business_key": "DEAL-1"})
    assert response.status_code == 200 and response.get_json() == {"instances": [waiting]}
    view = _instance(client, waiting, api_users.add("audrey", roles=("auditor",), groups=()))
    assert view["active_elements"] == ["Prices"]  # past the receive task, now waiting for the signal
    assert view["variables"]["signed_by"] == "Ivan Petrov" and view["variables"]["pages"] == 12


def test_two_instances_of_one_deal_both_receive_it(client, crm):
    first, second, other = _waiting(client, "DEAL-2"), _waiting(client, "DEAL-2"), _waiting(client, "DEAL-3")
    response = client.post("/api/v1/messages", headers=crm, json={**SIGNED, "business_key": "DEAL-2"})
    assert response.get_json() == {"instances": [first, second]}
    assert other not in response.get_json()["instances"]  # another deal: untouched


def test_nobody_waits_is_a_clear_404_that_changes_nothing(client, crm):
    _waiting(client, "DEAL-4")
    before = snapshot(services(client.application).session_factory)
    body = assert_error(client.post("/api/v1/messages", headers=crm, json={**SIGNED, "business_key": "DEAL-404"}),
                        404, "not_found")
    assert "'contract signed'" in body["message"] and "'DEAL-404'" in body["message"]
    # The deal exists, but does not wait for this message (yet).
    assert_error(client.post("/api/v1/messages", headers=crm, json={"name": "payment received",
                                                                    "business_key": "DEAL-4"}), 404, "not_found")
    assert snapshot(services(client.application).session_factory) == before


def test_message_start_event_starts_an_instance_201(client, crm, api_users):
    response = client.post("/api/v1/messages", headers=crm, json={
        "name": "lead received", "business_key": "LEAD-1", "payload": {"phone": "+7 900 000 00 00"}})
    assert response.status_code == 201, response.get_json()
    (instance_id,) = response.get_json()["instances"]
    assert response.headers["Location"].endswith(f"/api/v1/process-instances/{instance_id}")
    view = _instance(client, instance_id, api_users.add("audrey", roles=("auditor",), groups=()))
    assert view["process_key"] == "inbound_lead" and view["business_key"] == "LEAD-1"
    assert view["started_by"] == "crm" and view["variables"]["phone"] == "+7 900 000 00 00"


def test_a_retried_message_with_the_same_key_is_delivered_once(client, crm):
    first_deal, second_deal = _waiting(client, "DEAL-5"), _waiting(client, "DEAL-5")
    headers = {**crm, "Idempotency-Key": "psp-event-evt_1Nq"}
    first = client.post("/api/v1/messages", headers=headers, json={**SIGNED, "business_key": "DEAL-5"})
    # The payment system did not see the answer and sends the very same webhook again.
    again = client.post("/api/v1/messages", headers=headers, json={**SIGNED, "business_key": "DEAL-5"})
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json() == {"instances": [first_deal, second_deal]}
    assert again.headers["Idempotent-Replayed"] == "true"
    history = services(client.application).engine.history(first_deal)
    assert [e.event for e in history].count("message_received") == 1


def test_a_retry_after_nobody_waited_runs_again_and_delivers(client, crm):
    headers = {**crm, "Idempotency-Key": "webhook-early"}
    body = {**SIGNED, "business_key": "DEAL-6"}
    # The webhook came before the deal reached its receive task: 404, and that 404 is not kept for the key...
    assert_error(client.post("/api/v1/messages", headers=headers, json=body), 404)
    waiting = _waiting(client, "DEAL-6")
    # ...so the webhook's retry with the same key delivers, and from then on replays that delivery.
    retried = client.post("/api/v1/messages", headers=headers, json=body)
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    replayed = client.post("/api/v1/messages", headers=headers, json=body)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert retried.get_json() == replayed.get_json() == {"instances": [waiting]}


def test_signal_reaches_every_waiting_instance_of_every_deal(client, crm):
    ids = []
    for key in ("DEAL-7", "DEAL-8"):
        ids.append(_waiting(client, key))
        assert client.post("/api/v1/messages", headers=crm, json={**SIGNED, "business_key": key}).status_code == 200
    not_yet = _waiting(client, "DEAL-9")
    signal = {"name": "price list updated", "payload": {"price_list": "2026-Q2"}}
    response = client.post("/api/v1/signals", headers=crm, json=signal)
    assert response.status_code == 200 and response.get_json() == {"instances": ids}
    engine = services(client.application).engine
    assert [engine.get_instance(i).status for i in ids] == ["completed", "completed"]
    assert engine.get_instance(not_yet).status == "waiting"
    # Nobody waits any more: a signal that reaches nobody is not an error.
    assert client.post("/api/v1/signals", headers=crm, json=signal).get_json() == {"instances": []}


def test_a_manager_may_not_send_events_and_the_integration_account_may_do_nothing_else(client, crm, api_users):
    _waiting(client, "DEAL-10")
    alice = api_users.add("alice", roles=("manager",), groups=("sales",))
    before = snapshot(services(client.application).session_factory)
    denied = assert_error(client.post("/api/v1/messages", headers=alice, json={**SIGNED, "business_key": "DEAL-10"}),
                          403, "forbidden")
    assert "'integration'" in denied["message"]
    assert_error(client.post("/api/v1/signals", headers=alice, json={"name": "price list updated"}), 403)
    # The machine account tells processes what happened; it cannot start, read or work anything itself.
    assert_error(client.post("/api/v1/process-instances", headers=crm, json={"process_key": "contract_signing"}),
                 403, "forbidden")
    assert_error(client.get("/api/v1/jobs", headers=crm), 403, "forbidden")
    assert client.get("/api/v1/tasks", headers=crm).get_json()["items"] == []
    assert snapshot(services(client.application).session_factory) == before


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "contract signed"}, "business_key"),
    ({"name": "", "business_key": "DEAL-1"}, "name"),
    ({"name": "contract signed", "business_key": "DEAL-1", "payload": [1]}, "payload"),
    ({"name": "contract signed", "business_key": "DEAL-1", "colour": "red"}, "colour"),
])
def test_a_malformed_message_is_400_naming_the_field(client, crm, body, field):
    assert f"'{field}'" in assert_error(client.post("/api/v1/messages", headers=crm, json=body), 400,
                                        "invalid_input")["message"]


def test_a_payload_the_process_cannot_hold_is_400(client, crm):
    _waiting(client, "DEAL-11")
    body = {**SIGNED, "business_key": "DEAL-11", "payload": {"not a name": 1}}
    assert "'not a name'" in assert_error(client.post("/api/v1/messages", headers=crm, json=body), 400,
                                          "invalid_input")["message"]
