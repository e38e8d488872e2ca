"""`contextgraph demo`: a realistic graph built through the real mapping and sync, and a precedent
answer for a new ticket, offline and quickly; running it again writes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from contextgraph import demo
from contextgraph.cli import cli
from contextgraph.config import Neo4jSettings
from contextgraph.store import GraphStore, Neo4jStore

from .builders import SHARED_MODEL


def test_the_scenario_is_what_ingest_writes_and_a_second_load_writes_nothing(store: GraphStore) -> None:
    first = demo.load(store)
    assert first.sync.rejected == []
    assert first.decisions >= 50
    stats = store.stats()
    assert stats["nodes"]["Decision"] == first.decisions
    assert stats["nodes"]["TaskInstance"] == 4 * first.decisions
    assert stats["relationships"]["INFORMED_BY"] == first.informed_by_written > 30

    rows = store.query(
        "MATCH (d:Decision) RETURN d.response_received AS answered, d.timed_out AS timed_out, "
        "d.chosen_options AS chosen, d.reason AS reason"
    )
    answered = [r for r in rows if r["answered"]]
    assert len(answered) == first.decisions - len(demo.PENDING)
    assert sum(r["timed_out"] for r in rows) == len(demo.TIMED_OUT)
    assert {c for r in answered for c in r["chosen"]} == set(demo.OPTIONS)
    assert all(r["reason"] for r in answered), "every answered review says why"

    verdicts = {
        r["verdict"]: r["n"]
        for r in store.query(
            "MATCH (:Decision)-[r:REVIEWED]->(:Proposal) RETURN r.verdict AS verdict, count(*) AS n"
        )
    }
    assert verdicts["overridden"] >= 10 and verdicts["escalated"] >= 10 and verdicts["approved"] >= 5
    people = store.query("MATCH (a:Actor) WHERE a.kind <> 'system' RETURN count(a) AS n")[0]["n"]
    assert people >= 4

    again = demo.load(store)
    assert again.sync.written == 0 and again.informed_by_written == 0
    assert store.stats() == stats


def test_demo_command_answers_with_precedents_offline_fast_and_idempotently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTEXTGRAPH_EMBEDDING_MODEL", str(SHARED_MODEL))
    monkeypatch.delenv("NEO4J_URI", raising=False)
    path = tmp_path / "demo.lbdb"
    runner = CliRunner()

    started = time.monotonic()
    first = runner.invoke(cli, ["demo", "--store-path", str(path)])
    seconds = time.monotonic() - started
    assert first.exit_code == 0, first.output
    assert seconds < 30, f"demo took {seconds:.1f} s"
    out = first.output
    assert "Precedents" in out and "Charged twice" in out
    assert "Precedent:" in out and "Respond Manually" in out, out
    assert "refund" in out  # the reviewers' reasons are shown
    assert f"--store-path {path}" in out and "Try next" in out

    second = runner.invoke(cli, ["demo", "--store-path", str(path)])
    assert second.exit_code == 0, second.output
    assert " 0 nodes and relationships written" in second.output


def test_demo_default_store_is_its_own_file_next_to_the_default_store() -> None:
    from contextgraph.config import default_store_path

    assert demo.default_path().parent == default_store_path().parent
    assert demo.default_path() != default_store_path()


@pytest.mark.neo4j
def test_demo_on_neo4j_answers_with_the_same_precedents(
    neo4j_store: Neo4jStore, neo4j_settings: Neo4jSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTEXTGRAPH_EMBEDDING_MODEL", str(SHARED_MODEL))
    args = [
        "--neo4j-uri",
        neo4j_settings.uri or "",
        "--neo4j-username",
        neo4j_settings.username,
        "--neo4j-password",
        neo4j_settings.password.get_secret_value(),
        "demo",
        "--neo4j",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Neo4j at" in result.output and "Precedent:" in result.output
    assert "Respond Manually" in result.output
    assert neo4j_store.stats()["nodes"]["Decision"] == demo.DECISIONS
