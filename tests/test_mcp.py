"""The MCP server, through a real MCP client session over stdio (`python -m contextgraph mcp`), on a
real Neo4j and on the embedded store."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

import pytest

from contextgraph.ingest.embeddings import Model2VecEmbedder
from contextgraph.store import GraphStore

from . import cases as c
from .mcp_client import error_text, mcp_session, payload, server_env

TOOLS = {
    "find_similar_decisions",
    "find_lessons",
    "get_decision_trace",
    "read_cypher",
    "graph_stats",
    "record_precedents",
}


@pytest.fixture
def server(store: GraphStore, embedder: Model2VecEmbedder, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The seed case among unrelated decisions, embedded; the store released for the server."""
    keys = c.write_cases(store, embedder, c.SEED_AND_UNRELATED)
    settings = request.getfixturevalue("neo4j_settings") if store.dialect == "neo4j" else None
    if store.dialect == "embedded":
        store.close()  # one process at a time may open the file for writing (reopened lazily)
    return {"env": server_env(store, settings), "keys": keys}


async def _scenario(env: dict[str, str], keys: dict[str, str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with mcp_session(env) as session:
        listed = await session.list_tools()
        seen["tools"] = {t.name: t for t in listed.tools}
        seen["similar"] = await session.call_tool(
            "find_similar_decisions", {"text": c.SEED_QUERY, "k": 3, "dag_id": c.SUPPORT_DAG}
        )
        seen["lessons"] = await session.call_tool(
            "find_lessons", {"text": "Charged twice for the March invoice", "dag_id": c.SUPPORT_DAG}
        )
        seen["trace"] = await session.call_tool("get_decision_trace", {"key": keys["fr-dark-mode"]})
        seen["no_trace"] = await session.call_tool("get_decision_trace", {"key": "no|such|decision"})
        seen["cypher"] = await session.call_tool(
            "read_cypher",
            {
                "query": "MATCH (d:Decision)-[:CHOSE]->(o:Option) WHERE o.name = $name RETURN count(d) AS n",
                "params": {"name": c.ESCALATE},
            },
        )
        seen["shares"] = await session.call_tool(
            "read_cypher",
            {
                "query": "MATCH (d:Decision)-[:CHOSE]->(o:Option) RETURN o.name AS option, count(*) AS n "
                "ORDER BY n DESC"
            },
        )
        seen["with_order"] = await session.call_tool(
            "read_cypher", {"query": "MATCH (d:Decision) WITH d ORDER BY d.created_at RETURN d.key AS k"}
        )
        seen["apoc"] = await session.call_tool(
            "read_cypher", {"query": "CALL apoc.load.json('http://127.0.0.1:9/x') YIELD value RETURN value"}
        )
        seen["many"] = await session.call_tool(
            "read_cypher", {"query": "UNWIND range(1, 5000) AS i RETURN i"}
        )
        seen["write"] = await session.call_tool(
            "read_cypher", {"query": "MATCH (d:Decision) DETACH DELETE d"}
        )
        args = {
            "decision_key": keys["inc-api-500"],
            "precedent_keys": [keys["fr-dark-mode"]],
            "scores": [0.9],
        }
        seen["record"] = await session.call_tool("record_precedents", args)
        seen["record_again"] = await session.call_tool("record_precedents", args)
        seen["stats"] = await session.call_tool("graph_stats", {})
    return seen


def test_mcp_client_lists_and_calls_every_tool(store: GraphStore, server: dict[str, Any]) -> None:
    keys = server["keys"]
    seen = asyncio.run(_scenario(server["env"], keys))

    tools = seen["tools"]
    assert set(tools) == TOOLS
    for name in TOOLS - {"record_precedents"}:
        hints = tools[name].annotations
        assert hints.read_only_hint is True and hints.destructive_hint is False, name
    writes = tools["record_precedents"].annotations
    assert (writes.read_only_hint, writes.destructive_hint, writes.idempotent_hint) == (False, False, True)
    assert "reason" in tools["find_similar_decisions"].description
    assert tools["find_similar_decisions"].input_schema["required"] == ["text"]

    similar = payload(seen["similar"])
    assert not seen["similar"].is_error and len(similar) == 3
    assert similar[0]["key"] == keys["fr-dark-mode"] and similar[0]["reason"].startswith(
        "check the roadmap first"
    )
    assert similar[0]["chosen_options"] == ["Respond Manually"] and similar[0]["url"].startswith(
        "http://airflow"
    )

    lessons = payload(seen["lessons"])
    assert not seen["lessons"].is_error and lessons, lessons
    assert all(sum(lesson["shares"].values()) == lesson["count"] for lesson in lessons)
    assert lessons[0]["exemplars"][0]["key"] in keys.values() and lessons[0]["reason"]

    trace = payload(seen["trace"])
    assert trace["subject"] == c.SEED.subject and trace["proposals"][0]["verdict"] == "overridden"
    assert seen["no_trace"].is_error and "no decision with key" in error_text(seen["no_trace"])

    assert payload(seen["cypher"])["rows"] == [{"n": sum(1 for x in c.CASES if x.chosen == c.ESCALATE)}]
    shares = payload(seen["shares"])["rows"]
    chosen = Counter(
        o for r in store.query("MATCH (d:Decision) RETURN d.chosen_options AS c") for o in r["c"] or []
    )
    assert not seen["shares"].is_error and shares[0]["n"] == max(chosen.values())
    assert sorted((r["option"], r["n"]) for r in shares) == sorted(chosen.items())
    assert [r["n"] for r in shares] == sorted((r["n"] for r in shares), reverse=True)
    if store.dialect == "embedded":  # Ladybug's dialect: the error says what to change
        message = error_text(seen["with_order"])
        assert seen["with_order"].is_error and "add LIMIT after ORDER BY in WITH" in message
        assert "\n" not in message
    else:
        assert not seen["with_order"].is_error
    assert seen["apoc"].is_error and "not on the read-only allow-list" in error_text(seen["apoc"])
    description = tools["read_cypher"].description or ""
    assert ("Ladybug Cypher" if store.dialect == "embedded" else "Neo4j 5 Cypher") in description
    many = payload(seen["many"])
    assert many["row_count"] == 1000 and many["truncated"] is True and "LIMIT" in many["note"]
    assert seen["write"].is_error and "only read queries may run here" in error_text(seen["write"])

    assert payload(seen["record"]) == {"decision_key": keys["inc-api-500"], "precedents": 1, "written": 1}
    assert payload(seen["record_again"])["written"] == 0
    stats = payload(seen["stats"])
    assert stats["store"] == store.dialect and stats["relationships"]["INFORMED_BY"] == 1
    assert stats["nodes"]["Decision"] == len(keys)
    rows = store.query(
        "MATCH (a:Decision)-[r:INFORMED_BY]->(b:Decision) RETURN a.key AS a, b.key AS b, r.score AS s"
    )
    assert rows == [{"a": keys["inc-api-500"], "b": keys["fr-dark-mode"], "s": 0.9}]


def test_mcp_without_a_graph_says_what_to_do(tmp_path: Any) -> None:
    env = {"CONTEXTGRAPH_STORE_PATH": str(tmp_path / "none.lbdb"), "PYTHONPATH": os.getcwd()}

    async def call() -> Any:
        async with mcp_session(env) as session:
            return await session.call_tool("graph_stats", {})

    result = asyncio.run(call())
    assert result.is_error and "contextgraph ingest" in error_text(result)
    assert not (tmp_path / "none.lbdb").exists()
