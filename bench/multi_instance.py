"""A parallel multi-instance approval (tests/bpmn/approvals.bpmn): one user task per line item."""

import time

from bench.common import ACTOR
from bench.common import APPROVALS
from engine.engine import Engine
from engine.queries import MAX_PAGE
from engine.queries import TaskFilter


def approve_all(engine: Engine, items: int) -> float:
    """Seconds to start an approval over `items` line items and complete every item's task."""
    start = time.perf_counter()
    view = engine.start_instance("approvals", actor=ACTOR,
                                 variables={"items": [{"sku": f"SKU-{n}", "qty": n % 7 + 1} for n in range(items)]})
    assert view.open_task_count == items, view.open_task_count
    # The view lists the oldest 50; the inbox, filtered by instance, has them all (as a client would page them).
    tasks = engine.list_tasks(TaskFilter(instance_id=view.id, limit=MAX_PAGE))
    assert len(tasks) == items, len(tasks)
    for task in tasks:
        view = engine.complete_task(task.id, actor=ACTOR, data={"ok": True})
    assert view.status == "completed", view.status
    return time.perf_counter() - start


def raw_approve_all(items: int, script_engine, persist: bool, workflow_class=None) -> float:
    """The same approval through SpiffWorkflow alone (Dealflow's parser and sandbox), in memory or dumping state-only
    JSON after every step: the library's own growth with the number of items, the ceiling for the engine's.

    The driver asks for the ready tasks once (a parallel multi-instance task creates them all at once), as the
    engine's inbox rows do, so the figure is the library's cost per step and not a tree walk of the driver's.
    `workflow_class`: SpiffWorkflow's BpmnWorkflow (the default) or Dealflow's subclass, which skips its walks.
    """
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.task import TaskState

    from engine.serialization import state_to_json
    from processes.parser import DealflowParser

    parser = DealflowParser()
    parser.add_bpmn_file(str(APPROVALS))
    spec, subprocesses = parser.get_spec("approvals"), parser.get_subprocess_specs("approvals")
    start = time.perf_counter()
    workflow = (workflow_class or BpmnWorkflow)(spec, subprocesses, script_engine=script_engine)
    workflow.task_tree.data["items"] = [{"sku": f"SKU-{n}", "qty": n % 7 + 1} for n in range(items)]
    workflow.do_engine_steps()
    if persist:
        state_to_json(workflow)
    ready = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
    assert len(ready) == items, len(ready)
    for task in ready:
        task.data["ok"] = True
        task.run()
        workflow.do_engine_steps()
        if persist:
            state_to_json(workflow)
    assert workflow.is_completed()
    return time.perf_counter() - start
