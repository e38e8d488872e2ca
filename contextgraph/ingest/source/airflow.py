"""Read DAGs, tasks, runs, task instances and HITL decisions from the Airflow REST API v2.

`AirflowSource` talks to Airflow 3.1+ through `apache-airflow-client`, but it never lets
the client's pydantic models parse a response: every call uses the generated
``*_without_preload_content`` variant and decodes the JSON body itself, so the records
handed on are exactly what the server sent (plain dicts). Client and server of different
minor versions disagree on some models; with raw records such a difference can never stop
an ingestion. For the same reason a query parameter the installed client does not know is
left out (with a log line) instead of failing the call.

Behaviour at the HTTP boundary (credentials, retry policy, error messages and redaction come from
`contextgraph.airflow_http`, shared with the Slack bridge's client):

* **Auth.** ``token`` set → ``Authorization: Bearer <token>``. ``username`` + ``password``
  set → a token is fetched from ``POST {url}/auth/token`` on the first call (not in the
  constructor). With both, the static token is tried first. On a 401 a fresh token is
  fetched once (when a username and password are set) and the request repeated; a second
  401 or a 403 raises `SourceAuthError` naming the setting to fix.
* **Retries.** 429 (``Retry-After`` honoured), 5xx, timeouts, connection errors and a body
  that is not complete, valid JSON are retried up to ``settings.max_retries`` times with
  exponential backoff and jitter, then `SourceUnavailableError` is raised.
* **Errors.** 404 → `SourceNotFoundError`; any other 4xx → `SourceError`. No message or log
  line ever contains the password or a token.
* **Concurrency.** `xcom_values` reads many XCom entries with up to
  ``settings.max_concurrency`` requests in flight; every other method sends one request at a
  time. A 429 or 5xx seen by one worker pauses them all (a shared gate honouring
  ``Retry-After``), so a busy server sees the whole client back off, not one thread of it.
* **Paging.** Every list is read page by page (``limit``/``offset``, ``settings.page_size``)
  in an order that does not change while it is read (``id``, or ``created_at`` + ``ti_id``
  for HITL details), until ``total_entries`` is reached or a page comes back empty, so a
  server that caps the page size below ``page_size`` is still read to the end.

``calls`` counts every HTTP request sent (token requests and retries included).
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self

import urllib3
from pydantic import ValidationError

from contextgraph.airflow_http import (
    TOKEN_PATH,
    AirflowCredentials,
    RetryPolicy,
    http_date,
    is_transient_status,
    retry_after,
)
from contextgraph.config import AirflowSettings, public_url
from contextgraph.errors import (
    SourceConfigError,
    SourceError,
    SourceNotFoundError,
)

__all__ = ["ALL", "HITL_WAITING_STATES", "AirflowSource", "XComRef", "hitl_is_waiting", "public_url"]

logger = logging.getLogger(__name__)

#: Path placeholder for "every DAG" / "every run" in the REST API v2.
ALL = "~"

#: Task-instance states of a HITL task that waits for a human: ``awaiting_input`` since
#: Airflow 3.3, ``deferred`` on 3.1/3.2.
HITL_WAITING_STATES = frozenset({"awaiting_input", "deferred"})


def hitl_is_waiting(detail: dict[str, Any]) -> bool:
    """True when a raw HITL detail still waits for an answer (on Airflow 3.1 and 3.3)."""
    if detail.get("response_received"):
        return False
    ti = detail.get("task_instance") or {}
    state = ti.get("state")
    return state is None or state in HITL_WAITING_STATES


class XComRef(NamedTuple):
    """One XCom entry: whose (DAG, run, task, map index) and which key."""

    dag_id: str
    run_id: str
    task_id: str
    key: str = "return_value"
    map_index: int = -1


class _Gate:
    """A pause shared by every thread of one source: after a 429/5xx, nobody sends until it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0

    def wait(self) -> None:
        while (delay := self._until - time.monotonic()) > 0:
            time.sleep(delay)

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)


class _Response(Protocol):
    """The part of a urllib3 response we use."""

    status: int

    @property
    def headers(self) -> Any: ...

    @property
    def data(self) -> bytes: ...

    def release_conn(self) -> None: ...


class _Transient(Exception):
    """One attempt failed in a way that may pass; `delay` is the server's Retry-After."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class AirflowSource:
    """Raw records from one Airflow deployment. No network until the first method call.

    Use as a context manager, or call `close()` when done.
    """

    def __init__(
        self,
        settings: AirflowSettings,
        *,
        backoff_base_seconds: float = 0.5,
        backoff_cap_seconds: float = 30.0,
    ) -> None:
        self.settings = settings
        self.calls = 0
        self._calls_lock = threading.Lock()
        self._login_lock = threading.Lock()
        self._gate = _Gate()
        #: The server's clock (its ``Date`` header, whole seconds) at the last successful
        #: answer: a watermark for the next incremental read that does not depend on this
        #: machine's clock. Subtract a little overlap before using it; re-reads are harmless.
        self.server_time: datetime | None = None
        self._retry = RetryPolicy(settings.max_retries, backoff_base_seconds, backoff_cap_seconds)
        # The token in use (None until needed: fetched lazily when logging in), and redaction.
        self._auth = AirflowCredentials(settings)
        self._url = self._auth.url

        # Imported here: the generated client takes over a second to import, and every CLI command
        # (and `contextgraph mcp`) imports this module without necessarily reading Airflow.
        from airflow_client.client import ApiClient, Configuration
        from airflow_client.client.api.asset_api import AssetApi
        from airflow_client.client.api.dag_api import DAGApi
        from airflow_client.client.api.dag_run_api import DagRunApi
        from airflow_client.client.api.task_api import TaskApi
        from airflow_client.client.api.task_instance_api import TaskInstanceApi
        from airflow_client.client.api.x_com_api import XComApi
        from airflow_client.client.exceptions import ApiException

        self._api_exception = ApiException
        config = Configuration(host=self._url)
        # We retry ourselves: no hidden urllib3 retries or redirects underneath.
        config.retries = False
        # One pooled connection per concurrent worker (urllib3 would otherwise discard extras).
        config.connection_pool_maxsize = max(settings.max_concurrency, 1)
        self._client = ApiClient(config)
        self._dag_api = DAGApi(self._client)
        self._task_api = TaskApi(self._client)
        self._run_api = DagRunApi(self._client)
        self._ti_api = TaskInstanceApi(self._client)
        self._xcom_api = XComApi(self._client)
        self._asset_api = AssetApi(self._client)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Drop pooled connections. The source can still be used afterwards."""
        self._client.rest_client.pool_manager.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AirflowSource(url={public_url(self._url)!r})"

    # -- records -----------------------------------------------------------------------

    def dags(self) -> Iterator[dict[str, Any]]:
        """Every DAG (as ``GET /api/v2/dags`` lists them), ordered by ``dag_id``."""
        yield from self._paged(
            "list DAGs",
            self._dag_api.get_dags_without_preload_content,
            "dags",
            order_by=["dag_id"],
        )

    def assets(self) -> Iterator[dict[str, Any]]:
        """Every asset (``GET /api/v2/assets``), ordered by ``id``: ``name``, ``uri``, ``group``,
        ``extra``, ``aliases`` (``{id, name, group}``), ``producing_tasks`` and ``consuming_tasks``
        (``{dag_id, task_id, created_at, updated_at}``), ``scheduled_dags`` (``{dag_id, …}``),
        ``last_asset_event`` (``{id, timestamp}``), and on 3.3 ``watchers``."""
        yield from self._paged(
            "list assets",
            self._asset_api.get_assets_without_preload_content,
            "assets",
            order_by=["id"],
        )

    def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        """The tasks of one DAG, each with ``downstream_task_ids``."""
        body = self._call(
            f"list tasks of DAG {dag_id!r}",
            self._task_api.get_tasks_without_preload_content,
            dag_id=dag_id,
        )
        return list(_items(body, "tasks", "list tasks"))

    def dag_runs(
        self, *, updated_since: datetime | None = None, dag_id: str = ALL
    ) -> Iterator[dict[str, Any]]:
        """DAG runs of all DAGs (or one), those updated at/after `updated_since` when given.

        Ordered by the run's database ``id``, which never changes, so offset paging neither
        skips nor repeats runs that are updated while the list is read.
        """
        yield from self._paged(
            "list DAG runs",
            self._run_api.get_dag_runs_without_preload_content,
            "dag_runs",
            dag_id=dag_id,
            updated_at_gte=_utc(updated_since),
            order_by=["id"],
        )

    def task_instances(
        self,
        *,
        updated_since: datetime | None = None,
        dag_id: str = ALL,
        run_id: str = ALL,
    ) -> Iterator[dict[str, Any]]:
        """Task instances of all DAGs and runs (or one), updated at/after `updated_since`.

        Ordered by the task instance ``id`` (a time-ordered UUID), which never changes.
        """
        yield from self._paged(
            "list task instances",
            self._ti_api.get_task_instances_without_preload_content,
            "task_instances",
            dag_id=dag_id,
            dag_run_id=run_id,
            updated_at_gte=_utc(updated_since),
            order_by=["id"],
        )

    def hitl_details(
        self,
        *,
        created_since: datetime | None = None,
        response_received: bool | None = None,
        dag_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """HITL details (one per waiting or answered HITL task try), oldest first.

        `created_since` filters on ``created_at >=``. Airflow has no filter on
        ``responded_at``: to see answers to older requests, list
        ``response_received=False`` ones and look again later, or follow task instances
        whose ``updated_at`` moved. Ordered by ``created_at`` then ``ti_id``.
        """
        yield from self._paged(
            "list HITL details",
            self._ti_api.get_hitl_details_without_preload_content,
            "hitl_details",
            dag_id=dag_id or ALL,
            dag_run_id=ALL,
            created_at_gte=_utc(created_since),
            response_received=response_received,
            order_by=["created_at", "ti_id"],
        )

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """The HITL detail of one task instance (its latest try)."""
        return _as_dict(
            self._call(
                f"get HITL detail {dag_id}/{run_id}/{task_id}[{map_index}]",
                self._ti_api.get_hitl_detail_without_preload_content,
                dag_id=dag_id,
                dag_run_id=run_id,
                task_id=task_id,
                map_index=map_index,
            ),
            "get HITL detail",
        )

    def hitl_detail_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any]:
        """The HITL detail of one earlier (or the current) try of a task instance.

        Uses ``GET …/taskInstances/{task_id}/{map_index}/hitlDetails/tries/{try_number}``
        (Airflow 3.2+). `SourceNotFoundError` when that try did not ask anything, or the server
        or the installed client has no such endpoint.
        """
        method = getattr(self._ti_api, "get_hitl_detail_try_detail_without_preload_content", None)
        if method is None:
            raise SourceNotFoundError(
                "this apache-airflow-client has no HITL try endpoint; install the client "
                "version that matches the Airflow server (3.2 or later)"
            )
        return _as_dict(
            self._call(
                f"get HITL detail {dag_id}/{run_id}/{task_id}[{map_index}] try {try_number}",
                method,
                dag_id=dag_id,
                dag_run_id=run_id,
                task_id=task_id,
                map_index=map_index,
                try_number=try_number,
            ),
            "get HITL detail try",
        )

    def hitl_detail_tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """Every try of one task instance that asked a human, oldest first.

        The latest detail names its ``task_instance.try_number``; earlier tries are read
        one by one from the tries endpoint, skipping tries that asked nothing (404).
        """
        latest = self.hitl_detail(dag_id, run_id, task_id, map_index)
        ti = latest.get("task_instance") or {}
        latest_try = ti.get("try_number")
        if not isinstance(latest_try, int) or latest_try <= 1:
            return [latest]
        found: list[dict[str, Any]] = []
        for try_number in range(1, latest_try):
            try:
                found.append(self.hitl_detail_try(dag_id, run_id, task_id, try_number, map_index))
            except SourceNotFoundError:
                continue
        found.append(latest)
        return found

    def xcom_value(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str = "return_value",
        map_index: int = -1,
    ) -> Any | None:
        """The value of one XCom entry as the server returns it, or None when it has none."""
        try:
            body = self._call(
                f"get XCom {key!r} of {dag_id}/{run_id}/{task_id}[{map_index}]",
                self._xcom_api.get_xcom_entry_without_preload_content,
                dag_id=dag_id,
                dag_run_id=run_id,
                task_id=task_id,
                xcom_key=key,
                map_index=map_index,
            )
        except SourceNotFoundError:
            return None
        return body.get("value") if isinstance(body, dict) else None

    def xcom_values(self, refs: Iterable[XComRef]) -> dict[XComRef, Any]:
        """The values of many XCom entries (`ref → value`; None when there is none), read with
        up to ``settings.max_concurrency`` requests in flight.

        Raises what `xcom_value` raises (the first failure; the other reads are still finished
        or abandoned, nothing is left running). Order of the requests is not defined.
        """
        wanted = list(dict.fromkeys(refs))
        if not wanted:
            return {}

        def read(ref: XComRef) -> Any:
            return self.xcom_value(ref.dag_id, ref.run_id, ref.task_id, ref.key, ref.map_index)

        workers = min(self.settings.max_concurrency, len(wanted))
        if workers <= 1:
            return {ref: read(ref) for ref in wanted}
        self._ensure_token()  # log in once, before the workers start
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="contextgraph-xcom") as pool:
            return dict(zip(wanted, pool.map(read, wanted), strict=True))

    # -- transport ---------------------------------------------------------------------

    def _paged(
        self, what: str, method: Callable[..., Any], key: str, **params: Any
    ) -> Iterator[dict[str, Any]]:
        limit = self.settings.page_size
        offset = 0
        while True:
            body = self._call(f"{what} (offset {offset})", method, limit=limit, offset=offset, **params)
            page = _items(body, key, what)
            yield from page
            offset += len(page)
            total = body.get("total_entries")
            if not page or (isinstance(total, int) and offset >= total):
                return
            if not isinstance(total, int) and len(page) < limit:
                return

    def _call(self, what: str, method: Callable[..., Any], **params: Any) -> Any:
        """Call one generated ``*_without_preload_content`` method; return decoded JSON."""
        kwargs = self._known_params(method, params)

        def send() -> _Response:
            result: _Response = method(**kwargs, _request_timeout=self.settings.timeout_seconds)
            return result

        return self._with_retries(what, send, login=False)

    def _known_params(self, method: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
        accepted = inspect.signature(method).parameters
        kwargs: dict[str, Any] = {}
        for name, value in params.items():
            if value is None:
                continue
            if name not in accepted:
                logger.warning(
                    "apache-airflow-client %s() has no parameter %r; reading without it "
                    "(install the client version matching the server)",
                    getattr(method, "__name__", "?"),
                    name,
                )
                continue
            kwargs[name] = value
        return kwargs

    def _ensure_token(self) -> None:
        if self._auth.token is None and self._auth.can_login:
            with self._login_lock:
                if self._auth.token is None:  # another worker may have logged in meanwhile
                    self._login()
        self._client.configuration.access_token = self._auth.token

    def _login(self) -> None:
        """Fetch a token for username/password from ``POST {url}/auth/token``."""
        url = f"{self._url}{TOKEN_PATH}"
        payload = self._auth.login_body()

        def send() -> _Response:
            resp = self._client.call_api(
                "POST",
                url,
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=payload,
                _request_timeout=self.settings.timeout_seconds,
            )
            result: _Response = resp.response
            return result

        logger.debug("requesting an Airflow token for user %r", self.settings.username)
        body = self._with_retries("log in to Airflow (POST /auth/token)", send, login=True)
        self._auth.use_token(body)

    def _with_retries(self, what: str, send: Callable[[], _Response], *, login: bool) -> Any:
        attempt = 0
        refreshed = False
        while True:
            if not login:
                self._ensure_token()
            used = self._auth.token
            try:
                return self._attempt(what, send, login=login)
            except _NeedsFreshToken:
                if refreshed or not self._auth.can_login:
                    raise self._auth.auth_error(what, 401) from None
                refreshed = True
                logger.info("Airflow rejected the token (401); fetching a new one")
                with self._login_lock:
                    if self._auth.token == used:  # not already replaced by another worker
                        self._auth.token = None
            except _Transient as exc:
                attempt += 1
                if attempt > self.settings.max_retries:
                    raise self._auth.gave_up(what, attempt, exc.reason) from None
                delay = self._retry.delay(attempt, exc.delay)
                self._gate.close_for(delay)  # every worker of this source waits, not only this one
                logger.warning(
                    "%s: %s; retry %d/%d in %.2fs",
                    what,
                    self._auth.redact(exc.reason),
                    attempt,
                    self.settings.max_retries,
                    delay,
                )

    def _attempt(self, what: str, send: Callable[[], _Response], *, login: bool) -> Any:
        self._gate.wait()
        with self._calls_lock:
            self.calls += 1
        try:
            resp = send()
        except urllib3.exceptions.HTTPError as exc:
            # Timeouts, refused/reset connections, broken responses.
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        except self._api_exception as exc:  # the client wraps TLS errors this way
            raise SourceConfigError(
                self._auth.redact(
                    f"{what}: cannot talk to Airflow at {public_url(self._url)} ({exc.reason}); "
                    "check AIRFLOW_URL and its TLS certificate"
                )
            ) from None
        except ValidationError as exc:  # the client refused our arguments
            raise SourceError(f"{what}: invalid request arguments: {exc}") from None
        try:
            try:
                data = resp.data
            except urllib3.exceptions.HTTPError as exc:
                raise _Transient(f"body cut short: {type(exc).__name__}") from None
        finally:
            resp.release_conn()
        status = resp.status
        if 200 <= status < 300:
            try:
                body = json.loads(data) if data else None
            except ValueError:
                raise _Transient(
                    f"HTTP {status} with a body that is not valid JSON ({len(data)} bytes)"
                ) from None
            self.server_time = http_date(resp.headers.get("Date")) or self.server_time
            return body
        if status == 401 and not login:
            raise _NeedsFreshToken
        if status in (401, 403):
            raise self._auth.auth_error(what, status)
        if is_transient_status(status):
            raise _Transient(f"HTTP {status}", retry_after(resp.headers.get("Retry-After")))
        raise self._auth.status_error(what, status, data)


class _NeedsFreshToken(Exception):
    """A 401 on an API call: the token may have expired."""


def _items(body: Any, key: str, what: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise SourceConfigError(
            f"{what}: Airflow's answer has no {key!r} list; is AIRFLOW_URL an Airflow 3.1+ API server?"
        )
    return items


def _as_dict(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SourceError(f"{what}: expected a JSON object from Airflow, got {type(body).__name__}")
    return body


def _utc(moment: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC (Airflow stores UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
