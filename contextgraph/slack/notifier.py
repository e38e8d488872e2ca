"""`SlackReviewNotifier`: posts a HITL review request to Slack, with a button per option.

    HITLOperator(..., notifiers=[SlackReviewNotifier()])      # channel from CONTEXTGRAPH_SLACK_*

HITLOperator calls its notifiers with the task context right after it has written the request and
before it waits, so the message goes out exactly when the review can be answered. The settings (bot
token, channels, ``SLACK_API_URL``) are read from the worker's environment when the message is sent,
never stored in the DAG. A message that cannot be posted is logged and the review still waits in the
Airflow UI; pass ``fail_on_error=True`` to fail the task instead.

Needs Airflow (the notifier is a `BaseNotifier`); `contextgraph.slack` itself imports without it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from contextgraph.config import public_url
from contextgraph.slack.blocks import HITLRef, Review, review_message
from contextgraph.slack.config import SlackSettings, web_client
from contextgraph.slack.operator import accepts_reviewer

__all__ = ["SlackReviewNotifier", "post_review", "slack_notifiers"]

logger = logging.getLogger(__name__)


def post_review(
    review: Review, settings: SlackSettings, *, channel: str | None = None, ui_url: str | None = None
) -> dict[str, Any]:
    """Post the review message; returns Slack's answer (``channel`` id and ``ts``)."""
    target = channel or settings.channel_for(review.ref.dag_id, review.ref.task_id)
    message = review_message(review, ui_url or settings.ui_url)
    response = web_client(settings).chat_postMessage(channel=target, unfurl_links=False, **message)
    return dict(response.data) if isinstance(response.data, dict) else {}


def _airflow_ui_url(settings: SlackSettings) -> str:
    if settings.airflow_ui_url:
        return public_url(settings.airflow_ui_url)
    try:
        from airflow.providers.common.compat.sdk import conf

        base = conf.get("api", "base_url", fallback=None)
    except Exception:  # an unusual Airflow: fall back to AIRFLOW_URL
        base = None
    return public_url(str(base or settings.airflow.url))


def _timeout_note(task: Any) -> str | None:
    timeout = getattr(task, "response_timeout", None)
    if not timeout:
        return None
    deadline = int(time.time() + timeout.total_seconds())
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(deadline))
    return f"Unanswered by <!date^{deadline}^{{date_short_pretty}} {{time}}|{fallback}>: the default is taken"


class SlackReviewNotifier(BaseNotifier):
    """Posts the review of a HITLOperator to Slack (pass it in the operator's ``notifiers``).

    :param channel: channel for this operator (templated); default: ``CONTEXTGRAPH_SLACK_CHANNELS``
        for ``dag_id.task_id`` or ``dag_id``, then ``CONTEXTGRAPH_SLACK_DEFAULT_CHANNEL``.
    :param settings: explicit settings; default: read from the environment when posting.
    :param fail_on_error: fail the task when the message cannot be posted (default: log it).
    """

    template_fields = ("channel",)

    def __init__(
        self,
        channel: str | None = None,
        *,
        settings: SlackSettings | None = None,
        fail_on_error: bool = False,
    ) -> None:
        super().__init__()
        self.channel = channel
        self.settings = settings
        self.fail_on_error = fail_on_error

    def notify(self, context: Any) -> None:
        task, ti = context["task"], context["ti"]
        map_index = getattr(ti, "map_index", None)
        ref = HITLRef(ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else int(map_index))
        try:
            settings = self.settings or SlackSettings()
            review = Review(
                ref=ref,
                subject=str(task.subject or ""),
                body=task.body,
                options=list(task.options),
                multiple=bool(task.multiple),
                defaults=list(task.defaults or []) or None,
                timeout_note=_timeout_note(task),
                accepts_reviewer=accepts_reviewer(task),
            )
            posted = post_review(review, settings, channel=self.channel, ui_url=_airflow_ui_url(settings))
        except Exception as exc:
            if self.fail_on_error:
                raise
            # str(exc) of slack_sdk and our errors never holds the token.
            self.log.error("Slack review message for %s was not posted: %s", ref.label(), exc)
            return
        self.log.info(
            "Slack review message for %s posted to %s (ts %s)",
            ref.label(),
            posted.get("channel"),
            posted.get("ts"),
        )


def slack_notifiers(channel: str | None = None) -> list[BaseNotifier]:
    """``[SlackReviewNotifier(channel)]`` when Slack is configured (``SLACK_BOT_TOKEN``), else ``[]``.

    For DAGs that must also run where Slack is not set up.
    """
    if not os.environ.get("SLACK_BOT_TOKEN"):
        return []
    if importlib.util.find_spec("slack_sdk") is None:
        logger.warning("SLACK_BOT_TOKEN is set but slack-sdk is missing: pip install 'contextgraph[slack]'")
        return []
    return [SlackReviewNotifier(channel)]
