"""An instance's workflow state in the database: its head on process_instance.state_json, its tasks in
instance_task_state, one row each (see engine.serialization).

A command writes the head with the instance row and, next to it, only the task rows its dump changed: one
multi-row upsert, and a delete when tasks left the workflow. A load reads head and rows in one statement, so
they come from one snapshot even outside a transaction that locked the instance (PostgreSQL's READ COMMITTED
takes a snapshot per statement).
"""

from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy import union_all
from sqlalchemy.orm import Session

from engine.models import InstanceTaskState
from engine.models import ProcessInstance
from engine.serialization import StateDump
from engine.sql import MAX_PARAMETERS
from engine.sql import Batch
from engine.sql import Prepared
from engine.sql import UpsertRows

_ROWS = InstanceTaskState.__table__
_INSTANCE = ProcessInstance.__table__
_UPSERT = UpsertRows(_ROWS, ("instance_id", "id"))
# The head first (seq -1), then the rows: one statement, one snapshot.
_READ = Prepared(union_all(
    select(literal("").label("id"), literal("").label("workflow"), literal(-1).label("seq"),
           _INSTANCE.c.state_json.label("body")).where(_INSTANCE.c.id == bindparam("b_instance")),
    select(_ROWS.c.id, _ROWS.c.workflow, _ROWS.c.seq, _ROWS.c.body)
    .where(_ROWS.c.instance_id == bindparam("b_instance")),
))
_DELETES: dict[int, Prepared] = {}
_DELETE_CHUNK = MAX_PARAMETERS - 1


def read(session: Session, instance_id: int) -> tuple[str, list[tuple[str, str, int, str]]]:
    """(head, task rows as (id, workflow, seq, body) in seq order) of an instance."""
    rows = sorted((row["seq"], row["id"], row["workflow"], row["body"])
                  for row in _READ.all(session, {"b_instance": instance_id}))
    if not rows or rows[0][0] != -1:
        raise LookupError(f"There is no process instance {instance_id}.")
    return rows[0][3], [(task_id, workflow, seq, body) for seq, task_id, workflow, body in rows[1:]]


def write(batch: Batch, instance_id: int, dump: StateDump) -> None:
    """Write the task rows `dump` changed, in the batch of the instance row's own write (which carries the head)."""
    if dump.upserts:
        for row in dump.upserts:
            row["instance_id"] = instance_id
        batch.insert(_UPSERT, dump.upserts)
    for first in range(0, len(dump.deletes), _DELETE_CHUNK):
        ids = dump.deletes[first:first + _DELETE_CHUNK]
        params = {f"b_{n}": task_id for n, task_id in enumerate(ids)}
        batch.write(_delete(len(ids)), params | {"b_instance": instance_id})


def _delete(count: int) -> Prepared:
    prepared = _DELETES.get(count)
    if prepared is None:
        prepared = _DELETES[count] = Prepared(delete(_ROWS).where(
            _ROWS.c.instance_id == bindparam("b_instance"),
            _ROWS.c.id.in_([bindparam(f"b_{n}") for n in range(count)])))
    return prepared
