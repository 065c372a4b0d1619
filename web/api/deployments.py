"""POST /api/v1/deployments: upload BPMN files (multipart, one or more 'file' parts)."""

from pathlib import PurePath

from flask import current_app
from flask_smorest import Blueprint

from engine.errors import InvalidInput
from engine.errors import PayloadTooLarge
from web.api.common import actor
from web.api.common import errors
from web.api.common import services
from web.api.policy import Op
from web.api.policy import require
from web.api.schemas import DeployFilesSchema
from web.api.schemas import DeploymentSchema

bp = Blueprint("api_deployments", __name__, url_prefix="/api/v1/deployments",
               description="Deploy BPMN diagrams as new versions of their processes.")


@bp.route("", methods=["POST"])
@bp.arguments(DeployFilesSchema, location="files")
@bp.response(201, DeploymentSchema, description="New versions were deployed.")
@bp.alt_response(200, schema=DeploymentSchema, description="Every file was already deployed; nothing changed.")
@errors(bp, 400, 403, 409, 413, 422, 503)
def deployment_create(body):
    """Validate and deploy; every problem is listed at once (422) and then nothing is deployed."""
    require(actor(), Op.DEPLOY)
    max_bytes = current_app.config["DEALFLOW_MAX_UPLOAD_BYTES"]
    files = [(_name(storage.filename, n), _content(storage, max_bytes)) for n, storage in enumerate(body["file"])]
    result = services().catalogue.deploy(files, actor().username, max_bytes=max_bytes)
    payload = {"deployment_id": result.deployment_id, "created": result.created, "unchanged": result.unchanged}
    return payload, 201 if result.created else 200


def _name(filename: str | None, index: int) -> str:
    name = PurePath((filename or "").replace("\\", "/")).name or f"upload-{index + 1}.bpmn"
    if len(name) > 200 or "\x00" in name:
        raise InvalidInput(f"The file name {name[:40]!r}... is too long or not text; rename the file (at most 200 "
                           "characters).")
    return name


def _content(storage, max_bytes: int) -> bytes:
    data = storage.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The file {storage.filename!r} is larger than {max_bytes} bytes; split the diagram "
                              "or remove embedded images.", details={"file": storage.filename, "max_bytes": max_bytes})
    return data
