"""The Slack review bridge: HITL reviews posted to Slack and answered there, never in Airflow.

* `SlackReviewNotifier` (``notifiers=`` of a HITLOperator) posts the review with a button per option;
* `create_app` / ``contextgraph slack serve`` receives the clicks and form submissions and answers the
  HITL task through the Airflow REST API, keeping the Slack reviewer in ``_contextgraph_reviewer``;
* `SlackHITLOperator` is the HITLOperator that accepts that key (see `contextgraph.slack.operator`).

The notifier and the operator need Airflow and are imported on first use, so this package (and the
app) import without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contextgraph.slack.config import SlackSettings

if TYPE_CHECKING:
    from contextgraph.slack.app import SlackBridge, create_app
    from contextgraph.slack.notifier import SlackReviewNotifier, slack_notifiers
    from contextgraph.slack.operator import SlackHITLOperator, reviewer_param

__all__ = [
    "SlackBridge",
    "SlackHITLOperator",
    "SlackReviewNotifier",
    "SlackSettings",
    "create_app",
    "reviewer_param",
    "slack_notifiers",
]

_LAZY = {
    "SlackBridge": "contextgraph.slack.app",
    "create_app": "contextgraph.slack.app",
    "SlackReviewNotifier": "contextgraph.slack.notifier",
    "slack_notifiers": "contextgraph.slack.notifier",
    "SlackHITLOperator": "contextgraph.slack.operator",
    "reviewer_param": "contextgraph.slack.operator",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'contextgraph.slack' has no attribute {name!r}")
