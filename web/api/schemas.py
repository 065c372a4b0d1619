"""The API contract: marshmallow schemas for every request and response (the OpenAPI document is built from them)."""

from datetime import UTC

import marshmallow as ma
from flask_smorest.fields import Upload
from marshmallow import fields
from marshmallow import validate

from engine.actor import ROLES
from engine.models import InstanceStatus
from engine.queries import SORTS

MAX_INT = 2**31 - 1  # the largest id or version a database integer column holds
MAX_PAGE = 100_000


class Strict(ma.Schema):
    """A request schema: unknown fields are an error, never silently dropped."""

    class Meta:
        unknown = ma.RAISE


def _text(max_length: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


def _maybe(field_cls, **kwargs):
    return field_cls(allow_none=True, **kwargs)


class ErrorSchema(ma.Schema):
    error = fields.String(required=True, metadata={"description": "A stable machine-readable code."})
    message = fields.String(required=True, metadata={"description": "A sentence saying what happened and what to do."})
    details = fields.Dict(required=True, metadata={"description": "Structured details: fields, problems, ids."})


# --- requests ---------------------------------------------------------------------------------------------------

class TokenRequestSchema(Strict):
    username = _text(150, required=True)
    password = _text(1024, required=True)


class DeployFilesSchema(Strict):
    file = fields.List(Upload(), required=True, validate=validate.Length(min=1, max=100),
                       metadata={"description": "One or more BPMN files, each as a part named 'file'."})


class StartRequestSchema(Strict):
    process_key = _text(255, required=True)
    business_key = _maybe(fields.String, validate=validate.Length(max=255))
    variables = fields.Dict(keys=fields.String(), load_default=dict)
    version = _maybe(fields.Integer, validate=validate.Range(min=1, max=MAX_INT),
                     metadata={"description": "A specific version; the latest when omitted."})


class CancelRequestSchema(Strict):
    reason = _maybe(fields.String, validate=validate.Length(max=2000))


class AssignRequestSchema(Strict):
    username = _text(150, required=True)


class CompleteRequestSchema(Strict):
    data = fields.Dict(keys=fields.String(), load_default=dict,
                       metadata={"description": "The task's form fields, by field id."})


class UserCreateSchema(Strict):
    username = _text(63, required=True)
    password = _maybe(fields.String, validate=validate.Length(min=8, max=1024),
                      metadata={"description": "At least 8 characters; omit for an account that cannot log in."})
    name = fields.String(validate=validate.Length(max=255), load_default="")
    email = _maybe(fields.Email, validate=validate.Length(max=255))
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), load_default=list,
                        validate=validate.Length(max=len(ROLES)))
    groups = fields.List(_text(63), load_default=list, validate=validate.Length(max=100))


class UserPatchSchema(Strict):
    password = fields.String(validate=validate.Length(min=8, max=1024))
    name = fields.String(validate=validate.Length(max=255))
    email = _maybe(fields.Email, validate=validate.Length(max=255))
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), validate=validate.Length(max=len(ROLES)))
    groups = fields.List(_text(63), validate=validate.Length(max=100))
    active = fields.Boolean()


class PageArgsSchema(ma.Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class DefinitionQuerySchema(PageArgsSchema):
    key = _text(255)


class InstanceQuerySchema(PageArgsSchema):
    business_key = _text(255)
    process_key = _text(255)
    status = fields.String(validate=validate.OneOf([s.value for s in InstanceStatus]))


class TaskQuerySchema(PageArgsSchema):
    assignee = _text(150, metadata={"description": "'me' or a username."})
    candidate_group = _text(150)
    business_key = _text(255)
    due_before = fields.AwareDateTime(default_timezone=UTC)
    overdue = fields.Boolean(metadata={"description": "true: open tasks past their due date; false: the others."})
    sort = fields.String(load_default="created", validate=validate.OneOf(list(SORTS)))

    @ma.validates("due_before")
    def _in_range(self, value, **kwargs):
        try:
            value.astimezone(UTC)
        except OverflowError as exc:
            raise ma.ValidationError("This date is out of range; use a date between years 1 and 9999.") from exc


# --- responses --------------------------------------------------------------------------------------------------

class TokenSchema(ma.Schema):
    token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_at = fields.DateTime(required=True)


class DefinitionSchema(ma.Schema):
    id = fields.Integer(required=True)
    key = fields.String(required=True)
    version = fields.Integer(required=True)
    name = _maybe(fields.String, required=True)
    resource_name = fields.String(required=True)
    deployed_at = fields.DateTime(required=True)


class DeploymentSchema(ma.Schema):
    deployment_id = _maybe(fields.Integer, required=True)
    created = fields.List(fields.Nested(DefinitionSchema), required=True)
    unchanged = fields.List(fields.Nested(DefinitionSchema), required=True)


class TaskSchema(ma.Schema):
    id = fields.String(required=True)
    instance_id = fields.Integer(required=True)
    process_key = fields.String(required=True)
    business_key = _maybe(fields.String, required=True)
    bpmn_id = fields.String(required=True)
    name = _maybe(fields.String, required=True)
    lane = _maybe(fields.String, required=True)
    status = fields.String(required=True)
    assignee = _maybe(fields.String, required=True)
    candidate_groups = fields.List(fields.String(), required=True)
    candidate_users = fields.List(fields.String(), required=True)
    form = fields.List(fields.Dict(), required=True, metadata={"description": "The form fields to submit."})
    priority = fields.Integer(required=True)
    due_at = _maybe(fields.DateTime, required=True)
    follow_up_at = _maybe(fields.DateTime, required=True)
    created_at = fields.DateTime(required=True)
    claimed_at = _maybe(fields.DateTime, required=True)
    completed_at = _maybe(fields.DateTime, required=True)
    completed_by = _maybe(fields.String, required=True)


class InstanceSummarySchema(ma.Schema):
    id = fields.Integer(required=True)
    process_key = fields.String(required=True)
    definition_id = fields.Integer(required=True)
    business_key = _maybe(fields.String, required=True)
    status = fields.String(required=True)
    started_at = fields.DateTime(required=True)
    started_by = fields.String(required=True)
    ended_at = _maybe(fields.DateTime, required=True)


class InstanceSchema(InstanceSummarySchema):
    version = fields.Integer(required=True)
    error_message = _maybe(fields.String, required=True)
    variables = fields.Dict(required=True)
    open_tasks = fields.List(fields.Nested(TaskSchema), required=True)
    active_elements = fields.List(fields.String(), required=True)
    completed_elements = fields.List(fields.String(), required=True)


class EventSchema(ma.Schema):
    seq = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    actor = fields.String(required=True)
    event = fields.String(required=True)
    instance_id = _maybe(fields.Integer, required=True)
    task_id = _maybe(fields.String, required=True)
    element_id = _maybe(fields.String, required=True)
    details = fields.Dict(required=True)


class UserSchema(ma.Schema):
    username = fields.String(required=True)
    name = fields.String(required=True)
    email = _maybe(fields.String, required=True)
    roles = fields.List(fields.String(), required=True)
    groups = fields.List(fields.String(), required=True)
    active = fields.Boolean(required=True)


class VerifySchema(ma.Schema):
    ok = fields.Boolean(required=True)
    checked = fields.Integer(required=True)
    first_bad_seq = _maybe(fields.Integer, required=True)
    reason = _maybe(fields.String, required=True)


def page_of(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """The list envelope: one page of items, the page asked for, the total and the next page's URL."""
    return ma.Schema.from_dict({
        "items": fields.List(fields.Nested(item), required=True),
        "page": fields.Integer(required=True),
        "per_page": fields.Integer(required=True),
        "total": fields.Integer(required=True),
        "next": _maybe(fields.String, required=True, metadata={"description": "The next page's URL, or null."}),
    }, name=name)


DefinitionPage = page_of(DefinitionSchema, "DefinitionPage")
InstancePage = page_of(InstanceSummarySchema, "InstancePage")
TaskPage = page_of(TaskSchema, "TaskPage")
EventPage = page_of(EventSchema, "EventPage")
UserPage = page_of(UserSchema, "UserPage")
