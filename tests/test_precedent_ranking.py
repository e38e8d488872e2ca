"""Precedent ranking on both stores: the marked precedent section stays out of the index, the
embedded store's BM25/vector index beside its file, lessons, diversity and bad queries."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from contextgraph.cli import cli
from contextgraph.errors import EmbeddingError
from contextgraph.ingest.embeddings import HashingEmbedder, Model2VecEmbedder, Vectors, embed_pending
from contextgraph.ingest.mapping import PRECEDENTS_END, PRECEDENTS_START
from contextgraph.retrieval.precedents import (
    SIGNALS,
    QueryTextError,
    find_lessons,
    find_similar_decisions,
    lessons_prompt,
)
from contextgraph.store import EmbeddedStore, GraphStore

from . import cases as c
from .builders import SHARED_MODEL

QUOTED = "zebrafrost protocol: page the duty manager within fifteen minutes"
SUPPORT = (c.SUPPORT_DAG, c.SUPPORT_POINT)


def _invoice_case(id: str, body_tail: str) -> c.Case:
    return c.Case(
        id,
        "invoice_copy",
        "Need a copy of invoice 4411",
        "Hi, please send me a PDF copy of invoice 4411 for our accountant." + body_tail,
        "Here is how to download invoice 4411: Billing > Invoices > Download.",
        c.APPROVE,
        "Correct self-service path",
    )


def test_a_quoted_precedent_reason_does_not_find_the_decision_that_quoted_it(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    section = f"\n\n{PRECEDENTS_START}\n1. API down: **Escalate to CRE** because “{QUOTED}”\n{PRECEDENTS_END}"
    marked = _invoice_case("marked", section)
    # The same quote without the marker: what the index would hold if the ingest did not strip it.
    unmarked = _invoice_case("unmarked", section.replace(PRECEDENTS_START, "").replace(PRECEDENTS_END, ""))
    keys = c.write_cases(store, embedder, [*c.CASES, marked, unmarked])

    by_words = find_similar_decisions(store, embedder, QUOTED, k=10, mode="text")
    assert keys["marked"] not in {p.key for p in by_words}
    assert by_words and by_words[0].key == keys["unmarked"]  # the control: unmarked, it would be found
    hybrid = find_similar_decisions(store, embedder, QUOTED, k=5, point=SUPPORT)
    assert keys["marked"] not in {p.key for p in hybrid[:3]}, [p.subject for p in hybrid]


def test_lessons_fold_agreeing_decisions_and_keep_the_exceptions(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    def charged(i: int, chosen: str, reason: str) -> c.Case:
        return c.Case(
            f"dup-{i}",
            "double_charge",
            "Charged twice this month",
            f"My card was charged twice for the monthly invoice (order {1000 + i}). Please refund one.",
            "Sorry about that! I have refunded both charges.",
            chosen,
            reason,
        )

    folded = [charged(i, c.MANUAL, "Only the duplicate charge is refundable, not both") for i in range(4)]
    exception = charged(9, c.ESCALATE, "Only the duplicate is refundable, and above $5,000 finance decides")
    keys = c.write_cases(store, embedder, [*c.CASES, *folded, exception])

    lessons = find_lessons(store, embedder, "Charged twice for the November invoice", point=SUPPORT)

    assert lessons, "no lessons"
    for lesson in lessons:
        assert sum(lesson.shares.values()) == lesson.count == len(lesson.exemplars) + len(lesson.exceptions)
        assert all(" / ".join(e.chosen_options) == lesson.decided for e in lesson.exemplars)
        assert all(" / ".join(e.chosen_options) != lesson.decided for e in lesson.exceptions)
        members = lesson.exemplars + lesson.exceptions
        assert lesson.latest.responded_at == max(e.responded_at for e in members if e.responded_at)
    top = lessons[0]
    assert top.decided == c.MANUAL and top.shares[c.MANUAL] >= 4, lessons_prompt(lessons)
    assert {keys[x.id] for x in folded} <= {e.key for e in top.exemplars}
    assert keys["dup-9"] in {e.key for e in top.exceptions}
    assert top.shares[c.ESCALATE] == sum(e.chosen_options == [c.ESCALATE] for e in top.exceptions)
    assert top.reason == "Only the duplicate charge is refundable, not both"
    prompt = lessons_prompt(lessons)
    assert f"{top.shares[c.MANUAL]} of {top.count}: {c.MANUAL}" in prompt and "exception" in prompt


def test_near_copies_do_not_fill_the_results(store: GraphStore, embedder: Model2VecEmbedder) -> None:
    copies = [
        c.Case(
            f"copy-{i}",
            "feature_request",
            "Feature request: dark mode for the dashboard",
            "Our analysts work late and the bright dashboard is tiring. Could you add a dark mode theme?",
            "Thanks! Dark mode is coming next month.",
            c.MANUAL,
            "check the roadmap first",
        )
        for i in range(5)
    ]
    keys = c.write_cases(store, embedder, [*c.CASES, *copies])
    copy_keys = {keys[x.id] for x in copies} | {keys["fr-dark-mode"]}
    text = "Customer asks for a dark mode theme on the dashboard"

    plain = find_similar_decisions(store, embedder, text, k=3, point=SUPPORT, diversify=False)
    diverse = find_similar_decisions(store, embedder, text, k=3, point=SUPPORT)

    assert sum(p.key in copy_keys for p in plain) == 3
    assert diverse[0].key in copy_keys and sum(p.key in copy_keys for p in diverse) == 1


def test_signals_can_be_switched_off(store: GraphStore, embedder: Model2VecEmbedder) -> None:
    c.write_cases(store, embedder, c.CASES)
    words = find_similar_decisions(store, embedder, c.SEED_QUERY, k=5, signals={"text"})
    assert words and all(p.signals.vector_rank is None and p.signals.text_rank for p in words)
    assert set(SIGNALS) == {"vector", "text", "point", "usefulness"}
    with pytest.raises(ValueError, match="unknown signals"):
        find_similar_decisions(store, embedder, c.SEED_QUERY, signals={"vibes"})


# --- bad queries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * (1 << 20), "1,048,576 characters"),
        ("the and of to is it", "no words"),
        ("🙂🔥🚀 !!! ???", "no words"),
    ],
)
def test_a_query_without_a_case_is_refused_with_why(
    store: GraphStore, embedder: Model2VecEmbedder, text: str, why: str
) -> None:
    c.write_cases(store, embedder, c.CASES[:5])
    for search in (find_similar_decisions, find_lessons):
        with pytest.raises(QueryTextError, match=why) as error:
            search(store, embedder, text)
        assert "\n" not in str(error.value)


def test_another_language_ranks_by_meaning_without_failing(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    c.write_cases(store, embedder, c.CASES)
    found = find_similar_decisions(store, embedder, "Me cobraron dos veces la factura de marzo", k=5)
    assert len(found) == 5 and all(p.chosen_options for p in found)
    assert all(p.signals.vector_rank is not None or p.signals.text_rank is not None for p in found)


class _OtherWidth(HashingEmbedder):
    """The stored model's name with another width: as when an endpoint's model changes size."""

    def __init__(self, name: str, dimensions: int) -> None:
        self.name = name
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors: Vectors = np.ones((len(texts), self.dimensions), dtype=np.float32) / np.sqrt(self.dimensions)
        return vectors


def test_another_embedding_model_says_what_to_run(store: GraphStore, embedder: Model2VecEmbedder) -> None:
    c.write_cases(store, embedder, c.CASES[:5])
    with pytest.raises(EmbeddingError, match="contextgraph embed") as other_model:
        find_similar_decisions(store, HashingEmbedder(), "customer charged twice")
    assert embedder.name in str(other_model.value)
    with pytest.raises(EmbeddingError, match=r"dimensions.*contextgraph embed"):
        find_similar_decisions(store, _OtherWidth(embedder.name, 64), "customer charged twice")


# --- the embedded store's index beside its file -------------------------------------------------


def test_the_embedded_index_persists_follows_ingest_and_rebuilds(
    tmp_path: Path, embedder: Model2VecEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "graph.lbdb"
    store = EmbeddedStore(path)
    store.ensure_schema()
    keys = c.write_cases(store, embedder, c.CASES)
    folder = path.with_name(path.name + ".index")
    # Generation 1 of the index (`store.sidecar`): its BM25 folder and vector matrix, named by meta.json.
    assert (
        (folder / "meta.json").is_file()
        and (folder / "bm25.1").is_dir()
        and (folder / "vectors.1.npy").is_file()
    )
    first = [p.key for p in find_similar_decisions(store, embedder, c.SEED_QUERY, point=SUPPORT)]
    assert keys["fr-dark-mode"] in first
    store.close()

    built = (folder / "meta.json").stat().st_mtime_ns
    reopened = EmbeddedStore(path)  # a new process: the index is read from disk, not rebuilt
    assert [p.key for p in find_similar_decisions(reopened, embedder, c.SEED_QUERY, point=SUPPORT)] == first
    assert (folder / "meta.json").stat().st_mtime_ns == built

    later = c.Case(
        "later",
        "feature_request",
        "Feature request: quokka-shaped cost attribution",
        "Could the cost report group spend by quokka?",
        "Quokka grouping ships next week.",
        c.MANUAL,
        "check the roadmap first",
    )
    batch, later_keys = c.build_batch([later], start_index=500)
    reopened.write(batch)
    embed_pending(reopened, embedder)  # what `contextgraph ingest` runs after the sync
    assert find_similar_decisions(reopened, embedder, "quokka", mode="text")[0].key == later_keys["later"]
    reopened.close()

    for item in sorted(folder.rglob("*"), reverse=True):
        item.rmdir() if item.is_dir() else item.unlink()
    folder.rmdir()
    monkeypatch.setenv(
        "CONTEXTGRAPH_EMBEDDING_MODEL", os.environ.get("CONTEXTGRAPH_EMBEDDING_MODEL") or str(SHARED_MODEL)
    )
    result = CliRunner().invoke(cli, ["--store-path", str(path), "reindex"])
    assert result.exit_code == 0, result.output
    assert f"{len(c.CASES) + 1} decisions" in result.output and (folder / "meta.json").is_file()
    result = CliRunner().invoke(
        cli, ["--store-path", str(path), "lessons", "quokka cost attribution", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert later_keys["later"] in result.output


class _Reverse:
    """A reranker that puts the fused order upside down (and records what it was shown)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def rerank(self, query: str, candidates: Sequence[tuple[str, str]]) -> list[str]:
        self.seen = list(candidates)
        return [key for key, _ in reversed(candidates)]


def test_a_reranker_reorders_the_best_candidates(
    embedded_store: EmbeddedStore, embedder: Model2VecEmbedder
) -> None:
    c.write_cases(embedded_store, embedder, c.CASES)
    fused = find_similar_decisions(embedded_store, embedder, c.SEED_QUERY, k=20, diversify=False)
    reverse = _Reverse()
    reranked = find_similar_decisions(
        embedded_store, embedder, c.SEED_QUERY, k=20, diversify=False, reranker=reverse
    )
    assert [p.key for p in reranked] == [p.key for p in reversed(fused)]
    assert [p.score for p in reranked] == sorted((p.score for p in reranked), reverse=True)
    assert any("check the roadmap first" in text for _, text in reverse.seen)


def _thread(new: str, old: c.Case, style: str) -> str:
    """`new` as a reply on top of a quoted earlier exchange about `old`, as mail clients write it."""
    history = f"{old.subject}\n{old.body}\n{old.proposal}"
    if style == "gmail":
        quoted = "\n".join(f"> {line}" for line in history.splitlines() * 3)
        header = "On Mon, Nov 3, 2026 at 10:12 AM Support <support@example.com> wrote:"
        return f"{new}\n\nThanks,\nMaria\n\n{header}\n{quoted}"
    return (
        f"{new}\n\n-----Original Message-----\nFrom: Support Team\nSent: Monday, November 3, 2026 10:12 AM\n"
        f"To: Maria\nSubject: RE: {old.subject}\n\n{history}\n{history}"
    )


def _html(text: str) -> str:
    """`text` as an Outlook-style HTML email body."""
    body = "".join(
        f"<p class=MsoNormal>{html.escape(line).replace(' ', '&nbsp;')}</p>" for line in text.splitlines()
    )
    return (
        "<html><head><style>p.MsoNormal{font-family:Calibri,sans-serif;font-size:11pt;color:#1F497D;"
        "margin:0cm;mso-fareast-language:EN-US}</style></head><body><div class=WordSection1 "
        f'style="font-family:Calibri,sans-serif;font-size:11pt">{body}</div></body></html>'
    )


def test_a_pasted_email_is_searched_by_its_new_message_not_its_quoted_history_or_markup(
    store: GraphStore, embedder: Model2VecEmbedder
) -> None:
    """An agent pastes a whole email: quoted history about another kind of case (three times as
    long as the new message) must not decide the ranking, nor must HTML tags, styles and entities."""
    keys = c.write_cases(store, embedder, c.CASES)
    kind = {keys[case.id]: case.kind for case in c.CASES}
    pairs = [(a, b) for a in c.CASES[::4] for b in c.CASES[2::5] if a.kind != b.kind][:4]
    assert len(pairs) == 4
    for new, old in pairs:
        text = f"{new.subject}\n{new.body}"
        plain = [p.key for p in find_similar_decisions(store, embedder, text, k=3)]
        assert kind[plain[0]] == new.kind  # the control: the message alone finds its kind
        for style in ("gmail", "outlook"):
            found = find_similar_decisions(store, embedder, _thread(text, old, style), k=3)
            assert [p.key for p in found] == plain, (style, new.id, old.id, [p.subject for p in found])
            lessons = find_lessons(store, embedder, _thread(text, old, style), k=1)
            assert lessons and kind[lessons[0].exemplars[0].key] == new.kind
        found = find_similar_decisions(store, embedder, _html(text), k=3)
        assert [p.key for p in found] == plain, (new.id, [p.subject for p in found])


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (
            ["--dag", "ai_support_ticket_sytem"],
            f"no decision of DAG 'ai_support_ticket_sytem' \\(DAGs with decisions: {c.SUPPORT_DAG}",
        ),
        (["--task", "review"], f"no decision at task 'review' \\(decision points: {c.SUPPORT_POINT}"),
        (
            ["--chosen", c.MANUAL.lower()],
            f"no decision chose '{c.MANUAL.lower()}' \\(option labels are matched exactly",
        ),
        (["--since", "2099-01-01"], "no decision answered since 2099-01-01 00:00 UTC"),
    ],
)
def test_a_filter_that_keeps_nothing_says_why(
    tmp_path: Path, embedder: Model2VecEmbedder, flags: list[str], why: str
) -> None:
    """A typo in --dag/--task/--chosen or a --since in the future: an empty result (`[]` on stdout
    for --json) and one line on stderr naming the filter and what the graph has."""
    path = tmp_path / "graph.lbdb"
    store = EmbeddedStore(path)
    store.ensure_schema()
    c.write_cases(store, embedder, c.CASES[:6])
    store.close()
    result = CliRunner().invoke(
        cli, ["--store-path", str(path), "similar", "dark mode please", "--words-only", "--json", *flags]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "[]"
    assert result.stderr.startswith("nothing found of 6 decisions: ") and len(result.stderr.splitlines()) == 1
    assert re.search(why, result.stderr), result.stderr
