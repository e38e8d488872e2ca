"""Neo4j Cypher idioms in Ladybug's dialect, for a scoped view of a Neo4j graph.

A scoped store (`contextgraph.governance.scope.ScopedStore`) answers from an in-memory Ladybug copy of the
scope, whichever store holds the graph. An agent bound to a Neo4j graph writes Neo4j Cypher, so the
scoped view rewrites the common idioms Ladybug spells otherwise before the read-only gate sees the
query (the gate then checks what will actually run):

    labels(x)            -> [label(x)]            (one label per node)
    type(r)              -> label(r)
    toString(x)          -> to_string(x)           toInteger(x) -> to_int64(x)
    toFloat(x)           -> to_double(x)           toBoolean(x) -> to_bool(x)
    toLower(x), toUpper(x) -> lower(x), upper(x)
    substring(s, i[, n]) -> substring(s, (i) + 1, n | size(s))   (Neo4j counts from 0, Ladybug from 1)
    head(l), last(l)     -> list_extract(l, 1), list_extract(l, size(l))
    datetime(), date()   -> current_timestamp(), current_date()   (no arguments only)
    WITH … ORDER BY …    -> WITH … ORDER BY … SKIP 0   (Ladybug wants SKIP or LIMIT there)

Only code outside string literals, quoted names and comments is rewritten. List indexes are not:
`list[0]` is the first element in Neo4j, `list[1]` in Ladybug (the tool's description says so).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# A string literal, a back-quoted name, or a comment: copied untouched.
_OPAQUE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|//[^\n]*|/\*.*?\*/", re.S)
_RENAMES = {
    "tostring": "to_string",
    "tointeger": "to_int64",
    "tofloat": "to_double",
    "toboolean": "to_bool",
    "tolower": "lower",
    "toupper": "upper",
    "type": "label",
}
_CALL = re.compile(
    r"(?<![\w.$])(labels|type|tostring|tointeger|tofloat|toboolean|tolower|toupper|substring|head|last"
    r"|datetime|date)\s*\(",
    re.I,
)
_CLAUSE = re.compile(
    r"\b(MATCH|OPTIONAL\s+MATCH|RETURN|WITH|UNWIND|CALL|WHERE|UNION|SKIP|LIMIT|ORDER\s+BY)\b", re.I
)


def neo4j_to_ladybug(cypher: str) -> str:
    """The query with the Neo4j idioms of the module's table in Ladybug's spelling."""
    kept: list[str] = []

    def hide(found: re.Match[str]) -> str:
        kept.append(found.group(0))
        return f"\x00{len(kept) - 1}\x00"

    code = _order_in_with(_code(_OPAQUE.sub(hide, cypher)))
    return re.sub("\x00(\\d+)\x00", lambda found: kept[int(found.group(1))], code)


def _code(text: str) -> str:
    """Rewrite the function calls of code whose literals are hidden."""
    result, pos = [], 0
    while True:
        found = _CALL.search(text, pos)
        if found is None:
            result.append(text[pos:])
            return "".join(result)
        close = _matching(text, found.end() - 1)
        if close is None:  # unbalanced: leave the rest to the engine's error
            result.append(text[pos:])
            return "".join(result)
        name = found.group(1).lower()
        args = _split_args(text[found.end() : close])
        inner = [_code(a) for a in args]
        result.append(text[pos : found.start()])
        result.append(_REWRITES.get(name, _rename(name))(found.group(1), inner))
        pos = close + 1


def _rename(name: str) -> Callable[[str, list[str]], str]:
    return lambda _written, args: f"{_RENAMES[name]}({', '.join(a.strip() for a in args)})"


def _labels(written: str, args: list[str]) -> str:
    return f"[label({args[0].strip()})]" if len(args) == 1 else f"{written}({', '.join(args)})"


def _substring(written: str, args: list[str]) -> str:
    if len(args) not in (2, 3):
        return f"{written}({', '.join(args)})"
    s, start = args[0].strip(), args[1].strip()
    length = args[2].strip() if len(args) == 3 else f"size({s})"
    return f"substring({s}, ({start}) + 1, {length})"


def _head(written: str, args: list[str]) -> str:
    return f"list_extract({args[0].strip()}, 1)" if len(args) == 1 else f"{written}({', '.join(args)})"


def _last(written: str, args: list[str]) -> str:
    if len(args) != 1:
        return f"{written}({', '.join(args)})"
    value = args[0].strip()
    return f"list_extract({value}, size({value}))"


def _now(name: str) -> Callable[[str, list[str]], str]:
    def rewrite(written: str, args: list[str]) -> str:
        if args and any(a.strip() for a in args):
            return f"{written}({', '.join(args)})"  # date('2026-01-01') etc. exist in both
        return f"{name}()"

    return rewrite


_REWRITES: dict[str, Callable[[str, list[str]], str]] = {
    "labels": _labels,
    "substring": _substring,
    "head": _head,
    "last": _last,
    "datetime": _now("current_timestamp"),
    "date": _now("current_date"),
}


def _matching(text: str, open_at: int) -> int | None:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] in "([{":
            depth += 1
        elif text[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _split_args(text: str) -> list[str]:
    if not text.strip():
        return []
    args: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            args.append("".join(current))
            current = []
        else:
            current.append(char)
    args.append("".join(current))
    return args


def _order_in_with(cypher: str) -> str:
    """Add SKIP 0 to a WITH clause's ORDER BY that has neither SKIP nor LIMIT (literals hidden)."""
    clauses = list(_CLAUSE.finditer(cypher))
    inserts = []
    for i, clause in enumerate(clauses):
        if not clause.group(1).upper().startswith("ORDER"):
            continue
        owner = next((c for c in reversed(clauses[:i]) if not c.group(1).upper().startswith("ORDER")), None)
        if owner is None or owner.group(1).upper() != "WITH":
            continue
        after = clauses[i + 1] if i + 1 < len(clauses) else None
        if after is not None and after.group(1).upper() in ("SKIP", "LIMIT"):
            continue
        inserts.append(after.start() if after is not None else len(cypher.rstrip()))
    for at in reversed(inserts):
        cypher = f"{cypher[:at].rstrip()} SKIP 0 {cypher[at:]}"
    return cypher
