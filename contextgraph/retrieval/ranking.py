"""The one ranking of precedents, the same for every store.

Each store answers only from its own indexes (`GraphStore.precedent_candidates`: the vector and the
text list, with what the fusion reads of the candidates; `decision_details` with the embeddings
for MMR); this module fuses their lists, optionally reranks, and diversifies:

    1. candidates   vector: the `POOL` answered decisions nearest the query's embedding (cosine)
                    text:   the `POOL` best by BM25 over the query's content words
    2. fusion       relative-score fusion, for each candidate d
                        score(d) = W["vector"] * (cos(d) - cos_min) / (cos_max - cos_min)
                                 + W["text"]   * bm25(d) / bm25_max
                                 + W["point"]  if d was decided at the query's decision point
                                 + W["usefulness"] * (2 * usefulness(d) - 1)   (signal off by default)
                                 - STALE_PENALTY (sum of W) if d is stale (`contextgraph.retrieval.supersede`)
                    over each list's candidates (a candidate missing from a list gets 0 there), so a
                    signal that is sure of its best match (a clear BM25 margin) counts more than one
                    whose scores are all alike. W = vector 0.75, text 1.0, point 1.0,
                    usefulness 0.5 (usefulness in 0..1, 0.5 = no evidence; see
                    contextgraph.retrieval.usefulness).
                    (`FUSION = "rrf"`: reciprocal-rank fusion, W[s] / (RRF_K + rank_s(d)), scored
                    lower on dev: it ignores the margins.)
    3. reranking    an optional `Reranker` reorders the top `RERANK_TOP` (none by default).
    4. diversity    maximal marginal relevance over the fused order:
                        pick argmax  LAMBDA * relevance(d) - (1 - LAMBDA) * max_{s picked} cos(d, s)
                    with relevance the fused score scaled to 0..1 (LAMBDA 0.85), and a near-copy
                    (cosine >= DUPLICATE to one picked) after all others, so five near-identical
                    decisions do not fill the list.

Every constant here was chosen on the dev split of `bench/precedents` (see README, "Precedent
search"); `signals` switches signals off for the evaluation's ablation table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from contextgraph.errors import EmbeddingError
from contextgraph.ingest.embeddings import Embedder
from contextgraph.retrieval import supersede, usefulness
from contextgraph.retrieval.usefulness import Usefulness
from contextgraph.retrieval.words import query_terms
from contextgraph.store.base import CandidateFilter, GraphStore, Row

log = logging.getLogger(__name__)

SIGNALS: tuple[str, ...] = ("vector", "text", "point", "usefulness")
"""The signals the fusion can use; `find_similar_decisions(signals=...)` picks a subset."""
DEFAULT_SIGNALS: tuple[str, ...] = ("vector", "text", "point")
"""The signals used when none are named. "usefulness" (how often drafts a precedent informed were
approved, `contextgraph.retrieval.usefulness`) is off: on the dev split it did not help (README, "Governance")."""  # noqa: E501

FUSION = "relative"
"""How the lists combine: "relative" (the formula above) or "rrf"."""
RRF_K = 60.0
WEIGHTS: dict[str, float] = {"vector": 0.75, "text": 1.0, "point": 1.0, "usefulness": 0.5}
STALE_PENALTY = sum(WEIGHTS.values())
"""Subtracted from a stale precedent's fused score (superseded by a DAG version, or its lesson
retired: `contextgraph.retrieval.supersede`): at least any current candidate's score, so it ranks below every
current candidate found (it is still shown, with why, when fewer current ones match)."""
POOL = 50
"""How many candidates each index is asked for (at least 5 x k)."""
LAMBDA = 0.85
"""MMR's trade-off between relevance (1.0) and novelty (0.0)."""
DUPLICATE = 0.97
"""A candidate at least this similar (cosine) to one already picked is a near-copy: it comes after
every candidate that is not (five copies of one decision teach one thing)."""
RERANK_TOP = 20


@dataclass
class Ranked:
    """One candidate and why it is where it is (ranks are 1-based, None when absent)."""

    key: str
    score: float = 0.0
    vector_rank: int | None = None
    vector_score: float | None = None
    text_rank: int | None = None
    text_score: float | None = None
    same_point: bool = False
    usefulness: float | None = None
    stale: str | None = None
    """Why this precedent is stale (superseded or retired), or None when it is current."""
    learned: Usefulness | None = None
    """Its stored usefulness record (whether or not the ranking uses the signal)."""
    details: Row | None = field(default=None, repr=False)
    """What a precedent shows of it (`GraphStore.decision_details`), read for the ranking's head."""
    vector: Any = field(default=None, repr=False)


@runtime_checkable
class Reranker(Protocol):
    """Reorders the best candidates for a query (e.g. a cross-encoder or an LLM judge).

    `rerank(query, candidates)` gets (key, text) pairs best first and returns the keys in the new
    order (keys it leaves out keep their fused order after the returned ones).
    """

    def rerank(self, query: str, candidates: Sequence[tuple[str, str]]) -> list[str]: ...


@dataclass(frozen=True)
class Query:
    """A precedent search as the ranking needs it."""

    text: str
    words: list[str]
    vector: Any  # numpy float32 (dimensions,) or None
    model: str
    point: tuple[str, str] | None
    filters: CandidateFilter
    signals: frozenset[str]


def prepare(
    embedder: Embedder | None,
    text: str,
    *,
    point: tuple[str, str] | None,
    filters: CandidateFilter,
    signals: Collection[str] | None,
) -> Query:
    """Tokenise and embed the query once; unknown signal names are a ValueError."""
    chosen = frozenset(DEFAULT_SIGNALS if signals is None else signals)
    unknown = chosen - set(SIGNALS)
    if unknown:
        raise ValueError(f"unknown signals {sorted(unknown)}; known: {', '.join(SIGNALS)}")
    if embedder is None:
        chosen -= {"vector"}
    vector = None
    if embedder is not None and "vector" in chosen:
        vector = np.asarray(embedder.embed([text])[0], dtype=np.float32)
    return Query(
        text=text,
        words=query_terms(text),
        vector=vector,
        model=embedder.name if embedder is not None else "",
        point=point,
        filters=filters,
        signals=chosen,
    )


def rank(
    store: GraphStore,
    query: Query,
    k: int,
    *,
    diversify: bool = True,
    reranker: Reranker | None = None,
    describe: Callable[[Row], str] | None = None,
    vectors: bool = False,
) -> list[Ranked]:
    """The `k` best candidates for the query, best first (see the module's formula), each with
    its `details` (`GraphStore.decision_details`; None when the decision went meanwhile) and its
    stored usefulness. `describe` turns details into what a reranker reads; `vectors` also reads
    the embeddings of the candidates returned (`Ranked.vector`) when MMR does not.

    Store round trips: one for both candidate lists with what the fusion reads of them
    (`GraphStore.precedent_candidates`), one for the details (and embeddings) of the head."""
    pool = max(POOL, 5 * k)
    vector = query.vector.tolist() if query.vector is not None and "vector" in query.signals else None
    words = query.words if "text" in query.signals else []
    candidates = store.precedent_candidates(vector, query.model, words, pool, query.filters)
    if vector is not None and not candidates.vector:
        _explain_no_vectors(store, query)
    found: dict[str, Ranked] = {}
    for i, (key, score) in enumerate(candidates.vector, start=1):
        found.setdefault(key, Ranked(key)).__dict__.update(vector_rank=i, vector_score=score)
    for i, (key, score) in enumerate(candidates.text, start=1):
        found.setdefault(key, Ranked(key)).__dict__.update(text_rank=i, text_score=score)
    if not found:
        return []
    v_scores = [r.vector_score for r in found.values() if r.vector_score is not None]
    t_scores = [r.text_score for r in found.values() if r.text_score is not None]
    v_hi, v_lo = (max(v_scores), min(v_scores)) if v_scores else (0.0, 0.0)
    t_hi = max(t_scores) if t_scores else 0.0
    if candidates.usefulness is not None:
        learned = usefulness.from_rows(candidates.usefulness)
    else:
        learned = usefulness.stored(store, list(found))
    stale = supersede.stale(store, list(found), candidates.stale)
    for r in found.values():
        r.same_point = query.point is not None and point_of(r.key) == query.point
        r.learned = learned.get(r.key)
        if "usefulness" in query.signals and r.learned is not None:
            r.usefulness = r.learned.score
        if FUSION == "relative":
            r.score = _relative(r, query.signals, v_hi, v_lo, t_hi)
        else:
            r.score = _fused(r, query.signals)
        r.stale = stale.get(r.key)
        if r.stale is not None:
            r.score -= STALE_PENALTY
    ordered = sorted(found.values(), key=lambda r: (-r.score, r.key))
    mmr_on = query.vector is not None and diversify
    # what the result can be taken from: MMR's head, which a reranker's reorder of its top keeps
    # within this prefix; without MMR the first k after a reranker's reorder of its top
    head = ordered[: max(4 * k, 20) if mmr_on else max(k, RERANK_TOP if reranker is not None else 0)]
    model = query.model if query.vector is not None and (mmr_on or vectors) else None
    details = store.decision_details([r.key for r in head], vectors=model)
    for r in head:
        r.details = details.get(r.key)
        if r.details is not None and model is not None:
            r.vector = r.details.pop("vector", None)
    if reranker is not None:
        texts = {r.key: describe(r.details) for r in head if r.details is not None} if describe else {}
        ordered = _rerank(reranker, query.text, ordered, texts)
    if mmr_on:
        return mmr(ordered, k)
    return ordered[:k]


def _relative(r: Ranked, signals: frozenset[str], v_hi: float, v_lo: float, t_hi: float) -> float:
    score = 0.0
    if "vector" in signals and r.vector_score is not None:
        score += WEIGHTS["vector"] * ((r.vector_score - v_lo) / (v_hi - v_lo) if v_hi > v_lo else 1.0)
    if "text" in signals and r.text_score is not None and t_hi > 0:
        score += WEIGHTS["text"] * r.text_score / t_hi
    if "point" in signals and r.same_point:
        score += WEIGHTS["point"]
    if "usefulness" in signals and r.usefulness is not None:
        score += WEIGHTS["usefulness"] * (2 * r.usefulness - 1)
    return score


def _fused(r: Ranked, signals: frozenset[str]) -> float:
    score = 0.0
    if "vector" in signals and r.vector_rank is not None:
        score += WEIGHTS["vector"] / (RRF_K + r.vector_rank)
    if "text" in signals and r.text_rank is not None:
        score += WEIGHTS["text"] / (RRF_K + r.text_rank)
    if "point" in signals and r.same_point:
        score += WEIGHTS["point"] / (RRF_K + 1)
    if "usefulness" in signals and r.usefulness is not None:
        score += WEIGHTS["usefulness"] * (2 * r.usefulness - 1) / (RRF_K + 1)
    return score


def mmr(ordered: Sequence[Ranked], k: int, lam: float = LAMBDA) -> list[Ranked]:
    """Maximal marginal relevance: `k` of the candidates (best first), each next one the most
    relevant after subtracting its similarity to those already picked (see the module's formula).
    Candidates without a vector count as unlike every other."""
    if not ordered:
        return []
    head = list(ordered[: max(4 * k, 20)])
    scores = np.array([r.score for r in head])
    span = float(scores.max() - scores.min()) or 1.0
    relevance = (scores - scores.min()) / span
    width = next((len(r.vector) for r in head if r.vector is not None), 0)
    matrix = np.stack([r.vector if r.vector is not None else np.zeros(width, np.float32) for r in head])
    similar = matrix @ matrix.T if width else np.zeros((len(head), len(head)))
    redundancy = np.zeros(len(head))
    left = np.ones(len(head), dtype=bool)
    picked: list[int] = []
    while left.any() and len(picked) < k:
        value = lam * relevance - (1 - lam) * redundancy - (redundancy >= DUPLICATE)
        value = np.where(left, value, -np.inf)
        i = int(np.argmax(value))
        picked.append(i)
        left[i] = False
        redundancy = np.maximum(redundancy, similar[i])
    return [head[i] for i in picked]


def _rerank(reranker: Reranker, text: str, ordered: list[Ranked], texts: dict[str, str]) -> list[Ranked]:
    head = ordered[:RERANK_TOP]
    order = reranker.rerank(text, [(r.key, texts.get(r.key, "")) for r in head])
    by_key = {r.key: r for r in head}
    moved = [by_key[key] for key in dict.fromkeys(order) if key in by_key]
    rest = [r for r in head if r.key not in set(order)]
    scores = sorted((r.score for r in head), reverse=True)
    for r, score in zip(moved + rest, scores, strict=True):  # the new order keeps the fused scale
        r.score = score
    return moved + rest + ordered[RERANK_TOP:]


def _explain_no_vectors(store: GraphStore, query: Query) -> None:
    """No vector candidates: an error if the store's embeddings come from another model."""
    models = store.embedding_models()
    if models and query.model not in models:
        stored = max(models, key=lambda name: models[name])
        raise EmbeddingError(
            f"the store's decisions were embedded with {stored!r}, the configured model is "
            f"{query.model!r}: run `contextgraph embed` to re-embed them with it, or configure "
            f"{stored!r} again (CONTEXTGRAPH_EMBEDDING_MODEL)"
        )


def point_of(key: str) -> tuple[str, str]:
    """(dag_id, task_id) of a decision key (of any deployment)."""
    from contextgraph import model as m

    parts = m.parse_key(m.Decision, key)[1]
    return parts[0], parts[2]


def split_key(key: str) -> list[str]:
    """The parts of a natural key (`model.split_key`, the inverse of model.make_key)."""
    from contextgraph import model as m

    return m.split_key(key)
