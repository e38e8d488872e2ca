"""A loopback HTTP proxy in front of a real server that replaces chosen answers with faults.

Everything the proxy does not touch is the real server's answer. Faults, each matched by method,
path prefix and (optionally) query parameters, and taken `times` times:

* ``status``: answer `status` (with `headers`, e.g. ``Retry-After``) instead of forwarding;
* ``slow``: wait `delay` seconds, then forward (a client with a shorter timeout times out);
* ``drop``: hang up without answering (a dropped connection);
* ``truncate``: forward, announce the whole body, send half of it, hang up (connection cut
  mid-response);
* ``garbage``: forward, send half of the body as a complete answer (truncated JSON);
* ``echo_auth``: answer 400 with the request's ``Authorization`` header in the detail;
* ``expire_token``: the bearer token of this request expires: 401 now and for every later
  request that still carries it (as a server whose token lifetime ran out would answer).

``injected`` counts the faults actually delivered, by kind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Fault", "FaultProxy"]


@dataclass
class Fault:
    kind: str  # status | slow | drop | truncate | garbage | echo_auth | expire_token
    when: Callable[[str, str], bool]
    times: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    query: Mapping[str, str] = field(default_factory=dict)
    """Query parameters the request must carry (e.g. ``{"offset": "2"}``) for the fault to apply."""


class FaultProxy:
    """A loopback HTTP proxy to a real server that replaces chosen answers with faults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str, int]] = []  # (method, path without query, status sent)
        self.authorizations: list[str] = []
        self.injected: Counter[str] = Counter()
        self.expired: set[str] = set()
        #: Replaced in request headers and bodies before forwarding, e.g. a test's distinctive
        #: password → the real server's, or a distinctive token → a real one.
        self.aliases: dict[str, str] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                # A client that gave up (timed out) before the answer is not an error of ours.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    proxy._serve(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self, kind: str, *, path: str = "/api/v2/", method: str = "GET", match: str = "prefix", **kw: Any
    ) -> Fault:
        """A fault for requests whose path starts with (``match="prefix"``), equals (``"exact"``),
        contains (``"contains"``) or ends with (``"suffix"``) `path`."""
        tests: dict[str, Callable[[str], bool]] = {
            "prefix": lambda p: p.startswith(path),
            "exact": lambda p: p == path,
            "contains": lambda p: path in p,
            "suffix": lambda p: p.endswith(path),
        }
        test = tests[match]

        def when(m: str, p: str) -> bool:
            return m == method and test(p)

        fault = Fault(kind, when, **kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forget the faults not delivered yet (tokens already expired stay expired)."""
        with self._lock:
            self.faults.clear()

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.seen if m == method and p.startswith(path))

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    def _take(self, method: str, path: str, query: dict[str, list[str]]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times
                    and fault.when(method, path)
                    and all(query.get(k) == [v] for k, v in fault.query.items())
                ):
                    fault.times -= 1
                    self.injected[fault.kind] += 1
                    return fault
        return None

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path, _, query = h.path.partition("?")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        authorization = h.headers.get("Authorization")
        if authorization:
            self.authorizations.append(authorization)
        if authorization and authorization in self.expired:
            self.injected["expired token reused"] += 1
            self._send(h, path, 401, b'{"detail": "Token expired"}', {})
            return
        for alias, real in self.aliases.items():
            if body is not None:
                body = body.replace(alias.encode(), real.encode())
        fault = self._take(h.command, path, parse_qs(query))
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "drop":
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            self.seen.append((h.command, path, 0))
            return
        if fault is not None and fault.kind == "expire_token":
            if authorization:
                self.expired.add(authorization)
            self._send(h, path, 401, b'{"detail": "Token expired"}', {})
            return
        if fault is not None and fault.kind == "status":
            self._send(h, path, fault.status, b'{"detail": "injected"}', fault.headers)
            return
        if fault is not None and fault.kind == "echo_auth":
            detail = {"detail": f"refusing {authorization}"}
            self._send(h, path, 400, json.dumps(detail).encode(), {})
            return
        status, headers, payload = self._forward(h, body)
        if fault is not None and fault.kind == "garbage":
            self._send(h, path, status, payload[: len(payload) // 2], headers)
            return
        if fault is not None and fault.kind == "truncate":
            # Announce the whole body, send half, hang up.
            h.send_response_only(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload[: len(payload) // 2])
            h.wfile.flush()
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            self.seen.append((h.command, path, status))
            return
        self._send(h, path, status, payload, headers)

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {
                k: self._unalias(v)
                for k, v in h.headers.items()
                # no accept-encoding: answers are relayed without their Content-Encoding
                if k.lower() not in ("host", "connection", "content-length", "accept-encoding")
            }
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            keep = {
                k: v
                for k, v in resp.getheaders()
                if k.lower() in ("content-type", "date", "retry-after", "www-authenticate")
            }
            return resp.status, keep, payload
        finally:
            conn.close()

    def _unalias(self, value: str) -> str:
        for alias, real in self.aliases.items():
            value = value.replace(alias, real)
        return value

    def _send(
        self, h: BaseHTTPRequestHandler, path: str, status: int, payload: bytes, headers: dict[str, str]
    ) -> None:
        h.send_response_only(status)  # no second Date header next to the server's own
        for k, v in headers.items():
            h.send_header(k, v)
        if not any(k.lower() == "date" for k in headers):
            h.send_header("Date", h.date_time_string())
        if not any(k.lower() == "content-type" for k in headers):
            h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)
        self.seen.append((h.command, path, status))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
