"""bpmn/contract_review.bpmn (process legal_review): the lawyer's review loop, called by the funnel."""

from bpmn.tools.bpmnkit import Proc
from bpmn.tools.sales_steps import HOS
from bpmn.tools.sales_steps import LAW
from bpmn.tools.sales_steps import OWNER
from bpmn.tools.sales_steps import SM
from bpmn.tools.sales_steps import SYS
from bpmn.tools.sales_steps import default
from bpmn.tools.sales_steps import notify


def legal_review() -> Proc:
    p = Proc("legal_review", "Legal review of the contract", {SYS: 2, SM: 1, HOS: 1, LAW: 3})
    p.start("Legal_start", "Contract to review", SYS, 0)
    p.gateway("Round_merge", None, SYS, 1)
    p.script("Next_round", "Next round", SYS, 2, (
        default("contract_round", 0) + default("contract_template", "contract")
        + default("legal_escalation_group", "head_of_legal") + default("backup_lawyer_group", "legal_backup")
        + "contract_round = contract_round + 1\n"))
    p.gateway("Third_round", "3rd round or later?", SYS, 3)
    notify(p, "Notify_hos_rounds", "Notify head of sales", HOS, 3, 0,
           "Deal ${deal_title}: the contract is in review round ${contract_round}.", group="head_of_sales")
    p.gateway("Draft_merge", None, SYS, 4)
    p.service("Draft_contract", "Draft contract version", SYS, 5, "document.render", {
        "template": "${contract_template}", "kind": "contract",
        "context": {"contract_number": "${deal_id}", "discount_percent": "${discount_percent}"}},
        outputs={"contract_doc_id": "${document['id']}", "contract_version": "${document['version']}"},
        doc="Flat outputs, not a result dict: SpiffWorkflow 3.2 merges nested dicts of finished reminder branches "
            "into the main path's data in place when the call activity ends, which brought back an old version.")
    review_form = [
        ("legal_decision", "Decision", "enum", {"required": True, "options": [
            ("approve", "Approve"), ("changes", "Request changes"), ("reject", "Reject")]}),
        ("legal_comment", "Comment", "string", {"maxlength": 4000})]
    p.user("Review_contract", "Review contract", LAW, 6, groups="legal", form=review_form)
    p.boundary("Review_2d", "2 days", "Review_contract", 1, cancel=False, timer=("timeDuration", "P2D"))
    p.boundary("Review_3d", "3 days", "Review_contract", 0, timer=("timeDuration", "P3D"))
    notify(p, "Escalate_head_of_legal", "Escalate to head of legal", LAW, 7, 1,
           "Deal ${deal_title}: contract round ${contract_round} not reviewed within 2 days.",
           group="${legal_escalation_group}")
    notify(p, "Remind_lawyer", "Remind the lawyer", LAW, 8, 1,
           "Reminder: review the contract for ${deal_title} (round ${contract_round}).", group="legal")
    p.end("Escalated_review", None, LAW, 8.75, 1)
    notify(p, "Notify_backup_lawyer", "Reassign to the backup lawyer", LAW, 7, 2,
           "Contract for ${deal_title} is reassigned to you: not reviewed within 3 days.",
           group="${backup_lawyer_group}")
    p.user("Review_contract_backup", "Review contract (backup lawyer)", LAW, 8, row=2,
           groups="${backup_lawyer_group}", form=review_form)
    p.gateway("Decision_merge", None, LAW, 9)
    p.gateway("Decision", "Decision?", LAW, 10)
    p.end("Legal_approved", "Approved", LAW, 11)
    p.end("Legal_rejected", "Rejected", LAW, 11, row=2)
    p.user("Revise_contract", "Revise the contract with the client", SM, 10, assignee=OWNER, form=[
        ("revision_notes", "What changed", "string", {"required": True, "maxlength": 4000})])
    p.chain("Legal_start", "Round_merge", "Next_round", "Third_round")
    p.flow("Third_round", "Notify_hos_rounds", name="yes", cond="contract_round >= 3")
    p.flow("Third_round", "Draft_merge", name="no", default=True)
    p.chain("Notify_hos_rounds", "Draft_merge", "Draft_contract", "Review_contract", "Decision_merge", "Decision")
    p.chain("Review_2d", "Escalate_head_of_legal", "Remind_lawyer", "Escalated_review")
    p.chain("Review_3d", "Notify_backup_lawyer", "Review_contract_backup", "Decision_merge")
    p.flow("Decision", "Legal_approved", name="approve", default=True)
    p.flow("Decision", "Legal_rejected", name="reject", cond="legal_decision == 'reject'")
    p.flow("Decision", "Revise_contract", name="changes", cond="legal_decision == 'changes'")
    p.flow("Revise_contract", "Round_merge", name="next round")
    p.annotation("Note_legal_days", "Working days are approximated by calendar days (P2D, P3D). contract_round "
                 "counts the review rounds across calls (a rejected contract comes back after negotiation).",
                 SYS, 8.5, 1)
    return p
