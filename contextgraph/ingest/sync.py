"""One incremental sync: Airflow REST API → mapping → graph store.

Stages, each streamed page by page and written as it goes: DAGs and assets, DAG runs (updated
since the watermark), task instances (likewise; a DAG's tasks are fetched when one of its tasks is
new to the graph), then HITL details (created since the watermark, plus every decision still
pending in the graph until it is answered or timed out). Proposals come from upstream XComs, once.

Only what matters is read (`contextgraph.ingest.selection`): runs, task instances and decisions of the
*tracked* DAGs (those with decision points and their asset feeders, or all with `all_dags`); the
other DAGs the filters let through keep their Dag node only. A DAG that becomes tracked (its first
HITL detail, a new feeder, a filter changed) has its whole history read once, per DAG; tracked
DAGs are then read incrementally from the all-DAGs lists, records of other DAGs dropped.

Watermarks live in the graph (`SyncState`): each stage's moves, after the stage is fully
written, to the moment the stage began reading (runs and task instances do not show their
`updated_at`, only filter on it). Each query reaches back `overlap` before its watermark, so
records that change while a stage runs, or under some clock skew, are read again next time.
Writes are idempotent and skip unchanged rows, so reading again costs API calls, not writes:
a sync killed mid-way is completed by the next one with nothing duplicated and nothing lost.

Writes run on one background thread, one page ahead at most (`_Writer`): while the store writes a
page, the next one is fetched and mapped. Every read of the store and every watermark waits for
the page in flight, so the sync never reads what it has not finished writing.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, Field

from contextgraph import model as m
from contextgraph.config import AirflowSettings, public_url
from contextgraph.errors import InvalidRecordError, SourceNotFoundError
from contextgraph.governance import forget
from contextgraph.ingest import mapping
from contextgraph.ingest.redact import redacting
from contextgraph.ingest.selection import SKIP_REASONS, TRACK_REASONS, AssetGraph, DagFilter
from contextgraph.ingest.source.airflow import ALL, XComRef
from contextgraph.store import GraphStore, WriteResult
from contextgraph.store.queries import load

log = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[str, int], None]


class SyncOptions(BaseModel):
    """How a sync reads: page size of writes, overlap of watermarks, which XComs are proposals."""

    deployment: str = Field(default=m.DEFAULT_DEPLOYMENT, pattern=m.DEPLOYMENT_PATTERN)
    """The name of the Airflow being read: part of every key the sync writes, and of its
    watermarks (`CONTEXTGRAPH_DEPLOYMENT`; see `contextgraph.model`)."""
    page_size: int = Field(default=500, ge=1)
    overlap: timedelta = timedelta(minutes=5)
    proposal_tasks: dict[str, list[str]] = {}
    """`dag_id.task_id` of a decision point → the upstream tasks whose `return_value` XCom is the
    proposal it reviews. Default: the decision point's direct upstream tasks."""
    reason_params: dict[str, list[str]] = {}
    """`dag_id.task_id` (or `*` for every other point) → the params_input names holding the reason
    (default `contextgraph.ingest.mapping.REASON_KEYS`)."""

    verdicts: dict[str, dict[str, m.Verdict]] = {}
    """`dag_id.task_id` (or `*`) → {chosen option: verdict}; the options' words are the fallback."""
    dag_filter: DagFilter = DagFilter()
    """Which DAGs the sync looks at at all (`dag_id` patterns and tags); the rest is not written."""
    all_dags: bool = False
    """Read the runs and task instances of every DAG the filter lets through, not only of those with
    decision points and their asset feeders."""
    feeder_depth: int = Field(default=3, ge=0)
    """How many hops upstream asset feeders are followed (feeders of feeders …); 0: none."""
    write_behind: bool = True
    """Write each page on a background thread while the next is fetched and mapped (one page in
    flight); False writes each page before reading on."""

    def for_point(self, table: dict[str, T], dag_id: str, task_id: str) -> T | None:
        """The entry of `table` for this decision point, else its `*` entry, else None."""
        return table.get(f"{dag_id}.{task_id}", table.get("*"))


class Source(Protocol):
    """What the sync needs of an Airflow source (`contextgraph.ingest.source.AirflowSource`)."""

    calls: int
    settings: AirflowSettings
    server_time: datetime | None
    """The server's clock at its last answer (watermarks do not depend on this machine's clock)."""

    def dags(self) -> Iterator[dict[str, Any]]: ...
    def tasks(self, dag_id: str) -> list[dict[str, Any]]: ...
    def dag_runs(
        self, *, updated_since: datetime | None = None, dag_id: str = ALL
    ) -> Iterator[dict[str, Any]]: ...
    def task_instances(
        self, *, updated_since: datetime | None = None, dag_id: str = ALL
    ) -> Iterator[dict[str, Any]]: ...
    def hitl_details(self, *, created_since: datetime | None = None) -> Iterator[dict[str, Any]]: ...
    def hitl_detail_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any]: ...
    def xcom_value(self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1) -> Any: ...

    # Optional: `xcom_values(refs: list[XComRef]) -> dict[XComRef, Any]`, many XComs at once
    # (AirflowSource reads them concurrently); without it they are read one by one.
    # Optional: `assets() -> Iterator[dict]`, the `/assets` records; without it no assets are kept
    # and no DAG is an asset feeder.


@dataclass(frozen=True)
class Rejected:
    """A record that was not ingested, and why."""

    record: str
    field: str
    reason: str


@dataclass
class SyncReport:
    """What one sync read, wrote and refused."""

    fetched: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    missing_endpoints: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)
    without: Counter[str] = field(default_factory=Counter)
    """Of the decisions this sync read: answered without any `reason`, without a `proposal`
    (no upstream XCom found), without a decision `point` in the latest tasks list."""
    api_calls: int = 0
    seconds: float = 0.0
    full: bool = False
    embedded: int = 0
    """Decisions embedded after the sync (by `contextgraph.ingest.pipeline.run_ingest`)."""
    deployment: str = m.DEFAULT_DEPLOYMENT
    """The deployment this sync read (`SyncOptions.deployment`)."""
    forgotten_skipped: int = 0
    """Forgotten nodes (`contextgraph forget`) the sync read again and kept out of the graph."""
    tracked: dict[str, list[str]] = field(default_factory=dict)
    """Why DAGs' history was read (`selection.TRACK_REASONS`) → their dag_ids."""
    skipped: dict[str, list[str]] = field(default_factory=dict)
    """Why DAGs' history was not read (`selection.SKIP_REASONS`: filtered out, or `no_decisions`:
    only the Dag node kept) → their dag_ids."""
    skipped_records: Counter[str] = field(default_factory=Counter)
    """Records read but dropped because their DAG is not tracked (from the all-DAGs lists), by kind."""

    def add(self, result: WriteResult) -> None:
        self.created.update(result.created)
        self.updated.update(result.updated)
        self.unchanged.update(result.unchanged)
        self.missing_endpoints.update(result.missing_endpoints)

    @property
    def written(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "full": self.full,
            "seconds": round(self.seconds, 3),
            "api_calls": self.api_calls,
            "fetched": dict(self.fetched),
            "created": _nonzero(self.created),
            "updated": _nonzero(self.updated),
            "unchanged": sum(self.unchanged.values()),
            "embedded": self.embedded,
            "forgotten_skipped": self.forgotten_skipped,
            "missing_endpoints": _nonzero(self.missing_endpoints),
            "rejected": [r.__dict__ for r in self.rejected],
            "without": {k: self.without[k] for k in ("reason", "proposal", "point")},
            "dags": {
                "tracked": _dag_lists(self.tracked, TRACK_REASONS),
                "skipped": _dag_lists(self.skipped, SKIP_REASONS),
                "skipped_records": _nonzero(self.skipped_records),
            },
        }


def _nonzero(counter: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in sorted(counter.items()) if v}


#: At most this many dag_ids are listed per reason in the summary (the count is always there).
LISTED_DAG_IDS = 20


def _dag_lists(by_reason: dict[str, list[str]], order: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`{reason: {"count": n, "dag_ids": [first LISTED_DAG_IDS, sorted]}}` for reasons with DAGs."""
    return {
        reason: {"count": len(ids), "dag_ids": sorted(ids)[:LISTED_DAG_IDS]}
        for reason in order
        if (ids := by_reason.get(reason))
    }


class Sync:
    """Bring the graph up to date with one Airflow: `Sync(source, store).run()`."""

    def __init__(
        self,
        source: Source,
        store: GraphStore,
        options: SyncOptions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.source = redacting(source)  # governance: personal data out before mapping (CONTEXTGRAPH_REDACT)
        self.store = store
        self.options = options or SyncOptions()
        self.progress = progress or (lambda stage, n: None)

    def run(self, *, full: bool = False) -> SyncReport:
        """One sync; `full` re-reads everything instead of what changed since the watermarks."""
        run = _Run(self, full)
        return run.execute()


class _Run:
    """The state of one sync while it runs."""

    def __init__(self, sync: Sync, full: bool) -> None:
        self.source, self.store, self.options, self.progress = (
            sync.source,
            sync.store,
            sync.options,
            sync.progress,
        )
        self.full = full
        self.deployment = self.options.deployment
        self.report = SyncReport(full=full, deployment=self.deployment)
        self.shapes: dict[str, mapping.DagShape] = {}
        self.fetched_tasks: set[str] = set()
        self.decision_points: dict[str, set[str]] = {}
        self.screen = forget.Screen(self.store)  # governance: forgotten data stays out
        self.older_tasks: set[tuple[str, str]] = set()
        self.upstreams: dict[tuple[str, str], tuple[mapping.DagShape, list[str]]] = {}
        self.xcoms: dict[XComRef, Any] = {}
        """XCom values read ahead for the page of decisions being mapped."""
        self.listed: set[str] = set()
        """Every dag_id the `/dags` list named (filtered out or not)."""
        self.candidates: dict[str, m.Dag] = {}
        """The listed DAGs the filter lets through (their Dag nodes are written)."""
        self.filtered: dict[str, str] = {}
        """dag_id → why the filter leaves it out."""
        self.tracked: dict[str, str] = {}
        """dag_id → why its history is read this sync."""
        self.was_tracked: set[str] = set()
        """DAGs whose history an earlier sync read (only their changes are read again)."""
        self.assets = AssetGraph()
        self.writer = _Writer(self.report, behind=self.options.write_behind)

    def execute(self) -> SyncReport:
        try:
            return self._execute()
        finally:
            self.writer.close()

    def _execute(self) -> SyncReport:
        clock, calls_before = time.monotonic(), self.source.calls
        url = public_url(self.source.settings.url.rstrip("/"))
        state = m.SyncState(source=url, deployment=self.deployment)  # watermarks per deployment
        if not self.full:
            state = self._load_state(state)

        self._sync_dags()
        begun = self._now()
        self._sync_history("DAG runs", self._since(state.runs_updated_at))
        state = self._save(state, runs_updated_at=begun)

        begun = self._now()
        self._sync_history("task instances", self._since(state.task_instances_updated_at))
        state = self._save(state, task_instances_updated_at=begun)

        begun = self._now()
        self._sync_decisions(self._hitl_since(state.hitl_created_at))
        self._save(state, hitl_created_at=begun, last_sync_at=begun)

        for dag_id, reason in self.tracked.items():
            self.report.tracked.setdefault(reason, []).append(dag_id)
        untracked = sorted(set(self.candidates) - set(self.tracked))
        if untracked:
            self.report.skipped["no_decisions"] = untracked
        self.report.api_calls = self.source.calls - calls_before
        self.report.seconds = time.monotonic() - clock
        return self.report

    # --- stages ---------------------------------------------------------------------------------

    def _sync_dags(self) -> None:
        """List DAGs and assets, decide which DAGs are tracked, write the DAGs the filter lets through
        (tracked or not), and the tasks and assets of the tracked ones."""
        dag_filter = self.options.dag_filter
        for record in self.source.dags():
            self.report.fetched["DAGs"] += 1
            dag = self._map(mapping.map_dag, record)
            if dag is None:
                continue
            self.listed.add(dag.dag_id)
            reason = dag_filter.reason_to_skip(dag.dag_id, dag.tags)
            if reason is None:
                self.candidates[dag.dag_id] = dag
            else:
                self._skip_dag(dag.dag_id, reason)
        self.assets = AssetGraph.build(self._read_assets())
        self.was_tracked = {
            r["dag_id"] for r in self._query("sync_tracked_dags", {"deployment": self.deployment})
        }
        if self.options.all_dags:
            starting = {d: "all_dags" for d in self.candidates}
        else:
            stored = {r["dag_id"] for r in self._query("sync_decision_dags", {"deployment": self.deployment})}
            starting = {d: "decision_points" for d in stored if d in self.candidates}
        starting = self._with_feeders(starting)
        url = public_url(self.source.settings.url.rstrip("/"))
        deployment = m.Deployment(name=self.deployment, airflow_url=url)
        untracked = [d for d in self.candidates.values() if d.dag_id not in starting]
        self._write(m.GraphBatch(nodes=[deployment, *untracked]))
        self.progress("DAGs", len(self.candidates))
        self._track(starting, read_history=False)
        # After `_track` wrote the tracked DAGs: every DAG node listed now exists.
        self._write(
            m.GraphBatch(edges=[m.HasDag(src=deployment.key, dst=d.key) for d in self.candidates.values()])
        )

    def _skip_dag(self, dag_id: str, reason: str) -> None:
        self.filtered[dag_id] = reason
        self.report.skipped.setdefault(reason, []).append(dag_id)

    def _read_assets(self) -> list[mapping.AssetLinks]:
        listed = getattr(self.source, "assets", None)
        if listed is None:
            return []
        found = []
        try:
            for record in listed():
                self.report.fetched["assets"] += 1
                links = self._map(mapping.map_asset, record)
                if links is not None:
                    found.append(links)
        except SourceNotFoundError as exc:  # an Airflow without the assets endpoint
            log.warning("assets not read: %s", exc)
        self.progress("assets", len(found))
        return found

    def _track(self, reasons: dict[str, str], *, read_history: bool) -> None:
        """Track these DAGs (dag_id → reason) and their asset feeders: write their Dag nodes as
        tracked, fetch their tasks (when new to the graph), write the assets touching them, and
        with `read_history` read all their runs and task instances now (one DAG at a time)."""
        new = self._with_feeders(reasons)
        if not new:
            return
        self.tracked.update(new)
        listed = [d for d in new if d in self.candidates]
        self._write(
            m.GraphBatch(nodes=[self.candidates[d].model_copy(update={"tracked": True}) for d in listed])
        )
        with_tasks = self._dags_with_tasks(listed)
        for dag_id in sorted(listed):
            if self.full or dag_id not in with_tasks:
                self._fetch_tasks(dag_id)
        producing = set(self.tracked)
        self._write(*(a.batch(producing, self.candidates) for a in self.assets.touching(set(new))))
        if read_history:
            # Every DAG of the deployment at once (a first sync where all ask): one list for all.
            each = [ALL] if set(new) == self.listed else sorted(new)
            for stage in ("DAG runs", "task instances"):
                for dag_id in each:
                    self._sync_all_of(stage, dag_id)

    def _with_feeders(self, reasons: dict[str, str]) -> dict[str, str]:
        """The DAGs of `reasons` not tracked yet, with their asset feeders not tracked yet."""
        new = {d: r for d, r in reasons.items() if d not in self.tracked}
        if new and not self.options.all_dags:
            tracked = set(self.tracked) | set(new)
            for feeder in self.assets.feeders(tracked, self.options.feeder_depth, self.candidates):
                if feeder not in self.tracked:
                    new.setdefault(feeder, "asset_feeders")
        return new

    def _sync_history(self, stage: str, since: datetime | None) -> None:
        """Runs or task instances of the tracked DAGs: all of a DAG's history when it was not
        tracked before (or on a full sync), else what changed since the watermark."""
        tracked = set(self.tracked)
        fresh = tracked if since is None else tracked - self.was_tracked
        if fresh and fresh == self.listed:
            # Every DAG of the deployment, all of its history: one list for all is cheapest.
            self._sync_stage(stage, self._history(stage, None, ALL), self._mapper(stage))
            return
        known = tracked - fresh
        if known:
            records = self._only(stage, self._history(stage, since, ALL), known)
            self._sync_stage(stage, records, self._mapper(stage))
        for dag_id in sorted(fresh):
            self._sync_all_of(stage, dag_id)

    def _sync_all_of(self, stage: str, dag_id: str) -> None:
        """All the runs or task instances of one DAG (`ALL`: of every DAG). A DAG Airflow no longer
        knows (404: deleted since its HITL details were listed) is logged and left out."""
        try:
            self._sync_stage(stage, self._history(stage, None, dag_id), self._mapper(stage))
        except SourceNotFoundError as exc:
            log.warning("%s of DAG %r not read: %s", stage, dag_id, exc)

    def _history(self, stage: str, since: datetime | None, dag_id: str) -> Iterator[dict[str, Any]]:
        read = self.source.dag_runs if stage == "DAG runs" else self.source.task_instances
        if dag_id == ALL:  # sources written before per-DAG reads take no dag_id
            records: Iterator[dict[str, Any]] = read(updated_since=since)
        else:
            records = read(updated_since=since, dag_id=dag_id)
        return records

    def _mapper(self, stage: str) -> Callable[[dict[str, Any]], m.GraphBatch]:
        return mapping.map_dag_run if stage == "DAG runs" else self._map_task_instance

    def _only(self, stage: str, records: Iterable[Any], dag_ids: set[str]) -> Iterator[Any]:
        """The records of these DAGs (malformed ones too: they are reported when mapped)."""
        for record in records:
            dag_id = record.get("dag_id") if isinstance(record, dict) else None
            if isinstance(dag_id, str) and dag_id not in dag_ids:
                self.report.skipped_records[stage] += 1
                continue
            yield record

    def _decisions_in_scope(self, page: list[Any]) -> list[Any]:
        """The page's HITL details of DAGs the filter lets through; a DAG seen asking for the first
        time becomes tracked (with its feeders), and its history is read before the page is mapped."""
        kept, asking = [], {}
        for record in page:
            try:
                dag_id = mapping.decision_identity(record)[0]
            except InvalidRecordError:
                kept.append(record)  # reported when the page is mapped
                continue
            if dag_id not in self.filtered and dag_id not in self.listed:
                # A DAG the list does not show (stale, or removed): filtered by its id alone.
                reason = self.options.dag_filter.reason_to_skip(dag_id, ())
                if reason is not None:
                    self._skip_dag(dag_id, reason)
            if dag_id in self.filtered:
                self.report.skipped_records["HITL details"] += 1
                continue
            if dag_id not in self.tracked:
                asking[dag_id] = "all_dags" if self.options.all_dags else "decision_points"
            kept.append(record)
        self._track(asking, read_history=True)
        return kept

    def _sync_stage(
        self, stage: str, records: Iterable[dict[str, Any]], map_one: Callable[[dict[str, Any]], m.GraphBatch]
    ) -> None:
        """Map and write a stream of records page by page."""
        for page in _pages(records, self.options.page_size):
            self.report.fetched[stage] += len(page)
            self._write(*(b for b in (self._map(map_one, r) for r in page) if b is not None))
            self.progress(stage, len(page))

    def _map_task_instance(self, record: dict[str, Any]) -> m.GraphBatch:
        batch = mapping.map_task_instance(record)
        ti = next(n for n in batch.nodes if isinstance(n, m.TaskInstance))
        if ti.task_id not in self._shape(ti.dag_id, ti.task_id).graph:
            batch.extend(self._older_task(ti.dag_id, ti.task_id, ti.operator, is_decision_point=False))
        return batch

    def _older_task(
        self, dag_id: str, task_id: str, operator: Any, *, is_decision_point: bool
    ) -> m.GraphBatch:
        """The Task of an older DAG version (not in the latest tasks list), once a sync."""
        if (dag_id, task_id) in self.older_tasks and not is_decision_point:
            return m.GraphBatch()
        self.older_tasks.add((dag_id, task_id))
        return mapping.task_of_an_older_version(
            dag_id, task_id, operator, is_decision_point=is_decision_point
        )

    def _sync_decisions(self, since: datetime | None) -> None:
        for listed in _pages(self.source.hitl_details(created_since=since), self.options.page_size):
            latest = self._decisions_in_scope(listed)
            page = self._earlier_tries(latest) + latest
            self.report.fetched["HITL details"] += len(page)
            stored = self._stored_proposals(page)
            self._read_proposals_ahead(page, stored)
            ran = self._branch_states(page)
            map_one = functools.partial(self._map_decision, stored=stored, ran=ran)
            self._write(*(b for b in (self._map(map_one, r) for r in page) if b is not None))
            self.xcoms.clear()
            self.progress("HITL details", len(page))

    def _earlier_tries(self, page: list[Any]) -> list[dict[str, Any]]:
        """HITL details of earlier tries of these task instances that the graph does not have yet.

        The list endpoint shows each task instance's latest try; a retried HITL task asked a human
        before, and Airflow 3.2+ keeps those answers (`…/hitlDetails/tries/{n}`).
        """
        wanted = []
        for record in page:
            try:
                dag_id, run_id, task_id, map_index, try_number = mapping.decision_identity(record)
            except InvalidRecordError:
                continue  # reported when the page is mapped
            wanted += [(dag_id, run_id, task_id, map_index, n) for n in range(1, try_number)]
        if not wanted:
            return []
        keys = [self._decision_key(w) for w in wanted]
        known = {r["key"] for r in self._query("sync_known_decisions", {"keys": keys})}
        found = []
        for dag_id, run_id, task_id, map_index, n in wanted:
            if self._decision_key((dag_id, run_id, task_id, map_index, n)) in known:
                continue
            try:
                record = self.source.hitl_detail_try(dag_id, run_id, task_id, n, map_index)
            except SourceNotFoundError:
                continue  # that try did not ask (or the server keeps no earlier tries)
            ti = record.get("task_instance")
            if isinstance(ti, dict):  # the per-try answer may leave out the task instance's ids
                record["task_instance"] = {
                    "dag_id": dag_id,
                    "dag_run_id": run_id,
                    "task_id": task_id,
                    "map_index": map_index,
                    **ti,
                    "try_number": n,
                }
            found.append(record)
        return found

    def _map_decision(
        self,
        record: dict[str, Any],
        stored: dict[str, list[mapping.ProposalValue]],
        ran: dict[str, set[str]],
    ) -> m.GraphBatch:
        identity = mapping.decision_identity(record)
        dag_id, run_id, task_id, map_index = identity[:4]
        self.decision_points.setdefault(dag_id, set()).add(task_id)
        shape = self._shape(dag_id, task_id)
        proposals = stored.get(self._decision_key(identity))
        if proposals is None:
            proposals = self._fetch_proposals(dag_id, run_id, task_id, map_index, shape)
        # One order whether fetched or read back from the graph (which returns them in any order),
        # or a decision with two proposals would look changed, and be rewritten, on every re-read.
        proposals = sorted(proposals, key=lambda p: (p.task_id, p.map_index, p.xcom_key))
        batch = mapping.map_decision(
            record,
            upstream=self._upstream(shape, task_id),
            proposals=proposals,
            reason_params=self.options.for_point(self.options.reason_params, dag_id, task_id),
            verdicts=self.options.for_point(self.options.verdicts, dag_id, task_id),
            branches=self._branches(record, shape, ran),
        )
        decision = next(n for n in batch.nodes if isinstance(n, m.Decision))
        if decision.status == "answered" and decision.reason is None:
            self.report.without["reason"] += 1
        if not any(isinstance(e, m.Reviewed) for e in batch.edges):
            self.report.without["proposal"] += 1
        if task_id not in shape.graph:
            # A decision point of an older DAG version: its Task comes from the detail itself, and
            # its task instance's OF_TASK (written before the Task existed) again with it.
            self.report.without["point"] += 1
            operator = record["task_instance"].get("operator_name") or record["task_instance"].get("operator")
            batch.extend(self._older_task(dag_id, task_id, operator, is_decision_point=True))
            ti_key = m.TaskInstance.key_for(dag_id, run_id, task_id, map_index)
            batch.add(m.OfTask(src=ti_key, dst=m.Task.key_for(dag_id, task_id)))
        return batch

    def _branches(
        self, record: dict[str, Any], shape: mapping.DagShape, ran: dict[str, set[str]]
    ) -> list[str]:
        """The downstream tasks a HITLBranchOperator's answer ran: its children whose task instance
        in this run ran (or is about to; `ran`: run key → such task ids, `_branch_states`), else the
        chosen options that are child task ids."""
        if not _is_answered_branch(record):
            return []
        ti = record["task_instance"]
        children = sorted(shape.graph.successors(ti["task_id"])) if ti["task_id"] in shape.graph else []
        went = sorted(ran.get(self._run_key(ti), set()) & set(children))
        chosen = record.get("chosen_options") or []
        return went or [c for c in children if c in chosen]

    def _branch_states(self, page: list[Any]) -> dict[str, set[str]]:
        """For the answered HITLBranchOperator decisions of a page, in one query: per run key, the
        task ids whose task instance in that run ran (`mapping.BRANCH_RAN_STATES`) among the
        branching tasks' children."""
        runs: dict[str, set[str]] = {}
        for record in page:
            if not _is_answered_branch(record):
                continue
            ti = record["task_instance"]
            try:
                shape = self._shape(ti["dag_id"], ti["task_id"])
            except InvalidRecordError:
                continue  # reported when the page is mapped
            if ti["task_id"] in shape.graph:
                runs.setdefault(self._run_key(ti), set()).update(shape.graph.successors(ti["task_id"]))
        if not runs:
            return {}
        ran: dict[str, set[str]] = {}
        params = {"runs": [{"key": key, "task_ids": sorted(ids)} for key, ids in runs.items()]}
        for row in self._query("sync_branch_states", params):
            if row["state"] in mapping.BRANCH_RAN_STATES:
                ran.setdefault(row["run_key"], set()).add(row["task_id"])
        return ran

    def _run_key(self, ti: dict[str, Any]) -> str:
        """The stored key of the DAG run of this task instance record in this sync's deployment."""
        return m.DagRun.key_for(
            ti["dag_id"], ti.get("dag_run_id") or ti.get("run_id"), deployment=self.deployment
        )

    # --- DAG structure --------------------------------------------------------------------------

    def _shape(self, dag_id: str, task_id: str) -> mapping.DagShape:
        """The DAG's shape; its tasks are fetched (once a sync) when this task is new to the graph."""
        shape = self.shapes.get(dag_id) or self._stored_shape(dag_id)
        self.shapes[dag_id] = shape
        if task_id not in shape.graph and dag_id not in self.fetched_tasks:
            shape = self._fetch_tasks(dag_id)
        return shape

    def _upstream(self, shape: mapping.DagShape, task_id: str) -> list[str]:
        """`shape.upstream(task_id)`, once per shape and task (a graph walk: a hot path)."""
        ident = (shape.dag_id, task_id)
        cached = self.upstreams.get(ident)
        if cached is None or cached[0] is not shape:
            cached = self.upstreams[ident] = (shape, shape.upstream(task_id))
        return list(cached[1])

    def _fetch_tasks(self, dag_id: str) -> mapping.DagShape:
        self.fetched_tasks.add(dag_id)
        try:
            records = self.source.tasks(dag_id)
        except SourceNotFoundError as exc:
            # Listed, then gone (deleted meanwhile), or its file no longer parses: Airflow answers
            # 404 for its tasks. Its runs and decisions are still read, with the tasks the graph has.
            self.report.rejected.append(
                Rejected(
                    f"DAG {dag_id}",
                    "tasks",
                    f"Airflow has no tasks for it ({exc}); the graph keeps the tasks it had",
                )
            )
            log.warning("DAG %s: no tasks from Airflow (%s)", dag_id, exc)
            self.shapes[dag_id] = shape = self._stored_shape(dag_id)
            return shape
        self.report.fetched["tasks"] += len(records)
        batch, shape = mapping.map_tasks(dag_id, records, self.decision_points.get(dag_id, set()))
        self._write(batch)
        self.shapes[dag_id] = shape
        return shape

    def _stored_shape(self, dag_id: str) -> mapping.DagShape:
        rows = self._query("sync_dag_shape", {"dag_id": dag_id, "deployment": self.deployment})
        return mapping.DagShape.from_edges(
            dag_id,
            {r["task_id"]: r["downstream"] or [] for r in rows},
            (r["task_id"] for r in rows if r["point"]),
        )

    def _dags_with_tasks(self, dag_ids: list[str]) -> set[str]:
        params = {"dag_ids": dag_ids, "deployment": self.deployment}
        return {r["dag_id"] for r in self._query("sync_dags_with_tasks", params)}

    # --- proposals ------------------------------------------------------------------------------

    def _fetch_proposals(
        self, dag_id: str, run_id: str, task_id: str, map_index: int, shape: mapping.DagShape
    ) -> list[mapping.ProposalValue]:
        """The upstream XComs a decision reviewed. A mapped decision (`map_index` ≥ 0) reviewed the
        draft at its own map index (a mapped task group); an unmapped upstream task's XCom
        (map index -1) is read when the draft has none at that index. Values read ahead for the
        page (`_read_proposals_ahead`) are taken from there."""
        found = []
        for upstream_task in self._proposal_tasks(dag_id, task_id, shape):
            indices = (map_index, -1) if map_index >= 0 else (-1,)
            for index in indices:
                ref = XComRef(dag_id, run_id, upstream_task, map_index=index)
                raw = (
                    self.xcoms[ref]
                    if ref in self.xcoms
                    else self.source.xcom_value(dag_id, run_id, upstream_task, map_index=index)
                )
                value = mapping.proposal_value(raw)
                if value is not None:
                    found.append(mapping.ProposalValue(task_id=upstream_task, value=value, map_index=index))
                    break
        return found

    def _proposal_tasks(self, dag_id: str, task_id: str, shape: mapping.DagShape) -> list[str]:
        """The upstream tasks whose XCom is the proposal a decision point reviews."""
        configured = self.options.proposal_tasks.get(f"{dag_id}.{task_id}")
        if configured is not None:
            return list(configured)
        if task_id in shape.graph:
            return list(shape.parents(task_id))
        # A decision point of an older DAG version (renamed since): what the latest version's
        # decision points review is the best guess; a task that did not run has no XCom.
        return sorted({p for point in shape.decision_points for p in shape.parents(point)})

    def _read_proposals_ahead(self, page: list[Any], stored: dict[str, list[mapping.ProposalValue]]) -> None:
        """Read the XComs of the page's decisions that have no stored proposal, all at once (a
        source with `xcom_values` reads them concurrently); mapping then finds them in `xcoms`.
        Only each decision's own map index is read ahead; the fallback to -1 is read when needed."""
        many = getattr(self.source, "xcom_values", None)
        if many is None:
            return
        refs: list[XComRef] = []
        for record in page:
            try:
                identity = mapping.decision_identity(record)
            except InvalidRecordError:
                continue  # reported when the page is mapped
            if self._decision_key(identity) in stored:
                continue
            dag_id, run_id, task_id, map_index = identity[:4]
            self.decision_points.setdefault(dag_id, set()).add(task_id)
            try:
                shape = self._shape(dag_id, task_id)
            except InvalidRecordError:
                continue  # reported when the page is mapped
            refs += [
                XComRef(dag_id, run_id, t, map_index=map_index)
                for t in self._proposal_tasks(dag_id, task_id, shape)
            ]
        if refs:
            self.xcoms.update(many(refs))

    def _stored_proposals(self, page: list[Any]) -> dict[str, list[mapping.ProposalValue]]:
        """Proposals already in the graph for these decisions (an XCom does not change: no refetch)."""
        keys = []
        for record in page:
            try:
                keys.append(self._decision_key(mapping.decision_identity(record)))
            except InvalidRecordError:
                continue
        found: dict[str, list[mapping.ProposalValue]] = {}
        for row in self._query("sync_stored_proposals", {"keys": keys}):
            value = json.loads(row["value"]) if row["value"] is not None else None
            found.setdefault(row["key"], []).append(
                mapping.ProposalValue(row["task_id"], value, row["xcom_key"], row["map_index"])
            )
        return found

    # --- state ----------------------------------------------------------------------------------

    def _load_state(self, state: m.SyncState) -> m.SyncState:
        rows = self._query("sync_state", {"key": state.key})
        return state.model_copy(update={k: v for k, v in rows[0].items() if v is not None}) if rows else state

    def _query(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run the named query (`contextgraph/store/cypher`) once the page in flight is written."""
        self.writer.drain()
        return self.store.query(load(name), params)

    def _save(self, state: m.SyncState, **marks: datetime) -> m.SyncState:
        """Move watermarks forward once a stage is fully written."""
        state = state.model_copy(update=marks)
        self.writer.drain()
        self.store.write(m.GraphBatch(nodes=[state]))
        return state

    def _now(self) -> datetime:
        """Airflow's clock at its last answer (a moment before the next read), else ours."""
        return self.source.server_time or datetime.now(UTC)

    def _since(self, mark: datetime | None) -> datetime | None:
        return mark - self.options.overlap if mark and not self.full else None

    def _hitl_since(self, mark: datetime | None) -> datetime | None:
        """From the watermark, or from the oldest decision still waiting for an answer."""
        since = self._since(mark)
        if since is None:
            return None
        rows = self._query("sync_oldest_pending", {"deployment": self.deployment})
        oldest = rows[0]["oldest"] if rows else None
        return min(since, oldest) if oldest else since

    # --- helpers --------------------------------------------------------------------------------

    def _decision_key(self, identity: tuple[Any, ...]) -> str:
        """The stored key of the decision with this identity in this sync's deployment."""
        return m.Decision.key_for(*identity, deployment=self.deployment)

    def _map(self, map_one: Callable[[Any], T], record: Any) -> T | None:
        """Map one record; a bad one is reported with its reason and skipped."""
        try:
            return map_one(record)
        except InvalidRecordError as exc:
            self.report.rejected.append(Rejected(exc.record, exc.field, exc.reason))
            log.warning("rejected %s", exc)
            return None

    def _write(self, *batches: m.GraphBatch) -> None:
        """Hand these batches to the writer as one (written in the background)."""
        batch = m.GraphBatch()
        for item in batches:
            batch.extend(item)
        self.writer.put(functools.partial(self._store, batch))

    def _store(self, batch: m.GraphBatch) -> WriteResult | None:
        """On the writer's thread: one item per node and edge, forgotten data out, then written."""
        batch = self.screen(_latest_wins(batch).in_deployment(self.deployment))
        self.report.forgotten_skipped = self.screen.skipped
        return self.store.write(batch) if batch else None


class _Writer:
    """Writes a sync's pages on one background thread, at most one page in flight, so the store's
    time overlaps the sync's own (fetching and mapping the next page). The store is used by one
    thread at a time: `put` and `drain` wait for the page in flight first.

    A failed write raises its error (InvalidRecordError, StoreUnavailableError, …) from the next
    `put` or `drain` on the sync's thread; the watermarks have not moved past it then.
    """

    def __init__(self, report: SyncReport, *, behind: bool) -> None:
        self.report = report
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="contextgraph-write") if behind else None
        )
        self._pending: Future[WriteResult | None] | None = None

    def put(self, job: Callable[[], WriteResult | None]) -> None:
        """Start writing one page (a callable returning the store's WriteResult, or None)."""
        self.drain()
        if self._pool is None:
            self._count(job())
        else:
            self._pending = self._pool.submit(job)

    def drain(self) -> None:
        """Wait until the page in flight is written; raises the error its write raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._count(pending.result())

    def close(self) -> None:
        """Let the page in flight finish (on a sync that failed, its outcome goes with the sync's)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _count(self, result: WriteResult | None) -> None:
        if result is not None:
            self.report.add(result)


def _latest_wins(batch: m.GraphBatch) -> m.GraphBatch:
    """One item per node key and per edge: where records of one page describe the same node or
    edge differently (a reviewer renamed between two answers, a user given once by id only, a
    record listed twice while it changed), the later record's values win and its missing (None)
    values are taken from the earlier one — instead of one odd record failing the whole sync."""
    merged: dict[tuple[str, ...], m.Node | m.Edge] = {}
    items: list[m.Node | m.Edge] = [*batch.nodes, *batch.edges]
    for item in items:
        if isinstance(item, m.Node):
            ident: tuple[str, ...] = (item.label, item.key)
        else:
            ident = (item.rel_type, item.src, item.dst)
        earlier = merged.get(ident)
        if earlier is not None and earlier != item:
            old, new = m.properties(earlier), m.properties(item)
            missing = {k: old[k] for k, v in new.items() if v is None and old.get(k) is not None}
            changed = sorted(k for k, v in new.items() if v is not None and old.get(k) != v)
            if changed:
                log.info("%s %s: the later record's %s kept", ident[0], ident[1:], ", ".join(changed))
            if missing:
                item = item.model_copy(update=missing)
        merged[ident] = item
    return m.GraphBatch(
        nodes=[i for i in merged.values() if isinstance(i, m.Node)],
        edges=[i for i in merged.values() if isinstance(i, m.Edge)],
    )


def _pages(records: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(records)
    while page := list(islice(iterator, size)):
        yield page


def _is_answered_branch(record: Any) -> bool:
    """Whether this HITL detail record is a HITLBranchOperator's, answered (its branch ran)."""
    ti = record.get("task_instance") if isinstance(record, dict) else None
    return (
        isinstance(ti, dict)
        and ti.get("operator_name") == "HITLBranchOperator"
        and bool(record.get("response_received"))
        and isinstance(ti.get("task_id"), str)
        and isinstance(ti.get("dag_id"), str)
        and isinstance(ti.get("dag_run_id") or ti.get("run_id"), str)
    )
