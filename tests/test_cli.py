"""The operator's CLI drives a diagram with an exclusive gateway and two user tasks from start to end."""

import json

from sqlalchemy import update

from engine.models import AuditEvent
from tests.factories import BPMN_DIR


def _json(result):
    assert result.exit_code == 0, result.output + (result.stderr if hasattr(result, "stderr") else "")
    return json.loads(result.stdout)


def _users(cli):
    _json(cli("users", "create", "alice", "--role", "manager", "--group", "sales", "--password", "alice-pass-1",
              "--json"))
    _json(cli("users", "create", "lena", "--role", "lawyer", "--group", "legal", "--password", "lena-pass-1", "--json"))
    _json(cli("users", "create", "dana", "--role", "designer", "--password", "dana-pass-1", "--json"))


def test_cli_round_trip(cli):
    _users(cli)
    deployed = _json(cli("deploy", str(BPMN_DIR / "deal_approval.bpmn"), "--as", "dana", "--json"))
    assert [(d["key"], d["version"]) for d in deployed["created"]] == [("deal_approval", 1)]
    again = _json(cli("deploy", str(BPMN_DIR / "deal_approval.bpmn"), "--json"))
    assert again["created"] == [] and [d["version"] for d in again["unchanged"]] == [1]
    assert [d["key"] for d in _json(cli("definitions", "--json"))] == ["deal_approval"]

    started = _json(cli("start", "deal_approval", "--business-key", "DEAL-7", "--var", "amount=20000",
                        "--var", "customer=Acme", "--as", "dana", "--json"))
    assert started["status"] == "running" and started["variables"]["net"] == 18000

    inbox = _json(cli("tasks", "--user", "alice", "--json"))
    assert [t["name"] for t in inbox] == ["Review deal"]
    assert _json(cli("tasks", "--user", "lena", "--json")) == []
    after = _json(cli("complete", inbox[0]["id"], "--as", "alice", "--data", '{"approved": true}', "--json"))
    assert [t["name"] for t in after["open_tasks"]] == ["Prepare contract"]

    contract = _json(cli("tasks", "--user", "lena", "--json"))[0]
    done = _json(cli("complete", contract["id"], "--as", "lena", "--json"))
    assert done["status"] == "completed"

    shown = _json(cli("show", str(started["id"]), "--json"))
    assert [e["event"] for e in shown["history"]][-2:] == ["milestone_reached", "instance_completed"]
    text = cli("show", str(started["id"]))
    assert "Status:   completed" in text.stdout and "gateway_path_taken" in text.stdout
    assert cli("audit", "verify").exit_code == 0


def test_cli_errors_are_one_sentence_and_non_zero(cli):
    _users(cli)
    missing = cli("start", "nope", "--as", "dana")
    assert missing.exit_code == 1 and "no process 'nope'" in missing.stderr
    unknown_user = cli("start", "nope", "--as", "ghost")
    assert unknown_user.exit_code == 1 and "no user 'ghost'" in unknown_user.stderr
    cli("deploy", str(BPMN_DIR / "deal_approval.bpmn"))
    task_id = _json(cli("start", "deal_approval", "--var", "amount=1", "--as", "dana", "--json"))["open_tasks"][0]["id"]
    bad = cli("complete", task_id, "--as", "alice", "--data", "{not json")
    assert bad.exit_code == 1 and "not valid JSON" in bad.stderr
    forbidden = cli("complete", task_id, "--as", "lena", "--data", '{"approved": true}')
    assert forbidden.exit_code == 1 and "may not work on" in forbidden.stderr
    invalid = cli("complete", task_id, "--as", "alice", "--data", '{"approved": "maybe"}')
    assert invalid.exit_code == 1 and "'approved' must be true or false" in invalid.stderr


def test_cli_audit_verify_catches_tampering(cli, app):
    _users(cli)
    cli("deploy", str(BPMN_DIR / "deal_approval.bpmn"))
    _json(cli("start", "deal_approval", "--var", "amount=1", "--as", "dana", "--json"))
    from app import services

    with services(app).session_factory() as s, s.begin():
        s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="mallory"))
    result = cli("audit", "verify")
    assert result.exit_code == 1 and "Event #2 was changed" in result.stderr


def test_cli_message_signal_and_sweep(cli):
    _users(cli)
    _json(cli("deploy", str(BPMN_DIR / "messages.bpmn"), "--json"))
    started = _json(cli("message", "lead received", "--business-key", "LEAD-9", "--payload", '{"phone": "+7"}',
                        "--as", "dana", "--json"))
    assert len(started["instances"]) == 1 and started["started"] is True
    shown = _json(cli("show", str(started["instances"][0]), "--json"))
    assert shown["variables"]["phone"] == "+7" and shown["open_tasks"][0]["bpmn_id"] == "Call_lead"
    nobody = cli("message", "contract signed", "--business-key", "LEAD-9", "--as", "dana")
    assert nobody.exit_code == 1 and "Nobody waits for message 'contract signed'" in nobody.stderr
    assert _json(cli("signal", "price list updated", "--as", "dana", "--json")) == {"instances": []}
    assert _json(cli("sweep", "--json")) == {"fired": 0}


def test_cli_incidents_list_and_retry(cli):
    _users(cli)
    _json(cli("users", "create", "sue", "--role", "supervisor", "--group", "sales", "--password", "sue-pass-12",
              "--json"))
    _json(cli("deploy", str(BPMN_DIR / "notify_call.bpmn"), "--json"))
    started = _json(cli("start", "notify_call", "--business-key", "DEAL-5", "--var", "company=Acme",
                        "--var", "amount=1", "--as", "alice", "--json"))
    assert _json(cli("sweep", "--json")) == {"fired": 0}  # notify_group unset: the call fails for good
    [incident] = _json(cli("incidents", "list", "--json"))
    assert incident["instance_id"] == started["id"] and "notify_group" in incident["message"]
    listed = cli("incidents", "list")
    assert f"#{incident['id']} instance {started['id']} Task_send (notify.send)" in listed.stdout
    denied = cli("incidents", "retry", str(incident["id"]), "--as", "alice")
    assert denied.exit_code == 1 and "only admins and supervisors" in denied.stderr
    retried = _json(cli("incidents", "retry", str(incident["id"]), "--as", "sue", "--json"))
    assert retried["resolution"] == "retried"
    assert _json(cli("incidents", "list", "--json")) == []


def test_setup_demo_deploys_the_shipped_process_and_fills_the_inboxes_once(cli, app):
    from app import services

    first = cli("setup-demo")
    assert first.exit_code == 0, first.stderr
    assert "deployed sales_funnel v1" in first.stdout and first.stdout.count("lead -> deal") == 3
    engine = services(app).engine
    owners = {t.assignee for t in engine.list_tasks() if t.bpmn_id == "First_contact"}
    assert owners == {"alice", "bob"}  # round-robin over the demo managers
    again = cli("setup-demo")
    assert again.exit_code == 0 and "lead -> deal" not in again.stdout and "deployed" not in again.stdout
    assert len(engine.list_instances()) == 3


def test_show_says_how_many_open_tasks_it_does_not_list(cli):
    # A multi-instance approval over 55 items: the view lists 50, and the rest are one command away.
    _users(cli)
    cli("deploy", str(BPMN_DIR / "approvals.bpmn"))
    items = json.dumps([f"item-{n}" for n in range(55)])
    started = _json(cli("start", "approvals", "--var", f"items={items}", "--as", "dana", "--json"))
    assert (len(started["open_tasks"]), started["open_task_count"]) == (50, 55)
    text = cli("show", str(started["id"])).stdout
    assert f"... and 5 more (tasks --instance {started['id']})" in text
    listed = _json(cli("tasks", "--instance", str(started["id"]), "--json"))
    assert [t["id"] for t in listed[:50]] == [t["id"] for t in started["open_tasks"]] and len(listed) == 55
    assert len(_json(cli("tasks", "--instance", str(started["id"]), "--user", "lena", "--json"))) == 0
    small = _json(cli("start", "approvals", "--var", 'items=["a", "b"]', "--as", "dana", "--json"))
    assert "more (tasks" not in cli("show", str(small["id"])).stdout
