"""Where records come from: the Airflow REST API v2 (raw JSON dicts, as the server sent them)."""

from contextgraph.ingest.source.airflow import (
    ALL,
    HITL_WAITING_STATES,
    AirflowSource,
    XComRef,
    hitl_is_waiting,
)

__all__ = ["ALL", "HITL_WAITING_STATES", "AirflowSource", "XComRef", "hitl_is_waiting"]
