"""Precedent search, decision traces, the feedback loop and the agents' read-only Cypher tool,
on a real Neo4j and on the embedded engine, with the real embedding model."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from contextgraph import model as m
from contextgraph.errors import EmbeddingError, QueryRefusedError
from contextgraph.ingest.embeddings import Model2VecEmbedder, embed_pending
from contextgraph.retrieval.precedents import (
    find_similar_decisions,
    get_decision_trace,
    lucene_query,
    read_cypher,
    record_precedents,
)
from contextgraph.store import GraphStore

from . import cases as c

AIRFLOW = "http://airflow.example:8080"


@pytest.fixture
def history(store: GraphStore, embedder: Model2VecEmbedder) -> dict[str, str]:
    """All the cases, written and embedded; case id -> decision key."""
    return c.write_cases(store, embedder)


def test_the_seed_case_finds_the_roadmap_precedent_first(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    keys = c.write_cases(store, embedder, c.SEED_AND_UNRELATED)

    found = find_similar_decisions(
        store, embedder, c.SEED_QUERY, point=(c.SUPPORT_DAG, c.SUPPORT_POINT), airflow_url=AIRFLOW
    )

    first = found[0]
    assert first.key == keys["fr-dark-mode"], [p.subject for p in found]
    assert first.chosen_options == ["Respond Manually"]
    assert (first.reason or "").startswith("check the roadmap first")
    assert first.verdict == "overridden" and "Dark mode is coming" in (first.proposal or "")
    assert first.reviewer == "Maria" and first.responded_at is not None
    assert first.url == (
        f"{AIRFLOW}/dags/{c.SUPPORT_DAG}/runs/scheduled__2026-03-02T09%3A00%3A00%2B00%3A00/tasks/review_response"
    )
    assert first.signals.text_rank == 1 and first.signals.same_point
    assert len(found) == 5 and [p.score for p in found] == sorted((p.score for p in found), reverse=True)


def test_filters_narrow_the_precedents(
    store: GraphStore, embedder: Model2VecEmbedder, history: dict[str, str]
) -> None:
    text = "customer asks about dark mode on the roadmap"
    reports = find_similar_decisions(store, embedder, text, dag_id=c.REPORT_DAG, k=10)
    assert {p.dag_id for p in reports} == {c.REPORT_DAG} and len(reports) == 4
    assert reports[0].key == history["rep-feature-asks"]

    escalated = find_similar_decisions(store, embedder, "the API is down", chosen=c.ESCALATE, k=50)
    assert escalated and all(p.chosen_options == [c.ESCALATE] for p in escalated)
    assert len(escalated) == sum(1 for x in c.CASES if x.chosen == c.ESCALATE)

    cutoff = c.START + timedelta(hours=40)
    recent = find_similar_decisions(store, embedder, "refund", since=cutoff, k=50)
    assert recent and all(p.responded_at and p.responded_at >= cutoff for p in recent)

    tasks = find_similar_decisions(store, embedder, text, dag_id=c.SUPPORT_DAG, task_id=c.SUPPORT_POINT, k=50)
    assert {(p.dag_id, p.task_id) for p in tasks} == {(c.SUPPORT_DAG, c.SUPPORT_POINT)}

    without = find_similar_decisions(store, embedder, text, exclude=[history["fr-dark-mode"]], k=50)
    assert history["fr-dark-mode"] not in {p.key for p in without}


def test_only_answered_decisions_are_precedents(
    store: GraphStore, embedder: Model2VecEmbedder, history: dict[str, str]
) -> None:
    waiting = c.write_pending(
        store, "Feature request: dark mode", "Please add a dark mode theme to the dashboard."
    )
    embed_pending(store, embedder)

    found = find_similar_decisions(store, embedder, "dark mode theme for the dashboard", k=50)

    assert waiting.key not in {p.key for p in found}
    assert found[0].key == history["fr-dark-mode"]


def test_embedding_follows_text_changes_only(
    store: GraphStore, embedder: Model2VecEmbedder, history: dict[str, str]
) -> None:
    assert store.decisions_needing_embedding(embedder.name) == []
    batch, _ = c.build_batch([c.SEED])
    decision = next(n for n in batch.nodes if isinstance(n, m.Decision))

    retitled = m.GraphBatch()
    retitled.add(decision.model_copy(update={"responded_by": "someone-else"}))
    store.write(retitled)
    unchanged_text = embed_pending(store, embedder)
    assert (unchanged_text.embedded, unchanged_text.unchanged) == (0, 1)

    rewritten = m.GraphBatch()  # the situation (subject, body, proposal) is what is embedded
    body = (decision.body or "") + "\nnow about a purple theme"
    rewritten.add(decision.model_copy(update={"responded_by": "someone-else", "body": body}))
    store.write(rewritten)
    changed_text = embed_pending(store, embedder)
    assert (changed_text.embedded, changed_text.unchanged) == (1, 0)
    assert embed_pending(store, embedder).embedded == 0


def test_words_with_lucene_syntax_are_searched_literally(
    store: GraphStore, embedder: Model2VecEmbedder, history: dict[str, str]
) -> None:
    text = 'URGENT!!! (prod) [P1]: API/REST "500" errors && || ~* ? {all} requests^2 -down +now \\'
    found = find_similar_decisions(store, embedder, text, k=3)
    assert found[0].key == history["inc-api-500"]
    assert lucene_query(["a+b", "c:d", "costs"]) == r"a\+b OR c\:d OR costs"


def test_precedent_search_quality_holds(store: GraphStore, embedder: Model2VecEmbedder) -> None:
    """Hybrid ranking beats each signal alone and stays at its measured level (as
    `python -m bench.eval_precedents --smoke` reports it)."""
    results = c.smoke_scores(store, embedder)
    hybrid, vector, text = results["hybrid"], results["vector"], results["text"]
    assert hybrid.mrr > vector.mrr and hybrid.mrr > text.mrr, results
    assert hybrid.hit_at_1 >= max(vector.hit_at_1, text.hit_at_1), results
    # The old 27 cases, a smoke set now (the weights are chosen on bench/precedents' dev split).
    # Measured (hit@1, hit@3, MRR): embedded 0.963/0.963/0.972.
    floor = {"neo4j": (0.96, 0.96, 0.97), "embedded": (0.96, 0.96, 0.97)}[store.dialect]
    assert hybrid.hit_at_1 >= floor[0] and hybrid.hit_at_3 >= floor[1] and hybrid.mrr >= floor[2], results


def test_trace_tells_the_whole_story(store: GraphStore, history: dict[str, str]) -> None:
    trace = get_decision_trace(store, history["inc-api-500"], airflow_url=AIRFLOW)

    assert [t.task_id for t in trace.upstream] == ["fetch_ticket", "draft_response"]
    assert {t.task_id: t.state for t in trace.downstream} == {
        "escalate_to_cre": "success",
        "send_response": "skipped",
    }
    assert trace.offered == [c.APPROVE, c.MANUAL, c.ESCALATE] and trace.chosen_options == [c.ESCALATE]
    text = trace.to_markdown()
    case = c.CASE_BY_ID["inc-api-500"]
    assert case.reason in text and case.proposal in text and case.subject in text
    assert "verdict: **escalated**" in text and "`escalate_to_cre`: success" in text
    assert "Reviewer**: Maria" in text and trace.url and trace.url in text
    with pytest.raises(LookupError):
        get_decision_trace(store, "no|such|decision")


def test_record_precedents_is_idempotent(
    store: GraphStore, embedder: Model2VecEmbedder, history: dict[str, str]
) -> None:
    waiting = c.write_pending(store, "Feature request: usage graphs per team", "Could we see cost per team?")
    shown = find_similar_decisions(store, embedder, waiting.search_text, k=3)
    when = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)

    assert record_precedents(store, waiting.key, shown, recorded_at=when) == 3
    assert record_precedents(store, waiting.key, shown, recorded_at=when) == 0
    assert store.stats()["relationships"]["INFORMED_BY"] == 3

    trace = get_decision_trace(store, waiting.key)
    assert [p.key for p in trace.informed_by] == [p.key for p in shown]
    assert [p.rank for p in trace.informed_by] == [1, 2, 3]
    assert "Precedents that informed it" in trace.to_markdown()
    assert not trace.response_received and "waiting for a human answer" in trace.to_markdown()


WRITES = {
    "neo4j": [
        "CREATE (:Decision {key: 'x'})",
        "MERGE (d:Decision {key: 'x'}) RETURN d",
        "MATCH (d:Decision) SET d.reason = 'hacked' RETURN count(d)",
        "MATCH (d:Decision) DETACH DELETE d",
        "MATCH (d:Decision) WITH d LIMIT 1 CALL db.create.setNodeVectorProperty(d, 'embedding', [1.0, 2.0])",
        "CALL db.createLabel('Hacked')",
        "CREATE INDEX hacked IF NOT EXISTS FOR (n:Decision) ON (n.reason)",
        "MATCH (d:Decision) RETURN d.key AS k; CREATE (:Decision {key: 'y'})",
    ],
    "embedded": [
        "CREATE (:Decision {key: 'x'})",
        "MERGE (d:Decision {key: 'x'}) RETURN d",
        "MATCH (d:Decision) SET d.reason = 'hacked' RETURN count(d)",
        "MATCH (d:Decision) DETACH DELETE d",
        "CALL threads=1",
        "CREATE NODE TABLE Hacked(k STRING PRIMARY KEY)",
        "DROP TABLE DecisionEmbedding",
        "MATCH (d:Decision) RETURN d.key AS k; CREATE (:Decision {key: 'y'})",
        "LOAD FROM '/etc/passwd' (header=false) RETURN *",
    ],
}


def test_read_cypher_refuses_writes_and_changes_nothing(store: GraphStore, history: dict[str, str]) -> None:
    before = store.stats()
    reasons = store.query("MATCH (d:Decision) RETURN d.key AS k, d.reason AS r ORDER BY k")
    for query in WRITES[store.dialect]:
        with pytest.raises(QueryRefusedError):
            read_cypher(store, query)
    assert store.stats() == before
    assert store.query("MATCH (d:Decision) RETURN d.key AS k, d.reason AS r ORDER BY k") == reasons

    rows = read_cypher(
        store,
        "MATCH (d:Decision)-[:CHOSE]->(o:Option) WHERE o.name = $name "
        "RETURN d.subject AS subject, d.responded_at AS at ORDER BY subject LIMIT 2",
        {"name": c.ESCALATE},
    )
    assert len(rows) == 2 and isinstance(rows[0]["at"], str) and rows[0]["at"].startswith("2026-03")


def test_read_cypher_cuts_rows_and_time(store: GraphStore, history: dict[str, str]) -> None:
    huge = "MATCH (a:Decision), (b:Decision), (c:Decision), (d:Decision) RETURN a.key, b.key, c.key, d.key"
    started = time.perf_counter()
    rows = read_cypher(store, huge, row_limit=25)
    assert len(rows) == 25 and time.perf_counter() - started < 10

    slow = (
        "MATCH (a:Decision), (b:Decision), (c:Decision), (d:Decision), (e:Decision) "
        "WHERE (a.search_text + b.search_text + c.search_text + d.search_text + e.search_text) "
        "CONTAINS 'zzzz' "
        "RETURN count(*) AS n"
    )
    started = time.perf_counter()
    with pytest.raises(QueryRefusedError, match="longer than 1 s"):
        read_cypher(store, slow, timeout=1.0)
    assert time.perf_counter() - started < 15


def test_a_hub_model_that_cannot_be_fetched_says_what_to_set() -> None:
    with pytest.raises(EmbeddingError) as error:
        Model2VecEmbedder("contextgraph-test/no-such-model")
    message = str(error.value)
    assert "CONTEXTGRAPH_EMBEDDING_MODEL" in message and "local model folder" in message
    assert "\n" not in message
