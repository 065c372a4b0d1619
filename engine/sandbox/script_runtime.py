"""Running one compiled script: its builtins, the guard functions RestrictedPython calls, and the result.

Used in the pool worker and by `run_inline`; it never touches the parent's task data objects.
"""

import builtins
import functools
import operator
import traceback
from collections.abc import Mapping
from datetime import datetime
from types import ModuleType
from typing import Any

from RestrictedPython.Guards import full_write_guard
from RestrictedPython.Guards import guarded_iter_unpack_sequence
from RestrictedPython.Guards import guarded_unpack_sequence

from engine.sandbox import limits
from engine.sandbox.errors import CodeFailed
from engine.sandbox.errors import CodeMemoryExceeded
from engine.sandbox.errors import CodeRejected
from engine.sandbox.helpers import HELPER_TYPES
from engine.sandbox.helpers import HELPERS
from engine.sandbox.helpers import c_level_import
from engine.sandbox.helpers import clock_helpers
from engine.sandbox.methods import AMPLIFYING_METHODS
from engine.sandbox.methods import wrap_amplifier
from engine.sandbox.script_policy import FILENAME
from engine.sandbox.script_policy import attribute_allowed
from engine.sandbox.script_policy import compile_script

_MISSING = object()
_EXCEPTIONS = (
    "Exception", "ArithmeticError", "AssertionError", "AttributeError", "IndexError", "KeyError",
    "LookupError", "NameError", "NotImplementedError", "OverflowError", "RuntimeError", "TypeError",
    "ValueError", "ZeroDivisionError",
)
_INPLACE = {"+=": limits.add, "*=": limits.mul, "**=": limits.power, "<<=": limits.lshift, "%=": limits.mod,
            "-=": operator.sub, "/=": operator.truediv, "//=": operator.floordiv, ">>=": operator.rshift,
            "&=": operator.and_, "|=": operator.or_, "^=": operator.xor}


def _bounded(name: str):
    original = getattr(builtins, name)

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        if args:
            limits.check_sized_iterable(f"{name}()", args[0])
        return original(*args, **kwargs)

    return call


def _isinstance(value: Any, kinds: Any) -> bool:
    """isinstance() that understands the functions standing in for types, e.g. isinstance(x, str)."""
    if isinstance(kinds, tuple):
        kinds = tuple(_STAND_INS.get(kind, kind) for kind in kinds)
    else:
        kinds = _STAND_INS.get(kinds, kinds)
    return isinstance(value, kinds)


def _repr(value: Any) -> str:
    """repr() with its length checked first."""
    limits.check_size("repr()", limits.estimate_text(value))
    return repr(value)


SCRIPT_BUILTINS: dict[str, Any] = {
    "None": None, "True": True, "False": False, "__import__": c_level_import,
    **{name: _bounded(name) for name in ("all", "any", "dict", "enumerate", "frozenset", "list", "map",
                                         "filter", "reversed", "set", "sorted", "tuple", "zip")},
    "callable": callable, "chr": chr, "divmod": divmod, "hex": hex, "oct": oct, "ord": ord, "slice": slice,
    "isinstance": _isinstance, "pow": limits.power, "range": limits.limited_range, "repr": _repr,
    **{name: getattr(builtins, name) for name in _EXCEPTIONS},
}
_STAND_INS: dict[Any, type] = {
    **HELPER_TYPES,
    **{SCRIPT_BUILTINS[name]: getattr(builtins, name)
       for name in ("dict", "frozenset", "list", "set", "tuple")},
}


def guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """Attribute access for scripts: no private or frame attributes, nothing from a module."""
    if type(name) is not str or not attribute_allowed(name):
        raise AttributeError(f"'.{name}' is not allowed in scripts")
    if isinstance(obj, ModuleType):
        raise AttributeError("modules cannot be used in scripts; use the helpers listed in the docs")
    value = getattr(obj, name) if default is _MISSING else getattr(obj, name, default)
    return wrap_amplifier(obj, name, value) if name in AMPLIFYING_METHODS else value


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def _apply(function: Any, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def _guards(budget: limits.StepBudget) -> dict[str, Any]:
    return {
        "_getattr_": guarded_getattr, "_getitem_": operator.getitem, "_write_": full_write_guard,
        "_getiter_": budget.iterate, "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence, "_inplacevar_": _inplacevar, "_apply_": _apply,
        "_tick_": budget.tick, "_mul_": limits.mul, "_pow_": limits.power, "_lshift_": limits.lshift,
        "_add_": limits.add, "_mod_": limits.mod, "_fv_": limits.formatted,
    }


@functools.lru_cache(maxsize=512)
def cached_code(source: str) -> Any:
    """The RP+ code object for `source`, compiled once per text; raises CodeRejected."""
    return compile_script(source)


def execute(source: str, data: Mapping[str, Any], now: datetime | None = None,
            max_steps: int = limits.MAX_STEPS, seconds: float = 2.0) -> dict[str, Any]:
    """Run `source` over a copy-safe `data`; return every variable afterwards. Raises CodeFailed."""
    try:
        code = cached_code(source)
    except CodeRejected as exc:
        raise CodeFailed(exc.message, line=exc.line) from exc
    # Keys the script cannot name ('_x') stay out of its namespace, so they cannot replace a guard.
    hidden = {key: value for key, value in data.items() if key.startswith("_")}
    namespace = {"__builtins__": SCRIPT_BUILTINS, **HELPERS, **clock_helpers(now),
                 **{key: value for key, value in data.items() if not key.startswith("_")}}
    budget = limits.StepBudget(max_steps, seconds)
    namespace.update(_guards(budget))
    try:
        exec(code, namespace)
    except BaseException as exc:  # noqa: B036 - every failure, limits included, becomes a CodeFailed here
        raise _as_code_failed(exc) from None
    return {**_variables(namespace), **hidden}


def _variables(namespace: dict[str, Any]) -> dict[str, Any]:
    """What the script leaves as task data: no guards, helpers, functions or modules."""
    return {
        key: value for key, value in namespace.items()
        if not key.startswith("_") and not callable(value) and not isinstance(value, ModuleType)
    }


def _as_code_failed(exc: BaseException) -> CodeFailed:
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        raise exc  # the host is shutting down; not the script's failure
    line = script_line(exc)
    where = f" on line {line}" if line else ""
    if isinstance(exc, limits.LimitExceeded):
        return limits.to_code_failed(exc, line)
    if isinstance(exc, MemoryError):
        message = f"Script ran out of memory{where}; work on fewer or smaller values."
        return CodeMemoryExceeded(message, line=line)
    if isinstance(exc, RecursionError):
        return CodeFailed(f"Script recursed too deeply{where}; use a loop instead.", line=line)
    if isinstance(exc, CodeFailed):
        return exc
    detail = str(exc)[:300]
    return CodeFailed(f"Script failed{where}: {type(exc).__name__}: {detail}", line=line)


def script_line(exc: BaseException) -> int | None:
    """The line of the script where `exc` was raised (innermost script frame), if any."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == FILENAME:
            line = frame.lineno
    return line
