"""The API contract of the sales domain: leads, deals, their stage timeline, clients (see web.api.schemas)."""

from decimal import Decimal

import marshmallow as ma
from marshmallow import fields
from marshmallow import validate

from crm.models import DealStatus
from web.api.schemas import MAX_INT
from web.api.schemas import PageArgsSchema
from web.api.schemas import Strict
from web.api.schemas import _maybe
from web.api.schemas import _text
from web.api.schemas import page_of

CHANNELS = ("call", "email", "web_form", "chat", "referral", "event", "partner", "other")
MAX_MONEY = Decimal("999999999999.99")  # Numeric(14, 2)
MONEY_LIMIT = 10**12 - 1
QUANTITY_LIMIT = 10**11 - 1


class _InDecimal(fields.Decimal):
    """A request number read as an exact Decimal. apispec writes a field's Range bounds through the field's own
    serializer, and a Decimal would come out as a JSON string ("minimum": "0"), which no client generator takes."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else float(value)


def _money(**kwargs) -> fields.Decimal:
    return _InDecimal(validate=validate.Range(min=0, max=MONEY_LIMIT), **kwargs)


_CURRENCY = {"validate": validate.Regexp(r"^[A-Za-z]{3}$", error="Use a three-letter currency code, e.g. RUB."),
             "metadata": {"description": "ISO 4217 code; RUB when omitted."}}


# --- requests ---------------------------------------------------------------------------------------------------

class LineItemSchema(Strict):
    name = _text(255, required=True)
    quantity = _InDecimal(required=True, validate=validate.Range(min=0, max=QUANTITY_LIMIT,
                                                                            min_inclusive=False))
    unit_price = _money(required=True)


def _check_total(items: list[dict] | None) -> None:
    if items and sum(i["quantity"] * i["unit_price"] for i in items) > MAX_MONEY:
        raise ma.ValidationError("The line items add up to more than a deal's amount can hold.", "line_items")


class LeadContactSchema(Strict):
    name = fields.String(validate=validate.Length(max=255), load_default="")
    email = _maybe(fields.Email, validate=validate.Length(max=255))
    phone = _maybe(fields.String, validate=validate.Regexp(r"^\+?[\d\s().-]{5,30}$",
                                                           error="Use digits, spaces, +, ( ) and - only."))

    @ma.pre_load
    def _strip(self, data, **kwargs):
        """Forms send ' Ivan@Example.ru ' too; the address is the same (crm.contacts normalises the rest)."""
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip()}
        return data

    @ma.validates_schema
    def _reachable(self, data, **kwargs):
        if not data.get("email") and not data.get("phone"):
            raise ma.ValidationError("Give the contact's email or phone (or both).", "email")


class LeadCompanySchema(Strict):
    name = _text(255, required=True)
    legal_form = fields.String(validate=validate.Length(max=20), load_default="",
                               metadata={"description": "ООО, АО, ИП, ..."})
    inn = _maybe(fields.String, validate=validate.Regexp(r"^(\d{10}|\d{12})$", error="An INN has 10 or 12 digits."))
    region = _maybe(fields.String, validate=validate.Length(max=100))


class LeadRequestSchema(Strict):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    source = _maybe(fields.String, validate=validate.Length(max=100), load_default=None,
                    metadata={"description": "Where the lead came from: a campaign, a site, a partner."})
    contact = fields.Nested(LeadContactSchema, required=True)
    company = fields.Nested(LeadCompanySchema, required=True)
    message = _maybe(fields.String, validate=validate.Length(max=10000), load_default=None)
    title = _maybe(fields.String, validate=validate.Length(min=1, max=255))
    amount = _maybe(_money, metadata={"description": "The sum of the line items when omitted."})
    currency = _maybe(fields.String, **_CURRENCY)
    line_items = fields.List(fields.Nested(LineItemSchema), load_default=list, validate=validate.Length(max=200))

    @ma.validates_schema
    def _total(self, data, **kwargs):
        _check_total(data.get("line_items"))


class DealPatchSchema(Strict):
    title = _text(255)
    amount = _money()
    currency = fields.String(**_CURRENCY)
    expected_close_date = _maybe(fields.Date)
    owner = _text(150, metadata={"description": "Hand the deal over (supervisors, admins); their open tasks in "
                                               "the deal's process move along."})
    line_items = fields.List(fields.Nested(LineItemSchema), validate=validate.Length(max=200),
                             metadata={"description": "Replaces all line items; the amount follows unless given."})

    @ma.validates_schema
    def _total(self, data, **kwargs):
        _check_total(data.get("line_items"))


class DealQuerySchema(PageArgsSchema):
    stage = _text(100)
    status = fields.String(validate=validate.OneOf([s.value for s in DealStatus]))
    owner = _text(150, metadata={"description": "'me' or a username."})
    client = fields.Integer(validate=validate.Range(min=1, max=MAX_INT), metadata={"description": "A client id."})


class ClientQuerySchema(PageArgsSchema):
    q = _text(255, metadata={"description": "Part of the name, an INN, or a contact's exact email or phone."})


# --- responses --------------------------------------------------------------------------------------------------

def _decimal_text(**kwargs) -> fields.Decimal:
    """Money and quantities go out as exact decimal strings ("1500.50"), never as binary floats."""
    return fields.Decimal(as_string=True, metadata={"type": "string", "format": "decimal", "example": "1500.50"},
                          **kwargs)


class LineItemOutSchema(ma.Schema):
    name = fields.String(required=True)
    quantity = _decimal_text(required=True)
    unit_price = _decimal_text(required=True)


class ClientSummarySchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    legal_form = fields.String(required=True)
    inn = _maybe(fields.String, required=True)
    region = _maybe(fields.String, required=True)


class ContactSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    email = _maybe(fields.String, required=True)
    phone = _maybe(fields.String, required=True, metadata={"description": "Digits with the country code."})


class DealSchema(ma.Schema):
    id = fields.Integer(required=True, metadata={"description": "Also the business key of the deal's process."})
    title = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "open, won or lost."})
    stage = fields.String(required=True, metadata={"description": "The funnel stage (the last milestone reached)."})
    owner = _maybe(fields.String, required=True)
    amount = _decimal_text(required=True)
    currency = fields.String(required=True)
    channel = fields.String(required=True)
    source = _maybe(fields.String, required=True)
    region = _maybe(fields.String, required=True)
    message = _maybe(fields.String, required=True)
    expected_close_date = _maybe(fields.Date, required=True)
    lost_reason = _maybe(fields.String, required=True)
    lost_comment = _maybe(fields.String, required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    closed_at = _maybe(fields.DateTime, required=True)
    instance_id = _maybe(fields.Integer, required=True, metadata={"description": "The deal's process instance."})
    client = fields.Nested(ClientSummarySchema, required=True)
    contact = _maybe(fields.Nested, nested=ContactSchema, required=True)
    line_items = fields.List(fields.Nested(LineItemOutSchema), required=True)


class LeadSchema(DealSchema):
    returning_client = fields.Boolean(required=True, metadata={
        "description": "true when the contact or the company was already known."})


class StageTransitionSchema(ma.Schema):
    from_stage = _maybe(fields.String, required=True, metadata={"description": "null for the deal's first stage."})
    to_stage = fields.String(required=True)
    at = fields.DateTime(required=True)
    actor = fields.String(required=True)
    reason = _maybe(fields.String, required=True)


class ClientSchema(ClientSummarySchema):
    created_at = fields.DateTime(required=True)
    contacts = fields.List(fields.Nested(ContactSchema), required=True)
    deals = fields.List(fields.Nested(DealSchema), required=True, metadata={
        "description": "The client's deals you may see, newest first."})


DealPage = page_of(DealSchema, "DealPage")
StagePage = page_of(StageTransitionSchema, "StagePage")
ClientPage = page_of(ClientSummarySchema, "ClientPage")
