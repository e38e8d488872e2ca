"""The graph's layout version, and `contextgraph migrate`, which upgrades an older graph.

Version 1 (everything before deployments): keys without a deployment, no `deployment` property,
no `SchemaVersion` node. Version 2 (`model.SCHEMA_VERSION`): every node read from Airflow carries
its deployment and its key starts with it (not for `default`, whose keys are version 1's keys),
`(:Deployment)-[:HAS_DAG]->(:Dag)`, and `(:SchemaVersion {name: 'contextgraph', version: 2})`.

A store refuses to write into an older graph (`require_current`, run once per store object by
`GraphStore.write`): one line saying to run `contextgraph migrate`. An empty graph is stamped
with the current version on its first write.

`migrate(store, deployment)` gives the version-1 nodes that deployment (default `default`):
each kind's nodes without a `deployment` are read, given the name (and, for another name than
`default`, their new keys with the edges at them), and written back through the ordinary write
path (so content hashes stay right); nodes whose key changed are then deleted with their
relationships and their decisions are embedded again by the next `contextgraph embed`/ingest.
It is idempotent: a graph already at the current version is left alone, and a migration cut
short is finished by running it again (it only touches nodes still without a deployment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contextgraph import model as m
from contextgraph.errors import ConfigError, QueryRefusedError
from contextgraph.store.base import GraphStore
from contextgraph.store.queries import load


class SchemaVersionError(ConfigError):
    """The graph was written by an older contextgraph: `contextgraph migrate` upgrades it."""


@dataclass
class MigrationReport:
    """What `migrate` did: version before and after, nodes given a deployment per label, nodes
    whose key changed (re-created, old ones deleted), and decisions to embed again."""

    from_version: int | None
    to_version: int
    deployment: str
    nodes: dict[str, int] = field(default_factory=dict)
    rekeyed: int = 0
    to_embed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def graph_version(store: GraphStore) -> int | None:
    """The graph's layout version: its SchemaVersion node's, else 1 for a graph with DAGs or
    decisions written before versions existed, else None (an empty graph)."""
    try:
        rows = store.query(load("schema_version"))
    except QueryRefusedError:
        rows = []  # an embedded file from before the SchemaVersion table
    if rows and rows[0]["version"] is not None:
        return int(rows[0]["version"])
    rows = store.query(load("schema_version_has_data"))
    return 1 if rows and rows[0]["n"] else None


def legacy_deployment(store: GraphStore) -> str | None:
    """The deployment `migrate` gave a version-1 graph's nodes (None: not migrated from one)."""
    try:
        rows = store.query(load("schema_version_legacy"))
    except QueryRefusedError:
        return None
    return str(rows[0]["legacy"]) if rows and rows[0]["legacy"] else None


def require_current(store: GraphStore) -> None:
    """Check (once per store object) that the graph is at the current version before a write:
    SchemaVersionError (one line: run `contextgraph migrate`) for an older or newer one; an empty
    graph is stamped with the current version."""
    if getattr(store, "_schema_checked", False):
        return
    store._schema_checked = True  # type: ignore[attr-defined]  # before the stamp's own write
    try:
        version = graph_version(store)
        if version is None:
            store.write(m.GraphBatch(nodes=[m.SchemaVersion()]))
        elif version < m.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"this graph was written by an older contextgraph (schema version {version}, this one "
                f"writes {m.SCHEMA_VERSION}): run `contextgraph migrate` (or `contextgraph migrate "
                "--deployment NAME` to name the Airflow it came from) before writing to it"
            )
        elif version > m.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"this graph was written by a newer contextgraph (schema version {version}, this one "
                f"knows up to {m.SCHEMA_VERSION}): upgrade contextgraph"
            )
    except BaseException:
        store._schema_checked = False  # type: ignore[attr-defined]
        raise


def migrate(store: GraphStore, deployment: str = m.DEFAULT_DEPLOYMENT) -> MigrationReport:
    """Upgrade the graph to the current version (see the module's docstring); idempotent.

    `deployment`: the name the version-1 nodes get (they came from one Airflow). ConfigError for
    a name that is not a deployment name. Call `store.ensure_schema()` first (new tables/columns).
    """
    import re

    if not re.match(m.DEPLOYMENT_PATTERN, deployment):
        raise ConfigError(f"deployment {deployment!r}: use letters, digits, '.', '_', '-'")
    before = graph_version(store)
    report = MigrationReport(before, m.SCHEMA_VERSION, deployment)
    if before is not None and before >= m.SCHEMA_VERSION:
        return report
    store._schema_checked = True  # type: ignore[attr-defined]  # the migration writes an old graph
    if before is not None:
        _give_deployment(store, deployment, report)
    stamp = m.SchemaVersion(migrated_at=datetime.now(UTC), legacy_deployment=deployment if before else None)
    store.write(m.GraphBatch(nodes=[stamp]))
    if report.to_embed:
        store.rebuild_indexes()
    return report


def _give_deployment(store: GraphStore, deployment: str, report: MigrationReport) -> None:
    from contextgraph.governance.scope import read_edges, read_nodes

    renamed: dict[str, dict[str, str]] = {}  # label → old key → new key
    batch = m.GraphBatch()
    for node_type in m.NODE_TYPES:
        if not node_type.deployment_scoped:
            continue
        old = read_nodes(store, node_type, "WHERE n.deployment IS NULL")
        report.nodes[node_type.label] = len(old)
        for node in old:
            moved = node.model_copy(update={"deployment": deployment})
            batch.add(moved)
            if moved.key != node.key:
                renamed.setdefault(node_type.label, {})[node.key] = moved.key
    dags = read_nodes(store, m.Dag)
    url = next((str(r["source"]) for r in store.query(load("schema_version_sync_source"))), None)
    owner = m.Deployment(name=deployment, airflow_url=url)
    batch.add(owner, *(m.HasDag(src=owner.key, dst=d.key) for d in dags if d.deployment == deployment))
    if deployment != m.DEFAULT_DEPLOYMENT:
        new_dags = renamed.get("Dag", {})
        batch.add(*(m.HasDag(src=owner.key, dst=new_dags[d.key]) for d in dags if d.key in new_dags))
    if renamed:
        for edge_type in m.EDGE_TYPES:
            src_map = renamed.get(edge_type.source.label, {})
            dst_map = renamed.get(edge_type.target.label, {})
            if not (src_map or dst_map):
                continue
            for edge in read_edges(store, edge_type):
                if edge.src in src_map or edge.dst in dst_map:
                    update = {"src": src_map.get(edge.src, edge.src), "dst": dst_map.get(edge.dst, edge.dst)}
                    batch.add(edge.model_copy(update=update))
    store.write(batch)
    for label, keys in renamed.items():
        store._write(load("forget_delete_nodes").replace("{label}", label), {"keys": sorted(keys)})
        report.rekeyed += len(keys)
        if label == "Decision":
            report.to_embed = len(keys)
            store.delete_embeddings(sorted(keys))  # where the engine keeps them apart from the node
