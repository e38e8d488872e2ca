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


def stems(words: Sequence[str]) -> list[str]:
    """The Snowball stems of words (the BM25 index's vocabulary)."""
    return list(stemmer().stemWords(list(words)))


def tokenize_corpus(texts: Sequence[str]) -> list[list[str]]:
    """Each text as its stemmed content words, as the BM25 index stores them."""
    import bm25s

    out = bm25s.tokenize(
        list(texts), stopwords=STOPWORDS, stemmer=stemmer().stemWords, return_ids=False, show_progress=False
    )
    return [list(doc) for doc in out]


def lucene_escape(text: str) -> str:
    """Escape every character Lucene's query parser treats specially."""
    return _LUCENE_SPECIAL.sub(r"\\\1", text)


def lucene_query(words: Sequence[str], field: str | None = None) -> str:
    """Any of the words in the field (Neo4j's english analyzer stems them as it stemmed the index)."""
    if not words:
        return NO_WORDS
    query = " OR ".join(lucene_escape(word) for word in words)
    return f"{field}:({query})" if field else query
