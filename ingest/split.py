"""Chinese-aware recursive splitting of Documents into Chunks.

Levels, tried in order until every piece fits: paragraph, line, sentence (。！？!?；; and an
English full stop before a space), clause (，,、：:), whitespace, then plain characters.
Punctuation stays with the sentence it ends. Pieces are then merged up to ``chunk_size``
characters, and each new chunk starts with up to ``chunk_overlap`` characters of whole
pieces from the end of the one before. No chunk is ever longer than ``chunk_size``.
Tables (kind == "table") stay whole when they fit, else are cut by rows with the header
repeated in every piece; so is a Markdown table in a text (HTML, Markdown, Word) too long for a chunk, each
piece of it a table piece.

A table keeps its meaning in every piece: a table chunk, or a text chunk that is mostly numbers
(a statement read without ruling lines), gets a ``caption`` in its meta — the short lines just
above the table, else the page's leading title lines, plus the nearest units line ("in millions",
"单位：万元") above it — which kbqa puts at the end of the chunk's title path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ingest.tables import is_header_row, row_cells, shortened_row
from ingest.textfacts import CLAUSE_END, SENTENCE_END, is_amount, is_numeric, wide_mask
from ingest.types import Chunk, Document

LEVELS: list[re.Pattern[str]] = [
    re.compile(r"\n[ \t\u3000]*\n\s*"),  # paragraph
    re.compile(r"\n\s*"),  # line
    re.compile(rf"{SENTENCE_END.pattern}\s*"),  # sentence
    re.compile(rf"{CLAUSE_END.pattern}\s*"),  # clause
    re.compile(r"\s+"),  # words
]

Span = tuple[int, int]
UNITS = ("chars", "weighted", "tokens")
Weigh = Callable[[str], list[float]]  # per-character share of the embedder's tokens (unit "tokens")
Checkpoint = Callable[[], None]  # raises to stop a split


class _Length:
    """Length of text[start:end] in O(1): plain characters, or weighted (a CJK character 1, any
    other character 1/3: about one token per CJK character or per three Latin characters). The
    running sums are one numpy array (8 bytes a character: a list of floats took 32, and a 100 MB
    upload took minutes and gigabytes to split), summed in order as before, so the cuts are the same."""

    def __init__(self, text: str, unit: str, weigh: Weigh | None = None) -> None:
        if unit not in UNITS:
            raise ValueError(f"unknown length unit {unit!r}; choose one of {', '.join(UNITS)}")
        if unit == "tokens" and weigh is None:
            raise ValueError("length unit 'tokens' needs the embedder's token counter")
        self.weighted = unit != "chars"
        if self.weighted:
            prefix = np.empty(len(text) + 1, dtype=np.float64)  # one array: the weights, then summed in place
            prefix[0] = 0.0
            if unit == "tokens" and weigh:
                prefix[1:] = weigh(text)
            else:
                prefix[1:] = 1.0 / 3.0
                prefix[1:][wide_mask(text)] = 1.0
            np.cumsum(prefix[1:], out=prefix[1:])
            self.prefix = prefix

    def __call__(self, start: int, end: int) -> float:
        return float(self.prefix[end] - self.prefix[start]) if self.weighted else float(end - start)

    def advance(self, start: int, end: int, size: float) -> int:
        """The furthest offset after start whose span has length <= size (at least one character)."""
        if not self.weighted:
            return min(start + int(size), end)
        prefix, base, most = self.prefix, self.prefix[start], size + 1e-9
        stop = int(np.searchsorted(prefix, base + most, side="right")) - 1  # then settled exactly as a
        stop = max(start + 1, min(stop, end))                                # step-by-step walk would
        while stop > start + 1 and prefix[stop] - base > most:
            stop -= 1
        while stop < end and prefix[stop + 1] - base <= most:
            stop += 1
        return stop


class _Ticker:
    """Calls checkpoint every `every` ticks: a long split can be stopped (checkpoint raises)."""

    def __init__(self, checkpoint: Checkpoint | None, every: int = 1024) -> None:
        self.checkpoint, self.every, self.n = checkpoint, every, 0

    def __call__(self) -> None:
        self.n += 1
        if self.checkpoint is not None and self.n % self.every == 0:
            self.checkpoint()


def _cut(text: str, span: Span, level: int, size: float, length: _Length, tick: _Ticker) -> list[Span]:
    """Cut span into pieces of at most size, cutting after separators of level."""
    tick()
    start, end = span
    if length(start, end) <= size + 1e-9:
        return [span]
    if level >= len(LEVELS):
        pieces, i = [], start
        while i < end:
            tick()
            j = length.advance(i, end, size)
            pieces.append((i, j))
            i = j
        return pieces
    cuts = [m.end() for m in LEVELS[level].finditer(text, start, end) if start < m.end() < end]
    if not cuts:
        return _cut(text, span, level + 1, size, length, tick)
    pieces = []
    prev = start
    for c in cuts + [end]:
        pieces.extend(_cut(text, (prev, c), level + 1, size, length, tick))
        prev = c
    return pieces


def split_spans(
    text: str, chunk_size: int, chunk_overlap: int, unit: str = "chars", weigh: Weigh | None = None, checkpoint: Checkpoint | None = None
) -> list[Span]:
    """Return (start, end) offsets of chunks of text, each no longer than chunk_size in the unit.
    checkpoint: called now and then; it raises to stop a long split (a server shutting down)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    tick = _Ticker(checkpoint)
    length = _Length(text, unit, weigh)
    overlap = max(0, min(chunk_overlap, chunk_size // 2))
    pieces = [p for p in _cut(text, (0, len(text)), 0, chunk_size, length, tick) if text[p[0] : p[1]].strip()]
    chunks: list[Span] = []
    current: list[Span] = []
    for piece in pieces:
        tick()
        if current and length(current[0][0], piece[1]) > chunk_size + 1e-9:
            chunks.append((current[0][0], current[-1][1]))
            # carry whole trailing pieces, up to `overlap`, into the next chunk
            carried: list[Span] = []
            for p in reversed(current):
                if length(p[0], current[-1][1]) > overlap + 1e-9 or length(p[0], piece[1]) > chunk_size + 1e-9:
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


def _table_pieces(text: str, chunk_size: int) -> list[tuple[str, Span]]:  # table sizes are in characters
    """Cut a Markdown table by rows, repeating its header (first two lines) in every piece; a header
    too long to repeat whole is repeated with its longest cells shortened (the first piece has it
    whole, or on its own when its first row does not fit beside it). A table whose first row holds
    figures (a summary row set above the columns' names: "| 报告期末普通股股东总数 | 79,053 | …") has
    no header to repeat: its pieces repeat the last row above them that names columns ("| 股东名称 |
    股东性质 | 持股比例 | …"), with the rule."""
    if len(text) <= chunk_size:
        return [(text, (0, len(text)))]
    lines = text.split("\n")
    header_lines = lines[:2] if len(lines) > 2 and set(lines[1].replace("|", "").strip()) <= set("-: ") else lines[:1]
    header = "\n".join(header_lines) + "\n"
    repeated = header
    if len(header) > chunk_size // 2:
        short = shortened_row(header_lines[0], chunk_size // 2 - len(header) + len(header_lines[0])) if len(header) <= 3 * chunk_size // 4 else None
        if short is None:  # a header too long to repeat: split as plain text
            return [(text[s:e], (s, e)) for s, e in split_spans(text, chunk_size, 0)]
        repeated = "\n".join([short, *header_lines[1:]]) + "\n"
    pieces: list[tuple[str, Span]] = []
    offset = len(header)
    body_start = offset
    rows: list[str] = []
    headless = len(header_lines) == 2 and any(is_amount(c) for c in row_cells(header_lines[0]))  # not an empty header row
    for line in lines[len(header_lines) :]:
        row = line + "\n"
        if headless and is_header_row(line) and len(row) + len(header_lines[1]) + 1 <= chunk_size // 2:
            repeated = row + header_lines[1] + "\n"  # the pieces after this row's piece
        if not rows and header != repeated and len(header) + len(row) > chunk_size >= len(repeated) + len(row):
            pieces.append((header, (0, offset)))  # the whole header, on its own: the row fits under the shortened one
            header = repeated
        if rows and len(header) + sum(map(len, rows)) + len(row) > chunk_size:
            pieces.append((header + "".join(rows), (body_start, offset)))
            rows, body_start, header = [], offset, repeated
        if len(header) + len(row) > chunk_size:  # one huge row: cut it as text
            for s, e in split_spans(row, chunk_size - len(header), 0):
                pieces.append((header + row[s:e], (offset + s, offset + e)))
                header = repeated
            offset += len(row)
            body_start = offset
            continue
        rows.append(row)
        offset += len(row)
    if rows:
        pieces.append((header + "".join(rows), (body_start, offset)))
    return [(t.rstrip("\n"), span) for t, span in pieces]


_UNITS = re.compile(
    r"(?i)\b(?:in|of)\s+(?:thousands|millions|billions)\b|\((?:\$\s*)?(?:in\s+)?(?:thousands|millions|billions)[^)]{0,60}\)"
    r"|单位\s*[:：]\s*\S{1,12}|[（(](?:单位\s*[:：]?\s*)?[万亿千百]?元[）)]"
)
CAPTION_CHARS = 200


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _title_block(paragraphs: list[str]) -> str:
    """The short paragraphs a list starts with (each under 100 characters), up to CAPTION_CHARS."""
    kept: list[str] = []
    for p in paragraphs:
        if len(p) > 100 or sum(map(len, kept)) + len(p) > CAPTION_CHARS:
            break
        kept.append(p)
    return " ".join(kept)


def _units(text: str) -> str:
    """The last units line of a text ("(in millions)", "单位：万元"); in a table, only a cell that is
    the units alone ("| (Millions) | 2018 |"): "单价（元）" is one column's unit, not the table's."""
    found = [m for m in _UNITS.finditer(text) if _table_wide(text, m)]
    return " ".join(found[-1].group(0).split()) if found else ""


def _table_wide(text: str, m: re.Match[str]) -> bool:
    line_start = text.rfind("\n", 0, m.start()) + 1
    line_end = text.find("\n", m.end())
    line = text[line_start : len(text) if line_end < 0 else line_end]
    if not line.lstrip().startswith("|"):
        return True
    cell_start = text.rfind("|", line_start, m.start()) + 1
    cell_end = text.find("|", m.end())
    cell = text[cell_start : len(text) if cell_end < 0 else cell_end]
    return cell.strip() == m.group(0).strip()


class _Captions:
    """What a table piece needs to keep its meaning, per source: the current page's title block
    and the text of the page read so far."""

    def __init__(self) -> None:
        self.page: dict[str, int | None] = {}
        self.head: dict[str, str] = {}
        self.before: dict[str, str] = {}
        self.section: dict[str, list[str]] = {}
        self.here: dict[str, str] = {}  # the text read before on this page, or in this section of a file without pages

    def see(self, source: str, doc: Document) -> None:
        section = list(doc.meta.get("title_path") or [])
        if source not in self.page or self.page[source] != doc.page:
            self.page[source] = doc.page
            self.head[source] = "" if doc.meta.get("kind") == "table" else _title_block(_paragraphs(doc.text))
            self.before[source] = self.here[source] = ""
        elif doc.page is None and self.section.get(source) != section:
            self.here[source] = ""  # a Word file's table under 二、行动项 is not captioned by section 一's decisions
        self.section[source] = section

    def caption(self, source: str, doc: Document, start: int, table: int | None = None) -> str:
        """The caption of a table document, or of the piece of a text document starting at start (table: where the
        Markdown table the piece is of starts in the text; its caption is read as a table document's)."""
        head, before = self.head[source], self.before[source]
        if doc.meta.get("kind") == "table" or table is not None:
            earlier = self.here[source] if table is None else self.here[source] + "\n\n" + doc.text[:table]
            paragraphs = [re.sub(r"^#{1,6}\s+", "", p) for p in _paragraphs(earlier)]  # (a Markdown heading without its marks)
            last_table = max((i for i, p in enumerate(paragraphs) if p.startswith("|")), default=-1)
            above = paragraphs[last_table + 1 :][-2:]  # text between the tables, never the table before
            while above and len(" ".join(above)) > CAPTION_CHARS or any(len(p) > 100 for p in above):
                above = above[1:]
            caption, prior = " ".join(above) or head, before + "\n" + (doc.text[:300] if table is None else doc.text[: table + 300])
        else:
            if not head or (not before and start < len(head)):  # the piece starts with the title block
                return ""
            caption, prior = head, before + "\n" + doc.text[:start]
        units = _units(prior[-3000:])
        if units and units.lower() not in caption.lower():
            caption = f"{caption} {units}"
        return caption[:CAPTION_CHARS].strip()

    def done(self, source: str, doc: Document) -> None:
        self.before[source] = (self.before[source] + "\n\n" + doc.text)[-4000:]
        self.here[source] = (self.here[source] + "\n\n" + doc.text)[-4000:]


def _with_next(docs: Iterable[Document]) -> Iterator[tuple[Document, Document | None]]:
    previous: Document | None = None
    for doc in docs:
        if previous is not None:
            yield previous, doc
        previous = doc
    if previous is not None:
        yield previous, None


def _heading_alone(doc: Document, following: Document | None) -> bool:
    """A section's piece that is only its title, before more of the same section or a subsection (a
    table under "Action items", the questions under "Atlas FAQ"): no chunk of its own, since the pieces
    after it carry the title (found by a first-hour review: such titles were chunks, and top sources,
    of their own)."""
    path = doc.meta.get("title_path") or []
    return (bool(path) and doc.text.strip() == path[-1].strip() and following is not None
            and following.meta.get("source") == doc.meta.get("source") and (following.meta.get("title_path") or [])[: len(path)] == path)


# a Markdown table in a text: its header row, its rule, and its rows
_MARKDOWN_TABLE = re.compile(r"(?m)^\|[^\n]*\|[ \t]*\n\|[ \t:|-]*-[ \t:|-]*\n(?:\|[^\n]*(?:\n|$))+")


def _text_pieces(
    text: str, start: int, end: int, chunk_size: int, chunk_overlap: int, unit: str, weigh: Weigh | None, checkpoint: Checkpoint | None
) -> list[tuple[str, Span]]:
    """The chunks of text[start:end], with their places in text."""
    part = text[start:end]
    pieces = []
    for span in split_spans(part, chunk_size, chunk_overlap, unit, weigh, checkpoint):
        s, e = _strip_span(part, span)
        if e > s:
            pieces.append((part[s:e], (start + s, start + e)))
    return pieces


def split_documents(
    docs: Iterable[Document], chunk_size: int = 400, chunk_overlap: int = 80, unit: str = "chars", weigh: Weigh | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[Chunk]:
    """Split documents into chunks; chunk_no counts within each source file.

    unit "chars" counts characters; "weighted" counts a CJK character as 1 and any other as 1/3;
    "tokens" counts the embedder's tokens through weigh (each character's share of them).
    checkpoint: called between documents and now and then within one; it raises to stop the split."""
    chunks: list[Chunk] = []
    numbers: dict[str, int] = {}
    captions = _Captions()
    tick = _Ticker(checkpoint, every=64)  # a chunk's facts cost more than a cut
    for doc, following in _with_next(docs):
        if checkpoint is not None:
            checkpoint()
        source = str(doc.meta.get("source", ""))
        captions.see(source, doc)
        if _heading_alone(doc, following):
            captions.done(source, doc)  # (still the text a table under it is captioned by)
            continue
        tables: dict[int, int | None] = {}  # the pieces of tables, by their place: where their table starts in a text
        if doc.meta.get("kind") == "table":
            pieces = _table_pieces(doc.text, chunk_size)
            tables = dict.fromkeys(range(len(pieces)))
        else:
            pieces = []
            at = 0
            for table in _MARKDOWN_TABLE.finditer(doc.text):  # a table in the text too long for a chunk is cut as a table
                if table.end() - table.start() <= chunk_size:  # (its header in every piece: found by review, an HTML
                    continue  # 10-K's balance sheet went on in chunks that said no year)
                pieces += _text_pieces(doc.text, at, table.start(), chunk_size, chunk_overlap, unit, weigh, checkpoint)
                cut = _table_pieces(table.group(0).rstrip("\n"), chunk_size)
                tables.update(dict.fromkeys(range(len(pieces), len(pieces) + len(cut)), table.start()))
                pieces += [(t, (table.start() + s, table.start() + e)) for t, (s, e) in cut]
                at = table.end()
            pieces += _text_pieces(doc.text, at, len(doc.text), chunk_size, chunk_overlap, unit, weigh, checkpoint)
        previous_end = 0
        for k, (text, (start, end)) in enumerate(pieces):
            tick()
            n = numbers.get(source, 0)
            numbers[source] = n + 1
            # fresh: where the text not repeated from the previous chunk begins (overlap skipped)
            fresh = max(0, min(previous_end - start, len(text)))
            meta = {**doc.meta, "chunk_no": n, "start": start, "end": end, "fresh": fresh}
            if k in tables:
                meta["kind"] = "table"  # (a piece of a Markdown table in a text is a table's piece: a hit on it shows its table)
            if k in tables or is_numeric(text):
                caption = captions.caption(source, doc, start, tables.get(k))
                if caption and caption != (doc.meta.get("title_path") or [""])[-1]:  # (its section's title is said already)
                    meta["caption"] = caption
            chunks.append(Chunk(text=text, meta=meta))
            previous_end = max(previous_end, end)
        captions.done(source, doc)
    return chunks
