"""An in-memory Airflow: what a deployment knows (a `World`), and the sync's ``Source`` over it.

A `World` answers the questions Airflow 3.3's REST API v2 answers (``/dags``, ``/dags/{id}/tasks``,
``/assets``, ``/dagRuns``, ``/taskInstances``, ``/hitlDetails``, HITL tries, XCom entries), with
the filters Airflow applies (``updated_at_gte``, ``created_at_gte``, ``response_received``, one DAG
or all), as sequences that know their length and can be sliced (Airflow's ``total_entries`` and
``limit``/``offset``). Two kinds exist:

* `Records`: lists of raw records, written by hand or built from data (the demo's scenario, the
  tests' records broken on purpose, the precedent corpus);
* a lazy provider (e.g. the benchmark's synthetic history, ``bench.replay.HistoryWorld``) that
  makes each record when it is asked for, so a history of millions of decisions is never held in
  memory. `Lazy` is the sequence such a provider returns.

`MemorySource` is the sync's ``Source`` protocol over a World, without HTTP (the demo, the tests,
the ingest benchmark); `contextgraph.ingest.source.replay` serves the same World over HTTP to the
real `AirflowSource`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, overload

from contextgraph.config import AirflowSettings
from contextgraph.errors import SourceNotFoundError

__all__ = ["ALL", "Lazy", "MemorySource", "Records", "World", "parse_time"]

#: Airflow's "every DAG" / "every run" path segment.
ALL = "~"
#: ``(dag_id, run_id, task_id)`` or ``(dag_id, run_id, task_id, map_index)``: whose XCom
#: ``return_value`` an entry is (three parts: an unmapped task instance, ``map_index`` -1).
XComKey = tuple[Any, ...]
#: ``(dag_id, run_id, task_id, try_number, map_index)``: which earlier try of a HITL task.
TryKey = tuple[str, str, str, int, int]
_EPOCH = "1970-01-01T00:00:00Z"


def parse_time(value: str) -> datetime:
    """An ISO 8601 time as Airflow writes it (``Z`` suffix) or a query string carries it (``+``
    decoded to a space)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))


class Lazy(Sequence[Any]):
    """A sequence of records made on demand: ``render(i)`` for each ``i`` of `indices`.

    ``len()`` costs nothing, a slice renders only its records and iteration renders one record at a
    time: what a paging server and a streaming source need of a history too large to hold.
    """

    def __init__(self, indices: Sequence[int], render: Callable[[int], Any]) -> None:
        self.indices = indices
        self.render = render

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self.render(i) for i in self.indices[index]]
        return self.render(self.indices[index])

    def __iter__(self) -> Iterator[Any]:
        return (self.render(i) for i in self.indices)


class World(Protocol):
    """What an Airflow deployment knows, as the REST API v2 answers it (raw JSON dicts).

    Every list comes back as a sequence in Airflow's order (``len`` is ``total_entries``; a slice
    is a page). ``updated_since``/``created_since`` are Airflow's ``updated_at_gte`` /
    ``created_at_gte`` filters; `dag_id` ``~`` means every DAG.
    """

    def now(self) -> datetime | None:
        """The deployment's clock (the ``Date`` header; the sync's watermarks); None: not known."""
        ...

    def dags(self) -> Sequence[Any]: ...

    def tasks(self, dag_id: str) -> list[dict[str, Any]] | None:
        """The DAG's task records; None for a DAG that does not exist (Airflow's 404)."""
        ...

    def assets(self) -> Sequence[Any]: ...

    def dag_runs(self, *, dag_id: str = ALL, updated_since: datetime | None = None) -> Sequence[Any]: ...

    def task_instances(
        self, *, dag_id: str = ALL, updated_since: datetime | None = None
    ) -> Sequence[Any]: ...

    def hitl_details(
        self,
        *,
        dag_id: str = ALL,
        created_since: datetime | None = None,
        response_received: bool | None = None,
    ) -> Sequence[Any]: ...

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
        """The ``return_value`` XCom entry (``value`` holds the deserialized value); None: none."""
        ...

    def hitl_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any] | None:
        """The HITL detail of one try of a task instance; None: that try asked nothing."""
        ...


@dataclass
class Records:
    """A `World` over lists of REST API v2 records, served as copies (nobody changes the lists).

    Filters apply to the records that carry the field filtered on (``updated_at``, ``created_at``,
    ``response_received``); records without it, and malformed records (not objects), always pass,
    so records broken on purpose still reach the sync.

    Args:
        dags: ``/dags`` records (``dag_id``, ``tags``, ``owners`` …).
        tasks: ``dag_id`` → that DAG's ``/tasks`` records; a DAG not in it does not exist.
        runs: ``/dagRuns`` records.
        task_instances: ``/taskInstances`` records (the latest try of each).
        hitl_details: ``/hitlDetails`` records (each with its ``task_instance``).
        assets: ``/assets`` records (``name``, ``uri``, ``producing_tasks``, ``scheduled_dags`` …).
        xcoms: ``(dag_id, run_id, task_id[, map_index])`` → the deserialized ``return_value``.
        hitl_tries: ``(dag_id, run_id, task_id, try_number, map_index)`` → the HITL detail of
            that try.
        server_time: the deployment's clock; default: none known.
    """

    dags: list[Any] = field(default_factory=list)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runs: list[Any] = field(default_factory=list)
    task_instances: list[Any] = field(default_factory=list)
    hitl_details: list[Any] = field(default_factory=list)
    assets: list[Any] = field(default_factory=list)
    xcoms: dict[XComKey, Any] = field(default_factory=dict)
    hitl_tries: dict[TryKey, dict[str, Any]] = field(default_factory=dict)
    server_time: datetime | None = None

    # The World protocol. The methods are reached through `world()` (the field names are taken
    # by the lists), so that a test can change a list in place between two syncs.

    def world(self) -> World:
        """This deployment as a `World`."""
        return _RecordsWorld(self)


class _RecordsWorld:
    """`Records` seen through the `World` protocol."""

    def __init__(self, records: Records) -> None:
        self.records = records

    def now(self) -> datetime | None:
        return self.records.server_time

    def dags(self) -> Sequence[Any]:
        return _copies(self.records.dags)

    def tasks(self, dag_id: str) -> list[dict[str, Any]] | None:
        found = self.records.tasks.get(dag_id)
        return None if found is None else copy.deepcopy(found)

    def assets(self) -> Sequence[Any]:
        return _copies(self.records.assets)

    def dag_runs(self, *, dag_id: str = ALL, updated_since: datetime | None = None) -> Sequence[Any]:
        return _copies(_since(_of_dag(self.records.runs, dag_id), "updated_at", updated_since))

    def task_instances(self, *, dag_id: str = ALL, updated_since: datetime | None = None) -> Sequence[Any]:
        found = _of_dag(self.records.task_instances, dag_id)
        return _copies(_since(found, "updated_at", updated_since))

    def hitl_details(
        self,
        *,
        dag_id: str = ALL,
        created_since: datetime | None = None,
        response_received: bool | None = None,
    ) -> Sequence[Any]:
        found = self.records.hitl_details
        if dag_id != ALL:
            found = [d for d in found if isinstance(d, dict) and _ti_dag(d) == dag_id]
        found = _since(found, "created_at", created_since)
        if response_received is not None:
            found = [
                d
                for d in found
                if not isinstance(d, dict)
                or d.get("response_received", response_received) == response_received
            ]
        return _copies(found)

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
        """The entry as Airflow's ``XComResponseNative``; times from the run's record if listed."""
        xcoms = self.records.xcoms
        key: XComKey = (dag_id, run_id, task_id, map_index)
        if key not in xcoms and map_index == -1:
            key = (dag_id, run_id, task_id)
        if key not in xcoms:
            return None
        run = next(
            (
                r
                for r in self.records.runs
                if isinstance(r, dict) and r.get("dag_id") == dag_id and r.get("dag_run_id") == run_id
            ),
            {},
        )
        clock = self.records.server_time
        moment = run.get("start_date") or run.get("run_after") or (clock.isoformat() if clock else _EPOCH)
        return {
            "key": "return_value",
            "timestamp": moment,
            "logical_date": run.get("logical_date"),
            "map_index": map_index,
            "task_id": task_id,
            "dag_id": dag_id,
            "run_id": run_id,
            "dag_display_name": dag_id,
            "task_display_name": task_id,
            "run_after": run.get("run_after") or moment,
            "value": copy.deepcopy(xcoms[key]),
        }

    def hitl_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any] | None:
        found = self.records.hitl_tries.get((dag_id, run_id, task_id, try_number, map_index))
        return None if found is None else copy.deepcopy(found)


def _copies(records: list[Any]) -> Lazy:
    return Lazy(range(len(records)), lambda i: copy.deepcopy(records[i]))


def _of_dag(records: list[Any], dag_id: str) -> list[Any]:
    """The records of one DAG (``~``: all), malformed ones (not objects) kept for ``~`` only."""
    if dag_id == ALL:
        return records
    return [r for r in records if isinstance(r, dict) and r.get("dag_id") == dag_id]


def _ti_dag(detail: dict[str, Any]) -> Any:
    ti = detail.get("task_instance")
    return ti.get("dag_id") if isinstance(ti, dict) else None


def _since(records: list[Any], name: str, moment: datetime | None) -> list[Any]:
    """``{name}_gte`` applied to the records that carry a readable `name`."""
    if moment is None:
        return records
    return [r for r in records if _at(r, name) is None or _at(r, name) >= moment]  # type: ignore[operator]


def _at(record: Any, name: str) -> datetime | None:
    value = record.get(name) if isinstance(record, dict) else None
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


class MemorySource:
    """The ``contextgraph.ingest.sync.Source`` protocol over a `World`, no HTTP.

    Build it over lists with the keyword arguments (they become `Records`), or over any World with
    `MemorySource.over`. Lists are read page by page (`page_size` records at a time, as from a
    paging Airflow), so a lazy World streams: only one page is in memory at a time.

    ``calls`` counts one call per page (at least one per list), task list, earlier try and XCom
    value; ``generating`` is the time (seconds) spent inside the World making records, so a
    benchmark can leave it out of what it measures.

    By default every list is served whole on every call (the sync's content hashes make a
    repeated record cost nothing); with ``watermarks=True`` the sync's ``updated_since`` /
    ``created_since`` are passed on to the World as Airflow's filters.

    Args (the lists; see `Records`):
        dags, tasks, dag_runs, task_instances, hitl_details, assets, xcoms, hitl_tries: the
            records. An XCom missing from `xcoms` reads as ``None`` (Airflow's 404); a missing try
            raises ``SourceNotFoundError``.
        url: the Airflow URL the records claim to come from (names the graph's source).
        server_time: the server's clock (the sync's watermarks); default: none known.
    """

    def __init__(
        self,
        *,
        dags: Iterable[dict[str, Any]] = (),
        tasks: Mapping[str, list[dict[str, Any]]] | None = None,
        dag_runs: Iterable[dict[str, Any]] = (),
        task_instances: Iterable[dict[str, Any]] = (),
        hitl_details: Iterable[Any] = (),
        xcoms: Mapping[XComKey, Any] | None = None,
        hitl_tries: Mapping[TryKey, dict[str, Any]] | None = None,
        assets: Iterable[dict[str, Any]] = (),
        url: str = "http://airflow.memory",
        server_time: datetime | None = None,
    ) -> None:
        records = Records(
            dags=list(dags),
            tasks=dict(tasks or {}),
            runs=list(dag_runs),
            task_instances=list(task_instances),
            hitl_details=list(hitl_details),
            assets=list(assets),
            xcoms=dict(xcoms or {}),
            hitl_tries=dict(hitl_tries or {}),
            server_time=server_time,
        )
        self._setup(records.world(), url)

    @classmethod
    def over(
        cls,
        world: World | Records,
        *,
        url: str = "http://airflow.memory",
        watermarks: bool = False,
        page_size: int = 100,
    ) -> MemorySource:
        """The Source over any `World` (e.g. a lazy synthetic history).

        Args:
            world: what the deployment knows.
            url: the Airflow URL the records claim to come from (names the graph's source).
            watermarks: pass the sync's watermarks on as filters (default: lists served whole).
            page_size: records read from the World at a time.
        """
        source = cls.__new__(cls)
        source._setup(
            world.world() if isinstance(world, Records) else world,
            url,
            watermarks=watermarks,
            page_size=page_size,
        )
        return source

    def _setup(self, world: World, url: str, *, watermarks: bool = False, page_size: int = 100) -> None:
        self.world = world
        self.settings = AirflowSettings(url=url)
        self.server_time: datetime | None = world.now()
        self.watermarks = watermarks
        self.page_size = page_size
        self.calls = 0
        self.generating = 0.0

    def _since(self, moment: datetime | None) -> datetime | None:
        return moment if self.watermarks else None

    def _served(self, ask: Callable[[], Sequence[Any]]) -> Iterator[Any]:
        """The records of one list, a page at a time, timing what the World spends making them."""
        began = time.perf_counter()
        records = ask()
        offset = 0
        while True:
            self.calls += 1
            page = list(records[offset : offset + self.page_size])
            self.generating += time.perf_counter() - began
            yield from page
            offset += self.page_size
            if offset >= len(records):
                return
            began = time.perf_counter()

    def _timed(self, make: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        self.calls += 1
        try:
            return make()
        finally:
            self.generating += time.perf_counter() - began

    def dags(self) -> Iterator[dict[str, Any]]:
        """Every DAG record."""
        return self._served(self.world.dags)

    def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's task records; ``[]`` for a DAG without any (one call)."""
        return self._timed(lambda: self.world.tasks(dag_id)) or []

    def assets(self) -> Iterator[dict[str, Any]]:
        """Every asset record."""
        return self._served(self.world.assets)

    def dag_runs(
        self, *, updated_since: datetime | None = None, dag_id: str = ALL
    ) -> Iterator[dict[str, Any]]:
        """Every run record, or those of one DAG."""
        since = self._since(updated_since)
        return self._served(lambda: self.world.dag_runs(dag_id=dag_id, updated_since=since))

    def task_instances(
        self, *, updated_since: datetime | None = None, dag_id: str = ALL
    ) -> Iterator[dict[str, Any]]:
        """Every task-instance record, or those of one DAG."""
        since = self._since(updated_since)
        return self._served(lambda: self.world.task_instances(dag_id=dag_id, updated_since=since))

    def hitl_details(self, *, created_since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every HITL detail record, as given, even malformed ones."""
        since = self._since(created_since)
        return self._served(lambda: self.world.hitl_details(created_since=since))

    def hitl_detail_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any]:
        """The HITL detail of an earlier try; raises ``SourceNotFoundError`` if there is none."""
        found = self._timed(lambda: self.world.hitl_try(dag_id, run_id, task_id, try_number, map_index))
        if found is None:
            raise SourceNotFoundError(f"no try {try_number} of {dag_id}/{run_id}/{task_id}")
        return dict(found)

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1) -> Any:
        """The task instance's ``return_value`` XCom, or ``None`` where it has none (one call)."""
        entry = self._timed(lambda: self.world.xcom(dag_id, run_id, task_id, map_index))
        return entry["value"] if entry else None
