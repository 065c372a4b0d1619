"""`make demo` runs: five deals take their paths through the shipped process, and the report says what happened."""

import pytest

from web.sales_demo import PATHS
from web.sales_demo import run_demo

FUNNEL = ["New lead", "Qualified", "Proposal", "Negotiation", "Contract", "Invoice", "Awaiting payment", "Won"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    lines: list[str] = []
    deals = run_demo(tmp_path_factory.mktemp("demo"), out=lines.append)
    return deals, "\n".join(lines)


def _stages(deal):
    return [step["to_stage"] for step in deal.timeline()]


def test_every_path_ends_as_it_should(demo):
    deals, _ = demo
    assert [path.title for path in PATHS] == ["Won first time", "Lawyer asks for changes twice",
                                              "Invoice above the threshold, rejected once", "Lost at qualification",
                                              "Payment overdue and escalated"]
    assert [deal.status() for deal in deals] == [("won", None)] * 3 + [("lost", "no_budget"), ("won", None)]
    for deal in deals[:3] + deals[4:]:
        assert _stages(deal) == FUNNEL
        times = [step["at"] for step in deal.timeline()]
        assert times == sorted(times) and times[-1] > times[0]  # the simulated clock moved along
    assert _stages(deals[3]) == ["New lead", "Lost"]
    assert [deal.owner for deal in deals] == ["alice", "bob", "alice", "bob", "alice"]  # round-robin


def test_the_documents_and_mails_of_each_path(demo):
    deals, report = demo
    contracts = [d.version for d in deals[1].documents() if d.kind == "contract"]
    assert contracts == [1, 2, 3]  # two rounds of changes
    invoices = [d.number for deal in deals for d in deal.documents() if d.kind == "invoice"]
    assert invoices == ["2026-000001", "2026-000002", "2026-000003", "2026-000004"]  # gap-free, lost deal has none
    assert deals[3].documents() == [] and deals[3].mails() == []
    overdue = [str(m["Subject"]) for m in deals[4].mails()]
    assert "Payment reminder: invoice No. 2026-000004 is 3 days overdue" in overdue
    assert any("7 days overdue" in message for _, message in deals[4].notifications())
    approvals = [e for e in deals[2].engine.history(deals[2].instance_id)
                 if e.event == "task_completed" and e.element_id == "Approve_invoice"]
    assert [e.actor for e in approvals] == ["finn", "finn"]  # rejected once, then approved
    assert len([d for d in deals[2].documents() if d.kind == "invoice"]) == 1  # one number: rendered on approval
    assert "=== Deal 5: Payment overdue and escalated" in report and "invoice-2026-000004.pdf" in report
