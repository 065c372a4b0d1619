"""GET /api/v1/process-definitions and a definition's BPMN XML."""

from flask import Response
from flask_smorest import Blueprint

from engine.errors import NotFound
from web.api.common import actor
from web.api.common import errors
from web.api.common import page_of_list
from web.api.common import services
from web.api.policy import Op
from web.api.policy import require
from web.api.schemas import MAX_INT
from web.api.schemas import DefinitionPage
from web.api.schemas import DefinitionQuerySchema

bp = Blueprint("api_definitions", __name__, url_prefix="/api/v1/process-definitions",
               description="Deployed process definitions, every version.")


@bp.route("", methods=["GET"])
@bp.arguments(DefinitionQuerySchema, location="query")
@bp.response(200, DefinitionPage)
@errors(bp, 400, 403, 503)
def definition_list(args):
    """All versions of every process (or of one key), by key, latest version first."""
    require(actor(), Op.DEFINITION_READ)
    return page_of_list(services().catalogue.list_definitions(args.get("key")), args)


@bp.route("/<string:key>/versions/<string:version>/xml", methods=["GET"])
@bp.response(200, {"type": "string"}, content_type="application/xml", description="The BPMN file as deployed.")
@errors(bp, 403, 404, 503)
def definition_xml(key: str, version: str):
    """The BPMN XML of one version ('latest' for the newest)."""
    require(actor(), Op.DEFINITION_READ)
    _, xml = services().catalogue.get_xml(key, _version(key, version))
    return Response(xml, mimetype="application/xml")


def _version(key: str, version: str) -> int | str:
    if version == "latest":
        return version
    if version.isascii() and version.isdigit() and 0 < int(version) <= MAX_INT:
        return int(version)
    raise NotFound(f"Process {key!r} has no version {version!r}; use a version number or 'latest'.")
