"""The deploy-time lint over one parsed file: every problem, each with file, element id and line, in one list."""

from collections.abc import Callable

from lxml import etree

from processes.dialect import ZEEBE
from processes.dialect import bpmn_tag
from processes.dialect import describe
from processes.dialect import executable_processes
from processes.dialect import is_bpmn
from processes.dialect import local_name
from processes.dialect import namespace
from processes.lint_code import check_condition
from processes.lint_elements import LintContext
from processes.lint_elements import check_element
from processes.lint_elements import check_extensions
from processes.lint_elements import is_gateway
from processes.lint_events import definitions
from processes.lint_events import supported_start
from processes.problems import Problem
from processes.problems import ProblemList
from processes.problems import owner_id
from processes.reachability import walk
from processes.schema import check_schema

ZEEBE_MESSAGE = (
    "This file uses the Camunda 8 (Zeebe) dialect; Dealflow runs Camunda 7 (camunda:) diagrams. "
    "In Camunda Modeler choose 'Camunda Platform 7' when creating the diagram."
)
MODELER = "http://camunda.org/schema/modeler/1.0"
CONDITIONAL_GATEWAYS = ("exclusiveGateway", "inclusiveGateway")
MULTI_OUTGOING = ("startEvent", "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway",
                  "complexGateway")


def lint_tree(root: etree._Element, file: str, known_topics: Callable[[str], bool] | None = None) -> list[Problem]:
    """All problems of one parsed file (schema, dialect, reachable elements, expressions, scripts)."""
    problems = ProblemList(file)
    if not is_bpmn(root, "definitions"):
        problems.add(None, (
            f"File {file!r} is not a BPMN diagram: its root element is {local_name(root)!r} in "
            f"{namespace(root) or 'no namespace'!r}, not BPMN 2.0 'definitions'. In Camunda Modeler use "
            "File > Save (a .bpmn file), not an image export."
        ), root.sourceline)
        return problems.items
    check_schema(root, problems)
    processes = executable_processes(root)
    if not processes:
        problems.add(None, (
            f"File {file!r} has no executable process: set isExecutable=\"true\" on the process you want to run "
            "(Camunda Modeler: process properties, 'Executable')."
        ), root.sourceline)
    messages = {m.get("id"): m.get("name") for m in root.iterchildren(bpmn_tag("message")) if m.get("id")}
    if root.get(f"{{{MODELER}}}executionPlatform") == "Camunda Cloud":
        problems.add(None, ZEEBE_MESSAGE, root.sourceline)
    context = LintContext(problems, messages, known_topics)
    for process in processes:
        check_process(process, context)
    return sorted(problems.items, key=lambda p: (p.line or 0))


def check_process(process: etree._Element, ctx: LintContext) -> None:
    """One executable process: start events, Zeebe leftovers, then every reachable element and flow."""
    starts = list(process.iterchildren(bpmn_tag("startEvent")))
    if not any(supported_start(s) for s in starts):
        ctx.problems.add(process, (
            f"The executable {describe(process)} has no start event Dealflow can start it with. Add a none, "
            "message or timer start event at the top level of the process."
        ))
    for start in starts:
        if any(local_name(d) == "signalEventDefinition" for d in definitions(start)):
            ctx.problems.add(start, (
                f"The {describe(start)} is a signal start event; Dealflow starts processes directly, by message "
                "or by timer. Make it a none, message or timer start event."
            ))
    check_foreign_dialects(process, ctx.problems)
    check_reserved_ids(process, ctx.problems)
    check_extensions(process, ctx.problems)
    reach = walk(process)
    outgoing: dict[tuple[int, str | None], list[etree._Element]] = {}
    for flow in reach.flows:
        outgoing.setdefault((id(flow.getparent()), flow.get("sourceRef")), []).append(flow)
    for node in reach.nodes:
        check_element(node, ctx)
        check_outgoing(node, outgoing.get((id(node.getparent()), node.get("id")), []), ctx.problems)
        if is_bpmn(node, "subProcess", "transaction"):
            check_sub_process(node, ctx.problems)
    for flow in reach.flows:
        check_condition(ctx.problems, flow)
        check_extensions(flow, ctx.problems)
    for flow in reach.dangling:
        ctx.problems.add(flow, (
            f"The {describe(flow)} leads to {flow.get('targetRef')!r}, which is not an element of the same "
            "process or sub-process. Reconnect the flow in the modeler."
        ))


RESERVED_IDS = frozenset({"Start", "End", "Root"})


def check_reserved_ids(process: etree._Element, problems: ProblemList) -> None:
    """Ids SpiffWorkflow uses for its own control tasks: reusing one silently empties the process."""
    for node in process.iter():
        element_id = node.get("id") if isinstance(node.tag, str) else None
        if element_id in RESERVED_IDS or (element_id or "").endswith(".EndJoin"):
            problems.add(node, (
                f"The {describe(node)} uses the id {element_id!r}, which the engine reserves for its own "
                f"control steps. Rename it (Camunda Modeler: the element's ID field), e.g. to '{element_id}_1'."
            ))


def check_foreign_dialects(process: etree._Element, problems: ProblemList) -> None:
    """zeebe: elements or attributes anywhere in an executable process: one problem per owning element."""
    prefix = f"{{{ZEEBE}}}"
    owners: dict[str | None, etree._Element] = {}
    for node in process.iter():
        if not isinstance(node.tag, str):
            continue
        if node.tag.startswith(prefix) or any(key.startswith(prefix) for key in node.attrib):
            owners.setdefault(owner_id(node), node)
    for node in owners.values():
        problems.add(node, ZEEBE_MESSAGE)


def check_outgoing(node: etree._Element, outgoing: list[etree._Element], problems: ProblemList) -> None:
    """Gateways need conditions or a default; other elements take one path and ignore conditions."""
    name = local_name(node)
    if name in CONDITIONAL_GATEWAYS and len(outgoing) > 1:
        for flow in outgoing:
            if flow.find(bpmn_tag("conditionExpression")) is None and flow.get("id") != node.get("default"):
                problems.add(flow, (
                    f"The {describe(flow)} leaves the {describe(node)} without a condition and is not its "
                    "default flow. Add a condition such as ${approved}, or mark the flow as the default."
                ))
        return
    if name not in MULTI_OUTGOING and len(outgoing) > 1:
        problems.add(node, (
            f"The {describe(node)} has {len(outgoing)} outgoing sequence flows; Dealflow needs a gateway to "
            "split a path. Add a parallel gateway (all paths) or an exclusive gateway (one path) after it."
        ))
    if is_gateway(node):
        return
    for flow in outgoing:
        if flow.find(bpmn_tag("conditionExpression")) is not None:
            problems.add(flow, (
                f"The {describe(flow)} has a condition, but conditions only work on flows leaving exclusive or "
                f"inclusive gateways. Put an exclusive gateway after the {describe(node)}."
            ))


def check_sub_process(node: etree._Element, problems: ProblemList) -> None:
    """An embedded (or event) sub-process needs exactly one start event and at least one end event."""
    starts = list(node.iterchildren(bpmn_tag("startEvent")))
    triggered = (node.get("triggeredByEvent") or "").strip().lower() == "true"
    if len(starts) != 1:
        problems.add(node, (
            f"The {describe(node)} has {len(starts)} start events; an embedded sub-process needs exactly one. "
            "Add (or keep) a single start event inside it."
        ))
    elif triggered and not definitions(starts[0]):
        problems.add(starts[0], (
            f"The {describe(starts[0])} starts an event sub-process but has no trigger. Make it a message, "
            "timer, error, escalation or signal start event."
        ))
    elif not triggered and definitions(starts[0]):
        problems.add(starts[0], (
            f"The {describe(starts[0])} of an embedded sub-process has a trigger; it must be a plain (none) "
            "start event. Remove the trigger, or make the sub-process an event sub-process."
        ))
    if node.find(bpmn_tag("endEvent")) is None:
        problems.add(node, f"The {describe(node)} has no end event. Add one inside the sub-process.")
