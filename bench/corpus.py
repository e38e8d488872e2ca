"""The precedent evaluation corpus (`bench/precedents/*.json`): load, validate, turn into Airflow records.

    corpus = load_corpus()                      # validated past decisions and new cases
    records = airflow_records(corpus)           # what Airflow's REST API v2 would return for them
    ingested = ingest(store, embedder, corpus)  # the user's path: Source -> Sync -> store -> embed

`load_corpus` reads every `past_*.json` and `cases_*.json` of the folder (schema:
`bench/precedents/README.md`) and raises `CorpusError` listing every problem as
`file: id: field: reason` (unknown decision point, a chosen option that was not offered, a
relevant id that names no past decision, a duplicate id, …).

`airflow_records` turns each past decision into the records an Airflow 3.3 server returns for one
DAG run of the decision point's DAG: the DAG (`GET /api/v2/dags`), its tasks with their
downstream ids (`…/tasks`: e.g. fetch_ticket → draft_response → review_response →
act_on_decision), the DAG run, its task instances, the HITL detail
(`GET /api/v2/dags/~/dagRuns/~/hitlDetails`: `task_instance`, subject, a body as the reviewer saw
it, options, chosen_options, params, params_input, responded_by_user …) and the proposal as the
XCom `return_value` of the task upstream of the decision point (`CorpusRecords`, the package's
`contextgraph.ingest.source.memory.Records`). `corpus_source` serves them to
`contextgraph.ingest.sync.Sync` as `contextgraph.ingest.source.AirflowSource` would; nothing of the corpus's
ids or kinds reaches the graph: `Ingested.ids` maps (dag_id, run_id) back to corpus ids.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench.records import dag_record, dag_version_record, task_instance_record, task_record, version_id
from contextgraph.ingest.embeddings import Embedder, EmbedReport, embed_pending
from contextgraph.ingest.source.memory import MemorySource, Records
from contextgraph.ingest.sync import Sync, SyncReport
from contextgraph.store import GraphStore

CORPUS_DIR = Path(__file__).resolve().parent / "precedents"
AIRFLOW_URL = "http://airflow.precedents.bench"
LLM = "gpt-4o-mini"
RUN_LEAD = timedelta(minutes=2)
"""A run starts this long before its decision point asks."""

Operator = Literal["HITLOperator", "ApprovalOperator", "HITLBranchOperator", "HITLEntryOperator"]


class CorpusError(ValueError):
    """The corpus files are invalid; `problems` lists each as `file: id: field: reason`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n  ".join(problems[:40])
        more = f"\n  … and {len(problems) - 40} more" if len(problems) > 40 else ""
        super().__init__(f"{len(problems)} problem(s) in the precedent corpus:\n  {shown}{more}")


# --- decision points -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One decision point of the corpus: its DAG's tasks, the operator, its options and params."""

    dag_id: str
    task_id: str
    operator: Operator
    options: tuple[str, ...]
    params: dict[str, str]
    """param name -> description, as the operator declares them (the reason param first)."""
    before: tuple[str, str]
    """The two tasks upstream of the point: (fetch the input, the AI's proposal)."""
    after: tuple[str, ...]
    """Tasks downstream of the point (a branch operator's options are these task ids)."""
    defaults: tuple[str, ...]
    request_label: str
    proposal_label: str
    description: str
    schedule: str | None = None
    owners: tuple[str, ...] = ("ops",)

    @property
    def tasks(self) -> list[tuple[str, str, list[str]]]:
        """(task_id, operator_name, downstream_task_ids) in run order."""
        fetch, draft = self.before
        return [
            (fetch, "@task", [draft]),
            (draft, "@task", [self.task_id]),
            (self.task_id, self.operator, list(self.after)),
            *((t, "@task", []) for t in self.after),
        ]


POINTS: dict[tuple[str, str], Point] = {
    (p.dag_id, p.task_id): p
    for p in (
        Point(
            "ai_support_ticket_system",
            "review_response",
            "HITLOperator",
            ("Approve AI Response", "Respond Manually", "Escalate to CRE"),
            {
                "reason": "Why you chose this option (kept as precedent for future decisions).",
                "manual_response": "Your reply to the customer, if you chose to respond manually.",
            },
            ("fetch_ticket", "draft_response"),
            ("act_on_decision",),
            ("Escalate to CRE",),
            "Ticket",
            "AI draft",
            "AI drafts support replies; a human reviews each one (HITL).",
            owners=("support",),
        ),
        Point(
            "refund_approvals",
            "approve_refund",
            "ApprovalOperator",
            ("Approve", "Reject"),
            {"comments": "Why you approve or reject this refund."},
            ("fetch_refund_request", "assess_refund"),
            ("issue_refund",),
            ("Reject",),
            "Refund request",
            "AI assessment",
            "Refund requests above the self-service limit, assessed by AI and approved by finance.",
            owners=("finance",),
        ),
        Point(
            "finance_monthly_report",
            "review_report",
            "HITLOperator",
            ("Publish", "Request Changes"),
            {"feedback": "What must change before publishing (or why it can go out as is)."},
            ("collect_ledgers", "draft_report"),
            ("publish_report",),
            ("Request Changes",),
            "Report",
            "AI draft",
            "Monthly finance report drafted by AI from the ledgers; controlling reviews it.",
            schedule="@monthly",
            owners=("finance",),
        ),
        Point(
            "ticket_triage",
            "route_ticket",
            "HITLBranchOperator",
            ("billing_queue", "tech_support", "security_team", "account_management"),
            {"rationale": "Why this queue."},
            ("fetch_ticket", "classify_ticket"),
            ("billing_queue", "tech_support", "security_team", "account_management"),
            ("tech_support",),
            "Ticket",
            "AI routing suggestion",
            "Incoming tickets classified by AI; a human confirms the queue.",
        ),
        Point(
            "vendor_onboarding",
            "enter_vendor_terms",
            "HITLEntryOperator",
            ("OK",),
            {
                "payment_terms": "Payment terms to record for this vendor.",
                "risk_tier": "Risk tier (low / medium / high).",
                "note": "Anything procurement should know about these terms.",
            },
            ("fetch_vendor_application", "extract_terms"),
            ("create_vendor_record",),
            ("OK",),
            "Vendor application",
            "AI-extracted terms",
            "New vendors: AI extracts the terms from the application, procurement enters them.",
        ),
    )
}


# --- the files -----------------------------------------------------------------------------------


class PastDecision(BaseModel):
    """One answered HITL detail of the corpus (`past_<area>.json`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    dag_id: str
    task_id: str
    operator: Operator
    subject: str = Field(min_length=1)
    request: str = Field(min_length=1)
    proposal: str | None
    options: list[str] = Field(min_length=1)
    chosen: list[str] = Field(min_length=1)
    params_input: dict[str, Any]
    reviewer: str | None
    created_at: datetime
    responded_at: datetime

    @field_validator("created_at", "responded_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. a trailing Z)")
        return value.astimezone(UTC)

    def problems(self) -> list[tuple[str, str]]:
        """(field, reason) of each way the decision contradicts its decision point (POINTS)."""
        point = POINTS.get((self.dag_id, self.task_id))
        if point is None:
            return [("task_id", f"unknown decision point {self.dag_id}/{self.task_id}")]
        found = []
        if self.operator != point.operator:
            found.append(("operator", f"{self.operator}, but {self.task_id} is a {point.operator}"))
        if list(self.options) != list(point.options):
            found.append(("options", f"{self.options} differ from the point's {list(point.options)}"))
        found += [("chosen", f"{c!r} is not among the options") for c in self.chosen if c not in self.options]
        extra = sorted(set(self.params_input) - set(point.params))
        if extra:
            found.append(("params_input", f"{extra} not declared by the point ({list(point.params)})"))
        if self.responded_at < self.created_at:
            found.append(("responded_at", "before created_at"))
        return found

    @property
    def point(self) -> Point:
        return POINTS[(self.dag_id, self.task_id)]

    @property
    def reason(self) -> str | None:
        """The reviewer's reason: the point's own reason param."""
        value = self.params_input.get(next(iter(self.point.params)))
        return value if isinstance(value, str) and value.strip() else None

    def index_text(self) -> str:
        """subject + request + proposal + reason: what the no-graph baselines search."""
        parts = (self.subject, self.request, self.proposal, self.reason)
        return "\n".join(p for p in parts if p)


class NewCase(BaseModel):
    """One new case with graded relevance (`cases_<area>.json`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    split: Literal["dev", "test"]
    kind: str = Field(min_length=1)
    dag_id: str
    task_id: str
    query: str = Field(min_length=1)
    relevant: dict[str, Literal[1, 2]] = Field(min_length=1)

    def problems(self) -> list[tuple[str, str]]:
        """(field, reason) of each way the case is unusable."""
        found = []
        if (self.dag_id, self.task_id) not in POINTS:
            found.append(("task_id", f"unknown decision point {self.dag_id}/{self.task_id}"))
        if not self.query.strip():
            found.append(("query", "blank"))
        return found


@dataclass
class Corpus:
    """The validated corpus; `grades(case)` is its relevance (implied 1 for the rest of its kind)."""

    past: list[PastDecision]
    cases: list[NewCase]
    files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {p.id: p for p in self.past}

    def grades(self, case: NewCase) -> dict[str, int]:
        """past id -> relevance grade (2 or 1) for the case; every past decision of its kind is >= 1."""
        found = {p.id: 1 for p in self.past if p.kind == case.kind}
        found.update(case.relevant)
        return found

    def split(self, name: str) -> list[NewCase]:
        return [c for c in self.cases if c.split == name]

    def summary(self) -> str:
        kinds = {p.kind for p in self.past}
        points = {(p.dag_id, p.task_id) for p in self.past}
        splits = Counter(c.split for c in self.cases)
        return (
            f"{len(self.past)} past decisions of {len(kinds)} kinds at {len(points)} decision points, "
            f"{len(self.cases)} new cases ({splits['dev']} dev, {splits['test']} test)"
        )


def load_corpus(folder: Path | str = CORPUS_DIR) -> Corpus:
    """Read and validate every `past_*.json` and `cases_*.json` in `folder`.

    Raises `CorpusError` listing every problem as `file: id: field: reason` (all files are read
    first, so one run shows them all), or when the folder has no past decisions or no cases.
    """
    folder = Path(folder)
    problems: list[str] = []
    past: list[PastDecision] = []
    cases: list[NewCase] = []
    files = sorted(folder.glob("past_*.json")) + sorted(folder.glob("cases_*.json"))
    seen: dict[str, str] = {}
    """"past:<id>" or "case:<id>" -> the file it was first read from."""
    for path in files:
        is_past = path.name.startswith("past_")
        model: type[PastDecision] | type[NewCase] = PastDecision if is_past else NewCase
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: (file): (json): {exc}")
            continue
        if not isinstance(items, list):
            problems.append(f"{path.name}: (file): (top level): expected a JSON list")
            continue
        for n, item in enumerate(items):
            ident = item.get("id") if isinstance(item, dict) else None
            name = f"{path.name}: {ident or f'item {n}'}"
            try:
                parsed = model.model_validate(item)
            except ValidationError as exc:
                for error in exc.errors():
                    loc = ".".join(str(x) for x in error["loc"]) or "(record)"
                    problems.append(f"{name}: {loc}: {error['msg']}")
                continue
            wrong = parsed.problems()
            if wrong:
                problems += [f"{name}: {where}: {reason}" for where, reason in wrong]
                continue
            slot = f"{'past' if is_past else 'case'}:{parsed.id}"
            if slot in seen:
                problems.append(f"{name}: id: duplicate (also in {seen[slot]})")
                continue
            seen[slot] = path.name
            if isinstance(parsed, PastDecision):
                past.append(parsed)
            else:
                cases.append(parsed)
    known = {p.id for p in past}
    kinds = {p.kind for p in past}
    for case in cases:
        name = f"{seen[f'case:{case.id}']}: {case.id}"
        for past_id in case.relevant:
            if past_id not in known:
                problems.append(f"{name}: relevant.{past_id}: names no past decision")
        if case.kind not in kinds:
            problems.append(f"{name}: kind: no past decision of kind {case.kind!r}")
    if not past or not cases:
        problems.append(f"{folder}: (folder): no past_*.json decisions or no cases_*.json cases")
    if problems:
        raise CorpusError(problems)
    return Corpus(past, cases, [p.name for p in files])


# --- Airflow records -----------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


@dataclass
class CorpusRecords(Records):
    """What an Airflow 3.3 REST API v2 returns for the corpus's past decisions (`Records`), and
    `ids`: (dag_id, run_id) -> corpus id of the past decision that run asked."""

    ids: dict[tuple[str, str], str] = field(default_factory=dict)


def airflow_records(corpus: Corpus) -> CorpusRecords:
    """The DAGs, tasks, runs, task instances, HITL details and XComs of every past decision."""
    records = CorpusRecords()
    for where in sorted({(p.dag_id, p.task_id) for p in corpus.past}):
        point = POINTS[where]
        records.dags.append(_dag(point))
        records.tasks[point.dag_id] = _tasks(point)
    for past in sorted(corpus.past, key=lambda p: (p.created_at, p.id)):
        _add_run(records, past)
    latest = max(p.responded_at for p in corpus.past)
    records.server_time = latest + timedelta(hours=1)
    return records


def _dag_version(point: Point) -> dict[str, Any]:
    version = version_id(f"{AIRFLOW_URL}/{point.dag_id}")
    return dag_version_record(point.dag_id, version_id=version, created_at="2026-01-05T08:00:00Z")


def _dag(point: Point) -> dict[str, Any]:
    return dag_record(
        point.dag_id,
        description=point.description,
        schedule=point.schedule,
        timetable_description="Never, external triggers only" if point.schedule is None else "Monthly",
        tags=("hitl", point.owners[0]),
        owners=point.owners,
        parsed_at="2026-01-05T08:00:00Z",
        parse_duration=0.38,
    )


def _tasks(point: Point) -> list[dict[str, Any]]:
    found = []
    for task_id, operator, downstream in point.tasks:
        hitl = task_id == point.task_id
        found.append(
            task_record(
                task_id,
                operator=operator,
                downstream=downstream,
                owner=point.owners[0],
                hitl=hitl,
                ui_color="#10b981" if hitl else "#ffefeb",
                template_fields=["subject", "body", "params"] if hitl else ["templates_dict", "op_args"],
                class_name=operator if hitl else "_PythonDecoratedOperator",
            )
        )
    return found


def _run_id(records: CorpusRecords, past: PastDecision) -> str:
    prefix = "scheduled" if past.point.schedule else "manual"
    start = past.created_at - RUN_LEAD
    run_id = f"{prefix}__{start.isoformat()}"
    while (past.dag_id, run_id) in records.ids:  # two decisions asked in the same second
        start += timedelta(seconds=1)
        run_id = f"{prefix}__{start.isoformat()}"
    return run_id


def body_of(past: PastDecision) -> str:
    """The HITL body the reviewer saw: the request and the AI's proposal (the example DAG's style)."""
    point = past.point
    body = f"**{point.request_label}:**\n\n{past.request}"
    if past.proposal:
        body += f"\n\n**{point.proposal_label}** ({LLM}):\n\n{past.proposal}"
    return body


def _add_run(records: CorpusRecords, past: PastDecision) -> None:
    point = past.point
    run_id = _run_id(records, past)
    records.ids[(past.dag_id, run_id)] = past.id
    created, responded = past.created_at, past.responded_at
    start = created - RUN_LEAD
    end = responded + timedelta(seconds=30)
    version = _dag_version(point)
    scheduled = point.schedule is not None
    records.runs.append(
        {
            "dag_run_id": run_id,
            "dag_id": past.dag_id,
            "logical_date": _iso(start) if scheduled else None,
            "queued_at": _iso(start - timedelta(seconds=2)),
            "start_date": _iso(start),
            "end_date": _iso(end),
            "duration": (end - start).total_seconds(),
            "data_interval_start": _iso(start) if scheduled else None,
            "data_interval_end": _iso(start) if scheduled else None,
            "run_after": _iso(start),
            "last_scheduling_decision": _iso(end),
            "run_type": "scheduled" if scheduled else "manual",
            "state": "success",
            "triggered_by": "timetable" if scheduled else "rest_api",
            "triggering_user_name": None if scheduled else "admin",
            "conf": {},
            "note": None,
            "dag_versions": [dict(version)],
            "bundle_version": None,
            "dag_display_name": past.dag_id,
            "partition_key": None,
            "partition_date": None,
        }
    )
    fetch, draft = point.before
    times: dict[str, tuple[datetime | None, datetime | None, str | None]] = {
        fetch: (start + timedelta(seconds=5), start + timedelta(seconds=9), "success"),
        draft: (start + timedelta(seconds=10), created - timedelta(seconds=4), "success"),
        point.task_id: (created - timedelta(seconds=1), responded + timedelta(seconds=2), "success"),
    }
    skipped = _skipped(point, past.chosen)
    for task_id in point.after:
        if task_id in skipped:
            times[task_id] = (None, None, "skipped")
        else:
            times[task_id] = (responded + timedelta(seconds=8), responded + timedelta(seconds=20), "success")
    review_ti: dict[str, Any] = {}
    for k, (task_id, operator, _) in enumerate(point.tasks):
        began, ended, state = times[task_id]
        ti = task_instance_record(
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"{AIRFLOW_URL}/{past.dag_id}/{run_id}/{task_id}")),
            task_id=task_id,
            dag_id=past.dag_id,
            run_id=run_id,
            logical_date=_iso(start) if scheduled else None,
            run_after=_iso(start) or "",
            started=began,
            ended=ended,
            state=state,
            priority_weight=len(point.tasks) - k,
            operator=operator
            if operator.startswith("HITL") or operator == "ApprovalOperator"
            else "_PythonDecoratedOperator",
            operator_name=operator,
            pid=4100 + k if began else None,
            dag_version=version,
        )
        records.task_instances.append(ti)
        if task_id == point.task_id:
            review_ti = ti
    records.xcoms[(past.dag_id, run_id, fetch)] = {"request": past.request}
    if past.proposal is not None:
        records.xcoms[(past.dag_id, run_id, draft)] = {"draft": past.proposal, "model": LLM}
    params_input: dict[str, Any] = {name: None for name in point.params}
    params_input.update(past.params_input)
    records.hitl_details.append(
        {
            "task_instance": copy.deepcopy(review_ti),
            "options": list(past.options),
            "subject": past.subject,
            "body": body_of(past),
            "defaults": list(point.defaults),
            "multiple": len(past.chosen) > 1,
            "params": {
                name: {
                    "value": None,
                    "description": text,
                    "schema": {"type": ["null", "string"]},
                    "source": "task",
                }
                for name, text in point.params.items()
            },
            "assigned_users": [],
            "created_at": _iso(created),
            "responded_by_user": {"id": past.reviewer, "name": past.reviewer} if past.reviewer else None,
            "responded_at": _iso(responded),
            "chosen_options": list(past.chosen),
            "params_input": params_input,
            "response_received": True,
        }
    )


def _skipped(point: Point, chosen: list[str]) -> set[str]:
    """Downstream tasks a choice skips: the branches not taken, or everything after a rejection."""
    if point.operator == "HITLBranchOperator":
        return set(point.after) - set(chosen)
    if point.operator == "ApprovalOperator" and "Reject" in chosen:
        return set(point.after)
    return set()


def corpus_source(records: CorpusRecords) -> MemorySource:
    """The sync's `Source` over the records: what an Airflow would answer, without HTTP."""
    return MemorySource.over(records, url=AIRFLOW_URL)


@dataclass
class Ingested:
    """What `ingest` wrote; `ids` maps a decision's (dag_id, run_id) back to its corpus id."""

    ids: dict[tuple[str, str], str]
    sync: SyncReport
    embedded: EmbedReport
    seconds: float


def ingest(store: GraphStore, embedder: Embedder, corpus: Corpus) -> Ingested:
    """Sync the corpus's records into `store` (schema must exist) and embed the decisions.

    Raises `CorpusError` when the sync rejected any record (the message names it and why).
    """
    import time

    began = time.perf_counter()
    records = airflow_records(corpus)
    report = Sync(corpus_source(records), store).run(full=True)
    if report.rejected:
        raise CorpusError([f"{r.record}: {r.field}: {r.reason}" for r in report.rejected])
    embedded = embed_pending(store, embedder)
    return Ingested(records.ids, report, embedded, time.perf_counter() - began)
