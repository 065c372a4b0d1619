"""Expressions (gateway conditions, timers, assignees, due dates, input parameters), evaluated in process.

Checked against an AST allowlist and compiled once per text. There are no loops, so no time budget: the cost
of an expression is bounded by its length and by the size checks in `_Budget`.
"""

import functools
from collections.abc import Callable
from collections.abc import Mapping
from datetime import UTC
from datetime import date
from datetime import datetime
from typing import Any

from engine.sandbox import limits
from engine.sandbox.errors import CodeFailed
from engine.sandbox.errors import CodeRejected
from engine.sandbox.expression_ast import Compiled
from engine.sandbox.expression_ast import compile_expression
from engine.sandbox.expression_ast import normalize
from engine.sandbox.methods import EXPRESSION_ATTRIBUTES
from engine.sandbox.methods import EXPRESSION_METHODS
from engine.sandbox.methods import call_checked

MAX_EXPRESSION_BYTES = 4 * limits.MAX_SIZE  # everything one evaluation may build, added up

__all__ = ["check_expression", "evaluate", "normalize"]


@functools.lru_cache(maxsize=2048)
def _compiled(text: str) -> Compiled:
    return compile_expression(text)


def check_expression(text: str) -> None:
    """Raise CodeRejected if `text` is not an allowed expression (used at deploy)."""
    _compiled(text)


def evaluate(text: str, data: Mapping[str, Any], clock: Callable[[], datetime] | None = None) -> Any:
    """The value of expression `text` over task `data` (read, never changed); raises CodeFailed."""
    try:
        compiled = _compiled(text)
    except CodeRejected as exc:
        raise CodeFailed(exc.message, line=exc.line) from exc
    budget = _Budget(clock) if compiled.needs_budget else None
    try:
        return compiled.function(data, budget)
    except KeyError as exc:
        missing = exc.args[0] if exc.args else None
        if isinstance(missing, str) and missing in compiled.names and missing not in data:
            raise CodeFailed(f"Unknown variable {missing!r} in expression {_short(text)}. "
                             "Set it before this step or check the spelling.") from None
        raise _failed(text, exc) from None
    except limits.LimitExceeded as exc:
        raise limits.to_code_failed(exc) from None
    except RecursionError:
        raise CodeFailed(f"Expression {_short(text)} nests its data too deeply to evaluate.") from None
    except Exception as exc:
        raise _failed(text, exc) from None


def _short(text: str) -> str:
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _failed(text: str, exc: Exception) -> CodeFailed:
    detail = str(exc)[:300]
    return CodeFailed(f"Expression {_short(text)} failed: {type(exc).__name__}: {detail}. "
                      "Check the values it uses.")


class _Budget:
    """Runs the sized operations of one evaluation and adds up what they build."""

    __slots__ = ("used", "clock")

    def __init__(self, clock: Callable[[], datetime] | None):
        self.used = 0
        self.clock = clock

    def charge(self, value: Any) -> Any:
        """Count `value` against the evaluation's total and return it."""
        self.used += limits.size_of(value)
        if self.used > MAX_EXPRESSION_BYTES:
            raise limits.too_big("This expression", self.used, MAX_EXPRESSION_BYTES)
        return value

    def mul(self, a: Any, b: Any) -> Any:
        return self.charge(limits.mul(a, b))

    def add(self, a: Any, b: Any) -> Any:
        return self.charge(limits.add(a, b))

    def power(self, a: Any, b: Any) -> Any:
        return self.charge(limits.power(a, b))

    def lshift(self, a: Any, b: Any) -> Any:
        return self.charge(limits.lshift(a, b))

    def mod(self, a: Any, b: Any) -> Any:
        return limits.mod(a, b)

    def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self.charge(function(*args, **kwargs))

    def meth(self, obj: Any, name: str, /, *args: Any, **kwargs: Any) -> Any:
        if name not in EXPRESSION_METHODS.get(type(obj), ()):
            raise TypeError(f"'.{name}()' cannot be called on a {type(obj).__name__} value")
        return self.charge(call_checked(obj, name, getattr(obj, name), args, kwargs))

    def attr(self, obj: Any, name: str) -> Any:
        if name not in EXPRESSION_ATTRIBUTES.get(type(obj), ()):
            raise TypeError(f"a {type(obj).__name__} value has no '.{name}' in expressions")
        return getattr(obj, name)

    def slice(self, obj: Any, lower: Any, upper: Any, step: Any) -> Any:
        return self.charge(obj[lower:upper:step])

    def fv(self, value: Any) -> Any:
        """An f-string value, counted before the f-string joins it in."""
        self.used += limits.estimate_text(value)
        if self.used > MAX_EXPRESSION_BYTES:
            raise limits.too_big("This f-string", self.used, MAX_EXPRESSION_BYTES)
        return value

    def now(self) -> datetime:
        moment = self.clock() if self.clock else datetime.now(UTC)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def today(self) -> date:
        return self.now().astimezone(UTC).date()
