"""Instance status changes go through one table and one function."""

from engine.errors import Conflict
from engine.models import InstanceStatus as S

# running: someone or something (a user, a handler) has work open; waiting: only an event can move it on.
ALLOWED: dict[S, frozenset[S]] = {
    S.RUNNING: frozenset({S.RUNNING, S.WAITING, S.COMPLETED, S.CANCELLED, S.ERROR}),
    S.WAITING: frozenset({S.RUNNING, S.WAITING, S.COMPLETED, S.CANCELLED, S.ERROR}),
    S.ERROR: frozenset({S.ERROR, S.RUNNING, S.WAITING, S.COMPLETED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}

FINAL = frozenset({S.COMPLETED, S.CANCELLED})


def ensure_active(instance_id: int, status: str) -> None:
    """Raise Conflict unless the instance can still change."""
    if S(status) in FINAL:
        raise Conflict(f"Process instance {instance_id} is {status}; it can no longer change.")


def transition(instance_id: int, current: str, new: S) -> S:
    """Check that `current -> new` is allowed and return `new`."""
    if new not in ALLOWED[S(current)]:
        raise Conflict(f"Process instance {instance_id} cannot go from {current} to {new}.")
    return new
