"""What every bench part shares: the diagram, the form data, the actor, timing and statistics."""

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from engine.actor import Actor

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DIAGRAM = BENCH_DIR / "bench_process.bpmn"
APPROVALS = ROOT / "tests" / "bpmn" / "approvals.bpmn"
PROCESS_KEY = "bench_deal"
GROUP = "sales"
USER = "bench-alice"
ACTOR = Actor(USER, roles=frozenset({"manager"}), groups=frozenset({GROUP}))
DESIGNER = "bench-dana"
USER_TASKS_PER_INSTANCE = 3
# The engine as app.py builds it by default (DEALFLOW_WORKFLOW_CACHE=256).
ENGINE_OPTIONS = {"workflow_cache": 256}

# What each user task of bench_process.bpmn is completed with.
FORMS = {
    "Director_review": {"approved": True},
    "Manager_review": {"approved": True},
    "Prepare_contract": {"contract_no": "C-1"},
    "Sign_contract": {"signed": True},
}


def variables(i: int) -> dict:
    """Start variables: every other instance is a large deal, so both alternative user tasks are exercised."""
    return {"amount": 20_000 if i % 2 == 0 else 5_000, "customer": f"Customer {i}"}


def quiet_spiff_loggers() -> None:
    """SpiffWorkflow logs every state change at INFO with task data attached unless its loggers are set higher.

    The bench sets them for every variant alike (one process), so the ratios stay fair; gunicorn.conf.py does
    the same for the served app.
    """
    for name in ("spiff", "spiff.task", "spiff.workflow", "spiff.data"):
        logging.getLogger(name).setLevel(logging.WARNING)


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn` takes (perf_counter)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Series:
    """Samples of one measure across rounds; the table shows the median and the min-max spread."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.samples.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    def to_dict(self) -> dict:
        return {"name": self.name, "unit": self.unit, "median": self.median,
                "min": min(self.samples, default=None), "max": max(self.samples, default=None),
                "samples": self.samples}
