"""Write Slack answers back to Airflow: read and answer HITL details over the REST API v2 (async).

Uses the bridge's own Airflow credentials (``AIRFLOW_URL`` + ``AIRFLOW_USERNAME``/``AIRFLOW_PASSWORD``
of a service account, or ``AIRFLOW_TOKEN``), a token from ``POST /auth/token`` fetched on first use
and once more on a 401.

* 5xx, 429 and connection errors/timeouts are retried with exponential backoff and jitter
  (``max_retries`` of the settings); then `SourceUnavailableError`.
* ``PATCH …/hitlDetails``: 200 → `Answered`; 409 → `AlreadyAnswered` (unless the answer found is the
  one this very call sent before a retry — then `Answered`); 400/422 → `Refused` with Airflow's reason.
* 401/403 → `SourceAuthError`, 404 → `SourceNotFoundError`. No message holds a password or token.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import httpx

from contextgraph.config import AirflowSettings, public_url
from contextgraph.errors import SourceAuthError, SourceError, SourceNotFoundError, SourceUnavailableError
from contextgraph.mapping import SLACK_IDENTITY_KEY
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
    pass


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
        self._backoff = (backoff_base_seconds, backoff_cap_seconds)
        self._http = httpx.AsyncClient(
            base_url=settings.url.rstrip("/"), timeout=settings.timeout_seconds, transport=transport
        )
        self._token: str | None = settings.token.get_secret_value() if settings.token else None
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
        return Refused(_reason(response))

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
                headers = await self._auth_headers()
                response = await self._http.request(method, path, json=json, headers=headers)
                if response.status_code == 401 and not refreshed and self._can_login:
                    refreshed = True
                    self._token = None
                    continue
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Transient(f"HTTP {response.status_code}")
            except (httpx.TransportError, _Transient) as exc:
                last = str(exc) or type(exc).__name__
                attempt += 1
                if retried is not None:
                    retried.append(True)
                if attempt < attempts:
                    delay = min(self._backoff[1], self._backoff[0] * 2 ** (attempt - 1))
                    delay *= random.uniform(0.8, 1.2)
                    logger.warning("%s: %s; retry %d/%d in %.1fs", what, last, attempt, attempts - 1, delay)
                    await asyncio.sleep(delay)
                continue
            if response.status_code < 300 or response.status_code in ok:
                return response
            if response.status_code in (401, 403):
                raise SourceAuthError(
                    f"{what}: Airflow answered {response.status_code}; check AIRFLOW_USERNAME/"
                    "AIRFLOW_PASSWORD (or AIRFLOW_TOKEN) of the bridge's service account and its permissions"
                )
            if response.status_code == 404:
                raise SourceNotFoundError(f"{what}: not found in Airflow ({_reason(response)})")
            raise SourceError(f"{what}: Airflow answered {response.status_code} ({_reason(response)})")
        raise SourceUnavailableError(
            f"{what}: Airflow at {public_url(self.settings.url)} did not answer after {attempts} attempts "
            f"({last})"
        )

    @property
    def _can_login(self) -> bool:
        return bool(self.settings.username) and self.settings.password is not None

    async def _auth_headers(self) -> dict[str, str]:
        async with self._lock:
            if self._token is None and self._can_login:
                assert self.settings.password is not None
                response = await self._http.post(
                    "/auth/token",
                    json={
                        "username": self.settings.username,
                        "password": self.settings.password.get_secret_value(),
                    },
                )
                if response.status_code >= 500 or response.status_code == 429:
                    raise _Transient(f"token: HTTP {response.status_code}")
                if response.status_code not in (200, 201):
                    raise SourceAuthError(
                        f"Airflow refused the bridge's login ({response.status_code}); "
                        "check AIRFLOW_USERNAME and AIRFLOW_PASSWORD"
                    )
                try:
                    self._token = str(response.json()["access_token"])
                except (ValueError, KeyError, TypeError):  # not JSON, or not a token answer
                    raise SourceError(
                        f"Airflow at {public_url(self.settings.url)} answered POST /auth/token without "
                        "an access_token; check AIRFLOW_URL points at the Airflow API server"
                    ) from None
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise SourceUnavailableError(f"Airflow sent a body that is not JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail or response.text[:300] or f"HTTP {response.status_code}")


def _same_answer(detail: dict[str, Any], chosen: list[str], params_input: dict[str, Any]) -> bool:
    got = detail.get("params_input") or {}
    mine = params_input.get(SLACK_IDENTITY_KEY)
    return (
        sorted(detail.get("chosen_options") or []) == sorted(chosen)
        and mine is not None
        and got.get(SLACK_IDENTITY_KEY) == mine
    )
