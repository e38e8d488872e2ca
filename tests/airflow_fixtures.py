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

import pytest

from tests.airflow_server import AirflowClient, AirflowServer, free_port

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

    server = AirflowServer(
        env={"CONTEXTGRAPH_REVIEW_TIMEOUT_SECONDS": str(REVIEW_TIMEOUT_SECONDS), **SLACK_ENV},
        wait_for_dags=[EXAMPLE_DAG_ID],
        startup_timeout=480,  # as the operator and asset servers: a loaded 2-core machine needs it
    )
    try:
        server.start()
    except Exception as exc:  # a missing Airflow fails, in CI and locally
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
