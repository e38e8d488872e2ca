"""The embedded store: Ladybug (the maintained fork of Kùzu) in a local file, no server.

Ladybug declares node and relationship tables up front, one label per node, so the schema is
generated from the models (`ddl()`); the write and read Cypher is the same as for Neo4j.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ladybug

from contextgraph.errors import QueryRefusedError, StoreError, StoreUnavailableError
from contextgraph.model import EDGE_TYPES, NODE_TYPES, Decision, Node
from contextgraph.store.base import EDGE_COLUMNS, NODE_COLUMNS, GraphStore, Row, to_plain

log = logging.getLogger(__name__)

_TYPES = {"JSON": "STRING"}
# Columns the models do not carry: written by precedent search, not by ingest.
_EXTRA_COLUMNS: dict[type[Node], dict[str, str]] = {
    Decision: {"embedding": "FLOAT[]", "embedding_model": "STRING"},
}


def ddl() -> list[str]:
    """CREATE … TABLE statements for every node and relationship kind."""
    out = []
    for node_type in NODE_TYPES:
        columns = {**NODE_COLUMNS[node_type], "content_hash": "STRING", **_EXTRA_COLUMNS.get(node_type, {})}
        body = ", ".join(f"`{name}` {_TYPES.get(t, t)}" for name, t in columns.items())
        out.append(f"CREATE NODE TABLE IF NOT EXISTS {node_type.label}(key STRING PRIMARY KEY, {body})")
    for edge_type in EDGE_TYPES:
        columns = {**EDGE_COLUMNS[edge_type], "content_hash": "STRING"}
        body = "".join(f", `{name}` {_TYPES.get(t, t)}" for name, t in columns.items())
        out.append(
            f"CREATE REL TABLE IF NOT EXISTS {edge_type.rel_type}"
            f"(FROM {edge_type.source.label} TO {edge_type.target.label}{body})"
        )
    return out


class EmbeddedStore(GraphStore):
    """A graph store in a Ladybug database file (the default when NEO4J_URI is not set)."""

    dialect = "embedded"

    def __init__(self, path: Path, *, batch_size: int = 1000, read_only: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.batch_size = batch_size
        self.read_only = read_only
        self._db: ladybug.Database | None = None
        self._conn: ladybug.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> ladybug.Connection:
        """Open the database on first use (never in the constructor)."""
        if self._conn is None:
            try:
                if not self.read_only:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = ladybug.Database(str(self.path), read_only=self.read_only)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the embedded store at {self.path} ({exc.strerror}): "
                    "set CONTEXTGRAPH_STORE_PATH to a writable file path"
                ) from None
            except RuntimeError as exc:
                raise _translate_open(self.path, exc) from None
            self._conn = ladybug.Connection(self._db)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._db is not None:
            self._db.close()
        self._conn = self._db = None

    def ensure_schema(self) -> None:
        for statement in ddl():
            self._execute(statement, {})

    def _read(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        return self._execute(cypher, params)

    def _write(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN TRANSACTION")
            try:
                rows = self._rows(conn.execute(cypher, dict(params)))
                conn.execute("COMMIT")
            except RuntimeError as exc:
                _rollback(conn)
                raise StoreError(f"the embedded store failed to write: {exc}") from None
        return rows

    def _adapt(self, rows: list[Row]) -> list[Row]:
        """Ladybug's TIMESTAMP has no zone: store UTC without it (reads add UTC back)."""
        return [
            {
                k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
                for k, v in r.items()
            }
            for r in rows
        ]

    def _value(self, column: str, type_: str) -> str:
        # Ladybug infers a parameter's type from its values (all-null reads as STRING): cast.
        return f"CAST(row.`{column}` AS {_TYPES.get(type_, type_)})"

    def _execute(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        """The one place that calls Ladybug."""
        try:
            with self._lock:
                return self._rows(self._connection().execute(cypher, dict(params)))
        except RuntimeError as exc:
            raise QueryRefusedError(f"the embedded store refused the query: {exc}") from None

    @staticmethod
    def _rows(result: Any) -> list[Row]:
        if isinstance(result, list):  # several statements: keep the last one's rows
            result = result[-1]
        names = result.get_column_names()
        rows = []
        while result.has_next():
            rows.append({n: to_plain(v) for n, v in zip(names, result.get_next(), strict=True)})
        return rows


def _rollback(conn: ladybug.Connection) -> None:
    with contextlib.suppress(RuntimeError):  # Ladybug may have rolled back the failed transaction itself
        conn.execute("ROLLBACK")


def _translate_open(path: Path, exc: RuntimeError) -> StoreError:
    text = str(exc)
    if "lock" in text.lower():
        return StoreUnavailableError(
            f"the embedded store {path} is open in another process: stop that process and try again"
        )
    return StoreError(f"cannot open the embedded store {path}: {text}")
