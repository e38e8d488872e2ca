"""Superseded lessons: decisions that stay in the graph but no longer teach what to do now.

A precedent is *stale*, and ranks below current ones (`ranking.STALE_PENALTY`) with the reason in
its results, when

* **its decision point changed in a newer DAG version** — it was made under DagVersion n
  (`(:Decision)-[:UNDER_VERSION]->(:DagVersion)`), and a newer version of its DAG either dropped the
  task (`Task.in_latest_version` is false) or offers other options there (a decision made under a
  version > n offered another set). A new DAG version that leaves the point's options alone
  supersedes nothing: the human's judgement is about the question, not the code around it.
  Reason: "superseded by DAG version N: options changed (…)" / "…: the task is no longer in the DAG".
* **a reviewer retired its lesson** — `retire(store, lesson_id, why=…, by=…)` (CLI
  `contextgraph lessons --retire ID --why "…"`). A lesson's id names what it teaches: its decision
  point and the option its members chose (`lesson_id(dag_id, task_id, decided)`), so the same lesson
  has the same id in every search. Retiring it makes every decision at that point that chose that
  option *and was answered before the retirement* stale ("retired by X on DATE: why"); decisions
  answered afterwards count again. `restore(store, lesson_id, by=…)` un-retires it (the record
  stays, inactive).

`stale(store, keys)` answers, for precedent keys, why each stale one is stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contextgraph import model as m
from contextgraph.errors import ContextGraphError, QueryRefusedError
from contextgraph.store.base import GraphStore, Row, StaleFacts
from contextgraph.store.queries import load, statements

LESSON_PREFIX = "L"


class UnknownLessonError(ContextGraphError, LookupError):
    """A lesson id that names no (decision point, option) of the graph."""


@dataclass(frozen=True)
class Retirement:
    """A retired lesson: which (point, option), why, by whom and when; `active` False once restored."""

    key: str
    dag_id: str
    task_id: str
    decided: str
    why: str
    retired_by: str
    retired_at: datetime
    active: bool = True
    restored_by: str | None = None
    restored_at: datetime | None = None

    def reason(self) -> str:
        """Why its decisions rank lower, for results: "retired by X on DATE: why"."""
        return f"retired by {self.retired_by} on {self.retired_at.date().isoformat()}: {self.why}"


def choice_label(chosen_options: Sequence[str] | None) -> str:
    """A decision's choice as lessons name it (options joined by " / ")."""
    return " / ".join(chosen_options or []) or "(nothing chosen)"


def lesson_id(dag_id: str, task_id: str, decided: str) -> str:
    """The stable id of the lesson "at (dag_id, task_id), reviewers chose `decided`": "L" + 10 hex."""
    digest = hashlib.sha256(m.make_key(dag_id, task_id, decided).encode("utf-8")).hexdigest()
    return LESSON_PREFIX + digest[:10]


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _ensure_schema(store: GraphStore) -> None:
    for statement in statements(store.cypher("retired_schema")):
        store._write(statement, {})


def retirements(store: GraphStore, *, active_only: bool = True) -> list[Retirement]:
    """The retired lessons, newest first (restored ones too unless `active_only`)."""
    return _records(_retirement_rows(store), active_only=active_only)


def _retirement_rows(store: GraphStore) -> list[Row]:
    try:
        return store.query(load("retired_read"))
    except QueryRefusedError as exc:
        if not store.missing_schema(exc):
            raise
        return []  # the embedded table does not exist before the first retirement


def _records(rows: Sequence[Row], *, active_only: bool) -> list[Retirement]:
    found = [Retirement(**{k: _utc(v) for k, v in row.items()}) for row in rows if row["key"] is not None]
    return [r for r in found if r.active or not active_only]


def resolve(store: GraphStore, lesson: str) -> tuple[str, str, str]:
    """(dag_id, task_id, decided) of a lesson id; UnknownLessonError if no answered decision has it."""
    wanted = lesson.strip()
    for row in store.query(load("lesson_choices")):
        decided = choice_label(row["chosen_options"])
        if lesson_id(row["dag_id"], row["task_id"], decided) == wanted:
            return row["dag_id"], row["task_id"], decided
    raise UnknownLessonError(
        f"no lesson {wanted!r}: lesson ids are shown by `contextgraph lessons TEXT` "
        "(L followed by 10 hex digits)"
    )


def retire(store: GraphStore, lesson: str, *, why: str, by: str, at: datetime | None = None) -> Retirement:
    """Retire a lesson (see the module's docstring); returns the record.

    Raises ValueError for an empty `why` or `by`, UnknownLessonError for an unknown id.
    """
    if not why.strip():
        raise ValueError("retiring a lesson needs a reason (--why)")
    if not by.strip():
        raise ValueError("retiring a lesson needs who retires it")
    dag_id, task_id, decided = resolve(store, lesson)
    when = _utc(at) or datetime.now(UTC).replace(microsecond=0)
    record = Retirement(lesson.strip(), dag_id, task_id, decided, why.strip(), by.strip(), when)
    copy_retirement(store, record)
    return record


def copy_retirement(store: GraphStore, record: Retirement) -> None:
    """Write a retirement read from another store (a scoped copy takes its scope's retirements)."""
    _ensure_schema(store)
    row = {k: v for k, v in record.__dict__.items() if k not in ("active", "restored_by", "restored_at")}
    store._write(load("retired_write"), {"row": store._adapt([row])[0]})


def restore(store: GraphStore, lesson: str, *, by: str, at: datetime | None = None) -> bool:
    """Un-retire a lesson; False when it was not retired. Its decisions rank as current again."""
    when = _utc(at) or datetime.now(UTC).replace(microsecond=0)
    if not retirements(store):
        return False
    params = store._adapt([{"key": lesson.strip(), "by": by, "at": when}])[0]
    return bool(store._write(load("retired_restore"), params))


def stale(store: GraphStore, keys: Sequence[str], facts: StaleFacts | None = None) -> dict[str, str]:
    """Why each stale decision of `keys` is stale (key → reason); current ones are left out.

    `facts`: what it is decided from, when the store read it with the candidates
    (`GraphStore.precedent_candidates`); else it is read here, one query at a time."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    if facts is None:
        facts = _read_facts(store, keys)
    out = _retired(_records(facts.retirements, active_only=True), facts.answered)
    for key, reason in _superseded(facts.made, facts.points, facts.offers).items():
        out.setdefault(key, reason)
    return out


def _read_facts(store: GraphStore, keys: list[str]) -> StaleFacts:
    """The rows `stale` decides from, each query only when the answer can need it."""
    retired = _retirement_rows(store)
    answered: list[Row] = []
    if _records(retired, active_only=True):
        answered = store.query(store.cypher("stale_retired"), {"keys": keys})
    made = store.query(store.cypher("stale_decisions"), {"keys": keys})
    oldest = _oldest(made)
    points: list[Row] = []
    if oldest:
        points = store.query(
            store.cypher("stale_points"),
            {"points": [{"dag_id": d, "task_id": t, "version": v} for (d, t), v in oldest.items()]},
        )
    newest = _newest(points)
    moved = [
        {"dag_id": d, "task_id": t, "version": v}
        for (d, t), v in oldest.items()
        if newest.get((d, t), (0, True))[0] > v
    ]
    offers = store.query(store.cypher("stale_newer_offers"), {"points": moved}) if moved else []
    return StaleFacts(made=made, points=points, offers=offers, retirements=retired, answered=answered)


def _oldest(made: Sequence[Row]) -> dict[tuple[str, str], int]:
    """Per decision point, the oldest DAG version a decision of `made` was made under."""
    oldest: dict[tuple[str, str], int] = {}
    for row in made:
        point = (row["dag_id"], row["task_id"])
        oldest[point] = min(oldest.get(point, row["version"]), row["version"])
    return oldest


def _newest(points: Sequence[Row]) -> dict[tuple[str, str], tuple[int, bool | None]]:
    """Per decision point, its DAG's newest version and whether the task is in it."""
    return {(r["dag_id"], r["task_id"]): (r["newest"], r["in_latest"]) for r in points}


def _retired(active: Sequence[Retirement], answered: Sequence[Row]) -> dict[str, str]:
    if not active:
        return {}
    by_choice = {(r.dag_id, r.task_id, r.decided): r for r in active}
    out = {}
    for row in answered:
        found = by_choice.get((row["dag_id"], row["task_id"], choice_label(row["chosen_options"])))
        when = _utc(row["responded_at"])
        if found is not None and (when is None or when <= found.retired_at):
            out[row["key"]] = found.reason()
    return out


def _superseded(made: Sequence[Row], points: Sequence[Row], moves: Sequence[Row]) -> dict[str, str]:
    if not made:
        return {}
    newest = _newest(points)
    offers: dict[tuple[str, str], list[tuple[int, frozenset[str]]]] = {}
    for r in moves:
        offers.setdefault((r["dag_id"], r["task_id"]), []).append(
            (r["version"], frozenset(r["offered"] or []))
        )
    out = {}
    for row in made:
        point = (row["dag_id"], row["task_id"])
        latest, in_latest = newest.get(point) or (0, True)
        if latest <= row["version"]:
            continue
        if in_latest is False:
            out[row["key"]] = f"superseded by DAG version {latest}: the task is no longer in the DAG"
            continue
        mine = frozenset(row["offered"] or [])
        later = [(v, o) for v, o in offers.get(point, []) if v > row["version"]]
        if not later:
            continue  # nobody decided at the point under a newer version yet: nothing to compare
        version = max(v for v, _ in later)
        now = {o for v, o in later if v == version}
        if mine not in now:
            shown = sorted(min(now, key=sorted))
            out[row["key"]] = (
                f"superseded by DAG version {version}: options changed "
                f"(was {', '.join(sorted(mine)) or 'none'}; now {', '.join(shown) or 'none'})"
            )
    return out
