"""Past human decisions on support tickets, and new cases whose right precedents are known.

`CASES` are answered HITL reviews of an AI-drafted support answer (DAG `ai_support_ticket_system`,
decision point `review_response`) plus a few reviews at a second decision point (DAG
`weekly_customer_report`, task `approve_report`), across ten kinds of cases. `build_batch()` turns
them into the graph the ingest would write (decisions, runs, task instances, proposals, options,
reviewers, the DAG topology). `QUERIES` are new cases, each with the ids of the past decisions an
agent should be shown first. The tests build their graphs from them; `smoke_scores()` (and
`python -m bench.eval_precedents --smoke`) score the ranking with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from contextgraph import model as m
from contextgraph.ingest import mapping
from contextgraph.ingest.embeddings import Embedder, embed_pending
from contextgraph.retrieval.precedents import Mode, find_similar_decisions
from contextgraph.store import GraphStore

SUPPORT_DAG = "ai_support_ticket_system"
SUPPORT_POINT = "review_response"
REPORT_DAG = "weekly_customer_report"
REPORT_POINT = "approve_report"

APPROVE, MANUAL, ESCALATE = "Approve AI Response", "Respond Manually", "Escalate to CRE"
PUBLISH, CHANGES = "Publish", "Request Changes"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    subject: str
    body: str
    proposal: str
    chosen: str
    reason: str
    reviewer: str = "maria"
    dag_id: str = SUPPORT_DAG
    task_id: str = SUPPORT_POINT


def _c(
    id: str, kind: str, subject: str, body: str, proposal: str, chosen: str, reason: str, **kw: str
) -> Case:
    return Case(id, kind, subject, body, proposal, chosen, reason, **kw)


SEED = _c(
    "fr-dark-mode",
    "feature_request",
    "Feature request: dark mode for the dashboard",
    "Our analysts work late and the bright dashboard is tiring. Could you add a dark mode theme?",
    "Thanks for the suggestion! Dark mode is coming in the next release, expected next month.",
    MANUAL,
    "check the roadmap first: we never promise dates for features that are not on the roadmap",
)

CASES: list[Case] = [
    SEED,
    _c(
        "fr-csv-export",
        "feature_request",
        "Can we export audit logs to CSV?",
        "We need the audit log as a CSV file for our quarterly compliance review. Is that possible?",
        "You can export audit logs to CSV today: Settings > Audit > Export. We will also add Excel soon.",
        MANUAL,
        "CSV export exists but Excel is not planned; removed the promise and linked the docs",
    ),
    _c(
        "fr-sso-okta",
        "feature_request",
        "Support for Okta single sign-on",
        "Our IT department requires SSO through Okta for every vendor tool. When will you support it?",
        "Okta SSO will be available in Q3 for all plans.",
        MANUAL,
        "SSO is Enterprise only and Q3 is not confirmed; pointed them to sales instead of a date",
        reviewer="tom",
    ),
    _c(
        "fr-slack-notify",
        "feature_request",
        "Idea: send alerts to a Slack channel",
        "It would be great to get failure alerts in our Slack channel instead of email.",
        "Great idea! Slack alerts are already supported: connect Slack under Integrations > Alerts.",
        APPROVE,
        "feature already exists; the draft correctly points to the integration page",
    ),
    _c(
        "fr-custom-roles",
        "feature_request",
        "We want custom user roles and permissions",
        "The three built-in roles are too coarse. We would like to define our own roles with fine-grained "
        "permissions per project.",
        "Custom roles are on our roadmap and we will ship them this summer.",
        MANUAL,
        "roadmap item without a committed date: thanked them and logged the request for product",
    ),
    # billing: double charges, refunds, invoices
    _c(
        "bill-double-charge",
        "billing",
        "Charged twice for the March invoice",
        "Our credit card was charged twice for invoice INV-2291 this month. Please refund the duplicate.",
        "Sorry about that! I can see the duplicate payment for INV-2291; the refund is on its way and "
        "will appear in 5-7 business days.",
        APPROVE,
        "duplicate payment confirmed in Stripe, refund policy allows it: approve",
    ),
    _c(
        "bill-refund-annual",
        "billing",
        "Refund for unused months of annual plan",
        "We are cancelling and would like a refund for the remaining eight months of our annual plan.",
        "We have issued a pro-rated refund for the eight unused months.",
        ESCALATE,
        "annual plans are non-refundable by contract; only finance can grant an exception",
        reviewer="tom",
    ),
    _c(
        "bill-vat-invoice",
        "billing",
        "Invoice is missing our VAT number",
        "The invoices we receive do not show our EU VAT ID, so our accounting cannot book them.",
        "You can add your VAT ID under Billing > Company details; new invoices will include it.",
        APPROVE,
        "correct self-service answer",
    ),
    _c(
        "bill-price-increase",
        "billing",
        "Why did our bill go up this month?",
        "Our monthly bill is 40% higher than last month although we did not change anything.",
        "Prices increased on 1 March for all customers as announced.",
        MANUAL,
        "the increase came from extra seats they added, not a price change; explained the seat usage",
    ),
    _c(
        "bill-card-declined",
        "billing",
        "Payment failed, card declined",
        "We got an email that our payment failed. The card is valid. What should we do?",
        "Your card was declined by your bank. Please update the payment method under Billing.",
        APPROVE,
        "standard answer for a declined card",
    ),
    # outages and incidents
    _c(
        "inc-api-500",
        "incident",
        "API returns 500 errors for all requests",
        "Since 09:10 UTC every call to the REST API returns HTTP 500. Our production pipelines are down.",
        "Please retry later, this is probably a temporary network issue on your side.",
        ESCALATE,
        "production outage across customers: page the on-call CRE immediately, never blame the customer",
    ),
    _c(
        "inc-eu-latency",
        "incident",
        "Dashboard extremely slow in the EU region",
        "Pages take 30+ seconds to load for all our users in Frankfurt since this morning.",
        "Try clearing your browser cache and cookies.",
        ESCALATE,
        "regional degradation reported by several tenants; CRE must check the EU cluster",
    ),
    _c(
        "inc-data-missing",
        "incident",
        "Yesterday's data is missing from our reports",
        "The reports for yesterday are empty. The ingestion job shows success but no rows arrived.",
        "Your ingestion finished successfully, so the data should be there. Please check your filters.",
        ESCALATE,
        "possible silent data loss in ingestion: CRE has to investigate before we answer",
    ),
    _c(
        "inc-webhooks-down",
        "incident",
        "Webhooks stopped firing",
        "None of our webhooks have been delivered since last night; the endpoint is up and reachable.",
        "We have no known issues with webhooks. Please verify your endpoint configuration.",
        ESCALATE,
        "delivery queue backlog visible on the status page: CRE escalation",
        reviewer="tom",
    ),
    _c(
        "inc-login-outage",
        "incident",
        "Nobody in our company can log in",
        "All users get 'service unavailable' on the login page since 08:00.",
        "Please reset your password using the 'Forgot password' link.",
        ESCALATE,
        "authentication service outage, not a password problem: escalate to CRE",
    ),
    # account access
    _c(
        "acc-password-reset",
        "account_access",
        "Password reset email never arrives",
        "I requested a password reset three times but no email arrives, not even in spam.",
        "Please check your spam folder and allow emails from no-reply@example.com. If nothing arrives in "
        "15 minutes, reply and we will reset it manually.",
        APPROVE,
        "good answer with a fallback",
    ),
    _c(
        "acc-2fa-lost-phone",
        "account_access",
        "Lost my phone, cannot pass two-factor authentication",
        "My phone with the authenticator app was stolen and I cannot log in anymore.",
        "I have disabled two-factor authentication on your account, you can log in now.",
        MANUAL,
        "never disable 2FA without identity verification; asked for the recovery codes or an admin "
        "confirmation",
    ),
    _c(
        "acc-locked-out",
        "account_access",
        "Account locked after failed logins",
        "My account says it is locked after too many attempts. How long do I have to wait?",
        "The lock lifts automatically after 30 minutes, or your workspace admin can unlock you now.",
        APPROVE,
        "accurate",
    ),
    _c(
        "acc-owner-left",
        "account_access",
        "Workspace owner left the company",
        "The only admin of our workspace left and we cannot manage users anymore. Can you make me owner?",
        "Sure, I have made you the owner of the workspace.",
        ESCALATE,
        "ownership transfer needs a verified request from the customer's company; CRE handles it",
    ),
    # privacy and data deletion
    _c(
        "gdpr-delete",
        "privacy",
        "GDPR request: delete all my personal data",
        "Under GDPR article 17 I ask you to erase all personal data you hold about me.",
        "Your data has been deleted.",
        ESCALATE,
        "erasure requests go to the privacy team with the legal 30-day deadline; never claim deletion",
    ),
    _c(
        "gdpr-export",
        "privacy",
        "Request for a copy of my data",
        "Please send me a copy of all personal data you store about me (data subject access request).",
        "You can download your data under Profile > Privacy > Download my data.",
        APPROVE,
        "self-service export covers the access request",
    ),
    _c(
        "gdpr-dpa",
        "privacy",
        "We need a signed data processing agreement",
        "Our legal team needs a signed DPA before we can continue the rollout.",
        "Here is our standard DPA, signed: https://example.com/dpa.pdf",
        MANUAL,
        "the DPA must be countersigned by legal for their entity; sent the request form instead",
    ),
    _c(
        "gdpr-data-residency",
        "privacy",
        "Is our data stored inside the EU?",
        "Our compliance officer asks where our data is hosted and whether it leaves the EU.",
        "All data is stored in Frankfurt and never leaves the EU.",
        MANUAL,
        "backups replicate to Dublin and support tooling is US-based; gave the accurate sub-processor list",
    ),
    # bugs
    _c(
        "bug-chart-export",
        "bug",
        "Exporting a chart to PNG produces a blank image",
        "When I export any chart as PNG the downloaded file is completely white.",
        "This is a known bug in Safari; please use Chrome until the fix ships next week.",
        MANUAL,
        "the bug affects all browsers; removed the wrong workaround and linked the tracking issue",
    ),
    _c(
        "bug-timezone",
        "bug",
        "Scheduled reports arrive at the wrong hour",
        "Since the daylight saving change our scheduled report arrives an hour late.",
        "This is a known daylight saving time bug; as a workaround, set the schedule in UTC.",
        APPROVE,
        "correct workaround for the DST issue",
    ),
    _c(
        "bug-mobile-crash",
        "bug",
        "Android app crashes on startup",
        "After updating to version 4.2 the Android app crashes immediately when opened.",
        "Please reinstall the app.",
        ESCALATE,
        "crash on startup after release 4.2 for many users: CRE must consider a rollback",
        reviewer="tom",
    ),
    _c(
        "bug-filter-reset",
        "bug",
        "Table filters reset when I switch tabs",
        "Every time I switch between tabs the filters on the table are lost.",
        "Thanks for reporting! This is a known issue and our engineers are working on it.",
        APPROVE,
        "known issue, honest answer",
    ),
    # performance
    _c(
        "perf-slow-query",
        "performance",
        "Dashboards take a minute to load",
        "Our main dashboard with 20 widgets takes about a minute to load every morning.",
        "Split the dashboard into smaller ones and enable widget caching under Settings > Performance.",
        APPROVE,
        "right advice for large dashboards",
    ),
    _c(
        "perf-pipeline-slow",
        "performance",
        "Our sync jobs got three times slower",
        "The nightly sync that used to take 20 minutes now takes an hour, with the same data volume.",
        "Upgrade to the Enterprise plan for faster syncs.",
        MANUAL,
        "upselling is not an answer to a regression; asked for job ids to investigate",
    ),
    _c(
        "perf-rate-limit",
        "performance",
        "Getting HTTP 429 Too Many Requests",
        "Our integration hits 429 errors from your API during the nightly batch.",
        "You are exceeding 100 requests per second; add exponential backoff or batch your calls.",
        APPROVE,
        "correct limit and advice",
    ),
    _c(
        "perf-quota-increase",
        "performance",
        "Can you raise our API rate limit?",
        "We need 500 requests per second for a migration next week. Can the limit be raised temporarily?",
        "I have raised your rate limit to 500 requests per second.",
        ESCALATE,
        "support cannot change rate limits; CRE approves temporary quota increases",
    ),
    # pricing and plans
    _c(
        "price-nonprofit",
        "pricing",
        "Do you offer a discount for non-profits?",
        "We are a registered charity. Is there a non-profit discount?",
        "Yes, registered non-profits get 50% off; reply with your registration certificate.",
        APPROVE,
        "matches the current discount policy",
    ),
    _c(
        "price-enterprise-quote",
        "pricing",
        "Quote for 500 seats",
        "We are evaluating a rollout to 500 users. What would the price be?",
        "500 seats on the Business plan cost $25,000 per month.",
        MANUAL,
        "large deals need a custom quote from sales; introduced the account executive",
    ),
    _c(
        "price-downgrade",
        "pricing",
        "How do we downgrade to the starter plan?",
        "We no longer need the advanced features. How can we move to the cheaper plan?",
        "You can downgrade under Billing > Plan; the change applies at the end of the billing period.",
        APPROVE,
        "correct",
    ),
    _c(
        "price-trial-extension",
        "pricing",
        "Can we extend our free trial?",
        "Our evaluation took longer than planned; could we get two more weeks of trial?",
        "I have extended your trial by 14 days.",
        APPROVE,
        "one extension per customer is allowed",
    ),
    # security reports
    _c(
        "sec-vuln-report",
        "security",
        "Possible XSS vulnerability in the comments field",
        "I found that HTML in comments is rendered unescaped; I can run scripts in other users' browsers.",
        "Thanks! Our team will look into it.",
        ESCALATE,
        "security report: route to the security team under the disclosure policy, acknowledge within 24h",
    ),
    _c(
        "sec-phishing",
        "security",
        "Suspicious email pretending to be you",
        "We received an email asking us to re-enter our credentials on a strange domain. Is it from you?",
        "That email is not from us; do not click the link. Forward it to security@example.com.",
        APPROVE,
        "correct phishing guidance",
    ),
    _c(
        "sec-leaked-key",
        "security",
        "We accidentally pushed our API key to GitHub",
        "One of our developers committed an API key to a public repository an hour ago.",
        "Rotate the key under Settings > API keys; the old key stops working immediately.",
        APPROVE,
        "right first step; rotation is self-service",
    ),
    _c(
        "sec-pentest",
        "security",
        "Permission to run a penetration test",
        "Our security team wants to run a penetration test against our tenant next month.",
        "Sure, go ahead.",
        MANUAL,
        "pentests need the signed testing agreement and a scheduled window; sent the form",
    ),
    # integrations and how-to
    _c(
        "int-snowflake",
        "integration",
        "How to connect Snowflake as a source",
        "Which permissions does the Snowflake connector need? Our admin wants a minimal role.",
        "Grant USAGE on the warehouse and database and SELECT on the schemas you want to sync.",
        APPROVE,
        "matches the connector docs",
    ),
    _c(
        "int-python-sdk",
        "integration",
        "Python SDK raises ImportError",
        "After pip install our Python SDK fails with ImportError: cannot import name Client.",
        "The Client class was renamed to ApiClient in version 3.0; update your imports.",
        APPROVE,
        "correct, breaking change documented in the changelog",
    ),
    _c(
        "int-webhook-signature",
        "integration",
        "How do we verify webhook signatures?",
        "We want to make sure webhook calls really come from you. How is the signature computed?",
        "Each webhook carries an X-Signature header: HMAC-SHA256 of the body with your signing secret.",
        APPROVE,
        "accurate",
    ),
    _c(
        "int-salesforce",
        "integration",
        "Salesforce sync duplicates contacts",
        "Every sync creates duplicate contacts in Salesforce instead of updating the existing ones.",
        "Set the external id field mapping to Email so that existing contacts are matched and updated.",
        MANUAL,
        "email is not unique in their org; recommended their own external id field instead",
    ),
    # second decision point: weekly customer report approvals
    _c(
        "rep-churn-spike",
        "report",
        "Weekly report: churn up 4 points in SMB segment",
        "Draft weekly customer report for the leadership meeting.",
        "Churn rose to 9% in SMB this week, driven by the price increase.",
        CHANGES,
        "the churn cause is not established; remove the claim about the price increase",
        dag_id=REPORT_DAG,
        task_id=REPORT_POINT,
        reviewer="lena",
    ),
    _c(
        "rep-nps",
        "report",
        "Weekly report: NPS steady at 41",
        "Draft weekly customer report for the leadership meeting.",
        "NPS is steady at 41; detractors mention onboarding.",
        PUBLISH,
        "numbers match the survey export",
        dag_id=REPORT_DAG,
        task_id=REPORT_POINT,
        reviewer="lena",
    ),
    _c(
        "rep-feature-asks",
        "report",
        "Weekly report: top feature requests",
        "Draft weekly customer report: most requested features this week.",
        "Top asks: dark mode, SSO, custom roles. Dark mode ships next month.",
        CHANGES,
        "do not announce roadmap dates in the report; check the roadmap first",
        dag_id=REPORT_DAG,
        task_id=REPORT_POINT,
        reviewer="lena",
    ),
    _c(
        "rep-incidents",
        "report",
        "Weekly report: two incidents, both resolved",
        "Draft weekly customer report: incidents and their customer impact.",
        "Two incidents (API 500s, EU latency) were resolved within an hour.",
        PUBLISH,
        "incident summary agreed with CRE",
        dag_id=REPORT_DAG,
        task_id=REPORT_POINT,
        reviewer="lena",
    ),
]

CASE_BY_ID = {c.id: c for c in CASES}
assert len(CASE_BY_ID) == len(CASES), "case ids must be unique"
#: The seed case (dark mode: "check the roadmap first") among unrelated decisions: every case but
#: the other feature requests.
SEED_AND_UNRELATED = [SEED, *(x for x in CASES if x.kind != "feature_request" and x.id != "rep-feature-asks")]


@dataclass(frozen=True)
class Query:
    """A new case and the past decisions an agent should see first (most fitting first)."""

    text: str
    relevant: tuple[str, ...]
    point: tuple[str, str] | None = (SUPPORT_DAG, SUPPORT_POINT)


# The seed case: a later feature request must find the dark-mode decision and its reason.
SEED_QUERY = "Feature request: more granular cost attribution"

QUERIES: list[Query] = [
    Query("Would love a night theme for the web app, the white background hurts my eyes", ("fr-dark-mode",)),
    Query("Please add an option to download the activity log as a spreadsheet file", ("fr-csv-export",)),
    Query(
        "Do you integrate with Azure AD for SAML login? Our policy requires single sign-on", ("fr-sso-okta",)
    ),
    Query("Could we define our own permission sets instead of admin/editor/viewer?", ("fr-custom-roles",)),
    Query("My company card shows the same payment two times for one invoice", ("bill-double-charge",)),
    Query(
        "We cancel our yearly subscription and want the money back for the rest of the year",
        ("bill-refund-annual",),
    ),
    Query(
        "Accounting rejects your invoices because our tax ID is not printed on them", ("bill-vat-invoice",)
    ),
    Query(
        "Everything is failing with internal server errors from your REST endpoints, production is down",
        ("inc-api-500",),
    ),
    Query("No one can sign in, the login page says the service is unavailable", ("inc-login-outage",)),
    Query(
        "The numbers for yesterday are empty although the import job reported success", ("inc-data-missing",)
    ),
    Query(
        "I got a new phone and my authenticator codes are gone, I cannot get past 2FA",
        ("acc-2fa-lost-phone",),
    ),
    Query("Our admin quit and nobody has owner rights on the workspace anymore", ("acc-owner-left",)),
    Query(
        "Right to erasure: remove every piece of personal information about me from your systems",
        ("gdpr-delete",),
    ),
    Query(
        "Where is our data hosted, does anything get transferred outside the European Union?",
        ("gdpr-data-residency",),
    ),
    Query("Downloading a graph as an image gives me an empty white picture", ("bug-chart-export",)),
    Query("After the clocks changed the scheduled email comes one hour too late", ("bug-timezone",)),
    Query("New version 4.2 of the Android app closes immediately after launch", ("bug-mobile-crash",)),
    Query("Nightly sync became much slower than before with no change in data size", ("perf-pipeline-slow",)),
    Query("We need a temporarily higher API request quota for a data migration", ("perf-quota-increase",)),
    Query("Is there special pricing for charities?", ("price-nonprofit",)),
    Query("What would 800 licences cost us? We plan a company-wide rollout", ("price-enterprise-quote",)),
    Query("A researcher reports script injection through the comments field", ("sec-vuln-report",)),
    Query("Our developer leaked an API token in a public git repo", ("sec-leaked-key",)),
    Query("Minimum grants needed for the Snowflake connector role?", ("int-snowflake",)),
    Query("ImportError: cannot import name 'Client' after upgrading the python package", ("int-python-sdk",)),
    Query("Salesforce integration keeps creating duplicate contact records", ("int-salesforce",)),
    Query(
        "Weekly report draft says churn rose because of pricing",
        ("rep-churn-spike",),
        point=(REPORT_DAG, REPORT_POINT),
    ),
]


# --- building the graph -------------------------------------------------------------------------

SUPPORT_TASKS = ("fetch_ticket", "draft_response", SUPPORT_POINT, "send_response", "escalate_to_cre")
REPORT_TASKS = ("collect_metrics", "draft_report", REPORT_POINT, "publish_report")


def decision_key(case: Case, index: int) -> str:
    return m.Decision(dag_id=case.dag_id, run_id=run_id(index), task_id=case.task_id).key


def run_id(index: int) -> str:
    return f"scheduled__{(START + timedelta(hours=index)).isoformat()}"


def build_batch(
    cases: list[Case] | None = None, *, start_index: int = 0
) -> tuple[m.GraphBatch, dict[str, str]]:
    """The graph of these cases (all of CASES by default) and each case id's decision key."""
    cases = CASES if cases is None else cases
    batch = m.GraphBatch()
    keys: dict[str, str] = {}
    _topology(batch, SUPPORT_DAG, SUPPORT_TASKS, (APPROVE, MANUAL, ESCALATE))
    _topology(batch, REPORT_DAG, REPORT_TASKS, (PUBLISH, CHANGES))
    for offset, case in enumerate(cases):
        index = start_index + offset
        keys[case.id] = _add_case(batch, case, index)
    return batch, keys


def _topology(batch: m.GraphBatch, dag_id: str, tasks: tuple[str, ...], options: tuple[str, ...]) -> None:
    dag = m.Dag(dag_id=dag_id, tags=["hitl"], owners=["cre"])
    nodes = {
        t: m.Task(dag_id=dag_id, task_id=t, is_decision_point=t in (SUPPORT_POINT, REPORT_POINT))
        for t in tasks
    }
    batch.add(dag, *nodes.values(), *(m.HasTask.between(dag, n) for n in nodes.values()))
    chain = tasks[:3]
    for a, b in pairwise(chain):
        batch.add(m.Feeds.between(nodes[a], nodes[b]))
    for after in tasks[3:]:
        batch.add(m.Feeds.between(nodes[tasks[2]], nodes[after]))
    batch.add(*(m.Option(dag_id=dag_id, task_id=tasks[2], name=o) for o in options))


def _add_case(batch: m.GraphBatch, case: Case, index: int) -> str:
    support = case.dag_id == SUPPORT_DAG
    tasks = SUPPORT_TASKS if support else REPORT_TASKS
    offered = [APPROVE, MANUAL, ESCALATE] if support else [PUBLISH, CHANGES]
    created = START + timedelta(hours=index)
    responded = created + timedelta(minutes=20 + index % 40)
    run = m.DagRun(dag_id=case.dag_id, run_id=run_id(index), state="success", logical_date=created)
    dag = m.Dag(dag_id=case.dag_id, tags=["hitl"], owners=["cre"])
    batch.add(run, m.HasRun.between(dag, run))
    drafted_by = tasks[1]
    proposal = m.Proposal(dag_id=case.dag_id, run_id=run.run_id, task_id=drafted_by, text=case.proposal)
    instances = {}
    for position, task_id in enumerate(tasks):
        followed = position < 3 or _follows(case, task_id)
        ti = m.TaskInstance(
            dag_id=case.dag_id,
            run_id=run.run_id,
            task_id=task_id,
            try_number=1,
            state="success" if followed else "skipped",
            start_date=created + timedelta(minutes=position) if position < 3 else responded,
            end_date=(created + timedelta(minutes=position + 1)) if position < 2 else responded,
        )
        instances[task_id] = ti
        batch.add(
            ti, m.HasInstance.between(run, ti), m.OfTask(src=ti.key, dst=_task_key(case.dag_id, task_id))
        )
    decision = m.Decision(
        dag_id=case.dag_id,
        run_id=run.run_id,
        task_id=case.task_id,
        try_number=1,
        subject=case.subject,
        body=case.body,
        offered=offered,
        chosen_options=[case.chosen],
        params_input={"reason": case.reason},
        reason=case.reason,
        responded_by=case.reviewer,
        created_at=created,
        responded_at=responded,
        response_received=True,
        upstream_task_ids=list(tasks[:2]),
        search_text=mapping.search_text(case.subject, case.body, [case.proposal], [case.chosen], case.reason),
    )
    reviewer = m.Actor(kind="airflow_user", actor_id=case.reviewer, name=case.reviewer.title())
    batch.add(
        decision,
        proposal,
        reviewer,
        m.Asked.between(instances[case.task_id], decision),
        m.AtPoint(src=decision.key, dst=_task_key(case.dag_id, case.task_id)),
        m.DecidedBy.between(decision, reviewer),
        m.Reviewed.between(decision, proposal, verdict=mapping.verdict([case.chosen], True)),
        m.ProducedBy.between(proposal, instances[drafted_by]),
    )
    for name in offered:
        option = m.Option(dag_id=case.dag_id, task_id=case.task_id, name=name)
        batch.add(m.Offered.between(decision, option))
        if name == case.chosen:
            batch.add(m.Chose.between(decision, option))
    return decision.key


def _follows(case: Case, task_id: str) -> bool:
    if task_id == "escalate_to_cre":
        return case.chosen == ESCALATE
    if task_id == "send_response":
        return case.chosen != ESCALATE
    return case.chosen == PUBLISH


def _task_key(dag_id: str, task_id: str) -> str:
    return m.Task(dag_id=dag_id, task_id=task_id).key


def write_cases(store: GraphStore, embedder: Embedder, cases: list[Case] | None = None) -> dict[str, str]:
    """The graph of ``cases`` (all of CASES by default) written to ``store`` and embedded, as
    ``contextgraph ingest`` leaves it (the embedding pass also writes the situation text the word
    indexes cover); each case id's decision key."""
    batch, keys = build_batch(cases)
    store.write(batch)
    embed_pending(store, embedder)
    return keys


def write_pending(store: GraphStore, subject: str, body: str) -> m.Decision:
    """``pending_case(subject, body)`` written to ``store`` (not embedded)."""
    waiting = pending_case(subject, body)
    batch = m.GraphBatch()
    batch.add(waiting)
    store.write(batch)
    return waiting


def pending_case(subject: str, body: str, index: int = 10_000) -> m.Decision:
    """A decision still waiting for a human (never a precedent)."""
    return m.Decision(
        dag_id=SUPPORT_DAG,
        run_id=run_id(index),
        task_id=SUPPORT_POINT,
        subject=subject,
        body=body,
        offered=[APPROVE, MANUAL, ESCALATE],
        created_at=START + timedelta(hours=index),
        search_text=mapping.search_text(subject, body, [], [], None),
    )


@dataclass(frozen=True)
class Scores:
    """Ranking quality over `QUERIES`: rates in 0..1 of the first relevant result's rank."""

    hit_at_1: float
    hit_at_3: float
    mrr: float


def smoke_scores(store: GraphStore, embedder: Embedder, k: int = 10) -> dict[str, Scores]:
    """Write and embed `CASES` into an empty `store`, ask every query of `QUERIES` (`k` results)
    in each ranking mode; returns mode ("hybrid", "vector", "text") -> scores (bench.eval_precedents
    --smoke reports the same figures, with nDCG and timings)."""
    keys = write_cases(store, embedder)
    by_key = {key: case_id for case_id, key in keys.items()}
    modes: tuple[Mode, ...] = ("hybrid", "vector", "text")
    scores: dict[str, Scores] = {}
    for mode in modes:
        ranks = []
        for query in QUERIES:
            found = find_similar_decisions(store, embedder, query.text, k=k, point=query.point, mode=mode)
            ids = [by_key.get(p.key, p.key) for p in found]
            ranks.append(next((i for i, id in enumerate(ids, start=1) if id in query.relevant), None))
        n = len(ranks)
        scores[mode] = Scores(
            round(sum(r == 1 for r in ranks) / n, 3),
            round(sum(r is not None and r <= 3 for r in ranks) / n, 3),
            round(sum(1 / r for r in ranks if r) / n, 3),
        )
    return scores
