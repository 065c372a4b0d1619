"""camunda:inputOutput parameters, evaluated over the process data with the sandboxed expression evaluator.

Camunda's rules: plain text is a literal string, `${...}` is an expression, text mixing both is a template whose
expressions are rendered as text, `camunda:map` / `camunda:list` build dicts and lists, an empty parameter is null.
The shape comes from processes/extensions.py: {"kind": text|expression|template|map|list, "value": ...}.
"""

import re
from collections.abc import Callable
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.sandbox import evaluate

_PLACEHOLDER = re.compile(r"\$\{(.*?)\}", re.DOTALL)


class ParameterError(Exception):
    """A parameter could not be evaluated; the message names it."""


def evaluate_parameter(param: Mapping[str, Any] | None, data: Mapping[str, Any],
                       clock: Callable[[], datetime] | None = None) -> Any:
    if param is None:
        return None
    kind, value = param.get("kind"), param.get("value")
    if kind == "text":
        return value
    if kind == "expression":
        return evaluate(value, data, clock=clock)
    if kind == "template":
        return _PLACEHOLDER.sub(lambda match: _text(evaluate(match.group(1), data, clock=clock)), value)
    if kind == "map":
        return {key: evaluate_parameter(item, data, clock) for key, item in value.items()}
    if kind == "list":
        return [evaluate_parameter(item, data, clock) for item in value]
    raise ParameterError(f"unknown parameter kind {kind!r}")


def evaluate_parameters(params: Mapping[str, Any] | None, data: Mapping[str, Any], what: str,
                        clock: Callable[[], datetime] | None = None) -> dict[str, Any]:
    """Every parameter of `params` over `data`; a failure names the parameter and `what` it belongs to."""
    values = {}
    for name, param in (params or {}).items():
        try:
            values[name] = evaluate_parameter(param, data, clock)
        except Exception as exc:  # noqa: BLE001 - CodeFailed and friends: say which parameter, keep the reason
            reason = getattr(exc, "message", None) or str(exc)
            raise ParameterError(f"Parameter {name!r} of {what} could not be evaluated: {reason}") from exc
    return values


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
