"""The bench's table (stdout) and its JSON twin (bench/results/), with each figure checked against the issue."""

import json
import statistics
from pathlib import Path


def spread(samples: list[float], fmt: str = "{:.1f}") -> str:
    if not samples:
        return "-"
    med = statistics.median(samples)
    if len(samples) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(samples))}-{fmt.format(max(samples))}]"


def figures(results: dict) -> list[dict]:
    """Each figure of issue 7 with its measured value and whether it is met."""
    out = []

    def add(name, value, target, ok, unit=""):
        out.append({"figure": name, "value": value, "target": target, "met": bool(ok), "unit": unit})

    ratios = results.get("throughput", {}).get("ratios", {})
    if "engine_sqlite/raw_persisted" in ratios:
        value = statistics.median(ratios["engine_sqlite/raw_persisted"])
        add("engine SQLite / raw persisted ceiling", value, ">= 0.50 (aim 0.70)", value >= 0.5)
    if "engine_pg/engine_sqlite" in ratios:
        value = statistics.median(ratios["engine_pg/engine_sqlite"])
        add("engine PostgreSQL / engine SQLite", value, ">= 0.45", value >= 0.45)
    for backend, counts in results.get("sql_per_step", {}).items():
        worst_tx = max(c["write_transactions"] for c in counts.values())
        worst_st = max(c["max_statements"] for c in counts.values())
        add(f"write transactions per step ({backend})", worst_tx, "<= 1", worst_tx <= 1)
        add(f"SQL statements per step, worst command ({backend})", worst_st, "<= 10", worst_st <= 10)
    if "state_size" in results:
        value = results["state_size"]["ratio"]
        add("stored state / serialize_json", value, "<= 0.50", value <= 0.5)
    inbox = results.get("inbox", {}).get("100000")
    if inbox:
        add("inbox query p95 at 100k open tasks", inbox["inbox_p95_ms"], "< 20 ms", inbox["inbox_p95_ms"] < 20, "ms")
        add("completion p95 at 100k open tasks", inbox["complete_p95_ms"], "< 50 ms", inbox["complete_p95_ms"] < 50,
            "ms")
    mi = results.get("multi_instance")
    if mi and mi.get("ratios"):
        value = statistics.median(mi["ratios"])
        add("multi-instance 300 items / 20 items (time)", value, "<= 20", value <= 20)
    scale = results.get("scale")
    if scale and scale.get("ratios", {}).get("4/1"):
        value = statistics.median(scale["ratios"]["4/1"])
        add("4 workers / 1 worker on PostgreSQL (throughput)", value, ">= 1.5", value >= 1.5)
    return out


def table(results: dict) -> str:
    lines = ["", "Dealflow bench - medians [min-max over rounds]", ""]
    tp = results.get("throughput")
    if tp:
        lines.append(f"Throughput, bench diagram (instances/s; {tp['instances']} instances x {tp['rounds']} rounds, "
                     "start + 3 completions each)")
        for name, series in tp["series"].items():
            lines.append(f"  {name:<34} {spread(series):>24}")
        lines.append("  ratios (per round)")
        for name, values in tp["ratios"].items():
            lines.append(f"  {name:<34} {spread(values, '{:.2f}'):>24}")
        lines.append("")
    for backend, counts in results.get("sql_per_step", {}).items():
        lines.append(f"SQL per engine step ({backend}): statements (all / in the write transaction), "
                     "write transactions, transactions")
        for kind, c in counts.items():
            lines.append(f"  {kind:<10} {c['statements']:5.2f} / {c['statements_in_write_transaction']:5.2f}   "
                         f"max {c['max_statements']:3d}   write tx {c['write_transactions']:.2f}   "
                         f"tx {c['transactions']:.2f}")
        lines.append("")
    size = results.get("state_size")
    if size:
        lines.append(f"Stored state per instance: {size['stored_bytes']:.0f} B vs SpiffWorkflow serialize_json "
                     f"{size['serialize_json_bytes']:.0f} B (ratio {size['ratio']:.2f}; mean over wait states)")
        lines.append("")
    for open_tasks, m in results.get("inbox", {}).items():
        lines.append(f"Latency with {int(open_tasks):>7,} open tasks (SQLite): inbox query p50 {m['inbox_p50_ms']:.1f} "
                     f"ms p95 {m['inbox_p95_ms']:.1f} ms; completion p50 {m['complete_p50_ms']:.1f} ms "
                     f"p95 {m['complete_p95_ms']:.1f} ms")
        others = {sort: v for sort, v in m.get("inbox_by_sort", {}).items() if sort != "created"}
        if others:
            lines.append("    inbox by " + ", by ".join(f"{sort} p50 {v['p50_ms']:.1f} ms p95 {v['p95_ms']:.1f} ms"
                                                     for sort, v in others.items()))
    if results.get("inbox"):
        lines.append("")
    mi = results.get("multi_instance")
    if mi:
        lines.append("Parallel multi-instance approval, start + complete every item (s)")
        for items, samples in mi["seconds"].items():
            lines.append(f"  {items:>4} items {spread(samples, '{:.2f}'):>28}")
        lines.append(f"  300/20 ratio {spread(mi['ratios'], '{:.1f}'):>26}")
        for label, raw in mi.get("raw", {}).items():
            lines.append(f"  {label}: 20 items {raw['20']:.3f} s, 300 items {raw['300']:.2f} s (x{raw['ratio']:.0f}): "
                         "the library's own growth")
        lines.append("")
    scale = results.get("scale")
    if scale:
        lines.append(f"Scale-out on one PostgreSQL over HTTP (instances/s; {scale['clients']} client threads, "
                     f"{scale['seconds']} s per run)")
        for workers, samples in scale["series"].items():
            lines.append(f"  {workers} worker(s) {spread(samples):>26}")
        for name, values in scale["ratios"].items():
            lines.append(f"  ratio {name:<6} {spread(values, '{:.2f}'):>26}")
        lines.append("")
    lines.append("Figures (issue 7)")
    for f in figures(results):
        value = f["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"  {'MET   ' if f['met'] else 'MISSED'} {f['figure']:<52} {shown + f['unit']:>10}  "
                     f"target {f['target']}")
    return "\n".join(lines)


def write_json(results: dict, directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{stamp}.json"
    path.write_text(json.dumps({**results, "figures": figures(results)}, indent=2, default=str))
    return path
