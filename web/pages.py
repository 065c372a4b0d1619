"""The minimal HTML front door and a health check (the REST API and the inbox UI come next)."""

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import jsonify
from flask import render_template
from sqlalchemy import text

bp = Blueprint("pages", __name__)


@bp.get("/health")
def health():
    from app import services

    try:
        with services(current_app).session_factory() as session:
            session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok")


@bp.get("/")
def index():
    from app import services

    svc = services(current_app)
    return render_template(
        "index.html", definitions=svc.catalogue.list_definitions(),
        instances=svc.engine.list_instances(limit=20),
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
