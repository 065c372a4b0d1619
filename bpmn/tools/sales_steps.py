"""What the three shipped sales diagrams share: lanes, the owner, loss reasons, defaults, notify and mail steps."""


SYS, SM, HOS, LAW, ACC, FD = "System", "Sales manager", "Head of sales", "Lawyer", "Accountant", "Finance director"
OWNER = "${owner}"

LOSS_REASONS = [("not_a_fit", "Not a fit"), ("no_budget", "No budget"), ("competitor", "Chose a competitor"),
                ("no_response", "No response"), ("postponed", "Postponed indefinitely"),
                ("non_payment", "Non-payment"), ("other", "Other")]


def default(name, value):
    return f"try:\n    {name}\nexcept NameError:\n    {name} = {value!r}\n"


DEFAULTS = (
    "# Thresholds and routing settings: a value given when the deal was started wins.\n"
    + default("discount_threshold", 10)
    + default("invoice_approval_threshold", 500000)
    + default("payment_days", 5)
    + default("supervisor_group", "head_of_sales")
    + default("legal_escalation_group", "head_of_legal")
    + default("backup_lawyer_group", "legal_backup")
    + default("contract_templates", {})
    + default("company_name", "Dealflow")
    + default("discount_percent", 0)
    + default("contract_round", 0)
    + default("paid_total", 0.0)
    + default("proposal_notes", "")
    + "# What the document templates read: the line items as {name, qty, unit_price} and the client card.\n"
    "items = [{'name': i['name'], 'qty': i['quantity'], 'unit_price': i['unit_price']} for i in line_items]\n"
    "client = {'name': client_name, 'legal_form': client_legal_form,\n"
    "          'contact': {'name': contact_name, 'email': contact_email, 'phone': contact_phone}}\n"
    "customer = client_name\n"
    "contract_template = contract_templates.get(client_legal_form, 'contract')\n"
    "stale = False\n"
    "manager = {'name': owner}\n"
)


def notify(p, nid, name, lane, col, row, message, user=None, group=None):
    params = {"user": user} if user else {"group": group}
    params["message"] = message
    return p.service(nid, name, lane, col, "notify.send", params, row=row)


def mail(p, nid, name, lane, col, row, template, context=None, attachments=None, result=None, subject=None):
    params = {"to": "${contact_email}", "template": template}
    if subject:
        params["subject"] = subject
    if context:
        params["context"] = context
    if attachments:
        params["attachments"] = attachments
    return p.service(nid, name, lane, col, "mail.send", params, row=row, result=result)
