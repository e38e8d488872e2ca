"""A seeded, synthetic Airflow history, as the REST API v2 of Airflow 3.3 would return it.

`History(decisions=N, seed=0)` stands for an Airflow deployment in which five HITL DAGs have run
N times in all (one human decision per run). Every record is a pure function of its index, so
any page can be produced on demand and nothing is held in memory: `hitl_details()`,
`dag_runs()` and `task_instances()` are generators, and `hitl_detail(i)` / `xcom(...)` give
random access for paging and XCom look-ups.

Record shapes follow Airflow 3.3.2's response models (`DAGResponse`, `TaskResponse`,
`DAGRunResponse`, `TaskInstanceResponse`, `HITLDetail`, `XComResponseNative`); the smoke test
validates samples against those models. Texts have realistic lengths: subjects of 40-110
characters, bodies of 300-1,200, reasons of 60-250, AI drafts of 300-1,000.

Time runs forward with the index: decision `i` is created at `START + i * STEP` (plus a jitter
smaller than STEP), so `created_at` and the runs' `updated_at` are ordered by index and
`created_at_gte`/`updated_at_gte` filters are a bisection. The most recent decisions (the last
hour of history) may still be waiting for an answer, as in a live deployment.
"""

from __future__ import annotations

import bisect
import functools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.records import dag_record, dag_version_record, task_instance_record, task_record, version_id

START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
STEP = timedelta(seconds=37)
#: A run starts this long before its review asks, and ends (is last updated) this long after.
RUN_LEAD = timedelta(seconds=90)
RUN_TAIL = timedelta(minutes=12)
TASKS_PER_DAG = 5
PENDING_WINDOW = timedelta(hours=2)


@dataclass(frozen=True, eq=False)  # hashed by identity (cache keys)
class Scenario:
    """One HITL DAG: its five tasks (in topological order), review point, options and texts."""

    dag_id: str
    description: str
    tags: tuple[str, ...]
    owners: tuple[str, ...]
    schedule: str | None
    tasks: tuple[tuple[str, str, tuple[str, ...]], ...]  # task_id, operator_name, downstream
    review: str
    drafts: tuple[str, ...]  # upstream tasks whose return_value the review judges
    options: tuple[str, ...]
    default: str
    outcomes: tuple[float, ...]  # probability of each option, in `options` order
    weight: float
    subjects: tuple[str, ...]
    bodies: tuple[str, ...]
    drafts_text: tuple[str, ...]
    reasons: dict[str, tuple[str, ...]]


CUSTOMERS = (
    "Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Foods", "Hooli",
    "Vandelay Imports", "Soylent Labs", "Tyrell Systems", "Cyberdyne Retail", "Wonka Industries",
    "Aperture Science", "Oscorp Energy", "Massive Dynamic", "Nakatomi Trading", "Gringotts Finance",
)  # fmt: skip
PRODUCTS = (
    "CSV export", "SSO login", "billing portal", "mobile app", "webhooks", "REST API", "dashboard",
    "invoice PDF", "password reset", "audit log", "data sync", "Slack integration", "search",
)  # fmt: skip
PLANS = ("Free", "Starter", "Team", "Business", "Enterprise")
REVIEWERS = tuple(
    (f"user-{n:02d}", name)
    for n, name in enumerate(
        (
            "Ana Souza", "Ben Okafor", "Chloe Martin", "Dev Patel", "Eva Novak", "Farid Haddad",
            "Grace Kim", "Hugo Lefèvre", "Ines García", "Jonas Berg", "Kenji Sato", "Lena Fischer",
            "Marta Rossi", "Nia Thompson", "Omar Aziz", "Priya Nair", "Quinn Walsh", "Rosa Lima",
            "Sam Cohen", "Tara Singh", "Uma Reddy", "Victor Hugo", "Wen Li", "Yusuf Demir", "Zoe Adams",
        )
    )
)  # fmt: skip

FILLER = (
    "The customer has been with us for {months} months on the {plan} plan and has opened {contacts} "
    "tickets this quarter.",
    "They mention that the problem started after the release on {date} and affects about {users} users.",
    "Logs attached to the ticket show {errors} failed requests in the last 24 hours from their workspace.",
    "Their account manager notes that the renewal is due in {days} days and the tone is getting urgent.",
    "A similar issue was reported by {other} last month and was resolved by a configuration change.",
    "They have already tried clearing the cache, signing out and in again, and a different browser.",
    "The request includes a screenshot of the error page and the exact time it happened ({time} UTC).",
    "Our status page showed no incident at that time, and the health checks for {product} were green.",
    "The customer asks for a written explanation they can forward to their own compliance team.",
    "This is the {nth} message in the thread; the previous answer did not solve the problem.",
)


def _scenarios() -> tuple[Scenario, ...]:
    support = Scenario(
        dag_id="ai_support_ticket_system",
        description="AI drafts an answer to a support ticket; a human reviews it before it is sent.",
        tags=("support", "hitl", "ai"),
        owners=("cre",),
        schedule=None,
        tasks=(
            ("fetch_ticket", "@task", ("draft_response",)),
            ("draft_response", "@task", ("review_response",)),
            ("review_response", "HITLOperator", ("act_on_decision",)),
            ("act_on_decision", "@task", ("notify_customer",)),
            ("notify_customer", "@task", ()),
        ),
        review="review_response",
        drafts=("draft_response",),
        options=("Approve AI Response", "Respond Manually", "Escalate to CRE"),
        default="Escalate to CRE",
        outcomes=(0.62, 0.24, 0.14),
        weight=0.5,
        subjects=(
            "{customer}: {product} fails with error {code} since this morning",
            "Cannot log in to the {product} after the password change",
            "Question about {product} limits on the {plan} plan",
            "{customer} asks for a refund of the last invoice because of {product} downtime",
            "Feature request: dark mode and keyboard shortcuts in the {product}",
            "Data missing in {product} after yesterday's sync for {customer}",
            "Urgent: {product} returns 500 for every request from {customer}",
        ),
        bodies=(
            "Hello, since this morning every attempt to use the {product} ends with error {code}. "
            "We depend on it for our month-end close and need it working today.",
            "Hi team, after resetting my password I can no longer get into the {product}. The reset "
            "email arrives but the link says it has expired.",
            "We are evaluating an upgrade from {plan}. What are the limits of the {product} and can "
            "they be raised for a trial period?",
            "The {product} was unavailable for several hours last week and we lost a day of work. "
            "We would like a refund or a credit on the next invoice.",
        ),
        drafts_text=(
            "Hi {customer} team, thanks for reporting this. Error {code} in the {product} happens when "
            "the session token expires during a long operation. Please sign out, sign in again and "
            "retry; if the problem persists, send us the request id shown under the error and we will "
            "look at it right away. We are sorry for the disruption to your month-end close.",
            "Hello, thanks for your question about the {product}. On the {plan} plan the limit is "
            "{users} requests per minute; we can raise it for a 14-day trial. I have asked our team to "
            "enable that on your workspace, and you will get a confirmation email within the hour.",
            "Hi, we are sorry about the downtime of the {product}. Our records show an outage of "
            "{hours} hours on that day. Per our SLA you are entitled to a {pct}% credit, which we "
            "will apply to your next invoice automatically.",
        ),
        reasons={
            "Approve AI Response": (
                "The draft gives the right workaround and the tone is fine.",
                "Correct steps for the {product}; matches the runbook for error {code}.",
                "Accurate answer, nothing to add; the customer only needed the reset steps.",
                "Draft is right and quotes the correct plan limits for {plan}.",
            ),
            "Respond Manually": (
                "The draft promises a credit we cannot give on the {plan} plan; answered myself.",
                "Wrong cause: error {code} here comes from their proxy, not the session token.",
                "The customer needs a roadmap answer, not a workaround; dark mode is planned for Q3.",
                "Tone too casual for an enterprise customer with a renewal due; rewrote it.",
            ),
            "Escalate to CRE": (
                "Production outage for {customer}: CRE must own this, not a canned answer.",
                "Possible data loss in the {product}; needs an engineer to check the sync logs.",
                "Security-sensitive: login issue may be account takeover, escalating.",
                "Third contact on the same problem; escalate before the renewal conversation.",
            ),
        },
    )
    refund = Scenario(
        dag_id="refund_approval",
        description="Refund requests above the automatic limit need a finance approval.",
        tags=("finance", "hitl"),
        owners=("finance-ops",),
        schedule="@hourly",
        tasks=(
            ("load_order", "@task", ("assess_refund",)),
            ("assess_refund", "@task", ("draft_refund_note",)),
            ("draft_refund_note", "@task", ("approve_refund",)),
            ("approve_refund", "ApprovalOperator", ("issue_refund",)),
            ("issue_refund", "@task", ()),
        ),
        review="approve_refund",
        drafts=("draft_refund_note",),
        options=("Approve", "Reject"),
        default="Reject",
        outcomes=(0.71, 0.29),
        weight=0.2,
        subjects=(
            "Refund of {amount} EUR for order {order} ({customer})",
            "Partial refund request: {amount} EUR, {product} subscription",
            "Chargeback risk: {customer} disputes {amount} EUR",
        ),
        bodies=(
            "{customer} asks for a refund of {amount} EUR for order {order}. Reason given: the "
            "{product} did not work for most of the billing period. Payment method: card.",
            "Customer on the {plan} plan wants a partial refund after downgrading mid-cycle. The "
            "order total was {amount} EUR; the model suggests a prorated amount.",
        ),
        drafts_text=(
            "Recommendation: approve a refund of {amount} EUR. The order {order} shows {hours} hours "
            "of documented outage, the customer has no previous refunds, and the amount is within "
            "the {plan} plan's goodwill budget. Risk of chargeback if refused: medium.",
            "Recommendation: reject. The usage logs show the {product} was used daily during the "
            "period, and the terms allow refunds only within 14 days of purchase.",
        ),
        reasons={
            "Approve": (
                "Outage is documented and the amount is under the goodwill limit.",
                "Long-standing customer, first refund, approve to avoid a chargeback.",
            ),
            "Reject": (
                "Usage logs contradict the claim; offer a credit instead of a refund.",
                "Outside the 14-day window and the product was used throughout.",
            ),
        },
    )
    report = Scenario(
        dag_id="weekly_report_review",
        description="An LLM summarises the weekly metrics; an analyst reviews before it is published.",
        tags=("reporting", "hitl", "ai"),
        owners=("analytics",),
        schedule="0 7 * * 1",
        tasks=(
            ("extract_metrics", "@task", ("compare_last_week",)),
            ("compare_last_week", "@task", ("summarize_report",)),
            ("summarize_report", "@task", ("review_report",)),
            ("review_report", "HITLOperator", ("publish_report",)),
            ("publish_report", "@task", ()),
        ),
        review="review_report",
        drafts=("summarize_report",),
        options=("Publish", "Request Changes", "Discard"),
        default="Discard",
        outcomes=(0.66, 0.28, 0.06),
        weight=0.1,
        subjects=("Weekly report for {customer} (week {week})", "KPI summary week {week}: {product}"),
        bodies=(
            "Please review the generated weekly summary for week {week}. Revenue changed by {pct}% "
            "and active users by {users}. The {product} section was generated from partial data.",
        ),
        drafts_text=(
            "Week {week} summary: revenue grew {pct}% over last week, driven by the {product}. "
            "Active users reached {users}. Churn stayed flat. Two anomalies: a spike in errors on "
            "{date} and a drop in sign-ups from the {plan} plan.",
        ),
        reasons={
            "Publish": ("Numbers check out against the dashboard.", "Accurate and clear; publish."),
            "Request Changes": (
                "The revenue figure double counts refunds; fix before publishing.",
                "Anomaly on {date} is a tracking bug, not real traffic; remove it.",
            ),
            "Discard": ("Data for the week is incomplete; skip this report.",),
        },
    )
    moderation = Scenario(
        dag_id="content_moderation",
        description="Community posts flagged by the classifier are reviewed by a moderator.",
        tags=("trust-safety", "hitl", "ai"),
        owners=("trust-safety",),
        schedule=None,
        tasks=(
            ("ingest_post", "@task", ("classify_post", "fetch_author_history")),
            ("classify_post", "@task", ("moderation_review",)),
            ("fetch_author_history", "@task", ("moderation_review",)),
            ("moderation_review", "HITLBranchOperator", ("apply_action",)),
            ("apply_action", "@task", ()),
        ),
        review="moderation_review",
        drafts=("classify_post", "fetch_author_history"),
        options=("Keep", "Remove", "Escalate to Trust & Safety"),
        default="Keep",
        outcomes=(0.55, 0.38, 0.07),
        weight=0.15,
        subjects=("Flagged post in #{product} by a {plan} user", "Possible spam: link to {customer}"),
        bodies=(
            "The classifier flagged a post in the {product} forum with score 0.{code}. The post links "
            "to an external site and mentions {customer}. The author joined {months} months ago.",
        ),
        drafts_text=(
            "Label: spam (confidence 0.{code}). The post repeats a promotional link to {customer} "
            "that appeared in {contacts} other posts this week. Suggested action: remove and warn.",
        ),
        reasons={
            "Keep": ("Legitimate question, the link is to official docs.", "False positive; keep."),
            "Remove": ("Same promotional link as the spam wave; removed.", "Clear spam, remove."),
            "Escalate to Trust & Safety": ("Possible coordinated campaign; needs T&S.",),
        },
    )
    deploy = Scenario(
        dag_id="deploy_gate",
        description="Production deploys wait for an approval after an AI risk summary of the change.",
        tags=("platform", "hitl"),
        owners=("platform",),
        schedule=None,
        tasks=(
            ("build", "@task", ("run_tests",)),
            ("run_tests", "@task", ("risk_summary",)),
            ("risk_summary", "@task", ("approve_deploy",)),
            ("approve_deploy", "ApprovalOperator", ("deploy",)),
            ("deploy", "BashOperator", ()),
        ),
        review="approve_deploy",
        drafts=("risk_summary",),
        options=("Approve", "Reject"),
        default="Reject",
        outcomes=(0.83, 0.17),
        weight=0.05,
        subjects=("Deploy {product} build {order} to production",),
        bodies=(
            "Build {order} of the {product} passed {contacts} test suites. The change touches "
            "{users} files, including a database migration.",
        ),
        drafts_text=(
            "Risk: medium. The change includes a migration on the {product} tables ({users} rows "
            "affected) and a config change to the {plan} plan limits. Rollback is possible within "
            "{hours} minutes. No open incidents.",
        ),
        reasons={
            "Approve": ("Migration is backwards compatible; go.", "Low risk, tested on staging."),
            "Reject": ("Friday evening and a migration: wait until Monday.",),
        },
    )
    return (support, refund, report, moderation, deploy)


SCENARIOS = _scenarios()
_CUMULATIVE = [sum(s.weight for s in SCENARIOS[: k + 1]) for k in range(len(SCENARIOS))]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class _Fill(dict[str, Any]):
    """Slot values for the text templates, drawn from one record's random stream."""

    def __init__(self, rng: random.Random, moment: datetime) -> None:
        super().__init__(
            customer=rng.choice(CUSTOMERS),
            product=rng.choice(PRODUCTS),
            plan=rng.choice(PLANS),
            code=rng.choice((401, 403, 409, 422, 429, 500, 502, 503, 504)),
            amount=rng.randrange(20, 4000),
            order=f"ORD-{rng.randrange(10**6, 10**7)}",
            months=rng.randrange(1, 96),
            contacts=rng.randrange(1, 12),
            users=rng.randrange(5, 5000),
            errors=rng.randrange(3, 900),
            days=rng.randrange(3, 60),
            hours=rng.randrange(1, 9),
            pct=rng.randrange(2, 40),
            week=moment.isocalendar().week,
            date=(moment - timedelta(days=rng.randrange(1, 10))).date().isoformat(),
            time=moment.strftime("%H:%M"),
            other=rng.choice(CUSTOMERS),
            nth=rng.choice(("second", "third", "fourth")),
        )


class History:
    """N synthetic decisions (one DAG run each) across the five scenarios; deterministic by seed."""

    def __init__(self, decisions: int, seed: int = 0) -> None:
        self.decisions = decisions
        self.seed = seed
        self.scenarios = SCENARIOS

    # --- time --------------------------------------------------------------------------------

    def created_at(self, i: int) -> datetime:
        return START + STEP * i + timedelta(milliseconds=(i * 7919 + self.seed) % 30_000)

    def now(self, visible: int | None = None) -> datetime:
        """The clock of the deployment once `visible` decisions exist (just after the last one)."""
        n = self.decisions if visible is None else visible
        return self.created_at(max(n - 1, 0)) + timedelta(minutes=2)

    def first_created_at_or_after(self, moment: datetime, visible: int) -> int:
        """Index of the first decision created at or after `moment` (bisection; created_at grows)."""
        return bisect.bisect_left(range(visible), moment, key=self.created_at)

    def run_updated_at(self, i: int) -> datetime:
        """When run i (and its task instances) last changed: its end, or its review if pending."""
        return self.created_at(i) + (RUN_TAIL if self._received(i) else timedelta(0))

    def first_updated_at_or_after(self, moment: datetime, visible: int) -> int:
        """Index of the first run that may have been updated at or after `moment` (a lower bound)."""
        return self.first_created_at_or_after(moment - RUN_TAIL, visible)

    # --- per decision ------------------------------------------------------------------------

    def _rng(self, i: int, salt: int = 0) -> random.Random:
        return random.Random((self.seed * 1_000_003 + i) * 31 + salt)

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - one History per benchmark, bounded cache
    def scenario(self, i: int) -> Scenario:
        u = self._rng(i, 1).random() * _CUMULATIVE[-1]
        return self.scenarios[bisect.bisect_left(_CUMULATIVE, u)]

    @functools.lru_cache(maxsize=8192)  # noqa: B019
    def run_id(self, i: int) -> str:
        kind = "scheduled" if self.scenario(i).schedule else "manual"
        return f"{kind}__{self.created_at(i) - RUN_LEAD:%Y-%m-%dT%H:%M:%S.%f}+00:00"

    @functools.lru_cache(maxsize=8192)  # noqa: B019
    def _received(self, i: int) -> bool:
        recent = self.created_at(i) >= self.now() - PENDING_WINDOW
        return not (recent and self._rng(i, 2).random() < 0.5)

    def _uuid(self, i: int, task: int) -> str:
        """A time-ordered id (UUID v7 layout), like Airflow's task instance ids."""
        millis = int((self.created_at(i) - RUN_LEAD).timestamp() * 1000)
        rand = (self.seed * 1_000_003 + i) * 8 + task
        return str(uuid.UUID(int=(millis << 80) | (0x7 << 76) | (0b10 << 62) | (rand & ((1 << 62) - 1))))

    # --- DAGs and tasks ----------------------------------------------------------------------

    def dags(self) -> list[dict[str, Any]]:
        return [self._dag(s) for s in sorted(self.scenarios, key=lambda s: s.dag_id)]

    def _dag(self, s: Scenario) -> dict[str, Any]:
        return dag_record(
            s.dag_id,
            description=s.description,
            schedule=s.schedule,
            timetable_description="Never, external triggers only" if s.schedule is None else s.schedule,
            tags=sorted(s.tags),
            owners=s.owners,
            parsed_at=_iso(START),
            parse_duration=0.41,
        )

    def tasks(self, dag_id: str) -> list[dict[str, Any]] | None:
        scenario = next((s for s in self.scenarios if s.dag_id == dag_id), None)
        if scenario is None:
            return None
        return [
            task_record(
                task_id,
                operator=operator,
                downstream=downstream,
                owner=scenario.owners[0],
                hitl=task_id == scenario.review,
                ui_color="#fff",
                template_fields=["subject", "body", "params"] if task_id == scenario.review else [],
                class_name=operator.lstrip("@"),
            )
            for task_id, operator, downstream in scenario.tasks
        ]

    # --- runs and task instances -------------------------------------------------------------

    def dag_run(self, i: int) -> dict[str, Any]:
        s = self.scenario(i)
        created = self.created_at(i)
        received = self._received(i)
        start = created - RUN_LEAD
        end = created + RUN_TAIL if received else None
        return {
            "dag_run_id": self.run_id(i),
            "dag_id": s.dag_id,
            "logical_date": _iso(start) if s.schedule else None,
            "queued_at": _iso(start - timedelta(seconds=2)),
            "start_date": _iso(start),
            "end_date": _iso(end) if end else None,
            "duration": (end - start).total_seconds() if end else None,
            "data_interval_start": _iso(start) if s.schedule else None,
            "data_interval_end": _iso(start) if s.schedule else None,
            "run_after": _iso(start),
            "last_scheduling_decision": _iso(end or created),
            "run_type": "scheduled" if s.schedule else "manual",
            "state": "success" if received else "running",
            "triggered_by": "timetable" if s.schedule else "rest_api",
            "triggering_user_name": None if s.schedule else "admin",
            "conf": {} if s.schedule else {"ticket_id": f"T-{100000 + i}", "source": "zendesk"},
            "note": None,
            "dag_versions": [dict(self._dag_version(s))],
            "bundle_version": None,
            "dag_display_name": s.dag_id,
            "partition_key": None,
            "partition_date": None,
        }

    @functools.lru_cache(maxsize=16)  # noqa: B019
    def _dag_version(self, s: Scenario) -> dict[str, Any]:
        return dag_version_record(s.dag_id, version_id=version_id(s.dag_id), created_at=_iso(START))

    def task_instance(self, i: int, k: int) -> dict[str, Any]:
        """Task k (topological order) of run i."""
        s = self.scenario(i)
        task_id, operator, _ = s.tasks[k]
        created = self.created_at(i)
        received = self._received(i)
        review_k = next(n for n, t in enumerate(s.tasks) if t[0] == s.review)
        start = created - RUN_LEAD + timedelta(seconds=18 * k)
        if k < review_k:
            state, end = "success", start + timedelta(seconds=12)
        elif k == review_k:
            state, end = (
                ("success", created + timedelta(minutes=10)) if received else ("awaiting_input", None)
            )
            start = created - timedelta(seconds=1)
        else:
            state, end = ("success", created + RUN_TAIL) if received else (None, None)
            start = created + timedelta(minutes=10, seconds=18 * (k - review_k)) if received else None
        return task_instance_record(
            self._uuid(i, k),
            task_id=task_id,
            dag_id=s.dag_id,
            run_id=self.run_id(i),
            logical_date=_iso(created - RUN_LEAD) if s.schedule else None,
            run_after=_iso(created - RUN_LEAD),
            started=start,
            ended=end,
            state=state,
            priority_weight=TASKS_PER_DAG - k,
            operator=operator.lstrip("@").replace("task", "_PythonDecoratedOperator"),
            operator_name=operator,
            pid=4000 + (i * 5 + k) % 60000 if start else None,
            dag_version=self._dag_version(s),
        )

    # --- HITL details and XComs --------------------------------------------------------------

    def hitl_detail(self, i: int) -> dict[str, Any]:
        s = self.scenario(i)
        rng = self._rng(i, 3)
        created = self.created_at(i)
        fill = _Fill(rng, created)
        review_k = next(n for n, t in enumerate(s.tasks) if t[0] == s.review)
        subject = rng.choice(s.subjects).format_map(fill)
        body = " ".join(
            [rng.choice(s.bodies).format_map(fill)]
            + [f.format_map(fill) for f in rng.sample(FILLER, rng.randrange(1, 6))]
        )
        assigned = [dict(zip(("id", "name"), r, strict=True)) for r in rng.sample(REVIEWERS, 2)]
        record: dict[str, Any] = {
            "options": list(s.options),
            "subject": subject,
            "body": body,
            "defaults": [s.default],
            "multiple": False,
            "params": {
                "reason": {
                    "value": "",
                    "description": "Why did you choose this option?",
                    "schema": {"type": "string", "minLength": 1},
                },
                "manual_response": {
                    "value": None,
                    "description": "Your own answer, if you do not use the AI's.",
                    "schema": {"type": ["null", "string"]},
                },
            },
            "assigned_users": assigned,
            "created_at": _iso(created),
            "responded_by_user": None,
            "responded_at": None,
            "chosen_options": None,
            "params_input": {},
            "response_received": False,
            "task_instance": self.task_instance(i, review_k),
        }
        if not self._received(i):
            return record
        timed_out = rng.random() < 0.05
        if timed_out:
            chosen, reason = s.default, None
        else:
            chosen = rng.choices(s.options, weights=s.outcomes)[0]
            reason = rng.choice(s.reasons[chosen]).format_map(fill)
            if rng.random() < 0.5:  # a longer reason: the reviewer explains the context too
                reason += " " + rng.choice(FILLER).format_map(fill)
        params_input: dict[str, Any] = {"reason": reason, "manual_response": None}
        if chosen in ("Respond Manually", "Request Changes"):
            params_input["manual_response"] = rng.choice(s.drafts_text).format_map(fill)[:400]
        reviewer = None if timed_out else rng.choice(REVIEWERS if rng.random() < 0.5 else REVIEWERS[:6])
        if reviewer and rng.random() < 0.1:  # answered in Slack through the bridge
            params_input["_contextgraph_reviewer"] = {
                "user_id": f"U0{int(reviewer[0][5:]) * 7919 % 10**8:08d}",
                "name": reviewer[1],
                "team": "T0CONTEXT",
            }
        record.update(
            responded_by_user={"id": reviewer[0], "name": reviewer[1]} if reviewer else None,
            responded_at=_iso(created + timedelta(seconds=rng.randrange(20, 3600))),
            chosen_options=[chosen],
            params_input=params_input if not timed_out else {},
            response_received=True,
        )
        return record

    def xcom(self, i: int, task_id: str) -> dict[str, Any] | None:
        """`GET …/xcomEntries/return_value` of one task of run i (None: no such XCom)."""
        s = self.scenario(i)
        if task_id not in s.drafts:
            return None
        rng = self._rng(i, 3)
        fill = _Fill(rng, self.created_at(i))  # the same slot values as the decision's texts
        text_rng = self._rng(i, 4 + s.drafts.index(task_id))
        draft = text_rng.choice(s.drafts_text).format_map(fill)
        if text_rng.random() < 0.6:
            draft += " " + " ".join(f.format_map(fill) for f in text_rng.sample(FILLER, 2))
        value = {
            "draft": draft,
            "model": text_rng.choice(("gpt-4o-mini", "claude-haiku", "template")),
            "confidence": round(text_rng.uniform(0.4, 0.99), 2),
            "ticket_id": f"T-{100000 + i}",
        }
        moment = self.created_at(i) - timedelta(seconds=5)
        return {
            "key": "return_value",
            "timestamp": _iso(moment),
            "logical_date": None,
            "map_index": -1,
            "task_id": task_id,
            "dag_id": s.dag_id,
            "run_id": self.run_id(i),
            "dag_display_name": s.dag_id,
            "task_display_name": task_id,
            "run_after": _iso(self.created_at(i) - RUN_LEAD),
            "value": value,
        }

    def run_index(self, run_id: str) -> int | None:
        """Index of the decision whose run has this id (inverse of `run_id`), or None."""
        try:
            moment = datetime.fromisoformat(run_id.split("__", 1)[1]) + RUN_LEAD
        except (IndexError, ValueError):
            return None
        guess = int((moment - START) / STEP)
        for i in (guess, guess - 1, guess + 1):
            if 0 <= i < self.decisions and self.run_id(i) == run_id:
                return i
        return None

    # --- streams -----------------------------------------------------------------------------

    def hitl_details(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        for i in range(start, self.decisions if stop is None else stop):
            yield self.hitl_detail(i)

    def dag_runs(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        for i in range(start, self.decisions if stop is None else stop):
            yield self.dag_run(i)

    def task_instances(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Task instances of runs start..stop, in id order (run, then task)."""
        for i in range(start, self.decisions if stop is None else stop):
            for k in range(TASKS_PER_DAG):
                yield self.task_instance(i, k)
