"""Raw Airflow REST API records → typed graph batches. Pure functions: no I/O here.

A record that cannot become graph data raises `InvalidRecordError` naming the record and the
field; the sync reports it and goes on with the rest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import networkx as nx
from pydantic import ValidationError
from rapidfuzz.distance import Levenshtein

from contextgraph import model as m
from contextgraph.errors import InvalidRecordError

#: Param names that hold the reviewer's "why", in the order they are looked for (compared without
#: case, spaces and dashes as underscores). `CONTEXTGRAPH_REASON_PARAMS` replaces them per decision
#: point or for all.
REASON_KEYS = (
    "reason",
    "reasons",
    "comments",
    "comment",
    "feedback",
    "rationale",
    "justification",
    "note",
    "notes",
    "explanation",
    "why",
    "remarks",
    "remark",
    "review_comment",
    "review_comments",
    "reviewer_comment",
    "reviewer_comments",
    "reviewer_notes",
    "review_notes",
)
#: Params that hold the reviewer's own answer (a rewritten draft), never taken for the reason.
ANSWER_KEYS = ("manual_response", "output", "response", "answer", "edited_output", "rewrite")
#: Keys of a dict-valued XCom that hold the proposal's text, in the order they are looked for.
PROPOSAL_TEXT_KEYS = ("draft", "proposal", "response", "answer", "text", "content", "output", "summary")
#: Task-instance states in which a HITL task may still get its answer (None: not told).
STILL_WAITING_STATES = frozenset(
    {
        None,
        "none",
        "awaiting_input",
        "deferred",
        "running",
        "queued",
        "scheduled",
        "up_for_retry",
        "up_for_reschedule",
        "restarting",
    }
)
#: What became of a review never answered, by the state its task instance ended in.
CLOSED_STATUS: dict[str, m.DecisionStatus] = {
    "failed": "expired",
    "upstream_failed": "failed",
    "skipped": "skipped",
}
#: The longest proposal or answer text kept in a property (characters); longer ones are cut.
TEXT_LIMIT = 20_000
#: An XCom value whose JSON is longer than this (characters) is kept as its bounded text only.
VALUE_LIMIT = 64_000
#: Task-instance states of a branch that ran (or is about to) after a branching decision.
BRANCH_RAN_STATES = frozenset(
    {
        "success",
        "running",
        "queued",
        "scheduled",
        "failed",
        "up_for_retry",
        "up_for_reschedule",
        "deferred",
        "awaiting_input",
    }
)
#: params_input key under which the Slack bridge keeps the real reviewer's identity.
SLACK_IDENTITY_KEY = "_contextgraph_reviewer"


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(value: Any) -> Any:
    """Make any JSON value storable: lone surrogates (invalid UTF-16 halves) become U+FFFD.

    Almost every record has none: one C-speed serialisation proves it (a lone surrogate cannot be
    encoded as UTF-8), and the record is walked only when that fails.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError):
        return _clean(value)
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _name(kind: str, record: Mapping[str, Any], *fields: str) -> str:
    ident = "/".join(str(record.get(f)) for f in fields if record.get(f) is not None)
    return f"{kind} {ident}" if ident else f"{kind} (no id)"


def _require_dict(record: Any, kind: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise InvalidRecordError(
            f"{kind} record", "(record)", f"expected an object, got {type(record).__name__}"
        )
    return record


N = TypeVar("N", bound=m.Node)
F = TypeVar("F", bound=Callable[..., Any])


def rejecting(kind: str) -> Callable[[F], F]:
    """Any unexpected shape inside a mapper becomes an InvalidRecordError naming the record."""

    def decorate(map_one: F) -> F:
        @functools.wraps(map_one)
        def wrapper(record: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return map_one(record, *args, **kwargs)
            except InvalidRecordError:
                raise
            except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
                name = (
                    _name(kind, record, "dag_id", "dag_run_id", "task_id")
                    if isinstance(record, dict)
                    else kind
                )
                reason = (
                    "nested too deeply to store (about 1,000 levels or more)"
                    if isinstance(exc, RecursionError)
                    else f"unexpected shape: {type(exc).__name__}: {exc}"
                )
                raise InvalidRecordError(name, "(record)", reason) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def _node(node_type: type[N], data: dict[str, Any], name: str) -> N:
    node = m.node_from_record(node_type.label, data, name=name)
    assert isinstance(node, node_type)
    return node


# --- DAGs and tasks ------------------------------------------------------------------------------


def dag_tags(record: Any) -> list[str]:
    """The tag names of a raw DAG record (`tags` is a list of `{name, dag_id}` objects in the REST API
    v2, of plain names in some older shapes); [] when it has none or they are malformed."""
    tags = record.get("tags") if isinstance(record, dict) else None
    if not isinstance(tags, list):
        return []
    names = [t.get("name") if isinstance(t, dict) else t for t in tags]
    return [t for t in names if isinstance(t, str)]


@rejecting("DAG")
def map_dag(record: dict[str, Any], *, tracked: bool = False) -> m.Dag:
    """A `/dags` record as a Dag node; `tracked`: the sync reads its runs and decisions."""
    record = clean(_require_dict(record, "DAG"))
    name = _name("DAG", record, "dag_id")
    tags = [t.get("name") if isinstance(t, dict) else t for t in _list(record.get("tags"), name, "tags")]
    return _node(
        m.Dag,
        {
            "dag_id": record.get("dag_id"),
            "description": record.get("description"),
            "is_paused": record.get("is_paused"),
            "tags": [t for t in tags if isinstance(t, str)],
            "owners": _list(record.get("owners"), name, "owners"),
            "schedule": record.get("timetable_summary"),
            "tracked": tracked,
        },
        name,
    )


# --- assets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetLinks:
    """One `/assets` record: its node, the tasks that produce it and the DAGs scheduled on it."""

    asset: m.Asset
    producers: tuple[tuple[str, str], ...]
    """`(dag_id, task_id)` of each task with the asset among its outlets (`producing_tasks`)."""
    scheduled: tuple[str, ...]
    """dag_id of each DAG whose schedule names the asset (`scheduled_dags`)."""

    @property
    def dag_ids(self) -> set[str]:
        """Every DAG the asset touches, producing or scheduled."""
        return {dag for dag, _ in self.producers} | set(self.scheduled)

    def batch(self, producing_dags: Container[str], scheduled_dags: Container[str]) -> m.GraphBatch:
        """The Asset node, PRODUCES from its producing tasks in `producing_dags` (those whose tasks are
        in the graph) and TRIGGERS to the DAGs in `scheduled_dags` (those with a Dag node)."""
        batch = m.GraphBatch(nodes=[self.asset])
        for dag_id, task_id in self.producers:
            if dag_id in producing_dags:
                batch.add(m.Produces(src=m.Task.key_for(dag_id, task_id), dst=self.asset.key))
        for dag_id in self.scheduled:
            if dag_id in scheduled_dags:
                batch.add(m.Triggers(src=self.asset.key, dst=m.Dag.key_for(dag_id)))
        return batch


def map_asset(record: Any) -> AssetLinks:
    """A raw `GET /api/v2/assets` record (Airflow 3.1+: `name`, `uri`, `group`, `extra`, `aliases`,
    `producing_tasks`, `scheduled_dags`, `last_asset_event` …) as an `AssetLinks`.

    Raises InvalidRecordError naming the asset and the field when a required field is missing or a
    reference list is not a list of `{dag_id[, task_id]}` objects.
    """
    record = clean(_require_dict(record, "asset"))
    name = _name("asset", record, "name") if record.get("name") else _name("asset", record, "uri")
    producers = tuple(
        (ref["dag_id"], ref["task_id"])
        for ref in _references(record.get("producing_tasks"), name, "producing_tasks", ("dag_id", "task_id"))
    )
    scheduled = tuple(
        ref["dag_id"]
        for ref in _references(record.get("scheduled_dags"), name, "scheduled_dags", ("dag_id",))
    )
    aliases = [
        a.get("name") if isinstance(a, dict) else a for a in _list(record.get("aliases"), name, "aliases")
    ]
    last_event = record.get("last_asset_event")
    extra = record.get("extra")
    asset = _node(
        m.Asset,
        {
            "name": record.get("name"),
            "uri": record.get("uri"),
            "group": record.get("group"),
            "asset_id": record.get("id"),
            "extra": extra if isinstance(extra, dict) else {},
            "aliases": sorted({a for a in aliases if isinstance(a, str)}),
            "last_event_at": last_event.get("timestamp") if isinstance(last_event, dict) else None,
        },
        name,
    )
    return AssetLinks(asset, tuple(sorted(set(producers))), tuple(sorted(set(scheduled))))


def _references(value: Any, name: str, field_name: str, keys: tuple[str, ...]) -> list[dict[str, str]]:
    refs = _list(value, name, field_name)
    for i, ref in enumerate(refs):
        for key in keys:
            if not isinstance(ref, dict) or not isinstance(ref.get(key), str) or not ref[key]:
                raise InvalidRecordError(name, f"{field_name}[{i}].{key}", "missing or not a text")
    return refs


@dataclass
class DagShape:
    """A DAG's task topology (networkx), for the upstream context of its decision points."""

    dag_id: str
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    decision_points: set[str] = field(default_factory=set)
    """The tasks of the latest version that ask a human (HITL operators, or seen asking)."""

    @classmethod
    def from_edges(
        cls, dag_id: str, downstream: Mapping[str, Iterable[str]], decision_points: Iterable[str] = ()
    ) -> DagShape:
        shape = cls(dag_id, decision_points=set(decision_points))
        for task_id, children in downstream.items():
            shape.graph.add_node(task_id)
            shape.graph.add_edges_from((task_id, child) for child in children)
        return shape

    def upstream(self, task_id: str) -> list[str]:
        """Every task that, transitively, feeds `task_id`, nearest first."""
        if task_id not in self.graph:
            return []
        reverse = self.graph.reverse(copy=False)
        distances = nx.single_source_shortest_path_length(reverse, task_id)
        return sorted((t for t in distances if t != task_id), key=lambda t: (distances[t], t))

    def parents(self, task_id: str) -> list[str]:
        return sorted(self.graph.predecessors(task_id)) if task_id in self.graph else []


@rejecting("tasks")
def map_tasks(
    dag_id: str, records: list[dict[str, Any]], decision_points: set[str]
) -> tuple[m.GraphBatch, DagShape]:
    """A DAG's tasks with HAS_TASK and FEEDS edges, and its shape."""
    records = clean(records)
    downstream = {
        r["task_id"]: [c for c in r.get("downstream_task_ids") or [] if isinstance(c, str)]
        for r in records
        if isinstance(r, dict) and isinstance(r.get("task_id"), str)
    }
    shape = DagShape.from_edges(dag_id, downstream)
    batch = m.GraphBatch()
    dag_key = m.Dag.key_for(dag_id)
    tasks: dict[str, m.Task] = {}
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("task_id"), str):
            continue
        task_id = record["task_id"]
        operator = record.get("operator_name") or record.get("operator")
        tasks[task_id] = _node(
            m.Task,
            {
                "dag_id": dag_id,
                "task_id": task_id,
                "operator": operator,
                "is_decision_point": task_id in decision_points or _is_hitl_operator(operator),
                "downstream_task_ids": sorted(downstream.get(task_id, [])),
                "upstream_task_ids": shape.parents(task_id),
            },
            f"task {dag_id}/{task_id}",
        )
    shape.decision_points = {t.task_id for t in tasks.values() if t.is_decision_point}
    batch.add(*tasks.values())
    batch.edges.extend(m.HasTask(src=dag_key, dst=t.key) for t in tasks.values())
    for parent, child in shape.graph.edges:
        if parent in tasks and child in tasks:
            batch.add(m.Feeds.between(tasks[parent], tasks[child]))
    return batch, shape


def task_of_an_older_version(
    dag_id: str, task_id: str, operator: Any, *, is_decision_point: bool
) -> m.GraphBatch:
    """A task the latest version's tasks list does not have (renamed or removed since), known from
    its task instance or HITL detail: `in_latest_version=False`, with its HAS_TASK edge."""
    task = m.Task(
        dag_id=dag_id,
        task_id=task_id,
        operator=operator if isinstance(operator, str) else None,
        is_decision_point=is_decision_point or _is_hitl_operator(operator),
        in_latest_version=False,
    )
    return m.GraphBatch(nodes=[task], edges=[m.HasTask(src=m.Dag.key_for(dag_id), dst=task.key)])


def _is_hitl_operator(operator: Any) -> bool:
    return isinstance(operator, str) and (operator.startswith("HITL") or operator == "ApprovalOperator")


# --- runs and task instances ---------------------------------------------------------------------


@rejecting("DAG run")
def map_dag_run(record: dict[str, Any]) -> m.GraphBatch:
    record = clean(_require_dict(record, "DAG run"))
    name = _name("DAG run", record, "dag_id", "dag_run_id")
    conf = record.get("conf")
    run = _node(
        m.DagRun,
        {
            "dag_id": record.get("dag_id"),
            "run_id": record.get("dag_run_id") or record.get("run_id"),
            "state": record.get("state"),
            "run_type": record.get("run_type"),
            "logical_date": record.get("logical_date"),
            "start_date": record.get("start_date"),
            "end_date": record.get("end_date"),
            "conf": conf if isinstance(conf, dict) else None,
        },
        name,
    )
    batch = m.GraphBatch()
    batch.add(run, m.HasRun(src=m.Dag.key_for(run.dag_id), dst=run.key))
    return batch


def task_instance(record: dict[str, Any], name: str) -> m.TaskInstance:
    """The TaskInstance node of a raw record: only the fields it keeps are read and cleaned (a
    task instance record carries much more, and task instances are most of an ingest)."""
    duration = record.get("duration")
    return _node(
        m.TaskInstance,
        clean(
            {
                "dag_id": record.get("dag_id"),
                "run_id": record.get("dag_run_id") or record.get("run_id"),
                "task_id": record.get("task_id"),
                "map_index": record.get("map_index", -1),
                "try_number": record.get("try_number"),
                "state": record.get("state"),
                "operator": record.get("operator_name") or record.get("operator"),
                "start_date": record.get("start_date"),
                "end_date": record.get("end_date"),
                "duration": float(duration) if isinstance(duration, int | float) else None,
            }
        ),
        name,
    )


@rejecting("task instance")
def map_task_instance(record: dict[str, Any]) -> m.GraphBatch:
    record = _require_dict(record, "task instance")
    ti = task_instance(record, _name("task instance", record, "dag_id", "dag_run_id", "task_id"))
    batch = m.GraphBatch()
    # Endpoint keys from the validated node's fields; no throw-away models (a hot path).
    run_key = m.DagRun.key_for(ti.dag_id, ti.run_id)
    task_key = m.Task.key_for(ti.dag_id, ti.task_id)
    ti_key = ti.key
    batch.add(ti, m.HasInstance(src=run_key, dst=ti_key), m.OfTask(src=ti_key, dst=task_key))
    return batch


# --- HITL decisions ------------------------------------------------------------------------------


@dataclass
class ProposalValue:
    """An upstream task's XCom value that a decision reviewed (see `proposal_value` for the shapes
    it is given in), or a gate's AI output (`xcom_key="params.output"`, the decision's own task)."""

    task_id: str
    value: Any
    xcom_key: str = "return_value"
    map_index: int = -1


@rejecting("HITL detail")
def decision_identity(record: Any) -> tuple[str, str, str, int, int]:
    """(dag_id, run_id, task_id, map_index, try_number) of a raw HITL detail, or InvalidRecordError."""
    record = _require_dict(record, "HITL detail")
    ti = record.get("task_instance")
    if not isinstance(ti, dict):
        raise InvalidRecordError(
            _name("HITL detail", record, "ti_id"), "task_instance", "missing: cannot tell which task asked"
        )
    name = _name("HITL detail", ti, "dag_id", "dag_run_id", "task_id")
    values = (ti.get("dag_id"), ti.get("dag_run_id") or ti.get("run_id"), ti.get("task_id"))
    for field_name, value in zip(("dag_id", "dag_run_id", "task_id"), values, strict=True):
        if not isinstance(value, str) or not value:
            raise InvalidRecordError(name, f"task_instance.{field_name}", "missing or not text")
    map_index, try_number = ti.get("map_index", -1), ti.get("try_number", 1)
    if not isinstance(map_index, int) or not isinstance(try_number, int):
        raise InvalidRecordError(
            name, "task_instance.try_number", "map_index and try_number must be integers"
        )
    return values[0], values[1], values[2], map_index, try_number  # type: ignore[return-value]


@rejecting("HITL detail")
def map_decision(
    record: dict[str, Any],
    *,
    upstream: list[str] | None = None,
    proposals: list[ProposalValue] | None = None,
    reason_params: Sequence[str] | None = None,
    verdicts: Mapping[str, m.Verdict] | None = None,
    branches: list[str] | None = None,
) -> m.GraphBatch:
    """One HITL detail: the decision, its options and choice, reviewer, task instance and proposals.

    The reason is the first non-empty text among `reason_params`, then `REASON_KEYS`, in
    `params_input`; failing that, the values of the other free-text params (string params that
    are neither an enum nor the reviewer's own answer, `ANSWER_KEYS`), joined by new lines.

    `verdicts` maps a chosen option to its verdict at this decision point (the option's words are
    the fallback, `verdict`). A gate's AI output (`params.output`) is the proposal when no upstream
    XCom is; the reviewer's rewrite (an `ANSWER_KEYS` param that differs from the proposal)
    becomes an Answer. An entry form (only the option "OK") has its values in the search text.
    `branches`: the downstream tasks a branching decision ran (BRANCHED_TO).
    """
    record = clean(_require_dict(record, "HITL detail"))
    dag_id, run_id, task_id, map_index, try_number = decision_identity(record)
    name = f"HITL detail {dag_id}/{run_id}/{task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
    params_input = record.get("params_input")
    if params_input is None:
        params_input = {}
    if not isinstance(params_input, dict):
        raise InvalidRecordError(
            name, "params_input", f"expected an object, got {type(params_input).__name__}"
        )
    offered = _text_list(record.get("options"), name, "options")
    chosen = _text_list(record.get("chosen_options"), name, "chosen_options")
    unknown = [c for c in chosen if c not in offered]
    if unknown:
        raise InvalidRecordError(name, "chosen_options", f"{unknown[0]!r} is not among the options {offered}")
    responder = record.get("responded_by_user") or record.get("responded_by")
    received = bool(record.get("response_received"))
    timed_out = received and not responder
    status = decision_status(received, record["task_instance"].get("state"))
    reason = find_reason(params_input, record.get("params"), [*(reason_params or ()), *REASON_KEYS])
    proposals = proposals or []
    if not proposals:
        proposals = gate_proposal(record.get("params"), task_id, map_index)
    proposal_texts = [proposal_text(p.value) for p in proposals]
    answer_param, answer_text = find_answer(params_input)
    entry = _entry_text(params_input) if offered == ["OK"] else None

    decision = _node(
        m.Decision,
        {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
            "try_number": try_number,
            "subject": record.get("subject") or "",
            "body": record.get("body"),
            "offered": offered,
            "defaults": _text_list(record.get("defaults"), name, "defaults"),
            "multiple": bool(record.get("multiple")),
            "params": record.get("params") if isinstance(record.get("params"), dict) else {},
            "params_input": {k: v for k, v in params_input.items() if k != SLACK_IDENTITY_KEY},
            "chosen_options": chosen,
            "reason": reason,
            "assigned_users": [_user_id(u) for u in record.get("assigned_users") or [] if _user_id(u)],
            "responded_by": _user_id(responder),
            "created_at": record.get("created_at"),
            "responded_at": record.get("responded_at"),
            "response_received": received,
            "timed_out": timed_out,
            "status": status,
            "upstream_task_ids": upstream or [],
            "branches": branches or [],
            "search_text": search_text(
                record.get("subject"),
                record.get("body"),
                proposal_texts,
                chosen,
                reason,
                [entry] if entry else _answers(params_input, reason),
            ),
        },
        name,
    )
    batch = m.GraphBatch()
    # Endpoint keys from the validated decision's fields, each computed once (a hot path).
    d = decision
    key = d.key
    ti_key = m.TaskInstance.key_for(d.dag_id, d.run_id, d.task_id, d.map_index)
    batch.add(d, m.Asked(src=ti_key, dst=key), m.AtPoint(src=key, dst=m.Task.key_for(d.dag_id, d.task_id)))
    for option_name in offered:
        option = m.Option(dag_id=d.dag_id, task_id=d.task_id, name=option_name)
        option_key = option.key
        batch.add(option, m.Offered(src=key, dst=option_key))
        if option_name in chosen:
            batch.add(m.Chose(src=key, dst=option_key))
    actor = _actor(responder, params_input.get(SLACK_IDENTITY_KEY), timed_out)
    if actor is not None:
        batch.add(actor, m.DecidedBy(src=key, dst=actor.key))
    for user in _list(record.get("assigned_users"), name, "assigned_users"):
        assignee = _actor(user, None, False)
        if assignee is not None:
            batch.add(assignee, m.AssignedTo(src=key, dst=assignee.key))
    for branch in d.branches:
        batch.add(m.BranchedTo(src=key, dst=m.Task.key_for(d.dag_id, branch)))
    if answer_param is not None and answer_text not in proposal_texts:
        answer = m.Answer(
            dag_id=d.dag_id,
            run_id=d.run_id,
            task_id=d.task_id,
            map_index=d.map_index,
            try_number=d.try_number,
            param=answer_param,
            text=answer_text,
            edit_chars=edit_size(proposal_texts[0], answer_text) if proposal_texts else None,
        )
        batch.add(answer, m.AnsweredWith(src=key, dst=answer.key))
    verdict_: m.Verdict = (
        verdict(chosen, received, verdicts) if status in ("answered", "pending") else cast(m.Verdict, status)
    )
    for proposal, text in zip(proposals, proposal_texts, strict=True):
        node = m.Proposal(
            dag_id=dag_id,
            run_id=run_id,
            task_id=proposal.task_id,
            map_index=proposal.map_index,
            xcom_key=proposal.xcom_key,
            text=text,
            value=proposal.value,
        )
        node_key = node.key
        producer_key = m.TaskInstance.key_for(node.dag_id, node.run_id, node.task_id, node.map_index)
        batch.add(
            node,
            m.Reviewed(src=key, dst=node_key, verdict=verdict_),
            m.ProducedBy(src=node_key, dst=producer_key),
        )
    batch.add(*informed_by(key, proposals, d.created_at))
    version = dag_version(record["task_instance"].get("dag_version"), dag_id)
    if version is not None:
        batch.add(
            version,
            m.UnderVersion(src=key, dst=version.key),
            m.VersionOf(src=m.Dag.key_for(dag_id), dst=version.key),
        )
    return batch


def dag_version(record: Any, dag_id: str) -> m.DagVersion | None:
    """The DagVersion a task instance ran under (`task_instance.dag_version`), None when not told."""
    if not isinstance(record, dict) or not isinstance(record.get("version_number"), int):
        return None
    bundle_version = record.get("bundle_version")
    return _node(
        m.DagVersion,
        {
            "dag_id": dag_id,
            "version_number": record["version_number"],
            "version_id": str(record["id"]) if record.get("id") is not None else None,
            "bundle_name": record.get("bundle_name") if isinstance(record.get("bundle_name"), str) else None,
            "bundle_version": str(bundle_version) if bundle_version is not None else None,
            "created_at": record.get("created_at"),
        },
        f"DAG version {dag_id} v{record['version_number']}",
    )


def informed_by(key: str, proposals: list[ProposalValue], when: Any) -> list[m.InformedBy]:
    """INFORMED_BY edges for the precedents an agent listed in its proposal (`value["precedents"]`:
    decision keys, or objects with `key` and `score`, best first), so that the feedback loop is
    recorded by the ingest itself. Entries of another shape are ignored."""
    edges: dict[str, m.InformedBy] = {}
    for proposal in proposals:  # ranks per proposal; a key listed again keeps its first edge
        items = proposal.value.get("precedents") if isinstance(proposal.value, dict) else None
        listed = [
            (item.get("key"), item.get("score")) if isinstance(item, dict) else (item, None)
            for item in (items if isinstance(items, list) else [])
        ]
        for edge in informed_by_edges(key, listed, when):
            edges.setdefault(edge.dst, edge)
    return list(edges.values())


def informed_by_edges(key: str, precedents: Iterable[tuple[Any, Any]], when: Any) -> list[m.InformedBy]:
    """The one way INFORMED_BY edges are made (ingest, agent feedback, demo): `precedents` are
    (precedent key, score or None) pairs, best first; rank = position from 1. The decision itself,
    a repeated key and an entry that is not a key are skipped (their position still counts); a
    score that is not a finite number becomes None."""
    edges: dict[str, m.InformedBy] = {}
    for rank, (dst, score) in enumerate(precedents, start=1):
        if not isinstance(dst, str) or not dst or dst == key or dst in edges:
            continue
        if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
            score = None
        try:
            edges[dst] = m.InformedBy(src=key, dst=dst, rank=rank, score=score, recorded_at=when)
        except ValidationError:
            continue
    return list(edges.values())


def _list(value: Any, name: str, field_name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRecordError(name, field_name, f"expected a list, got {type(value).__name__}")
    return value


def _text_list(value: Any, name: str, field_name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRecordError(name, field_name, "expected a list of text")
    return value


def _param_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def find_reason(params_input: Mapping[str, Any], params: Any, names: Sequence[str]) -> str | None:
    """The reviewer's "why": the first non-empty text param among `names`, else the free-text
    params' values (string-typed, no enum, not an `ANSWER_KEYS` param) joined by new lines."""
    by_name = {_param_name(k): v for k, v in params_input.items() if isinstance(k, str)}
    for name in names:
        value = by_name.get(_param_name(name))
        if isinstance(value, str) and value.strip():
            return value.strip()
    schemas = params if isinstance(params, dict) else {}
    free = []
    for key, value in params_input.items():
        if not isinstance(value, str) or not value.strip() or key == SLACK_IDENTITY_KEY:
            continue
        if _param_name(key) in ANSWER_KEYS or not _is_free_text(schemas.get(key)):
            continue
        free.append(value.strip())
    return "\n".join(free) or None


def _is_free_text(param: Any) -> bool:
    """A string param without a fixed set of values (Airflow sends params as {value, schema})."""
    schema = param.get("schema") if isinstance(param, dict) else None
    if not isinstance(schema, dict):
        return True
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    return (kind is None or "string" in kinds) and "enum" not in schema and "format" not in schema


def _answers(params_input: Mapping[str, Any], reason: str | None) -> list[str]:
    """The reviewer's other text entries (e.g. their own reply), the reason and Slack identity aside."""
    return [
        v.strip()
        for k, v in params_input.items()
        if k != SLACK_IDENTITY_KEY and isinstance(v, str) and v.strip() and v.strip() != reason
    ]


def _user_id(user: Any) -> str | None:
    if isinstance(user, dict):
        ident = user.get("id") or user.get("name")
        return str(ident) if ident else None
    return str(user) if isinstance(user, str | int) and user != "" else None


def _actor(responder: Any, slack: Any, timed_out: bool) -> m.Actor | None:
    if isinstance(slack, dict) and slack.get("user_id"):
        return m.Actor(
            kind="slack_user", actor_id=str(slack["user_id"]), name=slack.get("name"), team=slack.get("team")
        )
    if timed_out:
        return m.Actor(kind="system", actor_id="timeout", name="Review timeout (default taken)")
    ident = _user_id(responder)
    if ident is None:
        return None
    name = responder.get("name") if isinstance(responder, dict) else None
    return m.Actor(kind="airflow_user", actor_id=ident, name=name if isinstance(name, str) else None)


def decision_status(received: bool, ti_state: Any) -> m.DecisionStatus:
    """`answered`; `pending` while the task instance may still get an answer; else how the review
    closed unanswered (`CLOSED_STATUS` by task-instance state, `closed` for any other state)."""
    if received:
        return "answered"
    if ti_state in STILL_WAITING_STATES or not isinstance(ti_state, str):
        return "pending"
    return CLOSED_STATUS.get(ti_state, "closed")


def verdict(chosen: list[str], received: bool, verdicts: Mapping[str, m.Verdict] | None = None) -> m.Verdict:
    """What the human made of the AI's proposal: the configured verdict of the first chosen option
    that has one (`verdicts`, per decision point), else read from the chosen options' words."""
    if not received:
        return "pending"
    for option in chosen:
        if verdicts and option in verdicts:
            return verdicts[option]
    words = re.findall(r"[a-z]+", " ".join(chosen).lower())
    for outcome, stems in _VERDICT_STEMS:
        if any(w == stem or (len(stem) > 3 and w.startswith(stem)) for w in words for stem in stems):
            return outcome
    return "unknown"


_VERDICT_STEMS: tuple[tuple[m.Verdict, tuple[str, ...]], ...] = (
    ("escalated", ("escalat",)),
    ("approved", ("approv", "accept", "ok", "yes", "send", "publish")),
    ("overridden", ("manual", "reject", "overrid", "edit", "rewrit", "deny", "declin", "no")),
)


def proposal_value(value: Any) -> Any:
    """An XCom value as the API returns it, made fit to keep: a string holding JSON is parsed; a
    value whose JSON is longer than `VALUE_LIMIT` characters is kept as `{"text": <its text, cut
    at TEXT_LIMIT>, "truncated_from_chars": n}`. Objects, lists, numbers and strings stay as
    they are; None stays None (no XCom: no proposal)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    size = len(value) if isinstance(value, str) else len(json.dumps(value, ensure_ascii=False, default=str))
    if size <= VALUE_LIMIT:
        return value
    return {"text": _cut(proposal_text(value)), "truncated_from_chars": size}


def proposal_text(value: Any) -> str:
    """The readable text of an XCom value (at most `TEXT_LIMIT` characters): a known text field of
    an object, a string itself, else the value's JSON."""
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, dict):
        for key in PROPOSAL_TEXT_KEYS:
            if isinstance(value.get(key), str):
                return _cut(str(value[key]))
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str) if value is not None else ""
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def gate_proposal(params: Any, task_id: str, map_index: int) -> list[ProposalValue]:
    """An approval gate's AI output (common.ai: `params.output`, as `{value, …}` or a plain value)."""
    output = params.get("output") if isinstance(params, dict) else None
    value = output.get("value") if isinstance(output, dict) else output
    if value is None or value == "":
        return []
    return [ProposalValue(task_id, proposal_value(value), "params.output", map_index)]


def find_answer(params_input: Mapping[str, Any]) -> tuple[str | None, str]:
    """(param name, text) of the reviewer's own answer (`ANSWER_KEYS`), or (None, "")."""
    for key, value in params_input.items():
        if isinstance(key, str) and _param_name(key) in ANSWER_KEYS:
            text = value if isinstance(value, str) else None
            if text is None and value is not None:
                text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
            if text and text.strip():
                return key, _cut(text)
    return None, ""


def edit_size(before: str, after: str) -> int:
    """Characters changed from `before` to `after`: their Levenshtein distance (the fewest single
    characters inserted, deleted or replaced), computed by rapidfuzz."""
    return int(Levenshtein.distance(before, after))


def _entry_text(params_input: Mapping[str, Any]) -> str | None:
    """An entry form's values (HITLEntryOperator: the entries are the decision) as `name: value`."""
    lines = [
        f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)}"
        for k, v in params_input.items()
        if k != SLACK_IDENTITY_KEY and v not in (None, "")
    ]
    return "\n".join(lines) or None


PRECEDENTS_START = "<!-- contextgraph:precedents -->"
PRECEDENTS_END = "<!-- /contextgraph:precedents -->"
"""The marked precedent section of a HITL body: what the reviewer was shown about *other* decisions
(earlier precedents, lessons and their reasons). Everything from a start marker to the next end
marker (or to the end of the body, without one) is left out of the decision's search text, so a
decision is never found for the words of the precedents it quoted. HTML comments: invisible where
Airflow and Slack render the body as markdown."""
_PRECEDENT_SECTION = re.compile(
    re.escape(PRECEDENTS_START) + r".*?(?:" + re.escape(PRECEDENTS_END) + r"|\Z)", re.DOTALL
)


def strip_precedents(text: str) -> str:
    """`text` without its marked precedent sections (see PRECEDENTS_START)."""
    if PRECEDENTS_START not in text:
        return text
    return _PRECEDENT_SECTION.sub("", text).strip()


def situation_text(subject: Any, body: Any, proposals: Iterable[Any]) -> str:
    """What precedent search matches a new case against: the situation of a decision -- what was
    asked (subject), the request as shown (the body without its marked precedent section) and the
    AI proposals it judged -- not its outcome (choice and reason), which is shown, not matched."""
    parts = [subject, body, *sorted(p for p in proposals if isinstance(p, str))]
    return "\n".join(strip_precedents(p).strip() for p in parts if isinstance(p, str) and p.strip())


def search_text(
    subject: Any,
    body: Any,
    proposals: list[str],
    chosen: list[str],
    reason: str | None,
    answers: Sequence[str] = (),
) -> str:
    """What precedent search matches: the case (the question, the body without its marked precedent
    section, the AI's proposal) and its outcome (the choice, the reason, the reviewer's own answers)."""
    parts = [subject, body, *proposals, " / ".join(chosen), reason, *answers]
    return "\n".join(strip_precedents(str(p)) for p in parts if isinstance(p, str) and p.strip())
