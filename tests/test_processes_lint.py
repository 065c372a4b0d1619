"""The lint on small hand-written variants: what it reports, at which element, and what it leaves alone."""

import pytest

from processes.lint import lint_tree
from processes.xml_safety import parse_xml

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
    'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="D" targetNamespace="http://bpmn.io/schema/bpmn"{attrs}>\n'
)


def diagram(middle: str, extra: str = "", first: str = "", root_attrs: str = "") -> bytes:
    """start -> (middle, whose entry and exit are 'x') -> end; `first` opens the process, `extra` closes it."""
    return (HEAD.format(attrs=root_attrs) + f'<bpmn:process id="p" isExecutable="true">{first}\n'
            '<bpmn:startEvent id="s"/>\n<bpmn:sequenceFlow id="f_in" sourceRef="s" targetRef="x"/>\n'
            f"{middle}\n"
            '<bpmn:sequenceFlow id="f_out" sourceRef="x" targetRef="e"/>\n<bpmn:endEvent id="e"/>\n'
            f"{extra}\n</bpmn:process>\n"
            '<bpmn:message id="m_named" name="deal_won"/><bpmn:message id="m_nameless"/>\n'
            "</bpmn:definitions>\n").encode()


def ids(data: bytes) -> list[str | None]:
    return [p.element_id for p in lint_tree(parse_xml("t.bpmn", data), "t.bpmn")]


def messages(data: bytes) -> str:
    return " | ".join(p.message for p in lint_tree(parse_xml("t.bpmn", data), "t.bpmn"))


OK = [
    '<bpmn:userTask id="x" camunda:assignee="${owner}" camunda:followUpDate="${follow_up}"/>',
    '<bpmn:serviceTask id="x" camunda:type="external" camunda:topic="mail.send" camunda:asyncBefore="true"/>',
    '<bpmn:userTask id="x"><bpmn:multiInstanceLoopCharacteristics camunda:collection="${items}" '
    'camunda:elementVariable="item"/></bpmn:userTask>',
    '<bpmn:receiveTask id="x" messageRef="m_named"/>',
    '<bpmn:scriptTask id="x" scriptFormat="python"><bpmn:script>total = 1</bpmn:script></bpmn:scriptTask>',
    '<bpmn:intermediateThrowEvent id="x" name="Milestone: proposal sent"/>',
    '<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDate>${follow_up}</bpmn:timeDate>'
    "</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>",
]


@pytest.mark.parametrize("middle", OK)
def test_supported_constructs_pass(middle):
    assert messages(diagram(middle)) == ""


REPORTED = [
    ('<bpmn:userTask id="x"><bpmn:extensionElements><camunda:formData><camunda:formField id="a" type="money"/>'
     "</camunda:formData></bpmn:extensionElements></bpmn:userTask>", "x", "type 'money'"),
    ('<bpmn:userTask id="x"><bpmn:extensionElements><camunda:formData><camunda:formField id="a" type="string">'
     '<camunda:validation><camunda:constraint name="validator" config="org.Acme"/></camunda:validation>'
     "</camunda:formField></camunda:formData></bpmn:extensionElements></bpmn:userTask>", "x", "custom validators"),
    ('<bpmn:scriptTask id="x" camunda:resultVariable="r"><bpmn:script>r = 1</bpmn:script></bpmn:scriptTask>',
     "x", "no result value"),
    ('<bpmn:scriptTask id="x" scriptFormat="JavaScript"><bpmn:script>var a;</bpmn:script></bpmn:scriptTask>',
     "x", "Python scripts only"),
    ('<bpmn:receiveTask id="x"/>', "x", "no message"),
    ('<bpmn:receiveTask id="x" messageRef="m_nameless"/>', "x", "has no name"),
    ('<bpmn:userTask id="x"><bpmn:multiInstanceLoopCharacteristics camunda:collection="${a + b}"/></bpmn:userTask>',
     "x", "not a variable name"),
    ('<bpmn:userTask id="x"><bpmn:standardLoopCharacteristics/></bpmn:userTask>', "x", "never end"),
    ('<bpmn:serviceTask id="x" camunda:type="external"/>', "x", "no topic"),
    ('<bpmn:serviceTask id="x" camunda:delegateExpression="${mailer}"/>', "x", "camunda:delegateExpression"),
    ('<bpmn:serviceTask id="x" camunda:expression="${a.b()}" camunda:resultVariable="r"/>', "x",
     "camunda:resultVariable='r'"),
    ('<bpmn:callActivity id="x" calledElement="${which}"/>', "x", "fixed process id"),
    ('<bpmn:userTask id="x" camunda:candidateGroups="team_${__class__}"/>', "x", "camunda:candidateGroups"),
]


@pytest.mark.parametrize(("middle", "element", "says"), REPORTED)
def test_unsupported_constructs_are_reported(middle, element, says):
    data = diagram(middle)
    # One element, possibly twice (a computed calledElement is also not a valid QName for the schema).
    assert set(ids(data)) == {element}
    assert says in messages(data)


def test_boundary_paths_and_event_sub_processes_are_walked():
    extra = (
        '<bpmn:boundaryEvent id="b" attachedToRef="x"><bpmn:timerEventDefinition><bpmn:timeDuration>P1D'
        '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>'
        '<bpmn:sequenceFlow id="f_b" sourceRef="b" targetRef="escalate"/>'
        '<bpmn:complexGateway id="escalate"/>'
        '<bpmn:subProcess id="esp" triggeredByEvent="true"><bpmn:startEvent id="esp_s">'
        '<bpmn:messageEventDefinition messageRef="m_named"/></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="f_esp" sourceRef="esp_s" targetRef="esp_t"/>'
        '<bpmn:scriptTask id="esp_t" scriptFormat="groovy"><bpmn:script>x</bpmn:script></bpmn:scriptTask>'
        '<bpmn:sequenceFlow id="f_esp2" sourceRef="esp_t" targetRef="esp_e"/><bpmn:endEvent id="esp_e"/>'
        "</bpmn:subProcess>"
    )
    assert ids(diagram('<bpmn:userTask id="x"/>', extra)) == ["escalate", "esp_t"]


def test_splits_and_conditions_outside_gateways():
    extra = '<bpmn:sequenceFlow id="f_more" sourceRef="x" targetRef="e"><bpmn:conditionExpression>${a}' \
            "</bpmn:conditionExpression></bpmn:sequenceFlow>"
    found = lint_tree(parse_xml("t.bpmn", diagram('<bpmn:userTask id="x"/>', extra)), "t.bpmn")
    assert [p.element_id for p in found] == ["x", "f_more"]
    assert "parallel gateway" in found[0].message and "exclusive gateway after" in found[1].message


def test_condition_in_another_language():
    middle = ('<bpmn:exclusiveGateway id="x" default="f_out"/><bpmn:sequenceFlow id="f_js" sourceRef="x" '
              'targetRef="e"><bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" language="javascript">a'
              '</bpmn:conditionExpression>'
              "</bpmn:sequenceFlow>")
    assert ids(diagram(middle)) == ["f_js"]
    assert "written in 'javascript'" in messages(diagram(middle))


def test_process_listener_signal_start_and_camunda_8_platform():
    listener = '<bpmn:extensionElements><camunda:executionListener class="org.Acme" event="start"/>' \
               "</bpmn:extensionElements>"
    data = diagram('<bpmn:userTask id="x"/>', first=listener)
    assert ids(data) == ["p"]
    signal = diagram('<bpmn:userTask id="x"/>', '<bpmn:startEvent id="s2"><bpmn:signalEventDefinition/>'
                     "</bpmn:startEvent>")
    assert ids(signal) == ["s2"]
    cloud = diagram('<bpmn:userTask id="x"/>', root_attrs=' xmlns:modeler="http://camunda.org/schema/modeler/1.0" '
                    'modeler:executionPlatform="Camunda Cloud"')
    assert ids(cloud) == [None] and "Camunda 8 (Zeebe)" in messages(cloud)


def test_embedded_sub_process_needs_a_plain_start_and_an_end():
    middle = ('<bpmn:subProcess id="x"><bpmn:startEvent id="in"><bpmn:timerEventDefinition><bpmn:timeDuration>'
              "PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:startEvent></bpmn:subProcess>")
    found = lint_tree(parse_xml("t.bpmn", diagram(middle)), "t.bpmn")
    assert {(p.element_id, "no end event" in p.message) for p in found} == {("x", True), ("in", False)}


@pytest.mark.parametrize("reserved", ["Start", "End", "Root", "p.EndJoin"])
def test_ids_the_engine_reserves_are_reported(reserved):
    # SpiffWorkflow names its own control tasks Start/End/Root; an element with such an id used to deploy as an
    # empty process that completed at once, with no error at all.
    data = diagram(f'<bpmn:task id="{reserved}"/><bpmn:sequenceFlow id="f_r" sourceRef="{reserved}" targetRef="x"/>'
                   '<bpmn:task id="x"/>')
    assert reserved in ids(data) and "reserves" in messages(data)
