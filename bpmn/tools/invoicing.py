"""bpmn/invoicing.bpmn: the invoice, its approval above the threshold and its mail, called by the funnel."""

from bpmn.tools.bpmnkit import Proc
from bpmn.tools.sales_steps import ACC
from bpmn.tools.sales_steps import FD
from bpmn.tools.sales_steps import HOS
from bpmn.tools.sales_steps import SYS
from bpmn.tools.sales_steps import default
from bpmn.tools.sales_steps import mail
from bpmn.tools.sales_steps import notify


def invoicing() -> Proc:
    p = Proc("invoicing", "Invoicing", {SYS: 1, ACC: 1, FD: 1, HOS: 1})
    p.start("Invoice_start", "Contract signed", SYS, 0)
    p.script("Invoice_defaults", "Set defaults", SYS, 1, (
        default("invoice_approval_threshold", 500000) + default("payment_days", 5)
        + default("company_name", "Dealflow")))
    p.gateway("Prepare_merge", None, ACC, 1)
    p.user("Prepare_invoice", "Prepare invoice", ACC, 2, groups="accounting", form=[
        ("payment_days", "Payment terms, days", "long", {"required": True, "min": 1, "max": 90, "default": 5}),
        ("invoice_note", "Note", "string", {"maxlength": 2000})])
    p.script("Set_due_date", "Set the due date", SYS, 3, "due_date = add_days(today(), payment_days).isoformat()\n")
    p.gateway("Invoice_threshold", "Amount above the threshold?", SYS, 4)
    p.user("Approve_invoice", "Approve invoice", FD, 4, groups="finance_director", form=[
        ("invoice_approved", "Approve the invoice?", "boolean", {"required": True}),
        ("invoice_approval_comment", "Comment", "string", {"maxlength": 2000})])
    p.boundary("Approve_invoice_1d", "1 day", "Approve_invoice", 0, cancel=False, timer=("timeDuration", "P1D"))
    notify(p, "Escalate_invoice", "Escalate the approval", HOS, 5, 0,
           "Invoice for ${deal_title} (${amount} ${currency}) waits for the finance director for over a day.",
           group="head_of_sales")
    p.end("Escalated_invoice", None, HOS, 6)
    p.gateway("Invoice_approved", "Approved?", FD, 6)
    p.gateway("Render_merge", None, SYS, 7)
    p.service("Generate_invoice", "Generate invoice", SYS, 8, "document.render", {
        "template": "invoice", "context": {"due_date": "${due_date}", "contract_number": "${deal_id}",
                                           "discount_percent": "${discount_percent}"}},
        outputs={"invoice_doc_id": "${document['id']}", "invoice_number": "${document['number']}"},
        doc="Flat outputs, not a result dict (see Draft contract in contract_review.bpmn).")
    mail(p, "Mail_invoice", "Mail the invoice", SYS, 9, 0, "invoice", context={
        "invoice_date": "${today().isoformat()}", "amount": "${amount}", "due_date": "${due_date}"},
        attachments="${[invoice_doc_id]}")
    p.end("Invoice_sent", "Invoice sent", SYS, 10)
    p.chain("Invoice_start", "Invoice_defaults", "Prepare_merge", "Prepare_invoice", "Set_due_date",
            "Invoice_threshold")
    p.flow("Invoice_threshold", "Approve_invoice", name="yes", cond="amount > invoice_approval_threshold")
    p.flow("Invoice_threshold", "Render_merge", name="no", default=True)
    p.chain("Approve_invoice", "Invoice_approved")
    p.flow("Invoice_approved", "Render_merge", name="approved", cond="invoice_approved")
    p.flow("Invoice_approved", "Prepare_merge", name="rejected: back with a comment", default=True)
    p.chain("Approve_invoice_1d", "Escalate_invoice", "Escalated_invoice")
    p.chain("Render_merge", "Generate_invoice", "Mail_invoice", "Invoice_sent")
    return p
