"""Retrieval evaluation on question sets with gold evidence (the JSONL format of CMRC 2018 / XQuAD).

corpus.jsonl: {"doc_id", "title", "text"} a line.
questions.jsonl: {"id", "question", "answers": [...], "gold": [{"doc_id", "page"}]} a line.
Or a folder of files as the corpus, with gold doc_id = the file's path relative to the folder and
page = its 1-based page.

A question is a hit@k when one of the top-k chunks comes from a gold document (and gold page,
when given) and contains a gold answer string (whitespace-insensitive). MRR@k uses the rank of the
first such chunk. hit@1000c: the ranked chunks concatenated and cut at 1,000 characters contain the
answer inside a gold chunk.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import text_documents
from kbqa.types import Hit

if TYPE_CHECKING:
    from ingest.types import Document

_WS = re.compile(r"\s+")


def _squash(text: str) -> str:
    return _WS.sub("", text).lower()


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from None


# questions in one language over a corpus in the other (benchmarks/refusal.py, answers.py): XQuAD's
# questions and paragraphs are parallel (the same ids in both languages)
CROSS_SETS = {"xquad_zh_on_en": ("xquad_zh", "xquad_en"), "xquad_en_on_zh": ("xquad_en", "xquad_zh")}


def set_sources(name: str) -> tuple[str, str]:
    """A question set's question file and corpus names: the set itself, or a CROSS_SETS pair."""
    return CROSS_SETS.get(name, (name, name))


def corpus_documents(path: str | Path) -> Iterator[tuple[str, list[Document]]]:
    """(doc_id, [Document]) for each line of a corpus JSONL; the title starts the text's title path."""
    for row in read_jsonl(path):
        yield str(row["doc_id"]), text_documents(str(row["text"]), str(row["doc_id"]), str(row.get("title") or "") or None)


@dataclass
class Question:
    id: str
    question: str
    answers: list[str]
    gold: list[dict[str, Any]]


def read_questions(path: str | Path, limit: int | None = None) -> list[Question]:
    out = []
    for row in read_jsonl(path):
        out.append(Question(str(row.get("id", len(out))), row["question"], [a for a in row.get("answers", []) if a], row.get("gold", [])))
        if limit and len(out) >= limit:
            break
    return out


def _gold_match(hit: Hit, q: Question) -> bool:
    for g in q.gold:
        if hit.file == str(g.get("doc_id")) and (g.get("page") in (None, hit.page)):
            return True
    return False


def _contains_answer(text: str, q: Question) -> bool:
    squashed = _squash(text)
    return any(_squash(a) in squashed for a in q.answers)


@dataclass
class QuestionResult:
    id: str
    hit_rank: int | None  # 1-based rank of the first gold chunk containing an answer
    doc_rank: int | None  # 1-based rank of the first chunk from a gold document
    hit_1000c: bool
    seconds: float


def score_question(q: Question, hits: list[Hit], k: int, seconds: float, budget_chars: int = 1000) -> QuestionResult:
    hit_rank = doc_rank = None
    for rank, h in enumerate(hits, start=1):
        gold = _gold_match(h, q)
        if gold and doc_rank is None:
            doc_rank = rank
        if gold and hit_rank is None and _contains_answer(h.text, q):
            hit_rank = rank
    left, in_budget = budget_chars, False
    for h in hits:
        if left <= 0:
            break
        piece = h.text[:left]
        left -= len(piece)
        if _gold_match(h, q) and _contains_answer(piece, q):
            in_budget = True
            break
    return QuestionResult(q.id, hit_rank, doc_rank, in_budget, seconds)


@dataclass
class EvalReport:
    questions: int
    k: int
    hit_at_k: float
    doc_hit_at_k: float
    mrr_at_k: float
    hit_at_1000c: float
    p50_ms: float
    p95_ms: float
    chunks: int = 0
    ingest_seconds: float = 0.0
    misses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        return (
            f"questions {self.questions}  chunks {self.chunks}  ingest {self.ingest_seconds:.1f} s\n"
            f"hit@{self.k} {self.hit_at_k:.4f}  doc-hit@{self.k} {self.doc_hit_at_k:.4f}  MRR@{self.k} {self.mrr_at_k:.4f}  "
            f"hit@1000c {self.hit_at_1000c:.4f}  query p50 {self.p50_ms:.1f} ms  p95 {self.p95_ms:.1f} ms"
        )


def evaluate(
    search: Callable[[str, int], list[Hit]],
    questions: list[Question],
    k: int = 5,
    progress: Callable[[int, int], None] | None = None,
    depth: int = 20,
) -> EvalReport:
    """Score a search function (question, n) -> ranked hits over the questions."""
    results: list[QuestionResult] = []
    for n, q in enumerate(questions):
        t0 = time.perf_counter()
        hits = search(q.question, max(k, depth))
        seconds = time.perf_counter() - t0
        r = score_question(q, hits, k, seconds)
        results.append(r)
        if progress:
            progress(n + 1, len(questions))
    total = max(1, len(results))
    ms = sorted(r.seconds * 1000 for r in results) or [0.0]
    return EvalReport(
        questions=len(results),
        k=k,
        hit_at_k=sum(1 for r in results if r.hit_rank and r.hit_rank <= k) / total,
        doc_hit_at_k=sum(1 for r in results if r.doc_rank and r.doc_rank <= k) / total,
        mrr_at_k=sum(1.0 / r.hit_rank for r in results if r.hit_rank and r.hit_rank <= k) / total,
        hit_at_1000c=sum(1 for r in results if r.hit_1000c) / total,
        p50_ms=statistics.median(ms),
        p95_ms=ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))],
        misses=[r.id for r in results if not (r.hit_rank and r.hit_rank <= k)][:50],
    )
