"""Which passage of a retrieved chunk matched the question: for highlighting it in a source view."""

from __future__ import annotations

from ingest.textfacts import sentence_spans, terms


def passage_span(text: str, question: str) -> tuple[int, int] | None:
    """(start, end) of the sentence of text sharing most with the question; None when none shares anything."""
    wanted = terms(question)
    best, best_score = None, 0.0
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        if not sentence.strip():
            continue
        shared = len(wanted & terms(sentence))
        score = shared / (1 + 0.002 * len(sentence))
        if shared and score > best_score:
            best, best_score = (a, b), score
    if best is None:
        return None
    start, end = best
    while start < end and text[start].isspace():
        start += 1
    return start, end
