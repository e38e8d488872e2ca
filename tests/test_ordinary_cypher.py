"""Ordinary reads through the agents' read-only Cypher tool, on a real Neo4j (with APOC loaded) and
on the embedded engine, over the demo graph: the questions a support lead or an agent asks.

Every query must run on both stores (none refused by the read-only gate) and both must return the
same rows. Most queries are written in the subset both dialects share; where a dialect differs
(one label per node, `CALL { … }`, shortest paths, 1-based lists, APOC) the query has a variant per
store and the two results are compared all the same. The figures are printed for the README.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contextgraph import demo
from contextgraph.cli import cli
from contextgraph.errors import QueryNotAllowedError, QueryRefusedError
from contextgraph.retrieval.precedents import read_cypher
from contextgraph.store import EmbeddedStore, GraphStore, Neo4jStore
from contextgraph.tools.agent import run_read_cypher

DECISION = "MATCH (d:Decision)"
CHOSE = "MATCH (d:Decision)-[:CHOSE]->(o:Option)"

# (query, ordered): ordered queries sort on a total order and are compared row by row; the others
# are compared as multisets of rows. A query is a string, or {"neo4j": …, "embedded": …}.
Q = tuple[str | dict[str, str], bool]

ORDINARY: list[Q] = [
    # shares by option
    (f"{CHOSE} RETURN o.name AS option, count(*) AS n ORDER BY n DESC", True),
    (f"{CHOSE} RETURN o.name AS option, count(*) AS n ORDER BY n DESC, option", True),
    (
        f"{CHOSE} WITH count(*) AS total MATCH (d2:Decision)-[:CHOSE]->(o2:Option) "
        "WITH total, o2.name AS option, count(*) AS n RETURN option, n * 100 / total AS pct ORDER BY option",
        True,
    ),
    (f"{CHOSE} WHERE d.timed_out RETURN o.name AS option, count(*) AS n", False),
    (f"{CHOSE} WHERE NOT d.timed_out RETURN o.name AS option, count(*) AS n", False),
    ("MATCH (d:Decision)-[:OFFERED]->(o:Option) RETURN o.name AS option, count(d) AS offered", False),
    (
        "MATCH (o:Option) OPTIONAL MATCH (d:Decision)-[:CHOSE]->(o) RETURN o.name AS option, count(d) AS n",
        False,
    ),
    (f"{DECISION} UNWIND d.chosen_options AS c RETURN c AS option, count(*) AS n", False),
    (f"{DECISION} RETURN size(d.chosen_options) AS chosen, count(*) AS n", False),
    (f"{DECISION} WHERE size(d.chosen_options) = 0 RETURN d.key AS key", False),
    # reviewer histories
    (
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) RETURN a.name AS reviewer, count(d) AS n "
        "ORDER BY n DESC, reviewer",
        True,
    ),
    (
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor), (d)-[:CHOSE]->(o:Option) "
        "RETURN a.name AS reviewer, o.name AS option, count(*) AS n",
        False,
    ),
    ("MATCH (a:Actor) RETURN a.kind AS kind, count(*) AS n", False),
    ("MATCH (a:Actor) WHERE a.kind <> 'system' RETURN a.name AS name, a.team AS team", False),
    ("MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) WHERE a.kind = 'slack_user' RETURN d.key AS key", False),
    (
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) RETURN a.name AS reviewer, "
        "min(d.responded_at) AS first, max(d.responded_at) AS last",
        False,
    ),
    (
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) WITH a, collect(d.key) AS keys "
        "RETURN a.name AS reviewer, size(keys) AS n",
        False,
    ),
    (
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) WHERE a.name STARTS WITH 'A' RETURN "
        "DISTINCT a.name AS name",
        False,
    ),
    (
        "MATCH (a:Actor) OPTIONAL MATCH (d:Decision)-[:DECIDED_BY]->(a) RETURN a.name AS name, count(d) AS n",
        False,
    ),
    (
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor), (d)-[r:REVIEWED]->(:Proposal) "
        "RETURN a.name AS reviewer, r.verdict AS verdict, count(*) AS n",
        False,
    ),
    # overridden drafts
    ("MATCH (d:Decision)-[r:REVIEWED]->(p:Proposal) RETURN r.verdict AS verdict, count(*) AS n", False),
    (
        "MATCH (d:Decision)-[r:REVIEWED]->(p:Proposal) WHERE r.verdict = 'overridden' "
        "RETURN d.subject AS subject, d.reason AS reason",
        False,
    ),
    (
        "MATCH (d:Decision)-[r:REVIEWED]->(p:Proposal) WHERE r.verdict = 'overridden' "
        "RETURN d.key AS key, size(p.text) AS draft_chars ORDER BY draft_chars DESC, key LIMIT 5",
        True,
    ),
    (
        "MATCH (d:Decision)-[r:REVIEWED]->(p:Proposal) WHERE r.verdict = 'overridden' AND "
        "d.reason CONTAINS 'refund' "
        "RETURN count(*) AS n",
        False,
    ),
    (
        "MATCH (d:Decision)-[r:REVIEWED]->(p:Proposal)-[:PRODUCED_BY]->(ti:TaskInstance) "
        "RETURN ti.task_id AS task, r.verdict AS verdict, count(*) AS n",
        False,
    ),
    (
        "MATCH (d:Decision)-[r:REVIEWED]->(:Proposal), (d)-[:CHOSE]->(o:Option) "
        "RETURN r.verdict AS verdict, o.name AS option, count(*) AS n",
        False,
    ),
    (
        "MATCH (d:Decision)-[r:REVIEWED]->(:Proposal) WITH r.verdict AS verdict, count(*) AS n "
        "WHERE n >= 5 RETURN verdict, n",
        False,
    ),
    # precedent chains (INFORMED_BY)
    (
        "MATCH (d:Decision)-[r:INFORMED_BY]->(p:Decision) RETURN d.key AS decision, p.key AS "
        "precedent, r.rank AS rank",
        False,
    ),
    (
        "MATCH (d:Decision)-[:INFORMED_BY]->(p:Decision) RETURN d.key AS decision, count(p) AS precedents",
        False,
    ),
    ("MATCH (d:Decision)-[:INFORMED_BY*2..2]->(p:Decision) RETURN count(*) AS n", False),
    (
        "MATCH (d:Decision)-[:INFORMED_BY*1..3]->(p:Decision) RETURN d.key AS decision, "
        "count(DISTINCT p) AS reach",
        False,
    ),
    (
        "MATCH (d:Decision)-[:INFORMED_BY]->(p:Decision)-[:CHOSE]->(o:Option), (d)-[:CHOSE]->(o2:Option) "
        "RETURN o.name = o2.name AS followed, count(*) AS n",
        False,
    ),
    (
        "MATCH (d:Decision) WHERE NOT EXISTS { MATCH (d)-[:INFORMED_BY]->(:Decision) } RETURN count(d) AS n",
        False,
    ),
    (
        "MATCH (d:Decision) WHERE EXISTS { MATCH (:Decision)-[:INFORMED_BY]->(d) } RETURN count(d) AS cited",
        False,
    ),
    (
        "MATCH (p:Decision)<-[:INFORMED_BY]-(d:Decision) RETURN p.key AS precedent, count(d) AS cited "
        "ORDER BY cited DESC, precedent LIMIT 5",
        True,
    ),
    (
        "MATCH (d:Decision)-[r:INFORMED_BY]->(:Decision) RETURN r.rank AS rank, count(*) AS n, "
        "round(avg(r.score), 3) AS score",
        False,
    ),
    ("MATCH (d:Decision)-[r:INFORMED_BY]->(:Decision) WHERE r.rank = 1 RETURN count(*) AS n", False),
    (
        "MATCH (d:Decision)-[:INFORMED_BY]->(p:Decision) WHERE p.created_at > d.created_at "
        "RETURN count(*) AS n",
        False,
    ),
    (
        {
            "neo4j": "MATCH p = shortestPath((a:Decision)-[:INFORMED_BY*1..5]->(b:Decision)) WHERE a <> b "
            "RETURN a.key AS a, b.key AS b, length(p) AS hops",
            "embedded": "MATCH p = (a:Decision)-[:INFORMED_BY* SHORTEST 1..5]->(b:Decision) WHERE a <> b "
            "RETURN a.key AS a, b.key AS b, length(p) AS hops",
        },
        False,
    ),
    # time windows
    (f"{DECISION} WHERE d.responded_at >= $since RETURN count(d) AS n", False),
    (f"{DECISION} WHERE d.created_at >= $since AND d.created_at < $until RETURN d.key AS key", False),
    (f"{DECISION} WHERE d.responded_at IS NULL RETURN d.key AS key, d.subject AS subject", False),
    (f"{DECISION} WHERE d.response_received = false RETURN count(*) AS pending", False),
    (
        f"{DECISION} WHERE d.responded_at IS NOT NULL RETURN d.key AS key ORDER BY "
        "d.responded_at DESC, key LIMIT 3",
        True,
    ),
    (f"{DECISION} RETURN min(d.created_at) AS first, max(d.created_at) AS last", False),
    (f"{DECISION} WITH d ORDER BY d.created_at LIMIT 10 RETURN d.key AS key", False),
    (
        {
            "neo4j": f"{DECISION} WHERE d.responded_at IS NOT NULL RETURN d.created_at.month "
            "AS month, count(*) AS n",
            "embedded": f"{DECISION} WHERE d.responded_at IS NOT NULL RETURN "
            "date_part('month', d.created_at) AS month, "
            "count(*) AS n",
        },
        False,
    ),
    # top-k with ties
    (f"{CHOSE} RETURN o.name AS option, count(*) AS n ORDER BY n DESC, option LIMIT 2", True),
    (
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) WITH a.name AS reviewer, count(*) AS n "
        "RETURN reviewer, n ORDER BY n DESC, reviewer LIMIT 3",
        True,
    ),
    (
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) WITH a.name AS reviewer, count(*) AS n "
        "WITH max(n) AS top MATCH (d2:Decision)-[:DECIDED_BY]->(a2:Actor) WITH top, a2.name AS "
        "reviewer, count(*) AS n "
        "WHERE n = top RETURN reviewer",
        False,
    ),
    (f"{DECISION} RETURN d.key AS key ORDER BY d.created_at, key SKIP 5 LIMIT 5", True),
    (f"{DECISION} RETURN size(d.reason) AS len, d.key AS key ORDER BY len DESC, key LIMIT 4", True),
    # DISTINCT, UNWIND, OPTIONAL MATCH, misc.
    (f"{DECISION} RETURN DISTINCT d.task_id AS task", False),
    (f"{DECISION} RETURN DISTINCT d.timed_out AS timed_out", False),
    ("UNWIND [1, 2, 3] AS x RETURN x, x * x AS sq", True),
    ("UNWIND $names AS name MATCH (o:Option {name: name}) RETURN o.name AS option", False),
    (
        "MATCH (t:Task) OPTIONAL MATCH (t)-[:FEEDS]->(n:Task) RETURN t.task_id AS task, n.task_id AS next",
        False,
    ),
    ("MATCH (g:Dag)-[:HAS_TASK]->(t:Task) RETURN g.dag_id AS dag, count(t) AS tasks", False),
    ("MATCH (t:Task) WHERE t.is_decision_point RETURN t.task_id AS task", False),
    (
        "MATCH (a:Task)-[:FEEDS*1..4]->(b:Task {task_id: 'review_response'}) RETURN DISTINCT "
        "a.task_id AS upstream",
        False,
    ),
    ("MATCH (r:DagRun) RETURN r.state AS state, count(*) AS n", False),
    (
        "MATCH (r:DagRun)-[:HAS_INSTANCE]->(ti:TaskInstance) RETURN ti.task_id AS task, "
        "ti.state AS state, count(*) AS n",
        False,
    ),
    ("MATCH (ti:TaskInstance)-[:ASKED]->(d:Decision) RETURN ti.task_id AS task, count(d) AS n", False),
    ("MATCH (d:Decision)-[:AT_POINT]->(t:Task) RETURN t.task_id AS point, count(d) AS n", False),
    (
        f"{DECISION} WHERE d.subject CONTAINS 'invoice' OR d.body CONTAINS 'invoice' RETURN count(d) AS n",
        False,
    ),
    (f"{DECISION} WHERE toLower(d.subject) ENDS WITH 'export' RETURN d.subject AS subject", False),
    (f"{DECISION} WHERE d.key = $key RETURN d.subject AS subject, d.reason AS reason", False),
    (f"{DECISION} RETURN CASE WHEN d.timed_out THEN 'default' ELSE 'human' END AS by, count(*) AS n", False),
    (
        f"{DECISION} RETURN coalesce(d.reason, '(none)') AS reason, count(*) AS n ORDER BY n "
        "DESC, reason LIMIT 3",
        True,
    ),
    (f"{DECISION} WITH d.task_id AS task, collect(d.key) AS keys RETURN task, size(keys) AS n", False),
    (f"{DECISION} RETURN count(DISTINCT d.task_id) AS points, count(*) AS decisions", False),
    (f"{DECISION} MATCH (d)-[:CHOSE]->(o:Option) WHERE o.name IN $names RETURN count(d) AS n", False),
    (
        "MATCH (d:Decision)-[:CHOSE]->(o:Option) RETURN o.name AS option UNION MATCH "
        "(o:Option) RETURN o.name AS option",
        False,
    ),
    ("MATCH (a:Actor) RETURN a.name AS name UNION ALL MATCH (o:Option) RETURN o.name AS name", False),
    (f"{DECISION} RETURN count(CASE WHEN d.timed_out THEN 1 END) AS timed_out, count(*) AS n", False),
    (
        "MATCH (d:Decision)-[:CHOSE]->(o:Option)<-[:CHOSE]-(e:Decision) WHERE d.key < e.key "
        "RETURN count(*) AS pairs",
        False,
    ),
    ("RETURN 1 + 1 AS two, 'x' + 'y' AS xy, abs(-3) AS three", False),
    # schema: one dialect each
    (
        {
            # Neo4j lists the labels ever used (tokens, constraints), Ladybug every declared table:
            # compare the ones every demo graph has.
            "neo4j": "CALL db.labels() YIELD label WHERE label IN $node_labels RETURN label AS name",
            "embedded": "CALL show_tables() WHERE type = 'NODE' AND name IN $node_labels RETURN name",
        },
        False,
    ),
    (
        {
            # Neo4j lists the types ever used (tokens), Ladybug every declared table: compare the
            # ones every demo graph has.
            "neo4j": "CALL db.relationshipTypes() YIELD relationshipType "
            "WHERE relationshipType IN $rel_types RETURN relationshipType AS name",
            "embedded": "CALL show_tables() WHERE type = 'REL' AND name IN $rel_types RETURN name",
        },
        False,
    ),
    (
        {
            "neo4j": "MATCH (n) WITH labels(n)[0] AS label WHERE label IN $labels RETURN "
            "label, count(*) AS n",
            "embedded": "MATCH (n) WITH label(n) AS label WHERE label IN $labels RETURN label, count(*) AS n",
        },
        False,
    ),
    (
        {
            "neo4j": f"{DECISION} WHERE size(d.chosen_options) > 0 RETURN d.chosen_options[0] "
            "AS first, count(*) AS n",
            "embedded": f"{DECISION} WHERE size(d.chosen_options) > 0 RETURN "
            "d.chosen_options[1] AS first, count(*) AS n",
        },
        False,
    ),
    (
        {
            "neo4j": "MATCH (d:Decision) CALL { WITH d MATCH (d)-[:INFORMED_BY]->(p) RETURN count(p) AS k } "
            "RETURN k, count(*) AS n",
            "embedded": "MATCH (d:Decision) OPTIONAL MATCH (d)-[:INFORMED_BY]->(p:Decision) "
            "WITH d, count(p) AS k "
            "RETURN k, count(*) AS n",
        },
        False,
    ),
    (
        {
            "neo4j": f"{CHOSE} RETURN apoc.coll.toSet(collect(o.name)) AS x, "
            "apoc.text.join(['a', 'b'], '-') AS j",
            "embedded": f"{CHOSE} RETURN list_distinct(collect(o.name)) AS x, 'a' + '-' + 'b' AS j",
        },
        False,
    ),
]


def _params() -> dict[str, Any]:
    return {
        "since": datetime(2026, 10, 20, tzinfo=UTC),
        "until": datetime(2026, 11, 1, tzinfo=UTC),
        "names": [demo.ESCALATE, demo.MANUAL],
        "labels": ["Decision", "Option", "Actor", "Task"],
        "node_labels": ["Dag", "Task", "DagRun", "TaskInstance", "Decision", "Option", "Actor", "Proposal"],
        "rel_types": [
            *("HAS_TASK", "FEEDS", "HAS_RUN", "HAS_INSTANCE", "OF_TASK", "ASKED", "OFFERED", "CHOSE"),
            *("DECIDED_BY", "REVIEWED", "AT_POINT", "INFORMED_BY"),
        ],
        "key": demo.TRACE_EXAMPLE,
    }


def _norm(value: Any) -> Any:
    """Engine values made comparable: times as UTC instants, floats rounded, lists of text sorted
    where the engines order a `collect` differently."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, list):
        items = [_norm(v) for v in value]
        return sorted(items, key=json.dumps) if all(isinstance(v, str) for v in items) else items
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _run(store: Any, query: str) -> list[dict[str, Any]]:
    result = run_read_cypher(store, query, _params(), timeout=20, row_limit=10_000, max_chars=10**9)
    assert not result.truncated, query
    return [_norm(r) for r in result.rows]


def _text(store: Any, query: str | dict[str, str]) -> str:
    return query if isinstance(query, str) else query[store.dialect]


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_every_ordinary_read_runs_on_both_stores_with_the_same_rows(
    neo4j_store: Neo4jStore, embedded_store: EmbeddedStore
) -> None:
    assert len(ORDINARY) >= 60
    for store in (neo4j_store, embedded_store):
        demo.load(store)

    failed: dict[str, list[str]] = {"neo4j": [], "embedded": []}
    different, empty = [], 0
    for query, ordered in ORDINARY:
        results = {}
        for store in (neo4j_store, embedded_store):
            try:
                results[store.dialect] = _run(store, _text(store, query))
            except QueryRefusedError as exc:
                failed[store.dialect].append(f"{_text(store, query)} -> {exc}")
        if len(results) < 2:
            continue
        neo, emb = results["neo4j"], results["embedded"]
        if not ordered:
            neo, emb = _sorted(neo), _sorted(emb)
        if neo != emb:
            different.append((query, neo[:5], emb[:5]))
        empty += not neo

    assert failed == {"neo4j": [], "embedded": []}
    assert not different, different
    assert empty <= 3, "a corpus of mostly empty answers would prove little"
    dialect_variants = sum(1 for q, _ in ORDINARY if isinstance(q, dict))
    print(
        f"\nordinary reads: {len(ORDINARY)} questions ({dialect_variants} with a variant per dialect) — "
        f"Neo4j {len(ORDINARY)} run, 0 refused; embedded {len(ORDINARY)} run, 0 refused; "
        f"the same rows on both: {len(ORDINARY)}"
    )


def test_the_cli_says_when_the_row_limit_cut_the_result(store_file: Path) -> None:
    path = store_file
    with EmbeddedStore(path) as store:
        demo.load(store)
    runner = CliRunner()
    base = ["--store-path", str(path), "cypher"]
    query = "MATCH (d:Decision) RETURN d.key AS key"

    cut = runner.invoke(cli, [*base, query, "--limit", "5", "--json"])
    assert cut.exit_code == 0, cut.output
    assert len(json.loads(cut.stdout)) == 5
    assert "truncated: showing 5 of >5 rows; add a LIMIT" in cut.stderr

    whole = runner.invoke(cli, [*base, query + " LIMIT 5", "--limit", "5", "--json"])
    assert whole.exit_code == 0 and len(json.loads(whole.stdout)) == 5 and "truncated" not in whole.stderr

    table = runner.invoke(cli, [*base, query, "--limit", "3"])
    assert "truncated: showing 3 of >3 rows" in table.output

    refused = runner.invoke(cli, [*base, "CALL current_setting('threads') RETURN *"])
    assert refused.exit_code == 1 and "not on the read-only allow-list" in refused.output


def test_the_allow_list_is_extended_by_configuration(
    store: GraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONTEXTGRAPH_CYPHER_ALLOW adds names; a Neo4j procedure must still be a READ one."""
    query = {
        "neo4j": "CALL db.info() YIELD name RETURN name",
        "embedded": "CALL current_setting('threads') RETURN *",
    }[store.dialect]
    with pytest.raises(QueryNotAllowedError, match="CONTEXTGRAPH_CYPHER_ALLOW"):
        read_cypher(store, query)
    monkeypatch.setenv("CONTEXTGRAPH_CYPHER_ALLOW", '["db.info", "current_setting"]')
    assert len(read_cypher(store, query)) == 1
    if store.dialect == "neo4j":
        monkeypatch.setenv("CONTEXTGRAPH_CYPHER_ALLOW", "apoc.*, dbms.*")
        for call in ("CALL apoc.util.sleep(10)", "CALL apoc.load.json('http://127.0.0.1:9/x') YIELD value"):
            with pytest.raises(QueryNotAllowedError, match="only READ procedures"):
                read_cypher(store, call)
        with pytest.raises(QueryNotAllowedError, match="administration"):
            read_cypher(store, "SHOW SETTINGS")
