"""Assets across DAGs, and a sync that reads only what matters, through the real CLI on both stores.

The records are what an Airflow 3.3 REST API v2 returns for a small deployment (served over HTTP
by `contextgraph.ingest.source.replay`): a HITL review DAG scheduled on an asset *or* a cron schedule, the
DAG producing that asset, the DAG feeding *that* one through another asset, an external asset no
task produces (with an alias), a paused marketing DAG that has runs but asks nobody, and a legacy
DAG the user excludes. `contextgraph ingest --json` runs against it into the embedded store and
into a real Neo4j, and the graph is read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contextgraph.cli import cli
from contextgraph.config import Neo4jSettings
from contextgraph.ingest.source.memory import Records
from contextgraph.ingest.source.replay import ReplayServer
from contextgraph.store import EmbeddedStore

from .builders import hitl_detail, task_instance
from .neo4j_server import empty_neo4j

REVIEW, EXTRACT, CUSTOMERS, MARKETING, LEGACY = (
    "orders_review",
    "orders_extract",
    "customers_sync",
    "marketing_report",
    "legacy_cleanup",
)
WHEN = "2026-11-29T10:00:00Z"


def dag(dag_id: str, *tags: str, schedule: str | None = "@daily", paused: bool = False) -> dict[str, Any]:
    """A `/dags` record as Airflow 3.3 lists it."""
    return {
        "dag_id": dag_id,
        "dag_display_name": dag_id,
        "is_paused": paused,
        "is_stale": False,
        "last_parsed_time": WHEN,
        "bundle_name": "dags-folder",
        "bundle_version": None,
        "relative_fileloc": f"{dag_id}.py",
        "fileloc": f"/opt/airflow/dags/{dag_id}.py",
        "description": None,
        "timetable_summary": schedule,
        "timetable_description": None,
        "tags": [{"name": t, "dag_id": dag_id} for t in tags],
        "max_active_tasks": 16,
        "max_active_runs": 16,
        "max_consecutive_failed_dag_runs": 0,
        "has_task_concurrency_limits": False,
        "has_import_errors": False,
        "next_dagrun_logical_date": None,
        "owners": ["data"],
        "file_token": "x",
    }


def task(task_id: str, operator: str, *downstream: str) -> dict[str, Any]:
    return {"task_id": task_id, "operator_name": operator, "downstream_task_ids": list(downstream)}


def ref(dag_id: str, task_id: str | None = None) -> dict[str, Any]:
    """A reference in an asset record (`producing_tasks` with a task_id, `scheduled_dags` without)."""
    found = {"dag_id": dag_id, "created_at": WHEN, "updated_at": WHEN}
    return {**found, "task_id": task_id} if task_id else found


def asset(
    asset_id: int,
    name: str,
    uri: str,
    *,
    producing: list[dict[str, Any]] = (),  # type: ignore[assignment]
    scheduled: list[dict[str, Any]] = (),  # type: ignore[assignment]
    aliases: list[str] = (),  # type: ignore[assignment]
    last_event: str | None = None,
) -> dict[str, Any]:
    """A `/assets` record as Airflow 3.3 lists it."""
    return {
        "id": asset_id,
        "name": name,
        "uri": uri,
        "group": "asset",
        "extra": {"owner": "data"},
        "created_at": WHEN,
        "updated_at": WHEN,
        "scheduled_dags": list(scheduled),
        "producing_tasks": list(producing),
        "consuming_tasks": [],
        "aliases": [{"id": i, "name": a, "group": "asset"} for i, a in enumerate(aliases, 1)],
        "watchers": [],
        "last_asset_event": {"id": 7, "timestamp": last_event} if last_event else None,
    }


def run(dag_id: str, run_id: str, run_type: str = "scheduled") -> dict[str, Any]:
    return {
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "run_type": run_type,
        "state": "success",
        "logical_date": WHEN,
        "start_date": WHEN,
        "end_date": WHEN,
        "conf": {},
    }


def ti(dag_id: str, run_id: str, task_id: str, operator: str = "PythonOperator") -> dict[str, Any]:
    version = {"version_number": 1, "bundle_version": None, "dag_id": dag_id}
    return task_instance(dag_id, run_id, task_id, operator_name=operator, dag_version=version)


def review(dag_id: str, run_id: str, task_id: str = "review") -> dict[str, Any]:
    """An answered ApprovalOperator HITL detail."""
    return hitl_detail(
        ti(dag_id, run_id, task_id, "ApprovalOperator"),
        subject="Publish the order summary?",
        body="Totals for yesterday's orders.",
        created_at=WHEN,
        responded_at=WHEN,
        chosen_options=["Reject"],
        params_input={"comments": "Totals do not match the ledger"},
    )


REVIEW_RUN = "asset_triggered__2026-11-29T10:00:00+00:00_Xk3Pq9Zb"


def deployment() -> Records:
    runs = [
        run(REVIEW, REVIEW_RUN, "asset_triggered"),
        run(EXTRACT, "scheduled__2026-11-29T09:00:00+00:00"),
        run(CUSTOMERS, "scheduled__2026-11-29T08:00:00+00:00"),
        run(MARKETING, "scheduled__2026-11-28T00:00:00+00:00"),
        run(LEGACY, "manual__2026-11-29T07:00:00+00:00", "manual"),
    ]
    tasks = {
        REVIEW: [task("summarize", "@task", "review"), task("review", "ApprovalOperator")],
        EXTRACT: [task("extract", "@task", "publish"), task("publish", "@task")],
        CUSTOMERS: [task("load", "SQLExecuteQueryOperator")],
        MARKETING: [task("report", "@task")],
        LEGACY: [task("cleanup", "BashOperator")],
    }
    tis = [ti(r["dag_id"], r["dag_run_id"], t["task_id"]) for r in runs for t in tasks[r["dag_id"]]]
    tis = [t for t in tis if t["task_id"] != "review"] + [review(REVIEW, REVIEW_RUN)["task_instance"]]
    return Records(
        dags=[
            dag(CUSTOMERS, "etl"),
            dag(LEGACY, "etl"),
            dag(MARKETING, "marketing", paused=True),
            dag(EXTRACT, "etl", schedule="Asset"),
            dag(REVIEW, "hitl", "finance", schedule="Asset or 0 6 * * *"),
        ],
        tasks=tasks,
        runs=runs,
        task_instances=tis,
        hitl_details=[review(REVIEW, REVIEW_RUN)],
        xcoms={(REVIEW, REVIEW_RUN, "summarize", -1): {"summary": "Orders: 1,204; revenue 88,410 EUR"}},
        assets=[
            asset(
                1,
                "orders",
                "s3://warehouse/orders.parquet",
                producing=[ref(EXTRACT, "publish")],
                scheduled=[ref(REVIEW)],
                aliases=["orders-latest"],
                last_event=WHEN,
            ),
            asset(
                2,
                "customers",
                "postgres://crm/public/customers",
                producing=[ref(CUSTOMERS, "load")],
                scheduled=[ref(EXTRACT)],
            ),
            # Updated from outside Airflow (through the API): no producing task.
            asset(3, "fx_rates", "https://ecb.example/fx.csv", scheduled=[ref(REVIEW)]),
            asset(4, "campaigns", "s3://marketing/campaigns.csv", producing=[ref(MARKETING, "report")]),
            {**asset(5, "broken", "s3://broken"), "producing_tasks": "orders_extract.publish"},
        ],
        server_time=datetime(2026, 11, 30, 12, tzinfo=UTC),  # the Airflow's clock
    )


# --- running the CLI against either store ----------------------------------------------------------


@dataclass
class Graph:
    """Where `contextgraph ingest` writes (its global CLI options) and how the test reads it back."""

    args: list[str]
    read: Callable[..., list[dict[str, Any]]]

    def ingest(self, url: str, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """`contextgraph ingest --json` against `url`; the parsed summary (exit code must be 0)."""
        command = [*self.args, "ingest", "--airflow-url", url, "--no-embed", "--json", *extra]
        result = CliRunner().invoke(cli, command, env=env)
        assert result.exit_code == 0, result.output
        summary: dict[str, Any] = json.loads(result.stdout)
        return summary


@contextmanager
def empty_graph(kind: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[Graph]:
    """An empty graph of this kind ("embedded": a store file in ``folder``; "neo4j": the test
    database, wiped) for the CLI to ingest into."""
    if kind == "embedded":
        path = folder / "graph.lbdb"

        def read_embedded(cypher: str, **params: Any) -> list[dict[str, Any]]:
            store = EmbeddedStore(path, read_only=True)
            try:
                return store.query(cypher, params)
            finally:
                store.close()

        yield Graph(["--store-path", str(path)], read_embedded)
        return
    settings: Neo4jSettings = request.getfixturevalue("neo4j_settings")
    with empty_neo4j(settings) as store:
        args = ["--neo4j-uri", settings.uri or "", "--neo4j-username", settings.username]
        args += ["--neo4j-password", settings.password.get_secret_value()]
        yield Graph(args, lambda cypher, **params: store.query(cypher, params))


@pytest.fixture(params=["embedded", "neo4j"])
def graph(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Graph]:
    """An empty graph of each kind, for a test that ingests into it."""
    with empty_graph(request.param, tmp_path, request) as graph:
        yield graph


@dataclass
class Ingested:
    """The deployment ingested once (``--exclude-dags legacy_*``): where, its summary, and what
    the sync asked the stand-in Airflow for (path, query)."""

    graph: Graph
    summary: dict[str, Any]
    requests: list[tuple[str, dict[str, list[str]]]]


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def ingested(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    """One ingest of ``deployment()`` into each kind of graph, shared by the tests that only read it."""
    with empty_graph(request.param, tmp_path_factory.mktemp("assets"), request) as graph:
        with ReplayServer(deployment()) as airflow:
            summary = graph.ingest(airflow.url, "--exclude-dags", "legacy_*")
        yield Ingested(graph, summary, list(airflow.replay.requests))


def dag_ids(summary: dict[str, Any], kind: str) -> dict[str, list[str]]:
    return {reason: v["dag_ids"] for reason, v in summary["dags"][kind].items()}


def per_dag_reads(requests: list[tuple[str, Any]]) -> set[str]:
    """DAGs whose runs or task instances were asked for one DAG at a time."""
    return {
        path.split("/")[4]
        for path, _ in requests
        if path.endswith(("/dagRuns", "/taskInstances")) and path.split("/")[4] != "~"
    }


# --- tests -----------------------------------------------------------------------------------------


def test_history_is_read_for_decision_dags_and_their_asset_feeders_only(ingested: Ingested) -> None:
    graph, summary = ingested.graph, ingested.summary
    tasks_read = {p.split("/")[4] for p, _ in ingested.requests if p.endswith("/tasks")}
    assert per_dag_reads(ingested.requests) == {REVIEW, EXTRACT, CUSTOMERS}
    assert dag_ids(summary, "tracked") == {
        "decision_points": [REVIEW],
        "asset_feeders": [CUSTOMERS, EXTRACT],  # CUSTOMERS feeds EXTRACT, which feeds REVIEW
    }
    assert dag_ids(summary, "skipped") == {"excluded": [LEGACY], "no_decisions": [MARKETING]}
    assert tasks_read == {REVIEW, EXTRACT, CUSTOMERS}
    assert [r["record"] for r in summary["rejected"]] == ["asset broken"]
    assert summary["rejected"][0]["field"] == "producing_tasks"

    runs = graph.read("MATCH (r:DagRun) RETURN r.dag_id AS dag ORDER BY dag")
    assert [r["dag"] for r in runs] == [CUSTOMERS, EXTRACT, REVIEW]
    dags = graph.read(
        "MATCH (d:Dag) RETURN d.dag_id AS dag, d.tracked AS tracked, d.is_paused AS paused, "
        "d.tags AS tags, d.schedule AS schedule ORDER BY dag"
    )
    assert dags == [
        {"dag": CUSTOMERS, "tracked": True, "paused": False, "tags": ["etl"], "schedule": "@daily"},
        {"dag": MARKETING, "tracked": False, "paused": True, "tags": ["marketing"], "schedule": "@daily"},
        {"dag": EXTRACT, "tracked": True, "paused": False, "tags": ["etl"], "schedule": "Asset"},
        {
            "dag": REVIEW,
            "tracked": True,
            "paused": False,
            "tags": ["hitl", "finance"],
            "schedule": "Asset or 0 6 * * *",
        },
    ]


def test_assets_link_producing_tasks_to_the_dags_they_trigger(ingested: Ingested) -> None:
    graph = ingested.graph
    links = graph.read(
        "MATCH (t:Task)-[:PRODUCES]->(a:Asset)-[:TRIGGERS]->(d:Dag) "
        "RETURN t.dag_id + '.' + t.task_id AS task, a.name AS asset, d.dag_id AS dag ORDER BY asset"
    )
    assert links == [
        {"task": f"{CUSTOMERS}.load", "asset": "customers", "dag": EXTRACT},
        {"task": f"{EXTRACT}.publish", "asset": "orders", "dag": REVIEW},
    ]
    assets = graph.read(
        "MATCH (a:Asset) OPTIONAL MATCH (t:Task)-[:PRODUCES]->(a) "
        "RETURN a.name AS name, a.uri AS uri, a.aliases AS aliases, count(t) AS producers ORDER BY name"
    )
    assert assets == [  # `campaigns` touches only an untracked DAG; `broken` was rejected
        {"name": "customers", "uri": "postgres://crm/public/customers", "aliases": [], "producers": 1},
        {"name": "fx_rates", "uri": "https://ecb.example/fx.csv", "aliases": [], "producers": 0},
        {
            "name": "orders",
            "uri": "s3://warehouse/orders.parquet",
            "aliases": ["orders-latest"],
            "producers": 1,
        },
    ]
    # A decision's upstream context crosses DAGs: what fed the DAG it was made in, two hops back.
    upstream = graph.read(
        "MATCH (:Decision {dag_id: $dag})-[:AT_POINT]->(:Task)<-[:HAS_TASK]-(d:Dag) "
        "MATCH (d)<-[:TRIGGERS]-(a:Asset)<-[:PRODUCES]-(t:Task)<-[:HAS_TASK]-(f:Dag) "
        "OPTIONAL MATCH (f)<-[:TRIGGERS]-(b:Asset)<-[:PRODUCES]-(u:Task) "
        "RETURN a.name AS asset, f.dag_id AS feeder, b.name AS feeder_asset, u.dag_id AS feeder_feeder",
        dag=REVIEW,
    )
    assert upstream == [
        {"asset": "orders", "feeder": EXTRACT, "feeder_asset": "customers", "feeder_feeder": CUSTOMERS}
    ]


def test_a_second_sync_reads_changes_of_tracked_dags_only_and_writes_nothing(graph: Graph) -> None:
    with ReplayServer(deployment()) as airflow:
        graph.ingest(airflow.url, "--exclude-dags", "legacy_*")
        airflow.replay.requests.clear()
        again = graph.ingest(airflow.url, "--exclude-dags", "legacy_*")
        assert per_dag_reads(airflow.replay.requests) == set()  # one list for all DAGs, from the watermark
        assert not [p for p, _ in airflow.replay.requests if p.endswith("/tasks")]
    created = sum(again["created"].values()) + sum(again["updated"].values())
    assert created == 0, again
    # Records of the DAGs not tracked came in the all-DAGs lists and were dropped, counted.
    assert again["dags"]["skipped_records"] == {"DAG runs": 2, "task instances": 2}


def test_a_dag_asking_for_the_first_time_has_its_whole_history_read(graph: Graph) -> None:
    world = deployment()
    with ReplayServer(world) as airflow:
        graph.ingest(airflow.url, "--exclude-dags", "legacy_*")
        # The marketing DAG gains a review: its earlier run (never read) comes in with it.
        new_run = "manual__2026-11-29T11:00:00+00:00"
        world.runs.append(run(MARKETING, new_run, "manual"))
        world.tasks[MARKETING].append(task("review", "HITLOperator"))
        world.hitl_details.append({**review(MARKETING, new_run), "created_at": "2026-11-30T11:58:00Z"})
        world.task_instances.append(review(MARKETING, new_run)["task_instance"])
        airflow.replay.requests.clear()
        summary = graph.ingest(airflow.url, "--exclude-dags", "legacy_*")
        full_reads = [q for p, q in airflow.replay.requests if p == f"/api/v2/dags/{MARKETING}/dagRuns"]
    assert full_reads and all("updated_at_gte" not in q for q in full_reads)
    assert dag_ids(summary, "tracked")["decision_points"] == [MARKETING, REVIEW]
    runs = graph.read("MATCH (r:DagRun {dag_id: $dag}) RETURN r.run_id AS run ORDER BY run", dag=MARKETING)
    assert [r["run"] for r in runs] == [new_run, "scheduled__2026-11-28T00:00:00+00:00"]
    tracked = graph.read("MATCH (d:Dag {dag_id: $dag}) RETURN d.tracked AS tracked", dag=MARKETING)
    assert tracked == [{"tracked": True}]


def test_tag_filter_cuts_the_feeder_chain_and_the_summary_says_why(graph: Graph) -> None:
    with ReplayServer(deployment()) as airflow:
        summary = graph.ingest(airflow.url, "--tags", "hitl")
        assert per_dag_reads(airflow.replay.requests) == {REVIEW}
    assert dag_ids(summary, "tracked") == {"decision_points": [REVIEW]}
    assert dag_ids(summary, "skipped") == {"no_matching_tag": [CUSTOMERS, LEGACY, MARKETING, EXTRACT]}
    assert summary["dags"]["skipped"]["no_matching_tag"]["count"] == 4
    # The assets scheduling the review DAG are still known; their producers are not read.
    rows = graph.read(
        "MATCH (a:Asset)-[:TRIGGERS]->(:Dag {dag_id: $dag}) OPTIONAL MATCH (t:Task)-[:PRODUCES]->(a) "
        "RETURN a.name AS asset, count(t) AS producers ORDER BY asset",
        dag=REVIEW,
    )
    assert rows == [{"asset": "fx_rates", "producers": 0}, {"asset": "orders", "producers": 0}]
    assert graph.read("MATCH (d:Dag) RETURN d.dag_id AS dag") == [{"dag": REVIEW}]


def test_settings_from_the_environment_include_and_read_every_dag(graph: Graph) -> None:
    env = {"CONTEXTGRAPH_INCLUDE_DAGS": "orders_*,marketing_*", "CONTEXTGRAPH_ALL_DAGS": "true"}
    with ReplayServer(deployment()) as airflow:
        summary = graph.ingest(airflow.url, env=env)
    assert dag_ids(summary, "tracked") == {"all_dags": [MARKETING, EXTRACT, REVIEW]}
    assert dag_ids(summary, "skipped") == {"not_included": [CUSTOMERS, LEGACY]}
    runs = graph.read("MATCH (r:DagRun) RETURN DISTINCT r.dag_id AS dag ORDER BY dag")
    assert [r["dag"] for r in runs] == [MARKETING, EXTRACT, REVIEW]


def test_the_decision_of_the_asset_triggered_run_arrives_whole(ingested: Ingested) -> None:
    """The review's reason comes from `comments`, its proposal from the upstream XCom."""
    graph, summary = ingested.graph, ingested.summary
    rows = graph.read(
        "MATCH (d:Decision {dag_id: $dag, run_id: $run})-[:REVIEWED]->(p:Proposal) "
        "RETURN d.reason AS reason, p.text AS text",
        dag=REVIEW,
        run=REVIEW_RUN,
    )
    assert rows == [{"reason": "Totals do not match the ledger", "text": "Orders: 1,204; revenue 88,410 EUR"}]
    assert summary["without"] == {"reason": 0, "proposal": 0, "point": 0}


def test_feeder_depth_limits_how_far_upstream_the_sync_reads(graph: Graph) -> None:
    with ReplayServer(deployment()) as airflow:
        summary = graph.ingest(
            airflow.url, "--exclude-dags", "legacy_*", env={"CONTEXTGRAPH_FEEDER_DEPTH": "1"}
        )
    assert dag_ids(summary, "tracked") == {"decision_points": [REVIEW], "asset_feeders": [EXTRACT]}
    assert dag_ids(summary, "skipped")["no_decisions"] == [CUSTOMERS, MARKETING]
    producers = graph.read("MATCH (t:Task)-[:PRODUCES]->(a:Asset) RETURN t.dag_id AS dag, a.name AS asset")
    assert producers == [{"dag": EXTRACT, "asset": "orders"}]
