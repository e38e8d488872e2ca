"""The Slack review bridge against a real Airflow, the real slack_sdk and real request signing.

Slack's API cannot be reached from here: `tests/slack_standin.py` answers the Web API on loopback
for the real `slack_sdk.WebClient`, both the one in the Airflow task (the DAG's notifier, pointed at
it by ``SLACK_API_URL`` in the session server's environment) and the bridge's. Slack's side of the
interactions (button clicks, form submissions) is played by signed HTTP requests to the bridge.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from contextgraph.config import AirflowSettings
from contextgraph.ingest.mapping import SLACK_IDENTITY_KEY
from contextgraph.ingest.source import AirflowSource
from contextgraph.ingest.sync import Sync
from contextgraph.slack.airflow import HITLClient
from contextgraph.slack.app import SlackBridge, create_app
from contextgraph.slack.blocks import (
    ANSWER_ACTION,
    SELECT_ACTION,
    HITLRef,
    Review,
    answer_form,
    markdown_to_mrkdwn,
    read_form,
)
from contextgraph.slack.config import SlackSettings
from contextgraph.store import GraphStore
from tests.airflow_fixtures import SLACK_ENV, SLACK_STANDIN_PORT
from tests.airflow_server import AirflowClient, AirflowServer, free_port
from tests.slack_standin import SlackStandIn

DAG, TASK = "ai_support_ticket_system", "review_response"
APPROVE, MANUAL, ESCALATE = "Approve AI Response", "Respond Manually", "Escalate to CRE"
TOKEN = SLACK_ENV["SLACK_BOT_TOKEN"]
SECRET = SLACK_ENV["SLACK_SIGNING_SECRET"]
ADA = {"id": "U0REVIEW1", "username": "ada", "name": "ada", "team_id": "T0CONTEXT"}
ADA_IDENTITY = {"user_id": "U0REVIEW1", "name": "ada", "team": "T0CONTEXT"}
BOB = {"id": "U0REVIEW2", "username": "bob", "name": "bob", "team_id": "T0CONTEXT"}


# --- Slack's side -------------------------------------------------------------------------------


def signed(payload: dict[str, Any], *, secret: str = SECRET, age: float = 0) -> tuple[bytes, dict[str, str]]:
    """A form body as Slack sends it, with its real HMAC-SHA256 signature."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time() - age))
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def click(message: dict[str, Any], button: dict[str, Any], user: dict[str, Any] = ADA) -> dict[str, Any]:
    """The block_actions payload of a click on `button` of a posted message."""
    answer = message["answer"]
    return {
        "type": "block_actions",
        "user": user,
        "team": {"id": "T0CONTEXT", "domain": "contextgraph"},
        "api_app_id": "A0BRIDGE",
        "trigger_id": f"{time.time():.0f}.{uuid.uuid4().hex[:8]}",
        "container": {"type": "message", "message_ts": answer["ts"], "channel_id": answer["channel"]},
        "channel": {"id": answer["channel"], "name": "reviews"},
        "message": answer["message"],
        "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
        "actions": [{**button, "type": "button", "block_id": "b", "action_ts": f"{time.time():.6f}"}],
    }


def submission(
    view_call: dict[str, Any], values: dict[str, Any], user: dict[str, Any] = ADA
) -> dict[str, Any]:
    """The view_submission payload of the form opened by `view_call`, filled with `values`."""
    view = view_call["answer"]["view"]
    state = {
        f"param:{key}": {"value": {"type": "plain_text_input", "value": value}}
        for key, value in values.items()
    }
    return {
        "type": "view_submission",
        "user": user,
        "team": {"id": "T0CONTEXT", "domain": "contextgraph"},
        "trigger_id": f"{time.time():.0f}.{uuid.uuid4().hex[:8]}",
        "view": {**view, "state": {"values": state}},
    }


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["args"]["blocks"] if b["type"] == "actions" for e in b["elements"]]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    """The Slack Web API stand-in on the port the session Airflow's tasks post to."""
    with SlackStandIn(TOKEN, port=SLACK_STANDIN_PORT) as standin:
        yield standin


def bridge_settings(slack: SlackStandIn, airflow_settings: AirflowSettings) -> SlackSettings:
    return SlackSettings(
        bot_token=SecretStr(TOKEN),
        signing_secret=SecretStr(SECRET),
        api_url=slack.api_url,
        default_channel="#reviews",
        airflow=airflow_settings,
    )


def service_account(airflow: AirflowClient, **update: Any) -> AirflowSettings:
    user, password = airflow.credentials
    return AirflowSettings(url=airflow.url, username=user, password=SecretStr(password), **update)


class FlakyPatches(httpx.AsyncBaseTransport):
    """Airflow behind a proxy that answers the first `failures` answers (PATCH) with 503."""

    def __init__(self, failures: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.failures = failures
        self.patches = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.patches += 1
            if self.patches <= self.failures:
                return httpx.Response(503, json={"detail": "Service Unavailable"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- the whole way: Airflow → Slack → Airflow → graph -------------------------------------------


@pytest.mark.airflow
def test_review_answered_in_slack_reaches_airflow_and_the_graph(
    airflow: AirflowClient, example_dag: str, slack: SlackStandIn, embedded_store: GraphStore
) -> None:
    ticket = {
        "ticket_id": "T-S1",
        "customer": "acme",
        "subject": "Refund for a **double** charge",
        "body": "x",
    }
    run_id = airflow.trigger(example_dag, conf=ticket, run_id=f"slack_{uuid.uuid4().hex[:8]}")
    airflow.wait_for_hitl(example_dag, run_id, task_id=TASK)

    # 1. The waiting review was posted by the DAG's notifier: subject, body, where, one button per option.
    message = slack.wait_for("chat.postMessage", lambda a: run_id in json.dumps(a.get("blocks")))
    args = message["args"]
    assert args["channel"] == "#reviews"
    header, body, actions, context = args["blocks"]
    assert header["text"]["text"] == "Review the AI reply to ticket T-S1: Refund for a **double** charge"
    assert "*Customer:* acme" in body["text"]["text"] and "*AI draft* (template):" in body["text"]["text"]
    where = context["elements"][0]["text"]
    assert f"DAG `{DAG}` · run `{run_id}` · task `{TASK}`" in where
    assert f"<{airflow.url}/dags/{DAG}/runs/{run_id}/tasks/{TASK}/required_actions|Open in Airflow>" in where
    assert "Default: *Escalate to CRE*" in context["elements"][1]["text"]
    assert [b["text"]["text"] for b in actions["elements"]] == [APPROVE, MANUAL, ESCALATE]
    values = [json.loads(b["value"]) for b in actions["elements"]]
    assert values[1] == {
        "dag_id": DAG,
        "run_id": run_id,
        "task_id": TASK,
        "map_index": -1,
        "reviewer_key": True,
        "option": MANUAL,
    }

    flaky = FlakyPatches(failures=2)
    airflow_client = HITLClient(service_account(airflow), transport=flaky, backoff_base_seconds=0.05)
    bridge = SlackBridge(bridge_settings(slack, service_account(airflow)), airflow=airflow_client)
    with TestClient(create_app(bridge=bridge)) as app:

        def send(payload: dict[str, Any], **sign: Any) -> Any:  # starlette's TestClient response
            body, headers = signed(payload, **sign)
            return app.post("/slack/interactions", content=body, headers=headers)

        manual = buttons(message)[1]
        # 2. Refused before anything happens: a forged signature, a replayed (stale) request.
        assert send(click(message, manual), secret="not-the-secret").status_code == 401
        assert send(click(message, manual), age=301).status_code == 401
        # An option the review does not offer: the reviewer is told, no form, nothing written.
        forged = {**manual, "value": json.dumps({**values[1], "option": "Refund everything"})}
        assert send(click(message, forged)).status_code == 200
        told = slack.wait_for("chat.postEphemeral", lambda a: "Refund everything" in a["text"])
        assert told["args"]["user"] == ADA["id"] and "is not an option" in told["args"]["text"]
        assert slack.recorded("views.open") == []
        assert airflow.hitl_detail(DAG, run_id, TASK)["response_received"] is False

        # 3. A click opens the form with the HITL params; the reason is required, the reply is not.
        assert send(click(message, manual)).status_code == 200
        form = slack.wait_for("views.open", lambda a: run_id in a["view"]["private_metadata"])
        fields = {b["block_id"]: b for b in form["args"]["view"]["blocks"] if b["type"] == "input"}
        assert (fields["param:reason"]["optional"], fields["param:manual_response"]["optional"]) == (
            False,
            True,
        )
        assert "precedent" in fields["param:reason"]["hint"]["text"]

        # 4. Submitting it answers Airflow (after two 503s, retried) and updates the message.
        reason = "Refunds over 100 EUR need a personal reply."
        reply = "We have refunded the second charge."
        answer = submission(form, {"reason": reason, "manual_response": reply})
        response = send(answer)
        assert response.status_code == 200 and response.json() == {"response_action": "clear"}, response.text
        assert flaky.patches == 3
        detail = airflow.hitl_detail(DAG, run_id, TASK)
        assert detail["chosen_options"] == [MANUAL]
        assert detail["params_input"] == {
            "reason": reason,
            "manual_response": reply,
            SLACK_IDENTITY_KEY: ADA_IDENTITY,
        }
        assert detail["responded_by_user"]["name"] == airflow.credentials[0]  # the bridge's service account
        updated = slack.wait_for("chat.update", lambda a: a["ts"] == message["answer"]["ts"])
        shown = json.dumps(updated["args"]["blocks"])
        assert "<@U0REVIEW1> chose *Respond Manually*" in shown and reason in shown
        assert not any(b["type"] == "actions" for b in updated["args"]["blocks"])

        # 5. A second answer (Bob's, from a form still open) is refused by Airflow (409): nothing is
        #    written, Bob is told, and the message says who really answered.
        again = send(submission(form, {"reason": "Escalate instead.", "manual_response": ""}, user=BOB))
        assert again.json()["response_action"] == "update"
        assert "already answered by <@U0REVIEW1>" in json.dumps(again.json()["view"])
        assert airflow.hitl_detail(DAG, run_id, TASK)["params_input"][SLACK_IDENTITY_KEY] == ADA_IDENTITY
        late = slack.wait_for("chat.update", lambda a: "Answered before a later answer" in json.dumps(a))
        assert "<@U0REVIEW1> chose *Respond Manually*" in json.dumps(late["args"]["blocks"])

    # 6. The task accepted the reserved key and the run went on with the answer.
    assert airflow.wait_for_run(DAG, run_id, timeout=120)["state"] == "success"
    acted = airflow.xcom(DAG, run_id, "act_on_decision")
    assert (acted["action"], acted["reply"], acted["reason"]) == ("sent_manual_response", reply, reason)

    # 7. In the graph the decision was made by the Slack user, not by the service account.
    with AirflowSource(service_account(airflow)) as source:
        report = Sync(source, embedded_store).run()
    assert not report.rejected, report.rejected
    [row] = embedded_store.query(
        "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) WHERE d.run_id = $run "
        "RETURN a.kind AS kind, a.actor_id AS id, a.name AS name, d.reason AS reason, "
        "d.chosen_options AS chosen",
        {"run": run_id},
    )
    assert row == {
        "kind": "slack_user",
        "id": "U0REVIEW1",
        "name": "ada",
        "reason": reason,
        "chosen": [MANUAL],
    }


@pytest.mark.airflow
def test_the_bridge_is_mounted_in_airflows_api_server(airflow: AirflowClient) -> None:
    if not isinstance(airflow, AirflowServer):
        pytest.skip("AIRFLOW_URL: that server's plugin configuration is its own")
    with httpx.Client(base_url=airflow.url, timeout=10) as http:
        assert http.get("/slack/healthz").json() == {"ok": True}
        body, headers = signed({"type": "block_actions", "actions": []}, secret="forged")
        assert http.post("/slack/interactions", content=body, headers=headers).status_code == 401
        body, headers = signed({"type": "block_actions", "actions": []})
        assert http.post("/slack/interactions", content=body, headers=headers).status_code == 200


# --- Airflow down -------------------------------------------------------------------------------


def test_an_answer_airflow_never_gets_is_reported_to_the_reviewer(slack: SlackStandIn, caplog: Any) -> None:
    down = AirflowSettings(
        url=f"http://127.0.0.1:{free_port()}",
        username="svc",
        password=SecretStr("svc-password-123"),
        max_retries=2,
        timeout_seconds=2,
    )
    airflow = HITLClient(down, backoff_base_seconds=0.05)
    bridge = SlackBridge(bridge_settings(slack, down), airflow=airflow, ack_seconds=0.05)
    ref = HITLRef(DAG, "run_down", TASK)
    metadata = json.dumps({"ref": ref.__dict__, "chosen": [APPROVE], "channel": "C0DOWN", "ts": "1.000001"})
    form = {
        "answer": {
            "view": {"id": "V0DOWN", "callback_id": "contextgraph_hitl_answer", "private_metadata": metadata}
        }
    }
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(bridge=bridge)) as app:
        body, headers = signed(submission(form, {"reason": "fine"}))
        response = app.post("/slack/interactions", content=body, headers=headers)
        # Slack gets its answer in time; the form says the answer is still on its way.
        assert response.status_code == 200 and "Sending" in json.dumps(response.json()["view"])
        told = slack.wait_for("chat.postEphemeral", lambda a: a["channel"] == "C0DOWN", timeout=20)
    assert told["args"]["user"] == ADA["id"]
    assert "could not be delivered to Airflow" in told["args"]["text"]
    assert "after 3 attempts" in told["args"]["text"] and "Nothing was recorded" in told["args"]["text"]
    final = slack.wait_for("views.update", lambda a: a["view_id"] == "V0DOWN")
    assert "Not delivered" in json.dumps(final["args"]["view"])
    assert "svc-password-123" not in caplog.text + json.dumps(slack.summary())


# --- messages and forms -------------------------------------------------------------------------


def test_long_markdown_bodies_fit_slack_and_link_to_the_full_text(slack: SlackStandIn) -> None:
    from contextgraph.slack.notifier import post_review  # imports Airflow: not while collecting

    settings = bridge_settings(slack, AirflowSettings(url="http://airflow.example"))
    body = "## Ticket\n\n**Customer** wrote [this](https://x.example/t?a=1&b=2) & more:\n\n- one\n- two\n\n"
    body += "\n\n".join(f"Paragraph {i}: " + "words " * 60 for i in range(20))
    ref = HITLRef(DAG, "manual__2026-01-01", TASK, map_index=3)
    posted = post_review(Review(ref, "S" * 400, body, [APPROVE, MANUAL]), settings)  # real WebClient
    assert posted["ok"] and posted["channel"].startswith("C")
    args = slack.wait_for("chat.postMessage", lambda a: "Paragraph 0" in json.dumps(a))["args"]
    header, section = args["blocks"][0], args["blocks"][1]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")
    text = section["text"]["text"]
    assert len(text) <= 3000
    assert text.startswith("*Ticket*\n\n*Customer* wrote <https://x.example/t?a=1&amp;b=2|this> &amp; more:")
    assert "• one\n• two" in text
    full = f"{ref.ui_url('http://airflow.example')}"
    assert full.endswith("/required_actions?map_index=3")
    assert text.endswith(f"<{full}|Read the full text in Airflow>")
    assert markdown_to_mrkdwn("*it* __b__ ~~s~~ `**code**`") == "_it_ *b* ~s~ `**code**`"


def test_many_options_and_multiple_choice(slack: SlackStandIn) -> None:
    from contextgraph.slack.notifier import post_review  # imports Airflow: not while collecting

    settings = bridge_settings(slack, AirflowSettings(url="http://airflow.example"))
    ref = HITLRef("d", "r", "t")
    options = [f"Option {i}" for i in range(30)]
    post_review(Review(ref, "thirty", None, options), settings, channel="#many")
    args = slack.wait_for("chat.postMessage", lambda a: a["channel"] == "#many")["args"]
    assert [len(b["elements"]) for b in args["blocks"] if b["type"] == "actions"] == [25, 5]

    review = Review(ref, "several", None, ["Red", "Green", "Blue"], multiple=True, defaults=["Green"])
    post_review(review, settings, channel="#multi")
    args = slack.wait_for("chat.postMessage", lambda a: a["channel"] == "#multi")["args"]
    [actions] = [b for b in args["blocks"] if b["type"] == "actions"]
    select, answer = actions["elements"]
    assert (select["type"], select["action_id"], answer["action_id"]) == (
        "multi_static_select",
        SELECT_ACTION,
        ANSWER_ACTION,
    )
    assert [o["text"]["text"] for o in select["initial_options"]] == ["Green"]
    # The form lets the reviewer change the selection; the answer carries the chosen labels.
    params = {"note": {"value": None, "schema": {"type": ["null", "string"]}}}
    form = answer_form(review, ["Green", "Blue"], params, "{}")
    choice = form["blocks"][1]
    assert [o["value"] for o in choice["element"]["initial_options"]] == ["1", "2"]
    state = {"contextgraph_options": {"value": {"type": "checkboxes", "selected_options": [{"value": "0"}]}}}
    assert read_form(state, params, review.options) == (["Red"], {"note": None}, {})


def test_form_values_are_checked_like_airflow_checks_them() -> None:
    params = {
        "reason": {"value": "timeout", "schema": {"type": "string", "minLength": 1}},
        "count": {"value": 1, "schema": {"type": "integer", "maximum": 5}},
        "extra": {"value": None, "schema": {"type": ["null", "object"]}},
        SLACK_IDENTITY_KEY: {"value": None, "schema": {"type": ["null", "object"]}},
    }
    ok = {
        "param:reason": {"value": {"type": "plain_text_input", "value": "because"}},
        "param:count": {"value": {"type": "number_input", "value": "3"}},
        "param:extra": {"value": {"type": "plain_text_input", "value": '{"a": 1}'}},
    }
    # Every declared key is answered (HITLOperator requires it); the reserved key is the bridge's.
    assert read_form(ok, params, []) == (None, {"reason": "because", "count": 3, "extra": {"a": 1}}, {})
    bad = {
        "param:reason": {"value": {"type": "plain_text_input", "value": "ok"}},
        "param:count": {"value": {"type": "number_input", "value": "9"}},
        "param:extra": {"value": {"type": "plain_text_input", "value": "{nope"}},
    }
    _, _, errors = read_form(bad, params, [])
    assert set(errors) == {"param:count", "param:extra"}
    assert "9 is greater than the maximum of 5" in errors["param:count"]
    assert errors["param:extra"].startswith("Not valid JSON")


def test_channel_routing() -> None:
    settings = SlackSettings(
        channels={"dag_a": "#a", "dag_a.review": "#a-review"}, default_channel="#all", bot_token=None
    )
    assert settings.channel_for("dag_a", "review") == "#a-review"
    assert settings.channel_for("dag_a", "other") == "#a"
    assert settings.channel_for("dag_b", "review") == "#all"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-env")
    monkeypatch.setenv("CONTEXTGRAPH_SLACK_CHANNELS", '{"dag_x": "#x"}')
    monkeypatch.setenv("CONTEXTGRAPH_SLACK_DEFAULT_CHANNEL", "#d")
    settings = SlackSettings()
    assert settings.require_bot_token() == "xoxb-env" and "xoxb-env" not in repr(settings)
    assert (settings.channel_for("dag_x", "t"), settings.channel_for("y", "t")) == ("#x", "#d")


# --- contextgraph slack serve ---------------------------------------------------------------------


def test_slack_serve_command() -> None:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "AIRFLOW_URL": "http://127.0.0.1:9",
    }
    args = [sys.executable, "-m", "contextgraph", "slack", "serve", "--port", str(port)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/slack/healthz", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout and proc.stdout.read()
            time.sleep(0.1)
        body, headers = signed({"type": "block_actions"}, secret="forged")
        assert (
            httpx.post(
                f"http://127.0.0.1:{port}/slack/interactions", content=body, headers=headers
            ).status_code
            == 401
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    missing = subprocess.run(
        args, env={**env, "SLACK_SIGNING_SECRET": ""}, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1
    [line] = missing.stderr.strip().splitlines()
    assert "SLACK_SIGNING_SECRET" in line and TOKEN not in line


EVERY_TYPE = {
    "reason": {"value": "looks fine", "schema": {"type": "string"}},
    "score": {"value": 0.5, "schema": {"type": "number"}},
    "count": {"value": 2, "schema": {"type": "integer"}},
    "send_now": {"value": True, "schema": {"type": "boolean"}},
    "priority": {"value": "low", "schema": {"type": "string", "enum": ["low", "high"]}},
    "level": {"value": 1, "schema": {"type": "integer", "enum": [1, 2, 3]}},
    "tags": {"value": ["billing"], "schema": {"type": "array", "items": {"enum": ["billing", "urgent"]}}},
    "emails": {"value": [], "schema": {"type": "array", "items": {"type": "string"}}},
    "maybe_note": {"value": None, "schema": {"type": ["null", "string"]}},
    "maybe_flag": {"value": None, "schema": {"type": ["null", "boolean"]}},
    "maybe_count": {"value": None, "schema": {"type": ["null", "integer"]}},
}


def _submitted(element: dict[str, Any], pick: Any) -> dict[str, Any]:
    """What Slack sends back for `element` when the reviewer enters or picks `pick`."""
    kind = element["type"]
    if kind in ("static_select", "radio_buttons"):
        chosen = next(o for o in element["options"] if json.loads(o["value"]) == pick)
        return {"type": kind, "selected_option": chosen}
    if kind == "multi_static_select":
        return {
            "type": kind,
            "selected_options": [o for o in element["options"] if json.loads(o["value"]) in pick],
        }
    return {"type": kind, "value": pick}


def test_every_param_type_has_a_prefilled_field_and_reaches_airflow_as_its_json_type() -> None:
    review = Review(HITLRef("d", "r", "t"), "All the types", None, ["OK"])
    form = answer_form(review, ["OK"], EVERY_TYPE, "{}")
    fields = {b["block_id"].removeprefix("param:"): b for b in form["blocks"] if b["type"] == "input"}
    assert set(fields) == set(EVERY_TYPE)
    element = {k: b["element"] for k, b in fields.items()}
    # Defaults are pre-filled, in the form Slack shows them.
    assert element["reason"]["initial_value"] == "looks fine"
    assert element["score"]["initial_value"] == "0.5" and element["score"]["is_decimal_allowed"]
    assert element["count"]["initial_value"] == "2" and not element["count"]["is_decimal_allowed"]
    assert element["send_now"]["initial_option"]["text"]["text"] == "Yes"
    assert element["priority"]["initial_option"]["text"]["text"] == "low"
    assert [o["text"]["text"] for o in element["tags"]["initial_options"]] == ["billing"]
    assert [fields[k]["optional"] for k in ("maybe_note", "maybe_flag", "maybe_count")] == [True] * 3

    picks = {
        "reason": "ledger mismatch",
        "score": "0.25",
        "count": "7",
        "send_now": False,  # false must be an answer, not an empty field
        "priority": "high",
        "level": 3,
        "tags": ["billing", "urgent"],
        "emails": "a@example.com\nb@example.com",
        "maybe_note": "",
        "maybe_flag": True,
        "maybe_count": None,
    }
    state = {f"param:{k}": {"value": _submitted(element[k], v)} for k, v in picks.items() if v is not None}
    _, params_input, errors = read_form(state, EVERY_TYPE, ["OK"])
    assert errors == {}
    assert params_input == {
        "reason": "ledger mismatch",
        "score": 0.25,
        "count": 7,
        "send_now": False,
        "priority": "high",
        "level": 3,
        "tags": ["billing", "urgent"],
        "emails": ["a@example.com", "b@example.com"],
        "maybe_note": None,
        "maybe_flag": True,
        "maybe_count": None,
    }
    # The JSON Airflow receives keeps each type (an integer stays an integer, false stays false).
    sent = json.loads(json.dumps({"chosen_options": ["OK"], "params_input": params_input}))["params_input"]
    assert type(sent["count"]) is int and type(sent["score"]) is float and sent["send_now"] is False
