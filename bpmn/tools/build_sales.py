"""Lays out bpmn/sales_funnel.bpmn, bpmn/contract_review.bpmn (process legal_review) and bpmn/invoicing.bpmn.

The committed .bpmn files are the source; run `python -m bpmn.tools.build_sales` only to regenerate them from
scratch (it overwrites Modeler edits). The process is docs: /work/shared/reference/sales-process.md. Each diagram
is built in its own module (sales_funnel.py, legal_review.py, invoicing.py) from the steps in sales_steps.py.
"""

from pathlib import Path

from bpmn.tools.bpmnkit import document
from bpmn.tools.invoicing import invoicing
from bpmn.tools.legal_review import legal_review
from bpmn.tools.sales_funnel import MESSAGES
from bpmn.tools.sales_funnel import sales_funnel

OUT = Path(__file__).resolve().parent.parent


def main():
    (OUT / "sales_funnel.bpmn").write_text(document(sales_funnel(), MESSAGES, "B2B sales"))
    (OUT / "contract_review.bpmn").write_text(document(legal_review(), {}, "Legal review"))
    (OUT / "invoicing.bpmn").write_text(document(invoicing(), {}, "Invoicing"))


if __name__ == "__main__":
    main()
