"""The foundation on both engines: a real Neo4j server and the embedded Ladybug file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contextgraph import model as m
from contextgraph.errors import InvalidRecordError
from contextgraph.store import GraphStore

from .builders import support_batch


def test_writing_the_same_batch_twice_changes_nothing(store: GraphStore) -> None:
    batch = support_batch()
    first = store.write(batch)
    counts = store.stats()
    second = store.write(batch)

    assert store.stats() == counts
    assert counts["nodes"]["Decision"] == 3 and counts["nodes"]["Task"] == 3
    assert counts["relationships"]["OFFERED"] == 6 and counts["relationships"]["FEEDS"] == 2
    assert first.written == len(batch.nodes) + len(batch.edges) - 0
    assert second.written == 0
    assert sum(second.unchanged.values()) == first.written


def test_values_come_back_as_written(store: GraphStore) -> None:
    store.write(support_batch(1))
    [row] = store.query(
        "MATCH (d:Decision)-[:CHOSE]->(o:Option) MATCH (d)-[r:REVIEWED]->(p:Proposal) "
        "RETURN d.reason AS reason, d.offered AS offered, d.created_at AS created, d.params_input AS params, "
        "o.name AS chosen, r.verdict AS verdict, p.text AS draft"
    )
    assert row["reason"] == "ok ✓"
    assert row["offered"] == ["Approve", "Escalate"]
    assert row["created"] == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert row["params"] == '{"reason": "ok ✓"}'
    assert (row["chosen"], row["verdict"], row["draft"]) == ("Approve", "approved", "Draft")


def test_a_changed_record_is_updated_in_place(store: GraphStore) -> None:
    store.write(support_batch(1))
    changed = m.GraphBatch()
    decision = next(n for n in support_batch(1).nodes if isinstance(n, m.Decision))
    changed.add(decision.model_copy(update={"reason": "customer is on the roadmap list"}))

    result = store.write(changed)

    assert result.updated == {"Decision": 1} and not any(result.created.values())
    assert store.query("MATCH (d:Decision) RETURN d.reason AS r") == [
        {"r": "customer is on the roadmap list"}
    ]
    assert store.stats()["nodes"]["Decision"] == 1


def test_a_changed_relationship_is_updated_in_place(store: GraphStore) -> None:
    """Rewriting a batch whose relationships all exist looks each one up by its two ends: the one
    whose properties changed is updated, the rest (two OFFERED per decision included) unchanged."""
    batch = support_batch(3)
    store.write(batch)
    reviewed = [e for e in batch.edges if isinstance(e, m.Reviewed)]
    again = m.GraphBatch(nodes=list(batch.nodes), edges=[e for e in batch.edges if e is not reviewed[1]])
    again.add(reviewed[1].model_copy(update={"verdict": "overridden"}))

    result = store.write(again)

    assert result.updated == {"REVIEWED": 1} and not any(result.created.values())
    assert result.unchanged["OFFERED"] == 6 and result.unchanged["REVIEWED"] == 2
    rows = store.query("MATCH (d:Decision)-[r:REVIEWED]->(:Proposal) RETURN d.key AS d, r.verdict AS v")
    assert {r["d"]: r["v"] for r in rows} == {
        e.src: "overridden" if e is reviewed[1] else e.verdict for e in reviewed
    }


def test_conflicting_duplicates_fail_the_whole_batch_before_any_write(store: GraphStore) -> None:
    batch = support_batch(2)
    batch.add(m.Dag(dag_id="ai_support_ticket_system", tags=["other"]))

    with pytest.raises(InvalidRecordError) as error:
        store.write(batch)

    assert error.value.record == "Dag 'ai_support_ticket_system'" and error.value.field == "tags"
    assert sum(store.stats()["nodes"].values()) == 0


def test_identical_duplicates_collapse(store: GraphStore) -> None:
    batch = support_batch(1)
    batch.add(*batch.nodes)
    store.write(batch)
    assert store.stats()["nodes"]["Dag"] == 1


def test_small_batch_size_writes_everything_in_chunks(store: GraphStore) -> None:
    store.batch_size = 4
    batch = support_batch(5)
    result = store.write(batch)
    assert store.stats()["nodes"]["Decision"] == 5
    assert result.written == len(batch.nodes) + len(batch.edges)


def test_an_edge_to_a_missing_node_is_reported(store: GraphStore) -> None:
    ghost = m.Decision(dag_id="d", run_id="r", task_id="t")
    batch = m.GraphBatch()
    batch.add(m.Dag(dag_id="d"))
    batch.add(m.InformedBy(src=ghost.key, dst=ghost.key))
    result = store.write(batch)
    assert result.missing_endpoints == {"INFORMED_BY": 1}


def test_schema_is_idempotent(store: GraphStore) -> None:
    store.ensure_schema()
    store.ensure_schema()
    store.write(support_batch(1))
    assert store.stats()["nodes"]["Dag"] == 1


def test_neo4j_constraints_guard_every_key(neo4j_store: GraphStore) -> None:
    rows = neo4j_store.query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties RETURN *")
    guarded = {r["labelsOrTypes"][0] for r in rows}
    assert guarded >= {t.label for t in m.NODE_TYPES}
    # Besides the model's nodes only governance's own bookkeeping (contextgraph.governance.forget,
    # .usefulness).
    assert guarded - {t.label for t in m.NODE_TYPES} <= {
        "ForgetAudit",
        "ForgottenKey",
        "GraphSalt",
        "PrecedentUsefulness",
    }
    indexes = {r["name"]: r["type"] for r in neo4j_store.query("SHOW INDEXES YIELD name, type RETURN *")}
    assert indexes["decision_text"] == "FULLTEXT" and indexes["decision_embedding"] == "VECTOR"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"dag_id": "d", "task_id": "t"}, "run_id"),  # key field missing
        ({"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": "first"}, "map_index"),  # wrong type
        ({"dag_id": "", "run_id": "r", "task_id": "t"}, "dag_id"),  # empty key
        ({"dag_id": "d", "run_id": "r", "task_id": "t", "colour": "red"}, "colour"),  # unknown field
    ],
)
def test_bad_records_name_the_record_and_field(record: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRecordError) as error:
        m.node_from_record("Decision", record, name="hitl detail #7")
    assert error.value.field == field
    assert str(error.value).startswith("hitl detail #7: field")


def test_keys_are_unambiguous() -> None:
    a = m.Task(dag_id="a|b", task_id="c")
    b = m.Task(dag_id="a", task_id="b|c")
    assert a.key != b.key
