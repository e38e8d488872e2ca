"""Precedent queries on a large Neo4j graph without a full ingest, with and without filters.

    .venv/bin/python -m bench.neo4j_scale --size 100000 [--queries 100] [--profile]

Loads the graph the ingest makes (bench/ceiling.py's rows: the same mapping, keys and content
hashes) by `UNWIND … CREATE` into a Neo4j (NEO4J_URI, whose database is wiped, else a Neo4j 5.26
of our own), runs the real embedding pass (`embed_pending`), then times `find_similar_decisions`
as `bench.run`'s queries step does, once per filter: none, the query's DAG, its decision point
(DAG and task), its deployment, and `narrow`: the DAG with the fewest decisions (5 %), whatever the
query's DAG. `--profile` adds the PROFILE db hits and rows of each
precedent query (load-independent figures). `--serve` keeps the server (and its data directory,
`--data-dir`) after the run and prints its URI, for more runs with NEO4J_URI and `--reuse`.

Prints one JSON line: load and embedding seconds, and per filter p50/p95/max and the mean number
of queries sent to the server per precedent query (`round_trips`), the same-run baseline (embedding
the query and one trivial round trip) and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import ceiling
from bench.run import NEW_DECISIONS, _embedder, _load, _wipe_neo4j, neo4j_server

FILTERS = ("none", "dag", "point", "deployment", "narrow")


def open_store(conn: dict[str, str]) -> Any:
    from pydantic import SecretStr

    from contextgraph.config import Neo4jSettings
    from contextgraph.store import Neo4jStore

    settings = Neo4jSettings(uri=conn["uri"], username=conn["user"], password=SecretStr(conn["password"]))
    return Neo4jStore.connect(settings)


def build(store: Any, size: int, seed: int) -> dict[str, Any]:
    """Wipe the database and write `size` decisions' graph, then embed them."""
    from bench.synthetic import History
    from contextgraph.ingest.embeddings import embed_pending

    _wipe_neo4j(store)
    store.ensure_schema()
    history = History(size + NEW_DECISIONS, seed)
    began = time.perf_counter()
    result = ceiling.neo4j_ceiling(
        store._driver, store.database, ceiling.graph_chunks(history, size, chunk=2000), rows_per_tx=5000
    )
    load_seconds = time.perf_counter() - began
    embedder = _embedder()
    if embedder is None:
        raise SystemExit("no embedding model: set CONTEXTGRAPH_EMBEDDING_MODEL")
    report = embed_pending(store, embedder)
    return {
        "elements": result.elements,
        "load_seconds": round(load_seconds, 1),
        "embed_seconds": round(report.seconds, 1),
    }


def cases(size: int, seed: int, n: int) -> list[tuple[str, tuple[str, str]]]:
    """`n` query texts of decisions not in the graph, with their decision points."""
    from bench.synthetic import History

    history = History(size + NEW_DECISIONS, seed)
    out = []
    for j in range(n):
        i = size + j % NEW_DECISIONS
        record = history.hitl_detail(i)
        scenario = history.scenario(i)
        out.append((f"{record['subject']}\n{record['body']}", (scenario.dag_id, scenario.review)))
    return out


def filter_args(kind: str, point: tuple[str, str]) -> dict[str, Any]:
    from contextgraph.model import DEFAULT_DEPLOYMENT

    if kind == "dag":
        return {"dag_id": point[0]}
    if kind == "point":
        return {"dag_id": point[0], "task_id": point[1]}
    if kind == "deployment":
        return {"deployment": DEFAULT_DEPLOYMENT}
    if kind == "narrow":
        return {"dag_id": rarest_dag()}
    return {}


def rarest_dag() -> str:
    """The synthetic history's DAG with the fewest decisions (deploy_gate, 5 % of them)."""
    from bench.synthetic import SCENARIOS

    return min(SCENARIOS, key=lambda s: s.weight).dag_id


@contextlib.contextmanager
def counting(store: Any) -> Iterator[list[int]]:
    """Counts the queries the store sends to the server (each passes `Neo4jStore._execute_full`,
    the one place that calls the driver): `[n]`."""
    original = store._execute_full
    sent = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return original(*args, **kwargs)

    store._execute_full = counted
    try:
        yield sent
    finally:
        del store._execute_full


def time_queries(store: Any, embedder: Any, queries: list[tuple[str, tuple[str, str]]]) -> dict[str, Any]:
    """p50/p95/max per filter kind, the mean round trips per query, with the same-run baseline.
    Three warm-up queries per kind come first (query plans, the model, and what the store learns
    of a filter's selectivity)."""
    from contextgraph.retrieval.precedents import find_similar_decisions

    out: dict[str, Any] = {}
    for kind in FILTERS:
        for text, point in queries[:3]:  # warm-up: caches, query plans, the model
            find_similar_decisions(store, embedder, text, point=point, k=5, **filter_args(kind, point))
        load = _load()
        times = []
        found = 0
        with counting(store) as sent:
            for text, point in queries:
                began = time.perf_counter()
                found += len(
                    find_similar_decisions(
                        store, embedder, text, point=point, k=5, **filter_args(kind, point)
                    )
                )
                times.append((time.perf_counter() - began) * 1000)
        times.sort()
        out[kind] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
            "max_ms": round(times[-1], 1),
            "mean_results": round(found / len(times), 2),
            "round_trips": round(sent[0] / len(times), 2),
            "load": [load, _load()],
        }
    floor = []
    for text, _point in queries:
        began = time.perf_counter()
        embedder.embed([text])
        store.query("RETURN 1 AS one", {})
        floor.append((time.perf_counter() - began) * 1000)
    floor.sort()
    out["baseline"] = {
        "p50_ms": round(statistics.median(floor), 1),
        "p95_ms": round(floor[max(0, int(len(floor) * 0.95) - 1)], 1),
    }
    return out


def profile(store: Any, embedder: Any, queries: list[tuple[str, tuple[str, str]]]) -> dict[str, Any]:
    """Total PROFILE db hits and rows of every Cypher query one precedent search sends, per filter
    (the mean over the queries); load-independent."""
    from contextgraph.retrieval.precedents import find_similar_decisions

    original = store._execute_full
    seen: list[tuple[str, int, int]] = []

    def profiled(cypher: str, params: Any, *, write: bool, timeout: float | None = None) -> Any:
        rows, summary = original("PROFILE " + cypher, params, write=write, timeout=timeout)
        hits, produced = _plan_totals(summary.profile or {})
        name = next((ln for ln in cypher.splitlines() if not ln.startswith("//")), "")[:60]
        seen.append((name, hits, produced))
        return rows, summary

    out: dict[str, Any] = {}
    store._execute_full = profiled
    try:
        for kind in FILTERS:
            per_query: dict[str, list[int]] = {}
            totals = []
            for text, point in queries:
                seen.clear()
                find_similar_decisions(store, embedder, text, point=point, k=5, **filter_args(kind, point))
                totals.append(sum(h for _, h, _ in seen))
                for name, hits, _ in seen:
                    per_query.setdefault(name, []).append(hits)
            out[kind] = {
                "db_hits_mean": round(statistics.mean(totals)),
                "round_trips": len(seen),
                "by_query": {k: round(statistics.mean(v)) for k, v in per_query.items()},
            }
    finally:
        del store._execute_full
    return out


def _plan_totals(plan: dict[str, Any]) -> tuple[int, int]:
    hits = int(plan.get("dbHits", 0))
    rows = int(plan.get("rows", 0))
    for child in plan.get("children", []):
        h, _ = _plan_totals(child)
        hits += h
    return hits, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.neo4j_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="query the graph already there")
    parser.add_argument("--profile", action="store_true", help="add the PROFILE db hits per filter")
    parser.add_argument("--serve", action="store_true", help="leave our Neo4j running; print its URI")
    parser.add_argument("--data-dir", type=Path, help="our Neo4j's data directory")
    args = parser.parse_args(argv)
    with neo4j_server(args.data_dir, keep=args.serve) as conn:
        if args.serve:
            print(json.dumps({"serving": conn}), flush=True)
        store = open_store(conn)
        out: dict[str, Any] = {"size": args.size}
        if not args.reuse:
            out["build"] = build(store, args.size, args.seed)
        embedder = _embedder()
        queries = cases(args.size, args.seed, args.queries)
        out["queries"] = time_queries(store, embedder, queries)
        if args.profile:
            out["profile"] = profile(store, embedder, queries[:10])
        store.close()
        print(json.dumps(out), flush=True)
        while args.serve and not os.environ.get("NEO4J_URI"):
            time.sleep(3600)  # the server lives as long as this process
    return 0


if __name__ == "__main__":
    sys.exit(main())
