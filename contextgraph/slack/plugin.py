"""Airflow 3 plugin: the Slack interaction endpoint inside Airflow's own API server.

Airflow 3 mounts each ``fastapi_apps`` entry of a plugin on its API server (``app.mount(url_prefix,
app)``), and any ASGI app can be mounted, so the bridge answers at
``https://<airflow-host>/slack/interactions`` with no server of its own. Registered through the
``airflow.plugins`` entry point of the ``contextgraph`` package; it mounts nothing unless
``SLACK_SIGNING_SECRET`` is set in the API server's environment (plus ``SLACK_BOT_TOKEN`` and the
``AIRFLOW_*`` service account the bridge answers with). Mounted apps get no lifespan events from
Airflow, so the bridge opens its clients on first use.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from airflow.plugins_manager import AirflowPlugin

logger = logging.getLogger(__name__)

URL_PREFIX = "/slack"


def _apps() -> list[dict[str, Any]]:
    if not os.environ.get("SLACK_SIGNING_SECRET"):
        return []
    try:
        from contextgraph.slack.app import create_app

        app = create_app(prefix="")
    except Exception as exc:  # a broken bridge must not take the API server down
        logger.error("contextgraph Slack bridge not mounted: %s", exc)
        return []
    return [{"app": app, "url_prefix": URL_PREFIX, "name": "contextgraph Slack review bridge"}]


class ContextGraphSlackPlugin(AirflowPlugin):
    name = "contextgraph_slack"
    fastapi_apps = _apps()
