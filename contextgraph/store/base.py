"""What every graph store offers, and the parts of writing that do not depend on the engine."""

from __future__ import annotations

import hashlib
import json
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from pydantic import BaseModel

from contextgraph.model import EDGE_TYPES, NODE_TYPES, Edge, GraphBatch, Node, properties
from contextgraph.store.queries import identifier, load

Row = dict[str, Any]


@dataclass
class WriteResult:
    """What a write did, per label or relationship type."""

    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    missing_endpoints: dict[str, int] = field(default_factory=dict)

    def add(self, other: WriteResult) -> None:
        for mine, theirs in (
            (self.created, other.created),
            (self.updated, other.updated),
            (self.unchanged, other.unchanged),
            (self.missing_endpoints, other.missing_endpoints),
        ):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count

    @property
    def written(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values())


class GraphStore(ABC):
    """The interface shared by the Neo4j store and the embedded store.

    Engines supply how a query runs (`_read`, `_write`) and their schema; the write algorithm is
    shared: validate the whole batch, then per kind and chunk read the stored content hashes and
    MERGE only the rows that are new or changed, nodes before edges, one transaction per chunk.
    """

    dialect: str
    batch_size: int = 1000
    #: True when one open store serves many callers at once (a server's connection pool); False when
    #: each caller opens and closes its own (a file the engine locks).
    shared: bool = False

    @property
    def location(self) -> str:
        """Where the graph lives, for people (a database name, a file path); never holds a secret."""
        return self.dialect

    def verify(self) -> None:
        """Check at once that the store can be reached and accepts us; raises StoreUnavailableError
        or StoreAuthError. Nothing to check for a local file."""
        return None

    def prepare_read(self) -> None:
        """Make what a read needs exist (an engine whose reads fail on missing tables creates them)."""
        return None

    def lacks_table(self, label: str) -> bool:
        """Whether a read of this node label would fail because its table is not created yet (an
        engine with declared tables; asking anyway can leave a failed statement cached). Engines
        without tables never lack one."""
        return False

    def cypher(self, name: str) -> str:
        """The text of `contextgraph/store/cypher/<name>.cypher` in this store's dialect (its variant where
        one exists)."""
        return load(name, self.dialect)

    def dialect_note(self) -> str:
        """One paragraph for an agent's Cypher tool: which engine answers and how its dialect differs."""
        from contextgraph.store.gate import dialect_note

        return dialect_note(self.dialect)

    #: How an agent's Cypher is read on a scoped Ladybug copy of this store's graph
    #: (`contextgraph.governance.scope`): a `gate.dialect_note` name.
    scoped_dialect: str = "embedded"

    def for_scoped_copy(self, cypher: str) -> str:
        """An agent's Cypher written for this store, as the scoped Ladybug copy of its graph runs it.
        The embedded store speaks Ladybug's dialect already: unchanged."""
        return cypher

    def missing_schema(self, error: Exception) -> bool:
        """Whether a refused read only means that a table this store creates on first write is absent
        (read as "nothing stored yet"). Engines without tables never refuse for that reason."""
        return False

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create constraints, tables and indexes; safe to run again."""

    @abstractmethod
    def _read(self, cypher: str, params: Mapping[str, Any]) -> list[Row]: ...

    @abstractmethod
    def _write(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        """Run one write statement in its own transaction (retried when transient)."""

    @abstractmethod
    def close(self) -> None: ...

    def _adapt(self, rows: list[Row]) -> list[Row]:
        """Engine-specific value conversion of rows about to be written."""
        return rows

    def _value(self, column: str, type_: ScalarType) -> str:
        """The expression that reads one column of a row in a write statement."""
        return f"row.`{column}`"

    def _set_clause(self, var: str, columns: Mapping[str, ScalarType]) -> str:
        # Backticks: some field names (`options`, `defaults`) are keywords in Ladybug's Cypher.
        assignments = {**columns, "content_hash": "STRING"}
        return ", ".join(f"{var}.`{identifier(c)}` = {self._value(c, t)}" for c, t in assignments.items())

    def _node_merge(self, node_type: type[Node]) -> str:
        clause = self._set_clause("n", NODE_COLUMNS[node_type])
        return _template("merge_nodes", label=node_type.label, set=clause)

    def _node_create(self, node_type: type[Node]) -> str:
        clause = self._set_clause("n", NODE_COLUMNS[node_type])
        return _template("create_nodes", label=node_type.label, set=clause)

    def _edge_merge(self, edge_type: type[Edge]) -> str:
        clause = self._set_clause("r", EDGE_COLUMNS[edge_type])
        return _template("merge_edges", **_edge_names(edge_type), set=clause)

    def _edge_create(self, edge_type: type[Edge]) -> str:
        clause = self._set_clause("r", EDGE_COLUMNS[edge_type])
        return _template("create_edges", **_edge_names(edge_type), set=clause)

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a read query and return its rows as plain Python values."""
        return self._read(cypher, params or {})

    def write(self, batch: GraphBatch) -> WriteResult:
        """Upsert the batch; raises InvalidRecordError before writing anything if it is invalid."""
        nodes, edges = batch.nodes_by_label(), batch.edges_by_type()
        if not getattr(self, "_schema_checked", False):  # once per store object
            from contextgraph.store.migrate import require_current

            require_current(self)  # SchemaVersionError: an older graph, run `contextgraph migrate`
        result = WriteResult()
        created: set[tuple[str, str]] = set()  # (label, key) of the nodes this write created
        for node_type, node_items in nodes.items():
            lookup = _template("existing_hashes", label=node_type.label)
            label = node_type.label
            for chunk in chunks(node_rows(node_items), self.batch_size):
                stored = self._read(lookup, {"keys": [r["key"] for r in chunk]})
                hashes = {r["key"]: r["hash"] for r in stored}
                new = [r for r in chunk if r["key"] not in hashes]
                changed = [r for r in chunk if r["key"] in hashes and hashes[r["key"]] != r["content_hash"]]
                if new or changed:
                    self._upsert_nodes(node_type, new, changed)
                result.add(
                    WriteResult(
                        created={label: len(new)} if new else {},
                        updated={label: len(changed)} if changed else {},
                        unchanged={label: len(chunk) - len(new) - len(changed)},
                    )
                )
                created.update((label, r["key"]) for r in new)
        for edge_type, edge_items in edges.items():
            names = _edge_names(edge_type)
            rows = edge_rows(edge_items)
            # An edge one of whose ends this write created cannot exist yet: CREATE it, no lookup
            # and no MERGE (on a first ingest, that is every edge).
            source, target = names["source"], names["target"]
            is_fresh = [(source, r["src"]) in created or (target, r["dst"]) in created for r in rows]
            fresh = [r for r, new in zip(rows, is_fresh, strict=True) if new]
            rows = [r for r, new in zip(rows, is_fresh, strict=True) if not new]
            name = edge_type.rel_type
            for chunk in chunks(fresh, self.batch_size):
                written = self._create_edges(edge_type, chunk)
                missing = {name: len(chunk) - written} if written < len(chunk) else {}
                result.add(
                    WriteResult(created={name: written}, unchanged={name: 0}, missing_endpoints=missing)
                )
            if not rows:
                continue
            merge = self._edge_merge(edge_type)
            for chunk in chunks(rows, self.batch_size):
                hashes = self._edge_hashes(edge_type, chunk)
                result.add(self._merge(edge_type.rel_type, chunk, hashes, _edge_id, merge))
        return result

    def _edge_hashes(self, edge_type: type[Edge], rows: Sequence[Row]) -> dict[tuple[str, str], str]:
        """The stored content hash of each relationship of `edge_type` among `rows` (their `src`
        and `dst` keys), by (src, dst); a relationship the store lacks is absent. Default: both
        ends matched by key (an index seek on Neo4j)."""
        lookup = _template("existing_edge_hashes", **_edge_names(edge_type))
        stored = self._read(lookup, {"pairs": [{"src": r["src"], "dst": r["dst"]} for r in rows]})
        return {(r["src"], r["dst"]): r["hash"] for r in stored}

    def _upsert_nodes(self, node_type: type[Node], new: list[Row], changed: list[Row]) -> None:
        """Write nodes that the store does not have (`new`) and that it has with another content
        hash (`changed`), within the write's transaction. New nodes by CREATE: the write's own
        lookup just found them missing, and CREATE skips MERGE's lookup and lock per row (node
        MERGE was the largest part of a Neo4j 10k ingest's profile; on Ladybug, 3k decisions took
        7.0-7.2 s of CPU with it, 8.0-8.4 s with MERGE). Changed ones by MERGE."""
        if new:
            self._write(self._node_create(node_type), {"rows": self._adapt(new)})
        if changed:
            self._write(self._node_merge(node_type), {"rows": self._adapt(changed)})

    def _create_edges(self, edge_type: type[Edge], rows: Sequence[Row]) -> int:
        """Create edges that cannot exist yet (an end was created by the same write); returns how
        many found both ends. Default: MATCH both ends, CREATE."""
        out = self._write(self._edge_create(edge_type), {"rows": self._adapt(list(rows))})
        return int(out[0]["written"]) if out and "written" in out[0] else len(rows)

    def _merge(
        self,
        name: str,
        chunk: Sequence[Row],
        stored: Mapping[Any, Any],
        ident: Callable[[Row], Any],
        statement: str,
    ) -> WriteResult:
        changed = [r for r in chunk if stored.get(ident(r)) != r["content_hash"]]
        updated = sum(1 for r in changed if ident(r) in stored)
        result = WriteResult(unchanged={name: len(chunk) - len(changed)})
        if changed:
            out = self._write(statement, {"rows": self._adapt(changed)})
            written = int(out[0]["written"]) if out and "written" in out[0] else len(changed)
            result.created[name] = written - updated
            if updated:
                result.updated[name] = updated
            if written < len(changed):
                result.missing_endpoints[name] = len(changed) - written
        return result

    def stats(self) -> dict[str, dict[str, int]]:
        """Node counts by label and relationship counts by type."""
        nodes = {t.label: self._count(f"MATCH (n:{t.label}) RETURN count(n) AS c") for t in NODE_TYPES}
        edges = {}
        for t in EDGE_TYPES:
            names = _edge_names(t)
            edges[t.rel_type] = self._count(
                f"MATCH (:{names['source']})-[r:{names['type']}]->(:{names['target']}) RETURN count(r) AS c"
            )
        return {"nodes": nodes, "relationships": edges}

    def _count(self, cypher: str) -> int:
        return int(self._read(cypher, {})[0]["c"])

    # --- precedent search: embeddings and agent queries (contextgraph.ingest.embeddings / .retrieval) ---

    @abstractmethod
    def prepare_embeddings(self, dimensions: int) -> None:
        """Make the store ready for embeddings of this width (e.g. the vector index's dimensions)."""

    def decisions_needing_embedding(self, model_name: str, limit: int = 1000) -> list[Row]:
        """Decisions whose embedding is missing, from another model, or older than the decision.

        Rows: key, text (search text), subject, body, reason, content_hash, and what the stored
        embedding was made of: text_hash and model (None when there is none).
        """
        return self._read(load("embedding_pending", self.dialect), {"model": model_name, "limit": limit})

    @abstractmethod
    def write_embeddings(self, rows: Sequence[Any], model_name: str) -> int:
        """Store `EmbeddingRow`s (a row without a vector only marks its text as current)."""

    # --- precedent candidates: each store answers from its own indexes (contextgraph.retrieval.ranking fuses)
    # ---

    @abstractmethod
    def vector_candidates(
        self, vector: Sequence[float], model: str, k: int, filters: CandidateFilter
    ) -> list[tuple[str, float]]:
        """The `k` answered decisions whose embedding (made by `model`) is nearest `vector`, best
        first, as (key, cosine similarity in -1..1). Raises EmbeddingError when the stored vectors
        have another width than `vector`."""

    @abstractmethod
    def text_candidates(
        self, words: Sequence[str], k: int, filters: CandidateFilter
    ) -> list[tuple[str, float]]:
        """The `k` answered decisions with the highest BM25 score for `words` (unstemmed content words
        from `contextgraph.retrieval.words.query_terms`), best first, as (key, score > 0)."""

    @abstractmethod
    def decision_vectors(self, keys: Sequence[str], model: str) -> dict[str, Any]:
        """The stored embeddings (float32 numpy arrays, made by `model`) of these decisions, by key."""

    def precedent_candidates(
        self,
        vector: Sequence[float] | None,
        model: str,
        words: Sequence[str],
        k: int,
        filters: CandidateFilter,
    ) -> Candidates:
        """Both candidate lists of one precedent search (`vector_candidates` when `vector` is given,
        `text_candidates` when `words` are), and what the ranking reads of the candidates when the
        engine can return it in the same query (`Candidates.stale`, `Candidates.usefulness`; None:
        not read, the ranking asks for it). Default: the two lists only, one call each; a server
        store overrides this to answer in one round trip."""
        return Candidates(
            vector=self.vector_candidates(vector, model, k, filters) if vector is not None else [],
            text=self.text_candidates(words, k, filters) if words else [],
        )

    @abstractmethod
    def embedding_models(self) -> dict[str, int]:
        """How many decisions carry an embedding, per model name (to explain an empty vector search)."""

    def decision_details(self, keys: Sequence[str], *, vectors: str | None = None) -> dict[str, Row]:
        """What a precedent shows of each decision, by key: ids, subject, choice, reason, answer time,
        reviewer (actor_name/actor_id/actor_kind), the AI proposal and its verdict. Keys that do not
        exist are left out. One query (`precedent_card`); of several proposals the first by text is
        shown, of several reviewers the first by actor_id (each field: the first that is not null).

        `vectors` (a model name): each row also holds "vector", the decision's stored embedding of
        that model (float32 numpy array; None when it has none), as `decision_vectors` reads it (a
        store that keeps embeddings on the decision reads them in the same query)."""
        if not keys:
            return {}
        rows = self._read(load("precedent_card", self.dialect), {"keys": list(dict.fromkeys(keys))})
        details = self._fold_card(rows)
        if vectors is not None and details:
            stored = self.decision_vectors(list(details), vectors)
            for key, row in details.items():
                row["vector"] = stored.get(key)
        return details

    @staticmethod
    def _fold_card(rows: list[Row]) -> dict[str, Row]:
        """`precedent_card` rows (one per proposal and reviewer) folded into one row per key."""
        details: dict[str, Row] = {}
        proposal_fields = ("proposal", "verdict")
        actor_fields = ("actor_name", "actor_id", "actor_kind")
        by_proposal = sorted(rows, key=lambda r: (r["proposal"] is None, r["proposal"] or ""))
        by_actor = sorted(rows, key=lambda r: (r["actor_id"] is None, r["actor_id"] or ""))
        for row in rows:
            if row["key"] not in details:
                details[row["key"]] = {
                    k: v for k, v in row.items() if k not in proposal_fields + actor_fields
                } | dict.fromkeys(("proposal", "verdict", "actor_name", "actor_id"))
        for ordered, fields in ((by_proposal, proposal_fields), (by_actor, actor_fields)):
            for row in ordered:
                folded = details[row["key"]]
                for name in fields:
                    if folded.get(name) is None and row[name] is not None:
                        folded[name] = row[name]
        return details

    def refresh_indexes(self, *, force: bool = False) -> dict[str, Any]:
        """Bring search indexes kept outside the engine up to date; `force` rebuilds them even when
        they look current. Returns what they hold (model, dimensions, decisions), {} where the engine
        keeps its indexes itself (Neo4j)."""
        return {}

    # --- governance hooks (contextgraph.governance.forget) --------------------------------------------------

    def after_forget(self, keys: Sequence[str]) -> None:
        """Called by `contextgraph.governance.forget` after these decisions were erased: search indexes kept
        outside the engine (`refresh_indexes`) are rebuilt without them. Neo4j's indexes follow the
        nodes, so there it does nothing."""
        if keys:
            self.refresh_indexes(force=True)

    def delete_embeddings(self, keys: Sequence[str]) -> None:
        """Erase these decisions' embeddings where the engine keeps them apart from the decision
        nodes (on Neo4j they are properties of the node and go with it)."""
        return None

    def rebuild_indexes(self) -> dict[str, Any]:
        """Rebuild any search indexes kept outside the engine from scratch, from the graph as it is
        now; returns what they hold, as `refresh_indexes` does ({} on Neo4j)."""
        return self.refresh_indexes(force=True)

    @abstractmethod
    def read_only_query(
        self, cypher: str, params: Mapping[str, Any], *, timeout: float, row_limit: int
    ) -> tuple[list[Row], bool]:
        """Run a query only if it cannot write: (rows up to row_limit, whether rows were cut)."""


@dataclass(frozen=True)
class CandidateFilter:
    """Which answered decisions may be precedents: all of them unless narrowed.

    dag_id/task_id: that DAG / decision point only; chosen: decisions where this option was chosen;
    since: answered (or, without an answer time, asked) at or after this UTC time; exclude: keys;
    deployment: decisions of that Airflow deployment only (`model.DEFAULT_DEPLOYMENT`, …).
    """

    dag_id: str | None = None
    task_id: str | None = None
    chosen: str | None = None
    since: datetime | None = None
    exclude: frozenset[str] = frozenset()
    deployment: str | None = None

    @property
    def narrowed(self) -> bool:
        narrowing = (self.dag_id, self.task_id, self.chosen, self.since, self.deployment)
        return any(v is not None for v in narrowing)


@dataclass(frozen=True)
class StaleFacts:
    """What `contextgraph.retrieval.supersede` decides staleness from, read with the candidates:
    the rows its own queries return (`stale_decisions`, `stale_points`, `stale_newer_offers`,
    `retired_read`, `stale_retired`), for the candidates' keys. `answered` is only read when a
    lesson was ever retired (else empty)."""

    made: list[Row]
    points: list[Row]
    offers: list[Row]
    retirements: list[Row]
    answered: list[Row]


@dataclass(frozen=True)
class Candidates:
    """One precedent search's candidates (`GraphStore.precedent_candidates`).

    vector / text: (key, score) best first, as `vector_candidates` / `text_candidates` return them.
    stale: the facts staleness is decided from, for every candidate (None: not read with them).
    usefulness: the stored usefulness rows of the candidates that have one (`usefulness_read`'s
    columns; None: not read with them).
    """

    vector: list[tuple[str, float]]
    text: list[tuple[str, float]]
    stale: StaleFacts | None = None
    usefulness: list[Row] | None = None


_node_id = itemgetter("key")
_edge_id = itemgetter("src", "dst")


def _template(name: str, dialect: str = "neo4j", **names: str) -> str:
    text = load(name, dialect)
    for placeholder, value in names.items():
        text = text.replace("{" + placeholder + "}", identifier(value) if placeholder != "set" else value)
    return text


def _edge_names(edge_type: type[Edge]) -> dict[str, str]:
    return {
        "type": edge_type.rel_type,
        "source": edge_type.source.label,
        "target": edge_type.target.label,
    }


# --- turning models into rows -------------------------------------------------------------------

ScalarType = str  # STRING, INT64, DOUBLE, BOOLEAN, TIMESTAMP, STRING[], JSON


def column_types(model: type[BaseModel]) -> dict[str, ScalarType]:
    """The storage type of each field: scalars as they are, lists of text, the rest as JSON text."""
    return {name: _column_type(info.annotation) for name, info in model.model_fields.items()}


def _column_type(annotation: Any) -> ScalarType:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # e.g. model.Int64: the type without its bounds
        return _column_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _column_type(inner[0]) if len(inner) == 1 else "JSON"
    if origin is typing.Literal:
        return "STRING"
    if origin is list and typing.get_args(annotation) == (str,):
        return "STRING[]"
    simple = {str: "STRING", int: "INT64", float: "DOUBLE", bool: "BOOLEAN", datetime: "TIMESTAMP"}
    return simple.get(annotation, "JSON")


ATOMIC_ROWS = 50_000
"""A write of at most this many nodes and edges (a sync page: ~30 per decision) is one transaction;
a larger one (a migration, a scoped copy of a whole graph) commits statement by statement, so no
transaction outgrows the server's memory limit (Neo4j's `db.memory.transaction.total.max`)."""


def storable(item: Node | Edge, types_: Mapping[str, ScalarType]) -> Row:
    """Properties as values both engines store: JSON text for nested data, UTC datetimes."""
    row: Row = {}
    for name, value in properties(item).items():
        if value is not None and types_[name] == "JSON":
            value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
        elif isinstance(value, datetime):
            value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        row[name] = value
    row["content_hash"] = content_hash(row)
    return row


def content_hash(row: Mapping[str, Any]) -> str:
    text = json.dumps(row, ensure_ascii=False, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


NODE_COLUMNS = {t: column_types(t) for t in NODE_TYPES}
EDGE_COLUMNS = {t: {k: v for k, v in column_types(t).items() if k not in ("src", "dst")} for t in EDGE_TYPES}


def node_rows(nodes: Sequence[Node]) -> list[Row]:
    columns = NODE_COLUMNS[type(nodes[0])]
    return [{"key": n.key, **storable(n, columns)} for n in nodes]


def edge_rows(edges: Sequence[Edge]) -> list[Row]:
    columns = EDGE_COLUMNS[type(edges[0])]
    return [{"src": e.src, "dst": e.dst, **storable(e, columns)} for e in edges]


def chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def to_plain(value: Any) -> Any:
    """Engine values as plain Python: native datetimes (UTC-aware), dicts and lists."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    to_native = getattr(value, "to_native", None)
    if callable(to_native):
        return to_plain(to_native())
    return value
