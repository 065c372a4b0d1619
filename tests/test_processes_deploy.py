"""Deploying through the catalogue: versions, call activities across files, and every refused input."""

import threading
import time

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import create_engine
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text

from engine.errors import Conflict
from engine.errors import DefinitionInvalid
from engine.errors import NotFound
from engine.errors import PayloadTooLarge
from engine.models import AuditEvent
from engine.models import Deployment
from engine.models import ProcessDefinition
from engine.serialization import specs_from_json
from processes.catalogue import Catalogue
from tests.factories import bpmn_file

QUOTE = "quote_review.bpmn"


def line_of(data: bytes, needle: str) -> int:
    """The 1-based line of the first occurrence of `needle`, so tests do not hard-code line numbers."""
    text = data.decode()
    assert needle in text, needle
    return text[: text.index(needle)].count("\n") + 1


def counts(session_factory) -> tuple[int, int, int]:
    with session_factory() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (ProcessDefinition, Deployment, AuditEvent))


def refused(session_factory, files, **kwargs) -> list[dict]:
    """Deploy, expect DefinitionInvalid, and check that nothing at all was stored."""
    before = counts(session_factory)
    with pytest.raises(DefinitionInvalid) as caught:
        Catalogue(session_factory).deploy(files, "designer", **kwargs)
    assert counts(session_factory) == before
    problems = caught.value.details["problems"]
    assert problems and caught.value.message.startswith(f"The deployment was refused: {len(problems)} problem")
    return problems


def test_identical_bytes_are_a_no_op_and_changed_bytes_a_new_version(session_factory, clock):
    catalogue = Catalogue(session_factory, clock)
    first = catalogue.deploy([bpmn_file(QUOTE)], "dora")
    assert [(d.key, d.version) for d in first.created] == [("quote_review", 1)]
    assert first.created[0].deployed_at == clock.now and first.deployment_id is not None

    # The same bytes again: nothing new, not even a deployment row or an audit event.
    before = counts(session_factory)
    again = catalogue.deploy([bpmn_file(QUOTE)], "dora")
    assert again.created == [] and [d.version for d in again.unchanged] == [1] and again.deployment_id is None
    assert counts(session_factory) == before

    clock.advance(hours=1)
    changed = bpmn_file(QUOTE, **{'name="Quote review"': 'name="Quote review (v2)"'})
    second = catalogue.deploy([changed], "erik")
    assert [(d.key, d.version, d.name) for d in second.created] == [("quote_review", 2, "Quote review (v2)")]

    # Version 1 is immutable: still there, with its own bytes.
    v1, xml1 = catalogue.get_xml("quote_review", 1)
    assert v1.name == "Quote review" and xml1 == bpmn_file(QUOTE)[1].decode()
    latest, xml2 = catalogue.get_xml("quote_review")
    assert latest.version == 2 and "(v2)" in xml2
    assert [d.version for d in catalogue.list_definitions("quote_review")] == [2, 1]
    with session_factory() as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [(e.event, e.actor, e.details["version"]) for e in events] == [
        ("definition_deployed", "dora", 1), ("definition_deployed", "erik", 2)]
    assert events[1].details["file"] == QUOTE and len(events[1].details["sha256"]) == 64


def test_unknown_key_or_version_is_not_found(session_factory):
    catalogue = Catalogue(session_factory)
    with pytest.raises(NotFound, match="No process 'nope' is deployed"):
        catalogue.get_xml("nope")
    catalogue.deploy([bpmn_file(QUOTE)], "dora")
    with pytest.raises(NotFound, match="has no version 7; the latest is version 1"):
        catalogue.get_xml("quote_review", 7)


def test_list_definitions_groups_by_key_latest_first(session_factory):
    catalogue = Catalogue(session_factory)
    catalogue.deploy([bpmn_file("order_caller.bpmn"), bpmn_file("contract_review.bpmn")], "dora")
    catalogue.deploy([bpmn_file("contract_review.bpmn", **{'"Contract review"': '"Contract check"'})], "dora")
    listed = [(d.key, d.version) for d in catalogue.list_definitions()]
    assert listed == [("contract_review", 2), ("contract_review", 1), ("order_caller", 1)]


def _run_to_first_wait(spec_json: str) -> list[str]:
    spec, subs = specs_from_json(spec_json)
    workflow = BpmnWorkflow(spec, subs)
    workflow.do_engine_steps()
    return [t.task_spec.name for t in workflow.get_tasks(state=TaskState.READY, manual=True)]


def test_call_activity_across_files_of_one_deployment(session_factory):
    result = Catalogue(session_factory).deploy(
        [bpmn_file("order_caller.bpmn"), bpmn_file("contract_review.bpmn")], "dora")
    assert sorted(d.key for d in result.created) == ["contract_review", "order_caller"]
    with session_factory() as s:
        caller = s.scalars(select(ProcessDefinition).where(ProcessDefinition.key == "order_caller")).one()
    # The callee's spec travels with the caller's definition: the engine never re-parses.
    assert _run_to_first_wait(caller.spec_json) == ["check_contract"]


def test_call_activity_resolved_from_an_earlier_deployment(session_factory):
    catalogue = Catalogue(session_factory)
    catalogue.deploy([bpmn_file("contract_review.bpmn")], "dora")
    result = catalogue.deploy([bpmn_file("order_caller.bpmn")], "dora")
    assert [d.key for d in result.created] == ["order_caller"]
    with session_factory() as s:
        caller = s.scalars(select(ProcessDefinition).where(ProcessDefinition.key == "order_caller")).one()
    assert _run_to_first_wait(caller.spec_json) == ["check_contract"]


def test_missing_called_process(session_factory):
    name, data = bpmn_file("order_caller.bpmn")
    problems = refused(session_factory, [(name, data)])
    assert [(p["file"], p["element_id"], p["line"]) for p in problems] == [
        (name, "call_contract", line_of(data, '<bpmn:callActivity id="call_contract"'))]
    assert "'contract_review'" in problems[0]["message"]


def test_validate_reports_without_writing(session_factory):
    before = counts(session_factory)
    problems = Catalogue(session_factory).validate([bpmn_file("order_caller.bpmn")])
    assert [p.element_id for p in problems] == ["call_contract"]
    assert Catalogue(session_factory).validate([bpmn_file(QUOTE)]) == []
    assert counts(session_factory) == before


def test_not_xml(session_factory):
    problems = refused(session_factory, [("broken.bpmn", b"<definitions>\n  <oops\n")])
    assert problems[0]["file"] == "broken.bpmn" and problems[0]["line"] == 3
    assert "not well-formed XML" in problems[0]["message"] and "broken.bpmn line 3, column" in problems[0]["message"]


def test_not_bpmn(session_factory):
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>\n'
    problems = refused(session_factory, [("diagram.svg", svg)])
    assert [(p["file"], p["line"]) for p in problems] == [("diagram.svg", 2)]
    assert "not a BPMN diagram" in problems[0]["message"] and "'svg'" in problems[0]["message"]


def test_no_executable_process(session_factory):
    name, data = bpmn_file(QUOTE, **{'isExecutable="true"': 'isExecutable="false"'})
    problems = refused(session_factory, [(name, data)])
    assert [(p["element_id"], p["line"]) for p in problems] == [(None, 2)]
    assert 'has no executable process: set isExecutable="true"' in problems[0]["message"]


def test_no_start_event(session_factory):
    name, data = bpmn_file("no_start.bpmn")
    problems = refused(session_factory, [(name, data)])
    assert [(p["element_id"], p["line"]) for p in problems] == [("no_start", line_of(data, '<bpmn:process'))]
    assert "no start event" in problems[0]["message"]


def test_unsupported_element_only_matters_on_a_reachable_path(session_factory):
    # The quote diagram already holds a complex gateway nobody reaches, and one in a non-executable pool.
    assert Catalogue(session_factory).validate([bpmn_file(QUOTE)]) == []
    name, data = bpmn_file(QUOTE, **{'targetRef="end_done"': 'targetRef="sketch_gateway"'})
    problems = refused(session_factory, [(name, data)])
    assert [(p["element_id"], p["line"]) for p in problems] == [
        ("sketch_gateway", line_of(data, '<bpmn:complexGateway id="sketch_gateway"'))]
    assert "complex gateway 'sketch_gateway'" in problems[0]["message"]


def test_gateway_flow_without_condition_or_default(session_factory):
    name, data = bpmn_file(QUOTE, **{' default="Flow_rejected"': ""})
    problems = refused(session_factory, [(name, data)])
    assert [(p["element_id"], p["line"]) for p in problems] == [
        ("Flow_rejected", line_of(data, '<bpmn:sequenceFlow id="Flow_rejected"'))]
    assert "without a condition and is not its default flow" in problems[0]["message"]


def test_script_syntax_error_names_the_file_line(session_factory):
    name, data = bpmn_file(QUOTE, **{'note = "recorded"': 'note = ("recorded"'})
    problems = refused(session_factory, [(name, data)])
    # The error is on the script's second line, which is the file's line of 'note = ...'.
    assert [(p["element_id"], p["line"]) for p in problems] == [("record", line_of(data, 'note = ("recorded"'))]
    assert "script line 2" in problems[0]["message"]


def test_expression_syntax_error(session_factory):
    name, data = bpmn_file(QUOTE, **{'${decision == "approve"}': '${decision === "approve"}'})
    problems = refused(session_factory, [(name, data)])
    assert [(p["element_id"], p["line"]) for p in problems] == [
        ("Flow_approved", line_of(data, "<bpmn:conditionExpression"))]
    assert "not a valid Dealflow expression" in problems[0]["message"]


def test_unsafe_parameter_expression(session_factory):
    name, data = bpmn_file(QUOTE, **{"${client_email}": "${client.__class__}"})
    problems = refused(session_factory, [(name, data)])
    assert [p["element_id"] for p in problems] == ["send_quote"]


def test_quartz_cron_and_bad_iso_timers(session_factory):
    for timer, expected in (("0 0 9 * * ?", "Quartz cron"), ("P3X", "not valid ISO 8601")):
        name, data = bpmn_file(QUOTE, **{">PT1H<": f">{timer}<"})
        problems = refused(session_factory, [(name, data)])
        assert [(p["element_id"], p["line"]) for p in problems] == [
            ("wait_answer", line_of(data, "<bpmn:timeDuration"))]
        assert expected in problems[0]["message"]


def test_doctype_is_refused_before_parsing(session_factory):
    name, data = bpmn_file(QUOTE)
    data = data.replace(b"?>\n", b'?>\n<!DOCTYPE definitions [<!ENTITY x "y">]>\n', 1)
    problems = refused(session_factory, [(name, data)])
    assert [(p["file"], p["line"]) for p in problems] == [(name, 2)] and "DOCTYPE" in problems[0]["message"]


def test_external_entity_cannot_read_server_files(session_factory):
    xxe = (b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
           b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&xxe;</bpmn:definitions>')
    problems = refused(session_factory, [("xxe.bpmn", xxe)])
    assert "root:" not in str(problems) and "DOCTYPE" in problems[0]["message"]


def test_xinclude_is_refused(session_factory):
    name, data = bpmn_file(QUOTE, **{
        '<bpmn:process id="client_side"':
            '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd" parse="text"/>\n'
            '  <bpmn:process id="client_side"'})
    problems = refused(session_factory, [(name, data)])
    assert problems[0]["line"] == line_of(data, "<xi:include") and "XInclude" in problems[0]["message"]


def test_billion_laughs_is_refused_quickly(session_factory):
    lols = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol0 "lol">{lols}]>\n<lolz>&lol9;</lolz>'.encode()
    started = time.perf_counter()
    problems = refused(session_factory, [("lol.bpmn", bomb)])
    assert time.perf_counter() - started < 2
    assert "DOCTYPE" in problems[0]["message"]


def test_file_over_the_size_limit(session_factory):
    before = counts(session_factory)
    limit = r"File 'quote_review.bpmn' is [\d,]+ bytes, more than the limit of 1,000 bytes"
    with pytest.raises(PayloadTooLarge, match=limit):
        Catalogue(session_factory).deploy([bpmn_file(QUOTE)], "dora", max_bytes=1000)
    assert counts(session_factory) == before


def test_problems_of_all_files_come_in_one_list(session_factory):
    bad_gateway = bpmn_file(QUOTE, **{' default="Flow_rejected"': ""})
    problems = refused(session_factory, [bad_gateway, bpmn_file("no_start.bpmn"), ("x.dmn", b"<dmn/>")])
    assert [(p["file"], p["element_id"]) for p in problems] == [
        (QUOTE, "Flow_rejected"), ("no_start.bpmn", "no_start"), ("x.dmn", None)]
    assert "DMN decision tables are not supported yet" in problems[2]["message"]


def test_known_topics_hook(session_factory):
    problems = refused(session_factory, [bpmn_file(QUOTE)], known_topics=lambda topic: topic != "mail.send")
    assert [p["element_id"] for p in problems] == ["send_quote"] and "'mail.send'" in problems[0]["message"]


def test_deploy_directory(session_factory, tmp_path):
    for name in ("order_caller.bpmn", "contract_review.bpmn"):
        (tmp_path / name).write_bytes(bpmn_file(name)[1])
    (tmp_path / "notes.txt").write_text("not a diagram")
    result = Catalogue(session_factory).deploy_directory(tmp_path, "make-run")
    assert sorted(d.key for d in result.created) == ["contract_review", "order_caller"]
    assert Catalogue(session_factory).deploy_directory(tmp_path, "make-run").created == []


def test_concurrent_deploy_of_the_same_version_is_a_conflict(db_url, session_factory):
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE, so this race cannot happen there")
    raw = create_engine(db_url)
    rival = raw.connect()
    rival_tx = rival.begin()
    # Someone else's deployment of version 1, not committed yet: ours cannot see it and also picks version 1.
    deployment_id = rival.execute(text(
        "INSERT INTO deployment (deployed_at, deployed_by, file_names) VALUES (now(), 'rival', '[]') RETURNING id"
    )).scalar_one()
    rival.execute(text(
        "INSERT INTO process_definition (key, version, name, resource_name, bpmn_xml, xml_sha256, spec_json, "
        "deployment_id, deployed_at) VALUES ('quote_review', 1, 'x', 'x.bpmn', '', 'x', '{}', :d, now())"
    ), {"d": deployment_id})
    outcome = {}

    def ours():
        try:
            outcome["result"] = Catalogue(session_factory).deploy([bpmn_file(QUOTE)], "dora")
        except Exception as exc:  # the assertion below says which one we expect
            outcome["error"] = exc

    worker = threading.Thread(target=ours)
    worker.start()
    _wait_for_lock_wait(raw)
    rival_tx.commit()
    worker.join(30)
    rival.close()
    raw.dispose()
    assert isinstance(outcome.get("error"), Conflict), outcome
    assert "deployed by someone else at the same moment; deploy again" in outcome["error"].message
    assert [d.deployed_by for d in _deployments(session_factory)] == ["rival"]


def _wait_for_lock_wait(raw_engine, timeout: float = 20) -> None:
    """Block until some session waits on a lock (our insert, queued behind the rival's unique key)."""
    deadline = time.monotonic() + timeout
    with raw_engine.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the deployment never queued behind the rival transaction")


def _deployments(session_factory):
    with session_factory() as s:
        return s.scalars(select(Deployment)).all()
