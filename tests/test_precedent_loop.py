"""The feedback loop closed in the example DAG: the draft consults precedents from the graph, the
reviewer sees them, and the ingest records which precedents informed the decision (INFORMED_BY).

The end-to-end test runs on a real Airflow whose DAG reaches a real Neo4j through the Airflow
Connection `neo4j_default` (created over the REST API).
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from contextgraph import model as m
from contextgraph.config import AirflowSettings
from contextgraph.ingest import mapping
from contextgraph.ingest.embeddings import Model2VecEmbedder
from contextgraph.ingest.mapping import PRECEDENTS_END, PRECEDENTS_START
from contextgraph.ingest.source import AirflowSource
from contextgraph.ingest.sync import Sync
from contextgraph.retrieval.precedents import get_decision_trace
from contextgraph.store import GraphStore, Neo4jStore
from contextgraph.tools.agent import ContextGraphDeps
from tests.airflow_server import AirflowClient
from tests.builders import detail

from . import cases as c

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "ai_support_ticket_system.py"
TASK = "review_response"
TICKET = {
    "ticket_id": "T-4242",
    "customer": "globex",
    "subject": c.SEED_QUERY,
    "body": "This is a feature request for the dashboard.",
}


def test_the_ingest_records_the_precedents_listed_in_the_proposal(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    keys = c.write_cases(store, embedder, c.SEED_AND_UNRELATED)
    draft = {
        "draft": "Thanks, noted.",
        "precedents": [
            {"key": keys["fr-dark-mode"], "score": 0.93},
            keys["inc-api-500"],
            {"key": keys["fr-dark-mode"], "score": 0.1},  # repeated: the first rank wins
            {"key": ""},
            {"no": "key"},
            42,
            {"key": "no|such|decision", "score": float("nan")},
        ],
    }
    record = detail("run-7", task_instance={**detail("x")["task_instance"], "dag_id": c.SUPPORT_DAG})
    proposal = mapping.ProposalValue("draft_response", draft)
    batch = mapping.map_decision(record, proposals=[proposal])
    edges = [e for e in batch.edges if isinstance(e, m.InformedBy)]
    decision = next(n for n in batch.nodes if isinstance(n, m.Decision))

    assert [(e.dst, e.rank, e.score) for e in edges] == [
        (keys["fr-dark-mode"], 1, 0.93),
        (keys["inc-api-500"], 2, None),
        ("no|such|decision", 7, None),
    ]
    assert all(e.src == decision.key and e.recorded_at == decision.created_at for e in edges)
    result = store.write(batch)
    assert result.missing_endpoints.get("INFORMED_BY") == 1  # a precedent the graph does not hold
    trace = get_decision_trace(store, decision.key)
    assert [p.key for p in trace.informed_by] == [keys["fr-dark-mode"], keys["inc-api-500"]]
    assert store.write(mapping.map_decision(record, proposals=[proposal])).written == 0


def _dag_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_dag_under_test", DAG_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_with_an_llm_the_draft_agent_consults_precedents_through_its_tools(
    embedded_store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    keys = c.write_cases(embedded_store, embedder, c.SEED_AND_UNRELATED)
    dag = _dag_module()

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            prompt = next(p.content for p in messages[0].parts if isinstance(p, UserPromptPart))
            assert isinstance(prompt, str) and prompt.startswith("Subject: ")
            text = prompt.removeprefix("Subject: ")
            return ModelResponse(parts=[ToolCallPart("find_similar_decisions", {"text": text, "k": 2})])
        return ModelResponse(parts=[TextPart("Thanks! This is on our roadmap review list.")])

    deps = ContextGraphDeps(embedded_store, None, point=(c.SUPPORT_DAG, TASK))
    draft, shown = dag._llm_draft(FunctionModel(model), TICKET, deps)
    cited = dag._cited(shown)

    assert draft.startswith("Thanks!") and [p.key for p in shown][:1] == [keys["fr-dark-mode"]]
    assert cited["precedents"][0]["key"] == keys["fr-dark-mode"] and len(cited["precedents"]) == 2
    assert "check the roadmap first" in cited["precedent_notes"]
    assert dag._cited([]) == {"precedents": [], "lessons": [], "precedent_notes": ""}
    assert dag._consult(None, "anything") == []


# --- end to end on a real Airflow and a real Neo4j -----------------------------------------------


def _ingest(airflow: AirflowClient, store: Neo4jStore) -> Any:
    user, password = airflow.credentials
    settings = AirflowSettings(url=airflow.url, username=user, password=SecretStr(password))
    with AirflowSource(settings) as source:
        return Sync(source, store).run()


@pytest.mark.airflow
def test_a_new_run_cites_precedents_and_the_ingest_links_them(
    airflow: AirflowClient,
    example_dag: str,
    neo4j_store: Neo4jStore,
    neo4j_connection: None,
    embedder: Model2VecEmbedder,
) -> None:
    keys = c.write_cases(neo4j_store, embedder, c.SEED_AND_UNRELATED)
    run_id = airflow.trigger(example_dag, conf=TICKET, run_id=f"test_precedents_{uuid.uuid4().hex[:8]}")
    waiting = airflow.wait_for_hitl(example_dag, run_id, task_id=TASK)

    draft = airflow.xcom(example_dag, run_id, "draft_response")
    cited = [p["key"] for p in draft["precedents"]]
    assert cited[0] == keys["fr-dark-mode"] and len(cited) == 3, draft
    assert draft["precedents"][0]["reason"].startswith("check the roadmap first")
    # The reviewer sees the draft and, under it, how similar cases were decided and why.
    assert draft["draft"] in waiting["body"] and "How similar cases were decided before" in waiting["body"]
    assert "check the roadmap first" in waiting["body"]
    # …and what similar cases teach, all inside the marked section the ingest leaves out of the index.
    section = waiting["body"].split(PRECEDENTS_START, 1)[1]
    assert "What similar cases teach" in section and " of " in section and PRECEDENTS_END in section
    assert draft["case"] == {"subject": TICKET["subject"], "body": TICKET["body"]} and draft["lessons"]

    answer = {"reason": "Same as dark mode: check the roadmap first.", "manual_response": "On our roadmap."}
    assert airflow.respond(example_dag, run_id, TASK, ["Respond Manually"], answer).status_code == 200
    assert airflow.wait_for_run(example_dag, run_id)["state"] == "success"

    before = neo4j_store.query(
        "MATCH (d:Decision {run_id: $run})-[r:INFORMED_BY]->() RETURN count(r) AS n", {"run": run_id}
    )
    report = _ingest(airflow, neo4j_store)
    assert not [r for r in report.rejected if run_id in r.record]
    rows = neo4j_store.query(
        "MATCH (d:Decision {run_id: $run})-[r:INFORMED_BY]->(p:Decision) "
        "RETURN p.key AS key, r.rank AS rank, r.score AS score ORDER BY rank",
        {"run": run_id},
    )
    assert [r["key"] for r in rows] == cited and [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["score"] == draft["precedents"][0]["score"]
    decision = neo4j_store.query("MATCH (d:Decision {run_id: $run}) RETURN d.key AS k", {"run": run_id})
    indexed = neo4j_store.query(
        "MATCH (d:Decision {run_id: $run}) RETURN d.search_text AS t", {"run": run_id}
    )
    assert "How similar cases" not in indexed[0]["t"] and TICKET["body"] in indexed[0]["t"]
    trace = get_decision_trace(neo4j_store, decision[0]["k"])
    assert trace.informed_by[0].reason and trace.informed_by[0].reason.startswith("check the roadmap first")
    # This ingest created them (other decisions of the shared test Airflow may bring edges too).
    assert before == [{"n": 0}] and report.created["INFORMED_BY"] >= len(rows) == 3
    again = _ingest(airflow, neo4j_store)  # the decision is read again: its edges are unchanged
    assert again.created["INFORMED_BY"] == again.updated["INFORMED_BY"] == 0
