"""The benchmark command keeps working: a tiny run on the embedded store and a real Neo4j.

No timing is asserted (machines differ); what is checked is what a user of `python -m bench.run`
would notice: it finishes, ingests every decision, writes its results and prints the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from contextgraph.config import Neo4jSettings

ROOT = Path(__file__).resolve().parent.parent


def test_bench_runs_at_a_tiny_size_on_both_stores(neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NEO4J_URI": neo4j_settings.uri or "",
        "NEO4J_USERNAME": neo4j_settings.username,
        "NEO4J_PASSWORD": neo4j_settings.password.get_secret_value(),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--sizes",
            "200",
            "--stores",
            "both",
            "--no-fetch",
            "--no-warmup",
            "--queries",
            "5",
            "--new",
            "20",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| embedded | 200 |" in proc.stdout and "| neo4j | 200 |" in proc.stdout

    results = json.loads((tmp_path / "latest.json").read_text())
    assert {r["store"] for r in results["runs"]} == {"embedded", "neo4j"}
    for run in results["runs"]:
        assert run["ingest"]["decisions"] == 200 and run["ingest"]["rejected"] == 0
        # The ceiling writes the very graph the ingest writes (SyncState aside).
        assert run["ceiling"]["nodes"] + run["ceiling"]["edges"] <= run["ingest"]["elements"]
        # An idle sync over HTTP reads a few pages again and writes nothing (on Neo4j, decisions with
        # two proposals once looked changed on every re-read: proposals came back in any order).
        # Six calls: DAGs, assets, runs, task instances, HITL details and the token.
        assert run["sync"]["idle"]["api_calls"] == 6 and run["sync"]["idle"]["written"] == 0
        assert run["sync"]["new"]["new_decisions"] == 20
        # every figure comes with its same-run reference: queries with their baseline
        assert 0 < run["queries"]["baseline_p50_ms"] <= run["queries"]["p50_ms"]
    assert len(list(tmp_path.glob("*.json"))) == 2  # <timestamp>.json and latest.json


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.run", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_stores_accepts_what_its_help_says_and_refuses_the_rest() -> None:
    """`--stores` takes neo4j, embedded, both, none or a comma list; anything else is a usage error."""
    help_text = bench("--help").stdout
    assert "neo4j, embedded, both or none" in help_text
    shown = str(ROOT / "bench" / "results" / "latest.json")
    for value in ("neo4j", "embedded", "both", "none", "embedded,neo4j", "Both"):
        proc = bench("--stores", value, "--show", shown)
        assert proc.returncode == 0, (value, proc.stderr[-2000:])
    for value in ("all", "neo4j,sqlite", "neo4j embedded"):
        proc = bench("--stores", value, "--show", shown)
        assert proc.returncode == 2, value
        assert "unknown store" in proc.stderr and "neo4j, embedded, both or none" in proc.stderr


def test_ceiling_writes_each_node_and_shared_edge_once_across_chunks(tmp_path: Path) -> None:
    """The ceiling loads with plain CREATE/COPY: a node (e.g. a DAG version every run is under)
    repeated in a later chunk breaks the uniqueness constraint, and an edge between shared nodes
    repeated would be written twice. In three chunks it writes what it writes in one."""
    written = {}
    for chunk in (40, 120):
        out = tmp_path / str(chunk)
        proc = bench(
            "--sizes", "120", "--stores", "embedded", "--no-fetch", "--no-embed", "--steps", "ceiling",
            "--ceiling-chunk", str(chunk), "--out", str(out),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        [run] = json.loads((out / "latest.json").read_text())["runs"]
        assert "error" not in run["ceiling"], run["ceiling"]
        # The ceiling writes the very graph the ingest writes (SyncState aside).
        assert 0 < run["ceiling"]["nodes"] + run["ceiling"]["edges"] <= run["ingest"]["elements"]
        written[chunk] = (run["ceiling"]["nodes"], run["ceiling"]["edges"])
    assert written[40] == written[120]
