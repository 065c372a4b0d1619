"""An instance over HTTP lists at most 50 open tasks and counts them (`open_task_count`); the task list filtered by
instance pages through all of them. A viewer who may not see every task gets a count of the tasks they may see.

The instance with many open tasks is a parallel multi-instance approval (tests/bpmn/approvals.bpmn): one task per
line item, offered to the sales group.
"""

import pytest

from engine.views import OPEN_TASKS_IN_VIEW
from tests.api_support import assert_error
from tests.api_support import deploy
from tests.api_support import start


@pytest.fixture
def heads(client, api_users):
    heads = {name: api_users.add(name, roles=roles, groups=groups) for name, roles, groups in (
        ("dana", ("designer",), ()), ("ada", ("admin",), ()), ("mia", ("manager",), ("sales",)),
        ("lena", ("manager",), ("legal",)))}
    assert deploy(client, heads["dana"], "approvals.bpmn").status_code == 201
    return heads


def _approval(client, headers, items: int) -> dict:
    return start(client, headers, process_key="approvals", variables={"items": [f"item-{n}" for n in range(items)]})


def _instance(client, headers, instance_id: int) -> dict:
    response = client.get(f"/api/v1/process-instances/{instance_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _task_ids(client, headers, instance_id: int, per_page: int = 25) -> list[str]:
    """Every task of the instance the user may see, page after page of the task list."""
    ids, url = [], f"/api/v1/tasks?instance={instance_id}&per_page={per_page}"
    while url:
        page = client.get(url, headers=headers).get_json()
        ids += [t["id"] for t in page["items"]]
        url = page["next"]
    return ids


def test_sixty_items_list_fifty_count_sixty_and_the_task_list_has_them_all(client, heads):
    started = _approval(client, heads["mia"], 60)
    assert (len(started["open_tasks"]), started["open_task_count"]) == (OPEN_TASKS_IN_VIEW, 60)
    everything = _task_ids(client, heads["dana"], started["id"])
    assert len(everything) == len(set(everything)) == 60
    # The view's tasks are the first of the task list's: the oldest, in the same order.
    assert [t["id"] for t in started["open_tasks"]] == everything[:OPEN_TASKS_IN_VIEW]
    done = client.post(f"/api/v1/tasks/{everything[0]}/complete", headers=heads["mia"], json={"data": {"ok": True}})
    assert done.status_code == 200, done.get_json()
    assert (len(done.get_json()["open_tasks"]), done.get_json()["open_task_count"]) == (OPEN_TASKS_IN_VIEW, 59)
    # A reader of every task (designer) and a sales manager (the tasks offered to her group) see the same.
    for who in ("dana", "mia"):
        view = _instance(client, heads[who], started["id"])
        assert view["open_task_count"] == 59 and [t["id"] for t in view["open_tasks"]] == everything[1:51]
    assert _task_ids(client, heads["mia"], started["id"], per_page=100) == everything[1:]


def test_ten_items_list_ten(client, heads):
    started = _approval(client, heads["mia"], 10)
    assert (len(started["open_tasks"]), started["open_task_count"]) == (10, 10)
    assert _instance(client, heads["dana"], started["id"])["open_task_count"] == 10


@pytest.mark.parametrize("items", [10, 60], ids=["all-in-the-view", "more-than-the-view"])
def test_a_viewer_who_sees_some_tasks_gets_the_count_of_those(client, heads, items):
    # Lena (legal) sees only the tasks assigned to her; the instance's own count would tell her about the others.
    started = _approval(client, heads["mia"], items)
    everything = _task_ids(client, heads["dana"], started["id"])
    hers = [everything[2], everything[-1]]  # with 60 items, the second is beyond the first 50
    for task_id in hers:
        assigned = client.post(f"/api/v1/tasks/{task_id}/assign", headers=heads["ada"], json={"username": "lena"})
        assert assigned.status_code == 200, assigned.get_json()
    view = _instance(client, heads["lena"], started["id"])
    assert ([t["id"] for t in view["open_tasks"]], view["open_task_count"]) == (hers, 2)
    assert _task_ids(client, heads["lena"], started["id"]) == hers
    # Those who may see every task still get the whole count.
    assert _instance(client, heads["ada"], started["id"])["open_task_count"] == items
    done = client.post(f"/api/v1/tasks/{hers[0]}/complete", headers=heads["lena"], json={"data": {"ok": True}})
    assert done.status_code == 200, done.get_json()
    assert ([t["id"] for t in done.get_json()["open_tasks"]], done.get_json()["open_task_count"]) == (hers[1:], 1)


def test_a_viewer_who_sees_no_task_counts_none(client, heads):
    # Lena started it, so she may read the instance, but no task is offered to legal.
    started = _approval(client, heads["lena"], 60)
    assert (started["open_tasks"], started["open_task_count"]) == ([], 0)
    assert _instance(client, heads["mia"], started["id"])["open_task_count"] == 60


@pytest.mark.parametrize("value", ["0", "-1", "abc", str(2**31)])
def test_the_instance_filter_takes_only_ids_a_database_can_hold(client, heads, value):
    assert_error(client.get(f"/api/v1/tasks?instance={value}", headers=heads["mia"]), 400, "invalid_input")


def test_the_documents_describe_where_the_rest_is(client, heads):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    count = schemas["Instance"]["properties"]["open_task_count"]
    assert "open_task_count" in schemas["Instance"]["required"]
    assert "/api/v1/tasks?instance=<id>" in count["description"] and "50" in count["description"]


def test_a_bulk_client_completes_every_item_without_reading_answers(client, heads):
    # Prefer: return=minimal (RFC 7240): 204, no instance in the answer, the same work done and audited.
    started = _approval(client, heads["mia"], 3)
    first, second, third = _task_ids(client, heads["mia"], started["id"])
    minimal = {**heads["mia"], "Prefer": "respond-async, return=minimal; handling=strict"}
    done = client.post(f"/api/v1/tasks/{first}/complete", headers=minimal, json={"data": {"ok": True}})
    assert (done.status_code, done.data, done.headers["Preference-Applied"]) == (204, b"", "return=minimal")
    assert _instance(client, heads["mia"], started["id"])["open_task_count"] == 2
    # A retry with the same Idempotency-Key replays the 204 and completes nothing twice.
    keyed = {**minimal, "Idempotency-Key": "approve-second"}
    for _ in range(2):
        again = client.post(f"/api/v1/tasks/{second}/complete", headers=keyed, json={"data": {"ok": True}})
        assert (again.status_code, again.data, again.headers["Preference-Applied"]) == (204, b"", "return=minimal")
    assert again.headers["Idempotent-Replayed"] == "true"
    # Any other preference, or none, gets the instance as before.
    full = client.post(f"/api/v1/tasks/{third}/complete", headers={**heads["mia"], "Prefer": "return=representation"},
                       json={"data": {"ok": True}})
    assert full.status_code == 200 and full.get_json()["status"] == "completed"
    assert "Preference-Applied" not in full.headers
    history = client.get(f"/api/v1/process-instances/{started['id']}/history", headers=heads["dana"]).get_json()
    events = history["items"] if isinstance(history, dict) else history
    assert sum(1 for e in events if e["event"] == "task_completed") == 3
    # Bad input is refused the same way with or without the preference.
    assert_error(client.post(f"/api/v1/tasks/{first}/complete", headers=minimal, json={"data": {"ok": True}}), 409)
