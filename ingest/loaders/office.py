"""Word documents: headings become the title path; tables become Markdown tables."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ingest.types import Document, LoadError

_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)


def _heading_level(paragraph: object) -> int | None:
    style = getattr(paragraph, "style", None)
    name = (getattr(style, "name", "") or "").strip()
    if name.lower() == "title":
        return 1
    m = _HEADING_STYLE.match(name)
    return int(m.group(1)) if m else None


def _table_text(table: object) -> str:
    rows: list[list[str]] = []
    for row in table.rows:  # type: ignore[attr-defined]
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split()).replace("|", "\\|")
            if not cells or text != cells[-1]:  # merged cells repeat their text
                cells.append(text)
        rows.append(cells)
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def load_docx(path: Path, options: object) -> Iterator[Document]:
    if not zipfile.is_zipfile(path):
        raise LoadError("not a valid DOCX file (not a zip archive; old .doc or mislabelled?)")
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(str(path))
    title_path: list[tuple[int, str]] = []
    body: list[str] = []

    def section() -> Iterator[Document]:
        text = "\n".join(body).strip()
        if text:
            yield Document(text, {"source": str(path), "page": None, "title_path": [t for _, t in title_path], "kind": "text"})

    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            level = _heading_level(block)
            text = block.text.strip()
            if level and text:
                yield from section()
                body = [text]
                title_path = [(lv, t) for lv, t in title_path if lv < level] + [(level, text)]
            elif text:
                body.append(text)
        elif isinstance(block, Table):
            yield from section()
            body = []
            table = _table_text(block)
            if table.strip():
                yield Document(table, {"source": str(path), "page": None, "title_path": [t for _, t in title_path], "kind": "table"})
    yield from section()
