"""A real Neo4j server for the tests, without Docker.

`tools/neo4j-launcher` resolves Neo4j Community 5.26 and APOC core from Maven Central and starts
Neo4j with a Bolt connector on a free loopback port, a data directory of ours and APOC loaded (as
on a server with the APOC plugin: what the agents' read-only Cypher gate must stand up to).
Readiness is the launcher's READY line followed by a successful Bolt handshake and login, never a
sleep.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import neo4j

from contextgraph.config import Neo4jSettings
from contextgraph.store import Neo4jStore

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "tools" / "neo4j-launcher"
PASSWORD = "contextgraph-test"


def build_launcher() -> None:
    """Compile the launcher and copy Neo4j's and APOC's jars next to it (Maven; cached in ~/.m2)."""
    jars = LAUNCHER / "target" / "dependency"
    if (
        (LAUNCHER / "target" / "classes" / "contextgraph" / "Neo4jLauncher.class").exists()
        and any(jars.glob("neo4j-kernel-*.jar"))
        and any(jars.glob("apoc-core-*.jar"))
    ):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) is needed to fetch Neo4j Community from Maven Central")
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(LAUNCHER / "pom.xml"),
            "package",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
        ],
        check=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Neo4jServer:
    """One Neo4j process; `stop()` and `start()` again keep the same port and data."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="contextgraph-neo4j-"))
        self.port = port or free_port()
        self.uri = f"bolt://127.0.0.1:{self.port}"
        self.username = "neo4j"
        self.password = PASSWORD
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 120.0) -> None:
        build_launcher()
        classpath = f"{LAUNCHER / 'target' / 'classes'}{os.pathsep}{LAUNCHER / 'target' / 'dependency' / '*'}"
        log = open(self.data_dir / "launcher.log", "a")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [
                "java",
                "-Xmx1g",
                "-cp",
                classpath,
                "contextgraph.Neo4jLauncher",
                str(self.port),
                str(self.data_dir / "home"),
                self.password,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until READY or the process dies
        if not line.startswith("READY"):
            self.stop()
            tail = (self.data_dir / "launcher.log").read_text()[-3000:]
            raise RuntimeError(f"Neo4j launcher did not start: {line!r}\n{tail}")
        wait_for_bolt(self.uri, (self.username, self.password), timeout)

    def stop(self) -> None:
        """Close the launcher's stdin (it shuts Neo4j down cleanly) and wait for it."""
        if self.process is None:
            return
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop the server abruptly, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def wait_for_bolt(uri: str, auth: tuple[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with neo4j.GraphDatabase.driver(uri, auth=auth) as driver:
        while time.monotonic() < deadline:
            try:
                driver.verify_connectivity()
                return
            except Exception as exc:  # not ready yet: poll again
                last = exc
                time.sleep(0.2)
    raise RuntimeError(f"Neo4j at {uri} did not accept a Bolt login within {timeout:.0f}s: {last}")


@contextmanager
def empty_neo4j(settings: Neo4jSettings) -> Iterator[Neo4jStore]:
    """The test database wiped, with the schema applied; closed afterwards."""
    store = Neo4jStore.connect(settings)
    try:
        store._write("MATCH (n) DETACH DELETE n", {})
        store.ensure_schema()
        yield store
    finally:
        store.close()
