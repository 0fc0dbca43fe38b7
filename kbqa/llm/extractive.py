"""No generation: answer with the evidence sentences that best match the question, cited."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from kbqa.store.tokenize import query_tokens


def _terms(text: str) -> set[str]:
    words = set(query_tokens(text))
    cjk = "".join(ch for ch in text if "\u3400" <= ch <= "\u9fff")
    words |= {cjk[i : i + 2] for i in range(len(cjk) - 1)}
    return words


def sentences(text: str) -> list[str]:
    """Sentences of a chunk, without Markdown headings or table rules."""
    out = []
    for line in text.split("\n"):
        if re.match(r"^\s*(#{1,6}\s|\|?[-: |]+\|?\s*$)", line):
            continue
        parts = re.split(r"(?<=[。！？!?；;])|(?<=[.!?])\s+", line)
        out.extend(p.strip() for p in parts if p and len(p.strip()) > 1)
    return out


def best_sentences(question: str, evidence: list[tuple[int, str]], limit: int = 2) -> list[tuple[int, int, str, float]]:
    """(source number, position, sentence, score) of the sentences that best match the question,
    best first. Question terms are weighted by how rare they are among the candidate sentences,
    so the topic word every sentence repeats counts little and the distinctive ones decide."""
    q = _terms(question)
    if not q:
        return []
    candidates = [(n, pos, sent, _terms(sent)) for rank, (n, text) in enumerate(evidence) for pos, sent in enumerate(sentences(text))]
    if not candidates:
        return []
    df = {t: sum(1 for c in candidates if t in c[3]) for t in q}
    total = len(candidates)
    scored: list[tuple[int, int, str, float]] = []
    for n, pos, sent, terms in candidates:
        common = q & terms
        if not common:
            continue
        weight = sum(math.log(1 + total / df[t]) * (1.0 + 0.3 * min(len(t), 4)) for t in common)
        scored.append((n, pos, sent, weight / math.sqrt(1 + len(sent) / 120) - 0.02 * (n - 1)))
    scored.sort(key=lambda x: -x[3])
    return scored[:limit]


class ExtractiveLLM:
    name = "extractive"
    context = 100_000
    template = "none"

    def stream(self, messages: list[dict[str, str]], **generation: Any) -> Iterator[str]:
        question: str = generation.get("question") or messages[-1]["content"]
        evidence: list[tuple[int, str]] = generation.get("evidence") or []
        best = best_sentences(question, evidence)
        if not best:
            best = [(n, 0, (sentences(text) or [text])[0], 0.0) for n, text in evidence[:1]]
        for i, (n, _, sentence, _) in enumerate(sorted(best, key=lambda b: (b[0], b[1]))):
            yield ("" if i == 0 else " ") + f"{sentence} [{n}]"

    def count_tokens(self, text: str) -> int:
        return len(text)
