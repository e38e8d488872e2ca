"""A picture of one decision's trace (PNG, SVG or PDF), drawn with matplotlib from networkx.

The layout reads left to right like the story of the decision: DAG → run → task instances →
tasks → the decision → its options, reviewer and the AI proposal → the decisions linked to it by
INFORMED_BY. Colours are those of the Neo4j Browser style
(`contextgraph/store/cypher/browser/contextgraph.grass`).
Needs matplotlib: `pip install 'contextgraph[viz]'`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import networkx as nx

from contextgraph.errors import ConfigError

COLOURS = {
    "Dag": "#4C8EDA",
    "Task": "#57C7E3",
    "DagRun": "#8DCC93",
    "TaskInstance": "#C9E8CC",
    "Decision": "#F79767",
    "Option": "#FFC454",
    "Actor": "#DA7194",
    "Proposal": "#C990C0",
    "SyncState": "#D9C8AE",
}
COLUMNS = {
    "Dag": 0,
    "DagRun": 1,
    "TaskInstance": 2,
    "Task": 3,
    "Decision": 4,
    "Option": 5.2,
    "Actor": 5.2,
    "Proposal": 5.2,
}
EDGE_STYLE = {
    "CHOSE": ("#F36924", 3.2),
    "INFORMED_BY": ("#CC3C6C", 1.8),
    "REVIEWED": ("#B261A5", 1.8),
    "DECIDED_BY": ("#CC3C6C", 1.6),
}
FORMATS = ("png", "svg", "pdf")


def _kind(attrs: dict[str, Any]) -> str:
    return str(attrs.get("labels", ":")).lstrip(":")


def layout(graph: nx.MultiDiGraph) -> dict[str, tuple[float, float]]:
    """Columns by kind of node, rows in DAG order (tasks and task instances) or by key; the
    decisions linked by INFORMED_BY in a row above the decision."""
    focus = graph.graph.get("decision")
    order = _task_order(graph)
    kind_rank = {"Option": 0, "Actor": 1, "Proposal": 2}
    columns: dict[float, list[str]] = {}
    linked: list[str] = []
    for node, attrs in graph.nodes(data=True):
        kind = _kind(attrs)
        if kind == "Decision" and node != focus:
            linked.append(node)
        else:
            columns.setdefault(COLUMNS.get(kind, 6.0), []).append(node)

    def sort_key(node: str) -> tuple[Any, ...]:
        attrs = graph.nodes[node]
        return (kind_rank.get(_kind(attrs), 0), order.get(str(attrs.get("task_id")), 99), node)

    positions: dict[str, tuple[float, float]] = {}
    for column, nodes in columns.items():
        nodes.sort(key=sort_key)
        # Tasks sit half a row below their task instances, so that ASKED passes between them.
        shift = -0.5 if column == COLUMNS["Task"] else (-0.5 if column == COLUMNS["Option"] else 0.0)
        height = min(2.0 * (len(nodes) - 1), 6.0)
        for i, node in enumerate(nodes):
            y = height / 2 - i * height / (len(nodes) - 1) if len(nodes) > 1 else 0.0
            positions[node] = (column * 2.2, y + (shift if len(nodes) > 1 else 0.0))
    if linked:
        linked.sort(key=lambda n: (graph.nodes[n].get("created_at") or "", n))
        centre = COLUMNS["Decision"] * 2.2
        width = min(1.5 * (len(linked) - 1), 6.0)
        for i, node in enumerate(linked):
            x = centre - width / 2 + (i * width / (len(linked) - 1) if len(linked) > 1 else width / 2)
            positions[node] = (x, 3.8)
    return positions


def _task_order(graph: nx.MultiDiGraph) -> dict[str, int]:
    feeds = nx.DiGraph()
    for src, dst, key in graph.edges(keys=True):
        if key == "FEEDS":
            feeds.add_edge(graph.nodes[src].get("task_id"), graph.nodes[dst].get("task_id"))
    try:
        return {task: i for i, task in enumerate(nx.topological_sort(feeds))}
    except nx.NetworkXUnfeasible:
        return {}


def _wrap(text: str, width: int = 22, lines: int = 3) -> str:
    text = " ".join(str(text).split())
    wrapped = textwrap.wrap(text, width) or [""]
    if len(wrapped) > lines:
        wrapped = [
            *wrapped[: lines - 1],
            textwrap.shorten(" ".join(wrapped[lines - 1 :]), width, placeholder="…"),
        ]
    return "\n".join(wrapped)


def draw_trace(graph: nx.MultiDiGraph, path: Path, *, title: str | None = None) -> Path:
    """Draw a decision trace graph (`export.decision_trace`) into `path` (.png, .svg or .pdf)."""
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ConfigError(f"cannot draw into {path}: give a file name ending in .png, .svg or .pdf")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        raise ConfigError("drawing needs matplotlib: pip install 'contextgraph[viz]'") from None

    positions = layout(graph)
    focus = graph.graph.get("decision")
    fig, ax = plt.subplots(figsize=(17, 9.5), dpi=110)
    ax.set_axis_off()

    # Edges first, one arc per relationship (OFFERED and CHOSE between the same pair bend apart).
    seen: dict[tuple[str, str], int] = {}
    for src, dst, key in graph.edges(keys=True):
        if key == "HAS_TASK":  # the run's task instances already tie the DAG to its tasks
            continue
        n = seen.get((src, dst), 0)
        seen[(src, dst)] = n + 1
        colour, width = EDGE_STYLE.get(key, ("#9AA1AC", 1.0))
        rad = 0.15 * n + (0.12 if key in ("PRODUCED_BY", "AT_POINT") else 0.0)
        nx.draw_networkx_edges(
            graph,
            positions,
            edgelist=[(src, dst)],
            ax=ax,
            edge_color=colour,
            width=width,
            arrowsize=12,
            node_size=2600,
            connectionstyle=f"arc3,rad={rad}",
        )
        (x1, y1), (x2, y2) = positions[src], positions[dst]
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        # arc3 bends the curve by rad times the distance, perpendicular to the chord: label its middle
        dx, dy = x2 - x1, y2 - y1
        mx, my = mx + rad * dy / 2, my - rad * dx / 2
        text = key
        if key == "REVIEWED" and graph.edges[src, dst, key].get("verdict"):
            text = f"REVIEWED: {graph.edges[src, dst, key]['verdict']}"
        if key == "INFORMED_BY" and graph.edges[src, dst, key].get("rank") is not None:
            text = f"INFORMED_BY #{graph.edges[src, dst, key]['rank']}"
        ax.text(
            mx,
            my,
            text,
            fontsize=6.5,
            color="#555555",
            ha="center",
            va="center",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            zorder=3,
        )

    for node, attrs in graph.nodes(data=True):
        kind = _kind(attrs)
        big = node == focus
        nx.draw_networkx_nodes(
            graph,
            positions,
            nodelist=[node],
            ax=ax,
            node_color=COLOURS.get(kind, "#A5ABB6"),
            node_size=5200 if big else 2600,
            edgecolors="#2A2C34" if big else "white",
            linewidths=2.5 if big else 1.0,
        )
        label = _node_text(kind, attrs)
        x, y = positions[node]
        ax.text(x, y, label, fontsize=7.2 if not big else 8, ha="center", va="center", zorder=5)

    legend = [
        Line2D([0], [0], marker="o", color="w", markerfacecolor=COLOURS[k], markersize=11, label=k)
        for k in COLOURS
        if any(_kind(a) == k for _, a in graph.nodes(data=True))
    ]
    ax.legend(handles=legend, loc="lower left", fontsize=8, frameon=False, ncol=len(legend))
    ax.set_title(title or _title(graph), fontsize=11, loc="left")
    xs = [p[0] for p in positions.values()]
    ys = [p[1] for p in positions.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 1.2, max(ys) + 1.0)
    fig.tight_layout()
    fig.savefig(path, format=fmt)
    plt.close(fig)
    return Path(path)


def _node_text(kind: str, attrs: dict[str, Any]) -> str:
    if kind == "Decision":
        subject = str(attrs.get("subject") or "")
        head, _, topic = subject.rpartition(":")
        ticket = head.split()[-1] if head.split() else ""
        chosen = " / ".join(attrs.get("chosen_options") or []) or "(waiting)"
        return f"{ticket}\n{_wrap(topic or subject, 20, 2)}\n→ {_wrap(chosen, 20, 1)}"
    if kind == "DagRun":
        return _wrap(str(attrs.get("run_id", "")), 16, 2)
    if kind == "TaskInstance":
        return f"{_wrap(str(attrs.get('task_id', '')), 16, 1)}\n[{attrs.get('state') or 'none'}]"
    if kind == "Proposal":
        return "AI draft\n" + _wrap(str(attrs.get("text") or ""), 20, 2)
    if kind == "Actor":
        return _wrap(f"{attrs.get('name') or attrs.get('actor_id')}", 16, 2) + f"\n({attrs.get('kind')})"
    return _wrap(str(attrs.get("label", "")), 18, 2)


def _title(graph: nx.MultiDiGraph) -> str:
    focus = graph.graph.get("decision")
    if focus not in graph:
        return "decision trace"
    attrs = graph.nodes[focus]
    chosen = " / ".join(attrs.get("chosen_options") or []) or "waiting for an answer"
    reason = attrs.get("reason") or ""
    head = f"{attrs.get('subject', '')}\nchose: {chosen}"
    return head + (f" — why: {_wrap(reason, 140, 1)}" if reason else "")
