"""Faults: the Neo4j server dies in the middle of an ingest; nothing is lost or duplicated.

Figures are printed (run with -s to see them) and the README's reliability section quotes them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from contextgraph import model as m
from contextgraph.config import Neo4jSettings
from contextgraph.errors import StoreUnavailableError
from contextgraph.ingest import mapping
from contextgraph.ingest.sync import Sync, SyncOptions
from contextgraph.store import GraphStore, Neo4jStore

from .builders import ListSource, detail
from .neo4j_server import Neo4jServer

#: The test starts (and kills) a Neo4j server of its own, outside the ``neo4j_settings`` fixture.
pytestmark = pytest.mark.neo4j

DECISIONS = 10_000
CHOICES = ["Approve AI Response", "Respond Manually", "Escalate to CRE"]


def history(n: int) -> list[dict[str, Any]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = []
    for i in range(n):
        created = start + timedelta(minutes=i)
        records.append(
            detail(
                f"run-{i:05d}",
                subject=f"Ticket {i}: {['billing', 'login', 'export', 'feature'][i % 4]} question",
                chosen_options=[CHOICES[i % 3]],
                params_input={"reason": f"Reason number {i}"},
                created_at=created.isoformat(),
                responded_at=(created + timedelta(minutes=3)).isoformat(),
            )
        )
    return records


def expected_counts(records: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """What the graph must hold: the source mapped in memory, duplicates collapsed."""
    source = ListSource(records)
    batch = m.GraphBatch(nodes=[mapping.map_dag(next(source.dags()))])
    shape_batch, shape = mapping.map_tasks("support", source.tasks("support"), {"review"})
    batch.extend(shape_batch)
    for run in source.dag_runs():
        batch.extend(mapping.map_dag_run(run))
    for ti in source.task_instances():
        batch.extend(mapping.map_task_instance(ti))
    for record in records:
        run_id = record["task_instance"]["dag_run_id"]
        proposal = mapping.ProposalValue(
            "draft_response", source.xcom_value("support", run_id, "draft_response")
        )
        batch.extend(mapping.map_decision(record, upstream=shape.upstream("review"), proposals=[proposal]))
    nodes = Counter({t.label: len(v) for t, v in batch.nodes_by_label().items()})
    edges = Counter({t.rel_type: len(v) for t, v in batch.edges_by_type().items()})
    return {"nodes": nodes, "relationships": edges}


def checksum(rows: list[dict[str, Any]]) -> str:
    text = "\n".join(
        f"{r['key']}={','.join(r['chosen'] or [])}" for r in sorted(rows, key=lambda r: r["key"])
    )
    return hashlib.sha256(text.encode()).hexdigest()


def graph_checksum(store: GraphStore) -> str:
    return checksum(store.query("MATCH (d:Decision) RETURN d.key AS key, d.chosen_options AS chosen"))


def source_checksum(records: list[dict[str, Any]]) -> str:
    rows = [
        {"key": m.make_key(*mapping.decision_identity(r)), "chosen": r["chosen_options"]} for r in records
    ]
    return checksum(rows)


class KillingSource(ListSource):
    """Kills the Neo4j server (SIGKILL) while the sync writes, once `after` HITL details were read."""

    def __init__(self, records: list[dict[str, Any]], server: Neo4jServer, after: int) -> None:
        super().__init__(records)
        self.server, self.after = server, after

    def hitl_details(self, *, created_since: datetime | None = None) -> Iterator[dict[str, Any]]:
        for i, record in enumerate(super().hitl_details(created_since=created_since)):
            if i == self.after:
                threading.Thread(target=self.server.kill, daemon=True).start()
            yield record


@pytest.fixture
def own_neo4j() -> Iterator[Neo4jServer]:
    """A Neo4j server of this test's own, since the test kills it."""
    server = Neo4jServer()
    server.start()
    yield server
    server.stop()


def test_neo4j_killed_mid_ingest_then_sync_again_equals_the_source(own_neo4j: Neo4jServer) -> None:
    records = history(DECISIONS)
    settings = Neo4jSettings(
        uri=own_neo4j.uri, username=own_neo4j.username, password=SecretStr(own_neo4j.password)
    )
    options = SyncOptions(page_size=1000)
    source = KillingSource(records, own_neo4j, after=DECISIONS // 2)

    started = time.monotonic()
    with Neo4jStore.connect(settings) as store:
        store.ensure_schema()
        with pytest.raises(StoreUnavailableError) as first_error:
            Sync(source, store, options).run()
    first_seconds = time.monotonic() - started
    own_neo4j.start()

    with Neo4jStore.connect(settings) as store:
        store.verify()
        second = Sync(ListSource(records), store, options).run()
        counts = store.stats()
        got = graph_checksum(store)
        duplicates = store.query(
            "MATCH (d:Decision) WITH d.key AS k, count(*) AS n WHERE n > 1 RETURN count(k) AS c"
        )

    expected = expected_counts(records)
    print(
        f"\n[reliability] Neo4j SIGKILLed after {DECISIONS // 2} of {DECISIONS} decisions; the sync stopped "
        f"after {first_seconds:.1f}s with: {first_error.value}; server restarted; the next sync wrote "
        f"{second.written} elements in {second.seconds:.1f}s; "
        f"graph checksum {'equals' if got == source_checksum(records) else 'DIFFERS FROM'} the source's"
    )
    assert duplicates == [{"c": 0}]
    assert {
        k: v
        for k, v in counts["nodes"].items()
        if v and k not in ("SyncState", "Deployment", "SchemaVersion")
    } == dict(expected["nodes"])
    assert {k: v for k, v in counts["relationships"].items() if v and k != "HAS_DAG"} == dict(
        expected["relationships"]
    )
    assert got == source_checksum(records)
