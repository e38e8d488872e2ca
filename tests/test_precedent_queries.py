"""What a precedent query costs the server, and a narrow filter on a crowded graph.

On Neo4j, a precedent query is two round trips: the candidates of both indexes with what the
ranking reads of them, then the details of the best. Its vector index cannot filter while it
searches: a filter with an index that keeps few decisions has them scored exactly instead; any other
filter that keeps few decisions near the query must still find them: the over-fetch grows until it
does (a fixed 10 x over-fetch found none of them here). Queries are counted through the
driver (the real neo4j driver, wrapped); the graph and the filter behaviour run on both stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import neo4j
import numpy as np
import pytest
from neo4j import GraphDatabase

from contextgraph import model as m
from contextgraph.config import Neo4jSettings
from contextgraph.ingest import mapping
from contextgraph.ingest.embeddings import Embedder, embed_pending
from contextgraph.retrieval.lessons import find_lessons
from contextgraph.retrieval.precedents import find_similar_decisions
from contextgraph.retrieval.words import query_terms
from contextgraph.store import GraphStore, Neo4jStore
from contextgraph.store.base import CandidateFilter
from tests.cases import CASES, QUERIES, REPORT_DAG, SUPPORT_DAG, Case, run_id

CROWD = 1200
"""Support decisions near the query: more than 10 x the 50 candidates an index is asked for."""
QUERY = QUERIES[0].text  # a support case (a dark theme for the web app)


class CountingDriver:
    """A real neo4j driver that counts the queries sent through it."""

    def __init__(self, driver: neo4j.Driver) -> None:
        self.driver = driver
        self.queries: list[str] = []

    def execute_query(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        self.queries.append(str(getattr(query, "text", query)))
        return self.driver.execute_query(query, *args, **kwargs)

    def session(self, *args: Any, **kwargs: Any) -> Any:
        self.queries.append("(session)")
        return self.driver.session(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.driver, name)


def answered(case: Case, index: int) -> m.Decision:
    """`case` as an answered decision (of its DAG and point) of run `index`."""
    return m.Decision(
        dag_id=case.dag_id,
        run_id=run_id(index),
        task_id=case.task_id,
        subject=case.subject,
        body=case.body,
        offered=[case.chosen],
        chosen_options=[case.chosen],
        reason=case.reason,
        response_received=True,
        search_text=mapping.search_text(case.subject, case.body, [case.proposal], [case.chosen], case.reason),
    )


def write_crowd(store: GraphStore, embedder: Embedder) -> set[str]:
    """CROWD support decisions and a few weekly-report ones (each report case twice), embedded;
    the report keys."""
    support = [c for c in CASES if c.dag_id == SUPPORT_DAG]
    report = [c for c in CASES if c.dag_id == REPORT_DAG]
    batch = m.GraphBatch()
    batch.add(*(answered(support[i % len(support)], i) for i in range(CROWD)))
    rare = [answered(report[i % len(report)], CROWD + i) for i in range(2 * len(report))]
    batch.add(*rare)
    store.write(batch)
    embed_pending(store, embedder)
    return {d.key for d in rare}


def test_a_narrow_filter_still_returns_k_precedents(store: GraphStore, embedder: Embedder) -> None:
    rare = write_crowd(store, embedder)
    assert len(rare) >= 5
    found = find_similar_decisions(store, embedder, QUERY, dag_id=REPORT_DAG, k=5)
    assert len(found) == 5 and {p.key for p in found} <= rare
    lessons = find_lessons(store, embedder, QUERY, dag_id=REPORT_DAG, k=10)
    assert sum(lesson.count for lesson in lessons) == len(rare)
    everything = find_similar_decisions(store, embedder, QUERY, k=5)
    assert len(everything) == 5 and not {p.key for p in everything} & rare


@pytest.fixture
def counted(
    neo4j_store: Neo4jStore, neo4j_settings: Neo4jSettings
) -> Iterator[tuple[Neo4jStore, CountingDriver]]:
    """A second store on the test database whose driver counts its queries."""
    driver = CountingDriver(
        GraphDatabase.driver(
            neo4j_settings.uri or "",
            auth=(neo4j_settings.username, neo4j_settings.password.get_secret_value()),
            notifications_min_severity="OFF",
        )
    )
    yield Neo4jStore(cast(neo4j.Driver, driver), database=neo4j_store.database), driver
    driver.driver.close()


def test_a_precedent_query_on_neo4j_is_two_round_trips(
    neo4j_store: Neo4jStore, counted: tuple[Neo4jStore, CountingDriver], embedder: Embedder
) -> None:
    rare = write_crowd(neo4j_store, embedder)
    store, driver = counted
    kinds: list[dict[str, Any]] = [
        {},
        {"dag_id": SUPPORT_DAG, "task_id": CASES[0].task_id},
        {"deployment": m.DEFAULT_DEPLOYMENT},
    ]
    for filters in kinds:
        driver.queries.clear()
        found = find_similar_decisions(store, embedder, QUERY, k=5, **filters)
        assert len(found) == 5
        # once per store, before its first search narrowed in the full-text index: whether the
        # graph has the index to narrow in (SHOW INDEXES)
        checked = [q for q in driver.queries if "SHOW INDEXES" in q]
        assert len(driver.queries) == 2 + len(checked), driver.queries
        assert len(checked) == (1 if filters == kinds[1] else 0)
    # a narrow filter with an index (the DAG): its few decisions are scored directly, two round trips
    driver.queries.clear()
    narrow = find_similar_decisions(store, embedder, QUERY, dag_id=REPORT_DAG, k=5)
    assert len(driver.queries) == 2
    assert len(narrow) == 5 and {p.key for p in narrow} <= rare
    # a narrow filter without one (a choice only the rare decisions made): asked again with a larger
    # over-fetch while its selectivity is not known yet, then as cheap as any other query
    driver.queries.clear()
    first = find_similar_decisions(store, embedder, QUERY, chosen="Publish", k=5)
    assert 2 < len(driver.queries) <= 4
    driver.queries.clear()
    again = find_similar_decisions(store, embedder, QUERY, chosen="Publish", k=5)
    assert len(driver.queries) == 2
    assert [p.key for p in again] == [p.key for p in first] and {p.key for p in first} <= rare


def test_a_narrow_filter_on_neo4j_is_the_exact_top_k_by_cosine(
    neo4j_store: Neo4jStore, counted: tuple[Neo4jStore, CountingDriver], embedder: Embedder
) -> None:
    rare = write_crowd(neo4j_store, embedder)
    store, driver = counted
    query = embedder.embed([QUERY])[0]
    stored = neo4j_store.decision_vectors(sorted(rare), embedder.name)
    assert set(stored) == rare

    def cosine(key: str) -> float:
        v = stored[key]
        return float(np.dot(v, query) / (np.linalg.norm(v) * np.linalg.norm(query)))

    k = len(rare) // 2
    expected = sorted(rare, key=lambda key: (-cosine(key), key))[:k]
    driver.queries.clear()
    found = store.vector_candidates(query.tolist(), embedder.name, k, CandidateFilter(dag_id=REPORT_DAG))
    assert len(driver.queries) == 1
    assert [key for key, _ in found] == expected
    assert [score for _, score in found] == pytest.approx([cosine(key) for key in expected], abs=1e-5)
    # the same through the whole query: the filtered precedents, best first, in two round trips
    driver.queries.clear()
    shown = find_similar_decisions(store, embedder, QUERY, dag_id=REPORT_DAG, k=5, mode="vector")
    assert len(driver.queries) == 2
    assert {p.key for p in shown} <= rare and len(shown) == 5


def test_a_narrow_filter_is_searched_in_the_scoped_full_text_index_with_the_same_scores(
    neo4j_store: Neo4jStore, counted: tuple[Neo4jStore, CountingDriver], embedder: Embedder
) -> None:
    rare = write_crowd(neo4j_store, embedder)
    store, driver = counted
    report = next(c for c in CASES if c.dag_id == REPORT_DAG)
    words = query_terms(f"{QUERY} {report.subject}")
    narrow = CandidateFilter(dag_id=REPORT_DAG)
    driver.queries.clear()
    current = store.text_candidates(words, 5, narrow)
    assert len(driver.queries) == 2  # and, once per store, whether the scoped index exists
    # the best of the rare by the same BM25 scores as an unnarrowed search gives them
    everything = store.text_candidates(words, 2 * CROWD, CandidateFilter())
    best = sorted(((key, score) for key, score in everything if key in rare), key=lambda h: (-h[1], h[0]))
    assert [key for key, _ in current] == [key for key, _ in best[:5]]
    assert [score for _, score in current] == pytest.approx([score for _, score in best[:5]])
    # a filter the index cannot narrow to on top (the choice whose first decision ranks lowest
    # among the rare, so that the narrowed search must over-fetch): still the best that pass both
    report_cases = [c for c in CASES if c.dag_id == REPORT_DAG]
    made = [answered(report_cases[i % len(report_cases)], CROWD + i) for i in range(len(rare))]
    ranked = [key for key, _ in best]

    def first(option: str) -> int:
        return min(ranked.index(d.key) for d in made if option in d.chosen_options)

    chose = max({c.chosen for c in report_cases}, key=first)
    assert first(chose) >= 2
    passing = {d.key for d in made if chose in d.chosen_options}
    for k in (1, 2):
        both = store.text_candidates(words, k, CandidateFilter(dag_id=REPORT_DAG, chosen=chose))
        assert [key for key, _ in both] == [key for key, _ in best if key in passing][:k]

    # an agent's own word search in decision_text matches situations only, not the DAG id the
    # internal index holds
    def agent_search(index: str) -> set[str]:
        records = driver.driver.execute_query(
            "CALL db.index.fulltext.queryNodes($index, $words) YIELD node RETURN node.key AS key",
            {"index": index, "words": REPORT_DAG},
            database_=neo4j_store.database,
        ).records
        return {r["key"] for r in records}

    assert agent_search("decision_scoped_text") == rare
    assert agent_search("decision_text") == set()
    # a graph without the scoped index (set up by an older version): the same results, unnarrowed
    for statement in ("DROP INDEX decision_scoped_text", "CALL db.awaitIndexes(60)"):
        driver.driver.execute_query(statement, database_=neo4j_store.database)
    older = Neo4jStore(cast(neo4j.Driver, driver), database=neo4j_store.database)
    assert older.text_candidates(words, 5, narrow) == current
    driver.queries.clear()
    assert older.text_candidates(words, 5, narrow) == current
    assert len(driver.queries) == 1  # the index list is read once per store
    older.ensure_schema()
    driver.queries.clear()
    assert older.text_candidates(words, 5, narrow) == current
    assert len(driver.queries) == 1
