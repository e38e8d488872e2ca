"""Words for precedent search: one tokeniser for queries and for the embedded store's BM25 index.

A text becomes its words the way `bm25s` tokenises (lower case, runs of two or more word
characters, its standard English stop-word list removed); the embedded store then stems them with
the Snowball English stemmer (`PyStemmer`) for its BM25 index, and Neo4j hands the same words to its
full-text index, whose `english` analyzer stems them. No hand-written stop-word or suffix lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any

MAX_TERMS = 32
"""At most this many distinct words of a query are matched (the first ones)."""
STOPWORDS = "en"
"""bm25s's standard English stop-word list (the same list for the index and for queries)."""
_LUCENE_SPECIAL = re.compile(r'([+\-!(){}\[\]^"~*?:\\/]|&&|\|\|)')
NO_WORDS = "contextgraph_no_query_words"
"""A Lucene query that matches nothing (for a query without words)."""


@lru_cache(maxsize=1)
def stemmer() -> Any:
    """The Snowball English stemmer (PyStemmer); callable on a word or a list of words."""
    import Stemmer

    return Stemmer.Stemmer("english")


def query_terms(text: str, limit: int = MAX_TERMS) -> list[str]:
    """The distinct content words of `text`, lower-cased, in order, unstemmed (at most `limit`)."""
    import bm25s

    tokens = bm25s.tokenize(text, stopwords=STOPWORDS, return_ids=False, show_progress=False)
    seen: dict[str, None] = {}
    for word in tokens[0] if tokens else []:
        if not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)[:limit]


_HTML = re.compile(r"</?(?:html|head|body|div|p|br|span|table|tr|td|font|style|b|i|a|ul|li)\b[^>]*>", re.I)


class _Text(HTMLParser):
    """The text of an HTML document: no tags, no style/script/head content; blocks end lines."""

    _SKIP = frozenset({"style", "script", "head", "title"})
    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "blockquote", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skipping += tag in self._SKIP
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data.replace("\xa0", " "))


def query_text(text: str) -> str:
    """What a precedent query searches with: a pasted HTML email as its text (no tags, styles or
    entities), and of an email thread the new message only — its quoted history (`> …`, "On … wrote:",
    "-----Original Message-----", "From: … Sent: …") and signature left out (email-reply-parser).
    Text that has no words left after that is searched as given."""
    cleaned = text
    if _HTML.search(cleaned):
        parser = _Text()
        parser.feed(cleaned)
        parser.close()
        cleaned = "".join(parser.parts)
    from email_reply_parser import EmailReplyParser

    reply = EmailReplyParser.parse_reply(cleaned).strip()
    for candidate in (reply, cleaned.strip()):
        if candidate and query_terms(candidate):
            return candidate
    return text


def stems(words: Sequence[str]) -> list[str]:
    """The Snowball stems of words (the BM25 index's vocabulary)."""
    return list(stemmer().stemWords(list(words)))


def corpus_tokenizer() -> Any:
    """A bm25s `Tokenizer` that turns texts into the BM25 index's stemmed content words, as ids of
    one vocabulary that grows with each call (`tokenize(texts, update_vocab=True, return_as="ids",
    allow_empty=False)`), so a corpus can be tokenised a page at a time. Its words are those of
    `bm25s.tokenize` with this module's stop words and the Snowball stemmer (a text without any is
    no words, not the empty word)."""
    import bm25s

    return bm25s.tokenization.Tokenizer(stopwords=STOPWORDS, stemmer=stemmer())


def lucene_escape(text: str) -> str:
    """Escape every character Lucene's query parser treats specially."""
    return _LUCENE_SPECIAL.sub(r"\\\1", text)


def lucene_query(words: Sequence[str], field: str | None = None) -> str:
    """Any of the words in the field (Neo4j's english analyzer stems them as it stemmed the index)."""
    if not words:
        return NO_WORDS
    query = " OR ".join(lucene_escape(word) for word in words)
    return f"{field}:({query})" if field else query
