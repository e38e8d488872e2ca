"""An MCP server (stdio) with the precedent tools, for Claude Desktop and any other MCP client.

    contextgraph mcp [--timeout 10] [--row-limit 1000]

Tools: `find_similar_decisions`, `find_lessons`, `get_decision_trace`, `read_cypher`, `graph_stats`
(read-only: `readOnlyHint`) and `record_precedents` (writes INFORMED_BY edges: not read-only, not destructive,
idempotent). The store comes from the settings (NEO4J_* or CONTEXTGRAPH_STORE_PATH), like every
other command. Neo4j is used through one driver; the embedded file is opened per call — read-only
for the read tools — and closed again, so an ingest can write it between calls (Ladybug lets one
process at a time open a file for writing). `read_cypher` refuses anything that could write
(Neo4j: EXPLAIN's query type; embedded: the plan's operators, on a read-only database), stops
queries at the timeout and caps rows and characters; refusals come back as tool errors.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel

from contextgraph.config import Settings
from contextgraph.errors import ContextGraphError
from contextgraph.governance.scope import Scope, ScopedStore
from contextgraph.ingest.embeddings import Embedder, embedder_from_settings
from contextgraph.store import GraphStore, dialect_note, open_store
from contextgraph.tools.agent import precedents_from_keys, record_shown
from contextgraph.tools.core import CYPHER_MAX_CHARS, CYPHER_ROW_LIMIT, CYPHER_TIMEOUT, PrecedentToolsBase

log = logging.getLogger(__name__)

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
RECORDS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

INSTRUCTIONS = (
    "contextgraph holds human-in-the-loop decisions from Apache Airflow: what an AI proposed, which "
    "option a human reviewer chose and why. Before acting on a case, call find_similar_decisions "
    "with the case in plain words and follow the reasons of the precedents; get_decision_trace shows "
    "one decision in full context; read_cypher answers other questions (read-only). After a decision "
    "was made with precedents shown, record_precedents links them (INFORMED_BY)."
)


class Recorded(BaseModel):
    """What record_precedents did."""

    decision_key: str
    precedents: int
    written: int


class GraphStats(BaseModel):
    """Node counts by label and relationship counts by type."""

    store: str
    nodes: dict[str, int]
    relationships: dict[str, int]


class PrecedentTools(PrecedentToolsBase):
    """The tools (contextgraph.tools.core) with `record_precedents` and `graph_stats`, over the
    settings' store (Neo4j: one driver; embedded: opened per call), the embedder loaded lazily."""

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = CYPHER_TIMEOUT,
        row_limit: int = CYPHER_ROW_LIMIT,
        max_chars: int = CYPHER_MAX_CHARS,
        scope: Scope | None = None,
    ) -> None:
        self.settings = settings
        self.airflow_url = settings.airflow.url
        self.scope = scope
        self._scoped: ScopedStore | None = None
        self.timeout = timeout
        self.row_limit = row_limit
        self.max_chars = max_chars
        self._shared: GraphStore | None = None  # a store that serves every call (a server's pool)
        self._embedder: Embedder | None = None
        self._embedder_tried = False
        self._lock = threading.Lock()  # one scoped view in use at a time
        self._embedded_lock = threading.RLock()  # one embedded database open at a time in this process

    @contextmanager
    def store(self, *, write: bool = False) -> Iterator[GraphStore]:
        if self.scope is not None and not write:  # governance: a scoped server reads its scope only
            if self._scoped is None:
                self._scoped = ScopedStore(self._full_store, self.scope)
            with self._lock:
                yield self._scoped
            return
        with self._full_store(write=write) as store:
            yield store

    @contextmanager
    def _full_store(self, *, write: bool = False) -> Iterator[GraphStore]:
        if self._shared is not None:
            yield self._shared
            return
        with self._embedded_lock:  # one store that locks its file open at a time in this process
            store = open_store(self.settings, mode="write" if write else "read")
            if store.shared:
                self._shared = store
                yield store
                return
            try:
                yield store
            finally:
                store.close()

    def embedder(self) -> Embedder | None:
        if not self._embedder_tried:
            self._embedder_tried = True
            try:
                self._embedder = embedder_from_settings(self.settings)
            except ContextGraphError as exc:
                log.warning("precedent search by words only: %s", exc)
        return self._embedder

    def check_scope(self) -> None:
        """ScopeError (one line) when the scope names a DAG or decision point the graph lacks."""
        if self.scope is not None:
            with self._full_store() as store:
                self.scope.check(store)

    def close(self) -> None:
        if self._scoped is not None:
            self._scoped.close()
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    # --- what the shared tools (contextgraph.tools.core) need --------------------------------------

    def tool_error(self, problem: object) -> Exception:
        return ToolError(str(problem))

    def read_cypher_description(self) -> str:
        """read_cypher's docstring (up to its Args) and which engine answers, with its dialect."""
        doc = inspect.getdoc(self.read_cypher) or ""
        summary = doc.split("\nArgs:")[0].strip()
        # a scoped server's Cypher runs on a Ladybug copy of its scope
        return f"{summary}\n\n{dialect_note(self.settings, scoped=self.scope is not None)}"

    def record_precedents(
        self, decision_key: str, precedent_keys: list[str], scores: list[float] | None = None
    ) -> Recorded:
        """Record which earlier decisions were shown as precedent when a decision was made, as
        INFORMED_BY edges (rank = position in the list). Idempotent: recording again changes nothing.

        Args:
            decision_key: The key of the decision that was made.
            precedent_keys: Keys of the precedents shown, best first.
            scores: Their scores from find_similar_decisions, in the same order (optional).
        """
        if self.scope is not None:
            with self.errors(), self.store() as view:
                known = {
                    r["key"]
                    for r in view.query(
                        view.cypher("decisions_known"), {"keys": [decision_key, *precedent_keys]}
                    )
                }
            outside = [k for k in [decision_key, *precedent_keys] if k not in known]
            if outside:
                raise ToolError(f"decision {outside[0]!r} is not in this server's scope ({self.scope})")
        shown = precedents_from_keys(precedent_keys)
        if scores:
            if len(scores) != len(precedent_keys):
                raise ToolError("scores must have one value per precedent key")
            shown = [p.model_copy(update={"score": s}) for p, s in zip(shown, scores, strict=True)]
        with self.errors(), self.store(write=True) as store:
            written = record_shown(store, decision_key, shown)
        return Recorded(decision_key=decision_key, precedents=len(shown), written=written)

    def graph_stats(self) -> GraphStats:
        """How many nodes of each label and relationships of each type the graph holds."""
        with self.errors(), self.store() as store:
            counts = store.stats()
            return GraphStats(
                store=store.dialect, nodes=counts["nodes"], relationships=counts["relationships"]
            )


def build_server(tools: PrecedentTools) -> MCPServer[Any]:
    """The MCP server with the precedent tools registered."""
    server: MCPServer[Any] = MCPServer("contextgraph", instructions=INSTRUCTIONS)
    server.tool(title="Similar past decisions", annotations=READ_ONLY)(tools.find_similar_decisions)
    server.tool(title="Lessons from past decisions", annotations=READ_ONLY)(tools.find_lessons)
    server.tool(title="One decision in context", annotations=READ_ONLY)(tools.get_decision_trace)
    server.tool(title="Read-only Cypher", annotations=READ_ONLY, description=tools.read_cypher_description())(
        tools.read_cypher
    )
    server.tool(title="Graph statistics", annotations=READ_ONLY)(tools.graph_stats)
    server.tool(title="Record precedents (INFORMED_BY)", annotations=RECORDS)(tools.record_precedents)
    return server


def serve(tools: PrecedentTools) -> None:
    """Serve the tools over stdio until the client closes the connection, then close them; with a
    scope, they see only that scope (ScopeError at once when it names something the graph lacks)."""
    tools.check_scope()
    try:
        build_server(tools).run("stdio")
    finally:
        tools.close()
