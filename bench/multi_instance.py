"""A parallel multi-instance approval (tests/bpmn/approvals.bpmn): one user task per line item."""

import time

from bench.common import ACTOR
from engine.engine import Engine


def approve_all(engine: Engine, items: int) -> float:
    """Seconds to start an approval over `items` line items and complete every item's task."""
    start = time.perf_counter()
    view = engine.start_instance("approvals", actor=ACTOR,
                                 variables={"items": [{"sku": f"SKU-{n}", "qty": n % 7 + 1} for n in range(items)]})
    assert len(view.open_tasks) == items, len(view.open_tasks)
    for task in list(view.open_tasks):
        view = engine.complete_task(task.id, actor=ACTOR, data={"ok": True})
    assert view.status == "completed", view.status
    return time.perf_counter() - start
