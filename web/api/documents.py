"""Documents the processes produced (proposals, contracts, invoices): list their metadata, download their bytes.

Whoever may see a document's process instance may see and download the document; a document of no instance (or
of one deleted since) only those who see every instance. Invisible documents are 404, as invisible instances are.
"""

import io

import marshmallow as ma
from flask import send_file
from flask_smorest import Blueprint
from marshmallow import fields
from marshmallow import validate
from sqlalchemy import select

from engine.documents import document_owner
from engine.documents import get_document
from engine.errors import NotFound
from engine.models import Document
from engine.models import ProcessInstance
from web.api.common import actor
from web.api.common import check_id
from web.api.common import errors
from web.api.common import page_of_query
from web.api.common import services
from web.api.common import viewer
from web.api.policy import Op
from web.api.policy import Scope
from web.api.policy import check
from web.api.policy import reach
from web.api.schemas import MAX_INT
from web.api.schemas import PageArgsSchema
from web.api.schemas import page_of

bp = Blueprint("api_documents", __name__, url_prefix="/api/v1/documents",
               description="Documents rendered by the processes: proposals, contracts, invoices (PDF).")
COLUMNS = (Document.id, Document.kind, Document.version, Document.number, Document.filename, Document.content_type,
           Document.sha256, Document.size, Document.business_key, Document.instance_id, Document.template,
           Document.created_at)


class DocumentQuerySchema(PageArgsSchema):
    business_key = fields.String(validate=validate.Length(min=1, max=255))
    instance_id = fields.Integer(validate=validate.Range(min=1, max=MAX_INT))


class DocumentSchema(ma.Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "proposal, contract, invoice, ..."})
    version = fields.Integer(required=True, metadata={"description": "1, 2, ... per deal and kind."})
    number = fields.String(required=True, allow_none=True,
                           metadata={"description": "The number of a numbered kind (invoices): 2026-000123."})
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    sha256 = fields.String(required=True, metadata={"description": "Of the bytes; also the download's ETag."})
    size = fields.Integer(required=True)
    business_key = fields.String(required=True, allow_none=True)
    instance_id = fields.Integer(required=True, allow_none=True)
    template = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


DocumentPage = page_of(DocumentSchema, "DocumentPage")


@bp.route("", methods=["GET"])
@bp.arguments(DocumentQuerySchema, location="query")
@bp.response(200, DocumentPage)
@errors(bp, 400, 503)
def document_list(args):
    """Documents of the instances you may see, newest first, filtered by business key and instance."""
    query = select(*COLUMNS)
    scope = reach(actor(), Op.INSTANCE_READ)
    if scope < Scope.ALL:
        visible = select(ProcessInstance.id).where(viewer().instance_clause(scope))
        query = query.where(Document.instance_id.in_(visible))
    if "business_key" in args:
        query = query.where(Document.business_key == args["business_key"])
    if "instance_id" in args:
        query = query.where(Document.instance_id == args["instance_id"])
    query = query.order_by(Document.created_at.desc(), Document.id.desc())
    with services().session_factory() as session:
        return page_of_query(session, query, args, lambda row: dict(row._mapping))


@bp.route("/<int:document_id>", methods=["GET"])
@bp.response(200, {"type": "string", "format": "binary"}, content_type="application/pdf",
             description="The document's bytes as an attachment; its ETag is the SHA-256 of the bytes.")
@errors(bp, 404, 503)
def document_download(document_id: int):
    """Download a document (If-None-Match with its ETag answers 304)."""
    session_factory = services().session_factory
    instance_id, _ = document_owner(session_factory, check_id(document_id, "document"))
    check(actor(), Op.INSTANCE_READ, _relation(instance_id), f"document {document_id}")
    doc, content = get_document(session_factory, document_id)
    response = send_file(io.BytesIO(content), mimetype=doc.content_type, as_attachment=True,
                         download_name=doc.filename, etag=doc.sha256, conditional=True)
    # Behind a token: a shared cache must not keep it, the browser revalidates with the ETag.
    response.cache_control.private = True
    response.cache_control.no_cache = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _relation(instance_id: int | None) -> Scope:
    """How the user relates to the document's instance; a document of no (or a vanished) instance is nobody's."""
    if instance_id is None:
        return Scope.ALL
    try:
        return viewer().instance_relation(instance_id)
    except NotFound:
        return Scope.ALL
