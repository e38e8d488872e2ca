"""Graph stores: Neo4j when NEO4J_URI is set, else the embedded Ladybug file."""

from __future__ import annotations

from contextgraph.config import Settings
from contextgraph.store.base import GraphStore, WriteResult
from contextgraph.store.embedded import EmbeddedStore
from contextgraph.store.neo4j import Neo4jStore

__all__ = ["EmbeddedStore", "GraphStore", "Neo4jStore", "WriteResult", "open_store"]


def open_store(settings: Settings) -> GraphStore:
    """The store the settings point at; connects lazily (call `ensure_schema()` to set it up)."""
    if settings.neo4j.uri:
        return Neo4jStore.connect(settings.neo4j, batch_size=settings.batch_size)
    return EmbeddedStore(
        settings.store_path, batch_size=settings.batch_size, buffer_pool_mb=settings.buffer_pool_mb
    )
