"""A stand-in Airflow REST API v2 over HTTP, serving hand-written records (no auth, no history).

Each test describes the records a real Airflow 3.3 would return (`World`), starts `StandIn(world)`
and runs the real `contextgraph ingest` against `standin.url`. The server answers the requests
`contextgraph.ingest.source.AirflowSource` sends: lists with `limit`/`offset`/`total_entries`,
`created_at_gte` on HITL details and `updated_at_gte` on runs and task instances (as filters,
on records that carry `updated_at`), runs and task instances of all DAGs (`~`) or of one, assets,
tasks per DAG, XCom entries per `map_index` (404 when missing), HITL tries (404). Every request
is kept in `requests` (path, query) so a test can check what the sync asked for.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class World:
    """What the stand-in Airflow knows. `xcoms` maps (dag_id, run_id, task_id, map_index) → value."""

    dags: list[dict[str, Any]] = field(default_factory=list)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    task_instances: list[dict[str, Any]] = field(default_factory=list)
    hitl_details: list[dict[str, Any]] = field(default_factory=list)
    assets: list[dict[str, Any]] = field(default_factory=list)
    xcoms: dict[tuple[str, str, str, int], Any] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 30, 12, tzinfo=UTC))


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))


class StandIn:
    """`with StandIn(world) as airflow: … airflow.url …`; `airflow.requests` lists (path, query)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._server = _server(self)
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

    def queries(self, suffix: str) -> list[dict[str, list[str]]]:
        """The query strings of every request whose path ends with `suffix`."""
        return [q for p, q in self.requests if p.endswith(suffix)]

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        self.requests.append((path, query))
        w = self.world
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] != ["api", "v2"]:
            return 404, {"detail": "Not Found"}
        match parts[2:]:
            case ["dags"]:
                return _page("dags", w.dags, query)
            case ["dags", dag_id, "tasks"]:
                if dag_id not in w.tasks:
                    return 404, {"detail": f"Dag with id {dag_id} was not found"}
                return 200, {"tasks": w.tasks[dag_id], "total_entries": len(w.tasks[dag_id])}
            case ["assets"]:
                return _page("assets", w.assets, query)
            case ["dags", dag_id, "dagRuns"]:
                return _page("dag_runs", _updated(_of_dag(w.runs, dag_id), query), query)
            case ["dags", dag_id, "dagRuns", "~", "taskInstances"]:
                return _page("task_instances", _updated(_of_dag(w.task_instances, dag_id), query), query)
            case ["dags", _, "dagRuns", "~", "hitlDetails"]:
                since = query.get("created_at_gte", [None])[0]
                found = [
                    d
                    for d in w.hitl_details
                    if since is None or not d.get("created_at") or _time(d["created_at"]) >= _time(since)
                ]
                return _page("hitl_details", found, query)
            case ["dags", dag_id, "dagRuns", run_id, "taskInstances", task_id, "xcomEntries", key]:
                map_index = int(query.get("map_index", ["-1"])[0])
                ident = (dag_id, run_id, task_id, map_index)
                if key != "return_value" or ident not in w.xcoms:
                    return 404, {"detail": f"XCom entry with key: `{key}` not found"}
                return 200, {
                    "key": key,
                    "dag_id": dag_id,
                    "run_id": run_id,
                    "task_id": task_id,
                    "map_index": map_index,
                    "value": w.xcoms[ident],
                }
            case _:
                return 404, {"detail": "Not Found"}


def _of_dag(records: list[dict[str, Any]], dag_id: str) -> list[dict[str, Any]]:
    return records if dag_id == "~" else [r for r in records if r.get("dag_id") == dag_id]


def _updated(records: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    """`updated_at_gte` applied to the records that carry an `updated_at`."""
    since = query.get("updated_at_gte", [None])[0]
    if since is None:
        return records
    return [r for r in records if not r.get("updated_at") or _time(r["updated_at"]) >= _time(since)]


def _page(key: str, items: list[Any], query: dict[str, list[str]]) -> tuple[int, Any]:
    limit = int(query.get("limit", ["50"])[0])
    offset = int(query.get("offset", ["0"])[0])
    return 200, {key: items[offset : offset + limit], "total_entries": len(items)}


def _server(standin: StandIn) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, payload = standin.answer(url.path, parse_qs(url.query))
            data = json.dumps(payload).encode()
            self.send_response_only(status)
            self.send_header("Date", format_datetime(standin.world.now, usegmt=True))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)
