"""Service tasks over HTTP with the real built-in notify.send handler: notifications, incidents, retry."""

from tests.api_support import deploy
from tests.api_support import start

GOOD = {"notify_group": "legal", "company": "Acme LLC", "amount": 10}


def _setup(api_users, client):
    heads = {name: api_users.add(name, roles=roles, groups=groups) for name, roles, groups in (
        ("dana", ("designer",), ()), ("mia", ("manager",), ("sales",)), ("lena", ("lawyer",), ("legal",)),
        ("sue", ("supervisor",), ("sales",)), ("otto", ("auditor",), ()))}
    assert deploy(client, heads["dana"], "notify_call.bpmn").status_code == 201
    return heads


def _sweep(app):
    from app import services

    return services(app).engine.fire_due_jobs()


def test_notify_send_posts_one_notification_to_the_group_and_the_process_moves_on(app, client, api_users):
    heads = _setup(api_users, client)
    instance = start(client, heads["mia"], process_key="notify_call", variables=GOOD)
    assert _sweep(app) == 1
    notes = client.get("/api/v1/notifications", headers=heads["lena"]).get_json()["items"]
    assert [n["message"] for n in notes] == ["Contract for Acme LLC is ready for review"]
    view = client.get(f"/api/v1/process-instances/{instance['id']}", headers=heads["mia"]).get_json()
    assert [t["bpmn_id"] for t in view["open_tasks"]] == ["Task_follow_up"] and view["incidents"] == []


def test_a_failed_call_is_an_incident_on_the_instance_that_an_operator_retries(app, client, api_users):
    heads = _setup(api_users, client)
    instance = start(client, heads["mia"], process_key="notify_call", variables=GOOD | {"notify_group": None})
    _sweep(app)  # neither user nor group: the handler refuses, maxAttempts is 1

    listed = client.get("/api/v1/incidents", headers=heads["sue"]).get_json()
    assert listed["total"] == 1
    [incident] = listed["items"]
    assert incident["topic"] == "notify.send" and "exactly one of the parameters 'user' and 'group'" in \
        incident["message"]
    view = client.get(f"/api/v1/process-instances/{instance['id']}", headers=heads["sue"]).get_json()
    assert [i["id"] for i in view["incidents"]] == [incident["id"]]
    assert client.get("/api/v1/incidents", headers=heads["otto"]).status_code == 200  # auditors read
    denied = client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=heads["mia"])
    assert denied.status_code == 403 and "supervisor" in denied.get_json()["message"]
    assert client.get("/api/v1/incidents/999", headers=heads["sue"]).status_code == 404

    retried = client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=heads["sue"])
    assert retried.status_code == 200 and retried.get_json()["resolution"] == "retried"
    again = client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=heads["sue"])
    assert again.status_code == 409
    jobs = client.get(f"/api/v1/jobs?instance={instance['id']}", headers=heads["sue"]).get_json()["items"]
    assert [(j["kind"], j["status"], j["topic"]) for j in jobs] == [("service", "pending", "notify.send")]
    _sweep(app)  # the data is still wrong: a new incident
    assert client.get("/api/v1/incidents", headers=heads["sue"]).get_json()["total"] == 1
    everything = client.get("/api/v1/incidents?include_resolved=true", headers=heads["sue"]).get_json()
    assert everything["total"] == 2


def test_deploying_a_service_task_with_an_unknown_topic_is_refused_with_the_topic_named(client, api_users):
    dana = api_users.add("dana", roles=("designer",), groups=())
    from tests.factories import bpmn_file

    diagram = bpmn_file("notify_call.bpmn", **{'camunda:topic="notify.send"': 'camunda:topic="telephony.call"'})
    response = deploy(client, dana, diagram)
    assert response.status_code in (400, 422)
    body = response.get_json()
    assert "telephony.call" in str(body) and "Task_send" in str(body)
