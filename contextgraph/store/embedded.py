"""The embedded store: Ladybug (the maintained fork of Kùzu) in a local file, no server.

Ladybug declares node and relationship tables up front, one label per node, so the schema is
generated from the models (`ddl()`); the write and read Cypher is the same as for Neo4j.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ladybug

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: Ladybug's own lock is all there is
    fcntl = None  # type: ignore[assignment]

from contextgraph.errors import (
    EmbeddingError,
    QueryMemoryError,
    QueryNotAllowedError,
    QueryRefusedError,
    QueryTimeoutError,
    StoreConfigError,
    StoreError,
    StoreUnavailableError,
)
from contextgraph.model import EDGE_TYPES, NODE_TYPES, Edge, GraphBatch, Node
from contextgraph.store import gate, sandbox
from contextgraph.store.base import (
    ATOMIC_ROWS,
    EDGE_COLUMNS,
    NODE_COLUMNS,
    CandidateFilter,
    GraphStore,
    Row,
    ScalarType,
    WriteResult,
    _edge_names,
    _template,
    to_plain,
)
from contextgraph.store.queries import load
from contextgraph.store.sidecar import IndexRows, SidecarIndex, give_back_freed_memory

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


def _missing_columns(store: EmbeddedStore) -> list[str]:
    """ALTER TABLE … ADD statements for model columns a table of an older file does not have."""
    wanted: list[tuple[str, dict[str, str]]] = [
        (t.label, {**NODE_COLUMNS[t], "content_hash": "STRING"}) for t in NODE_TYPES
    ] + [(t.rel_type, {**EDGE_COLUMNS[t], "content_hash": "STRING"}) for t in EDGE_TYPES]
    statements = []
    for table, columns in wanted:
        have = {row["name"] for row in store._execute(f"CALL table_info('{table}') RETURN name", {})}
        statements += [
            f"ALTER TABLE {table} ADD IF NOT EXISTS `{name}` {_TYPES.get(type_, type_)}"
            for name, type_ in columns.items()
            if name not in have
        ]
    return statements


INDEX_PAGE = 1_000
"""Decisions read per query when the index beside the file is brought up to date."""
INDEX_POOL_MB = 128
"""The buffer pool (MB, at most the configured one) the database is reopened with while the index's
rows are read: a pool fills up to its size whatever it is given, and a read of every decision
would fill the default one. At 100k, all pages took 4.3 s with 128 MB and pages of 1,000, 2.7 s
with 256 MB and pages of 2,000 (127 MB more RSS); pages of 10,000 did not fit in 128 MB. A page
that does not fit is read again, and the rest too, with the configured pool."""
#: Ladybug's buffer pool (its page cache, most of the store's memory) unless told otherwise.
DEFAULT_BUFFER_POOL_MB = 512
QUERY_MEMORY_MB = 1024
"""What an agent's query may take beyond the buffer pool (MB) before its worker is stopped
(`store.sandbox`): Ladybug keeps lists and strings outside the pool."""
#: Ladybug 0.22 keeps ~14-24 MB of buffer-pool memory per `COPY` until the database is closed
#: (measured: 50 COPYs of 500 rows filled a 128 MB pool, "buffer pool is full", while MERGE of the
#: same rows stayed flat). The store closes and reopens its database after COPYs worth this share
#: of the pool, which frees it (a reopen costs milliseconds).
_MB_PER_COPY = 24
#: Writes after which the store reopens its database anyway: Ladybug keeps what a write and its
#: checkpoint took from the pool until it closes (a 20k-decision sync: peak RSS 746 MB without,
#: 632 MB reopening every 20 writes; 100k: 1,086 -> 922 MB).
_WRITES_PER_OPEN = 20


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
        ann_threshold: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.batch_size = batch_size
        self.read_only = read_only
        self.buffer_pool_mb = buffer_pool_mb
        self.bulk_copy = bulk_copy
        self._copies = 0  # COPY statements since the database was opened
        self._writes = 0  # writes since the database was opened
        self._pool_mb: int | None = None  # a smaller pool for the time of an index read
        self._db: ladybug.Database | None = None
        self._conn: ladybug.Connection | None = None
        self._lock = threading.RLock()  # held by `write` across its statements
        self._in_write = False  # a `write`'s transaction is open: statements run inside it
        self._file_lock: str | None = None
        self.index = SidecarIndex(self.path.with_name(self.path.name + ".index"), ann_threshold=ann_threshold)
        self._sandbox = sandbox.LadybugSandbox(memory_mb=buffer_pool_mb + QUERY_MEMORY_MB)

    def _connection(self) -> ladybug.Connection:
        """Open the database on first use (never in the constructor).

        Raises StoreUnavailableError when another process has the file open in a way that
        conflicts (any other opener for read-write, a writer for read-only), naming its mode.
        """
        if self._conn is None:
            try:
                if not self.read_only:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_file()
                pool_mb = self._pool_mb or self.buffer_pool_mb
                self._db = ladybug.Database(
                    str(self.path), read_only=self.read_only, buffer_pool_size=pool_mb << 20
                )
            except OSError as exc:
                raise StoreConfigError(
                    f"cannot create the embedded store at {self.path} ({exc.strerror}): "
                    "set CONTEXTGRAPH_STORE_PATH to a writable file path"
                ) from None
            except RuntimeError as exc:
                self._unlock_file()
                raise _translate_open(self.path, exc) from None
            self._conn = ladybug.Connection(self._db)
        return self._conn

    def _lock_file(self) -> None:
        """Take `<store>.lock`: shared for read-only, exclusive for read-write, without waiting.

        Ladybug lets a read-write open through while another process reads the file (and a
        read-only open while another writes), so contextgraph processes agree through this lock.
        Stores of one process share it (Ladybug handles opens within a process itself).
        """
        if fcntl is None or self._file_lock is not None or str(self.path) == ":memory:":
            return  # an in-memory database has no file to share
        lock_path = self.path.with_name(self.path.name + ".lock")
        ident = str(lock_path.resolve())
        with _HELD_LOCK:
            held = _HELD.get(ident)
            if held is not None:
                held[1] += 1
                self._file_lock = ident
                return
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                if not self.read_only:
                    raise
                return  # a read-only place: nobody can write there either
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.read_only else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                mode = "read-only" if _can_share(lock_path) else "read-write"
                os.close(fd)
                raise StoreUnavailableError(
                    f"the store {self.path} is in use by another process (open {mode}): "
                    "stop that process or wait until it is done, and try again"
                ) from None
            _HELD[ident] = [fd, 1]
            self._file_lock = ident

    def _unlock_file(self) -> None:
        if self._file_lock is None:
            return
        with _HELD_LOCK:
            held = _HELD[self._file_lock]
            held[1] -= 1
            if held[1] == 0:
                os.close(held[0])  # closing the descriptor releases the lock
                del _HELD[self._file_lock]
        self._file_lock = None

    def write(self, batch: GraphBatch) -> WriteResult:
        """Upsert the batch (see `GraphStore.write`) in one transaction (up to `ATOMIC_ROWS` nodes
        and edges; a larger one commits statement by statement): one commit per sync page instead
        of one per statement, and a failed write leaves none of it. Frees what writes held from
        the buffer pool every `_WRITES_PER_OPEN` writes, and what COPYs held when they add up.
        Raises StoreError (or what `GraphStore.write` raises)."""
        try:
            if len(batch) > ATOMIC_ROWS:
                return super().write(batch)
            with self._writing():
                return super().write(batch)
        finally:
            self._recycle_if_due()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[ladybug.Connection]:
        """The connection inside a write transaction: `write`'s when one is open, else a new one,
        committed on leaving and rolled back on an error (Ladybug's raised as StoreError)."""
        with self._lock:
            conn = self._connection()
            if self._in_write:
                yield conn
                return
            conn.execute("BEGIN TRANSACTION")
            self._in_write = True
            try:
                yield conn
                conn.execute("COMMIT")
            except RuntimeError as exc:
                _rollback(conn)
                raise StoreError(f"the embedded store failed to write: {exc}{self._pool_hint(exc)}") from None
            except BaseException:
                _rollback(conn)
                raise
            finally:
                self._in_write = False

    def _pool_hint(self, exc: Exception) -> str:
        """What to do about Ladybug's "buffer pool is full" (else nothing)."""
        if "buffer pool is full" not in str(exc).lower():
            return ""
        pool_mb = self._pool_mb or self.buffer_pool_mb
        return f" (the buffer pool is {pool_mb} MB: raise CONTEXTGRAPH_BUFFER_POOL_MB)"

    def _recycle_if_due(self) -> None:
        self._writes += 1
        if self._writes >= _WRITES_PER_OPEN or self._copies * _MB_PER_COPY >= self.buffer_pool_mb // 2:
            with self._lock:
                log.debug(
                    "reopening the embedded store after %d writes, %d COPYs (frees their memory)",
                    self._writes,
                    self._copies,
                )
                self._release_pool()

    def close(self) -> None:
        """Close the database (a later use reopens it) and give the memory it freed back."""
        self._sandbox.close()
        opened = self._close_database()
        self._unlock_file()
        if opened:
            give_back_freed_memory()

    def _close_database(self) -> bool:
        """Close the connection and database (False: none was open)."""
        self._copies = self._writes = 0
        opened = self._db is not None
        if self._conn is not None:
            self._conn.close()
        if self._db is not None:
            self._db.close()
        self._conn = self._db = None
        return opened

    @property
    def location(self) -> str:
        return str(self.path)

    def prepare_read(self) -> None:
        """Its tables must exist before anything can be read: create them (a read-only file is
        read as it is)."""
        if not self.read_only:
            self.ensure_schema()

    def lacks_table(self, label: str) -> bool:
        return not any(r["name"] == label for r in self.query("CALL show_tables() RETURN name"))

    def missing_schema(self, error: Exception) -> bool:
        return isinstance(error, QueryRefusedError | StoreError)  # Ladybug: no such table yet

    def decisions_needing_embedding(self, model_name: str, limit: int = 1000) -> list[Row]:
        """See `GraphStore.decisions_needing_embedding`. The pending keys come from two narrow reads
        (decisions' content hashes, embeddings' model and hash) compared here, then up to `limit`
        of them are read by key: one pattern joining both tables filled a 512 MB buffer pool at
        ~86k decisions, and read them all again for each batch."""
        made = {r["key"]: r for r in self._read(load("embedding_state", self.dialect), {})}
        pending: list[str] = []
        for row in self._read(load("decision_hashes", self.dialect), {}):
            e, current = made.get(row["key"]), row["content_hash"]
            if (
                e is None
                or e["model"] != model_name
                or e["content_hash"] is None
                or (current is not None and e["content_hash"] != current)
            ):
                pending.append(row["key"])
                if len(pending) == limit:
                    break
        if not pending:
            return []
        return self._read(load("embedding_pending", self.dialect), {"keys": pending})

    def delete_embeddings(self, keys: Sequence[str]) -> None:
        if keys:
            self._write(load("embedding_delete", self.dialect), {"keys": list(keys)})

    def ensure_schema(self) -> None:
        """Create the tables, and add the columns a file made by an earlier version lacks."""
        for statement in ddl():
            self._execute(statement, {})
        for statement in _missing_columns(self):
            self._execute(statement, {})

    def _read(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        return self._execute(cypher, params)

    def _write(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        self._index_stale = True
        with self._writing() as conn:
            return self._rows(conn.execute(cypher, dict(params)))

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

    def _edge_hashes(self, edge_type: type[Edge], rows: Sequence[Row]) -> dict[tuple[str, str], str]:
        """Ladybug: one lookup per distinct key at the end of `rows` with more distinct keys (the
        source on a tie), whose nodes have few relationships of the type (a task instance has one
        task; a task has a run's worth of instances); the rows outside `rows` are dropped. At 100k
        decisions, 1,000 pairs take 51-143 ms and a fixed amount of memory; the default, one
        statement over all pairs, took 0.35-2 s and a 512 MB buffer pool did not hold it."""
        wanted = {(r["src"], r["dst"]) for r in rows}
        sources, targets = {r["src"] for r in rows}, {r["dst"] for r in rows}
        end, keys = ("b", targets) if len(targets) > len(sources) else ("a", sources)
        lookup = _template("existing_edge_hashes", self.dialect, **_edge_names(edge_type), end=end)
        return {
            (r["src"], r["dst"]): r["hash"]
            for key in sorted(keys)
            for r in self._execute(lookup, {"key": key})
            if (r["src"], r["dst"]) in wanted
        }

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
            self._index_stale = True
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

    def refresh_indexes(self, *, force: bool = False) -> dict[str, Any]:
        """Bring the BM25 and vector index beside the store file (`<store>.index/`) up to date with
        the answered decisions and their embeddings (of the most common model): BM25 is rebuilt when
        a text changed, the HNSW graph (from `ann_threshold` decisions on) gets only what changed
        added and removed (`SidecarIndex.build`). Without `force`, an index that exists is only
        brought up to date when answered decisions were written since its last save."""
        return self._refresh(force=force, rebuild=False)

    def rebuild_indexes(self) -> dict[str, Any]:
        """Rebuild the index beside the store file from scratch, the HNSW graph too."""
        return self._refresh(force=True, rebuild=True)

    def _refresh(self, *, force: bool, rebuild: bool) -> dict[str, Any]:
        if not force and self.index.exists() and not self._index_stale:
            return self.index.info()
        began = time.perf_counter()
        keys, model, state = self._index_state()
        if not rebuild and self.index.current(state) is not None:
            self._index_stale = False
            log.info(
                "the search index %s is current (%.1f s)", self.index.folder, time.perf_counter() - began
            )
            return self.index.info()
        rows = self._index_rows(keys, model, state)  # leaves the database closed: no pool while building
        del keys
        read = time.perf_counter() - began
        report = self.index.build(rows, rebuild=rebuild)
        del rows
        give_back_freed_memory()  # the rows, tokens and graph work: before the next phase
        self._index_stale = False
        log.info(
            "saved the search index %s: %d decisions, graph %s%s (+%d/-%d), %.1f s read, %.1f s BM25, "
            "%.1f s graph",
            self.index.folder,
            report.decisions,
            report.ann,
            f" ({report.reason})" if report.reason else "",
            report.added,
            report.removed,
            read,
            report.bm25_seconds,
            report.ann_seconds,
        )
        return self.index.info()

    def _index_state(self) -> tuple[list[str], str | None, str]:
        """What the index beside the file is a function of, from three narrow reads: the answered
        decisions' keys (sorted), their embeddings' most common model (None without embeddings),
        and a digest of each decision's content hash, its embedding's model and hashes, and the
        content hashes of the proposals it reviewed (the store's `state` of `SidecarIndex.current`)."""
        import hashlib
        from collections import Counter

        decisions = self._arrow(load("index_state", self.dialect)).to_pydict()
        embeddings = self._arrow(load("embedding_state", self.dialect)).to_pydict()
        proposals = self._arrow(load("index_proposals", self.dialect)).to_pydict()
        hashes = dict(zip(decisions["key"], decisions["content_hash"], strict=True))
        made = {
            key: tuple(made_of)
            for key, *made_of in zip(
                *(embeddings[c] for c in ("key", "model", "text_hash", "content_hash")), strict=True
            )
            if key in hashes
        }
        reviewed: dict[str, list[str]] = {}
        for key, content in zip(proposals["key"], proposals["content_hash"], strict=True):
            reviewed.setdefault(key, []).append(str(content))
        del decisions, embeddings, proposals
        models = Counter(m for m, _, _ in made.values() if m is not None)
        model = max(models.items(), key=lambda c: (c[1], c[0]))[0] if models else None
        digest = hashlib.sha256(f"{self.index.ann_threshold}\n".encode())
        keys = sorted(hashes)
        for key in keys:
            parts = [key, hashes[key], *made.get(key, ()), "|", *sorted(reviewed.get(key, ()))]
            digest.update("\0".join("" if p is None else p for p in parts).encode("utf-8") + b"\1")
        return keys, model, digest.hexdigest()

    def _index_rows(self, keys: Sequence[str], model: str | None, state: str) -> IndexRows:
        """The index rows of these answered decisions, read by key `INDEX_PAGE` at a time
        (`index_rows`, and `index_vectors` for their embeddings), on a database reopened with a
        buffer pool of `INDEX_POOL_MB`; each page's texts are tokenised and its embeddings (of
        `model`) copied into the one matrix before the next is read."""
        from contextgraph.ingest.embeddings import decision_text
        from contextgraph.store.sidecar import Corpus

        out = IndexRows(
            keys=[], texts=[], dag_ids=[], task_ids=[], chosen=[], answered_at=[], vectors=None,
            model=model, corpus=Corpus(), state=state,
        )  # fmt: skip
        assert out.corpus is not None
        vectors = _Vectors(len(keys), model)
        self._release_pool()
        self._pool_mb = min(self.buffer_pool_mb, INDEX_POOL_MB)
        try:
            for start in range(0, len(keys), INDEX_PAGE):
                page = {"keys": list(keys[start : start + INDEX_PAGE])}
                columns = self._index_page("index_rows", page).to_pydict()
                if model is not None:
                    row = {key: len(out.keys) + i for i, key in enumerate(columns["key"])}
                    embedded = self._index_page("index_vectors", page)
                    at = [row.get(key, -1) for key in embedded.column("key").to_pylist()]
                    vectors.add(at, embedded.column("embedding"), embedded.column("model"))
                    del embedded
                out.keys.extend(columns["key"])
                out.dag_ids.extend(columns["dag_id"])
                out.task_ids.extend(columns["task_id"])
                out.chosen.extend(c or [] for c in columns["chosen"])
                out.answered_at.extend(
                    (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() if t is not None else 0.0
                    for t in columns["answered_at"]
                )
                situation = ("subject", "body", "proposals", "text")
                texts = [
                    decision_text(dict(zip(situation, values, strict=True)))
                    for values in zip(*(columns[c] for c in situation), strict=True)
                ]
                out.corpus.add(columns["key"], texts)
        finally:
            self._release_pool()
            self._pool_mb = None
        matrix = vectors.matrix(len(out.keys))
        return dataclasses.replace(out, vectors=matrix, model=model if matrix is not None else None)

    def _index_page(self, name: str, params: Mapping[str, Any]) -> Any:
        """One page of the index's rows (query `name`) as Arrow; when it does not fit the smaller
        pool of an index read, again with the configured one (kept for the rest of the read)."""
        try:
            return self._arrow(load(name, self.dialect), params)
        except StoreError as exc:
            if self._pool_mb is None or "buffer pool is full" not in str(exc):
                raise
            log.info(
                "a page of the index did not fit a %d MB buffer pool: reading on with %d MB",
                self._pool_mb,
                self.buffer_pool_mb,
            )
            self._release_pool()
            self._pool_mb = None
            return self._arrow(load(name, self.dialect), params)

    def _release_pool(self) -> None:
        """Close the database (it reopens on next use), keeping the file lock: frees the buffer
        pool's pages and what COPYs held. An in-memory database is kept (closing would lose it)."""
        if str(self.path) == ":memory:":
            return
        with self._lock:
            opened = self._close_database()
        if opened:
            give_back_freed_memory()

    _index_stale = False

    def _ready_index(self) -> None:
        if not self.index.exists():
            self.refresh_indexes(force=True)

    def vector_candidates(
        self, vector: Sequence[float], model: str, k: int, filters: CandidateFilter
    ) -> list[tuple[str, float]]:
        self._ready_index()
        info = self.index.info()
        if info.get("model") == model and info.get("dimensions") not in (None, len(vector)):
            raise EmbeddingError(
                f"the store's embeddings have {info['dimensions']} dimensions, the model {model!r} makes "
                f"{len(vector)}: run `contextgraph embed` to re-embed with it"
            )
        return self.index.vector_candidates(vector, model, k, filters)

    def text_candidates(
        self, words: Sequence[str], k: int, filters: CandidateFilter
    ) -> list[tuple[str, float]]:
        self._ready_index()
        return self.index.text_candidates(words, k, filters)

    def decision_vectors(self, keys: Sequence[str], model: str) -> dict[str, Any]:
        self._ready_index()
        return self.index.vectors_of(keys, model)

    def embedding_models(self) -> dict[str, int]:
        rows = self._read(load("embedding_models", self.dialect), {})
        return {r["model"]: int(r["n"]) for r in rows if r["model"]}

    def _arrow(self, cypher: str, params: Mapping[str, Any] | None = None) -> Any:
        try:
            with self._lock:
                result = self._connection().execute(cypher, dict(params or {}))
                if isinstance(result, list):
                    result = result[-1]
                return result.get_as_arrow()
        except RuntimeError as exc:
            raise StoreError(f"the embedded store failed to read the decisions to index: {exc}") from None

    def _transaction(self, steps: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Any]:
        """Run the statements in one transaction; the first row of the last one's result."""
        first: list[Any] = []
        with self._writing() as conn:
            for cypher, params in steps:
                self._copies += cypher.startswith("COPY")
                result = conn.execute(cypher, dict(params))
                if isinstance(result, list):
                    result = result[-1]
                first = [result.get_next()] if result.has_next() else []
        return first

    def read_only_query(
        self, cypher: str, params: Mapping[str, Any], *, timeout: float, row_limit: int
    ) -> tuple[list[Row], bool]:
        """Run an agent's query only if the read-only gate (`store.gate`) lets it through: every
        operator of EXPLAIN's plan must be a read operator of the allow-list and every table
        function an allowed one. It runs on a separate read-only Ladybug database of the same file,
        so that nothing can write even if the check missed something, in a worker process
        (`store.sandbox`) that is killed when it outlives the timeout or takes more than the
        buffer pool plus QUERY_MEMORY_MB (Ladybug cannot stop one long expression itself); the
        row limit applies. Raises QueryNotAllowedError (refused), CypherError (Ladybug rejected it; one
        line with what to change), QueryTimeoutError or QueryMemoryError (stopped while running).
        """
        allow = gate.allow_list()
        gate.check_text(cypher, self.dialect, allow)
        self._connection()  # the file exists and is consistent before it is opened read-only
        with self._lock:
            try:
                names, values, cut = self._sandbox.run(
                    self.path,
                    self.buffer_pool_mb,
                    cypher,
                    params,
                    timeout=timeout,
                    row_limit=row_limit,
                    check_plan=lambda plan: gate.check_embedded_plan(plan, allow),
                )
            except sandbox.Stopped as exc:
                if exc.reason == "memory":
                    raise QueryMemoryError(
                        f"the query needed more than {self._sandbox.memory_mb} MB and was stopped: "
                        "narrow it, aggregate, or add a LIMIT"
                    ) from None
                raise QueryTimeoutError(
                    f"the query ran longer than {timeout:g} s and was stopped: narrow it or add a LIMIT"
                ) from None
            except sandbox.EngineFailure as exc:
                raise self._engine_failure(exc, cypher, timeout) from None
        rows = [{n: to_plain(v) for n, v in zip(names, row, strict=True)} for row in values]
        return rows, cut

    def _engine_failure(self, exc: sandbox.EngineFailure, cypher: str, timeout: float) -> Exception:
        text = exc.text
        if text == sandbox.SEVERAL:
            return QueryNotAllowedError("only one statement may run here; remove the `;`-separated others")
        if exc.stage == "plan":
            if "read-only" in text:
                return QueryNotAllowedError("only read queries may run here; this one would write")
            return gate.engine_error(self.dialect, text, stage="plan", query=cypher)
        if "interrupt" in text.lower() or "timeout" in text.lower():
            return QueryTimeoutError(
                f"the query ran longer than {timeout:g} s and was stopped: narrow it or add a LIMIT"
            )
        if "buffer pool is full" in text.lower() or "allocate" in text.lower():
            return QueryMemoryError(
                "the query needed more memory than the embedded store allows it and was stopped: "
                "narrow it, aggregate, or add a LIMIT"
            )
        return gate.engine_error(self.dialect, text, stage="run", query=cypher)

    def _read_limited(  # in-process: the scoped in-memory copy (`governance/scope.py`)
        self,
        conn: ladybug.Connection,
        cypher: str,
        params: Mapping[str, Any],
        *,
        timeout: float,
        row_limit: int,
        allow: gate.AllowList,
    ) -> tuple[list[Row], bool]:
        try:
            plan = conn.execute("EXPLAIN " + cypher, dict(params))
        except RuntimeError as exc:
            if "read-only" in str(exc):
                raise QueryNotAllowedError("only read queries may run here; this one would write") from None
            raise gate.engine_error(self.dialect, str(exc), stage="plan", query=cypher) from None
        if isinstance(plan, list):
            raise QueryNotAllowedError("only one statement may run here; remove the `;`-separated others")
        first: Any = plan.get_next() if plan.has_next() else [""]
        gate.check_embedded_plan(str(first[0]), allow)
        conn.set_query_timeout(max(1, int(timeout * 1000)))
        try:
            result = conn.execute(cypher, dict(params))
            if isinstance(result, list):  # pragma: no cover - refused above
                raise QueryNotAllowedError("only one statement may run here")
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
            text = str(exc)
            if "interrupt" in text.lower() or "timeout" in text.lower():
                raise QueryTimeoutError(
                    f"the query ran longer than {timeout:g} s and was stopped: narrow it or add a LIMIT"
                ) from None
            if "buffer pool is full" in text.lower() or "allocate" in text.lower():
                raise QueryMemoryError(
                    "the query needed more memory than the embedded store allows it and was stopped: "
                    "narrow it, aggregate, or add a LIMIT"
                ) from None
            raise gate.engine_error(self.dialect, text, stage="run", query=cypher) from None
        return rows, cut

    def _execute(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        """The one place that calls Ladybug."""
        try:
            with self._lock:
                return self._rows(self._connection().execute(cypher, dict(params)))
        except RuntimeError as exc:
            hint = self._pool_hint(exc)
            raise QueryRefusedError(f"the embedded store refused the query: {exc}{hint}") from None

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


class _Vectors:
    """The index's vector matrix (rows x width float32), filled a page of Arrow columns at a time:
    the embeddings of `model` of the widest width seen, zeros in rows of another model or width or
    without one. Never builds Python float lists."""

    def __init__(self, rows: int, model: str | None) -> None:
        self._rows, self._model = rows, model
        self._matrix: Any = None

    def add(self, rows: Sequence[int], embeddings: Any, models: Any) -> None:
        """Embeddings (list<float>) and their model names, each for the row at the same place of
        `rows` (-1: for no row)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        names = models.combine_chunks() if isinstance(models, pa.ChunkedArray) else models
        lists = embeddings.combine_chunks() if isinstance(embeddings, pa.ChunkedArray) else embeddings
        if self._model is None or not len(lists) or pa.types.is_null(lists.type):
            return  # a page without any embedding has a column of no type
        at = np.asarray(rows, dtype=np.intp)
        lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
        same = pc.fill_null(pc.equal(names, self._model), False).to_numpy(zero_copy_only=False)
        same &= (lengths > 0) & (at >= 0) & (at < self._rows)
        if not same.any():
            return
        width = int(lengths[same].max())
        if self._matrix is None or width > self._matrix.shape[1]:  # rows of a narrower width: zeros
            self._matrix = np.zeros((self._rows, width), dtype=np.float32)
        keep = same & (lengths == self._matrix.shape[1])
        if keep.any():
            flat = pc.list_flatten(lists.filter(pa.array(keep))).to_numpy(zero_copy_only=False)
            self._matrix[at[keep]] = flat.astype(np.float32, copy=False).reshape(-1, self._matrix.shape[1])

    def matrix(self, rows: int) -> Any:
        """The first `rows` rows (None when no row had an embedding of the model)."""
        if self._matrix is None:
            return None
        return self._matrix[:rows] if rows < len(self._matrix) else self._matrix


def _naive_utc(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def _rollback(conn: ladybug.Connection) -> None:
    with contextlib.suppress(RuntimeError):  # Ladybug may have rolled back the failed transaction itself
        conn.execute("ROLLBACK")


# Store lock files this process holds: resolved path → [descriptor, number of open stores].
_HELD: dict[str, list[int]] = {}
_HELD_LOCK = threading.Lock()


def _can_share(lock_path: Path) -> bool:
    """True when a shared lock on `lock_path` is free: its other holders only read."""
    assert fcntl is not None
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _translate_open(path: Path, exc: RuntimeError) -> StoreError:
    text = str(exc)
    if "lock" in text.lower():
        held_by = re.search(r"held by PID (\d+)", text)
        who = f", PID {held_by.group(1)}" if held_by else ""
        return StoreUnavailableError(
            f"the store {path} is in use by another process (open read-write{who}): "
            "stop that process or wait until it is done, and try again"
        )
    return StoreError(f"cannot open the embedded store {path}: {text}")
