"""Events from outside systems (a CRM, a payment provider): POST /api/v1/messages and /api/v1/signals."""

from flask import url_for
from flask_smorest import Blueprint

from web.api.common import actor
from web.api.common import errors
from web.api.common import services
from web.api.policy import Op
from web.api.policy import require
from web.api.schemas import DeliverySchema
from web.api.schemas import ErrorSchema
from web.api.schemas import MessageRequestSchema
from web.api.schemas import SignalRequestSchema

bp = Blueprint("api_events", __name__, url_prefix="/api/v1",
               description='Tell processes what happened outside: "contract signed", "payment received".')


@bp.route("/messages", methods=["POST"])
@bp.arguments(MessageRequestSchema)
@bp.response(200, DeliverySchema, description="Delivered to every instance of the deal that waited for it.")
@bp.alt_response(201, schema=DeliverySchema, description="Nobody waited, so the message started a new instance of "
                 "the process that starts with it; Location names the instance.")
@bp.alt_response(404, schema=ErrorSchema, description="Nobody waits for this message: no instance of the deal waits "
                 "for it, and no process starts with it. Nothing was changed.")
@errors(bp, 400, 403, 409, 422, 503)
def message_send(body):
    """Deliver a message to the deal's instances waiting for it (or start a process); 404 when nobody waits.

    The payload's fields become process variables. A 404 is not kept for an Idempotency-Key: a retry with the same
    key runs again, and delivers once the deal waits for the message.
    """
    require(actor(), Op.MESSAGE_SEND)
    delivery = services().engine.correlate_message(body["name"], business_key=body["business_key"],
                                                   actor=actor(), payload=body["payload"])
    if delivery.started:
        location = url_for("api_instances.instance_get", instance_id=delivery.instances[0])
        return {"instances": delivery.instances}, 201, {"Location": location}
    return {"instances": delivery.instances}


@bp.route("/signals", methods=["POST"])
@bp.arguments(SignalRequestSchema)
@bp.response(200, DeliverySchema, description="The instances the signal reached; none is not an error.")
@errors(bp, 400, 403, 409, 503)
def signal_send(body):
    """Broadcast a signal to every instance waiting for it, whatever the deal; the payload becomes process data.

    Each instance gets it in its own transaction, so a 409 may come after some instances were reached.
    """
    require(actor(), Op.SIGNAL_SEND)
    return {"instances": services().engine.broadcast_signal(body["name"], actor=actor(), payload=body["payload"])}
