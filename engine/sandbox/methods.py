"""Methods designer code may call on values, and size checks for the ones that can multiply memory."""

from collections.abc import Callable
from datetime import date
from datetime import datetime
from datetime import timedelta
from typing import Any

from engine.sandbox.limits import check_size
from engine.sandbox.limits import size_of

_STR_METHODS = frozenset({
    "lower", "upper", "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "join",
    "replace", "count", "index", "find", "title", "capitalize", "isdigit",
})
_DATE_METHODS = frozenset({"isoformat", "weekday"})

# Expressions may call only these, looked up by exact type: no mutators, so a condition cannot change data.
EXPRESSION_METHODS: dict[type, frozenset[str]] = {
    str: _STR_METHODS,
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
    dict: frozenset({"get", "keys", "values", "items"}),
    date: _DATE_METHODS,
    datetime: _DATE_METHODS | {"date"},
    timedelta: frozenset({"total_seconds"}),
}
EXPRESSION_METHOD_NAMES = frozenset().union(*EXPRESSION_METHODS.values())

# Plain attributes expressions may read (dates and durations only).
EXPRESSION_ATTRIBUTES: dict[type, frozenset[str]] = {
    date: frozenset({"year", "month", "day"}),
    datetime: frozenset({"year", "month", "day", "hour", "minute", "second"}),
    timedelta: frozenset({"days", "seconds"}),
}
EXPRESSION_ATTRIBUTE_NAMES = frozenset().union(*EXPRESSION_ATTRIBUTES.values())

# Methods whose result can be far larger than their receiver; scripts get them wrapped in a size check.
AMPLIFYING_METHODS = frozenset({
    "ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join", "extend",
})


def _width(obj: Any, args: tuple, kwargs: dict) -> int:
    width = args[0] if args else kwargs.get("width", 0)
    return max(len(obj), width if isinstance(width, int) else 0)


def _expandtabs(obj: Any, args: tuple, kwargs: dict) -> int:
    tabsize = args[0] if args else kwargs.get("tabsize", 8)
    tab = "\t" if isinstance(obj, str) else b"\t"
    return len(obj) + obj.count(tab) * max(tabsize if isinstance(tabsize, int) else 0, 0)


def _replace(obj: Any, args: tuple, kwargs: dict) -> int:
    if len(args) < 2 or not isinstance(args[0], type(obj)) or not isinstance(args[1], type(obj)):
        return len(obj)
    old, new = args[0], args[1]
    limit = args[2] if len(args) > 2 else kwargs.get("count", -1)
    hits = len(obj) + 1 if not old else obj.count(old)
    if isinstance(limit, int) and limit >= 0:
        hits = min(hits, limit)
    return len(obj) + hits * max(len(new) - len(old), 0)


def _extend(obj: Any, args: tuple, kwargs: dict) -> int:
    items = args[0] if args else ()
    return size_of(obj) + (8 * len(items) if hasattr(items, "__len__") else 0)


_ESTIMATORS: dict[str, Callable[[Any, tuple, dict], int]] = {
    "ljust": _width, "rjust": _width, "center": _width, "zfill": _width,
    "expandtabs": _expandtabs, "replace": _replace, "extend": _extend,
}


def call_checked(obj: Any, name: str, method: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Call `method` (bound to `obj`) after estimating that its result stays under MAX_SIZE."""
    if name == "join" and args and isinstance(obj, (str, bytes)):
        parts = list(args[0])  # materialise once so the estimate and the call see the same items
        joined = sum(len(part) for part in parts if isinstance(part, (str, bytes)))
        check_size(f"{name}()", joined + len(obj) * max(len(parts) - 1, 0))
        return method(parts)
    estimator = _ESTIMATORS.get(name)
    if estimator is not None:
        check_size(f"{name}()", estimator(obj, args, kwargs))
    return method(*args, **kwargs)


def wrap_amplifier(obj: Any, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` wrapped so each call is size-checked first (scripts reach methods through getattr)."""
    if not isinstance(obj, (str, bytes, list)):
        return method

    def checked(*args: Any, **kwargs: Any) -> Any:
        return call_checked(obj, name, method, args, kwargs)

    return checked

