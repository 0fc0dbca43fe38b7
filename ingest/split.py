"""Chinese-aware recursive splitting of Documents into Chunks.

Levels, tried in order until every piece fits: paragraph, line, sentence (。！？!?；; and an
English full stop before a space), clause (，,、：:), whitespace, then plain characters.
Punctuation stays with the sentence it ends. Pieces are then merged up to ``chunk_size``
characters, and each new chunk starts with up to ``chunk_overlap`` characters of whole
pieces from the end of the one before. No chunk is ever longer than ``chunk_size``.
Tables (kind == "table") stay whole when they fit, else are cut by rows with the header
repeated in every piece.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ingest.types import Chunk, Document

_CLOSERS = "”’\"')）」』》】"
LEVELS: list[re.Pattern[str]] = [
    re.compile(r"\n[ \t\u3000]*\n\s*"),  # paragraph
    re.compile(r"\n\s*"),  # line
    re.compile(rf"(?:[。！？!?；;…]+|\.(?=\s))[{_CLOSERS}]*\s*"),  # sentence
    re.compile(r"[，,、：:]\s*"),  # clause
    re.compile(r"\s+"),  # words
]

Span = tuple[int, int]


def _cut(text: str, span: Span, level: int, size: int) -> list[Span]:
    """Cut span into pieces of at most size characters, cutting after separators of level."""
    start, end = span
    if end - start <= size:
        return [span]
    if level >= len(LEVELS):
        return [(i, min(i + size, end)) for i in range(start, end, size)]
    cuts = [m.end() for m in LEVELS[level].finditer(text, start, end) if start < m.end() < end]
    if not cuts:
        return _cut(text, span, level + 1, size)
    pieces: list[Span] = []
    prev = start
    for c in cuts + [end]:
        pieces.extend(_cut(text, (prev, c), level + 1, size))
        prev = c
    return pieces


def split_spans(text: str, chunk_size: int, chunk_overlap: int) -> list[Span]:
    """Return (start, end) offsets of chunks of text; each text[start:end] is <= chunk_size."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    overlap = max(0, min(chunk_overlap, chunk_size // 2))
    pieces = [p for p in _cut(text, (0, len(text)), 0, chunk_size) if text[p[0] : p[1]].strip()]
    chunks: list[Span] = []
    current: list[Span] = []
    for piece in pieces:
        if current and piece[1] - current[0][0] > chunk_size:
            chunks.append((current[0][0], current[-1][1]))
            # carry whole trailing pieces, up to `overlap` characters, into the next chunk
            carried: list[Span] = []
            for p in reversed(current):
                if current[-1][1] - p[0] > overlap or piece[1] - p[0] > chunk_size:
                    break
                carried.insert(0, p)
            current = carried
        current.append(piece)
    if current:
        chunks.append((current[0][0], current[-1][1]))
    return chunks


def _strip_span(text: str, span: Span) -> Span:
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _table_pieces(text: str, chunk_size: int) -> list[tuple[str, Span]]:
    """Cut a Markdown table by rows, repeating its header (first two lines) in every piece."""
    if len(text) <= chunk_size:
        return [(text, (0, len(text)))]
    lines = text.split("\n")
    header_lines = lines[:2] if len(lines) > 2 and set(lines[1].replace("|", "").strip()) <= set("-: ") else lines[:1]
    header = "\n".join(header_lines) + "\n"
    if len(header) > chunk_size // 2:  # a header too long to repeat: split as plain text
        return [(text[s:e], (s, e)) for s, e in split_spans(text, chunk_size, 0)]
    pieces: list[tuple[str, Span]] = []
    offset = len(header)
    body_start = offset
    rows: list[str] = []
    for line in lines[len(header_lines) :]:
        row = line + "\n"
        if rows and len(header) + sum(map(len, rows)) + len(row) > chunk_size:
            pieces.append((header + "".join(rows), (body_start, offset)))
            rows, body_start = [], offset
        if len(header) + len(row) > chunk_size:  # one huge row: cut it as text
            for s, e in split_spans(row, chunk_size - len(header), 0):
                pieces.append((header + row[s:e], (offset + s, offset + e)))
            offset += len(row)
            body_start = offset
            continue
        rows.append(row)
        offset += len(row)
    if rows:
        pieces.append((header + "".join(rows), (body_start, offset)))
    return [(t.rstrip("\n"), span) for t, span in pieces]


def split_documents(docs: Iterable[Document], chunk_size: int = 400, chunk_overlap: int = 80) -> list[Chunk]:
    """Split documents into chunks; chunk_no counts within each source file."""
    chunks: list[Chunk] = []
    numbers: dict[str, int] = {}
    for doc in docs:
        source = str(doc.meta.get("source", ""))
        if doc.meta.get("kind") == "table":
            pieces = _table_pieces(doc.text, chunk_size)
        else:
            pieces = []
            for span in split_spans(doc.text, chunk_size, chunk_overlap):
                s, e = _strip_span(doc.text, span)
                if e > s:
                    pieces.append((doc.text[s:e], (s, e)))
        for text, (start, end) in pieces:
            n = numbers.get(source, 0)
            numbers[source] = n + 1
            chunks.append(Chunk(text=text, meta={**doc.meta, "chunk_no": n, "start": start, "end": end}))
    return chunks
