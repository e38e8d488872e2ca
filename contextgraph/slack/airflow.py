"""Write Slack answers back to Airflow: read and answer HITL details over the REST API v2 (async).

Uses the bridge's own Airflow credentials (``AIRFLOW_URL`` + ``AIRFLOW_USERNAME``/``AIRFLOW_PASSWORD``
of a service account, or ``AIRFLOW_TOKEN``), a token from ``POST /auth/token`` fetched on first use
and once more on a 401.

Credentials, the retry policy, error messages and redaction are those of every Airflow client
(`contextgraph.airflow_http`):

* 5xx, 429 and connection errors/timeouts are retried with exponential backoff and jitter, never
  sooner than the server's ``Retry-After`` (``max_retries`` of the settings); then
  `SourceUnavailableError`.
* ``PATCH …/hitlDetails``: 200 → `Answered`; 409 → `AlreadyAnswered` (unless the answer found is the
  one this very call sent before a retry — then `Answered`); 400/422 → `Refused` with Airflow's reason.
* 401 (after one fresh token) and 403 → `SourceAuthError`, 404 → `SourceNotFoundError`, another
  4xx → `SourceError`. No message holds a password or token.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from contextgraph.airflow_http import (
    TOKEN_PATH,
    AirflowCredentials,
    RetryPolicy,
    error_detail,
    is_transient_status,
    retry_after,
)
from contextgraph.config import AirflowSettings
from contextgraph.errors import SourceUnavailableError
from contextgraph.ingest.mapping import SLACK_IDENTITY_KEY
from contextgraph.slack.blocks import HITLRef

logger = logging.getLogger(__name__)


@dataclass
class Answered:
    detail: dict[str, Any]


@dataclass
class AlreadyAnswered:
    detail: dict[str, Any]


@dataclass
class Refused:
    reason: str


Outcome = Answered | AlreadyAnswered | Refused


class _Transient(Exception):
    """One attempt failed in a way that may pass; `delay` is the server's Retry-After."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class HITLClient:
    """Async client for the HITL endpoints of one Airflow. Close with `aclose()`."""

    def __init__(
        self,
        settings: AirflowSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_base_seconds: float = 0.5,
        backoff_cap_seconds: float = 8.0,
    ) -> None:
        self.settings = settings
        self._retry = RetryPolicy(settings.max_retries, backoff_base_seconds, backoff_cap_seconds)
        self._auth = AirflowCredentials(settings)
        self._http = httpx.AsyncClient(
            base_url=self._auth.url, timeout=settings.timeout_seconds, transport=transport
        )
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- HITL ------------------------------------------------------------------------------

    async def detail(self, ref: HITLRef, *, retries: int | None = None) -> dict[str, Any]:
        """The HITL detail (subject, options, params, answer) of a task instance."""
        response = await self._request(
            "GET", ref.api_path(), f"read HITL detail {ref.label()}", retries=retries
        )
        return _json(response)

    async def respond(self, ref: HITLRef, chosen: list[str], params_input: dict[str, Any]) -> Outcome:
        """Answer the HITL task once; see the module doc for the outcomes."""
        body = {"chosen_options": chosen, "params_input": params_input}
        what = f"answer HITL {ref.label()}"
        retried: list[bool] = []
        response = await self._request(
            "PATCH", ref.api_path(), what, json=body, ok=(400, 409, 422), retried=retried
        )
        if response.status_code == 200:
            return Answered(_json(response))
        if response.status_code == 409:
            current = await self.detail(ref)
            if retried and _same_answer(current, chosen, params_input):
                return Answered(current)  # our first attempt did arrive; the retry found it
            return AlreadyAnswered(current)
        return Refused(error_detail(response.content, self._auth.redact))

    # -- HTTP ------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: Any = None,
        ok: tuple[int, ...] = (),
        retries: int | None = None,
        retried: list[bool] | None = None,
    ) -> httpx.Response:
        attempts = (self.settings.max_retries if retries is None else retries) + 1
        refreshed = False
        last = "no answer"
        attempt = 0
        while attempt < attempts:
            try:
                headers = await self._auth_headers(what)
                response = await self._http.request(method, path, json=json, headers=headers)
                if response.status_code == 401 and not refreshed and self._auth.can_login:
                    refreshed = True
                    self._auth.token = None
                    continue
                if is_transient_status(response.status_code):
                    raise _Transient(
                        f"HTTP {response.status_code}", retry_after(response.headers.get("Retry-After"))
                    )
            except (httpx.TransportError, _Transient) as exc:
                last = self._auth.redact(str(exc) or type(exc).__name__)
                attempt += 1
                if retried is not None:
                    retried.append(True)
                if attempt < attempts:
                    delay = self._retry.delay(attempt, exc.delay if isinstance(exc, _Transient) else None)
                    logger.warning("%s: %s; retry %d/%d in %.1fs", what, last, attempt, attempts - 1, delay)
                    await asyncio.sleep(delay)
                continue
            if response.status_code < 300 or response.status_code in ok:
                return response
            if response.status_code in (401, 403):
                raise self._auth.auth_error(what, response.status_code)
            raise self._auth.status_error(what, response.status_code, response.content)
        raise self._auth.gave_up(what, attempts, last)

    async def _auth_headers(self, what: str) -> dict[str, str]:
        async with self._lock:
            if self._auth.token is None and self._auth.can_login:
                response = await self._http.post(TOKEN_PATH, json=self._auth.login_body())
                if is_transient_status(response.status_code):
                    raise _Transient(
                        f"token: HTTP {response.status_code}",
                        retry_after(response.headers.get("Retry-After")),
                    )
                if response.status_code not in (200, 201):
                    raise self._auth.auth_error(f"{what} (log in: POST {TOKEN_PATH})", 401)
                try:
                    body = response.json()
                except ValueError:  # not JSON: not a token answer
                    body = None
                self._auth.use_token(body)
        return self._auth.headers()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise SourceUnavailableError(f"Airflow sent a body that is not JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _same_answer(detail: dict[str, Any], chosen: list[str], params_input: dict[str, Any]) -> bool:
    got = detail.get("params_input") or {}
    mine = params_input.get(SLACK_IDENTITY_KEY)
    return (
        sorted(detail.get("chosen_options") or []) == sorted(chosen)
        and mine is not None
        and got.get(SLACK_IDENTITY_KEY) == mine
    )
