"""Assets on a real Airflow: a producer feeds an asset-scheduled DAG whose review a human answers.

A real `airflow standalone` with the DAGs in tests/dags/asset_feeders.py: `assets_producer`
publishes an asset, which schedules `assets_review` (an ApprovalOperator review); the unrelated
`assets_unrelated` runs too. `contextgraph ingest` must read the runs of the producer and of the
review DAG, skip the unrelated DAG's, and link them: producer task -PRODUCES-> asset -TRIGGERS->
review DAG.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from contextgraph.cli import cli
from contextgraph.store import EmbeddedStore
from tests.airflow_fixtures import serve_airflow
from tests.airflow_server import AirflowServer

pytestmark = pytest.mark.airflow

PRODUCER, REVIEW, UNRELATED = "assets_producer", "assets_review", "assets_unrelated"
DAGS = Path(__file__).resolve().parent / "dags"


@pytest.fixture(scope="module")
def airflow() -> Iterator[AirflowServer]:
    """An Airflow of this module's own, on tests/dags/."""
    yield from serve_airflow(DAGS, wait_for_dags=[PRODUCER, REVIEW, UNRELATED])


def _asset_triggered_run(airflow: AirflowServer, timeout: float = 300.0) -> str:
    """The run of the review DAG the asset event created."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            runs = airflow.request("GET", f"/api/v2/dags/{REVIEW}/dagRuns", params={"limit": 10}).json()
        except httpx.TimeoutException:  # an API server slowed down by a loaded machine
            continue
        if runs.get("dag_runs"):
            return str(runs["dag_runs"][0]["dag_run_id"])
        time.sleep(1)
    pytest.fail(f"no asset-triggered run of {REVIEW} after {timeout:.0f}s")


def _finished(airflow: AirflowServer, dag_id: str, run_id: str, timeout: float = 300.0) -> str:
    """The run's final state, polled through API timeouts (a loaded machine slows the server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = str(airflow.dag_run(dag_id, run_id)["state"])
        except httpx.TimeoutException:
            continue
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    pytest.fail(f"run {dag_id}/{run_id} not finished after {timeout:.0f}s")


def _wait_for_review(airflow: AirflowServer, run_id: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            airflow.wait_for_hitl(REVIEW, run_id, timeout=timeout)
            return
        except httpx.TimeoutException:
            assert time.monotonic() < deadline, f"no review waited in {REVIEW}/{run_id}"


def test_the_sync_reads_the_producer_and_the_review_dag_and_skips_the_rest(
    airflow: AirflowServer, tmp_path: Path
) -> None:
    for dag_id in (PRODUCER, REVIEW, UNRELATED):
        airflow.unpause(dag_id)
    unrelated = airflow.trigger(UNRELATED, run_id="unrelated_1")
    produced = airflow.trigger(PRODUCER, run_id="producer_1")
    assert _finished(airflow, PRODUCER, produced) == "success"
    review_run = _asset_triggered_run(airflow)
    _wait_for_review(airflow, review_run)
    answer = airflow.respond(REVIEW, review_run, "review", ["Reject"], {})
    assert answer.status_code == 200, answer.text
    _finished(airflow, REVIEW, review_run)
    assert _finished(airflow, UNRELATED, unrelated) == "success"

    store_path = tmp_path / "graph.lbdb"
    user, password = airflow.credentials
    result = CliRunner().invoke(
        cli,
        ["--store-path", str(store_path), "ingest", "--airflow-url", airflow.url, "--no-embed", "--json"],
        env={"AIRFLOW_USERNAME": user, "AIRFLOW_PASSWORD": password},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rejected"] == [] and summary["missing_endpoints"] == {}, summary
    tracked = {reason: v["dag_ids"] for reason, v in summary["dags"]["tracked"].items()}
    assert tracked == {"decision_points": [REVIEW], "asset_feeders": [PRODUCER]}
    assert UNRELATED in summary["dags"]["skipped"]["no_decisions"]["dag_ids"]

    store = EmbeddedStore(store_path, read_only=True)
    try:

        def rows(cypher: str, **params: Any) -> list[dict[str, Any]]:
            return store.query(cypher, params)

        runs = rows("MATCH (r:DagRun) RETURN r.dag_id AS dag, r.run_type AS type ORDER BY dag")
        assert runs == [
            {"dag": PRODUCER, "type": "manual"},
            {"dag": REVIEW, "type": "asset_triggered"},
        ]
        assert rows("MATCH (d:Dag {dag_id: $dag}) RETURN d.tracked AS t", dag=UNRELATED) == [{"t": False}]
        links = rows(
            "MATCH (t:Task)-[:PRODUCES]->(a:Asset)-[:TRIGGERS]->(d:Dag) "
            "RETURN t.dag_id AS producer, t.task_id AS task, a.name AS asset, a.uri AS uri, d.dag_id AS dag"
        )
        assert links == [
            {
                "producer": PRODUCER,
                "task": "publish",
                "asset": "contextgraph_test_orders",
                "uri": "file:///tmp/contextgraph-test/orders.json",
                "dag": REVIEW,
            }
        ]
        decision = rows(
            "MATCH (d:Decision {dag_id: $dag})-[:REVIEWED]->(p:Proposal) "
            "RETURN d.chosen_options AS chosen, p.text AS proposal",
            dag=REVIEW,
        )
        assert decision == [{"chosen": ["Reject"], "proposal": "Orders: 1,204 yesterday"}]
    finally:
        store.close()
