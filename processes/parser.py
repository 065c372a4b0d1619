"""DealflowParser: SpiffWorkflow's Camunda parser, reading Dealflow's dialect into `task_spec.extensions`.

It parses a normalized copy of each tree (see processes.normalize), never the upload itself, and produces
only spec classes the registry in engine.serialization can serialize.
"""

from lxml import etree
from SpiffWorkflow.bpmn.parser.event_parsers import EventBasedGatewayParser as BpmnEventBasedGatewayParser
from SpiffWorkflow.bpmn.parser.event_parsers import ReceiveTaskParser as BpmnReceiveTaskParser
from SpiffWorkflow.bpmn.parser.event_parsers import SendTaskParser as BpmnSendTaskParser
from SpiffWorkflow.bpmn.parser.ProcessParser import ProcessParser
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser as BpmnConditionalGatewayParser
from SpiffWorkflow.bpmn.parser.task_parsers import GatewayParser as BpmnGatewayParser
from SpiffWorkflow.bpmn.parser.task_parsers import SubprocessParser
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.defaults import BoundaryEvent
from SpiffWorkflow.bpmn.specs.defaults import CallActivity
from SpiffWorkflow.bpmn.specs.defaults import EndEvent
from SpiffWorkflow.bpmn.specs.defaults import EventBasedGateway
from SpiffWorkflow.bpmn.specs.defaults import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.defaults import InclusiveGateway
from SpiffWorkflow.bpmn.specs.defaults import IntermediateCatchEvent
from SpiffWorkflow.bpmn.specs.defaults import IntermediateThrowEvent
from SpiffWorkflow.bpmn.specs.defaults import ManualTask
from SpiffWorkflow.bpmn.specs.defaults import NoneTask
from SpiffWorkflow.bpmn.specs.defaults import ParallelGateway
from SpiffWorkflow.bpmn.specs.defaults import ReceiveTask
from SpiffWorkflow.bpmn.specs.defaults import ScriptTask
from SpiffWorkflow.bpmn.specs.defaults import SendTask
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.defaults import SubWorkflowTask
from SpiffWorkflow.bpmn.specs.defaults import TransactionSubprocess
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import DurationTimerEventDefinition
from SpiffWorkflow.camunda.parser import event_parsers as camunda_events
from SpiffWorkflow.camunda.parser import task_spec as camunda_tasks
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.specs.user_task import UserTask

from engine.timers import clocked
from processes.dialect import BPMN
from processes.extensions import is_external
from processes.extensions import read_extensions
from processes.normalize import prepare_tree
from processes.timers import timer_expression
from processes.xml_safety import parse_xml

BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"


class ExtensionsMixin:
    """Replaces the stock extension reading (flat camunda:properties) with Dealflow's extensions shape."""

    def parse_extensions(self, node=None):
        return read_extensions(self.node if node is None else node)


class TimerMixin:
    """Turns timer texts into Python expressions: quotes ISO 8601 literals, unwraps ${...}."""

    def parse_timer_event(self, event):
        definition = super().parse_timer_event(event)
        if isinstance(definition, DurationTimerEventDefinition):
            kind = "timeDuration"
        elif isinstance(definition, CycleTimerEventDefinition):
            kind = "timeCycle"
        else:
            kind = "timeDate"
        definition.expression = timer_expression(kind, definition.expression)
        # The engine's clock-aware twin, so timers follow the engine's clock (tests, the sweep's `now`).
        return clocked(definition)


class TaskParser(ExtensionsMixin, camunda_tasks.CamundaTaskParser):
    """Plain, manual and service tasks (service tasks park in STARTED until the engine finishes them)."""


class UserTaskParser(ExtensionsMixin, camunda_tasks.UserTaskParser):
    """User tasks: the stock Camunda form plus the extensions (form, assignee, candidate groups, dates)."""


class ScriptTaskParser(ExtensionsMixin, camunda_tasks.ScriptTaskParser, camunda_tasks.CamundaTaskParser):
    """Script tasks, with Camunda-style multi-instance."""


class CallActivityParser(ExtensionsMixin, camunda_tasks.CallActivityParser):
    """Call activities."""


class SubProcessParser(ExtensionsMixin, camunda_tasks.CamundaTaskParser):
    """Embedded and event sub-processes (the stock Camunda parser turns event sub-processes into plain ones)."""

    def create_task(self):
        spec_id = SubprocessParser.get_subprocess_spec(self)
        is_event = (self.node.get("triggeredByEvent") or "").strip().lower() == "true"
        spec_class = self.EVENT_SUBPROCESS_CLASS if is_event else self.spec_class
        return spec_class(self.spec, self.bpmn_id, subworkflow_spec=spec_id, **self.bpmn_attributes)


class ExternalCapableMixin:
    """Send and business rule tasks with camunda:type="external" become service tasks (they park, too)."""

    def create_task(self):
        if is_external(self.node):
            return ServiceTask(self.spec, self.bpmn_id, **self.bpmn_attributes)
        return super().create_task()


class BusinessRuleTaskParser(ExternalCapableMixin, TaskParser):
    """External business rule tasks; DMN-backed ones are refused (the lint says so first)."""

    @staticmethod
    def get_decision_ref(node):
        # Called by the DMN parser for every business rule task; the stock one raises KeyError without one.
        return node.get(f"{{{camunda_tasks.CAMUNDA_MODEL_NS}}}decisionRef")

    def create_task(self):
        if not is_external(self.node):
            raise ValidationException(
                "DMN decision tables are not supported yet", node=self.node, file_name=self.filename
            )
        return super().create_task()


class SendTaskParser(ExternalCapableMixin, ExtensionsMixin, camunda_events.CamundaEventDefinitionParser,
                     BpmnSendTaskParser, camunda_tasks.CamundaTaskParser):
    """Send tasks: a message throw, or an external task."""


class ReceiveTaskParser(ExtensionsMixin, camunda_events.CamundaEventDefinitionParser, BpmnReceiveTaskParser,
                        camunda_tasks.CamundaTaskParser):
    """Receive tasks, with Camunda-flavoured message definitions (the ones the serializer knows)."""


class StartEventParser(TimerMixin, ExtensionsMixin, camunda_events.CamundaStartEventParser):
    """Start events: the start form in extensions, timers quoted."""


class EndEventParser(ExtensionsMixin, camunda_events.CamundaEndEventParser):
    """End events."""


class CatchEventParser(TimerMixin, ExtensionsMixin, camunda_events.CamundaIntermediateCatchEventParser):
    """Intermediate catch events, timers quoted."""


class ThrowEventParser(ExtensionsMixin, camunda_events.CamundaIntermediateThrowEventParser):
    """Intermediate throw events (milestones when they have no definition)."""


class BoundaryEventParser(TimerMixin, ExtensionsMixin, camunda_events.CamundaBoundaryEventParser):
    """Boundary events, timers quoted."""


class ConditionalGatewayParser(ExtensionsMixin, BpmnConditionalGatewayParser):
    """Exclusive and inclusive gateways."""


class GatewayParser(ExtensionsMixin, BpmnGatewayParser):
    """Parallel gateways."""


class EventBasedGatewayParser(ExtensionsMixin, BpmnEventBasedGatewayParser):
    """Event-based gateways."""


class DealflowProcessParser(ProcessParser):
    """The stock process parser, indexing nodes in linear time."""

    def _index_process_nodes(self):
        # The stock xpath('.//*[@id]') is quadratic in libxml2 once thousands of nodes match (a 5 MB upload
        # took minutes); iterating descendants gives the same nodes in the same order, linearly.
        for node in self.node.iterdescendants():
            node_id = node.get("id") if isinstance(node.tag, str) else None
            if node_id is None:
                continue
            self.nodes_by_id[node_id] = node
            if node.tag.endswith("sequenceFlow"):
                self.outgoing_sequence_flows.setdefault(node.get("sourceRef"), []).append(node)
            elif node.tag.endswith("boundaryEvent"):
                self.boundary_events_by_attached.setdefault(node.get("attachedToRef"), []).append(node)
            elif node.tag.endswith("dataObjectReference"):
                self.data_object_references[node_id] = node
            elif node.tag.endswith("dataStoreReference"):
                self.data_store_references[node_id] = node


class DealflowParser(CamundaParser):
    """The Camunda parser with Dealflow's extensions, timer quoting and tree normalization."""

    PROCESS_PARSER_CLASS = DealflowProcessParser

    OVERRIDE_PARSER_CLASSES = {
        full_tag("task"): (TaskParser, NoneTask),
        full_tag("manualTask"): (TaskParser, ManualTask),
        full_tag("serviceTask"): (TaskParser, ServiceTask),
        full_tag("userTask"): (UserTaskParser, UserTask),
        full_tag("scriptTask"): (ScriptTaskParser, ScriptTask),
        full_tag("callActivity"): (CallActivityParser, CallActivity),
        full_tag("subProcess"): (SubProcessParser, SubWorkflowTask),
        full_tag("transaction"): (SubProcessParser, TransactionSubprocess),
        full_tag("businessRuleTask"): (BusinessRuleTaskParser, ServiceTask),
        full_tag("sendTask"): (SendTaskParser, SendTask),
        full_tag("receiveTask"): (ReceiveTaskParser, ReceiveTask),
        full_tag("startEvent"): (StartEventParser, StartEvent),
        full_tag("endEvent"): (EndEventParser, EndEvent),
        full_tag("intermediateCatchEvent"): (CatchEventParser, IntermediateCatchEvent),
        full_tag("intermediateThrowEvent"): (ThrowEventParser, IntermediateThrowEvent),
        full_tag("boundaryEvent"): (BoundaryEventParser, BoundaryEvent),
        full_tag("exclusiveGateway"): (ConditionalGatewayParser, ExclusiveGateway),
        full_tag("inclusiveGateway"): (ConditionalGatewayParser, InclusiveGateway),
        full_tag("parallelGateway"): (GatewayParser, ParallelGateway),
        full_tag("eventBasedGateway"): (EventBasedGatewayParser, EventBasedGateway),
    }
    # Data stores are removed by prepare_tree; none is ever looked up.
    DATA_STORE_CLASSES: dict = {}

    def _add_diagram_indexes(self, bpmn):
        # Same result as the stock method, without its quadratic './/bpmndi:BPMNShape[@bpmnElement]' xpath.
        key = self._document_key(bpmn)
        if key in self.document_lanes:
            return
        lanes, positions = {}, {}
        for ref in bpmn.iter(f"{{{BPMN}}}flowNodeRef"):
            if ref.text is not None:
                lanes[ref.text] = ref.getparent().get("name")
        for shape in bpmn.iter(f"{{{BPMNDI}}}BPMNShape"):
            bounds = next(shape.iter(f"{{{DC}}}Bounds"), None)
            if shape.get("bpmnElement") is not None and bounds is not None:
                positions[shape.get("bpmnElement")] = {"x": float(bounds.get("x", 0)), "y": float(bounds.get("y", 0))}
        self.document_lanes[key] = lanes
        self.document_positions[key] = positions

    def add_bpmn_xml(self, bpmn, filename=None):
        """Add a normalized copy of a parsed definitions tree (the caller's tree is not changed)."""
        root = bpmn.getroot() if isinstance(bpmn, etree._ElementTree) else bpmn
        super().add_bpmn_xml(prepare_tree(root), filename)

    def add_bpmn_str(self, bpmn_str, filename=None):
        """Parse bytes with the hardened parser, then add them."""
        data = bpmn_str.encode() if isinstance(bpmn_str, str) else bpmn_str
        self.add_bpmn_xml(parse_xml(filename or "upload.bpmn", data), filename)

    def add_bpmn_io(self, file_like_object, filename=None):
        """Read a file-like object with the hardened parser, then add it."""
        self.add_bpmn_str(file_like_object.read(), filename)

    def add_bpmn_files(self, filenames):
        """Add files from disk (bytes, so the XML declaration decides the encoding)."""
        for filename in filenames:
            with open(filename, "rb") as handle:
                self.add_bpmn_io(handle, filename)
