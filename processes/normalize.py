"""The tree SpiffWorkflow is given: a copy of the upload with ids filled in and Camunda 7 semantics made explicit.

- id-less sequence flows get Flow_<source>_<target> (SpiffWorkflow would silently drop them);
- activiti: attributes and elements are renamed to camunda: (Camunda 7 reads them as aliases);
- data stores, data objects, their associations and ioSpecification are removed: Camunda 7 treats them as
  documentation, while SpiffWorkflow would refuse data stores and fail at run time on unset data objects;
- camunda:collection="${items}" becomes "items", the variable name SpiffWorkflow's multi-instance expects.
"""

from copy import deepcopy

from lxml import etree

from processes.dialect import ACTIVITI
from processes.dialect import BPMN
from processes.dialect import CAMUNDA
from processes.dialect import assign_missing_flow_ids
from processes.dialect import bpmn_tag
from processes.dialect import unwrap

DECORATIVE = (
    "dataStore", "dataStoreReference", "dataObject", "dataObjectReference",
    "dataInputAssociation", "dataOutputAssociation", "ioSpecification",
)


def prepare_tree(root: etree._Element) -> etree._Element:
    """A normalized deep copy of a definitions element; the original is left as uploaded."""
    tree = deepcopy(root)
    assign_missing_flow_ids(tree)
    alias_activiti(tree)
    strip_decorations(tree)
    unwrap_collections(tree)
    return tree


def alias_activiti(tree: etree._Element) -> None:
    """Rename activiti: attributes and extension elements into the camunda: namespace."""
    prefix = f"{{{ACTIVITI}}}"
    for node in tree.iter():
        if not isinstance(node.tag, str):
            continue
        if node.tag.startswith(prefix):
            node.tag = f"{{{CAMUNDA}}}{node.tag[len(prefix):]}"
        for name in [key for key in node.attrib if key.startswith(prefix)]:
            node.attrib[f"{{{CAMUNDA}}}{name[len(prefix):]}"] = node.attrib.pop(name)


def strip_decorations(tree: etree._Element) -> None:
    """Remove the data elements Camunda 7 ignores (and the placeholder properties their associations use)."""
    doomed = [node for name in DECORATIVE for node in tree.iter(bpmn_tag(name))]
    placeholders = [
        node for node in tree.iter(bpmn_tag("property")) if node.get("name") == "__targetRef_placeholder"
    ]
    for node in doomed + placeholders:
        parent = node.getparent()
        if parent is not None:
            parent.remove(node)


def unwrap_collections(tree: etree._Element) -> None:
    """camunda:collection="${name}" -> "name" on multi-instance loop characteristics."""
    attribute = f"{{{CAMUNDA}}}collection"
    for node in tree.iter(f"{{{BPMN}}}multiInstanceLoopCharacteristics"):
        inner = unwrap(node.get(attribute))
        if inner is not None:
            node.set(attribute, inner)
