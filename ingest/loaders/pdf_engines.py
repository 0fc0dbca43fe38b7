"""Page texts through the other PDF engines: pdfplumber (ruled tables as Markdown, in place; not on
right-to-left pages, whose cells it reads backwards) and pdfminer.

Both give characters with their boxes. pdfplumber's lines run across the whole page, and pdfminer's
layout analysis cuts right-to-left lines into pieces, so lines are rebuilt from the characters: cut at
column gutters, each in logical order (bidi.py), and put in reading order (reading_order.xy_order).
pdfminer keeps its own text boxes on left-to-right pages, put in the same reading order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.loaders.bidi import line_text
from ingest.loaders.pdf_tables import inside, is_table
from ingest.loaders.reading_order import Block, level, rtl_text, union, xy_order
from ingest.tables import markdown_table

GUTTER = 1.0  # em: a wider gap inside a line is white space between columns (or table cells)

Glyph = dict[str, Any]  # {"c": text, "bbox": (x0, top, x1, bottom) from the top of the page, "size": points}


def _box(glyphs: list[Glyph]) -> tuple[float, float, float, float]:
    return union([g["bbox"] for g in glyphs])


def _segments(line: list[Glyph]) -> list[list[Glyph]]:
    """A line's glyphs cut where the gap between two of them is wider than GUTTER em."""
    glyphs = sorted((g for g in line if g["c"].strip()), key=lambda g: g["bbox"][0])
    pieces: list[list[Glyph]] = []
    for g in glyphs:
        if pieces and g["bbox"][0] - pieces[-1][-1]["bbox"][2] <= GUTTER * max(g["size"], 1.0):
            pieces[-1].append(g)
        else:
            pieces.append([g])
    return pieces


def text_blocks(lines: list[list[Glyph]]) -> list[Block]:
    """Lines of glyphs (pieces on one baseline joined) as blocks of one line each, cut at gutters."""
    joined: list[list[Glyph]] = []
    for line in sorted((x for x in lines if x), key=lambda x: min(g["bbox"][1] for g in x)):
        if joined and level(_box(joined[-1]), _box(line)):
            joined[-1] = joined[-1] + line
        else:
            joined.append(list(line))
    blocks: list[Block] = []
    for line in joined:
        for piece in _segments(line):
            text = line_text(piece, max(g["size"] for g in piece))
            if text.strip():
                blocks.append({"bbox": _box(piece), "lines": [{"spans": [{"text": text}]}]})
    return blocks


def _in_order(blocks: list[Block], rtl: bool) -> str:
    return "\n".join(b["lines"][0]["spans"][0]["text"] for b in xy_order(blocks, rtl))


def pdfplumber_pages(path: Path) -> list[str]:
    import pdfplumber

    pages: list[str] = []
    with pdfplumber.open(path) as pdf:
        for page in pdf.pages:
            rtl = rtl_text("".join(c["text"] for c in page.chars))
            found = [] if rtl else page.find_tables()
            tables = [(t.bbox, rows) for t in found if len(rows := t.extract()) >= 2 and is_table(rows)]
            boxes = [tuple(box) for box, _ in tables]

            def outside(obj: dict[str, Any], boxes: list[Any] = boxes) -> bool:
                return not inside((obj["x0"], obj["top"], obj["x1"], obj["bottom"]), boxes)

            text_page = page.filter(outside) if boxes else page
            lines = [
                [{"c": c["text"], "bbox": (c["x0"], c["top"], c["x1"], c["bottom"]), "size": c.get("size", 10.0)} for c in line["chars"]]
                for line in text_page.extract_text_lines(return_chars=True)
            ]
            blocks = text_blocks(lines)
            for box, rows in tables:
                text = markdown_table(rows)
                if text:
                    blocks.append({"bbox": tuple(box), "lines": [{"spans": [{"text": text}]}]})
            pages.append(_in_order(blocks, rtl))
    return pages


def pdfminer_pages(path: Path) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar, LTTextContainer, LTTextLine

    pages: list[str] = []
    for layout in extract_pages(str(path)):
        boxes = [element for element in layout if isinstance(element, LTTextContainer)]
        glyphs = [
            [[{"c": c.get_text(), "bbox": (c.x0, layout.height - c.y1, c.x1, layout.height - c.y0), "size": c.size} for c in line if isinstance(c, LTChar)] for line in box if isinstance(line, LTTextLine)]
            for box in boxes
        ]
        if rtl_text("".join(box.get_text() for box in boxes)):
            pages.append(_in_order(text_blocks([line for box in glyphs for line in box]), rtl=True))
            continue
        blocks: list[Block] = []
        for box, lines in zip(boxes, glyphs):
            text = "\n".join(t for line in lines if line and (t := line_text(line, max(g["size"] for g in line))).strip())
            if text.strip():
                blocks.append({"bbox": (box.x0, layout.height - box.y1, box.x1, layout.height - box.y0), "lines": [{"spans": [{"text": text}]}]})
        pages.append("\n\n".join(b["lines"][0]["spans"][0]["text"] for b in xy_order(blocks)))
    return pages
