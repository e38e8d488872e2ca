"""A history shaped like a large deployment, synced from scratch at growing sizes: how time and
memory grow.

    .venv/bin/python -m bench.history [--decisions 20000] [--fractions 0.1,0.3,1] [--store embedded]

The target is 200 DAGs, 1M task instances and 20k decisions. The synthetic generator
(bench/synthetic.py) has 5 HITL DAGs of 5 tasks, one decision per run, so a history of N decisions
has 3N DAG runs' worth of API records (N runs, 5N task instances, N HITL details, ~1.2N XComs);
`--decisions` scales it down to what this machine holds (state the scaling with the figures).
For each fraction f of it, in a fresh process and a fresh store: the first full sync over HTTP
against the replay of Airflow's REST API (bench/replay.py, `maximum_page_limit` 1000), then an
idle sync (run twice; the repeat is the figure), and the process's peak RSS. The growth exponent
of each metric is the slope of a least-squares fit of log(metric) on log(size): 1 is linear.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPLAY_ARGS = ("--maximum-page-limit", "1000")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def work(spec: dict[str, Any]) -> dict[str, Any]:
    """One size in this process: replay server, full sync, idle syncs, peak RSS."""
    from pydantic import SecretStr

    from bench.run import _fresh
    from contextgraph.config import AirflowSettings
    from contextgraph.ingest.source import AirflowSource
    from contextgraph.ingest.sync import Sync

    replay = ["-m", "bench.replay", "--decisions", str(spec["size"]), "--seed", str(spec["seed"])]
    proc = subprocess.Popen(
        [sys.executable, *replay, "--port", "0", *REPLAY_ARGS],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        settings = AirflowSettings(url=url, username="bench", password=SecretStr("bench"), page_size=1000)
        store = _fresh(spec)
        load = _load()
        out: dict[str, Any] = {"size": spec["size"]}
        for name in ("first", "idle", "idle_repeat"):
            began = time.perf_counter()
            with AirflowSource(settings) as source:
                report = Sync(source, store).run()
            out[name] = {
                "seconds": round(time.perf_counter() - began, 3),
                "api_calls": report.api_calls,
                "written": report.written,
            }
        store.close()
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["load"] = [load, _load()]
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def exponent(sizes: list[float], values: list[float]) -> float | None:
    """Slope of log(value) on log(size) by least squares (None with fewer than two points)."""
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True) if s > 0 and v > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return round(sum((x - mx) * (y - my) for x, y in points) / sxx, 2) if sxx else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="decisions at 100%% of the history")
    parser.add_argument("--fractions", default="0.1,0.3,1")
    parser.add_argument("--store", default="embedded", choices=("embedded", "neo4j"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(work(json.loads(args.worker))), flush=True)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="contextgraph-history-"))
    conn: dict[str, str] = {}
    if args.store == "neo4j":
        conn = {
            "uri": os.environ["NEO4J_URI"],
            "user": os.environ.get("NEO4J_USERNAME", "neo4j"),
            "password": os.environ.get("NEO4J_PASSWORD", ""),
        }
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.history", *sys.argv[1:]]),
        "scaling": (
            f"target 200 DAGs / 1,000,000 task instances / 20,000 decisions; measured on the synthetic "
            f"5-DAG history at 100% = {args.decisions:,} decisions, {5 * args.decisions:,} task "
            f"instances, {args.decisions:,} DAG runs"
        ),
        "store": args.store,
        "load_at_start": _load(),
        "runs": [],
    }
    for fraction in [float(f) for f in args.fractions.split(",")]:
        size = max(1, round(args.decisions * fraction))
        spec = {
            "store": args.store,
            "size": size,
            "seed": args.seed,
            "path": str(workdir / f"h{size}.lbdb"),
            **conn,
        }
        print(f"[history {datetime.now():%H:%M:%S} load {_load()[0]}] {size:,} decisions", file=sys.stderr)
        from bench.run import run_json

        row = run_json(
            ["bench.history", "--worker", json.dumps(spec)], failed=f"size {size} failed", error=SystemExit
        )
        row["fraction"] = fraction
        results["runs"].append(row)
        print(json.dumps(row), file=sys.stderr)
    sizes = [r["size"] for r in results["runs"]]
    results["growth_exponents"] = {
        "first_sync_seconds": exponent(sizes, [r["first"]["seconds"] for r in results["runs"]]),
        "idle_sync_seconds": exponent(sizes, [r["idle_repeat"]["seconds"] for r in results["runs"]]),
        "peak_rss_mb": exponent(sizes, [r["peak_rss_mb"] for r in results["runs"]]),
    }
    results["load_at_end"] = _load()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"history-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['scaling']}; store {args.store}")
    print("| fraction | decisions | first full sync s (calls) | idle sync s, repeat (calls) | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|")
    for r in results["runs"]:
        first, idle = r["first"], r["idle_repeat"]
        print(
            f"| {r['fraction']:.0%} | {r['size']:,} | {first['seconds']:.1f} ({first['api_calls']}) "
            f"| {idle['seconds']:.2f} ({idle['api_calls']}) | {r['peak_rss_mb']:.0f} |"
        )
    print(f"growth exponents (log-log slope, 1 = linear): {results['growth_exponents']}")
    print(
        f"load {results['load_at_start']} → {results['load_at_end']}; "
        f"results: {args.out}/history-{stamp}.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
