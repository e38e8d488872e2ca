"""The embedded store: Ladybug (the maintained fork of Kùzu) in a local file, no server.

Ladybug declares node and relationship tables up front, one label per node, so the schema is
generated from the models (`ddl()`); the write and read Cypher is the same as for Neo4j.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ladybug

from contextgraph.errors import QueryRefusedError, StoreError, StoreUnavailableError
from contextgraph.model import EDGE_TYPES, NODE_TYPES, Edge, GraphBatch, Node
from contextgraph.queries import load
from contextgraph.store.base import (
    EDGE_COLUMNS,
    NODE_COLUMNS,
    GraphStore,
    Row,
    ScalarType,
    WriteResult,
    to_plain,
)

log = logging.getLogger(__name__)

_TYPES = {"JSON": "STRING"}
# Columns the models do not carry: written by precedent search, not by ingest. (Files made before
# embeddings moved to their own table still have Decision.embedding/embedding_model; unused.)
_EXTRA_COLUMNS: dict[type[Node], dict[str, str]] = {}

# Embeddings live in a table of their own, keyed like the Decision: Ladybug writes float lists
# fast with COPY into a table (20k x 256 in ~2 s) but very slowly with SET on existing nodes (a
# commit of 20k such updates took 46-150 s), so re-embedding deletes and COPYs rows here.
EMBEDDING_TABLE = "DecisionEmbedding"
EMBEDDING_DDL = (
    f"CREATE NODE TABLE IF NOT EXISTS {EMBEDDING_TABLE}(key STRING PRIMARY KEY, embedding FLOAT[], "
    "embedding_model STRING, embedded_hash STRING, embedded_content_hash STRING)"
)

#: Ladybug's buffer pool (its page cache, most of the store's memory) unless told otherwise.
DEFAULT_BUFFER_POOL_MB = 512
#: Ladybug 0.22 keeps ~14-24 MB of buffer-pool memory per `COPY` until the database is closed
#: (measured: 50 COPYs of 500 rows filled a 128 MB pool, "buffer pool is full", while MERGE of the
#: same rows stayed flat). The store closes and reopens its database after COPYs worth this share
#: of the pool, which frees it (a reopen costs milliseconds).
_MB_PER_COPY = 24

# Plan operators (from EXPLAIN) that write or change the database; refused in read-only queries.
_WRITE_OPERATORS = re.compile(
    r"INSERT|MERGE|DELETE|SET_|CREATE|DROP|ALTER|COPY|EXTENSION|STANDALONE_CALL|TRANSACTION|EXPORT|"
    r"IMPORT|ATTACH|DETACH|USE_DATABASE|MACRO|PARTITIONER|CHECKPOINT"
)
# Table functions that read files from disk (LOAD FROM 'file'), refused too; READ_FTABLE is a scan.
_FILE_FUNCTIONS = re.compile(r"READ_(?!FTABLE)\w+")


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
    out.append(EMBEDDING_DDL)
    return out


class EmbeddedStore(GraphStore):
    """A graph store in a Ladybug database file (the default when NEO4J_URI is not set).

    `buffer_pool_mb` caps Ladybug's page cache (``CONTEXTGRAPH_BUFFER_POOL_MB``; Ladybug's own
    default is most of the machine's memory). With `bulk_copy`, nodes and edges that cannot exist
    yet (new keys, edges at a node the same write created) are written with ``COPY … FROM`` an
    Arrow table and only rows that may exist are MERGEd. Off by default: on Ladybug 0.22 a first
    ingest of 2,000 decisions took 33-41 s with it and 24 s with MERGE (each COPY into a
    non-empty table has a fixed cost, and Ladybug holds memory per COPY until reopened).
    """

    dialect = "embedded"

    def __init__(
        self,
        path: Path,
        *,
        batch_size: int = 1000,
        read_only: bool = False,
        buffer_pool_mb: int = DEFAULT_BUFFER_POOL_MB,
        bulk_copy: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.batch_size = batch_size
        self.read_only = read_only
        self.buffer_pool_mb = buffer_pool_mb
        self.bulk_copy = bulk_copy
        self._copies = 0  # COPY statements since the database was opened
        self._db: ladybug.Database | None = None
        self._conn: ladybug.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> ladybug.Connection:
        """Open the database on first use (never in the constructor)."""
        if self._conn is None:
            try:
                if not self.read_only:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = ladybug.Database(
                    str(self.path), read_only=self.read_only, buffer_pool_size=self.buffer_pool_mb << 20
                )
            except OSError as exc:
                raise StoreError(
                    f"cannot create the embedded store at {self.path} ({exc.strerror}): "
                    "set CONTEXTGRAPH_STORE_PATH to a writable file path"
                ) from None
            except RuntimeError as exc:
                raise _translate_open(self.path, exc) from None
            self._conn = ladybug.Connection(self._db)
        return self._conn

    def write(self, batch: GraphBatch) -> WriteResult:
        """Upsert the batch (see `GraphStore.write`); frees what COPYs held when they add up."""
        try:
            return super().write(batch)
        finally:
            self._recycle_if_due()

    def _recycle_if_due(self) -> None:
        if self._copies * _MB_PER_COPY >= self.buffer_pool_mb // 2:
            with self._lock:
                log.debug("reopening the embedded store after %d COPYs (frees their memory)", self._copies)
                self.close()

    def close(self) -> None:
        self._copies = 0
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

    def _upsert_nodes(self, node_type: type[Node], new: list[Row], changed: list[Row]) -> None:
        """New nodes by COPY from an Arrow table (Ladybug's bulk path; MERGE is row by row),
        changed ones by MERGE, both in one transaction (with `bulk_copy`; else MERGE both)."""
        if not self.bulk_copy:
            return super()._upsert_nodes(node_type, new, changed)
        steps: list[tuple[str, Mapping[str, Any]]] = []
        if new:
            columns = {"key": "STRING", **NODE_COLUMNS[node_type], "content_hash": "STRING"}
            names = ", ".join(f"`{c}`" for c in columns)
            steps.append((f"COPY {node_type.label}({names}) FROM $rows", {"rows": _arrow(new, columns)}))
        if changed:
            steps.append((self._node_merge(node_type), {"rows": self._adapt(changed)}))
        self._transaction(steps)

    def _create_edges(self, edge_type: type[Edge], rows: Sequence[Row]) -> int:
        """COPY from an Arrow table; edges whose other end is missing are skipped and not counted
        (with `bulk_copy`; else MATCH both ends and CREATE)."""
        if not self.bulk_copy:
            return super()._create_edges(edge_type, rows)
        columns = {**EDGE_COLUMNS[edge_type], "content_hash": "STRING"}
        table = _arrow(rows, {"src": "STRING", "dst": "STRING", **columns})
        table = table.rename_columns(["from", "to", *columns])
        copy = f"COPY {edge_type.rel_type} FROM $rows (IGNORE_ERRORS=true)"
        out = self._transaction([(copy, {"rows": table})])
        message = str(out[0][0]) if out and out[0] else ""
        copied = re.match(r"(\d+) tuples", message)
        return int(copied.group(1)) if copied else len(rows)

    def _value(self, column: str, type_: str) -> str:
        # Ladybug infers a parameter's type from its values (all-null reads as STRING): cast.
        return f"CAST(row.`{column}` AS {_TYPES.get(type_, type_)})"

    # --- precedent search ------------------------------------------------------------------------

    def prepare_embeddings(self, dimensions: int) -> None:
        """Embeddings have their own table (FLOAT[], any width): make sure it exists."""
        self._execute(EMBEDDING_DDL, {})

    def write_embeddings(self, rows: Sequence[Any], model_name: str) -> int:
        """Replace the rows' embeddings: delete the old ones and COPY the new ones from an Arrow
        table, in one transaction; rows without a vector only get their text marked current."""
        import numpy as np
        import pyarrow as pa

        with_vectors = [r for r in rows if r.vector is not None]
        marks = [
            {"key": r.key, "text_hash": r.text_hash, "content_hash": r.content_hash}
            for r in rows
            if r.vector is None
        ]
        if with_vectors:
            matrix = np.ascontiguousarray(np.stack([r.vector for r in with_vectors]), dtype=np.float32)
            count, width = matrix.shape
            offsets = pa.array(np.arange(0, (count + 1) * width, width, dtype=np.int32))
            table = pa.table(
                {
                    "key": pa.array([r.key for r in with_vectors], pa.string()),
                    "embedding": pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel())),
                    "embedding_model": pa.array([model_name] * count, pa.string()),
                    "embedded_hash": pa.array([r.text_hash for r in with_vectors], pa.string()),
                    "embedded_content_hash": pa.array([r.content_hash for r in with_vectors], pa.string()),
                }
            )
            keys = [r.key for r in with_vectors]
            self._transaction(
                [
                    (load("embedding_delete", self.dialect), {"keys": keys}),
                    (f"COPY {EMBEDDING_TABLE} FROM $vectors", {"vectors": table}),
                ]
            )
        if marks:
            self._write(load("embedding_mark", self.dialect), {"rows": marks})
        self._recycle_if_due()
        return len(with_vectors)

    def _transaction(self, steps: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Any]:
        """Run the statements in one transaction; the first row of the last one's result."""
        first: list[Any] = []
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN TRANSACTION")
            try:
                for cypher, params in steps:
                    self._copies += cypher.startswith("COPY")
                    result = conn.execute(cypher, dict(params))
                    if isinstance(result, list):
                        result = result[-1]
                    first = [result.get_next()] if result.has_next() else []
                conn.execute("COMMIT")
            except RuntimeError as exc:
                _rollback(conn)
                raise StoreError(f"the embedded store failed to write: {exc}") from None
        return first

    def read_only_query(
        self, cypher: str, params: Mapping[str, Any], *, timeout: float, row_limit: int
    ) -> tuple[list[Row], bool]:
        """Refuse what EXPLAIN shows would write (or read files), then run the query on a separate
        read-only Ladybug database of the same file, so that nothing can write even if the check
        missed something; a query timeout and the row limit apply."""
        self._connection()  # the file exists and is consistent before it is opened read-only
        with self._lock:
            try:
                database = ladybug.Database(
                    str(self.path), read_only=True, buffer_pool_size=self.buffer_pool_mb << 20
                )
            except RuntimeError as exc:
                raise _translate_open(self.path, exc) from None
            try:
                conn = ladybug.Connection(database)
                try:
                    return self._read_limited(conn, cypher, params, timeout=timeout, row_limit=row_limit)
                finally:
                    conn.close()
            finally:
                database.close()

    def _read_limited(
        self,
        conn: ladybug.Connection,
        cypher: str,
        params: Mapping[str, Any],
        *,
        timeout: float,
        row_limit: int,
    ) -> tuple[list[Row], bool]:
        try:
            plan = conn.execute("EXPLAIN " + cypher, dict(params))
        except RuntimeError as exc:
            if "read-only" in str(exc):
                raise QueryRefusedError("only read queries may run here; this one would write") from None
            raise QueryRefusedError(f"the embedded store refused the query: {exc}") from None
        if isinstance(plan, list):
            raise QueryRefusedError("only one statement may run here; remove the `;`-separated others")
        first: Any = plan.get_next() if plan.has_next() else [""]
        text = str(first[0])
        operators = re.findall(r"([A-Z][A-Z_]+)\[\d+\]", text)
        writes = [op for op in operators if _WRITE_OPERATORS.search(op)]
        if writes:
            raise QueryRefusedError(f"only read queries may run here; this one would run {writes[0]}")
        files = _FILE_FUNCTIONS.findall(" ".join(re.findall(r"Function: (\w+)", text)))
        if files:
            raise QueryRefusedError(f"queries here may not read files from disk ({files[0]})")
        conn.set_query_timeout(max(1, int(timeout * 1000)))
        try:
            result = conn.execute(cypher, dict(params))
            if isinstance(result, list):  # pragma: no cover - refused above
                raise QueryRefusedError("only one statement may run here")
            names = result.get_column_names()
            rows: list[Row] = []
            cut = False
            while result.has_next():
                if len(rows) >= row_limit:
                    cut = True
                    break
                rows.append({n: to_plain(v) for n, v in zip(names, result.get_next(), strict=True)})
            result.close()
        except RuntimeError as exc:
            if "interrupt" in str(exc).lower() or "timeout" in str(exc).lower():
                raise QueryRefusedError(
                    f"the query ran longer than {timeout:g} s and was stopped: narrow it or add a LIMIT"
                ) from None
            raise QueryRefusedError(f"the embedded store refused the query: {exc}") from None
        return rows, cut

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


def _arrow(rows: Sequence[Row], columns: Mapping[str, ScalarType]) -> Any:
    """Rows as an Arrow table with one typed column per entry of `columns` (missing → null);
    datetimes as naive UTC (Ladybug's TIMESTAMP has no zone), JSON as its text."""
    import pyarrow as pa

    kinds = {
        "INT64": pa.int64(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "TIMESTAMP": pa.timestamp("us"),
        "STRING[]": pa.list_(pa.string()),
    }
    arrays = {}
    for column, type_ in columns.items():
        values = [r.get(column) for r in rows]
        if type_ == "TIMESTAMP":
            values = [_naive_utc(v) for v in values]
        arrays[column] = pa.array(values, kinds.get(type_, pa.string()))
    return pa.table(arrays)


def _naive_utc(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


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
