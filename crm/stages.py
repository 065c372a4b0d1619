"""Deal stages: the process's milestones move a deal through the funnel, its Won/Lost end events close it.

`StageListener` is the engine listener (engine/listeners.py): it runs inside the engine command that reached the
milestone, so the deal's stage, its `stage_transition` row and the step itself commit together or not at all.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from crm.models import Deal
from crm.models import DealStatus
from crm.models import StageTransition
from engine.audit import AuditRecord
from engine.listeners import ProcessEvent

NEW_LEAD = "New lead"
WON = "Won"
LOST = "Lost"
FUNNEL = (NEW_LEAD, "Qualified", "Proposal", "Negotiation", "Contract", "Invoice", "Awaiting payment", WON)
UNSPECIFIED = "unspecified"
MAX_STAGE = 100  # the column's length
MAX_ID = 2**31 - 1


def record_transition(session: Session, deal: Deal, to_stage: str, at: datetime, actor: str,
                      reason: str | None = None) -> StageTransition:
    """Move `deal` to `to_stage` and append the transition (the source of every funnel metric)."""
    transition = StageTransition(deal_id=deal.id, from_stage=deal.stage, to_stage=to_stage, at=at, actor=actor,
                                 reason=reason)
    session.add(transition)
    deal.stage, deal.updated_at = to_stage, at
    return transition


def deal_id_of(business_key: str | None) -> int | None:
    """The deal a business key names (str of the deal's id), or None for an instance that is not a deal's."""
    if not business_key or not business_key.isascii() or not business_key.isdigit() or len(business_key) > 10:
        return None
    value = int(business_key)
    return value if 0 < value <= MAX_ID and str(value) == business_key else None


class StageListener:
    """Hears milestones and end events of every process whose business key is a deal id; the others pass by."""

    def __call__(self, session: Session, events: Sequence[ProcessEvent]) -> list[AuditRecord]:
        records: list[AuditRecord] = []
        for event in events:
            deal_id = deal_id_of(event.business_key)
            if deal_id is None:
                continue
            deal = session.get(Deal, deal_id, with_for_update=True)
            if deal is None:
                continue
            if event.kind == "milestone" and event.name:
                records.extend(self._milestone(session, deal, event))
            elif event.kind == "end" and event.top_level:
                records.extend(self._end(session, deal, event))
        return records

    def _milestone(self, session: Session, deal: Deal, event: ProcessEvent) -> list[AuditRecord]:
        stage = event.name.strip()[:MAX_STAGE]
        if stage == deal.stage or deal.status != DealStatus.OPEN:
            return []  # the same stage again (a loop back), or a closed deal whose process ran on
        previous = deal.stage
        reason = _text(event.variables.get("stage_reason"))
        record_transition(session, deal, stage, event.at, event.actor, reason)
        return [_record("deal_stage_changed", deal, event, {"from": previous, "to": stage, "reason": reason})]

    def _end(self, session: Session, deal: Deal, event: ProcessEvent) -> list[AuditRecord]:
        outcome = (event.name or "").strip().casefold()
        if outcome not in (WON.casefold(), LOST.casefold()) or deal.status != DealStatus.OPEN:
            return []
        previous = deal.stage
        if outcome == WON.casefold():
            deal.status, deal.closed_at = DealStatus.WON, event.at
            record_transition(session, deal, WON, event.at, event.actor, _text(event.variables.get("stage_reason")))
            return [_record("deal_won", deal, event, {"from": previous, "amount": str(deal.amount),
                                                       "currency": deal.currency})]
        # The process requires a lost reason; a diagram that forgot it still closes the deal, visibly unspecified.
        reason = (_text(event.variables.get("lost_reason")) or UNSPECIFIED)[:100]
        deal.status, deal.closed_at = DealStatus.LOST, event.at
        deal.lost_reason, deal.lost_comment = reason, _text(event.variables.get("lost_comment"))
        record_transition(session, deal, LOST, event.at, event.actor, reason)
        return [_record("deal_lost", deal, event, {"from": previous, "lost_reason": reason,
                                                    "lost_comment": deal.lost_comment})]


def _text(value) -> str | None:
    return None if value is None or value == "" else str(value)


def _record(name: str, deal: Deal, event: ProcessEvent, details: dict) -> AuditRecord:
    return AuditRecord(event=name, actor=event.actor, at=event.at, instance_id=event.instance_id,
                       element_id=event.element_id, details={"deal_id": deal.id, **details})
