"""bpmn/sales_funnel.bpmn: the B2B sales funnel of the reference process, with its layout."""

from bpmn.tools.bpmnkit import Proc
from bpmn.tools.bpmnxml import event_def
from bpmn.tools.sales_steps import ACC
from bpmn.tools.sales_steps import DEFAULTS
from bpmn.tools.sales_steps import FD
from bpmn.tools.sales_steps import HOS
from bpmn.tools.sales_steps import LAW
from bpmn.tools.sales_steps import LOSS_REASONS
from bpmn.tools.sales_steps import OWNER
from bpmn.tools.sales_steps import SM
from bpmn.tools.sales_steps import SYS
from bpmn.tools.sales_steps import mail
from bpmn.tools.sales_steps import notify

MESSAGES = {"Message_client_replied": "client replied", "Message_contract_signed": "contract signed",
            "Message_payment": "payment received", "Message_deal_lost": "deal lost"}


def loss_form(default: str) -> list:
    """The form that records why a deal was lost, `default` preselected."""
    return [("lost_reason", "Reason", "enum", {"required": True, "default": default, "options": LOSS_REASONS}),
            ("lost_comment", "Comment", "string", {"maxlength": 2000})]


def negotiation() -> Proc:
    p = Proc("Negotiation_inner", "Negotiation")
    p.start("Negotiation_start", None, None, 0)
    p.user("Negotiate_terms", "Negotiate terms", None, 1, assignee=OWNER, form=[
        ("negotiation_outcome", "Outcome", "enum", {"required": True, "default": "agreed", "options": [
            ("agreed", "Terms agreed: draft the contract"), ("lost", "The deal is lost")]}),
        ("negotiation_notes", "What was agreed", "string", {"required": True, "maxlength": 4000})])
    p.end("Negotiation_end", "Negotiation over", None, 2)
    p.chain("Negotiation_start", "Negotiate_terms", "Negotiation_end")
    return p


def awaiting_payment() -> Proc:
    p = Proc("Payment_inner", "Awaiting payment")
    p.start("Payment_start", None, None, 0)
    p.gateway("Payment_merge", None, None, 1)
    p.receive("Wait_payment", "Payment received", None, 2, "Message_payment")
    p.script("Add_payment", "Add the payment", None, 3, (
        "try:\n    paid_now = float(message_payload.get('paid', amount - paid_total))\n"
        "except (NameError, AttributeError):\n    paid_now = amount - paid_total\n"
        "paid_total = round(paid_total + paid_now, 2)\n"
        "payment_outstanding = round(amount - paid_total, 2)\n"))
    p.gateway("Paid_in_full", "Paid in full?", None, 4)
    p.end("Payment_end", "Paid", None, 5)
    p.chain("Payment_start", "Payment_merge", "Wait_payment", "Add_payment", "Paid_in_full")
    p.flow("Paid_in_full", "Payment_end", name="yes", cond="paid_total >= amount - 0.005")
    p.flow("Paid_in_full", "Payment_merge", name="partial: wait for the rest", default=True)
    return p


def deal_lost() -> Proc:
    p = Proc("Deal_lost_inner", "Deal lost")
    p.start("Deal_lost_start", "Deal lost", None, 0, body=event_def("Deal_lost_start", message="Message_deal_lost"))
    p.user("Record_loss_reason_any", "Record the loss reason", None, 1, assignee=OWNER, form=loss_form("other"))
    p.end("End_lost_any", "Lost", None, 2)
    p.chain("Deal_lost_start", "Record_loss_reason_any", "End_lost_any")
    return p


def sales_funnel() -> Proc:
    p = Proc("sales_funnel", "B2B sales funnel", {SYS: 3, SM: 4, HOS: 2, LAW: 1, ACC: 1, FD: 1})
    # 1-2. lead intake and assignment happen in the CRM; the process starts with the owner set.
    p.start("Deal_created", "Deal created", SYS, 0)
    p.script("Set_defaults", "Set defaults", SYS, 1, DEFAULTS)
    p.milestone("Stage_new_lead", "New lead", SYS, 2)
    notify(p, "Notify_owner_new", "Notify the manager", SYS, 3, 0,
           "New lead ${deal_title} (${client_name}) is yours: contact ${contact_name} within 15 minutes.", user=OWNER)
    p.gateway("First_contact_merge", None, SM, 3)
    p.user("First_contact", "Make first contact", SM, 4, assignee=OWNER, form=[
        ("first_contact_notes", "How it went", "string", {"required": True, "maxlength": 2000})])
    p.boundary("First_contact_15m", "15 minutes", "First_contact", 0, cancel=False, timer=("timeDuration", "PT15M"))
    p.boundary("First_contact_60m", "60 minutes", "First_contact", 1, timer=("timeDuration", "PT60M"))
    notify(p, "Remind_first_contact", "Remind the manager", SYS, 4, 1,
           "Lead ${deal_title}: no first contact yet after 15 minutes.", user=OWNER)
    p.end("Reminded_first_contact", None, SYS, 5, 1)
    notify(p, "Notify_hos_uncontacted", "Notify head of sales", HOS, 4, 0,
           "Lead ${deal_title} (${client_name}) got no first contact within 60 minutes: reassign it.",
           group="head_of_sales")
    p.user("Reassign_lead", "Reassign the lead", HOS, 5, groups="head_of_sales", form=[
        ("new_owner", "New manager (username)", "string", {"required": True, "maxlength": 150})])
    p.script("Set_new_owner", "Hand over to the new manager", SYS, 5,
             "previous_owner = owner\nowner = new_owner\nmanager = {'name': owner}\n",
             row=2)
    p.annotation("Note_working_time",
                 "Working minutes and days are approximated by calendar time (PT15M, PT60M, P1D, P2D, ...). "
                 "Lead intake, dedup and the first assignment are done by the CRM before the deal starts.",
                 SYS, 1.5, 1)
    # 3. qualification
    p.user("Qualify", "Qualify the lead", SM, 6, assignee=OWNER, form=[
        ("need", "Need", "string", {"required": True, "maxlength": 2000}),
        ("budget", "Budget", "long", {"required": True, "min": 0}),
        ("decision_maker", "Decision maker", "string", {"required": True, "maxlength": 200}),
        ("timeline", "Timeline (when they decide)", "string", {"required": True, "maxlength": 200}),
        ("fit", "A fit for us?", "boolean", {"required": True})])
    p.gateway("Is_fit", "A fit?", SM, 7)
    p.user("Record_loss_reason", "Record loss reason", SM, 7, row=1, assignee=OWNER, form=loss_form("not_a_fit"))
    p.end("End_lost_unqualified", "Lost", SM, 8, row=1)
    p.milestone("Stage_qualified", "Qualified", SYS, 8)
    # 4. needs-analysis call
    p.user("Schedule_call", "Schedule needs-analysis call", SM, 9, assignee=OWNER, form=[
        ("meeting_at", "Meeting date and time (ISO, e.g. 2026-03-05T10:00:00+03:00)", "string",
         {"required": True, "minlength": 16, "maxlength": 40})])
    p.script("Plan_call_reminders", "Plan call reminders", SYS, 9, (
        "meeting = parse_datetime(meeting_at)\n"
        "call_reminder_day_at = (meeting - days(1)).isoformat()\n"
        "call_reminder_hour_at = (meeting - hours(1)).isoformat()\n"
        "call_outcome_reminder_at = (meeting + days(1)).isoformat()\n"
        "call_outcome_escalation_at = (meeting + days(2)).isoformat()\n"
        "del meeting\n"))
    p.user("Log_call", "Log needs-analysis outcome", SM, 10, assignee=OWNER, form=[
        ("call_summary", "Outcome of the call", "string", {"required": True, "maxlength": 4000})])
    p.boundary("Call_day_before", "1 day before", "Log_call", 0, cancel=False,
               timer=("timeDate", "${call_reminder_day_at}"))
    p.boundary("Call_hour_before", "1 hour before", "Log_call", 1, cancel=False,
               timer=("timeDate", "${call_reminder_hour_at}"))
    p.boundary("Call_outcome_late", "not logged in 1 day", "Log_call", 2, cancel=False,
               timer=("timeDate", "${call_outcome_reminder_at}"))
    notify(p, "Remind_call_day", "Remind: call tomorrow", SM, 9, 2,
           "Needs-analysis call with ${client_name} tomorrow at ${meeting_at}.", user=OWNER)
    notify(p, "Remind_call_hour", "Remind: call in 1 hour", SM, 10.5, 2,
           "Needs-analysis call with ${client_name} in one hour (${meeting_at}).", user=OWNER)
    notify(p, "Remind_call_outcome", "Remind: log the outcome", SM, 12, 2,
           "Log the outcome of the needs-analysis call with ${client_name}.", user=OWNER)
    p.end("Reminded_call_day", None, SM, 9.75, 2)
    p.end("Reminded_call_hour", None, SM, 11.25, 2)
    p.end("Reminded_call_outcome", None, SM, 12.75, 2)
    p.boundary("Call_outcome_2d", "not logged in 2 days", "Log_call", 3, cancel=False,
               timer=("timeDate", "${call_outcome_escalation_at}"))
    notify(p, "Notify_hos_call", "Notify head of sales", HOS, 11, 1,
           "Deal ${deal_title}: the needs-analysis call outcome is 2 days overdue.", group="head_of_sales")
    p.end("Notified_hos_call", None, HOS, 12, 1)
    # 5. client reaction
    p.gateway("Client_reaction", "Client reaction", SYS, 11, kind="eventBased")
    p.catch("Client_interested", "Client replied", SYS, 12, message="Message_client_replied")
    p.catch("No_answer_5d", "5 days", SYS, 12, row=1, timer=("timeDuration", "P5D"))
    mail(p, "Send_follow_up", "Send follow-up mail", SYS, 13, 1, "generic", context={
        "subject": "${deal_title}: shall we continue?",
        "body": "Dear ${contact_name},\n\nWe spoke recently about ${deal_title}. Is the topic still relevant for "
                "${client_name}? Reply to this e-mail and we will prepare a commercial proposal.\n\n"
                "Best regards,\n${company_name}"})
    p.user("Follow_up_call", "Follow-up call", SM, 13, assignee=OWNER, form=[
        ("client_interested", "Is the client interested?", "boolean", {"required": True}),
        ("follow_up_notes", "Notes", "string", {"maxlength": 2000})])
    p.boundary("Follow_up_replied", "Client replied", "Follow_up_call", 0, message="Message_client_replied")
    p.boundary("No_answer_14d", "14 days without answer", "Follow_up_call", 1, timer=("timeDuration", "P9D"))
    p.gateway("Is_interested", "Interested?", SM, 14)
    p.script("Lost_no_response", "Lost: no response", SM, 14, "lost_reason = 'no_response'\n", row=1)
    p.end("End_lost_no_response", "Lost", SM, 15, row=1)
    p.script("Lost_not_interested", "Lost: not interested", SM, 14, (
        "lost_reason = 'other'\nlost_comment = 'Not interested after the follow-up call.'\n"), row=2)
    p.end("End_lost_not_interested", "Lost", SM, 15, row=2)
    # 6. proposal
    p.gateway("Proposal_merge", None, SYS, 14)
    p.milestone("Stage_proposal", "Proposal", SYS, 15)
    p.gateway("Edit_proposal_merge", None, SM, 16)
    p.user("Edit_proposal", "Edit proposal terms", SM, 17, assignee=OWNER, form=[
        ("discount_percent", "Discount, %", "long", {"required": True, "min": 0, "max": 100, "default": 0}),
        ("proposal_notes", "Notes for the client", "string", {"maxlength": 2000})])
    p.gateway("Discount_check", "Discount above the threshold?", SM, 18)
    p.user("Approve_discount", "Approve discount", HOS, 18, groups="head_of_sales", form=[
        ("discount_approved", "Approve the discount?", "boolean", {"required": True}),
        ("discount_comment", "Comment", "string", {"maxlength": 2000})])
    p.gateway("Discount_approved", "Approved?", HOS, 19)
    p.gateway("Generate_proposal_merge", None, SM, 19)
    p.service("Generate_proposal", "Generate proposal", SYS, 20, "document.render", {
        "template": "proposal",
        "context": {"discount_percent": "${discount_percent}", "notes": "${proposal_notes}"}}, result="proposal_doc")
    p.user("Review_proposal", "Review and send proposal", SM, 20, assignee=OWNER, form=[
        ("proposal_ok", "Send it to the client?", "boolean", {"required": True})])
    p.gateway("Proposal_ok", "Send?", SM, 21)
    mail(p, "Mail_proposal", "Mail the proposal", SYS, 21, 0, "proposal", context={
        "amount": "${amount}", "manager_name": "${owner}"}, attachments="${[proposal_doc['document']['id']]}")
    # 7. proposal sent
    p.receive("Wait_reply", "Wait for the client's reply", SYS, 22, "Message_client_replied")
    p.boundary("Reply_3d", "3 days", "Wait_reply", 0, cancel=False, timer=("timeDuration", "P3D"))
    p.boundary("Reply_7d", "7 days", "Wait_reply", 1, cancel=False, timer=("timeDuration", "P7D"))
    p.user("Follow_up_proposal", "Follow up on the proposal", SM, 22, row=1, assignee=OWNER, form=[
        ("proposal_follow_up_notes", "Notes", "string", {"maxlength": 2000})])
    p.end("Followed_up_proposal", None, SM, 23, row=1)
    notify(p, "Notify_hos_proposal", "Notify head of sales", HOS, 22, 1,
           "Deal ${deal_title}: no reply to the proposal for 7 days.", group="head_of_sales")
    p.end("Notified_hos_proposal", None, HOS, 23, 1)
    # 8. negotiation
    p.gateway("Negotiation_merge", None, SYS, 23)
    p.milestone("Stage_negotiation", "Negotiation", SYS, 24)
    p.subprocess("Negotiation", "Negotiation", SM, 24, negotiation())
    p.boundary("Negotiation_limit", "14 days in negotiation", "Negotiation", 0, cancel=False,
               timer=("timeDuration", "P14D"))
    p.script("Flag_stale", "Flag the deal as stale", SYS, 24, "stale = True\n", row=1)
    notify(p, "Notify_supervisor_stale", "Notify the supervisor", SYS, 25, 1,
           "Deal ${deal_title} (${client_name}) has been in negotiation for 14 days: stale.",
           group="${supervisor_group}")
    p.end("Flagged_stale", None, SYS, 26, 1)
    # 9-10. contract and legal review
    p.gateway("Terms_agreed", "Terms agreed?", SM, 25)
    p.user("Record_loss_reason_negotiation", "Record loss reason", SM, 25, row=1, assignee=OWNER,
           form=loss_form("competitor"))
    p.end("End_lost_negotiation", "Lost", SM, 26, row=1)
    p.milestone("Stage_contract", "Contract", SYS, 26)
    p.call("Legal_review", "Legal review", LAW, 26, "legal_review")
    p.gateway("Legal_outcome", "Contract approved?", LAW, 27)
    # 11. signature
    mail(p, "Mail_contract", "Mail the contract", SYS, 27, 0, "contract", context={
        "contract_number": "${deal_id}", "amount": "${amount}", "manager_name": "${owner}"},
        attachments="${[contract_doc_id]}")
    p.receive("Wait_signature", "Wait for signature", SYS, 28, "Message_contract_signed")
    p.boundary("Signature_3d", "3 days", "Wait_signature", 0, cancel=False, timer=("timeDuration", "P3D"))
    p.boundary("Signature_7d", "7 days", "Wait_signature", 1, cancel=False, timer=("timeDuration", "P7D"))
    notify(p, "Remind_signature_3d", "Remind: not signed", SM, 27, 1,
           "Deal ${deal_title}: the contract is not signed after 3 days; remind ${contact_name}.", user=OWNER)
    p.end("Reminded_signature_3d", None, SM, 27, 2)
    notify(p, "Remind_signature_7d", "Remind: not signed", SM, 28, 1,
           "Deal ${deal_title}: the contract is not signed after 7 days; call ${contact_name}.", user=OWNER)
    p.end("Reminded_signature_7d", None, SM, 28, 2)
    # 12. invoice
    p.milestone("Stage_invoice", "Invoice", SYS, 29)
    p.call("Invoicing", "Invoicing", ACC, 29, "invoicing")
    p.script("Plan_payment_reminders", "Plan payment reminders", SYS, 30, (
        "due = parse_datetime(due_date) + hours(9)\n"
        "payment_due_soon_at = (due - days(1)).isoformat()\n"
        "payment_due_at = due.isoformat()\n"
        "payment_overdue_3d_at = (due + days(3)).isoformat()\n"
        "payment_overdue_7d_at = (due + days(7)).isoformat()\n"
        "payment_overdue_30d_at = (due + days(30)).isoformat()\n"
        "del due\n"))
    # 13. awaiting payment
    p.milestone("Stage_awaiting_payment", "Awaiting payment", SYS, 31)
    p.subprocess("Awaiting_payment", "Awaiting payment", SYS, 32, awaiting_payment())
    reminder_ctx = {"amount": "${amount}",
                    "due_date": "${due_date}", "days_overdue": "0"}
    p.boundary("Payment_due_soon", "1 day before due", "Awaiting_payment", 0, cancel=False,
               timer=("timeDate", "${payment_due_soon_at}"))
    p.boundary("Payment_due", "due date", "Awaiting_payment", 1, cancel=False,
               timer=("timeDate", "${payment_due_at}"))
    p.boundary("Payment_3d", "3 days overdue", "Awaiting_payment", 2, cancel=False,
               timer=("timeDate", "${payment_overdue_3d_at}"))
    mail(p, "Mail_due_soon", "Mail: due tomorrow", SYS, 32, 1, "generic", context={
        "subject": "Invoice No. ${invoice_number} is due on ${due_date}",
        "body": "Dear ${contact_name},\n\nA friendly reminder: invoice No. ${invoice_number} for ${amount} ${currency} "
                "issued to ${client_name} is due on ${due_date}.\n\nIf you have already paid it, thank you, and "
                "please disregard this message. Please quote the invoice number in the payment reference.\n\n"
                "Best regards,\n${company_name}"})
    p.end("Mailed_due_soon", None, SYS, 32, 2)
    mail(p, "Mail_due_today", "Mail: due today", SYS, 33, 1, "payment_reminder", context=reminder_ctx)
    p.end("Mailed_due_today", None, SYS, 33, 2)
    mail(p, "Mail_overdue_3d", "Mail: 3 days overdue", SYS, 34, 1, "payment_reminder",
         context={**reminder_ctx, "days_overdue": "3"})
    p.user("Call_payment", "Call the client about the payment", SM, 34, row=1, assignee=OWNER, form=[
        ("payment_call_notes", "What the client said", "string", {"required": True, "maxlength": 2000})])
    p.end("Called_payment", None, SM, 35, row=1)
    p.boundary("Payment_7d", "7 days overdue", "Awaiting_payment", 3, cancel=False,
               timer=("timeDate", "${payment_overdue_7d_at}"))
    notify(p, "Notify_hos_payment", "Notify head of sales", HOS, 32, 1,
           "Deal ${deal_title}: invoice ${invoice_number} is 7 days overdue.",
           group="head_of_sales")
    p.end("Notified_hos_payment", None, HOS, 33, 1)
    p.boundary("Payment_30d", "30 days overdue", "Awaiting_payment", 4, timer=("timeDate", "${payment_overdue_30d_at}"))
    p.user("Collections_decision", "Collections or write off?", HOS, 34, groups="head_of_sales", form=[
        ("collections", "Hand over to collections (no: write the deal off)", "boolean", {"required": True}),
        ("collections_comment", "Comment", "string", {"maxlength": 2000})])
    p.gateway("To_collections", "Collections?", HOS, 35)
    notify(p, "Notify_collections", "Hand over to collections", ACC, 35, 0,
           "Deal ${deal_title}: invoice ${invoice_number} goes to collections.",
           group="accounting")
    p.receive("Wait_payment_collections", "Payment received", ACC, 36, "Message_payment")
    p.script("Lost_non_payment", "Lost: non-payment", HOS, 36, "lost_reason = 'non_payment'\n")
    p.end("End_lost_non_payment", "Lost", HOS, 37)
    # 14. won
    p.gateway("Paid_merge", None, SYS, 37)
    p.script("Close_deal", "Set close date and revenue", SYS, 38, (
        "close_date = today().isoformat()\nrevenue = paid_total if paid_total else amount\n"))
    mail(p, "Mail_thank_you", "Send thank-you mail", SYS, 39, 0, "generic", context={
        "subject": "Thank you for choosing ${company_name}: ${deal_title}",
        "body": "Dear ${contact_name},\n\nThank you: we have received your payment for invoice No. ${invoice_number}, "
                "and ${client_name} is now our client for ${deal_title}.\n\nOur delivery team will contact you "
                "within two working days to agree the start of the work. Until then, ${owner} remains your "
                "contact for any question.\n\nBest regards,\n${company_name}"})
    p.gateway("Won_split", None, SYS, 40, kind="parallel")
    p.end("End_won", "Won", SYS, 41)
    p.user("Hand_off", "Hand off to delivery", SM, 41, assignee=OWNER, form=[
        ("handoff_notes", "Hand-off notes", "string", {"required": True, "maxlength": 4000})])
    p.end("Handed_off", "Handed off", SM, 42)
    # Deal lost, from any stage: an interrupting event sub-process started by the message "deal lost" (the CRM or
    # a manager sends it); the decision points above also end in Lost with their own reason.
    p.subprocess("Deal_lost", "Deal lost", SYS, 1.5, deal_lost(), row=2, event=True)

    place(p, FUNNEL_LAYOUT)
    p.chain("Deal_created", "Set_defaults", "Stage_new_lead", "Notify_owner_new", "First_contact_merge",
            "First_contact", "Qualify", "Is_fit")
    p.chain("First_contact_15m", "Remind_first_contact", "Reminded_first_contact")
    p.chain("First_contact_60m", "Notify_hos_uncontacted", "Reassign_lead", "Set_new_owner", "First_contact_merge")
    p.flow("Is_fit", "Record_loss_reason", name="no", cond="not fit")
    p.flow("Is_fit", "Stage_qualified", name="yes", default=True)
    p.chain("Record_loss_reason", "End_lost_unqualified")
    p.chain("Stage_qualified", "Schedule_call", "Plan_call_reminders", "Log_call", "Client_reaction")
    p.chain("Call_day_before", "Remind_call_day", "Reminded_call_day")
    p.chain("Call_hour_before", "Remind_call_hour", "Reminded_call_hour")
    p.chain("Call_outcome_late", "Remind_call_outcome", "Reminded_call_outcome")
    p.chain("Call_outcome_2d", "Notify_hos_call", "Notified_hos_call")
    p.flow("Client_reaction", "Client_interested")
    p.flow("Client_reaction", "No_answer_5d")
    p.chain("Client_interested", "Proposal_merge")
    p.chain("No_answer_5d", "Send_follow_up", "Follow_up_call", "Is_interested")
    p.flow("Is_interested", "Proposal_merge", name="yes", default=True)
    p.flow("Is_interested", "Lost_not_interested", name="no", cond="not client_interested")
    p.chain("Lost_not_interested", "End_lost_not_interested")
    p.chain("Follow_up_replied", "Proposal_merge")
    p.chain("No_answer_14d", "Lost_no_response", "End_lost_no_response")
    p.chain("Proposal_merge", "Stage_proposal", "Edit_proposal_merge", "Edit_proposal", "Discount_check")
    p.flow("Discount_check", "Approve_discount", name="yes", cond="discount_percent > discount_threshold")
    p.flow("Discount_check", "Generate_proposal_merge", name="no", default=True)
    p.chain("Approve_discount", "Discount_approved")
    p.flow("Discount_approved", "Generate_proposal_merge", name="approved", cond="discount_approved")
    p.flow("Discount_approved", "Edit_proposal_merge", name="rejected: edit again", default=True)
    p.chain("Generate_proposal_merge", "Generate_proposal", "Review_proposal", "Proposal_ok")
    p.flow("Proposal_ok", "Mail_proposal", name="send", cond="proposal_ok")
    p.flow("Proposal_ok", "Edit_proposal_merge", name="edit", default=True)
    p.chain("Mail_proposal", "Wait_reply", "Negotiation_merge", "Stage_negotiation", "Negotiation", "Terms_agreed")
    p.flow("Terms_agreed", "Record_loss_reason_negotiation", name="lost", cond="negotiation_outcome == 'lost'")
    p.flow("Terms_agreed", "Stage_contract", name="agreed", default=True)
    p.chain("Record_loss_reason_negotiation", "End_lost_negotiation")
    p.chain("Stage_contract", "Legal_review", "Legal_outcome")
    p.chain("Reply_3d", "Follow_up_proposal", "Followed_up_proposal")
    p.chain("Reply_7d", "Notify_hos_proposal", "Notified_hos_proposal")
    p.chain("Negotiation_limit", "Flag_stale", "Notify_supervisor_stale", "Flagged_stale")
    p.flow("Legal_outcome", "Negotiation_merge", name="rejected: back to negotiation",
           cond="legal_decision == 'reject'")
    p.flow("Legal_outcome", "Mail_contract", name="approved", default=True)
    p.chain("Mail_contract", "Wait_signature", "Stage_invoice", "Invoicing", "Plan_payment_reminders",
            "Stage_awaiting_payment", "Awaiting_payment", "Paid_merge", "Close_deal", "Mail_thank_you", "Won_split")
    p.chain("Signature_3d", "Remind_signature_3d", "Reminded_signature_3d")
    p.chain("Signature_7d", "Remind_signature_7d", "Reminded_signature_7d")
    p.chain("Payment_due_soon", "Mail_due_soon", "Mailed_due_soon")
    p.chain("Payment_due", "Mail_due_today", "Mailed_due_today")
    p.chain("Payment_3d", "Mail_overdue_3d", "Call_payment", "Called_payment")
    p.chain("Payment_7d", "Notify_hos_payment", "Notified_hos_payment")
    p.chain("Payment_30d", "Collections_decision", "To_collections")
    p.flow("To_collections", "Notify_collections", name="collections", cond="collections")
    p.flow("To_collections", "Lost_non_payment", name="write off", default=True)
    p.chain("Notify_collections", "Wait_payment_collections", "Paid_merge")
    p.chain("Lost_non_payment", "End_lost_non_payment")
    p.flow("Won_split", "End_won")
    p.flow("Won_split", "Hand_off")
    p.chain("Hand_off", "Handed_off")
    return p


# Where each node of the funnel sits: id -> (lane, column, row); boundary id -> slot (left to right). A task's
# boundary events take their targets right of it, the rightmost slot the topmost row, so no edge crosses a shape.
FUNNEL_LAYOUT = {
    "Remind_first_contact": (SM, 5, 1), "Reminded_first_contact": (SM, 6, 1),
    "Notify_hos_uncontacted": (HOS, 4, 0), "Reassign_lead": (HOS, 5, 0), "Set_new_owner": (HOS, 6, 0),
    "First_contact_60m": 0, "First_contact_15m": 1,
    "Schedule_call": (SM, 9, 0), "Log_call": (SM, 10.3, 0),
    "Call_outcome_2d": 0, "Call_outcome_late": 1, "Call_hour_before": 2, "Call_day_before": 3,
    "Remind_call_day": (SM, 11.6, 1), "Reminded_call_day": (SM, 12.6, 1),
    "Remind_call_hour": (SM, 11.6, 2), "Reminded_call_hour": (SM, 12.6, 2),
    "Remind_call_outcome": (SM, 11.6, 3), "Reminded_call_outcome": (SM, 12.6, 3),
    "Notify_hos_call": (HOS, 11.6, 0), "Notified_hos_call": (HOS, 12.6, 0),
    "Lost_no_response": (SM, 15, 1), "End_lost_no_response": (SM, 16, 1),
    "Lost_not_interested": (SM, 14, 2), "End_lost_not_interested": (SM, 15, 2),
    "Reply_3d": 0, "Reply_7d": 1,
    "Notify_hos_proposal": (SYS, 23, 1), "Notified_hos_proposal": (SYS, 24, 1),
    "Follow_up_proposal": (SM, 23, 1), "Followed_up_proposal": (SM, 24, 1),
    "Negotiation_merge": (SYS, 25, 0), "Stage_negotiation": (SYS, 26, 0), "Negotiation": (SM, 26, 0),
    "Terms_agreed": (SM, 27, 0), "Record_loss_reason_negotiation": (SM, 27, 1), "End_lost_negotiation": (SM, 29, 1),
    "Flag_stale": (SM, 27, 2), "Notify_supervisor_stale": (SM, 28, 2), "Flagged_stale": (SM, 28.75, 2),
    "Stage_contract": (SYS, 29, 0), "Legal_review": (LAW, 29, 0), "Legal_outcome": (LAW, 30, 0),
    "Mail_contract": (SYS, 31, 0), "Wait_signature": (SYS, 32, 0),
    "Signature_3d": 0, "Signature_7d": 1,
    "Remind_signature_7d": (SM, 33, 0), "Reminded_signature_7d": (SM, 34, 0),
    "Remind_signature_3d": (SM, 33, 1), "Reminded_signature_3d": (SM, 34, 1),
    "Stage_invoice": (SYS, 35, 0), "Invoicing": (ACC, 35, 0), "Plan_payment_reminders": (SYS, 36, 0),
    "Stage_awaiting_payment": (SYS, 37, 0), "Awaiting_payment": (SYS, 38.6, 0),
    "Payment_30d": 0, "Payment_7d": 1, "Payment_3d": 2, "Payment_due": 3, "Payment_due_soon": 4,
    "Mail_due_soon": (SYS, 40, 1), "Mailed_due_soon": (SYS, 41, 1),
    "Mail_due_today": (SYS, 40, 2), "Mailed_due_today": (SYS, 41, 2),
    "Mail_overdue_3d": (SM, 40, 0), "Call_payment": (SM, 41, 0), "Called_payment": (SM, 42, 0),
    "Notify_hos_payment": (HOS, 40, 0), "Notified_hos_payment": (HOS, 41, 0),
    "Collections_decision": (HOS, 40, 1), "To_collections": (HOS, 41, 1), "Lost_non_payment": (HOS, 42, 1),
    "End_lost_non_payment": (HOS, 43, 1), "Notify_collections": (ACC, 41, 0),
    "Wait_payment_collections": (ACC, 42, 0),
    "Paid_merge": (SYS, 44, 0), "Close_deal": (SYS, 45, 0), "Mail_thank_you": (SYS, 46, 0),
    "Won_split": (SYS, 47, 0), "End_won": (SYS, 48, 0), "Hand_off": (SM, 48, 0), "Handed_off": (SM, 49, 0),
}


def place(p: Proc, layout: dict) -> None:
    for nid, where in layout.items():
        node = p.nodes[nid]
        if isinstance(where, int) and node.tag == "boundaryEvent":
            node.slot = where
        else:
            node.lane, node.col, node.row = where
