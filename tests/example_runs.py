"""Runs of the example DAG for the Airflow tests: tickets to trigger, answers to give, connections.

Shared by the test modules that drive the real Airflow (no test module imports another).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.airflow_server import AirflowClient

DAG = "ai_support_ticket_system"
REVIEW = "review_response"
APPROVE, MANUAL, ESCALATE = "Approve AI Response", "Respond Manually", "Escalate to CRE"
ANSWERS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "approve": ([APPROVE], {"reason": "The draft covers the reset steps.", "manual_response": None}),
    "manual": (
        [MANUAL],
        {
            "reason": "Check the roadmap first: dark mode is planned.",
            "manual_response": "It is on our roadmap.",
        },
    ),
    "escalate": ([ESCALATE], {"reason": "Production outage: CRE must own it.", "manual_response": None}),
}
TICKETS = {
    "approve": {"ticket_id": "T-1", "subject": "Password reset mail missing", "body": "No reset email."},
    "manual": {"ticket_id": "T-2", "subject": "Dark mode feature request", "body": "Please add dark mode."},
    "escalate": {"ticket_id": "T-3", "subject": "API 500 on export", "body": "Every export fails."},
    "timeout": {"ticket_id": "T-4", "subject": "Question nobody answers", "body": "Hello?"},
}


def trigger(airflow: AirflowClient, labels: list[str]) -> dict[str, str]:
    return {
        label: airflow.trigger(DAG, conf=TICKETS[label], run_id=f"ingest_{label}_{uuid.uuid4().hex[:6]}")
        for label in labels
    }


def answer(airflow: AirflowClient, runs: dict[str, str], labels: list[str]) -> None:
    """Answer each review as soon as it waits (so none times out), then let the runs finish."""
    for label in labels:
        airflow.wait_for_hitl(DAG, runs[label], task_id=REVIEW)
        chosen, params = ANSWERS[label]
        response = airflow.respond(DAG, runs[label], REVIEW, chosen, params)
        assert response.status_code == 200, response.text
    for label in labels:
        state = airflow.wait_for_run(DAG, runs[label])["state"]
        tasks = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG, runs[label])}
        assert state == "success", (label, runs[label], tasks, failure_log(airflow, runs[label], tasks))


def failure_log(airflow: AirflowClient, run_id: str, tasks: dict[str, str]) -> str:
    """The error lines of the first failed task's log, to say why a run failed."""
    failed = [t for t, state in tasks.items() if state == "failed"]
    if not failed:
        return ""
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{failed[0]}/logs/1"
    content = airflow.request("GET", path, params={"full_content": True}).json().get("content") or []
    errors = [e for e in content if isinstance(e, dict) and e.get("level") in ("error", "critical")]
    return json.dumps(errors, default=str)[-4000:]


def put_connection(airflow: AirflowClient, body: dict[str, Any]) -> None:
    airflow.request("DELETE", f"/api/v2/connections/{body['connection_id']}")
    response = airflow.request("POST", "/api/v2/connections", json=body)
    assert response.status_code == 201, response.text


def put_api_connection(airflow: AirflowClient, password: str | None = None) -> None:
    """The connection ``airflow_api_default`` through which the ingestion DAG reads this Airflow:
    the test user and their password (or ``password`` instead, e.g. a wrong one)."""
    user, right = airflow.credentials
    put_connection(
        airflow,
        {
            "connection_id": "airflow_api_default",
            "conn_type": "http",
            "host": airflow.url,
            "login": user,
            "password": right if password is None else password,
        },
    )
