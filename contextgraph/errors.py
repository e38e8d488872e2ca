"""The one exception tree of contextgraph.

    ContextGraphError                 root: catch this to catch everything we raise
    ├── ConfigError                   a setting is missing or invalid (fix the environment/flags)
    ├── InvalidRecordError            one record cannot become graph data (names record and field)
    ├── StoreError                    the graph store failed
    │   ├── StoreUnavailableError     transient: server unreachable, retry later
    │   ├── StoreAuthError            terminal: credentials rejected
    │   ├── StoreConfigError          terminal: no/malformed NEO4J_URI, unwritable store path
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
    │   ├── SourceConfigError         terminal: AIRFLOW_URL/TLS cannot work
    │   └── SourceNotFoundError       terminal: 404
    └── EmbeddingError                the embedding model cannot be loaded or used

Every message says what went wrong and what to do, and never contains a secret.

Each error also says what to do next, as a class (see the block "Transient or terminal" below):
a ``TransientError`` may pass if the same call is tried again later (a dropped connection, a 5xx
or 429, a timeout, a server restarting); a ``TerminalError`` will not (rejected credentials, a
setting that is missing or wrong, something that does not exist). Only transient errors are
retried: by the Airflow transport, by the Neo4j driver, and by the ingestion DAG's task retries.
"""

from __future__ import annotations


class ContextGraphError(Exception):
    """Root of every error contextgraph raises on purpose."""

    transient: bool = False


# --- Transient or terminal: what the caller does next (dlt's way) --------------------------------
#
#   TransientError    try again later: connection dropped or refused, HTTP 5xx/429, timeouts
#     ├── StoreUnavailableError
#     └── SourceUnavailableError
#   TerminalError     trying again changes nothing: fix the input or the environment first
#     ├── ConfigError
#     │   ├── StoreConfigError
#     │   └── SourceConfigError
#     ├── StoreAuthError
#     ├── SourceAuthError
#     └── SourceNotFoundError
#
# An error that is neither (e.g. a refused query, an invalid record) is about one call's input:
# the caller reports it and goes on; it is not retried.


class TransientError(ContextGraphError):
    """A failure that may pass: retry with backoff (the same call, later).

    Raised for dropped or refused connections, HTTP 5xx and 429, and timeouts -- after the
    component's own retries are used up. ``transient`` is ``True``.
    """

    transient = True


class TerminalError(ContextGraphError):
    """A failure that retrying cannot fix: bad credentials, a bad setting, a missing object.

    The message says what to change. Schedulers should fail at once (the ingestion DAG raises
    ``AirflowFailException``), never retry. ``transient`` is ``False``.
    """

    transient = False


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: a ``TransientError`` (anything else: no)."""
    return isinstance(exc, TransientError)


# --- the tree ------------------------------------------------------------------------------------


class ConfigError(TerminalError):
    """A setting is missing or invalid."""


class UnknownDeploymentError(ConfigError):
    """A filter or scope names a deployment the graph has no DAGs of."""


class InvalidRecordError(ContextGraphError):
    """A record cannot be turned into graph data; the message names the record and field."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        self.record = record
        self.field = field
        self.reason = reason
        super().__init__(f"{record}: field {field!r}: {reason}")


class StoreError(ContextGraphError):
    """The graph store failed."""


class StoreUnavailableError(StoreError, TransientError):
    """The store cannot be reached; trying again later may work."""


class StoreAuthError(StoreError, TerminalError):
    """The store rejected the credentials."""


class StoreConfigError(StoreError, ConfigError):
    """The store's settings cannot work (no or a malformed NEO4J_URI, an unwritable store path)."""


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


class SourceUnavailableError(SourceError, TransientError):
    """Airflow could not be reached or kept failing after retries; try again later."""


class SourceAuthError(SourceError, TerminalError):
    """Airflow rejected the credentials (401) or the permissions (403)."""


class SourceConfigError(SourceError, ConfigError):
    """Airflow's settings cannot work (AIRFLOW_URL not an Airflow API, its TLS certificate refused)."""


class SourceNotFoundError(SourceError, TerminalError):
    """Airflow answered 404 for something that was expected to exist."""


class EmbeddingError(ContextGraphError):
    """The embedding model cannot be loaded or used."""
