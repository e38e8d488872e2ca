"""Insert N answered HITL decisions straight into a started Airflow's metadata database.

Running the example DAG N times with a human answering each review takes minutes per hundred;
this script makes the same rows in seconds with Airflow's own ORM: one DAG run of
`ai_support_ticket_system` per decision (created by the serialized DAG's `create_dagrun`, so task
instances, DAG version and every column are Airflow's), its task instances marked done, and one
`HITLDetail` on the review task with the synthetic subject, body, options, answer and reason.

Run it with the server's environment (AIRFLOW_HOME, the SQLite connection):
`AIRFLOW_HOME=… python -m bench.airflow_seed --decisions 1000`. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta

DAG_ID = "ai_support_ticket_system"
REVIEW = "review_response"


def seed(decisions: int, seed_value: int = 0) -> dict[str, float | int]:
    from airflow.models.hitl import HITLDetail
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    from bench.synthetic import History

    began = time.perf_counter()
    history = History(decisions * 3, seed_value)
    support = (i for i in range(history.decisions) if history.scenario(i).dag_id == DAG_ID)
    made = 0
    with create_session() as session:
        dag = SerializedDagModel.get_dag(DAG_ID, session=session)
        if dag is None:
            raise SystemExit(f"{DAG_ID} is not parsed in this Airflow")
        for i in support:
            if made == decisions:
                break
            record = history.hitl_detail(i)
            created = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
            run = dag.create_dagrun(
                run_id=f"bench__{i:07d}",
                run_after=created - timedelta(seconds=90),
                conf={"ticket_id": f"T-{100000 + i}", "subject": record["subject"]},
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.REST_API,
                state=DagRunState.SUCCESS if record["response_received"] else DagRunState.RUNNING,
                start_date=created - timedelta(seconds=90),
                session=session,
            )
            review = None
            for ti in run.get_task_instances(session=session):
                ti.state = TaskInstanceState.SUCCESS
                ti.try_number = 1
                ti.start_date = created - timedelta(seconds=60)
                ti.end_date = created + timedelta(minutes=10)
                if ti.task_id == REVIEW:
                    review = ti
            if review is None:
                raise SystemExit(f"{DAG_ID} has no task {REVIEW}")
            responder = record["responded_by_user"]
            session.add(
                HITLDetail(
                    ti_id=review.id,
                    options=record["options"],
                    subject=record["subject"],
                    body=record["body"],
                    defaults=record["defaults"],
                    multiple=False,
                    params=record["params"],
                    assignees=record["assigned_users"],
                    created_at=created,
                    responded_at=datetime.fromisoformat(record["responded_at"].replace("Z", "+00:00"))
                    if record["responded_at"]
                    else None,
                    responded_by=responder,
                    chosen_options=record["chosen_options"],
                    params_input=record["params_input"],
                )
            )
            made += 1
            if made % 200 == 0:
                session.commit()
    return {"decisions": made, "seconds": round(time.perf_counter() - began, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(seed(args.decisions, args.seed)), flush=True)


if __name__ == "__main__":
    main()
