"""How CLI results look: each function returns the human text and the --json document together."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Output:
    text: str
    json: Any


def problem(p: dict) -> str:
    where = p.get("file") or "?"
    if p.get("line"):
        where += f" line {p['line']}"
    if p.get("element_id"):
        where += f" [{p['element_id']}]"
    return f"{where}: {p.get('message')}"


def _definition_line(d) -> str:
    return f"{d.key} v{d.version}  ({d.resource_name}, id {d.id})"


def deployed(result) -> Output:
    lines = [f"deployed   {_definition_line(d)}" for d in result.created]
    lines += [f"unchanged  {_definition_line(d)}" for d in result.unchanged]
    return Output("\n".join(lines) or "Nothing to deploy.", {
        "deployment_id": result.deployment_id,
        "created": [d.to_dict() for d in result.created],
        "unchanged": [d.to_dict() for d in result.unchanged],
    })


def definitions(items) -> Output:
    text = "\n".join(_definition_line(d) for d in items) or "No process definitions deployed yet."
    return Output(text, [d.to_dict() for d in items])


def _task_line(t) -> str:
    who = f"assignee {t.assignee}" if t.assignee else f"groups {','.join(t.candidate_groups) or '-'}"
    due = f"  due {t.due_at:%Y-%m-%d %H:%M}" if t.due_at else ""
    return f"{t.id}  {t.name or t.bpmn_id}  [{t.process_key} #{t.instance_id} {t.business_key or ''}]  {who}{due}"


def task(t) -> Output:
    return Output(_task_line(t), t.to_dict())


def tasks(items) -> Output:
    return Output("\n".join(_task_line(t) for t in items) or "No open tasks.", [t.to_dict() for t in items])


def _event_detail(e) -> str:
    what = e.details.get("name") or e.element_id or ""
    if e.event == "gateway_path_taken":
        return f"{what} -> {', '.join(e.details.get('taken', []))}"
    if e.event == "task_completed" and e.details.get("data"):
        return f"{what}  {e.details['data']}"
    if e.event in ("task_assigned", "task_unclaimed"):
        return f"{what}  {e.details.get('previous') or '-'} -> {e.details.get('assignee') or '-'}"
    if e.event == "instance_failed":
        return e.details.get("message", "")
    return what


def _event_line(e) -> str:
    return f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<12} {e.event:<20} {_event_detail(e)}"


def instance(view, history=None) -> Output:
    lines = [f"Instance {view.id}: {view.process_key} v{view.version}  business key {view.business_key or '-'}",
             f"Status:   {view.status}"]
    if view.error_message:
        lines.append(f"Error:    {view.error_message}")
    lines.append("Open tasks:" if view.open_tasks else "Open tasks: none")
    lines += [f"  {_task_line(t)}" for t in view.open_tasks]
    more = view.open_task_count - len(view.open_tasks)
    if more > 0:  # the view lists the oldest few; the task list has them all
        lines.append(f"  ... and {more} more (tasks --instance {view.id})")
    if view.variables:
        lines.append("Variables: " + ", ".join(f"{k}={v!r}" for k, v in sorted(view.variables.items())))
    document = view.to_dict()
    if history is not None:
        lines.append("History:")
        lines += [_event_line(e) for e in history]
        document["history"] = [e.to_dict() for e in history]
    return Output("\n".join(lines), document)


def instances(rows) -> Output:
    text = "\n".join(
        f"{r['id']:>6}  {r['process_key']:<24} {r['status']:<10} {r['business_key'] or '-'}" for r in rows
    ) or "No process instances."
    return Output(text, rows)


def user(view) -> Output:
    return Output(f"{view.username}  roles {','.join(view.roles) or '-'}  groups {','.join(view.groups) or '-'}",
                  view.to_dict())


def users(items) -> Output:
    return Output("\n".join(user(u).text for u in items) or "No users.", [u.to_dict() for u in items])
