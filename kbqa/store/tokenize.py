"""Tokens for the lexical (BM25) index: jieba search-mode words for Chinese, Snowball-stemmed
lower-case words for English (the words themselves come from ingest.textfacts). Bump VERSION when
the output changes: catalogs re-tokenize."""

from __future__ import annotations

import re

from ingest.textfacts import content_words, stem, words

VERSION = "3"


def tokens(text: str) -> list[str]:
    """Index tokens: every word (stop words too: they cost little and phrase queries keep working)."""
    return [stem(t) for t in words(text)]


def query_tokens(text: str) -> list[str]:
    """Distinct query words without stop words."""
    return content_words(text)


_YEAR = re.compile(r"(?:19|20)\d\d")


def name_tokens(text: str, query: bool = False) -> list[str]:
    """Tokens for matching a question to document descriptions: the index tokens (the query's
    content words) plus, for a word that glues a year to letters ("fy2018", "2023q2"), the year and
    the rest on their own, so "Q2 of fiscal 2023" meets "AMCOR_2023Q2_10Q"; for a question, also
    each pair of neighbouring English words glued together."""
    out: list[str] = []
    for word in query_tokens(text) if query else tokens(text):
        out.append(word)
        m = _YEAR.search(word)
        if m and len(word) > 4 and any(ch.isalpha() for ch in word):
            out.append(m.group(0))
            out += [rest for rest in (word[: m.start()], word[m.end() :]) if len(rest) >= 2]
    if query:  # two words a file name glues together: "Best Buy" meets "BESTBUY_2023_10K.pdf"
        raw = [w for w in words(text) if w.isascii() and w.isalpha()]
        out += [stem(a + b) for a, b in zip(raw, raw[1:])]
    return out
