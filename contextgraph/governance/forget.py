"""Forget, completely: erase an actor, decisions, a DAG's decisions or a customer's tickets, with
everything derived from them, and keep later syncs from bringing them back.

`plan_forget(store, ...)` finds what would go (a dry run); `forget(store, plan)` erases it:

- decisions (``--decision``, ``--dag [--before]``, ``--customer``): the Decision nodes with all their
  relationships (INFORMED_BY either way, OFFERED/CHOSE/DECIDED_BY/ASKED/AT_POINT/REVIEWED), their
  embeddings (Neo4j: a node property, so the vector and full-text index entries go with the node;
  embedded: the DecisionEmbedding rows), the Proposal nodes they reviewed (the AI's drafts), and the
  `conf` of their DAG runs (which carries the ticket). Dag, Task and TaskInstance nodes stay: they
  hold structure, not people's data.
- an actor (``--actor ID``): its Actor nodes go; its decisions stay as the organisation's precedent
  but point to the tombstone actor (`TOMBSTONE`, no name) and no longer carry its id in
  `responded_by` / `assigned_users`.

Sidecar indexes a store keeps beside its data are told through `store.after_forget(keys)` (a store
hook that does nothing by default); `store.rebuild_indexes()` rebuilds them from the graph.

Each forget writes one `ForgetAudit` node: kind, when, counts; never the erased ids or content.
Forgotten keys are remembered as salted SHA-256 hashes (`ForgottenKey` nodes; the salt is made
once per graph, `GraphSalt`): `Screen`, which the sync applies to every batch, drops forgotten
decisions and proposals (with their edges), clears forgotten runs' conf and re-points forgotten
actors to the tombstone, and counts what it skipped (`SyncReport.forgotten_skipped`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contextgraph import model as m
from contextgraph.errors import QueryRefusedError, StoreError
from contextgraph.governance.scope import read_nodes
from contextgraph.store.base import GraphStore
from contextgraph.store.queries import identifier, load, statements

TOMBSTONE = m.Actor(kind="system", actor_id="forgotten", name=None)
"""The actor a forgotten actor's decisions point to: no name, no team."""

_ACTOR_ID = "actor_id"  # hash namespace of actor ids (responded_by, assigned_users)


@dataclass
class ForgetPlan:
    """What a forget would erase. Keys are node keys; counts are what `counts()` reports."""

    kind: str
    decisions: list[str] = field(default_factory=list)
    """Decisions to delete."""
    proposals: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    """DAG runs whose conf is cleared."""
    actor_id: str | None = None
    actors: list[str] = field(default_factory=list)
    """Actor nodes to delete (their decisions are re-pointed to the tombstone)."""
    actor_decisions: list[str] = field(default_factory=list)
    informed_by: int = 0
    embeddings: int = 0

    @property
    def empty(self) -> bool:
        return not (self.decisions or self.actors or self.actor_decisions)

    def counts(self) -> dict[str, int]:
        """How many of each thing go (or, for an actor's decisions, are re-pointed)."""
        return {
            "decisions": len(self.decisions),
            "proposals": len(self.proposals),
            "run_confs": len(self.runs),
            "informed_by": self.informed_by,
            "embeddings": self.embeddings,
            "actors": len(self.actors),
            "decisions_repointed": len(self.actor_decisions),
        }


@dataclass
class ForgetReport:
    """What a forget did: the plan's counts, and the audit record's key."""

    kind: str
    counts: dict[str, int]
    audit_key: str
    at: datetime


# --- planning -------------------------------------------------------------------------------------


def plan_forget(
    store: GraphStore,
    *,
    actor: str | None = None,
    decisions: Sequence[str] = (),
    dag_id: str | None = None,
    before: datetime | None = None,
    customer: str | None = None,
) -> ForgetPlan:
    """Find what a forget of exactly one of `actor`, `decisions`, `dag_id` (optionally only decisions
    asked before `before`, UTC) or `customer` (text, case-insensitive, in a decision's subject, body,
    params, answer, reason, proposals or run conf) would erase. Raises ValueError when not exactly
    one is given. Reads only."""
    given = [x for x in (actor, list(decisions) or None, dag_id, customer) if x]
    if len(given) != 1:
        raise ValueError("name exactly one of: an actor, decisions, a DAG, a customer")
    if before is not None and dag_id is None:
        raise ValueError("--before applies to --dag only")
    if actor:
        return _plan_actor(store, actor)
    if decisions:
        found = {r["key"] for r in store.query(load("forget_decisions_found"), {"keys": list(decisions)})}
        return _with_derived(store, ForgetPlan("decision", sorted(found)))
    if dag_id:
        rows = store.query(load("forget_dag_decisions"), {"dag_id": dag_id})
        cut = _utc(before) if before else None
        keys = [r["key"] for r in rows if cut is None or (r["created_at"] and _utc(r["created_at"]) < cut)]
        return _with_derived(store, ForgetPlan("dag", sorted(keys)))
    assert customer is not None
    needle = customer.casefold()
    keys = []
    for row in store.query(load("forget_decision_texts"), {}):
        text = json.dumps({k: v for k, v in row.items() if k != "key"}, ensure_ascii=False, default=str)
        # JSON escapes quotes and newlines: match on the unescaped texts as well.
        plain = " ".join(str(v) for v in _flatten(row))
        if needle in plain.casefold() or needle in text.casefold():
            keys.append(row["key"])
    return _with_derived(store, ForgetPlan("customer", sorted(keys)))


def _plan_actor(store: GraphStore, actor_id: str) -> ForgetPlan:
    actors = sorted(r["key"] for r in store.query(load("forget_actors"), {"actor_id": actor_id}))
    named = sorted({r["key"] for r in store.query(load("forget_actor_decisions"), {"actor_id": actor_id})})
    return ForgetPlan("actor", actor_id=actor_id, actors=actors, actor_decisions=named)


def _with_derived(store: GraphStore, plan: ForgetPlan) -> ForgetPlan:
    if not plan.decisions:
        return plan
    proposals: set[str] = set()
    runs: set[str] = set()
    for row in store.query(load("forget_derived"), {"keys": plan.decisions}):
        proposals.update(k for k in row["proposals"] or [] if k)
        runs.update(k for k in row["runs"] or [] if k)
    plan.proposals, plan.runs = sorted(proposals), sorted(runs)
    rows = store.query(load("forget_informed_by"), {"keys": plan.decisions})
    plan.informed_by = sum(int(r["n"]) for r in rows)  # an edge between two forgotten ones counts twice
    plan.embeddings = int(
        sum(r["n"] for r in store.query(store.cypher("forget_embeddings"), {"keys": plan.decisions}))
    )
    return plan


def _flatten(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _flatten(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _flatten(v)
    elif value is not None:
        yield value


# --- erasing --------------------------------------------------------------------------------------


def ensure_schema(store: GraphStore) -> None:
    """Create the governance tables/constraints (ForgetAudit, ForgottenKey, GraphSalt); idempotent."""
    for statement in statements(store.cypher("forget_schema")):
        store._write(statement, {})


def forget(store: GraphStore, plan: ForgetPlan) -> ForgetReport:
    """Erase what the plan names (see the module's docstring) and write its audit record.

    The hashes are remembered first, so a forget stopped half-way is still never undone by a sync;
    running the same plan again finishes it. Raises StoreError when the store fails, and
    SchemaVersionError for a graph of an older version (before anything is erased).
    """
    from contextgraph.store.migrate import require_current

    require_current(store)  # an older graph: one line saying to run `contextgraph migrate`
    at = datetime.now(UTC)
    ensure_schema(store)
    salt = _salt(store)
    remembered = [("Decision", k) for k in plan.decisions] + [("Proposal", k) for k in plan.proposals]
    remembered += [("DagRun", k) for k in plan.runs] + [("Actor", k) for k in plan.actors]
    if plan.actor_id:
        remembered.append((_ACTOR_ID, plan.actor_id))
    rows = [{"hash": hash_key(salt, kind, key), "kind": kind, "at": at} for kind, key in remembered]
    if rows:
        store._write(load("forget_remember"), {"rows": store._adapt(rows)})

    if plan.decisions:
        store.delete_embeddings(plan.decisions)
        _delete(store, "Decision", plan.decisions)
        _delete(store, "Answer", plan.decisions)  # the reviewer's own answers, keyed like their decision
        try:  # their usefulness scores (contextgraph.retrieval.usefulness), where any were stored
            _delete(store, "PrecedentUsefulness", plan.decisions)
        except (QueryRefusedError, StoreError) as exc:  # the embedded store: no such table before any score
            if not store.missing_schema(exc):
                raise
    if plan.proposals:
        _delete(store, "Proposal", plan.proposals)
    if plan.runs:
        runs = [r.model_copy(update={"conf": None}) for r in _stored(store, m.DagRun, plan.runs)]
        store.write(m.GraphBatch(nodes=list(runs)))
    if plan.actor_id:
        _repoint(store, plan)
    store.after_forget(plan.decisions)

    counts = plan.counts()
    audit_key = str(uuid.uuid4())
    store._write(
        load("forget_audit"),
        {
            "key": audit_key,
            "kind": plan.kind,
            "at": store._adapt([{"at": at}])[0]["at"],
            "counts": json.dumps(counts),
        },
    )
    return ForgetReport(plan.kind, counts, audit_key, at)


def _repoint(store: GraphStore, plan: ForgetPlan) -> None:
    """Decisions of the forgotten actor: DECIDED_BY the tombstone, its id out of their fields."""
    ids = {plan.actor_id}
    decisions = [scrub_actor(d, ids) for d in _stored(store, m.Decision, plan.actor_decisions)]
    if plan.actors:
        store._write(load("forget_unlink_actor"), {"keys": plan.actors})
    edges: list[m.Edge] = [m.DecidedBy(src=d.key, dst=TOMBSTONE.key) for d in decisions]
    store.write(m.GraphBatch(nodes=[TOMBSTONE, *decisions], edges=edges))
    if plan.actors:
        _delete(store, "Actor", plan.actors)


def scrub_actor(decision: m.Decision, ids: set[str | None]) -> m.Decision:
    """The decision without these actor ids in `responded_by` and `assigned_users`."""
    update: dict[str, Any] = {}
    if decision.responded_by in ids:
        update["responded_by"] = TOMBSTONE.actor_id
    if any(u in ids for u in decision.assigned_users):
        users = decision.assigned_users
        update["assigned_users"] = [u if u not in ids else TOMBSTONE.actor_id for u in users]
    return decision.model_copy(update=update) if update else decision


def _delete(store: GraphStore, label: str, keys: Sequence[str]) -> None:
    cypher = load("forget_delete_nodes").replace("{label}", identifier(label))
    for start in range(0, len(keys), store.batch_size):
        store._write(cypher, {"keys": list(keys[start : start + store.batch_size])})


def _stored(store: GraphStore, node_type: type[m.Node], keys: Sequence[str]) -> list[Any]:
    """The stored nodes as models (JSON columns parsed back), to be rewritten through `store.write`."""
    return read_nodes(store, node_type, "WHERE n.key IN $keys", {"keys": list(keys)})


def _salt(store: GraphStore) -> str:
    rows = store._write(load("forget_salt"), {"salt": secrets.token_hex(16)})
    return str(rows[0]["salt"]) if rows else str(store.query(load("forget_read_salt"))[0]["salt"])


def hash_key(salt: str, kind: str, key: str) -> str:
    """The remembered form of a forgotten key: sha256 of salt, kind and key (hex)."""
    return hashlib.sha256(f"{salt}\x00{kind}\x00{key}".encode()).hexdigest()


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


# --- the sync's screen ----------------------------------------------------------------------------


class Screen:
    """Applied by the sync to every batch before it is written: keeps forgotten data out.

    Loads the remembered hashes once (lazily; a graph where nothing was forgotten costs one query
    and then nothing). `skipped`: forgotten nodes dropped or rewritten so far.
    """

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.skipped = 0
        self._salt: str | None = None
        self._hashes: set[str] | None = None
        self._legacy: str | None = None

    def _load(self) -> set[str]:
        if self._hashes is None:
            try:
                rows = self.store.query(load("forget_read_salt"))
                self._salt = str(rows[0]["salt"]) if rows else None
                self._hashes = (
                    {r["hash"] for r in self.store.query(load("forget_remembered"))} if self._salt else set()
                )
            except QueryRefusedError as exc:
                if not self.store.missing_schema(exc):
                    raise
                self._hashes = set()  # the governance tables do not exist: nothing was ever forgotten
        return self._hashes

    def _forgotten(self, kind: str, key: str | None) -> bool:
        assert self._salt is not None
        return key is not None and hash_key(self._salt, kind, key) in (self._hashes or set())

    def _forgotten_node(self, kind: str, node: m.AirflowNode) -> bool:
        """Whether this node was forgotten: by its key, or, in the deployment a version-1 graph was
        migrated to (`contextgraph migrate --deployment NAME`), by the key it had before."""
        if self._forgotten(kind, node.key):
            return True
        if self._legacy is None:
            from contextgraph.store.migrate import legacy_deployment

            self._legacy = legacy_deployment(self.store) or m.DEFAULT_DEPLOYMENT
        if node.deployment != self._legacy or node.deployment == m.DEFAULT_DEPLOYMENT:
            return False
        return self._forgotten(kind, node.model_copy(update={"deployment": m.DEFAULT_DEPLOYMENT}).key)

    def __call__(self, batch: m.GraphBatch) -> m.GraphBatch:
        """The batch without forgotten data (a new batch; the same one when nothing was forgotten)."""
        if not self._load() or not batch:
            return batch
        gone: set[str] = set()
        actors: set[str] = set()
        nodes: list[m.Node] = []
        for node in batch.nodes:
            # An Answer is keyed like its decision and forgotten with it.
            kind = "Decision" if isinstance(node, m.Answer) else node.label
            if isinstance(node, m.Decision | m.Proposal | m.Answer) and self._forgotten_node(kind, node):
                gone.add(node.key)
                self.skipped += 1
                continue
            if isinstance(node, m.Actor) and self._forgotten("Actor", node.key):
                actors.add(node.key)
                self.skipped += 1
                continue
            if isinstance(node, m.DagRun) and node.conf is not None and self._forgotten_node("DagRun", node):
                node = node.model_copy(update={"conf": None})
            if isinstance(node, m.Decision):
                ids = {u for u in [node.responded_by, *node.assigned_users] if self._forgotten(_ACTOR_ID, u)}
                if ids:
                    node = scrub_actor(node, ids)
            nodes.append(node)
        edges: list[m.Edge] = []
        for edge in batch.edges:
            if edge.src in gone or edge.dst in gone:
                continue
            if edge.dst in actors:
                edge = m.DecidedBy(src=edge.src, dst=TOMBSTONE.key)
                if TOMBSTONE not in nodes:
                    nodes.append(TOMBSTONE)
            edges.append(edge)
        return m.GraphBatch(nodes=nodes, edges=edges)
