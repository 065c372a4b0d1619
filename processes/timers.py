"""Timer definitions as designers write them, turned into the Python expressions SpiffWorkflow evaluates.

A bare ISO 8601 literal (PT1H, P3D, R3/PT10M, 2026-05-01T10:00:00Z) is quoted; `${expr}` is unwrapped;
anything else is taken as a Python expression (f"P{days}D"). Quartz cron is refused: it is not ISO 8601.
"""

import json
import re
from datetime import datetime

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from processes.dialect import unwrap

TIMER_KINDS = ("timeDate", "timeDuration", "timeCycle")
_LITERAL = re.compile(r"^[RrPp0-9][0-9A-Za-z:.,+\-/]*$")
_CRON_FIELD = re.compile(r"^([0-9*?/,\-LW#]+|[A-Z]{3}(-[A-Z]{3})?)$")
_QUOTED = re.compile(r"""^(["'])[^"'\\]*\1$""")
_EXAMPLES = {
    "timeDate": "a date and time with a zone such as 2026-05-01T10:00:00Z, or an expression such as ${due_date}",
    "timeDuration": "a duration such as PT1H or P3D, or an expression such as f\"P{days}D\"",
    "timeCycle": "a repeating interval such as R3/PT10M (3 times, every 10 minutes) or R/P1D (daily)",
}


class TimerTextInvalid(ValueError):
    """The timer text cannot become an expression; the message says why and what to write instead."""


def timer_expression(kind: str, text: str | None) -> str:
    """The Python expression for a timeDate/timeDuration/timeCycle text.

    :raises TimerTextInvalid: empty text, Quartz cron, or an ISO 8601 literal that does not parse.
    """
    if text is None or not text.strip():
        raise TimerTextInvalid(f"has an empty {kind}; write {_EXAMPLES[kind]}.")
    stripped = text.strip()
    inner = unwrap(stripped)
    if inner is not None:
        return inner
    if is_quartz_cron(stripped):
        raise TimerTextInvalid(
            f"uses the Quartz cron expression {stripped!r}, which Dealflow does not support; "
            f"timers take ISO 8601: write {_EXAMPLES['timeCycle']}."
        )
    if _QUOTED.match(stripped):
        check_literal(kind, stripped[1:-1])
        return stripped
    if _LITERAL.match(stripped) and any(ch.isdigit() for ch in stripped):
        check_literal(kind, stripped)
        return json.dumps(stripped)
    return stripped


def is_quartz_cron(text: str) -> bool:
    """True for Quartz/Unix cron text such as '0/5 0/1 * 1/1 * ?' (5 to 7 fields, some * or ?)."""
    fields = text.split()
    if not 5 <= len(fields) <= 7:
        return False
    return all(_CRON_FIELD.match(f) for f in fields) and any(("*" in f or "?" in f) for f in fields)


def check_literal(kind: str, literal: str) -> None:
    """Parse an ISO 8601 literal the way SpiffWorkflow will at run time, so errors show at deploy.

    :raises TimerTextInvalid: the literal does not parse, or a date has no time zone.
    """
    try:
        _parse(kind, literal)
    except TimerTextInvalid:
        raise
    except Exception:
        raise TimerTextInvalid(
            f"has the {kind} {literal!r}, which is not valid ISO 8601; write {_EXAMPLES[kind]}. "
            f"If {literal!r} is a variable, write ${{{literal}}}."
        ) from None


def _parse(kind: str, literal: str) -> None:
    if kind == "timeDuration":
        if not literal.upper().startswith("P"):
            raise ValueError("not a duration")
        TimerEventDefinition.parse_iso_duration(literal)
    elif kind == "timeCycle":
        if not literal.upper().startswith("R"):
            raise ValueError("not a repeating interval")
        TimerEventDefinition.parse_iso_recurring_interval(literal)
    else:
        when = datetime.fromisoformat(literal)
        if when.tzinfo is None:
            full = literal if "T" in literal.upper() else f"{literal}T00:00:00"
            raise TimerTextInvalid(
                f"has the timeDate {literal!r} without a time zone, which would be read in the server's "
                f"local time; add one, as in {full}Z (UTC) or {full}+01:00."
            )
