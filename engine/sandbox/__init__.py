"""Safe evaluation of designer code: expressions in process (AST allowlist), scripts in a worker pool.

Public surface (other packages import only these names):
    check_expression(text)  -> None, raises CodeRejected     (static check, used at deploy)
    check_script(text)      -> None, raises CodeRejected     (static check, used at deploy)
    evaluate(text, data, clock=None) -> value, raises CodeFailed
    normalize(text)         -> the Python form of a designer expression (${...} unwrapped, true/false/null)
    ScriptPool(...)         .run(script, data, now=None) -> dict; .start(); .close()
    run_inline(script, data, now=None) -> dict  (in process: tests and ScriptPool(workers=0))
    SandboxEnvironment(pool, clock)  the SpiffWorkflow environment; make_script_engine(pool, clock)
    HELPERS                 the functions designer code may call, name -> function (docstring = docs)
"""

from typing import Any

from engine.sandbox.errors import CodeFailed
from engine.sandbox.errors import CodeMemoryExceeded
from engine.sandbox.errors import CodeRejected
from engine.sandbox.errors import CodeTimeout
from engine.sandbox.expressions import check_expression
from engine.sandbox.expressions import evaluate
from engine.sandbox.expressions import normalize
from engine.sandbox.helpers import HELPERS
from engine.sandbox.scripts import ScriptPool
from engine.sandbox.scripts import check_script
from engine.sandbox.scripts import run_inline


def __getattr__(name: str) -> Any:
    """SandboxEnvironment and make_script_engine, imported on first use.

    The environment pulls in SpiffWorkflow (~100 ms); every script worker imports this package at start and
    never needs it, and a worker replacing a killed one should be serving in milliseconds.
    """
    if name in ("SandboxEnvironment", "make_script_engine"):
        from engine.sandbox import environment

        return getattr(environment, name)
    raise AttributeError(f"module 'engine.sandbox' has no attribute {name!r}")


__all__ = [
    "HELPERS",
    "CodeFailed",
    "CodeMemoryExceeded",
    "CodeRejected",
    "CodeTimeout",
    "SandboxEnvironment",
    "ScriptPool",
    "check_expression",
    "check_script",
    "evaluate",
    "make_script_engine",
    "normalize",
    "run_inline",
]
