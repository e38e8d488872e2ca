"""Bad records from the API: each one is ingested or rejected with its reason; the sync goes on.

The records are shaped like those a real Airflow 3.3 sends (see tests/test_ingest.py for the real
thing), served by an in-memory source so that they can be broken on purpose.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from contextgraph.errors import InvalidRecordError
from contextgraph.ingest import mapping
from contextgraph.ingest.sync import Sync
from contextgraph.store import GraphStore

from .builders import ListSource, detail

SURROGATE = "bad \ud800 half"
HUGE = "x" * 1_000_000

BAD = {
    "params_input not an object": (detail("r-params", params_input="approve it"), "params_input"),
    "chosen option not offered": (detail("r-chosen", chosen_options=["Refund twice"]), "chosen_options"),
    "missing task_instance": (
        {k: v for k, v in detail("r-missing").items() if k != "task_instance"},
        "task_instance",
    ),
    "options not a list": (detail("r-options", options="Approve"), "options"),
    "not a date": (detail("r-date", created_at="yesterday-ish"), "created_at"),
    "not an object at all": (["a", "list"], "(record)"),
}
GOOD = {
    "r-huge": detail("r-huge", body=HUGE),
    "r-emoji": detail("r-emoji", subject="Refund 💸 please 🙏", params_input={"reason": "👍 ok"}),
    "r-surrogate": detail("r-surrogate", subject=SURROGATE, params_input={"reason": SURROGATE}),
    "r-plain": detail("r-plain"),
}


def test_each_bad_record_is_rejected_with_its_reason_and_the_rest_is_ingested(store: GraphStore) -> None:
    records = [record for record, _ in BAD.values()] + list(GOOD.values())
    report = Sync(ListSource(records), store).run()

    rejected = {(r.field, r.record) for r in report.rejected}
    assert len(report.rejected) == len(BAD), report.rejected
    for _, field in BAD.values():
        assert any(f == field for f, _ in rejected), (field, rejected)
    assert any("r-params" in name for _, name in rejected)
    assert all(r.reason for r in report.rejected)

    got = {
        r["run"]: r
        for r in store.query(
            "MATCH (d:Decision) "
            "RETURN d.run_id AS run, d.subject AS subject, d.body AS body, d.reason AS reason"
        )
    }
    assert set(got) == set(GOOD)
    assert len(got["r-huge"]["body"]) == 1_000_000
    assert got["r-emoji"]["subject"] == "Refund 💸 please 🙏" and got["r-emoji"]["reason"] == "👍 ok"
    assert got["r-surrogate"]["subject"] == "bad \ufffd half"


def test_an_integer_beyond_64_bits_is_rejected_naming_its_field(store: GraphStore) -> None:
    """Both engines store 64-bit integers: a larger map_index failed the whole page's write."""
    big = detail("r-big")
    big["task_instance"] = {**big["task_instance"], "map_index": 2**63}
    report = Sync(ListSource([big, detail("r-plain")]), store).run()
    decisions = [r for r in report.rejected if r.record.startswith("HITL detail")]
    assert [r.field for r in decisions] == ["map_index"]
    assert "9223372036854775807" in decisions[0].reason
    assert store.query("MATCH (d:Decision) RETURN d.run_id AS run") == [{"run": "r-plain"}]


def _nested(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


def test_a_value_nested_too_deeply_is_rejected_not_a_crash() -> None:
    deep = _nested(5_000)
    with pytest.raises(InvalidRecordError, match="nested too deeply"):
        mapping.map_decision(detail("r-deep", params_input={"reason": "ok", "extra": deep}), upstream=[])
    with pytest.raises(InvalidRecordError, match="nested too deeply"):
        mapping.map_dag_run({"dag_id": "support", "dag_run_id": "r-deep", "conf": {"x": deep}})
    shallow = {"dag_id": "support", "dag_run_id": "r-ok", "conf": {"x": _nested(50)}}
    assert mapping.map_dag_run(shallow).nodes  # nesting an ordinary conf has is kept


def test_a_sync_of_the_same_bad_input_again_writes_nothing_and_reports_again(store: GraphStore) -> None:
    records = [record for record, _ in BAD.values()] + list(GOOD.values())
    Sync(ListSource(records), store).run()
    again = Sync(ListSource(records), store).run()
    assert again.written == 0
    assert len(again.rejected) == len(BAD)


@pytest.mark.parametrize(
    ("chosen", "received", "verdict"),
    [
        (["Approve AI Response"], True, "approved"),
        (["Respond Manually"], True, "overridden"),
        (["Escalate to CRE"], True, "escalated"),
        (["Reject"], True, "overridden"),
        (["Notify legal"], True, "unknown"),
        ([], False, "pending"),
    ],
)
def test_verdict_reads_the_chosen_option(chosen: list[str], received: bool, verdict: str) -> None:
    assert mapping.verdict(chosen, received) == verdict


def test_upstream_context_is_transitive_and_nearest_first() -> None:
    shape = mapping.DagShape.from_edges("d", {"a": ["b"], "b": ["c"], "x": ["c"], "c": ["d"]})
    assert shape.upstream("c") == ["b", "x", "a"]
    assert shape.parents("c") == ["b", "x"]
    assert shape.upstream("a") == []


class RetriedSource(ListSource):
    """A HITL task on its second try; the server keeps the first try's answer."""

    def __init__(self) -> None:
        second = detail("r-retry", params_input={"reason": "Second look: approve."})
        second["task_instance"]["try_number"] = 2
        super().__init__([second])
        self.first = detail("r-retry", chosen_options=["Escalate to CRE"], params_input={"reason": "Unsure."})
        self.first["task_instance"] = {"try_number": 1}  # the per-try answer carries little of the TI
        self.try_calls = 0

    def hitl_detail_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any]:
        self.calls += 1
        self.try_calls += 1
        if try_number == 1:
            return copy.deepcopy(self.first)
        return super().hitl_detail_try(dag_id, run_id, task_id, try_number, map_index)


def test_earlier_tries_of_a_retried_hitl_task_are_ingested_once(store: GraphStore) -> None:
    source = RetriedSource()
    Sync(source, store).run()
    rows = store.query(
        "MATCH (ti:TaskInstance)-[:ASKED]->(d:Decision) WHERE d.run_id = 'r-retry' "
        "RETURN d.try_number AS try, d.chosen_options AS chosen, d.reason AS reason ORDER BY d.try_number"
    )
    assert rows == [
        {"try": 1, "chosen": ["Escalate to CRE"], "reason": "Unsure."},
        {"try": 2, "chosen": ["Approve AI Response"], "reason": "Second look: approve."},
    ]
    again = RetriedSource()
    report = Sync(again, store).run()
    assert again.try_calls == 0 and report.written == 0


def test_records_of_one_page_that_describe_a_node_differently_do_not_stop_the_sync(
    store: GraphStore,
) -> None:
    """A reviewer renamed between two answers, the same user given once by id only, an assignee
    listed without a name: the later record's values win, nothing is rejected or lost (this
    stopped the whole sync, every time, with "two records in one batch have the same key")."""
    records = [
        detail("r-first", created_at="2026-11-20T09:00:00Z", responded_by_user={"id": "ana", "name": "Ana"}),
        detail("r-id-only", created_at="2026-11-20T10:00:00Z", responded_by_user={"id": "ana"}),
        detail("r-string", created_at="2026-11-20T10:30:00Z", responded_by_user="ana"),
        detail(
            "r-renamed",
            created_at="2026-11-20T11:00:00Z",
            responded_by_user={"id": "ana", "name": "Ana García"},
            assigned_users=[{"id": "ben", "name": "Ben"}, {"id": "ana", "name": "ana"}],
        ),
        detail(
            "r-late",
            created_at="2026-11-20T12:00:00Z",
            assigned_users=[{"id": "ana"}],
            responded_by_user={"id": "ana", "name": "Ana G."},
        ),
        detail("r-other", created_at="2026-11-20T12:30:00Z", responded_by_user={"id": "ben", "name": None}),
    ]
    report = Sync(ListSource(records), store).run()

    assert report.rejected == []
    runs = {r["run"] for r in store.query("MATCH (d:Decision) RETURN d.run_id AS run")}
    assert runs == {"r-first", "r-id-only", "r-string", "r-renamed", "r-late", "r-other"}
    by_reviewer = {
        (r["id"], r["name"]): r["n"]
        for r in store.query(
            "MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor) "
            "RETURN a.actor_id AS id, a.name AS name, count(d) AS n"
        )
    }
    # the latest record names ana "Ana G." (its assignee entry has no name); ben's null name is ignored
    assert by_reviewer == {("ana", "Ana G."): 5, ("ben", "Ben"): 1}, by_reviewer
