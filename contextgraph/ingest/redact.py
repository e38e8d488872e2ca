"""Redaction at ingest: personal data in raw Airflow records replaced by typed placeholders.

Optional, per deployment (`CONTEXTGRAPH_REDACT=true`, or a list of kinds such as
`["email","card"]`; see `contextgraph.config.RedactSettings`). The sync wraps its source with
`redacting()`, so every raw record (DAGs, runs and their `conf`, task instances, HITL details with
subject, body, params, params_input and the answer, earlier tries, and the XCom values that become
proposals) is redacted *before* it is mapped, stored or embedded: nothing downstream ever sees the
original value.

Kinds and how each is found (libraries where one fits, regular expressions only for candidates):

- ``email`` → ``[EMAIL]``: a regular expression (the stdlib's `email.utils` parses headers, it does
  not find addresses in prose; no kept library does that better than a plain pattern).
- ``phone`` → ``[PHONE]``: `phonenumbers` (Google's libphonenumber port) `PhoneNumberMatcher` with
  VALID leniency, so a number must be a real, valid number of its region — which is what keeps
  order ids, amounts, dates and version strings out; international (+…) numbers are found in any
  region, national ones in the configured default region (`CONTEXTGRAPH_REDACT_REGION`, US).
- ``card`` → ``[CARD]``: candidates of 13-19 digits (spaces or dashes between groups) by a pattern,
  kept only if `stdnum.luhn` validates them (`python-stdnum`: maintained validators for hundreds
  of number formats), so a 16-digit order number that fails the checksum stays.
- ``iban`` → ``[IBAN]``: candidates by a pattern (two letters, two check digits, 11-30 more
  characters, spaced or not), kept only if `stdnum.iban` validates country format and checksum.
- ``ip`` → ``[IP]``: dotted-quad and IPv6-looking candidates by a pattern, kept only if the stdlib
  `ipaddress` parses them (so ``1.2.3`` or version ``10.2.0.999`` stays; ``3.3.2`` stays).

Custom kinds: `CONTEXTGRAPH_REDACT_PATTERNS` (JSON name → regular expression) adds
``[NAME]`` placeholders (name upper-cased); a pattern that does not compile is refused when the
settings are read, naming it.

Identity fields (dag/run/task ids, map index, try number, user ids, decision keys an agent listed as
precedents) are never rewritten: keys must stay stable, and who decided is governed by
`contextgraph forget --actor`, not by redaction.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

from contextgraph.config import REDACT_KINDS, RedactSettings

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "iban": "[IBAN]", "ip": "[IP]"}

# Keys whose values are identities, never redacted (anywhere in a record).
IDENTITY_KEYS = frozenset(
    {
        "dag_id",
        "dag_run_id",
        "run_id",
        "task_id",
        "map_index",
        "try_number",
        "id",
        "user_id",
        "key",
        "xcom_key",
        "precedents",
        "dag_display_name",
        "operator_name",
        "state",
        "run_type",
    }
)

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IPV4 = re.compile(r"(?<![\w])(?<!\d\.)\d{1,3}(?:\.\d{1,3}){3}(?!\w)(?!\.\d)")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


class Redactor:
    """Replaces personal data in text and nested values by typed placeholders.

    `kinds`: built-in kinds to find (subset of `REDACT_KINDS`); `patterns`: extra name → compiled
    regex; `region`: default region for national phone numbers (ISO 3166 alpha-2). `counts` tells
    how many values of each kind were replaced so far (never the values).
    """

    def __init__(
        self,
        kinds: frozenset[str] | set[str] = frozenset(REDACT_KINDS),
        patterns: Mapping[str, re.Pattern[str]] | None = None,
        region: str = "US",
    ) -> None:
        unknown = set(kinds) - set(REDACT_KINDS)
        if unknown:
            raise ValueError(f"unknown redaction kinds {sorted(unknown)}; known: {list(REDACT_KINDS)}")
        self.kinds = frozenset(kinds)
        self.patterns = dict(patterns or {})
        self.region = region
        self.counts: Counter[str] = Counter()
        steps: list[Callable[[str], str]] = []
        # Order matters: IBANs and cards before phones (a card's digits may look like a number),
        # e-mail before IP (an address may hold a dotted host).
        for kind, step in (
            ("email", self._emails),
            ("iban", self._ibans),
            ("card", self._cards),
            ("ip", self._ips),
            ("phone", self._phones),
        ):
            if kind in self.kinds:
                steps.append(step)
        self._steps = steps

    @classmethod
    def from_settings(cls, settings: RedactSettings) -> Redactor | None:
        """The redactor the settings ask for, or None when redaction is off."""
        kinds = settings.kinds()
        if not kinds and not settings.patterns:
            return None
        return cls(kinds, settings.compiled_patterns(), settings.region)

    # --- values ----------------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """The text with every finding replaced by its placeholder."""
        for step in self._steps:
            value = step(value)
        for name, pattern in self.patterns.items():
            value = self._sub(pattern, value, f"[{name.upper()}]", name)
        return value

    def value(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, text, scalars) with its texts redacted; identity keys
        (`IDENTITY_KEYS`) of dicts are kept as they are. Returns a new value."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: v if k in IDENTITY_KEYS else self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    # --- finders ---------------------------------------------------------------------------------

    def _sub(self, pattern: re.Pattern[str], text: str, placeholder: str, kind: str) -> str:
        def replace(match: re.Match[str]) -> str:
            self.counts[kind] += 1
            return placeholder

        return pattern.sub(replace, text)

    def _checked(self, pattern: re.Pattern[str], text: str, kind: str, valid: Callable[[str], bool]) -> str:
        def replace(match: re.Match[str]) -> str:
            if not valid(match.group(0)):
                return match.group(0)
            self.counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(replace, text)

    def _emails(self, text: str) -> str:
        return self._sub(_EMAIL, text, PLACEHOLDERS["email"], "email") if "@" in text else text

    def _cards(self, text: str) -> str:
        return self._checked(_CARD, text, "card", _is_card)

    def _ibans(self, text: str) -> str:
        return self._checked(_IBAN, text, "iban", stdnum_iban.is_valid)

    def _ips(self, text: str) -> str:
        text = self._checked(_IPV4, text, "ip", _is_ip)
        return self._checked(_IPV6, text, "ip", _is_ip) if "::" in text or text.count(":") >= 3 else text

    def _phones(self, text: str) -> str:
        if sum(c.isdigit() for c in text) < 7:
            return text
        matches = list(phonenumbers.PhoneNumberMatcher(text, self.region, phonenumbers.Leniency.VALID))
        for match in reversed(matches):  # right to left: earlier offsets stay valid
            if _glued(text, match.start, match.end):
                continue  # part of an id such as ORD-2026-700000, not a number on its own
            self.counts["phone"] += 1
            text = text[: match.start] + PLACEHOLDERS["phone"] + text[match.end :]
        return text


def _glued(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is glued to a longer token (letters, digits, `-_/#` around it)."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return before.isalnum() or before in "-_/#" or after.isalnum() or after in "-_/"


def _is_card(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


def _is_ip(candidate: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


# --- the sync's hook ------------------------------------------------------------------------------


class RedactingSource:
    """A sync `Source` whose records come out redacted; every other attribute is the wrapped one's."""

    def __init__(self, source: Any, redactor: Redactor) -> None:
        self._source = source
        self.redactor = redactor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_source", "redactor"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._source, name, value)

    def _each(self, records: Any) -> Iterator[Any]:
        for record in records:
            yield self.redactor.value(record)

    def dags(self) -> Iterator[dict[str, Any]]:
        return self._each(self._source.dags())

    def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self._each(self._source.tasks(dag_id)))

    def assets(self) -> Iterator[dict[str, Any]]:
        listed = getattr(self._source, "assets", None)  # optional in the Source protocol
        return self._each(listed() if listed is not None else ())

    def dag_runs(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._each(self._source.dag_runs(**kwargs))

    def task_instances(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._each(self._source.task_instances(**kwargs))

    def hitl_details(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._each(self._source.hitl_details(**kwargs))

    def hitl_detail_try(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.redactor.value(self._source.hitl_detail_try(*args, **kwargs))  # type: ignore[no-any-return]

    def xcom_value(self, *args: Any, **kwargs: Any) -> Any:
        return self.redactor.value(self._source.xcom_value(*args, **kwargs))

    def xcom_values(self, refs: Any) -> dict[Any, Any]:
        """Many XCom values at once (a source that reads them concurrently), each redacted."""
        many = getattr(self._source, "xcom_values", None)
        found = (
            many(refs)
            if many is not None
            else {
                ref: self._source.xcom_value(ref.dag_id, ref.run_id, ref.task_id, map_index=ref.map_index)
                for ref in refs
            }
        )
        return {ref: self.redactor.value(value) for ref, value in found.items()}


def redacting(source: Any, settings: RedactSettings | None = None) -> Any:
    """The source itself when redaction is off, else a `RedactingSource` over it.

    `settings`: default read from the environment (`CONTEXTGRAPH_REDACT*`); raises ConfigError
    when a custom pattern does not compile or a kind is unknown.
    """
    settings = settings if settings is not None else RedactSettings.load()
    redactor = Redactor.from_settings(settings)
    return source if redactor is None else RedactingSource(source, redactor)
