"""Export for Gephi/yEd (GraphML) and tools (node-link JSON), and a picture of one decision."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

from contextgraph import demo
from contextgraph.cli import cli
from contextgraph.render import export
from contextgraph.store import EmbeddedStore, GraphStore

KEY = demo.TRACE_EXAMPLE


def _counts(graph: nx.MultiDiGraph) -> tuple[Counter[str], Counter[str]]:
    nodes = Counter(attrs["labels"].lstrip(":") for _, attrs in graph.nodes(data=True))
    edges = Counter(str(key) for _, _, key in graph.edges(keys=True))
    return nodes, edges


def test_graphml_and_json_read_back_with_the_counts_of_stats(store: GraphStore, tmp_path: Path) -> None:
    demo.load(store)
    stats = store.stats()
    graph = export.whole_graph(store)
    export.write(graph, tmp_path / "g.graphml", "graphml")
    export.write(graph, tmp_path / "g.json", "json")

    from_graphml = nx.read_graphml(tmp_path / "g.graphml", force_multigraph=True)
    data = json.loads((tmp_path / "g.json").read_text())
    from_json = nx.node_link_graph(data, edges="edges", multigraph=True, directed=True)
    expected_nodes = {k: v for k, v in stats["nodes"].items() if v}
    expected_edges = {k: v for k, v in stats["relationships"].items() if v}
    for back in (from_graphml, from_json):
        nodes, edges = _counts(back)
        assert dict(nodes) == expected_nodes
        assert dict(edges) == expected_edges

    # GraphML holds scalars only: lists come back as JSON text, numbers as numbers.
    decision = from_graphml.nodes[export.node_id("Decision", KEY)]
    assert json.loads(decision["chosen_options"]) == ["Respond Manually"]
    assert decision["label"].startswith("Review the AI reply to ticket")
    assert isinstance(decision["map_index"], int) and decision["timed_out"] is False
    reviewed = [a for _, _, k, a in from_graphml.edges(keys=True, data=True) if k == "REVIEWED"]
    assert {a["verdict"] for a in reviewed} >= {"approved", "overridden", "escalated", "pending"}
    # JSON keeps lists as lists.
    assert export.node_id("Decision", KEY) in from_json
    assert from_json.nodes[export.node_id("Decision", KEY)]["offered"] == demo.OPTIONS


def test_one_decisions_trace_holds_its_whole_story(embedded_store: EmbeddedStore) -> None:
    demo.load(embedded_store)
    graph = export.decision_trace(embedded_store, KEY)
    nodes, edges = _counts(graph)
    assert nodes["Dag"] == 1 and nodes["DagRun"] == 1
    assert nodes["TaskInstance"] == 4 and nodes["Task"] == 4
    assert nodes["Option"] == 3 and nodes["Actor"] == 1 and nodes["Proposal"] == 1
    assert nodes["Decision"] >= 4  # itself and the precedents shown to its reviewer
    assert edges["INFORMED_BY"] >= 3 and edges["CHOSE"] == 1 and edges["OFFERED"] == 3
    assert edges["FEEDS"] == 5 and edges["PRODUCED_BY"] == 1 and edges["ASKED"] == 1
    focus = export.node_id("Decision", KEY)
    assert graph.graph["decision"] == focus
    assert nx.is_weakly_connected(graph)
    precedents = [graph.nodes[d] for _, d, k in graph.out_edges(focus, keys=True) if k == "INFORMED_BY"]
    assert all("Charged twice" in p["subject"] for p in precedents)


def test_export_and_draw_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "demo.lbdb"
    with EmbeddedStore(path) as store:
        store.ensure_schema()
        demo.load(store)
    monkeypatch.delenv("NEO4J_URI", raising=False)
    runner = CliRunner()
    base = ["--store-path", str(path)]

    out = tmp_path / "trace.graphml"
    result = runner.invoke(cli, [*base, "export", "--decision", KEY, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert nx.read_graphml(out, force_multigraph=True).number_of_nodes() >= 17

    result = runner.invoke(cli, [*base, "export", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["nodes"]) > 400

    png = tmp_path / "trace.png"
    result = runner.invoke(cli, [*base, "draw", KEY, "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000

    svg = tmp_path / "trace.svg"
    assert runner.invoke(cli, [*base, "draw", KEY, "-o", str(svg)]).exit_code == 0
    text = svg.read_text()
    assert "<svg" in text and "Respond Manually" in text and "Ben Okafor" in text

    picture = tmp_path / "from-trace.png"
    result = runner.invoke(cli, [*base, "trace", KEY, "--png", str(picture)])
    assert result.exit_code == 0, result.output
    assert "Respond Manually" in result.output and picture.stat().st_size > 50_000

    missing = runner.invoke(cli, [*base, "draw", "no|such|decision", "-o", str(png)])
    assert missing.exit_code == 1 and "no decision with key" in missing.output
