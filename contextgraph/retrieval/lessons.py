"""Lessons: what a group of similar precedents teaches, instead of five near-identical decisions.

`find_lessons(store, embedder, text)` ranks the `POOL` best precedents for the case (the ranking of
`contextgraph.retrieval.ranking`, without diversity) and folds those decided at the same decision point whose
situations and reasons say the same thing into one lesson:

    similarity(a, b) = (cos(situation_a, situation_b) + cos(reason_a, reason_b)) / 2
    a precedent joins the lesson (of its decision point) whose first member it is most similar to,
    if that similarity is at least `THRESHOLD`; otherwise it starts a lesson of its own.

Members are taken in rank order, so a lesson is led by its best-ranked precedent. A lesson carries
the option most of its members chose and the shares of every option ("3 of 5: Escalate to CRE"),
the reason in a sentence (the most central reason among the members who chose that option), the
count, the latest example, the exemplars (members who chose the majority option, best first) and
the exceptions (members who decided otherwise, with their reasons). Lessons are ordered by their
best member's rank. Without an embedder, every precedent is a lesson of its own.

Each lesson has a stable `id` naming what it teaches (`supersede.lesson_id(dag_id, task_id,
decided)`), which a reviewer passes to `contextgraph lessons --retire ID --why "…"`. A lesson whose
members are all stale (superseded by a DAG version, or retired) says why in `stale`; one with a
member flagged by `contextgraph.retrieval.usefulness` (drafts it informed were overridden again and again)
has `maybe_outdated` ("this lesson may be outdated").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel

from contextgraph.ingest.embeddings import Embedder, normalise
from contextgraph.retrieval import ranking, supersede
from contextgraph.store.base import CandidateFilter, GraphStore

POOL = 30
"""How many ranked precedents are grouped."""
THRESHOLD = 0.7
"""Least mean (situation, reason) cosine to the lesson's first member to join it (chosen on dev)."""
MAX_SENTENCE = 240


class LessonExample(BaseModel):
    """One decision in a lesson: which, what was asked, what was chosen and why, when."""

    key: str
    subject: str = ""
    chosen_options: list[str] = []
    reason: str | None = None
    reviewer: str | None = None
    responded_at: datetime | None = None
    stale: str | None = None
    """Why it ranks below current decisions (`contextgraph.retrieval.supersede`), or None."""
    maybe_outdated: bool = False


class Lesson(BaseModel):
    """What similar decisions at one decision point teach (see the module's docstring)."""

    id: str = ""
    """Stable id of (decision point, decided option): `supersede.lesson_id`."""
    dag_id: str
    task_id: str
    decided: str
    """The option (options joined by " / ") most members chose."""
    reason: str
    """The most central reason among the members who chose `decided`, in a sentence."""
    shares: dict[str, int]
    """How many members chose each option; the counts add up to `count`."""
    count: int
    latest: LessonExample
    exemplars: list[LessonExample]
    exceptions: list[LessonExample]
    score: float = 0.0
    stale: str | None = None
    """Why the lesson no longer teaches what to do now, when all its members that chose `decided`
    are stale (the best one's reason: "superseded by DAG version N: …" or "retired by X on DATE: why")."""
    maybe_outdated: bool = False
    """A member led to overridden drafts again and again: "this lesson may be outdated"."""

    def to_prompt(self) -> str:
        """The lesson in two to four compact lines, for a prompt or a reviewer."""
        others = ", ".join(f"{n} {option}" for option, n in self.shares.items() if option != self.decided)
        head = f"{self.shares.get(self.decided, 0)} of {self.count}: {self.decided}"
        if others:
            head += f" ({others})"
        lines = [f"- [{self.id}] {head} at {self.dag_id}/{self.task_id}: {self.reason}"]
        if self.stale:
            lines.append(f"  stale: {self.stale}")
        if self.maybe_outdated:
            lines.append("  this lesson may be outdated: drafts it informed were overridden again and again")
        latest = self.latest.responded_at.date().isoformat() if self.latest.responded_at else "date unknown"
        lines.append(f"  latest: {latest}, {self.latest.subject!r} [{self.latest.key}]")
        for ex in self.exceptions[:2]:
            why = f": {_sentence(ex.reason)}" if ex.reason else ""
            lines.append(f"  exception: {' / '.join(ex.chosen_options)}{why} [{ex.key}]")
        return "\n".join(lines)


def lessons_prompt(lessons: Sequence[Lesson]) -> str:
    """Lessons as a compact block of text (empty when there are none)."""
    return "\n".join(lesson.to_prompt() for lesson in lessons)


def find_lessons(
    store: GraphStore,
    embedder: Embedder | None,
    text: str,
    *,
    k: int = 3,
    point: tuple[str, str] | None = None,
    dag_id: str | None = None,
    task_id: str | None = None,
    since: datetime | None = None,
    deployment: str | None = None,
    exclude: Sequence[str] = (),
    threshold: float = THRESHOLD,
) -> list[Lesson]:
    """The `k` lessons the precedents of `text` teach, best first (see the module's docstring).

    Filters and `point` as for `find_similar_decisions`; raises what it raises (QueryTextError,
    EmbeddingError).
    """
    from contextgraph.retrieval.precedents import check_query

    text = check_query(text)
    if k < 1:
        return []
    if point is None and dag_id is not None and task_id is not None:
        point = (dag_id, task_id)
    filters = CandidateFilter(
        dag_id=dag_id, task_id=task_id, since=since, exclude=frozenset(exclude), deployment=deployment
    )
    query = ranking.prepare(embedder, text, point=point, filters=filters, signals=None)
    ranked = ranking.rank(store, query, POOL, diversify=False, vectors=True)
    if not ranked:
        from contextgraph.retrieval.precedents import check_deployment

        check_deployment(store, deployment)  # found nothing: an unknown deployment is an error
    members = [
        (r, {**r.details, "stale": r.stale, "maybe_outdated": bool(r.learned and r.learned.maybe_outdated)})
        for r in ranked
        if r.details is not None
    ]
    if not members:
        return []
    similar = _similarity(
        embedder, [r.vector for r, _ in members], [d.get("reason") or "" for _, d in members]
    )
    groups: list[list[int]] = []
    for i, (_, d) in enumerate(members):
        best, best_sim = None, threshold
        for g, group in enumerate(groups):
            lead = members[group[0]][1]
            if (lead["dag_id"], lead["task_id"]) != (d["dag_id"], d["task_id"]):
                continue
            sim = float(similar[i, group[0]])
            if sim >= best_sim:
                best, best_sim = g, sim
        if best is None:
            groups.append([i])
        else:
            groups[best].append(i)
    out = [_lesson([members[i] for i in group], [similar[i][group] for i in group]) for group in groups[:k]]
    return out


def _similarity(embedder: Embedder | None, vectors: list[Any], reasons: list[str]) -> Any:
    """Pairwise (situation + reason) / 2 cosine of the members (their stored embeddings, None:
    none); identity without an embedder."""
    n = len(vectors)
    if embedder is None:
        return np.eye(n)
    width = embedder.dimensions
    situations = normalise(np.stack([v if v is not None else np.zeros(width, np.float32) for v in vectors]))
    why = embedder.embed([r or " " for r in reasons])
    return (situations @ situations.T + why @ why.T) / 2.0


def _example(d: dict[str, Any]) -> LessonExample:
    return LessonExample(
        key=d["key"],
        subject=d.get("subject") or "",
        chosen_options=d.get("chosen_options") or [],
        reason=d.get("reason"),
        reviewer=d.get("actor_name") or d.get("responded_by") or d.get("actor_id"),
        responded_at=d.get("responded_at"),
        stale=d.get("stale"),
        maybe_outdated=bool(d.get("maybe_outdated")),
    )


def _choice(d: dict[str, Any]) -> str:
    return supersede.choice_label(d.get("chosen_options"))


def _lesson(members: list[tuple[ranking.Ranked, dict[str, Any]]], sims: list[Any]) -> Lesson:
    choices = [_choice(d) for _, d in members]
    counts = Counter(choices)
    decided = max(counts, key=lambda c: (counts[c], -choices.index(c)))
    agree = [i for i, c in enumerate(choices) if c == decided]
    # the most central reason: the agreeing member most like the other agreeing members
    with_reason = [i for i in agree if members[i][1].get("reason")]
    central = max(with_reason, key=lambda i: float(np.sum(np.asarray(sims[i])[agree])), default=agree[0])
    reason = _sentence(members[central][1].get("reason")) or "(no reason given)"
    dated = [d for _, d in members if d.get("responded_at") is not None]
    latest = max(dated, key=lambda d: d["responded_at"]) if dated else members[0][1]
    lead = members[0][1]
    stale = [members[i][1].get("stale") for i in agree]
    return Lesson(
        id=supersede.lesson_id(lead["dag_id"], lead["task_id"], decided),
        dag_id=lead["dag_id"],
        task_id=lead["task_id"],
        decided=decided,
        reason=reason,
        shares=dict(counts.most_common()),
        count=len(members),
        latest=_example(latest),
        exemplars=[_example(members[i][1]) for i in agree],
        exceptions=[_example(d) for c, (_, d) in zip(choices, members, strict=True) if c != decided],
        score=float(members[0][0].score),
        stale=stale[0] if all(stale) else None,
        maybe_outdated=any(d.get("maybe_outdated") for _, d in members),
    )


def _sentence(text: str | None) -> str:
    """The first sentence of a reason (the whole reason when it is short)."""
    if not text:
        return ""
    text = " ".join(text.split())
    if len(text) <= MAX_SENTENCE:
        return text
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return first if len(first) <= MAX_SENTENCE else first[: MAX_SENTENCE - 1].rstrip() + "…"
