"""Learn from use: each precedent's usefulness from the verdicts of the drafts it informed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from contextgraph import demo
from contextgraph import model as m
from contextgraph.cli import cli
from contextgraph.ingest import mapping
from contextgraph.ingest.embeddings import Model2VecEmbedder, embed_pending
from contextgraph.retrieval import usefulness
from contextgraph.retrieval.precedents import find_lessons, find_similar_decisions
from contextgraph.store import EmbeddedStore, GraphStore


def _expected(records: demo.Scenario) -> dict[str, Counter[str]]:
    """Per precedent, the later verdicts, counted from the raw scenario (not from the graph)."""
    verdicts = {}
    for detail in records.hitl_details:
        ti = detail["task_instance"]
        key = m.Decision.key_for(demo.DAG_ID, ti["dag_run_id"], demo.REVIEW_TASK, -1, 1)
        verdicts[key] = mapping.verdict(detail["chosen_options"], detail["response_received"])
    out: dict[str, Counter[str]] = {}
    for edge in demo.informed_by(records):
        tally = out.setdefault(edge.dst, Counter())
        if verdicts[edge.src] != "pending":
            tally[verdicts[edge.src]] += 1
    return out


def test_usefulness_counts_later_verdicts(store: GraphStore) -> None:
    demo.load(store, 60)
    expected = _expected(demo.scenario(60))
    found = usefulness.refresh(store)
    assert set(found) == set(expected) and found
    for key, tally in expected.items():
        u = found[key]
        assert (u.approved, u.overridden, u.escalated) == (
            tally["approved"],
            tally["overridden"],
            tally["escalated"],
        )
        assert u.shown == sum(tally.values())
        assert u.score == pytest.approx((u.approved + 1) / (u.shown + 2), abs=1e-4)
    assert usefulness.stored(store, list(found)) == found

    # A precedent behind three overridden drafts is flagged for a human.
    worst = max(found.values(), key=lambda u: (u.overridden, -u.approved))
    later = [
        r["key"]
        for r in store.query(
            "MATCH (d:Decision)-[:REVIEWED {verdict: 'overridden'}]->(:Proposal) "
            "RETURN d.key AS key ORDER BY key"
        )
        if r["key"] != worst.key
    ][:4]
    store.write(m.GraphBatch(edges=[m.InformedBy(src=k, dst=worst.key, rank=1) for k in later]))
    flagged = usefulness.refresh(store)[worst.key]
    assert flagged.maybe_outdated and flagged.overridden >= usefulness.OUTDATED_MIN_OVERRIDES
    assert flagged.score < worst.score


def test_usefulness_command(store_file: Path) -> None:
    path = store_file
    with EmbeddedStore(path) as store:
        demo.load(store, 60)
    result = CliRunner().invoke(cli, ["--store-path", str(path), "usefulness", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and rows == sorted(rows, key=lambda r: (-r["score"], r["key"]))


def test_outdated_flag_and_score_show_in_precedents_and_lessons(
    store_file: Path, embedder: Model2VecEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A precedent behind overridden drafts again and again carries "this lesson may be outdated"
    and its score in precedent search (library, CLI table) and in its lesson."""
    monkeypatch.setenv("CONTEXTGRAPH_EMBEDDING_MODEL", embedder.source)  # the CLI uses the same model
    path = store_file
    with EmbeddedStore(path) as store:
        demo.load(store, 60)
        embed_pending(store, embedder)
        overridden = [
            r["key"]
            for r in store.query(
                "MATCH (d:Decision)-[:REVIEWED {verdict: 'overridden'}]->(:Proposal) RETURN d.key AS key"
            )
        ]
        target = next(
            r
            for r in store.query("MATCH (d:Decision) RETURN d.key AS key, d.subject AS subject")
            if r["key"] not in overridden
        )
        later = [k for k in overridden if k != target["key"]][:4]
        store.write(m.GraphBatch(edges=[m.InformedBy(src=k, dst=target["key"], rank=1) for k in later]))
        learned = usefulness.refresh(store)[target["key"]]
        assert learned.maybe_outdated

        found = find_similar_decisions(store, embedder, target["subject"], k=10, diversify=False)
        hit = next(p for p in found if p.key == target["key"])
        assert hit.maybe_outdated and hit.usefulness == learned.score and hit.shown == learned.shown
        assert "this lesson may be outdated" in hit.summary()
        known = usefulness.stored(store, [p.key for p in found])
        for p in found:  # every other result carries its own record (or none)
            record = known.get(p.key)
            assert p.usefulness == (record.score if record else None)
            assert p.maybe_outdated == bool(record and record.maybe_outdated)

        lessons = find_lessons(store, embedder, target["subject"], k=10)
        lesson = next(x for x in lessons if target["key"] in [e.key for e in x.exemplars + x.exceptions])
        assert lesson.maybe_outdated and "this lesson may be outdated" in lesson.to_prompt()

    shown = CliRunner().invoke(
        cli, ["--store-path", str(path), "similar", target["subject"], "--k", "10", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    rows = {r["key"]: r for r in json.loads(shown.output)}
    assert rows[target["key"]]["maybe_outdated"] is True
    assert rows[target["key"]]["usefulness"] == learned.score
