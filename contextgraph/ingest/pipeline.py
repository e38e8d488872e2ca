"""One ingest as users run it (the CLI and the ingestion DAG): sync from Airflow, then embed.

Decisions new or changed by the sync are embedded after it, in batches. The sync's writes stand on
their own: if the embedding model cannot be loaded, that error comes after them, and the next
ingest (or `contextgraph embed`) embeds what is still pending.
"""

from __future__ import annotations

from datetime import timedelta

from contextgraph.config import Settings
from contextgraph.ingest.embeddings import embed_pending, embedder_from_settings
from contextgraph.ingest.selection import DagFilter
from contextgraph.ingest.source import AirflowSource
from contextgraph.ingest.sync import Progress, Sync, SyncOptions, SyncReport
from contextgraph.store import open_store
from contextgraph.store.migrate import require_current


def run_ingest(
    settings: Settings, *, full: bool = False, embed: bool = True, progress: Progress | None = None
) -> SyncReport:
    """Sync the configured Airflow into the configured store and embed what changed."""
    options = SyncOptions(
        deployment=settings.deployment,
        proposal_tasks=settings.proposal_tasks,
        reason_params=settings.reason_params,
        verdicts=settings.verdicts,
        overlap=timedelta(seconds=settings.sync_overlap_seconds),
        dag_filter=DagFilter(
            include=tuple(settings.include_dags),
            exclude=tuple(settings.exclude_dags),
            tags=tuple(settings.tags),
            exclude_tags=tuple(settings.exclude_tags),
        ),
        all_dags=settings.all_dags,
        feeder_depth=settings.feeder_depth,
        write_behind=settings.write_behind,
    )
    with open_store(settings) as store, AirflowSource(settings.airflow) as source:
        store.verify()
        store.ensure_schema()
        require_current(store)
        report = Sync(source, store, options, progress).run(full=full)
        if embed:
            embedder = embedder_from_settings(settings)
            step = (lambda n: progress("embeddings", n)) if progress else None
            report.embedded = embed_pending(store, embedder, progress=step).embedded
    return report
