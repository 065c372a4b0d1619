"""`make bench`: how fast Dealflow runs against the ceiling of SpiffWorkflow itself, and how it scales.

    .venv/bin/python bench/run.py            # everything, about 6 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # the same parts, fewer rounds and instances (about 3 minutes)
    .venv/bin/python bench/run.py --scale    # only the multi-process figure (1, 2, 4 gunicorn workers)

Script engine: every variant, the raw SpiffWorkflow ceilings included, runs its script tasks through the same
sandboxed script engine (engine.sandbox.make_script_engine over one ScriptPool of 2 worker processes), because
that is how Dealflow runs them in production. A script through the pool costs ~0.2 ms of IPC; had the ceilings
used SpiffWorkflow's stock in-process eval, that cost would count against the engine though it is no overhead of
the engine's. The bench's two scripts are one-liners, so the pool's round trip is all they cost.

Fairness: the variants run interleaved round by round (the order rotating), in one process with the same
logger settings, so a noisy neighbour on the machine hits them all; the table shows medians and the min-max
spread over rounds, and each ratio is taken per round.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.common import APPROVALS  # noqa: E402
from bench.common import BENCH_DIR  # noqa: E402
from bench.common import ENGINE_OPTIONS  # noqa: E402
from bench.common import quiet_spiff_loggers  # noqa: E402
from bench.engine_runs import PG_BASE  # noqa: E402
from bench.engine_runs import count_per_step  # noqa: E402
from bench.engine_runs import pg_database  # noqa: E402
from bench.engine_runs import run_instances  # noqa: E402
from bench.engine_runs import sqlite_database  # noqa: E402
from bench.engine_runs import state_sizes  # noqa: E402
from bench.raw import RawSpiff  # noqa: E402
from bench.raw import default_serializer  # noqa: E402
from bench.raw import open_raw_sqlite  # noqa: E402

PROFILES = {
    # rounds, instances per variant per round, HTTP instances, inbox queries/completions, MI rounds, scale rounds/s
    # Many short rounds: each ratio compares neighbouring seconds, so a noisy machine moves both sides alike.
    "default": dict(rounds=15, instances=50, http_instances=20, queries=300, completions=150, mi_rounds=9,
                    scale_rounds=10, scale_seconds=4.0),
    "quick": dict(rounds=2, instances=40, http_instances=20, queries=100, completions=60, mi_rounds=1,
                  scale_rounds=2, scale_seconds=3.0),
}


def throughput(p: dict, tmp: Path, pool, pg_url: str, log) -> dict:
    """The ceilings, the engine on SQLite and PostgreSQL, and HTTP, interleaved round by round."""
    from bench.http_runs import Client
    from bench.http_runs import make_token
    from bench.http_runs import run_sequential
    from bench.http_runs import start_server
    from engine.engine import Engine
    from engine.sandbox import make_script_engine

    raw = RawSpiff(make_script_engine(pool))
    raw_conn = open_raw_sqlite(tmp / "raw.sqlite")
    lite = sqlite_database(tmp / "engine.sqlite")
    pg = pg_database(pg_url)
    http_db = sqlite_database(tmp / "http.sqlite")
    token = make_token(http_db)
    server = start_server(http_db.url, workers=2, log=tmp / "gunicorn-http.log")
    client = Client(server.port, token)
    try:
        lite_engine = Engine(lite.session_factory, script_pool=pool, **ENGINE_OPTIONS)
        # The same without the workflow cache: every step deserializes, like the persisted ceiling does.
        cold_engine = Engine(lite.session_factory, script_pool=pool, workflow_cache=0)
        pg_engine = Engine(pg.session_factory, script_pool=pool, **ENGINE_OPTIONS)
        n, n_http = p["instances"], p["http_instances"]
        variants = {  # name -> run(count, first business number)
            "raw SpiffWorkflow, in memory": raw.run_in_memory,
            "raw SpiffWorkflow + SQLite state": lambda c, f: raw.run_persisted(raw_conn, c, f),
            "Dealflow engine, SQLite": lambda c, f: run_instances(lite_engine, c, f),
            "Dealflow engine, SQLite, no cache": lambda c, f: run_instances(cold_engine, c, f + 50_000_000),
            "Dealflow engine, PostgreSQL": lambda c, f: run_instances(pg_engine, c, f),
            "Dealflow HTTP (gunicorn, SQLite)": lambda c, f: run_sequential(client, c, f),
        }
        sizes = {name: (n_http if name.startswith("Dealflow HTTP") else n) for name in variants}
        for run in variants.values():  # warm-up: caches, pools, connections, the server's workers
            run(10, 10_000_000)
        series = {name: [] for name in variants}
        names = list(variants)
        for r in range(p["rounds"]):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                start = time.perf_counter()
                variants[name](sizes[name], r * sizes[name])
                series[name].append(sizes[name] / (time.perf_counter() - start))
            log(f"  round {r + 1}/{p['rounds']}: " + ", ".join(f"{v[-1]:.0f}/s" for v in series.values()))
        per_round = list(zip(*series.values(), strict=True))
        ix = {name: k for k, name in enumerate(names)}

        def ratio(a, b):
            return [row[ix[a]] / row[ix[b]] for row in per_round]

        ratios = {
            "engine_sqlite/raw_persisted": ratio("Dealflow engine, SQLite", "raw SpiffWorkflow + SQLite state"),
            "engine_sqlite_no_cache/raw_persisted": ratio("Dealflow engine, SQLite, no cache",
                                                          "raw SpiffWorkflow + SQLite state"),
            "engine_sqlite/raw_in_memory": ratio("Dealflow engine, SQLite", "raw SpiffWorkflow, in memory"),
            "raw_persisted/raw_in_memory": ratio("raw SpiffWorkflow + SQLite state", "raw SpiffWorkflow, in memory"),
            "engine_pg/engine_sqlite": ratio("Dealflow engine, PostgreSQL", "Dealflow engine, SQLite"),
            "http_sqlite/engine_sqlite": ratio("Dealflow HTTP (gunicorn, SQLite)", "Dealflow engine, SQLite"),
        }
        counts = {"sqlite": count_per_step(lite, lite_engine), "postgresql": count_per_step(pg, pg_engine)}
        size = state_sizes(lite, lite_engine, default_serializer())
        return {"throughput": {"rounds": p["rounds"], "instances": n, "http_instances": n_http, "series": series,
                               "ratios": ratios},
                "sql_per_step": counts, "state_size": size}
    finally:
        client.close()
        server.stop()
        raw_conn.close()
        for db in (lite, pg, http_db):
            db.close()


def inbox(p: dict, tmp: Path, pool, log) -> dict:
    from bench.inbox_latency import fill
    from bench.inbox_latency import measure
    from engine.engine import Engine

    db = sqlite_database(tmp / "inbox.sqlite")
    try:
        engine = Engine(db.session_factory, script_pool=pool, **ENGINE_OPTIONS)
        out, filled = {}, 0
        for size in (10_000, 100_000):
            start = time.perf_counter()
            fill(db, filled, size - filled)
            filled = size
            log(f"  filled {size:,} open tasks in {time.perf_counter() - start:.1f} s")
            out[str(size)] = measure(db, engine, p["queries"], p["completions"], size)
            log(f"  {size:,}: {out[str(size)]}")
        return out
    finally:
        db.close()


def multi_instance(p: dict, tmp: Path, pool, log) -> dict:
    from bench.multi_instance import approve_all
    from bench.multi_instance import raw_approve_all
    from engine.engine import Engine
    from engine.workflow import DealflowWorkflow

    db = sqlite_database(tmp / "approvals.sqlite", APPROVALS)
    try:
        engine = Engine(db.session_factory, script_pool=pool, **ENGINE_OPTIONS)
        # Warm-up at both sizes: the first 300-item start compiles its 300-row INSERTs (once per process).
        approve_all(engine, 20)
        approve_all(engine, 300)
        seconds = {"20": [], "300": []}
        for r in range(p["mi_rounds"]):
            for items in ((20, 300) if r % 2 == 0 else (300, 20)):
                # The 20-item run lasts ~60 ms, where one hiccup of the machine moves the ratio by a third: each
                # round takes the median of 5 of them.
                runs = [approve_all(engine, items) for _ in range(5 if items == 20 else 1)]
                seconds[str(items)].append(statistics.median(runs))
            log(f"  round {r + 1}: 20 items {seconds['20'][-1]:.2f} s, 300 items {seconds['300'][-1]:.2f} s")
        ratios = [b / a for a, b in zip(seconds["20"], seconds["300"], strict=True)]
        raw = {}
        for label, persist, workflow_class in (
                ("raw SpiffWorkflow, in memory", False, None),
                ("raw SpiffWorkflow + state JSON", True, None),
                ("SpiffWorkflow with Dealflow's workflow class, in memory", False, DealflowWorkflow)):
            small = min(raw_approve_all(20, engine._script_engine, persist, workflow_class) for _ in range(3))
            large = min(raw_approve_all(300, engine._script_engine, persist, workflow_class)
                        for _ in range(p["mi_rounds"]))
            raw[label] = {"20": small, "300": large, "ratio": large / small}
            log(f"  {label}: 20 items {small:.3f} s, 300 items {large:.2f} s (x{large / small:.0f})")
        return {"seconds": seconds, "ratios": ratios, "raw": raw}
    finally:
        db.close()


def scale(p: dict, tmp: Path, pg_url: str, log, clients: int = 8) -> dict:
    """1, 2 and 4 gunicorn workers on one PostgreSQL, each driven by the same load generator.

    The three servers run side by side, each warmed up once (an idle one costs a sweeper's tick a second); then
    short runs take turns round by round, in alternating order, so that each ratio compares runs seconds apart.
    This machine's speed drifts by 10-20% over minutes: one server at a time, a run of each every minute, made
    the ratio a matter of when each ran.
    """
    from bench.http_runs import make_token
    from bench.http_runs import run_load
    from bench.http_runs import start_server

    db = pg_database(pg_url)
    servers = {}
    try:
        token = make_token(db)
        for workers in ("1", "2", "4"):
            servers[workers] = start_server(db.url, workers=int(workers), log=tmp / f"gunicorn-{workers}.log")
        first = 0
        for workers, server in servers.items():
            # Warm every worker up (each builds its app, script pool and caches on its first requests).
            run_load(server.port, token, clients, 3.0 + 1.5 * int(workers), first)
            first += 10_000_000
        db.analyze()
        series = {workers: [] for workers in servers}
        for r in range(p["scale_rounds"]):
            for workers in (("1", "2", "4") if r % 2 == 0 else ("4", "2", "1")):
                done, elapsed = run_load(servers[workers].port, token, clients, p["scale_seconds"], first)
                first += 10_000_000
                series[workers].append(done / elapsed)
            log(f"  round {r + 1}: " + ", ".join(f"{w} worker(s) {v[-1]:.1f}/s" for w, v in series.items()))
        ratios = {f"{w}/1": [a / b for a, b in zip(series[w], series["1"], strict=True)] for w in ("2", "4")}
        return {"series": series, "ratios": ratios, "clients": clients, "seconds": p["scale_seconds"]}
    finally:
        for server in servers.values():
            server.stop()
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and instances (about 3 minutes)")
    parser.add_argument("--scale", action="store_true", help="only the multi-process (1, 2, 4 workers) figure")
    parser.add_argument("--no-scale", action="store_true", help="everything but the multi-process figure")
    parser.add_argument("--pg-url", default=PG_BASE, help="a PostgreSQL server URL (a throw-away database is made)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="where the JSON goes")
    args = parser.parse_args(argv)
    p = PROFILES["quick" if args.quick else "default"]
    quiet_spiff_loggers()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    from engine.sandbox import ScriptPool

    started = time.time()
    results: dict = {"profile": "quick" if args.quick else "default", "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="dealflow-bench-") as tmp_name, ScriptPool(workers=2) as pool:
        tmp = Path(tmp_name)
        pool.start()
        if not args.scale:
            log("throughput rounds ...")
            results.update(throughput(p, tmp, pool, args.pg_url, log))
            log("inbox latency ...")
            results["inbox"] = inbox(p, tmp, pool, log)
            log("multi-instance ...")
            results["multi_instance"] = multi_instance(p, tmp, pool, log)
        if not args.no_scale:
            log("scale-out ...")
            results["scale"] = scale(p, tmp, args.pg_url, log)
    results["seconds"] = time.time() - started
    print(report.table(results))
    path = report.write_json(results, args.out, time.strftime("%Y%m%d-%H%M%S"))
    print(f"\n(took {results['seconds'] / 60:.1f} min; JSON: {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
