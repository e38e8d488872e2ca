"""Every HITL operator and a mapped HITL task, on a real Airflow, ingested by the real CLI.

A real `airflow standalone` with its own DAGs folder (tests/dags/hitl_operators.py) runs one DAG
whose run asks with ApprovalOperator (assigned to a user), HITLBranchOperator, HITLOperator with
`multiple=True`, HITLEntryOperator, a HITLOperator answered with a rewrite, and a HITLOperator in a
task group mapped over two tickets. Each is answered through the REST API as a reviewer would,
then `contextgraph ingest` reads them into an embedded store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
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

DAG = "hitl_every_operator"
SETTLE_SECONDS = 8
DAGS = Path(__file__).resolve().parent / "dags"
ANSWERS: dict[tuple[str, int], tuple[list[str], dict[str, Any]]] = {
    ("approve", -1): (["Reject"], {}),
    ("route", -1): (["send"], {}),
    ("tag", -1): (["billing", "urgent"], {}),
    ("entry", -1): (["OK"], {"refund_amount": 120, "currency": "USD"}),
    ("rewrite", -1): (
        ["Respond Manually"],
        {"manual_response": "Hello, your refund was issued today.", "comments": "Say when it was issued."},
    ),
    ("per_ticket.review_reply", 0): (["Approve"], {}),
    ("per_ticket.review_reply", 1): (["Reject"], {}),
}


@pytest.fixture(scope="module")
def airflow() -> Iterator[AirflowServer]:
    """An Airflow of this module's own, on tests/dags/."""
    yield from serve_airflow(DAGS, wait_for_dags=[DAG])


def _answer_all(airflow: AirflowServer, run_id: str) -> None:
    waiting: set[tuple[str, int]] = set()
    deadline = time.monotonic() + 240
    while len(waiting) < len(ANSWERS):
        assert time.monotonic() < deadline, f"not all reviews waited: {waiting}"
        try:
            airflow.wait_for_hitl(DAG, run_id)  # one is waiting, and has waited a few seconds
            details = airflow.hitl_details(DAG, run_id, response_received=False)
        except httpx.TimeoutException:  # an API server slowed down by a loaded machine
            continue
        for detail in details:
            ti = detail["task_instance"]
            ident = (ti["task_id"], ti["map_index"])
            if ident in waiting or ti["state"] not in ("awaiting_input", "deferred"):
                continue
            created = datetime.fromisoformat(detail["created_at"].replace("Z", "+00:00"))
            if (datetime.now(UTC) - created).total_seconds() < SETTLE_SECONDS:
                continue  # the 3.3.2 race: answer only a task that has waited a while

            chosen, params = ANSWERS[ident]
            response = airflow.respond(DAG, run_id, ident[0], chosen, params, map_index=ident[1])
            assert response.status_code == 200, (ident, response.text)
            waiting.add(ident)
        time.sleep(1)
    state = airflow.wait_for_run(DAG, run_id)["state"]
    tasks = {(t["task_id"], t["map_index"]): t["state"] for t in airflow.task_instances(DAG, run_id)}
    assert state == "success", tasks


def test_every_hitl_operator_from_a_real_airflow(airflow: AirflowServer, tmp_path: Path) -> None:
    airflow.unpause(DAG)
    run_id = airflow.trigger(DAG, run_id="every_operator_1")
    _answer_all(airflow, run_id)

    store_path = tmp_path / "graph.lbdb"
    user, password = airflow.credentials
    result = CliRunner().invoke(
        cli,
        ["--store-path", str(store_path), "ingest", "--airflow-url", airflow.url, "--no-embed", "--json"],
        env={
            "AIRFLOW_USERNAME": user,
            "AIRFLOW_PASSWORD": password,
            "CONTEXTGRAPH_VERDICTS": json.dumps({f"{DAG}.approve": {"Reject": "escalated"}}),
        },
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rejected"] == [] and summary["missing_endpoints"] == {}

    store = EmbeddedStore(store_path, read_only=True)
    try:

        def rows(cypher: str) -> list[dict[str, Any]]:
            return store.query(cypher, {"run": run_id})

        decisions = rows(
            "MATCH (d:Decision {run_id: $run}) OPTIONAL MATCH (d)-[r:REVIEWED]->(p:Proposal) "
            "RETURN d.task_id AS task, d.map_index AS i, d.chosen_options AS chosen, r.verdict AS verdict, "
            "p.text AS proposal, d.reason AS reason, d.search_text AS text"
        )
        by = {(d["task"], d["i"]): d for d in decisions}
        assert set(by) == set(ANSWERS)
        assert by[("approve", -1)]["verdict"] == "escalated"  # the configured verdict
        assert by[("tag", -1)]["chosen"] == ["billing", "urgent"]
        assert "refund_amount: 120" in by[("entry", -1)]["text"]
        assert by[("rewrite", -1)]["reason"] == "Say when it was issued."
        assert [by[("per_ticket.review_reply", i)]["proposal"] for i in (0, 1)] == [
            "Reply to T-1",
            "Reply to T-2",
        ]
        assert rows(
            "MATCH (:Decision {run_id: $run, task_id: 'route'})-[:BRANCHED_TO]->(t:Task) "
            "RETURN t.task_id AS t"
        ) == [{"t": "send"}]
        assert rows(
            "MATCH (:Decision {run_id: $run, task_id: 'approve'})-[:ASSIGNED_TO]->(a:Actor) "
            "RETURN a.actor_id AS a"
        ) == [{"a": "admin"}]
        assert rows(
            "MATCH (:Decision {run_id: $run, task_id: 'rewrite'})-[:ANSWERED_WITH]->(a:Answer) "
            "RETURN a.text AS text, a.edit_chars AS edited"
        ) == [{"text": "Hello, your refund was issued today.", "edited": 6}]
        versions = rows(
            "MATCH (d:Decision {run_id: $run})-[:UNDER_VERSION]->(v:DagVersion) "
            "RETURN DISTINCT v.version_number AS n"
        )
        assert versions == [{"n": 1}]
    finally:
        store.close()
