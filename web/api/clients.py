"""Clients over HTTP: search, and one client with its contacts and the deals you may see."""

from flask_smorest import Blueprint
from sqlalchemy import or_
from sqlalchemy import select

from crm.contacts import name_key
from crm.contacts import normalise_email
from crm.contacts import normalise_phone
from crm.deals import client_summary
from crm.deals import deal_dict
from crm.deals import deal_query
from crm.models import Client
from crm.models import Contact
from engine.errors import NotFound
from web.api.common import actor
from web.api.common import check_id
from web.api.common import errors
from web.api.common import page_of_query
from web.api.common import services
from web.api.common import viewer
from web.api.deal_scopes import deal_clause
from web.api.policy import Op
from web.api.policy import reach
from web.api.policy import require
from web.api.sales_schemas import ClientPage
from web.api.sales_schemas import ClientQuerySchema
from web.api.sales_schemas import ClientSchema

bp = Blueprint("api_clients", __name__, url_prefix="/api/v1/clients", description="Clients and their contacts.")


@bp.route("", methods=["GET"])
@bp.arguments(ClientQuerySchema, location="query")
@bp.response(200, ClientPage)
@errors(bp, 400, 403, 503)
def client_list(args):
    """Clients by name; `q` matches part of the name, an INN, or a contact's email or phone."""
    require(actor(), Op.CLIENT_READ)
    query = select(Client).order_by(Client.name_key, Client.id)
    if "q" in args:
        q = args["q"]
        by_contact = [column == value for column, value in
                      ((Contact.email, normalise_email(q)), (Contact.phone, normalise_phone(q))) if value]
        matches = [Client.name_key.contains(name_key(q), autoescape=True), Client.inn == q.strip()]
        if by_contact:  # a `q` that is neither an email nor a phone number matches no contact
            matches.append(Client.id.in_(select(Contact.client_id).where(or_(*by_contact))))
        query = query.where(or_(*matches))
    with services().session_factory() as session:
        return page_of_query(session, query, args, lambda row: client_summary(row[0]))


@bp.route("/<int:client_id>", methods=["GET"])
@bp.response(200, ClientSchema)
@errors(bp, 403, 404, 503)
def client_get(client_id: int):
    """One client with its contacts and, newest first, the deals you may see."""
    require(actor(), Op.CLIENT_READ)
    with services().session_factory() as session:
        client = session.get(Client, check_id(client_id, "client"))
        if client is None:
            raise NotFound(f"There is no client {client_id}.")
        deals = session.scalars(deal_query(client=client.id)
                                .where(deal_clause(viewer(), reach(actor(), Op.DEAL_READ)))).all()
        return {**client_summary(client), "created_at": client.created_at,
                "contacts": [{"id": c.id, "name": c.name, "email": c.email, "phone": c.phone}
                             for c in client.contacts],
                "deals": [deal_dict(deal) for deal in deals]}
