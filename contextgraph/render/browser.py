"""Neo4j Browser helpers: the named queries in `contextgraph/store/cypher/browser/` and the Browser style
file.

Each `contextgraph/store/cypher/browser/<name>.cypher` starts with `//` comment lines: the first says what the
query
shows, the rest explain it, and `// :param name => value` lines are examples a user pastes into
Neo4j Browser before the query (the tests run every query with exactly those values).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from contextgraph.store.queries import cypher_dir

_PARAM = re.compile(r"^//\s*:param\s+([A-Za-z_][A-Za-z0-9_]*)\s*=>\s*(.+?)\s*$")


@dataclass(frozen=True)
class BrowserQuery:
    """One query for Neo4j Browser, with its explanation and example parameters."""

    name: str
    title: str
    description: str
    text: str
    params: dict[str, Any] = field(default_factory=dict)
    param_lines: tuple[str, ...] = ()

    @property
    def body(self) -> str:
        """The query without its comment lines."""
        return "\n".join(
            line for line in self.text.splitlines() if not line.lstrip().startswith("//")
        ).strip()


def parse(name: str, text: str) -> BrowserQuery:
    comments = [line.strip() for line in text.splitlines() if line.lstrip().startswith("//")]
    params: dict[str, Any] = {}
    param_lines: list[str] = []
    prose: list[str] = []
    for line in comments:
        found = _PARAM.match(line)
        if found:
            params[found.group(1)] = ast.literal_eval(found.group(2))
            param_lines.append(line.lstrip("/ ").strip())
        else:
            prose.append(line.lstrip("/").strip())
    title = prose[0] if prose else name
    return BrowserQuery(
        name=name,
        title=title,
        description=" ".join(prose[1:]),
        text=text,
        params=params,
        param_lines=tuple(param_lines),
    )


def browser_queries() -> list[BrowserQuery]:
    """Every query of `contextgraph/store/cypher/browser/`, by name."""
    folder = cypher_dir() / "browser"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".cypher")), key=lambda f: f.name)
    return [parse(f.name.removesuffix(".cypher"), f.read_text(encoding="utf-8")) for f in files]


def browser_query(name: str) -> BrowserQuery:
    for query in browser_queries():
        if query.name == name:
            return query
    raise KeyError(name)


def grass() -> str:
    """The Browser style: a colour and a caption per label (drag the file onto Neo4j Browser)."""
    return (cypher_dir() / "browser" / "contextgraph.grass").read_text(encoding="utf-8")


def grass_path() -> str:
    return str(cypher_dir() / "browser" / "contextgraph.grass")
