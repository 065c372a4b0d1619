"""`document.render`: a deal's proposal, contract or invoice as a PDF, stored as the next version of its kind.

Parameters of the service task (stable names):

- `template` (required): `proposal`, `contract`, `invoice` or any other `<name>.html` in the documents directory;
- `kind` (optional): what the document is stored as; the template name by default;
- `context` (optional): a dict merged over the process variables for this document only.

The template sees the process variables, then `context`, then `document_number` (None unless the kind is
numbered), `business_key` and `today`. Templates are rendered in the sandbox of `handlers.templating`, and the
PDF renderer may read files of the documents directory and `data:` URIs only: never the network.
"""

import mimetypes
import re
from collections.abc import Mapping
from datetime import UTC
from datetime import date
from datetime import datetime
from decimal import ROUND_HALF_UP
from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import pass_context

from engine.handlers import HandlerError
from engine.handlers import HandlerRequest
from handlers.templating import make_environment
from handlers.templating import render_template

TOPIC = "document.render"
NUMBERED_KINDS = frozenset({"invoice"})
LAYOUTS = frozenset({"base"})  # templates that others extend; not documents of their own
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
_CENT = Decimal("0.01")


class DocumentHandler:
    """Render a document template to PDF and store it through `request.services` (one copy per call)."""

    def __init__(self, config: Mapping[str, Any], templates_dir: Path):
        self._dir = Path(templates_dir).resolve()
        self._locale = config.get("DEALFLOW_LOCALE", "ru_RU")
        self._numbered = frozenset(config.get("DEALFLOW_NUMBERED_DOCUMENTS", NUMBERED_KINDS))
        self._clock = config.get("DEALFLOW_CLOCK") or (lambda: datetime.now(UTC))
        self._env = make_environment(self._dir)
        self._env.filters.update(_filters(self._locale))
        self._env.globals["totals"] = totals

    def __call__(self, request: HandlerRequest) -> dict[str, Any]:
        template = self._template(request)
        kind = _kind(request, request.parameters.get("kind", template))
        extra = request.parameters.get("context") or {}
        if not isinstance(extra, Mapping):
            raise HandlerError(f"Service task {request.element_id!r}: the parameter 'context' must be a dict of "
                               f"values for the template, not {type(extra).__name__}.", retryable=False)
        if request.services is None:
            raise HandlerError(f"Service task {request.element_id!r}: documents cannot be stored here (no services "
                               "were given to the handler).", retryable=False)
        context = {**request.variables, **extra, "business_key": request.business_key,
                   "today": self._clock().date()}
        numbered = kind in self._numbered
        doc = request.services.store_document(
            key=request.idempotency_key, business_key=request.business_key, instance_id=request.instance_id,
            kind=kind, filename=_filename(kind, request.business_key, numbered), numbered=numbered,
            render=lambda number: self.render(template, {**context, "document_number": number}),
            template=f"{template}.html")
        return {"document": {"id": doc.id, "kind": doc.kind, "version": doc.version, "number": doc.number,
                             "filename": doc.filename, "sha256": doc.sha256, "size": doc.size}}

    def render(self, template: str, context: Mapping[str, Any]) -> bytes:
        """The PDF bytes of `<template>.html` with `context`; template faults are non-retryable HandlerErrors."""
        html = render_template(self._env, f"{template}.html", context)
        from weasyprint import HTML  # imported on first use: it costs ~1 s, which every CLI command would pay

        return HTML(string=html, base_url=f"{self._dir}/", url_fetcher=self._fetch).write_pdf()

    def templates(self) -> list[str]:
        """The document templates there are (the names the `template` parameter takes)."""
        return sorted(p.stem for p in self._dir.glob("*.html") if _NAME.fullmatch(p.stem) and p.stem not in LAYOUTS)

    def _template(self, request: HandlerRequest) -> str:
        name = request.parameters.get("template")
        known = self.templates()
        if not isinstance(name, str) or name not in known:
            raise HandlerError(f"Service task {request.element_id!r}: there is no document template {name!r}; set "
                               f"the parameter 'template' to one of {', '.join(known) or '(none installed)'}.",
                               retryable=False)
        return name

    def _fetch(self, url: str, *args, **kwargs) -> dict[str, Any]:
        """WeasyPrint's URL fetcher: files under the templates directory and `data:` URIs, nothing else."""
        if url.startswith("data:"):
            from weasyprint import default_url_fetcher

            return default_url_fetcher(url, *args, **kwargs)
        parts = urlsplit(url)
        if parts.scheme == "file" and parts.netloc in ("", "localhost"):
            path = Path(url2pathname(parts.path)).resolve()
            if path.is_relative_to(self._dir) and path.is_file():
                return {"string": path.read_bytes(), "mime_type": mimetypes.guess_type(path.name)[0],
                        "redirected_url": url}
        raise ValueError(f"Documents may use files of {self._dir} and data: URIs only, not {url!r}.")


def _filters(default_locale: str) -> dict[str, Any]:
    """The `money` and `date` filters; the locale is the argument, else the context's `locale`, else the config's."""

    @pass_context
    def money(ctx, amount: Any, currency: str, locale: str | None = None) -> str:
        """`{{ 1234.5 | money('RUB') }}` -> `1 234,50 ₽` in ru_RU, `{{ x | money('EUR', 'en_US') }}` -> `€1,234.50`."""
        return format_currency(_decimal(amount), str(currency).upper(), locale=locale or ctx.get("locale")
                               or default_locale)

    @pass_context
    def date_filter(ctx, value: Any, format: str = "long", locale: str | None = None) -> str:
        """`{{ today | date }}` -> `2 марта 2026 г.`; `format` is short|medium|long|full or a Babel pattern."""
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        if isinstance(value, datetime):
            value = value.date()
        return format_date(value, format=format, locale=locale or ctx.get("locale") or default_locale)

    return {"money": money, "date": date_filter}


def totals(items: Any, discount_percent: Any = 0, vat_rate: Any = None, vat_included: bool = False) -> dict:
    """Line totals and the sums of a list of items ({name, qty, unit_price, unit?}), rounded to cents.

    `discount_percent` comes off the subtotal; VAT at `vat_rate` percent is added on top, or with `vat_included`
    taken out of the discounted amount (the total then stays as is). No `vat_rate`: no VAT.
    """
    lines = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, Mapping) or "qty" not in item or "unit_price" not in item:
            raise ValueError(f"item {n} of the list must have 'qty' and 'unit_price', but it is {item!r}")
        total = (_decimal(item["qty"]) * _decimal(item["unit_price"])).quantize(_CENT, ROUND_HALF_UP)
        lines.append({**item, "total": total})
    subtotal = sum((line["total"] for line in lines), Decimal(0))
    discount = (subtotal * _decimal(discount_percent or 0) / 100).quantize(_CENT, ROUND_HALF_UP)
    net = subtotal - discount
    rate = _decimal(vat_rate) if vat_rate is not None else None
    if rate is None:
        vat = Decimal(0)
    elif vat_included:
        vat = (net * rate / (100 + rate)).quantize(_CENT, ROUND_HALF_UP)
    else:
        vat = (net * rate / 100).quantize(_CENT, ROUND_HALF_UP)
    total = net if vat_included else net + vat
    return {"lines": lines, "subtotal": subtotal, "discount": discount, "vat": vat, "total": total}


def _decimal(value: Any) -> Decimal:
    """A number from process data (int, float, numeric string) as an exact Decimal."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise InvalidOperation
        result = Decimal(str(value).strip())
        if not result.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount; give a number such as 1234.50") from None
    return result


def _kind(request: HandlerRequest, kind: Any) -> str:
    if not isinstance(kind, str) or not _NAME.fullmatch(kind):
        raise HandlerError(f"Service task {request.element_id!r}: the parameter 'kind' must be a short lowercase "
                           f"name such as 'invoice' (letters, digits, '-' and '_'), not {kind!r}.", retryable=False)
    return kind


def _filename(kind: str, business_key: str | None, numbered: bool) -> str:
    """`invoice-{number}.pdf` or `contract-DEAL-42-v{version}.pdf`: the store fills in number and version."""
    if numbered:
        return f"{kind}-{{number}}.pdf"
    deal = re.sub(r"[^\w.-]+", "-", business_key or "").strip("-.")[:100]
    return f"{kind}-{deal}-v{{version}}.pdf" if deal else f"{kind}-v{{version}}.pdf"
