"""The decision-trace graph: typed nodes and edges, and the batch the stores write.

Every node has a deterministic natural key (`key`), built from its key fields, so every write is
an idempotent MERGE. Models know nothing about storage: a store takes a `GraphBatch` of them.

    (:Dag)-[:HAS_TASK]->(:Task)-[:FEEDS]->(:Task)
    (:Dag)-[:HAS_RUN]->(:DagRun)-[:HAS_INSTANCE]->(:TaskInstance)-[:OF_TASK]->(:Task)
    (:TaskInstance)-[:ASKED]->(:Decision)-[:OFFERED|CHOSE]->(:Option)
    (:Decision)-[:DECIDED_BY]->(:Actor)    (:Decision)-[:REVIEWED {verdict}]->(:Proposal)
    (:Decision)-[:AT_POINT]->(:Task)       (:Decision)-[:INFORMED_BY]->(:Decision)
    (:Proposal)-[:PRODUCED_BY]->(:TaskInstance)
    (:Decision)-[:UNDER_VERSION]->(:DagVersion)<-[:VERSION_OF]-(:Dag)
    (:Decision)-[:ASSIGNED_TO]->(:Actor)   (:Decision)-[:ANSWERED_WITH]->(:Answer)
    (:Decision)-[:BRANCHED_TO]->(:Task)
    (:Task)-[:PRODUCES]->(:Asset)-[:TRIGGERS]->(:Dag)
    (:Deployment)-[:HAS_DAG]->(:Dag)       (:SchemaVersion)

Deployments: every node that comes from an Airflow (`AirflowNode`: DAGs, tasks, runs, task
instances, decisions, options, proposals, answers, DAG versions, assets, sync state) carries the name of
the Airflow it came from (`deployment`, `CONTEXTGRAPH_DEPLOYMENT`), and its key starts with that
name, so two Airflows with the same dag_id and run id stay apart in one graph. The `default`
deployment's keys leave the name out: `support|manual__1|review|-1|1` is a decision of the
default deployment, `prod|support|manual__1|review|-1|1` the same one in `prod`. A kind has a
fixed number of key parts, so the two forms cannot be confused (`parse_key`); keys written
before deployments existed are the default deployment's keys. Actors are not per deployment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contextgraph.errors import InvalidRecordError

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""An integer property: both engines store 64-bit integers, so a record with a larger one (a
`map_index` of 2**63) is rejected when mapped, naming the field, instead of failing its page's write."""

KEY_SEPARATOR = "|"
DEFAULT_DEPLOYMENT = "default"
DEPLOYMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""A deployment name: letters, digits, `.`, `_`, `-` (readable in keys, scopes and CLI flags)."""
SCHEMA_VERSION = 2
"""The graph layout this code writes: 1 = keys without deployments (before 0.x), 2 = deployments."""

NonEmpty = Field(min_length=1)


def make_key(*parts: object) -> str:
    """Join key parts with `|`, escaping `\\` and `|` so that distinct parts give distinct keys."""
    texts = [p if type(p) is str else str(p) for p in parts]
    joined = KEY_SEPARATOR.join(texts)
    if "\\" not in joined and joined.count(KEY_SEPARATOR) == len(texts) - 1:
        return joined  # nothing to escape (the usual case: a hot path of every ingest)
    escaped = (t.replace("\\", "\\\\").replace(KEY_SEPARATOR, "\\" + KEY_SEPARATOR) for t in texts)
    return KEY_SEPARATOR.join(escaped)


def split_key(key: str) -> list[str]:
    """The parts of a key built by `make_key` (its inverse: escapes undone)."""
    if "\\" not in key:
        return key.split(KEY_SEPARATOR)
    parts, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == KEY_SEPARATOR:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def deployment_key(deployment: str, parts: Iterable[object]) -> str:
    """The key of a deployment's node with these key field values (the default deployment's keys
    have no deployment part; see the module's docstring)."""
    if deployment == DEFAULT_DEPLOYMENT:
        return make_key(*parts)
    return make_key(deployment, *parts)


def parse_key(node_type: type[Node], key: str) -> tuple[str, list[str]]:
    """(deployment, key field values as text) of a key of this kind; ValueError if it has the
    wrong number of parts. Nodes that are not per deployment give the default deployment."""
    parts = split_key(key)
    count = len(node_type.key_fields)
    if len(parts) == count:
        return DEFAULT_DEPLOYMENT, parts
    if node_type.deployment_scoped and len(parts) == count + 1:
        return parts[0], parts[1:]
    raise ValueError(f"{key!r} is not a {node_type.label} key ({count} parts {node_type.key_fields})")


def rekey(node_type: type[Node], key: str, deployment: str) -> str:
    """A key of this kind moved to `deployment` (unchanged for kinds that are not per deployment)."""
    if not node_type.deployment_scoped:
        return key
    if "\\" not in key and key.count(KEY_SEPARATOR) + 1 == len(node_type.key_fields):
        # A default-deployment key with nothing escaped (the usual case; a hot path of every ingest
        # of a named deployment): the name goes in front (a name never needs escaping).
        return key if deployment == DEFAULT_DEPLOYMENT else f"{deployment}{KEY_SEPARATOR}{key}"
    _, parts = parse_key(node_type, key)
    return deployment_key(deployment, parts)


class Node(BaseModel):
    """A graph node. Subclasses set `label` and the fields that make up the natural key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: ClassVar[str]
    key_fields: ClassVar[tuple[str, ...]]
    deployment_scoped: ClassVar[bool] = False
    """True for kinds whose key starts with their deployment (`AirflowNode`)."""

    @property
    def key(self) -> str:
        return make_key(*(getattr(self, name) for name in self.key_fields))

    @classmethod
    def key_for(cls, *parts: object, deployment: str = DEFAULT_DEPLOYMENT) -> str:
        """The key of the node of this kind with these key field values (and, for a kind that is
        per deployment, of this deployment), without building it. TypeError on a wrong count."""
        if len(parts) != len(cls.key_fields):
            raise TypeError(f"{cls.label} keys have {len(cls.key_fields)} parts {cls.key_fields}")
        return deployment_key(deployment, parts) if cls.deployment_scoped else make_key(*parts)


class AirflowNode(Node):
    """A node read from one Airflow deployment: its key starts with the deployment's name (none
    for the default deployment, see the module's docstring)."""

    deployment_scoped: ClassVar[bool] = True

    deployment: str = Field(default=DEFAULT_DEPLOYMENT, pattern=DEPLOYMENT_PATTERN)

    @property
    def key(self) -> str:
        return deployment_key(self.deployment, (getattr(self, name) for name in self.key_fields))


class Deployment(Node):
    """One Airflow whose decisions the graph holds: `(:Deployment)-[:HAS_DAG]->(:Dag)`."""

    label: ClassVar[str] = "Deployment"
    key_fields: ClassVar[tuple[str, ...]] = ("name",)

    name: str = Field(pattern=DEPLOYMENT_PATTERN)
    airflow_url: str | None = None
    """The Airflow's URL without credentials, for links to its decisions."""


class SchemaVersion(Node):
    """The layout of the graph (`SCHEMA_VERSION`); `contextgraph migrate` upgrades an older one."""

    label: ClassVar[str] = "SchemaVersion"
    key_fields: ClassVar[tuple[str, ...]] = ("name",)

    name: str = "contextgraph"
    version: Int64 = SCHEMA_VERSION
    migrated_at: datetime | None = None
    legacy_deployment: str | None = None
    """The deployment the keys of a version-1 graph were given by `contextgraph migrate`."""


class Dag(AirflowNode):
    label: ClassVar[str] = "Dag"
    key_fields: ClassVar[tuple[str, ...]] = ("dag_id",)

    dag_id: str = NonEmpty
    description: str | None = None
    is_paused: bool | None = None
    tags: list[str] = []
    owners: list[str] = []
    schedule: str | None = None
    tracked: bool = False
    """True when the sync reads this DAG's runs, task instances and decisions (it has a decision
    point, feeds one through assets, or `all_dags` is set); False: only the DAG itself is kept."""


class Task(AirflowNode):
    label: ClassVar[str] = "Task"
    key_fields: ClassVar[tuple[str, ...]] = ("dag_id", "task_id")

    dag_id: str = NonEmpty
    task_id: str = NonEmpty
    operator: str | None = None
    is_decision_point: bool = False
    downstream_task_ids: list[str] = []
    upstream_task_ids: list[str] = []
    in_latest_version: bool = True
    """False for a task known only from its task instances or HITL details: an older version of
    the DAG had it (renamed or removed since), the tasks endpoint (latest version) does not."""


class Asset(AirflowNode):
    """An Airflow asset (`GET /api/v2/assets`): data a task produces and DAGs are scheduled on."""

    label: ClassVar[str] = "Asset"
    key_fields: ClassVar[tuple[str, ...]] = ("name", "uri")

    name: str = NonEmpty
    uri: str = NonEmpty
    group: str | None = None
    asset_id: Int64 | None = None
    """Airflow's database id of the asset (`id`)."""
    extra: dict[str, Any] = {}
    aliases: list[str] = []
    """Names of the asset aliases that resolved to this asset."""
    last_event_at: datetime | None = None
    """When a task last updated the asset (`last_asset_event.timestamp`)."""


class DagVersion(AirflowNode):
    """One version of a DAG's code, as a HITL detail's `task_instance.dag_version` names it."""

    label: ClassVar[str] = "DagVersion"
    key_fields: ClassVar[tuple[str, ...]] = ("dag_id", "version_number")

    dag_id: str = NonEmpty
    version_number: Int64
    version_id: str | None = None
    bundle_name: str | None = None
    bundle_version: str | None = None
    created_at: datetime | None = None


class DagRun(AirflowNode):
    label: ClassVar[str] = "DagRun"
    key_fields: ClassVar[tuple[str, ...]] = ("dag_id", "run_id")

    dag_id: str = NonEmpty
    run_id: str = NonEmpty
    state: str | None = None
    run_type: str | None = None
    logical_date: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    conf: dict[str, Any] | None = None


class TaskInstance(AirflowNode):
    label: ClassVar[str] = "TaskInstance"
    key_fields: ClassVar[tuple[str, ...]] = ("dag_id", "run_id", "task_id", "map_index")

    dag_id: str = NonEmpty
    run_id: str = NonEmpty
    task_id: str = NonEmpty
    map_index: Int64 = -1
    try_number: Int64 | None = None
    state: str | None = None
    operator: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration: float | None = None


DecisionStatus = Literal["answered", "pending", "expired", "failed", "skipped", "closed"]


class Decision(AirflowNode):
    """One HITL detail: the question a human was asked and what they answered, and why."""

    label: ClassVar[str] = "Decision"
    key_fields: ClassVar[tuple[str, ...]] = (
        "dag_id",
        "run_id",
        "task_id",
        "map_index",
        "try_number",
    )

    dag_id: str = NonEmpty
    run_id: str = NonEmpty
    task_id: str = NonEmpty
    map_index: Int64 = -1
    try_number: Int64 = 1
    subject: str = ""
    body: str | None = None
    offered: list[str] = []
    """The HITL detail's `options` (renamed: `options` is a keyword in the embedded engine)."""
    defaults: list[str] = []
    multiple: bool = False
    params: dict[str, Any] = {}
    params_input: dict[str, Any] = {}
    chosen_options: list[str] = []
    reason: str | None = None
    assigned_users: list[str] = []
    responded_by: str | None = None
    created_at: datetime | None = None
    responded_at: datetime | None = None
    response_received: bool = False
    timed_out: bool = False
    status: DecisionStatus = "answered"
    """`answered`, `pending` (its task still waits), or, for a review closed without an answer,
    what became of its task: `expired` (failed: timed out without defaults), `failed`
    (upstream failed), `skipped`, `closed` (success or removed without an answer)."""
    branches: list[str] = []
    """For a branching decision (HITLBranchOperator): the downstream task ids that ran."""
    upstream_task_ids: list[str] = []
    """Every task that, transitively, fed this decision point: its upstream context."""
    search_text: str = ""
    """Subject, body, proposal, choice and reason in one text: what precedent search matches."""


class Option(AirflowNode):
    """One answer offered at a decision point (per DAG task, so option statistics are one hop)."""

    label: ClassVar[str] = "Option"
    key_fields: ClassVar[tuple[str, ...]] = ("dag_id", "task_id", "name")

    dag_id: str = NonEmpty
    task_id: str = NonEmpty
    name: str = NonEmpty


ActorKind = Literal["airflow_user", "slack_user", "agent", "system"]


class Actor(Node):
    label: ClassVar[str] = "Actor"
    key_fields: ClassVar[tuple[str, ...]] = ("kind", "actor_id")

    kind: ActorKind
    actor_id: str = NonEmpty
    name: str | None = None
    team: str | None = None


class Proposal(AirflowNode):
    """What an AI produced for a human to review: an upstream task's XCom value."""

    label: ClassVar[str] = "Proposal"
    key_fields: ClassVar[tuple[str, ...]] = ("dag_id", "run_id", "task_id", "map_index", "xcom_key")

    dag_id: str = NonEmpty
    run_id: str = NonEmpty
    task_id: str = NonEmpty
    map_index: Int64 = -1
    xcom_key: str = "return_value"
    text: str = ""
    value: Any = None


class Answer(AirflowNode):
    """The reviewer's own answer when they rewrote the AI's proposal (a `manual_response` or
    `output` param, a gate's edited output), keyed like its decision."""

    label: ClassVar[str] = "Answer"
    key_fields: ClassVar[tuple[str, ...]] = Decision.key_fields

    dag_id: str = NonEmpty
    run_id: str = NonEmpty
    task_id: str = NonEmpty
    map_index: Int64 = -1
    try_number: Int64 = 1
    param: str = NonEmpty
    """The params_input name the answer came from."""
    text: str = ""
    edit_chars: Int64 | None = None
    """Characters changed from the proposal's text (insertions, deletions, replacements);
    None when there was no proposal to compare with."""


class SyncState(AirflowNode):
    """Where the last sync stopped, kept in the graph itself so any machine can resume it."""

    label: ClassVar[str] = "SyncState"
    key_fields: ClassVar[tuple[str, ...]] = ("source",)

    source: str = NonEmpty
    hitl_created_at: datetime | None = None
    runs_updated_at: datetime | None = None
    task_instances_updated_at: datetime | None = None
    last_sync_at: datetime | None = None


class Edge(BaseModel):
    """A relationship between two nodes, given by their keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rel_type: ClassVar[str]
    source: ClassVar[type[Node]]
    target: ClassVar[type[Node]]

    src: str = NonEmpty
    dst: str = NonEmpty

    @classmethod
    def between(cls, src: Node, dst: Node, **properties: Any) -> Edge:
        if not isinstance(src, cls.source) or not isinstance(dst, cls.target):
            raise TypeError(
                f"{cls.rel_type} goes from {cls.source.label} to {cls.target.label}, "
                f"not from {src.label} to {dst.label}"
            )
        return cls(src=src.key, dst=dst.key, **properties)

    @property
    def key(self) -> str:
        return make_key(self.src, self.dst)


def _edge(name: str, type_: str, source: type[Node], target: type[Node]) -> type[Edge]:
    """A relationship kind without properties of its own."""
    namespace = {"rel_type": type_, "source": source, "target": target, "__module__": __name__}
    return type(name, (Edge,), namespace)


HasTask = _edge("HasTask", "HAS_TASK", Dag, Task)
Feeds = _edge("Feeds", "FEEDS", Task, Task)
HasRun = _edge("HasRun", "HAS_RUN", Dag, DagRun)
HasInstance = _edge("HasInstance", "HAS_INSTANCE", DagRun, TaskInstance)
OfTask = _edge("OfTask", "OF_TASK", TaskInstance, Task)
Asked = _edge("Asked", "ASKED", TaskInstance, Decision)
AtPoint = _edge("AtPoint", "AT_POINT", Decision, Task)
Offered = _edge("Offered", "OFFERED", Decision, Option)
Chose = _edge("Chose", "CHOSE", Decision, Option)
DecidedBy = _edge("DecidedBy", "DECIDED_BY", Decision, Actor)
ProducedBy = _edge("ProducedBy", "PRODUCED_BY", Proposal, TaskInstance)
UnderVersion = _edge("UnderVersion", "UNDER_VERSION", Decision, DagVersion)
VersionOf = _edge("VersionOf", "VERSION_OF", Dag, DagVersion)
AssignedTo = _edge("AssignedTo", "ASSIGNED_TO", Decision, Actor)
AnsweredWith = _edge("AnsweredWith", "ANSWERED_WITH", Decision, Answer)
BranchedTo = _edge("BranchedTo", "BRANCHED_TO", Decision, Task)
HasDag = _edge("HasDag", "HAS_DAG", Deployment, Dag)
Produces = _edge("Produces", "PRODUCES", Task, Asset)
Triggers = _edge("Triggers", "TRIGGERS", Asset, Dag)

Verdict = Literal[
    "approved", "overridden", "escalated", "pending", "unknown", "expired", "failed", "skipped", "closed"
]


class Reviewed(Edge):
    """Decision judged Proposal; the verdict says what the human made of the AI's work."""

    rel_type: ClassVar[str] = "REVIEWED"
    source: ClassVar[type[Node]] = Decision
    target: ClassVar[type[Node]] = Proposal

    verdict: Verdict = "unknown"


class InformedBy(Edge):
    """The new decision was made with this earlier decision shown as precedent."""

    rel_type: ClassVar[str] = "INFORMED_BY"
    source: ClassVar[type[Node]] = Decision
    target: ClassVar[type[Node]] = Decision

    rank: Int64 | None = None
    score: float | None = None
    recorded_at: datetime | None = None


NODE_TYPES: tuple[type[Node], ...] = (
    Dag,
    Task,
    DagRun,
    TaskInstance,
    Decision,
    Option,
    Actor,
    Proposal,
    SyncState,
    DagVersion,
    Answer,
    Deployment,
    SchemaVersion,
    Asset,
)
EDGE_TYPES: tuple[type[Edge], ...] = (
    HasTask,
    Feeds,
    HasRun,
    HasInstance,
    OfTask,
    Asked,
    AtPoint,
    Offered,
    Chose,
    DecidedBy,
    Reviewed,
    ProducedBy,
    InformedBy,
    UnderVersion,
    VersionOf,
    AssignedTo,
    AnsweredWith,
    BranchedTo,
    HasDag,
    Produces,
    Triggers,
)
NODE_BY_LABEL: dict[str, type[Node]] = {t.label: t for t in NODE_TYPES}
EDGE_BY_TYPE: dict[str, type[Edge]] = {t.rel_type: t for t in EDGE_TYPES}


def node_from_record(label: str, record: dict[str, Any], *, name: str | None = None) -> Node:
    """Validate a plain record into a node; a bad one raises InvalidRecordError naming the field."""
    node: Node = _validate(NODE_BY_LABEL, "node label", label, record, name)
    return node


def edge_from_record(type_: str, record: dict[str, Any], *, name: str | None = None) -> Edge:
    """Validate a plain record into an edge (`src`, `dst` keys and properties)."""
    edge: Edge = _validate(EDGE_BY_TYPE, "relationship type", type_, record, name)
    return edge


def _validate(
    registry: dict[str, type[Any]], kind: str, which: str, record: dict[str, Any], name: str | None
) -> Any:
    model = registry.get(which)
    if model is None:
        raise InvalidRecordError(name or which, kind.split()[-1], f"unknown {kind} {which!r}")
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        raise _invalid(name or f"{which} record", exc) from None


def _invalid(record: str, exc: ValidationError) -> InvalidRecordError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(record)"
    return InvalidRecordError(record, where, first["msg"])


def properties(item: Node | Edge) -> dict[str, Any]:
    """The item's fields as plain Python values (edges without their endpoint keys)."""
    data = item.model_dump(mode="python")
    if isinstance(item, Edge):
        data.pop("src")
        data.pop("dst")
    return data


@dataclass
class GraphBatch:
    """Nodes and edges to write together. Identical duplicates collapse; conflicting ones fail."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def add(self, *items: Node | Edge) -> None:
        for item in items:
            if isinstance(item, Node):
                self.nodes.append(item)
            else:
                self.edges.append(item)

    def extend(self, other: GraphBatch) -> None:
        self.nodes.extend(other.nodes)
        self.edges.extend(other.edges)

    def __len__(self) -> int:
        return len(self.nodes) + len(self.edges)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.edges)

    def nodes_by_label(self) -> dict[type[Node], list[Node]]:
        """Nodes grouped by kind, duplicates removed; raises InvalidRecordError on a conflict."""
        return _unique(self.nodes, lambda n: n.label)

    def edges_by_type(self) -> dict[type[Edge], list[Edge]]:
        return _unique(self.edges, lambda e: e.rel_type)

    def in_deployment(self, deployment: str) -> GraphBatch:
        """This batch (built with default-deployment keys) moved to `deployment`: every
        `AirflowNode` gets the name and its key, edges their endpoints' keys. The same batch for
        the default deployment."""
        if deployment == DEFAULT_DEPLOYMENT:
            return self
        nodes = [
            n.model_copy(update={"deployment": deployment}) if n.deployment_scoped else n for n in self.nodes
        ]
        edges = [
            e.model_copy(
                update={
                    "src": rekey(e.source, e.src, deployment),
                    "dst": rekey(e.target, e.dst, deployment),
                }
            )
            for e in self.edges
        ]
        return GraphBatch(nodes, edges)

    def validate(self) -> None:
        """Check the whole batch before anything of it is written."""
        self.nodes_by_label()
        self.edges_by_type()


def _unique(items: Iterable[Node | Edge], kind: Any) -> dict[type, list[Any]]:
    seen: dict[tuple[str, Any], Node | Edge] = {}
    groups: dict[type, list[Any]] = {}
    for item in items:
        # An edge is identified by its endpoints (cheaper than its escaped `key`, and equivalent).
        ident = (kind(item), item.key if isinstance(item, Node) else (item.src, item.dst))
        earlier = seen.get(ident)
        if earlier is None:
            seen[ident] = item
            groups.setdefault(type(item), []).append(item)
        elif earlier != item:
            raise _conflict(ident, earlier, item)
    return groups


def _conflict(ident: tuple[str, Any], a: Node | Edge, b: Node | Edge) -> InvalidRecordError:
    da, db = properties(a), properties(b)
    field_name = next(k for k in da if da[k] != db.get(k))
    return InvalidRecordError(
        f"{ident[0]} {a.key!r}",
        field_name,
        "two records in one batch have the same key but different values "
        f"({_short(da[field_name])} vs {_short(db[field_name])})",
    )


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
