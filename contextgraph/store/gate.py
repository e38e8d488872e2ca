"""The gate of the agents' read-only Cypher tool: what may run is decided by an allow-list.

`read_only_query` of each store asks this module before the engine runs anything:

1. the query text (`check_text`): administration and listing commands (`SHOW …`, `TERMINATE …`,
   `GRANT …`), `USE` of another database, and every procedure or function it calls by name
   (found by a Cypher tokenizer that skips strings, comments and backticks) — a name not on the
   allow-list is refused before the server is asked at all;
2. the plan (`check_neo4j_plan`, `check_embedded_plan`): EXPLAIN's query type must be a read,
   every plan operator must be a known read operator, every procedure (`ProcedureCall`) and
   function found in the plan's details must be allowed, known to the server and — for procedures
   — reported by the server with mode READ; a call the gate cannot identify is refused.

The allow-list is data: `cypher_allow.toml` next to this module (documented there and in the
README's security section), extended by CONTEXTGRAPH_CYPHER_ALLOW (`config.CypherSettings`).
Refusals raise `QueryNotAllowedError`; engine errors become one-line `CypherError`s with a hint of
what to change (`engine_error`), e.g. Ladybug's `WITH … ORDER BY` without `LIMIT`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from contextgraph.config import CypherSettings
from contextgraph.errors import CypherError, QueryNotAllowedError

EXTEND = "add it to CONTEXTGRAPH_CYPHER_ALLOW if it is safe for agents"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that may stand before "(" without being a call.
_KEYWORDS = _words(
    """
    match optional where and or xor not in return with unwind as call merge create delete detach
    set remove union all distinct order by skip limit case when then else end exists count
    collect shortest groups any is null true false starts ends contains foreach on yield use
    load csv from headers fieldterminator explain profile cypher nodetach filter let next finish
    insert asc desc ascending descending of rows concurrent transactions repeatable walk acyclic
    trail path paths
    """
)
# A query whose statement is one of these is an administration or listing command.
_ADMIN = _words(
    """
    show terminate grant deny revoke start stop alter rename enable dryrun deallocate reallocate
    """
)

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      |(?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))
      |(?P<string>'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))
      |(?P<tick>`(?:[^`]|``)*(?:`|\Z))
      |(?P<param>\$(?:\w+|`(?:[^`]|``)*`?))
      |(?P<number>\d[\w.]*)
      |(?P<ident>[^\W\d]\w*)
      |(?P<punct>.)""",
    re.S | re.X,
)


@dataclass(frozen=True)
class Token:
    kind: str
    """ident, tick (a `quoted` name), string, param, number or punct."""
    text: str
    """An identifier's name (unquoted for `tick`), else the source text."""

    def word(self) -> str | None:
        """The lower-cased keyword this token can be (never a quoted name)."""
        return self.text.lower() if self.kind == "ident" else None


def tokens(cypher: str) -> list[Token]:
    """The significant tokens of a Cypher text (no whitespace or comments)."""
    out = []
    for match in _TOKEN.finditer(cypher):
        kind = match.lastgroup or "punct"
        if kind in ("ws", "comment"):
            continue
        text = match.group()
        if kind == "tick":
            text = text[1:-1].replace("``", "`") if text.endswith("`") and len(text) > 1 else text[1:]
        out.append(Token(kind, text))
    return out


@dataclass(frozen=True)
class CallSites:
    """Names a Cypher text calls: `procedures` after CALL, `functions` elsewhere."""

    procedures: frozenset[str]
    functions: frozenset[str]


def call_sites(cypher: str) -> CallSites:
    """Every `name(` and `a.b.c(` call in the text (and `CALL a.b` without parentheses), outside
    strings and comments; backticked name parts count as names. Labels (`:Label(`), properties
    and keywords followed by `(` are not calls."""
    toks = tokens(cypher)
    procedures: set[str] = set()
    functions: set[str] = set()
    i = 0
    while i < len(toks):
        tok = toks[i]
        before = toks[i - 1] if i else None
        if tok.kind not in ("ident", "tick") or (before is not None and before.text in (".", ":", "$")):
            i += 1
            continue
        parts, j = [tok.text], i + 1
        while j + 1 < len(toks) and toks[j].text == "." and toks[j + 1].kind in ("ident", "tick"):
            parts.append(toks[j + 1].text)
            j += 2
        name = ".".join(parts)
        after = toks[j].text if j < len(toks) else ""
        after_call = before is not None and before.word() == "call"
        if after_call and after != "{":
            procedures.add(name)
        elif after == "(" and not (len(parts) == 1 and tok.word() in _KEYWORDS):
            functions.add(name)
        i = j
    return CallSites(frozenset(procedures), frozenset(functions))


@dataclass(frozen=True)
class AllowList:
    """Names and shell-style patterns (any case) per category; `extra` applies to every category."""

    neo4j_procedures: tuple[str, ...]
    neo4j_functions: tuple[str, ...]
    neo4j_operators: tuple[str, ...]
    neo4j_planner: tuple[str, ...]
    embedded_table_functions: tuple[str, ...]
    embedded_operators: tuple[str, ...]
    extra: tuple[str, ...] = ()
    neo4j_functions_denied: tuple[str, ...] = ()
    """Refused although a pattern allows them (unless `extra` names them exactly): functions whose
    result size a number argument sets."""

    def allows(self, category: str, name: str) -> bool:
        lowered = name.lower()
        if category == "neo4j_functions" and self.denied(name):
            return False
        patterns: Iterable[str] = (*getattr(self, category), *self.extra)
        return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)

    def denied(self, name: str) -> bool:
        """Whether a Neo4j function is refused for the size of what it can build."""
        lowered = name.lower()
        return any(lowered == d.lower() for d in self.neo4j_functions_denied) and not any(
            lowered == e.lower() for e in self.extra
        )


@functools.cache
def _packaged() -> AllowList:
    data: dict[str, Any] = tomllib.loads(
        resources.files("contextgraph.store").joinpath("cypher_allow.toml").read_text(encoding="utf-8")
    )
    neo4j, embedded = data["neo4j"], data["embedded"]
    return AllowList(
        neo4j_procedures=tuple(neo4j["procedures"]),
        neo4j_functions=tuple(neo4j["functions"]),
        neo4j_operators=tuple(neo4j["operators"]),
        neo4j_planner=tuple(neo4j["planner_expressions"]),
        neo4j_functions_denied=tuple(neo4j.get("functions_denied", ())),
        embedded_table_functions=tuple(embedded["table_functions"]),
        embedded_operators=tuple(embedded["operators"]),
    )


def allow_list() -> AllowList:
    """The packaged allow-list plus CONTEXTGRAPH_CYPHER_ALLOW (read now, so a change applies at once)."""
    packaged = _packaged()
    extra = tuple(CypherSettings().cypher_allow)
    return AllowList(**{**packaged.__dict__, "extra": extra}) if extra else packaged


# --- 1. the text --------------------------------------------------------------------------------


def check_text(cypher: str, dialect: str, allow: AllowList, catalog: Catalog | None = None) -> CallSites:
    """Refuse administration/listing commands, `USE`, and calls of names not on the allow-list
    (Neo4j); return the call sites for the plan check. Raises QueryNotAllowedError."""
    toks = tokens(cypher)
    if toks and toks[0].text == ":":
        command = cypher.strip().split(None, 1)[0]
        raise CypherError(
            f"{command} is a Neo4j Browser command, not Cypher",
            stage="plan",
            hint="send the query alone; give values in the tool's params ($name in the query)",
        )
    for i, tok in enumerate(toks):
        before = toks[i - 1].text if i else ""
        following = toks[i + 1] if i + 1 < len(toks) else None
        if before in (".", ":", "$") or tok.kind != "ident":
            continue
        word = tok.text.lower()
        if word == "use" and following is not None and following.kind in ("ident", "tick"):
            raise QueryNotAllowedError(
                f"USE {following.text} is refused: queries here run on the configured database only; "
                "remove the USE clause"
            )
        if word in _ADMIN and following is not None and following.kind == "ident" and _at_clause(toks, i):
            raise QueryNotAllowedError(
                f"{tok.text.upper()} {following.text.upper()} is an administration or listing command; "
                "only reads of the decision graph may run here"
            )
    sites = call_sites(cypher)
    if dialect == "embedded":
        for name in sorted(sites.procedures):
            if not allow.allows("embedded_table_functions", name):
                raise QueryNotAllowedError(
                    f"CALL {name} is not on the read-only allow-list of the embedded store (Ladybug: "
                    f"no APOC, no settings, no file readers); {EXTEND}"
                )
        for name in sorted(n for n in sites.functions if "." in n):
            raise QueryNotAllowedError(
                f"function {name}() is not on the read-only allow-list (the embedded store has no APOC)"
            )
    if dialect == "neo4j":
        for name in sorted(sites.procedures):
            if not allow.allows("neo4j_procedures", name):
                raise QueryNotAllowedError(f"procedure {name} is not on the read-only allow-list; {EXTEND}")
        for name in sorted(sites.functions):
            known = catalog is None or name.lower() in catalog.functions or name.lower() in _CONSTRUCTS
            if not known:
                hint = "labels(n) gives a node's labels" if name.lower() == "label" else None
                raise CypherError(f"Neo4j 5 has no function {name}()", stage="plan", hint=hint)
            if allow.denied(name):
                raise QueryNotAllowedError(_DENIED.format(name=name))
            if not allow.allows("neo4j_functions", name):
                raise QueryNotAllowedError(f"function {name}() is not on the read-only allow-list; {EXTEND}")
    return sites


_DENIED = (
    "function {name}() is refused: the size of what it builds is set by a number argument, on the "
    "server's heap outside the per-transaction memory limit and the timeout; build the list or "
    "text in Cypher instead (list comprehensions are memory-limited)"
)


def _at_clause(toks: list[Token], i: int) -> bool:
    """Whether token i starts a statement: first, after `;`, `{`, `}`, EXPLAIN/PROFILE, or after a
    leading `CYPHER …` options prefix."""
    if i == 0 or toks[i - 1].text in (";", "{", "}") or toks[i - 1].word() in ("explain", "profile"):
        return True
    return toks[0].word() == "cypher" and not any(t.word() in _CLAUSES for t in toks[1:i])


_CLAUSES = _words(
    """
    match optional with return call unwind create merge load use foreach union
    """
)


# --- 2. the plan --------------------------------------------------------------------------------


@dataclass
class Catalog:
    """What the Neo4j server reports: procedure name (lower case) → mode; function names (lower)."""

    procedures: Mapping[str, str]
    functions: frozenset[str]


_PROCEDURE_DETAILS = re.compile(r"^\s*((?:`[^`]*`|[^\W\d]\w*)(?:\s*\.\s*(?:`[^`]*`|[^\W\d]\w*))*)\s*\(")
_CONSTRUCTS = frozenset({"shortestpath", "allshortestpaths"})


def neo4j_plan(plan: Mapping[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """(operators without their `@runtime` suffix, procedures called, functions in the details)."""
    operators: set[str] = set()
    procedures: set[str] = set()
    functions: set[str] = set()
    pending = [plan]
    while pending:
        step = pending.pop()
        operator = str(step.get("operatorType", "")).split("@")[0]
        operators.add(operator)
        args = step.get("args") or step.get("arguments") or {}
        details = str(args.get("Details") or "")
        if operator == "ProcedureCall":
            found = _PROCEDURE_DETAILS.match(details)
            procedures.add(found.group(1).replace("`", "").replace(" ", "") if found else f"?{details[:60]}")
            details = details[found.end() :] if found else ""
        if details:
            functions |= call_sites(details).functions
        pending.extend(step.get("children") or [])
    return operators, procedures, functions


def check_neo4j_plan(
    query_type: str, plan: Mapping[str, Any], sites: CallSites, catalog: Catalog, allow: AllowList
) -> None:
    """Refuse unless EXPLAIN says read ('r') and every operator, procedure and function is allowed
    and identified. Raises QueryNotAllowedError."""
    if query_type != "r":
        what = {"w": "writes", "rw": "reads and writes", "s": "changes the schema"}.get(
            query_type, query_type
        )
        raise QueryNotAllowedError(
            f"only read queries may run here; this one {what} (query type {query_type!r})"
        )
    operators, procedures, functions = neo4j_plan(plan)
    if "LoadCSV" in operators:
        raise QueryNotAllowedError("queries here may not load files or URLs (LoadCSV)")
    for operator in sorted(operators):
        if not allow.allows("neo4j_operators", operator):
            raise QueryNotAllowedError(f"only read queries may run here; this one would run {operator}")
    for name in sorted(procedures | sites.procedures):
        mode = catalog.procedures.get(name.lower())
        if name.startswith("?") or mode is None:
            raise QueryNotAllowedError(f"cannot identify the procedure called ({name.lstrip('?')}); refused")
        if not allow.allows("neo4j_procedures", name):
            raise QueryNotAllowedError(f"procedure {name} is not on the read-only allow-list; {EXTEND}")
        if mode.upper() != "READ":
            raise QueryNotAllowedError(
                f"procedure {name} runs in mode {mode}; only READ procedures may run here"
            )
    for name in sorted(functions | sites.functions):
        lowered = name.lower()
        if name in functions and name not in sites.functions and allow.allows("neo4j_planner", name):
            continue  # an expression the planner wrote into the plan, e.g. getDegree(d, OUTGOING)
        if lowered not in catalog.functions and lowered not in _CONSTRUCTS and lowered not in _KEYWORDS:
            raise QueryNotAllowedError(f"cannot identify the function {name}(); refused")
        if allow.denied(name):
            raise QueryNotAllowedError(_DENIED.format(name=name))
        if lowered not in _KEYWORDS and not allow.allows("neo4j_functions", name):
            raise QueryNotAllowedError(f"function {name}() is not on the read-only allow-list; {EXTEND}")


_EMBEDDED_OPERATOR = re.compile(r"([A-Z][A-Z_]+)\[\d+\]")
_EMBEDDED_FUNCTION = re.compile(r"Function: (\w+)")


def check_embedded_plan(plan_text: str, allow: AllowList) -> None:
    """Refuse unless every operator of Ladybug's EXPLAIN text is a read operator and every table
    function it calls is allowed. Raises QueryNotAllowedError."""
    for operator in dict.fromkeys(_EMBEDDED_OPERATOR.findall(plan_text)):
        if not allow.allows("embedded_operators", operator):
            raise QueryNotAllowedError(f"only read queries may run here; this one would run {operator}")
    for function in dict.fromkeys(_EMBEDDED_FUNCTION.findall(plan_text)):
        if not allow.allows("embedded_table_functions", function):
            raise QueryNotAllowedError(
                f"table function {function.lower()} is not on the read-only allow-list "
                f"(files, settings and extensions are not read here); {EXTEND}"
            )


# --- engine errors and dialect help ---------------------------------------------------------------

_HINTS: dict[str, list[tuple[re.Pattern[str], str]]] = {
    "embedded": [
        (
            re.compile(r"ORDER BY must be followed by SKIP or LIMIT", re.I),
            "add LIMIT after ORDER BY in WITH on the embedded store (Ladybug), or sort in RETURN",
        ),
        (
            re.compile(r"function LABELS does not exist", re.I),
            "one label per node on the embedded store: use label(n) instead of labels(n)",
        ),
        (
            re.compile(r"function (\w+) does not exist", re.I),
            r"Ladybug Cypher has no function \1: CALL show_functions() RETURN name lists the ones it has",
        ),
        (
            re.compile(r"Table (\w+) does not exist", re.I),
            r"no node or relationship table \1: CALL show_tables() RETURN name lists them",
        ),
        (
            re.compile(r"Cannot find property (\w+) for (\w+)", re.I),
            r"\2 has no property \1: CALL table_info('<Label>') RETURN name lists the properties",
        ),
        (
            re.compile(r"shortestPath", re.I),
            "Ladybug Cypher writes shortest paths as (a)-[:TYPE* SHORTEST 1..10]->(b)",
        ),
        (
            re.compile(r"CALL \{|CALL \(", re.I),
            "Ladybug Cypher has no CALL { … } subqueries: use WITH, OPTIONAL MATCH or COUNT { … }",
        ),
        (
            re.compile(r"Parser exception", re.I),
            "check the syntax against Ladybug Cypher (embedded store), e.g. one label per node",
        ),
    ],
    "neo4j": [
        (
            re.compile(r"Unknown function 'label'", re.I),
            "Neo4j has labels(n), a list, rather than label(n)",
        ),
        (
            re.compile(r"Unknown function '([\w.]+)'", re.I),
            r"Neo4j 5 has no function \1",
        ),
        (
            re.compile(r"Variable `(\w+)` not defined", re.I),
            r"carry \1 through each WITH that comes before its use",
        ),
    ],
}


def engine_error(dialect: str, message: str, *, stage: str, query: str = "") -> CypherError:
    """The engine's message on one line (position markers dropped), with what to change if known."""
    first = next((line.strip() for line in message.splitlines() if line.strip()), message.strip())
    first = re.sub(r"^.*? refused the query: ", "", first, count=1)
    first = re.sub(r"\s*\(line \d+, column \d+ \(offset: \d+\)\)", "", first)[:400]
    hint = None
    for pattern, text in _HINTS.get(dialect, []):
        found = pattern.search(message) or (
            pattern.search(query) if "shortestPath" in pattern.pattern else None
        )
        if found:
            hint = found.expand(text)
            break
    engine = "Ladybug" if dialect == "embedded" else "Neo4j"
    return CypherError(f"{engine} rejected the query: {first}", stage=stage, hint=hint)


DIALECTS = {
    "neo4j": (
        "Neo4j 5 Cypher answers. labels(n) is a list (there is no label(n)); lists are 0-based. "
        "CALL { … } "
        "subqueries, EXISTS { … }, COUNT { … } and shortestPath(…) work. Procedures allowed: "
        "db.labels(), db.relationshipTypes(), db.propertyKeys(), db.schema.*; pure APOC functions "
        "(apoc.text.*, apoc.coll.*, apoc.map.*, apoc.convert.*, apoc.date.*, apoc.math.*)."
    ),
    "embedded": (
        "Ladybug Cypher answers (the embedded store, close to Neo4j's). Differences: one label per "
        "node (label(n) is a string; labels(n) does not exist); ORDER BY inside WITH needs SKIP or "
        "LIMIT (`WITH d ORDER BY d.created_at LIMIT 10`); no CALL { … } subqueries; shortest paths "
        "are written (a)-[:T* SHORTEST 1..10]->(b); lists are 1-based (list[1] is the first); a "
        "pattern may use one relationship twice (add WHERE a <> b); no APOC, no reduce(); "
        "CALL show_tables() RETURN * lists the labels and relationship types, CALL "
        "table_info('Decision') RETURN * the properties."
    ),
}


DIALECTS["scoped-neo4j"] = (
    "This tool is scoped: a copy of the scope's part of the Neo4j graph answers, in the Ladybug "
    "engine. Write Neo4j Cypher: labels(n), type(r), toString/toInteger/toFloat/toBoolean, toLower/"
    "toUpper, substring(s, i, n) counting from 0, head()/last(), datetime()/date(), and ORDER BY "
    "inside WITH without LIMIT are translated. What differs still: lists are indexed from 1 "
    "(list[1] is the first); no CALL { … } subqueries and no db.* procedures or APOC (CALL "
    "show_tables() RETURN * lists the labels and relationship types); a pattern may use one "
    "relationship twice (add WHERE a <> b); shortest paths are (a)-[:T* SHORTEST 1..10]->(b). "
    "Errors come from Ladybug."
)


def dialect_note(dialect: str) -> str:
    """One paragraph for a tool description: which engine answers and where its dialect differs."""
    return DIALECTS.get(dialect, DIALECTS["neo4j"])
