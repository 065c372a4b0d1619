"""The one Jinja2 environment handlers render with: sandboxed, strict, autoescaped for HTML.

Templates live in the repository (mail under `templates/email/<name>/`, documents under `templates/documents/`)
and may be edited by a company's administrators, so they are rendered as untrusted code: the immutable sandbox
refuses `__class__`, `__globals__` and friends and any mutation of the data it is given. Process data only ever
enters as *values* of the render context; it is never compiled as a template.
"""

from collections.abc import Mapping
from os import PathLike
from typing import Any

from jinja2 import FileSystemLoader
from jinja2 import StrictUndefined
from jinja2 import TemplateError
from jinja2 import TemplateNotFound
from jinja2 import TemplateSyntaxError
from jinja2 import UndefinedError
from jinja2 import select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.sandbox import SecurityError

from engine.handlers import HandlerError


def make_environment(directory: str | PathLike[str]) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment over the templates in `directory`: missing variables fail, `.html` is escaped."""
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(directory),
        undefined=StrictUndefined,
        # Only HTML is escaped: a plain-text mail body or subject must show "R&D" as written.
        autoescape=select_autoescape(enabled_extensions=("html", "htm"), default_for_string=False, default=False),
        extensions=(),
        keep_trailing_newline=True,
    )


def render_template(environment: ImmutableSandboxedEnvironment, name: str, context: Mapping[str, Any]) -> str:
    """Render template `name`; every template fault becomes a non-retryable HandlerError that names it.

    Running the same template with the same data again fails the same way, so none of these is worth a retry.
    """
    try:
        return environment.get_template(name).render(dict(context))
    except SecurityError as exc:
        raise HandlerError(f"Template {name!r} tried an operation the sandbox forbids ({exc}). Templates may only "
                           "format the data they are given; remove that expression from the template.",
                           retryable=False) from exc
    except UndefinedError as exc:
        raise HandlerError(f"Template {name!r} uses a value the process does not have: {exc}. Set that process "
                           "variable before this task, pass it in the task's 'context' parameter, or give the "
                           "template a default (`{{ name | default('') }}`).", retryable=False) from exc
    except TemplateSyntaxError as exc:
        raise HandlerError(f"Template {name!r} has a syntax error on line {exc.lineno}: {exc.message}.",
                           retryable=False) from exc
    except TemplateNotFound as exc:
        what = "does not exist" if exc.name == name else f"includes {exc.name!r}, which does not exist"
        raise HandlerError(f"Template {name!r} {what}.", retryable=False) from exc
    except TemplateError as exc:
        raise HandlerError(f"Template {name!r} could not be rendered: {exc}.", retryable=False) from exc
    except Exception as exc:  # noqa: BLE001 - a template's own arithmetic or type error, e.g. `{{ amount / 0 }}`
        raise HandlerError(f"Template {name!r} failed while rendering: {type(exc).__name__}: {exc}. Fix the "
                           "template or the data it formats.", retryable=False) from exc
