"""Expressions: the AST allowlist, helpers, and a hostile corpus that must never run."""

import json
import os
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import pytest

from engine.sandbox import HELPERS
from engine.sandbox import CodeFailed
from engine.sandbox import CodeMemoryExceeded
from engine.sandbox import CodeRejected
from engine.sandbox import check_expression
from engine.sandbox import evaluate
from engine.sandbox import normalize

DATA = {"amount": 20000, "approved": True, "name": " Acme ", "items": [1, 2, 3], "cfg": {"tier": "gold"},
        "due": "2026-03-31", "date": "a data field that shadows nothing"}
SECRET = "root:x:0:0"

MOMENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def fixed_clock():
    """The engine clock stood still; the sandbox must read time only through it."""
    return lambda: MOMENT



@pytest.mark.parametrize(("text", "expected"), [
    ("${amount > 10000}", True),
    ("${approved}", True),
    ("approved == true", True),
    ("approved == false or null is None", True),
    ("'true' == 'True'", False),  # text inside strings is left alone by normalize
    ("amount > 10000 and approved", True),
    ("len(items) > 2 and items[0] == 1", True),
    ("cfg.get('tier') == 'gold' and 'tier' in cfg", True),
    ("name.strip().lower()", "acme"),
    ("upper(strip(name))", "ACME"),
    ("f'{amount:,.2f}'", "20,000.00"),
    ("items[1:]", [2, 3]),
    ("'big' if amount > 100 else 'small'", "big"),
    ("concat('Deal ', amount)", "Deal 20000"),
    ("contains(items, 2)", True),
    ("round(decimal('2.345'), 2)", Decimal("2.35")),
    ("sum(items) + max(items) - min(1, 5)", 8),
    ("int('42') + float('0.5')", 42.5),
    ("duration('P3D')", timedelta(days=3)),
    ("duration('PT4H30M') == hours(4) + minutes(30)", True),
    ("iso_duration(days(1) + hours(2))", "P1DT2H"),
    ("days_between(due, '2026-04-02')", 2),
    ("add_days(date(2026, 1, 31), 1)", date(2026, 2, 1)),
    ("parse_datetime('2026-03-31T10:00:00Z').hour", 10),
    ("date", "a data field that shadows nothing"),  # a variable named like a helper is still the variable
    ("f'{parse_date(due):%d.%m.%Y}'", "31.03.2026"),  # date formatting imports 'time' from C code
    ("round(1.5, ndigits=0)", 2.0),
])
def test_expressions_evaluate(text, expected):
    assert evaluate(text, DATA) == expected


def test_clock_helpers_use_the_given_clock(fixed_clock):
    # Due dates must follow the engine clock, not the wall clock, or timer tests drift.
    assert evaluate("now()", {}, fixed_clock) == MOMENT
    assert evaluate("today()", {}, fixed_clock) == date(2026, 3, 2)
    assert evaluate("add_hours(now(), 3)", {}, fixed_clock) == MOMENT + timedelta(hours=3)
    assert evaluate("add_days(today(), 3)", {}, fixed_clock) == date(2026, 3, 5)


def test_now_without_clock_is_aware_utc():
    assert evaluate("now()", {}).tzinfo is UTC


def test_normalize():
    assert normalize("  ${amount > 10000}  ") == "amount > 10000"
    assert normalize("x == true and y != null") == "x == True and y != None"
    assert normalize("x == 'true'") == "x == 'true'"
    assert normalize("${a} and ${b}") == "${a} and ${b}"  # not one wrapper: left for the parser to refuse


def test_bean_expressions_are_refused_with_a_hint():
    with pytest.raises(CodeRejected, match=r"bean expressions #\{\.\.\.\} are Java/JUEL"):
        check_expression("#{approvalService.check(execution)}")


def test_unknown_variable_message():
    with pytest.raises(CodeFailed, match=r"Unknown variable 'missing' in expression 'missing > 1'\. Set it"):
        evaluate("missing > 1", DATA)


def test_key_error_on_data_is_not_reported_as_a_variable():
    with pytest.raises(CodeFailed, match="KeyError"):
        evaluate("cfg['nope']", DATA)


def test_runtime_error_is_code_failed():
    with pytest.raises(CodeFailed, match="ZeroDivisionError"):
        evaluate("amount / 0", DATA)


def test_rejections_carry_line_and_sentence():
    with pytest.raises(CodeRejected) as info:
        check_expression("amount >\n  foo(1)")
    assert info.value.line == 2
    assert info.value.message.startswith("Line 2: 'foo' is not a function")
    assert info.value.http_status == 422 and info.value.code == "code_rejected"


def test_juel_operators_get_a_hint():
    with pytest.raises(CodeRejected, match="use 'and', 'or' and 'not'"):
        check_expression("a && b")


def test_data_is_never_changed():
    # Conditions run many times; one that mutates data would make routing depend on evaluation order.
    data = {"items": [1], "cfg": {"a": 1}}
    for text in ("items.append(99) or True", "cfg.clear() or True", "cfg.update({'a': 2})", "items.pop()"):
        with pytest.raises(CodeRejected):
            check_expression(text)
    assert data == {"items": [1], "cfg": {"a": 1}}


def test_every_helper_has_a_docstring():
    assert all(function.__doc__ for function in HELPERS.values())
    assert {"now", "today", "duration", "decimal", "round", "concat", "contains"} <= set(HELPERS)


def test_helpers_are_functions_not_modules():
    assert all(callable(function) and not isinstance(function, type(os)) for function in HELPERS.values())


# One or more payloads per row of the notes' attack table. Each must be refused statically or fail at run
# time, and none may create the marker file or return /etc/passwd.
HOSTILE = [
    # imports
    "__import__('os').system('touch {marker}')",
    "import os",
    # dunder chains
    "().__class__.__bases__[0].__subclasses__()",
    "[].__class__.__mro__[-1].__subclasses__()",
    "len.__globals__",
    "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings'][0]()",
    # frames without dunders
    "(x for x in []).gi_frame.f_globals",
    "[g := (x for x in [1]), g.gi_frame.f_back]",
    "items.tb_frame",
    # builtins pivot
    "getattr(getattr, '__self__')",
    "len.__self__",
    "abs.__self__.open('/etc/passwd').read()",
    # format strings
    "'{0.__class__}'.format(1)",
    "'{a.__class__}'.format_map(cfg)",
    "str.format('{0.__class__}', 1)",
    "f'{1:{name}}'",
    # class reach and creation
    "str.mro()",
    "type('x', (), {})",
    # builtins, namespaces, I/O, code
    "__builtins__",
    "vars()", "globals()", "locals()", "dir()", "breakpoint()", "help()", "input()", "exit()",
    "open('/etc/passwd').read()",
    "eval('1')", "exec('x = 1')", "compile('1', 'x', 'eval')",
    "lambda: 1",
    # module or function placed in the data
    "json.codecs.sys.modules['os'].system('touch {marker}')",
    "json.loads('1')",
    "json.get('x')",
    "json['codecs']",
    "system('touch {marker}')",
    "funcs[0]('touch {marker}')",
    # operator memory
    "'a' * 10**10",
    "[0] * 10**10",
    "name * 600000 + name * 600000",
    # method and format memory
    "'a'.ljust(10**10)",
    "f'{1:>9999999999}'",
    "f'{1:.99999}'",
    "'aa'.replace('a', 'b' * 999999)",
    "'%999999999d' % 1",
    "f'{decimal(\"1e999999999\"):f}'",
    # legal-size operations repeated
    "[('x' * 999999)[:], ('x' * 999999)[:], ('x' * 999999)[:], ('x' * 999999)[:], ('x' * 999999)[:]]",
    "f'{s}{s}{s}{s}{s}'",
    "str(['x' * 999] * 999 + ['y' * 999] * 999)",
    # C-level CPU
    "9**9**9",
    "4000000**4000000",
    "1 << 10**10",
    "10**19000 * 10**19000",
    # loops
    "[x for x in range(10**12)]",
    "{x: x for x in items}",
    # parser bombs
    "+".join(["1"] * 100_000),
    "-" * 9_000 + "1",
    "(" * 1000 + "1" + ")" * 1000,
    "not " * 2400 + "approved",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_expression_is_blocked(payload, tmp_path):
    marker = tmp_path / "pwned"
    text = payload.replace("{marker}", str(marker))
    data = {**DATA, "json": json, "system": os.system, "funcs": [os.system], "s": "x" * 999_999}
    outcome = None
    try:
        check_expression(text)
        outcome = evaluate(text, data)
    except CodeRejected:
        pass
    except CodeFailed as exc:
        assert SECRET not in exc.message
    else:
        pytest.fail(f"{payload[:60]!r} ran and returned {str(outcome)[:80]!r}")
    assert not marker.exists()


def test_memory_bombs_are_memory_errors():
    with pytest.raises(CodeMemoryExceeded):
        evaluate("'a' * 10**10", {})


def test_source_length_is_capped():
    with pytest.raises(CodeRejected, match="more than the 10,000 allowed"):
        check_expression("1" + " + 1" * 3000)


def test_cached_evaluation_is_repeatable():
    # The compiled lambda is shared between calls and threads; it must hold no state of its own.
    assert [evaluate("amount > limit", {"amount": a, "limit": 5}) for a in (1, 9, 1)] == [False, True, False]


def test_datetime_helper_is_utc():
    assert evaluate("datetime(2026, 1, 2, 3)", {}) == datetime(2026, 1, 2, 3, tzinfo=UTC)
