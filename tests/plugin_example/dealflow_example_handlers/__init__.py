"""An example handler plugin: `example.greet` answers with a greeting (tests only)."""

from datetime import timedelta

from engine.handlers import HandlerError
from engine.handlers import RetryPolicy


class GreetingHandler:
    retry_policy = RetryPolicy(attempts=2, backoff=timedelta(seconds=5))

    def __init__(self, config):
        self.greeting = config.get("EXAMPLE_GREETING", "Hello")

    def __call__(self, request):
        name = request.parameters.get("name")
        if not name:
            raise HandlerError("example.greet needs a 'name' parameter.", retryable=False)
        return {"greeting": f"{self.greeting}, {name}!"}
