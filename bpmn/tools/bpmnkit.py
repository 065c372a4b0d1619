"""A tiny writer of Camunda 7 BPMN files with diagram interchange, used to lay out the shipped diagrams.

The committed .bpmn files are the source of truth (designers edit them in Camunda Modeler); this module (the model
and its layout), bpmnxml.py (the XML) and build_sales.py only produced their first version:
`python -m bpmn.tools.build_sales` rewrites them.

Layout model: a pool with lanes, each lane a number of rows; every node sits in (lane, row, column). Collapsed
sub-processes get their own diagram plane (drill-down in Camunda Modeler 5 / bpmn-js), laid out the same way
without lanes. Edges are orthogonal: right-to-left loops go around below the row of their source.
"""

from dataclasses import dataclass
from dataclasses import field
from xml.sax.saxutils import escape
from xml.sax.saxutils import quoteattr

from bpmn.tools.bpmnxml import documentation
from bpmn.tools.bpmnxml import event_def
from bpmn.tools.bpmnxml import extension
from bpmn.tools.bpmnxml import form_data
from bpmn.tools.bpmnxml import input_output
from bpmn.tools.bpmnxml import lane_id
from bpmn.tools.bpmnxml import properties
from bpmn.tools.bpmnxml import split_body

COL_W = 150
ROW_H = 130
LANE_HEADER = 30
POOL_HEADER = 30
X0 = 160 + POOL_HEADER
Y0 = 60
SIZES = {"task": (100, 80), "event": (36, 36), "gateway": (50, 50), "annotation": (300, 90)}
SLOT = 44  # distance between boundary events on one task
TASK_TAGS = {"userTask", "serviceTask", "scriptTask", "receiveTask", "callActivity", "subProcess", "sendTask"}
EVENT_TAGS = {"startEvent", "endEvent", "intermediateThrowEvent", "intermediateCatchEvent", "boundaryEvent"}


def shape_kind(tag: str) -> str:
    if tag in TASK_TAGS:
        return "task"
    if tag in EVENT_TAGS:
        return "event"
    if tag.endswith("Gateway"):
        return "gateway"
    return "annotation"


@dataclass
class Node:
    id: str
    tag: str
    name: str | None
    lane: str | None
    row: int
    col: float
    attrs: dict = field(default_factory=dict)
    body: str = ""  # inner XML (extension elements, event definitions, scripts)
    inner: "Proc | None" = None  # collapsed sub-process content
    attached: str | None = None  # boundary events
    slot: int = 0  # boundary position along the bottom edge
    bounds: tuple = (0, 0, 0, 0)


@dataclass
class Flow:
    id: str
    src: str
    tgt: str
    name: str | None = None
    cond: str | None = None
    kind: str = "sequenceFlow"


class Proc:
    def __init__(self, pid: str, name: str, lanes: dict[str, int] | None = None, executable: bool = True):
        self.id, self.name, self.executable = pid, name, executable
        self.lanes = lanes or {}  # lane name -> rows
        self.nodes: dict[str, Node] = {}
        self.flows: list[Flow] = []
        self.defaults: dict[str, str] = {}  # gateway id -> default flow id

    # --- elements ---------------------------------------------------------------------------------------------
    def add(self, nid, tag, name, lane=None, col=0, row=0, attrs=None, body="", inner=None):
        assert nid not in self.nodes, nid
        self.nodes[nid] = Node(nid, tag, name, lane, row, col, attrs or {}, body, inner)
        return nid

    def start(self, nid, name, lane=None, col=0, row=0, body=""):
        return self.add(nid, "startEvent", name, lane, col, row, body=body)

    def end(self, nid, name, lane=None, col=0, row=0, body=""):
        return self.add(nid, "endEvent", name, lane, col, row, body=body)

    def milestone(self, nid, name, lane=None, col=0, row=0):
        return self.add(nid, "intermediateThrowEvent", name, lane, col, row)

    def catch(self, nid, name, lane, col, row=0, timer=None, message=None):
        return self.add(nid, "intermediateCatchEvent", name, lane, col, row, body=event_def(nid, timer, message))

    def gateway(self, nid, name, lane, col, row=0, kind="exclusive"):
        return self.add(nid, f"{kind}Gateway", name, lane, col, row)

    def user(self, nid, name, lane, col, row=0, assignee=None, groups=None, form=(), props=None, doc=None):
        attrs = {}
        if assignee:
            attrs["camunda:assignee"] = assignee
        if groups:
            attrs["camunda:candidateGroups"] = groups
        ext = properties(props) + form_data(form)
        return self.add(nid, "userTask", name, lane, col, row, attrs, documentation(doc) + extension(ext))

    def service(self, nid, name, lane, col, topic, params, row=0, result=None, doc=None, outputs=None):
        props = {"resultVariable": result} if result else None
        ext = properties(props) + input_output(params, outputs)
        attrs = {"camunda:type": "external", "camunda:topic": topic}
        return self.add(nid, "serviceTask", name, lane, col, row, attrs, documentation(doc) + extension(ext))

    def script(self, nid, name, lane, col, code, row=0, doc=None):
        body = documentation(doc) + "\x00" + f"<bpmn:script>{escape(code.strip())}</bpmn:script>"
        return self.add(nid, "scriptTask", name, lane, col, row, {"scriptFormat": "python"}, body)

    def receive(self, nid, name, lane, col, message, row=0):
        return self.add(nid, "receiveTask", name, lane, col, row, {"messageRef": message})

    def call(self, nid, name, lane, col, called, row=0):
        return self.add(nid, "callActivity", name, lane, col, row, {"calledElement": called})

    def subprocess(self, nid, name, lane, col, inner, row=0, event=False):
        attrs = {"triggeredByEvent": "true"} if event else {}
        return self.add(nid, "subProcess", name, lane, col, row, attrs, inner=inner)

    def boundary(self, nid, name, attached, slot=0, cancel=True, timer=None, message=None):
        attrs = {"attachedToRef": attached}
        if not cancel:
            attrs["cancelActivity"] = "false"
        node = self.add(nid, "boundaryEvent", name, None, 0, 0, attrs, event_def(nid, timer, message))
        self.nodes[nid].attached, self.nodes[nid].slot = attached, slot
        return node

    def annotation(self, nid, text, lane, col, row=0, about=None):
        self.add(nid, "textAnnotation", text, lane, col, row)
        if about:
            self.flows.append(Flow(f"{nid}_assoc", about, nid, kind="association"))
        return nid

    def flow(self, src, tgt, name=None, cond=None, default=False, fid=None):
        fid = fid or f"Flow_{src}_{tgt}"
        self.flows.append(Flow(fid, src, tgt, name, cond))
        if default:
            self.defaults[src] = fid
        return fid

    def chain(self, *ids):
        for a, b in zip(ids, ids[1:], strict=False):
            self.flow(a, b)

    # --- layout -----------------------------------------------------------------------------------------------
    def lane_tops(self) -> dict[str, int]:
        tops, y = {}, Y0
        for lane, rows in self.lanes.items():
            tops[lane] = y
            y += rows * ROW_H
        return tops

    def layout(self, x0=X0, y0=Y0):
        tops = self.lane_tops() if self.lanes else {None: y0}
        boundaries = {}
        for n in self.nodes.values():
            if n.attached:
                boundaries[n.attached] = boundaries.get(n.attached, 0) + 1
        for n in self.nodes.values():
            if n.tag == "boundaryEvent":
                continue
            w, h = SIZES[shape_kind(n.tag)]
            w = max(w, 8 + SLOT * boundaries.get(n.id, 0)) if shape_kind(n.tag) == "task" else w
            cx = x0 + n.col * COL_W + 50
            cy = tops[n.lane] + n.row * ROW_H + ROW_H // 2
            n.bounds = (int(cx - w / 2), int(cy - h / 2), w, h)
        for n in self.nodes.values():
            if n.tag == "boundaryEvent":
                ax, ay, aw, ah = self.nodes[n.attached].bounds
                n.bounds = (ax + 8 + n.slot * SLOT, ay + ah - 18, 36, 36)
        self.check_overlaps()
        for n in self.nodes.values():
            if n.inner is not None:
                n.inner.layout()

    def check_overlaps(self):
        boxes = [n for n in self.nodes.values() if n.tag != "boundaryEvent"]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                ax, ay, aw, ah = a.bounds
                bx, by, bw, bh = b.bounds
                if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                    raise ValueError(f"{self.id}: {a.id} overlaps {b.id}")

    def width(self) -> int:
        return max(n.bounds[0] + n.bounds[2] for n in self.nodes.values()) + 80

    # --- XML --------------------------------------------------------------------------------------------------
    def semantic(self, indent="  ") -> str:
        out = []
        p = f'<bpmn:process id="{self.id}" name={quoteattr(self.name)} isExecutable="true">'
        out.append(indent + p)
        if self.lanes:
            out.append(indent + f'  <bpmn:laneSet id="LaneSet_{self.id}">')
            for lane in self.lanes:
                out.append(indent + f'    <bpmn:lane id="{lane_id(self.id, lane)}" name={quoteattr(lane)}>')
                for n in self.nodes.values():
                    owner = self.nodes[n.attached] if n.attached else n
                    if owner.lane == lane and n.tag != "textAnnotation":
                        out.append(indent + f"      <bpmn:flowNodeRef>{n.id}</bpmn:flowNodeRef>")
                out.append(indent + "    </bpmn:lane>")
            out.append(indent + "  </bpmn:laneSet>")
        out.extend(self.body_xml(indent + "  "))
        out.append(indent + "</bpmn:process>")
        return "\n".join(out)

    def body_xml(self, ind) -> list[str]:
        out, artifacts = [], []
        for n in self.nodes.values():
            if n.tag == "textAnnotation":  # artifacts follow the flow elements in the schema
                artifacts.append(ind + f'<bpmn:textAnnotation id="{n.id}"><bpmn:text>{escape(n.name)}</bpmn:text>'
                                       "</bpmn:textAnnotation>")
                continue
            attrs = {"id": n.id}
            if n.name:
                attrs["name"] = n.name
            attrs.update(n.attrs)
            if n.id in self.defaults:
                attrs["default"] = self.defaults[n.id]
            head = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
            ins = [f.id for f in self.flows if f.tgt == n.id and f.kind == "sequenceFlow"]
            outs = [f.id for f in self.flows if f.src == n.id and f.kind == "sequenceFlow"]
            pre, post = split_body(n.body)
            inner = [ind + "  " + x for x in pre]
            inner += [ind + f"  <bpmn:incoming>{f}</bpmn:incoming>" for f in ins]
            inner += [ind + f"  <bpmn:outgoing>{f}</bpmn:outgoing>" for f in outs]
            inner += [ind + "  " + post] if post else []
            if n.inner is not None:
                inner += n.inner.body_xml(ind + "  ")
            if n.tag in ("startEvent", "endEvent", "intermediateThrowEvent") and not inner:
                out.append(ind + f"<bpmn:{n.tag} {head} />")
            else:
                out.append(ind + f"<bpmn:{n.tag} {head}>")
                out.extend(inner)
                out.append(ind + f"</bpmn:{n.tag}>")
        for f in self.flows:
            if f.kind == "association":
                artifacts.append(ind + f'<bpmn:association id="{f.id}" sourceRef="{f.src}" targetRef="{f.tgt}" />')
                continue
            name = f" name={quoteattr(f.name)}" if f.name else ""
            head = f'<bpmn:sequenceFlow id="{f.id}"{name} sourceRef="{f.src}" targetRef="{f.tgt}"'
            if f.cond:
                out.append(ind + head + ">")
                out.append(ind + '  <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
                           f"{escape(f.cond)}</bpmn:conditionExpression>")
                out.append(ind + "</bpmn:sequenceFlow>")
            else:
                out.append(ind + head + " />")
        return out + artifacts

    def di_shapes(self, ind) -> list[str]:
        out = []
        for n in self.nodes.values():
            x, y, w, h = n.bounds
            extra = ' isExpanded="false"' if n.tag == "subProcess" else ""
            out.append(ind + f'<bpmndi:BPMNShape id="{n.id}_di" bpmnElement="{n.id}"{extra}>')
            out.append(ind + f'  <dc:Bounds x="{x}" y="{y}" width="{w}" height="{h}" />')
            if n.name and shape_kind(n.tag) in ("event", "gateway"):
                lw = 100 if n.tag != "boundaryEvent" else 80
                ly = y + h + 4 if n.tag != "boundaryEvent" else y + h + 4 + (n.slot % 2) * 30
                out.append(ind + f'  <bpmndi:BPMNLabel><dc:Bounds x="{int(x + w / 2 - lw / 2)}" y="{ly}" '
                                 f'width="{lw}" height="27" /></bpmndi:BPMNLabel>')
            out.append(ind + "</bpmndi:BPMNShape>")
        for f in self.flows:
            pts = self.route(f)
            tag = "BPMNEdge"
            out.append(ind + f'<bpmndi:{tag} id="{f.id}_di" bpmnElement="{f.id}">')
            out.extend(ind + f'  <di:waypoint x="{int(px)}" y="{int(py)}" />' for px, py in pts)
            out.append(ind + f"</bpmndi:{tag}>")
        return out

    def route(self, f: Flow) -> list[tuple[int, int]]:
        s, t = self.nodes[f.src], self.nodes[f.tgt]
        sx, sy, sw, sh = s.bounds
        tx, ty, tw, th = t.bounds
        scx, scy, tcx, tcy = sx + sw / 2, sy + sh / 2, tx + tw / 2, ty + th / 2
        if f.kind == "association":
            return [(scx, sy + sh), (tcx, ty)] if ty > sy else [(scx, sy), (tcx, ty + th)]
        if s.tag == "boundaryEvent":
            start = (scx, sy + sh)
            if abs(tcx - scx) < 2:
                return [start, (tcx, ty)] if ty > sy else [start, (scx, ty + th)]
            if ty + th < sy:  # up: below the task, then up beside the target
                lane_x = tx - 20
                return [start, (scx, sy + sh + 15), (lane_x, sy + sh + 15), (lane_x, tcy), (tx, tcy)]
            if tx > scx:
                return [start, (scx, tcy), (tx, tcy)]
            return [start, (scx, ty - 20), (tcx, ty - 20), (tcx, ty)]
        if tx >= sx + sw:  # forward
            if abs(scy - tcy) < 2:
                return [(sx + sw, scy), (tx, tcy)]
            if t.tag.endswith("Gateway"):
                return [(sx + sw, scy), (tcx, scy), (tcx, ty if tcy > scy else ty + th)]
            if s.tag.endswith("Gateway"):
                return [(scx, sy + sh if tcy > scy else sy), (scx, tcy), (tx, tcy)]
            mid = (sx + sw + tx) / 2
            return [(sx + sw, scy), (mid, scy), (mid, tcy), (tx, tcy)]
        if abs(scx - tcx) < 2:  # straight down/up
            return [(scx, sy + sh), (tcx, ty)] if ty > sy else [(scx, sy), (tcx, ty + th)]
        # backwards: leave below, run left under the row, enter the target from below
        low = max(sy + sh, ty + th) + 22
        return [(scx, sy + sh), (scx, low), (tcx, low), (tcx, ty + th)]


HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:modeler="http://camunda.org/schema/modeler/1.0" '
        'id="Definitions_{pid}" targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler" '
        'exporterVersion="5.17.0" modeler:executionPlatform="Camunda Platform" '
        'modeler:executionPlatformVersion="7.20.0">\n')


def document(proc: Proc, messages: dict[str, str], pool_name: str) -> str:
    proc.layout()
    out = [HEAD.replace("{pid}", proc.id)]
    collab = f"Collaboration_{proc.id}"
    participant = f"Participant_{proc.id}"
    out.append(f'  <bpmn:collaboration id="{collab}">\n'
               f'    <bpmn:participant id="{participant}" name={quoteattr(pool_name)} processRef="{proc.id}" />\n'
               "  </bpmn:collaboration>\n")
    for mid, name in messages.items():
        out.append(f'  <bpmn:message id="{mid}" name={quoteattr(name)} />\n')
    out.append(proc.semantic() + "\n")
    # main plane: pool, lanes, shapes, edges
    width = proc.width() - (X0 - POOL_HEADER) + 40
    tops = proc.lane_tops()
    height = sum(proc.lanes.values()) * ROW_H
    px = X0 - POOL_HEADER - LANE_HEADER
    out.append(f'  <bpmndi:BPMNDiagram id="Diagram_{proc.id}">\n'
               f'    <bpmndi:BPMNPlane id="Plane_{proc.id}" bpmnElement="{collab}">\n')
    ind = "      "
    out.append(ind + f'<bpmndi:BPMNShape id="{participant}_di" bpmnElement="{participant}" isHorizontal="true">\n'
               + ind + f'  <dc:Bounds x="{px}" y="{Y0}" width="{width + LANE_HEADER}" height="{height}" />\n'
               + ind + "</bpmndi:BPMNShape>\n")
    for lane, rows in proc.lanes.items():
        lid = lane_id(proc.id, lane)
        out.append(ind + f'<bpmndi:BPMNShape id="{lid}_di" bpmnElement="{lid}" isHorizontal="true">\n'
                   + ind + f'  <dc:Bounds x="{px + LANE_HEADER}" y="{tops[lane]}" width="{width}" '
                           f'height="{rows * ROW_H}" />\n'
                   + ind + "</bpmndi:BPMNShape>\n")
    out.append("\n".join(proc.di_shapes(ind)) + "\n")
    out.append("    </bpmndi:BPMNPlane>\n  </bpmndi:BPMNDiagram>\n")
    for n in proc.nodes.values():
        if n.inner is not None:
            out.append(f'  <bpmndi:BPMNDiagram id="Diagram_{n.id}">\n'
                       f'    <bpmndi:BPMNPlane id="Plane_{n.id}" bpmnElement="{n.id}">\n')
            out.append("\n".join(n.inner.di_shapes(ind)) + "\n")
            out.append("    </bpmndi:BPMNPlane>\n  </bpmndi:BPMNDiagram>\n")
    out.append("</bpmn:definitions>\n")
    return "".join(out)
