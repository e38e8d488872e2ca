"""Airflow REST API v2 records (Airflow 3.3's response models), built one way for every bench.

`bench.corpus` (the precedent corpus) and `bench.synthetic` (the scale history) describe their DAGs
differently; both turn them into `/dags`, `/dags/{id}/tasks` and `dag_versions` records here, so
the records the sync reads have one shape. Times are ISO 8601 strings in UTC with a `Z`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

HITL_MODULE = "airflow.providers.standard.operators.hitl"
PYTHON_MODULE = "airflow.providers.standard.decorators.python"


def dag_record(
    dag_id: str,
    *,
    description: str | None,
    schedule: str | None,
    timetable_description: str,
    tags: Sequence[str],
    owners: Sequence[str],
    parsed_at: str,
    parse_duration: float,
) -> dict[str, Any]:
    """A `GET /api/v2/dags` record (`DAGResponse`) of an unpaused DAG in the dags-folder bundle."""
    return {
        "dag_id": dag_id,
        "dag_display_name": dag_id,
        "is_paused": False,
        "is_stale": False,
        "last_parsed_time": parsed_at,
        "last_parse_duration": parse_duration,
        "last_expired": None,
        "bundle_name": "dags-folder",
        "bundle_version": None,
        "relative_fileloc": f"{dag_id}.py",
        "fileloc": f"/opt/airflow/dags/{dag_id}.py",
        "description": description,
        "timetable_summary": schedule,
        "timetable_description": timetable_description,
        "timetable_partitioned": False,
        "timetable_periodic": schedule is not None,
        "tags": [{"name": t, "dag_id": dag_id, "dag_display_name": dag_id} for t in tags],
        "max_active_tasks": 16,
        "max_active_runs": 16,
        "max_consecutive_failed_dag_runs": 0,
        "has_task_concurrency_limits": False,
        "has_import_errors": False,
        "next_dagrun_logical_date": None,
        "next_dagrun_data_interval_start": None,
        "next_dagrun_data_interval_end": None,
        "next_dagrun_run_after": None,
        "allowed_run_types": None,
        "owners": list(owners),
    }


def dag_version_record(dag_id: str, *, version_id: str, created_at: str) -> dict[str, Any]:
    """A DAG run's `dag_versions` entry (`DagVersionResponse`): version 1 in the dags-folder bundle.
    `version_id` is the version's UUID (e.g. `uuid.uuid5` of a name)."""
    return {
        "id": version_id,
        "version_number": 1,
        "dag_id": dag_id,
        "bundle_name": "dags-folder",
        "bundle_version": None,
        "created_at": created_at,
        "dag_display_name": dag_id,
        "bundle_url": None,
    }


def version_id(name: str) -> str:
    """A stable version UUID for a name (`uuid5` in the URL namespace)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def task_record(
    task_id: str,
    *,
    operator: str,
    downstream: Sequence[str],
    owner: str,
    hitl: bool,
    ui_color: str,
    template_fields: list[str],
    class_name: str,
) -> dict[str, Any]:
    """A `GET /api/v2/dags/{dag_id}/tasks` record (`TaskResponse`); a `hitl` task's class is in
    the HITL operators' module, any other in the Python decorators'."""
    return {
        "task_id": task_id,
        "task_display_name": task_id,
        "owner": owner,
        "start_date": None,
        "end_date": None,
        "trigger_rule": "all_success",
        "depends_on_past": False,
        "wait_for_downstream": False,
        "retries": 0.0,
        "queue": "default",
        "pool": "default_pool",
        "pool_slots": 1.0,
        "execution_timeout": None,
        "retry_delay": {"__type": "TimeDelta", "days": 0, "seconds": 300, "microseconds": 0},
        "retry_exponential_backoff": 0.0,
        "priority_weight": 1.0,
        "weight_rule": "downstream",
        "ui_color": ui_color,
        "ui_fgcolor": "#000",
        "template_fields": template_fields,
        "downstream_task_ids": list(downstream),
        "doc_md": None,
        "operator_name": operator,
        "params": {},
        "class_ref": {"module_path": HITL_MODULE if hitl else PYTHON_MODULE, "class_name": class_name},
        "is_mapped": False,
    }


def iso(moment: datetime | None) -> str | None:
    """`moment` as the API writes times (UTC, ending in `Z`); None stays None."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def task_instance_record(
    ti_id: str,
    *,
    task_id: str,
    dag_id: str,
    run_id: str,
    logical_date: str | None,
    run_after: str,
    started: datetime | None,
    ended: datetime | None,
    state: str | None,
    priority_weight: int,
    operator: str,
    operator_name: str,
    pid: int | None,
    dag_version: dict[str, Any],
) -> dict[str, Any]:
    """A `GET /api/v2/.../taskInstances` record (`TaskInstanceResponse`) of an unmapped task's first
    try (`try_number` 0 until it started). `operator` is the class name, `operator_name` as the
    DAG wrote it; the instance was queued 1 s and scheduled 2 s before it `started`."""
    return {
        "id": ti_id,
        "task_id": task_id,
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "map_index": -1,
        "logical_date": logical_date,
        "run_after": run_after,
        "start_date": iso(started),
        "end_date": iso(ended),
        "duration": (ended - started).total_seconds() if started and ended else None,
        "state": state,
        "try_number": 1 if started else 0,
        "max_tries": 0,
        "task_display_name": task_id,
        "dag_display_name": dag_id,
        "hostname": "airflow-worker-0" if started else None,
        "unixname": "airflow",
        "pool": "default_pool",
        "pool_slots": 1,
        "queue": "default",
        "priority_weight": priority_weight,
        "operator": operator,
        "operator_name": operator_name,
        "queued_dttm": iso(started - timedelta(seconds=1)) if started else None,
        "scheduled_dttm": iso(started - timedelta(seconds=2)) if started else None,
        "pid": pid,
        "executor": None,
        "executor_config": "{}",
        "note": None,
        "rendered_map_index": None,
        "rendered_fields": {},
        "trigger": None,
        "queued_by_job": None,
        "dag_version": dict(dag_version),
    }
