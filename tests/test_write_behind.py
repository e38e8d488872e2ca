"""The sync writes behind (a page is written on a writer thread while the next is fetched and
mapped): the graph is the same as written page by page, and a write that fails stops the sync with
its error, moves no watermark, and the next sync completes the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contextgraph import model as m
from contextgraph.errors import StoreUnavailableError
from contextgraph.ingest.source.memory import MemorySource
from contextgraph.ingest.sync import Sync, SyncOptions
from contextgraph.store import EmbeddedStore, WriteResult

from .builders import support_world

SHAPE = (
    "MATCH (n) WITH label(n) AS label, count(n) AS n RETURN label, n ORDER BY label",
    "MATCH ()-[r]->() WITH label(r) AS type, count(r) AS n RETURN type, n ORDER BY type",
    "MATCH (d:Decision)-[:CHOSE]->(o:Option) RETURN d.key AS decision, o.name AS option ORDER BY decision",
    "MATCH (s:SyncState) RETURN s.runs_updated_at AS runs, s.hitl_created_at AS hitl",
)


def _graph(store: EmbeddedStore) -> list[list[dict[str, Any]]]:
    return [store.query(q) for q in SHAPE]


def _sync(store: EmbeddedStore, *, behind: bool) -> None:
    source = MemorySource.over(support_world(240), watermarks=True)
    Sync(source, store, SyncOptions(page_size=25, write_behind=behind)).run()


def test_writing_behind_gives_the_graph_written_page_by_page(tmp_path: Path) -> None:
    graphs = []
    for behind in (False, True):
        store = EmbeddedStore(tmp_path / f"{behind}.lbdb")
        store.ensure_schema()
        _sync(store, behind=behind)
        graphs.append(_graph(store))
        store.close()
    assert graphs[0] == graphs[1]
    assert {"label": "Decision", "n": 240} in graphs[1][0]


class _FailsOnce(EmbeddedStore):
    """A store whose 6th write fails (the server went away), once."""

    writes = 0

    def write(self, batch: m.GraphBatch) -> WriteResult:
        self.writes += 1
        if self.writes == 6:
            raise StoreUnavailableError("the store went away")
        return super().write(batch)


def test_a_write_that_fails_behind_stops_the_sync_and_the_next_completes_it(tmp_path: Path) -> None:
    expected = EmbeddedStore(tmp_path / "expected.lbdb")
    expected.ensure_schema()
    _sync(expected, behind=False)

    store = _FailsOnce(tmp_path / "g.lbdb")
    store.ensure_schema()
    with pytest.raises(StoreUnavailableError, match="went away"):
        _sync(store, behind=True)
    [state] = store.query(SHAPE[3])
    assert state["hitl"] is None  # the HITL watermark did not move past the lost page
    _sync(store, behind=True)
    assert _graph(store) == _graph(expected)
    store.close()
    expected.close()
