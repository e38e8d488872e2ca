"""The embedded store's vector index at scale: usearch HNSW against the exact scan.

    .venv/bin/python -m bench.ann_vectors --size 100000 [--queries 200] [--folder PATH]

Builds the sidecar index (`contextgraph.store.sidecar`) directly from `bench.synthetic.History`'s
decisions, embedded with CONTEXTGRAPH_EMBEDDING_MODEL (no Ladybug load: the vector part does not
depend on how the graph was written), once exact-only and once with the HNSW graph, then asks both
for the 10 nearest decisions of the history's next (unseen) decisions, unfiltered and filtered to
the query's DAG. Prints one JSON line: build seconds, recall@10 of HNSW vs exact, p50/p95 ms of
each, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.run import _embedder


def _pct(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": round(times[len(times) // 2], 2),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
    }


def main(argv: list[str] | None = None) -> int:
    from bench.synthetic import History
    from contextgraph.ingest.embeddings import decision_text
    from contextgraph.store.base import CandidateFilter
    from contextgraph.store.sidecar import IndexRows, SidecarIndex

    parser = argparse.ArgumentParser(prog="python -m bench.ann_vectors", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--folder", type=Path, help="keep the two indexes here")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="contextgraph-ann-"))
    out: dict[str, Any] = {"size": args.size, "load": [os.getloadavg()[0]]}
    embedder = _embedder()
    if embedder is None:
        raise SystemExit("no embedding model: set CONTEXTGRAPH_EMBEDDING_MODEL")
    history = History(args.size + args.queries, 0)
    began = time.perf_counter()
    records = list(history.hitl_details(0, args.size))
    texts = [decision_text(r) for r in records]
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    out["embed_seconds"] = round(time.perf_counter() - began, 1)
    scenarios = [history.scenario(i) for i in range(args.size)]
    rows = IndexRows(
        keys=[f"d{i}" for i in range(args.size)],
        texts=texts,
        dag_ids=[s.dag_id for s in scenarios],
        task_ids=[s.review for s in scenarios],
        chosen=[[] for _ in range(args.size)],
        answered_at=[0.0] * args.size,
        vectors=vectors,
        model=embedder.name,
    )
    exact = SidecarIndex(folder / "exact", ann_threshold=args.size + 1)
    exact.build(rows)
    ann = SidecarIndex(folder / "ann", ann_threshold=1)
    began = time.perf_counter()
    ann.build(rows)
    out["ann_build_seconds"] = round(time.perf_counter() - began, 1)
    queries = []
    for j in range(args.queries):
        i = args.size + j
        record = history.hitl_detail(i)
        q = embedder.embed([f"{record['subject']}\n{record['body']}"])[0]
        queries.append((q, history.scenario(i).dag_id))
    out["load"].append(os.getloadavg()[0])
    for name, make_filter in (
        ("unfiltered", lambda dag: CandidateFilter()),
        ("dag_filter", lambda dag: CandidateFilter(dag_id=dag)),
    ):
        result: dict[str, Any] = {}
        found: dict[str, list[list[str]]] = {}
        for label, index in (("exact", exact), ("hnsw", ann)):
            index.vector_candidates(queries[0][0], embedder.name, 10, make_filter(queries[0][1]))
            times, tops = [], []
            for q, dag in queries:
                t = time.perf_counter()
                top = index.vector_candidates(q, embedder.name, 10, make_filter(dag))
                times.append((time.perf_counter() - t) * 1000)
                tops.append([key for key, _ in top])
            result[label] = _pct(times)
            found[label] = tops
        hits = sum(len(set(a) & set(b)) for a, b in zip(found["exact"], found["hnsw"], strict=True))
        result["recall_at_10"] = round(hits / sum(len(a) for a in found["exact"]), 4)
        result["kept_by_filter"] = (
            None
            if name == "unfiltered"
            else round(float(np.mean([ann._mask(make_filter(d)).sum() for _, d in queries[:20]])))
        )
        out[name] = result
    out["load"].append(os.getloadavg()[0])
    print(json.dumps(out), flush=True)
    if args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
