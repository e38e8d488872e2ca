"""Bulk write paths for rows known to be new: COPY from Arrow on the embedded store (in a capped
buffer pool), CREATE on Neo4j (with MERGE when another writer got there first)."""

from __future__ import annotations

import resource
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contextgraph import model as m
from contextgraph.errors import StoreError
from contextgraph.store import EmbeddedStore, Neo4jStore
from contextgraph.store.base import Row

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _runs(first: int, count: int, run_id_width: int = 0) -> m.GraphBatch:
    batch = m.GraphBatch()
    for i in range(first, first + count):
        run = m.DagRun(
            dag_id="support",
            run_id=f"manual__{i:06d}".ljust(run_id_width, "r"),
            state="success",
            start_date=START + timedelta(minutes=i),
            conf={"ticket": f"T-{i}", "text": "x" * 400},
        )
        batch.add(run, m.HasRun(src=m.Dag.key_for("support"), dst=run.key))
    return batch


def test_many_bulk_writes_fit_a_small_buffer_pool(tmp_path: Path) -> None:
    """Ladybug keeps memory per COPY until the database closes; the store frees it as it goes, so
    a long first ingest into a 64 MB pool neither fails ("buffer pool is full") nor grows."""
    store = EmbeddedStore(tmp_path / "g.lbdb", buffer_pool_mb=64, bulk_copy=True)
    store.ensure_schema()
    store.write(m.GraphBatch(nodes=[m.Dag(dag_id="support")]))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for page in range(40):
        result = store.write(_runs(page * 250, 250))
        assert result.created == {"DagRun": 250, "HAS_RUN": 250}
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    assert store.query("MATCH (:Dag)-[:HAS_RUN]->(r:DagRun) RETURN count(r) AS c") == [{"c": 10_000}]
    assert rss_growth < 400, f"peak RSS grew {rss_growth:.0f} MB"
    store.close()


def test_bulk_written_rows_read_back_and_rewrite_as_unchanged(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "g.lbdb", buffer_pool_mb=64, bulk_copy=True)
    store.ensure_schema()
    store.write(m.GraphBatch(nodes=[m.Dag(dag_id="support")]))
    first = store.write(_runs(0, 3))
    again = store.write(_runs(0, 3))
    assert first.created == {"DagRun": 3, "HAS_RUN": 3}
    assert again.written == 0 and again.unchanged == {"DagRun": 3, "HAS_RUN": 3}
    [row] = store.query(
        "MATCH (r:DagRun {key: $key}) RETURN r.start_date AS start, r.conf AS conf, r.state AS state",
        {"key": m.DagRun.key_for("support", "manual__000002")},
    )
    assert row["start"] == START + timedelta(minutes=2)  # a UTC timestamp, as written
    assert '"ticket": "T-2"' in row["conf"] and row["state"] == "success"
    # A run whose Dag does not exist: the run is new (COPY), its edge finds no Dag and is reported.
    orphan = m.DagRun(dag_id="gone", run_id="r1")
    result = store.write(m.GraphBatch([orphan], [m.HasRun(src=m.Dag.key_for("gone"), dst=orphan.key)]))
    assert result.created.get("HAS_RUN", 0) == 0 and result.missing_endpoints == {"HAS_RUN": 1}
    store.close()


class _RacedStore(Neo4jStore):
    """A store another writer races: right after this one looked its DagRuns up, and before it
    creates the new ones, `other` writes `raced` (once)."""

    def __init__(self, driver: Any, database: str, other: Neo4jStore, raced: m.GraphBatch) -> None:
        super().__init__(driver, database=database)
        self.other, self.raced = other, raced

    def _upsert_nodes(self, node_type: type[m.Node], new: list[Row], changed: list[Row]) -> None:
        if node_type is m.DagRun and self.raced:
            raced, self.raced = self.raced, m.GraphBatch()
            self.other.write(raced)  # its own transaction, committed before this one creates
        super()._upsert_nodes(node_type, new, changed)


@pytest.mark.neo4j
@pytest.mark.parametrize("atomic_rows", [50_000, 5], ids=["one transaction", "too big for one"])
def test_neo4j_creates_new_nodes_and_merges_when_another_writer_created_them(
    neo4j_store: Neo4jStore, atomic_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("contextgraph.store.neo4j.ATOMIC_ROWS", atomic_rows)
    neo4j_store.write(m.GraphBatch(nodes=[m.Dag(dag_id="support")]))
    first = neo4j_store.write(_runs(0, 50))
    assert first.created == {"DagRun": 50, "HAS_RUN": 50}
    # Another writer wrote runs 40-59 after this one looked them up: its CREATE of 50-59 meets the
    # uniqueness constraint, the write is retried MERGEing, so nothing is duplicated or lost.
    raced = _RacedStore(neo4j_store._driver, neo4j_store.database, neo4j_store, _runs(40, 20))
    second = raced.write(_runs(0, 60))
    assert not raced.raced  # the race did happen
    count = "MATCH (r:DagRun) RETURN count(r) AS c, count(DISTINCT r.key) AS k"
    assert neo4j_store.query(count) == [{"c": 60, "k": 60}]
    edges = "MATCH (:Dag)-[h:HAS_RUN]->(r:DagRun) RETURN count(h) AS h, count(DISTINCT r) AS r"
    assert neo4j_store.query(edges) == [{"h": 60, "r": 60}]
    assert second.unchanged.get("DagRun") == 60  # the retry found them all written


def _broken_mid_write(store_type: type[Neo4jStore] | type[EmbeddedStore]) -> Any:
    """A store whose connection breaks after the batch's nodes were sent, before its edges."""

    class Broken(store_type):  # type: ignore[valid-type,misc]
        def _create_edges(self, edge_type: type[m.Edge], rows: Any) -> int:
            raise ConnectionResetError("connection lost mid-write")

    return Broken


@pytest.mark.neo4j
def test_neo4j_write_that_fails_midway_leaves_none_of_its_batch(neo4j_store: Neo4jStore) -> None:
    neo4j_store.write(m.GraphBatch(nodes=[m.Dag(dag_id="support")]))
    broken = _broken_mid_write(Neo4jStore)(neo4j_store._driver, database=neo4j_store.database)
    with pytest.raises(ConnectionResetError):
        broken.write(_runs(0, 10))
    assert neo4j_store.query("MATCH (r:DagRun) RETURN count(r) AS c") == [{"c": 0}]
    assert neo4j_store.write(_runs(0, 10)).created == {"DagRun": 10, "HAS_RUN": 10}


def test_embedded_write_that_fails_midway_leaves_none_of_its_batch(tmp_path: Path) -> None:
    broken = _broken_mid_write(EmbeddedStore)(tmp_path / "g.lbdb")
    broken.ensure_schema()
    broken.write(m.GraphBatch(nodes=[m.Dag(dag_id="support")]))
    with pytest.raises(ConnectionResetError):
        broken.write(_runs(0, 10))
    assert broken.query("MATCH (r:DagRun) RETURN count(r) AS c") == [{"c": 0}]
    broken.close()
    store = EmbeddedStore(tmp_path / "g.lbdb")
    assert store.write(_runs(0, 10)).created == {"DagRun": 10, "HAS_RUN": 10}
    store.close()


def test_rewriting_existing_relationships_fits_a_small_buffer_pool(tmp_path: Path) -> None:
    """A re-read page (an idle sync's) rewrites relationships that all exist, so each is looked
    up. On Ladybug the lookup reads only the asked-for nodes' relationships; one statement over all
    pairs was planned as a hash join over every relationship of the type, and 10,000 runs of one
    DAG (long run ids) did not fit a 32 MB pool (at 100k decisions, a 512 MB one)."""
    store = EmbeddedStore(tmp_path / "g.lbdb")
    store.ensure_schema()
    store.write(m.GraphBatch(nodes=[m.Dag(dag_id="support")]))
    for page in range(10):
        store.write(_runs(page * 1000, 1000, run_id_width=500))
    store.close()
    store = EmbeddedStore(tmp_path / "g.lbdb", buffer_pool_mb=32)
    again = store.write(_runs(4000, 100, run_id_width=500))
    assert again.written == 0 and again.unchanged == {"DagRun": 100, "HAS_RUN": 100}
    store.close()
    # A pool too small for any write says which setting to raise.
    store = EmbeddedStore(tmp_path / "g.lbdb", buffer_pool_mb=16)
    with pytest.raises(StoreError, match=r"buffer pool is 16 MB: raise CONTEXTGRAPH_BUFFER_POOL_MB"):
        store.write(_runs(4000, 100, run_id_width=500))
    store.close()
