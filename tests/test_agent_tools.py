"""The pydantic-ai precedent tools, driven by pydantic-ai's own test models (no LLM account), on a
real Neo4j and on the embedded engine with the real embedding model."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from contextgraph.ingest.embeddings import Model2VecEmbedder
from contextgraph.store import GraphStore
from contextgraph.tools.agent import (
    ContextGraphDeps,
    consult_precedents,
    precedent_agent,
    precedent_notes,
    precedent_toolset,
)

from . import cases as c

AIRFLOW = "http://airflow.example:8080"


@pytest.fixture
def seeded(store: GraphStore, embedder: Model2VecEmbedder) -> dict[str, str]:
    """The seed case (dark mode: "check the roadmap first") among unrelated decisions."""
    return c.write_cases(store, embedder, c.SEED_AND_UNRELATED)


def _deps(store: GraphStore, embedder: Model2VecEmbedder) -> ContextGraphDeps:
    return ContextGraphDeps(store, embedder, airflow_url=AIRFLOW, point=(c.SUPPORT_DAG, c.SUPPORT_POINT))


def _last_prompt(messages: list[ModelMessage]) -> str:
    for message in messages:
        for part in message.parts:
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                return part.content
    raise AssertionError("no user prompt")


def _returns(messages: list[ModelMessage], tool: str) -> list[Any]:
    return [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart) and part.tool_name == tool
    ]


def test_an_agent_finds_the_roadmap_precedent_and_cites_its_reason(
    store: GraphStore, embedder: Model2VecEmbedder, seeded: dict[str, str]
) -> None:
    """A model that asks for precedents with the case's words, then answers from the top one."""

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        assert {t.name for t in info.function_tools} == {
            "find_similar_decisions",
            "find_lessons",
            "get_decision_trace",
            "read_cypher",
        }
        found = _returns(messages, "find_similar_decisions")
        if not found:
            args = {"text": _last_prompt(messages), "k": 3}
            return ModelResponse(parts=[ToolCallPart("find_similar_decisions", args)])
        top = found[0][0]
        return ModelResponse(parts=[TextPart(f"Like {top.subject!r}: {top.reason} ({top.key})")])

    deps = _deps(store, embedder)
    result = precedent_agent(FunctionModel(model)).run_sync(c.SEED_QUERY, deps=deps)

    assert seeded["fr-dark-mode"] in result.output and "check the roadmap first" in result.output
    top = deps.shown[0]
    assert top.key == seeded["fr-dark-mode"] and len(deps.shown) == 3
    assert top.chosen_options == ["Respond Manually"] and top.url and top.url.startswith(AIRFLOW)
    assert "check the roadmap first" in precedent_notes(deps.shown)


def test_the_tool_schemas_the_model_sees_explain_each_tool(
    store: GraphStore, embedder: Model2VecEmbedder, seeded: dict[str, str]
) -> None:
    """TestModel calls every tool with arguments made from its schema; all of them answer."""
    seen: dict[str, Any] = {}

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.update({t.name: t for t in info.function_tools})
        done = {
            part.tool_name
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        }
        calls: dict[str, dict[str, Any]] = {
            "find_similar_decisions": {"text": "dark mode theme", "k": 2, "dag_id": c.SUPPORT_DAG},
            "find_lessons": {"text": "dark mode theme", "k": 2},
            "get_decision_trace": {"key": seeded["fr-dark-mode"]},
            "read_cypher": {
                "query": "MATCH (d:Decision) WHERE d.key = $key RETURN d.reason AS reason",
                "params": {"key": seeded["fr-dark-mode"]},
            },
            "record_precedents": {
                "decision_key": seeded["inc-api-500"],
                "precedent_keys": [seeded["fr-dark-mode"]],
            },
        }
        todo = [ToolCallPart(name, args) for name, args in calls.items() if name not in done]
        parts: list[ToolCallPart | TextPart] = [*todo] or [TextPart("done")]
        return ModelResponse(parts=parts)

    deps = _deps(store, embedder)
    agent = Agent(FunctionModel(model), deps_type=ContextGraphDeps, toolsets=[precedent_toolset()])
    result = agent.run_sync("go", deps=deps)

    assert set(seen) == {
        "find_similar_decisions",
        "find_lessons",
        "get_decision_trace",
        "read_cypher",
        "record_precedents",
    }
    finder = seen["find_similar_decisions"]
    assert "reason" in (finder.description or "")
    assert finder.parameters_json_schema["required"] == ["text"]
    assert "Escalate to CRE" in finder.parameters_json_schema["properties"]["chosen"]["description"]
    assert "refused" in (seen["read_cypher"].description or "")
    messages = result.all_messages()
    [lessons] = _returns(messages, "find_lessons")
    assert " of " in lessons and "check the roadmap first" in lessons
    [trace] = _returns(messages, "get_decision_trace")
    assert trace.reason.startswith("check the roadmap first") and trace.chosen_options == ["Respond Manually"]
    [rows] = _returns(messages, "read_cypher")
    assert rows.rows == [{"reason": trace.reason}] and rows.truncated is False
    assert _returns(messages, "record_precedents") == [1]
    assert store.stats()["relationships"]["INFORMED_BY"] == 1

    # TestModel makes its arguments from the schemas (text="a", only a stop word): the tool answers
    # with the one-line reason as a retry each time, never a crash or a silently empty ranking.
    agent = precedent_agent(TestModel(call_tools=["find_similar_decisions"]))
    with pytest.raises(UnexpectedModelBehavior, match="exceeded max retries"):
        agent.run_sync("anything", deps=_deps(store, embedder))
    assert store.stats()["relationships"]["INFORMED_BY"] == 1


def test_refusals_come_back_to_the_model_as_retries(
    store: GraphStore, embedder: Model2VecEmbedder, seeded: dict[str, str]
) -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        retries = [
            part
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart) and part.outcome == "retried"  # pydantic-ai 2.x
        ]
        if not retries:
            return ModelResponse(
                parts=[
                    ToolCallPart("read_cypher", {"query": "MATCH (d:Decision) DETACH DELETE d"}),
                    ToolCallPart("get_decision_trace", {"key": "no|such|decision"}),
                ]
            )
        return ModelResponse(parts=[TextPart(" || ".join(str(r.content) for r in retries))])

    before = store.stats()
    result = precedent_agent(FunctionModel(model)).run_sync("try", deps=_deps(store, embedder))

    assert "only read queries may run here" in result.output and "change the query" in result.output
    assert "no decision with key" in result.output
    assert store.stats() == before


def test_the_deterministic_agent_needs_no_model(
    store: GraphStore, embedder: Model2VecEmbedder, seeded: dict[str, str]
) -> None:
    deps = _deps(store, embedder)
    words_only = ContextGraphDeps(store, None, point=deps.point)
    for d in (deps, words_only):
        found = consult_precedents(d, c.SEED_QUERY, k=3)
        assert found[0].key == seeded["fr-dark-mode"] and d.shown == found
