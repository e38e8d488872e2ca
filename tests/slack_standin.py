"""A stand-in for the Slack Web API, on loopback, for the real `slack_sdk.WebClient` to talk to.

The Slack API cannot be reached from the test machines, so this small HTTP server answers the few
methods the bridge uses the way Slack does (``{"ok": true, "channel": …, "ts": …}``, or
``{"ok": false, "error": …}``) and records every call. It checks what Slack checks and the bridge
could get wrong: the bot token, and Block Kit limits (section text 3000, header 150, button text 75
and value 2000, option text 75 and value 150, 25 elements per actions block, 50 blocks per message,
100 per modal, modal title 24, private_metadata 3000) — a message Slack would refuse is refused here
with ``invalid_blocks``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.update", "auth.test")


class SlackStandIn:
    """``with SlackStandIn(token) as slack:`` … ``slack.api_url`` … ``slack.calls``."""

    def __init__(self, token: str, port: int = 0, team: str = "T0CONTEXT") -> None:
        self.token = token
        self.team = team
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._channels: dict[str, str] = {}
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                standin._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.api_url = f"http://127.0.0.1:{self.port}/api/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-standin", daemon=True)

    def __enter__(self) -> SlackStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what the tests look at ------------------------------------------------------------

    def channel_id(self, name: str) -> str:
        with self._lock:
            return self._channel_id(name)

    def _channel_id(self, name: str) -> str:
        if not name.startswith("#"):
            return name
        return self._channels.setdefault(name, f"C{len(self._channels) + 1:08d}")

    def recorded(
        self, method: str, where: Callable[[dict[str, Any]], bool] = lambda a: True
    ) -> list[dict[str, Any]]:
        """The accepted calls of `method` whose arguments `where` selects: ``{"args", "answer", …}``."""
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if c["method"] == method and c["ok"] and where(c["args"])]

    def wait_for(
        self, method: str, where: Callable[[dict[str, Any]], bool] = lambda a: True, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first accepted call of `method` whose arguments match `where`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.recorded(method, where)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {method} call matched within {timeout:.0f}s; calls: {self.summary()}"
                )
            time.sleep(0.1)

    def summary(self) -> list[tuple[str, bool, str | None]]:
        with self._lock:
            return [(c["method"], c["ok"], c.get("error")) for c in self.calls]

    # -- the API ---------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        method = request.path.rsplit("/", 1)[-1]
        raw = request.rfile.read(int(request.headers.get("Content-Length") or 0)).decode()
        if (request.headers.get("Content-Type") or "").startswith("application/json"):
            args = json.loads(raw or "{}")
        else:
            args = {k: v[0] for k, v in parse_qs(raw).items()}
            for key in ("blocks", "view"):
                if isinstance(args.get(key), str):
                    args[key] = json.loads(args[key])
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ") or args.get("token")
        with self._lock:
            answer = self._answer(method, args, token)
            self.calls.append(
                {
                    "method": method,
                    "args": args,
                    "ok": answer["ok"],
                    "error": answer.get("error"),
                    "answer": answer,
                }
            )
        body = json.dumps(answer).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _answer(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method not in METHODS:
            return {"ok": False, "error": "unknown_method"}
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return {"ok": True, "team_id": self.team, "user_id": "UBOT", "bot_id": "BBOT"}
        if method.startswith("views."):
            problem = _view_problem(args.get("view"))
            if problem:
                return {
                    "ok": False,
                    "error": "invalid_arguments",
                    "response_metadata": {"messages": [problem]},
                }
            if method == "views.open" and not args.get("trigger_id"):
                return {"ok": False, "error": "invalid_trigger_id"}
            view_id = args.get("view_id") or f"V{next(self._ts):08d}"
            return {"ok": True, "view": {**args["view"], "id": view_id, "team_id": self.team}}
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        channel = self._channel_id(channel)
        problem = _blocks_problem(args.get("blocks"), 50) if "blocks" in args else None
        if problem:
            return {"ok": False, "error": "invalid_blocks", "response_metadata": {"messages": [problem]}}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if method == "chat.postEphemeral":
            if not args.get("user"):
                return {"ok": False, "error": "user_not_in_channel"}
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        if method == "chat.update":
            if not args.get("ts"):
                return {"ok": False, "error": "message_not_found"}
            return {"ok": True, "channel": channel, "ts": args["ts"], "text": args.get("text", "")}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message = {"type": "message", "text": args.get("text", ""), "blocks": args.get("blocks"), "ts": ts}
        return {"ok": True, "channel": channel, "ts": ts, "message": message}


def _text_problem(obj: Any, limit: int, where: str) -> str | None:
    text = (obj or {}).get("text") if isinstance(obj, dict) else None
    if not isinstance(text, str) or not text:
        return f"{where}: text is missing"
    if len(text) > limit:
        return f"{where}: text is {len(text)} characters, more than {limit}"
    return None


def _option_problem(option: dict[str, Any], where: str) -> str | None:
    return _text_problem(option.get("text"), 75, where) or (
        f"{where}: value longer than 150" if len(str(option.get("value", ""))) > 150 else None
    )


def _element_problem(element: dict[str, Any], where: str) -> str | None:
    kind = element.get("type")
    if kind == "button":
        if len(str(element.get("value", ""))) > 2000:
            return f"{where}: button value longer than 2000"
        return _text_problem(element.get("text"), 75, where)
    for option in [*(element.get("options") or []), *(element.get("initial_options") or [])]:
        problem = _option_problem(option, f"{where} option")
        if problem:
            return problem
    if len(element.get("options") or []) > (10 if kind == "checkboxes" else 100):
        return f"{where}: too many options"
    return None


def _blocks_problem(blocks: Any, most: int) -> str | None:
    if not isinstance(blocks, list) or len(blocks) > most:
        return f"blocks must be a list of at most {most}"
    for n, block in enumerate(blocks):
        kind, where = block.get("type"), f"blocks[{n}]"
        if len(str(block.get("block_id", ""))) > 255:
            return f"{where}: block_id longer than 255"
        if kind == "header":
            problem = _text_problem(block.get("text"), 150, where)
        elif kind == "section":
            problem = _text_problem(block.get("text"), 3000, where)
        elif kind == "context":
            problem = next((_text_problem(e, 3000, where) for e in block.get("elements") or []), None)
        elif kind == "actions":
            elements = block.get("elements") or []
            problem = f"{where}: more than 25 elements" if len(elements) > 25 else None
            problem = problem or next(filter(None, (_element_problem(e, where) for e in elements)), None)
        elif kind == "input":
            problem = _text_problem(block.get("label"), 2000, where) or _element_problem(
                block.get("element") or {}, where
            )
        else:
            problem = f"{where}: unknown block type {kind!r}"
        if problem:
            return problem
    return None


def _view_problem(view: Any) -> str | None:
    if not isinstance(view, dict) or view.get("type") != "modal":
        return "view must be a modal"
    if len(str(view.get("private_metadata", ""))) > 3000:
        return "private_metadata longer than 3000"
    return _text_problem(view.get("title"), 24, "title") or _blocks_problem(view.get("blocks"), 100)
