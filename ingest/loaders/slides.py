"""PowerPoint: each slide is a page: its title, body text, tables and speaker notes."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.types import Document, LoadError


def _shape_text(shape: Any) -> list[str]:
    out: list[str] = []
    if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
        out.append(shape.text_frame.text.strip())
    if getattr(shape, "has_table", False):
        rows = [[" ".join(c.text.split()) for c in r.cells] for r in shape.table.rows]
        if rows:
            width = max(len(r) for r in rows)
            out.append("\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width] + ["| " + " | ".join(r) + " |" for r in rows[1:]]))
    if getattr(shape, "shape_type", None) == 6:  # a group
        for inner in shape.shapes:
            out.extend(_shape_text(inner))
    return out


def load_pptx(path: Path, options: object) -> Iterator[Document]:
    if not zipfile.is_zipfile(path):
        raise LoadError("not a valid PPTX file (not a zip archive; old .ppt or mislabelled?)")
    from pptx import Presentation

    deck = Presentation(str(path))
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
        parts: list[str] = [title] if title else []
        for shape in slide.shapes:
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            parts.extend(_shape_text(shape))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                parts.append(notes)
        text = "\n\n".join(p for p in parts if p)
        if text:
            yield Document(text, {"source": str(path), "page": number, "title_path": [title] if title else [], "kind": "text"})
