"""Deadlines over HTTP: the reminders and overdue notices a user reads and marks read, and the operator controls over
pending jobs (list, fire now, reschedule), on an engine clock the test moves."""

from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from app import services
from tests.api_support import assert_error
from tests.api_support import deploy
from tests.api_support import snapshot
from tests.api_support import start


@pytest.fixture
def app(clocked_app):
    # `client` and `api_users` use this module's app: the engine on the test's clock.
    return clocked_app


@pytest.fixture
def team(client, api_users):
    dana = api_users.add("dana", roles=("designer",), groups=())
    assert deploy(client, dana).status_code == 201
    return {name: api_users.add(name, roles=roles, groups=groups) for name, roles, groups in (
        ("alice", ("manager",), ("sales",)), ("bob", ("manager",), ("sales",)), ("lena", ("lawyer",), ("legal",)),
        ("sue", ("supervisor",), ("sales", "legal")), ("root", ("admin",), ()))}


def _due(task: dict) -> datetime:
    return datetime.fromisoformat(task["due_at"])


def _notes(client, headers, query: str = "") -> dict:
    response = client.get(f"/api/v1/notifications{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _jobs(client, headers, query: str = "") -> dict:
    response = client.get(f"/api/v1/jobs{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_reminder_then_overdue_notice_reach_the_group_and_are_read_per_member(client, team, clock):
    task = start(client, team["alice"])["open_tasks"][0]
    # "Review deal" is due in 2 days, on the engine's clock; its reminder goes out 4 h before.
    assert _due(task) == clock() + timedelta(days=2)
    engine = services(client.application).engine
    clock.now = _due(task) - timedelta(hours=4)
    assert engine.fire_due_jobs() == 1
    page = _notes(client, team["alice"])
    assert page["total"] == 1 and page["next"] is None
    (note,) = page["items"]
    assert note["kind"] == "task_reminder" and note["to"] == "group:sales" and note["read"] is False
    assert "'Review deal' for DEAL-1" in note["message"] and note["task_id"] == task["id"]
    assert _notes(client, team["lena"])["items"] == []  # legal is not offered the task
    # Another group's notification does not exist for you.
    assert_error(client.post(f"/api/v1/notifications/{note['id']}/read", headers=team["lena"]), 404, "not_found")

    read = client.post(f"/api/v1/notifications/{note['id']}/read", headers=team["alice"])
    assert read.status_code == 204 and read.data == b""
    assert _notes(client, team["alice"])["items"][0]["read"] is True
    assert _notes(client, team["alice"], "?unread=true") == {"items": [], "page": 1, "per_page": 20, "total": 0,
                                                             "next": None}
    # A group's notification is read per member: Bob has not read it.
    assert _notes(client, team["bob"], "?unread=true")["total"] == 1
    # Marking it read again is harmless, with an Idempotency-Key or without.
    assert client.post(f"/api/v1/notifications/{note['id']}/read", headers=team["alice"]).status_code == 204
    keyed = {**team["alice"], "Idempotency-Key": "read-1"}
    for replayed in (False, True):
        response = client.post(f"/api/v1/notifications/{note['id']}/read", headers=keyed)
        assert response.status_code == 204 and ("Idempotent-Replayed" in response.headers) == replayed

    clock.now = _due(task) + timedelta(minutes=1)
    assert engine.fire_due_jobs() == 1
    unread = _notes(client, team["alice"], "?unread=true")
    assert [n["kind"] for n in unread["items"]] == ["task_overdue"] and unread["total"] == 1
    assert [n["kind"] for n in _notes(client, team["bob"])["items"]] == ["task_overdue", "task_reminder"]


def test_notifications_page_with_a_true_total(client, team, clock):
    engine = services(client.application).engine
    for n in range(3):
        start(client, team["alice"], business_key=f"DEAL-{n}")
    clock.advance(days=3)  # every reminder and overdue notice is due: 6 notifications to sales
    assert engine.fire_due_jobs() == 6
    first = _notes(client, team["bob"], "?per_page=4")
    assert first["total"] == 6 and len(first["items"]) == 4
    assert first["next"] == "/api/v1/notifications?per_page=4&page=2"
    second = _notes(client, team["bob"], first["next"].removeprefix("/api/v1/notifications"))
    assert len(second["items"]) == 2 and second["next"] is None
    ids = [n["id"] for n in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first, none twice
    client.post(f"/api/v1/notifications/{ids[0]}/read", headers=team["bob"])
    unread = _notes(client, team["bob"], "?unread=true&per_page=2")
    assert unread["total"] == 5 and ids[0] not in [n["id"] for n in unread["items"]]


def test_operator_lists_fires_and_reschedules_jobs(client, team, clock):
    instance = start(client, team["alice"])
    other = start(client, team["alice"], business_key="DEAL-2")
    due = _due(instance["open_tasks"][0])
    listed = _jobs(client, team["sue"], f"?instance={instance['id']}")
    assert listed["total"] == 2 and [j["kind"] for j in listed["items"]] == ["reminder", "overdue"]
    reminder, overdue = listed["items"]
    assert datetime.fromisoformat(reminder["due_at"]) == due - timedelta(hours=4)
    assert reminder["element_id"] == "Review_deal" and reminder["attempts"] == 0 and reminder["locked_by"] is None
    assert _jobs(client, team["root"])["total"] == 4
    cutoff = (due - timedelta(hours=1)).isoformat()
    assert [j["kind"] for j in _jobs(client, team["root"], f"?due_before={cutoff.replace('+', '%2B')}")["items"]] \
        == ["reminder", "reminder"]

    # Fire the reminder now, two days early: the group gets it at once.
    fire_now = {**team["sue"], "Idempotency-Key": "fire-reminder-1"}
    fired = client.post(f"/api/v1/jobs/{reminder['id']}/execute", headers=fire_now)
    assert fired.status_code == 200 and fired.get_json() == {"id": reminder["id"], "fired": True}
    assert [n["kind"] for n in _notes(client, team["alice"])["items"]] == ["task_reminder"]
    # A retry with the key gets the first answer; without one, the job is gone.
    again = client.post(f"/api/v1/jobs/{reminder['id']}/execute", headers=fire_now)
    assert again.get_json() == fired.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert_error(client.post(f"/api/v1/jobs/{reminder['id']}/execute", headers=team["sue"]), 404, "not_found")
    assert _notes(client, team["alice"])["total"] == 1

    # Give the deal a day more: the overdue notice moves, and does not fire at the old time.
    later = due + timedelta(days=1)
    moscow = later.astimezone(timezone(timedelta(hours=3))).isoformat()  # any zone; stored as UTC
    moved = client.put(f"/api/v1/jobs/{overdue['id']}/due", headers=team["root"], json={"due_at": moscow})
    assert moved.status_code == 200 and datetime.fromisoformat(moved.get_json()["due_at"]) == later
    clock.now = due + timedelta(hours=1)
    services(client.application).engine.fire_due_jobs()
    assert [j["id"] for j in _jobs(client, team["sue"], f"?instance={instance['id']}")["items"]] == [overdue["id"]]
    assert _jobs(client, team["sue"], f"?instance={other['id']}")["total"] == 0  # the other deal's went out on time

    events = client.get(f"/api/v1/process-instances/{instance['id']}/history?per_page=100", headers=team["sue"])
    audited = [(e["event"], e["actor"]) for e in events.get_json()["items"]]
    assert ("job_executed", "sue") in audited and ("job_rescheduled", "root") in audited


def test_a_manager_may_not_see_fire_or_move_jobs(client, team):
    instance = start(client, team["alice"])
    job_id = _jobs(client, team["sue"], f"?instance={instance['id']}")["items"][0]["id"]
    before = snapshot(services(client.application).session_factory)
    for method, path, body in (("get", "/api/v1/jobs", None), ("post", f"/api/v1/jobs/{job_id}/execute", None),
                               ("put", f"/api/v1/jobs/{job_id}/due", {"due_at": "2030-01-01T00:00:00Z"})):
        denied = assert_error(getattr(client, method)(path, headers=team["alice"], json=body), 403, "forbidden")
        assert "'admin' or 'supervisor'" in denied["message"]
    assert snapshot(services(client.application).session_factory) == before


@pytest.mark.parametrize(("body", "needle"), [
    ({"due_at": "2030-01-01T10:00:00"}, "time zone"),  # which zone an operator meant is not guessed
    ({"due_at": "9999-12-31T23:00:00-05:00"}, "out of range"),
    ({"due_at": "tomorrow"}, "'due_at'"),
    ({}, "'due_at'"),
])
def test_a_bad_due_time_is_400(client, team, body, needle):
    instance = start(client, team["alice"])
    job_id = _jobs(client, team["sue"], f"?instance={instance['id']}")["items"][0]["id"]
    response = client.put(f"/api/v1/jobs/{job_id}/due", headers=team["sue"], json=body)
    assert needle in assert_error(response, 400, "invalid_input")["message"]
