"""Real servers for the tests: Neo4j (env, testcontainers or the Maven launcher) and Airflow."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr

from contextgraph.config import Neo4jSettings
from contextgraph.ingest.embeddings import Model2VecEmbedder
from contextgraph.store import EmbeddedStore, GraphStore, Neo4jStore

from .builders import FULL_LANE, SHARED_MODEL
from .neo4j_server import Neo4jServer, empty_neo4j, wait_for_bolt

pytest_plugins = ["tests.airflow_fixtures"]

# Fuzzing depth: CI tries 300 examples per property, the while-you-work lane 50
# (HYPOTHESIS_PROFILE=ci to run the CI depth locally).
hypothesis_settings.register_profile("ci", max_examples=300)
hypothesis_settings.register_profile("dev", max_examples=50)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if FULL_LANE else "dev"))


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def routing_uri(uri: str) -> str:
    """``bolt://host:port`` as the routing URI ``neo4j://host:port`` (a single server accepts it)."""
    return "neo4j://" + uri.removeprefix("bolt://") if uri.startswith("bolt://") else uri


@pytest.fixture(scope="session")
def neo4j_settings() -> Iterator[Neo4jSettings]:
    """A real Neo4j: NEO4J_URI if set, else testcontainers if Docker answers, else the launcher.

    The started servers are reached through a routing URI (``neo4j://``), as a cluster or Aura
    would be: the driver fetches a routing table once, sends writes to a writer and reads (the
    store's ``routing_=READ``) to a reader. Never skipped: when no server can be had, every test
    that needs one errors.
    """
    if os.environ.get("NEO4J_URI"):
        settings = Neo4jSettings()
        wait_for_bolt(settings.uri or "", (settings.username, settings.password.get_secret_value()), 60)
        yield settings
        return
    if _docker_answers():
        from testcontainers.neo4j import Neo4jContainer

        with Neo4jContainer("neo4j:5.26", password="contextgraph-test") as container:
            yield Neo4jSettings(
                uri=routing_uri(container.get_connection_url()), password=SecretStr("contextgraph-test")
            )
        return
    server = Neo4jServer()
    server.start()
    try:
        yield Neo4jSettings(
            uri=routing_uri(server.uri), username=server.username, password=SecretStr(server.password)
        )
    finally:
        server.stop()


@pytest.fixture
def neo4j_store(neo4j_settings: Neo4jSettings) -> Iterator[Neo4jStore]:
    """An empty Neo4j database with the schema applied (the test database is wiped first)."""
    with empty_neo4j(neo4j_settings) as store:
        yield store


@pytest.fixture
def embedded_store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path / "graph.lbdb")
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture
def store_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded store file for the CLI to open: empty, with the schema applied, closed (a test
    fills it with ``EmbeddedStore(store_file)``); ``NEO4J_URI`` is unset, so the CLI uses the file."""
    monkeypatch.delenv("NEO4J_URI", raising=False)
    path = tmp_path / "cli-graph.lbdb"  # beside the embedded_store fixture's graph.lbdb
    with EmbeddedStore(path) as store:
        store.ensure_schema()
    return path


@pytest.fixture(params=["neo4j", "embedded"])
def store(request: pytest.FixtureRequest) -> GraphStore:
    """Each test using this runs twice: on a real Neo4j and on the embedded engine."""
    return request.getfixturevalue(f"{request.param}_store")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def embedder() -> Model2VecEmbedder:
    """The shared embedding model (CONTEXTGRAPH_EMBEDDING_MODEL, else the machines' shared copy),
    loaded once per test session: a load costs about a second of CPU."""
    return Model2VecEmbedder(os.environ.get("CONTEXTGRAPH_EMBEDDING_MODEL") or str(SHARED_MODEL))


#: Fixtures that start (or connect to) a server; a test whose fixture closure holds one is marked.
NEO4J_FIXTURES = frozenset({"neo4j_settings", "neo4j_store"})
AIRFLOW_FIXTURES = frozenset({"airflow", "example_dag"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs a server, so ``-m "not neo4j and not airflow"`` is the fast lane.

    A test gets ``neo4j`` when its fixtures include ``neo4j_settings``/``neo4j_store`` or it runs
    with a ``"neo4j"`` fixture param (e.g. the ``store`` fixture; its ``"embedded"`` twin stays
    unmarked and never starts Java); ``airflow`` when its fixtures include ``airflow``/``example_dag``.
    Modules that start servers by other means carry an explicit ``pytestmark``.
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if names & NEO4J_FIXTURES or "neo4j" in params.values():
            item.add_marker(pytest.mark.neo4j)
        if names & AIRFLOW_FIXTURES:
            item.add_marker(pytest.mark.airflow)


def pytest_report_header(config: Any) -> str:
    return f"contextgraph tests: NEO4J_URI={os.environ.get('NEO4J_URI') or '(launcher)'}"
