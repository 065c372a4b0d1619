"""Who may do what over the API: one table, role -> operation -> how far the allowance reaches.

A user's reach for an operation is the widest over their roles. For tasks and instances the reach is compared with
the *relation* between the user and the object (see `web.api.scopes`): a task outside the user's read reach is
invisible (404); a visible one outside the reach of a write operation is 403. The engine still applies its own
rules on top (e.g. only the assignee completes a claimed task), so the table can only narrow what the engine allows.
"""

from enum import IntEnum
from enum import StrEnum

from engine.actor import Actor
from engine.errors import Forbidden
from engine.errors import NotFound


class Op(StrEnum):
    DEPLOY = "deployment.create"
    DEFINITION_READ = "definition.read"
    INSTANCE_START = "instance.start"
    INSTANCE_READ = "instance.read"
    INSTANCE_CANCEL = "instance.cancel"
    TASK_READ = "task.read"
    TASK_CLAIM = "task.claim"
    TASK_UNCLAIM = "task.unclaim"
    TASK_ASSIGN = "task.assign"
    TASK_COMPLETE = "task.complete"
    AUDIT_VERIFY = "audit.verify"
    USER_MANAGE = "user.manage"
    MESSAGE_SEND = "message.send"
    SIGNAL_SEND = "signal.send"
    NOTIFICATION_READ = "notification.read"
    JOB_READ = "job.read"
    JOB_EXECUTE = "job.execute"
    JOB_RESCHEDULE = "job.reschedule"
    INCIDENT_READ = "incident.read"
    INCIDENT_RETRY = "incident.retry"
    LEAD_CREATE = "lead.create"
    DEAL_READ = "deal.read"
    DEAL_UPDATE = "deal.update"
    CLIENT_READ = "client.read"


class Scope(IntEnum):
    """How far an allowance reaches; each scope contains the ones before it."""

    NONE = 0
    OWN = 1  # a task assigned to me; an instance I started; a deal I own
    INVOLVED = 2  # + a task offered to me or one of my groups, or completed by me; an instance with such a task;
    #               a deal whose instance is INVOLVED
    TEAM = 3  # + a task assigned to or completed by a member of my groups; an instance they started or with such a
    #           task; a deal a member of my groups owns, or whose instance is TEAM
    ALL = 4


N, OWN, INV, TEAM, ALL = Scope.NONE, Scope.OWN, Scope.INVOLVED, Scope.TEAM, Scope.ALL
# Every person reads the notifications addressed to them or their groups (OWN); an integration account has none.
_PERSON = {Op.NOTIFICATION_READ: OWN}
_WORKER = {**_PERSON, Op.DEFINITION_READ: ALL, Op.INSTANCE_START: ALL, Op.INSTANCE_READ: INV,
           Op.INSTANCE_CANCEL: OWN, Op.TASK_READ: INV, Op.TASK_CLAIM: INV, Op.TASK_UNCLAIM: OWN, Op.TASK_COMPLETE: INV,
           Op.DEAL_READ: INV, Op.CLIENT_READ: ALL}
# Sales: take leads in; change the deals one owns (handing one over to a colleague is the supervisor's).
_SELLER = {Op.LEAD_CREATE: ALL, Op.DEAL_UPDATE: OWN}
# Operators: the jobs and incidents of every instance (the engine checks the same roles), and events from outside.
_OPERATOR = {Op.MESSAGE_SEND: ALL, Op.SIGNAL_SEND: ALL, Op.JOB_READ: ALL, Op.JOB_EXECUTE: ALL,
             Op.JOB_RESCHEDULE: ALL, Op.INCIDENT_READ: ALL, Op.INCIDENT_RETRY: ALL}

POLICY: dict[str, dict[Op, Scope]] = {
    "admin": {**_PERSON, **_OPERATOR, Op.DEFINITION_READ: ALL, Op.INSTANCE_READ: ALL, Op.INSTANCE_CANCEL: ALL,
              Op.TASK_READ: ALL, Op.TASK_CLAIM: ALL, Op.TASK_UNCLAIM: ALL, Op.TASK_ASSIGN: ALL,
              Op.AUDIT_VERIFY: ALL, Op.USER_MANAGE: ALL, Op.LEAD_CREATE: ALL, Op.DEAL_READ: ALL,
              Op.DEAL_UPDATE: ALL, Op.CLIENT_READ: ALL},
    "designer": {**_PERSON, Op.DEPLOY: ALL, Op.DEFINITION_READ: ALL, Op.INSTANCE_START: ALL,
                 Op.INSTANCE_READ: ALL, Op.TASK_READ: ALL},
    "manager": {**_WORKER, **_SELLER},
    "lawyer": _WORKER,
    "accountant": _WORKER,
    "supervisor": {**_PERSON, **_OPERATOR, Op.DEFINITION_READ: ALL, Op.INSTANCE_START: ALL,
                   Op.INSTANCE_READ: TEAM, Op.INSTANCE_CANCEL: TEAM, Op.TASK_READ: TEAM, Op.TASK_CLAIM: TEAM,
                   Op.TASK_UNCLAIM: TEAM, Op.TASK_ASSIGN: TEAM, Op.TASK_COMPLETE: INV,
                   Op.LEAD_CREATE: ALL, Op.DEAL_READ: TEAM, Op.DEAL_UPDATE: TEAM, Op.CLIENT_READ: ALL},
    "auditor": {**_PERSON, Op.DEFINITION_READ: ALL, Op.INSTANCE_READ: ALL, Op.TASK_READ: ALL,
                Op.AUDIT_VERIFY: ALL, Op.INCIDENT_READ: ALL, Op.DEAL_READ: ALL, Op.CLIENT_READ: ALL},
    # A machine account for a CRM, web form or payment system: it tells processes what happened outside and brings
    # in leads, nothing else (it reads no deals).
    "integration": {Op.MESSAGE_SEND: ALL, Op.SIGNAL_SEND: ALL, Op.LEAD_CREATE: ALL},
}

READ_OF = {Op.INSTANCE_CANCEL: Op.INSTANCE_READ, Op.TASK_CLAIM: Op.TASK_READ, Op.TASK_UNCLAIM: Op.TASK_READ,
           Op.TASK_ASSIGN: Op.TASK_READ, Op.TASK_COMPLETE: Op.TASK_READ, Op.DEAL_UPDATE: Op.DEAL_READ}


def reach(actor: Actor, op: Op) -> Scope:
    """The widest scope any of the actor's roles grants for `op`."""
    return max((POLICY.get(role, {}).get(op, N) for role in actor.roles), default=N)


def require(actor: Actor, op: Op, scope: Scope = ALL) -> None:
    """Allow an operation that concerns no particular task or instance, or raise Forbidden.

    `scope` is the reach the operation needs: ALL, or OWN for one on the user's own things (their notifications).
    """
    if reach(actor, op) < scope:
        raise Forbidden(f"{actor.username!r} may not {VERBS[op]}: that needs the role {_roles_for(op)}.",
                        details={"operation": op.value})


def check(actor: Actor, op: Op, relation: Scope, what: str, hidden: str | None = None) -> None:
    """Allow `op` on an object at `relation` to the actor; NotFound when it is not even visible, else Forbidden.

    `hidden` names the object in the 404 with nothing the caller did not send (an invisible task's name is secret).
    """
    if reach(actor, READ_OF.get(op, op)) < relation:
        raise NotFound(f"There is no {hidden or what}, or you may not see it.")
    allowed = reach(actor, op)
    if allowed < relation:
        kind = op.value.split(".")[0] if op.value.startswith(("task.", "deal.")) else "instance"
        limit = _REACH_TEXT[kind][allowed] if allowed else f"nothing: that needs the role {_roles_for(op)}"
        raise Forbidden(f"{actor.username!r} may not {VERBS[op]} the {what}: your roles allow it for {limit}.",
                        details={"operation": op.value})


VERBS = {Op.DEPLOY: "deploy process definitions", Op.DEFINITION_READ: "read process definitions",
         Op.INSTANCE_START: "start process instances", Op.INSTANCE_READ: "see", Op.INSTANCE_CANCEL: "cancel",
         Op.TASK_READ: "see", Op.TASK_CLAIM: "claim", Op.TASK_UNCLAIM: "unclaim", Op.TASK_ASSIGN: "assign",
         Op.TASK_COMPLETE: "complete", Op.AUDIT_VERIFY: "verify the audit log", Op.USER_MANAGE: "manage users",
         Op.MESSAGE_SEND: "send messages to processes", Op.SIGNAL_SEND: "broadcast signals to processes",
         Op.NOTIFICATION_READ: "read notifications", Op.JOB_READ: "list timer jobs", Op.JOB_EXECUTE: "fire timer jobs",
         Op.JOB_RESCHEDULE: "reschedule timer jobs", Op.INCIDENT_READ: "list incidents",
         Op.INCIDENT_RETRY: "retry incidents", Op.LEAD_CREATE: "take in leads", Op.DEAL_READ: "see",
         Op.DEAL_UPDATE: "change", Op.CLIENT_READ: "read clients"}
_REACH_TEXT = {
    "task": {OWN: "tasks assigned to you", INV: "tasks assigned or offered to you or your groups",
             TEAM: "your team's tasks", ALL: "every task"},
    "instance": {OWN: "instances you started", INV: "instances you started or have a task in",
                 TEAM: "your team's instances", ALL: "every instance"},
    "deal": {OWN: "deals you own", INV: "deals you own or have a task in",
             TEAM: "your team's deals", ALL: "every deal"},
}


def _roles_for(op: Op) -> str:
    roles = [role for role, ops in POLICY.items() if ops.get(op, N) > N]
    return " or ".join(repr(r) for r in roles) or "none"
