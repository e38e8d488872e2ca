"""The example DAG runs end to end through a human review on a real Airflow."""

from __future__ import annotations

import uuid

import pytest

from tests.airflow_fixtures import REVIEW_TIMEOUT_SECONDS
from tests.airflow_server import AirflowClient

pytest_plugins = ["tests.airflow_fixtures"]
pytestmark = pytest.mark.airflow

TASK = "review_response"
APPROVE, MANUAL, ESCALATE = "Approve AI Response", "Respond Manually", "Escalate to CRE"
TICKET_A = {
    "ticket_id": "T-A1",
    "customer": "acme",
    "subject": "Invoice PDF is blank",
    "body": "The invoice PDF I downloaded today is an empty page.",
}
TICKET_B = {
    "ticket_id": "T-B2",
    "customer": "globex",
    "subject": "Delete my account",
    "body": "Please delete my account and all my data (GDPR).",
}


def _run_id(label: str) -> str:
    return f"test_{label}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def unanswered_run(airflow: AirflowClient, example_dag: str) -> str:
    """A run nobody answers, started first so its review timeout overlaps the other tests."""
    conf = {"ticket_id": "T-C3", "subject": "Nobody answers"}
    return airflow.trigger(example_dag, conf=conf, run_id=_run_id("timeout"))


def test_reviews_are_recorded_and_acted_on(
    airflow: AirflowClient, example_dag: str, unanswered_run: str
) -> None:
    run_a = airflow.trigger(example_dag, conf=TICKET_A, run_id=_run_id("approve"))
    run_b = airflow.trigger(example_dag, conf=TICKET_B, run_id=_run_id("manual"))

    waiting_a = airflow.wait_for_hitl(example_dag, run_a, task_id=TASK)
    waiting_b = airflow.wait_for_hitl(example_dag, run_b, task_id=TASK)
    assert waiting_b["subject"].endswith("T-B2: Delete my account")
    # The reviewer sees the ticket and the AI draft (templated from the upstream XComs).
    assert waiting_a["subject"] == "Review the AI reply to ticket T-A1: Invoice PDF is blank"
    assert TICKET_A["body"] in waiting_a["body"]
    draft_a = airflow.xcom(example_dag, run_a, "draft_response")
    assert draft_a["model"] == "template"
    assert draft_a["draft"] in waiting_a["body"]
    assert waiting_a["options"] == [APPROVE, MANUAL, ESCALATE]
    assert waiting_a["defaults"] == [ESCALATE]
    assert set(waiting_a["params"]) == {"reason", "manual_response"}
    assert airflow.xcom(example_dag, run_b, "fetch_ticket") == TICKET_B

    # An option that was not offered is refused and nothing is recorded.
    bad = airflow.respond(example_dag, run_a, TASK, ["Refund everything"], {"reason": "x"})
    assert bad.status_code == 400, bad.text
    after_bad = airflow.hitl_detail(example_dag, run_a, TASK)
    assert after_bad["response_received"] is False
    assert after_bad["chosen_options"] is None
    assert after_bad["responded_by_user"] is None
    assert after_bad["task_instance"]["state"] == waiting_a["task_instance"]["state"]

    # Every param key is sent: HITLOperator fails the task if params_input lacks one.
    approve = {"reason": "The draft explains how to re-download the PDF.", "manual_response": None}
    manual = {
        "reason": "Account deletion needs the GDPR wording, the draft is too vague.",
        "manual_response": "We have deleted your account and all data linked to it.",
    }
    answer_a = airflow.respond(example_dag, run_a, TASK, [APPROVE], approve)
    answer_b = airflow.respond(example_dag, run_b, TASK, [MANUAL], manual)
    assert answer_a.status_code == 200, answer_a.text
    assert answer_b.status_code == 200, answer_b.text
    assert answer_a.json()["responded_by"]["name"] == airflow.username
    # A second answer is refused.
    again = airflow.respond(example_dag, run_a, TASK, [ESCALATE], approve)
    assert again.status_code == 409, again.text

    for run_id, option, params in ((run_a, APPROVE, approve), (run_b, MANUAL, manual)):
        run = airflow.wait_for_run(example_dag, run_id, timeout=120)
        assert run["state"] == "success"
        detail = airflow.hitl_detail(example_dag, run_id, TASK)
        assert detail["response_received"] is True
        assert detail["chosen_options"] == [option]
        assert detail["params_input"] == params
        assert detail["responded_by_user"] == {"id": airflow.username, "name": airflow.username}

    acted_a = airflow.xcom(example_dag, run_a, "act_on_decision")
    acted_b = airflow.xcom(example_dag, run_b, "act_on_decision")
    assert (acted_a["action"], acted_a["reply"]) == ("sent_ai_response", draft_a["draft"])
    assert (acted_b["action"], acted_b["reply"]) == ("sent_manual_response", manual["manual_response"])
    assert acted_b["reason"] == manual["reason"]

    # act_on_decision updates the asset an ingest DAG can be scheduled on.
    events = airflow.request(
        "GET", "/api/v2/assets/events", params={"source_dag_id": example_dag, "limit": 100}
    ).json()["asset_events"]
    updated_by = {e["source_run_id"] for e in events if e["name"] == "contextgraph://decisions"}
    assert {run_a, run_b} <= updated_by


def test_unanswered_review_escalates_on_timeout(
    airflow: AirflowClient, example_dag: str, unanswered_run: str
) -> None:
    # Against AIRFLOW_URL, that server must run with the same CONTEXTGRAPH_REVIEW_TIMEOUT_SECONDS.
    airflow.wait_for_hitl(example_dag, unanswered_run, task_id=TASK, settle=0)
    run = airflow.wait_for_run(example_dag, unanswered_run, timeout=REVIEW_TIMEOUT_SECONDS + 60)
    assert run["state"] == "success"
    detail = airflow.hitl_detail(example_dag, unanswered_run, TASK)
    # The scheduler answered with the defaults: the safe option, the reason's default, nobody.
    assert detail["chosen_options"] == [ESCALATE]
    assert detail["responded_by_user"] is None
    assert detail["params_input"]["reason"].startswith("No reviewer answered")
    acted = airflow.xcom(example_dag, unanswered_run, "act_on_decision")
    assert acted["action"] == "escalated_to_cre"
