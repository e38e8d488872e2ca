"""One incremental sync: Airflow REST API → mapping → graph store.

Stages, each streamed page by page and written as it goes: DAGs, DAG runs (updated since the
watermark), task instances (likewise; a DAG's tasks are fetched when one of its tasks is new to
the graph), then HITL details (created since the watermark, plus every decision still pending in
the graph until it is answered or timed out). Proposals come from upstream XComs, once.

Watermarks live in the graph (`SyncState`): each stage's moves, after the stage is fully
written, to the moment the stage began reading (runs and task instances do not show their
`updated_at`, only filter on it). Each query reaches back `overlap` before its watermark, so
records that change while a stage runs, or under some clock skew, are read again next time.
Writes are idempotent and skip unchanged rows, so reading again costs API calls, not writes:
a sync killed mid-way is completed by the next one with nothing duplicated and nothing lost.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, Field

from contextgraph import forget, mapping
from contextgraph import model as m
from contextgraph.config import AirflowSettings, public_url
from contextgraph.errors import InvalidRecordError, SourceNotFoundError
from contextgraph.queries import load
from contextgraph.redact import redacting
from contextgraph.source.airflow import XComRef
from contextgraph.store import GraphStore, WriteResult

log = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[str, int], None]


class SyncOptions(BaseModel):
    """How a sync reads: page size of writes, overlap of watermarks, which XComs are proposals."""

    page_size: int = Field(default=500, ge=1)
    overlap: timedelta = timedelta(minutes=5)
    proposal_tasks: dict[str, list[str]] = {}
    """`dag_id.task_id` of a decision point → the upstream tasks whose `return_value` XCom is the
    proposal it reviews. Default: the decision point's direct upstream tasks."""
    reason_params: dict[str, list[str]] = {}
    """`dag_id.task_id` (or `*` for every other point) → the params_input names holding the reason
    (default `contextgraph.mapping.REASON_KEYS`)."""

    verdicts: dict[str, dict[str, m.Verdict]] = {}
    """`dag_id.task_id` (or `*`) → {chosen option: verdict}; the options' words are the fallback."""

    def for_point(self, table: dict[str, T], dag_id: str, task_id: str) -> T | None:
        """The entry of `table` for this decision point, else its `*` entry, else None."""
        return table.get(f"{dag_id}.{task_id}", table.get("*"))


class Source(Protocol):
    """What the sync needs of an Airflow source (`contextgraph.source.AirflowSource`)."""

    calls: int
    settings: AirflowSettings
    server_time: datetime | None
    """The server's clock at its last answer (watermarks do not depend on this machine's clock)."""

    def dags(self) -> Iterator[dict[str, Any]]: ...
    def tasks(self, dag_id: str) -> list[dict[str, Any]]: ...
    def dag_runs(self, *, updated_since: datetime | None = None) -> Iterator[dict[str, Any]]: ...
    def task_instances(self, *, updated_since: datetime | None = None) -> Iterator[dict[str, Any]]: ...
    def hitl_details(self, *, created_since: datetime | None = None) -> Iterator[dict[str, Any]]: ...
    def hitl_detail_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any]: ...
    def xcom_value(self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1) -> Any: ...

    # Optional: `xcom_values(refs: list[XComRef]) -> dict[XComRef, Any]`, many XComs at once
    # (AirflowSource reads them concurrently); without it they are read one by one.


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
    """Decisions embedded after the sync (by `contextgraph.ingest.run_ingest`)."""
    forgotten_skipped: int = 0
    """Forgotten nodes (`contextgraph forget`) the sync read again and kept out of the graph."""

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
        }


def _nonzero(counter: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in sorted(counter.items()) if v}


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
        self.report = SyncReport(full=full)
        self.shapes: dict[str, mapping.DagShape] = {}
        self.fetched_tasks: set[str] = set()
        self.decision_points: dict[str, set[str]] = {}
        self.screen = forget.Screen(self.store)  # governance: forgotten data stays out
        self.older_tasks: set[tuple[str, str]] = set()
        self.upstreams: dict[tuple[str, str], tuple[mapping.DagShape, list[str]]] = {}
        self.xcoms: dict[XComRef, Any] = {}
        """XCom values read ahead for the page of decisions being mapped."""

    def execute(self) -> SyncReport:
        clock, calls_before = time.monotonic(), self.source.calls
        state = m.SyncState(source=public_url(self.source.settings.url.rstrip("/")))
        if not self.full:
            state = self._load_state(state)

        self._sync_dags()
        begun = self._now()
        runs = self.source.dag_runs(updated_since=self._since(state.runs_updated_at))
        self._sync_stage("DAG runs", runs, mapping.map_dag_run)
        state = self._save(state, runs_updated_at=begun)

        begun = self._now()
        tis = self.source.task_instances(updated_since=self._since(state.task_instances_updated_at))
        self._sync_stage("task instances", tis, self._map_task_instance)
        state = self._save(state, task_instances_updated_at=begun)

        begun = self._now()
        self._sync_decisions(self._hitl_since(state.hitl_created_at))
        self._save(state, hitl_created_at=begun, last_sync_at=begun)

        self.report.api_calls = self.source.calls - calls_before
        self.report.seconds = time.monotonic() - clock
        return self.report

    # --- stages ---------------------------------------------------------------------------------

    def _sync_dags(self) -> None:
        dags = []
        for record in self.source.dags():
            self.report.fetched["DAGs"] += 1
            dag = self._map(mapping.map_dag, record)
            if dag is not None:
                dags.append(dag)
        self._write(m.GraphBatch(nodes=list(dags)))
        self.progress("DAGs", len(dags))
        with_tasks = self._dags_with_tasks([d.dag_id for d in dags])
        for dag in dags:
            if self.full or dag.dag_id not in with_tasks:
                self._fetch_tasks(dag.dag_id)

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
        for latest in _pages(self.source.hitl_details(created_since=since), self.options.page_size):
            page = self._earlier_tries(latest) + latest
            self.report.fetched["HITL details"] += len(page)
            stored = self._stored_proposals(page)
            self._read_proposals_ahead(page, stored)
            map_one = functools.partial(self._map_decision, stored=stored)
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
        keys = [m.make_key(*w) for w in wanted]
        known = {r["key"] for r in self.store.query(load("sync_known_decisions"), {"keys": keys})}
        found = []
        for dag_id, run_id, task_id, map_index, n in wanted:
            if m.make_key(dag_id, run_id, task_id, map_index, n) in known:
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
        self, record: dict[str, Any], stored: dict[str, list[mapping.ProposalValue]]
    ) -> m.GraphBatch:
        identity = mapping.decision_identity(record)
        dag_id, run_id, task_id, map_index = identity[:4]
        self.decision_points.setdefault(dag_id, set()).add(task_id)
        shape = self._shape(dag_id, task_id)
        proposals = stored.get(m.make_key(*identity))
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
            branches=self._branches(record, shape),
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

    def _branches(self, record: dict[str, Any], shape: mapping.DagShape) -> list[str]:
        """The downstream tasks a HITLBranchOperator's answer ran: its children whose task instance
        in this run ran (or is about to), else the chosen options that are child task ids."""
        ti = record["task_instance"]
        if ti.get("operator_name") != "HITLBranchOperator" or not record.get("response_received"):
            return []
        task_id, run_id = ti["task_id"], ti.get("dag_run_id") or ti.get("run_id")
        children = sorted(shape.graph.successors(task_id)) if task_id in shape.graph else []
        rows = self.store.query(
            load("sync_branch_states"), {"dag_id": ti["dag_id"], "run_id": run_id, "task_ids": children}
        )
        ran = sorted({r["task_id"] for r in rows if r["state"] in mapping.BRANCH_RAN_STATES})
        chosen = record.get("chosen_options") or []
        return ran or [c for c in children if c in chosen]

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
        rows = self.store.query(load("sync_dag_shape"), {"dag_id": dag_id})
        return mapping.DagShape.from_edges(
            dag_id,
            {r["task_id"]: r["downstream"] or [] for r in rows},
            (r["task_id"] for r in rows if r["point"]),
        )

    def _dags_with_tasks(self, dag_ids: list[str]) -> set[str]:
        return {r["dag_id"] for r in self.store.query(load("sync_dags_with_tasks"), {"dag_ids": dag_ids})}

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
            if m.make_key(*identity) in stored:
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
                keys.append(m.make_key(*mapping.decision_identity(record)))
            except InvalidRecordError:
                continue
        found: dict[str, list[mapping.ProposalValue]] = {}
        for row in self.store.query(load("sync_stored_proposals"), {"keys": keys}):
            value = json.loads(row["value"]) if row["value"] is not None else None
            found.setdefault(row["key"], []).append(
                mapping.ProposalValue(row["task_id"], value, row["xcom_key"], row["map_index"])
            )
        return found

    # --- state ----------------------------------------------------------------------------------

    def _load_state(self, state: m.SyncState) -> m.SyncState:
        rows = self.store.query(load("sync_state"), {"key": state.key})
        return state.model_copy(update={k: v for k, v in rows[0].items() if v is not None}) if rows else state

    def _save(self, state: m.SyncState, **marks: datetime) -> m.SyncState:
        """Move watermarks forward once a stage is fully written."""
        state = state.model_copy(update=marks)
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
        rows = self.store.query(load("sync_oldest_pending"), {})
        oldest = rows[0]["oldest"] if rows else None
        return min(since, oldest) if oldest else since

    # --- helpers --------------------------------------------------------------------------------

    def _map(self, map_one: Callable[[Any], T], record: Any) -> T | None:
        """Map one record; a bad one is reported with its reason and skipped."""
        try:
            return map_one(record)
        except InvalidRecordError as exc:
            self.report.rejected.append(Rejected(exc.record, exc.field, exc.reason))
            log.warning("rejected %s", exc)
            return None

    def _write(self, *batches: m.GraphBatch) -> None:
        batch = m.GraphBatch()
        for item in batches:
            batch.extend(item)
        batch = self.screen(_latest_wins(batch))
        self.report.forgotten_skipped = self.screen.skipped
        if batch:
            self.report.add(self.store.write(batch))


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
