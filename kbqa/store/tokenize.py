"""Tokens for the lexical (BM25) index: jieba search-mode words for Chinese, Snowball-stemmed
lower-case words for English (the words themselves come from ingest.textfacts). Bump VERSION when
the output changes: catalogs re-tokenize."""

from __future__ import annotations

from ingest.textfacts import content_words, stem, words

VERSION = "2"


def tokens(text: str) -> list[str]:
    """Index tokens: every word (stop words too: they cost little and phrase queries keep working)."""
    return [stem(t) for t in words(text)]


def query_tokens(text: str) -> list[str]:
    """Distinct query words without stop words."""
    return content_words(text)
