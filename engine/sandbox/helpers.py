"""The curated functions designer code may call: pure, bounded, and never a module object.

`HELPERS` maps the name designers write to the function; each docstring is what the README shows.
"""

import builtins
import importlib
import re
from collections.abc import Callable
from datetime import UTC
from datetime import date as Date
from datetime import datetime as DateTime
from datetime import timedelta
from decimal import ROUND_HALF_UP
from decimal import Decimal
from decimal import InvalidOperation
from typing import Any

from engine.sandbox.limits import MAX_INT_BITS
from engine.sandbox.limits import check_size
from engine.sandbox.limits import check_sized_iterable
from engine.sandbox.limits import estimate_text

_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_MAX_NUMBER_TEXT = 100
_C_LEVEL_IMPORTS = frozenset({"time", "_strptime"})


def now() -> DateTime:
    """The current date and time, timezone-aware UTC (the engine's clock)."""
    return DateTime.now(UTC)


def today() -> Date:
    """Today's date in UTC (the engine's clock)."""
    return now().date()


def make_date(year: int, month: int, day: int) -> Date:
    """A date: date(2026, 3, 31)."""
    return Date(year, month, day)


def make_datetime(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
                  second: int = 0) -> DateTime:
    """A UTC date and time: datetime(2026, 3, 31, 17, 30)."""
    return DateTime(year, month, day, hour, minute, second, tzinfo=UTC)


def parse_date(value: Any) -> Date:
    """A date from ISO text ('2026-03-31'); a date-time keeps only its date."""
    if isinstance(value, DateTime):
        return value.date()
    if isinstance(value, Date):
        return value
    text = builtins.str(value).strip()
    return parse_datetime(text).date() if len(text) > 10 else Date.fromisoformat(text)


def parse_datetime(value: Any) -> DateTime:
    """A date-time from ISO text ('2026-03-31T17:30:00Z'); without a zone it is taken as UTC."""
    if isinstance(value, DateTime):
        result = value
    elif isinstance(value, Date):
        result = DateTime(value.year, value.month, value.day)
    else:
        result = DateTime.fromisoformat(builtins.str(value).strip())
    return result if result.tzinfo else result.replace(tzinfo=UTC)


def add_days(value: Any, count: Any) -> Any:
    """The date or date-time `count` days later (negative counts go back)."""
    return value + timedelta(days=count)


def add_hours(value: Any, count: Any) -> DateTime:
    """The date-time `count` hours later; a date starts at midnight UTC."""
    return parse_datetime(value) + timedelta(hours=count)


def days_between(start: Any, end: Any) -> int:
    """Whole days from `start` to `end` (negative when `end` is earlier); text is parsed as ISO."""
    return (parse_date(end) - parse_date(start)).days


def duration(text: str) -> timedelta:
    """An ISO 8601 duration as a timedelta: duration('P3D'), duration('PT4H30M'); no years or months."""
    match = _DURATION.match(builtins.str(text).strip())
    if not match or not any(v for k, v in match.groupdict().items() if k != "sign"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as 'P3D' or 'PT4H'")
    parts = match.groupdict()
    if parts["years"] or parts["months"]:
        raise ValueError(f"{text!r} has years or months, which have no fixed length; use days, e.g. 'P30D'")
    result = timedelta(
        weeks=int(parts["weeks"] or 0), days=int(parts["days"] or 0), hours=int(parts["hours"] or 0),
        minutes=int(parts["minutes"] or 0), seconds=float(parts["seconds"] or 0),
    )
    return -result if parts["sign"] else result


def days(count: Any) -> timedelta:
    """A duration of `count` days."""
    return timedelta(days=count)


def hours(count: Any) -> timedelta:
    """A duration of `count` hours."""
    return timedelta(hours=count)


def minutes(count: Any) -> timedelta:
    """A duration of `count` minutes."""
    return timedelta(minutes=count)


def iso_duration(value: timedelta) -> str:
    """A timedelta as ISO 8601 text: iso_duration(days(3)) == 'P3D'."""
    sign, value = ("-", -value) if value < timedelta(0) else ("", value)
    hours_, rest = divmod(value.seconds, 3600)
    minutes_, seconds_ = divmod(rest, 60)
    fraction = value.microseconds / 1e6
    seconds_text = f"{seconds_ + fraction:g}" if value.microseconds else builtins.str(seconds_)
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours_, "H"), (minutes_, "M")) if n)
    if seconds_ or value.microseconds:
        time_part += f"{seconds_text}S"
    day_part = f"{value.days}D" if value.days else ""
    if not day_part and not time_part:
        return "PT0S"
    return f"{sign}P{day_part}" + (f"T{time_part}" if time_part else "")


def to_decimal(value: Any) -> Decimal:
    """An exact decimal number (for money): decimal('19.99'); a float goes through its shortest text."""
    if isinstance(value, Decimal):
        return value
    text = repr(value) if isinstance(value, float) else builtins.str(value).strip()
    if len(text) > _MAX_NUMBER_TEXT:
        raise ValueError(f"a number with {len(text)} characters is too long for decimal()")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text[:40]!r} is not a number") from None


def round_number(value: Any, ndigits: int | None = None) -> Any:
    """Round half away from zero for decimals (money), like Python's round() otherwise."""
    if isinstance(value, Decimal):
        places = ndigits or 0
        if abs(places) > _MAX_NUMBER_TEXT:
            raise ValueError("round() keeps at most 100 decimal places")
        result = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        return int(result) if ndigits is None else result
    return builtins.round(value) if ndigits is None else builtins.round(value, ndigits)


def absolute(value: Any) -> Any:
    """The absolute value of a number."""
    return builtins.abs(value)


def _values(args: tuple, what: str) -> Any:
    return check_sized_iterable(what, args[0]) if len(args) == 1 else args


def minimum(*args: Any) -> Any:
    """The smallest of several values, or of one list: min(a, b) or min(items)."""
    return builtins.min(_values(args, "min()"))


def maximum(*args: Any) -> Any:
    """The largest of several values, or of one list: max(a, b) or max(items)."""
    return builtins.max(_values(args, "max()"))


def total(values: Any) -> Any:
    """The sum of a list of numbers (decimals stay exact)."""
    values = check_sized_iterable("sum()", values)
    result: Any = 0
    for value in values:
        if not isinstance(value, (int, float, Decimal)):
            raise TypeError(f"sum() adds numbers only, got {type(value).__name__}")
        result = result + value
    return result


def length(value: Any) -> int:
    """The number of items in a list or dict, or characters in a text."""
    return builtins.len(value)


def to_int(value: Any, base: int = 10) -> int:
    """A whole number from a number or a text ('42'); decimals are cut towards zero."""
    if isinstance(value, Decimal) and value.is_finite() and value.adjusted() * 3.33 > MAX_INT_BITS:
        raise ValueError(f"{value!r} is too large to turn into a whole number")
    if isinstance(value, (str, bytes)):
        return builtins.int(value, base)
    return builtins.int(value)


def to_float(value: Any) -> float:
    """A floating-point number from a number or a text."""
    return builtins.float(value)


def to_str(value: Any = "") -> str:
    """The text form of a value."""
    if isinstance(value, str):
        return value
    check_size("str()", estimate_text(value))
    return builtins.str(value)


def to_bool(value: Any = False) -> bool:
    """True or False by Python's rules (empty text, 0, empty list and None are False)."""
    return builtins.bool(value)


def upper(text: str) -> str:
    """The text in upper case."""
    return text.upper()


def lower(text: str) -> str:
    """The text in lower case."""
    return text.lower()


def strip(text: str) -> str:
    """The text without leading and trailing spaces."""
    return text.strip()


def concat(*parts: Any) -> str:
    """All parts as one text: concat('Deal ', number)."""
    texts = [to_str(part) for part in parts]
    check_size("concat()", sum(len(text) for text in texts))
    return "".join(texts)


def contains(container: Any, item: Any) -> bool:
    """Whether a text contains a text, or a list or dict contains an item or key."""
    return item in container


HELPERS: dict[str, Callable[..., Any]] = {
    "now": now, "today": today, "date": make_date, "datetime": make_datetime,
    "parse_date": parse_date, "parse_datetime": parse_datetime, "add_days": add_days, "add_hours": add_hours,
    "days_between": days_between, "duration": duration, "days": days, "hours": hours, "minutes": minutes,
    "iso_duration": iso_duration, "decimal": to_decimal, "round": round_number, "abs": absolute,
    "min": minimum, "max": maximum, "sum": total, "len": length, "int": to_int, "float": to_float,
    "str": to_str, "bool": to_bool, "upper": upper, "lower": lower, "strip": strip, "concat": concat,
    "contains": contains,
}

# What isinstance() tests when a script passes a helper standing in for a type, e.g. isinstance(x, str).
HELPER_TYPES: dict[Callable[..., Any], type] = {
    to_int: int, to_float: float, to_str: str, to_bool: bool, to_decimal: Decimal, make_date: Date,
    make_datetime: DateTime,
}


def clock_helpers(moment: DateTime | None) -> dict[str, Callable[..., Any]]:
    """`now` and `today` frozen at `moment` (the engine clock when the code started); stock ones if None."""
    if moment is None:
        return {"now": now, "today": today}
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)

    def frozen_now() -> DateTime:
        """The current date and time, timezone-aware UTC (the engine's clock)."""
        return moment

    def frozen_today() -> Date:
        """Today's date in UTC (the engine's clock)."""
        return moment.astimezone(UTC).date()

    return {"now": frozen_now, "today": frozen_today}


def c_level_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                   level: int = 0) -> Any:
    """The `__import__` of sandboxed frames: only for C code such as date.strftime, which imports 'time'.

    Designer code cannot name it (names starting with '_' and import statements are refused), and a module it
    might return is refused by the attribute guards anyway.
    """
    if level == 0 and name in _C_LEVEL_IMPORTS:
        return importlib.import_module(name)
    raise ImportError(f"importing {name!r} is not allowed in designer code")
