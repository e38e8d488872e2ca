"""A replay of Airflow 3.3's REST API v2 over a `World`, served over HTTP (a testing and benchmark aid).

Not for production: it lets the real `contextgraph.ingest.source.AirflowSource` (and the
``contextgraph ingest`` command) talk over real HTTP to an Airflow whose records are known in
advance (`contextgraph.ingest.source.memory.Records`, or a lazy history such as the benchmark's).
Standard library only (``http.server``).

`Replay` answers the requests `AirflowSource` sends, with Airflow 3.3's shapes and rules:

* ``POST /auth/token`` (201, ``access_token``); with a `token` set, every API request needs
  ``Authorization: Bearer <token>`` (401 without it); without one, none is needed;
* lists with ``limit``/``offset`` and ``total_entries``, ``limit`` capped at `maximum_page_limit`
  (Airflow's ``[api] maximum_page_limit``, default 100), ``order_by`` (an unknown field is a 400,
  as in Airflow), a non-integer ``limit``/``offset`` a 422;
* ``updated_at_gte`` on DAG runs and task instances, ``created_at_gte`` and ``response_received``
  on HITL details, runs/task instances/HITL details of every DAG (``~``) or of one;
* DAGs, tasks per DAG (404 for an unknown DAG), assets, XCom ``return_value`` entries per
  ``map_index`` (404 when missing), HITL details of earlier tries (404 when missing);
* a ``Date`` header on the World's clock (watermarks follow Airflow's clock, not this machine's).

`hooks` add ``POST`` endpoints outside the API (e.g. the benchmark's ``/_bench/visible``, which
makes more of a history visible). Every request is noted in `requests` (path, query) unless
``keep_requests=False``.

`make_server` serves a Replay with ``ThreadingHTTPServer`` (``TCP_NODELAY`` set, as uvicorn does);
`ReplayServer` runs one in a background thread: ``with ReplayServer(world) as airflow: … airflow.url``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from contextgraph.ingest.source.memory import Records, World, parse_time

__all__ = ["ORDERS", "Replay", "ReplayServer", "make_server"]

#: The ``order_by`` fields each list accepts (a subset of Airflow's; others are a 400).
ORDERS: dict[str, set[str]] = {
    "dags": {"dag_id"},
    "assets": {"id", "name", "uri"},
    "dag_runs": {"id", "run_after", "start_date"},
    "task_instances": {"id", "start_date"},
    "hitl_details": {"created_at", "ti_id", "responded_at"},
}

Query = dict[str, list[str]]
Answer = tuple[int, Any]


class Replay:
    """The request logic, independent of HTTP: ``handle(method, path, query, body, authorization)``.

    Args:
        world: what the Airflow knows (`Records` are accepted as they are).
        token: the bearer token API requests must carry (``POST /auth/token`` hands it out for
            any username and password); None: no authentication.
        maximum_page_limit: the largest page served, whatever ``limit`` asks.
        hooks: path → function of the JSON body, answering ``POST`` on that path (200, its result).
        keep_requests: note every request in `requests`.
    """

    def __init__(
        self,
        world: World | Records,
        *,
        token: str | None = None,
        maximum_page_limit: int = 100,
        hooks: Mapping[str, Callable[[Any], Any]] | None = None,
        keep_requests: bool = True,
    ) -> None:
        self.world: World = world.world() if isinstance(world, Records) else world
        self.token = token
        self.maximum_page_limit = maximum_page_limit
        self.hooks = dict(hooks or {})
        self.keep_requests = keep_requests
        self.requests: list[tuple[str, Query]] = []
        self.count = 0

    def now(self) -> datetime:
        """The clock of the ``Date`` header: the World's, else this machine's."""
        return self.world.now() or datetime.now(UTC)

    def queries(self, suffix: str) -> list[Query]:
        """The query strings of every request noted whose path ends with `suffix`."""
        return [q for p, q in self.requests if p.endswith(suffix)]

    def handle(
        self, method: str, path: str, query: Query, body: Any, authorization: str | None = None
    ) -> Answer:
        """One request → (HTTP status, JSON payload)."""
        self.count += 1
        if self.keep_requests:
            self.requests.append((path, query))
        if method == "POST" and path in self.hooks:
            return 200, self.hooks[path](body)
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "POST" and parts == ["auth", "token"]:
            if isinstance(body, dict) and body.get("username") and body.get("password"):
                return 201, {"access_token": self.token or "replay-token"}
            return 401, {"detail": "Invalid credentials"}
        if parts[:2] != ["api", "v2"]:
            return 404, {"detail": "Not Found"}
        if self.token is not None and authorization != f"Bearer {self.token}":
            return 401, {"detail": "Not authenticated"}
        if method != "GET":
            return 405, {"detail": "Method Not Allowed"}
        return self._get(parts[2:], query)

    def _get(self, parts: list[str], query: Query) -> Answer:
        w = self.world
        try:
            updated = _moment(query, "updated_at_gte")
            created = _moment(query, "created_at_gte")
        except ValueError as e:
            return 422, {"detail": [{"type": "datetime_parsing", "msg": str(e)}]}
        match parts:
            case ["dags"]:
                return self._page("dags", w.dags(), query)
            case ["assets"]:
                return self._page("assets", w.assets(), query)
            case ["dags", dag_id, "tasks"]:
                tasks = w.tasks(dag_id)
                if tasks is None:
                    return 404, {"detail": f"Dag with id {dag_id} was not found"}
                return 200, {"tasks": tasks, "total_entries": len(tasks)}
            case ["dags", dag_id, "dagRuns"]:
                return self._page("dag_runs", w.dag_runs(dag_id=dag_id, updated_since=updated), query)
            case ["dags", dag_id, "dagRuns", "~", "taskInstances"]:
                found = w.task_instances(dag_id=dag_id, updated_since=updated)
                return self._page("task_instances", found, query)
            case ["dags", dag_id, "dagRuns", "~", "hitlDetails"]:
                received = query.get("response_received", [None])[0]
                found = w.hitl_details(
                    dag_id=dag_id,
                    created_since=created,
                    response_received=None if received is None else received.lower() == "true",
                )
                return self._page("hitl_details", found, query)
            case ["dags", dag_id, "dagRuns", run_id, "taskInstances", task_id, "xcomEntries", key]:
                map_index = int(query.get("map_index", ["-1"])[0])
                entry = w.xcom(dag_id, run_id, task_id, map_index) if key == "return_value" else None
                if entry is None:
                    return 404, {"detail": f"XCom entry with key: `{key}` not found"}
                return 200, entry
            case [
                "dags",
                dag_id,
                "dagRuns",
                run_id,
                "taskInstances",
                task_id,
                index,
                "hitlDetails",
                "tries",
                n,
            ]:
                earlier = w.hitl_try(dag_id, run_id, task_id, int(n), int(index))
                if earlier is None:
                    return 404, {"detail": f"No HITL detail for try {n} of {dag_id}/{run_id}/{task_id}"}
                return 200, earlier
            case _:
                return 404, {"detail": "Not Found"}

    def _page(self, key: str, items: Sequence[Any], query: Query) -> Answer:
        for order in query.get("order_by", []):
            if order.lstrip("-") not in ORDERS[key]:
                return 400, {
                    "detail": f"Ordering with '{order}' is disallowed or the attribute does not exist"
                }
        try:
            limit = int(query.get("limit", ["50"])[0])
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            return 422, {"detail": [{"type": "int_parsing", "loc": ["query", "limit"]}]}
        limit = min(limit, self.maximum_page_limit)
        return 200, {key: list(items[offset : offset + limit]), "total_entries": len(items)}


def _moment(query: Query, name: str) -> datetime | None:
    value = query.get(name, [None])[0]
    return None if value is None else parse_time(value)


def make_server(replay: Replay, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server (not started) answering with `replay`, one request at a time through it."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # As uvicorn (asyncio sets TCP_NODELAY): without it, headers and body in two writes
            # wait ~40 ms for the client's delayed ACK (Nagle), a latency no real Airflow has.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            with lock:
                status, payload = replay.handle(
                    method, url.path, parse_qs(url.query), body, self.headers.get("Authorization")
                )
                now = replay.now()
            data = json.dumps(payload, separators=(",", ":")).encode()
            self.send_response_only(status)
            self.send_header("Date", format_datetime(now, usegmt=True))
            self.send_header("Server", "uvicorn")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


class ReplayServer:
    """A `Replay` served on a free loopback port in a background thread.

    ``with ReplayServer(world) as airflow:`` … ``airflow.url`` … ``airflow.replay.requests``. The
    keyword arguments are `Replay`'s.
    """

    def __init__(self, world: World | Records | Replay, **options: Any) -> None:
        self.replay = world if isinstance(world, Replay) else Replay(world, **options)
        self._server = make_server(self.replay)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
