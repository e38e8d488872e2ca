"""The embedded store's HNSW vector index (usearch) beside its file: from `ann_threshold` answered
decisions on, vector candidates come from it; they must match the exact scan, honour filters, and
lose a forgotten decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from usearch.index import Index

from contextgraph import demo
from contextgraph import model as m
from contextgraph.governance.forget import forget, plan_forget
from contextgraph.ingest.embeddings import Model2VecEmbedder, embed_pending
from contextgraph.ingest.sync import Sync, SyncOptions
from contextgraph.store import EmbeddedStore
from contextgraph.store.base import CandidateFilter
from contextgraph.store.sidecar import ANN_FILE

OPTIONS = SyncOptions(proposal_tasks={f"{demo.DAG_ID}.{demo.REVIEW_TASK}": [demo.DRAFT_TASK]})


def _store(path: Path, embedder: Model2VecEmbedder, threshold: int) -> EmbeddedStore:
    store = EmbeddedStore(path, ann_threshold=threshold)
    store.ensure_schema()
    Sync(demo.scenario_source(demo.scenario(40)), store, OPTIONS).run(full=True)
    embed_pending(store, embedder)  # rebuilds the index beside the file
    return store


def _exact(vectors: dict[str, np.ndarray], query: np.ndarray, k: int) -> list[str]:
    scored = sorted(vectors.items(), key=lambda kv: (-float(np.dot(kv[1], query)), kv[0]))
    return [key for key, _ in scored[:k]]


def test_hnsw_matches_exact_and_filters(tmp_path: Path, embedder: Model2VecEmbedder) -> None:
    store = _store(tmp_path / "g.lbdb", embedder, threshold=10)
    try:
        info = store.index.info()
        assert info["vector_index"] == "hnsw"
        assert (store.index.folder / ANN_FILE).is_file()
        keys = store.query("MATCH (d:Decision) RETURN d.key AS key", {})
        vectors = store.decision_vectors([r["key"] for r in keys], embedder.name)
        assert len(vectors) == info["decisions"] >= 30
        for text in ("refund for a damaged parcel", "customer wants to cancel the order", "invoice wrong"):
            query = np.asarray(embedder.embed([text])[0], dtype=np.float32)
            found = store.vector_candidates(query.tolist(), embedder.name, 5, CandidateFilter())
            assert [key for key, _ in found] == _exact(vectors, query, 5)
            best = found[0][0]
            # A filter the graph over-fetches for: the best decision excluded, the next ones stay.
            without = store.vector_candidates(
                query.tolist(), embedder.name, 5, CandidateFilter(exclude=frozenset({best}))
            )
            rest = {k: v for k, v in vectors.items() if k != best}
            assert [key for key, _ in without] == _exact(rest, query, 5)
            # A selective filter (fewer rows than the threshold): an exact scan of what it keeps.
            few = sorted(vectors)[:5]
            only = store.vector_candidates(
                query.tolist(), embedder.name, 3, CandidateFilter(exclude=frozenset(set(vectors) - set(few)))
            )
            assert [key for key, _ in only] == _exact({k: vectors[k] for k in few}, query, 3)
        nothing = store.vector_candidates(
            query.tolist(), embedder.name, 5, CandidateFilter(dag_id="no_such_dag")
        )
        assert nothing == []
    finally:
        store.close()


def test_below_threshold_is_exact_without_a_graph(tmp_path: Path, embedder: Model2VecEmbedder) -> None:
    store = _store(tmp_path / "g.lbdb", embedder, threshold=1000)
    try:
        assert store.index.info()["vector_index"] == "exact"
        assert not (store.index.folder / ANN_FILE).exists()
    finally:
        store.close()


def test_forget_removes_the_vector_from_the_graph(tmp_path: Path, embedder: Model2VecEmbedder) -> None:
    store = _store(tmp_path / "g.lbdb", embedder, threshold=10)
    try:
        before = store.index.info()["decisions"]
        rows = store.query("MATCH (d:Decision) RETURN d.key AS key", {})
        vectors = store.decision_vectors([r["key"] for r in rows], embedder.name)
        gone = sorted(vectors)[0]
        assert m.parse_key(m.Decision, gone)  # a real decision key
        vector = vectors[gone]
        hit = store.vector_candidates(vector.tolist(), embedder.name, 1, CandidateFilter())
        assert hit[0][0] == gone
        forget(store, plan_forget(store, decisions=[gone]))
        after = store.index.info()
        assert (after["decisions"], after["vector_index"]) == (before - 1, "hnsw")
        saved = Index.restore(str(store.index.folder / ANN_FILE))
        assert saved is not None and len(saved) == before - 1
        found = store.vector_candidates(vector.tolist(), embedder.name, 10, CandidateFilter())
        assert gone not in [key for key, _ in found]
        assert len(found) == 10
    finally:
        store.close()
