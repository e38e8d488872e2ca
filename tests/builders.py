"""Builders of test data, shared by the test modules (no test module imports another).

* ``task_instance(dag_id, run, task_id)``, ``hitl_detail(ti, **changes)``: records as Airflow 3.3's
  REST API v2 returns them; ``detail(run, **changes)``: a review of the ``support`` DAG.
* ``ListSource(details)``: the sync's ``Source`` over such records (no HTTP), with the DAG, runs
  and task instances a real Airflow would list for them.
* ``support_batch(runs)``: a small decision trace as a ``GraphBatch`` (one DAG, runs, decisions).
* ``support_world(decisions)``: an Airflow's records (``Records``) of that many answered reviews.
* ``FULL_LANE``: true in CI (``CI`` set) or with ``CONTEXTGRAPH_FULL_TESTS=1``: slow tests then try
  every case (all hostile queries, hypothesis's ``ci`` profile); the fast lane tries a sample.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contextgraph import model as m
from contextgraph.ingest.source.memory import MemorySource, Records

FULL_LANE = os.environ.get("CI", "").lower() in ("1", "true", "yes") or (
    os.environ.get("CONTEXTGRAPH_FULL_TESTS") == "1"
)

#: The shared embedding model of these machines (tests that need it set CONTEXTGRAPH_EMBEDDING_MODEL).
SHARED_MODEL = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "m2v-minilm-l6-256"

DAG = "support"
TASKS = [
    {"task_id": "fetch_ticket", "operator_name": "@task", "downstream_task_ids": ["draft_response"]},
    {"task_id": "draft_response", "operator_name": "@task", "downstream_task_ids": ["review"]},
    {"task_id": "review", "operator_name": "HITLOperator", "downstream_task_ids": []},
]


def task_instance(
    dag_id: str, run: str, task_id: str, map_index: int = -1, state: str = "success", **more: Any
) -> dict[str, Any]:
    """A task instance as Airflow 3.3's REST API v2 lists it (on its own or inside a HITL detail);
    ``more`` adds or replaces fields (``operator_name``, ``dag_version``, ``try_number``, ...)."""
    return {
        "dag_id": dag_id,
        "dag_run_id": run,
        "task_id": task_id,
        "map_index": map_index,
        "try_number": 1,
        "state": state,
        **more,
    }


def hitl_detail(ti: dict[str, Any], /, **changes: Any) -> dict[str, Any]:
    """An answered HITL detail as Airflow 3.3 lists it for the task instance ``ti``: "Approve" of
    Approve/Reject, asked 2026-11-29 10:00 UTC and answered by Ana five minutes later, no params.
    ``changes`` replace fields (any of them, ``task_instance`` too)."""
    record: dict[str, Any] = {
        "task_instance": ti,
        "options": ["Approve", "Reject"],
        "subject": f"Review {ti['dag_run_id']}",
        "body": "Please review the draft.",
        "defaults": None,
        "multiple": False,
        "params": {},
        "assigned_users": [],
        "created_at": "2026-11-29T10:00:00Z",
        "responded_at": "2026-11-29T10:05:00Z",
        "responded_by_user": {"id": "ana", "name": "Ana"},
        "chosen_options": ["Approve"],
        "params_input": {},
        "response_received": True,
    }
    record.update(changes)
    return record


def detail(run: str, **changes: Any) -> dict[str, Any]:
    """A review of the ``support`` DAG's run ``run`` (the example DAG's three options, a ``reason``
    param), answered "Approve AI Response" on 2026-11-20; ``changes`` replace fields."""
    answered = {
        "options": ["Approve AI Response", "Respond Manually", "Escalate to CRE"],
        "subject": f"Ticket {run}",
        "body": "Customer asks about invoices.",
        "defaults": ["Escalate to CRE"],
        "params": {"reason": {"value": "", "schema": {"type": "string"}}},
        "created_at": "2026-11-20T10:00:00Z",
        "responded_at": "2026-11-20T10:05:00Z",
        "chosen_options": ["Approve AI Response"],
        "params_input": {"reason": "Draft is right."},
    }
    return hitl_detail(task_instance(DAG, run, "review"), **{**answered, **changes})


class ListSource(MemorySource):
    """The Source protocol over a list of raw HITL detail records (no HTTP), with the DAG, its
    runs and task instances a real Airflow would list for them, and a draft XCom per run."""

    def __init__(self, details: list[Any]) -> None:
        tis = [
            d["task_instance"]
            for d in details
            if isinstance(d, dict) and isinstance(d.get("task_instance"), dict)
        ]
        runs = sorted({ti["dag_run_id"] for ti in tis if isinstance(ti.get("dag_run_id"), str)})
        upstream = [t["task_id"] for t in TASKS if t["task_id"] != "review"]
        super().__init__(
            dags=[{"dag_id": DAG, "tags": [{"name": "support"}], "owners": ["cre"]}],
            tasks={DAG: TASKS},
            dag_runs=[{"dag_id": DAG, "dag_run_id": r, "state": "success"} for r in runs],
            # Every task of each run that asked, as a real Airflow lists them.
            task_instances=[{**ti, "task_id": t} for ti in tis for t in upstream] + tis,
            hitl_details=details,
            xcoms={
                (DAG, r, t): {"draft": f"Here is how to fix {r}.", "model": "template"}
                for r in runs
                for t in upstream
            },
            url="http://airflow.test",
            server_time=datetime(2026, 11, 21, tzinfo=UTC),
        )


def support_batch(runs: int = 3) -> m.GraphBatch:
    """A small decision trace: one DAG, its tasks, runs, instances and decisions."""
    batch = m.GraphBatch()
    dag = m.Dag(dag_id="ai_support_ticket_system", tags=["support"], owners=["cre"])
    tasks = [m.Task(dag_id=dag.dag_id, task_id=t) for t in ("fetch_ticket", "draft_response")]
    review = m.Task(dag_id=dag.dag_id, task_id="review_response", is_decision_point=True)
    batch.add(dag, *tasks, review, *(m.HasTask.between(dag, t) for t in [*tasks, review]))
    batch.add(m.Feeds.between(tasks[0], tasks[1]), m.Feeds.between(tasks[1], review))
    options = [m.Option(dag_id=dag.dag_id, task_id=review.task_id, name=n) for n in ("Approve", "Escalate")]
    batch.add(*options)
    reviewer = m.Actor(kind="airflow_user", actor_id="admin", name="Admin")
    batch.add(reviewer)
    for i in range(runs):
        run = m.DagRun(dag_id=dag.dag_id, run_id=f"manual__{i}", state="success", conf={"ticket": i})
        ti = m.TaskInstance(dag_id=dag.dag_id, run_id=run.run_id, task_id=review.task_id, try_number=1)
        decision = m.Decision(
            dag_id=dag.dag_id,
            run_id=run.run_id,
            task_id=review.task_id,
            subject=f"Ticket {i}",
            offered=["Approve", "Escalate"],
            chosen_options=["Approve"],
            params_input={"reason": "ok ✓"},
            reason="ok ✓",
            response_received=True,
            responded_by="admin",
            created_at=datetime(2026, 1, 1, 12, i, tzinfo=UTC),
        )
        proposal = m.Proposal(dag_id=dag.dag_id, run_id=run.run_id, task_id="draft_response", text="Draft")
        batch.add(
            run,
            ti,
            decision,
            proposal,
            m.HasRun.between(dag, run),
            m.HasInstance.between(run, ti),
            m.OfTask.between(ti, review),
            m.Asked.between(ti, decision),
            m.AtPoint.between(decision, review),
            m.DecidedBy.between(decision, reviewer),
            m.Chose.between(decision, options[0]),
            m.Reviewed.between(decision, proposal, verdict="approved"),
            *(m.Offered.between(decision, o) for o in options),
        )
    return batch


def support_world(decisions: int) -> Records:
    """`decisions` answered reviews of the ``support`` DAG (`TASKS`; one run each, a minute apart)
    as an Airflow 3.3 deployment lists them: the DAG, its tasks, the runs, their task instances,
    the HITL details and each run's XComs (``fetch_ticket`` and ``draft_response``). The clock stands
    two minutes after the last review; the first n decisions of a larger world are the same."""
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    upstream = [t["task_id"] for t in TASKS if t["task_id"] != "review"]
    world = Records(
        dags=[{"dag_id": DAG, "tags": [{"name": "support"}], "owners": ["cre"]}],
        tasks={DAG: TASKS},
        server_time=start + timedelta(minutes=decisions + 1),
    )
    for i in range(decisions):
        asked = start + timedelta(minutes=i)
        run = f"manual__{asked.isoformat()}"
        record = detail(
            run,
            subject=f"Ticket {i}: the invoice PDF is empty",
            created_at=asked.isoformat().replace("+00:00", "Z"),
            responded_at=(asked + timedelta(seconds=30)).isoformat().replace("+00:00", "Z"),
        )
        world.runs.append({"dag_id": DAG, "dag_run_id": run, "state": "success"})
        world.task_instances += [{**record["task_instance"], "task_id": t} for t in upstream]
        world.task_instances.append(record["task_instance"])
        world.hitl_details.append(record)
        for task_id in upstream:
            world.xcoms[(DAG, run, task_id)] = {
                "draft": f"Here is how to fix ticket {i}.",
                "model": "template",
            }
    return world
