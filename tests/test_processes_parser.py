"""DealflowParser and its helpers: the extensions shape, timer texts, and what the stock parser got wrong."""

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.util.task import TaskState

from engine.sandbox import make_script_engine
from engine.serialization import specs_from_json
from engine.serialization import specs_to_json
from processes.dialect import assign_missing_flow_ids
from processes.parser import DealflowParser
from processes.timers import TimerTextInvalid
from processes.timers import timer_expression
from processes.xml_safety import parse_xml
from tests.factories import bpmn_file

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="D" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def parse(name: str, data: bytes, key: str):
    """Parse one file and round-trip the spec through the serializer, as the catalogue stores it."""
    parser = DealflowParser()
    parser.add_bpmn_xml(parse_xml(name, data), name)
    subs = parser.get_subprocess_specs(key, require_call_activity_specs=False)
    return specs_from_json(specs_to_json(parser.get_spec(key), subs))


def test_extensions_shape():
    spec, _ = parse(*bpmn_file("quote_review.bpmn"), "quote_review")
    tasks = spec.task_specs
    assert tasks["review"].extensions == {
        "properties": {"stage": "review"},
        "assignee": "${owner}", "candidateGroups": "sales, managers", "dueDate": "${due}", "priority": "70",
        "form": [{
            "id": "decision", "label": "Decision", "type": "enum", "default": "approve", "validation": {},
            "properties": {"help": "Approve only signed quotes"},
            "options": [{"id": "approve", "name": "Approve"}, {"id": "reject", "name": "Reject"}],
        }],
    }
    assert tasks["start"].extensions == {"form": [{
        "id": "amount", "label": "Amount", "type": "long", "default": "0",
        "validation": {"required": None, "min": "0"}, "properties": {},
    }]}
    assert tasks["send_quote"].extensions == {
        "type": "external", "topic": "mail.send",
        "inputParameters": {
            "to": {"kind": "expression", "value": "client_email"},
            "subject": {"kind": "text", "value": "Your quote"},
            "greeting": {"kind": "template", "value": "Dear ${client_name}"},
            "headers": {"kind": "map", "value": {"X-Deal": {"kind": "expression", "value": "deal_id"}}},
            "cc": {"kind": "list", "value": [{"kind": "text", "value": "sales@example.com"}]},
        },
        "outputParameters": {"mail_id": {"kind": "expression", "value": "message_id"}},
    }
    # camunda:asyncBefore, historyTimeToLive and versionTag are harmless and not copied.
    assert "asyncBefore" not in tasks["review"].extensions
    assert isinstance(tasks["send_quote"], ServiceTask)


def test_timer_literal_is_quoted_and_runs():
    spec, subs = parse(*bpmn_file("quote_review.bpmn"), "quote_review")
    assert spec.task_specs["wait_answer"].event_definition.expression == '"PT1H"'
    workflow = BpmnWorkflow(spec, subs, script_engine=make_script_engine(None))
    workflow.do_engine_steps()
    review = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
    review.data.update(decision="approve")
    review.run()
    workflow.do_engine_steps()
    service = workflow.get_tasks(state=TaskState.STARTED)[0]
    assert service.task_spec.name == "send_quote"
    service.complete()
    workflow.do_engine_steps()
    # The timer evaluated "PT1H" as a string and now waits for its hour.
    timer = workflow.get_tasks(state=TaskState.WAITING)[0]
    assert timer.task_spec.name == "wait_answer" and timer.internal_data["event_value"]


@pytest.mark.parametrize(("kind", "text", "expression"), [
    ("timeDuration", "PT1H", '"PT1H"'),
    ("timeDuration", " P3D ", '"P3D"'),
    ("timeCycle", "R3/PT10M", '"R3/PT10M"'),
    ("timeDate", "2026-05-01T10:00:00Z", '"2026-05-01T10:00:00Z"'),
    ("timeDuration", '"PT2H"', '"PT2H"'),
    ("timeDuration", "${reminder}", "reminder"),
    ("timeDuration", 'f"P{days}D"', 'f"P{days}D"'),
    ("timeDuration", '"P" + str(days) + "D"', '"P" + str(days) + "D"'),
])
def test_timer_expression(kind, text, expression):
    assert timer_expression(kind, text) == expression


@pytest.mark.parametrize(("kind", "text", "says"), [
    ("timeCycle", "0/5 0/1 * 1/1 * ?", "Quartz cron"),
    ("timeCycle", "0 9 * * MON-FRI", "Quartz cron"),
    ("timeDuration", "", "empty timeDuration"),
    ("timeDuration", "P1X", "not valid ISO 8601"),
    ("timeCycle", "PT10M", "not valid ISO 8601"),
    ("timeDate", "2026-05-01T10:00:00", "without a time zone"),
])
def test_timer_expression_refused(kind, text, says):
    with pytest.raises(TimerTextInvalid, match=says):
        timer_expression(kind, text)


def test_id_less_sequence_flows_get_deterministic_ids():
    root = parse_xml("x.bpmn", (HEAD + '<bpmn:process id="p"><bpmn:sequenceFlow sourceRef="a" targetRef="b"/>'
                                '<bpmn:sequenceFlow sourceRef="a" targetRef="b"/>'
                                '<bpmn:sequenceFlow id="Flow_a_b" sourceRef="b" targetRef="c"/>'
                                "</bpmn:process></bpmn:definitions>").encode())
    assign_missing_flow_ids(root)
    assert [f.get("id") for f in root.iter("{*}sequenceFlow")] == ["Flow_a_b_2", "Flow_a_b_3", "Flow_a_b"]


def test_event_sub_process_and_external_send_task():
    body = (
        '<bpmn:process id="p" isExecutable="true">'
        '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="notify"/>'
        '<bpmn:sendTask id="notify" camunda:type="external" camunda:topic="mail.send"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="notify" targetRef="e"/><bpmn:endEvent id="e"/>'
        '<bpmn:subProcess id="on_cancel" triggeredByEvent="true">'
        '<bpmn:startEvent id="cancel_start"><bpmn:messageEventDefinition messageRef="m"/></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="f3" sourceRef="cancel_start" targetRef="cancel_end"/>'
        '<bpmn:endEvent id="cancel_end"/></bpmn:subProcess>'
        '</bpmn:process><bpmn:message id="m" name="deal_cancelled"/></bpmn:definitions>'
    )
    spec, subs = parse("p.bpmn", (HEAD + body).encode(), "p")
    # The external send task parks like a service task; the event sub-process stays an event sub-process.
    assert isinstance(spec.task_specs["notify"], ServiceTask)
    assert spec.task_specs["notify"].extensions == {"type": "external", "topic": "mail.send"}
    assert type(spec.task_specs["on_cancel"]).__name__ == "EventSubprocess"
    workflow = BpmnWorkflow(spec, subs)
    workflow.do_engine_steps()
    assert [t.task_spec.name for t in workflow.get_tasks(state=TaskState.STARTED)] == ["notify"]


def test_untrusted_strings_go_through_the_hardened_parser():
    parser = DealflowParser()
    with pytest.raises(Exception, match="DOCTYPE"):
        parser.add_bpmn_str(b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<a>&x;</a>')
