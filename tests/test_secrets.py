"""No secret ever shows: a whole run at DEBUG, its error paths, and the CLI with ``--debug``.

Distinctive secrets, each used for real:

* a Neo4j password: a user of its own on the test Neo4j (``CREATE USER``), used for every write;
* an Airflow password and an Airflow token: the session's Airflow knows admin/admin only, so the
  fault proxy (`tests/fault_proxy.py`) stands in front of it and swaps the distinctive password for
  the real one in ``POST /auth/token``, and the distinctive token for a real JWT in the
  ``Authorization`` header. contextgraph's code handles only the distinctive values; the real JWTs it
  receives from logins are secrets too and are checked as well;
* a Slack bot token (the Web API stand-in accepts only it) and a signing secret (real HMAC).

Every log record of every logger at DEBUG (root, ``contextgraph.*``, ``neo4j``, ``httpx``,
``httpcore``, ``urllib3``, ``slack_sdk``, ``airflow_client``, ``uvicorn``), every exception's
message, repr and traceback, every settings object's repr, what was posted to Slack, and the
stdout/stderr of CLI runs with ``--debug`` are searched for each secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import neo4j
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from contextgraph.config import AirflowSettings, Neo4jSettings, Settings
from contextgraph.ingest.source import AirflowSource
from contextgraph.ingest.sync import Sync
from contextgraph.slack.airflow import HITLClient
from contextgraph.slack.app import SlackBridge, create_app
from contextgraph.slack.blocks import OPTION_ACTION, HITLRef, Review, button_value
from contextgraph.slack.config import SlackSettings
from contextgraph.store import Neo4jStore
from tests.airflow_server import AirflowClient, free_port
from tests.example_runs import answer, trigger
from tests.fault_proxy import FaultProxy
from tests.slack_standin import SlackStandIn

pytestmark = pytest.mark.airflow

NEO4J_USER = "cg_secret_user"
SECRETS = {
    "neo4j password": "n4j-Pw-7f3a9c1e55",
    "wrong neo4j password": "n4j-WRONG-0b8d2e",
    "airflow password": "af-Pw-52d1e8b0c4",
    "wrong airflow password": "af-WRONG-91c7f3",
    "airflow token": "af-Tok-9b7e1c3d5f",
    "slack bot token": "xoxb-Sec-4e8a2f61d0",
    "wrong slack bot token": "xoxb-WRONG-77a3c1",
    "slack signing secret": "sign-Sec-c0ffee5a17",
    "password in a URL": "url-Pw-3e9d0a",
}
LOGGERS = [
    "",
    "contextgraph",
    "neo4j",
    "httpx",
    "httpcore",
    "urllib3",
    "slack_sdk",
    "airflow_client",
    "uvicorn",
    "starlette",
]
DAG, TASK = "ai_support_ticket_system", "review_response"


class Capture(logging.Handler):
    """Every record, formatted with its exception and stack, as a user's log file would show it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))


@pytest.fixture
def logs() -> Iterator[Capture]:
    capture = Capture()
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    logging.getLogger().addHandler(capture)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield capture
    logging.getLogger().removeHandler(capture)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def secret_user(neo4j_settings: Neo4jSettings) -> Iterator[Neo4jSettings]:
    """A Neo4j user with the distinctive password, on the test server."""
    admin = (neo4j_settings.username, neo4j_settings.password.get_secret_value())
    with neo4j.GraphDatabase.driver(neo4j_settings.uri or "", auth=admin) as driver:
        driver.execute_query("DROP USER $u IF EXISTS", u=NEO4J_USER, database_="system")
        driver.execute_query(
            "CREATE USER $u SET PLAINTEXT PASSWORD $p CHANGE NOT REQUIRED",
            u=NEO4J_USER,
            p=SECRETS["neo4j password"],
            database_="system",
        )
        driver.execute_query("MATCH (n) DETACH DELETE n", database_=neo4j_settings.database)
        try:
            yield neo4j_settings.model_copy(
                update={"username": NEO4J_USER, "password": SecretStr(SECRETS["neo4j password"])}
            )
        finally:
            driver.execute_query("DROP USER $u IF EXISTS", u=NEO4J_USER, database_="system")


@pytest.fixture(scope="module")
def decided(airflow: AirflowClient, example_dag: str) -> str:
    """One answered review, so a sync reads a decision with its proposal."""
    runs = trigger(airflow, ["approve"])
    answer(airflow, runs, ["approve"])
    return runs["approve"]


@pytest.fixture
def proxy(airflow: AirflowClient) -> Iterator[FaultProxy]:
    """The session's Airflow, as if its password and a token were the distinctive ones."""
    with FaultProxy(airflow.base_url) as p:
        p.aliases = {
            SECRETS["airflow password"]: airflow.credentials[1],
            SECRETS["airflow token"]: airflow.token(),
        }
        yield p


def jwts(proxy: FaultProxy, airflow: AirflowClient) -> dict[str, str]:
    """The real tokens contextgraph received and sent (from logins through the proxy), named
    "JWT 0", "JWT 1", ... as secrets to search for."""
    found = {a.removeprefix("Bearer ") for a in proxy.authorizations}
    found.add(airflow.token())
    return {f"JWT {i}": t for i, t in enumerate(sorted(t for t in found if len(t) > 20))}


def leaks(texts: list[str], secrets: dict[str, str]) -> dict[str, list[str]]:
    """Which secret appears in which text (the first 200 characters around it)."""
    found: dict[str, list[str]] = {}
    for text in texts:
        for name, secret in secrets.items():
            at = text.find(secret)
            if at >= 0:
                found.setdefault(name, []).append(text[max(0, at - 100) : at + 100])
    return found


def failure(call: Callable[[], Any]) -> list[str]:
    """The exception `call` raises: its message, repr and whole traceback (causes included)."""
    try:
        call()
    except BaseException as exc:
        return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    raise AssertionError(f"{call} did not fail")


def signed(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}
    return body, {"Content-Type": "application/x-www-form-urlencoded", **headers}


# --- in process ----------------------------------------------------------------------------------


def test_a_run_at_debug_with_its_error_paths_shows_no_secret(
    airflow: AirflowClient,
    decided: str,
    secret_user: Neo4jSettings,
    proxy: FaultProxy,
    logs: Capture,
) -> None:
    from contextgraph.slack.notifier import post_review  # imports Airflow: not while collecting

    texts: list[str] = []
    password = SecretStr(SECRETS["airflow password"])
    login = AirflowSettings(url=proxy.url, username="admin", password=password, max_retries=1)
    by_token = AirflowSettings(url=proxy.url, token=SecretStr(SECRETS["airflow token"]), max_retries=1)
    texts += [repr(s) for s in (secret_user, login, by_token)] + [str(secret_user), str(login)]
    texts.append(repr(Settings(neo4j=secret_user, airflow=login)))

    # A full sync, logged in with the password (the token expires mid-way and is refreshed), into
    # Neo4j with the distinctive password; then an incremental one with the static token.
    proxy.add("expire_token", path="/dagRuns/~/taskInstances", match="suffix")  # all DAGs' or one's
    with Neo4jStore.connect(secret_user) as store:
        store.verify()
        store.ensure_schema()
        with AirflowSource(login, backoff_base_seconds=0.01) as source:
            texts.append(repr(source))
            full = Sync(source, store).run()
        with AirflowSource(by_token, backoff_base_seconds=0.01) as source:
            Sync(source, store).run()
        assert store.stats()["nodes"]["Decision"] >= 1
    assert full.fetched["DAGs"] >= 1 and proxy.injected["expire_token"] == 1
    texts.append(json.dumps(full.as_dict()))

    # Error paths: wrong passwords, a rejected token, unreachable servers, a password in a URL.
    wrong_neo4j = secret_user.model_copy(update={"password": SecretStr(SECRETS["wrong neo4j password"])})
    texts += failure(lambda: Neo4jStore.connect(wrong_neo4j).verify())
    down = f"bolt://127.0.0.1:{free_port()}"
    texts += failure(lambda: Neo4jStore.connect(secret_user.model_copy(update={"uri": down})).verify())
    in_uri = Neo4jSettings(uri=f"bolt://{NEO4J_USER}:{SECRETS['password in a URL']}@127.0.0.1:{free_port()}")
    texts += [repr(in_uri), *failure(lambda: Neo4jStore.connect(in_uri).verify())]
    wrong_af = login.model_copy(update={"password": SecretStr(SECRETS["wrong airflow password"])})
    texts += failure(lambda: list(AirflowSource(wrong_af).dags()))
    proxy.aliases.pop(SECRETS["airflow token"])  # the token is no longer valid
    texts += failure(lambda: list(AirflowSource(by_token).dags()))
    url_pw = f"http://admin:{SECRETS['password in a URL']}@127.0.0.1:{free_port()}"
    unreachable = AirflowSettings(url=url_pw, token=SecretStr(SECRETS["airflow token"]), max_retries=1)
    texts += failure(lambda: list(AirflowSource(unreachable, backoff_base_seconds=0.01).dags()))
    proxy.add("echo_auth", path="/api/v2/dags", match="exact")
    texts += failure(lambda: list(AirflowSource(login).dags()))

    # Slack: a review posted with the bot token, a click answered by the bridge (signed with the
    # secret; its Airflow login through the proxy), a forged request, Slack API errors.
    with SlackStandIn(SECRETS["slack bot token"]) as slack:
        settings = SlackSettings(
            bot_token=SecretStr(SECRETS["slack bot token"]),
            signing_secret=SecretStr(SECRETS["slack signing secret"]),
            api_url=slack.api_url,
            default_channel="#reviews",
            airflow=login.model_copy(update={"url": url_pw}),  # links in messages: never the password
        )
        texts += [repr(settings), str(settings)]
        ref = HITLRef(DAG, "secrets_run", TASK)
        post_review(Review(ref, "Subject", "Body", ["Approve AI Response"]), settings)
        bridge_settings = settings.model_copy(update={"airflow": login})
        bridge = SlackBridge(bridge_settings, airflow=HITLClient(login, backoff_base_seconds=0.01))
        with TestClient(create_app(bridge=bridge)) as client:
            click = {
                "type": "block_actions",
                "user": {"id": "U0SECRET", "username": "sam"},
                "trigger_id": "1.2",
                "container": {"channel_id": "C0SECRET", "message_ts": "1.000001"},
                "actions": [
                    {"action_id": f"{OPTION_ACTION}:0", "value": button_value(ref, "Approve AI Response")}
                ],
            }
            body, headers = signed(click, SECRETS["slack signing secret"])
            assert client.post("/slack/interactions", content=body, headers=headers).status_code == 200
            body, headers = signed(click, SECRETS["slack bot token"])  # signed with the wrong secret
            assert client.post("/slack/interactions", content=body, headers=headers).status_code == 401
        wrong_bot = settings.model_copy(update={"bot_token": SecretStr(SECRETS["wrong slack bot token"])})
        texts += failure(lambda: post_review(Review(ref, "S", None, ["A"]), wrong_bot))
        down_slack = settings.model_copy(update={"api_url": f"http://127.0.0.1:{free_port()}/api/"})
        texts += failure(lambda: post_review(Review(ref, "S", None, ["A"]), down_slack))
        wrong_bridge = HITLClient(wrong_af, backoff_base_seconds=0.01)
        texts += failure(lambda: asyncio.run(wrong_bridge.detail(ref)))
        gone = HITLClient(unreachable, backoff_base_seconds=0.01)
        texts += failure(lambda: asyncio.run(gone.detail(ref)))
        texts.append(json.dumps([c["args"] for c in slack.calls]))  # what Slack was sent

    texts += logs.lines
    secrets = {**SECRETS, **jwts(proxy, airflow)}
    found = leaks(texts, secrets)
    print(
        f"\n[reliability] secrets: {len(secrets)} distinctive secrets (Neo4j, Airflow password and "
        f"tokens, Slack bot token and signing secret), {len(logs.lines) // 2} DEBUG log records and "
        f"{len(texts) - len(logs.lines)} messages/reprs/tracebacks/Slack posts searched: "
        f"{sum(map(len, found.values()))} leaks"
    )
    assert found == {}, found
    assert any("neo4j" in line for line in logs.lines) and any("urllib3" in line for line in logs.lines)


# --- the CLI with --debug ------------------------------------------------------------------------


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env.pop("HOME")}
    command = [sys.executable, "-m", "contextgraph", "--debug", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**base, **env}, timeout=timeout)


def test_cli_runs_with_debug_show_no_secret(
    airflow: AirflowClient,
    decided: str,
    secret_user: Neo4jSettings,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    neo = {
        "NEO4J_URI": secret_user.uri or "",
        "NEO4J_USERNAME": NEO4J_USER,
        "NEO4J_PASSWORD": SECRETS["neo4j password"],
    }
    af = {
        "AIRFLOW_URL": proxy.url,
        "AIRFLOW_USERNAME": "admin",
        "AIRFLOW_PASSWORD": SECRETS["airflow password"],
    }
    home = str(tmp_path)
    runs: dict[str, subprocess.CompletedProcess[str]] = {}
    runs["ingest"] = _cli({"HOME": home, **neo, **af, "AIRFLOW_MAX_RETRIES": "1"}, "ingest", "--json")
    runs["ingest with a token"] = _cli(
        {"HOME": home, **neo, "AIRFLOW_URL": proxy.url, "AIRFLOW_TOKEN": SECRETS["airflow token"]}, "ingest"
    )
    runs["wrong Neo4j password"] = _cli(
        {"HOME": home, **neo, "NEO4J_PASSWORD": SECRETS["wrong neo4j password"]}, "stats"
    )
    runs["Neo4j unreachable"] = _cli(
        {"HOME": home, **neo, "NEO4J_URI": f"bolt://127.0.0.1:{free_port()}"}, "stats"
    )
    runs["password in NEO4J_URI"] = _cli(
        {
            "HOME": home,
            "NEO4J_URI": f"bolt://{NEO4J_USER}:{SECRETS['neo4j password']}@{(secret_user.uri or '').split('://')[-1]}",
        },
        "stats",
    )
    runs["wrong Airflow password"] = _cli(
        {"HOME": home, **neo, **af, "AIRFLOW_PASSWORD": SECRETS["wrong airflow password"]}, "ingest"
    )
    runs["Airflow unreachable"] = _cli(
        {
            "HOME": home,
            **neo,
            "AIRFLOW_URL": f"http://admin:{SECRETS['password in a URL']}@127.0.0.1:{free_port()}",
            "AIRFLOW_TOKEN": SECRETS["airflow token"],
            "AIRFLOW_MAX_RETRIES": "0",
        },
        "ingest",
    )

    # contextgraph slack serve --debug: a forged and a genuine request, then stop.
    port = free_port()
    slack_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "SLACK_BOT_TOKEN": SECRETS["slack bot token"],
        "SLACK_SIGNING_SECRET": SECRETS["slack signing secret"],
        **af,
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "contextgraph", "--debug", "slack", "serve", "--port", str(port)],
        env=slack_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/slack/healthz", timeout=1).status_code == 200:
                    break
            assert serve.poll() is None and time.monotonic() < deadline, "slack serve did not start"
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/slack/interactions"
        for secret in ("forged", SECRETS["slack signing secret"]):
            body, headers = signed({"type": "shortcut"}, secret)
            httpx.post(url, content=body, headers=headers, timeout=10)
    finally:
        serve.terminate()
        out, _ = serve.communicate(timeout=30)

    assert runs["ingest"].returncode == 0, runs["ingest"].stderr[-2000:]
    assert runs["ingest with a token"].returncode == 0, runs["ingest with a token"].stderr[-2000:]
    assert runs["password in NEO4J_URI"].returncode == 0, runs["password in NEO4J_URI"].stderr[-2000:]
    for failing in (
        "wrong Neo4j password",
        "Neo4j unreachable",
        "wrong Airflow password",
        "Airflow unreachable",
    ):
        assert runs[failing].returncode == 1, (failing, runs[failing].stderr[-2000:])
        assert "Traceback" in runs[failing].stderr  # --debug: the whole traceback is shown, still no secret
    texts = [r.stdout + r.stderr for r in runs.values()] + [out]
    secrets = {**SECRETS, **jwts(proxy, airflow)}
    found = leaks(texts, secrets)
    print(
        f"\n[reliability] secrets: {len(runs) + 1} CLI runs with --debug ({len(runs) - 3} failing on "
        f"purpose, slack serve included), {sum(len(t) for t in texts) // 1024} KiB of output searched for "
        f"{len(secrets)} secrets: {sum(map(len, found.values()))} leaks"
    )
    assert found == {}, found
