"""The one exception tree of contextgraph.

    ContextGraphError                 root: catch this to catch everything we raise
    ├── ConfigError                   a setting is missing or invalid (fix the environment/flags)
    ├── InvalidRecordError            one record cannot become graph data (names record and field)
    ├── StoreError                    the graph store failed
    │   ├── StoreUnavailableError     transient: server unreachable, retry later
    │   ├── StoreAuthError            terminal: credentials rejected
    │   └── QueryRefusedError         a query was refused (e.g. not read-only)
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
    """A query was refused before it ran (for example, it would write)."""


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
