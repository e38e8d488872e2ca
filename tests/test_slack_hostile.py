"""Hostile requests to the Slack bridge: none of them may write anything to Airflow.

A real review waits on the session's Airflow. The bridge talks to that Airflow through a spy
transport that counts every request by method, and to the Slack Web API stand-in. Forged
signatures, replays, stale or odd timestamps, oversized bodies, malformed payloads, wrong action
values and injection-ish ids are each answered 401/400/413 (or 200 with nothing done, where Slack
expects 200 for anything it sent); afterwards the spy has seen no PATCH, no form was opened and the
review still waits. Then one genuine click and submission answers it, through the same spy, so a
zero really means nothing was written.

Figures are printed with a ``[reliability]`` prefix (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import quote, urlencode

import httpx
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from contextgraph.config import AirflowSettings
from contextgraph.ingest.mapping import SLACK_IDENTITY_KEY
from contextgraph.slack.airflow import HITLClient
from contextgraph.slack.app import SlackBridge, create_app
from contextgraph.slack.blocks import ANSWER_ACTION, ANSWER_VIEW, OPTION_ACTION, HITLRef, button_value
from contextgraph.slack.config import MAX_BODY_BYTES, SlackSettings
from tests.airflow_server import AirflowClient
from tests.slack_standin import SlackStandIn

pytestmark = pytest.mark.airflow

DAG, TASK = "ai_support_ticket_system", "review_response"
APPROVE = "Approve AI Response"
TOKEN = "xoxb-hostile-test"
SECRET = "hostile-test-signing-secret"
USER = {"id": "U0HOSTILE", "username": "mallory", "team_id": "T0CONTEXT"}


class Spy(httpx.AsyncBaseTransport):
    """The bridge's way to the real Airflow, counting requests by method."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.methods: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.methods[request.method] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Clock:
    """The bridge's clock, movable (to replay a request after the 5-minute window)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def sign(body: bytes, *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


def form(payload: Any) -> bytes:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


def click(value: Any, action_id: str = f"{OPTION_ACTION}:0", **extra: Any) -> dict[str, Any]:
    payload = {
        "type": "block_actions",
        "user": USER,
        "team": {"id": "T0CONTEXT"},
        "trigger_id": f"{time.time():.0f}.{uuid.uuid4().hex[:8]}",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": "C0HOSTILE"},
        "actions": [{"action_id": action_id, "type": "button", "value": value}],
    }
    payload.update(extra)
    return payload


def submit(ref: Any, chosen: Any, values: Any, **view: Any) -> dict[str, Any]:
    meta = ref if isinstance(ref, str) else json.dumps({"ref": ref, "chosen": chosen, "channel": "C0HOSTILE"})
    return {
        "type": "view_submission",
        "user": USER,
        "view": {
            "id": "V0HOSTILE",
            "callback_id": ANSWER_VIEW,
            "private_metadata": meta,
            "state": {"values": values},
            **view,
        },
    }


def reason(text: Any) -> dict[str, Any]:
    """Form state as Slack sends it: every input block of the form, here `reason` and the reply."""
    return {
        "param:reason": {"value": {"type": "plain_text_input", "value": text}},
        "param:manual_response": {"value": {"type": "plain_text_input", "value": None}},
    }


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(TOKEN) as standin:
        yield standin


@pytest.fixture(scope="module")
def waiting(airflow: AirflowClient, example_dag: str) -> str:
    """A review waiting on the real Airflow; returns its run id."""
    run_id = airflow.trigger(
        DAG, conf={"ticket_id": "T-H1", "subject": "Hostile"}, run_id=f"hostile_{uuid.uuid4().hex[:8]}"
    )
    airflow.wait_for_hitl(DAG, run_id, task_id=TASK)
    return run_id


def bridge(airflow: AirflowClient, slack: SlackStandIn, spy: Spy, clock: Clock) -> SlackBridge:
    user, password = airflow.credentials
    service = AirflowSettings(url=airflow.url, username=user, password=SecretStr(password), max_retries=0)
    settings = SlackSettings(
        bot_token=SecretStr(TOKEN),
        signing_secret=SecretStr(SECRET),
        api_url=slack.api_url,
        default_channel="#reviews",
        airflow=service,
    )
    return SlackBridge(settings, airflow=HITLClient(service, transport=spy), clock=clock)


def hostile_inputs(run_id: str) -> list[tuple[str, bytes | str, dict[str, Any] | None, set[int]]]:
    """(what, body, headers or None to sign it properly, acceptable statuses)."""
    ref = {"dag_id": DAG, "run_id": run_id, "task_id": TASK, "map_index": -1}
    good = form(click(button_value(HITLRef(DAG, run_id, TASK), "Refund everything")))
    now = int(time.time())
    ok, bad = {200}, {400}
    cases: list[tuple[str, bytes | str, dict[str, Any] | None, set[int]]] = [
        # signatures and timestamps
        ("forged signature", good, sign(good, secret="not-the-secret"), {401}),
        ("no signature", good, {"Content-Type": "application/x-www-form-urlencoded"}, {401}),
        ("empty signature", good, {**sign(good), "X-Slack-Signature": ""}, {401}),
        ("v1 signature scheme", good, {**sign(good), "X-Slack-Signature": "v1=" + "0" * 64}, {401}),
        ("signature of another body", good + b"&x=1", sign(good), {401}),
        ("stale timestamp (6 min)", good, sign(good, ts=now - 360), {401}),
        ("future timestamp (6 min)", good, sign(good, ts=now + 360), {401}),
        ("timestamp not a number", good, {**sign(good), "X-Slack-Request-Timestamp": "12abc"}, {401}),
        (
            "timestamp superscript digits",
            good,
            {**sign(good), "X-Slack-Request-Timestamp": b"\xb9\xb2\xb3"},
            {401},
        ),
        ("timestamp 5000 digits", good, {**sign(good), "X-Slack-Request-Timestamp": "9" * 5000}, {401}),
        ("negative timestamp", good, {**sign(good), "X-Slack-Request-Timestamp": "-1"}, {401}),
        # bodies that are not Slack's
        ("empty body", b"", None, bad),
        ("JSON body, not a form", json.dumps(click("{}")).encode(), None, bad),
        ("form without payload", b"foo=bar&type=block_actions", None, bad),
        ("payload not JSON", form("{nope"), None, bad),
        ("payload a JSON array", form("[1, 2]"), None, bad),
        ("payload a JSON string", form('"block_actions"'), None, bad),
        ("payload null", form("null"), None, bad),
        ("payload nested 100k deep", form("[" * 100_000), None, bad),
        ("not UTF-8", b"payload=\xff\xfe\xfa", None, {400, 401}),
        ("100k form fields", b"&".join(b"a=%d" % i for i in range(100_000)), None, bad),
        # payloads of unknown or incomplete kinds
        ("unknown type", form({"type": "shortcut", "callback_id": "x"}), None, ok),
        ("no type", form({"user": USER}), None, ok),
        ("view_closed", form({"type": "view_closed", "view": {"callback_id": ANSWER_VIEW}}), None, ok),
        ("block_actions without actions", form({"type": "block_actions"}), None, ok),
        ("actions a string", form({"type": "block_actions", "actions": "boom"}), None, ok),
        ("actions [5]", form({"type": "block_actions", "actions": [5]}), None, ok),
        ("user a string", form(click(json.dumps(ref), user="U0", container="x")), None, ok),
        ("view a string", form({"type": "view_submission", "view": "x"}), None, ok),
        # wrong action values
        ("option not offered", good, None, ok),
        ("option index out of range", form(click(json.dumps({**ref, "option_index": 99}))), None, ok),
        ("option a list", form(click(json.dumps({**ref, "option": [APPROVE]}))), None, ok),
        ("value a number", form(click(5)), None, ok),
        ("value not JSON", form(click("approve!")), None, ok),
        ("value without ids", form(click(json.dumps({"option": APPROVE}))), None, ok),
        ("map_index true", form(click(json.dumps({**ref, "map_index": True, "option": APPROVE}))), None, ok),
        ("map_index '0'", form(click(json.dumps({**ref, "map_index": "0", "option": APPROVE}))), None, ok),
        (
            "multi-select with hostile state",
            form(
                click(json.dumps(ref), action_id=ANSWER_ACTION, state={"values": {"b": {"x": 5}, "c": "s"}})
            ),
            None,
            ok,
        ),
        # form submissions
        ("metadata not JSON", form(submit("{nope", None, reason("r"))), None, ok),
        (
            "metadata without ref",
            form(submit(json.dumps({"chosen": [APPROVE]}), None, reason("r"))),
            None,
            ok,
        ),
        ("chosen not offered", form(submit(ref, ["Refund everything"], reason("ok"))), None, ok),
        ("chosen empty", form(submit(ref, [], reason("ok"))), None, ok),
        ("chosen a string", form(submit(ref, APPROVE, reason("ok"))), None, ok),
        ("reason block missing", form(submit(ref, [APPROVE], {"param:manual_response": {}})), None, ok),
        ("reason a number", form(submit(ref, [APPROVE], reason(5))), None, ok),
        ("values of wrong types", form(submit(ref, [APPROVE], {"param:reason": "x", "y": [1]})), None, ok),
        ("state a string", form(submit(ref, [APPROVE], "values")), None, ok),
        ("other callback_id", form(submit(ref, [APPROVE], reason("ok"), callback_id="x")), None, ok),
    ]
    # ids that try to reach something else: each either refused before any request or unknown to Airflow
    for name, ids in [
        ("dag_id '..'", {"dag_id": ".."}),
        ("dag_id path traversal", {"dag_id": "../../../api/v2/dags"}),
        ("run_id '..'", {"run_id": ".."}),
        ("run_id pre-encoded '..'", {"run_id": "%2e%2e"}),
        ("run_id SQL", {"run_id": "x' OR '1'='1"}),
        ("run_id Cypher", {"run_id": "x'}) MATCH (n) DETACH DELETE n //"}),
        ("task_id with a query", {"task_id": f"{TASK}?dag_id=other"}),
        ("task_id with a fragment", {"task_id": f"{TASK}#x"}),
        ("task_id with CRLF header", {"task_id": "x\r\nX-Injected: 1"}),
        ("task_id NUL", {"task_id": f"{TASK}\x00"}),
        ("dag_id template", {"dag_id": "{{ 7*7 }}"}),
        ("dag_id HTML", {"dag_id": "<script>alert(1)</script>"}),
        ("run_id 10k chars", {"run_id": "r" * 10_000}),
        ("map_index huge", {"map_index": 2**70}),
    ]:
        target = {**ref, **cast(dict[str, Any], ids)}
        cases.append((f"click, {name}", form(click(json.dumps({**target, "option": APPROVE}))), None, ok))
        cases.append((f"submit, {name}", form(submit(target, [APPROVE], reason("ok"))), None, ok))
    return cases


async def _asgi_post(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST `chunks` straight to the ASGI app; (status, bytes the app consumed)."""
    consumed = 0
    status = 0
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        consumed += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/slack/interactions",
        "raw_path": b"/slack/interactions",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return status, consumed


def test_hostile_requests_write_nothing_to_airflow(
    airflow: AirflowClient, slack: SlackStandIn, waiting: str
) -> None:
    spy, clock = Spy(), Clock()
    cases = hostile_inputs(waiting)
    results: dict[str, int] = {}
    started = time.monotonic()
    app = create_app(bridge=bridge(airflow, slack, spy, clock))
    with TestClient(app, raise_server_exceptions=False) as client:
        for what, body, headers, _ in cases:
            content = body.encode() if isinstance(body, str) else body
            response = client.post("/slack/interactions", content=content, headers=headers or sign(content))
            results[what] = response.status_code

        # A replay: the very same signed request, once more after the 5-minute window.
        body = form({"type": "shortcut"})
        headers = sign(body)
        assert client.post("/slack/interactions", content=body, headers=headers).status_code == 200
        clock.offset = 301
        results["replay after 5 minutes"] = client.post(
            "/slack/interactions", content=body, headers=headers
        ).status_code
        clock.offset = 0

        # 2 MB bodies: refused as soon as their size is known, without reading them whole.
        big = b"payload=" + b"x" * (2 * 1024 * 1024)
        results["2 MB body"] = client.post("/slack/interactions", content=big, headers=sign(big)).status_code
        declared = [(b"content-length", str(len(big)).encode()), (b"x-slack-signature", b"v0=0")]
        chunks = [big[i : i + 65536] for i in range(0, len(big), 65536)]
        status, consumed = asyncio.run(_asgi_post(app, chunks, declared))
        results["2 MB body, Content-Length"] = status
        assert consumed == 0
        status, streamed = asyncio.run(_asgi_post(app, chunks, [(b"x-slack-signature", b"v0=0")]))
        results["2 MB body, chunked"] = status
        assert streamed <= MAX_BODY_BYTES + 65536
        results["GET"] = client.get("/slack/interactions").status_code
    seconds = time.monotonic() - started  # the context's exit waited for every background delivery

    unexpected = {what: results[what] for what, _, _, allowed in cases if results[what] not in allowed}
    unexpected.update(
        {
            k: v
            for k, v in results.items()
            if k.startswith(("replay", "2 MB", "GET"))
            and v not in {"replay after 5 minutes": {401}, "GET": {405}}.get(k, {413})
        }
    )
    detail = airflow.hitl_detail(DAG, waiting, TASK)
    by_status = Counter(results.values())
    print(
        f"\n[reliability] Slack bridge: {len(results)} hostile requests "
        f"({', '.join(f'{n}x {s}' for s, n in sorted(by_status.items()))}) in {seconds:.1f}s; "
        f"Airflow saw {spy.methods['GET']} reads and {spy.methods['PATCH']} writes; forms opened: "
        f"{len(slack.recorded('views.open'))}; the review still waits: {not detail['response_received']}"
    )
    assert unexpected == {}, unexpected
    assert 500 not in by_status
    assert spy.methods["PATCH"] == 0
    assert slack.recorded("views.open") == []
    assert detail["response_received"] is False

    # The same bridge path does write when the request is genuine: a click, then the form.
    spy = Spy()
    with TestClient(create_app(bridge=bridge(airflow, slack, spy, clock))) as client:
        body = form(click(button_value(HITLRef(DAG, waiting, TASK), APPROVE)))
        assert client.post("/slack/interactions", content=body, headers=sign(body)).status_code == 200
        opened = slack.wait_for("views.open", lambda a: waiting in a["view"]["private_metadata"])
        view = opened["answer"]["view"]
        body = form(
            {
                "type": "view_submission",
                "user": USER,
                "view": {**view, "state": {"values": reason("A genuine answer.")}},
            }
        )
        response = client.post("/slack/interactions", content=body, headers=sign(body))
        assert response.json() == {"response_action": "clear"}, response.text
    assert spy.methods["PATCH"] == 1
    detail = airflow.hitl_detail(DAG, waiting, TASK)
    assert detail["chosen_options"] == [APPROVE]
    assert detail["params_input"][SLACK_IDENTITY_KEY]["user_id"] == USER["id"]
    assert quote(waiting) in HITLRef(DAG, waiting, TASK).api_path()
