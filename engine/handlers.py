"""The service-task handler contract: what a handler gets, what it returns, how it fails.

A service task with `camunda:type="external"` and a topic parks in the workflow and leaves a `service` job. The
worker runs the handler registered for the topic outside any transaction, then finishes the task with an engine
command. Delivery is at least once: a crash between "done" and "recorded" runs the handler again with the same
`idempotency_key`, so handlers that talk to the outside world pass it on (a mail's Message-ID, a webhook's
delivery id) or look it up (a stored document).

    def handle(request: HandlerRequest) -> dict | None:
        ...                       # the work
        return {"invoice_id": 7}  # JSON-safe; merged into the task data, or stored under the task's result variable

Handlers are registered by topic (`handlers/__init__.py` for the built-in ones, the `dealflow.handlers`
entry-point group for a company's own) and never touch the database or Flask: what they may change in Dealflow
(documents, notifications) goes through `request.services`.
"""

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from typing import Any
from typing import Protocol


class HandlerError(Exception):
    """The handler could not do the work. `retryable=False` makes it an incident at once (no retries left)."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class BpmnError(Exception):
    """A business failure the diagram handles: caught by an error boundary event with this error code."""

    def __init__(self, code: str, message: str = "", data: Mapping[str, Any] | None = None):
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.data = dict(data or {})


@dataclass(frozen=True)
class StoredDocument:
    """A document as Dealflow stored it: handlers attach, link and mention it by `id`."""

    id: int
    kind: str
    version: int
    number: str | None
    filename: str
    content_type: str
    sha256: str
    size: int


class HandlerServices(Protocol):
    """What a handler may change in Dealflow, each call idempotent under the request's idempotency key."""

    def store_document(self, *, key: str, business_key: str | None, instance_id: int | None, kind: str,
                       filename: str, render: Callable[[str | None], bytes], numbered: bool = False,
                       content_type: str = "application/pdf", template: str | None = None) -> StoredDocument:
        """Store a new version of the deal's document of `kind`; `render(number)` makes its bytes.

        With `numbered`, the document gets the next number of its kind and year (no gaps, no duplicates), which
        `render` receives. A second call with the same `key` returns the first call's document unchanged.
        """

    def get_document(self, document_id: int) -> tuple[StoredDocument, bytes]:
        """A stored document and its bytes; raises HandlerError(retryable=False) if there is none."""

    def notify(self, *, key: str, message: str, user: str | None = None, group: str | None = None,
               instance_id: int | None = None, business_key: str | None = None, kind: str = "handler") -> int:
        """Post an in-app notification to a user or a group (once per `key`); returns its id."""


@dataclass(frozen=True)
class HandlerRequest:
    """One call of a handler. `parameters` are the task's input parameters, evaluated when the task was reached."""

    topic: str
    parameters: Mapping[str, Any]
    instance_id: int
    business_key: str | None
    variables: Mapping[str, Any]  # read-only view of the process data the task saw
    idempotency_key: str  # the same on every attempt of this task's call; unique across tasks
    element_id: str
    attempt: int  # 1 on the first try
    services: HandlerServices | None = field(default=None, compare=False, repr=False)


Handler = Callable[[HandlerRequest], Mapping[str, Any] | None]


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing call is tried, and how long to wait before each retry (base x 2^(n-1), capped)."""

    attempts: int = 3
    backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=1)

    def delay(self, failed_attempts: int) -> timedelta:
        """The wait before the next try after `failed_attempts` failures (1, 2, ...)."""
        return min(self.backoff * (2 ** max(failed_attempts - 1, 0)), self.max_backoff)


@dataclass(frozen=True)
class Registered:
    handler: Handler
    retry: RetryPolicy = RetryPolicy()


class HandlerRegistry:
    """Topic -> handler, with its retry policy. Built by the app from handlers/ and the entry points."""

    def __init__(self, handlers: Mapping[str, Registered] | None = None):
        self._handlers: dict[str, Registered] = dict(handlers or {})

    def register(self, topic: str, handler: Handler, retry: RetryPolicy | None = None) -> None:
        self._handlers[topic] = Registered(handler, retry or RetryPolicy())

    def get(self, topic: str) -> Registered | None:
        return self._handlers.get(topic)

    def knows(self, topic: str) -> bool:
        return topic in self._handlers

    def topics(self) -> list[str]:
        return sorted(self._handlers)
