"""Size, CPU and step limits shared by expressions and scripts, and the operator guards that enforce them.

Guards raise `LimitExceeded`, a BaseException, so designer code cannot swallow it with `except Exception`;
the public entry points convert it into a `CodeFailed` subclass before it reaches SpiffWorkflow.
"""

import math
import time
from collections.abc import Iterable
from collections.abc import Iterator
from datetime import date
from datetime import timedelta
from decimal import Decimal
from typing import Any

from engine.sandbox.errors import CodeFailed
from engine.sandbox.errors import CodeMemoryExceeded
from engine.sandbox.errors import CodeTimeout

MAX_SIZE = 1_000_000  # bytes (characters, or 8 per container slot) one operation may produce
MAX_INT_BITS = 64_000  # keeps big-int division and str() in the milliseconds
MAX_ITEMS = 1_000_000  # range() and sized iterables handed to C-level builtins
MAX_STEPS = 1_000_000  # loop iterations plus function calls per script run
MAX_DEPTH = 50  # nesting of data structures and of source syntax
_CHECK_EVERY = 4  # ticks between clock reads: a read costs as much as a tick; 4 keeps the lag short
_SEQUENCES = (str, bytes, list, tuple)


class LimitExceeded(BaseException):  # noqa: N818 - the name reads as what happened, like KeyboardInterrupt
    """Designer code broke a sandbox limit; `kind` is 'memory', 'time' or 'refused'."""

    def __init__(self, message: str, kind: str = "memory"):
        super().__init__(message)
        self.message = message
        self.kind = kind


def to_code_failed(exc: LimitExceeded, line: int | None = None) -> CodeFailed:
    """The public error for a limit: CodeTimeout, CodeMemoryExceeded or CodeFailed."""
    cls = {"time": CodeTimeout, "memory": CodeMemoryExceeded}.get(exc.kind, CodeFailed)
    return cls(f"Line {line}: {exc.message}" if line else exc.message, line=line)


def too_big(what: str, size: int, limit: int = MAX_SIZE) -> LimitExceeded:
    """The error for a value (or an evaluation's total) over its limit."""
    return LimitExceeded(
        f"{what} would produce about {size:,} bytes, more than the {limit:,} allowed; "
        "work on smaller values or store large documents as files."
    )


def size_of(value: Any) -> int:
    """Rough bytes a fresh copy of `value` costs (its own slots, not what they point to)."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return 8 * len(value)
    if isinstance(value, int):
        return value.bit_length() // 8
    return 0


def check_size(what: str, size: int) -> None:
    """Raise LimitExceeded when `size` is over MAX_SIZE."""
    if size > MAX_SIZE:
        raise too_big(what, size)


def check_int_bits(what: str, bits: float) -> None:
    """Raise LimitExceeded when an integer result would have more than MAX_INT_BITS bits."""
    if bits > MAX_INT_BITS:
        raise LimitExceeded(
            f"{what} would produce a number with about {int(bits):,} bits, more than the {MAX_INT_BITS:,} "
            "allowed; check the operands."
        )


def mul(a: Any, b: Any) -> Any:
    """`a * b` with the result size checked before it is built."""
    if isinstance(a, int) and isinstance(b, int):
        check_int_bits("'*'", a.bit_length() + b.bit_length())
    elif isinstance(a, _SEQUENCES) and isinstance(b, int):
        check_size("'*'", size_of(a) * b)
    elif isinstance(b, _SEQUENCES) and isinstance(a, int):
        check_size("'*'", size_of(b) * a)
    return a * b


def add(a: Any, b: Any) -> Any:
    """`a + b` with the size of a concatenation checked before it is built."""
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        check_size("'+'", size_of(a) + size_of(b))
    return a + b


def power(a: Any, b: Any, modulo: Any = None) -> Any:
    """`a ** b` (or pow with a modulo) refusing results that would take seconds or gigabytes."""
    if modulo is not None:
        # Modular exponentiation costs exponent bits x modulus bits squared, all in one C call.
        if isinstance(b, int) and isinstance(modulo, int) and max(b.bit_length(), modulo.bit_length()) > 8000:
            raise LimitExceeded("pow() with a modulo accepts numbers of up to 8,000 bits; use smaller ones.",
                                "refused")
        return pow(a, b, modulo)
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        check_int_bits("'**'", b * math.log2(abs(a)))
    return a**b


def lshift(a: Any, b: Any) -> Any:
    """`a << b` with the result size checked."""
    if isinstance(a, int) and isinstance(b, int) and a:
        check_int_bits("'<<'", a.bit_length() + b)
    return a << b


def mod(a: Any, b: Any) -> Any:
    """`a % b`, refusing printf-style string formatting (its widths are unbounded)."""
    if isinstance(a, (str, bytes)):
        raise LimitExceeded("'%' formatting of strings is not allowed; use an f-string such as f\"{x:.2f}\".",
                            "refused")
    return a % b


def estimate_text(value: Any, depth: int = 0) -> int:
    """Rough length of str(value), walking containers only until the estimate passes MAX_SIZE."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, Decimal):  # format(Decimal('1e999999999'), 'f') writes every zero
        return 8 + len(value.as_tuple().digits) + (abs(value.adjusted()) if value.is_finite() else 0)
    if isinstance(value, (int, float, bool, date, timedelta)) or value is None:
        return 8 if not isinstance(value, int) else value.bit_length() // 3 + 2
    if isinstance(value, bytes):
        return 4 * len(value)
    if depth >= MAX_DEPTH or not isinstance(value, (list, tuple, dict, set, frozenset)):
        return 64
    total = 2
    items = value.items() if isinstance(value, dict) else value
    for item in items:
        total += 2 + estimate_text(item, depth + 1)
        if total > MAX_SIZE:
            break
    return total


def formatted(value: Any) -> Any:
    """An f-string value, refused when its text would be over MAX_SIZE (the script's `_fv_`)."""
    check_size("This f-string value", estimate_text(value))
    return value


def check_sized_iterable(what: str, value: Any) -> Any:
    """Refuse sized inputs over MAX_ITEMS, which C-level builtins would walk without a tick."""
    if hasattr(value, "__len__") and len(value) > MAX_ITEMS:
        raise LimitExceeded(f"{what} got {len(value):,} items, more than the {MAX_ITEMS:,} allowed.")
    return value


def limited_range(*args: int) -> range:
    """range() capped at MAX_ITEMS items; more iterations could never finish within the step budget."""
    result = range(*args)
    if len(result) > MAX_ITEMS:
        raise LimitExceeded(f"range() with {len(result):,} items is more than the {MAX_ITEMS:,} allowed.",
                            "refused")
    return result


class StepBudget:
    """A sticky step and wall-clock budget; once spent, every later tick raises again."""

    __slots__ = ("count", "next_check", "max_steps", "deadline", "seconds", "spent")

    def __init__(self, max_steps: int = MAX_STEPS, seconds: float = 2.0):
        self.count = 0
        self.next_check = _CHECK_EVERY
        self.max_steps = max_steps
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.spent = False

    def tick(self) -> None:
        """Count one step; reads the clock every few steps."""
        self.count += 1
        if self.count >= self.next_check:
            self._check()

    def _check(self) -> None:
        if not self.spent and (self.count > self.max_steps or time.monotonic() > self.deadline):
            self.spent = True
            self.next_check = 0  # from now on every tick lands here and raises
        if self.spent:
            raise LimitExceeded(
                f"Script ran longer than {self.seconds:g} s or {self.max_steps:,} steps and was stopped; "
                "look for a loop that never ends or process fewer items per task.",
                "time",
            )
        self.next_check = self.count + _CHECK_EVERY

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Iterate `iterable`, ticking once per item (this is the script's `_getiter_`)."""
        return _ticking(iter(iterable), self.tick)


def _ticking(iterator: Iterator[Any], tick: Any) -> Iterator[Any]:
    for item in iterator:
        tick()
        yield item
