"""Spreadsheets and delimited text as Markdown tables, one per sheet (the sheet name in the title path).
The splitter keeps a table whole when it fits, else cuts it by rows with the header row repeated,
so every chunk carries each row with its header."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ingest.loaders.text import decode_bytes
from ingest.types import Document, LoadError


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


def markdown_table(rows: Iterable[list[Any]]) -> str:
    """A Markdown table of the non-empty rows; the first is the header; empty columns dropped."""
    table = [[_cell(v).replace("|", "\\|") for v in raw] for raw in rows]
    table = [r for r in table if any(r)]
    if not table:
        return ""
    width = max(len(r) for r in table)
    table = [r + [""] * (width - len(r)) for r in table]
    keep = [i for i in range(width) if any(r[i] for r in table)]
    table = [[r[i] for i in keep] for r in table]
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(keep)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table[1:]])


def _sheet_document(path: Path, sheet: str | None, rows: Iterable[list[Any]], page: int | None) -> Document | None:
    text = markdown_table(rows)
    if not text:
        return None
    return Document(text, {"source": str(path), "page": page, "title_path": [sheet] if sheet else [], "kind": "table", "sheet": sheet})


def load_xlsx(path: Path, options: object) -> Iterator[Document]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise LoadError(f"corrupt or unreadable XLSX: {exc}") from exc
    try:
        for n, ws in enumerate(book.worksheets, start=1):
            doc = _sheet_document(path, ws.title, ([c for c in row] for row in ws.iter_rows(values_only=True)), n)
            if doc:
                yield doc
    finally:
        book.close()


def load_xls(path: Path, options: object) -> Iterator[Document]:
    try:
        import xlrd
    except ImportError as exc:
        raise LoadError("old .xls files need: pip install xlrd") from exc
    try:
        book = xlrd.open_workbook(str(path))
    except Exception as exc:
        raise LoadError(f"corrupt or unreadable XLS: {exc}") from exc
    for n, sheet in enumerate(book.sheets(), start=1):
        doc = _sheet_document(path, sheet.name, (sheet.row_values(i) for i in range(sheet.nrows)), n)
        if doc:
            yield doc


def load_delimited(path: Path, options: object) -> Iterator[Document]:
    text = decode_bytes(path.read_bytes())
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    if delimiter == ",":
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
        except csv.Error:
            pass
    doc = _sheet_document(path, None, csv.reader(io.StringIO(text), delimiter=delimiter), None)
    if doc:
        yield doc
