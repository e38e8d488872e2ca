"""Settings, read from the environment with the names users already know; CLI flags override.

Neo4j: NEO4J_URI, NEO4J_USERNAME, NEO4J_PASSWORD, NEO4J_DATABASE.
Airflow: AIRFLOW_URL, AIRFLOW_USERNAME, AIRFLOW_PASSWORD, AIRFLOW_TOKEN, AIRFLOW_MAX_CONCURRENCY.
contextgraph: CONTEXTGRAPH_DEPLOYMENT, CONTEXTGRAPH_STORE_PATH, CONTEXTGRAPH_BATCH_SIZE,
CONTEXTGRAPH_BUFFER_POOL_MB,
CONTEXTGRAPH_EMBEDDING_MODEL, CONTEXTGRAPH_PROPOSAL_TASKS, CONTEXTGRAPH_SYNC_OVERLAP_SECONDS,
CONTEXTGRAPH_REASON_PARAMS, CONTEXTGRAPH_VERDICTS, CONTEXTGRAPH_REDACT*, CONTEXTGRAPH_CYPHER_ALLOW,
CONTEXTGRAPH_INCLUDE_DAGS, CONTEXTGRAPH_EXCLUDE_DAGS, CONTEXTGRAPH_TAGS, CONTEXTGRAPH_EXCLUDE_TAGS,
CONTEXTGRAPH_ALL_DAGS, CONTEXTGRAPH_FEEDER_DEPTH.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import unquote, urlsplit, urlunsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contextgraph.model import DEFAULT_DEPLOYMENT, DEPLOYMENT_PATTERN, Verdict


def _split_userinfo(url: str | None) -> tuple[str | None, str | None, str | None]:
    """(the URL without its ``user:password@`` part, the user, the password)."""
    parts = urlsplit(url or "")
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username else None
    return clean, user, unquote(parts.password) if parts.password else None


def public_url(url: str) -> str:
    """The URL without any ``user:password@`` part: safe for logs, errors and links."""
    return _split_userinfo(url)[0] or url


def split_names(value: Any) -> Any:
    """A list setting given as text: a JSON list, or comma-separated names (blanks dropped)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def default_store_path() -> Path:
    return Path(platformdirs.user_data_dir("contextgraph")) / "graph.lbdb"


class Neo4jSettings(BaseSettings):
    """Where the Neo4j server is. With no `uri`, the embedded store is used."""

    model_config = SettingsConfigDict(env_prefix="NEO4J_", extra="ignore")

    uri: str | None = None
    username: str = "neo4j"
    password: SecretStr = SecretStr("")
    database: str = "neo4j"
    max_retry_seconds: float = Field(default=30.0, ge=0)
    """How long a write keeps retrying transient failures (server restarting, leader switch)."""

    @model_validator(mode="after")
    def _credentials_out_of_the_uri(self) -> Self:
        """``bolt://user:password@host`` (which the driver refuses): the credentials move to
        `username`/`password` where those are not set, and never stay in the URI, which error
        messages, logs and reprs show."""
        uri, username, password = _split_userinfo(self.uri)
        if uri == self.uri:
            return self
        if username and "username" not in self.model_fields_set:
            self.username = username
        if password and not self.password.get_secret_value():
            self.password = SecretStr(password)
        self.uri = uri
        return self


class AirflowSettings(BaseSettings):
    """How to reach the Airflow REST API v2."""

    model_config = SettingsConfigDict(env_prefix="AIRFLOW_", extra="ignore")

    url: str = "http://localhost:8080"
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    page_size: int = Field(default=1000, ge=1, le=1000)
    """Records asked for per list request. Airflow caps it at its `[api] maximum_page_limit` (100
    unless raised; the source then reads pages of 100 to the end); with the limit at 1000, reading
    HITL details is ~2.4x faster than with 100 (measured by bench/run.py)."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    max_concurrency: int = Field(default=8, ge=1, le=64)
    """Requests in flight at once where many independent reads are needed (the XComs of new
    decisions' proposals). 1 reads them one after another. A 429 or 5xx pauses all of them."""

    @model_validator(mode="after")
    def _credentials_out_of_the_url(self) -> Self:
        """``http://user:password@host``: the credentials move to `username`/`password` where those
        are not set, and never stay in the URL, which messages, logs, reprs and Slack links show."""
        url, username, password = _split_userinfo(self.url)
        if url == self.url:
            return self
        if username and not self.username:
            self.username = username
        if password and self.password is None:
            self.password = SecretStr(password)
        self.url = url or self.url
        return self


REDACT_KINDS = ("email", "phone", "card", "iban", "ip")


class RedactSettings(BaseSettings):
    """Redaction at ingest (`contextgraph.ingest.redact`), per deployment.

    CONTEXTGRAPH_REDACT: `true` (every kind), `false`/unset (off), or the kinds to redact as a JSON
    list or comma-separated (`email,card`; kinds: email, phone, card, iban, ip).
    CONTEXTGRAPH_REDACT_PATTERNS: JSON object name → regular expression, each finding replaced by
    `[NAME]` (works with or without the built-in kinds). CONTEXTGRAPH_REDACT_REGION: default region
    of national phone numbers (ISO 3166 alpha-2, default US).
    """

    model_config = SettingsConfigDict(env_prefix="CONTEXTGRAPH_REDACT_", extra="ignore")

    enabled: str = Field(default="", validation_alias="CONTEXTGRAPH_REDACT")
    patterns: dict[str, str] = {}
    region: str = "US"

    @model_validator(mode="after")
    def _check(self) -> Self:
        self.kinds()
        self.compiled_patterns()
        return self

    def kinds(self) -> frozenset[str]:
        """The built-in kinds asked for; raises ValueError naming an unknown one."""
        text = self.enabled.strip()
        if text.lower() in ("", "false", "0", "no", "off"):
            return frozenset()
        if text.lower() in ("true", "1", "yes", "on", "all"):
            return frozenset(REDACT_KINDS)
        if text.startswith("["):
            try:
                listed = [str(k) for k in json.loads(text)]
            except (ValueError, TypeError):
                raise ValueError(f"CONTEXTGRAPH_REDACT: not a JSON list of kinds: {text!r}") from None
        else:
            listed = [k for k in text.split(",")]
        wanted = {k.strip().lower() for k in listed if k.strip()}
        unknown = sorted(wanted - set(REDACT_KINDS))
        if unknown:
            known = ", ".join(REDACT_KINDS)
            raise ValueError(f"CONTEXTGRAPH_REDACT: unknown kind {unknown[0]!r}; known: {known}")
        return frozenset(wanted)

    def compiled_patterns(self) -> dict[str, re.Pattern[str]]:
        """The custom patterns compiled; raises ValueError naming the one that does not compile."""
        compiled = {}
        for name, pattern in self.patterns.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise ValueError(f"CONTEXTGRAPH_REDACT_PATTERNS: pattern name {name!r} must be a word")
            try:
                compiled[name] = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"CONTEXTGRAPH_REDACT_PATTERNS: pattern {name!r} does not compile: {exc}"
                ) from None
        return compiled

    @classmethod
    def load(cls) -> RedactSettings:
        """Read from the environment; raises ConfigError (naming the setting) when invalid."""
        from pydantic import ValidationError

        from contextgraph.errors import ConfigError

        try:
            return cls()
        except ValidationError as exc:
            messages = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
            raise ConfigError(messages) from None


class CypherSettings(BaseSettings):
    """The read-only Cypher tool's allow-list extension (read on every query, so a change of the
    environment applies at once)."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTGRAPH_", extra="ignore")

    cypher_allow: Annotated[list[str], NoDecode] = []
    """Procedures, functions or plan operators to allow besides `store/cypher_allow.toml`: names or
    shell-style patterns, as a JSON list or comma-separated (e.g. `apoc.meta.stats,apoc.node.*`)."""

    @field_validator("cypher_allow", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return split_names(value)


class Settings(BaseSettings):
    """contextgraph's own settings (CONTEXTGRAPH_*), holding the Neo4j and Airflow ones."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTGRAPH_", extra="ignore")

    deployment: str = Field(default=DEFAULT_DEPLOYMENT, pattern=DEPLOYMENT_PATTERN)
    """The name of the Airflow that `ingest` reads (`AIRFLOW_URL`): every node it writes carries it,
    its keys start with it (not for `default`) and its watermarks are its own, so several Airflows
    (staging and prod, one per team) ingest into one graph and stay apart. Letters, digits, `.`,
    `_`, `-`."""
    store_path: Path = Field(default_factory=default_store_path)
    batch_size: int = Field(default=1000, ge=1)
    buffer_pool_mb: int = Field(default=512, ge=16)
    """The embedded store's page cache in MB (Ladybug's own default is most of the memory)."""
    ann_threshold: int = Field(default=20_000, ge=1)
    """Answered decisions from which the embedded store searches vectors through a usearch HNSW
    graph beside its file (below it, an exact scan, both exact and fast)."""
    embedding_model: str = "auto"
    """A model2vec folder or hub name; `auto`: minishlab/potion-base-8M, offline a built-in fallback."""
    proposal_tasks: dict[str, list[str]] = {}
    """JSON: `{"dag_id.task_id": ["upstream_task", ...]}` — whose XCom is the AI proposal a decision
    point reviews (default: its direct upstream tasks)."""
    reason_params: dict[str, list[str]] = {}
    """JSON: `{"dag_id.task_id": ["param", ...], "*": ["param", ...]}` — the params_input names that
    hold the reviewer's reason at a decision point (`*`: every other point), looked at first; then
    the usual names: reason, comments, comment, feedback, rationale, justification, note(s), explanation,
    why, remarks, … (`contextgraph.ingest.mapping.REASON_KEYS`); when none is set, the other free-text
    params' values are the reason."""
    verdicts: dict[str, dict[str, Verdict]] = {}
    """JSON: `{"dag_id.task_id": {"Approve": "approved", "Send back": "overridden"}, "*": {...}}` —
    the verdict on the AI's proposal of each chosen option at a decision point (`*`: every other
    point). Options not listed fall back to their words (approve/accept → approved, reject/manual
    → overridden, escalate → escalated)."""
    sync_overlap_seconds: int = Field(default=300, ge=0)
    """How far each incremental read reaches back before its watermark."""
    include_dags: Annotated[list[str], NoDecode] = []
    """Only DAGs whose dag_id matches one of these shell-style patterns (`finance_*`) are synced;
    comma-separated or a JSON list. Empty: every DAG."""
    exclude_dags: Annotated[list[str], NoDecode] = []
    """DAGs whose dag_id matches one of these patterns are not synced at all."""
    tags: Annotated[list[str], NoDecode] = []
    """Only DAGs with at least one of these tags are synced. Empty: any tags."""
    exclude_tags: Annotated[list[str], NoDecode] = []
    """DAGs with any of these tags are not synced at all."""
    all_dags: bool = False
    """Read the runs and task instances of every DAG the filters let through; default: only of DAGs
    with decision points (HITL tasks) and the DAGs feeding them through assets."""
    feeder_depth: int = Field(default=3, ge=0)
    """How many hops of asset feeders (feeders of feeders …) are tracked; 0: none."""
    write_behind: bool = True
    """Write each page of a sync on a background thread while the next page is fetched and mapped
    (one page in flight); false: write each page before reading on."""
    neo4j: Neo4jSettings = Field(default_factory=Neo4jSettings)

    @field_validator("include_dags", "exclude_dags", "tags", "exclude_tags", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return split_names(value)

    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    redaction: RedactSettings = Field(default_factory=RedactSettings)
