"""Designer code in a diagram (conditions, task attributes, timers, parameters, loops, scripts), checked by the
sandbox's static checks at deploy so it cannot fail later on something visible now."""

import re

from lxml import etree

from engine.sandbox import CodeRejected
from engine.sandbox import check_expression
from engine.sandbox import check_script
from processes.dialect import BPMN
from processes.dialect import bpmn_tag
from processes.dialect import describe
from processes.dialect import expression_parts
from processes.dialect import ext_attr
from processes.dialect import ext_children
from processes.dialect import ext_elements
from processes.dialect import has_bean_expression
from processes.dialect import local_name
from processes.dialect import namespace
from processes.dialect import unwrap
from processes.problems import ProblemList
from processes.timers import TIMER_KINDS
from processes.timers import TimerTextInvalid
from processes.timers import timer_expression

EXPRESSION_ATTRIBUTES = ("assignee", "candidateGroups", "candidateUsers", "dueDate", "followUpDate", "priority")
_LINE_PREFIX = re.compile(r"^Line \d+: ")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PYTHON_LANGUAGES = ("", "python", "text/python", "text/x-python", "application/x-python")


def bean_message(node: etree._Element, what: str, text: str) -> str:
    """The sentence for a Java bean ('#{...}') expression."""
    return (
        f"{what} of {describe(node)} is the Java bean expression {text.strip()!r}; Dealflow cannot call Java "
        "beans. Write a Python expression over process variables instead, such as ${approved}."
    )


def check_code(problems: ProblemList, node: etree._Element, what: str, text: str, line: int | None = None) -> None:
    """Check one expression text (whole '${...}', plain Python, or true/false/null) with the sandbox."""
    if has_bean_expression(text):
        problems.add(node, bean_message(node, what, text), line)
        return
    try:
        check_expression(text)
    except CodeRejected as exc:
        hint = ""
        if "dateTime()" in text:
            hint = " JUEL's dateTime() does not exist in Dealflow; compute the date in a script task or a variable."
        reason = _LINE_PREFIX.sub("", exc.message).rstrip(".")
        problems.add(node, (
            f"{what} of {describe(node)} is not a valid Dealflow expression ({text.strip()!r}): {reason}.{hint} "
            "Expressions are Python, optionally wrapped in ${...}."
        ), line)


def check_template(problems: ProblemList, node: etree._Element, what: str, text: str) -> None:
    """Check a text that may hold ${...} expressions: a whole expression, a template, or a literal."""
    if has_bean_expression(text):
        problems.add(node, bean_message(node, what, text))
    elif unwrap(text) is not None:
        check_code(problems, node, what, text)
    else:
        for part in expression_parts(text):
            check_code(problems, node, what, "${" + part + "}")


def check_task_attributes(problems: ProblemList, node: etree._Element) -> None:
    """assignee, candidateGroups, candidateUsers, dueDate, followUpDate, priority when they hold expressions."""
    for name in EXPRESSION_ATTRIBUTES:
        found = ext_attr(node, name)
        if found and ("${" in found[1] or "#{" in found[1]):
            check_template(problems, node, f"The {found[0]} attribute", found[1])


def check_condition(problems: ProblemList, flow: etree._Element) -> None:
    """A sequence flow's conditionExpression: Python (or ${...}) only, no script languages or resources."""
    for condition in flow.iterchildren(bpmn_tag("conditionExpression")):
        language = (condition.get("language") or "").strip().lower()
        if language not in _PYTHON_LANGUAGES:
            problems.add(flow, (
                f"The condition of {describe(flow)} is written in {condition.get('language')!r}; Dealflow "
                "conditions are Python expressions. Remove the script format and write e.g. ${amount > 10000}."
            ), condition.sourceline)
        elif ext_attr(condition, "resource"):
            problems.add(flow, (
                f"The condition of {describe(flow)} is loaded from an external resource, which Dealflow does not "
                "support. Write the expression into the condition itself."
            ), condition.sourceline)
        elif (condition.text or "").strip():
            check_code(problems, flow, "The condition", condition.text, condition.sourceline)


def check_timer(problems: ProblemList, event: etree._Element, definition: etree._Element) -> None:
    """A timerEventDefinition: one of timeDate/timeDuration/timeCycle, ISO 8601 or a valid expression."""
    for kind in TIMER_KINDS:
        found = definition.find(f"{{{BPMN}}}{kind}")
        if found is None:
            continue
        try:
            expression = timer_expression(kind, found.text)
        except TimerTextInvalid as exc:
            problems.add(event, f"The timer of {describe(event)} {exc}", found.sourceline)
            return
        check_code(problems, event, f"The {kind}", expression, found.sourceline)
        return
    problems.add(event, (
        f"The timer of {describe(event)} has no time. Set a duration (PT1H), a date (2026-05-01T10:00:00Z) "
        "or a cycle (R3/PT10M) in the timer's properties."
    ), definition.sourceline)


def check_parameters(problems: ProblemList, node: etree._Element) -> None:
    """camunda:inputOutput parameters: expressions checked, scripts refused."""
    for io in ext_elements(node, "inputOutput"):
        for param in [*ext_children(io, "inputParameter"), *ext_children(io, "outputParameter")]:
            _check_parameter(problems, node, param, f"The {local_name(param)} {param.get('name')!r}")


def _check_parameter(problems: ProblemList, node: etree._Element, param: etree._Element, what: str) -> None:
    nested = [child for child in param if namespace(child) is not None]
    if not nested:
        if param.text and ("${" in param.text or "#{" in param.text):
            check_template(problems, node, what, param.text)
        return
    child = nested[0]
    if local_name(child) == "script":
        problems.add(node, (
            f"{what} of {describe(node)} is computed by a {child.get('scriptFormat') or 'script'} script, which "
            "Dealflow does not run in parameters. Use an expression such as ${amount * 2} instead."
        ), child.sourceline)
    elif local_name(child) == "map":
        for entry in ext_children(child, "entry"):
            _check_parameter(problems, node, entry, f"{what} (entry {entry.get('key')!r})")
    elif local_name(child) == "list":
        for item in child:
            if namespace(item) is not None:
                _check_parameter(problems, node, item, f"{what} (list item)")


def check_loops(problems: ProblemList, node: etree._Element) -> None:
    """Multi-instance and standard loop characteristics."""
    for loop in node.iterchildren(bpmn_tag("multiInstanceLoopCharacteristics")):
        _check_multi_instance(problems, node, loop)
    for loop in node.iterchildren(bpmn_tag("standardLoopCharacteristics")):
        condition = loop.find(bpmn_tag("loopCondition"))
        if condition is not None and (condition.text or "").strip():
            check_code(problems, node, "The loop condition", condition.text, condition.sourceline)
        elif loop.get("loopMaximum") is None:
            problems.add(node, (
                f"The loop of {describe(node)} has neither a loop condition nor a loop maximum, so it would never "
                "end. Set one of them, or remove the loop marker."
            ), loop.sourceline)


def _check_multi_instance(problems: ProblemList, node: etree._Element, loop: etree._Element) -> None:
    cardinality = loop.find(bpmn_tag("loopCardinality"))
    collection = ext_attr(loop, "collection")
    if cardinality is None and collection is None:
        problems.add(node, (
            f"The multi-instance marker of {describe(node)} sets neither a collection nor a loop cardinality. "
            "Set Collection (e.g. ${items}) and Element variable (e.g. item), or a cardinality such as 3."
        ), loop.sourceline)
    if cardinality is not None:
        check_code(problems, node, "The loop cardinality", cardinality.text or "", cardinality.sourceline)
    if collection is not None:
        name = unwrap(collection[1]) or collection[1]
        if not _IDENTIFIER.match(name.strip()):
            problems.add(node, (
                f"The {collection[0]} {collection[1]!r} of {describe(node)} is not a variable name; Dealflow "
                "iterates over a list held in one process variable. Write e.g. ${items}."
            ), loop.sourceline)
    completion = loop.find(bpmn_tag("completionCondition"))
    if completion is not None and (completion.text or "").strip():
        check_code(problems, node, "The completion condition", completion.text, completion.sourceline)


def check_script_body(problems: ProblemList, task: etree._Element) -> None:
    """A Python script task's body, with the offending line translated to a line of the file."""
    script = task.find(bpmn_tag("script"))
    if script is None or not (script.text or "").strip():
        problems.add(task, (
            f"The {describe(task)} has no script. Write the Python code in the script task's Script field."
        ))
        return
    try:
        check_script(script.text)
    except CodeRejected as exc:
        line = script.sourceline + exc.line - 1 if exc.line and script.sourceline else script.sourceline
        problems.add(task, (
            f"The script of {describe(task)} was rejected at line {line} of the file (script line {exc.line}: "
            f"{_LINE_PREFIX.sub('', exc.message).rstrip('.')}). Correct the script in the script task's Script field."
        ), line)
