"""A real Airflow for the tests: ``airflow standalone`` in a throw-away AIRFLOW_HOME.

``AirflowClient`` talks to any Airflow 3 REST API with a bearer token from ``POST /auth/token``;
``AirflowServer`` is a client that also starts and stops its own ``airflow standalone`` (SQLite,
free loopback ports, fixed admin/admin login) and waits for the real readiness signals.

Facts this relies on (measured on Airflow 3.3.2, see DESIGN.md):
* on a port other than 8080 both ``[api] port`` and ``[api] base_url`` must be set, or task
  processes cannot reach the execution API;
* answering a HITL task within ~1 s of it starting to wait can fail the run on 3.3.2, so
  ``wait_for_hitl`` also waits until the task has been waiting for a few seconds;
* the waiting state is ``awaiting_input`` on 3.3 and ``deferred`` on 3.1/3.2.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DAGS_FOLDER = REPO_ROOT / "dags"
WAITING_STATES = ("awaiting_input", "deferred")
TERMINAL_RUN_STATES = ("success", "failed")


class AirflowError(RuntimeError):
    """The test Airflow did not start or did not behave as expected."""


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _q(value: str) -> str:
    return quote(value, safe="")


def _parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    proc.poll()  # reap the leader if it has exited
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


#: Seconds to let a HITL task sit in its waiting state before answering it (Airflow 3.3.2 can fail
#: a run answered within about a second of the task starting to wait).
WAITING_SETTLE = 3.0


class AirflowClient:
    """Small REST helper for Airflow 3 (``/api/v2``) with a cached bearer token."""

    def __init__(self, base_url: str, username: str = "admin", password: str = "admin") -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.base_url, timeout=30.0)

    # -- HTTP -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Alias of ``base_url``."""
        return self.base_url

    @property
    def credentials(self) -> tuple[str, str]:
        """``(username, password)`` of the login the helpers use."""
        return self.username, self.password

    def token(self, *, refresh: bool = False) -> str:
        """A JWT from ``POST /auth/token`` (cached; ``refresh=True`` fetches a new one)."""
        if self._token is None or refresh:
            resp = self._http.post("/auth/token", json={"username": self.username, "password": self.password})
            if resp.status_code not in (200, 201):
                raise AirflowError(f"POST /auth/token -> {resp.status_code}: {resp.text[:500]}")
            self._token = str(resp.json()["access_token"])
        return self._token

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """An authenticated request; ``path`` is relative to the base URL (e.g. ``/api/v2/dags``).

        Returns the response whatever its status (tests assert on 4xx too); a 401 is retried once
        with a fresh token.
        """
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self.token(refresh=attempt == 1)}"}
            resp = self._http.request(method, path, json=json, params=params, headers=headers)
            if resp.status_code != 401:
                break
        return resp

    def _ok(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            raise AirflowError(
                f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:1000]}"
            )
        return resp.json() if resp.content else None

    def close(self) -> None:
        self._http.close()

    # -- DAGs and runs ---------------------------------------------------------------------
    def dag(self, dag_id: str) -> dict[str, Any] | None:
        resp = self.request("GET", f"/api/v2/dags/{_q(dag_id)}")
        return None if resp.status_code == 404 else self._ok(resp)

    def import_errors(self) -> list[dict[str, Any]]:
        data = self._ok(self.request("GET", "/api/v2/importErrors", params={"limit": 100}))
        return list(data["import_errors"])

    def wait_for_dag(self, dag_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the DAG is parsed and listed; fail fast on an import error for its file."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.dag(dag_id)
            if found is not None:
                return found
            errors = [e for e in self.import_errors() if dag_id in (e.get("filename") or "")]
            if errors:
                raise AirflowError(f"DAG {dag_id} failed to import: {errors[0].get('stack_trace')}")
            if time.monotonic() > deadline:
                others = [(e.get("filename"), e.get("stack_trace")) for e in self.import_errors()]
                raise AirflowError(
                    f"DAG {dag_id} was not listed within {timeout:.0f}s; import errors: {others}"
                )
            time.sleep(0.5)

    def unpause(self, dag_id: str) -> None:
        self._ok(self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": False}))

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Trigger a manual run now; returns its ``dag_run_id``."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id is not None:
            body["dag_run_id"] = run_id
        data = self._ok(self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", json=body))
        return str(data["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        resp = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
        return dict(self._ok(resp))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        return list(self._ok(self.request("GET", path, params={"limit": 100}))["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return dict(self._ok(self.request("GET", path)))

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/xcomEntries/{_q(key)}"
        )
        return self._ok(self.request("GET", path, params={"deserialize": True}))["value"]

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        states: Iterable[str] = TERMINAL_RUN_STATES,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Poll until the run is in one of ``states``; returns the run."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in wanted:
                return run
            if time.monotonic() > deadline:
                tis = {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}
                raise AirflowError(
                    f"run {dag_id}/{run_id} is {run['state']!r} after {timeout:.0f}s, wanted "
                    f"{sorted(wanted)}; task states: {tis}"
                )
            time.sleep(0.5)

    # -- Human in the loop -----------------------------------------------------------------
    def hitl_details(self, dag_id: str, run_id: str, **filters: Any) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/hitlDetails"
        return list(self._ok(self.request("GET", path, params=filters))["hitl_details"])

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/{map_index}/hitlDetails"
        )
        return dict(self._ok(self.request("GET", path)))

    def wait_for_hitl(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 120.0,
        *,
        task_id: str | None = None,
        settle: float = 8.0,
    ) -> dict[str, Any]:
        """Poll until a HITL detail is listed for the run and its task is waiting for input.

        Then also wait until the task has been waiting for ``settle`` seconds: on 3.3.2 an
        answer that arrives within ~1 s of the task starting to wait can fail the run. Returns
        the HITL detail (``task_instance`` included).
        """
        deadline = time.monotonic() + timeout
        while True:
            filters = {"task_id": task_id} if task_id else {}
            pending = [
                d
                for d in self.hitl_details(dag_id, run_id, **filters)
                if not d.get("response_received")
                and (d.get("task_instance") or {}).get("state") in WAITING_STATES
            ]
            if pending:
                detail = pending[0]
                break
            if self.dag_run(dag_id, run_id)["state"] in TERMINAL_RUN_STATES:
                tis = {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}
                raise AirflowError(f"run {dag_id}/{run_id} ended before asking a human: {tis}")
            if time.monotonic() > deadline:
                tis = {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}
                raise AirflowError(f"no waiting HITL task in {dag_id}/{run_id} after {timeout:.0f}s: {tis}")
            time.sleep(0.5)
        # The race is about the moment the task starts waiting, which under load can come seconds
        # after the detail was created (notifiers run in between): settle from both.
        seen_waiting = time.monotonic()
        created = _parse_ts(detail.get("created_at"))
        since_created = (datetime.now(UTC) - created).total_seconds() if created else 0.0
        time.sleep(max(settle - since_created, WAITING_SETTLE - (time.monotonic() - seen_waiting), 0.0))
        return detail

    def respond(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: list[str],
        params_input: Mapping[str, Any] | None = None,
        map_index: int = -1,
    ) -> httpx.Response:
        """Answer a HITL task (``PATCH …/hitlDetails``). Returns the raw response: 200 on success,
        400 for an invalid option, 409 when already answered."""
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/{map_index}/hitlDetails"
        )
        body = {"chosen_options": list(chosen_options), "params_input": dict(params_input or {})}
        return self.request("PATCH", path, json=body)


class AirflowServer(AirflowClient):
    """``airflow standalone`` from this venv in a fresh temporary AIRFLOW_HOME (SQLite).

    Use as a context manager or call ``start()``/``stop()``. ``env`` is added to the server's
    environment (e.g. ``{"CONTEXTGRAPH_REVIEW_TIMEOUT_SECONDS": "60"}``); ``wait_for_dags`` are the
    DAG ids that must be parsed before ``start()`` returns.
    """

    def __init__(
        self,
        dags_folder: str | os.PathLike[str] = DEFAULT_DAGS_FOLDER,
        *,
        env: Mapping[str, str] | None = None,
        wait_for_dags: Iterable[str] = (),
        username: str = "admin",
        password: str = "admin",
        port: int | None = None,
        startup_timeout: float = 180.0,
        airflow_bin: str | os.PathLike[str] | None = None,
        keep_home: bool = False,
        pycache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", username, password)
        self.dags_folder = Path(dags_folder).resolve()
        self.extra_env = dict(env or {})
        self.dag_ids = list(wait_for_dags)
        self.startup_timeout = startup_timeout
        self.airflow_bin = Path(airflow_bin or Path(sys.executable).parent / "airflow")
        self.keep_home = keep_home
        # Every component imports all of Airflow (~3.5 s without bytecode, ~1.6 s with it): let the
        # server write .pyc files to a cache shared by all test sessions, even where the caller
        # runs with PYTHONDONTWRITEBYTECODE=1 (as this machine does).
        self.pycache_dir = Path(
            pycache_dir or Path(tempfile.gettempdir()) / f"contextgraph-airflow-pycache-{os.getuid()}"
        )
        self.home: Path | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def _environment(self, home: Path) -> dict[str, str]:
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        env.pop("AIRFLOW_CONFIG", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "PYTHONPYCACHEPREFIX": str(self.pycache_dir),
                # standalone starts its components as plain `airflow …`: use this venv's.
                "PATH": f"{self.airflow_bin.parent}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                # Log servers of the executor and triggerer: free ports, so that another Airflow
                # on this machine (default 8793/8794) does not collide with this one.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # Quicker reactions for tests (all overridable through `env`).
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> AirflowServer:
        if self._proc is not None:
            raise AirflowError("already started")
        if not self.airflow_bin.exists():
            raise AirflowError(f"no airflow executable at {self.airflow_bin}")
        started = time.monotonic()
        self.home = Path(tempfile.mkdtemp(prefix="contextgraph-airflow-"))
        self.log_path = self.home / "standalone.log"
        self._log_file = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [str(self.airflow_bin), "standalone"],
            env=self._environment(self.home),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() ends every component
        )
        try:
            self._wait_until_ready(started + self.startup_timeout)
        except BaseException:
            self.keep_home = True  # leave the log and airflow.db to look at
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _fail(self, why: str) -> AirflowError:
        return AirflowError(
            f"airflow standalone at {self.base_url} {why}\n"
            f"--- last lines of {self.log_path} ---\n{self.log_tail()}"
        )

    def _check_alive(self) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise self._fail(f"exited with code {self._proc.returncode} during start-up")

    def _wait_until_ready(self, deadline: float) -> None:
        def overdue(what: str) -> None:
            if time.monotonic() > deadline:
                raise self._fail(f"did not {what} within {self.startup_timeout:.0f}s")

        # 1. API up and scheduler + DAG processor heartbeating (the health endpoint needs no auth).
        while True:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError, ValueError):
                resp = self._http.get("/api/v2/monitor/health", timeout=2.0)
                if resp.status_code == 200:
                    health = resp.json()
                    if all(
                        (health.get(part) or {}).get("status") == "healthy"
                        for part in ("metadatabase", "scheduler", "dag_processor")
                    ):
                        break
            overdue("report a healthy API, scheduler and DAG processor")
            time.sleep(0.25)
        # 2. A token for the configured user.
        while True:
            self._check_alive()
            try:
                self.token(refresh=True)
                break
            except (httpx.HTTPError, AirflowError):
                overdue("issue a token")
                time.sleep(0.25)
        # 3. The DAGs we need are parsed (or their import error is reported).
        for dag_id in self.dag_ids:
            remaining = max(deadline - time.monotonic(), 1.0)
            try:
                self.wait_for_dag(dag_id, timeout=remaining)
            except AirflowError as exc:
                raise self._fail(str(exc)) from exc

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and delete the home."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            # Wait until every member of the group is gone, not just the standalone parent.
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _group_alive(proc):
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            # Task processes call setsid(), so a task still running is not in the group: find
            # them by this server's unique AIRFLOW_HOME.
            for pid in self._home_processes():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.close()
        if self.home is not None and not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def _home_processes(self) -> list[int]:
        """PIDs of processes whose environment has this server's AIRFLOW_HOME (Linux /proc)."""
        if self.home is None or not Path("/proc").is_dir():
            return []
        marker = f"AIRFLOW_HOME={self.home}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
        return pids

    def __enter__(self) -> AirflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
