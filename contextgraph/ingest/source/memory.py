"""An in-memory Airflow: the sync's ``Source`` over lists of REST API v2 records, no HTTP.

Used by the demo (its built-in scenario), by the tests (records broken on purpose) and wherever
records are at hand already. The records are what Airflow 3.1+'s REST API v2 returns (raw JSON
dicts: ``/dags``, ``/dags/{id}/tasks``, ``/dagRuns``, ``/taskInstances``, ``/hitlDetails``, XCom
values); they are served as copies, so the sync may not change them.

Every list is served whole on every call (the ``updated_since``/``created_since`` watermarks are
not applied): the sync's content hashes make a repeated record cost nothing. ``calls`` counts one
request per list, task list, earlier try and XCom value, as a paging-free Airflow would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from contextgraph.config import AirflowSettings
from contextgraph.errors import SourceNotFoundError

__all__ = ["MemorySource"]

#: ``(dag_id, run_id, task_id)``: whose XCom ``return_value`` an entry is.
XComKey = tuple[Any, ...]
#: ``(dag_id, run_id, task_id, try_number, map_index)``: which earlier try of a HITL task.
TryKey = tuple[str, str, str, int, int]


class MemorySource:
    """The ``contextgraph.ingest.sync.Source`` protocol over lists of REST API v2 records.

    Args:
        dags: ``/dags`` records (``dag_id``, ``tags``, ``owners`` …).
        tasks: ``dag_id`` → that DAG's ``/tasks`` records (``task_id``, ``downstream_task_ids`` …);
            a DAG not in it has no tasks.
        dag_runs: ``/dagRuns`` records.
        task_instances: ``/taskInstances`` records (the latest try of each).
        hitl_details: ``/hitlDetails`` records (each with its ``task_instance``).
        xcoms: ``(dag_id, run_id, task_id[, map_index])`` → the deserialized ``return_value``;
            missing entries read as ``None`` (Airflow's 404).
        hitl_tries: ``(dag_id, run_id, task_id, try_number, map_index)`` → the HITL detail of an
            earlier try; a missing try raises ``SourceNotFoundError``.
        assets: ``/assets`` records (``name``, ``uri``, ``producing_tasks``, ``scheduled_dags`` …).
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
        self.dag_records = list(dags)
        self.task_records = dict(tasks or {})
        self.run_records = list(dag_runs)
        self.task_instance_records = list(task_instances)
        self.details = list(hitl_details)
        self.xcoms = dict(xcoms or {})
        self.hitl_tries = dict(hitl_tries or {})
        self.asset_records = list(assets)
        self.settings = AirflowSettings(url=url)
        self.server_time: datetime | None = server_time
        self.calls = 0

    def _served(self, items: list[Any]) -> Iterator[Any]:
        self.calls += 1
        yield from copy.deepcopy(items)

    def dags(self) -> Iterator[dict[str, Any]]:
        """Every DAG record (one call)."""
        return self._served(self.dag_records)

    def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's task records; ``[]`` for a DAG without any (one call)."""
        self.calls += 1
        return copy.deepcopy(self.task_records.get(dag_id, []))

    def assets(self) -> Iterator[dict[str, Any]]:
        """Every asset record (one call)."""
        return self._served(self.asset_records)

    def dag_runs(
        self, *, updated_since: datetime | None = None, dag_id: str = "~"
    ) -> Iterator[dict[str, Any]]:
        """Every run record, or those of one DAG (the watermark is not applied; one call)."""
        return self._served(_of_dag(self.run_records, dag_id))

    def task_instances(
        self, *, updated_since: datetime | None = None, dag_id: str = "~"
    ) -> Iterator[dict[str, Any]]:
        """Every task-instance record, or those of one DAG (the watermark is not applied; one call)."""
        return self._served(_of_dag(self.task_instance_records, dag_id))

    def hitl_details(self, *, created_since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every HITL detail record, as given, even malformed ones (one call)."""
        return self._served(self.details)

    def hitl_detail_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any]:
        """The HITL detail of an earlier try; raises ``SourceNotFoundError`` if there is none."""
        self.calls += 1
        found = self.hitl_tries.get((dag_id, run_id, task_id, try_number, map_index))
        if found is None:
            raise SourceNotFoundError(f"no try {try_number} of {dag_id}/{run_id}/{task_id}")
        return copy.deepcopy(found)

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1) -> Any:
        """The task instance's ``return_value`` XCom, or ``None`` where it has none (one call).

        `xcoms` keys are ``(dag_id, run_id, task_id)`` for unmapped task instances and
        ``(dag_id, run_id, task_id, map_index)`` for mapped ones."""
        self.calls += 1
        key = (dag_id, run_id, task_id) if map_index == -1 else (dag_id, run_id, task_id, map_index)
        return copy.deepcopy(self.xcoms.get(key))


def _of_dag(records: list[Any], dag_id: str) -> list[Any]:
    """The records of one DAG (``~``: all), malformed ones (not objects) kept for ``~`` only."""
    if dag_id == "~":
        return records
    return [r for r in records if isinstance(r, dict) and r.get("dag_id") == dag_id]
