"""ISO 8601 dates, date-times and durations as designers write them in Camunda Modeler."""

import calendar
import re
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta

DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def is_duration(text: str) -> bool:
    match = DURATION.match(text.strip())
    return bool(match) and any(match.groupdict().values())


def add_duration(start: datetime, text: str) -> datetime:
    """`start` plus the ISO duration `text`; years and months move along the calendar."""
    match = DURATION.match(text.strip())
    if not match or not any(match.groupdict().values()):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P3D or PT4H")
    parts = {k: float(v) if k == "seconds" else int(v) for k, v in match.groupdict().items() if v}
    months = parts.pop("years", 0) * 12 + parts.pop("months", 0)
    if months:
        total = start.month - 1 + months
        year, month = start.year + total // 12, total % 12 + 1
        start = start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))
    return start + timedelta(**parts)


def parse_datetime(text: str) -> datetime:
    """An aware UTC datetime from ISO text; a bare date means midnight UTC, naive times are UTC."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_datetime(value, now: datetime) -> datetime:
    """Whatever a due-date expression returned, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, timedelta):
        return now + value
    if isinstance(value, str):
        return add_duration(now, value) if is_duration(value) else parse_datetime(value)
    raise ValueError(f"{value!r} is neither a date, a date-time nor a duration")


def duration_of(text: str) -> timedelta:
    """An ISO duration as a timedelta (years and months counted from 2000-01-01, for configuration values)."""
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return add_duration(start, text) - start
