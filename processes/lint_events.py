"""Event definitions on reachable events: which triggers Dealflow supports, and whether they are complete."""

from lxml import etree

from processes import lint_code
from processes.dialect import describe
from processes.dialect import ext_attr
from processes.dialect import is_bpmn
from processes.dialect import local_name
from processes.problems import ProblemList

EVENTS = ("startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent")
UNSUPPORTED_DEFINITIONS = {
    "conditionalEventDefinition": (
        "Conditional events are not supported. Model the wait with a message event, a timer, or a user task "
        "followed by an exclusive gateway."
    ),
    "compensateEventDefinition": "Compensation is not supported. Model the undo steps as ordinary tasks.",
    "linkEventDefinition": (
        "Link events are not supported (SpiffWorkflow would end the path there). Connect the two parts with a "
        "sequence flow instead."
    ),
    "cancelEventDefinition": "Cancel events belong to transactions, which are not supported.",
}
START_TRIGGERS = ("messageEventDefinition", "timerEventDefinition")
JAVA_ON_DEFINITIONS = ("class", "delegateExpression", "expression", "type")


def definitions(event: etree._Element) -> list[etree._Element]:
    """The event's *EventDefinition children (and bpmn:eventDefinitionRef targets are not supported)."""
    return [child for child in event if is_bpmn(child) and local_name(child).endswith("EventDefinition")]


def check_events(node: etree._Element, problems: ProblemList, messages: dict[str, str | None]) -> None:
    """Every event definition of a reachable event: supported kind, complete, and its code checked."""
    if not is_bpmn(node, *EVENTS):
        return
    found = definitions(node)
    if is_bpmn(node, "boundaryEvent") and not found:
        problems.add(node, (
            f"The {describe(node)} has no trigger. Make it a timer, message, error, escalation or signal event."
        ))
    for definition in found:
        name = local_name(definition)
        if name in UNSUPPORTED_DEFINITIONS:
            problems.add(node, f"The {describe(node)}: {UNSUPPORTED_DEFINITIONS[name]}", definition.sourceline)
        elif name == "timerEventDefinition":
            lint_code.check_timer(problems, node, definition)
        elif name == "messageEventDefinition":
            _check_message(node, definition, problems, messages)
    for ref in node.iterchildren("{*}eventDefinitionRef"):
        problems.add(node, (
            f"The {describe(node)} refers to a shared event definition ({(ref.text or '').strip()!r}); define "
            "the trigger on the event itself."
        ), ref.sourceline)


def _check_message(node: etree._Element, definition: etree._Element, problems: ProblemList,
                   messages: dict[str, str | None]) -> None:
    ref = definition.get("messageRef")
    if not ref:
        problems.add(node, (
            f"The {describe(node)} has no message. Choose or create one in its properties "
            "(Message > Global message reference); messages are correlated by name."
        ), definition.sourceline)
    else:
        check_message_ref(node, definition, ref, problems, messages)
    for attribute in JAVA_ON_DEFINITIONS:
        found = ext_attr(definition, attribute)
        if found:
            problems.add(node, (
                f"The message of {describe(node)} is implemented by {found[0]}={found[1]!r}, which Dealflow "
                "cannot run. Send messages with a service task (Implementation 'External', a topic) instead."
            ), definition.sourceline)


def check_message_ref(node: etree._Element, at: etree._Element, ref: str, problems: ProblemList,
                      messages: dict[str, str | None]) -> None:
    """A messageRef names a bpmn:message of this file, and that message has a name to correlate by."""
    if ref not in messages:
        problems.add(node, f"The {describe(node)} refers to the message {ref!r}, which this file does not define. "
                     "Choose an existing message.", at.sourceline)
    elif not (messages[ref] or "").strip():
        problems.add(node, f"The message {ref!r} used by {describe(node)} has no name; messages are correlated by "
                     "name. Give the message a name in the modeler.", at.sourceline)


def supported_start(event: etree._Element) -> bool:
    """A start event Dealflow can start a process with: none, message or timer."""
    found = definitions(event)
    return not found or all(local_name(d) in START_TRIGGERS for d in found)
