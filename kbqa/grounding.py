"""Grounded short answers for small base models: evidence sentences in, answer checked against them.

A base model (template "completion") gets only the sentences that best match the question. Its answer
is kept, with the number of the source it came from, only when its text appears in that evidence;
otherwise the best evidence sentence is given instead, cited. No answer asserts what its source lacks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kbqa.llm.extractive import best_sentences
from kbqa.types import Hit

_CITE = re.compile(r"\[\d+\]")
_PUNCT = re.compile(r"[\s，。！？、；：,.!?;:\"'“”‘’（）()《》【】\[\]「」]+")


def squash(text: str) -> str:
    return _PUNCT.sub("", text).lower()


def evidence_for(question: str, hits: list[Hit], sentences: int = 3) -> list[tuple[int, str]]:
    """(source number, sentence) of the best sentences among the sources, best first;
    the start of the best source when no sentence shares a word with the question."""
    best = best_sentences(question, [(i + 1, h.text) for i, h in enumerate(hits)], limit=sentences)
    if not best:
        return [(1, " ".join(hits[0].text.split())[:300])] if hits else []
    return [(n, s) for n, _, s, _ in best]


def source_of(answer: str, evidence: list[tuple[int, str]]) -> tuple[int, str] | None:
    """The evidence (number, sentence) the answer's text comes from, if any."""
    core = squash(_CITE.sub("", answer))
    if len(core) < 1:
        return None
    for n, text in evidence:
        if core in squash(text):
            return n, text
    return None


def grounded_stream(pieces: Iterator[str], evidence: list[tuple[int, str]], lang: str = "zh") -> Iterator[str]:
    """Collect a short answer; give it with the evidence sentence it comes from, cited, or, when it
    is not in the evidence, the best evidence sentence alone."""
    answer = _CITE.sub("", "".join(pieces)).strip().rstrip("。.")
    found = source_of(answer, evidence)
    if found is not None and answer:
        n, sentence = found
        if squash(answer) == squash(sentence):
            yield f"{sentence} [{n}]"
        else:
            yield f"{answer}。依据：{sentence} [{n}]" if lang == "zh" else f"{answer}. Evidence: {sentence} [{n}]"
        return
    if evidence:
        n, sentence = evidence[0]
        yield f"{sentence} [{n}]"


def completion_prompt(question: str, evidence: list[tuple[int, str]], template: Any) -> str:
    context = "\n".join(f"[{n}] {s}" for n, s in evidence)
    return str(template.completion.format(context=context, question=question))
