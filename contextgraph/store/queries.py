"""Cypher lives in `contextgraph/store/cypher/*.cypher`, loaded by name; `contextgraph/store/cypher/embedded/`
holds the dialect variants.

In a wheel the folder ships as `contextgraph/store/cypher` (hatch force-include) and is read with
importlib.resources; in a source checkout it is read from the repository's `contextgraph/store/cypher/`.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

Dialect = str  # "neo4j" or "embedded"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def cypher_dir() -> Traversable:
    packaged = resources.files("contextgraph.store") / "cypher"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent / "cypher"


@cache
def load(name: str, dialect: Dialect = "neo4j") -> str:
    """The text of `contextgraph/store/cypher/<name>.cypher`, or its `contextgraph/store/cypher/embedded/`
    variant for that dialect."""
    root = cypher_dir()
    if dialect == "embedded":
        variant = root / "embedded" / f"{name}.cypher"
        if variant.is_file():
            return variant.read_text(encoding="utf-8")
    return (root / f"{name}.cypher").read_text(encoding="utf-8")


def statements(text: str) -> list[str]:
    """Split a file of `;`-terminated statements, dropping `//` comment lines."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("//")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def identifier(name: str) -> str:
    """A label, type or property name checked before it is placed into a query string."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a safe Cypher identifier: {name!r}")
    return name
