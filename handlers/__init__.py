"""Service-task handlers by topic: the built-in ones below, and a company's own through entry points.

A company adds a handler without touching Dealflow: a Python package that declares

    [project.entry-points."dealflow.handlers"]
    "telephony.call" = "acme_dealflow.calls:CallHandler"

where the entry point's name is the topic and its object is called with the app's configuration (a mapping of
DEALFLOW_* settings) and returns the handler: a class like CallHandler, or a factory function. A handler may
carry a `retry_policy` attribute (engine.handlers.RetryPolicy); otherwise the default applies. Built-in topics
cannot be replaced by a plugin.
"""

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import timedelta
from importlib.metadata import EntryPoint
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from engine.handlers import Handler
from engine.handlers import HandlerRegistry
from engine.handlers import RetryPolicy

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dealflow.handlers"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _mail(config: Mapping[str, Any], templates: Path) -> Handler:
    from handlers.mail import MailHandler

    return MailHandler(config, templates / "email")


def _document(config: Mapping[str, Any], templates: Path) -> Handler:
    from handlers.documents import DocumentHandler

    return DocumentHandler(config, templates / "documents")


def _notify(config: Mapping[str, Any], templates: Path) -> Handler:
    from handlers.notify import NotifyHandler

    return NotifyHandler(config)


def _webhook(config: Mapping[str, Any], templates: Path) -> Handler:
    from handlers.webhook import WebhookHandler

    return WebhookHandler(config)


# topic -> (factory, retry policy). Mail and webhooks wait longer between tries: their peers' outages are long.
BUILT_IN: dict[str, tuple[Callable[[Mapping[str, Any], Path], Handler], RetryPolicy]] = {
    "mail.send": (_mail, RetryPolicy(attempts=5, backoff=timedelta(minutes=1))),
    "document.render": (_document, RetryPolicy(attempts=3, backoff=timedelta(seconds=30))),
    "notify.send": (_notify, RetryPolicy(attempts=3, backoff=timedelta(seconds=10))),
    "webhook.post": (_webhook, RetryPolicy(attempts=8, backoff=timedelta(seconds=30))),
}


def build_registry(config: Mapping[str, Any], templates: Path = TEMPLATES,
                   plugins: Iterable[EntryPoint] | None = None) -> HandlerRegistry:
    """Every built-in handler and every plugin (by default the installed ones), constructed with `config`."""
    registry = HandlerRegistry()
    for topic, (factory, retry) in BUILT_IN.items():
        registry.register(topic, factory(config, templates), retry)
    for entry in entry_points(group=ENTRY_POINT_GROUP) if plugins is None else plugins:
        if entry.name in BUILT_IN:
            log.warning("Plugin %s cannot replace the built-in handler for %r; ignored.", entry.value, entry.name)
            continue
        try:
            handler = entry.load()(config)
        except Exception:  # noqa: BLE001 - one broken plugin must not keep the app from starting
            log.exception("The handler plugin %s for %r failed to load; its topic stays unknown (deployments that "
                          "use it are refused).", entry.value, entry.name)
            continue
        registry.register(entry.name, handler, getattr(handler, "retry_policy", None))
    return registry
