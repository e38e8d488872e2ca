"""AirflowSource against a real Airflow 3.3 (the session fixture ``airflow``).

Fault behaviour (5xx, 429, broken bodies, timeouts, expired tokens, secrets echoed back) is
exercised over real HTTP: a small loopback proxy sits between the source and the real server
and replaces chosen answers; everything it does not touch is the real server's answer.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from contextgraph.config import AirflowSettings
from contextgraph.errors import (
    SourceAuthError,
    SourceError,
    SourceNotFoundError,
    SourceUnavailableError,
    TerminalError,
    TransientError,
)
from contextgraph.ingest.source import HITL_WAITING_STATES, AirflowSource, hitl_is_waiting

from .airflow_server import AirflowClient
from .fault_proxy import FaultProxy

DAG_ID = "ai_support_ticket_system"
HITL_TASK = "review_response"
APPROVE = "Approve AI Response"


def _settings(url: str, **overrides: Any) -> AirflowSettings:
    values: dict[str, Any] = {
        "url": url,
        "username": None,
        "password": None,
        "token": None,
        "max_retries": 3,
        "timeout_seconds": 10.0,
    }
    values.update(overrides)
    return AirflowSettings(**values)


def _login_settings(airflow: AirflowClient, url: str | None = None, **overrides: Any) -> AirflowSettings:
    return _settings(
        url or airflow.base_url,
        username=airflow.username,
        password=SecretStr(airflow.password),
        **overrides,
    )


def _fast(settings: AirflowSettings) -> AirflowSource:
    """A source with short backoff, so retry tests take milliseconds, not seconds."""
    return AirflowSource(settings, backoff_base_seconds=0.01, backoff_cap_seconds=0.05)


# -- one real HITL decision, shared by the tests that read it --------------------------------


@dataclass
class Decided:
    run_id: str
    started: datetime
    pending: dict[str, Any]  # the HITL detail while it waited
    draft: Any  # the draft_response XCom value while it waited
    review_xcom_while_waiting: Any


@pytest.fixture(scope="module")
def decided(airflow: AirflowClient, example_dag: str) -> Decided:
    """Trigger the support-ticket DAG, read the waiting request, answer it, wait for the end."""
    started = datetime.now(UTC) - timedelta(seconds=5)
    run_id = airflow.trigger(DAG_ID, conf={"ticket_id": "T-7", "subject": "Printer on fire"})
    airflow.wait_for_hitl(DAG_ID, run_id, task_id=HITL_TASK)
    with AirflowSource(_login_settings(airflow)) as source:
        pending = [
            d
            for d in source.hitl_details(created_since=started, response_received=False, dag_id=DAG_ID)
            if d["task_instance"]["dag_run_id"] == run_id
        ]
        assert len(pending) == 1, pending
        draft = source.xcom_value(DAG_ID, run_id, "draft_response")
        review_xcom = source.xcom_value(DAG_ID, run_id, HITL_TASK)
    answer = airflow.respond(
        DAG_ID,
        run_id,
        HITL_TASK,
        [APPROVE],
        {"reason": "The draft answers the question.", "manual_response": None},
    )
    assert answer.status_code == 200, answer.text
    run = airflow.wait_for_run(DAG_ID, run_id)
    assert run["state"] == "success", run
    return Decided(run_id, started, pending[0], draft, review_xcom)


@pytest.mark.airflow
def test_dags_and_tasks_come_with_their_topology(airflow: AirflowClient) -> None:
    with AirflowSource(_login_settings(airflow)) as source:
        dags = {d["dag_id"]: d for d in source.dags()}
        tasks = {t["task_id"]: t for t in source.tasks(DAG_ID)}
    assert DAG_ID in dags
    assert "hitl" in {tag["name"] for tag in dags[DAG_ID]["tags"]}
    assert HITL_TASK in tasks["draft_response"]["downstream_task_ids"]
    assert tasks[HITL_TASK]["downstream_task_ids"] == ["act_on_decision"]
    assert tasks[HITL_TASK]["operator_name"] == "HITLOperator"


@pytest.mark.airflow
def test_waiting_request_is_read_raw_with_its_ai_proposal(decided: Decided) -> None:
    pending = decided.pending
    assert pending["response_received"] is False
    assert pending["options"] == [APPROVE, "Respond Manually", "Escalate to CRE"]
    assert "Printer on fire" in pending["subject"]
    assert pending["task_instance"]["task_id"] == HITL_TASK
    assert pending["task_instance"]["state"] in HITL_WAITING_STATES
    assert hitl_is_waiting(pending)
    # The proposal the human judged is the upstream task's XCom, as JSON.
    assert decided.draft["ticket_id"] == "T-7"
    assert decided.draft["draft"]
    # A task that has not returned yet has no XCom: None, not an error.
    assert decided.review_xcom_while_waiting is None


@pytest.mark.airflow
def test_answered_decision_carries_choice_reason_and_reviewer(
    airflow: AirflowClient, decided: Decided
) -> None:
    with AirflowSource(_login_settings(airflow)) as source:
        detail = source.hitl_detail(DAG_ID, decided.run_id, HITL_TASK)
        answered = [
            d
            for d in source.hitl_details(response_received=True, dag_id=DAG_ID)
            if d["task_instance"]["dag_run_id"] == decided.run_id
        ]
        tries = source.hitl_detail_tries(DAG_ID, decided.run_id, HITL_TASK)
        outcome = source.xcom_value(DAG_ID, decided.run_id, "act_on_decision")
    assert detail["response_received"] is True
    assert detail["chosen_options"] == [APPROVE]
    assert detail["params_input"]["reason"] == "The draft answers the question."
    assert detail["responded_by_user"]["name"] == airflow.username
    assert detail["responded_at"] >= detail["created_at"]
    assert not hitl_is_waiting(detail)
    assert [d["chosen_options"] for d in answered] == [[APPROVE]]
    assert len(tries) == 1
    assert tries[0]["chosen_options"] == [APPROVE]
    assert outcome is not None and outcome["action"] == "sent_ai_response"


@pytest.mark.airflow
def test_incremental_reads_find_the_run_and_its_task_instances(
    airflow: AirflowClient, decided: Decided
) -> None:
    with AirflowSource(_login_settings(airflow)) as source:
        runs = [r for r in source.dag_runs(updated_since=decided.started) if r["dag_id"] == DAG_ID]
        tis = [
            ti
            for ti in source.task_instances(updated_since=decided.started)
            if ti["dag_run_id"] == decided.run_id
        ]
        later = datetime.now(UTC) + timedelta(hours=1)
        assert list(source.dag_runs(updated_since=later)) == []
        assert list(source.task_instances(updated_since=later)) == []
        assert list(source.hitl_details(created_since=later)) == []
    assert decided.run_id in {r["dag_run_id"] for r in runs}
    by_task = {ti["task_id"]: ti for ti in tis}
    assert set(by_task) == {"fetch_ticket", "draft_response", HITL_TASK, "act_on_decision"}
    assert by_task[HITL_TASK]["state"] == "success"


@pytest.mark.airflow
def test_an_idle_poll_costs_three_requests_after_login(airflow: AirflowClient, decided: Decided) -> None:
    with AirflowSource(_login_settings(airflow)) as source:
        assert source.calls == 0  # the constructor does no network
        watermark = datetime.now(UTC) + timedelta(hours=1)  # nothing changed after it
        assert list(source.dag_runs(updated_since=watermark)) == []
        assert source.calls == 2  # token + one page
        assert list(source.task_instances(updated_since=watermark)) == []
        assert list(source.hitl_details(created_since=watermark)) == []
        assert source.calls == 4
        # The server's own clock comes back with every answer: a watermark that does not
        # depend on this machine's clock.
        assert source.server_time is not None
        assert abs((source.server_time - datetime.now(UTC)).total_seconds()) < 60


@pytest.mark.airflow
def test_every_page_is_read_once(airflow: AirflowClient, decided: Decided) -> None:
    with AirflowSource(_login_settings(airflow, page_size=100)) as big:
        whole = [ti["id"] for ti in big.task_instances(updated_since=decided.started)]
    with AirflowSource(_login_settings(airflow, page_size=1)) as small:
        paged = [ti["id"] for ti in small.task_instances(updated_since=decided.started)]
        assert small.calls == 1 + len(paged)  # token + one request per one-record page
    assert len(whole) >= 4
    assert paged == whole
    assert len(set(paged)) == len(paged)


@pytest.mark.airflow
def test_missing_things_raise_not_found(airflow: AirflowClient, decided: Decided) -> None:
    with AirflowSource(_login_settings(airflow)) as source:
        with pytest.raises(SourceNotFoundError, match="no_such_dag"):
            source.tasks("no_such_dag")
        with pytest.raises(SourceNotFoundError):
            source.hitl_detail(DAG_ID, "no_such_run", HITL_TASK)
        with pytest.raises(SourceNotFoundError):
            source.hitl_detail_try(DAG_ID, decided.run_id, HITL_TASK, try_number=9)
        assert source.xcom_value(DAG_ID, decided.run_id, HITL_TASK, key="no_such_key") is None


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.airflow
@pytest.mark.parametrize(
    ("setting", "secret"),
    [("AIRFLOW_PASSWORD", "Wr0ng-Pa55word-9d1f"), ("AIRFLOW_TOKEN", "not-a-valid-jwt-7c2e9b")],
)
def test_refused_credentials_name_the_setting_and_hide_the_secret(
    airflow: AirflowClient, caplog: pytest.LogCaptureFixture, setting: str, secret: str
) -> None:
    caplog.set_level("DEBUG")
    if setting == "AIRFLOW_PASSWORD":
        settings = _settings(airflow.base_url, username=airflow.username, password=SecretStr(secret))
    else:
        settings = _settings(airflow.base_url, token=SecretStr(secret))
    with AirflowSource(settings) as source, pytest.raises(SourceAuthError) as raised:
        source.tasks(DAG_ID)
    message = str(raised.value)
    assert setting in message
    # One refused request: the login (no API request was sent), or the API request with the token
    # (no username/password to log in again with).
    assert source.calls == 1
    assert secret not in message
    assert secret not in repr(raised.value)
    assert secret not in caplog.text
    assert not raised.value.transient
    assert isinstance(raised.value, TerminalError)  # retrying rejected credentials changes nothing


@pytest.mark.airflow
def test_without_credentials_the_error_says_what_to_set(airflow: AirflowClient) -> None:
    with AirflowSource(_settings(airflow.base_url)) as source, pytest.raises(SourceAuthError) as raised:
        next(source.dags())
    assert "AIRFLOW_USERNAME" in str(raised.value)
    assert "AIRFLOW_TOKEN" in str(raised.value)


@pytest.mark.airflow
def test_a_valid_token_is_used_as_bearer(airflow: AirflowClient) -> None:
    answer = httpx.post(
        f"{airflow.base_url}/auth/token",
        json={"username": airflow.username, "password": airflow.password},
        timeout=30,
    )
    token = answer.json()["access_token"]
    with AirflowSource(_settings(airflow.base_url, token=SecretStr(token))) as source:
        assert DAG_ID in {d["dag_id"] for d in source.dags()}
        assert source.calls == 1  # no login round trip


# -- faults, over real HTTP, in front of the real server ----------------------------------------


@pytest.fixture
def proxy(airflow: AirflowClient) -> Iterator[FaultProxy]:
    p = FaultProxy(airflow.base_url)
    yield p
    p.close()


@pytest.mark.airflow
def test_5xx_429_and_broken_bodies_are_retried(airflow: AirflowClient, proxy: FaultProxy) -> None:
    proxy.add("status", path="/api/v2/dags", status=500)
    proxy.add("status", path="/api/v2/dags", status=429, headers={"Retry-After": "1"})
    proxy.add("truncate", path="/api/v2/dags")
    proxy.add("garbage", path="/api/v2/dags")
    with _fast(_login_settings(airflow, proxy.url, max_retries=4)) as source:
        started = time.monotonic()
        dags = [d["dag_id"] for d in source.dags()]
        elapsed = time.monotonic() - started
    assert DAG_ID in dags
    assert proxy.count("GET", "/api/v2/dags") == 5  # four faults, then the real answer
    assert source.calls == 1 + 5  # token + five attempts
    assert elapsed >= 1.0  # Retry-After was honoured (backoff alone is ~0.1 s here)


@pytest.mark.airflow
def test_a_timeout_is_retried(airflow: AirflowClient, proxy: FaultProxy) -> None:
    proxy.add("slow", path="/api/v2/dags/", delay=2.0)
    with _fast(_login_settings(airflow, proxy.url, timeout_seconds=0.5)) as source:
        tasks = source.tasks(DAG_ID)
    assert HITL_TASK in {t["task_id"] for t in tasks}
    assert source.calls == 1 + 2


@pytest.mark.airflow
def test_gives_up_after_max_retries_without_leaking_secrets(
    airflow: AirflowClient, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    proxy.add("status", path="/api/v2/dags", status=503, times=1000)
    with (
        _fast(_login_settings(airflow, proxy.url, max_retries=2)) as source,
        pytest.raises(SourceUnavailableError) as raised,
    ):
        list(source.dags())
    assert raised.value.transient
    assert isinstance(raised.value, TransientError)
    assert "3 attempts" in str(raised.value)
    assert proxy.count("GET", "/api/v2/dags") == 3
    token = proxy.authorizations[-1].removeprefix("Bearer ")
    for secret in (airflow.password, token):
        assert secret not in str(raised.value)
    assert token not in caplog.text


@pytest.mark.airflow
def test_a_dropped_connection_is_transient(airflow: AirflowClient, proxy: FaultProxy) -> None:
    """A connection closed without an answer is retried, then reported as transient."""
    proxy.add("drop", path="/api/v2/dags", times=1000)
    with (
        _fast(_login_settings(airflow, proxy.url, max_retries=1)) as source,
        pytest.raises(TransientError) as raised,
    ):
        list(source.dags())
    assert isinstance(raised.value, SourceUnavailableError)
    assert proxy.injected["drop"] >= 1
    assert source.calls == 1 + 2  # token, then the first try and one retry
    assert "2 attempts" in str(raised.value)


@pytest.mark.airflow
def test_a_401_fetches_a_fresh_token_once_then_retries(airflow: AirflowClient, proxy: FaultProxy) -> None:
    proxy.add("status", path="/api/v2/dags", status=401)
    with _fast(_login_settings(airflow, proxy.url)) as source:
        assert DAG_ID in {d["dag_id"] for d in source.dags()}
        assert proxy.count("POST", "/auth/token") == 2
        assert source.calls == 4  # token, 401, token, answer
        # A token that stays rejected: one refresh, then a clear error (no loop).
        proxy.add("status", path="/api/v2/dags", status=401, times=1000)
        with pytest.raises(SourceAuthError, match="AIRFLOW_USERNAME and AIRFLOW_PASSWORD"):
            list(source.dags())
        assert proxy.count("POST", "/auth/token") == 3


@pytest.mark.airflow
def test_a_secret_echoed_by_the_server_is_redacted(airflow: AirflowClient, proxy: FaultProxy) -> None:
    proxy.add("echo_auth", path="/api/v2/dags")
    with _fast(_login_settings(airflow, proxy.url)) as source, pytest.raises(SourceError) as raised:
        list(source.dags())
    token = proxy.authorizations[-1].removeprefix("Bearer ")
    assert "refusing Bearer ***" in str(raised.value)
    assert token not in str(raised.value)


def test_an_unreachable_server_is_unavailable_after_retries() -> None:
    with socket.socket() as sock:  # a loopback port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = _settings(f"http://127.0.0.1:{port}", token=SecretStr("tok-abc-123"), max_retries=2)
    with _fast(settings) as source, pytest.raises(SourceUnavailableError) as raised:
        list(source.dags())
    assert source.calls == 3
    assert isinstance(raised.value, TransientError)
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "tok-abc-123" not in str(raised.value)
