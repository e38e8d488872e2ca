"""The Neo4j store: the official driver, one helper for every call, READ routing for reads."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import neo4j
from neo4j import GraphDatabase, RoutingControl
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConfigurationError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)

from contextgraph.config import Neo4jSettings
from contextgraph.errors import QueryRefusedError, StoreAuthError, StoreError, StoreUnavailableError
from contextgraph.queries import load, statements
from contextgraph.store.base import GraphStore, Row, to_plain

log = logging.getLogger(__name__)

DEFAULT_DIMENSIONS = 256


class Neo4jStore(GraphStore):
    """A graph store on a Neo4j 5 server. The caller may own the driver; `connect` makes one."""

    dialect = "neo4j"

    def __init__(
        self,
        driver: neo4j.Driver,
        *,
        database: str = "neo4j",
        batch_size: int = 1000,
        owns_driver: bool = False,
        where: str = "Neo4j",
    ) -> None:
        self._driver = driver
        self.database = database
        self.batch_size = batch_size
        self._owns_driver = owns_driver
        self._where = where

    @classmethod
    def connect(cls, settings: Neo4jSettings, *, batch_size: int = 1000) -> Neo4jStore:
        """A store with a driver of its own (no network until the first query)."""
        if not settings.uri:
            raise StoreError("NEO4J_URI is not set: give the Bolt URI of your Neo4j server")
        auth = (settings.username, settings.password.get_secret_value())
        try:
            driver = GraphDatabase.driver(settings.uri, auth=auth, notifications_min_severity="OFF")
        except (ConfigurationError, ValueError) as exc:
            raise StoreError(f"NEO4J_URI {settings.uri!r} is not a Neo4j URI: {exc}") from None
        return cls(
            driver,
            database=settings.database,
            batch_size=batch_size,
            owns_driver=True,
            where=f"Neo4j at {settings.uri}",
        )

    def close(self) -> None:
        if self._owns_driver:
            self._driver.close()

    def verify(self) -> None:
        """Check at once (no retries) that the server answers and accepts the credentials."""
        try:
            self._driver.verify_connectivity()
        except Exception as exc:
            raise self._translate(exc) from None

    def ensure_schema(self, dimensions: int = DEFAULT_DIMENSIONS) -> None:
        for statement in statements(load("schema")):
            self._execute(statement, {"dimensions": dimensions}, write=True)

    def _read(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        return self._execute(cypher, params, write=False)

    def _write(self, cypher: str, params: Mapping[str, Any]) -> list[Row]:
        return self._execute(cypher, params, write=True)

    def query_type(self, cypher: str) -> str:
        """What Neo4j's planner says the query does: 'r', 'w', 'rw' or 's' (schema)."""
        _, summary = self._execute_full("EXPLAIN " + cypher, {}, write=False)
        return str(summary.query_type)

    def _execute(self, cypher: str, params: Mapping[str, Any], *, write: bool) -> list[Row]:
        return self._execute_full(cypher, params, write=write)[0]

    def _execute_full(
        self, cypher: str, params: Mapping[str, Any], *, write: bool, timeout: float | None = None
    ) -> tuple[list[Row], neo4j.ResultSummary]:
        """The one place that calls the driver: database, routing, timeout and error mapping."""
        try:
            records, summary, _ = self._driver.execute_query(
                neo4j.Query(cypher, timeout=timeout),  # type: ignore[arg-type]
                parameters_=dict(params),
                database_=self.database,
                routing_=RoutingControl.WRITE if write else RoutingControl.READ,
            )
        except Exception as exc:
            raise self._translate(exc) from None
        return [{k: to_plain(v) for k, v in record.items()} for record in records], summary

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, AuthError):
            return StoreAuthError(
                f"{self._where} rejected the username or password: check NEO4J_USERNAME and NEO4J_PASSWORD"
            )
        if isinstance(exc, ServiceUnavailable | SessionExpired):
            return StoreUnavailableError(
                f"{self._where} is unreachable ({type(exc).__name__}): start it, or fix NEO4J_URI"
            )
        if isinstance(exc, ClientError) and exc.code and "Security" in exc.code:
            return StoreAuthError(f"{self._where} refused access: {exc.message}")
        if isinstance(exc, ClientError):
            return QueryRefusedError(f"{self._where} refused the query: {exc.message}")
        if isinstance(exc, Neo4jError | DriverError):
            return StoreError(f"{self._where} failed: {type(exc).__name__}: {getattr(exc, 'message', exc)}")
        return exc
