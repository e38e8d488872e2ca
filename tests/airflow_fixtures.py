"""pytest plugin: the session fixture ``airflow`` (a real Airflow 3 for the tests).

Load it from a conftest or test module with ``pytest_plugins = ["tests.airflow_fixtures"]``.

* ``AIRFLOW_URL`` set (with ``AIRFLOW_USERNAME``/``AIRFLOW_PASSWORD``, default admin/admin): the
  tests use that server, which must already have the example DAG.
* otherwise: ``airflow standalone`` from this venv is started once per session (see
  ``tests/airflow_server.py``) with ``dags/`` as its DAGs folder and a short review timeout.

A server that cannot be reached or started fails the tests that need it -- it never skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from contextgraph.config import Neo4jSettings
from tests.airflow_server import DEFAULT_DAGS_FOLDER, AirflowClient, AirflowServer, free_port
from tests.example_runs import put_connection

EXAMPLE_DAG_ID = "ai_support_ticket_system"
#: Seconds a review of the example DAG waits for a human on the started server before the
#: scheduler applies the default ("Escalate to CRE"). Short, so a test can let one time out; long
#: enough that a test answering right after ``wait_for_hitl`` is never overtaken by it.
REVIEW_TIMEOUT_SECONDS = int(os.environ.get("CONTEXTGRAPH_REVIEW_TIMEOUT_SECONDS", "45"))
#: Slack, as the started server sees it: its tasks post review messages to the Slack Web API stand-in
#: (tests/slack_standin.py, started by the Slack tests on this port; while it is not running, posting
#: fails, is logged and the review waits as usual) and its API server mounts the Slack bridge plugin.
SLACK_STANDIN_PORT = int(os.environ.get("CONTEXTGRAPH_TEST_SLACK_PORT") or free_port())
SLACK_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-contextgraph-test",
    "SLACK_SIGNING_SECRET": "contextgraph-test-signing-secret",
    "SLACK_API_URL": f"http://127.0.0.1:{SLACK_STANDIN_PORT}/api/",
    "CONTEXTGRAPH_SLACK_DEFAULT_CHANNEL": "#reviews",
}


def _external() -> AirflowClient:
    client = AirflowClient(
        os.environ["AIRFLOW_URL"],
        os.environ.get("AIRFLOW_USERNAME", "admin"),
        os.environ.get("AIRFLOW_PASSWORD", "admin"),
    )
    try:
        client.token()
        client.wait_for_dag(EXAMPLE_DAG_ID, timeout=60)
    except Exception:
        client.close()
        raise
    return client


@pytest.fixture(scope="session")
def airflow() -> Iterator[AirflowClient]:
    """A started Airflow (``AirflowServer``) or the one at ``AIRFLOW_URL`` (``AirflowClient``)."""
    if os.environ.get("AIRFLOW_URL"):
        try:
            client = _external()
        except Exception as exc:  # reported as a failure, never skipped
            pytest.fail(
                f"AIRFLOW_URL={os.environ['AIRFLOW_URL']} is set but not usable: {exc}", pytrace=False
            )
        try:
            yield client
        finally:
            client.close()
        return

    yield from serve_airflow(
        env={"CONTEXTGRAPH_REVIEW_TIMEOUT_SECONDS": str(REVIEW_TIMEOUT_SECONDS), **SLACK_ENV},
        wait_for_dags=[EXAMPLE_DAG_ID],
    )


def serve_airflow(dags_folder: Path = DEFAULT_DAGS_FOLDER, **options: Any) -> Iterator[AirflowServer]:
    """Start ``airflow standalone`` on ``dags_folder`` (``options`` as ``AirflowServer`` takes them),
    yield it, stop it: the body of a fixture, ``yield from serve_airflow(...)``. The start may take
    up to 8 minutes (a loaded 2-core machine needs them); a server that does not start fails the
    tests that need it, in CI and locally -- never skips them."""
    server = AirflowServer(dags_folder, **{"startup_timeout": 480, **options})
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"could not start a real Airflow for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def example_dag(airflow: AirflowClient) -> str:
    """The example HITL DAG, parsed and unpaused; returns its dag_id."""
    airflow.wait_for_dag(EXAMPLE_DAG_ID)
    airflow.unpause(EXAMPLE_DAG_ID)
    return EXAMPLE_DAG_ID


@pytest.fixture
def neo4j_connection(airflow: AirflowClient, neo4j_settings: Neo4jSettings) -> Iterator[None]:
    """The Airflow connection ``neo4j_default`` to the tests' Neo4j (the example and ingestion DAGs
    write through it); deleted after the test."""
    bolt = urlsplit(neo4j_settings.uri)
    put_connection(
        airflow,
        {
            "connection_id": "neo4j_default",
            "conn_type": "neo4j",
            "host": bolt.hostname,
            "port": bolt.port,
            "login": neo4j_settings.username,
            "password": neo4j_settings.password.get_secret_value(),
            "schema": neo4j_settings.database,
        },
    )
    yield
    airflow.request("DELETE", "/api/v2/connections/neo4j_default")
