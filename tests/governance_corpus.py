"""Test data for governance: the demo's tickets with personal data planted in every free-text place.

`planted_scenario(n)` returns the demo scenario's raw Airflow records for `n` tickets with, per ticket,
a distinct e-mail address, phone number, Luhn-valid card number, IBAN and IP address written into the
HITL detail's subject, body, params, params_input (the reviewer's answer), the DAG run's conf and the
AI draft (XCom → proposal); plus look-alikes that must stay (order ids, amounts, dates, versions,
ticket numbers, a 16-digit order number that fails the Luhn check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stdnum import iban, luhn

from contextgraph import demo
from contextgraph.ingest.source.memory import MemorySource


@dataclass
class Planted:
    """What was planted: personal values (must vanish) and look-alikes (must stay)."""

    personal: dict[str, list[str]] = field(default_factory=dict)
    """kind → planted values."""
    lookalikes: list[str] = field(default_factory=list)

    def all_personal(self) -> list[str]:
        return [v for values in self.personal.values() for v in values]


def _card(i: int) -> str:
    stem = f"4539{i:011d}"
    digits = stem + luhn.calc_check_digit(stem)
    return " ".join(digits[j : j + 4] for j in range(0, 16, 4))


def _iban(i: int) -> str:
    bban = f"37040044{i:010d}"
    check = iban.calc_check_digits(f"DE00{bban}")
    return f"DE{check}{bban}"


def planted_scenario(n: int = 50) -> tuple[demo.Scenario, Planted]:
    """The demo scenario of `n` tickets with personal data and look-alikes planted (deterministic)."""
    records = demo.scenario(n)
    planted = Planted(personal={"email": [], "phone": [], "card": [], "iban": [], "ip": []})
    for i, detail in enumerate(records.hitl_details):
        email = f"customer.{i}@example-mail.org"
        phone = f"+44 20 7946 {i:04d}" if i % 2 else f"(212) 555-{1000 + i:04d}"
        card = _card(i)
        account = _iban(i)
        ip = f"203.0.{i}.{10 + i}"
        values = {"email": email, "phone": phone, "card": card, "iban": account, "ip": ip}
        for kind, value in values.items():
            planted.personal[kind].append(value)
        order = f"ORD-2026-{700000 + i}"
        number = 4000123412341234 + i * 10
        bad_luhn = str(number + 1 if luhn.is_valid(str(number)) else number)
        looks = [order, f"${1200 + i}.50", "2026-11-30", "v3.3.2", f"T-{9100 + i}", bad_luhn]
        planted.lookalikes += looks
        ti = detail["task_instance"]
        detail["subject"] += f" (from {email})"
        detail["body"] += (
            f"\n\nCall me on {phone}. Card {card}, refund to {account}. Seen from {ip}. "
            f"Order {order} of {looks[1]} on {looks[2]}, app {looks[3]}, ticket {looks[4]}, ref {bad_luhn}."
        )
        detail["params"]["reason"]["description"] += f" Questions: {email}"
        if detail["params_input"].get("reason"):
            detail["params_input"]["reason"] += f" Customer phone {phone}, card {card}."
        run = next(r for r in records.runs if r["dag_run_id"] == ti["dag_run_id"])
        run["conf"] = {**(run["conf"] or {}), "email": email, "iban": account, "client_ip": ip}
        xkey = (demo.DAG_ID, ti["dag_run_id"], demo.DRAFT_TASK)
        draft = dict(records.xcoms[xkey])
        draft["draft"] += f"\n\nWe will call you on {phone} and refund card {card}."
        records.xcoms[xkey] = draft
    return records, planted


OTHER_DAG = "finance_review"
SECRET = "SECRET-FINANCE-7731"
"""Planted in every decision of OTHER_DAG: must never reach an agent scoped to the demo DAG."""


def _renamed(value: object, dag_id: str) -> object:
    if isinstance(value, dict):
        return {k: dag_id if k == "dag_id" else _renamed(v, dag_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, dag_id) for v in value]
    return value


def other_dag_scenario(n: int = 20) -> demo.Scenario:
    """A second DAG like the demo's (same reviewers, so Actor nodes are shared) whose every
    decision, answer and proposal carries `SECRET`."""
    records = demo.scenario(n)
    out = demo.Scenario(
        dag=_renamed(records.dag, OTHER_DAG),  # type: ignore[arg-type]
        tasks=records.tasks,
        runs=_renamed(records.runs, OTHER_DAG),  # type: ignore[arg-type]
        task_instances=_renamed(records.task_instances, OTHER_DAG),  # type: ignore[arg-type]
        hitl_details=_renamed(records.hitl_details, OTHER_DAG),  # type: ignore[arg-type]
        xcoms={(OTHER_DAG, run, task): value for (_, run, task), value in records.xcoms.items()},
        kinds=records.kinds,
        server_time=records.server_time,
    )
    for detail in out.hitl_details:
        detail["subject"] = f"{SECRET} {detail['subject']}"
        if detail["params_input"].get("reason"):
            detail["params_input"]["reason"] += f" ({SECRET})"
    for key, value in out.xcoms.items():
        if isinstance(value, dict) and "draft" in value:
            out.xcoms[key] = {**value, "draft": f"{SECRET} {value['draft']}"}
    return out


def TwoDagSource(first: demo.Scenario, second: demo.Scenario) -> MemorySource:
    """The demo's source serving two scenarios (two DAGs)."""
    return MemorySource(
        dags=[first.dag, second.dag],
        tasks={first.dag["dag_id"]: first.tasks, second.dag["dag_id"]: second.tasks},
        dag_runs=first.runs + second.runs,
        task_instances=first.task_instances + second.task_instances,
        hitl_details=first.hitl_details + second.hitl_details,
        xcoms={**second.xcoms, **first.xcoms},
        url=demo.AIRFLOW_URL,
        server_time=first.server_time,
    )
