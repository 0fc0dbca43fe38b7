"""Which passage of a retrieved chunk matched the question: for highlighting it in a source view."""

from __future__ import annotations

import re

_END = re.compile(r"[。！？!?；;]|\.(?=\s|$)|\n")


def _sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _grams(text: str) -> set[str]:
    """Lower-cased words and CJK character pairs: enough to compare a question and a sentence."""
    text = text.lower()
    words = set(re.findall(r"[a-z0-9]{2,}", text))
    cjk = "".join(ch for ch in text if "\u3400" <= ch <= "\u9fff")
    return words | {cjk[i : i + 2] for i in range(len(cjk) - 1)}


def passage_span(text: str, question: str) -> tuple[int, int] | None:
    """(start, end) of the sentence of text sharing most with the question; None when none shares anything."""
    wanted = _grams(question)
    best, best_score = None, 0.0
    for a, b in _sentences(text):
        sentence = text[a:b]
        if not sentence.strip():
            continue
        shared = len(wanted & _grams(sentence))
        score = shared / (1 + 0.002 * len(sentence))
        if shared and score > best_score:
            best, best_score = (a, b), score
    if best is None:
        return None
    start, end = best
    while start < end and text[start].isspace():
        start += 1
    return start, end
