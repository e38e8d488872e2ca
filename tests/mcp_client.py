"""A real MCP client session over stdio with `python -m contextgraph mcp` pointed at a test store."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from contextgraph.config import Neo4jSettings
from contextgraph.store import EmbeddedStore, GraphStore

from .builders import SHARED_MODEL

ROOT = Path(__file__).resolve().parent.parent


def server_env(store: GraphStore, neo4j_settings: Neo4jSettings | None) -> dict[str, str]:
    """The environment that points `contextgraph mcp` at this test store (nothing else inherited)."""
    env = {
        "CONTEXTGRAPH_EMBEDDING_MODEL": os.environ.get("CONTEXTGRAPH_EMBEDDING_MODEL") or str(SHARED_MODEL),
        "AIRFLOW_URL": "http://airflow.example:8080",
        "PYTHONPATH": str(ROOT),
    }
    if isinstance(store, EmbeddedStore):
        env["CONTEXTGRAPH_STORE_PATH"] = str(store.path)
    else:
        assert neo4j_settings is not None and neo4j_settings.uri
        env.update(
            NEO4J_URI=neo4j_settings.uri,
            NEO4J_USERNAME=neo4j_settings.username,
            NEO4J_PASSWORD=neo4j_settings.password.get_secret_value(),
            NEO4J_DATABASE=neo4j_settings.database,
        )
    return env


@asynccontextmanager
async def mcp_session(env: dict[str, str], *args: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "contextgraph", "mcp", *args], env=env, cwd=str(ROOT)
    )
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def payload(result: Any) -> Any:
    """A tool result's value: the structured content (unwrapped), else its JSON text."""
    if result.structured_content is not None:
        content = result.structured_content
        return content["result"] if set(content) == {"result"} else content
    return json.loads(result.content[0].text)


def error_text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)
