"""Errors of the sandbox: code refused before it runs, and code that failed while running."""

from typing import Any

from engine.errors import DealflowError
from engine.errors import ScriptFailed


class CodeRejected(DealflowError):
    """Designer code failed a static check (deploy time, or the first run of unchecked code)."""

    code = "code_rejected"
    http_status = 422

    def __init__(self, message: str, line: int | None = None, col: int | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message, {"line": line, "col": col, **(details or {})})
        self.line = line
        self.col = col


class CodeFailed(ScriptFailed):
    """Designer code raised or broke a limit at run time; an Exception, so the task goes to ERROR."""

    def __init__(self, message: str, line: int | None = None, details: dict[str, Any] | None = None):
        super().__init__(message, {"line": line, **(details or {})})
        self.line = line


class CodeTimeout(CodeFailed):
    """Designer code ran past its time or step budget and was stopped."""

    code = "script_timeout"


class CodeMemoryExceeded(CodeFailed):
    """Designer code tried to build a value larger than the sandbox allows."""

    code = "script_memory_exceeded"
