"""A built-in, realistic scenario: `contextgraph demo` builds a graph without an Airflow.

Sixty reviews of the example DAG `ai_support_ticket_system` (fetch_ticket → draft_response →
review_response (HITL) → act_on_decision) over six weeks: four reviewers (one answering from
Slack), approvals, overrides of wrong AI drafts, escalations, four reviews that timed out (the
default, *Escalate to CRE*, was taken) and two still waiting. The records are shaped like those
the Airflow 3.3 REST API v2 returns and go through the real mapping and `Sync` (served by
`contextgraph.ingest.source.memory.MemorySource`), so the demo graph is exactly what
`contextgraph ingest` would write for the same Airflow. Everything is deterministic: a second
load writes nothing.

From the 31st review on, reviewers were shown precedents: those decisions carry `INFORMED_BY`
edges to the earlier decisions of the same kind of ticket (what an agent records when it
consults precedent).
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from contextgraph import model as m
from contextgraph.config import Settings, default_store_path
from contextgraph.ingest.mapping import informed_by_edges
from contextgraph.ingest.source.memory import MemorySource
from contextgraph.ingest.sync import Sync, SyncOptions, SyncReport
from contextgraph.store import GraphStore

DAG_ID = "ai_support_ticket_system"
REVIEW_TASK = "review_response"
DRAFT_TASK = "draft_response"
APPROVE, MANUAL, ESCALATE = "Approve AI Response", "Respond Manually", "Escalate to CRE"
OPTIONS = [APPROVE, MANUAL, ESCALATE]
TIMEOUT_REASON = "No reviewer answered before the review timeout; escalated by default."
AIRFLOW_URL = "http://airflow.demo"
LLM = "openai:gpt-4o-mini"
START = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
DECISIONS = 60
INFORMED_FROM = 30
"""Reviews from this index on were shown precedents (INFORMED_BY edges)."""
TIMED_OUT = frozenset({11, 23, 38, 51})
PENDING = frozenset({58, 59})
VERSION_2_FROM = 40
"""Reviews from this index on ran under DAG version 2 (`task_instance.dag_version`)."""

#: A decision with precedents (INFORMED_BY), as in the `contextgraph/store/cypher/browser/` examples.
TRACE_EXAMPLE = "ai_support_ticket_system|demo__2026-11-08T14:34:00Z|review_response|-1|1"

CYPHER_EXAMPLE = "'MATCH (d:Decision)-[:CHOSE]->(o:Option) RETURN o.name AS option, count(*) AS n'"

#: The scenario's data (tasks, reviewers, customers, kinds of ticket and how reviewers settled
#: them), shipped in the package as ``demo/scenario.json``.
_DATA: dict[str, Any] = json.loads(
    resources.files("contextgraph").joinpath("demo/scenario.json").read_text(encoding="utf-8")
)

#: The new ticket `contextgraph demo` asks precedent for.
NEW_TICKET: dict[str, str] = _DATA["new_ticket"]
TASKS: list[dict[str, Any]] = _DATA["tasks"]
REVIEWERS: list[dict[str, str]] = _DATA["reviewers"]
SLACK_BRIDGE: dict[str, str] = _DATA["slack_bridge"]
SLACK_REVIEWER: dict[str, str] = _DATA["slack_reviewer"]
CUSTOMERS: list[str] = _DATA["customers"]


@dataclass(frozen=True)
class Outcome:
    """One way reviewers settled a kind of ticket: the option, how often, and their reasons."""

    option: str
    weight: float
    reasons: tuple[str, ...]
    reply: str | None = None
    """The reviewer's own reply, when they chose to respond manually."""


@dataclass(frozen=True)
class Kind:
    """A kind of support ticket, the AI's usual draft for it, and how reviewers judged it."""

    name: str
    subject: str
    body: str
    draft: str
    outcomes: tuple[Outcome, ...]
    weight: float = 1.0


KINDS: tuple[Kind, ...] = tuple(
    Kind(
        name=k["name"],
        subject=k["subject"],
        body=k["body"],
        draft=k["draft"],
        outcomes=tuple(
            Outcome(o["option"], o["weight"], tuple(o["reasons"]), o.get("reply")) for o in k["outcomes"]
        ),
        weight=k.get("weight", 1.0),
    )
    for k in _DATA["kinds"]
)
assert all(o.option in OPTIONS for k in KINDS for o in k.outcomes), "demo/scenario.json: unknown option"


@dataclass
class Scenario:
    """The raw Airflow records of the demo, as the REST API v2 would return them."""

    dag: dict[str, Any]
    tasks: list[dict[str, Any]]
    runs: list[dict[str, Any]] = field(default_factory=list)
    task_instances: list[dict[str, Any]] = field(default_factory=list)
    hitl_details: list[dict[str, Any]] = field(default_factory=list)
    xcoms: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    """run_id → kind of ticket (what decides which earlier decisions informed a later one)."""
    server_time: datetime = START


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def scenario(decisions: int = DECISIONS) -> Scenario:
    """The demo's records; the same on every call."""
    rng = random.Random(20261001)
    found = Scenario(
        dag={
            "dag_id": DAG_ID,
            "description": "AI drafts support replies; a human reviews each one (HITL).",
            "is_paused": False,
            "tags": [{"name": "contextgraph"}, {"name": "hitl"}, {"name": "example"}],
            "owners": ["support"],
            "timetable_summary": None,
        },
        tasks=copy.deepcopy(TASKS),
    )
    for i in range(decisions):
        kind = rng.choices(KINDS, weights=[k.weight for k in KINDS])[0]
        customer = rng.choice(CUSTOMERS)
        outcome = rng.choices(kind.outcomes, weights=[o.weight for o in kind.outcomes])[0]
        reason = rng.choice(outcome.reasons)
        reviewer = rng.choice(REVIEWERS)
        by_slack = rng.random() < 0.12
        created = START + timedelta(hours=17 * i, minutes=rng.randrange(0, 50))
        answered_after = timedelta(minutes=rng.randrange(4, 95))
        _add_review(found, i, kind, customer, outcome, reason, reviewer, by_slack, created, answered_after)
        found.server_time = max(found.server_time, created + timedelta(days=1, hours=1))
    return found


def _add_review(
    found: Scenario,
    i: int,
    kind: Kind,
    customer: str,
    outcome: Outcome,
    reason: str,
    reviewer: dict[str, str],
    by_slack: bool,
    created: datetime,
    answered_after: timedelta,
) -> None:
    run_id = f"demo__{_iso(created - timedelta(minutes=2))}"
    ticket = {
        "ticket_id": f"T-{2001 + i}",
        "customer": customer,
        "subject": kind.subject,
        "body": kind.body,
    }
    draft = {"ticket_id": ticket["ticket_id"], "draft": f"Hello {customer},\n\n{kind.draft}", "model": LLM}
    pending, timed_out = i in PENDING, i in TIMED_OUT
    responded = None if pending else created + (timedelta(hours=24) if timed_out else answered_after)
    found.kinds[run_id] = kind.name
    found.xcoms[(DAG_ID, run_id, "fetch_ticket")] = ticket
    found.xcoms[(DAG_ID, run_id, DRAFT_TASK)] = draft
    found.runs.append(
        {
            "dag_id": DAG_ID,
            "dag_run_id": run_id,
            "state": "running" if pending else "success",
            "run_type": "manual",
            "logical_date": _iso(created - timedelta(minutes=2)),
            "start_date": _iso(created - timedelta(minutes=2)),
            "end_date": None if responded is None else _iso(responded + timedelta(seconds=20)),
            "conf": ticket,
        }
    )
    starts = {
        "fetch_ticket": created - timedelta(seconds=110),
        DRAFT_TASK: created - timedelta(seconds=95),
        REVIEW_TASK: created - timedelta(seconds=3),
        "act_on_decision": None if responded is None else responded + timedelta(seconds=8),
    }
    ends = {
        "fetch_ticket": created - timedelta(seconds=100),
        DRAFT_TASK: created - timedelta(seconds=60),
        REVIEW_TASK: None if responded is None else responded + timedelta(seconds=4),
        "act_on_decision": None if responded is None else responded + timedelta(seconds=12),
    }
    for task in TASKS:
        task_id = task["task_id"]
        start, end = starts[task_id], ends[task_id]
        state = "success" if end else ("awaiting_input" if task_id == REVIEW_TASK else None)
        found.task_instances.append(
            {
                "dag_id": DAG_ID,
                "dag_run_id": run_id,
                "task_id": task_id,
                "map_index": -1,
                "try_number": 1 if start else 0,
                "state": state,
                "operator_name": task["operator_name"],
                "start_date": _iso(start),
                "end_date": _iso(end),
                "duration": (end - start).total_seconds() if start and end else None,
                # The DAG's code changed once: the later reviews ran under version 2.
                "dag_version": {
                    "version_number": 1 if i < VERSION_2_FROM else 2,
                    "bundle_name": "dags-folder",
                    "bundle_version": None,
                    "dag_id": DAG_ID,
                },
            }
        )
    review_ti = next(t for t in found.task_instances[-4:] if t["task_id"] == REVIEW_TASK)
    chosen: list[str]
    params_input: dict[str, Any]
    user: dict[str, str] | None
    if pending:
        chosen, params_input, user = [], {}, None
    elif timed_out:
        chosen, params_input, user = [ESCALATE], {"reason": TIMEOUT_REASON, "manual_response": None}, None
    else:
        chosen = [outcome.option]
        params_input = {"reason": reason, "manual_response": outcome.reply}
        user = SLACK_BRIDGE if by_slack else reviewer
        if by_slack:
            params_input["_contextgraph_reviewer"] = dict(SLACK_REVIEWER)
    found.hitl_details.append(
        {
            "task_instance": dict(review_ti),
            "options": list(OPTIONS),
            "subject": f"Review the AI reply to ticket {ticket['ticket_id']}: {kind.subject}",
            "body": (
                f"**Customer:** {customer}\n\n**Ticket:**\n\n{kind.body}\n\n"
                f"**AI draft** ({LLM}):\n\n{draft['draft']}"
            ),
            "defaults": [ESCALATE],
            "multiple": False,
            "params": {
                "reason": {
                    "value": TIMEOUT_REASON,
                    "schema": {"type": "string", "minLength": 1},
                    "description": "Why you chose this option (kept as precedent for future decisions).",
                },
                "manual_response": {
                    "value": None,
                    "schema": {"type": ["null", "string"]},
                    "description": "Your reply to the customer, if you chose to respond manually.",
                },
            },
            "assigned_users": [],
            "created_at": _iso(created),
            "responded_at": _iso(responded),
            "responded_by_user": user,
            "chosen_options": chosen,
            "params_input": params_input,
            "response_received": not pending,
        }
    )


def scenario_source(records: Scenario) -> MemorySource:
    """The sync's `Source` over the scenario's records: what an Airflow would answer, without HTTP."""
    return MemorySource(
        dags=[records.dag],
        tasks={records.dag["dag_id"]: records.tasks},
        dag_runs=records.runs,
        task_instances=records.task_instances,
        hitl_details=records.hitl_details,
        xcoms=records.xcoms,
        url=AIRFLOW_URL,
        server_time=records.server_time,
    )


def informed_by(records: Scenario, per_decision: int = 3) -> list[m.InformedBy]:
    """Precedents shown to reviewers from INFORMED_FROM on: the latest answered decisions of the
    same kind of ticket before each one."""
    edges: list[m.InformedBy] = []
    answered: dict[str, list[tuple[str, datetime]]] = {}
    for i, detail in enumerate(records.hitl_details):
        ti = detail["task_instance"]
        key = m.make_key(DAG_ID, ti["dag_run_id"], REVIEW_TASK, -1, 1)
        kind = records.kinds[ti["dag_run_id"]]
        created = datetime.fromisoformat(detail["created_at"])
        earlier = answered.setdefault(kind, [])
        if i >= INFORMED_FROM:
            shown = reversed(earlier[-per_decision:])
            ranked = [
                (p, round(0.92 - 0.07 * rank + 0.01 * (i % 3), 3)) for rank, (p, _) in enumerate(shown, 1)
            ]
            edges.extend(informed_by_edges(key, ranked, created))
        if detail["response_received"] and detail["responded_by_user"] is not None:
            earlier.append((key, created))
    return edges


@dataclass
class LoadReport:
    sync: SyncReport
    informed_by_written: int
    decisions: int


def load(store: GraphStore, decisions: int = DECISIONS) -> LoadReport:
    """Write the scenario into the store (its schema must exist) through the real mapping and sync."""
    records = scenario(decisions)
    options = SyncOptions(proposal_tasks={f"{DAG_ID}.{REVIEW_TASK}": [DRAFT_TASK]})
    report = Sync(scenario_source(records), store, options).run(full=True)
    written = store.write(m.GraphBatch(edges=list(informed_by(records)))).written
    return LoadReport(report, written, len(records.hitl_details))


# --- the guided tour: `contextgraph demo` -------------------------------------------------------


@dataclass
class Answer:
    """What precedent search said about the new ticket."""

    ticket: dict[str, str]
    precedents: list[Any]
    """`contextgraph.retrieval.precedents.Precedent`s, best first."""
    embedder: str | None
    embedded: int


def ask(store: GraphStore, settings: Settings, ticket: dict[str, str] | None = None, k: int = 5) -> Answer:
    """Embed the decisions (what ingest's embed step does) and find precedents for a new ticket."""
    from contextgraph.ingest.embeddings import embed_pending, embedder_from_settings
    from contextgraph.retrieval.precedents import find_similar_decisions

    ticket = ticket or NEW_TICKET
    embedder = embedder_from_settings(settings)
    embedded = embed_pending(store, embedder).embedded
    text = f"{ticket['subject']}\n{ticket['body']}"
    found = find_similar_decisions(store, embedder, text, dag_id=DAG_ID, task_id=REVIEW_TASK, k=k)
    return Answer(ticket, list(found), embedder.name, embedded)


def verdict_of(precedents: list[Any]) -> tuple[str, int] | None:
    """The option most precedents chose, and how many chose it."""
    counts: dict[str, int] = {}
    for p in precedents:
        for option in p.chosen_options:
            counts[option] = counts.get(option, 0) + 1
    if not counts:
        return None
    best = max(counts.items(), key=lambda item: (item[1], item[0] == MANUAL))
    return best


def default_path() -> Path:
    """The demo's own embedded store, next to the default store (never the user's real graph)."""
    return default_store_path().with_name("demo.lbdb")


def tour(store: GraphStore, settings: Settings, console: Console, *, where: str, cli_prefix: str) -> Answer:
    """Load the scenario, ask for precedents for a new ticket and print the answer and next steps."""
    started = time.monotonic()
    store.ensure_schema()
    loaded = load(store)
    sync = loaded.sync
    console.print(
        f"[bold]1. The graph[/bold]: {loaded.decisions} HITL reviews of [cyan]{DAG_ID}[/cyan] "
        f"(fetch_ticket → draft_response → review_response → act_on_decision), read as Airflow records "
        f"through the real mapping and sync into {where}: "
        f"{sync.written + loaded.informed_by_written} nodes and relationships written, "
        f"{sum(sync.unchanged.values())} already there.\n"
    )
    console.print(
        f"[bold]2. A new ticket[/bold] arrives and the AI drafts a reply. Before a human reviews "
        f"it, the agent asks: how did people decide cases like this, and why?\n"
        f"   [italic]{NEW_TICKET['subject']}[/italic] — {NEW_TICKET['body']}\n"
    )
    answer = ask(store, settings)
    table = Table(
        "#",
        "score",
        "ticket · answered · by",
        "chose",
        "why",
        title=f"3. Precedents ({answer.embedder}; words + meaning, fused ranks)",
        title_justify="left",
        show_lines=True,
    )
    for rank, p in enumerate(answer.precedents, start=1):
        when = p.responded_at.strftime("%Y-%m-%d") if p.responded_at else ""
        table.add_row(
            str(rank),
            f"{p.score:.3f}",
            f"{p.subject.split(': ', 1)[-1]}\n[dim]{when} · {p.reviewer or ''}[/dim]",
            " / ".join(p.chosen_options),
            p.reason or "",
        )
    console.print(table)
    best = verdict_of(answer.precedents)
    if best:
        console.print(
            f"[bold]Precedent:[/bold] {best[1]} of {len(answer.precedents)} similar cases were settled "
            f"with [bold green]{best[0]}[/bold green] — the reasons above say why, so the reviewer (or "
            "the agent) knows what to check in the AI draft."
        )
    top = answer.precedents[0].key if answer.precedents else TRACE_EXAMPLE
    cli_prefix = escape(cli_prefix)
    console.print(
        f"\n[bold]Try next[/bold] ({time.monotonic() - started:.1f} s so far):\n"
        f"  {cli_prefix} trace '{top}'            [dim]# one decision in context[/dim]\n"
        f"  {cli_prefix} trace '{top}' --png trace.png   [dim]# …and as a picture[/dim]\n"
        f"  {cli_prefix} similar 'customer double charged, wants refund'\n"
        f"  {cli_prefix} cypher {escape(CYPHER_EXAMPLE)}\n"
        f"  {cli_prefix} export --format graphml -o demo.graphml   [dim]# Gephi, yEd[/dim]\n"
        f"  {cli_prefix} stats\n"
        "  contextgraph browser          [dim]# queries and style for Neo4j Browser[/dim]\n"
        "  contextgraph demo --neo4j     [dim]# the same scenario in the Neo4j of NEO4J_URI[/dim]",
        soft_wrap=True,
    )
    return answer
