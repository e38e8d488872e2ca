"""Redaction at ingest: planted personal data never reaches the store, its files, exports or queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from contextgraph import demo
from contextgraph.cli import cli
from contextgraph.config import RedactSettings
from contextgraph.errors import ConfigError
from contextgraph.ingest.embeddings import Model2VecEmbedder, embed_pending
from contextgraph.ingest.redact import Redactor
from contextgraph.ingest.sync import Sync, SyncOptions
from contextgraph.model import NODE_TYPES
from contextgraph.render import export
from contextgraph.retrieval.precedents import find_similar_decisions
from contextgraph.store import EmbeddedStore, GraphStore

from .governance_corpus import planted_scenario

OPTIONS = SyncOptions(proposal_tasks={f"{demo.DAG_ID}.{demo.REVIEW_TASK}": [demo.DRAFT_TASK]})


def _everything(store: GraphStore) -> str:
    """Every stored property of every node and relationship, as one text."""
    parts = []
    for node_type in NODE_TYPES:
        parts.append(json.dumps(store.query(f"MATCH (n:{node_type.label}) RETURN n"), default=str))
    parts.append(json.dumps(store.query("MATCH ()-[r]->() RETURN r"), default=str))
    return "\n".join(parts)


def test_redaction_corpus_leaves_no_planted_value(
    store: GraphStore, embedder: Model2VecEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, planted = planted_scenario(50)
    monkeypatch.setenv("CONTEXTGRAPH_REDACT", "true")
    monkeypatch.setenv("CONTEXTGRAPH_REDACT_PATTERNS", json.dumps({"customer_ref": r"CUST-\d{6}"}))
    records.hitl_details[0]["body"] += " Account CUST-123456."
    report = Sync(demo.scenario_source(records), store, OPTIONS).run(full=True)
    assert report.fetched["HITL details"] == 50 and not report.rejected
    assert embed_pending(store, embedder).embedded == 50

    stored = _everything(store)
    graph = export.whole_graph(store)
    export.write(graph, tmp_path / "out.graphml", "graphml")
    export.write(graph, tmp_path / "out.json", "json")
    exported = (tmp_path / "out.graphml").read_text() + (tmp_path / "out.json").read_text()
    cypher_rows, _ = store.read_only_query(
        "MATCH (d:Decision)-[:REVIEWED]->(p:Proposal) RETURN d.body, d.subject, d.params, d.params_input, "
        "d.reason, d.search_text, p.text, p.value",
        {},
        timeout=10,
        row_limit=1000,
    )
    cypher = json.dumps(cypher_rows, default=str)
    similar = find_similar_decisions(store, embedder, planted.personal["email"][3], k=10)
    found = json.dumps([p.model_dump(mode="json") for p in similar])

    leaks = [v for v in planted.all_personal() if v in stored or v in exported or v in cypher or v in found]
    assert leaks == []
    assert "CUST-123456" not in stored and "[CUSTOMER_REF]" in stored
    # Each kind left its placeholder where the value was: in the body, the answer and the proposal.
    for placeholder in ("[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[IP]"):
        assert placeholder in cypher
    # No false positives: order ids, amounts, dates, versions, ticket numbers, non-Luhn numbers stay.
    assert [v for v in planted.lookalikes if v not in stored] == []
    assert f"T-{2001}" in stored  # the demo's own ticket numbers

    if isinstance(store, EmbeddedStore):
        store.close()  # flush everything to the files before looking at their bytes
        blobs = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "out." not in p.name)
        assert [v for v in planted.all_personal() if v.encode() in blobs] == []
        assert planted.lookalikes[0].encode() in blobs  # the files do hold text readably


def test_redaction_off_by_default(embedded_store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CONTEXTGRAPH_REDACT the values are stored as Airflow gave them (the other side)."""
    monkeypatch.delenv("CONTEXTGRAPH_REDACT", raising=False)
    monkeypatch.delenv("CONTEXTGRAPH_REDACT_PATTERNS", raising=False)
    records, planted = planted_scenario(5)
    Sync(demo.scenario_source(records), embedded_store, OPTIONS).run(full=True)
    stored = _everything(embedded_store)
    assert all(v in stored for v in planted.all_personal())


def test_only_the_configured_kinds_are_redacted() -> None:
    settings = RedactSettings.model_validate({"CONTEXTGRAPH_REDACT": "email,ip"})
    redactor = Redactor.from_settings(settings)
    assert redactor is not None
    text = "mail a.b@example.org from 10.0.0.7, call (212) 555-1000, card 4539 1488 0343 6467"
    assert redactor.text(text) == "mail [EMAIL] from [IP], call (212) 555-1000, card 4539 1488 0343 6467"


@pytest.mark.parametrize(
    "text",
    [
        "Order 1234567890123456 of $1,234.56 on 2026-11-30T10:00:00Z",
        "Airflow 3.3.2, ladybug 0.22.1, build 1.2.3.4.5, ticket T-2001, run manual__2026-11-29T08:58:00Z",
        "refund EUR 12345.67 for invoice INV-2026-000981 at 10:30:45",
    ],
)
def test_lookalikes_stay(text: str) -> None:
    assert Redactor().text(text) == text


def test_a_pattern_that_does_not_compile_is_refused_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patterns = {"good": r"\d+", "broken_one": r"(unclosed"}
    monkeypatch.setenv("CONTEXTGRAPH_REDACT_PATTERNS", json.dumps(patterns))
    with pytest.raises(ConfigError, match="broken_one"):
        RedactSettings.load()
    result = CliRunner().invoke(cli, ["--store-path", str(tmp_path / "g.lbdb"), "stats"])
    assert result.exit_code == 1
    assert "broken_one" in result.output and "does not compile" in result.output
    monkeypatch.setenv("CONTEXTGRAPH_REDACT_PATTERNS", "{}")
    monkeypatch.setenv("CONTEXTGRAPH_REDACT", "email,passport")
    with pytest.raises(ConfigError, match="passport"):
        RedactSettings.load()
