"""The precedent tools, written once: what each does and how a model is told about it.

`PrecedentToolsBase` holds the tools as methods — `find_similar_decisions`, `find_lessons`,
`get_decision_trace`, `read_cypher` — whose docstrings are the descriptions a model sees (the
`Args:` section describes each parameter). A surface supplies what they run against (a store, an
embedder, limits) and how a failure reaches the model: the MCP server (`contextgraph.tools.mcp`)
subclasses it and registers the bound methods; the pydantic-ai toolset (`contextgraph.tools.agent`)
wraps each method in a function of the same parameters that takes the run's context first.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from contextgraph.errors import ContextGraphError
from contextgraph.ingest.embeddings import Embedder
from contextgraph.retrieval.precedents import (
    DecisionTrace,
    Lesson,
    Precedent,
    find_lessons,
    find_similar_decisions,
    get_decision_trace,
    jsonable,
)
from contextgraph.store import GraphStore

CYPHER_TIMEOUT = 10.0
"""Seconds an agent's Cypher query may run before it is stopped."""
CYPHER_ROW_LIMIT = 1000
"""Rows an agent's Cypher query may return; the rest are cut (and `truncated` says so)."""
CYPHER_MAX_CHARS = 60_000
"""Characters of JSON an agent's Cypher result may take; rows past it are cut (a model's context)."""
MAX_K = 20
"""The most precedents one call of find_similar_decisions returns."""
MAX_LESSONS = 10
"""The most lessons one call of find_lessons returns."""

TOOL_NAMES = ("find_similar_decisions", "find_lessons", "get_decision_trace", "read_cypher")
"""The tools `PrecedentToolsBase` implements, in the order a surface registers them."""


class CypherResult(BaseModel):
    """Rows of a read-only query, and whether the row or size limit cut them."""

    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool = False
    note: str | None = None


def run_read_cypher(
    store: GraphStore,
    query: str,
    params: Mapping[str, Any] | None = None,
    *,
    timeout: float = CYPHER_TIMEOUT,
    row_limit: int = CYPHER_ROW_LIMIT,
    max_chars: int = CYPHER_MAX_CHARS,
) -> CypherResult:
    """`retrieval.read_cypher` with the cut made visible: `truncated` and a `note` ("truncated:
    showing 100 of >100 rows; add a LIMIT …") when the row limit or `max_chars` cut the rows.

    Raises QueryNotAllowedError (the read-only gate refused it: a write, a procedure or function
    not on the allow-list, LOAD CSV, SHOW …), CypherError (the engine rejected it; the message says
    what to change), QueryTimeoutError / QueryMemoryError (stopped) — all QueryRefusedErrors."""
    rows, cut = store.read_only_query(query, dict(params or {}), timeout=timeout, row_limit=row_limit)
    out = [{str(k): jsonable(v) for k, v in row.items()} for row in rows]
    note = f"truncated: showing {row_limit} of >{row_limit} rows; add a LIMIT or aggregate" if cut else None
    size = sum(len(json.dumps(r, ensure_ascii=False, default=str)) + 2 for r in out)
    if size > max_chars:
        kept, used = [], 0
        for row in out:
            used += len(json.dumps(row, ensure_ascii=False, default=str)) + 2
            if used > max_chars:
                break
            kept.append(row)
        note = (
            f"truncated: showing {len(kept)} of {'>' if cut else ''}{len(out)} rows, the ones that fit in "
            f"{max_chars} characters; return fewer columns, or add a LIMIT"
        )
        out, cut = kept, True
    return CypherResult(rows=out, row_count=len(out), truncated=cut, note=note)


class PrecedentToolsBase(ABC):
    """The precedent tools over a store. A subclass supplies `store()`, `embedder()` and
    `tool_error()`, and may set the attributes below; each tool turns a ContextGraphError into
    `tool_error(exc)` (the surface's way to give the model a message it can act on)."""

    airflow_url: str | None = None
    """The Airflow UI address for links in precedents and traces."""
    point: tuple[str, str] | None = None
    """The decision point at hand, (dag_id, task_id): preferred in the ranking, not a filter."""
    exclude: Sequence[str] = ()
    """Decision keys every search leaves out (e.g. the decision being made)."""
    timeout: float = CYPHER_TIMEOUT
    row_limit: int = CYPHER_ROW_LIMIT
    max_chars: int = CYPHER_MAX_CHARS

    @abstractmethod
    def store(self, *, write: bool = False) -> AbstractContextManager[GraphStore]:
        """The store the tools read (or, with `write`, write) for one call."""

    @abstractmethod
    def embedder(self) -> Embedder | None:
        """The embedder for the searches; None ranks by words only."""

    @abstractmethod
    def tool_error(self, problem: object) -> Exception:
        """The exception that tells the model what went wrong and what to do."""

    def remember(self, found: Sequence[Precedent]) -> None:  # noqa: B027 (optional hook)
        """Called with the precedents a search returned (best first); keeps nothing by default."""

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Our errors as the surface's tool errors: the message says what went wrong and what to do."""
        try:
            yield
        except ContextGraphError as exc:
            raise self.tool_error(exc) from None

    # --- the tools: their docstrings are what the model reads ----------------------------------------

    def find_similar_decisions(
        self,
        text: str,
        dag_id: str | None = None,
        task_id: str | None = None,
        chosen: str | None = None,
        since: datetime | None = None,
        k: int = 5,
        exclude: list[str] | None = None,
        deployment: str | None = None,
    ) -> list[Precedent]:
        """Find earlier human decisions most like a case, best first, each with the option the
        human chose, the reason they gave, the AI proposal they judged and a link to Airflow.
        Call this before acting on a case, and follow the reasons.

        Args:
            text: The case at hand in plain words, e.g. a ticket's subject and body.
            dag_id: Only decisions of this Airflow DAG.
            task_id: Only decisions taken at this task (decision point).
            chosen: Only decisions where this option was chosen, e.g. "Escalate to CRE".
            since: Only decisions answered at or after this time (ISO 8601).
            k: How many precedents (1 to 20).
            exclude: Decision keys to leave out (e.g. the decision being made).
            deployment: Only decisions of this Airflow deployment (e.g. "prod"; "default" when unnamed).
        """
        embedder = self.embedder()
        with self.errors(), self.store() as store:
            found = find_similar_decisions(
                store,
                embedder,
                text,
                dag_id=dag_id,
                task_id=task_id,
                chosen=chosen,
                since=since,
                k=max(1, min(k, MAX_K)),
                point=self.point,
                exclude=[*self.exclude, *(exclude or ())],
                deployment=deployment,
                airflow_url=self.airflow_url,
            )
        self.remember(found)
        return found

    def find_lessons(
        self,
        text: str,
        dag_id: str | None = None,
        task_id: str | None = None,
        k: int = 3,
        deployment: str | None = None,
    ) -> list[Lesson]:
        """What earlier human decisions like a case teach, as lessons: how many reviewers chose
        each option ("3 of 5: Escalate to CRE"), the reason in a sentence, the latest example, the
        exemplars and the exceptions with their reasons. Call this before acting on a case.

        Args:
            text: The case at hand in plain words, e.g. a ticket's subject and body.
            dag_id: Only decisions of this Airflow DAG.
            task_id: Only decisions taken at this task (decision point).
            k: How many lessons (1 to 10).
            deployment: Only decisions of this Airflow deployment (e.g. "prod"; "default" when unnamed).
        """
        embedder = self.embedder()
        with self.errors(), self.store() as store:
            return find_lessons(
                store,
                embedder,
                text,
                k=max(1, min(k, MAX_LESSONS)),
                dag_id=dag_id,
                task_id=task_id,
                deployment=deployment,
                point=self.point,
                exclude=self.exclude,
            )

    def get_decision_trace(self, key: str) -> DecisionTrace:
        """One earlier decision in full context: what fed it (upstream tasks and their states), the
        AI proposal it judged and the verdict, the options offered, the choice, the reason, who
        decided, what followed, and which precedents informed it.

        Args:
            key: The decision's key, as find_similar_decisions returns it.
        """
        with self.errors(), self.store() as store:
            try:
                return get_decision_trace(store, key, airflow_url=self.airflow_url)
            except LookupError as exc:
                hint = "use a key that find_similar_decisions returned"
                raise self.tool_error(f"{exc.args[0]}: {hint}") from None

    def read_cypher(self, query: str, params: dict[str, Any] | None = None) -> CypherResult:
        """Run one read-only Cypher query on the decision graph and get its rows. Anything that
        could write, and any procedure or function not on the read-only allow-list, is refused; the
        query is stopped after a timeout and its rows are capped (`truncated: true` and a note say so).

        Graph: (:Dag)-[:HAS_TASK]->(:Task)-[:FEEDS]->(:Task), (:Dag)-[:HAS_RUN]->(:DagRun)
        -[:HAS_INSTANCE]->(:TaskInstance)-[:ASKED]->(:Decision)-[:OFFERED|CHOSE]->(:Option {name}),
        (:Decision)-[:DECIDED_BY]->(:Actor), (:Decision)-[:REVIEWED {verdict}]->(:Proposal {text}),
        (:Decision)-[:INFORMED_BY]->(:Decision). Decision has key, dag_id, run_id, task_id, subject,
        body, chosen_options, reason, responded_at, timed_out.

        Args:
            query: One Cypher read statement; pass values as $parameters.
            params: Values of the query's $parameters.
        """
        with self.errors(), self.store() as store:
            return run_read_cypher(
                store, query, params, timeout=self.timeout, row_limit=self.row_limit, max_chars=self.max_chars
            )
