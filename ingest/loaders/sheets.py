"""Spreadsheets and delimited text as Markdown tables, one per sheet (the sheet name in the title path).
The splitter keeps a table whole when it fits, else cuts it by rows with the header row repeated,
so every chunk carries each row with its header."""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.loaders.docprops import about_document, core_about
from ingest.loaders.numformat import shown
from ingest.loaders.text import decode_bytes
from ingest.tables import Repeats, cell_text
from ingest.tables import markdown_table as _markdown_table
from ingest.textfacts import is_amount
from ingest.types import Document, LoadError


def markdown_table(rows: Iterable[list[Any]]) -> str:
    """A sheet's table: empty rows and columns dropped."""
    return _markdown_table(rows, drop_empty_columns=True)


def _sheet_document(path: Path, sheet: str | None, rows: Iterable[list[Any]], page: int | None) -> Document | None:
    text = markdown_table(rows)
    if not text:
        return None
    return Document(text, {"source": str(path), "page": page, "title_path": [sheet] if sheet else [], "kind": "table", "sheet": sheet})


MAX_JOINED_REGIONS = 300  # a sheet with more separate pieces than this keeps them as they are (joining is quadratic)


@dataclass
class _Region:
    cells: set[tuple[int, int]]
    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def of(cls, cells: set[tuple[int, int]]) -> _Region:
        rows, cols = [r for r, _ in cells], [c for _, c in cells]
        return cls(cells, min(rows), max(rows), min(cols), max(cols))

    def rows(self) -> set[int]:
        return {r for r, _ in self.cells}


def _one_table(a: _Region, b: _Region, grid: list[list[str]]) -> bool:
    """Whether two groups of touching cells are one table: their boxes overlap (a caption cell in the
    table's corner, a header cell over a column of its own); or they stand side by side across one or
    two empty columns and fill mostly the same rows, two thirds of each one's (a spacer column:
    "Sales | Profit | | Depreciation"; a caption row over one of them); or one
    is a header (a few rows, no figures) across one empty row above the other, within its columns."""
    if a.left <= b.right and b.left <= a.right and a.top <= b.bottom and b.top <= a.bottom:
        return True
    if a.left > b.left:
        a, b = b, a
    shared = len(a.rows() & b.rows())
    if 2 <= b.left - a.right <= 3 and shared >= 2 and shared >= 2 / 3 * max(len(a.rows()), len(b.rows())):
        return True
    upper, lower = (a, b) if a.top < b.top else (b, a)
    header = upper.bottom - upper.top < 3 and not any(is_amount(grid[r][c]) for r, c in upper.cells)
    return header and lower.top == upper.bottom + 2 and lower.left <= upper.left and upper.right <= lower.right


def table_regions(grid: list[list[str]]) -> list[list[list[str]]]:
    """The separate tables of a sheet: groups of non-empty cells that touch (up, down, left,
    right), joined where they are one table laid out with gaps (_one_table: a spacer column, an empty
    row under the header), in the order a reader meets them (row by row), each cut to its bounding box."""
    filled = {(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v}
    seen: set[tuple[int, int]] = set()
    regions: list[_Region] = []
    for start in sorted(filled):
        if start in seen:
            continue
        stack, cells = [start], set()
        seen.add(start)
        while stack:
            r, c = stack.pop()
            cells.add((r, c))
            for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if nb in filled and nb not in seen:
                    seen.add(nb)
                    stack.append(nb)
        regions.append(_Region.of(cells))
    joined = len(regions) <= MAX_JOINED_REGIONS
    while joined:
        joined = False
        for i, j in ((i, j) for i in range(len(regions)) for j in range(i + 1, len(regions))):
            if _one_table(regions[i], regions[j], grid):
                regions[i] = _Region.of(regions[i].cells | regions[j].cells)
                del regions[j]
                joined = True
                break
    regions.sort(key=lambda g: min(g.cells))
    return [[[grid[r][c] if (r, c) in g.cells else "" for c in range(g.left, g.right + 1)] for r in range(g.top, g.bottom + 1)]
            for g in regions]


def _captions(region: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """A region's caption rows and the rest: a first row that is one cell merged across the table, or
    one or two cells of text over a row that fills two more ("In millions of CHF … January–June 2023"
    over the columns' names)."""
    captions = []
    while len(region) > 1 and len(region[0]) > 1:
        first = [v for v in region[0] if v]
        below = [row for row in region[1:] if any(row)]  # an empty row under a caption is no row of the table
        following = sum(1 for v in below[0] if v) if below else 0
        if region[0][0] and len(set(region[0])) == 1:
            captions.append(region[0][0])
        elif len(below) > 1 and 0 < len(first) <= 2 and following >= len(first) + 2 and not any(is_amount(v) for v in first):
            captions.append(" ".join(" ".join(v.split()) for v in first))
        else:
            break
        region = region[1:]
        while len(region) > 1 and not any(region[0]):
            region = region[1:]
    return captions, region


def _sheet_documents(path: Path, sheet: str, grid: list[list[str]], page: int) -> Iterator[Document]:
    for region in table_regions(grid):
        lines = [next(v for v in row if v) for row in region if any(row)]
        if len(region[0]) > 1 and all(len({v for v in row if v}) == 1 for row in region if any(row)):  # rows of one text each, across:
            yield Document("\n".join(lines), {"source": str(path), "page": page, "title_path": [sheet], "kind": "text", "sheet": sheet})
            continue  # notes under a table, a title: lines, each once (found by review: a note repeated over 8 columns)
        captions, region = _captions(region)
        doc = _sheet_document(path, sheet, region, page)
        if doc:
            doc.meta["title_path"] = [sheet, *(c for c in captions if c != sheet)]  # a caption that repeats the sheet's name once
            yield doc


def _shown(cell: Any) -> str:
    """A cell's text as Excel shows it: a number under its number format (5.5%, 1,234.50, ¥1,235), a date without a
    time of midnight (2024-03-31, as an .xls date)."""
    value = cell.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return shown(value, getattr(cell, "number_format", None))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    return cell_text(value, escape=False)


def _grid(ws: Any) -> tuple[list[list[str]], dict[int, int]]:
    """A sheet's cell texts by row, and the grid row of each sheet row kept. From the cells that
    exist when openpyxl holds them (a sheet can claim a million rows and fill twenty), with long
    runs of empty rows cut to one; else streamed."""
    cells = getattr(ws, "_cells", None)
    if not isinstance(cells, dict):  # read-only mode streams the rows the file holds (not the size its <dimension>
        ws.reset_dimensions()  # claims: found by review, A1:XFD1048576 made a million rows of 16,384 cells)
        grid = [[_shown(c) for c in row] for row in ws.iter_rows()]
        return grid, {r + 1: r for r in range(len(grid))}
    filled = {key: _shown(c) for key, c in cells.items() if c.value is not None}
    filled = {k: v for k, v in filled.items() if v}
    merged = [(m.min_row, m.min_col) for m in ws.merged_cells.ranges]
    if not filled:
        return [], {}
    return _placed(filled, sorted({r for r, _ in filled} | {r for r, _ in merged}))


def _placed(filled: dict[tuple[int, int], str], rows: list[int]) -> tuple[list[list[str]], dict[int, int]]:
    """Cells by (row, column), from 1, on a grid of the given sheet rows (a run of empty rows between them one empty
    row), and the grid row of each sheet row."""
    width = max((c for _, c in filled), default=0)
    grid: list[list[str]] = []
    index: dict[int, int] = {}
    for i, r in enumerate(rows):
        if i and r - rows[i - 1] > 1:
            grid.append([""] * width)  # a gap stays a gap, however long
        index[r] = len(grid)
        grid.append([""] * width)
    for (r, c), text in filled.items():
        grid[index[r]][c - 1] = text
    return grid, index


def _fill_merged(ws: Any, grid: list[list[str]], rows: dict[int, int], repeats: Repeats) -> None:
    """A merged cell's value repeated over the cells it covers, so every row reads whole: over the rows kept (a range
    may claim a million), within the workbook's Repeats (found by review: a 13 KB workbook became 800 MB)."""
    import bisect

    kept = sorted(rows)
    for merged in ws.merged_cells.ranges:
        top = rows.get(merged.min_row)
        if top is None or merged.min_col - 1 >= len(grid[top]):
            continue
        value = grid[top][merged.min_col - 1]
        inside = [rows[r] for r in kept[bisect.bisect_left(kept, merged.min_row) : bisect.bisect_right(kept, merged.max_row)]]
        if not repeats.allow(value, len(inside) * (min(merged.max_col, len(grid[top])) - merged.min_col + 1) - 1):
            continue
        for r in inside:
            for c in range(merged.min_col - 1, min(merged.max_col, len(grid[r]))):
                grid[r][c] = value


def _comments(ws: Any) -> list[str]:
    """Cell comments as "Comment on B2 (author): text"; Excel's threaded comments lose their
    compatibility boilerplate and keep comment and replies."""
    cells = getattr(ws, "_cells", None)  # the cells that exist (never the million empty rows a sheet may claim)
    every = sorted(cells.values(), key=lambda c: (c.row, c.column)) if isinstance(cells, dict) else [c for row in ws.iter_rows() for c in row]
    out = []
    for cell in every:
        comment = getattr(cell, "comment", None)
        if comment is None or not comment.text:
            continue
        text, author = comment.text, comment.author or ""
        if text.startswith("[Threaded comment]"):
            body = text.split("\nComment:", 1)[-1]
            text = " ".join(part.strip() for part in body.replace("\nReply:", "\n").splitlines() if part.strip())
            author = ""
        who = f" ({author})" if author and not author.startswith("tc=") else ""
        out.append(f"Comment on {cell.coordinate}{who}: {' '.join(text.split())}")
    return out


# Above this size a workbook is streamed (read-only mode: less memory, but merged cells unknown).
_FULL_LOAD_BYTES = 20 * 2**20
# Above this many cells under merged ranges too: openpyxl makes an object of every cell a range covers (found by
# review: a 5 KB workbook merging A1:XFD1048576 took 3.7 GB in a minute, and growing).
_MAX_MERGED_CELLS = 200_000
_MERGE_REF = re.compile(rb"<(?:\w{1,32}:)?mergeCell\b[^>]{0,256}?\bref=[\"']\$?([A-Za-z]{1,3})\$?(\d{1,7}):\$?([A-Za-z]{1,3})\$?(\d{1,7})")


def _column(letters: bytes) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ch - 64
    return n


def _merged_cells(path: Path) -> int:
    """How many cells the workbook's merged ranges cover, read from its sheets' XML without building them (the
    count stops once past _MAX_MERGED_CELLS)."""
    import zipfile

    total = 0
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                    continue
                with z.open(name) as f:
                    tail = b""
                    while total <= _MAX_MERGED_CELLS:
                        block = f.read(1 << 20)
                        if not block:
                            break
                        text = tail + block
                        end = 0
                        for m in _MERGE_REF.finditer(text):
                            rows = abs(int(m.group(4)) - int(m.group(2))) + 1
                            columns = abs(_column(m.group(3)) - _column(m.group(1))) + 1
                            total += rows * columns
                            end = m.end()
                        tail = text[max(end, len(text) - 512) :]  # a reference cut by the block's end is read with the next
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError):
        return 0  # openpyxl will say what is wrong with the file
    return total


def load_xlsx(path: Path, options: object) -> Iterator[Document]:
    import openpyxl

    read_only = path.stat().st_size > _FULL_LOAD_BYTES or _merged_cells(path) > _MAX_MERGED_CELLS
    try:
        book = openpyxl.load_workbook(path, read_only=read_only, data_only=True)
    except Exception as exc:
        if isinstance(exc, MemoryError):
            raise  # (the reader's memory limit: its process is spent, not the file read another way)
        if "encrypted" in str(exc).lower() or _is_ole(path):  # an encrypted workbook is an OLE file holding the real one
            raise LoadError("password-protected XLSX: remove the password (File > Info > Protect Workbook) and ingest it again") from exc
        try:
            sheets = _raw_sheets(path)  # openpyxl refuses some files over parts that hold no cell
        except LoadError:
            raise
        except Exception:
            raise LoadError(f"corrupt or unreadable XLSX: {exc}") from exc
        for n, (name, grid) in enumerate(sheets, start=1):
            yield from _sheet_documents(path, name, grid, n)
        return
    from ingest.loaders.charts import workbook_charts

    charts = workbook_charts(path)
    yield from about_document(path, core_about(path))
    try:
        sheet_names = [ws.title for ws in book.worksheets]
        for name in [n for n in charts if n not in sheet_names]:  # chart sheets: a chart and nothing else
            yield Document("\n\n".join(charts[name]), {"source": str(path), "page": None, "title_path": [name], "kind": "text", "sheet": name})
        repeats = Repeats()  # what merged cells may repeat, for the whole workbook (100 sheets each under it: 200 MB)
        for n, ws in enumerate(book.worksheets, start=1):
            grid, rows = _grid(ws)
            width = max((len(r) for r in grid), default=0)
            grid = [r + [""] * (width - len(r)) for r in grid]
            if not read_only:
                _fill_merged(ws, grid, rows, repeats)
            yield from _sheet_documents(path, ws.title, grid, n)
            for text in charts.get(ws.title, []):
                yield Document(text, {"source": str(path), "page": n, "title_path": [ws.title], "kind": "text", "sheet": ws.title})
            notes = [] if read_only else _comments(ws)
            if notes:
                yield Document("\n".join(notes), {"source": str(path), "page": n, "title_path": [ws.title], "kind": "text", "sheet": ws.title})
    finally:
        book.close()


def _is_ole(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(8) == bytes.fromhex("D0CF11E0A1B11AE1")


def load_xls(path: Path, options: object) -> Iterator[Document]:
    try:
        import xlrd
    except ImportError as exc:
        raise LoadError("old .xls files need: pip install xlrd") from exc
    try:
        book = xlrd.open_workbook(str(path), formatting_info=True)  # the cells' number formats
    except Exception:  # noqa: BLE001 - a file whose formatting records xlrd cannot read: its values without them
        try:
            book = xlrd.open_workbook(str(path))
        except Exception as exc:
            raise LoadError(f"corrupt or unreadable XLS: {exc}") from exc
    for n, sheet in enumerate(book.sheets(), start=1):
        grid = [[cell_text(_xls_value(c, book.datemode, _xls_format(book, c)), escape=False) for c in sheet.row(i)] for i in range(sheet.nrows)]
        yield from _sheet_documents(path, sheet.name, grid, n)


def _xls_format(book: Any, cell: Any) -> str | None:
    """The number format of an .xls cell, when the book was read with its formatting records."""
    try:
        return book.format_map[book.xf_list[cell.xf_index].format_key].format_str
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _xls_value(cell: Any, datemode: int, fmt: str | None = None) -> Any:
    """An .xls cell's value as Excel shows its kind: a date (2024-03-31, with its time when it has one), an
    error (#DIV/0!), TRUE/FALSE (found by review: 45382, 7 and 1), a number under its format (fmt: 5.5%)."""
    import xlrd

    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            when = xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell.value
        return when.date().isoformat() if when.time() == datetime.time() else when.isoformat(sep=" ")
    if cell.ctype == xlrd.XL_CELL_ERROR:
        return xlrd.error_text_from_code.get(cell.value, "#ERROR")
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return "TRUE" if cell.value else "FALSE"
    if cell.ctype == xlrd.XL_CELL_NUMBER and fmt:
        return shown(cell.value, fmt)
    return cell.value


_EXCEL_SEP = re.compile(r"\ufeff?sep=([^\r\n])[ \t]*(?:\r\n|\r|\n)")


def load_delimited(path: Path, options: object) -> Iterator[Document]:
    text = decode_bytes(path.read_bytes())
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    said = _EXCEL_SEP.match(text)  # Excel's "sep=;" line names the delimiter, and is no row (found by review: it was the header)
    if said:
        delimiter, text = said.group(1), text[said.end():]
    elif delimiter == ",":
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
        except csv.Error:
            pass
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))  # a cell may be as long as the file (found by review: one
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)  # of 144 KB failed the file); any line ends, as
    doc = _sheet_document(path, None, rows, None)  # open(newline="") reads them (found by review: a CR-only CSV failed)
    if doc:
        yield doc


_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_CELL_REF = re.compile(r"([A-Z]{1,3})(\d{1,7})$")
MAX_COLUMN, MAX_ROW = 16384, 1048576  # Excel's own: XFD, and a million rows
RAW_MAX_CELLS = 2_000_000  # cells (blank ones too) the raw reader reads from one workbook, at most
RAW_MAX_CHARS = 100_000_000  # characters of cell text, at most (one shared string may fill a million cells)
RAW_MAX_GRID = 20_000_000  # rows times columns of one sheet's grid, at most


def _raw_sheets(path: Path) -> list[tuple[str, list[list[str]]]]:
    """Each sheet's name and cell texts read from the workbook's XML itself, for a file openpyxl refuses over a part
    that is no cell (a date in docProps written without a time, an empty font size, "Portrait"
    for "portrait": found by review, each file failed whole). Values as stored (a formula's cached result), no styles.
    Parsed as a stream, within RAW_MAX_CELLS, RAW_MAX_CHARS and RAW_MAX_GRID, on the columns that hold something
    (found by review: a cell at column YFXJRG, or 165 MB of blank cells, took gigabytes)."""
    import posixpath
    import xml.etree.ElementTree as ET
    import zipfile

    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        book = ET.fromstring(z.read("xl/workbook.xml"))
        rels = {}
        if "xl/_rels/workbook.xml.rels" in names:
            for rel in ET.fromstring(z.read("xl/_rels/workbook.xml.rels")):
                target = rel.get("Target", "")
                rels[rel.get("Id")] = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            with z.open("xl/sharedStrings.xml") as f:
                for _, el in ET.iterparse(f):
                    if el.tag == f"{_MAIN_NS}si":
                        shared.append(_shared_text(el))
                        el.clear()
        out: list[tuple[str, list[list[str]]]] = []
        budget = {"cells": RAW_MAX_CELLS, "chars": RAW_MAX_CHARS}
        for sheet in book.iter(f"{_MAIN_NS}sheet"):
            part = rels.get(sheet.get(f"{_REL_NS}id"))
            if part in names:
                with z.open(part) as f:
                    out.append((sheet.get("name") or f"Sheet{len(out) + 1}", _raw_grid(f, shared, budget)))
        return out


def _raw_grid(stream: Any, shared: list[str], budget: dict[str, int]) -> list[list[str]]:
    """One sheet's cells as a grid of the columns that hold something (see _raw_sheets)."""
    import xml.etree.ElementTree as ET

    found: dict[tuple[int, int], str] = {}
    for _, c in ET.iterparse(stream):
        if c.tag != f"{_MAIN_NS}c":
            if c.tag == f"{_MAIN_NS}row":
                c.clear()
            continue
        budget["cells"] -= 1
        if budget["cells"] < 0:
            raise LoadError(f"over {RAW_MAX_CELLS:,} cells in a workbook openpyxl could not read")
        m = _CELL_REF.match(c.get("r", ""))
        text = _raw_value(c, shared)
        c.clear()
        if not m or not text.strip():
            continue
        col = 0
        for ch in m.group(1):
            col = col * 26 + ord(ch) - 64
        row = int(m.group(2))
        if col > MAX_COLUMN or not 0 < row <= MAX_ROW:
            continue
        found[(row, col)] = " ".join(text.split())
        budget["chars"] -= len(text)
        if budget["chars"] < 0:
            raise LoadError(f"over {RAW_MAX_CHARS:,} characters of cells in a workbook openpyxl could not read")
    columns = {c: i for i, c in enumerate(sorted({c for _, c in found}), start=1)}  # the columns that hold something
    rows = sorted({r for r, _ in found})
    if len(rows) * len(columns) > RAW_MAX_GRID:
        raise LoadError(f"a sheet's {len(found):,} cells spread over {len(rows):,} rows and {len(columns):,} columns: too sparse to lay out")
    grid, _ = _placed({(r, columns[c]): text for (r, c), text in found.items()}, rows)
    return grid


def _raw_value(c: Any, shared: list[str]) -> str:
    """A cell's text as stored: a shared string, an inline one, TRUE/FALSE, a number as cell_text writes it."""
    kind, v = c.get("t"), c.find(f"{_MAIN_NS}v")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in c.iter(f"{_MAIN_NS}t"))
    if v is None or v.text is None:
        return ""
    if kind == "s":
        index = v.text.strip()
        return shared[int(index)] if index.isascii() and index.isdigit() and len(index) < 10 and int(index) < len(shared) else ""
    if kind == "b":
        return "TRUE" if v.text.strip() == "1" else "FALSE"
    return cell_text(float(v.text), escape=False) if kind in (None, "n") and _is_number(v.text) else v.text


def _shared_text(si: Any) -> str:
    """A shared string's text: its <t>, or its rich text runs' (not a phonetic reading's, <rPh>: Japanese furigana)."""
    plain = si.find(f"{_MAIN_NS}t")
    if plain is not None:
        return plain.text or ""
    return "".join(t.text or "" for run in si.findall(f"{_MAIN_NS}r") for t in run.findall(f"{_MAIN_NS}t"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
