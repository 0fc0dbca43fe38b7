"""Data that crosses kbqa's boundaries: search hits, answers, ingest reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Capabilities:
    """What an LLM backend (or answerer) can do, declared by it; the answer pipeline picks how to
    answer from these. chat: follows instructions over numbered sources and can say they lack the
    answer; completion: continues a worked example (a base model); extractive: quotes sentences."""

    chat: bool = False
    completion: bool = False
    extractive: bool = False

    @classmethod
    def of_template(cls, template: str) -> Capabilities:
        """A generator's capabilities from its chat template: "completion" marks a base model."""
        return cls(completion=True) if template == "completion" else cls(chat=True)


@dataclass
class Hit:
    """One retrieved chunk. relevance is 0..1 (higher = more related; see retrieval.threshold)."""

    chunk_id: int
    file: str
    page: int | None
    text: str
    relevance: float
    rank_score: float = 0.0
    title_path: list[str] = field(default_factory=list)
    path: str = ""
    context: str = ""  # its document's description (ingest.context): whose document, which period

    @property
    def score(self) -> float:
        return self.relevance

    def snippet(self, width: int = 160, question: str = "") -> str:
        """The chunk's text flattened to `width` characters: its start, or, given the question, the
        stretch around the sentence that best matches it (the start of a table chunk is often
        another table than the one the question found)."""
        flat = " ".join(self.text.split())
        if len(flat) <= width:
            return flat
        from kbqa.highlight import passage_span

        span = passage_span(self.text, question) if question else None  # (on the text: a table's rows are sentences there)
        at = flat.find(" ".join(self.text[span[0]:span[1]].split())) if span else -1
        if span is None or at < 0 or at + (span[1] - span[0]) // 2 <= width - 1:  # shown from the start already
            return _word_end(flat, width - 1) + "…"
        start = _word_start(flat, max(0, min(at - 10, len(flat) - (width - 2))))
        end = start + width - 2
        return "…" + (_word_end(flat, end)[start:] if end < len(flat) else flat[start:]).strip() + ("…" if end < len(flat) else "")

    def cite(self) -> str:
        return f"{self.file}, p. {self.page}" if self.page else self.file

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "snippet": self.snippet()}


def _word_start(text: str, at: int, reach: int = 20) -> int:
    """`at`, moved back to the start of the word it falls in (within reach): "…r every two weeks" shows "…filter every"."""
    if at <= 0 or not (text[at - 1].isascii() and text[at - 1].isalnum() and text[at].isascii() and text[at].isalnum()):
        return at
    space = text.rfind(" ", max(0, at - reach), at)
    return space + 1 if space >= 0 else at


def _word_end(text: str, end: int, reach: int = 20) -> str:
    """text[:end], cut back to the end of a word when it would cut one (within reach)."""
    if end >= len(text) or not (text[end - 1].isascii() and text[end - 1].isalnum() and text[end].isascii() and text[end].isalnum()):
        return text[:end]
    space = text.rfind(" ", max(0, end - reach), end)
    return text[:space].rstrip() if space > 0 else text[:end]


@dataclass
class Usage:
    """Tokens an answer cost its LLM, counted with the model's tokenizer: the messages' text (not the
    chat template's few tokens of its own) and what it generated, kept or not. Extractive: none."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cut: bool = False  # the last generation stopped at max_tokens, not at its own end

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    @property
    def finish_reason(self) -> str:
        """As OpenAI says it: "length" when max_tokens cut the text, else "stop"."""
        return "length" if self.cut else "stop"

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


@dataclass
class Answer:
    question: str
    text: str
    sources: list[Hit]
    answered_from_documents: bool = True
    model: str = ""
    query: str = ""  # what was searched: the question, or its standalone rewrite in a chat
    confidence: float | None = None  # the answer pipeline's probability that the sources hold the answer
    usage: Usage = field(default_factory=Usage)
    unmentioned: list[str] = field(default_factory=list)  # names the question writes that the knowledge base never holds

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "query": self.query or self.question,
            "answer": self.text,
            "answered_from_documents": self.answered_from_documents,
            "model": self.model,
            "confidence": self.confidence,
            "unmentioned": self.unmentioned,
            "sources": [h.to_dict() for h in self.sources],
            "usage": self.usage.to_dict(),
        }


class AnswerStream:
    """Iterate for the answer's text pieces; .sources is known before the first piece."""

    def __init__(
        self, question: str, sources: list[Hit], pieces: Iterator[str], answered: bool, model: str, query: str = "",
        confidence: float | None = None,
    ) -> None:
        self.question = question
        self.query = query or question
        self.sources = sources  # a refusal's sources are related passages, not an answer's evidence
        self.answered_from_documents = answered  # may turn false at the end: a chat model said the sources lack it
        self.model = model
        self.confidence = confidence
        self._pieces = pieces
        self._refused: Callable[[], bool] | None = None
        self._written_by: Callable[[], str | None] | None = None
        self.text = ""
        self.usage = Usage()  # filled as the LLM generates
        self.unmentioned: list[str] = []  # names the question writes that the knowledge base never holds (the answer says so first)

    def set_pieces(self, pieces: Iterator[str], refused: Callable[[], bool] | None = None,
                   written_by: Callable[[], str | None] | None = None) -> None:
        """pieces: the text as generated; refused: asked once they ran out, whether the model said
        the sources do not hold the answer (it must not hold this stream: a cycle through the
        generator would keep a half-read stream, and the LLM's turn, until the garbage collector);
        written_by: asked then too, what wrote the answer when not the model (its evidence alone: "extractive")."""
        self._pieces = pieces
        self._refused = refused
        self._written_by = written_by

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self._pieces:
                self.text += piece
                yield piece
        finally:  # a caller that stops reading (break, an error in its loop) ends the generation
            self.close()
        if self._refused is not None and self._refused():
            self.answered_from_documents = False
        if self._written_by is not None and (by := self._written_by()):
            self.model = by

    def close(self) -> None:
        """Stop generating and give the LLM's turn back (leaving a for-loop over the stream early
        does this too)."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> AnswerStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answer(self) -> Answer:
        for _ in self:
            pass
        return Answer(self.question, self.text, self.sources, self.answered_from_documents, self.model, self.query, self.confidence, self.usage,
                      list(self.unmentioned))


@dataclass
class FileResult:
    name: str
    status: str  # added | updated | moved | skipped | failed | unsupported | removed
    chunks: int = 0
    pages: int | None = None
    error: str | None = None
    seconds: float = 0.0
    warning: str | None = None  # read, but maybe not whole (a damaged PDF): kept with the file, shown in its list


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    gone: list[str] = field(default_factory=list)  # files of the given folders no longer on disk, kept (no prune)
    reread: str = ""  # the settings that shape files, changed since they were read ("ingest.chunk_size: 400 → 100"): all read again

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status in ("failed", "unsupported")]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("added", "updated", "moved", "skipped", "removed", "failed", "unsupported") if self.count(s)]
        chunks = sum(f.chunks for f in self.files if f.status in ("added", "updated"))
        return f"{', '.join(parts) or 'nothing to do'}; {chunks} new chunk{'' if chunks == 1 else 's'} in {self.seconds:.1f} s" + (" (interrupted)" if self.interrupted else "")

    def to_dict(self) -> dict[str, Any]:
        return {"files": [asdict(f) for f in self.files], "interrupted": self.interrupted, "seconds": self.seconds, "gone": self.gone,
                "reread": self.reread, "summary": self.summary()}


@dataclass
class Progress:
    """One step of an ingest, for progress bars: stage is scan | file | done, wait (a server's
    upload waiting for its turn; name: how many ingests run), or held (the files left are being
    read by another ingest of this knowledge base, which this one waits for; name: how many)."""

    stage: str
    done: int
    total: int
    name: str = ""
    result: FileResult | None = None
    page: int | None = None  # while a file is read: the page being read, of pages
    pages: int | None = None
