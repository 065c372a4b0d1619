"""Script tasks: RP+ checks, in-process runs, the worker pool, and a hostile corpus that must never run."""

import json
import os
import threading
import time
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import pytest

from engine.sandbox import CodeFailed
from engine.sandbox import CodeMemoryExceeded
from engine.sandbox import CodeRejected
from engine.sandbox import CodeTimeout
from engine.sandbox import ScriptPool
from engine.sandbox import check_script
from engine.sandbox import run_inline

SECRET = "root:x:0:0"
# Seconds of C-level work with no tick at all: map applies sorted 40 times (~0.4 s each) without a Python frame, so
# nothing passes through the step counter and only the pool's kill stops it. (A comprehension ticks between items,
# and on a slow moment the worker's own wall-clock check after the first one answered before the kill.)
C_LEVEL_HANG = "n = list(map(len, map(sorted, map(map, [str] * 40, [range(1000000)] * 40))))"


@pytest.fixture(scope="module")
def pool():
    with ScriptPool(workers=2, wall_seconds=1.0) as shared:
        yield shared


def test_loop_sets_variables(pool):
    script = ("total = 0\nnames = []\nfor deal in deals:\n"
              "    total += deal['amount']\n    names.append(deal['name'])\n")
    deals = [{"name": "a", "amount": 5}, {"name": "b", "amount": 7}]
    expected = {"deals": deals, "total": 12, "names": ["a", "b"], "deal": deals[1]}
    assert pool.run(script, {"deals": deals}) == expected


def test_deletions_and_untouched_private_keys(pool):
    # '_meta' cannot be named by a script, so it must come back unchanged rather than vanish.
    result = pool.run("del scratch\nkept = 1", {"scratch": 1, "_meta": {"v": 1}})
    assert result == {"kept": 1, "_meta": {"v": 1}}


def test_typed_values_round_trip(pool):
    data = {"when": datetime(2026, 3, 2, 9, tzinfo=UTC), "day": date(2026, 3, 2), "wait": timedelta(hours=4),
            "price": Decimal("19.99"), "nested": {"$dt": "not a tag"}}
    script = "later = add_days(when, 1)\ntotal = price * 2\nwait2 = wait + duration('PT1H')\n"
    result = pool.run(script, data)
    assert result == {**data, "later": datetime(2026, 3, 3, 9, tzinfo=UTC), "total": Decimal("39.98"),
                      "wait2": timedelta(hours=5)}


def test_now_is_the_given_instant(pool):
    moment = datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert pool.run("a = now()\nb = today()", {}, now=moment) == {"a": moment, "b": date(2026, 3, 2)}


def test_helpers_and_functions_do_not_leak_into_data(pool):
    assert pool.run("def double(x):\n    return x * 2\nf = upper\ny = double(4)", {}) == {"y": 8}


def test_dates_format_inside_the_sandbox(pool):
    # strftime imports 'time' from C code; the sandbox must let exactly that through.
    script = "label = f'{when:%d.%m.%Y}'\nyear = when.strftime('%Y')"
    assert pool.run(script, {"when": date(2026, 3, 31)}) == {"when": date(2026, 3, 31), "label": "31.03.2026",
                                                            "year": "2026"}


def test_isinstance_with_helper_types(pool):
    script = "ok = isinstance(name, str) and isinstance(items, list) and not isinstance(items, (dict, int))"
    assert pool.run(script, {"name": "a", "items": []})["ok"] is True


def test_error_reports_the_script_line(pool):
    with pytest.raises(CodeFailed) as info:
        pool.run("a = 1\nb = {}\nc = b['missing']", {})
    assert info.value.line == 3
    assert "line 3" in info.value.message and "KeyError" in info.value.message


def test_check_script_reports_line():
    with pytest.raises(CodeRejected) as info:
        check_script("x = 1\nimport os")
    assert info.value.line == 2
    assert info.value.message == ("Line 2: 'import' is not allowed in scripts; use the helpers listed in the "
                                  "docs instead.")


def test_common_data_names_are_fine():
    # 'type', 'id' and 'input' are everyday field names; only calling the builtin is refused.
    check_script("type = 'premium'\nid = deal_id\ninput = type + str(id)")
    assert run_inline("label = type + '-' + str(id)", {"type": "gold", "id": 7})["label"] == "gold-7"


def test_result_must_be_json_like(pool):
    with pytest.raises(CodeFailed, match="variable 's' holds a set"):
        pool.run("s = {1, 2}", {})
    with pytest.raises(CodeFailed, match="nested more than 50 levels"):
        pool.run("x = []\nfor i in range(60):\n    x = [x]", {})
    with pytest.raises(CodeFailed, match="larger than 1,000,000 bytes"):
        pool.run("x = []\nfor i in range(3):\n    x.append('y' * 900000)", {})


def test_concurrent_callers_get_their_own_results(pool):
    errors = []

    def call(worker_id):
        try:
            for i in range(20):
                data = {"vals": list(range(i)), "me": worker_id}
                result = pool.run("out = [v * 2 for v in vals]\nwho = me", data)
                assert result["out"] == [v * 2 for v in range(i)] and result["who"] == worker_id
        except Exception as exc:  # noqa: BLE001 - collected and asserted below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_wall_clock_kill_then_pool_still_serves():
    # The C-level hang never reaches a tick, so only SIGKILL stops it; the replacement must serve right away.
    with ScriptPool(workers=1, wall_seconds=0.3, cpu_seconds=30) as small:
        started = time.monotonic()
        with pytest.raises(CodeTimeout, match=r"ran longer than 0.3 s and was stopped"):
            small.run(C_LEVEL_HANG, {})
        assert time.monotonic() - started < 10
        assert small.run("x = 1 + 1", {}) == {"x": 2}


def test_cpu_limit_kills_the_worker():
    with ScriptPool(workers=1, wall_seconds=20, cpu_seconds=1) as small:
        with pytest.raises(CodeTimeout, match="CPU"):
            small.run(C_LEVEL_HANG, {})
        assert small.run("x = 2", {}) == {"x": 2}


def test_run_from_a_non_main_thread():
    outcome = {}

    def call():
        with ScriptPool(workers=1) as own:
            outcome["result"] = own.run("x = 5", {})

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert outcome == {"result": {"x": 5}}


def test_workers_zero_runs_inline():
    with ScriptPool(workers=0) as inline:
        assert inline.run("x = 3", {}) == {"x": 3}


def test_closed_pool_refuses():
    closed = ScriptPool(workers=1)
    closed.close()
    with pytest.raises(RuntimeError):
        closed.run("x = 1", {})


HOSTILE = [
    # imports
    "import os\nos.system('touch {marker}')",
    "from os import system\nsystem('touch {marker}')",
    "x = __import__('os').system('touch {marker}')",
    # dunder chains
    "x = ().__class__.__bases__[0].__subclasses__()",
    "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings'][0]()\n"
    "w._module.__builtins__['__import__']('os').system('touch {marker}')",
    "def f():\n    pass\ng = f.__globals__",
    # frames without dunders
    "g = (x for x in [1])\nfr = g.gi_frame.f_back.f_globals",
    "try:\n    1 / 0\nexcept Exception as e:\n    fr = e.__traceback__.tb_frame",
    "fr = (g := (x for x in [1])).gi_frame",
    "g = (x for x in [1])\nc = g.gi_code",
    # builtins pivot
    "x = getattr(getattr, '__self__')",
    "x = len.__self__.open('/etc/passwd').read()",
    # format strings
    "s = '{0.__class__.__mro__}'.format(1)",
    "s = str.format('{0.__class__}', 1)",
    "s = '{a}'.format_map({'a': 1})",
    "f = 'x'.format",
    "n = 5\ns = f'{1:>{n}}'",
    "s = f'{1:>9999999999}'",
    "s = '%9999999999d' % 1",
    "t = '%9999999999d'\ns = t % 1",
    # class reach and creation
    "class X:\n    pass",
    "t = type('x', (), {})",
    "m = str.mro()",
    # builtins, namespaces, I/O, code, exception groups
    "b = __builtins__",
    "v = vars()", "g = globals()", "l = locals()", "d = dir()", "breakpoint()", "help()", "x = input()",
    "exit()", "print(1)",
    "x = open('/etc/passwd').read()",
    "eval('1')", "exec('x = 1')", "c = compile('1', 'x', 'eval')",
    "try:\n    pass\nexcept* Exception:\n    pass",
    "def f():\n    yield 1",
    "f = lambda: 1",
    "global x",
    # a module or function placed in the data
    "x = json.codecs.sys.modules['os'].system('touch {marker}')",
    "system('touch {marker}')",
    # operator memory
    "s = 'a' * 10**10",
    "l = [0] * 10**10",
    # method and format memory
    "s = 'a'.ljust(10**10)",
    "s = 'ab'.center(10**10)",
    "s = ','.join(['x' * 1000] * 2000)",
    "s = ('a' * 1000).replace('a', 'b' * 100000)",
    "s = ('a' * 1000).translate({97: 'b' * 100000})",
    "d = decimal('1e999999999')\ns = f'{d:f}'",
    # legal-size operations repeated
    "x = 'ab'\nwhile True:\n    x = x + x",
    "x = [1]\nwhile True:\n    x.extend(x)",
    "x = [1]\nwhile True:\n    x += x",
    # C-level CPU
    "n = 9**9**9",
    "n = 4000000**4000000",
    "n = pow(3, 10**5000, 10**5000 + 1)",
    "n = sum(range(10**12))",
    "n = sorted(range(10**9))",
    # bytecode CPU
    "while True: pass",
    "while True:\n    try:\n        pass\n    except Exception:\n        pass",
    "while True:\n    try:\n        while True:\n            pass\n"
    "    finally:\n        while True:\n            pass",
    "def f(n):\n    return 1 if n < 2 else f(n - 1) + f(n - 1)\nx = f(40)",
    "x = [[0 for a in range(1000000)] for b in range(1000000)]",
    "x = [a for a in range(1000000) for b in range(1000000)]",
    # recursion and parser bombs
    "def f(n):\n    return f(n + 1)\nf(0)",
    "x = " + "+".join(["1"] * 100_000),
    "x = " + "-" * 40_000 + "1",
    "x = " + "(" * 1000 + "1" + ")" * 1000,
    "x = " + "[" * 5000 + "]" * 5000,
]


def _blocked(run, payload, tmp_path):
    marker = tmp_path / "pwned"
    script = payload.replace("{marker}", str(marker))
    # Only the module-pivot payloads get a module in their data; for the rest, refusing the data would hide
    # whether the script itself was stopped.
    pivots = "json" in payload or "system(" in payload
    data = {"n": 1, "json": json, "system": os.system} if pivots else {"n": 1}
    try:
        check_script(script)
        result = run(script, data)
    except CodeRejected:
        pass
    except CodeFailed as exc:
        assert SECRET not in exc.message
    else:
        pytest.fail(f"{payload[:60]!r} ran and returned {str(result)[:80]!r}")
    assert not marker.exists()


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_script_is_blocked_in_the_pool(pool, payload, tmp_path):
    _blocked(pool.run, payload, tmp_path)


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_script_is_blocked_inline(payload, tmp_path):
    _blocked(run_inline, payload, tmp_path)


def test_module_in_data_is_refused_before_the_script_runs(pool):
    with pytest.raises(CodeFailed, match="variable 'json' holds a module"):
        pool.run("x = 1", {"json": json})
    with pytest.raises(CodeFailed, match="variable 'system' holds a builtin_function_or_method"):
        run_inline("x = 1", {"system": os.system})


def test_getattr_guard_refuses_modules():
    # Defence in depth behind the data check: even a module that got into the namespace yields nothing.
    from engine.sandbox.script_runtime import execute

    with pytest.raises(CodeFailed, match="modules cannot be used in scripts"):
        execute("x = json.codecs.sys.modules['os']", {"json": json})
    with pytest.raises(CodeFailed, match="modules cannot be used in scripts"):
        execute("x = json.loads('1')", {"json": json})


def test_memory_bombs_in_the_worker_hit_its_limit():
    # Each append is legal; only the worker's RLIMIT_AS stops the total (inline it would sink the server).
    # A long wall clock keeps a slow machine from turning this into a timeout instead.
    with ScriptPool(workers=1, memory_mb=256, wall_seconds=20) as small:
        with pytest.raises(CodeMemoryExceeded):
            small.run("l = []\nfor i in range(100000):\n    l.append('x' * 100000)", {})
        assert small.run("x = 1", {}) == {"x": 1}


def test_budget_is_sticky_against_catching(pool):
    # A script that catches the first stop and loops again must still be stopped, quickly.
    script = ("n = 0\nwhile True:\n    try:\n        while True:\n            n += 1\n"
              "    except Exception:\n        pass")
    started = time.monotonic()
    with pytest.raises(CodeTimeout):
        pool.run(script, {})
    assert time.monotonic() - started < 10
