"""PowerPoint: each slide is a page: its title, then the shapes in reading order (top to bottom,
left to right) — text, tables (merged cells repeated), chart data as tables, pictures' OCR'd text
(when ingest.ocr allows) — then comments and speaker notes. Shapes python-pptx cannot model still give their text."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.loaders.docprops import about_document, core_about
from ingest.loaders.ocr import Pictures
from ingest.tables import Repeats, markdown_table
from ingest.types import Document, LoadError

_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"


def _table_rows(table: Any, repeats: Repeats) -> list[list[str]]:
    """Cell texts with a merged cell's text repeated over the cells it covers (within the deck's Repeats)."""
    grid = [[" ".join(c.text.split()) for c in row.cells] for row in table.rows]
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            if cell.is_merge_origin:
                height, width = min(cell.span_height, len(grid) - r), min(cell.span_width, len(grid[r]) - c)
                if not repeats.allow(grid[r][c], height * width - 1):
                    continue
                for rr in range(r, min(r + cell.span_height, len(grid))):
                    for cc in range(c, min(c + cell.span_width, len(grid[rr]))):
                        grid[rr][cc] = grid[r][c]
    return grid


def _chart_text(chart: Any) -> list[str]:
    out = []
    try:
        if chart.has_title and chart.chart_title.has_text_frame:
            title = chart.chart_title.text_frame.text.strip()
            if title:
                out.append(title)
        plot = chart.plots[0]
        categories = [str(c) for c in plot.categories]
        series = list(plot.series)
        rows = [[""] + [s.name or "" for s in series]]
        for i, category in enumerate(categories):
            rows.append([category] + [_number(s.values[i]) if i < len(s.values) else "" for s in series])
        if series:
            out.append(markdown_table(rows))
    except (IndexError, KeyError, AttributeError, ValueError, TypeError):
        pass  # a chart without readable data still leaves its title
    return out


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xml_text(element: Any) -> str:
    """Paragraph texts of any DrawingML element, for shapes python-pptx does not model."""
    paragraphs = ["".join(t.text or "" for t in p.iter(f"{_A}t")) for p in element.iter(f"{_A}p")]
    return "\n".join(p for p in paragraphs if p.strip())


def _shape_text(shape: Any, pictures: Pictures, repeats: Repeats) -> list[str]:
    out: list[str] = []
    if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
        out.append(shape.text_frame.text.strip())
    if getattr(shape, "has_table", False):
        text = markdown_table(_table_rows(shape.table, repeats))
        if text:
            out.append(text)
    if getattr(shape, "has_chart", False):
        out.extend(_chart_text(shape.chart))
    if hasattr(type(shape), "image"):  # a picture, or a picture placeholder filled: a screenshot's or scan's text
        text = pictures.text(lambda: shape.image.blob)
        if text:
            out.append(text)
    try:
        group = shape.shape_type == 6
    except NotImplementedError:  # an autoshape of a kind python-pptx does not know: its text was read above
        group = False
    if group:
        for inner in _ordered(shape.shapes):
            out.extend(_shape_text(inner, pictures, repeats) if hasattr(inner, "shape_id") else [_xml_text(inner)])
    return out


def _ordered(shapes: Any) -> list[Any]:
    """Shapes top to bottom, then left to right (placeholders without a position keep theirs)."""
    items = []
    for i, element in enumerate(shapes._iter_member_elms()):
        try:
            shape = shapes._shape_factory(element)
            _ = shape.shape_id, shape.top
        except (NotImplementedError, KeyError, ValueError, AttributeError):
            shape = element  # an unrecognised shape: its XML text is still read
        top = getattr(shape, "top", None) if hasattr(shape, "shape_id") else None
        left = getattr(shape, "left", None) if hasattr(shape, "shape_id") else None
        items.append(((top if top is not None else 0) // 20000, left or 0, i, shape))
    return [shape for *_, shape in sorted(items, key=lambda t: (t[0], t[1], t[2]))]


def _diagrams(slide: Any) -> list[str]:
    """The text of the slide's SmartArt diagrams, from their data parts (python-pptx sees a graphic frame with no text:
    found by review, "Step 1: submit claim…" was lost)."""
    out = []
    for rel in slide.part.rels.values():
        if not rel.reltype.endswith("/diagramData") or rel.is_external:
            continue
        try:
            from lxml import etree

            text = _xml_text(etree.fromstring(rel.target_part.blob))
        except Exception:  # noqa: BLE001 - a broken diagram part never stops the slide
            continue
        if text:
            out.append(text)
    return out


def _comments(slide: Any) -> list[str]:
    """Legacy and modern slide comments: "comment (author): text"."""
    out = []
    for rel in slide.part.rels.values():
        if "comment" not in rel.reltype.lower() or rel.is_external:
            continue
        try:
            from lxml import etree

            root = etree.fromstring(rel.target_part.blob)
        except Exception:  # noqa: BLE001 - a broken comment part never stops the slide
            continue
        for element in root.iter():
            tag = etree.QName(element).localname if isinstance(element.tag, str) else ""
            if tag == "cm":
                text = " ".join("".join(element.itertext()).split())
                if text:
                    out.append(f"Comment: {text}")
    return out


def load_pptx(path: Path, options: object) -> Iterator[Document]:
    if not zipfile.is_zipfile(path):
        raise LoadError("not a valid PPTX file (not a zip archive; old .ppt or mislabelled?)")
    from pptx import Presentation

    deck = Presentation(str(path))
    yield from about_document(path, core_about(path))
    pictures, repeats = Pictures(options), Repeats()  # the deck's: pictures OCR'd, what merged cells may repeat
    for number, slide in enumerate(deck.slides, start=1):
        try:
            title_shape = slide.shapes.title
        except NotImplementedError:
            title_shape = None
        title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
        parts: list[str] = [title] if title else []
        for shape in _ordered(slide.shapes):
            if title_shape is not None and getattr(shape, "shape_id", None) == title_shape.shape_id:
                continue
            if hasattr(shape, "shape_id"):
                parts.extend(_shape_text(shape, pictures, repeats))
            else:
                text = _xml_text(shape)
                if text:
                    parts.append(text)
        parts.extend(_diagrams(slide))
        parts.extend(_comments(slide))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                parts.append(notes)
        text = "\n\n".join(p for p in parts if p)
        if text:
            yield Document(text, {"source": str(path), "page": number, "title_path": [title] if title else [], "kind": "text"})
