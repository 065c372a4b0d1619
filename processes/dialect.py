"""The BPMN dialect Dealflow reads: namespaces, Camunda attributes (with activiti: as an alias), ${...} text."""

import re

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
# Camunda 7 reads the Activiti namespace as an alias of its own; so do we.
ACTIVITI = "http://activiti.org/bpmn"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
EXTENSION_NAMESPACES = (CAMUNDA, ACTIVITI)
# Marks ids Dealflow generated for id-less sequence flows, so messages can say where the flow is.
GENERATED_ID = "{urn:dealflow:bpmn}generated-id"
PREFIXES = {CAMUNDA: "camunda", ACTIVITI: "activiti", ZEEBE: "zeebe", BPMN: "bpmn"}
NSMAP = {"bpmn": BPMN, "camunda": CAMUNDA, "activiti": ACTIVITI}

_WHOLE_EXPRESSION = re.compile(r"^\s*\$\{(.*)\}\s*$", re.S)
_WORDS = re.compile(r"(?<!^)(?=[A-Z])")
_KIND_NAMES = {"subProcess": "sub-process", "adHocSubProcess": "ad-hoc sub-process"}


def bpmn_tag(name: str) -> str:
    """The Clark name of a BPMN element, e.g. '{...MODEL}userTask'."""
    return f"{{{BPMN}}}{name}"


def local_name(node: etree._Element) -> str:
    """The tag without its namespace ('' for comments and processing instructions)."""
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def namespace(node: etree._Element) -> str | None:
    """The namespace URI of an element (None for comments and processing instructions)."""
    return etree.QName(node).namespace if isinstance(node.tag, str) else None


def is_bpmn(node: etree._Element, *names: str) -> bool:
    """True if the node is a BPMN element with one of the given local names (any, if none are given)."""
    return namespace(node) == BPMN and (not names or local_name(node) in names)


def ext_attr(node: etree._Element, name: str) -> tuple[str, str] | None:
    """The (qualified name, value) of camunda:NAME or activiti:NAME on the node, if set."""
    for uri in EXTENSION_NAMESPACES:
        value = node.get(f"{{{uri}}}{name}")
        if value is not None:
            return f"{PREFIXES[uri]}:{name}", value
    return None


def ext_value(node: etree._Element, name: str) -> str | None:
    """The value of camunda:NAME (or activiti:NAME) on the node, if set."""
    found = ext_attr(node, name)
    return found[1] if found else None


def ext_elements(node: etree._Element, name: str) -> list[etree._Element]:
    """camunda:NAME / activiti:NAME children of the node's own bpmn:extensionElements."""
    found = []
    for container in node.iterchildren(bpmn_tag("extensionElements")):
        for uri in EXTENSION_NAMESPACES:
            found.extend(container.iterchildren(f"{{{uri}}}{name}"))
    return found


def ext_children(node: etree._Element, name: str) -> list[etree._Element]:
    """camunda:NAME / activiti:NAME direct children of any element (for nested extension content)."""
    return [child for uri in EXTENSION_NAMESPACES for child in node.iterchildren(f"{{{uri}}}{name}")]


def qualified(node: etree._Element) -> str:
    """'camunda:taskListener'-style name of an element, for messages."""
    uri = namespace(node)
    prefix = PREFIXES.get(uri or "", node.prefix or "")
    return f"{prefix}:{local_name(node)}" if prefix else local_name(node)


def kind(node: etree._Element) -> str:
    """A human name for the element type: 'user task', 'exclusive gateway', 'sub-process'."""
    name = local_name(node)
    if name in _KIND_NAMES:
        return _KIND_NAMES[name]
    return _WORDS.sub(" ", name).lower()


def describe(node: etree._Element) -> str:
    """"service task 'ServiceTask_1' ("Archive Invoice")": the element as a message names it."""
    text = f"{kind(node)} {node.get('id')!r}" if node.get("id") else f"{kind(node)} (without id)"
    if node.get(GENERATED_ID):
        text += f" (from {node.get('sourceRef')!r} to {node.get('targetRef')!r}; the file gives it no id)"
    label = " ".join((node.get("name") or "").split())
    return f'{text} ("{label}")' if label else text


def located(node: etree._Element, file: str) -> str:
    """describe() plus file and line: "user task 'review' in invoice.bpmn line 12"."""
    return f"{describe(node)} in {file} line {node.sourceline}"


def unwrap(text: str | None) -> str | None:
    """The inner text of a whole '${...}' expression, or None if the text is not one."""
    if text is None:
        return None
    match = _WHOLE_EXPRESSION.match(text)
    if not match or not _balanced(match.group(1)):
        return None
    return match.group(1).strip()


def _balanced(inner: str) -> bool:
    # '${a} and ${b}' also matches the outer pattern; its inner 'a} and ${b' closes a brace it never opened.
    depth = 0
    for char in inner:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def expression_parts(text: str) -> list[str]:
    """The inner texts of every '${...}' in a text (one for a whole expression, several for a template)."""
    parts, start = [], text.find("${")
    while start >= 0:
        depth, index = 0, start + 1
        while index < len(text):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                break
            index += 1
        parts.append(text[start + 2:index].strip())
        start = text.find("${", index)
    return parts


def has_bean_expression(text: str | None) -> bool:
    """True for Java EL deferred ('#{...}') expressions, which call Spring/CDI beans."""
    return text is not None and "#{" in text


def is_executable(process: etree._Element) -> bool:
    """SpiffWorkflow and Camunda 7 both treat a process without isExecutable as executable."""
    return process.get("isExecutable", "true").strip().lower() == "true"


def executable_processes(root: etree._Element) -> list[etree._Element]:
    """The top-level executable bpmn:process elements of a definitions element."""
    return [p for p in root.iterchildren(bpmn_tag("process")) if is_executable(p)]


def flow_id(source: str | None, target: str | None, taken: set[str]) -> str:
    """A deterministic id for a sequence flow written without one: Flow_<source>_<target>, made unique."""
    base = f"Flow_{source or 'unknown'}_{target or 'unknown'}"
    candidate, counter = base, 1
    while candidate in taken:
        counter += 1
        candidate = f"{base}_{counter}"
    taken.add(candidate)
    return candidate


def assign_missing_flow_ids(root: etree._Element) -> list[etree._Element]:
    """Give every id-less bpmn:sequenceFlow a deterministic id, in document order; return those flows."""
    taken = {node.get("id") for node in root.iter() if isinstance(node.tag, str) and node.get("id")}
    fixed = []
    for flow in root.iter(bpmn_tag("sequenceFlow")):
        if not flow.get("id"):
            flow.set("id", flow_id(flow.get("sourceRef"), flow.get("targetRef"), taken))
            flow.set(GENERATED_ID, "true")
            fixed.append(flow)
    return fixed
