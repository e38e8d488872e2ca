"""Scale-out, tested: the store talks to Neo4j through a routing URI (``neo4j://``).

The session's server is reached as a cluster or Aura would be: the driver fetches a routing table,
sends writes to a writer and reads to a reader (`routing_=READ`). A single server accepts the
routing URI and names itself in every role.
"""

from __future__ import annotations

import neo4j
import pytest

from contextgraph.config import Neo4jSettings
from contextgraph.errors import ContextGraphError
from contextgraph.store import Neo4jStore

from .builders import support_batch


def test_the_tests_connect_through_a_routing_uri(neo4j_settings: Neo4jSettings) -> None:
    assert (neo4j_settings.uri or "").startswith(("neo4j://", "neo4j+s://", "neo4j+ssc://")), (
        "the test Neo4j should be reached through a routing URI; set NEO4J_URI=neo4j://… "
        f"(got {neo4j_settings.uri!r})"
    )


def test_a_routing_uri_writes_then_reads_back_with_read_routing(neo4j_store: Neo4jStore) -> None:
    batch = support_batch(runs=3)
    neo4j_store.write(batch)

    # Reads go to a reader: a statement that would write is refused in a READ-routed transaction.
    rows = neo4j_store._read("MATCH (d:Decision) RETURN d.subject AS subject ORDER BY subject", {})
    assert [r["subject"] for r in rows] == ["Ticket 0", "Ticket 1", "Ticket 2"]
    with pytest.raises(ContextGraphError):
        neo4j_store._read("CREATE (:Decision {key: 'written-by-a-read'})", {})
    assert neo4j_store.stats()["nodes"]["Decision"] == 3


def test_a_single_server_names_itself_reader_and_writer(neo4j_settings: Neo4jSettings) -> None:
    """What the driver learns from the routing URI (a cluster lists several members here)."""
    auth = (neo4j_settings.username, neo4j_settings.password.get_secret_value())
    with neo4j.GraphDatabase.driver(neo4j_settings.uri or "", auth=auth) as driver:
        [record], _, _ = driver.execute_query(
            "CALL dbms.routing.getRoutingTable({}, $db) YIELD servers RETURN servers",
            db=neo4j_settings.database,
            database_=neo4j_settings.database,
            routing_=neo4j.RoutingControl.READ,
        )
    roles = {server["role"]: server["addresses"] for server in record["servers"]}
    assert set(roles) == {"READ", "WRITE", "ROUTE"}
    assert all(addresses for addresses in roles.values()), roles
