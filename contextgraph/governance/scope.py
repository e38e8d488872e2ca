"""Scoped tools: an agent bound to some DAGs, decision points or deployments sees only those.

    scope = Scope.parse("dag=support_review,point=billing.review")
    view = ScopedStore(store, scope)          # a GraphStore: give it to the tools instead of `store`

Enforcement is by the store, not by trusting queries: `ScopedStore` is an in-memory Ladybug
database holding a copy of the scope's subgraph only — its DAGs, tasks, runs and task instances,
the decisions in scope with their options, proposals and the actors that decided them (an actor
shared with another DAG is copied with its in-scope edges only), INFORMED_BY edges whose both ends
are in scope, and those decisions' embeddings. Every read — precedent search, traces, lessons, the
agent's Cypher (after the same read-only gate as the embedded store's) — runs there, so no query,
however written (`MATCH (d:Decision) RETURN d`, paths through shared Actor or Option nodes, string
tricks), can reach what was never copied. Agent Cypher therefore runs in the embedded engine's
dialect, whichever store holds the graph; over a Neo4j graph, the common Neo4j idioms (labels(n),
type(r), toString(), substring() from 0, head(), datetime(), ORDER BY in WITH without LIMIT) are
translated first (`store.translate`), and the tool's description says what differs
(`gate.dialect_note("scoped-neo4j")`). DAG versions and retired lessons of the scope are copied too
(superseded precedents rank as in the full store).

The copy is cached and rebuilt when the source changed: a fingerprint (decision and INFORMED_BY
counts, the last sync, the number of erasures) is compared at most every `check_seconds`, and a
copy older than `max_age_seconds` is rebuilt regardless (writes by other processes that the
fingerprint does not see). A scoped view is read-only: writes raise QueryRefusedError.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contextgraph import model as m
from contextgraph.errors import ConfigError, QueryRefusedError
from contextgraph.retrieval import supersede
from contextgraph.store import gate
from contextgraph.store.base import EDGE_COLUMNS, NODE_COLUMNS, GraphStore, Row, WriteResult
from contextgraph.store.embedded import EmbeddedStore
from contextgraph.store.queries import identifier, load
from contextgraph.store.sidecar import SidecarIndex

KINDS = ("dag", "point", "deployment")


class ScopeError(ConfigError):
    """A scope names something unknown (a kind, a DAG id, a decision point, a deployment)."""


@dataclass(frozen=True)
class Scope:
    """What an agent may see: decisions of these DAGs, at these decision points (dag_id, task_id),
    or of these deployments (when the graph records deployments). Empty parts do not restrict;
    a scope with all parts empty is refused."""

    dags: frozenset[str] = frozenset()
    points: frozenset[tuple[str, str]] = frozenset()
    deployments: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`dag=ID,point=DAG.TASK,deployment=NAME,...` → Scope; ScopeError names a bad part."""
        dags, points, deployments = set(), set(), set()
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            kind, sep, value = part.partition("=")
            kind, value = kind.strip(), value.strip()
            if not sep or not value:
                raise ScopeError(
                    f"scope part {part!r}: expected KIND=VALUE with KIND one of {', '.join(KINDS)}"
                )
            if kind == "dag":
                dags.add(value)
            elif kind == "point":
                dag_id, dot, task_id = value.rpartition(".")
                if not dot or not dag_id or not task_id:
                    raise ScopeError(f"scope part {part!r}: a decision point is DAG_ID.TASK_ID")
                points.add((dag_id, task_id))
            elif kind == "deployment":
                deployments.add(value)
            else:
                raise ScopeError(f"unknown scope kind {kind!r} in {part!r}: use {', '.join(KINDS)}")
        scope = cls(frozenset(dags), frozenset(points), frozenset(deployments))
        if not (dags or points or deployments):
            raise ScopeError("an empty scope: name at least one dag=, point= or deployment=")
        return scope

    def __str__(self) -> str:
        parts = [f"dag={d}" for d in sorted(self.dags)] + [f"point={d}.{t}" for d, t in sorted(self.points)]
        return ",".join(parts + [f"deployment={d}" for d in sorted(self.deployments)])

    @property
    def visible_dags(self) -> frozenset[str] | None:
        """DAG ids whose structure is visible (None: any, for a deployment-only scope)."""
        if not (self.dags or self.points):
            return None
        return self.dags | {d for d, _ in self.points}

    def sees(self, dag_id: str, task_id: str, deployment: str | None = None) -> bool:
        """Whether a decision at (dag_id, task_id) of this deployment is in scope."""
        if self.deployments and deployment not in self.deployments:
            return False
        if not (self.dags or self.points):
            return True
        return dag_id in self.dags or (dag_id, task_id) in self.points

    def check(self, store: GraphStore) -> None:
        """ScopeError when a DAG id, decision point or deployment is not in the graph."""
        rows = store.query(load("scope_dags"))
        dags = {r["dag_id"] for r in rows}
        tasks = {(r["dag_id"], r["task_id"]) for r in rows}
        for dag_id in sorted(self.dags - dags):
            known = ", ".join(sorted(dags)[:10]) or "none yet"
            raise ScopeError(f"unknown DAG id {dag_id!r} in the scope (DAGs in the graph: {known})")
        for dag_id, task_id in sorted(self.points - tasks):
            raise ScopeError(f"unknown decision point {dag_id}.{task_id} in the scope")
        if self.deployments:
            if "deployment" not in m.Decision.model_fields:
                raise ScopeError("deployment scopes need a graph that records deployments")
            known_deployments = {r["deployment"] for r in store.query(store.cypher("scope_deployments"))}
            for name in sorted(self.deployments - known_deployments):
                known = ", ".join(sorted(d for d in known_deployments if d)) or "none yet"
                raise ScopeError(
                    f"unknown deployment {name!r} in the scope (deployments in the graph: {known})"
                )


SourceOpener = Callable[[], contextlib.AbstractContextManager[GraphStore]]


class ScopedStore(EmbeddedStore):
    """A read-only GraphStore that holds only a scope's subgraph (see the module's docstring).

    `source`: the full store, or a callable opening it (a context manager) for stores opened per
    use. ScopeError (on first use) when the scope names something the graph does not have.
    """

    def __init__(
        self,
        source: GraphStore | SourceOpener,
        scope: Scope,
        *,
        check_seconds: float = 2.0,
        max_age_seconds: float = 60.0,
    ) -> None:
        super().__init__(Path(":memory:"))
        # The copy's search index lives in a private temporary folder (removed with the store),
        # never beside a file in the working directory.
        self._index_dir = tempfile.TemporaryDirectory(prefix="contextgraph-scope-")
        self.index = SidecarIndex(Path(self._index_dir.name) / "index")
        self.scope = scope
        self._open: SourceOpener = (
            (lambda: contextlib.nullcontext(source)) if isinstance(source, GraphStore) else source
        )
        self.check_seconds = check_seconds
        self.max_age_seconds = max_age_seconds
        self._fingerprint: Any = None
        self._built_at = 0.0
        self._checked_at = 0.0
        self._building = False
        self._refresh_lock = threading.RLock()
        self._schema_checked = True  # a copy of the source's current graph, never stamped
        self.builds = 0
        """How many times the copy was (re)built."""
        self._source_dialect: str | None = None  # the source's `scoped_dialect`, after the first refresh
        self._for_copy: Callable[[str], str] = str  # the source's `for_scoped_copy`

    @property
    def cypher_dialect(self) -> str:
        """What the agent's Cypher is read as: "scoped-neo4j" (Neo4j idioms translated to the
        copy's Ladybug, `store.translate`) or "embedded"."""
        if self._source_dialect is None:
            with contextlib.suppress(Exception):
                self.refresh()
        return self._source_dialect or "embedded"

    def dialect_note(self) -> str:
        """The Cypher tool's note for this view: the dialect of `cypher_dialect`."""
        from contextgraph.store.gate import dialect_note

        return dialect_note(self.cypher_dialect)

    # --- keeping the copy current ---------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> None:
        """Rebuild the copy if the source changed (or `force`)."""
        with self._refresh_lock:
            if self._building:
                return
            now = time.monotonic()
            fresh = self._conn is not None and now - self._built_at < self.max_age_seconds
            if fresh and not force and now - self._checked_at < self.check_seconds:
                return
            with self._open() as source:
                self._source_dialect, self._for_copy = source.scoped_dialect, source.for_scoped_copy
                fingerprint = _fingerprint(source)
                self._checked_at = now
                if fresh and not force and fingerprint == self._fingerprint:
                    return
                if self._fingerprint is None:
                    self.scope.check(source)
                self._building = True
                try:
                    self._rebuild(source)
                finally:
                    self._building = False
                self._fingerprint, self._built_at = fingerprint, time.monotonic()
                self.builds += 1

    def _rebuild(self, source: GraphStore) -> None:
        super().close()
        super().ensure_schema()
        nodes, edges = scoped_subgraph(source, self.scope)
        EmbeddedStore.write(self, m.GraphBatch(nodes=nodes, edges=edges))
        self._copy_embeddings(source, [n.key for n in nodes if isinstance(n, m.Decision)])
        for retired in supersede.retirements(source):  # the scope's retired lessons rank as in the source
            if self.scope.sees(retired.dag_id, retired.task_id):
                supersede.copy_retirement(self, retired)

    def _copy_embeddings(self, source: GraphStore, keys: list[str]) -> None:
        if not keys:
            return
        import numpy as np

        from contextgraph.ingest.embeddings import EmbeddingRow

        by_model: dict[str, list[EmbeddingRow]] = {}
        for row in source.query(source.cypher("scope_embeddings"), {"keys": keys}):
            if row["vector"] is None:
                continue
            vector = np.asarray(row["vector"], dtype=np.float32)
            by_model.setdefault(row["model"] or "", []).append(
                EmbeddingRow(row["key"], vector, row["text_hash"], row["content_hash"])
            )
        for model_name, rows in by_model.items():
            EmbeddedStore.write_embeddings(self, rows, model_name)

    # --- reads go to the copy -------------------------------------------------------------------

    def _read(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        self.refresh()
        return super()._read(cypher, params)

    def _ready_index(self) -> None:
        self.refresh()  # a search may be the first read: the copy must exist before its index
        super()._ready_index()

    def read_only_query(
        self, cypher: str, params: Mapping[str, Any], *, timeout: float, row_limit: int
    ) -> tuple[list[Row], bool]:
        """The embedded store's read-only gate (`store.gate`), run on the scoped copy only."""
        allow = gate.allow_list()
        self.refresh()
        cypher = self._for_copy(cypher)  # the agent writes the source's Cypher; the copy speaks Ladybug's
        gate.check_text(cypher, self.dialect, allow)
        with self._lock:
            return self._read_limited(
                self._connection(), cypher, params, timeout=timeout, row_limit=row_limit, allow=allow
            )

    def ensure_schema(self) -> None:
        """Nothing to do: the copy makes its own schema."""

    # --- writes are refused ---------------------------------------------------------------------

    def write(self, batch: m.GraphBatch) -> WriteResult:
        if self._building:
            return EmbeddedStore.write(self, batch)
        raise QueryRefusedError(f"tools scoped to {self.scope} are read-only")

    def write_embeddings(self, rows: Sequence[Any], model_name: str) -> int:
        raise QueryRefusedError(f"tools scoped to {self.scope} are read-only")

    def prepare_embeddings(self, dimensions: int) -> None:
        raise QueryRefusedError(f"tools scoped to {self.scope} are read-only")


def _fingerprint(source: GraphStore) -> tuple[Any, ...]:
    rows = source.query(load("scope_fingerprint"))
    try:
        audits = source.query(load("scope_audits"))[0]["n"]
    except QueryRefusedError:
        audits = 0  # the embedded store has no governance tables before the first forget
    row = rows[0] if rows else {}
    return (row.get("decisions"), row.get("informed"), str(row.get("synced")), audits)


# --- reading the scope's subgraph -----------------------------------------------------------------


def read_nodes(
    store: GraphStore, node_type: type[m.Node], where: str = "", params: Mapping[str, Any] | None = None
) -> list[Any]:
    """Stored nodes of one kind as models (JSON columns parsed back). `where`: a Cypher WHERE on `n`."""
    columns = NODE_COLUMNS[node_type]
    fields = ", ".join(f"n.`{identifier(c)}` AS `{c}`" for c in columns)
    cypher = f"MATCH (n:{identifier(node_type.label)}) {where} RETURN {fields}"
    nodes = []
    for row in store.query(cypher, dict(params or {})):
        record = {
            c: json.loads(v) if columns[c] == "JSON" and isinstance(v, str) else v
            for c, v in row.items()
            if v is not None
        }
        nodes.append(m.node_from_record(node_type.label, record))
    return nodes


def read_edges(store: GraphStore, edge_type: type[m.Edge]) -> Iterator[m.Edge]:
    props = "".join(f", r.`{identifier(c)}` AS `{c}`" for c in EDGE_COLUMNS[edge_type])
    cypher = (
        f"MATCH (a:{identifier(edge_type.source.label)})-[r:{identifier(edge_type.rel_type)}]->"
        f"(b:{identifier(edge_type.target.label)}) RETURN a.key AS src, b.key AS dst{props}"
    )
    for row in store.query(cypher):
        yield m.edge_from_record(edge_type.rel_type, {k: v for k, v in row.items() if v is not None})


_BY_DAG = (m.Dag, m.Task, m.DagRun, m.TaskInstance, m.Decision, m.Option, m.Proposal, m.DagVersion)


def scoped_subgraph(store: GraphStore, scope: Scope) -> tuple[list[m.Node], list[m.Edge]]:
    """The scope's nodes and the edges between them (see the module's docstring)."""
    dags = scope.visible_dags
    conditions, params = [], {}
    if dags is not None:
        conditions.append("n.dag_id IN $dags")
        params["dags"] = sorted(dags)
    if scope.deployments:  # another deployment's DAGs, runs and tasks are not copied either
        conditions.append("n.deployment IN $deployments")
        params["deployments"] = sorted(scope.deployments)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    nodes: dict[str, list[m.Node]] = {}
    for node_type in _BY_DAG:
        found = read_nodes(store, node_type, where, params)
        if node_type is m.Decision:
            found = [d for d in found if scope.sees(d.dag_id, d.task_id, getattr(d, "deployment", None))]
        elif node_type is m.Option:
            found = [o for o in found if scope.sees(o.dag_id, o.task_id)]
        nodes[node_type.label] = found
    decisions = {d.key for d in nodes["Decision"]}
    edges = {t: list(read_edges(store, t)) for t in (m.Reviewed, m.DecidedBy)}
    reviewed = {e.dst for e in edges[m.Reviewed] if e.src in decisions}
    nodes["Proposal"] = [p for p in nodes["Proposal"] if p.key in reviewed]
    deciders = {e.dst for e in edges[m.DecidedBy] if e.src in decisions}
    nodes["Actor"] = [a for a in read_nodes(store, m.Actor) if a.key in deciders]
    kept = {(n.label, n.key) for group in nodes.values() for n in group}
    out_edges: list[m.Edge] = []
    for edge_type in m.EDGE_TYPES:
        listed = edges.get(edge_type)
        for edge in listed if listed is not None else read_edges(store, edge_type):
            if (edge_type.source.label, edge.src) in kept and (edge_type.target.label, edge.dst) in kept:
                out_edges.append(edge)
    return [n for group in nodes.values() for n in group], out_edges
