"""Forget, completely: erased values appear nowhere afterwards, a later sync does not restore them,
and each erasure leaves an audit record without the erased content."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from contextgraph import demo
from contextgraph import model as m
from contextgraph.cli import cli
from contextgraph.governance.forget import TOMBSTONE, forget, plan_forget
from contextgraph.ingest.embeddings import Model2VecEmbedder, embed_pending
from contextgraph.ingest.sync import Sync, SyncOptions
from contextgraph.model import NODE_TYPES
from contextgraph.render import export
from contextgraph.retrieval import usefulness
from contextgraph.retrieval.precedents import find_similar_decisions
from contextgraph.store import EmbeddedStore, GraphStore

from .governance_corpus import planted_scenario

OPTIONS = SyncOptions(proposal_tasks={f"{demo.DAG_ID}.{demo.REVIEW_TASK}": [demo.DRAFT_TASK]})
CUSTOMER = "globex"
REVIEWER = demo.REVIEWERS[1]  # {"id": "ben", "name": "Ben Okafor"}


def _everything(store: GraphStore) -> str:
    parts = [json.dumps(store.query(f"MATCH (n:{t.label}) RETURN n"), default=str) for t in NODE_TYPES]
    parts.append(json.dumps(store.query("MATCH ()-[r]->() RETURN r"), default=str))
    return "\n".join(parts)


def _exported(store: GraphStore, folder: Path) -> str:
    graph = export.whole_graph(store)
    export.write(graph, folder / "out.graphml", "graphml")
    export.write(graph, folder / "out.json", "json")
    return (folder / "out.graphml").read_text() + (folder / "out.json").read_text()


def _cypher(store: GraphStore, query: str) -> str:
    rows, _ = store.read_only_query(query, {}, timeout=10, row_limit=10_000)
    return json.dumps(rows, default=str)


def _load(store: GraphStore, embedder: Model2VecEmbedder) -> demo.Scenario:
    records, _ = planted_scenario(40)
    Sync(demo.scenario_source(records), store, OPTIONS).run(full=True)
    store.write(m.GraphBatch(edges=list(demo.informed_by(records))))
    embed_pending(store, embedder)
    usefulness.refresh(store)  # stored scores keyed by decision: must go with the decisions
    return records


def test_forget_customer_and_actor_leave_nothing_and_stay_forgotten(
    store: GraphStore, embedder: Model2VecEmbedder, tmp_path: Path
) -> None:
    records = _load(store, embedder)
    before = store.stats()
    assert CUSTOMER in _everything(store) and REVIEWER["name"] in _everything(store)
    customer_keys = {
        r["key"]
        for r in store.query(
            "MATCH (d:Decision) WHERE d.body CONTAINS $c RETURN d.key AS key", {"c": CUSTOMER}
        )
    }
    assert customer_keys

    # Dry run: a plan, nothing erased.
    plan = plan_forget(store, customer=CUSTOMER)
    assert set(plan.decisions) == customer_keys
    assert plan.counts()["embeddings"] == len(customer_keys) and plan.counts()["informed_by"] > 0
    assert store.stats() == before

    report = forget(store, plan)
    assert report.counts["decisions"] == len(customer_keys)
    actor_plan = plan_forget(store, actor=REVIEWER["id"])
    reviewed_by_ben = len(actor_plan.actor_decisions)
    assert reviewed_by_ben > 0 and actor_plan.actors == [m.Actor.key_for("airflow_user", REVIEWER["id"])]
    forget(store, actor_plan)

    def assert_gone() -> None:
        stored = _everything(store)
        exported = _exported(store, tmp_path)
        cypher = _cypher(store, "MATCH (n) RETURN n") + _cypher(store, "MATCH ()-[r]->() RETURN r")
        similar = find_similar_decisions(store, embedder, f"{CUSTOMER} refund", k=20)
        found = json.dumps([p.model_dump(mode="json") for p in similar])
        for text in (stored, exported, cypher, found):
            assert CUSTOMER not in text
            assert REVIEWER["name"] not in text
            assert not any(k in text for k in customer_keys)
        assert similar, "the rest of the graph is still searchable"
        rows = store.query(
            "MATCH (a:Actor) WHERE a.actor_id = $id RETURN a.key AS key "
            "UNION MATCH (d:Decision) WHERE d.responded_by = $id RETURN d.key AS key",
            {"id": REVIEWER["id"]},
        )
        assert rows == []
        # Ben's decisions stay, decided by the tombstone with no name.
        tomb = store.query(
            "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor {key: $k}) RETURN count(d) AS n, a.name AS name",
            {"k": TOMBSTONE.key},
        )
        assert tomb[0]["n"] >= reviewed_by_ben - len(customer_keys) and tomb[0]["name"] is None
        if isinstance(store, EmbeddedStore):
            left = store.query("MATCH (e:DecisionEmbedding) RETURN e.key AS key")
            assert not customer_keys & {r["key"] for r in left}

    assert_gone()
    # The next sync reads everything again from Airflow: nothing comes back.
    again = Sync(demo.scenario_source(records), store, OPTIONS).run(full=True)
    assert again.forgotten_skipped >= len(customer_keys)
    assert again.as_dict()["forgotten_skipped"] == again.forgotten_skipped
    embed_pending(store, embedder)
    assert_gone()
    assert store.stats()["nodes"]["Decision"] == before["nodes"]["Decision"] - len(customer_keys)

    audits = store.query("MATCH (a:ForgetAudit) RETURN a.kind AS kind, a.counts AS counts, a.at AS at")
    assert sorted(a["kind"] for a in audits) == ["actor", "customer"]
    customer_audit = next(a for a in audits if a["kind"] == "customer")
    assert json.loads(customer_audit["counts"])["decisions"] == len(customer_keys)
    assert customer_audit["at"] is not None
    remembered = json.dumps(store.query("MATCH (f:ForgottenKey) RETURN f"), default=str)
    assert CUSTOMER not in remembered and REVIEWER["id"] not in json.dumps(audits, default=str)
    assert not any(k in remembered for k in customer_keys)


def test_forget_dag_before_a_date(embedded_store: EmbeddedStore, embedder: Model2VecEmbedder) -> None:
    records = _load(embedded_store, embedder)
    cut = sorted(d["created_at"] for d in records.hitl_details)[10]
    from datetime import datetime

    plan = plan_forget(embedded_store, dag_id=demo.DAG_ID, before=datetime.fromisoformat(cut))
    assert len(plan.decisions) == 10
    forget(embedded_store, plan)
    assert embedded_store.stats()["nodes"]["Decision"] == 30
    assert plan_forget(embedded_store, dag_id="no_such_dag").empty


def test_cli_dry_run_then_yes_and_nothing_matching(store_file: Path, embedder: Model2VecEmbedder) -> None:
    path = store_file
    with EmbeddedStore(path) as store:
        _load(store, embedder)
        decisions = store.stats()["nodes"]["Decision"]
    runner = CliRunner()
    base = ["--store-path", str(path), "forget"]

    dry = runner.invoke(cli, [*base, "--customer", CUSTOMER, "--json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)
    assert planned["dry_run"] is True and planned["counts"]["decisions"] > 0
    with EmbeddedStore(path) as store:
        assert store.stats()["nodes"]["Decision"] == decisions

    done = runner.invoke(cli, [*base, "--customer", CUSTOMER, "--yes"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("forgot: ") and f"{planned['counts']['decisions']} decisions" in done.output
    with EmbeddedStore(path) as store:
        assert store.stats()["nodes"]["Decision"] == decisions - planned["counts"]["decisions"]

    nothing = runner.invoke(cli, [*base, "--customer", "no-such-customer-anywhere", "--yes"])
    assert nothing.exit_code == 0 and "nothing matches" in nothing.output
    both = runner.invoke(cli, [*base, "--customer", CUSTOMER, "--dag", demo.DAG_ID])
    assert both.exit_code == 2 and "exactly one" in both.output
