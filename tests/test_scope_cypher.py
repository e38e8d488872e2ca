"""A scoped view of a Neo4j graph answers from a Ladybug copy: ordinary Neo4j Cypher still works
there (the common idioms are translated) and gives what Neo4j itself gives for the scope, and the
read_cypher tool tells the agent which dialect it is talking to."""

from __future__ import annotations

import pytest

from contextgraph import demo
from contextgraph.errors import CypherError, QueryNotAllowedError
from contextgraph.governance.scope import Scope, ScopedStore
from contextgraph.store import Neo4jStore
from contextgraph.store.gate import dialect_note
from contextgraph.tools.agent import run_read_cypher

from .builders import support_batch

# Ordinary Neo4j-dialect queries; {W} is empty on the scoped view and restricts the full graph to
# the scope's DAG, so Neo4j's own answer is the expected one.
QUERIES = [
    "MATCH (d:Decision) {W} RETURN labels(d) AS labels, count(*) AS n",
    "MATCH (d:Decision)-[r]->(o:Option) {W} RETURN type(r) AS rel, count(*) AS n ORDER BY rel",
    "MATCH (d:Decision) {W} RETURN toLower(substring(d.subject, 0, 7)) AS s, toString(d.map_index) AS m, "
    "toInteger('7') AS i ORDER BY d.key LIMIT 5",
    "MATCH (d:Decision) {W} WITH d ORDER BY d.key DESC RETURN d.key AS k LIMIT 3",
    "MATCH (d:Decision) {W} WITH collect(d.key) AS keys RETURN size(keys) AS n",
    "MATCH (d:Decision) {W} "
    "RETURN count(d) AS n, count(CASE WHEN d.created_at < datetime() THEN 1 END) AS past",
    "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) {W} "
    "RETURN a.name AS who, count(*) AS n ORDER BY n DESC, who",
]


def test_neo4j_cypher_works_on_a_scoped_neo4j_view(neo4j_store: Neo4jStore) -> None:
    demo.load(neo4j_store, 30)
    neo4j_store.write(support_batch(4))  # another DAG, outside the scope
    view = ScopedStore(neo4j_store, Scope.parse(f"dag={demo.DAG_ID}"))
    try:
        assert view.cypher_dialect == "scoped-neo4j"
        for query in QUERIES:
            scoped = run_read_cypher(view, query.replace("{W}", ""))
            full = run_read_cypher(
                neo4j_store,
                query.replace("{W}", "WHERE d.dag_id = $dag"),
                {"dag": demo.DAG_ID},
            )
            assert full.rows, query
            assert scoped.rows == full.rows, query
        # What is not translated fails with a message naming the engine, not a silent wrong answer.
        with pytest.raises(CypherError, match=r"Ladybug rejected the query: .*ELEMENTID"):
            run_read_cypher(view, "MATCH (d:Decision) RETURN elementId(d) AS id LIMIT 1")
        with pytest.raises(QueryNotAllowedError, match="allow-list of the embedded store"):
            run_read_cypher(view, "CALL db.labels() YIELD label RETURN label")
    finally:
        view.close()
    note = dialect_note(view.cypher_dialect)
    assert "Write Neo4j Cypher" in note and "indexed from 1" in note
