"""Test DAG: one HITL task of every kind in one run, and a HITL task inside a mapped task group.

Used by tests/test_hitl_operators.py against a real Airflow (its own DAGs folder, tests/dags/).
`draft` feeds every review; `route` branches to `send` or `escalate`; `per_ticket` is mapped over
two tickets, each with its own draft and review at map indexes 0 and 1.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import (
    ApprovalOperator,
    HITLBranchOperator,
    HITLEntryOperator,
    HITLOperator,
)
from airflow.sdk import Param, dag, task, task_group

DAG_ID = "hitl_every_operator"


# Retries: on a loaded machine a task process sometimes cannot reach the execution API at start.
@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["contextgraph-test"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=3)},
)
def hitl_every_operator() -> None:
    @task
    def draft() -> dict[str, str]:
        return {"draft": "Hello, your refund was issued."}

    @task
    def send() -> str:
        return "sent"

    @task
    def escalate() -> str:
        return "escalated"

    first = draft()
    approve = ApprovalOperator(
        task_id="approve",
        subject="Approve the refund reply?",
        assigned_users=[{"id": "admin", "name": "admin"}],
    )
    route = HITLBranchOperator(
        task_id="route", subject="Where does this ticket go?", options=["send", "escalate"]
    )
    tag = HITLOperator(task_id="tag", subject="Tags", options=["billing", "urgent", "spam"], multiple=True)
    entry = HITLEntryOperator(
        task_id="entry",
        subject="Refund amount",
        params={"refund_amount": Param(0, type="integer"), "currency": Param("EUR", type="string")},
    )
    rewrite = HITLOperator(
        task_id="rewrite",
        subject="Reply to the customer",
        options=["Approve AI Response", "Respond Manually"],
        params={"manual_response": Param("", type="string"), "comments": Param("", type="string")},
    )
    first >> [approve, route, tag, entry, rewrite]
    route >> [send(), escalate()]

    @task
    def draft_reply(ticket: str) -> dict[str, str]:
        return {"draft": f"Reply to {ticket}"}

    @task_group
    def per_ticket(ticket: str) -> None:
        review = HITLOperator(
            task_id="review_reply", subject="Review the reply", options=["Approve", "Reject"]
        )
        draft_reply(ticket) >> review

    per_ticket.expand(ticket=["T-1", "T-2"])


hitl_every_operator()
