"""The shared conformance corpus: real BPMN files written by other people, each with its expected treatment.

RUN files deploy, load back from the database and reach their first wait state. REPORT and REJECT files are
refused with problems that name exactly the expected elements, and nothing is stored. Any other exception fails.
"""

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func
from sqlalchemy import select

from engine.errors import DefinitionInvalid
from engine.models import ProcessDefinition
from engine.serialization import specs_from_json
from processes.catalogue import Catalogue
from processes.lint import ZEEBE_MESSAGE
from processes.parser import DealflowParser
from processes.xml_safety import parse_xml

CORPUS = Path(__file__).parents[2] / "shared" / "conformance" / "bpmn"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"conformance corpus not found at {CORPUS}")


@dataclass(frozen=True)
class Run:
    """Deploys; every process reaches a wait state in which exactly these elements are READY, WAITING or STARTED."""

    waiting: dict[str, set[str]]


@dataclass(frozen=True)
class Refused:
    """Deploy is refused; the problems name exactly these element ids (None: the file as a whole)."""

    element_ids: set[str | None]
    says: dict[str | None, str] = field(default_factory=dict)


INVOICE = {"approveInvoice", "prepareBankTransfer", "assignApprover", "ServiceTask_1", "reviewNotSuccessful",
           "invoiceNotApproved"}
JOB = {"mail", "review", "correct", "Flow_1gfi885", "Flow_0yjunvn"}
PUBLICATION = {"publish_announcement_website", "publish_announcement_twitter", "publish_announcement_facebook",
               "Flow_0zn9zem", "Flow_0cpvktx", "Flow_0jly80u", "Flow_1oretgu"}
KITCHEN_SINK = {
    "BoundaryEvent_04znm02", "BoundaryEvent_0iiyz0j", "BoundaryEvent_1ge1buo", "BoundaryEvent_00et2aq",
    "BoundaryEvent_09zzeyl", "BoundaryEvent_1fs6xst", "BoundaryEvent_0nu3946", "Task_19iw28f",
    "ExclusiveGateway_08cpnyi", "IntermediateThrowEvent_0iysg53", "IntermediateThrowEvent_1liyvfn",
    "IntermediateThrowEvent_0731jft", "IntermediateThrowEvent_1vaa2b4", "IntermediateThrowEvent_1755nsj",
    "IntermediateThrowEvent_17ci1dt", "Task_0vcqxha", "Task_1suvpez", "Task_1165fo8", "Task_1x2pxcn",
    "Task_0oz8m30", "Task_0qibn8y", "Task_1ank6jx",
}

EXPECTED: dict[str, Run | Refused] = {
    # 1: Java delegate, JavaScript listeners, JUEL dates and negations, DMN; the call needs #2. Data store ignored.
    "camunda-platform__invoice.v2.bpmn": Refused(INVOICE | {"reviewInvoice"}, {
        "ServiceTask_1": "Java delegate camunda:class", "approveInvoice": "dateTime()",
        "assignApprover": "DMN decision tables", "reviewInvoice": "'ReviewInvoice'"}),
    "camunda-platform__invoice.v2.bpmn+camunda-platform__reviewInvoice.bpmn": Refused(INVOICE | {"reviewInvoice"}),
    "camunda-platform__invoice.v2.bpmn+camunda-platform__reviewInvoice.bpmn+camunda-platform__invoiceBusinessDecisions.dmn":
        Refused(INVOICE | {"reviewInvoice", None}, {None: "DMN decision tables are not supported yet"}),
    # 2: ${reviewer} is a plain variable and fine; JUEL dateTime() is reported.
    "camunda-platform__reviewInvoice.bpmn": Refused({"reviewInvoice"}, {"reviewInvoice": "dateTime()"}),
    "camunda-platform__invoiceBusinessDecisions.dmn": Refused({None}, {None: "DMN decision tables"}),
    # 3, 4: Quartz cron timers, a JavaScript input mapping, a conditional boundary event.
    "camunda-examples__loan-granting.bpmn": Refused({"StartEvent_1", "Task_1lvjtd4"}, {
        "StartEvent_1": "Quartz cron", "Task_1lvjtd4": "javascript script"}),
    "camunda-examples__order-handling.bpmn": Refused({"StartEvent_1", "BoundaryEvent_1y1bvad"}, {
        "StartEvent_1": "Quartz cron", "BoundaryEvent_1y1bvad": "Conditional events"}),
    # 5, 6: error/escalation boundaries wait beside the user task; a message start waits for its message.
    "camunda-examples__invoicePayment.bpmn": Run({"embeddedFormsBpmnEvents": {
        "Task_16y91ka", "BoundaryEvent_18unjdv", "BoundaryEvent_1uy9o9h"}}),
    "camunda-examples__message_start_process.bpmn": Run({"Message_Start_Process": {"StartEvent_1"}}),
    # 7, 8: Java bean expressions everywhere; alone, #7's call activity also misses #8.
    "camunda-examples__camunda-testing-job-announcement.bpmn": Refused(JOB | {"publication"}, {
        "review": "Java bean expression", "mail": "Java expression camunda:expression"}),
    "camunda-examples__camunda-testing-job-announcement-publication.bpmn": Refused(PUBLICATION),
    "camunda-examples__camunda-testing-job-announcement.bpmn+"
    "camunda-examples__camunda-testing-job-announcement-publication.bpmn": Refused(JOB | PUBLICATION),
    # 9: groovy, an execution.* expression service task, an execution listener.
    "camunda-examples__process.bpmn": Refused({"serviceTask", "scriptTask", "endEvent"}, {
        "scriptTask": "groovy", "endEvent": "camunda:executionListener"}),
    # 10, 11: a connector and a Java delegate, by id.
    "camunda-examples__invokeRestService.bpmn": Refused({"ServiceTask_1", "SequenceFlow_4"}, {
        "ServiceTask_1": "camunda:connector"}),
    "camunda-examples__synchronousServiceInvocation.bpmn": Refused({"ServiceTask_1"}, {
        "ServiceTask_1": "Java delegate camunda:class"}),
    # 12: the id-less sequence flow gets an id; the user task is reached (not skipped).
    "camunda-platform__FormDataTest.testGetFormFieldBuiltInTypes.bpmn20.xml": Run({
        "FormDataTest.testGetFormFieldBuiltInTypes": {"usertask"}}),
    # 13: not well-formed.
    "camunda-platform__4-failed-service-tasks.bpmn": Refused({None}, {
        None: "line 3, column 131: the prefix 'camunda'"}),
    # 14: activiti: read as camunda:; its Java delegate expression and a JUEL negation are reported.
    "miwg__C.1.0.bpmn": Refused({"archiveInvoice", "invoiceNotApproved"}, {
        "archiveInvoice": "activiti:delegateExpression"}),
    # 15, 16: SpiffWorkflow's own Camunda fixtures run.
    "spiff__random_fact.bpmn": Run({"random_fact": {"Task_User_Select_Type"}}),
    "spiff__external_message.bpmn": Run({"Process_1iggtmi": {"Activity_147sm5j", "Event_1jmy075", "Event_19detfv"}}),
    # 17: only descriptive pools.
    "bpmnjs-examples__pizza-collaboration.bpmn": Refused({None}, {None: "has no executable process"}),
    # 18: an itemised list of everything unsupported or incomplete on reachable paths.
    "bpmnjs-examples__kitchen-sink.bpmn": Refused(KITCHEN_SINK, {
        "ExclusiveGateway_08cpnyi": "complex gateway", "Task_1165fo8": "DMN",
        "IntermediateThrowEvent_0iysg53": "linkEventDefinition"}),
    # 19: Camunda 8.
    "flowing-retail__order-zeebe.bpmn": Refused({
        "ServiceTaskRetrievePayment", "ServiceTaskFetchGoods", "ServiceTaskShipGoods", "ServiceTaskSaveOrder"}, {
        "ServiceTaskSaveOrder": ZEEBE_MESSAGE}),
}


def read(name: str) -> tuple[str, bytes]:
    return name, (CORPUS / name).read_bytes()


def script_engine():
    try:
        from engine.sandbox import make_script_engine
    except ImportError:  # the sandbox lands separately; SpiffWorkflow's default engine still shows the path
        return None
    return make_script_engine(None)


def waiting_elements(spec_json: str) -> set[str]:
    """Load a stored definition and run it to its first wait state: the BPMN elements waiting there."""
    spec, subprocess_specs = specs_from_json(spec_json)
    workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=script_engine())
    workflow.do_engine_steps()
    assert not workflow.is_completed(), "the process finished without waiting anywhere"
    tasks = workflow.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED)
    return {t.task_spec.bpmn_id for t in tasks if t.task_spec.bpmn_id is not None}


def stored(session_factory) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(ProcessDefinition))


def test_every_corpus_file_has_an_expectation():
    names = {name for combination in EXPECTED for name in combination.split("+")}
    assert names == {p.name for p in CORPUS.iterdir()}


@pytest.mark.parametrize("combination", sorted(EXPECTED))
def test_conformance(combination, session_factory):
    files = [read(name) for name in combination.split("+")]
    expected = EXPECTED[combination]
    catalogue = Catalogue(session_factory)
    if isinstance(expected, Run):
        result = catalogue.deploy(files, "conformance")
        assert {d.key for d in result.created} == set(expected.waiting)
        with session_factory() as s:
            rows = s.scalars(select(ProcessDefinition)).all()
        for row in rows:
            assert waiting_elements(row.spec_json) == expected.waiting[row.key]
        return
    with pytest.raises(DefinitionInvalid) as caught:
        catalogue.deploy(files, "conformance")
    problems = caught.value.details["problems"]
    assert {p["element_id"] for p in problems} == expected.element_ids
    for element_id, fragment in expected.says.items():
        assert any(fragment in p["message"] for p in problems if p["element_id"] == element_id), (element_id, fragment)
    # Every problem locates itself: the file always, a line whenever the file could be parsed.
    assert all(p["file"] in combination and p["message"] for p in problems)
    assert all(p["line"] for p in problems if p["element_id"] is not None)
    assert stored(session_factory) == 0


def test_invoice_runs_once_the_reported_constructs_are_replaced(session_factory):
    # The corpus says #1 should run with #2 once the reported constructs are replaced; the data store stays.
    name, invoice = read("camunda-platform__invoice.v2.bpmn")
    text = invoice.decode()
    listeners = text[text.index("      <extensionElements>\n        <camunda:taskListener"):]
    text = text.replace(listeners[: listeners.index("</extensionElements>") + len("</extensionElements>\n")], "")
    for old, new in {
        'camunda:decisionRef="invoice-assign-approver" camunda:mapDecisionResult="collectEntries"':
            'camunda:type="external" camunda:topic="invoice.assign-approver"',
        'camunda:class="org.camunda.bpm.example.invoice.service.ArchiveInvoiceService"':
            'camunda:type="external" camunda:topic="invoice.archive"',
        ' camunda:dueDate="${dateTime().plusWeeks(1).toDate()}"': "",
        "${!clarified}": "${not clarified}", "${!approved}": "${not approved}",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    review_name, review = read("camunda-platform__reviewInvoice.bpmn")
    review = review.replace(b' camunda:dueDate="${dateTime().plusDays(2).toDate()}"', b"")
    result = Catalogue(session_factory).deploy([(name, text.encode()), (review_name, review)], "conformance")
    assert sorted(d.key for d in result.created) == ["ReviewInvoice", "invoice"]
    with session_factory() as s:
        row = s.scalars(select(ProcessDefinition).where(ProcessDefinition.key == "invoice")).one()
    # The business rule task became an external task: the instance parks there, the data store ignored.
    assert waiting_elements(row.spec_json) == {"assignApprover"}
    spec, subprocess_specs = specs_from_json(row.spec_json)
    assert "ReviewInvoice" in subprocess_specs
    assert spec.task_specs["assignApprover"].extensions["topic"] == "invoice.assign-approver"
    assert spec.task_specs["prepareBankTransfer"].data_input_associations == []


def test_start_form_of_process_bpmn_is_read():
    parser = DealflowParser()
    parser.add_bpmn_xml(parse_xml("process.bpmn", read("camunda-examples__process.bpmn")[1]), "process.bpmn")
    form = parser.get_spec("testProcess").task_specs["startEvent"].extensions["form"]
    assert [(f["id"], f["type"], f["default"]) for f in form] == [("name", "string", "test"), ("age", "long", "0")]


def test_form_data_types_are_kept(session_factory):
    name = "camunda-platform__FormDataTest.testGetFormFieldBuiltInTypes.bpmn20.xml"
    Catalogue(session_factory).deploy([read(name)], "conformance")
    with session_factory() as s:
        spec, _ = specs_from_json(s.scalars(select(ProcessDefinition)).one().spec_json)
    extensions = spec.task_specs["usertask"].extensions
    assert extensions["candidateGroups"] == "dummy"
    assert [(f["id"], f["type"], f["default"]) for f in extensions["form"]] == [
        ("stringField", "string", "someString"), ("longField", "long", "1"), ("booleanField", "boolean", "true"),
        ("dateField", "date", "10/01/2013"), ("enumField", "enum", "a")]
    assert extensions["form"][4]["options"] == [{"id": "a", "name": "A"}, {"id": "b", "name": "B"},
                                                 {"id": "c", "name": "C"}]


def test_a_completed_form_with_every_field_type_is_stored_as_json(session_factory, engine):
    from tests.factories import actor

    Catalogue(session_factory).deploy([read("camunda-platform__FormDataTest.testGetFormFieldBuiltInTypes.bpmn20.xml")],
                                      "conformance")
    with session_factory() as session:
        key = session.scalars(select(ProcessDefinition.key)).one()
    started = engine.start_instance(key, actor=actor("ann", groups=("dummy",)))
    done = engine.complete_task(started.open_tasks[0].id, actor=actor("ann", groups=("dummy",)), data={
        "stringField": "x", "longField": "7", "booleanField": "false", "dateField": "31/03/2026",
        "enumField": "b"})
    expected = {"stringField": "x", "longField": 7, "booleanField": False, "dateField": "2026-03-31", "enumField": "b"}
    assert {name: done.variables[name] for name in expected} == expected


def test_activiti_attributes_are_read_as_camunda():
    parser = DealflowParser()
    parser.add_bpmn_xml(parse_xml("c.bpmn", read("miwg__C.1.0.bpmn")[1]), "c.bpmn")
    specs = parser.get_spec("bpmn-miwg-test-case-c.1.0").task_specs
    assert specs["approveInvoice"].extensions == {"assignee": "${approver}", "formKey": "app:approveInvoice.jsf"}
    assert specs["prepareBankTransfer"].extensions["candidateGroups"] == "accounting"
