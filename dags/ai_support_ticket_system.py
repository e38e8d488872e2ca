"""AI support ticket system: an AI drafts an answer, a human reviews it (HITL), we act on it.

fetch_ticket -> draft_response -> review_response (HITLOperator) -> act_on_decision
                                                                    (outlet: contextgraph://decisions)

The ``fetch_ticket`` and ``draft_response`` return values stay in XCom: contextgraph's ingest reads
the ``draft_response`` XCom as the "AI proposal" that the human judged. ``draft_response`` consults
contextgraph first (lessons and precedents of similar decisions) and keeps the case itself in its
own field (``case``); the reviewer sees the lessons and precedents under the draft, between
``<!-- contextgraph:precedents -->`` and ``<!-- /contextgraph:precedents -->``: the ingest leaves
that section out of this decision's search index, so a decision is never found for the words of
the precedents it quoted.

What HITLOperator does (apache-airflow-providers-standard 1.21 on Airflow 3.3.2; read from
``airflow/providers/standard/operators/hitl.py`` and the scheduler, then checked on a real server):

* ``execute`` writes the request (subject, body, options, defaults, multiple, params) as the task
  instance's HITL detail, calls every ``notifiers=`` entry (``BaseNotifier`` instances, called with
  the task context -- a hook for e.g. a Slack message), then parks the task: Airflow 3.3+ raises
  ``TaskAwaitingInput`` (state ``awaiting_input``, no triggerer, no worker slot); 3.1/3.2 defer to
  ``HITLTrigger`` (state ``deferred``).
* A response (``PATCH .../taskInstances/{task_id}/{map_index}/hitlDetails``) resumes the task in
  ``execute_complete``. Its return value -- the XCom ``return_value`` of ``review_response`` -- is
  ``{"chosen_options": [...], "params_input": {...}, "responded_at": <datetime>,
  "responded_by_user": {"id": ..., "name": ...} | None}`` (read over REST with ``deserialize=true``,
  ``responded_at`` is a ``"datetime.datetime@version=2(...)"`` string: take it from the HITL detail).
* The API checks the options (unknown option or several with ``multiple=False`` -> 400, second
  answer -> 409) but NOT the params. ``execute_complete`` validates them later and fails the task if
  ``params_input`` is non-empty and does not carry exactly the declared keys, or a value breaks its
  schema. So every answer must send every param key (``manual_response: null`` when unused).
* Timeout (``response_timeout``; on 3.3 enforced by the scheduler's ``awaiting_input`` sweep every
  ``[scheduler] trigger_timeout_check_interval`` s, default 15): with ``defaults`` the scheduler
  writes ``chosen_options = defaults`` and ``params_input = each param's default value``,
  ``responded_by = None``, and the task resumes and succeeds; without defaults it fails with
  ``HITLTimeoutError``. Because param defaults become the answer, a param without a default (value
  NOTSET) cannot work anyway: the task fails at start-up ("No value passed and Param has no default
  value") before it ever asks. Hence ``reason`` has a default that says the answer came from the
  timeout (the form shows it pre-filled), and ``minLength`` makes an empty reason fail the task.
* Timed-out answers are recognisable: ``responded_by_user`` is null and ``params_input`` holds the
  param defaults. The asset URI is stored normalised as ``contextgraph://decisions/``.
"""

from __future__ import annotations

import inspect
import logging
import os
import zlib
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, Param, dag, task

try:  # contextgraph's Slack review bridge (pip install 'contextgraph[slack]'), see README
    from contextgraph.slack import SlackHITLOperator as ReviewOperator
    from contextgraph.slack import slack_notifiers
except ImportError:  # no contextgraph here: reviews are answered in the Airflow UI only
    ReviewOperator = HITLOperator

    def slack_notifiers() -> list[Any]:
        return []


log = logging.getLogger(__name__)

DAG_ID = "ai_support_ticket_system"
DECISIONS_ASSET = Asset("contextgraph://decisions")

APPROVE = "Approve AI Response"
MANUAL = "Respond Manually"
ESCALATE = "Escalate to CRE"
OPTIONS = [APPROVE, MANUAL, ESCALATE]
TIMEOUT_REASON = "No reviewer answered before the review timeout; escalated by default."

REVIEW_TIMEOUT = timedelta(seconds=int(os.environ.get("CONTEXTGRAPH_REVIEW_TIMEOUT_SECONDS", 86400)))
# `response_timeout` exists since providers-standard 1.12.2; older providers (as shipped with
# Airflow 3.1) take the response wait from `execution_timeout`.
_TIMEOUT_ARG = (
    "response_timeout"
    if "response_timeout" in inspect.signature(HITLOperator.__init__).parameters
    else "execution_timeout"
)

SAMPLE_TICKETS: list[dict[str, str]] = [
    {
        "ticket_id": "T-1001",
        "customer": "acme-corp",
        "subject": "Cannot reset my password",
        "body": "The password reset email never arrives. I checked spam. Please help.",
    },
    {
        "ticket_id": "T-1002",
        "customer": "globex",
        "subject": "Charged twice this month",
        "body": "My card was charged twice for the March invoice. I want a refund of one charge.",
    },
    {
        "ticket_id": "T-1003",
        "customer": "initech",
        "subject": "API returns 500 on bulk export",
        "body": "Since yesterday every bulk export call fails with HTTP 500. Production is blocked.",
    },
]


def _ticket_from(conf: dict[str, Any] | None, run_id: str) -> dict[str, str]:
    conf = conf or {}
    if conf.get("ticket_id") or conf.get("subject") or conf.get("body"):
        return {
            "ticket_id": str(conf.get("ticket_id") or f"T-{zlib.crc32(run_id.encode()) % 100000}"),
            "customer": str(conf.get("customer") or "unknown"),
            "subject": str(conf.get("subject") or "(no subject)"),
            "body": str(conf.get("body") or ""),
        }
    # Deterministic per run: the same run_id always gets the same sample.
    return dict(SAMPLE_TICKETS[zlib.crc32(run_id.encode()) % len(SAMPLE_TICKETS)])


def _template_draft(ticket: dict[str, str]) -> str:
    return (
        f"Hello {ticket['customer']},\n\n"
        f'Thank you for contacting us about "{ticket["subject"]}". '
        "We have logged your request and a specialist is looking into it. "
        "We will get back to you within one business day.\n\n"
        f"Reference: {ticket['ticket_id']}\n\nBest regards,\nSupport"
    )


PRECEDENTS = 3
LESSONS = 2
LLM_INSTRUCTIONS = "You are a support agent. Write a short, polite, accurate reply to the ticket."


def _precedent_deps() -> Any | None:
    """contextgraph's precedent tools on the configured store (Airflow Connection `neo4j_default`,
    else NEO4J_* / CONTEXTGRAPH_STORE_PATH), or None when there is none: the log says why, and the
    draft is written without precedents."""
    try:
        from airflow.sdk import BaseHook

        from contextgraph.airflow_connections import settings_from_connections
        from contextgraph.tools.agent import open_deps
    except ImportError as exc:
        log.info("Drafting without precedents: contextgraph is not installed here (%s)", exc)
        return None
    try:
        settings = settings_from_connections(BaseHook.get_connection)
        return open_deps(settings, point=(DAG_ID, "review_response"))
    except Exception as exc:  # an unreachable or missing store never fails the draft
        log.warning("Drafting without precedents: %s", exc)
        return None


def _consult(deps: Any | None, case: str) -> list[Any]:
    """The deterministic agent: the best precedents for the case, logged; [] if there are none."""
    if deps is None:
        return []
    from contextgraph.tools.agent import consult_precedents

    try:
        found = consult_precedents(deps, case, k=PRECEDENTS)
    except Exception as exc:
        log.warning("Drafting without precedents: the search failed (%s)", exc)
        return []
    if not found:
        log.info("Drafting without precedents: no answered decisions in the graph yet")
    for rank, precedent in enumerate(found, start=1):
        log.info("Precedent %d: %s [%s]", rank, precedent.summary(), precedent.key)
    return found


def _llm_draft(model: Any, ticket: dict[str, str], deps: Any | None) -> tuple[str, list[Any]]:
    """A pydantic-ai agent's draft: with the precedent tools when a store is there, else plain."""
    from pydantic_ai import Agent  # lazy: only needed when an LLM is configured
    from pydantic_ai.exceptions import UnexpectedModelBehavior

    prompt = f"Subject: {ticket['subject']}\n\n{ticket['body']}"
    if deps is not None:
        from contextgraph.tools.agent import precedent_agent

        try:
            result = precedent_agent(model, LLM_INSTRUCTIONS).run_sync(prompt, deps=deps)
            return str(result.output), list(deps.shown)
        except UnexpectedModelBehavior as exc:  # e.g. the store went away: its tools kept failing
            log.warning("Drafting without precedents: %s", exc)
    result = Agent(model, instructions=LLM_INSTRUCTIONS).run_sync(prompt)
    return str(result.output), []


def _lessons(deps: Any | None, case: str) -> list[Any]:
    """What similar past decisions teach (contextgraph lessons), logged; [] if there are none."""
    if deps is None:
        return []
    from contextgraph.tools.agent import consult_lessons

    try:
        found = consult_lessons(deps, case, k=LESSONS)
    except Exception as exc:
        log.warning("Drafting without lessons: the search failed (%s)", exc)
        return []
    for lesson in found:
        log.info("Lesson: %s", lesson.to_prompt().splitlines()[0])
    return found


def _cited(precedents: list[Any], lessons: list[Any] | None = None) -> dict[str, Any]:
    """The precedents and lessons for the XCom (keys and scores for the ingest) and for the reviewer:
    `precedent_notes` is a marked section (``<!-- contextgraph:precedents -->`` …
    ``<!-- /contextgraph:precedents -->``) that the ingest leaves out of this decision's index."""
    lessons = lessons or []
    if not precedents and not lessons:
        return {"precedents": [], "lessons": [], "precedent_notes": ""}
    from contextgraph.tools.agent import compact, compact_lesson, precedent_notes

    return {
        "precedents": [compact(p) for p in precedents],
        "lessons": [compact_lesson(lesson) for lesson in lessons],
        "precedent_notes": "\n\n" + precedent_notes(precedents, limit=PRECEDENTS, lessons=lessons),
    }


@dag(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    tags=["contextgraph", "hitl", "example"],
    doc_md=__doc__,
)
def ai_support_ticket_system() -> None:
    @task
    def fetch_ticket(**context: Any) -> dict[str, str]:
        dag_run = context["dag_run"]
        ticket = _ticket_from(dag_run.conf, dag_run.run_id)
        log.info("Fetched ticket %s: %s", ticket["ticket_id"], ticket["subject"])
        return ticket

    @task
    def draft_response(ticket: dict[str, str]) -> dict[str, Any]:
        # Precedents first: how reviewers decided similar tickets, and why. Their keys go into the
        # XCom, which the ingest reads as the proposal and turns into INFORMED_BY edges.
        # Lessons (what similar decisions teach) go under the draft for the reviewer, inside the
        # marked precedent section; the case itself travels in its own field.
        model = os.environ.get("CONTEXTGRAPH_LLM_MODEL")
        deps = _precedent_deps()
        case = f"{ticket['subject']}\n\n{ticket['body']}"
        try:
            lessons = _lessons(deps, case)
            if not model:
                precedents = _consult(deps, case)
                draft, used = _template_draft(ticket), "template"
            else:
                draft, precedents = _llm_draft(model, ticket, deps)
                used = model
        finally:
            if deps is not None:
                deps.close()
        return {
            "ticket_id": ticket["ticket_id"],
            "case": {"subject": ticket["subject"], "body": ticket["body"]},
            "draft": draft,
            "model": used,
            **_cited(precedents, lessons),
        }

    ticket = fetch_ticket()
    draft = draft_response(ticket)

    # With SLACK_BOT_TOKEN set the review is also posted to Slack and can be answered there; the
    # Slack reviewer then travels in params_input["_contextgraph_reviewer"], which SlackHITLOperator
    # (a HITLOperator, same name in the UI) accepts on resume where HITLOperator would fail the task.
    review = ReviewOperator(
        task_id="review_response",
        notifiers=slack_notifiers(),
        subject="Review the AI reply to ticket {{ ti.xcom_pull(task_ids='fetch_ticket')['ticket_id'] }}: "
        "{{ ti.xcom_pull(task_ids='fetch_ticket')['subject'] }}",
        body=(
            "**Customer:** {{ ti.xcom_pull(task_ids='fetch_ticket')['customer'] }}\n\n"
            "**Ticket:**\n\n{{ ti.xcom_pull(task_ids='fetch_ticket')['body'] }}\n\n"
            "**AI draft** ({{ ti.xcom_pull(task_ids='draft_response')['model'] }}):\n\n"
            "{{ ti.xcom_pull(task_ids='draft_response')['draft'] }}"
            "{{ ti.xcom_pull(task_ids='draft_response').get('precedent_notes', '') }}"
        ),
        options=OPTIONS,
        defaults=[ESCALATE],
        multiple=False,
        params={
            "reason": Param(
                TIMEOUT_REASON,
                type="string",
                minLength=1,
                description="Why you chose this option (kept as precedent for future decisions).",
            ),
            "manual_response": Param(
                None,
                type=["null", "string"],
                description="Your reply to the customer, if you chose to respond manually.",
            ),
        },
        **{_TIMEOUT_ARG: REVIEW_TIMEOUT},
    )

    @task(outlets=[DECISIONS_ASSET])
    def act_on_decision(
        decision: dict[str, Any], ticket: dict[str, str], draft: dict[str, str]
    ) -> dict[str, Any]:
        chosen = decision["chosen_options"][0]
        params = decision.get("params_input") or {}
        by = decision.get("responded_by_user") or {}
        if chosen == APPROVE:
            action, reply = "sent_ai_response", draft["draft"]
        elif chosen == MANUAL:
            action, reply = "sent_manual_response", params.get("manual_response") or ""
        else:
            action, reply = "escalated_to_cre", None
        log.info(
            "Ticket %s: %s (chosen by %s, reason: %s)",
            ticket["ticket_id"],
            action,
            by.get("name") or "timeout default",
            params.get("reason"),
        )
        return {
            "ticket_id": ticket["ticket_id"],
            "chosen_option": chosen,
            "action": action,
            "reply": reply,
            "reason": params.get("reason"),
            "responded_by": by.get("id"),
        }

    draft >> review
    act_on_decision(review.output, ticket, draft)


ai_support_ticket_system()
