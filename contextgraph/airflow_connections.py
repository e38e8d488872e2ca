"""Settings from Airflow Connections, for the ingestion DAG running inside Airflow.

A Neo4j connection (`neo4j_default`: host, port, login, password, schema = database, extra
`{"scheme": "neo4j+s"}` for Aura) and an Airflow API connection (`airflow_api_default`: host as
a URL, login, password, or extra `{"token": …}`). A connection that does not exist leaves the
environment's settings (NEO4J_*, AIRFLOW_*) in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from contextgraph.config import AirflowSettings, Neo4jSettings, Settings

NEO4J_CONN_ID = "neo4j_default"
AIRFLOW_API_CONN_ID = "airflow_api_default"

GetConnection = Callable[[str], Any]


def settings_from_connections(
    get_connection: GetConnection,
    *,
    neo4j_conn_id: str = NEO4J_CONN_ID,
    airflow_conn_id: str = AIRFLOW_API_CONN_ID,
    base: Settings | None = None,
) -> Settings:
    settings = base or Settings()
    neo4j = _lookup(get_connection, neo4j_conn_id)
    if neo4j is not None:
        extra = neo4j.extra_dejson or {}
        scheme = extra.get("scheme", "bolt")
        settings = settings.model_copy(
            update={
                "neo4j": Neo4jSettings(
                    uri=f"{scheme}://{neo4j.host}:{neo4j.port or 7687}",
                    username=neo4j.login or "neo4j",
                    password=SecretStr(neo4j.password or ""),
                    database=neo4j.schema or "neo4j",
                )
            }
        )
    api = _lookup(get_connection, airflow_conn_id)
    if api is not None:
        extra = api.extra_dejson or {}
        url = api.host if "://" in (api.host or "") else f"{api.schema or 'http'}://{api.host}"
        if api.port and f":{api.port}" not in url:
            url = f"{url}:{api.port}"
        token = extra.get("token")
        settings = settings.model_copy(
            update={
                "airflow": AirflowSettings(
                    url=url,
                    username=api.login or None,
                    password=SecretStr(api.password) if api.password else None,
                    token=SecretStr(token) if token else None,
                )
            }
        )
    return settings


def _lookup(get_connection: GetConnection, conn_id: str) -> Any | None:
    try:
        return get_connection(conn_id)
    except Exception as exc:  # Airflow raises its own "not found" types; any miss means: use env
        if ("not" in str(exc).lower() and "found" in str(exc).lower()) or "isn't defined" in str(exc):
            return None
        raise
