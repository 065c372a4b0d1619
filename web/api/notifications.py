"""Your in-app notifications (task reminders and overdue notices): list them, mark them read."""

from flask_smorest import Blueprint
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from engine.actor import Actor
from engine.models import Notification
from engine.models import NotificationRead
from web.api.common import actor
from web.api.common import check_id
from web.api.common import envelope
from web.api.common import errors
from web.api.common import services
from web.api.policy import Op
from web.api.policy import Scope
from web.api.policy import require
from web.api.schemas import NotificationPage
from web.api.schemas import NotificationQuerySchema

bp = Blueprint("api_notifications", __name__, url_prefix="/api/v1/notifications",
               description="Your notifications: reminders before a task is due, notices when it is overdue.")


@bp.route("", methods=["GET"])
@bp.arguments(NotificationQuerySchema, location="query")
@bp.response(200, NotificationPage)
@errors(bp, 400, 403, 503)
def notification_list(args):
    """Notifications to you or to one of your groups, newest first, each with your own read flag."""
    me = actor()
    require(me, Op.NOTIFICATION_READ, Scope.OWN)
    unread = args.get("unread") is True
    items = services().engine.list_notifications(me.username, me.groups, unread_only=unread, limit=args["per_page"],
                                                 offset=(args["page"] - 1) * args["per_page"])
    return envelope(items, _count(me, unread), args)


def _count(me: Actor, unread: bool) -> int:
    """How many `list_notifications` would list in all; the engine lists a page but does not count, so this
    repeats its filter (engine.reminders.list_for). The API tests compare the two."""
    query = select(func.count()).select_from(Notification).where(or_(
        Notification.recipient_user == me.username, Notification.recipient_group.in_(sorted(me.groups))))
    if unread:
        query = query.where(~exists().where(NotificationRead.notification_id == Notification.id,
                                            NotificationRead.username == me.username))
    with services().session_factory() as session:
        return session.scalar(query)


@bp.route("/<int:notification_id>/read", methods=["POST"])
@bp.response(204)
@errors(bp, 403, 404, 409, 503)
def notification_mark_read(notification_id: int):
    """Mark a notification read for you; a group's notification stays unread for the other members."""
    require(actor(), Op.NOTIFICATION_READ, Scope.OWN)
    services().engine.mark_notification_read(check_id(notification_id, "notification"), actor=actor())
