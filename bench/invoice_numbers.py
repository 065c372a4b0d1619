"""50 concurrent invoice renders through the real document.render handler: 50 distinct consecutive numbers?

    .venv/bin/python bench/invoice_numbers.py [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [-n 50]

Each render is a real WeasyPrint PDF (~0.5 s), stored through engine.documents with its number taken in the
transaction that stores it. Prints, per backend: how many documents, whether the numbers are 1..n without gaps or
duplicates, and the wall time.
"""

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timer_latency import pg_database  # noqa: E402
from bench.timer_latency import sqlite_url  # noqa: E402
from engine.database import create_db_engine  # noqa: E402
from engine.database import make_session_factory  # noqa: E402
from engine.documents import DocumentServices  # noqa: E402
from engine.handlers import HandlerRequest  # noqa: E402
from handlers import TEMPLATES  # noqa: E402
from handlers.documents import DocumentHandler  # noqa: E402

DEAL = {"client": {"name": "Ромашка", "legal_form": "ООО"}, "deal_title": "Внедрение CRM", "currency": "RUB",
        "items": [{"name": "Лицензия CRM на год", "qty": 1, "unit_price": 1234.5}], "vat_rate": 20}


def run(url: str, count: int) -> dict:
    db = create_db_engine(url)
    services = DocumentServices(make_session_factory(db), lambda: datetime.now(UTC))
    handler = DocumentHandler({"DEALFLOW_LOCALE": "ru_RU"}, TEMPLATES / "documents")

    def render(i: int) -> str:
        request = HandlerRequest(topic="document.render", parameters={"template": "invoice"}, instance_id=i,
                                 business_key=f"DEAL-{i}", variables=DEAL, idempotency_key=f"bench-{i}",
                                 element_id="Render_invoice", attempt=1, services=services)
        return handler(request)["document"]["number"]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        numbers = list(pool.map(render, range(count)))
    elapsed = time.perf_counter() - started
    db.dispose()
    year = datetime.now(UTC).year
    return {"documents": len(numbers), "distinct": len(set(numbers)),
            "consecutive": sorted(numbers) == [f"{year}-{n:06d}" for n in range(1, count + 1)],
            "seconds": round(elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("-n", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("SQLite    ", run(sqlite_url(Path(tmp)), args.n))
    with pg_database(args.pg_url) as url:
        print("PostgreSQL", run(url, args.n))


if __name__ == "__main__":
    main()
