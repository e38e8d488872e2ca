"""Precedent search: how did humans decide cases like this one, and why?

    find_similar_decisions(store, embedder, text, …) -> [Precedent]   ranked precedents (decisions)
    find_lessons(store, embedder, text, …) -> [Lesson]                 what those decisions teach
    get_decision_trace(store, key) -> DecisionTrace                    one decision in context
    record_precedents(store, decision_key, precedents)                 INFORMED_BY feedback edges
    read_cypher(store, query, params) -> [dict]                        the agents' read-only Cypher tool

Each store returns candidates from its own indexes; `contextgraph.retrieval.ranking` fuses them with one
formula for both stores (documented there and in the README), `contextgraph.retrieval.lessons` groups them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from contextgraph import model as m
from contextgraph.errors import ConfigError, ContextGraphError, UnknownDeploymentError
from contextgraph.ingest.embeddings import Embedder
from contextgraph.ingest.mapping import informed_by_edges
from contextgraph.model import DEFAULT_DEPLOYMENT
from contextgraph.retrieval import ranking, usefulness
from contextgraph.retrieval.lessons import Lesson, find_lessons, lessons_prompt
from contextgraph.retrieval.ranking import SIGNALS, Reranker
from contextgraph.retrieval.words import lucene_query, query_terms, query_text
from contextgraph.store.base import CandidateFilter, GraphStore, Row
from contextgraph.store.queries import load

__all__ = [
    "SIGNALS",
    "DecisionTrace",
    "Lesson",
    "Precedent",
    "QueryTextError",
    "Reranker",
    "find_lessons",
    "find_similar_decisions",
    "get_decision_trace",
    "lessons_prompt",
    "lucene_query",
    "read_cypher",
    "record_precedents",
]

Mode = Literal["hybrid", "vector", "text"]

MAX_QUERY_CHARS = 20_000
"""A longer query text is refused (a case is a ticket and a draft, not a document)."""


class QueryTextError(ContextGraphError, ValueError):
    """The query text cannot be searched with (empty, too long, or without any words)."""


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
    deployment: str = DEFAULT_DEPLOYMENT
    """The Airflow the decision came from (`CONTEXTGRAPH_DEPLOYMENT` of its ingest)."""
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
    usefulness: float | None = None
    """How often drafts this precedent informed were approved, 0..1 (`contextgraph.retrieval.usefulness`;
    None: never shown to a drafting agent, or scores not refreshed yet)."""
    shown: int = 0
    """How many reviewed drafts it informed (the evidence behind `usefulness`)."""
    maybe_outdated: bool = False
    """It led to overridden drafts again and again: "this lesson may be outdated" (for a human)."""
    stale: str | None = None
    """Why it ranks below current precedents: "superseded by DAG version N: …" or
    "retired by X on DATE: why" (`contextgraph.retrieval.supersede`); None when current."""

    def summary(self) -> str:
        chosen = " / ".join(self.chosen_options) or "(nothing chosen)"
        why = f" because {self.reason!r}" if self.reason else ""
        return f"{self.subject!r}: {chosen}{why}{self.notes()}"

    def notes(self) -> str:
        """Why a reader should weigh it less: " [stale reason; this lesson may be outdated]" or ""."""
        notes = [self.stale] if self.stale else []
        if self.maybe_outdated:
            notes.append("this lesson may be outdated")
        return f" [{'; '.join(notes)}]" if notes else ""


# --- precedent search ---------------------------------------------------------------------------


def check_query(text: str) -> str:
    """The text to search with (`words.query_text`: a pasted email without markup or quoted
    history), or QueryTextError saying why the text cannot be searched with."""
    if not isinstance(text, str) or not text.strip():
        raise QueryTextError("the query text is empty: describe the case (its subject and request)")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryTextError(
            f"the query text has {len(text):,} characters, at most {MAX_QUERY_CHARS:,} are searched: "
            "pass the case's subject and request, not a whole document"
        )
    if not query_terms(text):
        raise QueryTextError(
            "the query text has no words to search with (only stop words, numbers, symbols or emoji): "
            "describe the case in words"
        )
    return query_text(text)


def find_similar_decisions(
    store: GraphStore,
    embedder: Embedder | None,
    text: str,
    *,
    dag_id: str | None = None,
    task_id: str | None = None,
    chosen: str | None = None,
    since: datetime | None = None,
    deployment: str | None = None,
    k: int = 5,
    point: tuple[str, str] | None = None,
    exclude: Iterable[str] = (),
    mode: Mode = "hybrid",
    signals: Collection[str] | None = None,
    diversify: bool = True,
    reranker: Reranker | None = None,
    airflow_url: str | None = None,
) -> list[Precedent]:
    """The `k` answered decisions most like `text`, best first, with why each was found.

    `dag_id`, `task_id`, `chosen` (an option label), `since` (answered at or after) and
    `deployment` (UnknownDeploymentError when nothing is found and the graph has no DAGs of it)
    filter.
    `point` = (dag_id, task_id) of the decision at hand prefers precedents from the same decision
    point without excluding others (given dag_id and task_id filters, it defaults to them).
    `exclude` leaves decisions out (e.g. the one being decided). `mode` keeps one signal only
    ("vector", "text"); `signals` names the signals to use (default: `ranking.DEFAULT_SIGNALS`;
    "usefulness" is off unless named); `diversify`
    applies MMR; `reranker` reorders the best 20. Without an embedder, only words are used.

    Raises QueryTextError for an empty, over-long (> MAX_QUERY_CHARS) or wordless text, and
    EmbeddingError when the store's embeddings come from another model or have another width.
    """
    text = check_query(text)
    if k < 1:
        return []
    if point is None and dag_id is not None and task_id is not None:
        point = (dag_id, task_id)
    if mode == "vector":
        signals = {"vector"}
    elif mode == "text":
        signals = {"text"}
    filters = CandidateFilter(
        dag_id=dag_id,
        task_id=task_id,
        chosen=chosen,
        since=_utc(since),
        exclude=frozenset(exclude),
        deployment=deployment,
    )
    query = ranking.prepare(embedder, text, point=point, filters=filters, signals=signals)
    ranked = ranking.rank(
        store, query, k, diversify=diversify and mode == "hybrid", reranker=reranker, describe=_describe
    )
    if not ranked:
        check_deployment(store, deployment)  # found nothing: an unknown deployment is an error
    return [_precedent(r.details, r, airflow_url, r.learned) for r in ranked if r.details is not None]


def _describe(d: Row) -> str:
    """What a reranker reads of a candidate: subject, the AI proposal, choice and reason."""
    chosen = " / ".join(d.get("chosen_options") or [])
    parts = [d.get("subject"), d.get("proposal"), chosen, d.get("reason")]
    return "\n".join(p for p in parts if isinstance(p, str) and p)


def check_deployment(store: GraphStore, deployment: str | None) -> None:
    """UnknownDeploymentError (naming the deployments there are) when the graph has no DAGs of
    `deployment`; nothing for None."""
    if deployment is None:
        return
    known = [r["name"] for r in store.query(load("deployments")) if r["name"] is not None]
    if deployment not in known:
        raise UnknownDeploymentError(
            f"unknown deployment {deployment!r} (deployments in the graph: {', '.join(known) or 'none yet'})"
        )


def _ref_fields(d: Row) -> dict[str, Any]:
    """The `DecisionRef` fields of a stored decision row (missing map index/try as Airflow's defaults)."""
    return {
        "key": d["key"],
        "deployment": d.get("deployment") or DEFAULT_DEPLOYMENT,
        "dag_id": d["dag_id"],
        "run_id": d["run_id"],
        "task_id": d["task_id"],
        "map_index": d["map_index"] if d["map_index"] is not None else -1,
        "try_number": d["try_number"] if d["try_number"] is not None else 1,
        "subject": d["subject"] or "",
    }


def _precedent(
    d: Row, hit: ranking.Ranked, airflow_url: str | None, learned: usefulness.Usefulness | None
) -> Precedent:
    return Precedent(
        **_ref_fields(d),
        chosen_options=d["chosen_options"] or [],
        reason=d["reason"],
        reviewer=d["actor_name"] or d["responded_by"] or d["actor_id"],
        responded_at=d["responded_at"],
        proposal=d["proposal"],
        verdict=d["verdict"],
        url=airflow_link(airflow_url, d["dag_id"], d["run_id"], d["task_id"], d["map_index"]),
        score=float(hit.score),
        signals=Signals(
            vector_rank=hit.vector_rank,
            vector_score=hit.vector_score,
            text_rank=hit.text_rank,
            text_score=hit.text_score,
            same_point=hit.same_point,
        ),
        usefulness=learned.score if learned else None,
        shown=learned.shown if learned else 0,
        maybe_outdated=bool(learned and learned.maybe_outdated),
        stale=hit.stale,
    )


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
    rows = store.query(store.cypher("trace_decision"), {"key": key})
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
    params = {
        "deployment": d.get("deployment") or DEFAULT_DEPLOYMENT,
        "dag_id": d["dag_id"],
        "run_id": d["run_id"],
        "task_id": d["task_id"],
    }
    topology = store.query(store.cypher("trace_topology"), params)
    upstream_ids = set(d["upstream_task_ids"] or [])
    downstream_ids: set[str] = set()
    if topology:
        upstream_ids |= set(topology[0]["upstream"] or [])
        downstream_ids = set(topology[0]["downstream"] or [])
    instances = {
        (r["task_id"], r["map_index"]): TaskState(**r)
        for r in store.query(store.cypher("trace_instances"), params)
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
        for r in store.query(store.cypher("trace_informed_by"), {"key": key})
    ]
    return DecisionTrace(
        **_ref_fields(d),
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
    ranked = [(p.key, round(p.score, 6)) for p in precedents]
    edges = informed_by_edges(decision_key, ranked, when)
    if not edges:
        return 0
    return store.write(m.GraphBatch(edges=list(edges))).written


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
