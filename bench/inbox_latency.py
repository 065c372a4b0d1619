"""Inbox query and completion latency with many open tasks: bulk-filled rows, then real commands timed.

The open tasks are inserted with executemany, not through the engine (100k instances would take minutes), but
they look like the engine's: one open task per instance, offered to a group, some assigned or offered to named
users, with candidate rows, due dates, priorities and two audit events each. Completions are timed on real
instances started through the engine on top of that data.
"""

import random
import time
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from bench.common import ACTOR
from bench.common import FORMS
from bench.common import PROCESS_KEY
from bench.common import percentile
from bench.common import variables
from bench.engine_runs import Database
from engine.db import utcnow
from engine.engine import Engine
from engine.models import AuditEvent
from engine.models import HumanTask
from engine.models import ProcessDefinition
from engine.models import ProcessInstance
from engine.models import TaskCandidate
from engine.queries import TaskFilter

GROUPS = ["sales", "legal", "accounting", "sales_north", "sales_south", "directors", "support", "finance"]
USERS = [f"user{n:02d}" for n in range(60)]
TASKS = [("Manager_review", "Manager review"), ("Director_review", "Director review"),
         ("Prepare_contract", "Prepare contract"), ("Sign_contract", "Sign contract")]
BATCH = 5_000


def user_groups(user: str) -> frozenset[str]:
    """Each user is in one or two groups (deterministic, so every run asks the same inboxes)."""
    n = int(user[4:])
    return frozenset({GROUPS[n % len(GROUPS)], GROUPS[(n * 3 + 1) % len(GROUPS)]})


def fill(db: Database, first: int, count: int, seed: int = 7) -> None:
    """Insert `count` open tasks (and their instances, candidates and audit rows) numbered from `first`."""
    rng = random.Random(seed + first)
    now = utcnow()
    with db.session_factory() as session, session.begin():
        definition_id = session.scalar(select(ProcessDefinition.id).where(ProcessDefinition.key == PROCESS_KEY))
        base = (session.scalar(select(func.max(ProcessInstance.id))) or 0) + 1
        for start in range(first, first + count, BATCH):
            rows = range(start, min(start + BATCH, first + count))
            instances, tasks, candidates, events = [], [], [], []
            for i in rows:
                created = now - timedelta(minutes=rng.randrange(90 * 24 * 60))
                bpmn_id, name = rng.choice(TASKS)
                group = rng.choice(GROUPS)
                roll = rng.random()
                assignee = rng.choice(USERS) if roll < 0.2 else None
                users = [rng.choice(USERS)] if 0.2 <= roll < 0.3 else []
                task_id = f"00000000-0000-4000-8000-{i:012d}"
                instances.append(dict(id=base + i - first, definition_id=definition_id, process_key=PROCESS_KEY,
                                      business_key=f"FILL-{i}", status="running", state_json="{}",
                                      started_at=created, started_by=rng.choice(USERS), updated_at=created,
                                      lock_version=1, audit_seq=2, audit_hash="0" * 64))
                tasks.append(dict(id=task_id, instance_id=base + i - first, process_key=PROCESS_KEY,
                                  business_key=f"FILL-{i}", bpmn_id=bpmn_id, name=name, lane=None, status="open",
                                  assignee=assignee,
                                  candidate_groups=[group], candidate_users=users, form=[],
                                  priority=rng.choice((30, 50, 50, 70)),
                                  due_at=created + timedelta(days=rng.randrange(1, 30)) if roll < 0.6 else None,
                                  follow_up_at=None, created_at=created, claimed_at=created if assignee else None))
                candidates.append(dict(task_id=task_id, kind="group", name=group))
                candidates.extend(dict(task_id=task_id, kind="user", name=u) for u in users)
                for position, event in enumerate(("instance_started", "task_created"), 1):
                    events.append(dict(at=created, actor="bench", event=event, instance_id=base + i - first,
                                       task_id=task_id, element_id=bpmn_id, details={}, trail=base + i - first,
                                       trail_seq=position, prev_hash="0" * 64, hash="0" * 64))
            for model, values in ((ProcessInstance, instances), (HumanTask, tasks), (TaskCandidate, candidates),
                                  (AuditEvent, events)):
                session.execute(insert(model.__table__), values)
        # These trails are not valid hash chains (the bench never verifies them); appends only need the heads.


def measure(db: Database, engine: Engine, queries: int, completions: int, first_business: int) -> dict:
    """p50/p95 (ms) of one inbox page for random users (in the default order, and by due date and by priority),
    and of completing a task of a real instance."""
    by_sort = {}
    for sort in ("created", "due", "priority"):
        rng = random.Random(11)
        inbox_ms = []
        for _ in range(queries if sort == "created" else max(queries // 3, 1)):
            user = rng.choice(USERS)
            task_filter = TaskFilter(user=user, groups=user_groups(user), limit=50, sort=sort)
            start = time.perf_counter()
            engine.list_tasks(task_filter)
            inbox_ms.append((time.perf_counter() - start) * 1000)
        by_sort[sort] = {"p50_ms": percentile(inbox_ms, 50), "p95_ms": percentile(inbox_ms, 95)}
    ready = []
    for i in range(first_business, first_business + completions):
        view = engine.start_instance(PROCESS_KEY, actor=ACTOR, business_key=f"LAT-{i}", variables=variables(i))
        ready.append(view.open_tasks[0])
    complete_ms = []
    for task in ready:
        start = time.perf_counter()
        engine.complete_task(task.id, actor=ACTOR, data=FORMS[task.bpmn_id])
        complete_ms.append((time.perf_counter() - start) * 1000)
    return {
        "inbox_p50_ms": by_sort["created"]["p50_ms"], "inbox_p95_ms": by_sort["created"]["p95_ms"],
        "inbox_by_sort": by_sort,
        "complete_p50_ms": percentile(complete_ms, 50), "complete_p95_ms": percentile(complete_ms, 95),
        "queries": queries, "completions": completions,
    }
