"""Superseded lessons: decisions made before a DAG version changed their decision point, or whose
lesson a reviewer retired, stay in the graph but rank below current ones and say why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contextgraph.cli import cli
from contextgraph.governance.scope import Scope, ScopedStore
from contextgraph.ingest.embeddings import Model2VecEmbedder, embed_pending
from contextgraph.ingest.sync import Sync
from contextgraph.retrieval import supersede
from contextgraph.retrieval.precedents import find_lessons, find_similar_decisions
from contextgraph.store import EmbeddedStore, GraphStore

from .builders import DAG, SHARED_MODEL, ListSource, detail

OLD_OPTIONS = ["Approve AI Response", "Respond Manually", "Escalate to CRE"]
NEW_OPTIONS = ["Approve AI Response", "Respond Manually", "Escalate to billing"]
QUERY = "Customer double charged on the invoice, wants a refund of the duplicate payment"


def _review(
    run: str, version: int, options: list[str], chosen: str, subject: str, day: int
) -> dict[str, Any]:
    record = detail(
        run,
        options=options,
        subject=subject,
        body="The customer was charged twice on one invoice and asks for the duplicate to be refunded.",
        chosen_options=[chosen],
        params_input={"reason": f"{chosen}: duplicate charges go there."},
        created_at=f"2026-11-{day:02d}T10:00:00Z",
        responded_at=f"2026-11-{day:02d}T10:05:00Z",
    )
    record["task_instance"]["dag_version"] = {
        "version_number": version,
        "bundle_name": "dags-folder",
        "bundle_version": None,
        "dag_id": DAG,
    }
    return record


def _double_charge(run: str, day: int) -> dict[str, Any]:
    """A review under DAG version 1 that escalated a double charge to CRE on November ``day``."""
    return _review(run, 1, OLD_OPTIONS, "Escalate to CRE", "Double charge on invoice, refund", day)


def _load(store: GraphStore, embedder: Model2VecEmbedder, records: list[dict[str, Any]]) -> dict[str, str]:
    Sync(ListSource(records), store).run(full=True)
    embed_pending(store, embedder)
    rows = store.query("MATCH (d:Decision) RETURN d.key AS key, d.run_id AS run_id")
    return {r["run_id"]: r["key"] for r in rows}


def test_new_dag_version_with_other_options_supersedes_older_decisions(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    records = [
        # Under version 1 the point offered "Escalate to CRE": three near-identical reviews chose it.
        *(_double_charge(f"v1_{i}", 10 + i) for i in range(3)),
        # Version 2 replaced that option; one review since, its subject less like the query.
        _review("v2_0", 2, NEW_OPTIONS, "Escalate to billing", "Billing question", 20),
    ]
    keys = _load(store, embedder, records)
    found = find_similar_decisions(store, embedder, QUERY, point=(DAG, "review"), k=4, diversify=False)
    order = [p.key for p in found]
    assert order[0] == keys["v2_0"], "the current decision ranks above the superseded ones"
    by_key = {p.key: p for p in found}
    assert by_key[keys["v2_0"]].stale is None
    for i in range(3):
        stale = by_key[keys[f"v1_{i}"]].stale
        assert stale is not None and stale.startswith("superseded by DAG version 2: options changed")
        assert "Escalate to CRE" in stale and "Escalate to billing" in stale
    assert "superseded by DAG version 2" in by_key[keys["v1_0"]].summary()

    # Without words in the query that favour them, the stale ones are still in the results: they stay.
    assert len(found) == 4


def test_new_dag_version_with_the_same_options_supersedes_nothing(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    records = [
        _double_charge("v1_0", 10),
        _review("v2_0", 2, OLD_OPTIONS, "Approve AI Response", "Billing question", 20),
    ]
    keys = _load(store, embedder, records)
    found = find_similar_decisions(store, embedder, QUERY, point=(DAG, "review"), k=2, diversify=False)
    assert found[0].key == keys["v1_0"]
    assert all(p.stale is None for p in found)


def test_retired_lesson_ranks_lower_says_why_and_can_be_restored(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    records = [
        *(_double_charge(f"r{i}", 10 + i) for i in range(3)),
        _review("r9", 1, OLD_OPTIONS, "Respond Manually", "Billing question", 14),
    ]
    keys = _load(store, embedder, records)
    lessons = find_lessons(store, embedder, QUERY, point=(DAG, "review"))
    top = lessons[0]
    assert top.decided == "Escalate to CRE" and top.id.startswith("L") and top.stale is None
    assert f"[{top.id}]" in top.to_prompt()
    # The id is stable: another query that finds the same lesson names it alike.
    again = find_lessons(store, embedder, "refund a duplicate invoice payment", point=(DAG, "review"))
    assert top.id in [lesson.id for lesson in again]

    with pytest.raises(supersede.UnknownLessonError, match="no lesson 'Lffffffffff'"):
        supersede.retire(store, "Lffffffffff", why="x", by="ana")
    record = supersede.retire(
        store, top.id, why="CRE no longer handles billing", by="ana", at=datetime(2026, 11, 25, tzinfo=UTC)
    )
    assert (record.dag_id, record.task_id, record.decided) == (DAG, "review", "Escalate to CRE")

    found = find_similar_decisions(store, embedder, QUERY, point=(DAG, "review"), k=4, diversify=False)
    assert found[0].key == keys["r9"], "the retired lesson's decisions rank below the current one"
    retired = [p for p in found if p.key != keys["r9"]]
    assert retired and all(
        p.stale == "retired by ana on 2026-11-25: CRE no longer handles billing" for p in retired
    )
    lesson = next(x for x in find_lessons(store, embedder, QUERY, point=(DAG, "review")) if x.id == top.id)
    assert lesson.stale == "retired by ana on 2026-11-25: CRE no longer handles billing"
    assert "stale: retired by ana" in lesson.to_prompt()

    # A decision answered after the retirement counts again.
    later = _double_charge("r10", 27)
    keys = _load(store, embedder, [*records, later])
    found = find_similar_decisions(store, embedder, QUERY, point=(DAG, "review"), k=5, diversify=False)
    assert next(p for p in found if p.key == keys["r10"]).stale is None

    assert supersede.restore(store, top.id, by="ben") is True
    assert supersede.restore(store, top.id, by="ben") is False
    found = find_similar_decisions(store, embedder, QUERY, point=(DAG, "review"), k=5, diversify=False)
    assert all(p.stale is None for p in found)
    history = supersede.retirements(store, active_only=False)
    assert [(r.key, r.active, r.restored_by) for r in history] == [(top.id, False, "ben")]


def test_scoped_store_keeps_staleness(store: GraphStore, embedder: Model2VecEmbedder) -> None:
    records = [
        _double_charge("v1_0", 10),
        _review("v2_0", 2, NEW_OPTIONS, "Respond Manually", "Billing question", 20),
    ]
    keys = _load(store, embedder, records)
    lesson = supersede.lesson_id(DAG, "review", "Respond Manually")
    supersede.retire(store, lesson, why="new policy", by="ana")
    view = ScopedStore(store, Scope.parse(f"dag={DAG}"))
    try:
        found = {p.key: p.stale for p in find_similar_decisions(view, embedder, QUERY, k=2)}
    finally:
        view.close()
    assert (found[keys["v1_0"]] or "").startswith("superseded by DAG version 2")
    assert (found[keys["v2_0"]] or "").endswith(": new policy")


def test_cli_retire_restore_and_list(tmp_path: Path, embedder: Model2VecEmbedder) -> None:
    path = tmp_path / "graph.lbdb"
    with EmbeddedStore(path) as store:
        store.ensure_schema()
        _load(store, embedder, [_review("c0", 1, OLD_OPTIONS, "Escalate to CRE", "Refund", 10)])
    lesson = supersede.lesson_id(DAG, "review", "Escalate to CRE")
    base = ["--store-path", str(path), "lessons"]
    runner = CliRunner(env={"CONTEXTGRAPH_EMBEDDING_MODEL": str(SHARED_MODEL)})
    shown = runner.invoke(cli, [*base, QUERY])
    assert shown.exit_code == 0, shown.output
    assert f"[{lesson}]" in shown.output

    missing_why = runner.invoke(cli, [*base, "--retire", lesson])
    assert missing_why.exit_code != 0 and "--why" in missing_why.output
    done = runner.invoke(cli, [*base, "--retire", lesson, "--why", "policy changed", "--by", "ana"])
    assert done.exit_code == 0, done.output
    assert f"{lesson} retired by ana on" in done.output and "policy changed" in done.output
    listed = runner.invoke(cli, [*base, "--retired", "--json"])
    assert listed.exit_code == 0 and '"why": "policy changed"' in listed.output
    shown = runner.invoke(cli, [*base, QUERY])
    assert "stale: retired by ana" in shown.output
    unknown = runner.invoke(cli, [*base, "--retire", "Lnope", "--why", "x"])
    assert unknown.exit_code == 1 and "no lesson 'Lnope'" in unknown.output
    restored = runner.invoke(cli, [*base, "--restore", lesson, "--by", "ben"])
    assert restored.exit_code == 0 and f"restored {lesson}" in restored.output
