"""Tokens for the lexical (BM25) index: jieba search-mode words for Chinese, Snowball-stemmed
lower-case words for English. Bump VERSION when the output changes: catalogs re-tokenize."""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

VERSION = "2"
_WORD = re.compile(r"[\w\u3400-\u9fff]+", re.UNICODE)
_ASCII_WORD = re.compile(r"[a-z]+")
_STOP = set(
    "的 了 是 在 和 与 及 或 也 都 就 而 之 其 这 那 有 为 以 于 对 从 把 被 让 吗 呢 吧 啊 么 什么 哪 哪些 哪个 怎么 怎样 如何 多少 几 谁 "
    "a an the of to in on at for by with is are was were be been being do does did what which who whom whose when where why how "
    "and or not no it its this that these those as from into than then there their they them he she his her you your i we our "
    "me my him us am has have had having can could would should will shall may might must about above after again against all "
    "any because before below between both during each few further here if just more most nor only other over own same so some "
    "such through too under until up very while out off once s t also many much one".split()
)


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


def _words(text: str) -> list[str]:
    out: list[str] = []
    for token in _jieba().cut_for_search(text):
        token = token.strip().lower()
        if token and _WORD.fullmatch(token):
            out.append(token)
    return out


def tokens(text: str) -> list[str]:
    """Index tokens: every word (stop words too: they cost little and phrase queries keep working)."""
    return [_stem(t) if _ASCII_WORD.fullmatch(t) else t for t in _words(text)]


def query_tokens(text: str) -> list[str]:
    """Distinct query words without stop words."""
    seen: dict[str, None] = {}
    for token in _words(text):
        if token not in _STOP:
            seen[_stem(token) if _ASCII_WORD.fullmatch(token) else token] = None
    return list(seen)
