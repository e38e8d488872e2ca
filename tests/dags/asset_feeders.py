"""Test DAGs: a producer feeding an asset-scheduled DAG with a HITL review, and an unrelated DAG.

Used by tests/test_assets_airflow.py against a real Airflow (DAGs folder tests/dags/): the sync
must read the producer and the review DAG, link them through the asset, and skip the other one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, dag, task

ORDERS = Asset(name="contextgraph_test_orders", uri="file:///tmp/contextgraph-test/orders.json")
ARGS = {"retries": 2, "retry_delay": timedelta(seconds=3)}  # a loaded machine may drop a task start


@dag(
    dag_id="assets_producer",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["contextgraph-test", "etl"],
    default_args=ARGS,
)
def assets_producer() -> None:
    @task(outlets=[ORDERS])
    def publish() -> dict[str, int]:
        return {"orders": 1204}

    publish()


@dag(
    dag_id="assets_review",
    schedule=[ORDERS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["contextgraph-test", "hitl"],
    default_args=ARGS,
)
def assets_review() -> None:
    @task
    def summarize() -> dict[str, str]:
        return {"summary": "Orders: 1,204 yesterday"}

    review = ApprovalOperator(task_id="review", subject="Publish the order summary?")
    summarize() >> review


@dag(
    dag_id="assets_unrelated",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["contextgraph-test"],
    default_args=ARGS,
)
def assets_unrelated() -> None:
    @task
    def noop() -> str:
        return "done"

    noop()


assets_producer()
assets_review()
assets_unrelated()
