"""Tables without rules: rows of a label and figures, as financial statements, price lists and spec
sheets set them with spaces instead of lines, read as Markdown tables.

PyMuPDF gives each cell of such a row as a line of its own at one height ("Depreciation and
amortization", "594.7", "620.1", "618.8"); joined into a paragraph they read as one run of words
and figures ("… amortization 594.7 620.1 618.8 After-tax earnings …"), which loses which figure is
which year, and a chunk boundary can fall inside a row. Here a run of such rows becomes a table:
each row its label and its figures, each figure in the column its right edge lines up with (figures
are set flush right), the years above them as the header. A run needs at least MIN_ROWS rows with
MIN_FIGURES figures or more; a line of prose ends it. The table takes the place of its lines, so it
gets the page's headings like a ruled table (title path, caption) and is chunked as one.
"""

from __future__ import annotations

import re
from typing import Any

from ingest.tables import CURRENCY, FIGURE, YEAR, markdown_table

Line = tuple[str, str, float, float, float, float, float]  # as ingest.loaders.pdf.Line

MIN_ROWS = 3  # rows with figures a table needs
MIN_FIGURES = 2  # figures a row needs (a label with one number is a list or a contents entry)
MAX_LABEL_ONLY = 2  # label-only rows in a row (a section label, a label wrapped onto two lines)

_SENTENCE_END = re.compile(r"[.。!?！？]$")


def _is_figure(text: str) -> bool:
    return bool(FIGURE.match(text))


class _Row:
    """A row as a label and its figures (text, left and right edge); figures without edges (read from
    one line's end) have None. cells: every cell as (text, left, right)."""

    def __init__(self, cells: list[Line]) -> None:
        cells = [c for c in cells if c[1]]
        kept = [c for c in cells if c[1] not in CURRENCY]  # a lone "$" before a figure says nothing
        figures: list[tuple[str, float | None, float | None]] = []  # (text, left, right)
        while kept and _is_figure(kept[-1][1]):
            figures.insert(0, (kept[-1][1], kept[-1][5], kept[-1][6]))
            kept.pop()
        if any(_is_figure(c[1]) for c in kept[1:]):  # figures among the label's cells: two tables side by side, or
            figures, kept = [], kept  # a row this reader cannot split; left as text
        label = " ".join(c[1] for c in kept).strip()
        if not figures and len(cells) == 1:  # one line: "Net income $ 5,363 $ 4,869"
            words = label.split()
            tail: list[str] = []
            while words and (_is_figure(words[-1]) or words[-1] in CURRENCY):
                word = words.pop()
                if word not in CURRENCY:
                    tail.insert(0, word)
            if len(tail) >= MIN_FIGURES:
                figures = [(t, None, None) for t in tail]
                label = " ".join(words)
        self.label = re.sub(r"\s*[$€£¥]$", "", label).strip()
        self.figures = figures
        self.cells = [(c[1], c[5], c[6]) for c in cells]
        self.top = cells[0][2] if cells else 0.0
        self.height = max((c[3] - c[2] for c in cells), default=0.0)

    @property
    def numeric(self) -> bool:
        return len(self.figures) >= MIN_FIGURES and any(any(ch.isdigit() for ch in f) for f, _, _ in self.figures)

    @property
    def years(self) -> bool:
        """A header of years ("2020 2019 2018"), perhaps under a short label ("(In Millions)")."""
        return self.numeric and all(YEAR.match(f) for f, _, _ in self.figures) and len(self.label) <= 40

    @property
    def label_only(self) -> bool:
        return not self.figures and 0 < len(self.label) <= 120 and not _SENTENCE_END.search(self.label)


def _columns(rows: list[_Row], width: float) -> list[tuple[float, float]]:
    """The columns the figures line up in, left to right, as (left, right): clusters of the figures'
    right edges (figures are set flush right), each used by a quarter of the rows; left is the
    leftmost start of a figure in it."""
    edges = sorted((right, left) for r in rows for _, left, right in r.figures if right is not None and left is not None)
    if not edges:
        return []
    gap = max(6.0, 0.015 * width)
    clusters: list[list[tuple[float, float]]] = [[edges[0]]]
    for e in edges[1:]:
        if e[0] - clusters[-1][-1][0] <= gap:
            clusters[-1].append(e)
        else:
            clusters.append([e])
    need = max(2, len([r for r in rows if r.numeric]) // 4)
    return [(min(left for _, left in c), sum(right for right, _ in c) / len(c)) for c in clusters if len(c) >= need]


def _nearest(columns: list[tuple[float, float]], right: float) -> int:
    return min(range(len(columns)), key=lambda k: abs(columns[k][1] - right))


def _covered(columns: list[tuple[float, float]], left: float, right: float) -> list[int]:
    """The columns a head set from left to right stands over: those whose middle it spans ("Three
    Months Ended" over three), else the one nearest its middle."""
    inside = [k for k, (a, b) in enumerate(columns) if left - 2 <= (a + b) / 2 <= right + 2]
    if inside:
        return inside
    middle = (left + right) / 2
    return [min(range(len(columns)), key=lambda k: abs((columns[k][0] + columns[k][1]) / 2 - middle))]


def _add(cells: list[str], j: int, text: str) -> None:
    cells[j] = f"{cells[j]} {text}".strip()


def _flush_right(texts: list[str], n: int) -> tuple[list[str], list[str]]:
    """Texts without places in n columns: the last ones fill the last columns; (the rest, the cells)."""
    kept = texts[-n:] if n else []
    return texts[: len(texts) - len(kept)], [""] * (n - len(kept)) + kept


def _table(rows: list[_Row], width: float, heads: list[_Row]) -> str:
    """rows as a Markdown table; heads: rows of column heads above the figures, top to bottom."""
    columns = _columns(rows, width)
    n = len(columns) or max(len(r.figures) for r in rows)
    body = rows[1:] if rows[0].years else rows
    heads = heads + [rows[0]] if rows[0].years else heads
    out: list[list[str]] = []
    for row in body:
        if columns and all(right is not None for _, _, right in row.figures):
            cells = [""] * n
            for text, _, right in row.figures:
                _add(cells, _nearest(columns, right), text)  # type: ignore[arg-type]
            out.append([row.label, *cells])
        else:  # figures without edges: flush right, any more than the columns stay with the label
            surplus, cells = _flush_right([t for t, _, _ in row.figures], n)
            out.append([" ".join([row.label, *surplus]).strip(), *cells])
    header = [""] * (n + 1)
    figures_left = min((left for r in body for _, left, _ in r.figures[:1] if left is not None), default=None)
    labels_left = min((r.cells[0][1] for r in body if r.label and r.cells), default=None)
    for head in heads:
        if head.years and (not columns or any(left is None for _, left, _ in head.figures)):  # years without places
            surplus, cells = _flush_right([t for t, _, _ in head.figures], n)
            _add(header, 0, " ".join([head.label, *surplus]))
            for j, text in enumerate(cells):
                _add(header, j + 1, text)
            continue
        if head.years:
            _add(header, 0, head.label)
        if not columns:  # heads with no columns to stand over: kept over the labels, not lost
            _add(header, 0, " ".join(t for t, _, _ in head.cells))
            continue
        cells = [(t, a, b) for t, a, b in head.cells if not (head.years and not YEAR.match(t))]
        for text, left, right in cells:
            if figures_left is not None and right <= figures_left and (labels_left is None or left <= labels_left + 0.03 * width):
                _add(header, 0, text)  # over the labels: it starts where they start
                continue
            over = _covered(columns, left, right)
            words = text.split()
            if len(over) >= 3 and len(words) == len(over):  # "Top-1 Top-5 Top-20 Top-100" set as one line: one each
                for j, word in zip(over, words):
                    _add(header, j + 1, word)
                continue
            for j in over:  # a head spanning columns ("Three Months Ended") stands over each
                _add(header, j + 1, text)
    if any(header):
        return markdown_table([header, *out])
    return _with_blank_header(out)


def _with_blank_header(rows: list[list[str]]) -> str:
    """A table whose header row is empty (no figures become the header)."""
    table = markdown_table(rows)
    if not table:
        return ""
    head, rule, *body = table.split("\n")
    width = rule.count("---")
    return "\n".join(["| " + " | ".join([""] * width) + " |", rule, head, *body])


def _runs(rows: list[_Row]) -> list[tuple[int, int]]:
    """[start, end) of the runs of rows that make tables."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(rows):
        if not rows[i].numeric:
            i += 1
            continue
        start = end = last_numeric = i
        idle = 0
        while end < len(rows):
            row = rows[end]
            if row.numeric:
                idle, last_numeric = 0, end
            elif row.label_only and idle < MAX_LABEL_ONLY:
                idle += 1
            else:
                break
            end += 1
        end = last_numeric + 1
        if sum(r.numeric and not r.years for r in rows[start:end]) >= MIN_ROWS:
            runs.append((start, end))
        i = end
    return runs


def number_tables(layout: list[dict[str, Any]], width: float, top_margin: float = 0.0) -> list[dict[str, Any]]:
    """The page's layout (ingest.loaders.pdf.page_layout) with each run of label-and-figures rows
    replaced by a {"table": Markdown} block. Rows are looked for across the blocks between two ruled
    tables (PyMuPDF starts a new block inside a statement where a label wraps); the lines outside a
    run stay in their own blocks. Lines above top_margin (running heads) are never column heads."""
    out: list[dict[str, Any]] = []
    stretch: list[tuple[int, Line]] = []  # (block number, line) since the last table block

    def flush() -> None:
        if sum(1 for _, ln in stretch if _is_figure(ln[1])) < MIN_ROWS * MIN_FIGURES:
            out.extend(_regrouped(stretch))
            stretch.clear()
            return
        grouped = _rows_numbered(stretch)
        rows = [_Row([ln for _, ln in g]) for g in grouped]
        runs = _runs(rows)
        taken: set[int] = set()  # rows read into a table (its own, or its heads)
        tables: dict[int, str] = {}  # first row of a table -> the table
        for start, end in runs:
            heads = _heads(rows, start, end, width, taken | {i for a, b in runs for i in range(a, b)}, top_margin)
            table = _table(rows[start:end], width, [rows[i] for i in heads])
            if table:
                tables[min([start, *heads])] = table
                taken.update(range(start, end), heads)
        if not tables:
            out.extend(_regrouped(stretch))
            stretch.clear()
            return
        pending: list[tuple[int, Line]] = []
        for i, group in enumerate(grouped):
            if i in tables:
                out.extend(_regrouped(pending))
                pending = []
                out.append({"table": tables[i]})
            if i not in taken:
                pending.extend(group)
        out.extend(_regrouped(pending))
        stretch.clear()

    for number, block in enumerate(layout):
        if "table" in block:
            flush()
            out.append(block)
        else:
            stretch.extend((number, ln) for ln in block["lines"])
    flush()
    return out


def _heads(rows: list[_Row], start: int, end: int, width: float, taken: set[int], top_margin: float = 0.0) -> list[int]:
    """The rows of column heads of the table rows[start:end], top to bottom: short rows without
    figures just above its first row, set over its figures or, with two cells or more, across
    it ("State  Permit  Handgun"); in the reading order they may come before or after the table."""
    first = rows[start]
    if first.height <= 0:
        return []
    figures_left = min((left for r in rows[start:end] for _, left, _ in r.figures[:1] if left is not None), default=None)
    if figures_left is None:
        return []
    table_left = min((r.cells[0][1] for r in rows[start:end] if r.cells), default=figures_left)
    table_right = max((right for r in rows[start:end] for _, _, right in r.figures if right is not None), default=figures_left)
    slack = 0.03 * width
    found: list[int] = []
    for i, row in enumerate(rows):
        if i in taken or row.figures and not row.years or not row.cells or row.top < top_margin:
            continue
        if any(a < table_left - slack or b > table_right + slack for _, a, b in row.cells):  # beside the table: another column's text
            continue
        above = first.top - (row.top + row.height)
        if not (-0.3 * first.height <= above <= 5 * first.height) or row.top >= first.top:
            continue
        if any(len(t) > 40 or _SENTENCE_END.search(t) for t, _, _ in row.cells):
            continue
        if all(left >= figures_left - 0.01 * width for _, left, _ in row.cells) or len(row.cells) >= 2:
            found.append(i)
    # only the rows touching the table: a gap of more than two lines ends them
    found.sort(key=lambda i: -rows[i].top)
    kept: list[int] = []
    bottom = first.top
    for i in found:
        if bottom - (rows[i].top + rows[i].height) > 2 * first.height:
            break
        kept.append(i)
        bottom = min(bottom, rows[i].top)
    return sorted(kept, key=lambda i: rows[i].top)


def _rows_numbered(lines: list[tuple[int, Line]]) -> list[list[tuple[int, Line]]]:
    """Consecutive lines at one height, left to right, as rows (the cells of one row), each with its
    block number; empty lines are kept with the row before them."""
    rows: list[list[tuple[int, Line]]] = []
    for number, line in lines:
        if rows and not line[1]:
            rows[-1].append((number, line))
            continue
        if rows and line[1]:
            first = next((ln for _, ln in rows[-1] if ln[1]), None)
            last = next((ln for _, ln in reversed(rows[-1]) if ln[1]), None)
            if first is not None and last is not None:
                height = max(first[3] - first[2], line[3] - line[2], 1e-6)
                if abs(line[2] - first[2]) <= 0.3 * height and line[5] >= last[6] - 1:
                    rows[-1].append((number, line))
                    continue
        rows.append([(number, line)])
    return rows


def _regrouped(lines: list[tuple[int, Line]]) -> list[dict[str, Any]]:
    """Lines back in blocks of their own block numbers."""
    blocks: list[dict[str, Any]] = []
    current = None
    for number, line in lines:
        if number != current:
            blocks.append({"lines": []})
            current = number
        blocks[-1]["lines"].append(line)
    return blocks
