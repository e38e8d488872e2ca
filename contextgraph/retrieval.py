"""Precedent search: how did humans decide cases like this one, and why?

    find_similar_decisions(store, embedder, text, …) -> [Precedent]   hybrid ranked search
    get_decision_trace(store, key) -> DecisionTrace                    one decision in context
    record_precedents(store, decision_key, precedents)                 INFORMED_BY feedback edges
    read_cypher(store, query, params) -> [dict]                        the agents' read-only Cypher tool

Ranking is hybrid: meaning (embedding cosine) and words (full-text / BM25) each rank the answered
decisions that pass the filters, and the two ranks are fused by weighted reciprocal-rank fusion,
with a bonus for decisions taken at the same decision point as the case at hand. On Neo4j one
Cypher statement does it all with the vector and full-text indexes (`cypher/similar_decisions`);
on the embedded store Cypher computes both ranked lists (exact cosine scan, BM25 from regular
expressions: Ladybug's FTS extension downloads at run time) and the same formula fuses them here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from contextgraph import model as m
from contextgraph.embeddings import Embedder
from contextgraph.errors import ConfigError
from contextgraph.queries import load
from contextgraph.store.base import GraphStore, Row

Mode = Literal["hybrid", "vector", "text"]

Fusion = Literal["relative", "rrf"]

FUSION: Fusion = "relative"
"""How the two signals combine. `relative` (default): each signal's scores are scaled to 0..1 over
its candidates (vector: min-max; words: score / best score) and added with weights, so a signal
that is sure of its best match (a clear BM25 margin) counts more than one whose scores are all
alike. `rrf`: reciprocal-rank fusion, weight / (RRF_K + rank), which ignores the margins."""
RRF_K = 60.0
VECTOR_WEIGHT = 1.0
TEXT_WEIGHT = 1.0
POINT_WEIGHT = {"relative": 0.1, "rrf": 0.5 / (RRF_K + 1)}
"""Bonus for the same decision point as the case at hand (a preference, not a filter)."""
MAX_TERMS = 16
"""At most this many distinct words of a query are matched (the first ones)."""
BM25_K1 = 1.2
BM25_B = 0.75
_NO_WORDS = "contextgraph_no_query_words"  # a Lucene query that matches nothing


# --- results ------------------------------------------------------------------------------------


class Signals(BaseModel):
    """Why a precedent was found: its rank and score in each signal, and the point bonus."""

    vector_rank: int | None = None
    vector_score: float | None = None
    text_rank: int | None = None
    text_score: float | None = None
    same_point: bool = False


class DecisionRef(BaseModel):
    """Which decision: its key, the ids it is made of, and what was asked."""

    key: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1
    subject: str = ""


class Precedent(DecisionRef):
    """An earlier human decision shown to an agent: the case, the choice, the reason and the link."""

    chosen_options: list[str] = []
    reason: str | None = None
    reviewer: str | None = None
    responded_at: datetime | None = None
    proposal: str | None = None
    verdict: str | None = None
    url: str | None = None
    score: float = 0.0
    signals: Signals = Field(default_factory=Signals)

    def summary(self) -> str:
        chosen = " / ".join(self.chosen_options) or "(nothing chosen)"
        why = f" because {self.reason!r}" if self.reason else ""
        return f"{self.subject!r}: {chosen}{why}"


# --- words --------------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not now of off on once only or other our ours out over own please same she should so some
    such than that the their theirs them then there these they this those through to too under until
    up very was we were what when where which while who whom why will with would you your yours
    hi hello thanks thank regards dear""",
    )
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s", "ly")
_LUCENE_SPECIAL = re.compile(r'([+\-!(){}\[\]^"~*?:\\/]|&&|\|\|)')


def terms(text: str, limit: int = 32) -> list[str]:
    """The distinct content words of a text, lower-cased, in order (stop words dropped)."""
    seen: dict[str, None] = {}
    for word in re.findall(r"\w+", text.lower()):
        if len(word) > 1 and word not in _STOPWORDS and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)[:limit]


def stem(word: str) -> str:
    """A crude English stem (longest known suffix off, at least 4 letters kept): cost|s, request|ed."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def lucene_escape(text: str) -> str:
    """Escape every character Lucene's query parser treats specially."""
    return _LUCENE_SPECIAL.sub(r"\\\1", text)


def lucene_query(words: Sequence[str], field: str | None = "search_text") -> str:
    """Any of the words in the decision's search text, each also as a prefix of its stem.

    The prefix ("cancelling" -> "cancel*") stands in for stemming, which the default analyzer of
    the full-text index lacks; Lucene scores a prefix as a constant (no IDF), so it gets half the
    weight, to keep rare exact words decisive. Every word is escaped.
    """
    parts = []
    for word in words:
        root = stem(word)
        parts.append(lucene_escape(word))
        if len(root) >= 4:
            parts.append(f"{lucene_escape(root)}*^0.5")
    if not parts:
        return _NO_WORDS
    query = " OR ".join(parts)
    return f"{field}:({query})" if field else query


def word_patterns(words: Sequence[str]) -> list[str]:
    """Regular expressions for the embedded store: a word starting with each word's stem, any case."""
    return [r"(?i)\b" + re.escape(stem(word)) for word in words]


# --- precedent search ---------------------------------------------------------------------------


def find_similar_decisions(
    store: GraphStore,
    embedder: Embedder | None,
    text: str,
    *,
    dag_id: str | None = None,
    task_id: str | None = None,
    chosen: str | None = None,
    since: datetime | None = None,
    k: int = 5,
    point: tuple[str, str] | None = None,
    exclude: Iterable[str] = (),
    mode: Mode = "hybrid",
    fusion: Fusion | None = None,
    airflow_url: str | None = None,
    fetch: int | None = None,
) -> list[Precedent]:
    """The `k` answered decisions most like `text`, best first, with why each was found.

    `dag_id`, `task_id`, `chosen` (an option label) and `since` (answered at or after) filter.
    `point` = (dag_id, task_id) of the decision at hand prefers precedents from the same decision
    point without excluding others (given dag_id and task_id filters, it defaults to them).
    `exclude` leaves decisions out (e.g. the one being decided). `mode` picks one signal only,
    for evaluation; `fusion` how the signals combine (see FUSION). Without an embedder, only
    words are used.
    """
    if k < 1:
        return []
    fusion = fusion or FUSION
    if embedder is None:
        mode = "text"
    words = terms(text)
    weights = {
        "vector_weight": VECTOR_WEIGHT if mode in ("hybrid", "vector") else 0.0,
        "text_weight": TEXT_WEIGHT if mode in ("hybrid", "text") and words else 0.0,
        "point_weight": POINT_WEIGHT[fusion] if mode == "hybrid" else 0.0,
        "rrf_k": RRF_K,
        "relative": fusion == "relative",
    }
    if point is None and dag_id is not None and task_id is not None:
        point = (dag_id, task_id)
    filters: dict[str, Any] = {
        "dag_id": dag_id,
        "task_id": task_id,
        "chosen": chosen,
        "since": _utc(since),
        "exclude": list(exclude),
    }
    filtered = any(v is not None for v in (dag_id, task_id, chosen, since))
    fetch = fetch or max(100, 20 * k) * (10 if filtered else 1)
    vector = (
        embedder.embed([text])[0].tolist() if embedder is not None and weights["vector_weight"] > 0 else None
    )
    search = _Search(
        vector, words, embedder.name if embedder is not None else "", filters, weights, point, fetch, k
    )
    rank = _rank_neo4j if store.dialect == "neo4j" else _rank_embedded
    return _precedents(store, rank(store, search), airflow_url)


@dataclass(frozen=True)
class _Search:
    """One precedent search, as both engines' ranking needs it."""

    vector: list[float] | None
    words: list[str]
    model_name: str
    filters: dict[str, Any]
    weights: dict[str, Any]
    point: tuple[str, str] | None
    fetch: int
    k: int


def _rank_neo4j(store: GraphStore, search: _Search) -> list[Row]:
    vector, weights, point = search.vector, search.weights, search.point
    if vector is None:  # the vector index needs a query vector; its weight is 0 anyway
        vector = [1.0] + [0.0] * (_index_dimensions(store) - 1)
    params = {
        **search.filters,
        **weights,
        "vector": vector,
        "model": search.model_name,
        "words": lucene_query(search.words) if weights["text_weight"] > 0 else _NO_WORDS,
        "fetch": search.fetch,
        "k": search.k,
        "point_dag": point[0] if point else None,
        "point_task": point[1] if point else None,
    }
    return store.query(load("similar_decisions", "neo4j"), params)


def _index_dimensions(store: GraphStore) -> int:
    rows = store.query("SHOW INDEXES YIELD name, options WHERE name = 'decision_embedding' RETURN options")
    config = (rows[0]["options"] or {}).get("indexConfig", {}) if rows else {}
    return int(config.get("vector.dimensions") or 1)


def _rank_embedded(store: GraphStore, search: _Search) -> list[Row]:
    vector, words, weights, fetch = search.vector, search.words, search.weights, search.fetch
    filters = search.filters
    since = _naive(filters["since"])
    filters = {  # Ladybug types a null parameter as BOOL: "no filter" is an empty value instead
        "dag_id": filters["dag_id"] or "",
        "task_id": filters["task_id"] or "",
        "chosen": filters["chosen"] or "",
        "since": since or datetime(1970, 1, 1),
        "since_set": since is not None,
        "exclude": [str(key) for key in filters["exclude"]] or [""],
    }
    vector_hits: list[Row] = []
    if vector is not None and weights["vector_weight"] > 0:
        query = load("similar_vector", "embedded").replace("{dimensions}", str(len(vector)))
        vector_hits = store.query(
            query, {**filters, "vector": vector, "model": search.model_name, "fetch": fetch}
        )
    text_hits: list[Row] = []
    if words and weights["text_weight"] > 0:
        patterns = {f"p{i}": pattern for i, pattern in enumerate(word_patterns(words[:MAX_TERMS]))}
        counts = ", ".join(
            f"sum(CASE WHEN regexp_matches(d.search_text, ${name}) THEN 1 ELSE 0 END) AS df{i}"
            for i, name in enumerate(patterns)
        )
        stats = store.query(load("similar_text_stats", "embedded").replace("{term_counts}", counts), patterns)
        if stats and stats[0]["n"]:
            n = float(stats[0]["n"])
            idf = {f"w{i}": _idf(n, float(stats[0][f"df{i}"] or 0)) for i in range(len(patterns))}
            scores = " + ".join(
                f"(CASE WHEN regexp_matches(d.search_text, $p{i}) THEN $w{i} ELSE 0.0 END)"
                for i in range(len(patterns))
            )
            params = {
                **filters,
                **patterns,
                **idf,
                "avg_len": float(stats[0]["avg_len"] or 1.0) or 1.0,
                "k1": BM25_K1,
                "b": BM25_B,
                "fetch": fetch,
            }
            text_hits = store.query(load("similar_text", "embedded").replace("{term_scores}", scores), params)
    return fuse(vector_hits, text_hits, weights, search.point, search.k)


def _idf(n: float, df: float) -> float:
    """BM25's inverse document frequency (always positive)."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def fuse(
    vector_hits: Sequence[Row],
    text_hits: Sequence[Row],
    weights: Mapping[str, Any],
    point: tuple[str, str] | None,
    k: int,
) -> list[Row]:
    """Fuse two ranked lists of {key, score} (best first): the formula of `similar_decisions.cypher`."""
    found: dict[str, Row] = {}
    v_hi, v_lo = (vector_hits[0]["score"], vector_hits[-1]["score"]) if vector_hits else (0.0, 0.0)
    t_hi = text_hits[0]["score"] if text_hits else 0.0
    for rank, hit in enumerate(vector_hits, start=1):
        norm = (hit["score"] - v_lo) / (v_hi - v_lo) if v_hi > v_lo else 1.0
        found.setdefault(hit["key"], {"key": hit["key"]}).update(vrank=rank, vscore=hit["score"], vnorm=norm)
    for rank, hit in enumerate(text_hits, start=1):
        norm = hit["score"] / t_hi if t_hi > 0 else 0.0
        found.setdefault(hit["key"], {"key": hit["key"]}).update(trank=rank, tscore=hit["score"], tnorm=norm)
    c = weights["rrf_k"]
    for row in found.values():
        same = point is not None and _point_of(row["key"]) == point
        row["same_point"] = same
        if weights["relative"]:
            vector_part = weights["vector_weight"] * row.get("vnorm", 0.0)
            text_part = weights["text_weight"] * row.get("tnorm", 0.0)
        else:
            vector_part = weights["vector_weight"] / (c + row["vrank"]) if "vrank" in row else 0.0
            text_part = weights["text_weight"] / (c + row["trank"]) if "trank" in row else 0.0
        row["score"] = vector_part + text_part + (weights["point_weight"] if same else 0.0)
    ranked = sorted(found.values(), key=lambda r: (-r["score"], r["key"]))
    return ranked[:k]


def _point_of(key: str) -> tuple[str, str]:
    parts = _split_key(key)
    return parts[0], parts[2]


def _split_key(key: str) -> list[str]:
    """The parts of a natural key (the inverse of model.make_key)."""
    parts, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == m.KEY_SEPARATOR:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _precedents(store: GraphStore, ranked: Sequence[Row], airflow_url: str | None) -> list[Precedent]:
    if not ranked:
        return []
    details: dict[str, Row] = {}
    for row in store.query(load("precedent_details", store.dialect), {"keys": [r["key"] for r in ranked]}):
        folded = details.setdefault(row["key"], dict(row))
        for name in ("proposal", "verdict", "actor_name", "actor_id"):
            if folded.get(name) is None and row.get(name) is not None:
                folded[name] = row[name]
    out = []
    for hit in ranked:
        d = details.get(hit["key"])
        if d is None:
            continue
        out.append(
            Precedent(
                key=d["key"],
                dag_id=d["dag_id"],
                run_id=d["run_id"],
                task_id=d["task_id"],
                map_index=d["map_index"] if d["map_index"] is not None else -1,
                try_number=d["try_number"] if d["try_number"] is not None else 1,
                subject=d["subject"] or "",
                chosen_options=d["chosen_options"] or [],
                reason=d["reason"],
                reviewer=d["actor_name"] or d["responded_by"] or d["actor_id"],
                responded_at=d["responded_at"],
                proposal=d["proposal"],
                verdict=d["verdict"],
                url=airflow_link(airflow_url, d["dag_id"], d["run_id"], d["task_id"], d["map_index"]),
                score=float(hit["score"]),
                signals=Signals(
                    vector_rank=hit.get("vrank"),
                    vector_score=hit.get("vscore"),
                    text_rank=hit.get("trank"),
                    text_score=hit.get("tscore"),
                    same_point=bool(hit.get("same_point")),
                ),
            )
        )
    return out


def airflow_link(
    base_url: str | None, dag_id: str, run_id: str, task_id: str, map_index: int | None = -1
) -> str | None:
    """The task instance in the Airflow 3 UI (the route Airflow's own TaskInstance.log_url uses)."""
    if not base_url:
        return None
    mapped = f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else ""
    return (
        f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        f"/tasks/{quote(task_id, safe='')}{mapped}"
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _naive(value: datetime | None) -> datetime | None:
    """Ladybug's TIMESTAMP has no zone: the store keeps UTC without it."""
    return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None


# --- one decision in context ----------------------------------------------------------------------


class TaskState(BaseModel):
    task_id: str
    map_index: int = -1
    state: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


class ProposalView(BaseModel):
    task_id: str | None = None
    text: str
    verdict: str | None = None


class InformingPrecedent(BaseModel):
    key: str
    subject: str = ""
    chosen_options: list[str] = []
    reason: str | None = None
    rank: int | None = None
    score: float | None = None
    recorded_at: datetime | None = None


class DecisionTrace(DecisionRef):
    """A decision in its context: what fed it, what it judged, what was decided and why, what followed."""

    body: str | None = None
    offered: list[str] = []
    chosen_options: list[str] = []
    reason: str | None = None
    reviewer: str | None = None
    created_at: datetime | None = None
    responded_at: datetime | None = None
    response_received: bool = False
    timed_out: bool = False
    upstream: list[TaskState] = []
    proposals: list[ProposalView] = []
    downstream: list[TaskState] = []
    informed_by: list[InformingPrecedent] = []
    url: str | None = None

    def to_markdown(self) -> str:
        lines = [f"# Decision: {self.subject or self.task_id}", ""]
        lines.append(f"- **Where**: `{self.dag_id}` / run `{self.run_id}` / task `{self.task_id}`")
        if self.url:
            lines.append(f"- **Airflow**: {self.url}")
        asked = _when(self.created_at)
        if asked:
            lines.append(f"- **Asked**: {asked}")
        lines.append("")
        if self.upstream:
            lines += ["## Upstream context", ""]
            lines += [f"- `{t.task_id}`{_state(t)}" for t in self.upstream]
            lines.append("")
        if self.body:
            lines += ["## The case", "", self.body.strip(), ""]
        if self.proposals:
            lines += ["## AI proposal", ""]
            for p in self.proposals:
                source = f" (from `{p.task_id}`)" if p.task_id else ""
                verdict = f" — verdict: **{p.verdict}**" if p.verdict else ""
                lines += [f"{_quote(p.text)}", "", f"{source.strip()}{verdict}".strip(" —"), ""]
        lines += ["## Decision", ""]
        if self.offered:
            lines.append("- **Options offered**: " + ", ".join(f"`{o}`" for o in self.offered))
        if self.response_received:
            chosen = ", ".join(f"**{c}**" for c in self.chosen_options) or "(nothing)"
            lines.append(
                f"- **Chosen**: {chosen}" + (" (timed out: default taken)" if self.timed_out else "")
            )
            lines.append(f"- **Reason**: {self.reason or '(none given)'}")
            lines.append(f"- **Reviewer**: {self.reviewer or '(unknown)'}")
            if self.responded_at:
                lines.append(f"- **Answered**: {_when(self.responded_at)}")
        else:
            lines.append("- **Status**: waiting for a human answer")
        lines.append("")
        if self.downstream:
            lines += ["## What followed", ""]
            lines += [f"- `{t.task_id}`{_state(t)}" for t in self.downstream]
            lines.append("")
        if self.informed_by:
            lines += ["## Precedents that informed it", ""]
            for earlier in self.informed_by:
                why = f" because {earlier.reason!r}" if earlier.reason else ""
                rank = f"{earlier.rank}. " if earlier.rank is not None else "- "
                chosen = " / ".join(earlier.chosen_options)
                lines.append(f"{rank}{earlier.subject!r}: {chosen}{why} (`{earlier.key}`)")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _state(task: TaskState) -> str:
    return f": {task.state}" if task.state else ": (not run)"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in text.strip().splitlines()) or "> (empty)"


def get_decision_trace(store: GraphStore, key: str, *, airflow_url: str | None = None) -> DecisionTrace:
    """The decision with `key` in its context; raises LookupError if there is none."""
    rows = store.query(load("trace_decision", store.dialect), {"key": key})
    if not rows:
        raise LookupError(f"no decision with key {key!r}")
    d = rows[0]
    proposals: list[ProposalView] = []
    reviewer = None
    for row in rows:
        reviewer = reviewer or row["actor_name"] or row["actor_id"]
        if row["proposal"] is None:
            continue
        view = ProposalView(task_id=row["proposal_task_id"], text=row["proposal"], verdict=row["verdict"])
        if view not in proposals:
            proposals.append(view)
    params = {"dag_id": d["dag_id"], "run_id": d["run_id"], "task_id": d["task_id"]}
    topology = store.query(load("trace_topology", store.dialect), params)
    upstream_ids = set(d["upstream_task_ids"] or [])
    downstream_ids: set[str] = set()
    if topology:
        upstream_ids |= set(topology[0]["upstream"] or [])
        downstream_ids = set(topology[0]["downstream"] or [])
    instances = {
        (r["task_id"], r["map_index"]): TaskState(**r)
        for r in store.query(load("trace_instances", store.dialect), params)
    }
    by_task: dict[str, list[TaskState]] = {}
    for (task, _), state in instances.items():
        by_task.setdefault(task, []).append(state)

    def states(task_ids: set[str]) -> list[TaskState]:
        out = []
        for task in task_ids:
            out.extend(by_task.get(task) or [TaskState(task_id=task)])
        return sorted(out, key=lambda t: (t.start_date or datetime.max.replace(tzinfo=UTC), t.task_id))

    informed = [
        InformingPrecedent(**{k: v for k, v in r.items() if k in InformingPrecedent.model_fields})
        for r in store.query(load("trace_informed_by", store.dialect), {"key": key})
    ]
    return DecisionTrace(
        key=d["key"],
        dag_id=d["dag_id"],
        run_id=d["run_id"],
        task_id=d["task_id"],
        map_index=d["map_index"] if d["map_index"] is not None else -1,
        try_number=d["try_number"] if d["try_number"] is not None else 1,
        subject=d["subject"] or "",
        body=d["body"],
        offered=d["offered"] or [],
        chosen_options=d["chosen_options"] or [],
        reason=d["reason"],
        reviewer=reviewer or d["responded_by"],
        created_at=d["created_at"],
        responded_at=d["responded_at"],
        response_received=bool(d["response_received"]),
        timed_out=bool(d["timed_out"]),
        upstream=states(upstream_ids),
        proposals=proposals,
        downstream=states(downstream_ids),
        informed_by=informed,
        url=airflow_link(airflow_url, d["dag_id"], d["run_id"], d["task_id"], d["map_index"]),
    )


# --- the feedback loop --------------------------------------------------------------------------


def record_precedents(
    store: GraphStore,
    decision_key: str,
    precedents: Sequence[Precedent],
    *,
    recorded_at: datetime | None = None,
) -> int:
    """Record that these precedents (in this order) were shown when `decision_key` was decided.

    Idempotent: the edges are MERGEd on (decision, precedent); a later call with other ranks or
    scores updates them. Returns how many edges were written (new or changed).
    """
    when = _utc(recorded_at) or datetime.now(UTC).replace(microsecond=0)
    batch = m.GraphBatch()
    for rank, precedent in enumerate(precedents, start=1):
        if precedent.key == decision_key:
            continue
        batch.add(
            m.InformedBy(
                src=decision_key,
                dst=precedent.key,
                rank=rank,
                score=round(precedent.score, 6),
                recorded_at=when,
            )
        )
    if not batch:
        return 0
    return store.write(batch).written


# --- the agents' read-only Cypher tool ----------------------------------------------------------


def read_cypher(
    store: GraphStore,
    query: str,
    params: Mapping[str, Any] | None = None,
    *,
    timeout: float = 10.0,
    row_limit: int = 1000,
) -> list[dict[str, Any]]:
    """Run a read-only Cypher query for an agent: rows as JSON-able values, at most `row_limit`.

    The read-only gate (`store.gate`, an allow-list of procedures, functions and plan operators,
    extendable by CONTEXTGRAPH_CYPHER_ALLOW) decides from the text and EXPLAIN's plan; Neo4j runs it
    in a READ transaction with a server-side timeout, the embedded store on a separate read-only
    database of the file. Raises QueryRefusedError: QueryNotAllowedError (refused), CypherError
    (the engine rejected it), QueryTimeoutError/QueryMemoryError (stopped). Use
    `agent_tools.run_read_cypher` to learn whether the rows were cut.
    """
    if timeout <= 0 or row_limit < 1:
        raise ConfigError("read_cypher needs a positive timeout and row_limit")
    rows, _cut = store.read_only_query(query, params or {}, timeout=timeout, row_limit=row_limit)
    return [{k: jsonable(v) for k, v in row.items()} for row in rows]


def jsonable(value: Any) -> Any:
    """Engine values as JSON values: ISO datetimes, plain nodes/relationships as property maps."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "items") and callable(value.items):  # neo4j Node / Relationship
        data = {k: jsonable(v) for k, v in value.items()}
        labels = getattr(value, "labels", None)
        if labels is not None:
            data["_labels"] = sorted(labels)
        rel_type = getattr(value, "type", None)
        if isinstance(rel_type, str):
            data["_type"] = rel_type
        return data
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
