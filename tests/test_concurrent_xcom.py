"""Proposals' XComs are read concurrently, bounded, and a 429 pauses every worker.

The real `AirflowSource` talks over HTTP to the replay of Airflow 3.3's REST API
(`contextgraph.ingest.source.replay`, serving `builders.support_world`) through the loopback fault
proxy, which adds latency and 429 answers and notes when each request arrived and how many were in
flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from pydantic import SecretStr

from contextgraph.config import AirflowSettings
from contextgraph.ingest.source import AirflowSource, XComRef
from contextgraph.ingest.source.memory import MemorySource, Records
from contextgraph.ingest.source.replay import ReplayServer
from contextgraph.ingest.sync import Sync
from contextgraph.store import EmbeddedStore

from .builders import support_world
from .fault_proxy import FaultProxy

XCOM = "xcomEntries"


class CountingProxy(FaultProxy):
    """The fault proxy, noting when each request arrived and the most requests in flight at once."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.arrivals: list[tuple[float, str]] = []
        self.answered_at: list[tuple[float, str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._count_lock = threading.Lock()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        with self._count_lock:
            self.arrivals.append((time.monotonic(), h.path))
            if XCOM in h.path:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            super()._serve(h)
        finally:
            if XCOM in h.path:
                with self._count_lock:
                    self.in_flight -= 1

    def _send(
        self, h: BaseHTTPRequestHandler, path: str, status: int, payload: bytes, headers: dict[str, str]
    ) -> None:
        self.answered_at.append((time.monotonic(), path, status))
        super()._send(h, path, status, payload, headers)


@pytest.fixture
def world() -> Records:
    return support_world(80)


@pytest.fixture
def airflow(world: Records) -> Iterator[ReplayServer]:
    with ReplayServer(world, token="replay-token", maximum_page_limit=100) as server:
        yield server


@pytest.fixture
def proxy(airflow: ReplayServer) -> Iterator[CountingProxy]:
    p = CountingProxy(airflow.url)
    yield p
    p.close()


def _source(url: str, concurrency: int) -> AirflowSource:
    settings = AirflowSettings(
        url=url, username="bench", password=SecretStr("bench"), max_concurrency=concurrency, max_retries=3
    )
    return AirflowSource(settings, backoff_base_seconds=0.01, backoff_cap_seconds=0.05)


def _refs(world: Records, count: int) -> dict[XComRef, object]:
    """The XComs of the first `count` decisions' runs, and the value each should read as."""
    out: dict[XComRef, object] = {}
    for dag_id, run_id, task_id in list(world.xcoms)[: 2 * count]:  # two per run
        out[XComRef(dag_id, run_id, task_id)] = world.xcoms[(dag_id, run_id, task_id)]
    first = world.runs[0]
    out[XComRef(first["dag_id"], first["dag_run_id"], "no_such_task")] = None
    return out


def test_xcoms_are_read_concurrently_up_to_the_bound(world: Records, proxy: CountingProxy) -> None:
    expected = _refs(world, 24)
    proxy.add("slow", path=XCOM, match="contains", delay=0.25, times=10_000)  # a slow server
    with _source(proxy.url, concurrency=6) as source:
        began = time.monotonic()
        values = source.xcom_values(expected)
        elapsed = time.monotonic() - began
    assert values == expected
    # One after another this takes len(expected) x 0.25 s ≥ 6 s; six at a time about 1.1 s.
    assert elapsed < len(expected) * 0.25 / 3, elapsed
    assert proxy.most_in_flight == 6  # bounded by AIRFLOW_MAX_CONCURRENCY, and reached


def test_concurrency_one_reads_one_at_a_time(world: Records, proxy: CountingProxy) -> None:
    expected = _refs(world, 6)
    with _source(proxy.url, concurrency=1) as source:
        assert source.xcom_values(expected) == expected
    assert proxy.most_in_flight == 1


def test_a_429_pauses_every_worker_for_its_retry_after(world: Records, proxy: CountingProxy) -> None:
    expected = _refs(world, 40)
    proxy.add("status", path=XCOM, match="contains", status=429, headers={"Retry-After": "1"})
    proxy.add("slow", path=XCOM, match="contains", delay=0.05, times=10_000)
    with _source(proxy.url, concurrency=8) as source:
        values = source.xcom_values(expected)
    assert values == expected  # the refused read was retried
    [refused_at] = [t for t, path, status in proxy.answered_at if status == 429]
    later = [t - refused_at for t, path in proxy.arrivals if XCOM in path and t > refused_at]
    assert later, "reads went on after the 429"
    # Reads already on their way when the 429 came back may arrive just after it; after that,
    # nobody sends until Retry-After has passed (every worker waits, not only the refused one).
    assert not [d for d in later if 0.2 < d < 0.95], sorted(later)
    assert max(later) >= 0.95


def test_a_sync_of_new_decisions_reads_their_proposals_concurrently(
    world: Records, proxy: CountingProxy, tmp_path: Path
) -> None:
    """The sync's proposals are the same read concurrently as one by one, and the reads overlap."""
    graphs = {}
    proxy.add("slow", path=XCOM, match="contains", delay=0.1, times=10_000)
    for concurrency in (1, 8):
        store = EmbeddedStore(tmp_path / f"c{concurrency}.lbdb")
        store.ensure_schema()
        # The first 60 decisions are already in the graph; 20 arrive.
        Sync(MemorySource.over(support_world(60), url=proxy.url), store).run()
        proxy.most_in_flight = 0
        with _source(proxy.url, concurrency) as source:
            report = Sync(source, store).run()
        assert report.created["Decision"] == 20 and not report.rejected
        assert proxy.most_in_flight == concurrency
        graphs[concurrency] = store.query(
            "MATCH (d:Decision)-[:REVIEWED]->(p:Proposal) "
            "RETURN d.key AS decision, p.text AS text ORDER BY decision, text"
        )
        store.close()
    assert len({r["decision"] for r in graphs[8]}) == len(world.hitl_details)  # each has its proposal
    assert graphs[8] == graphs[1]
