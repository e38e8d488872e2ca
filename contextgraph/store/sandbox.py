"""Agent Cypher on the embedded store, in a worker process that can be stopped.

Ladybug checks its query timeout between chunks of rows only, and keeps lists and strings outside
its buffer pool: one expression such as `size(range(1, 2000000000))` — folded while the query is
bound, so even EXPLAIN evaluates it — runs for minutes past the timeout and takes tens of GB. No
check of the query text can rule that out (`range(1, x)` with a computed `x`, nested list
functions), so the agents' queries run in a child process that the caller stops from outside:
killed when it outlives the timeout (plus a grace for Ladybug's own, clean stop) or when its
resident memory passes a cap. The next query starts a new worker.

The worker is this file run as a script (`python -P sandbox.py`): it imports Ladybug and the
standard library only, opens the store file read-only for each query, and talks to the parent
in pickled, length-prefixed frames over its stdin/stdout (its own stdout is moved to stderr so
the engine cannot write into the protocol). Requests and answers, in order:

    parent → {"path", "buffer_pool_mb", "cypher", "params"}
    worker → ("plan", text) | ("error", text)
    parent → ("run", timeout_ms, row_limit) | ("skip",)
    worker → ("rows", names, rows, cut) | ("error", text)
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("!Q")
SEVERAL = "several statements"
"""The error text of a query holding more than one statement."""
GRACE_SECONDS = 1.0
"""How long after the timeout a worker still running is killed (Ladybug's own stop comes first)."""
START_SECONDS = 60.0
"""How long a new worker may take to start (import Ladybug) on a loaded machine."""
OPEN_SECONDS = 5.0
"""How long opening the file and EXPLAIN may take beyond the timeout (EXPLAIN folds constant
expressions, so a bomb in one is cut here too)."""


class Stopped(Exception):
    """The worker was killed: `reason` is "timeout" or "memory"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EngineFailure(Exception):
    """Ladybug raised: the text of its error, at `stage` "plan" or "run"."""

    def __init__(self, text: str, stage: str) -> None:
        super().__init__(text)
        self.text = text
        self.stage = stage


def _send(stream: Any, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, size: int, deadline: float | None, watch: Callable[[], None] | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise Stopped("timeout")
            ready, _, _ = select.select([fd], [], [], min(wait, 0.05))
            if watch is not None:
                watch()
            if not ready:
                continue
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the worker ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, deadline: float | None = None, watch: Callable[[], None] | None = None) -> Any:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline, watch))
    return pickle.loads(_read_exact(fd, size, deadline, watch))


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (Linux /proc), None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


class LadybugSandbox:
    """One worker process for read-only agent queries on a Ladybug file; not thread-safe (the
    store calls it under its lock). `memory_mb` caps the worker's resident memory (MB)."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _worker(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = proc = subprocess.Popen(
                [sys.executable, "-P", str(Path(__file__).resolve())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
            assert proc.stdout is not None
            try:
                _receive(proc.stdout.fileno(), time.monotonic() + START_SECONDS)  # ("ready",)
            except (Stopped, EOFError, OSError, pickle.UnpicklingError) as exc:
                self.close()
                raise EngineFailure(f"the query worker did not start ({exc})", "plan") from None
        return self._proc

    def close(self) -> None:
        """Stop the worker (it also ends by itself when its stdin closes)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def run(
        self,
        path: Path,
        buffer_pool_mb: int,
        cypher: str,
        params: Mapping[str, Any],
        *,
        timeout: float,
        row_limit: int,
        check_plan: Callable[[str], None],
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        """EXPLAIN `cypher` in the worker, hand the plan text to `check_plan` (which raises to
        refuse), then run it with Ladybug's timeout and at most `row_limit` rows: (column names,
        rows as the engine gave them, whether rows were cut). Raises Stopped (killed at the
        deadline or the memory cap), EngineFailure (Ladybug's error text), or what `check_plan`
        raises."""
        with self._lock:
            proc = self._worker()
            assert proc.stdin is not None and proc.stdout is not None
            fd = proc.stdout.fileno()

            def watch() -> None:
                rss = _rss_mb(proc.pid)
                if rss is not None and rss > self.memory_mb:
                    raise Stopped("memory")

            try:
                _send(
                    proc.stdin,
                    {
                        "path": str(path),
                        "buffer_pool_mb": buffer_pool_mb,
                        "cypher": cypher,
                        "params": dict(params),
                    },
                )
                answer = _receive(fd, time.monotonic() + timeout + OPEN_SECONDS, watch)
                if answer[0] == "error":
                    raise EngineFailure(answer[1], "plan")
                try:
                    check_plan(answer[1])
                except BaseException:
                    _send(proc.stdin, ("skip",))
                    raise
                _send(proc.stdin, ("run", max(1, int(timeout * 1000)), row_limit))
                answer = _receive(fd, time.monotonic() + timeout + GRACE_SECONDS, watch)
            except (Stopped, EOFError, OSError, pickle.UnpicklingError) as exc:
                self.close()
                if isinstance(exc, Stopped):
                    raise
                raise EngineFailure(f"the query worker ended unexpectedly ({exc})", "run") from None
            if answer[0] == "error":
                raise EngineFailure(answer[1], "run")
            return answer[1], answer[2], answer[3]


# --- the worker ----------------------------------------------------------------------------------


def _serve() -> None:  # pragma: no cover - runs in the child process
    import ladybug

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the engine prints goes to stderr, not into the protocol
    fd = sys.stdin.fileno()
    _send(out, ("ready",))
    while True:
        try:
            request = _receive(fd)
        except EOFError:
            return
        try:
            database = ladybug.Database(
                request["path"], read_only=True, buffer_pool_size=request["buffer_pool_mb"] << 20
            )
        except Exception as exc:
            _send(out, ("error", str(exc)))
            continue
        conn = ladybug.Connection(database)
        try:
            try:
                plan = conn.execute("EXPLAIN " + request["cypher"], request["params"])
                if isinstance(plan, list):
                    _send(out, ("error", SEVERAL))
                    continue
                first: Any = plan.get_next() if plan.has_next() else [""]
                _send(out, ("plan", str(first[0])))
            except Exception as exc:
                _send(out, ("error", str(exc)))
                continue
            order = _receive(fd)
            if order[0] != "run":
                continue
            _, timeout_ms, row_limit = order
            try:
                conn.set_query_timeout(timeout_ms)
                result = conn.execute(request["cypher"], request["params"])
                if isinstance(result, list):
                    raise RuntimeError(SEVERAL)
                names = result.get_column_names()
                rows: list[tuple[Any, ...]] = []
                cut = False
                while result.has_next():
                    if len(rows) >= row_limit:
                        cut = True
                        break
                    rows.append(tuple(result.get_next()))
                result.close()
                message: Any = ("rows", names, rows, cut)
                pickle.dumps(message)  # a value that cannot be sent becomes an error, not a crash
            except Exception as exc:
                message = ("error", str(exc))
            _send(out, message)
        finally:
            conn.close()
            database.close()


if __name__ == "__main__":  # pragma: no cover
    _serve()
