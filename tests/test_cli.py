"""The command line as a user meets it: help, counts from either store, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from contextgraph.cli import cli
from contextgraph.config import Neo4jSettings
from contextgraph.store import EmbeddedStore, Neo4jStore

from .builders import support_batch


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*prefix, name)))
    return found


@pytest.mark.parametrize("command", all_commands(cli))
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_stats_json_counts_the_embedded_store(store_file: Path) -> None:
    path = store_file
    with EmbeddedStore(path) as store:
        store.write(support_batch(2))

    result = CliRunner().invoke(cli, ["--store-path", str(path), "stats", "--json"])

    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["store"] == "embedded"
    assert counts["nodes"]["Decision"] == 2 and counts["relationships"]["CHOSE"] == 2


def test_stats_json_counts_neo4j(neo4j_store: Neo4jStore, neo4j_settings: Neo4jSettings) -> None:
    neo4j_store.write(support_batch(3))
    env = {"NEO4J_URI": neo4j_settings.uri, "NEO4J_PASSWORD": neo4j_settings.password.get_secret_value()}

    result = CliRunner().invoke(cli, ["stats", "--json"], env=env)

    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["store"] == "neo4j" and counts["nodes"]["Decision"] == 3


def test_schema_command_on_neo4j(neo4j_settings: Neo4jSettings) -> None:
    args = [
        "--neo4j-uri",
        neo4j_settings.uri or "",
        "--neo4j-password",
        neo4j_settings.password.get_secret_value(),
        "schema",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "schema ready (neo4j" in result.output


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contextgraph", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=120,
    )


def test_wrong_password_is_one_line_and_exit_1(neo4j_settings: Neo4jSettings) -> None:
    result = _run("stats", env={"NEO4J_URI": neo4j_settings.uri or "", "NEO4J_PASSWORD": "not-the-password"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: Neo4j at {neo4j_settings.uri} rejected the username or password: "
        "check NEO4J_USERNAME and NEO4J_PASSWORD"
    ]
    assert "not-the-password" not in result.stderr + result.stdout


def test_unreachable_neo4j_is_one_line_and_exit_1() -> None:
    result = _run("stats", env={"NEO4J_URI": "bolt://127.0.0.1:9", "NEO4J_PASSWORD": "x"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "unreachable" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unwritable_store_path_says_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _run("--store-path", str(blocker / "sub" / "g.lbdb"), "stats")
    assert result.returncode == 1
    assert "CONTEXTGRAPH_STORE_PATH" in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _run("--debug", "--store-path", str(blocker / "g.lbdb"), "stats")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_cypher_files_ship_in_the_wheel(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    subprocess.run(["uv", "build", "--wheel", "-q", "-o", str(tmp_path), str(root)], check=True, timeout=300)
    [wheel] = tmp_path.glob("contextgraph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    expected = {
        f"contextgraph/store/cypher/{p.relative_to(root / 'contextgraph' / 'store' / 'cypher')}"
        for p in (root / "contextgraph" / "store" / "cypher").rglob("*.cypher")
    }
    assert expected and expected <= set(names)
    assert "contextgraph/py.typed" in names
    assert "contextgraph/demo/scenario.json" in names  # the demo's data, read with importlib.resources
