"""The graph (or one decision's trace) as a networkx graph, and as GraphML or JSON files.

Nodes are `"<Label>:<key>"` with the model's properties plus `labels` (`":Decision"`, as APOC's
GraphML export writes it) and `label` (a short caption: what Gephi and yEd show on the node).
Edges carry their properties plus `label` (the relationship type, as APOC writes it); the graph
is a MultiDiGraph keyed by relationship type, since a decision both OFFERED and CHOSE an option.

GraphML allows only scalar attributes: lists and objects are written as JSON text, datetimes as
ISO 8601 and missing values are left out. The JSON file is networkx's node-link format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from contextgraph.errors import StoreError
from contextgraph.model import EDGE_TYPES, NODE_BY_LABEL, NODE_TYPES, Edge, Node
from contextgraph.store import GraphStore
from contextgraph.store.base import EDGE_COLUMNS, NODE_COLUMNS
from contextgraph.store.queries import identifier

Format = Literal["graphml", "json"]

#: The property that captions each kind of node (as in contextgraph/store/cypher/browser/contextgraph.grass).
CAPTIONS: dict[str, tuple[str, ...]] = {
    "Dag": ("dag_id",),
    "Task": ("task_id",),
    "DagRun": ("run_id",),
    "TaskInstance": ("task_id",),
    "Decision": ("subject", "chosen_options"),
    "Option": ("name",),
    "Actor": ("name", "actor_id"),
    "Proposal": ("text",),
    "SyncState": ("source",),
}


def node_id(label: str, key: str) -> str:
    return f"{label}:{key}"


# --- reading the store --------------------------------------------------------------------------


def _node_query(node_type: type[Node], where: str = "") -> str:
    columns = ", ".join(f"n.`{identifier(c)}` AS `{c}`" for c in NODE_COLUMNS[node_type])
    return f"MATCH (n:{identifier(node_type.label)}) {where} RETURN n.key AS key, {columns} ORDER BY key"


def _edge_query(edge_type: type[Edge], where: str = "") -> str:
    props = "".join(f", r.`{identifier(c)}` AS `{c}`" for c in EDGE_COLUMNS[edge_type])
    return (
        f"MATCH (a:{identifier(edge_type.source.label)})-[r:{identifier(edge_type.rel_type)}]->"
        f"(b:{identifier(edge_type.target.label)}) {where} "
        f"RETURN a.key AS src, b.key AS dst{props} ORDER BY src, dst"
    )


def _add_node(graph: nx.MultiDiGraph, label: str, row: Mapping[str, Any]) -> None:
    attrs = {k: _plain(v) for k, v in row.items() if k != "label"}
    attrs["labels"] = f":{label}"
    attrs["label"] = caption(label, row)
    graph.add_node(node_id(label, row["key"]), **attrs)


def _add_edge(graph: nx.MultiDiGraph, edge_type: type[Edge], row: Mapping[str, Any]) -> None:
    attrs = {k: _plain(v) for k, v in row.items() if k not in ("src", "dst")}
    graph.add_edge(
        node_id(edge_type.source.label, row["src"]),
        node_id(edge_type.target.label, row["dst"]),
        key=edge_type.rel_type,
        label=edge_type.rel_type,
        **attrs,
    )


def caption(label: str, row: Mapping[str, Any]) -> str:
    """A short text for a node: its subject, name or id (lists joined)."""
    for prop in CAPTIONS.get(label, ()):
        value = row.get(prop)
        if isinstance(value, list):
            value = " / ".join(str(v) for v in value)
        if value not in (None, ""):
            return str(value)
    return str(row.get("key", ""))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def whole_graph(store: GraphStore) -> nx.MultiDiGraph:
    """Every node and relationship of the store."""
    graph = nx.MultiDiGraph()
    for node_type in NODE_TYPES:
        for row in store.query(_node_query(node_type)):
            _add_node(graph, node_type.label, row)
    for edge_type in EDGE_TYPES:
        for row in store.query(_edge_query(edge_type)):
            _add_edge(graph, edge_type, row)
    return graph


_BY_TYPE = {t.rel_type: t for t in EDGE_TYPES}


def decision_trace(store: GraphStore, key: str) -> nx.MultiDiGraph:
    """One decision's trace: the DAG, run and task instances around it, the task it was asked at
    (and the tasks that fed it), its options and choice, who decided, the AI proposal it judged
    (and the task instance that produced it), and the decisions linked to it by INFORMED_BY."""
    found = store.query(_node_query(NODE_BY_LABEL["Decision"], "WHERE n.key = $key"), {"key": key})
    if not found:
        raise StoreError(
            f"no decision with key {key!r} in the graph: "
            "find keys with `contextgraph similar` or the Browser query latest_decisions"
        )
    keys: dict[str, set[str]] = {label: set() for label in NODE_BY_LABEL}
    keys["Decision"].add(key)
    rows: list[tuple[type[Edge], dict[str, Any]]] = []

    def follow(rel_type: str, *, src: set[str] | None = None, dst: set[str] | None = None) -> None:
        edge_type = _BY_TYPE[rel_type]
        conditions, params = [], {}
        if src is not None:
            conditions.append("a.key IN $src")
            params["src"] = sorted(src)
        if dst is not None:
            conditions.append("b.key IN $dst")
            params["dst"] = sorted(dst)
        for row in store.query(_edge_query(edge_type, "WHERE " + " AND ".join(conditions)), params):
            rows.append((edge_type, row))
            keys[edge_type.source.label].add(row["src"])
            keys[edge_type.target.label].add(row["dst"])

    decision = {key}
    follow("ASKED", dst=decision)
    for rel_type in ("OFFERED", "CHOSE", "DECIDED_BY", "REVIEWED", "AT_POINT", "INFORMED_BY"):
        follow(rel_type, src=decision)
    follow("INFORMED_BY", dst=decision)
    follow("HAS_INSTANCE", dst=set(keys["TaskInstance"]))
    follow("HAS_RUN", dst=set(keys["DagRun"]))
    follow("HAS_INSTANCE", src=set(keys["DagRun"]))
    follow("OF_TASK", src=set(keys["TaskInstance"]))
    follow("PRODUCED_BY", src=set(keys["Proposal"]))
    tasks = set(keys["Task"])
    follow("FEEDS", src=tasks, dst=tasks)
    follow("HAS_TASK", src=set(keys["Dag"]), dst=tasks)

    graph = nx.MultiDiGraph()
    for label, wanted in keys.items():
        if wanted:
            node_type = NODE_BY_LABEL[label]
            for row in store.query(_node_query(node_type, "WHERE n.key IN $keys"), {"keys": sorted(wanted)}):
                _add_node(graph, label, row)
    for edge_type, row in rows:
        _add_edge(graph, edge_type, row)
    graph.graph["decision"] = node_id("Decision", key)
    return graph


# --- files --------------------------------------------------------------------------------------


def graphml_ready(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy whose attributes are all GraphML scalars (lists and objects as JSON text)."""
    out = nx.MultiDiGraph()
    out.graph.update({k: _scalar(v) for k, v in graph.graph.items() if v is not None})
    for node, attrs in graph.nodes(data=True):
        out.add_node(node, **_scalars(attrs.items()))
    for src, dst, key, attrs in graph.edges(keys=True, data=True):
        out.add_edge(src, dst, key=key, **_scalars(attrs.items()))
    return out


def _scalars(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    return {k: _scalar(v) for k, v in items if v is not None}


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(_plain(value), ensure_ascii=False, sort_keys=True, default=str)


def write(graph: nx.MultiDiGraph, path: Path | None, fmt: Format) -> str | None:
    """Write the graph to `path` (or return the text when `path` is None)."""
    if fmt == "graphml":
        lines = "\n".join(nx.generate_graphml(graphml_ready(graph), prettyprint=True))
        text = lines + "\n"
    else:
        data = nx.node_link_data(graph, edges="edges")
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if path is None:
        return text
    Path(path).write_text(text, encoding="utf-8")
    return None
