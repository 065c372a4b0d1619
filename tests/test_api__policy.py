"""The role x endpoint x ownership matrix, generated from `web.api.policy.POLICY`.

For every role and every operation, each kind of task or instance (mine, offered to my group, a teammate's, my
team's, a stranger's) is tried over HTTP. Expected: invisible -> 404, visible but not allowed -> 403, allowed ->
anything but 401/403/404 (the engine may still answer 409, e.g. claiming a teammate's task). A denied request must
change nothing: the audit chain, instances, tasks, users, definitions, tokens, jobs, event subscriptions and
notifications are compared before and after.
"""

import pytest

from app import db
from app import services
from bench.sqlcount import SqlCounter
from crm.leads import take_lead
from crm.models import Deal
from engine.actor import ROLES
from engine.actor import Actor
from engine.db import utcnow
from tests.api_support import DEAL_VARS
from tests.api_support import deploy
from tests.api_support import snapshot
from tests.factories import bpmn_file
from web.api.policy import POLICY
from web.api.policy import Op
from web.api.policy import Scope
from web.api.policy import reach

# The test's own statement of which object each case is, relative to the acting user (independent of scopes.py).
TASK_CASES = {
    "assigned": Scope.OWN,  # offered to sales, assigned to me
    "offered": Scope.INVOLVED,  # offered to sales (my group), unclaimed
    "teammate": Scope.INVOLVED,  # offered to sales, claimed by a teammate
    "team": Scope.TEAM,  # offered to legal (not my group), assigned to a teammate
    "foreign": Scope.ALL,  # offered to legal, unclaimed; started by an outsider
}
INSTANCE_CASES = {
    "started": Scope.OWN,  # I started it
    "involved": Scope.INVOLVED,  # an outsider started it; its task is offered to my group
    "team": Scope.TEAM,  # a teammate started it; its task is offered to legal
    "foreign": Scope.ALL,  # an outsider started it; its task is offered to legal
}
TASK_WRITES = {
    Op.TASK_CLAIM: lambda tid: ("post", f"/api/v1/tasks/{tid}/claim", None),
    Op.TASK_UNCLAIM: lambda tid: ("post", f"/api/v1/tasks/{tid}/unclaim", None),
    Op.TASK_ASSIGN: lambda tid: ("post", f"/api/v1/tasks/{tid}/assign", {"username": "mate"}),
    Op.TASK_COMPLETE: lambda tid: ("post", f"/api/v1/tasks/{tid}/complete", {"data": {"approved": True}}),
}
GLOBAL = [
    (Op.DEPLOY, "post", "/api/v1/deployments", "deploy"),
    (Op.DEFINITION_READ, "get", "/api/v1/process-definitions", None),
    (Op.DEFINITION_READ, "get", "/api/v1/process-definitions/deal_approval/versions/latest/xml", None),
    (Op.INSTANCE_START, "post", "/api/v1/process-instances", {"process_key": "deal_approval", "variables": DEAL_VARS}),
    (Op.AUDIT_VERIFY, "get", "/api/v1/audit/verify", None),
    (Op.USER_MANAGE, "get", "/api/v1/users", None),
    (Op.USER_MANAGE, "post", "/api/v1/users", {"username": "newcomer", "roles": ["manager"]}),
    (Op.USER_MANAGE, "patch", "/api/v1/users/actor", {"roles": ["admin"]}),  # promoting oneself
    (Op.USER_MANAGE, "patch", "/api/v1/users/mate", {"active": False}),
]


# Operations on no task or instance that need something to act on: each request is built on a fresh one, because
# an allowed request uses it up (a message delivered, a job fired). Notifications are the user's own (OWN).
EVENTS_AND_JOBS = [
    (Op.MESSAGE_SEND, Scope.ALL, lambda w: ("post", "/api/v1/messages", {
        "name": "contract signed", "business_key": w.waiting_for_signature(), "payload": {"signed_by": "Ivan"}})),
    (Op.MESSAGE_SEND, Scope.ALL, lambda w: ("post", "/api/v1/messages", {  # a message start event
        "name": "lead received", "business_key": "LEAD-1"})),
    (Op.SIGNAL_SEND, Scope.ALL, lambda w: ("post", "/api/v1/signals", {
        "name": "price list updated", "payload": {"list": w.waiting_for_prices()}})),
    (Op.NOTIFICATION_READ, Scope.OWN, lambda w: ("get", "/api/v1/notifications?unread=true", None)),
    (Op.NOTIFICATION_READ, Scope.OWN, lambda w: ("post", f"/api/v1/notifications/{w.reminder()}/read", None)),
    (Op.JOB_READ, Scope.ALL, lambda w: ("get", f"/api/v1/jobs?instance={w.instance('out', 'deal_approval')['id']}",
                                        None)),
    (Op.JOB_EXECUTE, Scope.ALL, lambda w: ("post", f"/api/v1/jobs/{w.job()}/execute", None)),
    (Op.JOB_RESCHEDULE, Scope.ALL, lambda w: ("put", f"/api/v1/jobs/{w.job()}/due",
                                              {"due_at": "2030-01-01T10:00:00+03:00"})),
    (Op.INCIDENT_READ, Scope.ALL, lambda w: ("get", "/api/v1/incidents", None)),
    (Op.INCIDENT_READ, Scope.ALL, lambda w: ("get", f"/api/v1/incidents/{w.incident()}", None)),
    (Op.INCIDENT_RETRY, Scope.ALL, lambda w: ("post", f"/api/v1/incidents/{w.incident()}/retry", None)),
    # The sales process is not deployed here: an allowed lead is kept as a deal and answered 422.
    (Op.LEAD_CREATE, Scope.ALL, lambda w: ("post", "/api/v1/leads", {
        "channel": "web_form", "contact": {"email": "lead@client.ru"}, "company": {"name": "Client"}})),
    # Deals the actor owns (OWN): every role that reads or changes deals at all may.
    (Op.DEAL_READ, Scope.OWN, lambda w: ("get", "/api/v1/deals", None)),
    (Op.DEAL_READ, Scope.OWN, lambda w: ("get", f"/api/v1/deals/{w.deal()}", None)),
    (Op.DEAL_READ, Scope.OWN, lambda w: ("get", f"/api/v1/deals/{w.deal()}/stages", None)),
    (Op.DEAL_UPDATE, Scope.OWN, lambda w: ("patch", f"/api/v1/deals/{w.deal()}", {"title": "Renamed"})),
    (Op.CLIENT_READ, Scope.ALL, lambda w: ("get", "/api/v1/clients?q=acme", None)),
    (Op.CLIENT_READ, Scope.ALL, lambda w: ("get", f"/api/v1/clients/{w.client_of(w.deal())}", None)),
]


def test_every_role_is_in_the_table():
    assert set(POLICY) == set(ROLES)


def test_the_matrix_tries_every_operation():
    tried = ({op for op, *_ in GLOBAL} | set(TASK_WRITES) | {op for op, *_ in EVENTS_AND_JOBS}
             | {Op.TASK_READ, Op.INSTANCE_READ, Op.INSTANCE_CANCEL})
    assert tried == set(Op)


class World:
    """The acting user, a teammate and an outsider, two processes, and tasks arranged case by case."""

    def __init__(self, app, client, api_users, role):
        self.client, self.svc = client, services(app)
        self.headers = api_users.add("actor", roles=(role,), groups=("sales",))
        api_users.add("mate", roles=("manager",), groups=("sales",))
        api_users.add("out", roles=("lawyer",), groups=("legal",))
        _, legal_xml = bpmn_file("deal_approval.bpmn", **{'id="deal_approval"': 'id="deal_legal"',
                                                   'candidateGroups="sales"': 'candidateGroups="legal"'})
        self.svc.catalogue.deploy([bpmn_file("deal_approval.bpmn"), ("deal_legal.bpmn", legal_xml),
                                   bpmn_file("messages.bpmn"), bpmn_file("notify_call.bpmn")], "setup")
        self.deals = 0
        self.actor = Actor("actor", frozenset({role}), frozenset({"sales"}))

    def instance(self, starter: str, key: str) -> dict:
        who = Actor(starter, frozenset({"manager"}), frozenset())
        view = self.svc.engine.start_instance(key, actor=who, business_key="DEAL", variables=DEAL_VARS)
        return {"id": view.id, "task": view.open_tasks[0].id}

    def task(self, case: str) -> str:
        key = "deal_approval" if case in ("assigned", "offered", "teammate") else "deal_legal"
        task_id = self.instance("out", key)["task"]
        holder = {"assigned": "actor", "teammate": "mate", "team": "mate"}.get(case)
        if holder:
            self.svc.engine.assign_task(task_id, holder, actor=Actor.system())
        return task_id

    def instance_for(self, case: str) -> int:
        starter = {"started": "actor", "team": "mate"}.get(case, "out")
        return self.instance(starter, "deal_approval" if case == "involved" else "deal_legal")["id"]

    def waiting_for_signature(self) -> str:
        """A new deal whose contract_signing instance waits for the message "contract signed"; its business key."""
        self.deals += 1
        key = f"DEAL-M{self.deals}"
        view = self.svc.engine.start_instance("contract_signing", actor=Actor.system("out"), business_key=key)
        self.svc.engine.complete_task(view.open_tasks[0].id, actor=Actor("mate", frozenset({"manager"}),
                                                                         frozenset({"sales"})), data={})
        return key

    def waiting_for_prices(self) -> str:
        """A new deal whose instance waits for the signal "price list updated"."""
        key = self.waiting_for_signature()
        self.svc.engine.correlate_message("contract signed", business_key=key, actor=Actor.system())
        return key

    def job(self) -> int:
        """A new pending job: the reminder of a fresh deal_approval task."""
        instance_id = self.instance("out", "deal_approval")["id"]
        return next(j["id"] for j in self.svc.engine.list_jobs(instance_id=instance_id) if j["kind"] == "reminder")

    def incident(self) -> int:
        """A new open incident: a notify.send call with neither user nor group fails for good at once."""
        who = Actor("out", frozenset({"manager"}), frozenset())
        view = self.svc.engine.start_instance("notify_call", actor=who, business_key="DEAL", variables={
            "notify_group": None, "company": "Acme", "amount": 1})
        self.svc.engine.fire_due_jobs()
        return self.svc.engine.list_incidents(instance_id=view.id)[0]["id"]

    def reminder(self) -> int:
        """A new unread reminder to the actor's group (sales), sent by firing a fresh job."""
        self.svc.engine.execute_job(self.job(), actor=Actor.system())
        return self.svc.engine.list_notifications("actor", frozenset({"sales"}), unread_only=True)[0]["id"]

    def deal(self) -> int:
        """A new deal owned by the actor (taken as a lead, then given to them)."""
        self.deals += 1
        with self.svc.session_factory() as session, session.begin():
            lead = take_lead(session, utcnow(), channel="call", source=None, message=None,
                             contact={"email": f"buyer{self.deals}@acme.ru"}, company={"name": "Acme"})
            lead.deal.owner = "actor"
            return lead.deal.id

    def client_of(self, deal_id: int) -> int:
        with self.svc.session_factory() as session:
            return session.get(Deal, deal_id).client_id

    def call(self, method: str, path: str, body):
        if body == "deploy":
            return deploy(self.client, self.headers)
        return getattr(self.client, method)(path, headers=self.headers, json=body)

    def expect(self, op: Op, relation: Scope, read: Op | None, method, path, body, label: str) -> bool:
        """Send the request, check the status against the table; True when it was allowed (state may change)."""
        before = snapshot(self.svc.session_factory)
        response = self.call(method, path, body)
        # An operation on no particular object (read=None) hides nothing: a denial there is always 403.
        visible = read is None or relation <= reach(self.actor, read)
        allowed = relation <= reach(self.actor, op)
        if not visible or not allowed:
            wanted = 404 if not visible else 403
            assert response.status_code == wanted, (label, response.get_json())
            assert snapshot(self.svc.session_factory) == before, f"{label}: a denied request changed something"
            return False
        assert response.status_code not in (401, 403, 404), (label, response.get_json())
        assert response.status_code < 500, (label, response.get_json())
        return True


@pytest.mark.parametrize("role", ROLES)
def test_global_operations(app, client, api_users, role):
    world = World(app, client, api_users, role)
    for op, method, path, body in GLOBAL:
        world.expect(op, Scope.ALL, None, method, path, body, f"{role} {method} {path}")


@pytest.mark.parametrize("role", ROLES)
def test_task_operations(app, client, api_users, role):
    world = World(app, client, api_users, role)
    read_reach = reach(world.actor, Op.TASK_READ)
    for case, relation in TASK_CASES.items():
        task_id = world.task(case)
        listed = {t["id"] for t in client.get("/api/v1/tasks?per_page=100", headers=world.headers)
                  .get_json()["items"]}
        assert (task_id in listed) == (relation <= read_reach), f"{role} list shows {case} task"
        world.expect(Op.TASK_READ, relation, Op.TASK_READ, "get", f"/api/v1/tasks/{task_id}", None,
                     f"{role} read {case}")
        for op, request in TASK_WRITES.items():
            if world.expect(op, relation, Op.TASK_READ, *request(task_id), f"{role} {op} {case}"):
                task_id = world.task(case)  # it may have changed: the next operation gets a fresh one


@pytest.mark.parametrize("role", ROLES)
def test_instance_operations(app, client, api_users, role):
    world = World(app, client, api_users, role)
    read_reach = reach(world.actor, Op.INSTANCE_READ)
    for case, relation in INSTANCE_CASES.items():
        instance_id = world.instance_for(case)
        listed = {i["id"] for i in client.get("/api/v1/process-instances?per_page=100", headers=world.headers)
                  .get_json()["items"]}
        assert (instance_id in listed) == (relation <= read_reach), f"{role} list shows {case} instance"
        for path in (f"/api/v1/process-instances/{instance_id}", f"/api/v1/process-instances/{instance_id}/history"):
            world.expect(Op.INSTANCE_READ, relation, Op.INSTANCE_READ, "get", path, None, f"{role} read {case}")
        world.expect(Op.INSTANCE_CANCEL, relation, Op.INSTANCE_READ, "post",
                     f"/api/v1/process-instances/{instance_id}/cancel", {"reason": "matrix"}, f"{role} cancel {case}")


@pytest.mark.parametrize("role", ROLES)
def test_event_notification_and_job_operations(app, client, api_users, role):
    world = World(app, client, api_users, role)
    for op, relation, request in EVENTS_AND_JOBS:
        method, path, body = request(world)
        world.expect(op, relation, None, method, path, body, f"{role} {method} {path}")


def test_a_task_command_decides_access_inside_its_own_transaction(app, client, api_users):
    # The access policy is asked inside the command, about the row the command read and changes: no read of the
    # task before it (one statement less, and no reassignment between a check and the command slips through).
    dana = api_users.add("dana", roles=("designer",), groups=())
    mia = api_users.add("mia", roles=("manager",), groups=("sales",))
    lena = api_users.add("lena", roles=("manager",), groups=("legal",))
    assert deploy(client, dana, "approvals.bpmn").status_code == 201
    started = client.post("/api/v1/process-instances", headers=mia, json={
        "process_key": "approvals", "variables": {"items": ["a", "b", "c"]}}).get_json()
    first, second, third = (t["id"] for t in started["open_tasks"])
    counter = SqlCounter()
    with app.app_context():
        counter.attach(db.engine)
    try:
        for path, headers, status in ((f"{first}/claim", mia, 200), (f"{first}/complete", mia, 200),
                                      (f"{second}/complete", lena, 404), (f"{third}/claim", lena, 404)):
            with counter.counting():
                response = client.post(f"/api/v1/tasks/{path}", headers=headers,
                                       json={"data": {"ok": True}} if path.endswith("complete") else None)
            assert response.status_code == status, (path, response.get_json())
            assert not [sql for sql in counter.outside if "human_task" in sql], (path, counter.outside)
            [command] = [tx for tx in counter.transactions if any("human_task" in sql for sql in tx.sql)]
            assert command.wrote == (status == 200), path
    finally:
        with app.app_context():
            counter.detach(db.engine)
    still_open = client.get(f"/api/v1/tasks?instance={started['id']}", headers=dana).get_json()["items"]
    assert [t["id"] for t in still_open] == [second, third] and all(t["assignee"] is None for t in still_open)


def test_a_role_without_the_operation_anywhere_is_refused_before_any_write_transaction(app, client, api_users):
    # A designer may read every task and complete none, an integration account reads none: their refusals come from
    # a plain read, and no command takes the write lock (on SQLite the whole database's) only to refuse.
    dana = api_users.add("dana", roles=("designer",), groups=())
    bot = api_users.add("bot", roles=("integration",), groups=())
    mia = api_users.add("mia", roles=("manager",), groups=("sales",))
    assert deploy(client, dana, "approvals.bpmn").status_code == 201
    started = client.post("/api/v1/process-instances", headers=mia, json={
        "process_key": "approvals", "variables": {"items": ["a"]}}).get_json()
    task_id = started["open_tasks"][0]["id"]
    counter = SqlCounter()
    with app.app_context():
        counter.attach(db.engine)
    try:
        for headers, action, body, status in ((dana, "complete", {"data": {"ok": True}}, 403),
                                              (dana, "claim", None, 403),
                                              (bot, "complete", {"data": {"ok": True}}, 404),
                                              (bot, "assign", {"username": "mia"}, 404)):
            with counter.counting():
                response = client.post(f"/api/v1/tasks/{task_id}/{action}", headers=headers, json=body)
            assert response.status_code == status, (action, response.get_json())
            assert not any(tx.locked for tx in counter.transactions), (action, counter.transactions)
    finally:
        with app.app_context():
            counter.detach(db.engine)
    message = client.post(f"/api/v1/tasks/{task_id}/complete", headers=dana, json={"data": {"ok": True}}).get_json()
    assert message["message"].startswith("'dana' may not complete the task 'Approve line item'"), message
    assert client.get(f"/api/v1/tasks/{task_id}", headers=mia).get_json()["status"] == "open"
