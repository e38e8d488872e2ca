"""The one exception tree of contextgraph.

    ContextGraphError                 root: catch this to catch everything we raise
    ├── ConfigError                   a setting is missing or invalid (fix the environment/flags)
    ├── InvalidRecordError            one record cannot become graph data (names record and field)
    ├── StoreError                    the graph store failed
    │   ├── StoreUnavailableError     transient: server unreachable, retry later
    │   ├── StoreAuthError            terminal: credentials rejected
    │   └── QueryRefusedError         an agent's/ad-hoc query did not run, or not to the end
    │       ├── QueryNotAllowedError  the read-only gate refused it before it ran (allow-list)
    │       ├── CypherError           the engine rejected it (syntax, unknown name, dialect):
    │       │                         one line saying what to change
    │       └── QueryStoppedError     it ran and was stopped
    │           ├── QueryTimeoutError     at the timeout
    │           └── QueryMemoryError      at the server's per-transaction memory limit
    ├── SourceError                   the Airflow API failed
    │   ├── SourceUnavailableError    transient: 5xx/429/timeouts after retries
    │   ├── SourceAuthError           terminal: 401/403
    │   └── SourceNotFoundError       terminal: 404
    └── EmbeddingError                the embedding model cannot be loaded or used

Every message says what went wrong and what to do, and never contains a secret.
"""

from __future__ import annotations


class ContextGraphError(Exception):
    """Root of every error contextgraph raises on purpose."""

    transient: bool = False


class ConfigError(ContextGraphError):
    """A setting is missing or invalid."""


class InvalidRecordError(ContextGraphError):
    """A record cannot be turned into graph data; the message names the record and field."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        self.record = record
        self.field = field
        self.reason = reason
        super().__init__(f"{record}: field {field!r}: {reason}")


class StoreError(ContextGraphError):
    """The graph store failed."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached; trying again later may work."""

    transient = True


class StoreAuthError(StoreError):
    """The store rejected the credentials."""


class QueryRefusedError(StoreError):
    """A query did not run, or not to the end. Catch this for all of the kinds below."""


class QueryNotAllowedError(QueryRefusedError):
    """The read-only gate refused the query before the engine ran it: it would write, or it calls a
    procedure, function or plan operator that is not on the allow-list (the message names it and
    says how to extend the list: CONTEXTGRAPH_CYPHER_ALLOW)."""


class CypherError(QueryRefusedError):
    """The engine rejected the query (syntax, an unknown label or function, a dialect difference).

    `stage` is "plan" when EXPLAIN already rejected it (nothing ran) and "run" when it failed while
    running; `hint` is what to change, when known (e.g. Ladybug's `WITH … ORDER BY` needs `LIMIT`).
    The message is one line."""

    def __init__(self, message: str, *, stage: str = "plan", hint: str | None = None) -> None:
        self.stage = stage
        self.hint = hint
        super().__init__(f"{message} — {hint}" if hint else message)


class QueryStoppedError(QueryRefusedError):
    """The query ran and was stopped before it finished (it changed nothing)."""


class QueryTimeoutError(QueryStoppedError):
    """The query ran longer than its timeout and was stopped."""


class QueryMemoryError(QueryStoppedError):
    """The query needed more memory than the server allows one transaction and was stopped."""


class SourceError(ContextGraphError):
    """The Airflow API failed."""


class SourceUnavailableError(SourceError):
    """Airflow could not be reached or kept failing after retries; try again later."""

    transient = True


class SourceAuthError(SourceError):
    """Airflow rejected the credentials (401) or the permissions (403)."""


class SourceNotFoundError(SourceError):
    """Airflow answered 404 for something that was expected to exist."""


class EmbeddingError(ContextGraphError):
    """The embedding model cannot be loaded or used."""
