"""Per-element rules for reachable flow nodes: what Dealflow runs, and what a Camunda engine would but we cannot."""

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from processes import lint_code
from processes.dialect import EXTENSION_NAMESPACES
from processes.dialect import describe
from processes.dialect import ext_attr
from processes.dialect import ext_elements
from processes.dialect import is_bpmn
from processes.dialect import local_name
from processes.dialect import qualified
from processes.lint_events import check_events
from processes.lint_events import check_message_ref
from processes.problems import ProblemList

SUPPORTED = {
    "task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask", "businessRuleTask",
    "callActivity", "subProcess", "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway",
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
}
UNSUPPORTED = {
    "complexGateway": "Use an exclusive, inclusive or parallel gateway instead.",
    "transaction": "Model it as an ordinary sub-process; Dealflow has no transactions or compensation.",
    "adHocSubProcess": "Model the steps as parallel paths or separate user tasks instead.",
}
JAVA_ATTRIBUTES = ("class", "delegateExpression", "expression", "variableMappingClass",
                   "variableMappingDelegateExpression")
UNSUPPORTED_EXTENSIONS = {
    "taskListener": "task listeners run Java or JavaScript inside the Camunda engine",
    "executionListener": "execution listeners run Java or scripts inside the Camunda engine",
    "connector": "connectors (such as http-connector) run inside the Camunda engine",
    "field": "field injection configures a Java delegate",
}
NON_PYTHON_SCRIPTS = {
    "javascript", "js", "ecmascript", "nashorn", "graal.js", "groovy", "juel", "ruby", "jruby", "kotlin",
    "painless", "freemarker", "velocity", "application/javascript", "text/javascript",
}
FORM_TYPES = ("string", "long", "boolean", "date", "enum")
FORM_CONSTRAINTS = ("required", "readonly", "minlength", "maxlength", "min", "max")
EXTERNAL_HINT = "Set Implementation to 'External' and a topic such as 'mail.send'."


@dataclass
class LintContext:
    """What the rules need besides the element: where problems go, the file's messages, the topic hook."""

    problems: ProblemList
    messages: dict[str, str | None]
    known_topics: Callable[[str], bool] | None = None


def check_element(node: etree._Element, ctx: LintContext) -> None:
    """Run every rule that applies to one reachable flow node."""
    name = local_name(node)
    if name in UNSUPPORTED:
        ctx.problems.add(node, f"The {describe(node)} is not supported by Dealflow. {UNSUPPORTED[name]}")
    elif name not in SUPPORTED:
        ctx.problems.add(node, f"The {describe(node)} (bpmn:{name}) is not supported by Dealflow. Remove it.")
    check_java(node, ctx.problems)
    check_extensions(node, ctx.problems)
    lint_code.check_task_attributes(ctx.problems, node)
    lint_code.check_parameters(ctx.problems, node)
    lint_code.check_loops(ctx.problems, node)
    check_events(node, ctx.problems, ctx.messages)
    rule = RULES.get(name)
    if rule is not None:
        rule(node, ctx)


def check_java(node: etree._Element, problems: ProblemList) -> None:
    """camunda:class / delegateExpression / expression (and activiti: ones): Java the engine cannot run."""
    for attribute in JAVA_ATTRIBUTES:
        found = ext_attr(node, attribute)
        if found is None:
            continue
        qname, value = found
        if attribute == "class":
            what = f"the Java delegate {qname}={value!r}"
        else:
            what = f"the Java expression {qname}={value!r}"
        result = ext_attr(node, "resultVariable")
        if result and attribute == "expression":
            what += f" with {result[0]}={result[1]!r}"
        problems.add(node, f"The {describe(node)} uses {what}, which Dealflow cannot run. {EXTERNAL_HINT}")


def check_extensions(node: etree._Element, problems: ProblemList) -> None:
    """Listeners and connectors (every occurrence, at its own line) and field injection (once per element)."""
    for name, reason in UNSUPPORTED_EXTENSIONS.items():
        found_all = ext_elements(node, name)
        if name == "field" and found_all:
            names = ", ".join(repr(f.get("name")) for f in found_all)
            problems.add(node, (
                f"The {describe(node)} injects {qualified(found_all[0])} values ({names}); {reason}, which "
                "Dealflow cannot run. Remove the fields together with the Java delegate."
            ), found_all[0].sourceline)
            continue
        for found in found_all:
            problems.add(node, (
                f"The {describe(node)} has a {qualified(found)}{_listener_detail(found)}; {reason}, and Dealflow "
                "does not. Use a service task with Implementation 'External' and a topic instead."
            ), found.sourceline)


def _listener_detail(found: etree._Element) -> str:
    script = next((c for c in found if local_name(c) == "script"), None)
    if script is not None:
        return f" (a {script.get('scriptFormat') or 'script'} script)"
    detail = found.get("class") or found.get("expression") or found.get("delegateExpression")
    return f" ({detail})" if detail else ""


def check_service(node: etree._Element, ctx: LintContext) -> None:
    """Service-like tasks: camunda:type="external" with a topic is the one supported implementation."""
    kind = ext_attr(node, "type")
    if any(ext_attr(node, a) for a in JAVA_ATTRIBUTES) or ext_elements(node, "connector"):
        return
    if node.find("{*}messageEventDefinition") is not None or node.get("messageRef"):
        return
    if kind is None:
        if not _foreign_extensions(node):
            ctx.problems.add(node, f"The {describe(node)} has no implementation. {EXTERNAL_HINT}")
        return
    if kind[1] != "external":
        ctx.problems.add(node, f"The {describe(node)} has {kind[0]}={kind[1]!r}, which Dealflow does not support. "
                         + EXTERNAL_HINT)
        return
    topic = ext_attr(node, "topic")
    if topic is None or not topic[1].strip():
        ctx.problems.add(node, f"The external {describe(node)} has no topic. Set a topic such as 'mail.send'.")
    elif ctx.known_topics is not None and not ctx.known_topics(topic[1]):
        ctx.problems.add(node, (
            f"The {describe(node)} uses the topic {topic[1]!r}, for which no handler is installed. "
            "Choose the topic of an installed handler, or install the handler first."
        ))


def _foreign_extensions(node: etree._Element) -> bool:
    # Elements from another dialect (zeebe:) are reported once, by the dialect check, not again here.
    containers = node.findall("{*}extensionElements")
    return any(etree.QName(c).namespace not in EXTENSION_NAMESPACES for e in containers for c in e
               if isinstance(c.tag, str))


def check_business_rule(node: etree._Element, ctx: LintContext) -> None:
    """Business rule tasks run only as external tasks: DMN is not supported yet."""
    if ext_attr(node, "type") is not None:
        check_service(node, ctx)
        return
    ref = ext_attr(node, "decisionRef")
    target = f" (decision {ref[1]!r})" if ref else ""
    ctx.problems.add(node, (
        f"The {describe(node)}{target} needs DMN decision tables, which Dealflow does not support yet. "
        "Decide in a script task or an exclusive gateway, or make it an external task with a topic."
    ))


def check_send(node: etree._Element, ctx: LintContext) -> None:
    """Send tasks: a message throw, or an external task."""
    check_service(node, ctx)


def check_receive(node: etree._Element, ctx: LintContext) -> None:
    """Receive tasks wait for a message, so they need one."""
    if not node.get("messageRef") and node.find("{*}messageEventDefinition") is None:
        ctx.problems.add(node, (
            f"The {describe(node)} has no message, so nothing could ever complete it. Choose a message "
            "in its properties (Message > Global message reference)."
        ))
    elif node.get("messageRef"):
        check_message_ref(node, node, node.get("messageRef"), ctx.problems, ctx.messages)


def check_call(node: etree._Element, ctx: LintContext) -> None:
    """Call activities name the process they call; resolution happens once all files are known."""
    called = (node.get("calledElement") or "").strip()
    if not called:
        ctx.problems.add(node, (
            f"The {describe(node)} does not say which process it calls. Set Called element to the id of a "
            "process in this deployment or an already deployed one."
        ))
    elif "${" in called or "#{" in called:
        ctx.problems.add(node, (
            f"The {describe(node)} computes the called process ({called!r}); Dealflow needs a fixed process id. "
            "Write the id itself."
        ))


def check_script_task(node: etree._Element, ctx: LintContext) -> None:
    """Script tasks: Python only, inline, no result variable; the code passes the sandbox's check."""
    language = (node.get("scriptFormat") or "").strip()
    if language.lower() in NON_PYTHON_SCRIPTS:
        ctx.problems.add(node, (
            f"The {describe(node)} is written in {language}; Dealflow runs Python scripts only. Rewrite the "
            "script in Python and set Script format to 'python'."
        ))
        return
    if ext_attr(node, "resource"):
        ctx.problems.add(node, (f"The {describe(node)} loads its script from an external resource; Dealflow "
                                "runs inline scripts only. Paste the code into the Script field."))
        return
    result = ext_attr(node, "resultVariable")
    if result:
        ctx.problems.add(node, (
            f"The {describe(node)} sets {result[0]}={result[1]!r}; Python scripts have no result value. Assign "
            f"the variable in the script instead ({result[1]} = ...) and clear Result variable."
        ))
    lint_code.check_script_body(ctx.problems, node)


def check_user_task(node: etree._Element, ctx: LintContext) -> None:
    """User task forms: built-in field types and constraints only (custom ones are Java)."""
    check_form(node, ctx.problems)


def check_form(node: etree._Element, problems: ProblemList) -> None:
    """camunda:formData fields of a user task or start event."""
    for form in ext_elements(node, "formData"):
        for field in form.iterchildren("{*}formField"):
            _check_field(node, field, problems)


def _check_field(node: etree._Element, field: etree._Element, problems: ProblemList) -> None:
    label = f"form field {field.get('id')!r} of {describe(node)}"
    if not (field.get("id") or "").strip():
        problems.add(node, f"A form field of {describe(node)} has no id. Give every field an id (the variable "
                     "name it sets).", field.sourceline)
    if field.get("type") not in FORM_TYPES:
        problems.add(node, (
            f"The {label} has the type {field.get('type')!r}; Dealflow forms support {', '.join(FORM_TYPES)}. "
            "Choose one of those."
        ), field.sourceline)
    for constraint in field.iter("{*}constraint"):
        if constraint.get("name") not in FORM_CONSTRAINTS:
            problems.add(node, (
                f"The {label} has the validation {constraint.get('name')!r}; Dealflow supports "
                f"{', '.join(FORM_CONSTRAINTS)} (custom validators are Java classes)."
            ), constraint.sourceline)
    default = field.get("defaultValue")
    if default and ("${" in default or "#{" in default):
        lint_code.check_template(problems, node, f"The default value of {label}", default)


def check_start(node: etree._Element, ctx: LintContext) -> None:
    """Start events may carry a start form."""
    check_form(node, ctx.problems)


RULES: dict[str, Callable[[etree._Element, LintContext], None]] = {
    "serviceTask": check_service,
    "sendTask": check_send,
    "receiveTask": check_receive,
    "businessRuleTask": check_business_rule,
    "callActivity": check_call,
    "scriptTask": check_script_task,
    "userTask": check_user_task,
    "startEvent": check_start,
}


def is_gateway(node: etree._Element) -> bool:
    """True for any BPMN gateway."""
    return is_bpmn(node) and local_name(node).endswith("Gateway")
