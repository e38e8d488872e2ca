"""Scoped tools: an agent scoped to one DAG cannot read another DAG's decisions by any tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from contextgraph import demo
from contextgraph import model as m
from contextgraph.cli import cli
from contextgraph.config import Settings
from contextgraph.errors import QueryRefusedError
from contextgraph.governance.scope import Scope, ScopedStore, ScopeError
from contextgraph.ingest.embeddings import Model2VecEmbedder, embed_pending
from contextgraph.ingest.sync import Sync, SyncOptions
from contextgraph.retrieval.precedents import find_similar_decisions, get_decision_trace
from contextgraph.store import EmbeddedStore, GraphStore
from contextgraph.tools.agent import ContextGraphDeps, consult_precedents, run_read_cypher

from .builders import SHARED_MODEL
from .governance_corpus import OTHER_DAG, SECRET, TwoDagSource, other_dag_scenario

OPTIONS = SyncOptions(
    proposal_tasks={
        f"{demo.DAG_ID}.{demo.REVIEW_TASK}": [demo.DRAFT_TASK],
        f"{OTHER_DAG}.{demo.REVIEW_TASK}": [demo.DRAFT_TASK],
    }
)

HOSTILE = [
    "MATCH (d:Decision) RETURN d",
    "MATCH (n) RETURN n",
    "MATCH ()-[r]->() RETURN r",
    "MATCH (a:Actor)<-[:DECIDED_BY]-(d:Decision) RETURN a, d.subject, d.reason",
    "MATCH (d:Decision)-[:DECIDED_BY]->(:Actor)<-[:DECIDED_BY]-(x:Decision) RETURN x.subject, x.dag_id",
    "MATCH (d:Decision)-[:INFORMED_BY*1..4]-(x:Decision) RETURN x.subject, x.key",
    "MATCH (o:Option)<-[:OFFERED]-(d:Decision) RETURN o.dag_id, d.subject",
    "MATCH (d:Decision) WHERE d.dag_id <> $mine RETURN d.subject",
    "MATCH (d:Decision) WHERE d.key STARTS WITH $other OR d.subject CONTAINS 'SECRET' RETURN d",
    "MATCH (d:Decision) WHERE lower(d.dag_id) = lower($other) RETURN d",
    "MATCH (p:Proposal) RETURN p.text, p.value",
    "MATCH (r:DagRun) RETURN r.dag_id, r.conf",
    "RETURN 'a' AS x UNION ALL MATCH (d:Decision) RETURN d.subject AS x",
    "MATCH (d:Dag) RETURN d.dag_id",
]


def _load(store: GraphStore, embedder: Model2VecEmbedder) -> tuple[list[str], list[str]]:
    """Two DAGs; a demo decision INFORMED_BY an other-DAG one. (demo keys, other keys)"""
    records = demo.scenario(20)
    Sync(TwoDagSource(records, other_dag_scenario(20)), store, OPTIONS).run(full=True)
    embed_pending(store, embedder)
    keys = {
        dag: [
            r["key"]
            for r in store.query("MATCH (d:Decision) WHERE d.dag_id = $d RETURN d.key AS key", {"d": dag})
        ]
        for dag in (demo.DAG_ID, OTHER_DAG)
    }
    assert len(keys[demo.DAG_ID]) == 20 and len(keys[OTHER_DAG]) == 20
    store.write(m.GraphBatch(edges=[m.InformedBy(src=keys[demo.DAG_ID][-1], dst=keys[OTHER_DAG][0], rank=1)]))
    return keys[demo.DAG_ID], keys[OTHER_DAG]


def test_scoped_agent_cannot_read_another_dag(store: GraphStore, embedder: Model2VecEmbedder) -> None:
    mine, other = _load(store, embedder)
    view = ScopedStore(store, Scope.parse(f"dag={demo.DAG_ID}"))
    params = {"mine": demo.DAG_ID, "other": OTHER_DAG}

    def leaks(text: str) -> bool:
        return SECRET in text or OTHER_DAG in text or any(k in text for k in other)

    for query in HOSTILE:
        used = {k: v for k, v in params.items() if f"${k}" in query}
        result = run_read_cypher(view, query, used)
        assert not leaks(result.model_dump_json()), query
    # The same queries on the full store do see the other DAG: the test can fail.
    full, _ = store.read_only_query(
        "MATCH (d:Decision) RETURN d.subject AS s", {}, timeout=10, row_limit=1000
    )
    assert any(SECRET in r["s"] for r in full)
    # Its own scope is complete.
    own = run_read_cypher(view, "MATCH (d:Decision) RETURN d.key AS key").rows
    assert sorted(r["key"] for r in own) == sorted(mine)

    # Search, traces, the agent's deterministic tool: nothing from the other DAG.
    found = find_similar_decisions(view, embedder, f"{SECRET} refund request", k=20)
    assert found and all(p.dag_id == demo.DAG_ID for p in found)
    assert not leaks(json.dumps([p.model_dump(mode="json") for p in found]))
    with pytest.raises(LookupError):
        get_decision_trace(view, other[0])
    trace = get_decision_trace(view, mine[-1])  # informed by an other-DAG decision: not shown
    assert not leaks(trace.model_dump_json())
    deps = ContextGraphDeps(store=view, embedder=embedder)
    assert all(p.dag_id == demo.DAG_ID for p in consult_precedents(deps, f"{SECRET} invoice", k=10))
    # Writes through a scoped view are refused; the copy cannot be changed by an agent either.
    with pytest.raises(QueryRefusedError):
        view.write(m.GraphBatch(edges=[m.InformedBy(src=mine[0], dst=mine[1])]))
    with pytest.raises(QueryRefusedError):
        run_read_cypher(view, "MATCH (d:Decision) SET d.subject = 'x' RETURN d")
    view.close()


def test_scoped_view_follows_writes(embedded_store: EmbeddedStore, embedder: Model2VecEmbedder) -> None:
    mine, _ = _load(embedded_store, embedder)
    view = ScopedStore(
        embedded_store, Scope.parse(f"point={demo.DAG_ID}.{demo.REVIEW_TASK}"), check_seconds=0
    )
    assert view.stats()["relationships"]["INFORMED_BY"] == 0
    embedded_store.write(m.GraphBatch(edges=[m.InformedBy(src=mine[2], dst=mine[1], rank=1)]))
    assert view.stats()["relationships"]["INFORMED_BY"] == 1
    builds = view.builds
    view.stats()
    assert view.builds == builds  # unchanged source: the cached copy is reused


def test_unknown_scope_values_are_one_clear_error(
    embedded_store: EmbeddedStore,
    embedder: Model2VecEmbedder,
    store_file: Path,
) -> None:
    with pytest.raises(ScopeError, match="unknown scope kind 'team'"):
        Scope.parse("team=support")
    with pytest.raises(ScopeError, match=r"DAG_ID\.TASK_ID"):
        Scope.parse("point=nodot")
    _load(embedded_store, embedder)
    with pytest.raises(ScopeError, match="unknown DAG id 'no_such_dag'"):
        ScopedStore(embedded_store, Scope.parse("dag=no_such_dag")).query("MATCH (d:Decision) RETURN d.key")

    path = store_file
    with EmbeddedStore(path) as store:
        _load(store, embedder)
    result = CliRunner().invoke(cli, ["--store-path", str(path), "mcp", "--scope", "dag=no_such_dag"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: unknown DAG id 'no_such_dag' in the scope (DAGs in the graph: {demo.DAG_ID}, {OTHER_DAG})"
    ]


def test_scoped_mcp_tools(store_file: Path, embedder: Model2VecEmbedder) -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    from contextgraph.tools.mcp import PrecedentTools

    path = store_file
    with EmbeddedStore(path) as store:
        mine, other = _load(store, embedder)
    settings = Settings(store_path=path, embedding_model=str(SHARED_MODEL))
    tools = PrecedentTools(settings, scope=Scope.parse(f"dag={demo.DAG_ID}"))
    try:
        tools.check_scope()
        for query in HOSTILE:
            used = {k: v for k, v in {"mine": demo.DAG_ID, "other": OTHER_DAG}.items() if f"${k}" in query}
            assert SECRET not in tools.read_cypher(query, used).model_dump_json(), query
        assert all(p.dag_id == demo.DAG_ID for p in tools.find_similar_decisions(f"{SECRET} refund", k=20))
        with pytest.raises(ToolError):
            tools.get_decision_trace(other[0])
        with pytest.raises(ToolError, match="not in this server's scope"):
            tools.record_precedents(mine[0], [other[0]])
        assert tools.graph_stats().nodes["Decision"] == 20
    finally:
        tools.close()
