"""A replay of the Airflow 3.3 REST API v2 over a synthetic history, and an in-memory source.

`Replay` answers the requests `contextgraph.ingest.source.AirflowSource` sends, with Airflow 3.3's
shapes and rules: `POST /auth/token` (201, `access_token`; other requests need the bearer token,
401 without it), lists with `limit`/`offset` and `total_entries`, `limit` capped at
`maximum_page_limit` (Airflow's `[api] maximum_page_limit`, default 100), `order_by` (an unknown
field is a 400, as in Airflow), `updated_at_gte` on DAG runs and task instances,
`created_at_gte` and `response_received` on HITL details, a 404 for an XCom that does not exist,
and a `Date` header on the synthetic clock (watermarks follow Airflow's clock, not ours).

`serve()` runs it as a real HTTP server (`python -m bench.replay --decisions N --port P`), so the
real AirflowSource talks to it over HTTP; `POST /_bench/visible {"decisions": n}` makes more of
the history visible (new decisions arriving). `MemorySource` is the sync's Source protocol over
the same history without HTTP (for the ingest benchmark), and counts the time spent generating
records so that it can be left out of the measurement.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bench.synthetic import TASKS_PER_DAG, History
from contextgraph.config import AirflowSettings

TOKEN = "bench-replay-token"
ORDERS = {
    "dags": {"dag_id"},
    "dag_runs": {"id", "run_after", "start_date"},
    "task_instances": {"id", "start_date"},
    "hitl_details": {"created_at", "ti_id", "responded_at"},
}


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))


class Replay:
    """The request logic, independent of HTTP: `handle(method, path, query, body) → (status, json)`."""

    def __init__(self, history: History, visible: int | None = None, maximum_page_limit: int = 100) -> None:
        self.history = history
        self.visible = history.decisions if visible is None else visible
        self.maximum_page_limit = maximum_page_limit
        self.requests = 0
        self._matches: dict[tuple[str, str, int], list[int]] = {}

    def now(self) -> datetime:
        return self.history.now(self.visible)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, authorized: bool
    ) -> tuple[int, Any]:
        self.requests += 1
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "POST" and parts == ["auth", "token"]:
            if isinstance(body, dict) and body.get("username") and body.get("password"):
                return 201, {"access_token": TOKEN}
            return 401, {"detail": "Invalid credentials"}
        if method == "POST" and parts == ["_bench", "visible"]:
            self.visible = min(int(body["decisions"]), self.history.decisions)
            self._matches.clear()
            return 200, {"visible": self.visible}
        if parts[:2] != ["api", "v2"]:
            return 404, {"detail": "Not Found"}
        if not authorized:
            return 401, {"detail": "Not authenticated"}
        if method != "GET":
            return 405, {"detail": "Method Not Allowed"}
        return self._get(parts[2:], query)

    def _get(self, parts: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        h = self.history
        match parts:
            case ["dags"]:
                return self._page("dags", h.dags(), query)
            case ["dags", dag_id, "tasks"]:
                tasks = h.tasks(dag_id)
                if tasks is None:
                    return 404, {"detail": f"Dag with id {dag_id} was not found"}
                return 200, {"tasks": tasks, "total_entries": len(tasks)}
            case ["dags", dag_id, "dagRuns"]:
                indices = self._of_dag(self._updated_since("runs", query), dag_id)
                return self._page("dag_runs", indices, query, h.dag_run)
            case ["dags", dag_id, "dagRuns", "~", "taskInstances"]:
                runs = self._of_dag(self._updated_since("tis", query), dag_id)
                return self._page("task_instances", _ti_indices(runs), query, self._ti)
            case ["dags", "~", "dagRuns", "~", "hitlDetails"]:
                return self._page("hitl_details", self._hitl(query), query, h.hitl_detail)
            case ["dags", dag_id, "dagRuns", run_id, "taskInstances", task_id, "xcomEntries", key]:
                i = h.run_index(run_id)
                entry = h.xcom(i, task_id) if i is not None and i < self.visible else None
                if entry is None or key != "return_value" or entry["dag_id"] != dag_id:
                    return 404, {"detail": f"XCom entry with key: `{key}` not found"}
                return 200, entry
            case _:
                return 404, {"detail": "Not Found"}

    def _of_dag(self, runs: range | list[int], dag_id: str) -> range | list[int]:
        """The runs of one DAG (`~`: all)."""
        return runs if dag_id == "~" else [i for i in runs if self.history.scenario(i).dag_id == dag_id]

    def _ti(self, j: int) -> dict[str, Any]:
        return self.history.task_instance(j // TASKS_PER_DAG, j % TASKS_PER_DAG)

    def _updated_since(self, kind: str, query: dict[str, list[str]]) -> range | list[int]:
        value = query.get("updated_at_gte", [None])[0]
        if value is None:
            return range(self.visible)
        ident = (kind, value, self.visible)
        if ident not in self._matches:
            moment = _parse_time(value)
            first = self.history.first_updated_at_or_after(moment, self.visible)
            self._matches[ident] = [
                i for i in range(first, self.visible) if self.history.run_updated_at(i) >= moment
            ]
        return self._matches[ident]

    def _hitl(self, query: dict[str, list[str]]) -> range | list[int]:
        value = query.get("created_at_gte", [None])[0]
        first = (
            0 if value is None else self.history.first_created_at_or_after(_parse_time(value), self.visible)
        )
        received = query.get("response_received", [None])[0]
        if received is None:
            return range(first, self.visible)
        ident = ("hitl", f"{value}|{received}", self.visible)
        if ident not in self._matches:
            wanted = received.lower() == "true"
            self._matches[ident] = [
                i for i in range(first, self.visible) if self.history._received(i) == wanted
            ]
        return self._matches[ident]

    def _first_created(self, moment: datetime) -> int:
        return self.history.first_created_at_or_after(moment, self.visible)

    def _page(self, key: str, items: Any, query: dict[str, list[str]], render: Any = None) -> tuple[int, Any]:
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
        chosen = items[offset : offset + limit]
        records = [render(i) for i in chosen] if render else list(chosen)
        return 200, {key: records, "total_entries": len(items)}


def _ti_indices(runs: range | list[int]) -> range | list[int]:
    if isinstance(runs, range):
        return range(runs.start * TASKS_PER_DAG, runs.stop * TASKS_PER_DAG)
    return _TiView(runs)


class _TiView:
    """Task-instance indices of a list of runs, without building the list."""

    def __init__(self, runs: list[int]) -> None:
        self.runs = runs

    def __len__(self) -> int:
        return len(self.runs) * TASKS_PER_DAG

    def __getitem__(self, s: slice) -> list[int]:
        stop = min(s.stop, len(self))
        return [
            self.runs[j // TASKS_PER_DAG] * TASKS_PER_DAG + j % TASKS_PER_DAG for j in range(s.start, stop)
        ]


# --- HTTP -----------------------------------------------------------------------------------------


def make_server(replay: Replay, port: int = 0) -> ThreadingHTTPServer:
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
            body = json.loads(raw) if raw else None
            authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            with lock:
                status, payload = replay.handle(method, url.path, parse_qs(url.query), body, authorized)
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

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def serve(decisions: int, visible: int, port: int, seed: int, maximum_page_limit: int) -> None:
    replay = Replay(History(decisions, seed), visible, maximum_page_limit)
    server = make_server(replay, port)
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# --- in memory ------------------------------------------------------------------------------------


class MemorySource:
    """The sync's Source protocol over a History, no HTTP; `generating` = seconds spent in it."""

    def __init__(
        self, history: History, visible: int | None = None, url: str = "http://replay.bench"
    ) -> None:
        self.history = history
        self.visible = history.decisions if visible is None else visible
        self.settings = AirflowSettings(url=url)
        self.server_time: datetime | None = history.now(self.visible)
        self.calls = 0
        self.generating = 0.0

    def _timed(self, items: Iterator[dict[str, Any]], page: int = 100) -> Iterator[dict[str, Any]]:
        while True:
            began = time.perf_counter()
            self.calls += 1
            chunk = [item for _, item in zip(range(page), items, strict=False)]
            self.generating += time.perf_counter() - began
            yield from chunk
            if len(chunk) < page:
                return

    def _first(self, bisect: Any, moment: datetime | None) -> int:
        return 0 if moment is None else int(bisect(moment, self.visible))

    def dags(self) -> Iterator[dict[str, Any]]:
        return self._timed(iter(self.history.dags()))

    def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        self.calls += 1
        return self.history.tasks(dag_id) or []

    def dag_runs(
        self, *, updated_since: datetime | None = None, dag_id: str = "~"
    ) -> Iterator[dict[str, Any]]:
        first = (
            0
            if updated_since is None
            else self.history.first_updated_at_or_after(updated_since, self.visible)
        )
        return self._timed(_of_dag(self.history.dag_runs(first, self.visible), dag_id))

    def task_instances(
        self, *, updated_since: datetime | None = None, dag_id: str = "~"
    ) -> Iterator[dict[str, Any]]:
        first = (
            0
            if updated_since is None
            else self.history.first_updated_at_or_after(updated_since, self.visible)
        )
        return self._timed(_of_dag(self.history.task_instances(first, self.visible), dag_id))

    def hitl_details(self, *, created_since: datetime | None = None) -> Iterator[dict[str, Any]]:
        first = (
            0
            if created_since is None
            else self.history.first_created_at_or_after(created_since, self.visible)
        )
        return self._timed(self.history.hitl_details(first, self.visible))

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1) -> Any:
        began = time.perf_counter()
        self.calls += 1
        i = self.history.run_index(run_id)
        entry = self.history.xcom(i, task_id) if i is not None else None
        self.generating += time.perf_counter() - began
        return entry["value"] if entry else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, required=True, help="size of the whole history")
    parser.add_argument("--visible", type=int, help="decisions visible at start (default: all)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--maximum-page-limit", type=int, default=100)
    args = parser.parse_args()
    serve(args.decisions, args.visible or args.decisions, args.port, args.seed, args.maximum_page_limit)


if __name__ == "__main__":
    main()


def _of_dag(records: Iterator[dict[str, Any]], dag_id: str) -> Iterator[dict[str, Any]]:
    """The records of one DAG (`~`: all)."""
    return records if dag_id == "~" else (r for r in records if r.get("dag_id") == dag_id)
