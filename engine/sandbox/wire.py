"""Task data as it crosses the sandbox boundary: JSON-like values only, bounded in depth and size.

Between the server and a worker the data travels as JSON text, never pickle: a worker runs designer code,
so the server must not unpickle what a worker sends. datetime, date, timedelta, Decimal and UUID travel as
single-key tagged objects ({"$dt": "..."}); a real dict that looks like a tag is escaped as
{"$obj": [[k, v]]}.
"""

import json
from datetime import date
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from engine.sandbox.limits import MAX_DEPTH
from engine.sandbox.limits import MAX_INT_BITS
from engine.sandbox.limits import MAX_SIZE

MAX_DATA_BYTES = MAX_SIZE
_TAGS = {
    "$dt": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$td": lambda parts: timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2]),
    "$dec": Decimal,
    "$uuid": UUID,
    "$obj": dict,
}


class WireError(ValueError):
    """A value that cannot be task data; str() names where it sits, e.g. "variable 'x'[2] holds a set"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
        self.trail: list[str] = []  # filled while the error unwinds, so the happy path builds no paths

    def __str__(self) -> str:
        if not self.trail:
            return f"the data {self.reason}"
        name, *rest = self.trail
        return f"variable {name!r}{''.join(rest)} {self.reason}"


_SCALARS = (bool, float, type(None))
_MAX_WIRE_INT_BITS = MAX_INT_BITS // 5  # json refuses ints over 4,300 digits; stay well below


def _too_large() -> WireError:
    return WireError(f"makes the data larger than {MAX_DATA_BYTES:,} bytes")


class _Encoder:
    """One walk that checks types, depth and size; `tagged` encodes dates and decimals for JSON.

    Plain scalars are handled inline in the container loops: this walk runs twice per pool call.
    """

    __slots__ = ("size", "tagged")

    def __init__(self, tagged: bool):
        self.size = 0
        self.tagged = tagged

    def encode(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            self.size += len(value) + 2
        elif (kind is int and value.bit_length() <= _MAX_WIRE_INT_BITS) or kind in _SCALARS:
            self.size += 8
        elif kind is list or kind is tuple:
            return self.sequence(value, depth)
        elif kind is dict:
            return self.dict(value, depth)
        else:
            return self.other(value, depth)
        if self.size > MAX_DATA_BYTES:
            raise _too_large()
        return value

    def sequence(self, value: list | tuple, depth: int) -> list:
        if depth >= MAX_DEPTH:
            raise WireError(f"is nested more than {MAX_DEPTH} levels deep")
        size = self.size + 2 + len(value)
        result, index = [], 0
        try:
            for index, item in enumerate(value):  # noqa: B007 - index names the failing item below
                kind = type(item)
                if kind is str:
                    size += len(item) + 3
                    result.append(item)
                elif (kind is int and item.bit_length() <= _MAX_WIRE_INT_BITS) or kind in _SCALARS:
                    size += 9
                    result.append(item)
                else:
                    self.size = size
                    result.append(self.encode(item, depth + 1))
                    size = self.size
                if size > MAX_DATA_BYTES:
                    raise _too_large()
        except WireError as exc:
            exc.trail.insert(0, f"[{index}]")
            raise
        self.size = size
        return result

    def dict(self, value: dict, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            raise WireError(f"is nested more than {MAX_DEPTH} levels deep")
        size = self.size + 2 + len(value)
        result, key = {}, None
        try:
            for key, item in value.items():
                if type(key) is not str:
                    if not isinstance(key, str):
                        bad, key = key, None  # the problem is this dict, not one of its items
                        raise WireError(f"has the key {bad!r}; keys of stored dicts must be text")
                    key = str.__str__(key)
                kind = type(item)
                if kind is str:
                    size += len(key) + len(item) + 6
                    result[key] = item
                elif (kind is int and item.bit_length() <= _MAX_WIRE_INT_BITS) or kind in _SCALARS:
                    size += len(key) + 12
                    result[key] = item
                else:
                    self.size = size + len(key) + 4
                    result[key] = self.encode(item, depth + 1)
                    size = self.size
                if size > MAX_DATA_BYTES:
                    raise _too_large()
        except WireError as exc:
            if key is not None:
                exc.trail.insert(0, key if depth == 0 else f"[{key!r}]")
            raise
        self.size = size
        if self.tagged and len(result) == 1 and next(iter(result)) in _TAGS:
            return {"$obj": [[key, item] for key, item in result.items()]}
        return result

    def other(self, value: Any, depth: int) -> Any:
        """Subclasses of plain types (enums), then dates, durations, decimals and UUIDs."""
        if isinstance(value, int) and type(value) is int:
            raise WireError("holds a number too large to store")
        for plain in (str, int, float, list, tuple, dict):
            if isinstance(value, plain):
                return self.encode(plain(value) if plain is not str else str.__str__(value), depth)
        self.size += 40
        for kind, tag, encode in _TAGGED:
            if isinstance(value, kind):
                return {tag: encode(value)} if self.tagged else value
        kind = "a module" if type(value).__name__ == "module" else f"a {type(value).__name__}"
        raise WireError(f"holds {kind}; task data may hold only text, numbers, true/false, None, "
                        "lists, dicts, dates, durations and decimals")


# datetime before date: a datetime is a date too.
_TAGGED = (
    (datetime, "$dt", datetime.isoformat),
    (date, "$date", date.isoformat),
    (timedelta, "$td", lambda value: [value.days, value.seconds, value.microseconds]),
    (Decimal, "$dec", str),
    (UUID, "$uuid", str),
)


def to_wire(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as plain JSON types (tags for dates and decimals); raises WireError naming the bad variable."""
    if not isinstance(data, dict):
        raise WireError(f"must be a dict, not {type(data).__name__}")
    return _Encoder(tagged=True).dict(data, 0)


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        tag, value = next(iter(obj.items()))
        decode = _TAGS.get(tag)
        if decode is not None:
            return decode(value)
    return obj


def from_wire(value: Any) -> Any:
    """Undo `to_wire` on an already-parsed structure (fresh objects, so callers get a deep copy)."""
    if isinstance(value, list):
        return [from_wire(item) for item in value]
    if isinstance(value, dict):
        return _decode_object({key: from_wire(item) for key, item in value.items()})
    return value


def dumps(data: dict[str, Any]) -> str:
    """`data` as wire JSON text; raises WireError."""
    return json.dumps(to_wire(data), separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """Wire JSON text back to task data."""
    return json.loads(text, object_hook=_decode_object)


def copy_data(data: dict[str, Any]) -> dict[str, Any]:
    """A checked deep copy of task data, as a worker would see it (tuples become lists); raises WireError."""
    if not isinstance(data, dict):
        raise WireError(f"must be a dict, not {type(data).__name__}")
    return _Encoder(tagged=False).dict(data, 0)
