"""Several deployments in one graph, and `contextgraph migrate` of a graph written before them.

Ingests go through the real CLI against stand-in Airflows (`contextgraph.ingest.source.replay`), on both
stores. The version-1 graph is `fixtures/graph_v1.json`: a sync written by contextgraph at commit
75e87b6 (keys without deployments), exported column by column by `fixtures/make_graph_v1.py`
and loaded here row by row, as that version left it in the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contextgraph import model as m
from contextgraph.cli import cli
from contextgraph.config import Neo4jSettings
from contextgraph.errors import UnknownDeploymentError
from contextgraph.governance import forget
from contextgraph.governance.scope import Scope, ScopedStore, ScopeError
from contextgraph.ingest.source.memory import Records
from contextgraph.ingest.source.replay import ReplayServer
from contextgraph.retrieval.precedents import find_similar_decisions
from contextgraph.store import EmbeddedStore, GraphStore, Neo4jStore
from contextgraph.store.base import EDGE_COLUMNS, NODE_COLUMNS

from .builders import hitl_detail, task_instance

FIXTURE = Path(__file__).parent / "fixtures" / "graph_v1.json"
DAG = "support"
TASKS = [
    {"task_id": "draft", "operator_name": "@task", "downstream_task_ids": ["review"]},
    {"task_id": "review", "operator_name": "HITLOperator", "downstream_task_ids": []},
]


def world(subjects: dict[str, str], *, state: str = "success", reason: str = "looks right") -> Records:
    """One DAG `support` whose runs (run id → subject) each asked one answered review."""
    tis, details = [], []
    for run, subject in subjects.items():
        review = task_instance(DAG, run, "review", operator_name="HITLOperator")
        tis += [review, {**review, "task_id": "draft", "state": state, "operator_name": "@task"}]
        details.append(hitl_detail(review, subject=subject, params_input={"reason": reason}))
    return Records(
        dags=[{"dag_id": DAG, "tags": [], "owners": ["cre"]}],
        tasks={DAG: TASKS},
        runs=[{"dag_id": DAG, "dag_run_id": r, "state": "success"} for r in subjects],
        task_instances=tis,
        hitl_details=details,
        xcoms={(DAG, r, "draft", -1): {"draft": f"Draft for {s}"} for r, s in subjects.items()},
        server_time=datetime(2026, 11, 30, 12, tzinfo=UTC),  # the Airflow's clock
    )


# --- running the CLI on either store --------------------------------------------------------------


class Target:
    """How the CLI reaches the test's store, and a way to open it between commands."""

    def __init__(self, kind: str, tmp_path: Path, neo4j: Neo4jSettings | None) -> None:
        self.kind, self.path, self.neo4j = kind, tmp_path / "graph.lbdb", neo4j

    def args(self) -> list[str]:
        if self.neo4j is None:
            return ["--store-path", str(self.path)]
        password = self.neo4j.password.get_secret_value()
        return ["--neo4j-uri", self.neo4j.uri or "", "--neo4j-password", password]

    def run(self, *args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(cli, [*self.args(), *args])
        assert result.exit_code == code, result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def open(self) -> GraphStore:
        if self.neo4j is None:
            return EmbeddedStore(self.path)
        return Neo4jStore.connect(self.neo4j)

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        with self.open() as store:
            return store.query(cypher, params)


@pytest.fixture(params=["neo4j", "embedded"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    """An empty store of each kind, reached by the CLI (the embedded one by --store-path)."""
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.delenv("CONTEXTGRAPH_DEPLOYMENT", raising=False)
    if request.param == "neo4j":
        request.getfixturevalue("neo4j_store")  # wiped, with the schema
        yield Target("neo4j", tmp_path, request.getfixturevalue("neo4j_settings"))
    else:
        with EmbeddedStore(tmp_path / "graph.lbdb") as store:
            store.ensure_schema()
        yield Target("embedded", tmp_path, None)


def ingest(target: Target, airflow: ReplayServer, *extra: str) -> dict[str, Any]:
    summary: dict[str, Any] = target.json("ingest", "--airflow-url", airflow.url, "--no-embed", *extra)
    return summary


# --- keys -----------------------------------------------------------------------------------------


def test_keys_carry_the_deployment_and_the_default_deployments_stay_as_they_were() -> None:
    decision = m.Decision(dag_id="a|b", run_id="scheduled__2026-11-29", task_id="review", map_index=2)
    prod = decision.model_copy(update={"deployment": "prod"})

    assert decision.key == m.make_key("a|b", "scheduled__2026-11-29", "review", 2, 1)  # as before
    assert prod.key == m.make_key("prod", "a|b", "scheduled__2026-11-29", "review", 2, 1)
    assert prod.key == m.Decision.key_for("a|b", "scheduled__2026-11-29", "review", 2, 1, deployment="prod")
    assert m.parse_key(m.Decision, prod.key) == ("prod", ["a|b", "scheduled__2026-11-29", "review", "2", "1"])
    assert m.parse_key(m.Decision, decision.key)[0] == m.DEFAULT_DEPLOYMENT
    # Every kind read from Airflow is per deployment; a key of one kind never parses as another's.
    for node_type in m.NODE_TYPES:
        if node_type.deployment_scoped:
            parts = ["x"] * len(node_type.key_fields)
            key = node_type.key_for(*parts, deployment="prod")
            assert m.parse_key(node_type, key) == ("prod", parts)
            assert m.rekey(node_type, node_type.key_for(*parts), "prod") == key
    with pytest.raises(ValueError, match="not a Decision key"):
        m.parse_key(m.Decision, "prod|support|r1")
    with pytest.raises(ValueError):
        m.Dag(dag_id="support", deployment="two words")


# --- several deployments in one graph -------------------------------------------------------------


def test_two_deployments_with_the_same_ids_stay_apart(target: Target) -> None:
    staging_world = world({"r1": "Refund for a staging test order"}, state="failed")
    prod_world = world({"r1": "Refund for a duplicate card charge"}, reason="charged twice")
    with ReplayServer(staging_world) as staging, ReplayServer(prod_world) as prod:
        assert ingest(target, staging, "--deployment", "staging")["deployment"] == "staging"
        first = ingest(target, prod, "--deployment", "prod")
        assert first["created"]["Decision"] == 1  # the same dag_id and run id: a new decision
        marks = {r["deployment"]: r["mark"] for r in target.query(WATERMARKS)}
        staging_world.server_time = datetime.fromisoformat("2026-12-01T12:00:00+00:00")
        again = ingest(target, staging, "--deployment", "staging")
        assert sum(again["created"].values()) + sum(again["updated"].values()) == 0
        after = {r["deployment"]: r["mark"] for r in target.query(WATERMARKS)}
    assert after["prod"] == marks["prod"] and after["staging"] != marks["staging"]

    rows = target.query(
        "MATCH (p:Deployment)-[:HAS_DAG]->(g:Dag)-[:HAS_RUN]->(:DagRun)-[:HAS_INSTANCE]->(:TaskInstance)"
        "-[:ASKED]->(d:Decision) RETURN p.name AS deployment, g.deployment AS dag, d.deployment AS decision, "
        "d.subject AS subject, d.key AS key ORDER BY deployment"
    )
    assert [(r["deployment"], r["dag"], r["decision"], r["subject"]) for r in rows] == [
        ("prod", "prod", "prod", "Refund for a duplicate card charge"),
        ("staging", "staging", "staging", "Refund for a staging test order"),
    ]
    prod_key = m.Decision.key_for(DAG, "r1", "review", -1, 1, deployment="prod")
    assert rows[0]["key"] == prod_key

    target.run("embed")  # the search text (Neo4j's word index reads it) and embeddings
    found = target.json("similar", "refund", "--words-only", "--deployment", "prod")
    assert [(p["key"], p["deployment"]) for p in found] == [(prod_key, "prod")]
    both = target.json("similar", "refund", "--words-only")
    assert {p["deployment"] for p in both} == {"prod", "staging"}
    lessons = target.json("lessons", "refund", "--words-only", "--deployment", "staging")
    assert "staging test order" in json.dumps(lessons) and "duplicate card" not in json.dumps(lessons)
    trace = target.json("trace", prod_key)
    assert [(t["task_id"], t["state"]) for t in trace["upstream"]] == [("draft", "success")]  # not staging's

    unknown = target.run("similar", "refund", "--words-only", "--deployment", "qa", code=1)
    assert unknown.output.strip().splitlines() == [
        "Error: unknown deployment 'qa' (deployments in the graph: prod, staging)"
    ]
    assert "a deployment name holds" in target.run("similar", "x", "--deployment", "a b", code=2).output

    with target.open() as store:
        with pytest.raises(UnknownDeploymentError):
            find_similar_decisions(store, None, "refund", deployment="qa")
        view = ScopedStore(store, Scope.parse("deployment=staging"))
        try:
            seen = view.query("MATCH (d:Decision) RETURN d.subject AS s, d.deployment AS dep")
            assert seen == [{"s": "Refund for a staging test order", "dep": "staging"}]
            runs = view.query("MATCH (r:DagRun) RETURN DISTINCT r.deployment AS dep")
            assert runs == [{"dep": "staging"}]  # nor prod's runs, tasks or DAGs
        finally:
            view.close()
        wrong = ScopedStore(store, Scope.parse("deployment=qa"))
        with pytest.raises(
            ScopeError,
            match=r"unknown deployment 'qa' in the scope \(deployments in the graph: prod, staging\)",
        ):
            wrong.query("MATCH (d:Decision) RETURN d.key")
        wrong.close()


WATERMARKS = "MATCH (s:SyncState) RETURN s.deployment AS deployment, s.last_sync_at AS mark"


# --- migrate: a graph written by the previous version ---------------------------------------------


def load_v1(store: GraphStore) -> dict[str, Any]:
    """Write the fixture's rows as they are (no deployment), past the write path's version check."""
    graph: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for node_type in m.NODE_TYPES:
        rows = graph["nodes"].get(node_type.label) or []
        columns = NODE_COLUMNS[node_type]
        rows = [
            {c: _value(r.get(c), columns.get(c)) for c in ["key", *columns, "content_hash"]} for r in rows
        ]
        if rows:
            store._write(store._node_create(node_type), {"rows": store._adapt(rows)})
    for edge_type in m.EDGE_TYPES:
        rows = graph["relationships"].get(edge_type.rel_type) or []
        columns = EDGE_COLUMNS[edge_type]
        rows = [
            {c: _value(r.get(c), columns.get(c)) for c in ["src", "dst", *columns, "content_hash"]}
            for r in rows
        ]
        if rows:
            store._write(store._edge_create(edge_type), {"rows": store._adapt(rows)})
    forget.ensure_schema(store)  # the governance tables (the embedded store makes them on first use)
    for row in graph["governance"]["GraphSalt"]:
        store._write("CREATE (s:GraphSalt {key: $key, salt: $salt})", row)
    for row in graph["governance"]["ForgottenKey"]:
        at = datetime.fromisoformat(row["at"])
        store._write(
            "CREATE (f:ForgottenKey {key: $key, kind: $kind, at: $at})", store._adapt([{**row, "at": at}])[0]
        )
    return graph


def _value(value: Any, type_: str | None) -> Any:
    return datetime.fromisoformat(value) if type_ == "TIMESTAMP" and isinstance(value, str) else value


def test_migrate_upgrades_a_graph_written_by_the_previous_version(target: Target) -> None:
    with target.open() as store:
        graph = load_v1(store)
    old_keys = {label: {r["key"] for r in rows} for label, rows in graph["nodes"].items()}
    new_world = world(
        {
            "r1": "Refund for a double charge",  # forgotten below, after the migration
            "r3": "Password reset email never arrives",  # forgotten by the previous version
            "r9": "Refund for a lost parcel",
        }
    )

    with ReplayServer(new_world) as airflow:
        refused = target.run("ingest", "--airflow-url", airflow.url, "--no-embed", code=1)
        assert refused.output.strip().splitlines() == [
            "Error: this graph was written by an older contextgraph (schema version 1, this one writes 2): "
            "run `contextgraph migrate` (or `contextgraph migrate --deployment NAME` to name the Airflow it "
            "came from) before writing to it"
        ]
        assert target.query("MATCH (d:Decision) RETURN count(d) AS n")[0]["n"] == 3  # nothing written
        assert target.query("MATCH (p:Deployment) RETURN count(p) AS n")[0]["n"] == 0

        report = target.json("migrate")
        assert report["from_version"] == 1 and report["to_version"] == 2 and report["rekeyed"] == 0
        assert report["nodes"]["Decision"] == 3 and report["nodes"]["TaskInstance"] == 12
        assert target.json("migrate")["nodes"] == {}  # idempotent: nothing left to do
        assert "already" in target.run("migrate").output

        for label, keys in old_keys.items():
            scoped = m.NODE_BY_LABEL[label].deployment_scoped
            deployment = "n.deployment" if scoped else "'default'"
            rows = target.query(f"MATCH (n:{label}) RETURN n.key AS key, {deployment} AS deployment")
            assert {r["key"] for r in rows} == keys, label  # the default deployment's keys are v1's
            assert {r["deployment"] for r in rows} <= {"default"}, label
        assert target.query(
            "MATCH (p:Deployment)-[:HAS_DAG]->(g:Dag) RETURN p.name AS p, p.airflow_url AS url, g.dag_id AS g"
        ) == [{"p": "default", "url": "http://airflow.test", "g": "support"}]
        assert target.query("MATCH (s:SchemaVersion) RETURN s.version AS v")[0]["v"] == 2

        # search, traces and forget on the migrated graph
        target.run("embed")
        refund = m.Decision.key_for("support", "r1", "review", -1, 1)
        found = target.json("similar", "charged twice refund", "--words-only", "--deployment", "default")
        assert found[0]["key"] == refund and found[0]["reason"] == "Card was charged twice; refund it."
        trace = target.json("trace", m.Decision.key_for("support", "r2", "review", -1, 1))
        assert {t["task_id"] for t in trace["upstream"]} == {"fetch_ticket", "draft_response"}
        assert [i["key"] for i in trace["informed_by"]] == [refund]
        target.run("forget", "--decision", refund, "--yes")

        # a new sync on top: the same run again (forgotten: stays out) and a new one
        summary = ingest(target, airflow)
    assert summary["created"]["Decision"] == 1 and summary["forgotten_skipped"] >= 2
    subjects = sorted(r["s"] for r in target.query("MATCH (d:Decision) RETURN d.subject AS s"))
    assert subjects == ["Invoice address is wrong", "Refund for a cancelled plan", "Refund for a lost parcel"]
    assert target.query("MATCH (d:Decision) WHERE d.deployment IS NULL RETURN count(d) AS n")[0]["n"] == 0


def test_migrate_names_the_deployment_an_older_graph_came_from(target: Target) -> None:
    with target.open() as store:
        graph = load_v1(store)
    report = target.json("migrate", "--deployment", "eu")
    nodes = sum(
        len(rows) for label, rows in graph["nodes"].items() if m.NODE_BY_LABEL[label].deployment_scoped
    )
    assert report["rekeyed"] == nodes and report["to_embed"] == 3

    old = m.Decision.key_for("support", "r2", "review", -1, 1)
    moved = m.Decision.key_for("support", "r2", "review", -1, 1, deployment="eu")
    assert target.query("MATCH (d:Decision {key: $k}) RETURN d.key AS k", k=old) == []
    with target.open() as store:
        stored = store.stats()["relationships"]
    assert {t: n for t, n in stored.items() if t != "HAS_DAG" and n} == {
        t: len(rows) for t, rows in graph["relationships"].items() if rows
    }  # every relationship moved with its ends
    trace = target.json("trace", moved)
    assert trace["deployment"] == "eu" and trace["reason"] == "Billing team must fix the address."
    informer = m.Decision.key_for("support", "r1", "review", -1, 1, deployment="eu")
    assert [i["key"] for i in trace["informed_by"]] == [informer]
    assert target.json("migrate", "--deployment", "eu")["rekeyed"] == 0

    # The Airflow it came from again: what the previous version forgot (r3) stays out under its new key.
    with ReplayServer(
        world({"r2": "Invoice address is wrong", "r3": "Password reset email never arrives"})
    ) as eu:
        again = ingest(target, eu, "--deployment", "eu")
        assert again["created"].get("Decision", 0) == 0 and again["forgotten_skipped"] >= 1
        summary = ingest(target, eu)  # the same ids in the default deployment: apart
    # r2 is new there; r3's remembered hash is of the key r3 had before the migration, which is also
    # the default deployment's key for it: erring on the side of erasure, it stays out there too.
    assert summary["created"]["Decision"] == 1
    assert "embedded" in target.run("embed").output
    found = target.json("similar", "invoice address", "--words-only", "--deployment", "eu")
    assert found[0]["key"] == moved and {p["deployment"] for p in found} == {"eu"}
