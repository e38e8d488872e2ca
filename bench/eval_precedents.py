"""How well does precedent search rank the past decisions an agent should see? On cases nobody tuned for.

    python -m bench.eval_precedents [--store neo4j|embedded|both] [--split dev|test|both]
                                    [--json] [--smoke] [--corpus DIR] [--embedded-path PATH]

The corpus (`bench/precedents/`, see its README) is loaded and validated by `bench.corpus`, turned
into the records Airflow's REST API v2 returns, and ingested the user's way (Source → Sync →
store → embed_pending) into a fresh store: Neo4j (NEO4J_URI if set — its database is wiped! —
else a throw-away server from the tests' launcher) and/or the embedded store in a temp folder.
Embedder: CONTEXTGRAPH_EMBEDDING_MODEL (default: the shared model folder).

Each new case of the split asks `contextgraph.retrieval.precedents.find_similar_decisions(query,
point=(dag_id, task_id))`, as the agent tools do. Printed per split and store:

* hit@1, hit@3 (a result with relevance >= 1 at rank <= k), MRR (first relevant result), nDCG@5
  (graded gains 2^grade - 1 over the ideal order of all graded decisions), ms/query, for hybrid
  and each single signal (mode="vector", mode="text");
* ablation: hybrid with each signal removed, if `contextgraph.retrieval.precedents` exposes `SIGNALS` and
  `find_similar_decisions` takes `signals=` (else a note);
* two same-run baselines with no graph, over subject + request + proposal + reason: plain cosine
  with the same embedder (numpy), plain BM25 (`bm25s`, English stop words, no stemmer);
* hit@1 per kind of case (kinds live only here: the ranking never sees them nor any corpus id);
* lesson coverage, if contextgraph has `find_lessons` (in `retrieval` or `lessons`): share of cases whose top
  lesson's exemplars include a grade-2 precedent, and whether every lesson's option shares add up;
* the seed check: does "Feature request: more granular cost attribution" find the dark-mode
  "check the roadmap first" decision first?

An invalid corpus stops it with exit code 2 and every problem on stderr, one per line
(`file: id: field: reason`). Figures also go to bench/results/precedents-latest.json
(`--output`). `--smoke` runs the old 27 cases of
`tests/cases.py` instead (a quick dev set; the ranking's weights were chosen on them).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.corpus import (
    CORPUS_DIR,
    Corpus,
    CorpusError,
    Ingested,
    NewCase,
    PastDecision,
    airflow_records,
    ingest,
    load_corpus,
)
from contextgraph.errors import ContextGraphError
from contextgraph.ingest.embeddings import Embedder, Model2VecEmbedder, embed_pending
from contextgraph.retrieval import precedents as retrieval
from contextgraph.retrieval.precedents import Mode, find_similar_decisions
from contextgraph.store import EmbeddedStore, GraphStore, Neo4jStore
from tests.cases import CASES, QUERIES, build_batch

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODEL = ROOT.parent / "shared" / "models" / "m2v-minilm-l6-256"
RESULTS = ROOT / "bench" / "results" / "precedents-latest.json"
MODES: tuple[Mode, ...] = ("hybrid", "vector", "text")
STORES = ("neo4j", "embedded")
SPLITS = ("dev", "test")
K = 10
"""Results asked per query (hit@3, MRR and nDCG@5 look at these)."""
SEED_QUERY = "Feature request: more granular cost attribution"
SEED_REASON = "check the roadmap first"

Ranker = Callable[[str, tuple[str, str]], list[str]]
"""(query, (dag_id, task_id)) -> corpus ids of past decisions, best first."""


# --- metrics -------------------------------------------------------------------------------------


@dataclass
class Metrics:
    """Ranking quality over a set of queries; rates in 0..1, time in ms per query."""

    queries: int
    hit_at_1: float
    hit_at_3: float
    mrr: float
    ndcg_at_5: float
    ms_per_query: float


def ndcg(ranked: Sequence[str], grades: dict[str, int], k: int = 5) -> float:
    """nDCG@k with gains 2^grade - 1 and log2 discounts; 0.0 when nothing is relevant."""
    gain = sum((2 ** grades.get(r, 0) - 1) / math.log2(i + 2) for i, r in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    best = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return gain / best if best else 0.0


def first_relevant(ranked: Sequence[str], grades: dict[str, int]) -> int | None:
    """1-based rank of the first result with grade >= 1, or None."""
    return next((i for i, r in enumerate(ranked, start=1) if grades.get(r, 0) >= 1), None)


def metrics(rankings: Sequence[Sequence[str]], grades: Sequence[dict[str, int]], ms: float) -> Metrics:
    """Metrics of ranked corpus ids (one list per query) against each query's grades."""
    n = len(rankings)
    ranks = [first_relevant(r, g) for r, g in zip(rankings, grades, strict=True)]
    return Metrics(
        n,
        round(sum(r == 1 for r in ranks) / n, 3) if n else 0.0,
        round(sum(r is not None and r <= 3 for r in ranks) / n, 3) if n else 0.0,
        round(sum(1 / r for r in ranks if r) / n, 3) if n else 0.0,
        round(sum(ndcg(r, g) for r, g in zip(rankings, grades, strict=True)) / n, 3) if n else 0.0,
        round(ms / n, 1) if n else 0.0,
    )


@dataclass
class Run:
    """One ranking over one split: its metrics and each case's ranked corpus ids."""

    metrics: Metrics
    ranked: dict[str, list[str]]


def run_ranker(rank: Ranker, cases: Sequence[NewCase], corpus: Corpus) -> Run:
    """Rank every case; the time counts from after one untimed warm-up query (caches, query plans)."""
    ranked: dict[str, list[str]] = {}
    if cases:
        rank(cases[0].query, (cases[0].dag_id, cases[0].task_id))
    began = time.perf_counter()
    for case in cases:
        ranked[case.id] = rank(case.query, (case.dag_id, case.task_id))
    ms = (time.perf_counter() - began) * 1000
    rankings = [ranked[c.id] for c in cases]
    return Run(metrics(rankings, [corpus.grades(c) for c in cases], ms), ranked)


# --- the rankings --------------------------------------------------------------------------------


def decision_ids(store: GraphStore, ingested: Ingested) -> dict[str, str]:
    """Decision key -> corpus id, read from the store (whatever the keys are made of)."""
    rows = store.query("MATCH (d:Decision) RETURN d.key AS key, d.dag_id AS dag_id, d.run_id AS run_id", {})
    return {
        r["key"]: ingested.ids[(r["dag_id"], r["run_id"])]
        for r in rows
        if (r["dag_id"], r["run_id"]) in ingested.ids
    }


def corpus_ids(store: GraphStore, corpus: Corpus) -> dict[str, str]:
    """Decision key -> corpus id of a store the corpus was ingested into."""
    wanted = airflow_records(corpus).ids
    rows = store.query("MATCH (d:Decision) RETURN d.key AS key, d.dag_id AS dag_id, d.run_id AS run_id", {})
    return {
        r["key"]: wanted[(r["dag_id"], r["run_id"])] for r in rows if (r["dag_id"], r["run_id"]) in wanted
    }


def signals_supported() -> tuple[str, ...]:
    """The ranking's signal names, if it lets a caller choose them (`SIGNALS` + `signals=`)."""
    names = getattr(retrieval, "SIGNALS", None)
    if names is None or "signals" not in inspect.signature(find_similar_decisions).parameters:
        return ()
    return tuple(names)


def default_signals() -> tuple[str, ...]:
    """The signals the ranking uses when none are named (`ranking.DEFAULT_SIGNALS`, else all)."""
    from contextgraph.retrieval import ranking

    return tuple(getattr(ranking, "DEFAULT_SIGNALS", signals_supported()))


FEEDBACK_RUN = "eval_feedback__"
"""run_id prefix of the simulated later decisions (removed after each fold)."""
SHOWN = 3
"""Precedents a simulated drafting agent is shown."""


def simulate_feedback(
    store: GraphStore, embedder: Embedder, ids: dict[str, str], history: Sequence[NewCase], corpus: Corpus
) -> dict[str, int]:
    """A usage history from `history`'s cases: for each, an agent drafts with the top `SHOWN` hybrid
    precedents (recorded as INFORMED_BY from a pending decision of its own), and a simulated reviewer
    approves the draft when the top precedent is relevant to the case (grade >= 1), else overrides
    it. Then `usefulness.refresh`. Returns the verdict counts."""
    from contextgraph import model as m
    from contextgraph.retrieval import usefulness

    batch = m.GraphBatch()
    counts: dict[str, int] = defaultdict(int)
    for case in history:
        found = find_similar_decisions(
            store, embedder, case.query, point=(case.dag_id, case.task_id), k=SHOWN
        )
        if not found:
            continue
        grades = corpus.grades(case)
        verdict: m.Verdict = "approved" if grades.get(ids.get(found[0].key, ""), 0) >= 1 else "overridden"
        counts[verdict] += 1
        later = m.Decision(
            dag_id=case.dag_id,
            run_id=FEEDBACK_RUN + case.id,
            task_id=case.task_id,
            response_received=False,
            status="pending",
        )
        draft = m.Proposal(dag_id=case.dag_id, run_id=later.run_id, task_id="draft", text="draft")
        batch.add(later, draft, m.Reviewed(src=later.key, dst=draft.key, verdict=verdict))
        batch.add(*(m.InformedBy(src=later.key, dst=p.key, rank=i) for i, p in enumerate(found, 1)))
    store.write(batch)
    usefulness.refresh(store)
    return dict(counts)


def clear_feedback(store: GraphStore) -> None:
    """Remove the simulated decisions, their drafts and the stored usefulness scores."""
    for label in ("Decision", "Proposal"):
        store._write(
            f"MATCH (n:{label}) WHERE n.run_id STARTS WITH $prefix DETACH DELETE n", {"prefix": FEEDBACK_RUN}
        )
    store._write("MATCH (u:PrecedentUsefulness) DELETE u", {})


def usefulness_ablation(
    store: GraphStore, embedder: Embedder, corpus: Corpus, ids: dict[str, str], split: str
) -> dict[str, Any]:
    """hybrid vs hybrid +usefulness on `split`, two folds: the usage history simulated on the even
    cases (`simulate_feedback`) ranks the odd ones, and the other way round (no case's own feedback
    ever ranks it; no other split is used)."""
    if "usefulness" not in signals_supported():
        return {"note": "n/a: the ranking has no usefulness signal"}
    cases = corpus.split(split)
    folds = [list(cases[0::2]), list(cases[1::2])]
    ranked: dict[str, dict[str, list[str]]] = {"hybrid": {}, "+usefulness": {}}
    ms = {"hybrid": 0.0, "+usefulness": 0.0}
    verdicts: dict[str, int] = defaultdict(int)
    plus = [*default_signals(), "usefulness"]
    for history, held in ((folds[0], folds[1]), (folds[1], folds[0])):
        try:
            for verdict, n in simulate_feedback(store, embedder, ids, history, corpus).items():
                verdicts[verdict] += n
            for label, signals in (("hybrid", None), ("+usefulness", plus)):
                run = run_ranker(graph_ranker(store, embedder, ids, "hybrid", signals=signals), held, corpus)
                ranked[label].update(run.ranked)
                ms[label] += run.metrics.ms_per_query * run.metrics.queries
        finally:
            clear_feedback(store)
    grades = [corpus.grades(c) for c in cases]
    out: dict[str, Any] = {
        label: metrics([ranked[label][c.id] for c in cases], grades, ms[label]) for label in ranked
    }
    out["history_verdicts"] = dict(verdicts)
    return out


def graph_ranker(
    store: GraphStore,
    embedder: Embedder,
    ids: dict[str, str],
    mode: Mode,
    signals: Sequence[str] | None = None,
) -> Ranker:
    """contextgraph's precedent search, as the agent tools call it (a preference for the point)."""
    extra: dict[str, Any] = {} if signals is None else {"signals": tuple(signals)}

    def rank(query: str, point: tuple[str, str]) -> list[str]:
        found = find_similar_decisions(store, embedder, query, point=point, k=K, mode=mode, **extra)
        return [ids.get(p.key, f"?{p.key}") for p in found]

    return rank


class CosineBaseline:
    """Plain cosine over subject + request + proposal + reason with the same embedder; no graph."""

    def __init__(self, past: Sequence[PastDecision], embedder: Embedder) -> None:
        self.ids = [p.id for p in past]
        self.embedder = embedder
        self.matrix = _normalised(
            np.asarray(embedder.embed([p.index_text() for p in past]), dtype=np.float32)
        )

    def __call__(self, query: str, point: tuple[str, str]) -> list[str]:
        vector = _normalised(np.asarray(self.embedder.embed([query]), dtype=np.float32))[0]
        scores = self.matrix @ vector
        return [self.ids[i] for i in np.argsort(-scores, kind="stable")[:K]]


def _normalised(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


class BM25Baseline:
    """Plain BM25 (`bm25s`, English stop words, no stemmer) over the same text; no graph."""

    def __init__(self, past: Sequence[PastDecision]) -> None:
        import bm25s

        self.bm25s = bm25s
        self.ids = [p.id for p in past]
        self.index = bm25s.BM25()
        tokens = bm25s.tokenize([p.index_text() for p in past], stopwords="en", show_progress=False)
        self.index.index(tokens, show_progress=False)

    def __call__(self, query: str, point: tuple[str, str]) -> list[str]:
        words = self.bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        if not words:
            return []
        scores = self.index.get_scores(words)
        return [self.ids[i] for i in np.argsort(-scores, kind="stable")[:K] if scores[i] > 0]


# --- lessons and the seed ------------------------------------------------------------------------


def lessons_supported() -> Callable[..., Any] | None:
    """`find_lessons` of contextgraph.retrieval.precedents (or contextgraph.retrieval.lessons), if the library
    has it."""
    found = getattr(retrieval, "find_lessons", None)
    if found is None:
        try:
            lessons = importlib.import_module("contextgraph.retrieval.lessons")
        except ImportError:
            return None
        found = getattr(lessons, "find_lessons", None)
    return found if callable(found) else None


def _call_lessons(
    find: Callable[..., Any], store: GraphStore, embedder: Embedder, case: NewCase
) -> list[Any]:
    wanted = inspect.signature(find).parameters
    kwargs: dict[str, Any] = {}
    if "point" in wanted:
        kwargs["point"] = (case.dag_id, case.task_id)
    return list(find(store, embedder, case.query, **kwargs))


def _field(item: Any, *names: str) -> Any:
    for name in names:
        value = item.get(name) if isinstance(item, dict) else getattr(item, name, None)
        if value is not None:
            return value
    return None


def _shares_add_up(lesson: Any) -> bool | None:
    """Do the lesson's option shares add up (counts to its count, fractions to 1)? None: unreadable."""
    shares = _field(lesson, "shares", "option_shares", "options")
    if isinstance(shares, dict):
        values = list(shares.values())
    elif isinstance(shares, list):
        values = [_field(s, "count", "n", "share", "fraction") for s in shares]
    else:
        return None
    if not values or not all(isinstance(v, int | float) for v in values):
        return None
    total = sum(values)
    count = _field(lesson, "count", "size", "n")
    if all(isinstance(v, int) for v in values) and isinstance(count, int):
        return bool(total == count)
    return abs(total - 1.0) < 1e-6 or (isinstance(count, int | float) and abs(total - count) < 1e-6)


def lesson_coverage(
    store: GraphStore, embedder: Embedder, ids: dict[str, str], cases: Sequence[NewCase], corpus: Corpus
) -> dict[str, Any]:
    """Share of cases whose top lesson's exemplars include a grade-2 precedent; shares adding up."""
    find = lessons_supported()
    if find is None:
        return {"available": False, "note": "n/a: contextgraph has no find_lessons"}
    covered = add_up = lessons_seen = unreadable = 0
    failed: list[str] = []
    began = time.perf_counter()
    for case in cases:
        try:
            lessons = _call_lessons(find, store, embedder, case)
        except ContextGraphError as exc:
            failed.append(f"{case.id}: {exc}")
            continue
        grades = corpus.grades(case)
        for lesson in lessons:
            ok = _shares_add_up(lesson)
            lessons_seen += 1
            add_up += ok is True
            unreadable += ok is None
        if lessons:
            exemplars = _field(lessons[0], "exemplars", "examples") or []
            keys = [_field(e, "key") for e in exemplars]
            if any(grades.get(ids.get(k or "", ""), 0) == 2 for k in keys):
                covered += 1
    n = len(cases)
    return {
        "available": True,
        "coverage": round(covered / n, 3) if n else 0.0,
        "lessons": lessons_seen,
        "shares_add_up": add_up,
        "shares_unreadable": unreadable,
        "failed": failed,
        "ms_per_query": round((time.perf_counter() - began) * 1000 / n, 1) if n else 0.0,
    }


def seed_target(corpus: Corpus) -> str | None:
    """The dark-mode decision whose reason is "check the roadmap first"."""
    for past in corpus.past:
        reason = (past.reason or "").lower()
        if reason.startswith(SEED_REASON) and "dark mode" in (past.request + past.subject).lower():
            return past.id
    return None


def seed_check(store: GraphStore, embedder: Embedder, ids: dict[str, str], corpus: Corpus) -> bool | None:
    """Is the dark-mode roadmap decision the first hybrid result for the seed query? None: not in corpus."""
    target = seed_target(corpus)
    case = next((c for c in corpus.cases if c.query.strip().lower() == SEED_QUERY.lower()), None)
    if target is None or case is None:
        return None
    ranked = graph_ranker(store, embedder, ids, "hybrid")(case.query, (case.dag_id, case.task_id))
    return bool(ranked) and ranked[0] == target


# --- one store -----------------------------------------------------------------------------------


@dataclass
class SplitResult:
    """Everything measured on one split of one store."""

    modes: dict[str, Metrics]
    ablation: dict[str, Metrics] = field(default_factory=dict)
    ablation_note: str = ""
    per_kind_hit_at_1: dict[str, float] = field(default_factory=dict)
    lessons: dict[str, Any] = field(default_factory=dict)
    usefulness: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoreResult:
    ingest_seconds: float
    decisions: int
    seed_first: bool | None
    splits: dict[str, SplitResult]
    redacted: dict[str, int] = field(default_factory=dict)


PLACEHOLDERS = ("[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[IP]")


def redacted_counts(store: GraphStore) -> dict[str, int]:
    """How many decisions' search text holds each redaction placeholder (with --redact)."""
    out = {}
    for placeholder in PLACEHOLDERS:
        rows = store.query(
            "MATCH (d:Decision) WHERE d.search_text CONTAINS $p RETURN count(d) AS n", {"p": placeholder}
        )
        out[placeholder] = int(rows[0]["n"]) if rows else 0
    return out


def per_kind(run: Run, cases: Sequence[NewCase], corpus: Corpus) -> dict[str, float]:
    """hit@1 per kind of case."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for case in cases:
        ranked = run.ranked[case.id]
        hits[case.kind].append(bool(ranked) and corpus.grades(case).get(ranked[0], 0) >= 1)
    return {kind: round(sum(v) / len(v), 3) for kind, v in sorted(hits.items())}


def evaluate_store(
    store: GraphStore,
    embedder: Embedder,
    corpus: Corpus,
    splits: Sequence[str],
    *,
    ablation: bool = True,
    lessons: bool = True,
) -> StoreResult:
    """Ingest the corpus into an empty store (schema applied) and measure every ranking on `splits`
    (the ablation table and lesson coverage only when asked and when the ranking offers them)."""
    ingested = ingest(store, embedder, corpus)
    ids = decision_ids(store, ingested)
    result = measure(store, embedder, corpus, ids, splits, ablation=ablation, lessons=lessons)
    result.ingest_seconds = round(ingested.seconds, 2)
    return result


def measure(
    store: GraphStore,
    embedder: Embedder,
    corpus: Corpus,
    ids: dict[str, str],
    splits: Sequence[str],
    *,
    ablation: bool = True,
    lessons: bool = True,
) -> StoreResult:
    """Measure every ranking on `splits` of a store the corpus is in; `ids`: decision key -> corpus id."""
    signals = signals_supported() if ablation else ()
    results: dict[str, SplitResult] = {}
    for split in splits:
        cases = corpus.split(split)
        runs = {mode: run_ranker(graph_ranker(store, embedder, ids, mode), cases, corpus) for mode in MODES}
        result = SplitResult({mode: r.metrics for mode, r in runs.items()})
        result.per_kind_hit_at_1 = per_kind(runs["hybrid"], cases, corpus)
        if not ablation:
            result.ablation_note = "not measured"
        elif signals:
            default = default_signals()
            for name in signals:
                if name in default:
                    kept = [s for s in default if s != name]
                    label = f"-{name}"
                else:
                    kept, label = [*default, name], f"+{name}"
                    if name == "usefulness":
                        continue  # measured with a simulated usage history: usefulness_ablation
                rank = graph_ranker(store, embedder, ids, "hybrid", signals=kept)
                result.ablation[label] = run_ranker(rank, cases, corpus).metrics
        else:
            result.ablation_note = "n/a: the ranking exposes no SIGNALS / signals= (contextgraph.retrieval.precedents); no ablation"  # noqa: E501
        if lessons:
            result.lessons = lesson_coverage(store, embedder, ids, cases, corpus)
        results[split] = result
    return StoreResult(0.0, len(ids), seed_check(store, embedder, ids, corpus), results)


def baselines(corpus: Corpus, embedder: Embedder, splits: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The no-graph baselines per split: metrics and hit@1 per kind."""
    rankers: dict[str, Ranker] = {
        "cosine": CosineBaseline(corpus.past, embedder),
        "bm25": BM25Baseline(corpus.past),
    }
    found: dict[str, dict[str, Any]] = {}
    for split in splits:
        cases = corpus.split(split)
        found[split] = {}
        for name, rank in rankers.items():
            run = run_ranker(rank, cases, corpus)
            found[split][name] = {"metrics": run.metrics, "per_kind_hit_at_1": per_kind(run, cases, corpus)}
    return found


# --- stores --------------------------------------------------------------------------------------


def default_embedder() -> Embedder:
    return Model2VecEmbedder(os.environ.get("CONTEXTGRAPH_EMBEDDING_MODEL") or str(SHARED_MODEL))


@contextmanager
def neo4j_store() -> Iterator[Neo4jStore]:
    """A wiped Neo4j with the schema: NEO4J_URI's server if set, else a throw-away one."""
    from pydantic import SecretStr

    from contextgraph.config import Neo4jSettings
    from tests.neo4j_server import Neo4jServer, empty_neo4j

    server = None if os.environ.get("NEO4J_URI") else Neo4jServer()
    if server is None:
        settings = Neo4jSettings()
    else:
        server.start()
        password = SecretStr(server.password)
        settings = Neo4jSettings(uri=server.uri, username=server.username, password=password)
    try:
        with empty_neo4j(settings) as store:
            yield store
    finally:
        if server is not None:
            server.stop()


@contextmanager
def embedded_store(path: Path | None = None) -> Iterator[EmbeddedStore]:
    """An empty embedded store with the schema: at `path` (kept; it must not exist yet), else in a
    temp folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="contextgraph-eval-") as folder:
        store = EmbeddedStore(path or Path(folder) / "graph.lbdb")
        store.ensure_schema()
        try:
            yield store
        finally:
            store.close()


OPENERS: dict[str, Callable[[], Any]] = {"neo4j": neo4j_store, "embedded": embedded_store}


# --- the smoke set (tests/cases.py) --------------------------------------------------------------


def load_cases(store: GraphStore, embedder: Embedder) -> dict[str, str]:
    """Write the smoke cases and embed them; returns case id -> decision key."""
    batch, keys = build_batch(CASES)
    store.write(batch)
    embed_pending(store, embedder)
    return keys


def evaluate_all(store: GraphStore, embedder: Embedder) -> dict[str, Metrics]:
    """The smoke set (tests/cases.py, 27 queries) on an empty store: metrics per mode."""
    keys = load_cases(store, embedder)
    by_key = {key: case_id for case_id, key in keys.items()}
    found: dict[str, Metrics] = {}
    for mode in MODES:
        rankings, grades = [], []
        began = time.perf_counter()
        for query in QUERIES:
            results = find_similar_decisions(store, embedder, query.text, k=K, point=query.point, mode=mode)
            rankings.append([by_key.get(p.key, p.key) for p in results])
            grades.append(dict.fromkeys(query.relevant, 1))
        found[mode] = metrics(rankings, grades, (time.perf_counter() - began) * 1000)
    return found


# --- output --------------------------------------------------------------------------------------

HEADER = f"{'ranking':<34} {'hit@1':>6} {'hit@3':>6} {'MRR':>6} {'nDCG@5':>7} {'ms/q':>7}"


def _row(name: str, m: Metrics) -> str:
    return (
        f"{name:<34} {m.hit_at_1:>6.3f} {m.hit_at_3:>6.3f} {m.mrr:>6.3f} {m.ndcg_at_5:>7.3f} "
        f"{m.ms_per_query:>7.1f}"
    )


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def print_report(
    report: dict[str, Any], stores: dict[str, StoreResult], base: dict[str, dict[str, Any]]
) -> None:
    print(f"{report['corpus']}; model {report['model']}")
    for split in report["splits"]:
        n = next(iter(base[split].values()))["metrics"].queries
        print(f"\n== {split} split ({n} cases) ==")
        print(HEADER)
        for store_name, result in stores.items():
            for mode, m in result.splits[split].modes.items():
                print(_row(f"{store_name} {mode}", m))
        for name, b in base[split].items():
            print(_row(f"baseline {name} (no graph)", b["metrics"]))
        print("\nablation: hybrid with one signal removed")
        for store_name, result in stores.items():
            r = result.splits[split]
            if r.ablation_note:
                print(f"  {store_name}: {r.ablation_note}")
            for name, m in r.ablation.items():
                print(_row(f"{store_name} hybrid {name}", m))
        for store_name, result in stores.items():
            u = result.splits[split].usefulness
            if not u:
                continue
            if "note" in u:
                print(f"  {store_name} +usefulness: {u['note']}")
                continue
            history = ", ".join(f"{n} {v}" for v, n in sorted(u["history_verdicts"].items()))
            print(f"usefulness ({store_name}; simulated usage history, 2 folds: {history}):")
            for label in ("hybrid", "+usefulness"):
                m = u[label]
                print(_row(f"{store_name} {label}", m if isinstance(m, Metrics) else Metrics(**m)))
        kinds = sorted({k for b in base[split].values() for k in b["per_kind_hit_at_1"]})
        columns = [*(f"{s} hybrid" for s in stores), *base[split]]
        print("\nhit@1 per kind of case: " + " | ".join(columns))
        for kind in kinds:
            values = [result.splits[split].per_kind_hit_at_1.get(kind) for result in stores.values()]
            values += [b["per_kind_hit_at_1"].get(kind) for b in base[split].values()]
            print(f"  {kind:<32} " + " ".join(f"{v:>6.2f}" if v is not None else "     -" for v in values))
        for store_name, result in stores.items():
            lessons = result.splits[split].lessons
            if not lessons.get("available"):
                print(f"lesson coverage ({store_name}): {lessons.get('note', 'n/a')}")
            else:
                print(
                    f"lesson coverage ({store_name}): {lessons['coverage']:.3f} of cases; option shares add "
                    f"up in {lessons['shares_add_up']} of {lessons['lessons']} lessons"
                    + (
                        f" ({lessons['shares_unreadable']} unreadable)"
                        if lessons["shares_unreadable"]
                        else ""
                    )
                )
    print()
    for store_name, result in stores.items():
        if report.get("redact"):
            counts = ", ".join(f"{p} {n}" for p, n in result.redacted.items())
            print(f"redaction at ingest on ({store_name}): decisions holding each placeholder: {counts}")
        print(
            f"seed case first ({store_name}): {_yes(result.seed_first)}  "
            f"[ingest of {result.decisions} decisions: {result.ingest_seconds:.1f} s]"
        )


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def run_smoke(store_names: Sequence[str], embedder: Embedder, as_json: bool) -> int:
    results: dict[str, dict[str, Metrics]] = {}
    for name in store_names:
        with OPENERS[name]() as store:
            results[name] = evaluate_all(store, embedder)
    if as_json:
        print(json.dumps({s: {m: asdict(v) for m, v in r.items()} for s, r in results.items()}, indent=2))
        return 0
    print(f"smoke set: {len(QUERIES)} queries over {len(CASES)} past decisions, model {embedder.name}")
    print(HEADER)
    for store_name, by_mode in results.items():
        for mode, m in by_mode.items():
            print(_row(f"{store_name} {mode}", m))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=["neo4j", "embedded", "both"], default="both")
    parser.add_argument("--split", choices=["dev", "test", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--smoke", action="store_true", help="the old 27 cases of tests/cases.py instead")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="folder of the corpus files")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON results go")
    parser.add_argument(
        "--embedded-path", type=Path, help="keep the embedded store's graph here (default: a temp folder)"
    )
    parser.add_argument(
        "--usefulness", action="store_true", help="also hybrid vs +usefulness on a simulated usage history"
    )
    parser.add_argument(
        "--redact",
        action="store_true",
        help="ingest with redaction at ingest on (CONTEXTGRAPH_REDACT=true): precedent quality with it",
    )
    args = parser.parse_args(argv)
    if args.redact:
        os.environ["CONTEXTGRAPH_REDACT"] = "true"
    store_names = [s for s in STORES if args.store in (s, "both")]
    splits = [s for s in SPLITS if args.split in (s, "both")]
    embedder = default_embedder()
    if args.smoke:
        return run_smoke(store_names, embedder, args.json)
    try:
        corpus = load_corpus(args.corpus)
    except CorpusError as exc:
        print(exc, file=sys.stderr)
        return 2
    stores: dict[str, StoreResult] = {}
    for name in store_names:
        opened = embedded_store(args.embedded_path) if name == "embedded" else OPENERS[name]()
        with opened as store:
            stores[name] = evaluate_store(store, embedder, corpus, splits)
            if args.usefulness:
                ids = corpus_ids(store, corpus)
                for split in splits:
                    stores[name].splits[split].usefulness = usefulness_ablation(
                        store, embedder, corpus, ids, split
                    )
            if args.redact:
                stores[name].redacted = redacted_counts(store)
    base = baselines(corpus, embedder, splits)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "corpus": corpus.summary(),
        "model": embedder.name,
        "splits": splits,
        "signals": list(signals_supported()),
        "redact": bool(args.redact),
        "stores": {name: asdict(result) for name, result in stores.items()},
        "baselines": {
            s: {n: {**b, "metrics": asdict(b["metrics"])} for n, b in v.items()} for s, v in base.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, stores, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
