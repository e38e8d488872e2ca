"""Learn from use: how often a precedent, shown to a drafting agent, ended in an approved draft.

When an agent consulted precedents, the graph holds both ends: `(later)-[:INFORMED_BY]->(precedent)`
and the later decision's `REVIEWED {verdict}` of the draft. Per precedent, `compute()` counts the
later verdicts — approved, overridden (a human rewrote it), escalated — and scores it

    score = (approved + 1) / (shown + 2)        (Laplace: 0.5 with no evidence, in 0..1)

A precedent whose drafts were overridden `OUTDATED_MIN_OVERRIDES` times or more, at least half of
the times it was shown, is flagged `maybe_outdated` ("this lesson may be outdated") for a human.
`refresh(store)` stores the scores (`PrecedentUsefulness` nodes, one per precedent, replaced on
each refresh); `stored(store, keys)` reads them for results (precedents and lessons show the score
and the flag). The ranking uses the score only when asked (signal "usefulness", off by default:
on the dev split of the precedent evaluation it changed nothing, see README "Governance").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from contextgraph.errors import QueryRefusedError
from contextgraph.store.base import GraphStore, Row
from contextgraph.store.queries import load, statements

OUTDATED_MIN_OVERRIDES = 3


@dataclass(frozen=True)
class Usefulness:
    """One precedent's record: counts of later verdicts, the score (0..1) and the flag."""

    key: str
    shown: int
    approved: int
    overridden: int
    escalated: int
    score: float
    maybe_outdated: bool


def compute(store: GraphStore) -> dict[str, Usefulness]:
    """Usefulness of every decision that informed a later one (key → Usefulness)."""
    tallies: dict[str, dict[str, int]] = {}
    seen: set[tuple[str, str]] = set()
    for row in store.query(load("usefulness")):
        pair = (row["key"], row["later"])
        if pair in seen:  # a later decision with several proposals counts once
            continue
        seen.add(pair)
        tally = tallies.setdefault(row["key"], {"shown": 0, "approved": 0, "overridden": 0, "escalated": 0})
        verdict = row["verdict"]
        if verdict == "pending":
            continue  # not decided yet: no evidence either way
        tally["shown"] += 1
        if verdict in ("approved", "overridden", "escalated"):
            tally[verdict] += 1
    out = {}
    for key, t in tallies.items():
        outdated = t["overridden"] >= OUTDATED_MIN_OVERRIDES and 2 * t["overridden"] >= t["shown"]
        score = round((t["approved"] + 1) / (t["shown"] + 2), 4)
        out[key] = Usefulness(
            key, t["shown"], t["approved"], t["overridden"], t["escalated"], score, outdated
        )
    return out


def refresh(store: GraphStore) -> dict[str, Usefulness]:
    """Compute and store every precedent's usefulness; returns what was stored."""
    found = compute(store)
    for statement in statements(store.cypher("usefulness_schema")):
        store._write(statement, {})
    at = datetime.now(UTC)
    rows = [{**asdict(u), "at": at} for u in found.values()]
    for start in range(0, len(rows), store.batch_size):
        store._write(load("usefulness_write"), {"rows": store._adapt(rows[start : start + store.batch_size])})
    return found


def stored(store: GraphStore, keys: Sequence[str]) -> dict[str, Usefulness]:
    """The stored usefulness of these precedents (missing: never refreshed, or never shown)."""
    if store.lacks_table("PrecedentUsefulness"):
        return {}  # before the first refresh (asking anyway would leave a failed statement cached)
    try:
        rows = store.query(load("usefulness_read"), {"keys": list(keys)})
    except QueryRefusedError as exc:
        if not store.missing_schema(exc):
            raise
        return {}  # the table does not exist before the first refresh
    return from_rows(rows)


def from_rows(rows: Sequence[Row]) -> dict[str, Usefulness]:
    """Stored usefulness rows (`usefulness_read`'s columns) by key."""
    return {r["key"]: Usefulness(**{k: r[k] for k in Usefulness.__dataclass_fields__}) for r in rows}
