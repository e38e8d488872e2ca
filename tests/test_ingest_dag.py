"""The scheduled ingestion DAG, run by a real Airflow into a real Neo4j.

Its credentials come from Airflow Connections created through the REST API; a decision made in
the example DAG updates the `contextgraph://decisions` asset, which triggers the ingestion.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contextgraph.store import Neo4jStore
from tests.airflow_server import AirflowClient
from tests.example_runs import put_api_connection

pytestmark = pytest.mark.airflow

INGEST = "contextgraph_ingest"
EXAMPLE = "ai_support_ticket_system"


@pytest.fixture
def connections(airflow: AirflowClient, neo4j_connection: None) -> Iterator[None]:
    """The ingestion DAG's connections: the tests' Neo4j and this Airflow's API."""
    put_api_connection(airflow)
    yield
    # Leave no ingestion running that could write into other tests' Neo4j.
    airflow.request("PATCH", f"/api/v2/dags/{INGEST}", json={"is_paused": True})
    for run in ingest_runs(airflow):
        if run["state"] not in ("success", "failed"):
            airflow.wait_for_run(INGEST, run["dag_run_id"], timeout=180)
    airflow.request("DELETE", "/api/v2/connections/airflow_api_default")


def test_a_rejected_password_fails_the_ingest_at_once_without_retries(
    airflow: AirflowClient, example_dag: str, connections: None
) -> None:
    """A terminal error (the API's password is refused) fails the task on its first try: the
    task's ``retries=3`` are for transient errors only."""
    put_api_connection(airflow, password="not-the-password-4e1b")
    airflow.wait_for_dag(INGEST)
    airflow.unpause(INGEST)
    run_id = airflow.trigger(INGEST, run_id=f"manual_badpw_{uuid.uuid4().hex[:6]}")
    run = airflow.wait_for_run(INGEST, run_id, timeout=240)
    [task] = [ti for ti in airflow.task_instances(INGEST, run_id) if ti["task_id"] == "ingest"]
    assert run["state"] == "failed"
    assert (task["state"], task["try_number"]) == ("failed", 1)


def ingest_runs(airflow: AirflowClient) -> list[dict[str, Any]]:
    response = airflow.request("GET", f"/api/v2/dags/{INGEST}/dagRuns", params={"limit": 100})
    return list(response.json()["dag_runs"])


def test_ingest_dag_syncs_on_demand_and_when_a_decision_is_made(
    airflow: AirflowClient, example_dag: str, neo4j_store: Neo4jStore, connections: None
) -> None:
    airflow.wait_for_dag(INGEST)
    airflow.unpause(INGEST)
    run_id = airflow.trigger(INGEST, conf={"full": True}, run_id=f"manual_full_{uuid.uuid4().hex[:6]}")
    assert airflow.wait_for_run(INGEST, run_id, timeout=240)["state"] == "success"

    summary = airflow.xcom(INGEST, run_id, "ingest")
    total = airflow.request("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails", params={"limit": 1}).json()
    assert summary["full"] is True and summary["rejected"] == []
    assert neo4j_store.stats()["nodes"]["Decision"] == total["total_entries"]
    assert neo4j_store.stats()["nodes"]["Dag"] >= 2

    # A decision in the example DAG updates the asset; that triggers the ingestion by itself.
    before = {r["dag_run_id"] for r in ingest_runs(airflow)}
    example_run = airflow.trigger(EXAMPLE, conf={"ticket_id": "T-9", "subject": "Asset trigger check"})
    airflow.wait_for_hitl(EXAMPLE, example_run, task_id="review_response")
    answer = {"reason": "Fine as drafted.", "manual_response": None}
    assert (
        airflow.respond(EXAMPLE, example_run, "review_response", ["Approve AI Response"], answer).status_code
        == 200
    )
    assert airflow.wait_for_run(EXAMPLE, example_run)["state"] == "success"

    deadline = time.monotonic() + 180
    triggered: list[dict[str, Any]] = []
    while not triggered and time.monotonic() < deadline:
        triggered = [
            r
            for r in ingest_runs(airflow)
            if r["dag_run_id"] not in before and r["run_type"] == "asset_triggered"
        ]
        time.sleep(1)
    assert triggered, "no asset-triggered ingestion after a decision"
    assert airflow.wait_for_run(INGEST, triggered[0]["dag_run_id"], timeout=240)["state"] == "success"
    rows = neo4j_store.query(
        "MATCH (d:Decision) WHERE d.run_id = $run RETURN d.reason AS reason", {"run": example_run}
    )
    assert rows == [{"reason": "Fine as drafted."}]
