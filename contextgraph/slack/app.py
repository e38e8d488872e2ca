"""The Slack interaction endpoint (ASGI, Starlette): reviewers answer HITL tasks without Airflow.

    POST {prefix}/interactions      Slack's "Interactivity" request URL
    GET  {prefix}/healthz           liveness

1. Every request is checked first: its ``X-Slack-Request-Timestamp`` must be within 5 minutes of now
   and its ``X-Slack-Signature`` the HMAC-SHA256 of the body under ``SLACK_SIGNING_SECRET``
   (`slack_sdk.signature.SignatureVerifier`); otherwise 401 and nothing else happens.
2. A click on an option button (or "Answer…" of a multi-select) reads the HITL detail from Airflow,
   and opens a form (``views.open``) with the HITL params — required where their schema says so. An
   option the review does not offer, or a review already answered, opens nothing.
3. The form's submission is checked against the params' JSON schemas, then sent as
   ``PATCH …/hitlDetails`` with every param key and the Slack reviewer under
   ``_contextgraph_reviewer``; the message is then updated (``chat.update``) to show who chose what.
   409 (answered elsewhere first) → the message says who answered and the reviewer is told theirs was
   not recorded; 400 → the form says why Airflow refused it. Airflow unreachable → retried with
   backoff; if it keeps failing, the message says so and the reviewer gets an ephemeral message.

Slack wants an answer within 3 s: the app answers the form after ``ack_seconds`` at the latest (the
form then says "sending…") and finishes the delivery in the background, telling the outcome in the
channel message and, if needed, the form and an ephemeral message. Nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contextgraph.errors import ContextGraphError
from contextgraph.ingest.mapping import SLACK_IDENTITY_KEY
from contextgraph.slack.airflow import AlreadyAnswered, Answered, HITLClient, Outcome, Refused
from contextgraph.slack.blocks import (
    ANSWER_ACTION,
    ANSWER_VIEW,
    OPTION_ACTION,
    PARAM_BLOCK_PREFIX,
    PRIVATE_METADATA_LIMIT,
    SELECT_ACTION,
    HITLRef,
    Review,
    answer_form,
    answered_message,
    escape,
    failed_message,
    form_params,
    notice_view,
    read_form,
    responder_text,
)
from contextgraph.slack.config import MAX_BODY_BYTES, MAX_REQUEST_AGE_SECONDS, SlackSettings, web_client

__all__ = ["SlackBridge", "create_app"]

logger = logging.getLogger(__name__)


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


@dataclass
class _Delivery:
    """One form submission on its way to Airflow."""

    ref: HITLRef
    reviewer: dict[str, Any]
    chosen: list[str]
    values: Mapping[str, Any]
    meta: dict[str, Any]
    view_id: str | None
    outcome: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    late: bool = False


class SlackBridge:
    """Handles Slack interactions for HITL reviews. Network clients are created on first use."""

    def __init__(
        self,
        settings: SlackSettings | None = None,
        *,
        airflow: HITLClient | None = None,
        slack: Any = None,
        clock: Callable[[], float] = time.time,
        ack_seconds: float = 2.5,
    ) -> None:
        self.settings = settings or SlackSettings()
        self.verifier = SignatureVerifier(self.settings.require_signing_secret(), clock=_Clock(clock))
        self.clock = clock
        self.ack_seconds = ack_seconds
        self._airflow = airflow
        self._slack = slack
        self._jobs: set[asyncio.Task[None]] = set()

    # -- clients ---------------------------------------------------------------------------

    @property
    def airflow(self) -> HITLClient:
        if self._airflow is None:
            self._airflow = HITLClient(self.settings.airflow)
        return self._airflow

    @property
    def slack(self) -> Any:
        if self._slack is None:
            self._slack = web_client(self.settings)
        return self._slack

    async def _call_slack(self, method: str, **kwargs: Any) -> bool:
        """One Web API call (in a worker thread); failures are logged, never raised."""
        try:
            await anyio.to_thread.run_sync(partial(getattr(self.slack, method), **kwargs))
        except (SlackApiError, OSError, ContextGraphError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else exc
            logger.error("Slack %s failed: %s", method, error)
            return False
        return True

    async def aclose(self, timeout: float = 30.0) -> None:
        """Let deliveries in flight finish (up to `timeout` s), then close the Airflow client."""
        if self._jobs:
            await asyncio.wait(set(self._jobs), timeout=timeout)
        if self._airflow is not None:
            await self._airflow.aclose()

    # -- HTTP ------------------------------------------------------------------------------

    def authentic(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Signed by Slack with our secret, and at most 5 minutes old (or ahead)."""
        timestamp = headers.get("x-slack-request-timestamp") or ""
        signature = headers.get("x-slack-signature")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not signature:
            return False
        if abs(self.clock() - int(timestamp)) > MAX_REQUEST_AGE_SECONDS:
            logger.warning("refused a Slack request with a stale timestamp (%s)", timestamp)
            return False
        try:  # Slack's bodies are UTF-8 (URL-encoded ASCII); the verifier decodes them as such
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return self.verifier.is_valid(body=body, timestamp=timestamp, signature=signature)

    async def interactions(self, request: Request) -> Response:
        body = await _read_body(request, MAX_BODY_BYTES)
        if body is None:
            return JSONResponse({"error": "request body too large"}, status_code=413)
        if not self.authentic(request.headers, body):
            return JSONResponse({"error": "invalid or stale Slack signature"}, status_code=401)
        form = parse_qs(body.decode("utf-8", "replace"))
        if "ssl_check" in form:
            return Response(status_code=200)
        try:
            payload = json.loads(form["payload"][0])
        except (KeyError, IndexError, ValueError, RecursionError):
            return JSONResponse({"error": "no interaction payload"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "the interaction payload is not an object"}, status_code=400)
        kind = payload.get("type")
        if kind == "block_actions":
            await self.on_action(payload)
            return Response(status_code=200)
        if kind == "view_submission" and _obj(payload.get("view")).get("callback_id") == ANSWER_VIEW:
            return JSONResponse(await self.on_submit(payload))
        return Response(status_code=200)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    # -- button clicks ---------------------------------------------------------------------

    async def on_action(self, payload: dict[str, Any]) -> None:
        actions = payload.get("actions")
        action = _obj(actions[0] if isinstance(actions, list) and actions else None)
        action_id = str(action.get("action_id") or "")
        if action_id == SELECT_ACTION or not (
            action_id.startswith(OPTION_ACTION) or action_id == ANSWER_ACTION
        ):
            return  # choosing in the multi-select: nothing to do until "Answer…"
        reviewer = _reviewer(payload)
        channel, ts = _container(payload)
        tell = partial(self._ephemeral, channel, reviewer["user_id"])
        try:
            data = json.loads(str(action.get("value") or ""))
            ref = HITLRef.parse(data)
        except (ValueError, RecursionError):
            await tell("This button does not belong to a contextgraph review; nothing was sent to Airflow.")
            return
        try:  # Slack's trigger_id lives 3 s: one quick read, no retries
            detail = await asyncio.wait_for(self.airflow.detail(ref, retries=0), self.ack_seconds)
        except (ContextGraphError, TimeoutError) as exc:
            await tell(
                f"Airflow cannot be reached right now ({_short(exc)}). "
                "Nothing was sent; try again in a minute."
            )
            return
        review = Review.from_detail(ref, detail)
        if detail.get("response_received"):
            message = answered_message(
                review, self.settings.ui_url, detail, note="This review was already answered."
            )
            await self._call_slack("chat_update", channel=channel, ts=ts, **message)
            await tell(f"Already answered by {responder_text(detail)}; nothing was sent.")
            return
        chosen = self._chosen(action_id, data, payload, review.options)
        unknown = [c for c in chosen if c not in review.options]
        if not review.multiple and len(chosen) != 1:
            await tell("Choose one option of this review; nothing was sent to Airflow.")
            return
        if unknown:
            await tell(
                f"'{unknown[0]}' is not an option of this review (offered: {', '.join(review.options)}). "
                "Nothing was sent to Airflow."
            )
            return
        meta: dict[str, Any] = {"ref": asdict(ref), "chosen": chosen, "channel": channel, "ts": ts}
        meta["reviewer_key"] = bool(data.get("reviewer_key", True))
        metadata = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
        if len(metadata) > PRIVATE_METADATA_LIMIT:
            await tell(
                "This review is too large to answer in Slack; answer it in Airflow: "
                + ref.ui_url(self.settings.ui_url)
            )
            return
        view = answer_form(review, chosen, detail.get("params") or {}, metadata)
        if not await self._call_slack("views_open", trigger_id=payload.get("trigger_id"), view=view):
            await tell("Slack could not open the answer form; please click again.")

    @staticmethod
    def _chosen(
        action_id: str, data: dict[str, Any], payload: dict[str, Any], options: list[str]
    ) -> list[str]:
        if action_id == ANSWER_ACTION:  # a multi-select: what is selected in the message now
            picked: list[str] = []
            for block in _obj(_obj(payload.get("state")).get("values")).values():
                state = _obj(_obj(block).get(SELECT_ACTION))
                picked += [str(_obj(o).get("value")) for o in _list(state.get("selected_options"))]
            return [options[int(i)] for i in picked if i.isdigit() and int(i) < len(options)]
        if isinstance(data.get("option_index"), int) and 0 <= data["option_index"] < len(options):
            return [options[data["option_index"]]]
        return [str(data.get("option"))]

    # -- form submissions ------------------------------------------------------------------

    async def on_submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The answer to Slack for a submitted form (closes it, shows errors, or a notice)."""
        view = _obj(payload.get("view"))
        try:
            meta = json.loads(str(view.get("private_metadata") or ""))
            ref = HITLRef.parse(meta.get("ref"))
        except (ValueError, AttributeError, RecursionError):
            return {
                "response_action": "update",
                "view": notice_view("Not sent", "This form is not a contextgraph review."),
            }
        delivery = _Delivery(
            ref=ref,
            reviewer=_reviewer(payload),
            chosen=[str(c) for c in _list(meta.get("chosen"))],
            values=_obj(_obj(view.get("state")).get("values")),
            meta=meta,
            view_id=view.get("id"),
        )
        job = asyncio.create_task(self._deliver(delivery))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        await asyncio.wait({delivery.outcome}, timeout=self.ack_seconds)
        if delivery.outcome.done():
            return delivery.outcome.result()
        delivery.late = True
        return {
            "response_action": "update",
            "view": notice_view(
                "Sending…",
                "Airflow is slow to answer, so your answer is still on its way. The review message will "
                "show when it is recorded; if it cannot be delivered, you will be told.",
            ),
        }

    async def _deliver(self, d: _Delivery) -> None:
        try:
            await self._deliver_or_fail(d)
        except Exception as exc:  # never lose an answer silently
            logger.exception("delivery of a Slack answer for %s failed", d.ref.label())
            await self._failed(d, None, f"an unexpected error ({type(exc).__name__})")

    async def _deliver_or_fail(self, d: _Delivery) -> None:
        channel, ts = d.meta.get("channel"), d.meta.get("ts")
        try:
            detail = await self.airflow.detail(d.ref)
        except ContextGraphError as exc:
            await self._failed(d, None, _short(exc))
            return
        review = Review.from_detail(d.ref, detail)
        try:
            chosen, params_input, errors = read_form(
                {k: v for k, v in d.values.items() if isinstance(v, dict)},
                detail.get("params") or {},
                review.options,
            )
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # not a form Slack sends
            logger.warning("unreadable form values for %s: %s", d.ref.label(), type(exc).__name__)
            chosen, params_input, errors = None, {}, {"form": "The form's values could not be read."}
        for key in form_params(detail.get("params") or {}):  # Slack sends every input block of the form
            block_id = f"{PARAM_BLOCK_PREFIX}{key}"[:255]
            if block_id not in d.values:
                errors[block_id] = "This field is missing from the submitted form."
        chosen = chosen if chosen is not None else d.chosen
        unknown = [c for c in chosen if c not in review.options]
        if not errors and (unknown or not chosen):
            text = (
                f"'{unknown[0]}' is not an option of this review" if unknown else "No option was chosen"
            ) + "; nothing was sent to Airflow."
            if self._settle(d, {"response_action": "update", "view": notice_view("Not sent", text)}):
                await self._ephemeral(channel, d.reviewer["user_id"], text)
            return
        if errors:
            if self._settle(d, {"response_action": "errors", "errors": errors}):
                text = "; ".join(errors.values())
                await self._ephemeral(channel, d.reviewer["user_id"], f"Your answer was not sent: {text}")
            return
        if d.meta.get("reviewer_key", True):
            params_input[SLACK_IDENTITY_KEY] = d.reviewer
        else:
            logger.warning(
                "%s does not accept %s (declare it or use SlackHITLOperator): Airflow records the "
                "bridge's account, not the Slack reviewer",
                d.ref.label(),
                SLACK_IDENTITY_KEY,
            )
        try:
            outcome: Outcome = await self.airflow.respond(d.ref, chosen, params_input)
        except ContextGraphError as exc:
            await self._failed(d, review, _short(exc))
            return
        if isinstance(outcome, Refused):
            text = f"Airflow refused this answer: {outcome.reason}. Nothing was recorded."
            if self._settle(d, {"response_action": "update", "view": notice_view("Not accepted", text)}):
                await self._ephemeral(channel, d.reviewer["user_id"], text)
            return
        if isinstance(outcome, AlreadyAnswered):
            who = responder_text(outcome.detail)
            note = "Answered before a later answer from Slack arrived; that one was not recorded."
            text = f"This review was already answered by {who}; your answer was not recorded."
            notice = notice_view("Already answered", text)
            late = self._settle(d, {"response_action": "update", "view": notice})
            message = answered_message(review, self.settings.ui_url, {**detail, **outcome.detail}, note=note)
            await self._call_slack("chat_update", channel=channel, ts=ts, **message)
            if late:
                await self._finish_view(d, notice)
                await self._ephemeral(channel, d.reviewer["user_id"], text)
            return
        assert isinstance(outcome, Answered)
        answered = {**detail, **outcome.detail, "response_received": True}
        late = self._settle(d, {"response_action": "clear"})
        await self._call_slack(
            "chat_update", channel=channel, ts=ts, **answered_message(review, self.settings.ui_url, answered)
        )
        if late:
            await self._finish_view(
                d,
                notice_view("Recorded", f"Your answer *{escape(', '.join(chosen))}* is recorded in Airflow."),
            )
        logger.info("answer from Slack user %s recorded for %s", d.reviewer["user_id"], d.ref.label())

    def _settle(self, d: _Delivery, response: dict[str, Any]) -> bool:
        """Hand the form's answer to the waiting request; True if it has already gone (late)."""
        if not d.outcome.done():
            d.outcome.set_result(response)
        return d.late

    async def _failed(self, d: _Delivery, review: Review | None, why: str) -> None:
        channel, ts = d.meta.get("channel"), d.meta.get("ts")
        text = (
            f"Your answer ({', '.join(d.chosen)}) could not be delivered to Airflow: {why}. "
            "Nothing was recorded; please answer again later."
        )
        late = self._settle(d, {"response_action": "update", "view": notice_view("Not delivered", text)})
        if review is not None:
            message = failed_message(review, self.settings.ui_url, d.reviewer, d.chosen, why)
            await self._call_slack("chat_update", channel=channel, ts=ts, **message)
        if late:
            await self._finish_view(d, notice_view("Not delivered", text))
        await self._ephemeral(channel, d.reviewer["user_id"], text)

    async def _finish_view(self, d: _Delivery, view: dict[str, Any]) -> None:
        if d.view_id:
            await self._call_slack("views_update", view_id=d.view_id, view=view)

    async def _ephemeral(self, channel: str | None, user: str | None, text: str) -> None:
        if channel and user:
            await self._call_slack("chat_postEphemeral", channel=channel, user=user, text=text)
        else:
            logger.warning("could not tell a Slack user: %s", text)


def _reviewer(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The Slack identity kept with the answer (``_contextgraph_reviewer``)."""
    user = _obj(payload.get("user"))
    team = _obj(payload.get("team"))
    return {
        "user_id": user.get("id"),
        "name": user.get("username") or user.get("name"),
        "team": user.get("team_id") or team.get("id"),
    }


def _container(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    container = _obj(payload.get("container"))
    channel = container.get("channel_id") or _obj(payload.get("channel")).get("id")
    ts = container.get("message_ts") or _obj(payload.get("message")).get("ts")
    return (
        channel if isinstance(channel, str) else None,
        ts if isinstance(ts, str) else None,
    )


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (payload fields of the wrong type)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it is larger than `limit` bytes (the rest is not read)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _short(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def create_app(
    settings: SlackSettings | None = None, *, prefix: str = "/slack", bridge: SlackBridge | None = None
) -> Starlette:
    """The ASGI app: ``{prefix}/interactions`` and ``{prefix}/healthz``.

    Raises `ConfigError` without ``SLACK_SIGNING_SECRET``. Run it with ``contextgraph slack serve``,
    any ASGI server, or mount it in Airflow's API server (`contextgraph.slack.plugin`).
    """
    bridge = bridge or SlackBridge(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await bridge.aclose()

    app = Starlette(
        routes=[
            Route(f"{prefix}/interactions", bridge.interactions, methods=["POST"]),
            Route(f"{prefix}/healthz", bridge.healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.bridge = bridge
    return app
