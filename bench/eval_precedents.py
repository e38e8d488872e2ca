"""How well does precedent search rank the right past decision? hit@1, hit@3 and MRR per signal.

    .venv/bin/python -m bench.eval_precedents [--store neo4j|embedded|both] [--json]

Writes `bench.cases.CASES` (47 answered decisions, 11 kinds of cases, two decision points) into a
fresh store, embeds them with CONTEXTGRAPH_EMBEDDING_MODEL (default: the shared model folder),
then asks each of `bench.cases.QUERIES` (new cases whose right precedents are known) with
vector-only, text-only and hybrid ranking. Neo4j: NEO4J_URI if set (its database is wiped!),
else a throw-away server from the tests' launcher. The embedded store lives in a temp folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.cases import CASES, QUERIES, build_batch
from contextgraph.embeddings import Embedder, Model2VecEmbedder, embed_pending
from contextgraph.retrieval import Mode, find_similar_decisions
from contextgraph.store import EmbeddedStore, GraphStore, Neo4jStore

SHARED_MODEL = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "m2v-minilm-l6-256"
MODES: tuple[Mode, ...] = ("vector", "text", "hybrid")


@dataclass
class Metrics:
    queries: int
    hit_at_1: float
    hit_at_3: float
    mrr: float
    ms_per_query: float


def load_cases(store: GraphStore, embedder: Embedder) -> dict[str, str]:
    """Write the cases and embed them; returns case id -> decision key."""
    batch, keys = build_batch(CASES)
    store.write(batch)
    embed_pending(store, embedder)
    return keys


def evaluate(store: GraphStore, embedder: Embedder, keys: dict[str, str], mode: Mode, k: int = 10) -> Metrics:
    hits1 = hits3 = 0
    reciprocal = 0.0
    started = time.perf_counter()
    for query in QUERIES:
        found = find_similar_decisions(store, embedder, query.text, k=k, point=query.point, mode=mode)
        wanted = {keys[case_id] for case_id in query.relevant}
        rank = next((i for i, p in enumerate(found, start=1) if p.key in wanted), None)
        if rank is not None:
            hits1 += rank == 1
            hits3 += rank <= 3
            reciprocal += 1.0 / rank
    n = len(QUERIES)
    elapsed = (time.perf_counter() - started) * 1000 / n
    return Metrics(n, round(hits1 / n, 3), round(hits3 / n, 3), round(reciprocal / n, 3), round(elapsed, 1))


def evaluate_all(store: GraphStore, embedder: Embedder) -> dict[str, Metrics]:
    keys = load_cases(store, embedder)
    return {mode: evaluate(store, embedder, keys, mode) for mode in MODES}


def default_embedder() -> Embedder:
    return Model2VecEmbedder(os.environ.get("CONTEXTGRAPH_EMBEDDING_MODEL") or str(SHARED_MODEL))


@contextmanager
def neo4j_store() -> Iterator[Neo4jStore]:
    from contextgraph.config import Neo4jSettings

    if os.environ.get("NEO4J_URI"):
        store = Neo4jStore.connect(Neo4jSettings())
        server = None
    else:
        from pydantic import SecretStr

        from tests.neo4j_server import Neo4jServer

        server = Neo4jServer()
        server.start()
        store = Neo4jStore.connect(
            Neo4jSettings(uri=server.uri, username=server.username, password=SecretStr(server.password))
        )
    try:
        store._write("MATCH (n) DETACH DELETE n", {})
        store.ensure_schema()
        yield store
    finally:
        store.close()
        if server is not None:
            server.stop()


@contextmanager
def embedded_store() -> Iterator[EmbeddedStore]:
    with tempfile.TemporaryDirectory(prefix="contextgraph-eval-") as folder:
        store = EmbeddedStore(Path(folder) / "graph.lbdb")
        store.ensure_schema()
        try:
            yield store
        finally:
            store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["neo4j", "embedded", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    embedder = default_embedder()
    results: dict[str, dict[str, Metrics]] = {}
    for name, opener in (("neo4j", neo4j_store), ("embedded", embedded_store)):
        if args.store in (name, "both"):
            with opener() as store:
                results[name] = evaluate_all(store, embedder)
    if args.json:
        print(json.dumps({s: {m: asdict(v) for m, v in r.items()} for s, r in results.items()}, indent=2))
        return 0
    print(f"{len(QUERIES)} queries over {len(CASES)} past decisions, model {embedder.name}")
    print(f"{'store':<10} {'ranking':<8} {'hit@1':>6} {'hit@3':>6} {'MRR':>6} {'ms/query':>9}")
    for store_name, by_mode in results.items():
        for mode, metric in by_mode.items():
            print(
                f"{store_name:<10} {mode:<8} {metric.hit_at_1:>6.3f} {metric.hit_at_3:>6.3f} "
                f"{metric.mrr:>6.3f} {metric.ms_per_query:>9.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
