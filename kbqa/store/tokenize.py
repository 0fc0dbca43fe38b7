"""Tokens for the lexical (BM25) index: jieba search-mode words for Chinese, lower-cased words otherwise."""

from __future__ import annotations

import logging
import re
from functools import lru_cache

_WORD = re.compile(r"[\w\u3400-\u9fff]+", re.UNICODE)
_STOP = set(
    "的 了 是 在 和 与 及 或 也 都 就 而 之 其 这 那 有 为 以 于 对 从 把 被 让 吗 呢 吧 啊 么 什么 哪 哪些 哪个 怎么 怎样 如何 多少 几 谁 "
    "a an the of to in on at for by with is are was were be been being do does did what which who whom whose when where why how "
    "and or not no it its this that these those as from into than then there their they them he she his her you your i we our".split()
)


@lru_cache(maxsize=1)
def _jieba():  # type: ignore[no-untyped-def]
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokens(text: str) -> list[str]:
    out: list[str] = []
    for token in _jieba().cut_for_search(text):
        token = token.strip().lower()
        if token and _WORD.fullmatch(token):
            out.append(token)
    return out


def query_tokens(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for token in tokens(text):
        if token not in _STOP:
            seen[token] = None
    return list(seen)
