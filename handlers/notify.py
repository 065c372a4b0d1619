"""The `notify.send` handler: an in-app notification to a user or a group (the inbox's bell).

Parameters: `user` or `group` (exactly one), `message` (text). The notification is stored through
`request.services.notify` under the request's idempotency key, so a call repeated after a crash posts it once.
"""

from collections.abc import Mapping
from typing import Any

from engine.handlers import HandlerError
from engine.handlers import HandlerRequest

MAX_MESSAGE = 2000


class NotifyHandler:
    def __init__(self, config: Mapping[str, Any] | None = None):
        self._config = config or {}

    def __call__(self, request: HandlerRequest) -> dict[str, Any]:
        where = f"Service task {request.element_id!r} (notify.send)"
        user, group = _name(request, "user"), _name(request, "group")
        if (user is None) == (group is None):
            raise HandlerError(f"{where}: set exactly one of the parameters 'user' and 'group'.", retryable=False)
        message = request.parameters.get("message")
        if not isinstance(message, str) or not message.strip():
            raise HandlerError(f"{where}: the parameter 'message' must be a non-empty text.", retryable=False)
        if len(message) > MAX_MESSAGE:
            raise HandlerError(f"{where}: the message has {len(message)} characters; at most {MAX_MESSAGE} fit.",
                               retryable=False)
        if request.services is None:
            raise HandlerError(f"{where}: notifications cannot be posted here (no services).", retryable=False)
        notification_id = request.services.notify(
            key=request.idempotency_key, message=message.strip(), user=user, group=group,
            instance_id=request.instance_id, business_key=request.business_key)
        return {"notification": {"id": notification_id, "user": user, "group": group}}


def _name(request: HandlerRequest, parameter: str) -> str | None:
    value = request.parameters.get(parameter)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise HandlerError(f"Service task {request.element_id!r} (notify.send): the parameter {parameter!r} must be "
                           f"a name, not {type(value).__name__}.", retryable=False)
    return value.strip()
