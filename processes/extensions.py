"""Camunda extensions of one BPMN element, read into the plain dict stored as `task_spec.extensions`.

Shape (only keys that are set):
    properties: {name: value}
    assignee, candidateGroups, candidateUsers, dueDate, followUpDate, priority, formKey: raw strings
    form: [{id, label, type, default, validation: {name: config|None}, options: [{id, name}] (enum), properties}]
    type: "external", topic: str                       (external service/send/business rule tasks)
    inputParameters / outputParameters: {name: param}   param = {"kind": text|expression|template|map|list,
                                                                  "value": ...}
"""

from typing import Any

from lxml import etree

from processes.dialect import ext_children
from processes.dialect import ext_elements
from processes.dialect import ext_value
from processes.dialect import is_bpmn
from processes.dialect import local_name
from processes.dialect import namespace
from processes.dialect import unwrap

TASK_ATTRIBUTES = ("assignee", "candidateGroups", "candidateUsers", "dueDate", "followUpDate", "priority", "formKey")
EXTERNAL_CAPABLE = ("serviceTask", "sendTask", "businessRuleTask")
FORM_OWNERS = ("userTask", "startEvent")
# An empty camunda:inputParameter means null in Camunda; as an expression it stays within the listed kinds.
NULL_PARAMETER = {"kind": "expression", "value": "None"}


def read_extensions(node: etree._Element) -> dict[str, Any]:
    """All Camunda (or activiti:) extensions of a flow element, in the shape documented above."""
    extensions: dict[str, Any] = {}
    properties = read_properties(node)
    if properties:
        extensions["properties"] = properties
    for name in TASK_ATTRIBUTES:
        value = ext_value(node, name)
        if value is not None:
            extensions[name] = value
    if is_bpmn(node, *FORM_OWNERS) and ext_elements(node, "formData"):
        extensions["form"] = read_form(node)
    if is_bpmn(node, "startEvent") and (node.get("isInterrupting") or "").strip().lower() == "false":
        extensions["interrupting"] = False  # an event sub-process that runs beside the process, not instead
    if is_external(node):
        extensions["type"] = "external"
        extensions["topic"] = ext_value(node, "topic")
    extensions.update(read_input_output(node))
    return extensions


def is_external(node: etree._Element) -> bool:
    """True for a service, send or business rule task implemented as a Camunda external task."""
    return is_bpmn(node, *EXTERNAL_CAPABLE) and ext_value(node, "type") == "external"


def read_properties(node: etree._Element) -> dict[str, str | None]:
    """The element's own camunda:properties (not those of its form fields) as {name: value}."""
    found: dict[str, str | None] = {}
    for container in ext_elements(node, "properties"):
        for prop in ext_children(container, "property"):
            if prop.get("name") is not None:
                found[prop.get("name")] = prop.get("value")
    return found


def read_form(node: etree._Element) -> list[dict[str, Any]]:
    """camunda:formData fields, read whether or not a formKey is set (Camunda Modeler 5 sets none)."""
    fields = []
    for form_data in ext_elements(node, "formData"):
        fields.extend(read_form_field(field) for field in ext_children(form_data, "formField"))
    return fields


def read_form_field(field: etree._Element) -> dict[str, Any]:
    """One camunda:formField as a dict."""
    result: dict[str, Any] = {
        "id": field.get("id"),
        "label": field.get("label"),
        "type": field.get("type"),
        "default": field.get("defaultValue"),
        "validation": {
            constraint.get("name"): constraint.get("config")
            for validation in ext_children(field, "validation")
            for constraint in ext_children(validation, "constraint")
        },
        "properties": {
            prop.get("id"): prop.get("value")
            for properties in ext_children(field, "properties")
            for prop in ext_children(properties, "property")
        },
    }
    if result["type"] == "enum":
        result["options"] = [{"id": v.get("id"), "name": v.get("name")} for v in ext_children(field, "value")]
    return result


def read_input_output(node: etree._Element) -> dict[str, Any]:
    """camunda:inputOutput as {"inputParameters": {...}, "outputParameters": {...}} (keys only when present)."""
    result: dict[str, Any] = {}
    for io in ext_elements(node, "inputOutput"):
        for tag, key in (("inputParameter", "inputParameters"), ("outputParameter", "outputParameters")):
            for param in ext_children(io, tag):
                value = read_parameter(param)
                if value is not None:
                    result.setdefault(key, {})[param.get("name")] = value
    return result


def read_parameter(param: etree._Element) -> dict[str, Any] | None:
    """One parameter (or map entry, or list item); None for camunda:script, which the lint reports."""
    nested = [child for child in param if namespace(child) is not None]
    if nested:
        child = nested[0]
        name = local_name(child)
        if name == "map":
            return {"kind": "map", "value": {e.get("key"): read_parameter(e) for e in ext_children(child, "entry")}}
        if name == "list":
            items = [read_parameter(item) for item in child if namespace(item) is not None]
            return {"kind": "list", "value": items}
        return None
    return parameter_from_text(param.text)


def parameter_from_text(text: str | None) -> dict[str, Any]:
    """A literal, a whole ${...} expression, or a template mixing text and ${...}."""
    if text is None or not text.strip():
        return dict(NULL_PARAMETER)
    inner = unwrap(text)
    if inner is not None:
        return {"kind": "expression", "value": inner}
    if "${" in text:
        return {"kind": "template", "value": text}
    return {"kind": "text", "value": text}
