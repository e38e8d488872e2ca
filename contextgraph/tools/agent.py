"""Precedent tools for AI agents (pydantic-ai): ask the graph how humans decided cases like this.

    deps = ContextGraphDeps(store, embedder, airflow_url=...)
    agent = Agent(model, deps_type=ContextGraphDeps, toolsets=[precedent_toolset()])
    agent.run_sync("Draft a reply to: ...", deps=deps)

    find_similar_decisions   earlier human decisions like a case, best first, with choice and reason
    find_lessons             what those decisions teach: option shares, reason, exceptions (compact)
    get_decision_trace       one decision in context: upstream tasks, AI proposal, choice, reason
    read_cypher              a read-only Cypher query (refused if it could write; timeout, row cap)
    record_precedents        INFORMED_BY edges: these precedents informed that decision (writes)

`precedent_toolset(read_only=True)` leaves `record_precedents` out. Every precedent an agent was
shown is kept in `deps.shown`, so the caller can record them (e.g. in its XCom for the ingest, which
turns them into INFORMED_BY edges). Tool failures the model can act on (a refused query, an unknown
key, a store that is down) come back to it as a retry message, never as a crash. The same functions
serve the MCP server (`contextgraph.tools.mcp`) and the example DAG's deterministic drafter; the tools
themselves are written once, in `contextgraph.tools.core`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import BaseModel, Field

from contextgraph.config import Settings
from contextgraph.errors import ContextGraphError, EmbeddingError, QueryRefusedError
from contextgraph.governance.scope import Scope, ScopedStore
from contextgraph.ingest.embeddings import Embedder, embedder_from_settings
from contextgraph.retrieval.precedents import (
    Lesson,
    Precedent,
    find_lessons,
    find_similar_decisions,
    record_precedents,
)
from contextgraph.store import GraphStore, open_store
from contextgraph.tools.core import (
    CYPHER_ROW_LIMIT,
    CYPHER_TIMEOUT,
    TOOL_NAMES,
    PrecedentToolsBase,
)
from contextgraph.tools.core import run_read_cypher as run_read_cypher  # its old home

if TYPE_CHECKING:
    from pydantic_ai import RunContext
else:
    try:
        from pydantic_ai import RunContext
    except ImportError:  # no `agents` extra: the plain functions (consult_precedents, …) still work
        RunContext = None

log = logging.getLogger(__name__)


def precedents_from_keys(keys: Sequence[str], known: Sequence[Precedent] = ()) -> list[Precedent]:
    """Precedents for `record_precedents` from their keys (scores taken from `known` where shown)."""
    by_key = {p.key: p for p in known}
    return [by_key.get(key) or Precedent(key=key, dag_id="", run_id="", task_id="") for key in keys]


def record_shown(store: GraphStore, decision_key: str, precedents: Sequence[Precedent]) -> int:
    """`record_precedents`, idempotent across calls: an edge already recorded keeps its time."""
    rows = store.query(store.cypher("informed_by_recorded_at"), {"key": decision_key})
    return record_precedents(store, decision_key, precedents, recorded_at=rows[0]["at"] if rows else None)


def precedent_notes(
    precedents: Sequence[Precedent], *, limit: int = 3, lessons: Sequence[Lesson] = ()
) -> str:
    """Markdown for a reviewer: what similar cases teach (lessons) and how the closest were decided,
    inside the marked precedent section (`mapping.PRECEDENTS_START` … `PRECEDENTS_END`) that the
    ingest leaves out of this decision's search index. Empty when there is nothing to show."""
    from contextgraph.ingest.mapping import PRECEDENTS_END, PRECEDENTS_START

    if not precedents and not lessons:
        return ""
    lines = [PRECEDENTS_START, ""]
    if lessons:
        lines += ["**What similar cases teach:**", ""]
        for lesson in lessons:
            shares = ", ".join(f"{n} {option}" for option, n in lesson.shares.items())
            lines.append(f"- **{lesson.decided}** ({shares} of {lesson.count}): “{lesson.reason}”")
            for ex in lesson.exceptions[:1]:
                why = f": “{ex.reason}”" if ex.reason else ""
                lines.append(f"  - except {ex.subject or ex.key}: {' / '.join(ex.chosen_options)}{why}")
        lines.append("")
    if precedents:
        lines += ["**How similar cases were decided before:**", ""]
        for rank, p in enumerate(precedents[:limit], start=1):
            chosen = " / ".join(p.chosen_options) or "(nothing chosen)"
            why = f" because “{p.reason}”" if p.reason else ""
            who = f" ({p.reviewer})" if p.reviewer else ""
            lines.append(f"{rank}. {p.subject or p.key}: **{chosen}**{why}{who}")
        lines.append("")
    lines.append(PRECEDENTS_END)
    return "\n".join(lines)


def compact_lesson(lesson: Lesson) -> dict[str, Any]:
    """A lesson as a small JSON value (for an XCom or a log line)."""
    return {
        "decided": lesson.decided,
        "reason": lesson.reason,
        "shares": lesson.shares,
        "count": lesson.count,
        "exemplars": [e.key for e in lesson.exemplars],
        "exceptions": [
            {"key": e.key, "chosen_options": e.chosen_options, "reason": e.reason} for e in lesson.exceptions
        ],
    }


def compact(precedent: Precedent) -> dict[str, Any]:
    """A precedent as a small JSON value (for an XCom or a log line)."""
    return {
        "key": precedent.key,
        "score": round(precedent.score, 6),
        "subject": precedent.subject,
        "chosen_options": precedent.chosen_options,
        "reason": precedent.reason,
    }


# --- what the tools run against ------------------------------------------------------------------


@dataclass
class ContextGraphDeps:
    """What the precedent tools need: the store, the embedder (None: words only), the Airflow UI
    address for links, the decision point at hand (preferred, not a filter), and keys to leave out.
    `shown` collects every precedent the tools returned, best first, without repeats."""

    store: GraphStore
    embedder: Embedder | None = None
    airflow_url: str | None = None
    point: tuple[str, str] | None = None
    exclude: list[str] = field(default_factory=list)
    cypher_timeout: float = CYPHER_TIMEOUT
    cypher_row_limit: int = CYPHER_ROW_LIMIT
    shown: list[Precedent] = field(default_factory=list)

    def remember(self, found: Sequence[Precedent]) -> None:
        seen = {p.key for p in self.shown}
        self.shown.extend(p for p in found if p.key not in seen)

    def close(self) -> None:
        self.store.close()


def open_deps(
    settings: Settings,
    *,
    point: tuple[str, str] | None = None,
    use_embedder: bool = True,
    scope: Scope | None = None,
) -> ContextGraphDeps:
    """Deps for reading precedents from the store the settings name; never creates a store.

    Neo4j is checked at once (StoreUnavailableError / StoreAuthError); the embedded file is opened
    read-only (so an ingest may write it at other times) and must exist. An embedding model that
    cannot be loaded leaves the search to words, with a warning. With a `scope`, every tool reads
    a `ScopedStore` holding only that scope (read-only; see contextgraph.governance.scope).
    """
    store: GraphStore = open_store(settings, mode="read")
    if scope is not None:
        store = ScopedStore(store, scope)  # governance: the tools see only this scope
    embedder: Embedder | None = None
    if use_embedder:
        try:
            embedder = embedder_from_settings(settings)
        except ContextGraphError as exc:
            log.warning("precedent search by words only: %s", exc)
    return ContextGraphDeps(store=store, embedder=embedder, airflow_url=settings.airflow.url, point=point)


def consult_precedents(deps: ContextGraphDeps, text: str, *, k: int = 3) -> list[Precedent]:
    """The deterministic agent: the `k` best precedents for `text` (kept in `deps.shown`).

    If the search with embeddings fails (e.g. the store's vector index was made for another
    model's width), it is done again by words only, with a warning.
    """

    def search(embedder: Embedder | None) -> list[Precedent]:
        return find_similar_decisions(
            deps.store,
            embedder,
            text,
            k=k,
            point=deps.point,
            exclude=deps.exclude,
            airflow_url=deps.airflow_url,
        )

    try:
        found = search(deps.embedder)
    except (QueryRefusedError, EmbeddingError) as exc:
        if deps.embedder is None:
            raise
        log.warning("precedent search by words only: the search with embeddings failed (%s)", exc)
        found = search(None)
    deps.remember(found)
    return found


def consult_lessons(deps: ContextGraphDeps, text: str, *, k: int = 3) -> list[Lesson]:
    """The deterministic agent's lessons for `text` (by words only if the embeddings fail)."""
    try:
        return find_lessons(deps.store, deps.embedder, text, k=k, point=deps.point, exclude=deps.exclude)
    except (QueryRefusedError, EmbeddingError) as exc:
        if deps.embedder is None:
            raise
        log.warning("lessons by words only: the search with embeddings failed (%s)", exc)
        return find_lessons(deps.store, None, text, k=k, point=deps.point, exclude=deps.exclude)


# --- the pydantic-ai tools ------------------------------------------------------------------------


class _DepsTools(PrecedentToolsBase):
    """The shared tools (contextgraph.tools.core) over one run's deps; failures become retries."""

    def __init__(self, deps: ContextGraphDeps) -> None:
        self.deps = deps
        self.airflow_url = deps.airflow_url
        self.point = deps.point
        self.exclude = deps.exclude
        self.timeout = deps.cypher_timeout
        self.row_limit = deps.cypher_row_limit

    @contextmanager
    def store(self, *, write: bool = False) -> Iterator[GraphStore]:
        yield self.deps.store

    def embedder(self) -> Embedder | None:
        return self.deps.embedder

    def remember(self, found: Sequence[Precedent]) -> None:
        self.deps.remember(found)

    def tool_error(self, problem: object) -> Exception:
        return _retry(problem)


def _lessons_text(lessons: list[Lesson]) -> str:
    """Lessons as compact text for the model (decision keys in brackets)."""
    from contextgraph.retrieval.precedents import lessons_prompt

    return lessons_prompt(lessons) or "No lessons: no answered decisions match this case."


_PRESENT: dict[str, Callable[[Any], Any]] = {"find_lessons": _lessons_text}
"""How the pydantic-ai tools present a shared tool's result (default: as it is)."""


def _shared_tool(name: str) -> Callable[..., Any]:
    """`PrecedentToolsBase.<name>` as a pydantic-ai tool function: the same parameters and
    docstring, with the run's context first (its deps are what the tool runs against)."""
    method = getattr(PrecedentToolsBase, name)
    hints = get_type_hints(method)
    present = _PRESENT.get(name)
    params = list(inspect.signature(method).parameters.values())[1:]  # without self

    def tool(ctx: RunContext[ContextGraphDeps], /, *args: Any, **kwargs: Any) -> Any:
        result = getattr(_DepsTools(ctx.deps), name)(*args, **kwargs)
        return present(result) if present else result

    run = RunContext[ContextGraphDeps]
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_ONLY, annotation=run)
    returns = get_type_hints(present)["return"] if present else hints["return"]
    tool.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [context, *(p.replace(annotation=hints[p.name]) for p in params)], return_annotation=returns
    )
    tool.__annotations__ = {"ctx": run, **{p.name: hints[p.name] for p in params}}
    tool.__annotations__["return"] = returns
    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = method.__doc__
    return tool


def _tool_record_precedents(
    ctx: RunContext[ContextGraphDeps], decision_key: str, precedent_keys: list[str]
) -> int:
    """Record which earlier decisions (best first) were shown as precedent for a decision, as
    INFORMED_BY edges in the graph. Idempotent. Returns how many edges were written.

    Args:
        decision_key: The key of the decision being made.
        precedent_keys: Keys of the precedents that informed it, in the order they were ranked.
    """
    deps: ContextGraphDeps = ctx.deps
    try:
        return record_shown(deps.store, decision_key, precedents_from_keys(precedent_keys, deps.shown))
    except ContextGraphError as exc:
        raise _retry(exc) from None


async def _describe_dialect(ctx: RunContext[ContextGraphDeps], tool_def: Any) -> Any:
    """read_cypher's description names the engine that answers and its dialect's differences."""
    from dataclasses import replace

    note = ctx.deps.store.dialect_note()
    return replace(tool_def, description=f"{tool_def.description}\n\n{note}")


def _retry(problem: object) -> Exception:
    from pydantic_ai import ModelRetry

    if isinstance(problem, QueryRefusedError):
        return ModelRetry(f"{problem} — change the query and try again")
    return ModelRetry(str(problem))


def precedent_toolset(*, read_only: bool = False, max_retries: int = 2) -> Any:
    """The precedent tools as a pydantic-ai `FunctionToolset[ContextGraphDeps]`.

    `read_only=True` leaves out `record_precedents` (the only tool that writes).
    """
    from pydantic_ai import FunctionToolset, Tool

    tools: list[Tool[ContextGraphDeps]] = [
        Tool(
            _shared_tool(name),
            name=name,
            takes_ctx=True,
            prepare=_describe_dialect if name == "read_cypher" else None,
        )
        for name in TOOL_NAMES
    ]
    if not read_only:
        tools.append(Tool(_tool_record_precedents, name="record_precedents", takes_ctx=True))
    return FunctionToolset(tools, max_retries=max_retries)


PRECEDENT_INSTRUCTIONS = (
    "Before you propose an answer, call find_similar_decisions with the case in plain words to see "
    "how human reviewers decided similar cases before and why. Follow their reasons: if reviewers "
    "overrode AI answers like yours, say what they required instead. Cite the precedents you used."
)


def precedent_agent(model: Any, instructions: str = "", *, read_only: bool = True) -> Any:
    """A pydantic-ai `Agent[ContextGraphDeps, str]` with the precedent tools and instructions."""
    from pydantic_ai import Agent

    return Agent(
        model,
        deps_type=ContextGraphDeps,
        output_type=str,
        instructions="\n\n".join(p for p in (instructions, PRECEDENT_INSTRUCTIONS) if p),
        toolsets=[precedent_toolset(read_only=read_only)],
    )


class PrecedentRecord(BaseModel):
    """What an agent run leaves for the ingest: the precedents it was shown, best first."""

    precedents: list[dict[str, Any]] = Field(default_factory=list)
    notes: str = ""

    @classmethod
    def of(cls, precedents: Sequence[Precedent]) -> PrecedentRecord:
        return cls(precedents=[compact(p) for p in precedents], notes=precedent_notes(precedents))
