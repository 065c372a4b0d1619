"""How a user relates to a deal, in Python for one deal and in SQL for lists (the two must agree).

A deal is OWN when you own it; INVOLVED when its process instance is within your INVOLVED reach (you started it or
have a task in it: the lawyer reviewing its contract, the accountant invoicing it); TEAM when a member of your
groups owns it or its instance is within your TEAM reach; else ALL. `policy.POLICY` says how far each role reads
(managers, lawyers, accountants: INVOLVED; supervisors: TEAM; admins, auditors: ALL) and changes (managers: OWN).
"""

from sqlalchemy import ColumnElement
from sqlalchemy import false
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import true

from crm.models import Deal
from crm.teams import members_query
from engine.models import ProcessInstance
from web.api.policy import Scope
from web.api.scopes import Viewer

OWN, INV, TEAM, ALL = Scope.OWN, Scope.INVOLVED, Scope.TEAM, Scope.ALL


def deal_relation(viewer: Viewer, owner: str | None, instance_id: int | None) -> Scope:
    """OWN, INVOLVED, TEAM or ALL, as the module docstring defines them."""
    if owner is not None and owner == viewer.actor.username:
        return OWN
    through_instance = viewer.instance_relation(instance_id) if instance_id is not None else ALL
    if through_instance <= INV:
        return INV
    if through_instance == TEAM or (viewer.actor.groups and owner in viewer.team):
        return TEAM
    return ALL


def deal_clause(viewer: Viewer, scope: Scope) -> ColumnElement[bool]:
    """SQL: the deals whose relation to the viewer is within `scope`."""
    if scope >= ALL:
        return true()
    if scope <= Scope.NONE:
        return false()
    own = Deal.owner == viewer.actor.username
    if scope == OWN:
        return own
    clause = or_(own, Deal.instance_id.in_(select(ProcessInstance.id).where(viewer.instance_clause(scope))))
    if scope == TEAM and viewer.actor.groups:
        clause = or_(clause, Deal.owner.in_(members_query(viewer.actor.groups)))
    return clause
