"""The Neo4j store: the official driver, one helper for every call, READ routing for reads."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import neo4j
from neo4j import GraphDatabase, RoutingControl
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConfigurationError,
    DatabaseError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)
from neo4j.exceptions import TransientError as Neo4jTransientError

from contextgraph.config import Neo4jSettings, public_url
from contextgraph.errors import (
    CypherError,
    EmbeddingError,
    QueryMemoryError,
    QueryRefusedError,
    QueryTimeoutError,
    StoreAuthError,
    StoreConfigError,
    StoreError,
    StoreUnavailableError,
)
from contextgraph.model import GraphBatch, Node
from contextgraph.retrieval.words import lucene_escape, lucene_query
from contextgraph.store import gate
from contextgraph.store.base import (
    ATOMIC_ROWS,
    CandidateFilter,
    Candidates,
    GraphStore,
    Row,
    StaleFacts,
    WriteResult,
    to_plain,
)
from contextgraph.store.queries import load, statements

log = logging.getLogger(__name__)

DEFAULT_DIMENSIONS = 256

FIRST_FETCH = 2
"""A search first asks each index for this many times the candidates it needs (as many as an
unnarrowed search keeps: the filters of `precedent_candidates.cypher` drop only unanswered ones)."""
GROWTH = 16
"""A short narrowed search asks again for at most this many times as many (at least twice)."""
MAX_FETCH = 20_000
"""The most an index is asked for: a filter that keeps less than k / MAX_FETCH of the decisions
near the query may find fewer than k candidates."""
SCAN_LIMIT = 8_000
"""A filter with an index (`_seed`) that keeps fewer decisions than this is searched over those
decisions (the pre-filter of `precedent_candidates.cypher`) instead of over-fetched from the
indexes: at 100k, scoring 5,000 embeddings exactly took ~40 ms, asking the vector index for 20,000
neighbours ~80 ms."""


class Neo4jStore(GraphStore):
    """A graph store on a Neo4j 5 server. The caller may own the driver; `connect` makes one."""

    dialect = "neo4j"
    scoped_dialect = "scoped-neo4j"
    _catalog: gate.Catalog | None = None

    def for_scoped_copy(self, cypher: str) -> str:
        """Neo4j Cypher with its common idioms (labels(n), type(r), …) translated for the scoped
        Ladybug copy (`store.translate.neo4j_to_ladybug`)."""
        from contextgraph.store.translate import neo4j_to_ladybug

        return neo4j_to_ladybug(cypher)

    def __init__(
        self,
        driver: neo4j.Driver,
        *,
        database: str = "neo4j",
        batch_size: int = 1000,
        owns_driver: bool = False,
        where: str = "Neo4j",
    ) -> None:
        self._driver = driver
        self.database = database
        self.batch_size = batch_size
        self._owns_driver = owns_driver
        self._where = where
        #: per index and filter (`_signature`): how many times k a narrowed search had to over-fetch
        self._overfetch: dict[tuple[Any, ...], float] = {}
        #: this thread's write transaction (`tx`) while `write` runs, and whether it MERGEs only
        self._local = threading.local()
        #: the filters (`_signature`) that kept SCAN_LIMIT decisions or more when last pre-filtered
        self._broad: set[tuple[Any, ...]] = set()
        #: whether the internal full-text index `decision_scoped_text` exists (None: not read yet;
        #: read once, on the first search it would narrow, and again by ensure_schema)
        self._scoped_text: bool | None = None

    @classmethod
    def connect(cls, settings: Neo4jSettings, *, batch_size: int = 1000) -> Neo4jStore:
        """A store with a driver of its own (no network until the first query)."""
        if not settings.uri:
            raise StoreConfigError("NEO4J_URI is not set: give the Bolt URI of your Neo4j server")
        auth = (settings.username, settings.password.get_secret_value())
        try:
            driver = GraphDatabase.driver(
                settings.uri,
                auth=auth,
                notifications_min_severity="OFF",
                max_transaction_retry_time=settings.max_retry_seconds,
            )
        except (ConfigurationError, ValueError) as exc:
            raise StoreConfigError(
                f"NEO4J_URI {public_url(settings.uri)!r} is not a Neo4j URI: {exc}"
            ) from None
        return cls(
            driver,
            database=settings.database,
            batch_size=batch_size,
            owns_driver=True,
            where=f"Neo4j at {public_url(settings.uri)}",
        )

    shared = True

    @property
    def location(self) -> str:
        return f"{self._where}, database {self.database}"

    def close(self) -> None:
        if self._owns_driver:
            self._driver.close()

    def verify(self) -> None:
        """Check at once (no retries) that the server answers and accepts the credentials."""
        try:
            self._driver.verify_connectivity()
        except Exception as exc:
            raise self._translate(exc) from None

    def ensure_schema(self, dimensions: int = DEFAULT_DIMENSIONS) -> None:
        words = self._read(load("index_text_properties"), {})
        if words and list(words[0]["properties"] or []) != ["situation_text"]:
            log.info("the full-text index decision_text indexes %s: recreating it", words[0]["properties"])
            self._write(load("index_text_drop"), {})
        for statement in statements(load("schema")):
            self._execute(statement, {"dimensions": dimensions}, write=True)
        self._scoped_text = self._has_scoped_text()

    def _has_scoped_text(self) -> bool:
        """Whether the internal full-text index `decision_scoped_text` exists (not failed): a graph
        set up by an older version has `decision_text` only, and word searches are not narrowed.
        A user whose role may not list indexes (SHOW INDEX privilege) gets unnarrowed searches."""
        try:
            return bool(self._read(load("index_scoped_text"), {}))
        except (StoreAuthError, CypherError) as exc:
            log.info("the indexes cannot be listed (%s): word searches are not narrowed", exc)
            return False

    def _read(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        return self._execute(cypher, params, write=False)

    def _write(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        return self._execute(cypher, params, write=True)

    def write(self, batch: GraphBatch) -> WriteResult:
        """Upsert the batch in one transaction (up to `ATOMIC_ROWS` nodes and edges; a larger one
        commits statement by statement): one commit per sync page instead of one per label and
        chunk, and a failed write leaves none of it. The driver retries the whole transaction on
        transient errors. If another writer created one of the new keys meanwhile, the constraint
        refuses the CREATE: the batch is written again, MERGEing every node, so the outcome is the
        same. Raises what `GraphStore.write` raises, translated (StoreError …)."""
        try:
            return self._write_batch(batch, merge_only=False)
        except _KeyTaken:
            log.info("a key of this batch was created meanwhile by another writer: MERGE instead")
            return self._write_batch(batch, merge_only=True)

    def _write_batch(self, batch: GraphBatch, *, merge_only: bool) -> WriteResult:
        def work(tx: neo4j.ManagedTransaction | None) -> WriteResult:
            self._local.tx, self._local.merge_only = tx, merge_only
            try:
                return GraphStore.write(self, batch)
            finally:
                self._local.tx, self._local.merge_only = None, False

        if len(batch) > ATOMIC_ROWS:
            return work(None)  # each statement its own transaction (errors translated per call)
        try:
            with self._driver.session(database=self.database) as session:
                return session.execute_write(work)
        except Exception as exc:
            raise self._translate(exc) from None

    def _upsert_nodes(self, node_type: type[Node], new: list[Row], changed: list[Row]) -> None:
        """As `GraphStore._upsert_nodes`, but every node by MERGE when `write` retries a batch
        whose CREATE met a key another writer took meanwhile."""
        if getattr(self._local, "merge_only", False):
            new, changed = [], new + changed
        super()._upsert_nodes(node_type, new, changed)

    def query_type(self, cypher: str) -> str:
        """What Neo4j's planner says the query does: 'r', 'w', 'rw' or 's' (schema)."""
        _, summary = self._execute_full("EXPLAIN " + cypher, {}, write=False)
        return str(summary.query_type)

    # --- precedent search ------------------------------------------------------------------------

    def prepare_embeddings(self, dimensions: int) -> None:
        """(Re)create the vector index for this width if it has another, and wait until it is online."""
        rows = self._read(load("index_vector_options"), {})
        current = None
        if rows:
            config = (rows[0]["options"] or {}).get("indexConfig") or {}
            current = config.get("vector.dimensions")
        if current != dimensions:
            if rows:
                log.info("vector index has %s dimensions, the model %s: recreating it", current, dimensions)
                self._write(load("index_vector_drop"), {})
            [create] = [s for s in statements(load("schema")) if "decision_embedding" in s]
            self._write(create, {"dimensions": dimensions})
        self._write(load("index_await"), {})

    def write_embeddings(self, rows: Sequence[Any], model_name: str) -> int:
        vectors = [
            {
                "key": r.key,
                "vector": r.vector.tolist(),
                "text_hash": r.text_hash,
                "content_hash": r.content_hash,
                "text": r.text,
            }
            for r in rows
            if r.vector is not None
        ]
        marks = [
            {"key": r.key, "text_hash": r.text_hash, "content_hash": r.content_hash}
            for r in rows
            if r.vector is None
        ]
        written = 0
        for start in range(0, len(vectors), self.batch_size):
            chunk = vectors[start : start + self.batch_size]
            out = self._write(load("embedding_write"), {"rows": chunk, "model": model_name})
            written += int(out[0]["written"]) if out else 0
        for start in range(0, len(marks), self.batch_size):
            self._write(load("embedding_mark"), {"rows": marks[start : start + self.batch_size]})
        return written

    def vector_candidates(
        self, vector: Sequence[float], model: str, k: int, filters: CandidateFilter
    ) -> list[tuple[str, float]]:
        """From the vector index `decision_embedding`, over-fetched as `precedent_candidates` says.
        Scores are cosine similarities."""
        return self.precedent_candidates(vector, model, (), k, filters).vector

    def text_candidates(
        self, words: Sequence[str], k: int, filters: CandidateFilter
    ) -> list[tuple[str, float]]:
        """From the full-text index `decision_text` (Lucene BM25, english analyzer)."""
        return self.precedent_candidates(None, "", words, k, filters).text if words else []

    def precedent_candidates(
        self,
        vector: Sequence[float] | None,
        model: str,
        words: Sequence[str],
        k: int,
        filters: CandidateFilter,
    ) -> Candidates:
        """Both candidate lists and what the ranking reads of the candidates (staleness facts, stored
        usefulness) in one round trip (`precedent_candidates.cypher`).

        Neo4j's indexes cannot filter while they search, so each is asked for more than `k` and
        the filters run on those: first `FIRST_FETCH` x k (plus the excluded keys), or what earlier
        searches with the same filters needed (remembered per store); when the filters kept fewer
        than `k` of an index's answers and it may hold more, that index is asked again for more (by
        the share the filters kept, x2 to x`GROWTH`, at most `MAX_FETCH`). An unnarrowed search is
        one round trip; a narrowed one more only while its selectivity (per index) is not known
        yet.

        The pre-filter: a filter on the decision point, DAG, task or deployment (`_seed`, each
        read through its index) that keeps fewer than `SCAN_LIMIT` decisions has its words searched
        narrowed to it inside the internal full-text index `decision_scoped_text` (same BM25 scores
        as `decision_text`), and when the vector index's first answer kept fewer than `k`, the
        vector list scored exactly over those decisions (cosine of each embedding) in the same round
        trip instead of asking the index again, deeper (at 100k, a DAG of 5 % asked with cases of
        other DAGs: README, "Scale work, round 4"). A filter seen keeping more is not pre-filtered
        again by this store. Whether `decision_scoped_text` exists is read once per store (one more
        round trip, on its first search with such a filter and words; `ensure_schema` reads it
        again): without it (a graph set up by an older version, until `contextgraph schema`),
        words are searched in `decision_text` and over-fetched as without the pre-filter."""
        signature = _signature(filters)
        seed = _seed(filters) if signature not in self._broad else None
        if seed is not None and words and self._scoped_text is None:
            self._scoped_text = self._has_scoped_text()
        fetch = {
            name: math.ceil(k * max(FIRST_FETCH, self._overfetch.get((name, *signature), 0)))
            + len(filters.exclude)
            for name in ("vector", "text")
        }
        params = {
            **_filter_params(filters),
            "vector": list(vector) if vector is not None else None,
            "model": model,
            "words": lucene_query(words, field=None) if words else None,
            "narrow_words": _narrowed_words(words, filters) if words else None,
            "k": k,
            "max_fetch": MAX_FETCH,
            "seed": seed,
            "scan_limit": SCAN_LIMIT,
            "narrow_text": bool(self._scoped_text),
        }
        while True:
            try:
                [row] = self._read(
                    load("precedent_candidates"),
                    {**params, "vector_fetch": fetch["vector"], "text_fetch": fetch["text"]},
                )
            except (StoreError, QueryRefusedError) as exc:
                if vector is not None and "dimension" in str(exc).lower():
                    raise self._width_error(model, len(vector)) from None
                raise
            short = [name for name in fetch if row[f"{name}_short"]]
            if not short:
                break
            for name in short:
                fetch[name] = _grown(fetch[name], k, int(row[f"{name}_kept"]))
        if seed is not None and not row["exact"]:
            if len(self._broad) >= 1024:
                self._broad.clear()
            self._broad.add(signature)
        for name, depth in fetch.items():
            needed = (depth - len(filters.exclude)) / k
            if filters.narrowed and needed > self._overfetch.get((name, *signature), FIRST_FETCH):
                if len(self._overfetch) >= 1024:
                    self._overfetch.clear()
                self._overfetch[(name, *signature)] = needed
        stale = StaleFacts(row["made"], row["points"], row["offers"], row["retirements"], row["answered"])
        return Candidates(
            # the vector index scores cosine c as (1 + c) / 2
            vector=[(h["key"], 2.0 * float(h["score"]) - 1.0) for h in row["vector_hits"]],
            text=[(h["key"], float(h["score"])) for h in row["text_hits"]],
            stale=stale,
            usefulness=row["usefulness"],
        )

    def _width_error(self, model: str, width: int) -> EmbeddingError:
        """The vector index was made for another embedding width than the model's."""
        dims = self._read(load("index_vector_options"), {})
        config = ((dims[0]["options"] or {}).get("indexConfig") or {}) if dims else {}
        return EmbeddingError(
            f"the store's vector index has {config.get('vector.dimensions')} dimensions, the model "
            f"{model!r} makes {width}: run `contextgraph embed` to re-embed with it"
        )

    def decision_details(self, keys: Sequence[str], *, vectors: str | None = None) -> dict[str, Row]:
        """As `GraphStore.decision_details`; the embeddings (`vectors`) come in the same round trip."""
        import numpy as np

        if not keys:
            return {}
        rows = self._read(load("precedent_card"), {"keys": list(dict.fromkeys(keys)), "model": vectors})
        details = self._fold_card(rows)
        for row in details.values():
            vector = row.pop("vector", None)
            if vectors is not None:
                row["vector"] = np.asarray(vector, dtype=np.float32) if vector is not None else None
        return details

    def decision_vectors(self, keys: Sequence[str], model: str) -> dict[str, Any]:
        import numpy as np

        rows = self._read(load("precedent_vectors"), {"keys": list(keys), "model": model})
        return {r["key"]: np.asarray(r["vector"], dtype=np.float32) for r in rows if r["vector"] is not None}

    def embedding_models(self) -> dict[str, int]:
        rows = self._read(load("embedding_models"), {})
        return {r["model"]: int(r["n"]) for r in rows}

    def read_only_query(
        self, cypher: str, params: Mapping[str, Any], *, timeout: float, row_limit: int
    ) -> tuple[list[Row], bool]:
        """Run an agent's query only if the read-only gate (`store.gate`) lets it through, in a READ
        transaction with a server-side timeout, pulling no more than `row_limit` rows.

        The gate looks at the text first (administration commands, USE, procedures and functions
        by name: refused before the server is asked), then at EXPLAIN's query type and plan
        (operators, ProcedureCall, functions in the details) against the allow-list and the
        procedures and functions the server reports (SHOW PROCEDURES/FUNCTIONS, read once).
        Raises QueryNotAllowedError (refused), CypherError (the engine rejected it; one line with
        what to change), QueryTimeoutError or QueryMemoryError (stopped while running).
        """
        allow = gate.allow_list()
        catalog = self._gate_catalog()
        sites = gate.check_text(cypher, self.dialect, allow, catalog)
        try:
            _, summary = self._execute_full("EXPLAIN " + cypher, params, write=False)
        except CypherError as exc:
            raise gate.engine_error(self.dialect, str(exc), stage="plan", query=cypher) from None
        gate.check_neo4j_plan(str(summary.query_type), summary.plan or {}, sites, catalog, allow)
        rows: list[Row] = []
        cut = False
        try:
            with (
                self._driver.session(
                    database=self.database, default_access_mode=neo4j.READ_ACCESS, fetch_size=row_limit + 1
                ) as session,
                session.begin_transaction(timeout=timeout) as tx,
            ):
                result = tx.run(cypher, dict(params))
                for record in result:
                    if len(rows) >= row_limit:
                        cut = True
                        break
                    rows.append({k: to_plain(v) for k, v in record.items()})  # type: ignore[no-untyped-call]
                tx.rollback()  # it only read; rolling back never pulls the rest of the rows
        except Neo4jError as exc:
            code = exc.code or ""
            if "TimedOut" in code:
                raise QueryTimeoutError(
                    f"the query ran longer than {timeout:g} s and was stopped: narrow it or add a LIMIT"
                ) from None
            if "MemoryPoolOutOfMemory" in code or "OutOfMemory" in code:
                raise QueryMemoryError(
                    "the query needed more memory than the server allows one transaction "
                    "(db.memory.transaction.max) and was stopped: narrow it, aggregate, or add a LIMIT"
                ) from None
            if isinstance(exc, ClientError | DatabaseError) and "Security" not in code:
                raise gate.engine_error(self.dialect, exc.message or str(exc), stage="run") from None
            raise self._translate(exc) from None
        except Exception as exc:
            raise self._translate(exc) from None
        return rows, cut

    def _gate_catalog(self) -> gate.Catalog:
        """The procedures (with their mode) and functions this server reports, read once."""
        if self._catalog is None:
            procedures = self._read(load("gate_procedures"), {})
            functions = self._read(load("gate_functions"), {})
            self._catalog = gate.Catalog(
                procedures={str(r["name"]).lower(): str(r["mode"]) for r in procedures},
                functions=frozenset(str(r["name"]).lower() for r in functions),
            )
        return self._catalog

    def _execute(self, cypher: str, params: Mapping[str, Any], *, write: bool) -> list[Row]:
        return self._execute_full(cypher, params, write=write)[0]

    def _execute_full(
        self, cypher: str, params: Mapping[str, Any], *, write: bool, timeout: float | None = None
    ) -> tuple[list[Row], neo4j.ResultSummary]:
        """The one place that calls the driver: database, routing, timeout and error mapping.
        Inside `write`'s transaction, the statement runs in it and errors reach the driver's retry
        untranslated (`write` translates them)."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            result = tx.run(cypher, dict(params))
            records = list(result)
            return [{k: to_plain(v) for k, v in r.items()} for r in records], result.consume()
        try:
            records, summary, _ = self._driver.execute_query(
                neo4j.Query(cypher, timeout=timeout),
                parameters_=dict(params),
                database_=self.database,
                routing_=RoutingControl.WRITE if write else RoutingControl.READ,
            )
        except Exception as exc:
            raise self._translate(exc) from None
        rows = [{k: to_plain(v) for k, v in record.items()} for record in records]  # type: ignore[no-untyped-call]
        return rows, summary

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, AuthError):
            return StoreAuthError(
                f"{self._where} rejected the username or password: check NEO4J_USERNAME and NEO4J_PASSWORD"
            )
        if isinstance(exc, ServiceUnavailable | SessionExpired):
            return StoreUnavailableError(
                f"{self._where} is unreachable ({type(exc).__name__}): start it, or fix NEO4J_URI"
            )
        if isinstance(exc, Neo4jTransientError):  # still failing after the driver's own retries
            return StoreUnavailableError(
                f"{self._where} kept failing with a transient error ({exc.code}); try again later"
            )
        if isinstance(exc, ClientError) and exc.code and "ConstraintValidationFailed" in exc.code:
            return _KeyTaken(f"{self._where} refused a duplicate key: {exc.message}")
        if isinstance(exc, ClientError) and exc.code and "Security" in exc.code:
            return StoreAuthError(f"{self._where} refused access: {exc.message}")
        if isinstance(exc, ClientError):
            return CypherError(f"{self._where} refused the query: {exc.message}")
        if isinstance(exc, Neo4jError | DriverError):
            return StoreError(f"{self._where} failed: {type(exc).__name__}: {getattr(exc, 'message', exc)}")
        return exc


class _KeyTaken(QueryRefusedError):
    """A CREATE met the uniqueness constraint: the key exists (written by another writer)."""


def _signature(filters: CandidateFilter) -> tuple[Any, ...]:
    """What the selectivity of a filter depends on (the excluded keys only add their number)."""
    return (filters.deployment, filters.dag_id, filters.task_id, filters.chosen, filters.since)


def _seed(filters: CandidateFilter) -> str | None:
    """The filter the pre-filter reads its decisions through (an index each; the narrowest
    first), or None when no filter has an index (`chosen`, `since`)."""
    if filters.dag_id is not None and filters.task_id is not None:
        return "point"
    if filters.dag_id is not None:
        return "dag"
    if filters.task_id is not None:
        return "task"
    if filters.deployment is not None:
        return "deployment"
    return None


def _narrowed_words(words: Sequence[str], filters: CandidateFilter) -> str:
    """The Lucene query of `words` in situation_text, required to be of the filters' DAG, task and
    deployment (their fields in `decision_scoped_text`; boost 0, so scores are those of the words
    alone, as `decision_text` gives them)."""
    values = (("dag_id", filters.dag_id), ("task_id", filters.task_id), ("deployment", filters.deployment))
    narrowing = " ".join(f'+{field}:"{lucene_escape(v)}"^0' for field, v in values if v is not None)
    return f"+({lucene_query(words, field='situation_text')}) {narrowing}"


def _grown(fetch: int, k: int, kept: int) -> int:
    """The next fetch of an index whose `fetch` answers kept `kept` < k after filtering."""
    factor = min(float(GROWTH), max(2.0, 1.5 * k / max(kept, 1)))
    return min(MAX_FETCH, math.ceil(fetch * factor))


def _filter_params(filters: CandidateFilter) -> dict[str, Any]:
    since = filters.since
    return {
        "dag_id": filters.dag_id,
        "task_id": filters.task_id,
        "chosen": filters.chosen,
        "since": since.astimezone(UTC) if since is not None and since.tzinfo else since,
        "exclude": sorted(filters.exclude),
        "deployment": filters.deployment,
    }
