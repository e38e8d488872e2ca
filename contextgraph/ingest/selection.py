"""Which DAGs a sync reads: the include/exclude filters, and the DAGs that matter.

A big Airflow runs thousands of DAGs; only a few ask humans. A sync therefore reads the history
(runs, task instances, HITL details, proposals) only of the DAGs that are *tracked*:

* DAGs with a decision point (a HITL task known to the graph, or a HITL detail read now), and
* their **asset feeders**: DAGs whose tasks produce an asset that a tracked DAG is scheduled on,
  followed upstream `feeder_depth` hops (feeders of feeders …), so a decision's context can cross
  DAGs;
* or every DAG, with `all_dags`.

Every other DAG that passes the filters keeps only its Dag node (with its tags, schedule, paused
flag and `tracked: false`). DAGs the filters leave out are not written at all.

Filters (`DagFilter`): `include` and `exclude` are shell-style patterns on `dag_id` (`fnmatch`,
case-sensitive: `finance_*`, `*_hitl`); `tags` keeps DAGs with at least one of these tags;
`exclude_tags` drops DAGs with any of these. A DAG is skipped for the first reason that applies,
in this order: `excluded` (matches an exclude pattern), `not_included` (include patterns are set
and none matches), `excluded_tag`, `no_matching_tag`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from contextgraph.ingest.mapping import AssetLinks

#: Why a DAG's history was not read (`SyncReport.skipped`), in the order they are checked.
SKIP_REASONS = ("excluded", "not_included", "excluded_tag", "no_matching_tag", "no_decisions")
#: Why a DAG's history was read (`SyncReport.tracked`).
TRACK_REASONS = ("decision_points", "asset_feeders", "all_dags")


@dataclass(frozen=True)
class DagFilter:
    """Include/exclude rules on `dag_id` patterns and tags. Empty: every DAG passes."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()

    def reason_to_skip(self, dag_id: str, tags: Iterable[str]) -> str | None:
        """None when the DAG passes; else the first reason it does not (see `SKIP_REASONS`)."""
        if any(fnmatchcase(dag_id, p) for p in self.exclude):
            return "excluded"
        if self.include and not any(fnmatchcase(dag_id, p) for p in self.include):
            return "not_included"
        names = set(tags)
        if names & set(self.exclude_tags):
            return "excluded_tag"
        if self.tags and not names & set(self.tags):
            return "no_matching_tag"
        return None


@dataclass
class AssetGraph:
    """Which DAGs feed which through assets, from the `/assets` records."""

    assets: list[AssetLinks] = field(default_factory=list)
    feeders_of: dict[str, set[str]] = field(default_factory=dict)
    """dag_id → the DAGs with a task producing an asset that this DAG is scheduled on."""

    @classmethod
    def build(cls, assets: Iterable[AssetLinks]) -> AssetGraph:
        graph = cls(list(assets))
        for links in graph.assets:
            producers = {dag for dag, _ in links.producers}
            for scheduled in links.scheduled:
                graph.feeders_of.setdefault(scheduled, set()).update(producers - {scheduled})
        return graph

    def feeders(self, dag_ids: Iterable[str], depth: int, allowed: Mapping[str, object]) -> set[str]:
        """The DAGs that feed `dag_ids` through assets, up to `depth` hops upstream, among `allowed`
        (a DAG the filters leave out is not followed); `dag_ids` themselves not included."""
        start = set(dag_ids)
        found: set[str] = set()
        frontier = set(start)
        for _ in range(depth):
            frontier = (
                {f for d in frontier for f in self.feeders_of.get(d, ()) if f in allowed} - found - start
            )
            if not frontier:
                break
            found |= frontier
        return found

    def touching(self, dag_ids: set[str]) -> list[AssetLinks]:
        """The assets produced by or scheduling any of `dag_ids`."""
        return [a for a in self.assets if a.dag_ids & dag_ids]
