"""The one way contextgraph talks HTTP to Airflow's REST API v2: credentials, retries, errors.

Both Airflow clients use it: the ingest's `AirflowSource` (sync, through apache-airflow-client and
urllib3) and the Slack bridge's `HITLClient` (async, httpx). They send requests their own way; what
they must agree on lives here:

* **Auth** (`AirflowCredentials`): ``AIRFLOW_TOKEN`` → ``Authorization: Bearer``; ``AIRFLOW_USERNAME``
  + ``AIRFLOW_PASSWORD`` → a token from ``POST /auth/token`` (`TOKEN_PATH`, `login_body`) fetched
  on first use and once more on a 401. A second 401 or a 403 is a `SourceAuthError` naming the
  setting to fix (`auth_error`).
* **Retries** (`RetryPolicy`): 429, 5xx, timeouts and dropped connections are retried up to
  ``AIRFLOW_MAX_RETRIES`` times with exponential backoff and jitter, never sooner than the server's
  ``Retry-After`` (capped at `RETRY_AFTER_CAP_SECONDS`); then `SourceUnavailableError`.
* **Timeouts**: every request carries ``AIRFLOW_TIMEOUT_SECONDS``.
* **Redaction**: every message built here passes `AirflowCredentials.redact` (password, static and
  fetched tokens replaced by ``***``), before it is shortened, so a cut never leaves part of one.
"""

from __future__ import annotations

import email.utils
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contextgraph.config import AirflowSettings, public_url
from contextgraph.errors import SourceAuthError, SourceError, SourceNotFoundError, SourceUnavailableError

#: Where a username and password are exchanged for a token.
TOKEN_PATH = "/auth/token"
#: The longest Retry-After honoured, in seconds (a server asking for more gets this).
RETRY_AFTER_CAP_SECONDS = 120.0


def is_transient_status(status: int) -> bool:
    """Whether an HTTP status may pass if the request is sent again (429 and 5xx)."""
    return status == 429 or status >= 500


@dataclass
class AirflowCredentials:
    """The credentials of one Airflow client, and what it says when they fail.

    `token` is the bearer token in use (the static one, or one fetched with `login_body`); set it
    with `use_token`, which also adds it to what `redact` removes.
    """

    settings: AirflowSettings
    token: str | None = None
    _secrets: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        s = self.settings
        self.password = s.password.get_secret_value() if s.password else None
        self.static_token = s.token.get_secret_value() if s.token else None
        self.token = self.static_token
        self._secrets = {x for x in (self.password, self.static_token) if x}

    @property
    def url(self) -> str:
        """The API server's URL without a trailing slash."""
        return self.settings.url.rstrip("/")

    @property
    def where(self) -> str:
        """``Airflow at <url>`` with any user:password of the URL removed."""
        return f"Airflow at {public_url(self.url)}"

    @property
    def can_login(self) -> bool:
        """Whether a token can be fetched (a username and a password are set)."""
        return bool(self.settings.username) and self.password is not None

    def login_body(self) -> dict[str, str]:
        """The JSON body of ``POST /auth/token``. Raises AssertionError without a username/password."""
        assert self.settings.username is not None and self.password is not None
        return {"username": self.settings.username, "password": self.password}

    def use_token(self, body: object) -> str:
        """Take the token from the answer to ``POST /auth/token``; SourceAuthError if it has none."""
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceAuthError(
                f"{self.where} answered POST {TOKEN_PATH} without an access_token; check AIRFLOW_URL "
                "points at the Airflow API server"
            )
        self.token = token
        self._secrets.add(token)
        return token

    def headers(self) -> dict[str, str]:
        """The Authorization header for the token in use ({} without one)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def redact(self, text: str) -> str:
        """`text` with every password and token this client knows replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def auth_error(self, what: str, status: int) -> SourceAuthError:
        """The error for a 401 (after a fresh token, if one could be fetched) or a 403."""
        if status == 403:
            fix = (
                f"user {self.settings.username!r} lacks the permission; grant it or set "
                "AIRFLOW_USERNAME to a user that has it"
                if self.can_login
                else "the token lacks the permission; set AIRFLOW_TOKEN to one that has it"
            )
            return SourceAuthError(f"{what}: {self.where} refused (HTTP 403): {fix}")
        if self.can_login:
            fix = "check AIRFLOW_USERNAME and AIRFLOW_PASSWORD"
        elif self.static_token:
            fix = (
                "AIRFLOW_TOKEN was rejected (expired or invalid); set a fresh AIRFLOW_TOKEN or "
                "AIRFLOW_USERNAME and AIRFLOW_PASSWORD"
            )
        else:
            fix = "Airflow needs credentials: set AIRFLOW_USERNAME and AIRFLOW_PASSWORD, or AIRFLOW_TOKEN"
        return SourceAuthError(f"{what}: {self.where} rejected the credentials (HTTP 401): {fix}")

    def status_error(self, what: str, status: int, body: bytes) -> SourceError:
        """The error for a final 4xx answer other than 401/403: 404 → SourceNotFoundError."""
        detail = error_detail(body, self.redact)
        if status == 404:
            return SourceNotFoundError(f"{what}: not found in Airflow (HTTP 404: {detail})")
        return SourceError(f"{what}: Airflow answered HTTP {status}: {detail}")

    def gave_up(self, what: str, attempts: int, reason: str) -> SourceUnavailableError:
        """The error once the retries are spent."""
        return SourceUnavailableError(
            self.redact(
                f"{what}: {self.where} still failing after {attempts} attempts ({reason}); check that "
                "it is up and try again later"
            )
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before retry number `attempt` (1-based), in seconds."""

    max_retries: int
    base_seconds: float = 0.5
    cap_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with jitter (between half and all of base·2^(attempt-1), at most the
        cap), and never less than the server's Retry-After (itself capped)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
        return delay


def http_date(value: str | None) -> datetime | None:
    """An HTTP date header as an aware UTC datetime (None if absent or unreadable)."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = http_date(value)
    if when is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_detail(data: bytes, redact: Callable[[str], str] | None = None) -> str:
    """The server's short explanation of an error (FastAPI's ``detail``, or the start of its body),
    secrets removed by `redact` before it is cut to 300 characters."""
    try:
        body = json.loads(data) if data else None
    except ValueError:
        text = data.decode("utf-8", "replace")
    else:
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):  # FastAPI validation errors
            text = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
        elif detail is not None:
            text = str(detail)
        else:
            text = json.dumps(body) if body is not None else ""
    if redact is not None:
        text = redact(text)
    return text[:300] or "(empty body)"
