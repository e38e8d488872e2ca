"""The embedded store's vector index at scale: usearch HNSW against the exact scan, and the cost
of keeping the graph up to date (a full build against adding and removing a few rows).

    .venv/bin/python -m bench.ann_vectors --size 100000 [--queries 200] [--change 100] [--folder PATH]

Builds the sidecar index (`contextgraph.store.sidecar`) directly from `bench.synthetic.History`'s
decisions, embedded with CONTEXTGRAPH_EMBEDDING_MODEL (no Ladybug load: the vector part does not
depend on how the graph was written), once exact-only and once with the HNSW graph built from
scratch, then asks both for the 10 nearest decisions of the history's unseen decisions, unfiltered
and filtered to the query's DAG. Then saves the HNSW index again with `--change` more decisions
(the graph updated: only they are added), and again with `--change` of the first decisions
erased (only they are removed), and asks both indexes again (the exact one rebuilt for the same
rows), checking that no erased decision comes back. Prints one JSON line: seconds of each save
(`full_build`, `add`, `remove`: the graph's part and the whole save with BM25), recall@10 of HNSW
vs exact and p50/p95 ms of each before and after the updates, ratios against the same run's full
build and exact scan, the process's RSS (MB) at each step and its peak, and the load average.
This process holds both indexes (exact and HNSW) and every embedded text, so its RSS is above what
one store's index takes: `reader` is a fresh process that loads only the updated HNSW index and
the model and asks it the same queries (its RSS and p50/p95 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.run import _embedder, _peak_rss_mb, run_json


def _pct(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": round(times[len(times) // 2], 2),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
    }


def _hwm_mb() -> float:
    """This process's peak resident set (MB; Linux's VmHWM, which starts anew at exec, unlike
    `ru_maxrss`, which a child started by `subprocess` inherits from its parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return _peak_rss_mb()


def _rss_mb() -> float:
    """The process's resident set now (MB; Linux's /proc, else the peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return _peak_rss_mb()


def _compare(
    exact: Any, ann: Any, model: str, queries: Sequence[tuple[Any, str]], kept: Callable[[Any], int]
) -> dict[str, Any]:
    """p50/p95 of both indexes and recall@10 of HNSW vs exact, unfiltered and with a DAG filter."""
    from contextgraph.store.base import CandidateFilter

    def unfiltered(dag: str) -> CandidateFilter:
        return CandidateFilter()

    def dag_filter(dag: str) -> CandidateFilter:
        return CandidateFilter(dag_id=dag)

    out: dict[str, Any] = {}
    for name, make_filter in (("unfiltered", unfiltered), ("dag_filter", dag_filter)):
        result: dict[str, Any] = {}
        found: dict[str, list[list[str]]] = {}
        for label, index in (("exact", exact), ("hnsw", ann)):
            index.vector_candidates(queries[0][0], model, 10, make_filter(queries[0][1]))
            times, tops = [], []
            for q, dag in queries:
                t = time.perf_counter()
                top = index.vector_candidates(q, model, 10, make_filter(dag))
                times.append((time.perf_counter() - t) * 1000)
                tops.append([key for key, _ in top])
            result[label] = _pct(times)
            found[label] = tops
        hits = sum(len(set(a) & set(b)) for a, b in zip(found["exact"], found["hnsw"], strict=True))
        result["recall_at_10"] = round(hits / sum(len(a) for a in found["exact"]), 4)
        result["p95_hnsw_vs_exact"] = round(result["hnsw"]["p95_ms"] / result["exact"]["p95_ms"], 3)
        result["kept_by_filter"] = (
            None
            if name == "unfiltered"
            else round(float(np.mean([kept(make_filter(d)) for _, d in queries[:20]])))
        )
        out[name] = result
    return out


def _reader(folder: Path, first: int, count: int) -> dict[str, Any]:
    """In a fresh process: load the model and the index at `folder` only, ask it the queries of
    decisions `first`.. of the history, unfiltered and with a DAG filter; RSS after each step."""
    from bench.synthetic import History
    from contextgraph.store.base import CandidateFilter
    from contextgraph.store.sidecar import SidecarIndex

    embedder = _embedder()
    if embedder is None:
        raise SystemExit("no embedding model: set CONTEXTGRAPH_EMBEDDING_MODEL")
    history = History(first + count, 0)
    queries = []
    for j in range(count):
        record = history.hitl_detail(first + j)
        vector = embedder.embed([f"{record['subject']}\n{record['body']}"])[0]
        queries.append((vector, history.scenario(first + j).dag_id))
    rss = {"model": _rss_mb()}
    index = SidecarIndex(folder, ann_threshold=1)
    out: dict[str, Any] = {"vector_index": index.info().get("vector_index")}
    rss["index_loaded"] = _rss_mb()
    for name, dag_filter in (("unfiltered", False), ("dag_filter", True)):
        times = []
        for vector, dag in queries:
            began = time.perf_counter()
            index.vector_candidates(
                vector, embedder.name, 10, CandidateFilter(dag_id=dag if dag_filter else None)
            )
            times.append((time.perf_counter() - began) * 1000)
        out[name] = _pct(times)
    rss["queried"] = _rss_mb()
    out["rss_mb"] = {**rss, "peak": _hwm_mb()}
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.synthetic import History
    from contextgraph.ingest.embeddings import decision_text
    from contextgraph.store.base import CandidateFilter
    from contextgraph.store.sidecar import IndexRows, SidecarIndex

    parser = argparse.ArgumentParser(prog="python -m bench.ann_vectors", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--change", type=int, default=100, help="decisions added, then erased")
    parser.add_argument("--folder", type=Path, help="keep the two indexes here")
    parser.add_argument("--read", type=Path, help=argparse.SUPPRESS)  # the reader process
    args = parser.parse_args(argv)
    if args.read:
        print(json.dumps(_reader(args.read, args.size + args.change, args.queries)), flush=True)
        return 0
    folder = args.folder or Path(tempfile.mkdtemp(prefix="contextgraph-ann-"))
    out: dict[str, Any] = {"size": args.size, "change": args.change, "load": [os.getloadavg()[0]]}
    rss: dict[str, float] = {"start": _rss_mb()}
    embedder = _embedder()
    if embedder is None:
        raise SystemExit("no embedding model: set CONTEXTGRAPH_EMBEDDING_MODEL")
    total = args.size + args.change
    history = History(total + args.queries, 0)
    began = time.perf_counter()
    texts = [decision_text(r) for r in history.hitl_details(0, total)]
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    out["embed_seconds"] = round(time.perf_counter() - began, 1)
    scenarios = [history.scenario(i) for i in range(total)]
    rss["embedded"] = _rss_mb()

    def rows_of(ids: Sequence[int]) -> IndexRows:
        at = np.asarray(ids, dtype=np.intp)
        return IndexRows(
            keys=[f"d{i}" for i in ids],
            texts=[texts[i] for i in ids],
            dag_ids=[scenarios[i].dag_id for i in ids],
            task_ids=[scenarios[i].review for i in ids],
            chosen=[[] for _ in ids],
            answered_at=[0.0] * len(ids),
            vectors=vectors[at],
            model=embedder.name,
        )

    base = rows_of(range(args.size))
    exact = SidecarIndex(folder / "exact", ann_threshold=total + 1)
    out["exact_build"] = exact.build(base).as_dict()
    ann = SidecarIndex(folder / "ann", ann_threshold=1)
    out["full_build"] = ann.build(base, rebuild=True).as_dict()
    rss["built"] = _rss_mb()
    queries = []
    for j in range(args.queries):
        record = history.hitl_detail(total + j)
        q = embedder.embed([f"{record['subject']}\n{record['body']}"])[0]
        queries.append((q, history.scenario(total + j).dag_id))
    out["load"].append(os.getloadavg()[0])

    def kept(filters: Any) -> int:
        mask = ann._mask(filters)
        return len(base.keys) if mask is None else int(mask.sum())

    out["before"] = _compare(exact, ann, embedder.name, queries, kept)
    rss["queried"] = _rss_mb()
    out["load"].append(os.getloadavg()[0])

    grown = list(range(total))
    out["add"] = ann.build(rows_of(grown)).as_dict()
    erased = set(range(0, args.size, max(1, args.size // max(1, args.change))))
    erased = set(sorted(erased)[: args.change])
    final = rows_of([i for i in grown if i not in erased])
    out["remove"] = ann.build(final).as_dict()
    rss["updated"] = _rss_mb()
    exact.build(final)
    out["after"] = _compare(exact, ann, embedder.name, queries, kept)
    back = 0
    for i in sorted(erased):
        found = ann.vector_candidates(vectors[i], embedder.name, 10, CandidateFilter())
        back += sum(key == f"d{i}" for key, _ in found)
    out["erased_found"] = back
    full_graph = out["full_build"]["ann_seconds"]
    out["ratios"] = {
        "add_graph_vs_full_graph": round(out["add"]["ann_seconds"] / full_graph, 5),
        "remove_graph_vs_full_graph": round(out["remove"]["ann_seconds"] / full_graph, 5),
        "add_save_vs_full_save": round(out["add"]["seconds"] / out["full_build"]["seconds"], 4),
        "remove_save_vs_full_save": round(out["remove"]["seconds"] / out["full_build"]["seconds"], 4),
    }
    rss["end"] = _rss_mb()
    out["rss_mb"] = {**rss, "peak": _peak_rss_mb()}
    out["reader"] = run_json(
        [
            "bench.ann_vectors",
            f"--read={folder / 'ann'}",
            f"--size={args.size}",
            f"--change={args.change}",
            f"--queries={args.queries}",
        ],
        failed="the reader process failed",
        error=SystemExit,
    )
    out["load"].append(os.getloadavg()[0])
    print(json.dumps(out), flush=True)
    if args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
