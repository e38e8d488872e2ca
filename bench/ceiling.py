"""The ceiling: the fastest plain bulk load of the same nodes and edges, without contextgraph's store.

The graph rows are made exactly as an ingest makes them (the same mapping, the same rows with
content hashes), then written, untimed parts aside, by the plainest fast path of each engine:

* Neo4j: the official driver's `execute_query` with `UNWIND $rows AS row CREATE (n:Label) SET n = row`
  for nodes and `UNWIND … MATCH (a {key}) MATCH (b {key}) CREATE (a)-[r:TYPE]->(b) SET r = …` for
  edges, `rows_per_tx` rows per transaction, on the same schema (constraints and indexes);
* embedded (Ladybug): `COPY Label(columns) FROM <pyarrow table>` per kind and chunk.

Only the time spent in those calls (including building the Arrow tables) is counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.synthetic import History
from contextgraph import model as m
from contextgraph.ingest import mapping
from contextgraph.store.base import EDGE_COLUMNS, NODE_COLUMNS, edge_rows, node_rows

#: Node kinds that recur across chunks (written once).
SHARED = {"Dag", "Task", "Option", "Actor", "DagVersion"}


def graph_chunks(history: History, visible: int, chunk: int) -> Iterator[m.GraphBatch]:
    """The ingest's graph, chunk by chunk of decisions; DAGs and tasks first, shared nodes once."""
    first = m.GraphBatch()
    shapes: dict[str, mapping.DagShape] = {}
    for record in history.dags():
        first.add(mapping.map_dag(record))
        scenario = next(s for s in history.scenarios if s.dag_id == record["dag_id"])
        tasks, shape = mapping.map_tasks(
            scenario.dag_id, history.tasks(scenario.dag_id) or [], {scenario.review}
        )
        first.extend(tasks)
        shapes[scenario.dag_id] = shape
    yield first
    for start in range(0, visible, chunk):
        batch = m.GraphBatch()
        stop = min(start + chunk, visible)
        for record in history.dag_runs(start, stop):
            batch.extend(mapping.map_dag_run(record))
        for record in history.task_instances(start, stop):
            batch.extend(mapping.map_task_instance(record))
        for i, record in enumerate(history.hitl_details(start, stop), start):
            s = history.scenario(i)
            shape = shapes[s.dag_id]
            proposals = [
                mapping.ProposalValue(task_id=t, value=(history.xcom(i, t) or {}).get("value"))
                for t in shape.parents(s.review)
                if history.xcom(i, t) is not None
            ]
            batch.extend(mapping.map_decision(record, upstream=shape.upstream(s.review), proposals=proposals))
        yield batch


@dataclass
class CeilingResult:
    seconds: float = 0.0
    nodes: int = 0
    edges: int = 0

    @property
    def elements(self) -> int:
        return self.nodes + self.edges


def _rows(batch: m.GraphBatch, seen: set[str]) -> Iterator[tuple[type[Any], list[dict[str, Any]], bool]]:
    for node_type, nodes in batch.nodes_by_label().items():
        if node_type.label in SHARED:
            nodes = [n for n in nodes if n.key not in seen]
            seen.update(n.key for n in nodes)
        if nodes:
            yield node_type, node_rows(nodes), True
    for edge_type, edges in batch.edges_by_type().items():
        if edge_type.source.label in SHARED and edge_type.target.label in SHARED:
            # between two shared nodes (e.g. VERSION_OF): once, like its ends
            kept = []
            for edge in edges:
                ident = f"{edge_type.rel_type}|{edge.src}|{edge.dst}"
                if ident not in seen:
                    seen.add(ident)
                    kept.append(edge)
            edges = kept
        if edges:
            yield edge_type, edge_rows(edges), False


def neo4j_ceiling(
    driver: Any, database: str, batches: Iterator[m.GraphBatch], rows_per_tx: int
) -> CeilingResult:
    result = CeilingResult()
    seen: set[str] = set()
    for batch in batches:
        for kind, rows, is_node in _rows(batch, seen):
            if is_node:
                cypher = f"UNWIND $rows AS row CREATE (n:{kind.label}) SET n = row"
            else:
                cypher = (
                    f"UNWIND $rows AS row MATCH (a:{kind.source.label} {{key: row.src}}) "
                    f"MATCH (b:{kind.target.label} {{key: row.dst}}) "
                    f"CREATE (a)-[r:{kind.rel_type}]->(b) SET r = row.props"
                )
                rows = [
                    {
                        "src": r["src"],
                        "dst": r["dst"],
                        "props": {k: v for k, v in r.items() if k not in ("src", "dst")},
                    }
                    for r in rows
                ]
            for start in range(0, len(rows), rows_per_tx):
                part = rows[start : start + rows_per_tx]
                began = time.perf_counter()
                driver.execute_query(cypher, rows=part, database_=database)
                result.seconds += time.perf_counter() - began
            if is_node:
                result.nodes += len(rows)
            else:
                result.edges += len(rows)
    return result


def embedded_ceiling(
    conn: Any, batches: Iterator[m.GraphBatch], seen: set[str] | None = None
) -> CeilingResult:
    """COPY the batches' rows; `seen`: keys of shared nodes already written (by an earlier call on
    the same database: a caller that reopens it between chunks passes one set to every call)."""
    import pyarrow as pa

    result = CeilingResult()
    seen = set() if seen is None else seen
    for batch in batches:
        for kind, rows, is_node in _rows(batch, seen):
            began = time.perf_counter()
            if is_node:
                columns = ["key", *NODE_COLUMNS[kind], "content_hash"]
                arrow_rows = pa.table({c: [_naive(r.get(c)) for r in rows] for c in columns})
                conn.execute(f"COPY {kind.label}({', '.join(f'`{c}`' for c in columns)}) FROM arrow_rows")
                result.nodes += len(rows)
            else:
                columns = [*EDGE_COLUMNS[kind], "content_hash"]
                data = {"from": [r["src"] for r in rows], "to": [r["dst"] for r in rows]}
                data.update({c: [_naive(r.get(c)) for r in rows] for c in columns})
                arrow_rows = pa.table(data)  # noqa: F841 - Ladybug's COPY … FROM reads this local by name
                conn.execute(f"COPY {kind.rel_type} FROM arrow_rows")
                result.edges += len(rows)
            result.seconds += time.perf_counter() - began
    return result


def _naive(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
