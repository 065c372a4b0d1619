"""The one error hierarchy of Dealflow. The web layer maps `http_status` and `code` to JSON."""

from typing import Any


class DealflowError(Exception):
    """Base of every error Dealflow raises on purpose; the message is a sentence for a human."""

    code = "error"
    http_status = 400
    # Seconds a client should wait before sending the same request again (a Retry-After header), if it may.
    retry_after: int | None = None

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


class InvalidInput(DealflowError):
    code = "invalid_input"
    http_status = 400


class Unauthorized(DealflowError):
    """No valid credentials (the API: no or an expired bearer token)."""

    code = "unauthorized"
    http_status = 401


class NotFound(DealflowError):
    code = "not_found"
    http_status = 404


class Forbidden(DealflowError):
    code = "forbidden"
    http_status = 403


class Conflict(DealflowError):
    """Somebody else changed the same instance or task first; nothing of this command was applied."""

    code = "conflict"
    http_status = 409


class Busy(DealflowError):
    """The database kept this command from running now (a lock held too long, lost races); nothing was applied."""

    code = "busy"
    http_status = 503
    retry_after = 2


class DefinitionInvalid(DealflowError):
    """A deployment was refused; `details['problems']` lists every problem found."""

    code = "definition_invalid"
    http_status = 422


class FormInvalid(DealflowError):
    """Submitted task data does not fit the task's form; `details['fields']` maps field -> problem."""

    code = "form_invalid"
    http_status = 422


class Unprocessable(DealflowError):
    """A well-formed request that names something that cannot be used (e.g. an unknown user to assign to)."""

    code = "unprocessable"
    http_status = 422


class IdempotencyKeyReused(DealflowError):
    """The same Idempotency-Key came with a different request."""

    code = "idempotency_key_reused"
    http_status = 422


class PayloadTooLarge(DealflowError):
    code = "payload_too_large"
    http_status = 413


class ScriptFailed(DealflowError):
    """Designer code (an expression or a script task) failed at run time."""

    code = "script_failed"
    http_status = 422


class HandlerFailed(DealflowError):
    code = "handler_failed"
    http_status = 502
