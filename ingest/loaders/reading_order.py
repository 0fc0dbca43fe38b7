"""Reading order of a PDF page's text blocks.

Word, LaTeX and most converters write a page's text in reading order, so the content stream's
order is kept when it reads plausibly. Designed documents (covers, brochures, two-page spreads)
often do not: their stream jumps back up a column, or from the bottom of the right column to
the top of the left one. Such pages are put in geometric order instead: a recursive XY-cut in
which bands of the page that share a column gutter are read column by column (right to left
for Arabic, Persian or Hebrew text).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ingest.loaders.bidi import RTL_TEXT

Block = dict[str, Any]  # a PyMuPDF text block: "bbox" plus "lines" of "spans"

GAP = 3.0  # points of white space that separate two columns or two bands


def block_text(block: Block) -> str:
    return "".join(span["text"] for line in block.get("lines", []) for span in line["spans"])


def _small(block: Block) -> bool:
    """A label (a figure's callout, a page number): one short line, ignored when judging the stream."""
    filled = 0
    for line in block.get("lines", []):
        if "".join(span["text"] for span in line["spans"]).strip():
            filled += 1
            if filled > 1:
                return False
    return filled == 1 and len(block_text(block).strip()) < 25


def backward_jumps(blocks: list[Block], rtl: bool = False, labels: set[int] | None = None) -> int:
    """How often the order goes back up the page to a block in the same column or in an earlier one.
    labels: the id() of the blocks that are _small, if known."""
    main = [b for b in blocks if not _small(b)] if labels is None else [b for b in blocks if id(b) not in labels]
    jumps = 0
    for a, b in zip(main, main[1:]):
        ax0, ay0, ax1, _ = a["bbox"]
        bx0, _, bx1, by1 = b["bbox"]
        same_column = min(ax1, bx1) - max(ax0, bx0) > 0
        earlier_column = bx0 >= ax1 if rtl else bx1 <= ax0
        if by1 <= ay0 and (same_column or earlier_column):
            jumps += 1
    return jumps


_MAYBE_RTL = re.compile(RTL_TEXT)  # a text without any is not right-to-left, found at C speed (counting letters took 0.4 ms a page)


def rtl_text(text: str) -> bool:
    """Whether most of the text's letters are written right to left (Arabic, Persian, Hebrew)."""
    if not _MAYBE_RTL.search(text):
        return False
    letters = rtl = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            rtl += unicodedata.bidirectional(ch) in ("R", "AL")
    return letters > 0 and rtl > letters / 2


def is_rtl(blocks: list[Block]) -> bool:
    return rtl_text("".join(block_text(block) for block in blocks))


def union(boxes: list[Any]) -> tuple[float, float, float, float]:
    """The box that holds all the boxes."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def level(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Two boxes on one line: they share most of the shorter one's height."""
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap > 0.6 * min(a[3] - a[1], b[3] - b[1])


def _gaps(blocks: list[Block], lo: int, hi: int) -> list[tuple[float, float]]:
    """The empty intervals between the blocks' projections on one axis (x: lo=0, hi=2; y: 1, 3)."""
    spans = sorted((b["bbox"][lo], b["bbox"][hi]) for b in blocks)
    gaps, end = [], spans[0][1]
    for start, stop in spans[1:]:
        if start > end + GAP:
            gaps.append((end, start))
        end = max(end, stop)
    return gaps


def _split(blocks: list[Block], gaps: list[tuple[float, float]], lo: int, hi: int) -> list[list[Block]]:
    groups: list[list[Block]] = [[] for _ in range(len(gaps) + 1)]
    for block in blocks:
        centre = (block["bbox"][lo] + block["bbox"][hi]) / 2
        groups[sum(1 for end, _ in gaps if centre > end)].append(block)
    return [g for g in groups if g]


def _row(band: list[Block]) -> bool:
    """Three cells or more side by side, one line each at the same height: a row of an unruled table,
    read across (two one-line blocks level with each other are as likely two columns of text)."""
    return len(band) >= 3 and all(len(b.get("lines", [])) <= 1 for b in band) and max(b["bbox"][1] for b in band) - min(b["bbox"][1] for b in band) < 2


def _one_side(block: Block, gutters: list[tuple[float, float]]) -> bool:
    """Whether the block stays on one side of every gutter (it does not cross into the next column)."""
    x0, x1 = block["bbox"][0], block["bbox"][2]
    return all(x1 <= g0 + GAP or x0 >= g1 - GAP for g0, g1 in gutters)


def _regions(bands: list[list[Block]]) -> list[list[Block]]:
    """Consecutive bands that share a column gutter are one multi-column region (rows of a table are not),
    and so is a band whose blocks all keep to one column of the region above."""
    regions: list[list[Block]] = []
    gutters: list[list[tuple[float, float]]] = []
    for band in bands:
        own = _gaps(band, 0, 2) if len(band) > 1 and not _row(band) else []
        if regions and gutters[-1] and not own and all(_one_side(b, gutters[-1]) for b in band):
            regions[-1] = regions[-1] + band  # a column's line where the other column has a gap
            continue
        if regions and own and gutters[-1]:
            common = [(max(a0, b0), min(a1, b1)) for a0, a1 in gutters[-1] for b0, b1 in own if max(a0, b0) < min(a1, b1)]
            if common:
                regions[-1] = regions[-1] + band
                gutters[-1] = common
                continue
        regions.append(list(band))
        gutters.append(own)
    return regions


def xy_order(blocks: list[Block], rtl: bool = False) -> list[Block]:
    """Columns first where a gutter runs through the whole region, else bands top to bottom."""
    if len(blocks) <= 1:
        return blocks
    columns = _gaps(blocks, 0, 2)
    if columns:
        groups = _split(blocks, columns, 0, 2)
        if rtl:
            groups.reverse()
        return [b for g in groups for b in xy_order(g, rtl)]
    bands = _split(blocks, _gaps(blocks, 1, 3), 1, 3)
    if len(bands) > 1:
        regions = _regions(bands)
        if len(regions) > 1:
            return [b for g in regions for b in xy_order(g, rtl)]
    return sorted(blocks, key=lambda b: (round(b["bbox"][1]), -b["bbox"][2] if rtl else b["bbox"][0]))


def reading_order(blocks: list[Block], rtl: bool | None = None) -> list[Block]:
    """The stream's order unless it jumps backwards more often than the geometric order does."""
    rtl = is_rtl(blocks) if rtl is None else rtl
    geometric = xy_order(blocks, rtl)
    labels = {id(b) for b in blocks if _small(b)}
    return geometric if backward_jumps(blocks, rtl, labels) > backward_jumps(geometric, rtl, labels) else blocks
