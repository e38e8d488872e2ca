"""Graph stores: Neo4j when NEO4J_URI is set, else the embedded Ladybug file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from contextgraph.config import Settings
from contextgraph.errors import ContextGraphError, StoreUnavailableError
from contextgraph.store.base import GraphStore, WriteResult
from contextgraph.store.embedded import EmbeddedStore
from contextgraph.store.neo4j import Neo4jStore

__all__ = ["EmbeddedStore", "GraphStore", "Neo4jStore", "WriteResult", "dialect_note", "open_store"]


def open_store(settings: Settings, mode: Literal["write", "read"] = "write") -> GraphStore:
    """The store the settings point at: Neo4j when `settings.neo4j.uri` is set, else the embedded file.

    mode="write" (ingest, the CLI): connects lazily and may create the embedded file; call
    `ensure_schema()` to set it up. mode="read" (agent tools, MCP): never creates a store; Neo4j is
    checked at once (StoreUnavailableError / StoreAuthError) and the embedded file, which must
    exist (else StoreUnavailableError), is opened read-only so an ingest may write it at other times.
    """
    if settings.neo4j.uri:
        neo4j = Neo4jStore.connect(settings.neo4j, batch_size=settings.batch_size)
        if mode == "read":
            try:
                neo4j.verify()
            except ContextGraphError:
                neo4j.close()
                raise
        return neo4j
    if mode == "read":
        path = Path(settings.store_path).expanduser()
        if not path.exists():
            raise StoreUnavailableError(
                f"no graph at {path} yet: run `contextgraph ingest` (or `contextgraph demo`), "
                "or set CONTEXTGRAPH_STORE_PATH / NEO4J_URI"
            )
        return EmbeddedStore(
            path, batch_size=settings.batch_size, read_only=True, ann_threshold=settings.ann_threshold
        )
    return EmbeddedStore(
        settings.store_path,
        batch_size=settings.batch_size,
        buffer_pool_mb=settings.buffer_pool_mb,
        ann_threshold=settings.ann_threshold,
    )


def dialect_note(settings: Settings, *, scoped: bool = False) -> str:
    """The Cypher tool's note on the engine these settings open (without opening it). `scoped`: the
    agent's Cypher runs on a Ladybug copy of its scope (`contextgraph.governance.scope`), Neo4j idioms
    translated."""
    from contextgraph.store import gate

    if scoped:
        return gate.dialect_note("scoped-neo4j" if settings.neo4j.uri else EmbeddedStore.dialect)
    return gate.dialect_note(Neo4jStore.dialect if settings.neo4j.uri else EmbeddedStore.dialect)
