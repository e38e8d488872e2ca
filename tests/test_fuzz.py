"""Fuzzed API records (hypothesis): every record is ingested or rejected with a reason, never a crash.

Records start from the real shapes (see tests/test_bad_input.py) and get random unicode
(including lone surrogates), huge strings, nulls, wrong types, and extra and missing fields.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contextgraph import model as m
from contextgraph.errors import InvalidRecordError
from contextgraph.ingest import mapping
from contextgraph.ingest.sync import Sync
from contextgraph.store import EmbeddedStore

from .builders import ListSource, detail

surrogate_text = st.builds(lambda a, b: f"{a}\ud800{b}\udfff", st.text(max_size=5), st.text(max_size=5))
text = st.one_of(st.text(max_size=40), surrogate_text, st.just("é" * 200_000), st.just("😀🙏💸" * 1000))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """The base record with some fields replaced, removed or added, at any depth of task_instance."""
    record = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        target = record
        if isinstance(record.get("task_instance"), dict) and draw(st.booleans()):
            target = record["task_instance"]
        keys = sorted(target) or ["x"]
        key = draw(st.sampled_from([*keys, draw(text)]))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return record


def assert_mapped_or_rejected(map_one: Any, record: Any) -> None:
    try:
        result = map_one(record)
    except InvalidRecordError as exc:
        assert exc.record and exc.field and exc.reason
        return
    batch = result if isinstance(result, m.GraphBatch) else m.GraphBatch(nodes=[result])
    batch.validate()
    for item in [*batch.nodes, *batch.edges]:
        # Everything we would store encodes as UTF-8 (no lone surrogates left).
        item.model_dump_json().encode("utf-8")


# Examples per property: the loaded hypothesis profile's (tests/conftest.py: 300 in CI, 50 else).
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated(detail("fuzz")))
def test_hitl_details(record: dict[str, Any]) -> None:
    assert_mapped_or_rejected(mapping.map_decision, record)


@FUZZ
@given(mutated({"dag_id": "d", "dag_run_id": "r", "state": "success", "run_type": "manual", "conf": {}}))
def test_dag_runs(record: dict[str, Any]) -> None:
    assert_mapped_or_rejected(mapping.map_dag_run, record)


@FUZZ
@given(
    mutated(
        {
            "dag_id": "d",
            "dag_run_id": "r",
            "task_id": "t",
            "map_index": -1,
            "try_number": 1,
            "state": "success",
            "duration": 1.5,
            "operator": "PythonOperator",
        }
    )
)
def test_task_instances(record: dict[str, Any]) -> None:
    assert_mapped_or_rejected(mapping.map_task_instance, record)


@FUZZ
@given(mutated({"dag_id": "d", "tags": [{"name": "a"}], "owners": ["o"], "is_paused": False}))
def test_dags(record: dict[str, Any]) -> None:
    assert_mapped_or_rejected(mapping.map_dag, record)


@FUZZ
@given(st.one_of(json_values, st.lists(json_values, max_size=3)))
def test_anything_at_all(record: Any) -> None:
    for map_one in (mapping.map_decision, mapping.map_dag_run, mapping.map_task_instance, mapping.map_dag):
        assert_mapped_or_rejected(map_one, record)


@settings(
    max_examples=max(5, settings().max_examples // 12),  # each example syncs into a new store: 25 in CI
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(mutated(detail("page")), min_size=1, max_size=8))
def test_sync_never_crashes_and_accounts_for_every_record(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    records = [
        {**r, "task_instance": {**r["task_instance"], "dag_run_id": f"run-{i}"}}
        if isinstance(r.get("task_instance"), dict)
        else r
        for i, r in enumerate(records)
    ]
    path = tmp_path / f"fuzz-{uuid.uuid4().hex}.lbdb"
    with EmbeddedStore(path) as store:
        store.ensure_schema()
        report = Sync(ListSource(records), store).run()
        stored = store.stats()["nodes"]["Decision"]
    rejected_details = [r for r in report.rejected if r.record.startswith("HITL detail")]
    assert stored + len(rejected_details) == len(records), report.as_dict()


@pytest.mark.parametrize("size", [1_000_000])
def test_a_huge_body_is_kept_whole(size: int) -> None:
    batch = mapping.map_decision(detail("big", body="b" * size))
    [decision] = [n for n in batch.nodes if isinstance(n, m.Decision)]
    assert len(decision.body or "") == size
