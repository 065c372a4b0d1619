"""The sales API end to end: POST /leads starts the funnel process, deals and clients are read and changed as the
policy allows, absence is set over PATCH /users."""

import pytest
from sqlalchemy import func
from sqlalchemy import select

from app import services
from crm.models import Client
from crm.models import Deal
from engine.models import AuditEvent
from tests.api_support import assert_error
from tests.api_support import own_app
from tests.factories import bpmn_file

LEAD = {"channel": "web_form", "source": "site", "message": "Please call back",
        "contact": {"name": "Ivan Petrov", "email": "Ivan@Acme.ru", "phone": "+7 (999) 123-45-67"},
        "company": {"name": "Acme", "legal_form": "ООО", "inn": "7701234567", "region": "Moscow"},
        "line_items": [{"name": "Audit", "quantity": 2, "unit_price": "1500.50"}]}


@pytest.fixture
def app(db_url):
    """The app with the test diagram mini_funnel as its sales process."""
    with own_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test",
                  "DEALFLOW_SALES_PROCESS": "mini_funnel"}) as flask_app:
        yield flask_app


@pytest.fixture
def people(app, api_users):
    """A web form (integration), two managers and a supervisor of sales, an admin, a lawyer; the funnel deployed."""
    api_users.add("form", roles=("integration",), groups=())
    for name in ("ann", "bob"):
        api_users.add(name, roles=("manager",), groups=("sales",))
    api_users.add("sue", roles=("supervisor",), groups=("sales",))
    api_users.add("root", roles=("admin",), groups=())
    api_users.add("lena", roles=("lawyer",), groups=("legal",))
    services(app).catalogue.deploy([bpmn_file("mini_funnel.bpmn")], "setup")
    return api_users


def post_lead(client, people, **changes):
    response = client.post("/api/v1/leads", headers=people.headers("form"), json={**LEAD, **changes})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def count(app, model) -> int:
    with services(app).session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_lead_becomes_a_deal_whose_process_runs_with_the_owner_s_task(client, people):
    deal = post_lead(client, people)
    assert (deal["owner"], deal["stage"], deal["status"], deal["returning_client"]) == ("ann", "Qualified", "open",
                                                                                         False)
    assert deal["amount"] == "3001.00" and deal["contact"]["phone"] == "79991234567"
    assert deal["contact"]["email"] == "ivan@acme.ru" and deal["instance_id"] is not None
    tasks = client.get("/api/v1/tasks?assignee=me", headers=people.headers("ann")).get_json()["items"]
    assert [(t["business_key"], t["name"]) for t in tasks] == [(str(deal["id"]), "Work the deal")]
    instance = client.get(f"/api/v1/process-instances/{deal['instance_id']}", headers=people.headers("root"))
    assert instance.get_json()["variables"]["client_name"] == "Acme"
    stages = client.get(f"/api/v1/deals/{deal['id']}/stages", headers=people.headers("ann")).get_json()["items"]
    assert [(s["from_stage"], s["to_stage"]) for s in stages] == [(None, "New lead"), ("New lead", "Qualified")]


def test_a_returning_client_is_recognised_by_a_phone_written_another_way(client, people, app):
    first = post_lead(client, people)
    second = post_lead(client, people, contact={"name": "Ivan", "phone": "8 999 123 45 67"},
                       company={"name": "Acme Group"})
    assert second["returning_client"] and second["client"]["id"] == first["client"]["id"]
    assert second["owner"] == "bob"  # round-robin moved on
    body = client.get(f"/api/v1/clients/{first['client']['id']}", headers=people.headers("sue")).get_json()
    assert len(body["contacts"]) == 1 and {d["id"] for d in body["deals"]} == {first["id"], second["id"]}
    found = client.get("/api/v1/clients?q=+7 999 123-45-67", headers=people.headers("ann")).get_json()
    assert [c["id"] for c in found["items"]] == [first["client"]["id"]]


def test_a_search_that_is_neither_an_email_nor_a_phone_matches_by_name_and_never_fails(client, people, app):
    first = post_lead(client, people)
    # "\x1c" (schemathesis' find) is no name, email or phone: an empty search, like a blank one.
    for q, expected in (("acme", [first["client"]["id"]]), ("\x1c", [first["client"]["id"]]), ("zzz", [])):
        answer = client.get("/api/v1/clients", query_string={"q": q}, headers=people.headers("ann"))
        assert answer.status_code == 200, (q, answer.get_json())
        assert [c["id"] for c in answer.get_json()["items"]] == expected, q


def test_without_the_process_deployed_the_deal_is_kept_and_the_answer_says_what_to_do(client, api_users, app):
    headers = api_users.add("ann", roles=("manager",), groups=("sales",))
    body = assert_error(client.post("/api/v1/leads", headers=headers, json=LEAD), 422, "process_not_deployed")
    assert "Deploy the diagrams of bpmn/" in body["message"]
    deal = client.get(f"/api/v1/deals/{body['details']['deal_id']}", headers=headers).get_json()
    assert (deal["status"], deal["stage"], deal["instance_id"]) == ("open", "New lead", None)


def test_invalid_leads_are_400_naming_the_field(client, people, app):
    for body, field in (({**LEAD, "contact": {"name": "No way to reach"}}, "contact.email"),
                        ({**LEAD, "channel": "pigeon"}, "channel"),
                        ({**LEAD, "company": {**LEAD["company"], "inn": "12"}}, "company.inn"),
                        ({**LEAD, "colour": "red"}, "colour")):
        error = assert_error(client.post("/api/v1/leads", headers=people.headers("form"), json=body), 400,
                             "invalid_input")
        assert field in error["message"], error
    assert count(app, Deal) == 0


def test_nobody_available_is_409_and_saves_nothing(client, people, app):
    for name in ("ann", "bob"):
        response = client.patch(f"/api/v1/users/{name}", headers=people.headers("root"), json={"absent": True})
        assert response.status_code == 200 and response.get_json()["absent"] is True
    error = assert_error(client.post("/api/v1/leads", headers=people.headers("form"), json=LEAD), 409,
                         "no_manager_available")
    assert "'ann', 'bob' marked absent" in error["message"]
    assert (count(app, Deal), count(app, Client)) == (0, 0)


def test_managers_see_their_deals_supervisors_the_team_s(client, people):
    anns, bobs = post_lead(client, people), post_lead(client, people, contact={"email": "x@y.ru"})
    listed = {name: [d["id"] for d in client.get("/api/v1/deals", headers=people.headers(name)).get_json()["items"]]
              for name in ("ann", "bob", "sue", "root")}
    assert listed == {"ann": [anns["id"]], "bob": [bobs["id"]], "sue": [bobs["id"], anns["id"]],
                      "root": [bobs["id"], anns["id"]]}
    assert_error(client.get(f"/api/v1/deals/{bobs['id']}", headers=people.headers("ann")), 404)
    assert_error(client.get(f"/api/v1/deals/{anns['id']}", headers=people.headers("lena")), 404)
    assert_error(client.get("/api/v1/deals", headers=people.headers("form")), 403)
    mine = client.get("/api/v1/deals?owner=me&status=open&stage=Qualified", headers=people.headers("bob"))
    assert [d["id"] for d in mine.get_json()["items"]] == [bobs["id"]]


def test_an_owner_edits_the_deal_and_the_change_is_audited(client, people, app):
    deal = post_lead(client, people)
    response = client.patch(f"/api/v1/deals/{deal['id']}", headers=people.headers("ann"), json={
        "title": "Audit for Acme", "line_items": [{"name": "Audit", "quantity": 3, "unit_price": 1000}],
        "expected_close_date": "2026-04-30"})
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["title"], response.get_json()["amount"]) == ("Audit for Acme", "3000.00")
    with services(app).session_factory() as session:
        changed = session.scalars(select(AuditEvent.details).where(AuditEvent.event == "deal_updated")).one()
    assert set(changed["changed"]) == {"title", "line_items", "amount", "expected_close_date"}
    assert_error(client.patch(f"/api/v1/deals/{deal['id']}", headers=people.headers("ann"), json={"owner": "bob"}),
                 403)
    assert_error(client.patch(f"/api/v1/deals/{deal['id']}", headers=people.headers("bob"), json={"title": "x"}),
                 404)


def test_a_supervisor_hands_a_deal_over_and_its_open_task_follows(client, people, app):
    deal = post_lead(client, people)
    response = client.patch(f"/api/v1/deals/{deal['id']}", headers=people.headers("sue"), json={"owner": "bob"})
    assert response.status_code == 200 and response.get_json()["owner"] == "bob"
    tasks = client.get("/api/v1/tasks?assignee=me", headers=people.headers("bob")).get_json()["items"]
    assert [t["business_key"] for t in tasks] == [str(deal["id"])]
    with services(app).session_factory() as session:
        events = [e.event for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert events[-4:] == ["deal_updated", "deal_assigned", "task_assigned", "variables_changed"]
    # The process sees the new owner too: tasks it creates for ${owner} from now on go to bob.
    instance = services(app).engine.get_instance(deal["instance_id"])
    assert instance.variables["owner"] == "bob"
    with services(app).session_factory() as session:
        change = session.scalars(select(AuditEvent).where(AuditEvent.event == "variables_changed")).one()
    assert change.actor == "crm" and change.details["changes"] == {"owner": {"from": "ann", "to": "bob"}}
    assert change.details["reason"] == "deal handed over from ann by sue"
    assert_error(client.patch(f"/api/v1/deals/{deal['id']}", headers=people.headers("sue"),
                              json={"owner": "nobody"}), 422)


def test_a_won_deal_is_closed_for_edits(client, people):
    deal = post_lead(client, people)
    task = client.get("/api/v1/tasks?assignee=me", headers=people.headers("ann")).get_json()["items"][0]
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=people.headers("ann"),
                       json={"data": {"outcome": "proposal"}})
    assert done.status_code == 200, done.get_json()
    won = client.get(f"/api/v1/deals/{deal['id']}", headers=people.headers("ann")).get_json()
    assert (won["status"], won["stage"]) == ("won", "Won") and won["closed_at"]
    assert_error(client.patch(f"/api/v1/deals/{deal['id']}", headers=people.headers("ann"), json={"title": "x"}),
                 409)


def test_the_cli_marks_a_user_absent_and_back(app, cli, people):
    from crm.models import User

    cli("users", "absent", "ann")
    with services(app).session_factory() as session:
        assert session.scalar(select(User.absent).where(User.username == "ann")) is True
    cli("users", "absent", "ann", "--back")
    with services(app).session_factory() as session:
        assert session.scalar(select(User.absent).where(User.username == "ann")) is False


def test_a_web_form_that_retries_with_its_idempotency_key_makes_one_deal(client, people):
    headers = people.headers("form") | {"Idempotency-Key": "form-submission-7f3a"}
    first = client.post("/api/v1/leads", headers=headers, json=LEAD)
    again = client.post("/api/v1/leads", headers=headers, json=LEAD)
    assert first.status_code == again.status_code == 201
    assert first.get_json()["id"] == again.get_json()["id"] and count(client.application, Deal) == 1
