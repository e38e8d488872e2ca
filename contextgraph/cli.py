"""The `contextgraph` command: a thin click layer over the library.

Output is a rich table for people and JSON with `--json`. Every failure we expect exits 1 with
one line saying what went wrong and what to do; `--debug` shows the traceback as well.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from contextgraph.config import Settings
from contextgraph.errors import ContextGraphError
from contextgraph.ingest.sync import SyncReport
from contextgraph.store import GraphStore, open_store

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=True)


class State:
    """What the group's options decided, handed to each command."""

    def __init__(self, overrides: dict[str, Any], debug: bool) -> None:
        self.overrides = overrides
        self.debug = debug

    def settings(self) -> Settings:
        try:
            settings = Settings()
        except ValidationError as exc:
            first = exc.errors()[0]
            raise click.ClickException(f"invalid setting {first['loc']}: {first['msg']}") from None
        neo4j = {k: v for k, v in self.overrides.items() if k in ("uri", "username", "database") and v}
        if self.overrides.get("password"):
            neo4j["password"] = SecretStr(self.overrides["password"])
        top = {}
        if self.overrides.get("store_path"):
            top["store_path"] = Path(self.overrides["store_path"])
        return settings.model_copy(update={**top, "neo4j": settings.neo4j.model_copy(update=neo4j)})

    def store(self) -> GraphStore:
        store = open_store(self.settings())
        store.verify()
        return store


def handle_errors(command: F) -> F:
    """Turn our errors into one line and exit 1 (the traceback too with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ContextGraphError as exc:
            if click.get_current_context().find_object(State).debug:  # type: ignore[union-attr]
                console.print_exception()
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def emit(data: Any, as_json: bool, table: Callable[[], Table] | None = None) -> None:
    if as_json or table is None:
        click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        Console().print(table())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--neo4j-uri", "uri", help="Bolt URI of a Neo4j server [env NEO4J_URI]; unset: embedded store.")
@click.option("--neo4j-username", "username", help="[env NEO4J_USERNAME, default neo4j]")
@click.option("--neo4j-password", "password", help="[env NEO4J_PASSWORD]")
@click.option("--neo4j-database", "database", help="[env NEO4J_DATABASE, default neo4j]")
@click.option("--store-path", help="File of the embedded store [env CONTEXTGRAPH_STORE_PATH].")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="contextgraph")
@click.pass_context
def cli(ctx: click.Context, /, debug: bool, **overrides: Any) -> None:
    """Human decisions in Airflow as a context graph for AI agents."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = State(overrides, debug)


@cli.command()
@click.pass_obj
@handle_errors
def schema(state: State) -> None:
    """Create the constraints, tables and indexes (safe to run again)."""
    with state.store() as store:
        store.ensure_schema()
    click.echo(f"schema ready ({store.dialect}: {store.location})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def stats(state: State, as_json: bool) -> None:
    """Count nodes by label and relationships by type."""
    with state.store() as store:
        store.prepare_read()  # its tables must exist before anything can be counted
        counts = store.stats()
    counts["store"] = store.dialect  # type: ignore[assignment]

    def table() -> Table:
        t = Table("kind", "name", "count", title=f"contextgraph ({store.dialect})")
        for kind in ("nodes", "relationships"):
            for name, n in counts[kind].items():
                t.add_row(kind, name, str(n))
        return t

    emit(counts, as_json, table)


def _deployment_name(value: str | None) -> str | None:
    """A --deployment value checked (click.BadParameter naming what a deployment name may hold)."""
    import re

    from contextgraph.model import DEPLOYMENT_PATTERN

    if value is not None and not re.match(DEPLOYMENT_PATTERN, value):
        raise click.BadParameter(f"{value!r}: a deployment name holds letters, digits, '.', '_', '-'")
    return value


@cli.command()
@click.option("--full", is_flag=True, help="Re-read everything, not only what changed since the last sync.")
@click.option("--airflow-url", help="Airflow API server [env AIRFLOW_URL].")
@click.option(
    "--deployment",
    callback=lambda ctx, param, value: _deployment_name(value),
    help="Name of this Airflow in the graph [env CONTEXTGRAPH_DEPLOYMENT, default 'default'].",
)
@click.option("--no-embed", is_flag=True, help="Do not embed the decisions the sync brought.")
@click.option(
    "--include-dags",
    multiple=True,
    help="Only DAGs matching these dag_id patterns [env CONTEXTGRAPH_INCLUDE_DAGS].",
)
@click.option(
    "--exclude-dags",
    multiple=True,
    help="Skip DAGs matching these dag_id patterns [env CONTEXTGRAPH_EXCLUDE_DAGS].",
)
@click.option("--tags", multiple=True, help="Only DAGs with one of these tags [env CONTEXTGRAPH_TAGS].")
@click.option(
    "--exclude-tags", multiple=True, help="Skip DAGs with any of these tags [env CONTEXTGRAPH_EXCLUDE_TAGS]."
)
@click.option(
    "--all-dags",
    is_flag=True,
    default=None,
    help="Read runs of every DAG, not only of those with decision points and their asset feeders "
    "[env CONTEXTGRAPH_ALL_DAGS].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
@handle_errors
def ingest(
    state: State,
    /,
    full: bool,
    airflow_url: str | None,
    deployment: str | None,
    no_embed: bool,
    as_json: bool,
    all_dags: bool | None,
    **filters: tuple[str, ...],
) -> None:
    """Sync DAGs, runs, task instances and HITL decisions from Airflow into the graph, and embed them.

    Patterns are shell-style (`finance_*`); each option may be repeated or take comma-separated values,
    and replaces its environment setting.
    """
    from contextgraph.config import split_names
    from contextgraph.ingest.pipeline import run_ingest

    settings = state.settings()
    if deployment:
        settings = settings.model_copy(update={"deployment": deployment})
    if airflow_url:
        settings = settings.model_copy(
            update={"airflow": settings.airflow.model_copy(update={"url": airflow_url})}
        )
    update: dict[str, Any] = {
        name: [n for value in values for n in split_names(value)]
        for name, values in filters.items()
        if values
    }
    if all_dags is not None:
        update["all_dags"] = all_dags
    settings = settings.model_copy(update=update)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as bar:
        stages: dict[str, TaskID] = {}

        def progress(stage: str, n: int) -> None:
            if stage not in stages:
                stages[stage] = bar.add_task(stage, total=None)
            bar.advance(stages[stage], n)

        report = run_ingest(settings, full=full, embed=not no_embed, progress=progress)
    emit(report.as_dict(), as_json, lambda: _report_table(report))


def _report_table(report: SyncReport) -> Table:
    title = (
        f"ingest: {report.written} written, {len(report.rejected)} rejected, {report.api_calls} API calls, "
    )
    without = ", ".join(f"{n} without {what}" for what, n in report.as_dict()["without"].items() if n)
    title += f"decisions {without}, " if without else ""
    dags = report.as_dict()["dags"]
    tracked = sum(v["count"] for v in dags["tracked"].values())
    skipped = ", ".join(f"{v['count']} {reason}" for reason, v in dags["skipped"].items())
    title += f"DAGs: {tracked} read" + (f", skipped {skipped}" if skipped else "") + ", "
    table = Table(
        "kind", "fetched", "created", "updated", "unchanged", title=title + f"{report.seconds:.1f}s"
    )
    kinds = sorted(set(report.created) | set(report.updated) | set(report.unchanged))
    for kind in kinds:
        table.add_row(
            kind, "", str(report.created[kind]), str(report.updated[kind]), str(report.unchanged[kind])
        )
    for stage, n in report.fetched.items():
        table.add_row(f"(API) {stage}", str(n), "", "", "")
    for rejected in report.rejected:
        table.add_row(
            f"[red]rejected[/red] {rejected.record}", "", "", "", f"{rejected.field}: {rejected.reason}"
        )
    return table


@cli.group()
def slack() -> None:
    """The Slack review bridge: reviewers answer HITL tasks in Slack."""


@slack.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=3000, show_default=True, type=int, help="Port to listen on.")
@click.option("--airflow-url", help="Airflow API server the answers go to [env AIRFLOW_URL].")
@click.pass_obj
@handle_errors
def slack_serve(state: State, host: str, port: int, airflow_url: str | None) -> None:
    """Receive Slack interactions at /slack/interactions and answer the HITL tasks in Airflow."""
    from contextgraph.slack.serve import serve

    serve(host, port, airflow_url=airflow_url, debug=state.debug)


@cli.command()
@click.option("--neo4j", "use_neo4j", is_flag=True, help="Load into the Neo4j of NEO4J_URI / --neo4j-uri.")
@click.option(
    "--store-path", "demo_path", type=click.Path(dir_okay=False, path_type=Path), help="Demo store file."
)
@click.pass_obj
@handle_errors
def demo(state: State, use_neo4j: bool, demo_path: Path | None) -> None:
    """Build a realistic demo graph (60 support-ticket reviews) and ask it for precedents.

    Offline, in its own embedded store (`demo.lbdb` next to the default store) unless --neo4j;
    running it again writes nothing new.
    """
    from contextgraph import demo as scenario

    settings = state.settings()
    if use_neo4j:
        if not settings.neo4j.uri:
            raise click.ClickException("--neo4j needs NEO4J_URI (or --neo4j-uri) pointing at a Neo4j server")
        store = open_store(settings)
        store.verify()
        where, prefix = f"Neo4j at {settings.neo4j.uri}", "contextgraph"
    else:
        path = demo_path or (
            Path(state.overrides["store_path"]) if state.overrides.get("store_path") else None
        )
        path = path or scenario.default_path()
        settings = settings.model_copy(
            update={"store_path": path, "neo4j": settings.neo4j.model_copy(update={"uri": None})}
        )
        store = open_store(settings)
        where, prefix = f"the embedded store {path}", f"contextgraph --store-path {path}"
    with store:
        out = Console() if Console().is_terminal else Console(width=120)
        scenario.tour(store, settings, out, where=where, cli_prefix=prefix)


@cli.command()
def browser() -> None:
    """How to explore the graph in Neo4j Browser: the style file and the named queries."""
    from contextgraph.render.browser import browser_queries, grass_path

    out = Console()
    out.print(
        "[bold]Neo4j Browser[/bold] (http://localhost:7474, or Neo4j Desktop / Aura):\n"
        f"  1. Style: drag [cyan]{grass_path()}[/cyan] onto the Browser window "
        "(or run `:style` and paste its content): each label gets a colour and a caption.\n"
        "  2. Parameters: run the `:param` lines shown with a query, then paste the query.\n"
        "  3. Queries (also as files in the folder of the style file):"
    )
    for query in browser_queries():
        params = "   ".join(query.param_lines)
        out.print(f"\n[bold]{query.name}[/bold] — {query.title}\n  [dim]{params}[/dim]")
    out.print("\nPrint one with: contextgraph browser-query NAME")


@cli.command("browser-query")
@click.argument("name")
def browser_query(name: str) -> None:
    """Print one Neo4j Browser query (its :param lines first) to paste into Browser."""
    from contextgraph.render import browser as queries

    try:
        query = queries.browser_query(name)
    except KeyError:
        names = ", ".join(q.name for q in queries.browser_queries())
        raise click.ClickException(f"no Browser query {name!r}; there are: {names}") from None
    click.echo("\n".join([*(f"{line};" for line in query.param_lines), query.body]))


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["graphml", "json"]), default="graphml", show_default=True)
@click.option("--decision", "key", help="Only this decision's trace (its key), not the whole graph.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout)."
)
@click.pass_obj
@handle_errors
def export(state: State, fmt: str, key: str | None, output: Path | None) -> None:
    """Export the graph, or one decision's trace, as GraphML (Gephi, yEd) or node-link JSON."""
    from contextgraph.render import export as exporter

    with state.store() as store:
        store.prepare_read()
        graph = exporter.decision_trace(store, key) if key else exporter.whole_graph(store)
    text = exporter.write(graph, output, fmt)  # type: ignore[arg-type]
    if text is not None:
        click.echo(text, nl=False)
    else:
        console.print(
            f"wrote {graph.number_of_nodes()} nodes, {graph.number_of_edges()} relationships to {output}"
        )


@cli.command()
@click.argument("key")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Picture file: .png, .svg or .pdf.",
)
@click.pass_obj
@handle_errors
def draw(state: State, key: str, output: Path) -> None:
    """Draw one decision's trace (DAG, run, task instances, options, reviewer, AI proposal, precedents)."""
    from contextgraph.render.draw import draw_trace
    from contextgraph.render.export import decision_trace

    with state.store() as store:
        graph = decision_trace(store, key)
    draw_trace(graph, output)
    console.print(
        f"drew {graph.number_of_nodes()} nodes, {graph.number_of_edges()} relationships to {output}"
    )


# --- precedent search (contextgraph.retrieval.precedents) --------------------------------------------------


def _open_for_search(state: State) -> GraphStore:
    store = state.store()
    store.prepare_read()  # tables (and the embedding table) must exist to be read
    return store


@cli.command()
@click.option(
    "--batch-size", default=2000, show_default=True, type=int, help="Decisions per embedding batch."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
@handle_errors
def embed(state: State, batch_size: int, as_json: bool) -> None:
    """Embed the decisions whose embedding is missing or out of date [env CONTEXTGRAPH_EMBEDDING_MODEL]."""
    from contextgraph.ingest.embeddings import embed_pending, embedder_from_settings
    from contextgraph.store.migrate import require_current

    embedder = embedder_from_settings(state.settings())
    with _open_for_search(state) as store:
        require_current(store)  # an older graph: one line saying to run `contextgraph migrate`
        report = embed_pending(store, embedder, batch_size=batch_size)
    data: dict[str, Any] = {"model": report.model, "embedded": report.embedded, "unchanged": report.unchanged}
    data["seconds"] = round(report.seconds, 2)
    if as_json:
        emit(data, True)
    else:
        click.echo(f"embedded {report.embedded} decisions with {report.model} in {report.seconds:.1f} s")


@cli.command()
@click.argument("text")
@click.option("--dag", "dag_id", help="Only decisions of this DAG.")
@click.option("--task", "task_id", help="Only decisions of this task (decision point).")
@click.option("--chosen", help="Only decisions where this option was chosen.")
@click.option("--since", type=click.DateTime(), help="Only decisions answered at or after (UTC).")
@click.option(
    "--deployment",
    callback=lambda ctx, param, value: _deployment_name(value),
    help="Only decisions of this Airflow deployment.",
)
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 100), help="How many.")
@click.option("--words-only", is_flag=True, help="Rank by words only (no embedding model needed).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def similar(
    state: State,
    text: str,
    dag_id: str | None,
    task_id: str | None,
    chosen: str | None,
    since: Any,
    deployment: str | None,
    k: int,
    words_only: bool,
    as_json: bool,
) -> None:
    """Past human decisions most like TEXT, best first, with their reasons."""
    from contextgraph.ingest.embeddings import embedder_from_settings
    from contextgraph.retrieval.precedents import find_similar_decisions

    settings = state.settings()
    embedder = None if words_only else embedder_from_settings(settings)
    with _open_for_search(state) as store:
        found = find_similar_decisions(
            store,
            embedder,
            text,
            dag_id=dag_id,
            task_id=task_id,
            chosen=chosen,
            since=since,
            deployment=deployment,
            k=k,
            airflow_url=settings.airflow.url,
        )
        if not found and (dag_id or task_id or chosen or since):
            click.echo(_why_nothing(store, dag_id, task_id, chosen, since), err=True)

    def table() -> Table:
        t = Table(
            "#",
            "score",
            "subject",
            "chosen",
            "reason",
            "reviewer",
            "useful",
            "note",
            "link",
            title="similar decisions",
        )
        for rank, p in enumerate(found, start=1):
            chosen_text = ", ".join(p.chosen_options)
            useful = f"{p.usefulness:.2f} of {p.shown}" if p.usefulness is not None else ""
            note = p.notes().strip(" []")
            t.add_row(
                str(rank),
                f"{p.score:.3f}",
                p.subject,
                chosen_text,
                p.reason or "",
                p.reviewer or "",
                useful,
                note,
                p.url,
            )
        return t

    emit([p.model_dump(mode="json") for p in found], as_json, table)


def _why_nothing(
    store: GraphStore, dag_id: str | None, task_id: str | None, chosen: str | None, since: Any
) -> str:
    """One line: which filter of a precedent search keeps no decision (a typo in a DAG id, a task
    or an option), naming what the graph has."""
    from contextgraph.store.queries import load

    since_utc = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    row = store.query(
        load("similar_filters"), {"dag_id": dag_id, "task_id": task_id, "chosen": chosen, "since": since_utc}
    )[0]
    why = []
    if dag_id and not row["of_dag"]:
        why.append(f"no decision of DAG {dag_id!r} (DAGs with decisions: {', '.join(sorted(row['dags']))})")
    if task_id and not row["of_task"]:
        why.append(f"no decision at task {task_id!r} (decision points: {', '.join(sorted(row['tasks']))})")
    if chosen and not row["with_chosen"]:
        why.append(f"no decision chose {chosen!r} (option labels are matched exactly)")
    if since is not None and not row["since"]:
        why.append(f"no decision answered since {since_utc:%Y-%m-%d %H:%M} UTC")
    if not why:
        why.append("no decision matches all the filters together")
    return f"nothing found of {row['decisions']} decisions: " + "; ".join(why)


@cli.command()
@click.argument("text", required=False)
@click.option("--dag", "dag_id", help="Only decisions of this DAG.")
@click.option("--task", "task_id", help="Only decisions of this task (decision point).")
@click.option("--k", default=3, show_default=True, type=click.IntRange(1, 20), help="How many lessons.")
@click.option(
    "--deployment",
    callback=lambda ctx, param, value: _deployment_name(value),
    help="Only decisions of this Airflow deployment.",
)
@click.option("--words-only", is_flag=True, help="Rank by words only (no embedding model needed).")
@click.option("--retire", "retire_id", metavar="ID", help="Retire the lesson with this id (needs --why).")
@click.option("--why", help="Why the lesson is retired (shown with its decisions).")
@click.option("--by", "by", help="Who retires or restores it [default: $USER].")
@click.option("--restore", "restore_id", metavar="ID", help="Un-retire the lesson with this id.")
@click.option("--retired", "list_retired", is_flag=True, help="List retired lessons.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def lessons(
    state: State,
    text: str | None,
    dag_id: str | None,
    task_id: str | None,
    k: int,
    deployment: str | None,
    words_only: bool,
    retire_id: str | None,
    why: str | None,
    by: str | None,
    restore_id: str | None,
    list_retired: bool,
    as_json: bool,
) -> None:
    """What past decisions like TEXT teach: lessons (with their ids) with option shares, reason,
    exceptions. --retire ID --why "…" marks a lesson outdated: its decisions stay, rank below current
    ones and say why; --restore ID undoes it; --retired lists them."""
    from contextgraph.retrieval import supersede

    actions = [bool(text), bool(retire_id), bool(restore_id), list_retired]
    if sum(actions) != 1:
        raise click.UsageError("give TEXT, or one of --retire ID, --restore ID, --retired")
    who = by or os.environ.get("USER") or "unknown"
    if retire_id or restore_id or list_retired:
        with state.store() as store:
            store.prepare_read()
            if retire_id:
                if not why or not why.strip():
                    raise click.UsageError("--retire needs --why with the reason")
                record = supersede.retire(store, retire_id, why=why, by=who)
                data: Any = {**record.__dict__, "message": f"{record.key} {record.reason()}"}
                if as_json:
                    emit(data, True)
                else:
                    click.echo(data["message"])
            elif restore_id:
                done = supersede.restore(store, restore_id, by=who)
                message = f"restored {restore_id}" if done else f"{restore_id} was not retired"
                if as_json:
                    emit({"key": restore_id, "restored": done}, True)
                else:
                    click.echo(message)
            else:
                rows = [r.__dict__ for r in supersede.retirements(store, active_only=False)]

                def table() -> Table:
                    t = Table("lesson", "point", "decided", "why", "by", "at", "active", title="retired")
                    for r in rows:
                        t.add_row(
                            r["key"],
                            f"{r['dag_id']}/{r['task_id']}",
                            r["decided"],
                            r["why"],
                            r["retired_by"],
                            str(r["retired_at"]),
                            "yes" if r["active"] else "restored",
                        )
                    return t

                emit(rows, as_json, table)
        return
    from contextgraph.ingest.embeddings import embedder_from_settings
    from contextgraph.retrieval.precedents import find_lessons, lessons_prompt

    assert text is not None
    embedder = None if words_only else embedder_from_settings(state.settings())
    with _open_for_search(state) as store:
        found = find_lessons(
            store, embedder, text, k=k, dag_id=dag_id, task_id=task_id, deployment=deployment
        )
    if as_json:
        emit([lesson.model_dump(mode="json") for lesson in found], True)
    else:
        click.echo(lessons_prompt(found) or "no lessons: no answered decisions match")


@cli.command()
@click.option(
    "--deployment",
    callback=lambda ctx, param, value: _deployment_name(value),
    help="Name of the Airflow an older graph came from (default 'default').",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
@handle_errors
def migrate(state: State, deployment: str | None, as_json: bool) -> None:
    """Upgrade a graph written by an older contextgraph to this version (safe to run again)."""
    from contextgraph.model import DEFAULT_DEPLOYMENT
    from contextgraph.store.migrate import migrate as run_migrate

    with state.store() as store:
        store.ensure_schema()
        report = run_migrate(store, deployment or DEFAULT_DEPLOYMENT)
    if as_json:
        emit(report.as_dict(), True)
    elif report.from_version is not None and report.from_version >= report.to_version:
        click.echo(f"the graph is at schema version {report.to_version} already: nothing to do")
    elif report.from_version is None:
        click.echo(f"an empty graph: marked as schema version {report.to_version}")
    else:
        moved = sum(report.nodes.values())
        click.echo(
            f"migrated schema version {report.from_version} → {report.to_version}: {moved} nodes given "
            f"deployment {report.deployment!r}"
            + (f", {report.rekeyed} re-keyed; run `contextgraph embed`" if report.rekeyed else "")
        )


@cli.command()
@click.pass_obj
@handle_errors
def reindex(state: State) -> None:
    """Rebuild the embedded store's word (BM25) and vector index beside its file (Neo4j: nothing to do)."""
    with _open_for_search(state) as store:
        info = store.rebuild_indexes()
    if not info:
        click.echo("this store keeps its full-text and vector indexes itself: nothing to rebuild")
    else:
        decisions, model = info.get("decisions", 0), info.get("model")
        click.echo(f"rebuilt the search index: {decisions} decisions, model {model}")


@cli.command()
@click.argument("key")
@click.option("--markdown", "fmt", flag_value="markdown", default=True, help="Print markdown (default).")
@click.option("--json", "fmt", flag_value="json", help="Print JSON.")
@click.option(
    "--png",
    "--svg",
    "picture",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the trace graph into this file (.png, .svg or .pdf; needs contextgraph[viz]).",
)
@click.pass_obj
@handle_errors
def trace(state: State, key: str, fmt: str, picture: Path | None) -> None:
    """One decision in context: upstream tasks, AI proposal, options, choice, reason, what followed."""
    from contextgraph.retrieval.precedents import get_decision_trace

    settings = state.settings()
    with _open_for_search(state) as store:
        try:
            found = get_decision_trace(store, key, airflow_url=settings.airflow.url)
        except LookupError as exc:
            raise click.ClickException(f"{exc.args[0]}: list keys with `contextgraph similar`") from None
        if picture is not None:
            from contextgraph.render.draw import draw_trace
            from contextgraph.render.export import decision_trace

            draw_trace(decision_trace(store, key), picture)
            console.print(f"drew the trace into {picture}")
    if fmt == "json":
        emit(found.model_dump(mode="json"), True)
    else:
        click.echo(found.to_markdown(), nl=False)


def _param(value: str) -> tuple[str, Any]:
    name, sep, raw = value.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{value!r}: expected NAME=VALUE")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


@cli.command()
@click.argument("query")
@click.option("--param", "params", multiple=True, help="NAME=VALUE (VALUE read as JSON if it is JSON).")
@click.option("--timeout", default=10.0, show_default=True, type=float, help="Seconds before it is stopped.")
@click.option(
    "--limit", "row_limit", default=1000, show_default=True, type=int, help="At most this many rows."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def cypher(
    state: State, query: str, params: tuple[str, ...], timeout: float, row_limit: int, as_json: bool
) -> None:
    """Run a read-only Cypher QUERY (anything that would write, or calls a procedure or function
    not on the read-only allow-list, is refused). A result cut by --limit says so on stderr."""
    from contextgraph.tools.agent import run_read_cypher

    if timeout <= 0 or row_limit < 1:
        raise click.BadParameter("--timeout and --limit must be positive")
    values = dict(_param(p) for p in params)
    with _open_for_search(state) as store:
        result = run_read_cypher(store, query, values, timeout=timeout, row_limit=row_limit, max_chars=10**12)
    rows = result.rows
    if result.truncated:
        click.echo(result.note, err=True)

    def table() -> Table:
        columns = list(rows[0]) if rows else []
        title = f"{len(rows)} rows" + (f" — {result.note}" if result.truncated else "")
        t = Table(*columns, title=title)
        for row in rows:
            t.add_row(*(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in row.values()))
        return t

    emit(rows, as_json, table)


@cli.command()
@click.option(
    "--timeout", default=10.0, show_default=True, type=float, help="Seconds a read_cypher query may run."
)
@click.option(
    "--row-limit", default=1000, show_default=True, type=click.IntRange(1), help="Rows read_cypher returns."
)
@click.option(
    "--scope",
    help="Only this part of the graph: dag=ID, point=DAG.TASK, deployment=NAME, comma-separated.",
)
@click.pass_obj
@handle_errors
def mcp(state: State, timeout: float, row_limit: int, scope: str | None) -> None:
    """Serve the precedent tools to MCP clients over stdio (needs contextgraph[agents])."""
    try:
        from contextgraph.tools.mcp import PrecedentTools, serve
    except ImportError as exc:
        raise click.ClickException(f"{exc}: pip install 'contextgraph[agents]'") from None
    from contextgraph.governance.scope import Scope

    bound = Scope.parse(scope) if scope else None
    serve(PrecedentTools(state.settings(), timeout=timeout, row_limit=row_limit, scope=bound))


def main() -> None:
    cli()


@cli.command()
@click.option("--actor", "actor_id", help="An actor id (Airflow or Slack user): its decisions stay, unnamed.")
@click.option("--decision", "decisions", multiple=True, help="A decision key (repeatable).")
@click.option("--dag", "dag_id", help="Every decision of this DAG (see --before).")
@click.option("--before", type=click.DateTime(), help="With --dag: only decisions asked before (UTC).")
@click.option("--customer", help="Every decision whose ticket, answer or proposal mentions this text.")
@click.option("--yes", is_flag=True, help="Erase now (without it: a dry run that shows what would go).")
@click.option("--rebuild-indexes", is_flag=True, help="Afterwards, rebuild the store's sidecar indexes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
@handle_errors
def forget(
    state: State,
    actor_id: str | None,
    decisions: tuple[str, ...],
    dag_id: str | None,
    before: Any,
    customer: str | None,
    yes: bool,
    rebuild_indexes: bool,
    as_json: bool,
) -> None:
    """Erase an actor, decisions, a DAG's decisions or a customer's tickets, with everything derived
    (embeddings, index entries, INFORMED_BY edges, proposals, run conf); later syncs skip them.
    Dry run unless --yes. Each erasure leaves an audit record (what kind, when, counts)."""
    from contextgraph.governance import forget as governance

    with state.store() as store:
        store.prepare_read()  # its tables must exist before anything can be read
        try:
            plan = governance.plan_forget(
                store, actor=actor_id, decisions=decisions, dag_id=dag_id, before=before, customer=customer
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        data: dict[str, Any] = {"kind": plan.kind, "dry_run": not yes, "counts": plan.counts()}
        if plan.empty:
            data["message"] = "nothing matches: nothing to forget"
        elif yes:
            report = governance.forget(store, plan)
            data["audit"] = report.audit_key
            if rebuild_indexes:
                store.rebuild_indexes()
    if as_json:
        emit(data, True)
        return
    if plan.empty:
        click.echo(data["message"])
        return
    what = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in data["counts"].items() if n)
    suffix = "" if yes else " (dry run; --yes to erase)"
    click.echo(f"{'forgot' if yes else 'would forget'}: {what}{suffix}")


@cli.command()
@click.option("--outdated", is_flag=True, help="Only precedents flagged 'this lesson may be outdated'.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def usefulness(state: State, outdated: bool, as_json: bool) -> None:
    """Score each precedent by what happened to the drafts it informed (INFORMED_BY + verdict), store
    the scores, and list them, most useful first; flags precedents that led to overrides repeatedly."""
    from contextgraph.retrieval import usefulness as learn

    with state.store() as store:
        store.prepare_read()
        found = sorted(learn.refresh(store).values(), key=lambda u: (-u.score, u.key))
    if outdated:
        found = [u for u in found if u.maybe_outdated]
    rows = [u.__dict__ for u in found]

    def table() -> Table:
        out = Table("precedent", "shown", "approved", "overridden", "escalated", "score", "flag")
        for u in found:
            flag = "this lesson may be outdated" if u.maybe_outdated else ""
            counts = (str(x) for x in (u.shown, u.approved, u.overridden, u.escalated))
            out.add_row(u.key, *counts, f"{u.score:.2f}", flag)
        return out

    emit(rows, as_json, table)
