"""Precedent queries on a large embedded store without a full ingest.

    .venv/bin/python -m bench.scale_queries --size 100000 [--queries 100] [--keep PATH]

A full `Sync` of 100k decisions into the embedded store takes hours on a busy 2-core machine; the
query path does not depend on how the graph was written. So this loads the same graph the ingest
makes (bench/ceiling.py's rows: the same mapping, keys and content hashes) with Ladybug's `COPY`
from Arrow, reopening the database after each chunk (Ladybug holds memory per `COPY` until it is
closed), then runs the real embedding pass (`embed_pending`, which rebuilds the sidecar index) and
times `find_similar_decisions` exactly as `bench.run`'s queries step does (a worker process).

Prints one JSON line: load seconds, embedding-pass seconds, peak RSS of the load+embed process
(MB), the query figures of `bench.run.work_queries`, and the load average at each step. With
`--refresh N`, then also what keeping the index beside the store up to date costs at this size:
`refresh_indexes(force=True)` with nothing changed (the store's narrow hashes compared with the
state the index was saved from: `current` in its report), and `forget` of N decisions (every
answered decision read again, BM25 rebuilt, the graph updated: only they are removed), each with
its seconds and what the index save did (`SidecarIndex.build`'s report), and the peak RSS of that
process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ceiling
from bench.run import NEW_DECISIONS, _embedder, _load, _peak_rss_mb, run_json


def build(size: int, path: Path, seed: int = 0, chunk: int = 2000) -> dict[str, Any]:
    """Write `size` decisions' graph into a new embedded store at `path`, embed and index them.
    `chunk`: decisions per COPY round (their graph is held as rows at once: 5,000 held ~350 MB)."""
    from bench.synthetic import History
    from contextgraph import model as m
    from contextgraph.ingest.embeddings import embed_pending
    from contextgraph.store import EmbeddedStore

    history = History(size + NEW_DECISIONS, seed)
    store = EmbeddedStore(path)
    store.ensure_schema()
    store.write(m.GraphBatch(nodes=[m.SchemaVersion()]))  # the ingest's stamp: this version's graph
    load = _load()
    began = time.perf_counter()
    copied = ceiling.CeilingResult()
    seen: set[str] = set()  # shared nodes (DAGs, options, actors) are written once, not per chunk
    for batch in ceiling.graph_chunks(history, size, chunk=chunk):
        part = ceiling.embedded_ceiling(store._connection(), iter([batch]), seen)
        copied.seconds += part.seconds
        copied.nodes += part.nodes
        copied.edges += part.edges
        store.close()  # frees what the COPYs held
    load_seconds = time.perf_counter() - began
    embedder = _embedder()
    if embedder is None:
        raise SystemExit("no embedding model: set CONTEXTGRAPH_EMBEDDING_MODEL")
    report = embed_pending(store, embedder)
    store.close()
    return {
        "decisions": size,
        "elements": copied.elements,
        "load_seconds": round(load_seconds, 1),
        "copy_seconds": round(copied.seconds, 1),
        "embed_seconds": round(report.seconds, 1),
        "embedded": report.embedded,
        "peak_rss_mb": _peak_rss_mb(),
        "load": [load, _load()],
    }


def refresh(path: Path, forget_count: int) -> dict[str, Any]:
    """Time an index refresh with nothing changed, then forgetting `forget_count` decisions."""
    from contextgraph.governance.forget import forget, plan_forget
    from contextgraph.store import EmbeddedStore

    out: dict[str, Any] = {"load": [_load()]}
    store = EmbeddedStore(path)
    try:
        began = time.perf_counter()
        store.refresh_indexes(force=True)
        out["unchanged_seconds"] = round(time.perf_counter() - began, 1)
        out["unchanged"] = store.index.last_build.as_dict() if store.index.last_build else None
        rows = store.query(
            "MATCH (d:Decision) WHERE d.response_received = true RETURN d.key AS key ORDER BY key LIMIT $n",
            {"n": forget_count},
        )
        began = time.perf_counter()
        forget(store, plan_forget(store, decisions=[r["key"] for r in rows]))
        out["forget_seconds"] = round(time.perf_counter() - began, 1)
        out["forget"] = store.index.last_build.as_dict() if store.index.last_build else None
    finally:
        store.close()
    out["peak_rss_mb"] = _peak_rss_mb()
    out["load"].append(_load())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_queries", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep", type=Path, help="build the store here and keep it (else a temporary folder)"
    )
    parser.add_argument("--reuse", action="store_true", help="query the store at --keep without building it")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--refresh",
        type=int,
        default=0,
        metavar="N",
        help="then time an index refresh and forgetting N decisions",
    )
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="contextgraph-scale-"))
    path = args.keep or workdir / "store.lbdb"
    try:
        if args.build_only:
            print(json.dumps(build(args.size, path, args.seed)), flush=True)
            return 0
        out: dict[str, Any] = {"size": args.size}
        if not args.reuse:
            build_only = [f"--size={args.size}", f"--seed={args.seed}", f"--keep={path}"]
            out["build"] = run_json(  # its own process: its peak RSS is the load's and the embedding's
                ["bench.scale_queries", "--build-only", *build_only],
                failed="building the store failed",
                error=SystemExit,
            )
        spec = {
            "store": "embedded",
            "size": args.size,
            "seed": args.seed,
            "queries": args.queries,
            "path": str(path),
            "query_budget_s": 300,
        }
        out["queries"] = run_json(
            ["bench.run", "--worker", "queries", "--spec", json.dumps(spec)],
            failed="the queries failed",
            error=SystemExit,
        )
        if args.refresh:
            out["refresh"] = refresh(path, args.refresh)
        print(json.dumps(out), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
