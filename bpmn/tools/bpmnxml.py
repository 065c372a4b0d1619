"""Camunda 7 XML fragments for bpmnkit's model: documentation, extensions (properties, forms, input/output
parameters), event definitions."""

from xml.sax.saxutils import escape
from xml.sax.saxutils import quoteattr


def lane_id(pid, lane):
    return f"Lane_{pid}_{'_'.join(lane.lower().split())}"


def split_body(body: str) -> tuple[list[str], str]:
    """(lines before the flows, the block after them): documentation and extensions come first in the schema;
    a script or an event definition (after the NUL marker) follows incoming/outgoing, its lines not indented."""
    head, _, tail = body.partition("\x00")
    return [line for line in head.split("\n") if line.strip()], tail


def documentation(text):
    return f"<bpmn:documentation>{escape(text)}</bpmn:documentation>\n" if text else ""


def extension(inner: str) -> str:
    return f"<bpmn:extensionElements>\n{inner}</bpmn:extensionElements>\n" if inner else ""


def properties(props) -> str:
    if not props:
        return ""
    rows = "".join(f"  <camunda:property name={quoteattr(k)} value={quoteattr(str(v))} />\n" for k, v in props.items())
    return f"<camunda:properties>\n{rows}</camunda:properties>\n"


def param_value(value) -> str:
    if isinstance(value, dict):
        rows = "".join(f"<camunda:entry key={quoteattr(k)}>{escape(str(v))}</camunda:entry>" for k, v in value.items())
        return f"<camunda:map>{rows}</camunda:map>"
    if isinstance(value, list):
        rows = "".join(f"<camunda:value>{escape(str(v))}</camunda:value>" for v in value)
        return f"<camunda:list>{rows}</camunda:list>"
    return escape(str(value))


def input_output(params, outputs=None) -> str:
    rows = "".join(f"  <camunda:inputParameter name={quoteattr(k)}>{param_value(v)}</camunda:inputParameter>\n"
                   for k, v in params.items())
    rows += "".join(f"  <camunda:outputParameter name={quoteattr(k)}>{param_value(v)}</camunda:outputParameter>\n"
                    for k, v in (outputs or {}).items())
    return f"<camunda:inputOutput>\n{rows}</camunda:inputOutput>\n"


def form_data(fields) -> str:
    """fields: (id, label, type, {required, default, min, max, readonly, options: [(id, name)]})."""
    if not fields:
        return ""
    out = ["<camunda:formData>"]
    for fid, label, ftype, *rest in fields:
        opts = rest[0] if rest else {}
        default = f" defaultValue={quoteattr(str(opts['default']))}" if "default" in opts else ""
        out.append(f"  <camunda:formField id={quoteattr(fid)} label={quoteattr(label)} type={quoteattr(ftype)}"
                   f"{default}>")
        constraints = [(k, opts[k]) for k in ("required", "readonly", "min", "max", "minlength", "maxlength")
                       if k in opts]
        if constraints:
            out.append("    <camunda:validation>")
            for k, v in constraints:
                cfg = "" if v is True else f" config={quoteattr(str(v))}"
                out.append(f"      <camunda:constraint name={quoteattr(k)}{cfg} />")
            out.append("    </camunda:validation>")
        for vid, vname in opts.get("options", []):
            out.append(f"    <camunda:value id={quoteattr(vid)} name={quoteattr(vname)} />")
        out.append("  </camunda:formField>")
    out.append("</camunda:formData>")
    return "\n".join(out) + "\n"


def event_def(nid, timer=None, message=None) -> str:
    if timer:
        kind, value = timer
        return (f'\x00<bpmn:timerEventDefinition id="{nid}_def"><bpmn:{kind} xsi:type="bpmn:tFormalExpression">'
                f"{escape(value)}</bpmn:{kind}></bpmn:timerEventDefinition>")
    if message:
        return f'\x00<bpmn:messageEventDefinition id="{nid}_def" messageRef="{message}" />'
    return ""
