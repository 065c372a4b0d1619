"""The SpiffWorkflow script-engine environment backed by the sandbox.

It must be the environment, not a PythonScriptEngine subclass: completion conditions, conditional start
paths and message correlations call `engine.environment.evaluate` directly. It keeps no per-call state, so
one engine serves every thread.
"""

from collections import ChainMap
from collections.abc import Callable
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from engine.sandbox import limits
from engine.sandbox.errors import CodeFailed
from engine.sandbox.expressions import evaluate
from engine.sandbox.scripts import ScriptPool
from engine.sandbox.scripts import run_inline


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Expressions through the AST allowlist in process; scripts through the pool (or inline if None)."""

    def __init__(self, pool: ScriptPool | None, clock: Callable[[], datetime] | None = None):
        super().__init__({})
        self.pool = pool
        self.clock = clock

    def evaluate(self, expression: str, context: dict[str, Any], external_context: dict | None = None) -> Any:
        """The value of `expression` over task data; `context` wins over `external_context`."""
        data = ChainMap(context, external_context) if external_context else context
        try:
            return evaluate(expression, data, self.clock)
        except limits.LimitExceeded as exc:  # evaluate converts these; this keeps the boundary promise
            raise limits.to_code_failed(exc) from None

    def execute(self, script: str, context: dict[str, Any], external_context: dict | None = None) -> bool:
        """Run `script` and apply its result to `context` in place, deletions included."""
        external = external_context or {}
        data = {**external, **context}
        now = self.clock() if self.clock else None
        try:
            result = self.pool.run(script, data, now=now) if self.pool else run_inline(script, data, now=now)
        except limits.LimitExceeded as exc:
            raise limits.to_code_failed(exc) from None
        # Like SpiffWorkflow's TaskDataEnvironment: external names do not become task data.
        result = {key: value for key, value in result.items() if key in context or key not in external}
        for key in [key for key in context if key not in result]:
            del context[key]
        context.update(result)
        return True

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> Any:
        """Service tasks never run here; handlers run them."""
        raise CodeFailed("Service tasks are run by handlers, not the script engine; register a handler for "
                         f"operator {kwargs.get('operation_name')!r}.")


def make_script_engine(pool: ScriptPool | None,
                       clock: Callable[[], datetime] | None = None) -> PythonScriptEngine:
    """A PythonScriptEngine whose environment is the sandbox; reattach it after every deserialization."""
    return PythonScriptEngine(environment=SandboxEnvironment(pool, clock))
