"""The API over real HTTP: a threaded WSGI server on a free port, driven by `requests` from several threads."""

import threading
from pathlib import Path

import pytest
import requests
from sqlalchemy import func
from sqlalchemy import select

from app import services
from engine.models import ProcessInstance

BPMN = Path(__file__).parent / "bpmn" / "deal_approval.bpmn"
START = {"process_key": "deal_approval", "business_key": "DEAL-42", "variables": {"amount": 20000, "customer": "Acme"}}


@pytest.fixture
def http(live_server, api_users):
    """A session per user name, logged in with a real password over HTTP."""
    for name, roles, groups in (("dana", ("designer",), ()), ("alice", ("manager",), ("sales",)),
                                ("lena", ("lawyer",), ("legal",))):
        api_users.add(name, roles=roles, groups=groups, password=f"{name}-demo-pass")

    def login(username: str) -> requests.Session:
        session = requests.Session()
        response = session.post(f"{live_server}/api/v1/tokens",
                                json={"username": username, "password": f"{username}-demo-pass"}, timeout=10)
        assert response.status_code == 201, response.text
        session.headers["Authorization"] = f"Bearer {response.json()['token']}"
        return session

    return login


def _deploy(base: str, dana: requests.Session) -> requests.Response:
    with BPMN.open("rb") as fh:
        return dana.post(f"{base}/api/v1/deployments", files=[("file", ("deal_approval.bpmn", fh))], timeout=30)


def test_round_trip_deploy_start_claim_complete_history(live_server, http):
    base, dana, alice, lena = live_server, http("dana"), http("alice"), http("lena")
    deployed = _deploy(base, dana)
    assert deployed.status_code == 201 and deployed.json()["created"][0]["key"] == "deal_approval"
    started = alice.post(f"{base}/api/v1/process-instances", json=START, timeout=30)
    assert started.status_code == 201 and started.headers["Location"].endswith(f"/{started.json()['id']}")
    inbox = alice.get(f"{base}/api/v1/tasks", params={"candidate_group": "sales", "sort": "due"}, timeout=10).json()
    review = inbox["items"][0]
    assert review["name"] == "Review deal" and inbox["total"] == 1
    form = alice.get(f"{base}/api/v1/tasks/{review['id']}", timeout=10).json()["form"]
    approved = next(f for f in form if f["id"] == "approved")
    assert approved["type"] == "boolean" and "required" in approved["validation"]
    assert alice.post(f"{base}/api/v1/tasks/{review['id']}/claim", timeout=10).json()["assignee"] == "alice"
    after = alice.post(f"{base}/api/v1/tasks/{review['id']}/complete", json={"data": {"approved": True}}, timeout=30)
    assert after.status_code == 200
    # Lena never saw the sales task; now the contract is hers (legal group).
    hidden = lena.get(f"{base}/api/v1/tasks/{review['id']}", timeout=10)
    # Invisible means invisible: the 404 does not even name the task.
    assert hidden.status_code == 404 and "Review deal" not in hidden.json()["message"]
    contract = lena.get(f"{base}/api/v1/tasks", timeout=10).json()["items"]
    assert [t["name"] for t in contract] == ["Prepare contract"]
    done = lena.post(f"{base}/api/v1/tasks/{contract[0]['id']}/complete", json={"data": {}}, timeout=30).json()
    assert done["status"] == "completed"
    history = alice.get(f"{base}/api/v1/process-instances/{done['id']}/history", timeout=10).json()
    assert [e["event"] for e in history["items"]] == [
        "instance_started", "task_created", "task_claimed", "task_completed", "gateway_path_taken", "task_created",
        "task_completed", "milestone_reached", "instance_completed"]
    assert history["items"][3]["actor"] == "alice" and history["items"][3]["details"]["data"]["approved"] is True


def _race(count: int, send) -> list[int]:
    """Run `send` from `count` threads released at the same moment; their status codes."""
    barrier, codes = threading.Barrier(count), []

    def worker():
        barrier.wait()
        codes.append(send().status_code)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return sorted(codes)


def test_concurrent_completion_exactly_one_wins(live_server, http):
    base, alice = live_server, http("alice")
    assert _deploy(base, http("dana")).status_code == 201
    task_id = alice.post(f"{base}/api/v1/process-instances", json=START, timeout=30).json()["open_tasks"][0]["id"]
    codes = _race(6, lambda: requests.post(f"{base}/api/v1/tasks/{task_id}/complete", json={"data": {"approved": True}},
                                           headers=alice.headers, timeout=60))
    assert codes == [200] + [409] * 5


def test_concurrent_retries_with_one_key_run_once(live_server, http, app):
    base, alice = live_server, http("alice")
    assert _deploy(base, http("dana")).status_code == 201
    headers = {**alice.headers, "Idempotency-Key": "start-deal-42"}
    codes = _race(5, lambda: requests.post(f"{base}/api/v1/process-instances", json=START, headers=headers, timeout=60))
    # One ran; each other retry either waited for nothing (409, still in flight) or got the replay (201).
    assert set(codes) <= {201, 409} and 201 in codes
    with services(app).session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ProcessInstance)) == 1


def test_oversized_upload_over_http_is_413(live_server, http, app):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    dana = http("dana")
    response = dana.post(f"{live_server}/api/v1/deployments", timeout=30,
                         files=[("file", ("huge.bpmn", b"<x>" + b" " * (200 * 1024) + b"</x>"))])
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large" and set(response.json()) == {"error", "message", "details"}
