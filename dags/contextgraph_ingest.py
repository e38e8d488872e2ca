"""contextgraph_ingest: keep the decision-trace graph in sync with this Airflow.

Runs on a schedule (CONTEXTGRAPH_INGEST_SCHEDULE, a cron expression, default hourly) and also
whenever a decision is made: the example DAG's decision path updates the asset
`contextgraph://decisions`, and this DAG is scheduled on it as well.

Credentials come from Airflow Connections — `neo4j_default` (Neo4j; without it, the embedded
store at CONTEXTGRAPH_STORE_PATH) and `airflow_api_default` (this Airflow's REST API) — or, when
those do not exist, from the environment (NEO4J_*, AIRFLOW_*). Trigger with `{"full": true}` to
re-read everything.

Failures decide their own fate: a terminal one (rejected credentials, a wrong setting) fails the
task at once with `AirflowFailException` -- retrying a rejected password changes nothing -- while
a transient one (server unreachable, 5xx, timeouts) is raised as is, so the task's retries apply.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import Asset, BaseHook, Param, dag, task

try:  # Airflow 3.2+
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]
    from airflow.timetables.assets import AssetOrTimeSchedule  # type: ignore[no-redef]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[no-redef]

DECISIONS = Asset("contextgraph://decisions")
SCHEDULE = os.environ.get("CONTEXTGRAPH_INGEST_SCHEDULE", "0 * * * *")


@dag(
    dag_id="contextgraph_ingest",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(SCHEDULE, timezone="UTC"), assets=[DECISIONS]
    ),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["contextgraph"],
    params={"full": Param(False, type="boolean", description="Re-read everything, not only what changed.")},
    doc_md=__doc__,
)
def contextgraph_ingest() -> None:
    @task(retries=3)
    def ingest(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from contextgraph.airflow_connections import settings_from_connections
        from contextgraph.errors import TerminalError
        from contextgraph.ingest.pipeline import run_ingest

        try:
            settings = settings_from_connections(BaseHook.get_connection)
            report = run_ingest(settings, full=bool((params or {}).get("full")))
        except TerminalError as exc:  # no retries: the message says what to fix
            raise AirflowFailException(str(exc)) from None
        summary = report.as_dict()
        for rejected in report.rejected:
            print(f"rejected {rejected.record}: {rejected.field}: {rejected.reason}")
        print(
            f"ingest: {report.written} written, {len(report.rejected)} rejected, {report.api_calls} API calls"
        )
        return summary

    ingest()


contextgraph_ingest()
