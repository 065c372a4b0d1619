"""Which elements of a process can ever run: walk sequence flows from the start events, into sub-processes,
boundary events and event sub-processes. Only those are linted; the rest of a diagram is documentation."""

from collections import deque
from dataclasses import dataclass
from dataclasses import field

from lxml import etree

from processes.dialect import bpmn_tag
from processes.dialect import is_bpmn
from processes.dialect import local_name

CONTAINERS = ("subProcess", "transaction", "adHocSubProcess")
NOT_FLOW_NODES = (
    "sequenceFlow", "laneSet", "textAnnotation", "association", "group", "extensionElements", "documentation",
    "dataObject", "dataObjectReference", "dataStoreReference", "ioSpecification", "property",
    "multiInstanceLoopCharacteristics", "standardLoopCharacteristics", "incoming", "outgoing",
)


@dataclass
class Reach:
    """The reachable flow nodes and sequence flows (document order), and flows whose target does not exist."""

    nodes: list[etree._Element] = field(default_factory=list)
    flows: list[etree._Element] = field(default_factory=list)
    dangling: list[etree._Element] = field(default_factory=list)


@dataclass
class _Index:
    nodes: dict[str, etree._Element] = field(default_factory=dict)
    outgoing: dict[str, list[etree._Element]] = field(default_factory=dict)
    boundaries: dict[str, list[etree._Element]] = field(default_factory=dict)


def flow_nodes(container: etree._Element) -> list[etree._Element]:
    """The BPMN flow nodes directly inside a process or sub-process."""
    return [
        child for child in container
        if is_bpmn(child) and local_name(child) not in NOT_FLOW_NODES
    ]


def _index(container: etree._Element) -> _Index:
    index = _Index()
    for child in container.iterchildren(bpmn_tag("sequenceFlow")):
        index.outgoing.setdefault(child.get("sourceRef"), []).append(child)
    for child in flow_nodes(container):
        if child.get("id"):
            index.nodes[child.get("id")] = child
        if is_bpmn(child, "boundaryEvent"):
            index.boundaries.setdefault(child.get("attachedToRef"), []).append(child)
    return index


def entries(container: etree._Element) -> list[etree._Element]:
    """Where execution enters a container: its start events and event sub-processes (ad-hoc: every free node)."""
    if is_bpmn(container, "adHocSubProcess"):
        targets = {flow.get("targetRef") for flow in container.iterchildren(bpmn_tag("sequenceFlow"))}
        return [n for n in flow_nodes(container) if n.get("id") not in targets and not is_bpmn(n, "boundaryEvent")]
    starts = list(container.iterchildren(bpmn_tag("startEvent")))
    events = [
        child for child in container.iterchildren(bpmn_tag("subProcess"))
        if (child.get("triggeredByEvent") or "").strip().lower() == "true"
    ]
    return starts + events


def walk(process: etree._Element) -> Reach:
    """Everything reachable from the process's entries."""
    indexes: dict[etree._Element, _Index] = {}
    seen: set[etree._Element] = set()
    visited: list[etree._Element] = []
    reach = Reach()
    queue = deque(entries(process))
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        visited.append(node)
        parent = node.getparent()
        index = indexes.get(parent) or indexes.setdefault(parent, _index(parent))
        queue.extend(index.boundaries.get(node.get("id"), []))
        for flow in index.outgoing.get(node.get("id"), []) if node.get("id") else []:
            reach.flows.append(flow)
            target = index.nodes.get(flow.get("targetRef"))
            if target is None:
                reach.dangling.append(flow)
            else:
                queue.append(target)
        if is_bpmn(node, *CONTAINERS):
            queue.extend(entries(node))
    # Document order, so problems come out in the order a reader meets them (also within one line).
    position = {node: index for index, node in enumerate(process.iter())}
    reach.nodes = sorted(visited, key=position.__getitem__)
    reach.flows.sort(key=position.__getitem__)
    return reach
