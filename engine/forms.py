"""Validate what a user submits against a task's Camunda form, and plain variables against our rules.

Values are data, never code: nothing here evaluates or interpolates them.
"""

import json
import keyword
import math
import re
from datetime import date
from datetime import datetime
from typing import Any

from engine.errors import FormInvalid
from engine.errors import InvalidInput

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_STRING = 10_000
MAX_VARIABLES_BYTES = 256 * 1024
MAX_DEPTH = 20
LONG_RANGE = 2**63


def _coerce_string(value: Any, field: dict) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    if len(value) > MAX_STRING:
        raise ValueError(f"must be at most {MAX_STRING} characters")
    return value


def _coerce_long(value: Any, field: dict) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not -LONG_RANGE <= value < LONG_RANGE:
        raise ValueError("must be a whole number")
    return value


def _coerce_boolean(value: Any, field: dict) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be true or false")


def _coerce_date(value: Any, field: dict) -> str:
    """A date, kept as its ISO text ("2026-03-31"): process data is JSON, and ISO dates compare as text."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
            try:
                return datetime.strptime(value.strip(), fmt).date().isoformat()
            except ValueError:
                continue
    raise ValueError("must be a date such as 2026-03-31")


def _coerce_enum(value: Any, field: dict) -> str:
    allowed = [option["id"] for option in field.get("options") or []]
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(repr(a) for a in allowed)}")
    return value


def _coerce_any(value: Any, field: dict) -> Any:
    return _json_value(value, field["id"])


COERCE = {
    "string": _coerce_string,
    "long": _coerce_long,
    "boolean": _coerce_boolean,
    "date": _coerce_date,
    "enum": _coerce_enum,
}


def _number(config: Any) -> float | None:
    try:
        return float(config)
    except (TypeError, ValueError):
        return None


def _check_constraints(value: Any, rules: dict[str, Any]) -> None:
    if isinstance(value, str):
        if (n := _number(rules.get("minlength"))) is not None and len(value) < n:
            raise ValueError(f"must be at least {int(n)} characters")
        if (n := _number(rules.get("maxlength"))) is not None and len(value) > n:
            raise ValueError(f"must be at most {int(n)} characters")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if (n := _number(rules.get("min"))) is not None and value < n:
            raise ValueError(f"must be at least {rules['min']}")
        if (n := _number(rules.get("max"))) is not None and value > n:
            raise ValueError(f"must be at most {rules['max']}")


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _clean_field(field: dict, value: Any, present: bool) -> tuple[bool, Any]:
    """Return (keep, value) for one field, or raise ValueError with the problem."""
    rules = field.get("validation") or {}
    coerce = COERCE.get(field.get("type") or "string", _coerce_any)
    if "readonly" in rules:
        if present and value != field.get("default"):
            raise ValueError("is read-only")
        return False, None
    if not present and field.get("default") not in (None, ""):
        value, present = field["default"], True
    if _is_blank(value):
        if "required" in rules:
            raise ValueError("is required")
        return present, None
    value = coerce(value, field)
    _check_constraints(value, rules)
    return True, value


def validate_form(fields: list[dict], data: dict[str, Any], task_name: str) -> dict[str, Any]:
    """Check `data` against the form `fields`; return the cleaned values or raise FormInvalid listing all."""
    if not isinstance(data, dict):
        raise FormInvalid(f"The data for {task_name!r} must be an object of field names and values.")
    if not fields:
        return check_variables(data, what=f"the data for {task_name!r}")
    known = {f["id"] for f in fields}
    errors = {name: "is not a field of this form" for name in data if name not in known}
    cleaned: dict[str, Any] = {}
    for field in fields:
        try:
            keep, value = _clean_field(field, data.get(field["id"]), field["id"] in data)
        except ValueError as exc:
            errors[field["id"]] = str(exc)
            continue
        if keep:
            cleaned[field["id"]] = value
    if errors:
        listing = "; ".join(f"{name!r} {problem}" for name, problem in sorted(errors.items()))
        raise FormInvalid(
            f"The form of {task_name!r} has {len(errors)} problem(s): {listing}. Correct them and submit again.",
            details={"fields": errors},
        )
    return cleaned


def _json_value(value: Any, where: str, depth: int = 0) -> Any:
    """`value` as process data: JSON values as they are, dates and datetimes as their ISO text (as date form
    fields are kept); anything else is refused."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{where} is nested more than {MAX_DEPTH} levels deep.")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{where} must be a finite number.")
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise InvalidInput(f"{where} has a key that is not text.")
        return {key: _json_value(item, where, depth + 1) for key, item in value.items()}
    raise InvalidInput(f"{where} holds a {type(value).__name__}; only JSON values are allowed.")


def check_variables(variables: Any, what: str = "the variables") -> dict[str, Any]:
    """Process variables: an object whose names expressions can use, with JSON values of bounded size."""
    if not isinstance(variables, dict):
        raise InvalidInput(f"{what.capitalize()} must be an object of names and values.")
    for name in variables:
        if not isinstance(name, str) or not NAME.match(name) or keyword.iskeyword(name):
            raise InvalidInput(
                f"{name!r} in {what} is not a valid variable name: use a letter followed by letters, digits or _ "
                "(at most 64 characters), and not a Python keyword."
            )
    cleaned = {name: _json_value(value, f"Variable {name!r}") for name, value in variables.items()}
    size = len(json.dumps(cleaned))
    if size > MAX_VARIABLES_BYTES:
        raise InvalidInput(f"{what.capitalize()} take {size} bytes; the limit is {MAX_VARIABLES_BYTES}.")
    return cleaned
