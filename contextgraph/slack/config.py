"""Settings of the Slack review bridge, from the environment (CLI flags override).

SLACK_BOT_TOKEN                     bot token (xoxb-…), scope ``chat:write``
SLACK_SIGNING_SECRET                the app's signing secret (verifies interactions)
SLACK_API_URL                       Web API base URL (default https://slack.com/api/)
CONTEXTGRAPH_SLACK_CHANNELS         JSON ``{"dag_id" or "dag_id.task_id": "#channel"}``
CONTEXTGRAPH_SLACK_DEFAULT_CHANNEL  channel of every other review
CONTEXTGRAPH_SLACK_AIRFLOW_UI_URL   Airflow UI address in links (default: Airflow's api.base_url,
                                    then AIRFLOW_URL)
AIRFLOW_URL, AIRFLOW_USERNAME, AIRFLOW_PASSWORD / AIRFLOW_TOKEN
                                    the service account that writes answers back to Airflow
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contextgraph.config import AirflowSettings, public_url
from contextgraph.errors import ConfigError

#: Slack refuses requests whose timestamp is further than this from now (replay protection).
MAX_REQUEST_AGE_SECONDS = 300
#: Larger interaction requests are refused (413) before they are read whole; Slack's own are far smaller.
MAX_BODY_BYTES = 1024 * 1024


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class SlackSettings(BaseSettings):
    """Everything the notifier and the interaction app need. Secrets are `SecretStr`."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    bot_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_BOT_TOKEN"))
    signing_secret: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    api_url: str = Field(default="https://slack.com/api/", validation_alias=_env("SLACK_API_URL"))
    channels: dict[str, str] = Field(default={}, validation_alias=_env("CONTEXTGRAPH_SLACK_CHANNELS"))
    """Channel per DAG (``"dag_id"``) or per decision point (``"dag_id.task_id"``, which wins)."""
    default_channel: str | None = Field(
        default=None, validation_alias=_env("CONTEXTGRAPH_SLACK_DEFAULT_CHANNEL")
    )
    airflow_ui_url: str | None = Field(
        default=None, validation_alias=_env("CONTEXTGRAPH_SLACK_AIRFLOW_UI_URL")
    )
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)

    def channel_for(self, dag_id: str, task_id: str) -> str:
        """The channel for a review of `dag_id.task_id`: task route, DAG route, default."""
        for key in (f"{dag_id}.{task_id}", dag_id):
            if self.channels.get(key):
                return self.channels[key]
        if self.default_channel:
            return self.default_channel
        raise ConfigError(
            f"no Slack channel for {dag_id}.{task_id}: set CONTEXTGRAPH_SLACK_DEFAULT_CHANNEL or add "
            f'"{dag_id}" to CONTEXTGRAPH_SLACK_CHANNELS'
        )

    def require_bot_token(self) -> str:
        if self.bot_token is None or not self.bot_token.get_secret_value():
            raise ConfigError("SLACK_BOT_TOKEN is not set: create a Slack app with chat:write (see README)")
        return self.bot_token.get_secret_value()

    def require_signing_secret(self) -> str:
        if self.signing_secret is None or not self.signing_secret.get_secret_value().strip():
            raise ConfigError(
                "SLACK_SIGNING_SECRET is not set: copy it from your Slack app's Basic Information page"
            )
        return self.signing_secret.get_secret_value()

    @property
    def ui_url(self) -> str:
        # Links are posted to Slack: never with a user:password@ part.
        return public_url((self.airflow_ui_url or self.airflow.url).rstrip("/"))


def web_client(settings: SlackSettings) -> Any:
    """A `slack_sdk.WebClient` for the bot, talking to ``SLACK_API_URL``."""
    from slack_sdk import WebClient

    base = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
    return WebClient(token=settings.require_bot_token(), base_url=base, timeout=10)
