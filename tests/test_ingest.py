"""Ingest from a real Airflow into a real Neo4j and the embedded store, incrementally.

One scenario drives both stores in lockstep: three reviews answered with different options and
reasons, one left to time out to its default, then an idle sync, then a new decision.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from contextgraph.config import AirflowSettings
from contextgraph.ingest.source import AirflowSource
from contextgraph.ingest.sync import Sync, SyncReport
from contextgraph.store import GraphStore
from tests.airflow_server import AirflowClient
from tests.builders import SHARED_MODEL
from tests.example_runs import (
    APPROVE,
    DAG,
    ESCALATE,
    MANUAL,
    REVIEW,
    answer,
    trigger,
)

pytestmark = pytest.mark.airflow


def airflow_settings(airflow: AirflowClient) -> AirflowSettings:
    user, password = airflow.credentials
    return AirflowSettings(url=airflow.url, username=user, password=SecretStr(password))


def sync(airflow: AirflowClient, store: GraphStore) -> SyncReport:
    with AirflowSource(airflow_settings(airflow)) as source:
        return Sync(source, store).run()


def decisions(store: GraphStore, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = store.query(
        """
        MATCH (d:Decision) WHERE d.run_id IN $runs
        OPTIONAL MATCH (d)-[:DECIDED_BY]->(a:Actor)
        OPTIONAL MATCH (d)-[rv:REVIEWED]->(p:Proposal)
        OPTIONAL MATCH (d)-[:CHOSE]->(o:Option)
        RETURN d.run_id AS run_id, d.chosen_options AS chosen, d.reason AS reason, d.timed_out AS timed_out,
               d.response_received AS received, d.upstream_task_ids AS upstream, d.offered AS offered,
               d.subject AS subject, a.kind AS actor_kind, a.actor_id AS actor, rv.verdict AS verdict,
               p.task_id AS proposal_task, p.text AS proposal, o.name AS option
        """,
        {"runs": run_ids},
    )
    return {r["run_id"]: r for r in rows}


def test_ingest_is_incremental_on_neo4j_and_embedded(
    airflow: AirflowClient, example_dag: str, neo4j_store: GraphStore, embedded_store: GraphStore
) -> None:
    stores = {"neo4j": neo4j_store, "embedded": embedded_store}
    runs = trigger(airflow, ["timeout", "approve", "manual", "escalate"])
    airflow.wait_for_hitl(DAG, runs["timeout"], task_id=REVIEW)
    answer(airflow, runs, ["approve", "manual", "escalate"])
    timeout_pending = not airflow.hitl_detail(DAG, runs["timeout"], REVIEW)["response_received"]

    first = {name: sync(airflow, store) for name, store in stores.items()}

    for name, store in stores.items():
        assert not first[name].rejected, first[name].rejected
        got = decisions(store, list(runs.values()))
        assert set(got) == set(runs.values()), name
        approve, manual, escalate = (got[runs[k]] for k in ("approve", "manual", "escalate"))
        assert (approve["chosen"], approve["verdict"], approve["option"]) == ([APPROVE], "approved", APPROVE)
        assert (manual["chosen"], manual["verdict"]) == ([MANUAL], "overridden")
        assert manual["reason"] == "Check the roadmap first: dark mode is planned."
        assert (escalate["verdict"], escalate["reason"]) == (
            "escalated",
            "Production outage: CRE must own it.",
        )
        for answered in (approve, manual, escalate):
            assert (answered["actor_kind"], answered["actor"]) == ("airflow_user", "admin")
            assert answered["offered"] == [APPROVE, MANUAL, ESCALATE]
            # The AI proposal reviewed is the draft task's XCom, and the upstream context is known.
            assert answered["proposal_task"] == "draft_response" and answered["proposal"]
            assert answered["upstream"] == ["draft_response", "fetch_ticket"]
        assert manual["subject"].endswith("Dark mode feature request")
        if timeout_pending:
            assert got[runs["timeout"]]["received"] is False
            assert got[runs["timeout"]]["verdict"] == "pending"
        # The DAG's structure: its tasks in order, and the decision point marked.
        chain = store.query(
            "MATCH (a:Task)-[:FEEDS]->(b:Task) WHERE a.dag_id = $dag RETURN a.task_id AS a, b.task_id AS b",
            {"dag": DAG},
        )
        assert {(r["a"], r["b"]) for r in chain} == {
            ("fetch_ticket", "draft_response"),
            ("draft_response", REVIEW),
            (REVIEW, "act_on_decision"),
            # act_on_decision also reads the ticket and the draft (TaskFlow XCom arguments).
            ("fetch_ticket", "act_on_decision"),
            ("draft_response", "act_on_decision"),
        }
        [point] = store.query(
            "MATCH (t:Task) WHERE t.key = $k RETURN t.is_decision_point AS p", {"k": f"{DAG}|{REVIEW}"}
        )
        assert point["p"] is True

    # The unanswered review times out to its default; the pending decision is re-visited.
    assert airflow.wait_for_run(DAG, runs["timeout"], timeout=180)["state"] == "success"
    second = {name: sync(airflow, store) for name, store in stores.items()}
    for name, store in stores.items():
        timed_out = decisions(store, [runs["timeout"]])[runs["timeout"]]
        assert timed_out["received"] is True and timed_out["timed_out"] is True, name
        assert (timed_out["chosen"], timed_out["verdict"]) == ([ESCALATE], "escalated")
        assert (timed_out["actor_kind"], timed_out["actor"]) == ("system", "timeout")
        if timeout_pending:
            assert second[name].updated["Decision"] >= 1

    # Nothing new: nothing written, a handful of API calls.
    idle = {name: sync(airflow, store) for name, store in stores.items()}
    for name, report in idle.items():
        assert report.written == 0, (name, report.as_dict())
        assert report.api_calls <= 6, (name, report.api_calls)

    # A decision made after that arrives in the next sync, and only it is new.
    runs.update(trigger(airflow, ["approve"]))
    answer(airflow, runs, ["approve"])
    third = {name: sync(airflow, store) for name, store in stores.items()}
    for name, store in stores.items():
        assert third[name].created["Decision"] == 1, (name, third[name].as_dict())
        assert runs["approve"] in decisions(store, [runs["approve"]])

    # The graph holds every HITL detail Airflow has, once.
    total = airflow.request("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails", params={"limit": 1}).json()
    for name, store in stores.items():
        assert store.stats()["nodes"]["Decision"] == total["total_entries"], name


def test_ingest_command_prints_its_summary(airflow: AirflowClient, example_dag: str, tmp_path: Path) -> None:
    answered = airflow.request(
        "GET", "/api/v2/dags/~/dagRuns/~/hitlDetails", params={"limit": 1, "response_received": True}
    ).json()
    if not answered["total_entries"]:  # run alone: make one decision to ingest
        answer(airflow, trigger(airflow, ["manual"]), ["manual"])
    user, password = airflow.credentials
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_URL": airflow.url,
        "AIRFLOW_USERNAME": user,
        "AIRFLOW_PASSWORD": password,
        "HOME": str(tmp_path),
        "CONTEXTGRAPH_EMBEDDING_MODEL": os.environ.get("CONTEXTGRAPH_EMBEDDING_MODEL") or str(SHARED_MODEL),
    }
    args = [
        sys.executable,
        "-m",
        "contextgraph",
        "--store-path",
        str(tmp_path / "g.lbdb"),
        "ingest",
        "--json",
    ]

    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["created"]["Dag"] >= 1 and summary["rejected"] == []
    assert summary["fetched"]["HITL details"] == summary["created"]["Decision"] >= 1
    assert password not in result.stdout + result.stderr

    assert summary["embedded"] == summary["created"]["Decision"]

    table = subprocess.run(args[:-1], capture_output=True, text=True, env=env, timeout=300)
    assert table.returncode == 0 and "ingest: 0 written" in table.stdout

    # Precedent search answers on the graph that ingest filled from the real Airflow.
    similar = [*args[:5], "similar", "customer wants dark mode, a feature request", "--json"]
    found = subprocess.run(similar, capture_output=True, text=True, env=env, timeout=300)
    assert found.returncode == 0, found.stderr
    precedents = json.loads(found.stdout)
    assert precedents and all(p["reason"] and p["chosen_options"] for p in precedents)


def test_wrong_airflow_password_is_one_clear_line(airflow: AirflowClient, tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_URL": airflow.url,
        "AIRFLOW_USERNAME": "admin",
        "AIRFLOW_PASSWORD": "wrong-secret-123",
        "HOME": str(tmp_path),
    }
    args = [sys.executable, "-m", "contextgraph", "--store-path", str(tmp_path / "g.lbdb"), "ingest"]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "wrong-secret-123" not in result.stderr + result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error:") and "AIRFLOW_" in line
