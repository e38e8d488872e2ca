"""Every query in contextgraph/store/cypher/browser/ runs on a real Neo4j over the demo graph, with the
example
parameters of its own `// :param` lines, and answers something sensible."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import neo4j
import pytest

from contextgraph import demo
from contextgraph.config import Neo4jSettings
from contextgraph.model import NODE_TYPES
from contextgraph.render.browser import BrowserQuery, browser_queries, grass
from contextgraph.store import Neo4jStore

QUERIES = browser_queries()
Rows = list[dict[str, Any]]


@pytest.fixture(scope="module")
def demo_neo4j(neo4j_settings: Neo4jSettings) -> Iterator[Neo4jStore]:
    store = Neo4jStore.connect(neo4j_settings)
    store._write("MATCH (n) DETACH DELETE n", {})
    store.ensure_schema()
    demo.load(store)
    yield store
    store.close()


def _run(store: Neo4jStore, query: BrowserQuery) -> Rows:
    assert query.params or "$" not in query.body, f"{query.name} uses parameters without :param examples"
    return store.query(query.body, query.params)


def _nodes(value: Any) -> list[neo4j.graph.Node]:
    if isinstance(value, neo4j.graph.Path):
        return list(value.nodes)
    if isinstance(value, neo4j.graph.Node):
        return [value]
    if isinstance(value, list):
        return [n for item in value for n in _nodes(item)]
    return []


def latest_decisions(rows: Rows) -> None:
    assert len(rows) == 25
    times = [r["answered_at"] for r in rows if r["answered_at"]]
    assert times == sorted(times, reverse=True)
    assert all(r["reason"] and r["chosen"] for r in rows if r["answered_at"])
    assert {r["decided_by"] for r in rows} >= {"Ana Ruiz", "Chen Wei"}


def choices_by_option(rows: Rows) -> None:
    by_option = {r["option"]: r for r in rows}
    assert set(by_option) == set(demo.OPTIONS)
    answered = demo.DECISIONS - len(demo.PENDING)
    assert sum(r["chosen"] for r in rows) == answered
    assert abs(sum(r["share_percent"] for r in rows) - 100) < 0.5
    assert by_option["Escalate to CRE"]["chosen_by_timeout"] == len(demo.TIMED_OUT)


def overridden_proposals(rows: Rows) -> None:
    assert len(rows) >= 10
    assert all(r["chosen"] == ["Respond Manually"] for r in rows)
    assert all(r["ai_proposal"] and r["why"] for r in rows)
    assert any("refund" in r["why"].lower() for r in rows)


def precedents(rows: Rows) -> None:
    assert len(rows) == 3
    shown = [r["shown"] for r in rows]
    assert [p.relationships[0]["rank"] for p in shown] == [1, 2, 3]
    assert all("Charged twice" in p.end_node["subject"] for p in shown)
    assert all(r["chose"] is not None and r["decided"] is not None for r in rows)


def reviewer_history(rows: Rows) -> None:
    assert len(rows) >= 5
    assert all(r["chosen"] and r["reason"] for r in rows)
    assert {r["verdict"] for r in rows} >= {"overridden", "escalated"}


def decision_trace(rows: Rows) -> None:
    assert len(rows) == 1
    row = rows[0]
    labels = {next(iter(n.labels)) for value in row.values() for n in _nodes(value)}
    assert labels == {"Dag", "DagRun", "TaskInstance", "Decision", "Task", "Option", "Actor", "Proposal"}
    assert len(row["offered"]) == 3 and len(row["chose"]) == 1 and len(row["judged"]) == 1
    assert len(row["informed"]) == 3
    assert row["chose"][0].end_node["name"] == "Respond Manually"
    assert row["decided"][0].end_node["name"] == "Ben Okafor"


def decision_point_graph(rows: Rows) -> None:
    assert len(rows) == 30
    assert {r["o"]["name"] for r in rows} == set(demo.OPTIONS)
    assert all(r["point"]["task_id"] == "review_response" for r in rows)


def decisions_under_version(rows: Rows) -> None:
    assert len(rows) == demo.DECISIONS - demo.VERSION_2_FROM
    assert {r["version"] for r in rows} == {2}
    assert all(r["task"] == demo.REVIEW_TASK for r in rows)


CHECKS: dict[str, Callable[[Rows], None]] = {
    f.__name__: f
    for f in (
        latest_decisions,
        choices_by_option,
        overridden_proposals,
        precedents,
        reviewer_history,
        decision_trace,
        decision_point_graph,
        decisions_under_version,
    )
}


def test_every_browser_query_has_a_check_a_title_and_examples() -> None:
    assert {q.name for q in QUERIES} == set(CHECKS), "add a check here for each new Browser query"
    for query in QUERIES:
        assert query.title and query.description, query.name
        assert ";" not in query.body, f"{query.name}: one statement, pasteable into Browser"


@pytest.mark.neo4j
@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_browser_query_answers_on_the_demo_graph(demo_neo4j: Neo4jStore, query: BrowserQuery) -> None:
    assert demo_neo4j.query_type(query.body) == "r", "Browser queries only read"
    rows = _run(demo_neo4j, query)
    assert rows, f"{query.name} returned nothing"
    CHECKS[query.name](rows)


def test_the_style_gives_every_label_a_colour_and_a_caption() -> None:
    style = grass()
    blocks = dict(re.findall(r"^node\.(\w+) \{\n(.*?)^\}", style, re.MULTILINE | re.DOTALL))
    for node_type in NODE_TYPES:
        assert "color:" in blocks[node_type.label] and "caption:" in blocks[node_type.label]
    assert 'caption: "{subject}"' in blocks["Decision"]
