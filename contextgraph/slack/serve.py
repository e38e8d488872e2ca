"""``contextgraph slack serve``: the interaction endpoint on its own (uvicorn)."""

from __future__ import annotations

from pydantic import ValidationError

from contextgraph.errors import ConfigError
from contextgraph.slack.config import SlackSettings


def settings_from_env(airflow_url: str | None = None) -> SlackSettings:
    """The bridge's settings from the environment; `ConfigError` names a bad one (never its value)."""
    try:
        settings = SlackSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"invalid Slack setting {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None
    if airflow_url:
        settings = settings.model_copy(
            update={"airflow": settings.airflow.model_copy(update={"url": airflow_url})}
        )
    settings.require_signing_secret()
    settings.require_bot_token()
    return settings


def serve(host: str, port: int, *, airflow_url: str | None = None, debug: bool = False) -> None:
    """Serve until interrupted."""
    import uvicorn

    from contextgraph.slack.app import create_app

    app = create_app(settings_from_env(airflow_url))
    uvicorn.run(app, host=host, port=port, log_level="debug" if debug else "info", proxy_headers=True)
