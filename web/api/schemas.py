"""The API contract: marshmallow schemas for every request and response (the OpenAPI document is built from them)."""

from datetime import UTC

import marshmallow as ma
from flask_smorest.fields import Upload
from marshmallow import fields
from marshmallow import validate

from engine.actor import ROLES
from engine.models import InstanceStatus
from engine.queries import SORTS
from engine.views import OPEN_TASKS_IN_VIEW

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


class _Moment(fields.AwareDateTime):
    """A date-time with a time zone that converts to UTC (the database's), so never past the years 1-9999."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError as exc:
            raise ma.ValidationError("This date is out of range; use a date between years 1 and 9999.") from exc


def _moment(naive_is_utc: bool = True, **kwargs) -> fields.AwareDateTime:
    """A date-time field; with `naive_is_utc=False` a time without a zone is refused rather than guessed."""
    if naive_is_utc:
        return _Moment(default_timezone=UTC, **kwargs)
    return _Moment(error_messages={"invalid_awareness": "Give a time zone, e.g. 2026-05-01T10:00:00+03:00 or "
                                                        "2026-05-01T07:00:00Z."}, **kwargs)


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
    absent = fields.Boolean(metadata={"description": "On leave: new leads skip this user."})


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
    instance = fields.Integer(validate=validate.Range(min=1, max=MAX_INT), metadata={
        "description": "Only this process instance's tasks, page by page (its own view lists at most "
                       f"{OPEN_TASKS_IN_VIEW})."})
    due_before = _moment()
    overdue = fields.Boolean(metadata={"description": "true: open tasks past their due date; false: the others."})
    sort = fields.String(load_default="created", validate=validate.OneOf(list(SORTS)))


class NotificationQuerySchema(PageArgsSchema):
    unread = fields.Boolean(metadata={"description": "true: only those you have not read; false or omitted: all."})


class JobQuerySchema(PageArgsSchema):
    instance = fields.Integer(validate=validate.Range(min=1, max=MAX_INT),
                              metadata={"description": "Only the jobs of this process instance."})
    due_before = _moment(metadata={"description": "Only jobs due before this time."})


class MessageRequestSchema(Strict):
    name = _text(255, required=True, metadata={"description": "The message's name in the diagram (not its id)."})
    business_key = _text(255, required=True, metadata={"description": "The deal the message is about."})
    payload = fields.Dict(keys=fields.String(), load_default=dict,
                          metadata={"description": "Becomes process data: each field a variable."})


class SignalRequestSchema(Strict):
    name = _text(255, required=True, metadata={"description": "The signal's name in the diagram (not its id)."})
    payload = fields.Dict(keys=fields.String(), load_default=dict,
                          metadata={"description": "Becomes process data of every instance it reaches."})


class JobDueSchema(Strict):
    due_at = _moment(naive_is_utc=False, required=True,
                     metadata={"description": "The new due time, with a time zone: 2026-05-01T10:00:00+03:00."})


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


class IncidentSchema(ma.Schema):
    id = fields.Integer(required=True)
    job_id = fields.Integer(required=True)
    instance_id = fields.Integer(required=True)
    task_id = fields.String(required=True)
    element_id = fields.String(required=True, metadata={"description": "The service task's BPMN id."})
    topic = fields.String(required=True, metadata={"description": "The handler's topic, e.g. mail.send."})
    message = fields.String(required=True, metadata={"description": "Why the last attempt failed."})
    attempts = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    resolved_at = _maybe(fields.DateTime, required=True)
    resolved_by = _maybe(fields.String, required=True)
    resolution = _maybe(fields.String, required=True, metadata={
        "description": "retried, task_gone or instance_cancelled; null while open."})


class InstanceSchema(InstanceSummarySchema):
    version = fields.Integer(required=True)
    error_message = _maybe(fields.String, required=True)
    variables = fields.Dict(required=True)
    open_tasks = fields.List(fields.Nested(TaskSchema), required=True, metadata={
        "description": f"The oldest open tasks you may see, at most {OPEN_TASKS_IN_VIEW}; all of them: "
                       "GET /api/v1/tasks?instance=<id>."})
    open_task_count = fields.Integer(required=True, metadata={
        "description": "How many open tasks you may see in this instance: `open_tasks` lists at most "
                       f"{OPEN_TASKS_IN_VIEW}, the oldest first, and GET /api/v1/tasks?instance=<id> pages through "
                       "all of them. It counts every open task when your roles let you read every task, else only "
                       "those you may see, never hidden ones."})
    active_elements = fields.List(fields.String(), required=True)
    completed_elements = fields.List(fields.String(), required=True)
    incidents = fields.List(fields.Nested(IncidentSchema), required=True, metadata={
        "description": "Open incidents: service calls that ran out of attempts (filled in by GET of one instance)."})


class IncidentQuerySchema(PageArgsSchema):
    instance = fields.Integer(validate=validate.Range(min=1, max=MAX_INT),
                              metadata={"description": "Only the incidents of this process instance."})
    include_resolved = fields.Boolean(load_default=False, metadata={"description": "Also resolved ones."})


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
    absent = fields.Boolean(required=True, metadata={"description": "On leave: new leads skip this user."})


class VerifySchema(ma.Schema):
    ok = fields.Boolean(required=True)
    checked = fields.Integer(required=True)
    first_bad_seq = _maybe(fields.Integer, required=True)
    reason = _maybe(fields.String, required=True)


class DeliverySchema(ma.Schema):
    instances = fields.List(fields.Integer(), required=True,
                            metadata={"description": "The process instances the message or signal reached."})


class NotificationSchema(ma.Schema):
    id = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    kind = fields.String(required=True, metadata={"description": "task_reminder, task_overdue, ..."})
    message = fields.String(required=True)
    instance_id = _maybe(fields.Integer, required=True)
    task_id = _maybe(fields.String, required=True)
    business_key = _maybe(fields.String, required=True)
    to = fields.String(required=True, metadata={"description": "Your username, or 'group:<name>' for a group's."})
    read = fields.Boolean(required=True, metadata={"description": "Whether you have read it (per member)."})


class JobSchema(ma.Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "timer, reminder, overdue or service."})
    instance_id = fields.Integer(required=True)
    task_id = fields.String(required=True, metadata={"description": "The waiting BPMN event or user task."})
    element_id = fields.String(required=True)
    due_at = fields.DateTime(required=True)
    attempts = fields.Integer(required=True, metadata={"description": "Failed firings so far."})
    last_error = _maybe(fields.String, required=True)
    locked_by = _maybe(fields.String, required=True, metadata={"description": "The sweeper that leased it."})
    locked_until = _maybe(fields.DateTime, required=True, metadata={
        "description": "Not fired again before this time (a sweeper's lease, or the wait after a failure)."})
    status = fields.String(required=True, metadata={"description": "pending, or incident (out of attempts)."})
    topic = _maybe(fields.String, required=True, metadata={"description": "A service call's handler topic."})
    max_attempts = _maybe(fields.Integer, required=True)


class JobExecutedSchema(ma.Schema):
    id = fields.Integer(required=True)
    fired = fields.Boolean(required=True, metadata={
        "description": "false when there was nothing left to fire (its task was completed or cancelled)."})


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
NotificationPage = page_of(NotificationSchema, "NotificationPage")
JobPage = page_of(JobSchema, "JobPage")
IncidentPage = page_of(IncidentSchema, "IncidentPage")
