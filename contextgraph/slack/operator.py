"""`SlackHITLOperator`: Airflow's HITLOperator, accepting the Slack reviewer key in answers.

The bridge answers with Airflow credentials of its own (a service account), so Airflow records that
account as ``responded_by``. The person who clicked in Slack travels in ``params_input`` under the
reserved key ``_contextgraph_reviewer`` (``{"user_id", "name", "team"}``), which contextgraph's ingest
turns into ``(:Decision)-[:DECIDED_BY]->(:Actor {kind: "slack_user"})``.

A plain ``HITLOperator`` with params fails the task on resume when ``params_input`` carries a key it
did not declare (checked on Airflow 3.3.2: ``ValueError: params_input … does not match params``).
This subclass leaves that key out of the check and keeps everything else as Airflow does it. It
keeps the operator name ``HITLOperator`` so the Airflow UI and contextgraph treat it as one. The
alternative is declaring the key as a param (`reviewer_param`), but then every answer sent through
Airflow's API must carry it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param

from contextgraph.ingest.mapping import SLACK_IDENTITY_KEY

__all__ = ["SLACK_IDENTITY_KEY", "SlackHITLOperator", "accepts_reviewer", "reviewer_param"]


class SlackHITLOperator(HITLOperator):
    """A HITLOperator whose answers may carry the Slack reviewer (``_contextgraph_reviewer``)."""

    custom_operator_name = "HITLOperator"

    def validate_params_input(self, params_input: Mapping[str, Any]) -> None:
        if SLACK_IDENTITY_KEY in self.params:
            super().validate_params_input(params_input)
            return
        super().validate_params_input({k: v for k, v in params_input.items() if k != SLACK_IDENTITY_KEY})


def reviewer_param() -> Param:
    """The reserved key declared as an optional param, for DAGs that keep the plain HITLOperator."""
    return Param(
        None,
        type=["null", "object"],
        description="Filled in by the contextgraph Slack bridge: who answered in Slack. Leave empty.",
    )


def accepts_reviewer(task: Any) -> bool:
    """Whether an answer to `task` may carry the reserved reviewer key without failing the task."""
    params = getattr(task, "params", None) or {}
    return isinstance(task, SlackHITLOperator) or SLACK_IDENTITY_KEY in params or not params
