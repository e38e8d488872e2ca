"""The embedded store's HNSW vector index (usearch) beside its file: from `ann_threshold` answered
decisions on, vector candidates come from it; they must match the exact scan, honour filters, and
lose a forgotten decision."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from usearch.index import Index

from contextgraph import demo
from contextgraph import model as m
from contextgraph.governance.forget import forget, plan_forget
from contextgraph.ingest.embeddings import Model2VecEmbedder, embed_pending
from contextgraph.ingest.sync import Sync, SyncOptions
from contextgraph.store import EmbeddedStore, embedded
from contextgraph.store.base import CandidateFilter
from contextgraph.store.sidecar import IndexRows, SidecarIndex

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
        assert store.index.ann_file() is not None
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
        assert store.index.ann_file() is None
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
        saved = Index.restore(str(store.index.ann_file()))
        assert saved is not None and len(saved) == before - 1
        found = store.vector_candidates(vector.tolist(), embedder.name, 10, CandidateFilter())
        assert gone not in [key for key, _ in found]
        assert len(found) == 10
    finally:
        store.close()


def _sidecar_rows(vectors: np.ndarray, ids: list[int], model: str = "test-model") -> IndexRows:
    keys = [m.Decision.key_for("dag_a", f"run_{i}", "review", -1, 1) for i in ids]
    return IndexRows(
        keys=keys,
        texts=[f"decision {i}" for i in ids],
        dag_ids=["dag_a"] * len(ids),
        task_ids=["review"] * len(ids),
        chosen=[[] for _ in ids],
        answered_at=[0.0] * len(ids),
        vectors=vectors,
        model=model,
    )


def _recall(index: SidecarIndex, rows: IndexRows, queries: np.ndarray, k: int = 10) -> float:
    """Recall@k of the index's vector candidates against an exact scan of `rows`."""
    assert rows.vectors is not None
    hits = 0
    for query in queries:
        exact = {rows.keys[i] for i in np.argsort(-(rows.vectors @ query))[:k]}
        found = index.vector_candidates(query.tolist(), "test-model", k, CandidateFilter())
        hits += len(exact & {key for key, _ in found})
    return hits / (k * len(queries))


def _clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    rows = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, centres.shape[1]))
    unit: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return unit


def _small_index(folder: Path, seed: int, n: int) -> tuple[SidecarIndex, np.ndarray, IndexRows]:
    """An index (graph from 100 rows on) of `n` clustered 16-dimensional vectors: (index, vectors, rows)."""
    rng = np.random.default_rng(seed)
    vectors = _clustered(rng, n, rng.standard_normal((10, 16)))
    rows = _sidecar_rows(vectors, list(range(n)))
    index = SidecarIndex(folder, ann_threshold=100)
    index.build(rows)
    return index, vectors, rows


def test_graph_is_updated_not_rebuilt_and_recalls_like_a_rebuild(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, 32))
    first = _clustered(rng, 2500, centres)
    index = SidecarIndex(tmp_path / "incremental", ann_threshold=100)
    built = index.build(_sidecar_rows(first, list(range(2500))))
    assert (built.ann, built.added) == ("built", 2500)
    labels = index.labels()

    # A sync: 300 new decisions, 50 re-embedded (changed), 200 erased.
    ids = list(range(200, 2800))
    vectors = np.concatenate([first[200:], _clustered(rng, 300, centres)])
    changed = list(range(1000, 1050))
    vectors[[i - 200 for i in changed]] = _clustered(rng, len(changed), centres)
    rows = _sidecar_rows(vectors, ids)
    updated = index.build(rows)
    assert (updated.ann, updated.added, updated.removed) == ("updated", 350, 250)
    assert updated.tombstones == 0  # adds took the removed rows' slots first
    after = index.labels()
    untouched = [k for i, k in zip(ids, rows.keys, strict=True) if i < 2500 and i not in changed]
    assert all(after[k] == labels[k] for k in untouched)  # stable labels: no rebuild
    assert all(after[rows.keys[i - 200]] not in labels.values() for i in changed)

    # The same rows, built from scratch: recall@10 against the exact scan within ANN noise.
    fresh = SidecarIndex(tmp_path / "fresh", ann_threshold=100)
    assert fresh.build(rows, rebuild=True).ann == "built"
    queries = _clustered(rng, 100, centres)
    incremental_recall, fresh_recall = _recall(index, rows, queries), _recall(fresh, rows, queries)
    assert incremental_recall >= 0.95 and fresh_recall >= 0.95
    assert abs(incremental_recall - fresh_recall) <= 0.02

    # Erased and changed rows: never returned for their old vectors; a changed one for its new one.
    gone = _sidecar_rows(first[:200], list(range(200))).keys
    ann_file = index.ann_file()
    assert ann_file is not None
    saved = ann_file.read_bytes()
    for i in range(200):
        found = index.vector_candidates(first[i].tolist(), "test-model", 20, CandidateFilter())
        assert not set(gone) & {key for key, _ in found}
        assert first[i].tobytes() not in saved
    for i in changed:
        top = index.vector_candidates(vectors[i - 200].tolist(), "test-model", 1, CandidateFilter())
        assert top[0][0] == rows.keys[i - 200]

    # Labels and graph survive a restart (a new reader of the folder); a second save of the same
    # rows changes nothing in the graph.
    again = SidecarIndex(tmp_path / "incremental", ann_threshold=100)
    assert again.labels() == after
    same = again.build(rows)
    assert (same.ann, same.bm25) == ("unchanged", "kept")
    assert again.labels() == after
    text = again.text_candidates(["decision", "2799"], 1, CandidateFilter())
    assert text[0][0] == rows.keys[-1]  # BM25 answers from the kept files


def test_graph_is_rebuilt_when_many_rows_left_or_the_model_changed(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    vectors = _clustered(rng, 1000, rng.standard_normal((10, 16)))
    index = SidecarIndex(tmp_path / "index", ann_threshold=100)
    index.build(_sidecar_rows(vectors, list(range(1000))))
    few_left = index.build(_sidecar_rows(vectors[:600], list(range(600))))
    assert few_left.ann == "built" and "slots" in few_left.reason
    graph = Index.restore(str(index.ann_file()))
    assert graph is not None and len(graph) == 600
    other = index.build(_sidecar_rows(vectors[:600], list(range(600)), model="other-model"))
    assert (other.ann, other.reason) == ("built", "the embedding model changed")
    below = index.build(_sidecar_rows(vectors[:50], list(range(50)), model="other-model"))
    assert below.ann == "none" and index.ann_file() is None
    assert index.info()["vector_index"] == "exact"


def test_an_unfinished_save_leaves_the_last_index_usable(tmp_path: Path) -> None:
    index, vectors, rows = _small_index(tmp_path / "index", 9, 500)
    before = index.vector_candidates(vectors[3].tolist(), "test-model", 5, CandidateFilter())
    # What a save that died before its commit leaves: the next generation's files half written.
    generation = index.last_build.generation if index.last_build else 0
    (index.folder / f"vectors.{generation + 1}.usearch").write_bytes(b"\0" * 100)
    (index.folder / f"labels.{generation + 1}.npy").write_bytes(b"half")
    (index.folder / "meta.json.tmp").write_text('{"generation": ')
    reader = SidecarIndex(tmp_path / "index", ann_threshold=100)
    assert reader.vector_candidates(vectors[3].tolist(), "test-model", 5, CandidateFilter()) == before
    assert reader.build(rows).ann == "unchanged"
    assert not (index.folder / "meta.json.tmp").exists()
    left = sorted(p.name for p in index.folder.iterdir())
    assert left == sorted(
        [
            "meta.json",
            *(
                f"{n}.{generation + 1}{s}"
                for n, s in (("bm25", ""), ("vectors", ".npy"), ("vectors", ".usearch"), ("labels", ".npy"))
            ),
        ]
    )


def test_sync_and_forget_update_the_graph_of_the_store(tmp_path: Path, embedder: Model2VecEmbedder) -> None:
    path = tmp_path / "g.lbdb"
    store = _store(path, embedder, threshold=10)
    try:
        labels = store.index.labels()
    finally:
        store.close()
    store = EmbeddedStore(path, ann_threshold=10)
    try:
        assert store.index.labels() == labels  # kept beside the index: a restart keeps them
        Sync(demo.scenario_source(demo.scenario(60)), store, OPTIONS).run(full=False)
        embed_pending(store, embedder)
        synced = store.index.last_build
        assert synced is not None and synced.ann == "updated" and synced.removed == 0
        now = store.index.labels()
        assert len(now) == len(labels) + synced.added and all(now[k] == labels[k] for k in labels)

        rows = store.query("MATCH (d:Decision) RETURN d.key AS key", {})
        vectors = store.decision_vectors([r["key"] for r in rows], embedder.name)
        gone = sorted(vectors)[:3]
        forget(store, plan_forget(store, decisions=gone))
        erased = store.index.last_build
        assert erased is not None and (erased.ann, erased.removed, erased.added) == ("updated", 3, 0)
        assert (erased.tombstones, erased.scrubbed) == (3, 3)  # their bytes zeroed in the file
        ann_file = store.index.ann_file()
        assert ann_file is not None
        saved = ann_file.read_bytes()
        for key in gone:
            assert np.asarray(vectors[key], dtype=np.float32).tobytes() not in saved
            found = store.vector_candidates(vectors[key].tolist(), embedder.name, 100, CandidateFilter())
            assert key not in {k for k, _ in found}

        # What the updated graph answers equals what a graph built from scratch answers.
        queries = [
            embedder.embed([t])[0] for t in ("refund for a damaged parcel", "cancel my order", "invoice")
        ]
        incremental = [store.vector_candidates(q, embedder.name, 10, CandidateFilter()) for q in queries]
        assert store.rebuild_indexes()["vector_index"] == "hnsw"
        assert store.index.last_build is not None and store.index.last_build.ann == "built"
        rebuilt = [store.vector_candidates(q, embedder.name, 10, CandidateFilter()) for q in queries]
        assert [[k for k, _ in r] for r in incremental] == [[k for k, _ in r] for r in rebuilt]
    finally:
        store.close()


def test_a_refresh_with_nothing_changed_does_nothing_and_forget_rescores_words(
    tmp_path: Path, embedder: Model2VecEmbedder
) -> None:
    store = _store(tmp_path / "g.lbdb", embedder, threshold=10)
    try:
        saved = store.index.last_build
        assert saved is not None and not saved.current
        files = {p.name: p.stat().st_mtime_ns for p in store.index.folder.iterdir()}
        store.refresh_indexes(force=True)  # nothing written since: the store's hashes say so
        again = store.index.last_build
        assert again is not None and again.current
        assert (again.generation, again.decisions, again.bm25, again.ann) == (
            saved.generation,
            saved.decisions,
            "kept",
            "unchanged",
        )
        assert {p.name: p.stat().st_mtime_ns for p in store.index.folder.iterdir()} == files

        words = ["refund", "damaged", "parcel", "invoice", "cancel", "order"]
        everything = CandidateFilter()
        before = store.text_candidates(words, 100, everything)
        gone = before[0][0]
        forget(store, plan_forget(store, decisions=[gone]))
        erased = store.index.last_build
        assert erased is not None and not erased.current and erased.bm25 == "built"
        after = store.text_candidates(words, 100, everything)
        assert gone not in {key for key, _ in after} and len(after) == len(before) - 1
        store.rebuild_indexes()  # from scratch: the same words, the same scores
        assert store.text_candidates(words, 100, everything) == after
    finally:
        store.close()


def test_a_folder_from_before_generations_is_read_and_then_updated(tmp_path: Path) -> None:
    index, vectors, _ = _small_index(tmp_path / "index", 10, 400)
    expected = index.vector_candidates(vectors[5].tolist(), "test-model", 5, CandidateFilter())
    # The layout an earlier version wrote: plain names, the graph's labels are the row numbers.
    folder = index.folder
    for named, plain in (
        ("bm25.1", "bm25"),
        ("vectors.1.npy", "vectors.npy"),
        ("vectors.1.usearch", "vectors.usearch"),
    ):
        (folder / named).rename(folder / plain)
    (folder / "labels.1.npy").unlink()
    meta = json.loads((folder / "meta.json").read_text())
    del meta["generation"], meta["next_label"]
    (folder / "meta.json").write_text(json.dumps({**meta, "version": 1}))

    earlier = SidecarIndex(folder, ann_threshold=100)
    assert earlier.vector_candidates(vectors[5].tolist(), "test-model", 5, CandidateFilter()) == expected
    more = _clustered(np.random.default_rng(11), 20, np.random.default_rng(12).standard_normal((10, 16)))
    grown = _sidecar_rows(np.concatenate([vectors, more]), list(range(420)))
    report = earlier.build(grown)
    assert (report.ann, report.added, report.removed) == ("updated", 20, 0)
    assert sorted(p.name for p in folder.iterdir()) == [
        "bm25.1",
        "labels.1.npy",
        "meta.json",
        "vectors.1.npy",
        "vectors.1.usearch",
    ]
    assert (
        earlier.vector_candidates(more[0].tolist(), "test-model", 1, CandidateFilter())[0][0]
        == grown.keys[400]
    )


def test_the_index_reads_the_store_a_page_at_a_time(
    tmp_path: Path,
    embedder: Model2VecEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _store(tmp_path / "g.lbdb", embedder, threshold=10)
    try:
        whole = store.index.labels()
        monkeypatch.setattr(embedded, "INDEX_PAGE", 7)  # 40 decisions: six pages, the last short
        # A pool too small for a page: the read goes on with the configured one.
        monkeypatch.setattr(embedded, "INDEX_POOL_MB", 4)
        with caplog.at_level(logging.INFO, logger=embedded.__name__):
            store.rebuild_indexes()
        assert "did not fit a 4 MB buffer pool" in caplog.text
        answered = store.query("MATCH (d:Decision) WHERE d.response_received = true RETURN d.key AS key")
        assert sorted(store.index.labels()) == sorted(whole) == sorted(r["key"] for r in answered)
        query = embedder.embed(["refund for a damaged parcel"])[0]
        vectors = store.decision_vectors(list(whole), embedder.name)
        found = store.vector_candidates(query, embedder.name, 5, CandidateFilter())
        assert [key for key, _ in found] == _exact(vectors, np.asarray(query, dtype=np.float32), 5)
    finally:
        store.close()


def test_the_embedding_pass_reads_the_pending_decisions_a_batch_at_a_time(
    tmp_path: Path, embedder: Model2VecEmbedder
) -> None:
    store = EmbeddedStore(tmp_path / "g.lbdb")
    try:
        store.ensure_schema()
        Sync(demo.scenario_source(demo.scenario(40)), store, OPTIONS).run(full=True)
        decisions = {r["key"] for r in store.query("MATCH (d:Decision) RETURN d.key AS key")}
        first = store.decisions_needing_embedding(embedder.name, limit=7)
        assert len(first) == 7 and all(row["text"] and row["model"] is None for row in first)

        embed_pending(store, embedder, batch_size=7)
        assert store.decisions_needing_embedding(embedder.name) == []
        assert set(store.decision_vectors(sorted(decisions), embedder.name)) == decisions
        # Another model: every decision is pending again, each with what its embedding was made by.
        other = store.decisions_needing_embedding("another-model", limit=len(decisions) + 1)
        assert {row["key"] for row in other} == decisions
        assert {row["model"] for row in other} == {embedder.name}
    finally:
        store.close()
