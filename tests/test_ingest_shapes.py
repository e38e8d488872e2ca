"""Shapes of real HITL use that the example DAG does not have, each ingested by the real CLI.

Every test writes the records a real Airflow 3.3 REST API v2 returns for one situation (mapped
task groups, reviews that timed out unanswered, reasons in other params, renamed tasks, XComs of
every shape, …), serves them from `contextgraph.ingest.source.replay` over HTTP and runs
`contextgraph ingest` against it into an embedded store, then reads the graph back.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contextgraph.cli import cli
from contextgraph.ingest import mapping
from contextgraph.ingest.source.memory import Records
from contextgraph.ingest.source.replay import ReplayServer
from contextgraph.store import EmbeddedStore

from .builders import hitl_detail, task_instance
from .neo4j_server import empty_neo4j

DAG = "support_mapped"


def ti(run: str, task_id: str, map_index: int = -1, state: str = "success", **more: Any) -> dict[str, Any]:
    """A HITL task instance of the DAG ``support_mapped`` at DAG version 1 (``more`` replaces fields)."""
    version = {"version_number": 1, "bundle_version": None, "dag_id": DAG}
    return task_instance(
        DAG,
        run,
        task_id,
        map_index,
        state,
        **{"operator_name": "HITLOperator", "dag_version": version, **more},
    )


def world(tasks: list[dict[str, Any]], details: list[dict[str, Any]], **xcoms: Any) -> Records:
    runs = sorted({d["task_instance"]["dag_run_id"] for d in details})
    return Records(
        dags=[{"dag_id": DAG, "tags": [], "owners": ["cre"]}],
        tasks={DAG: tasks},
        runs=[{"dag_id": DAG, "dag_run_id": r, "state": "success"} for r in runs],
        task_instances=[d["task_instance"] for d in details],
        hitl_details=details,
        server_time=datetime(2026, 11, 30, 12, tzinfo=UTC),  # the Airflow's clock
    )


def ingest(store_path: Path, url: str, *extra: str) -> dict[str, Any]:
    """`contextgraph ingest --json` against `url`; the parsed summary (exit code must be 0)."""
    result = CliRunner().invoke(
        cli, ["--store-path", str(store_path), "ingest", "--airflow-url", url, "--no-embed", "--json", *extra]
    )
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "graph.lbdb"


def read(store_path: Path, cypher: str, **params: Any) -> list[dict[str, Any]]:
    store = EmbeddedStore(store_path, read_only=True)
    try:
        return store.query(cypher, params)
    finally:
        store.close()


# --- 1. mapped task groups ------------------------------------------------------------------------

MAPPED_TASKS = [
    {
        "task_id": "per_ticket.draft_reply",
        "operator_name": "@task",
        "downstream_task_ids": ["per_ticket.review_reply"],
    },
    {"task_id": "per_ticket.review_reply", "operator_name": "HITLOperator", "downstream_task_ids": []},
]


def test_each_mapped_decision_reviewed_the_draft_at_its_own_map_index(store_path: Path) -> None:
    details = [hitl_detail(ti("r1", "per_ticket.review_reply", i)) for i in (0, 1)]
    w = world(MAPPED_TASKS, details)
    w.task_instances += [ti("r1", "per_ticket.draft_reply", i, operator_name="@task") for i in (0, 1)]
    w.xcoms = {(DAG, "r1", "per_ticket.draft_reply", i): {"draft": f"Reply to ticket {i}"} for i in (0, 1)}
    with ReplayServer(w) as airflow:
        summary = ingest(store_path, airflow.url)
        asked = [q.get("map_index") or [] for q in airflow.replay.queries("/xcomEntries/return_value")]
    assert sorted(asked) == [["0"], ["1"]]  # one read per decision, at its own index
    rows = read(
        store_path,
        "MATCH (d:Decision)-[:REVIEWED]->(p:Proposal)-[:PRODUCED_BY]->(t:TaskInstance) "
        "RETURN d.map_index AS decision, p.text AS text, t.map_index AS draft ORDER BY decision",
    )
    assert rows == [
        {"decision": 0, "text": "Reply to ticket 0", "draft": 0},
        {"decision": 1, "text": "Reply to ticket 1", "draft": 1},
    ]
    assert summary["rejected"] == []


# --- 2. reviews never answered --------------------------------------------------------------------

REVIEW_TASKS = [
    {"task_id": "draft_reply", "operator_name": "@task", "downstream_task_ids": ["review_reply"]},
    {"task_id": "review_reply", "operator_name": "HITLOperator", "downstream_task_ids": []},
]


def _hitl_since(airflow: ReplayServer) -> datetime:
    (query,) = airflow.replay.queries("/hitlDetails")[-1:]
    return datetime.fromisoformat(query["created_at_gte"][0].replace("Z", "+00:00"))


def test_a_review_whose_task_failed_unanswered_is_closed_and_no_longer_holds_the_sync(
    store_path: Path,
) -> None:
    old = hitl_detail(
        ti("r-old", "review_reply", state="awaiting_input"),
        created_at="2025-08-01T09:00:00Z",
        responded_at=None,
        responded_by_user=None,
        chosen_options=None,
        response_received=False,
    )
    w = world(REVIEW_TASKS, [old, hitl_detail(ti("r-new", "review_reply"))])
    with ReplayServer(w) as airflow:
        ingest(store_path, airflow.url)
        status = "MATCH (d:Decision {run_id: 'r-old'}) RETURN d.status AS status"
        assert read(store_path, status) == [{"status": "pending"}]

        # The task times out without defaults: Airflow fails it, the detail stays unanswered.
        old["task_instance"]["state"] = "failed"
        w.server_time = datetime(2026, 11, 30, 13, tzinfo=UTC)
        ingest(store_path, airflow.url)
        assert _hitl_since(airflow) <= datetime.fromisoformat("2025-08-01T09:00:00+00:00")
        assert read(store_path, status) == [{"status": "expired"}]

        w.server_time = datetime(2026, 11, 30, 14, tzinfo=UTC)
        idle = ingest(store_path, airflow.url)
        assert (
            w.server_time - timedelta(minutes=70) < _hitl_since(airflow) <= w.server_time
        )  # watermark moved
        assert idle["fetched"].get("HITL details", 0) == 0 and idle["rejected"] == []


# --- 3. the reason in another param ---------------------------------------------------------------

APPROVAL_TASKS = [
    {"task_id": "draft_report", "operator_name": "@task", "downstream_task_ids": ["approve_report"]},
    {"task_id": "approve_report", "operator_name": "ApprovalOperator", "downstream_task_ids": []},
]
LEDGER = "Revenue figures in section 2 do not match the ledger close"


def test_the_reason_is_found_in_the_params_people_use_configured_or_free_text(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def review(
        run: str, params_input: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        task = ti(run, "approve_report", operator_name="ApprovalOperator")
        return hitl_detail(task, chosen_options=["Reject"], params_input=params_input, params=params or {})

    text = {"schema": {"type": "string"}, "value": ""}
    details = [
        review("r-comments", {"comments": LEDGER, "ticket": "T-1"}),
        review("r-configured", {"severity": "high", "why_rejected": "Tone is wrong for a CFO"}),
        review(
            "r-free-text",
            {"team": "finance", "details": "Numbers copied from the old quarter"},
            {"team": {"schema": {"type": "string", "enum": ["finance", "ops"]}}, "details": text},
        ),
        review("r-none", {"severity": 3}),
    ]
    monkeypatch.setenv("CONTEXTGRAPH_REASON_PARAMS", json.dumps({f"{DAG}.approve_report": ["why_rejected"]}))
    with ReplayServer(world(APPROVAL_TASKS, details)) as airflow:
        summary = ingest(store_path, airflow.url)
    rows = read(
        store_path, "MATCH (d:Decision) RETURN d.run_id AS run, d.reason AS reason, d.search_text AS text"
    )
    got = {r["run"]: r for r in rows}
    assert got["r-comments"]["reason"] == LEDGER and LEDGER in got["r-comments"]["text"]
    assert got["r-configured"]["reason"] == "Tone is wrong for a CFO"
    assert got["r-free-text"]["reason"] == "Numbers copied from the old quarter"
    assert got["r-none"]["reason"] is None
    assert summary["without"]["reason"] == 1


# --- 4. DAG versions and renamed tasks ------------------------------------------------------------

LATEST_TASKS = [
    {"task_id": "draft_reply", "operator_name": "@task", "downstream_task_ids": ["review_draft"]},
    {"task_id": "review_draft", "operator_name": "HITLOperator", "downstream_task_ids": ["act"]},
    {"task_id": "act", "operator_name": "@task", "downstream_task_ids": []},
]


def test_an_old_decision_at_a_renamed_task_keeps_its_point_proposal_and_version(store_path: Path) -> None:
    def version(n: int) -> dict[str, Any]:
        return {
            "version_number": n,
            "bundle_name": "dags-folder",
            "bundle_version": f"git-{n}",
            "dag_id": DAG,
        }

    old = hitl_detail(ti("r-old", "review_reply", dag_version=version(1)))
    new = hitl_detail(ti("r-new", "review_draft", dag_version=version(2)))
    w = world(LATEST_TASKS, [old, new])
    w.task_instances += [ti(r, "draft_reply", operator_name="@task") for r in ("r-old", "r-new")]
    w.xcoms = {(DAG, r, "draft_reply", -1): {"draft": f"Draft of {r}"} for r in ("r-old", "r-new")}
    with ReplayServer(w) as airflow:
        summary = ingest(store_path, airflow.url)
        again = ingest(store_path, airflow.url, "--full")
    assert summary["missing_endpoints"] == {} and summary["without"]["proposal"] == 0
    assert again["created"] == {} and again["updated"] == {}  # nothing churns on a re-read
    rows = read(
        store_path,
        "MATCH (ti:TaskInstance)-[:ASKED]->(d:Decision)-[:AT_POINT]->(t:Task), "
        "(ti)-[:OF_TASK]->(t), (d)-[:REVIEWED]->(p:Proposal) "
        "RETURN d.run_id AS run, t.task_id AS point, t.in_latest_version AS latest, p.text AS draft "
        "ORDER BY run",
    )
    assert rows == [
        {"run": "r-new", "point": "review_draft", "latest": True, "draft": "Draft of r-new"},
        {"run": "r-old", "point": "review_reply", "latest": False, "draft": "Draft of r-old"},
    ]
    under = read(
        store_path,
        "MATCH (:Dag {dag_id: $dag})-[:VERSION_OF]->(v:DagVersion {version_number: $n})"
        "<-[:UNDER_VERSION]-(d:Decision) RETURN d.run_id AS run, v.bundle_version AS bundle",
        dag=DAG,
        n=1,
    )
    assert under == [{"run": "r-old", "bundle": "git-1"}]


# --- 5. an embedded store open in another process -------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from contextgraph.store import EmbeddedStore
store = EmbeddedStore(Path(sys.argv[1]), read_only=sys.argv[2] == "read-only")
store.query("MATCH (d:Dag) RETURN count(d) AS n")
print("holding", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("mode", ["read-only", "read-write"])
def test_ingest_refuses_a_store_another_process_holds_and_writes_nothing(store_path: Path, mode: str) -> None:
    empty = EmbeddedStore(store_path)
    empty.ensure_schema()
    empty.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store_path), mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with ReplayServer(world(REVIEW_TASKS, [hitl_detail(ti("r1", "review_reply"))])) as airflow:
            result = CliRunner().invoke(
                cli, ["--store-path", str(store_path), "ingest", "--airflow-url", airflow.url, "--no-embed"]
            )
            assert airflow.replay.requests == []  # refused before Airflow is asked anything
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        f"Error: the store {store_path} is in use by another process (open {mode}): "
        "stop that process or wait until it is done, and try again"
    ]
    assert read(store_path, "MATCH (n) RETURN count(n) AS n") == [{"n": 0}]


# --- 6, 7. every HITL operator; the human's own answer --------------------------------------------

OPERATOR_TASKS = [
    {
        "task_id": "draft",
        "operator_name": "@task",
        "downstream_task_ids": ["approve", "route", "tag", "gate", "rewrite"],
    },
    {"task_id": "approve", "operator_name": "ApprovalOperator", "downstream_task_ids": []},
    {"task_id": "route", "operator_name": "HITLBranchOperator", "downstream_task_ids": ["send", "escalate"]},
    {"task_id": "send", "operator_name": "@task", "downstream_task_ids": []},
    {"task_id": "escalate", "operator_name": "@task", "downstream_task_ids": []},
    {"task_id": "tag", "operator_name": "HITLOperator", "downstream_task_ids": []},
    {"task_id": "gate", "operator_name": "ApprovalOperator", "downstream_task_ids": []},
    {"task_id": "entry", "operator_name": "HITLEntryOperator", "downstream_task_ids": []},
    {"task_id": "rewrite", "operator_name": "HITLOperator", "downstream_task_ids": []},
]
DRAFT = "Hello, your refund was issued."


def test_every_hitl_operator_is_recorded_with_its_own_meaning(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def at(task_id: str, operator: str) -> dict[str, Any]:
        return ti("r1", task_id, operator_name=operator)

    details = [
        hitl_detail(
            at("approve", "ApprovalOperator"),
            chosen_options=["Reject"],
            assigned_users=[{"id": "ana", "name": "Ana"}, {"id": "ben", "name": "Ben"}],
        ),
        hitl_detail(
            at("route", "HITLBranchOperator"), options=["Send it", "Escalate"], chosen_options=["Send it"]
        ),
        hitl_detail(
            at("tag", "HITLOperator"),
            options=["billing", "urgent", "spam"],
            multiple=True,
            chosen_options=["billing", "urgent"],
        ),
        hitl_detail(
            at("gate", "ApprovalOperator"),
            params={"output": {"value": "Q3 revenue rose 4%.", "schema": {"type": "string"}}},
            params_input={"output": "Q3 revenue rose 3.8% (restated)."},
        ),
        hitl_detail(
            at("entry", "HITLEntryOperator"),
            options=["OK"],
            chosen_options=["OK"],
            params_input={"refund_amount": 120, "currency": "EUR"},
        ),
        hitl_detail(
            at("rewrite", "HITLOperator"),
            options=["Approve AI Response", "Respond Manually"],
            chosen_options=["Respond Manually"],
            params_input={"manual_response": "Hello, your refund was issued today."},
        ),
    ]
    w = world(OPERATOR_TASKS, details)
    w.task_instances += [
        ti("r1", "draft", operator_name="@task"),
        ti("r1", "send", operator_name="@task"),
        ti("r1", "escalate", state="skipped", operator_name="@task"),
    ]
    w.xcoms = {(DAG, "r1", "draft", -1): {"draft": DRAFT}}
    monkeypatch.setenv("CONTEXTGRAPH_VERDICTS", json.dumps({f"{DAG}.approve": {"Reject": "escalated"}}))
    monkeypatch.setenv("CONTEXTGRAPH_PROPOSAL_TASKS", json.dumps({f"{DAG}.gate": []}))
    with ReplayServer(w) as airflow:
        summary = ingest(store_path, airflow.url)
    assert summary["rejected"] == []

    def one(cypher: str) -> list[dict[str, Any]]:
        return read(store_path, cypher)

    verdicts = one("MATCH (d:Decision)-[r:REVIEWED]->(p:Proposal) RETURN d.task_id AS task, r.verdict AS v")
    assert {r["task"]: r["v"] for r in verdicts}["approve"] == "escalated"  # configured, not the words
    assignees = one("MATCH (:Decision {task_id: 'approve'})-[:ASSIGNED_TO]->(a:Actor) RETURN a.name AS name")
    assert sorted(r["name"] for r in assignees) == ["Ana", "Ben"]
    branch = one("MATCH (d:Decision {task_id: 'route'})-[:BRANCHED_TO]->(t:Task) RETURN t.task_id AS t")
    assert branch == [{"t": "send"}]
    chose = one("MATCH (:Decision {task_id: 'tag'})-[:CHOSE]->(o:Option) RETURN o.name AS name ORDER BY name")
    assert [r["name"] for r in chose] == ["billing", "urgent"]
    entry = one("MATCH (d:Decision {task_id: 'entry'}) RETURN d.search_text AS text")[0]["text"]
    assert "refund_amount: 120" in entry and "currency: EUR" in entry
    answers = one(
        "MATCH (d:Decision)-[:ANSWERED_WITH]->(a:Answer), (d)-[:REVIEWED]->(p:Proposal) "
        "RETURN d.task_id AS task, p.text AS proposal, a.text AS answer, a.edit_chars AS edited ORDER BY task"
    )
    assert answers == [
        {
            "task": "gate",
            "proposal": "Q3 revenue rose 4%.",
            "answer": "Q3 revenue rose 3.8% (restated).",
            "edited": 14,
        },
        {"task": "rewrite", "proposal": DRAFT, "answer": "Hello, your refund was issued today.", "edited": 6},
    ]


# --- 8. proposals of every XCom shape -------------------------------------------------------------

LARGE = "word " * 400_000  # 2 MB


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"draft": "An object's draft", "model": "m"}, "An object's draft"),
        (["first", "second"], '["first", "second"]'),
        (42.5, "42.5"),
        ("A plain string", "A plain string"),
        ('{"draft": "Draft inside a JSON string"}', "Draft inside a JSON string"),
        (LARGE, None),
        (None, None),
    ],
    ids=["object", "list", "number", "string", "json-string", "large", "missing"],
)
def test_a_proposal_of_every_xcom_shape(store_path: Path, value: Any, text: str | None) -> None:
    w = world(REVIEW_TASKS, [hitl_detail(ti("r1", "review_reply"))])
    w.task_instances.append(ti("r1", "draft_reply", operator_name="@task"))
    if value is not None:
        w.xcoms = {(DAG, "r1", "draft_reply", -1): value}
    with ReplayServer(w) as airflow:
        summary = ingest(store_path, airflow.url)
        again = ingest(store_path, airflow.url, "--full")
    assert again["updated"] == {}  # read back the same: nothing rewritten
    rows = read(
        store_path, "MATCH (:Decision)-[:REVIEWED]->(p:Proposal) RETURN p.text AS text, p.value AS value"
    )
    if value is None:
        assert rows == [] and summary["without"]["proposal"] == 1
    elif value is LARGE:
        (row,) = rows
        assert row["text"].startswith("word word") and len(row["text"]) <= mapping.TEXT_LIMIT
        assert len(row["value"]) < 2 * mapping.TEXT_LIMIT  # never megabytes in a property
    else:
        assert rows[0]["text"] == text and summary["without"]["proposal"] == 0


def test_a_store_file_of_an_earlier_version_gets_the_new_columns(store_path: Path) -> None:
    old = EmbeddedStore(store_path)
    old.ensure_schema()
    for table, column in (("Decision", "status"), ("Decision", "branches"), ("Task", "in_latest_version")):
        old._execute(f"ALTER TABLE {table} DROP {column}", {})  # as written before these existed
    old.close()
    with ReplayServer(world(REVIEW_TASKS, [hitl_detail(ti("r1", "review_reply"))])) as airflow:
        ingest(store_path, airflow.url)
    rows = read(
        store_path, "MATCH (d:Decision)-[:AT_POINT]->(t:Task) RETURN d.status AS s, t.in_latest_version AS v"
    )
    assert rows == [{"s": "answered", "v": True}]


# --- a DAG listed, then gone -----------------------------------------------------------------------


def test_a_dag_whose_tasks_airflow_no_longer_has_is_rejected_and_the_rest_ingested(store_path: Path) -> None:
    """`/dags` lists a DAG, `/dags/{id}/tasks` answers 404 (deleted meanwhile, or its file broke):
    the DAG is listed under `rejected` (field `tasks`); the other DAG's decisions are ingested and
    the sync exits 0 (it stopped with "not found in Airflow" before, every time). `--all-dags`:
    the broken DAG has no decision point, and only tracked DAGs have their tasks read."""
    details = [hitl_detail(ti("r1", "per_ticket.review_reply", i)) for i in (0, 1)]
    w = world(MAPPED_TASKS, details)
    w.dags.insert(0, {"dag_id": "finance.reports_ü", "tags": [], "owners": []})
    with ReplayServer(w) as airflow:
        summary = ingest(store_path, airflow.url, "--all-dags")
        again = ingest(store_path, airflow.url, "--all-dags")
    for report in (summary, again):
        assert [(r["record"], r["field"]) for r in report["rejected"]] == [("DAG finance.reports_ü", "tasks")]
        assert "404" in report["rejected"][0]["reason"]
    got = read(store_path, "MATCH (d:Decision) RETURN d.dag_id AS dag, d.run_id AS run, d.map_index AS i")
    assert sorted((r["dag"], r["run"], r["i"]) for r in got) == [(DAG, "r1", 0), (DAG, "r1", 1)]
    dags = {r["id"] for r in read(store_path, "MATCH (g:Dag) RETURN g.dag_id AS id")}
    assert dags == {DAG, "finance.reports_ü"}


BRANCH_TASKS = [
    {"task_id": "route", "operator_name": "HITLBranchOperator", "downstream_task_ids": ["send", "escalate"]},
    {"task_id": "send", "operator_name": "@task", "downstream_task_ids": []},
    {"task_id": "escalate", "operator_name": "@task", "downstream_task_ids": []},
]


@pytest.mark.parametrize("kind", ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_each_branch_review_records_the_branch_its_own_run_ran(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Three branch reviews on one page: the branch is read from each run's own task instances
    (r1 sent, r2 escalated), and from the chosen option where no child ran yet (r3)."""
    details = [
        hitl_detail(
            ti(run, "route", operator_name="HITLBranchOperator"), options=options, chosen_options=[pick]
        )
        for run, options, pick in (
            ("r1", ["Send it", "Escalate"], "Send it"),
            ("r2", ["Send it", "Escalate"], "Send it"),  # the reviewer's label; escalate is what ran
            ("r3", ["send", "escalate"], "escalate"),
        )
    ]
    w = world(BRANCH_TASKS, details)
    w.task_instances += [
        ti("r1", "send", operator_name="@task"),
        ti("r1", "escalate", state="skipped", operator_name="@task"),
        ti("r2", "send", state="skipped", operator_name="@task"),
        ti("r2", "escalate", state="running", operator_name="@task"),
    ]
    if kind == "embedded":
        args = ["--store-path", str(tmp_path / "graph.lbdb")]
        graph = None
    else:
        settings = request.getfixturevalue("neo4j_settings")
        graph = empty_neo4j(settings)
        args = ["--neo4j-uri", settings.uri or "", "--neo4j-username", settings.username]
        args += ["--neo4j-password", settings.password.get_secret_value()]
    branched = (
        "MATCH (d:Decision)-[:BRANCHED_TO]->(t:Task) RETURN d.run_id AS run, t.task_id AS task ORDER BY run"
    )
    with ReplayServer(w) as airflow, graph or contextlib.nullcontext() as store:
        result = CliRunner().invoke(
            cli, [*args, "ingest", "--airflow-url", airflow.url, "--no-embed", "--json"]
        )
        assert result.exit_code == 0, result.output
        rows = store.query(branched, {}) if store is not None else read(tmp_path / "graph.lbdb", branched)
    assert rows == [
        {"run": "r1", "task": "send"},
        {"run": "r2", "task": "escalate"},
        {"run": "r3", "task": "escalate"},
    ]
