"""BPMN 2.0 XSD validation with SpiffWorkflow's BpmnValidator, reporting every schema error, not just the last."""

import re
from copy import deepcopy
from functools import cache

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator

from processes.dialect import PREFIXES
from processes.dialect import is_bpmn
from processes.dialect import is_executable
from processes.problems import ProblemList
from processes.problems import owner_id

_CLARK = re.compile(r"\{([^}]*)\}(\w+)")
MAX_SCHEMA_ERRORS = 50
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"


@cache
def validator() -> BpmnValidator:
    """One BpmnValidator per process: building it parses the XSD (about 0.15 s)."""
    return BpmnValidator()


def check_schema(root: etree._Element, problems: ProblemList) -> None:
    """Validate against the BPMN 2.0 XSD; each error becomes a problem at its line and nearest element id."""
    copy = deepcopy(root)
    checker = validator()
    # preprocess() renames a bpmn.io quirk in place, hence the copy.
    checker.preprocess(copy)
    schema = checker.validator
    if schema.validate(copy):
        return
    by_line = _elements_by_line(root)
    for error in list(schema.error_log)[:MAX_SCHEMA_ERRORS]:
        node = by_line.get(error.line)
        if node is not None and _decorative(node):
            continue
        message = _CLARK.sub(lambda m: f"{PREFIXES.get(m.group(1), m.group(1))}:{m.group(2)}", error.message)
        element = f"the element {owner_id(node)!r}" if node is not None and owner_id(node) else "an element"
        problems.add(node, (
            f"The BPMN 2.0 schema rejects {element} at line {error.line}: {message.rstrip('.')}. "
            "Correct it in Camunda Modeler's properties panel."
        ), error.line)


def _decorative(node: etree._Element) -> bool:
    # Errors in diagram interchange or in non-executable pools never block: they are documentation.
    for ancestor in node.iterancestors():
        if etree.QName(ancestor).namespace == BPMNDI:
            return True
        if is_bpmn(ancestor, "process") and not is_executable(ancestor):
            return True
    return etree.QName(node).namespace == BPMNDI


def _elements_by_line(root: etree._Element) -> dict[int, etree._Element]:
    found: dict[int, etree._Element] = {}
    for node in root.iter():
        if isinstance(node.tag, str) and node.sourceline is not None:
            found.setdefault(node.sourceline, node)
    return found
