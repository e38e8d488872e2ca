"""Hostile Cypher against the agents' read-only tool: on a real Neo4j and on the embedded engine,
called directly (`run_read_cypher`) and through the MCP server (a real MCP client over stdio).

Every query is refused, or cut by the row limit, or stopped by the timeout; none writes: a checksum
of the graph (counts, keys, every model property, embeddings, schema and tokens) is the same after
all of them. The figures are printed (`pytest -s`) for the README.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from typing import Any

import pytest

from bench import cases as c
from contextgraph.agent_tools import run_read_cypher
from contextgraph.errors import QueryRefusedError
from contextgraph.model import EDGE_TYPES, NODE_TYPES
from contextgraph.retrieval import read_cypher
from contextgraph.store import GraphStore
from contextgraph.store.base import EDGE_COLUMNS, NODE_COLUMNS

from .mcp_client import error_text, mcp_session, payload, server_env

TIMEOUT = 1.0
ROW_LIMIT = 100

REFUSE, LIMIT, TIMEOUT_CUT = "refused", "cut by row limit", "cut by timeout"

# The same hostile intent in both dialects (where the syntax exists in one only, it is still sent
# to the other: it must be refused there too).
COMMON = [
    "CREATE (:Decision {key: 'x'})",
    "MERGE (d:Decision {key: 'x'}) RETURN d",
    "MATCH (d:Decision) SET d.reason = 'hacked' RETURN count(d)",
    "MATCH (d:Decision) WITH d LIMIT 1 SET d.reason = NULL",
    "MATCH (d:Decision) SET d += {reason: 'hacked'}",
    "MATCH (d:Decision) SET d:Hacked",
    "MATCH (d:Decision) DELETE d",
    "MATCH (d:Decision) DETACH DELETE d",
    "MATCH (:Decision)-[r:CHOSE]->(:Option) DELETE r",
    "MATCH (d:Decision) REMOVE d.reason RETURN d.key",
    "MATCH (d:Decision) REMOVE d:Decision",
    "MATCH (a:Decision), (b:Decision) WHERE a.key < b.key WITH a, b LIMIT 1 CREATE (a)-[:INFORMED_BY]->(b)",
    "UNWIND range(1, 3) AS i CREATE (:Decision {key: toString(i)})",
    "FOREACH (i IN range(1, 3) | CREATE (:Decision {key: toString(i)}))",
    "MATCH (d:Decision) WITH collect(d) AS ds UNWIND ds AS d DETACH DELETE d",
    "MATCH (d:Decision) RETURN d.key AS k; CREATE (:Decision {key: 'y'})",
    "CREATE (:Decision {key: 'y'}); MATCH (d:Decision) RETURN count(d)",
    "MATCH (n:Decision) RETURN count(n);MATCH (n:Decision) DETACH DELETE n",
    "MATCH (d:Decision) RETURN d.key;\n\n  DROP TABLE DecisionEmbedding",
    "/* read only, promise */ MATCH (d:Decision) DETACH DELETE d",
    "// just a read\nMATCH (d:Decision) SET d.reason = 'hacked'",
    "MATCH (d:Decision) // RETURN d\nDETACH DELETE d",
    "MATCH (d:Decision) /* RETURN d */ DETACH DELETE d",
    "match (d:Decision) detach delete d",
    "MaTcH (d:Decision) SeT d.reason = 'hacked'",
    "\uff23\uff32\uff25\uff21\uff34\uff25 (:Decision {key: 'fullwidth'})",  # fullwidth CREATE
    "MATCH (d:Decision) \uff24\uff25\uff2c\uff25\uff34\uff25 d",  # fullwidth DELETE
    "CRE\u200bATE (:Decision {key: 'zero-width'})",
    "MATCH (d:Decision) DETACH\u200b DELETE d",
    "MATCH (d:Decision) DETACH\u00a0DELETE d",
    "\ufeffMATCH (d:Decision) DETACH DELETE d",
    "MATCH (d:`Decision`) SET d.`reason` = 'backticks'",
    "MATCH (d:Decision) SET d.reason = $reason",
    "CALL { CREATE (:Decision {key: 'sub'}) } RETURN 1 AS one",
    "CALL () { CREATE (:Decision {key: 'sub'}) } RETURN 1 AS one",
    "MATCH (d:Decision) CALL { WITH d SET d.reason = 'sub' } RETURN count(*) AS n",
    "WITH 1 AS x CALL { CREATE (:Decision {key: 'q'}) RETURN 1 AS y } RETURN x, y",
    "MATCH (d:Decision) CALL { WITH d DETACH DELETE d } IN TRANSACTIONS OF 10 ROWS",
    "USING PERIODIC COMMIT 10 LOAD CSV FROM 'file:///etc/passwd' AS row CREATE (:Decision {key: row[0]})",
    "LOAD CSV FROM 'file:///etc/passwd' AS row CREATE (:Decision {key: row[0]})",
    "EXPLAIN MATCH (d:Decision) DETACH DELETE d",
    "PROFILE MATCH (d:Decision) DETACH DELETE d",
    "CREATE INDEX hacked IF NOT EXISTS FOR (n:Decision) ON (n.reason)",
    "DROP INDEX decision_embedding",
    "CREATE CONSTRAINT hacked IF NOT EXISTS FOR (n:Hacked) REQUIRE n.k IS UNIQUE",
    "CALL apoc.create.node(['Hacked'], {})",
]

NEO4J = [
    "CALL db.createLabel('Hacked')",
    "CALL db.createProperty('hacked')",
    "CALL db.createRelationshipType('HACKED')",
    "MATCH (d:Decision) WITH d LIMIT 1 CALL db.create.setNodeVectorProperty(d, 'embedding', [1.0, 2.0])",
    "CALL db.index.fulltext.createNodeIndex('hacked', ['Decision'], ['reason'])",
    "CALL dbms.setConfigValue('db.logs.query.enabled', 'OFF')",
    "CALL dbms.security.createUser('eve', 'secret', false)",
    "CALL dbms.killQueries(['query-1'])",
    "CALL db.clearQueryCaches()",
    "CREATE DATABASE hacked",
    "STOP DATABASE neo4j",
    "ALTER USER neo4j SET PASSWORD 'hacked'",
    "CREATE USER eve SET PASSWORD 'secret'",
    "DROP CONSTRAINT decision_key IF EXISTS",
    "CYPHER runtime=slotted MATCH (d:Decision) DETACH DELETE d",
    "LOAD CSV FROM 'http://127.0.0.1:9/x.csv' AS row RETURN row",
    "LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row",
]

EMBEDDED = [
    "CALL threads=1",
    "CREATE NODE TABLE Hacked(k STRING PRIMARY KEY)",
    "CREATE REL TABLE HACKED(FROM Decision TO Decision)",
    "DROP TABLE DecisionEmbedding",
    "ALTER TABLE Decision ADD hacked STRING",
    "ALTER TABLE Decision DROP reason",
    "ALTER TABLE Decision RENAME TO Hacked",
    "COPY Decision FROM '/etc/passwd'",
    "COPY (MATCH (d:Decision) RETURN d.key, d.reason) TO '/tmp/contextgraph-leak.csv'",
    "LOAD FROM '/etc/passwd' (header=false) RETURN *",
    "LOAD WITH HEADERS (k STRING) FROM '/etc/passwd' RETURN *",
    "INSTALL fts",
    "LOAD EXTENSION fts",
    "ATTACH '/tmp/contextgraph-other.lbdb' AS other (dbtype lbug)",
    "EXPORT DATABASE '/tmp/contextgraph-dump'",
    "IMPORT DATABASE '/tmp/contextgraph-dump'",
    "CREATE MACRO hacked(x) AS x + 1",
    "CHECKPOINT",
    "BEGIN TRANSACTION",
    "CALL create_fts_index('Decision', 'hacked', ['reason'])",
    "CREATE SEQUENCE hacked",
    "MATCH (d:Decision) WITH d LIMIT 1 SET d.embedding_model = 'x'",
]

CUT = [
    (LIMIT, "UNWIND range(1, 1000000) AS i RETURN i"),
    (LIMIT, "MATCH (a:Decision), (b:Decision), (c:Decision) RETURN a.key, b.key, c.key"),
    (LIMIT, "MATCH (d:Decision), (o:Option) RETURN d.search_text AS text, o.name AS option"),
    (
        TIMEOUT_CUT,
        "MATCH (a:Decision), (b:Decision), (c:Decision), (d:Decision), (e:Decision) "
        "WHERE (a.search_text + b.search_text + c.search_text + d.search_text + e.search_text) "
        "CONTAINS 'zzzz' RETURN count(*) AS n",
    ),
    (
        TIMEOUT_CUT,
        "MATCH (a:Decision), (b:Decision), (c:Decision), (d:Decision), (e:Option), (f:Option) "
        "RETURN count(*) AS n, max(a.search_text + b.search_text + c.key + d.key + e.name + f.name) AS m",
    ),
]


def hostile(dialect: str) -> list[tuple[str, str]]:
    extra = NEO4J if dialect == "neo4j" else EMBEDDED
    return [(REFUSE, q) for q in COMMON + extra] + CUT


def checksum(store: GraphStore) -> str:
    """Counts, keys, every model property of every node and edge, embeddings, schema and tokens."""
    parts: list[Any] = [store.stats()]
    for node_type in NODE_TYPES:
        columns = ", ".join(f"n.`{name}` AS `{name}`" for name in NODE_COLUMNS[node_type])
        parts.append(store.query(f"MATCH (n:{node_type.label}) RETURN n.key AS key, {columns} ORDER BY key"))
    for edge_type in EDGE_TYPES:
        columns = "".join(f", r.`{name}` AS `{name}`" for name in EDGE_COLUMNS[edge_type])
        parts.append(
            store.query(
                f"MATCH (a:{edge_type.source.label})-[r:{edge_type.rel_type}]->(b:{edge_type.target.label}) "
                f"RETURN a.key AS src, b.key AS dst{columns} ORDER BY src, dst"
            )
        )
    if store.dialect == "neo4j":
        parts.append(store.query("MATCH (n) RETURN count(n) AS n"))
        parts.append(store.query("MATCH (d:Decision) RETURN d.key AS k, d.embedding AS e ORDER BY k"))
        parts.append(store.query("SHOW INDEXES YIELD name, state RETURN name ORDER BY name"))
        parts.append(store.query("SHOW CONSTRAINTS YIELD name RETURN name ORDER BY name"))
        for call in ("db.labels() YIELD label", "db.relationshipTypes() YIELD relationshipType"):
            parts.append(store.query(f"CALL {call} RETURN *"))
        parts.append(store.query("CALL db.propertyKeys() YIELD propertyKey RETURN propertyKey ORDER BY 1"))
    else:
        parts.append(store.query("CALL show_tables() RETURN * ORDER BY name"))
        parts.append(
            store.query("MATCH (e:DecisionEmbedding) RETURN e.key AS k, e.embedding AS v ORDER BY k")
        )
        parts.append(store.query("CALL show_functions() RETURN count(*) AS n"))
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _direct(store: GraphStore, query: str) -> str:
    try:
        result = run_read_cypher(
            store, query, {"reason": "hacked"}, timeout=TIMEOUT, row_limit=ROW_LIMIT, max_chars=10**9
        )
    except QueryRefusedError as exc:
        message = str(exc)
        assert any(w in message for w in ("only", "refused", "may not", "longer than")), message
        return TIMEOUT_CUT if "longer than" in message else REFUSE
    if result.truncated and result.row_count == ROW_LIMIT:
        return LIMIT
    return f"RAN ({result.row_count} rows)"


async def _through_mcp(env: dict[str, str], queries: list[str]) -> list[str]:
    outcomes = []
    args = ("--timeout", str(TIMEOUT), "--row-limit", str(ROW_LIMIT))
    async with mcp_session(env, *args) as session:
        for query in queries:
            result = await session.call_tool("read_cypher", {"query": query, "params": {"reason": "hacked"}})
            if result.is_error:
                text = error_text(result)
                outcomes.append(TIMEOUT_CUT if "longer than" in text else REFUSE)
                continue
            data = payload(result)
            outcomes.append(LIMIT if data["truncated"] and data["row_count"] == ROW_LIMIT else "RAN")
    return outcomes


def _figures(label: str, outcomes: list[str]) -> str:
    counts = Counter(outcomes)
    return (
        f"{label}: {len(outcomes)} hostile queries tried — {counts[REFUSE]} refused, "
        f"{counts[LIMIT]} cut by the row limit, {counts[TIMEOUT_CUT]} cut by the timeout"
    )


def test_hostile_cypher_never_writes(store: GraphStore, request: pytest.FixtureRequest) -> None:
    batch, _ = c.build_batch()
    store.write(batch)
    store.ensure_schema()
    before = checksum(store)
    queries = hostile(store.dialect)
    assert len(queries) >= 50

    direct = [_direct(store, q) for _, q in queries]
    wrong = [(q, want, got) for (want, q), got in zip(queries, direct, strict=True) if got != want]
    assert not wrong, wrong
    assert checksum(store) == before

    settings = request.getfixturevalue("neo4j_settings") if store.dialect == "neo4j" else None
    if store.dialect == "embedded":
        store.close()  # the MCP server opens the file itself (read-only for read_cypher)
    via_mcp = asyncio.run(_through_mcp(server_env(store, settings), [q for _, q in queries]))
    wrong = [(q, want, got) for (want, q), got in zip(queries, via_mcp, strict=True) if got != want]
    assert not wrong, wrong
    assert checksum(store) == before

    print()
    print(_figures(f"{store.dialect}, read_cypher", direct))
    print(_figures(f"{store.dialect}, MCP read_cypher", via_mcp))


@pytest.mark.parametrize(
    "query",
    [
        "LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row",
        "LOAD CSV WITH HEADERS FROM 'http://127.0.0.1:9/x.csv' AS row RETURN count(row)",
        "CALL { LOAD CSV FROM 'file:///etc/hostname' AS r RETURN r } RETURN r",
    ],
)
def test_the_cli_cypher_path_refuses_file_and_url_reads(neo4j_store: GraphStore, query: str) -> None:
    """`contextgraph cypher` (retrieval.read_cypher): Neo4j calls LOAD CSV a read; it is refused."""
    with pytest.raises(QueryRefusedError, match="may not load files or URLs"):
        read_cypher(neo4j_store, query)
