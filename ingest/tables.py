"""Markdown tables: the one way every loader writes a table."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ingest.textfacts import TABLE_RULE, is_amount

CURRENCY = frozenset({"$", "€", "£", "¥", "￥", "US$", "HK$", "RMB"})  # a sign a statement sets in a cell of its own
# A cell that is a figure: "1,093", "(482)", "$ 5.2", "56.2%", "1e-3", a dash for none, n/a, n.m.
FIGURE = re.compile(r"^[-–—+]?[($€£¥]?\s*[-–]?\d[\d,]*(\.\d+)?([eE][-+]?\d+)?\s*%?\)?%?$|^[-–—]$|^(?i:n/?a|n\.?m\.?)$")
YEAR = re.compile(r"^(19|20)\d\d$")
SIGN_REACH = 3  # cells after a currency sign its figure may stand in (the rest of its merged header's span)
SIGNS = CURRENCY | {"%"}
Cells = list[list[tuple[int, int] | None]]  # for each cell of a table, the (row, column) of the cell its text is from

# What repeating merged cells' text over the cells they cover may add to one table (HTML, Word, PowerPoint, sheets):
# found by review, a 13 KB workbook with a merged cell of 32,000 characters became 800 MB of text, a Word cell spanning
# 30 million columns 330 MB. A table past it gives its merged cells' text once.
MAX_REPEATED_CHARS = 2_000_000


class Repeats:
    """The characters one table's merged cells have added by repetition, against MAX_REPEATED_CHARS."""

    def __init__(self) -> None:
        self.added = 0

    def allow(self, text: str, times: int) -> bool:
        """Whether text may be repeated times more; counted when it may."""
        if self.added + len(text) * times > MAX_REPEATED_CHARS:
            return False
        self.added += len(text) * times
        return True


def cell_text(value: Any, escape: bool = True) -> str:
    """A cell as one line: None is empty, 3.0 is 3, whitespace runs are one space, pipes escaped."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = " ".join(str(value).split())
    return text.replace("|", "\\|") if escape else text


def markdown_table(rows: Iterable[Iterable[Any]], *, drop_empty_columns: bool = False) -> str:
    """A Markdown table: the first non-empty row is the header; empty rows are left out, short rows
    padded; with drop_empty_columns, columns empty in every row too. "" when nothing is left."""
    table = [[cell_text(v) for v in row] for row in rows]
    table = [r for r in table if any(r)]
    if not table:
        return ""
    width = max(len(r) for r in table)
    table = [r + [""] * (width - len(r)) for r in table]
    if drop_empty_columns:
        keep = [i for i in range(width) if any(r[i] for r in table)]
        table = [[r[i] for i in keep] for r in table]
        width = len(keep)
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * width]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table[1:]])


def tidy_cells(rows: list[list[str | None]], origin: Cells | None = None) -> list[list[str]]:
    """tidy_columns' cells."""
    return tidy_columns(rows, origin)[0]


def tidy_columns(rows: list[list[str | None]], origin: Cells | None = None) -> tuple[list[list[str]], list[list[int]]]:
    """A PDF table's cells with what its layout split joined, and nothing else changed:

    - columns under one merged header cell (spread over them: the same text in every header row, not
      empty) become one when no row holds two different texts under it, signs aside: a statement's
      "2022" over a "$" column and a figure's ("$" | "52,862" | "52,862" -> "$ 52,862"); a header over
      sub-columns with figures of their own ("Cost" over hotel and meals) stays as it is. With origin
      (each cell's source cell, spans_filled's), "different" means from different cells; and columns
      that one merged cell of the body spans in some row are joined when in every row one cell spans
      them all or they hold signs and nothing else (a summary table whose year header is set above its
      rules: "$" | "52,862" over two columns in one row, "2,182" over all three in the next); a row's
      text beside an empty cell of a column that holds texts in cells of its own keeps them apart;
    - a "%" in a column without a header of its own goes to the figure right before it ("56.2" | "%");
      a column with no header whose cells are only currency signs gives each to its figure (the next
      cell holding one);
    - a column empty in every row is dropped.

    The header rows: those above the first row holding a figure that is not a year (none when the first
    row holds one). A "%" or a unit column with a header of its own is left alone. Returns the cells
    and, for each of their columns, the columns of `rows` it was made of."""
    width = max((len(r) for r in rows), default=0)
    cells = [[c or "" for c in r] + [""] * (width - len(r)) for r in rows]
    heads = next((i for i, r in enumerate(cells) if any(FIGURE.match(c) and not YEAR.match(c) for c in r)), len(cells))
    if heads == len(cells):  # no figures at all: the first row is the header, as Markdown reads it
        heads = min(1, len(cells))
    head, body = cells[:heads], cells[heads:]

    def own_header(c: int) -> bool:  # a header text of its own, not one spread from a neighbour
        return any(r[c] for r in head) and not any(0 <= n < width and all(r[c] == r[n] for r in head) for n in (c - 1, c + 1))

    signed: set[tuple[int, int]] = set()  # cells that held a sign moved to the figure before them
    for c in range(1, width):  # a "%" where a spread header's next column starts: the figure right before it is its own
        if not own_header(c):
            for i, r in enumerate(body, start=heads):
                if r[c] == "%" and FIGURE.match(r[c - 1]) and not r[c - 1].endswith("%"):
                    r[c - 1], r[c] = r[c - 1] + "%", ""
                    signed.add((i, c))
    source = origin if origin is not None and len(origin) == len(cells) and all(len(o) == len(r) for o, r in zip(origin, rows)) else None

    def one_text(columns: list[int], r: int) -> bool:  # row r holds one text (or none) in these columns, signs aside
        row = cells[r]
        if source is None:
            return len({_bare(row[k]) for k in columns if row[k] and row[k] not in SIGNS}) <= 1
        return len({source[r][k] for k in columns if row[k] and row[k] not in SIGNS}) <= 1

    def spanned(group: list[int], c: int) -> bool:  # one merged cell of the body covers column c and one of the group's
        return source is not None and any(o[c] is not None and any(o[c] == o[k] for k in group) for o in source[heads:])

    # columns holding a text in a cell of their own (not one merged over others) in some row
    alone = [source is not None and any(r[c] and r[c] not in SIGNS and o[c] == (i, c) and o.count((i, c)) == 1
                                         for i, (r, o) in enumerate(zip(cells, source))) for c in range(width)]

    def one_cell(columns: list[int], r: int) -> bool:  # row r's text in these columns is one cell's, the rest signs or idle
        assert source is not None
        row, at = cells[r], source[r]
        texts = {at[k] for k in columns if row[k] and row[k] not in SIGNS}
        if len(texts) != 1:
            return not texts
        cell = next(iter(texts))  # beside it: a sign, or an empty cell of a column never holding a text of its own
        return all(at[k] == cell or row[k] in SIGNS or (r, k) in signed or (not row[k] and not alone[k]) for k in columns)

    groups: list[list[int]] = []
    for c in range(width):
        if groups:
            spread = bool(head) and any(r[c] for r in head) and all(r[c] == r[groups[-1][-1]] for r in head)
            if spread and all(one_text([*groups[-1], c], r) for r in range(heads, len(cells))):
                groups[-1].append(c)
                continue
            # columns that one merged cell of the body spans, each row's text one cell spanning them all: a
            # figure's cell in a row of its own beside an empty cell says they are two columns
            if not spread and spanned(groups[-1], c) and all(one_cell([*groups[-1], c], r) for r in range(len(cells))):
                groups[-1].append(c)
                continue
        groups.append([c])
    table = [[_head([r[k] for k in g]) for g in groups] for r in head] + [[_joined([r[k] for k in g]) for g in groups] for r in body]
    for c in range(len(groups)):  # a column of currency signs without a header: each to its figure
        signs = [r[c] for r in table[heads:] if r[c]]
        if signs and all(t in CURRENCY for t in signs) and not any(r[c] for r in table[:heads]):
            for r in table[heads:]:
                j = next((k for k in range(c + 1, min(c + 1 + SIGN_REACH, len(r))) if r[k]), None)
                if j is not None and FIGURE.match(r[j]) and not r[j].startswith(r[c]):
                    r[j], r[c] = f"{r[c]} {r[j]}", ""
    keep = [c for c in range(len(groups)) if any(r[c] for r in table)]
    return [[r[c] for c in keep] for r in table], [groups[c] for c in keep]


def _head(cells: list[str]) -> str:
    """The header cells of joined columns as one: their text (each column holds it, or a sign, or nothing)."""
    return next((t for t in cells if t and t not in SIGNS), cells[0])


def _bare(cell: str) -> str:
    """A cell without a currency sign before it or a % after it."""
    head, _, rest = cell.partition(" ")
    return (rest if head in CURRENCY and rest else cell).removesuffix("%")


def _joined(cells: list[str]) -> str:
    """The cells under one merged header as one: the figure once, with its signs."""
    value = max((t for t in cells if t and t not in SIGNS), key=len, default="")
    currency = next((t for t in cells if t in CURRENCY), "")
    if not value:
        return " ".join(t for t in cells if t)
    if currency and _bare(value) == value.removesuffix("%"):
        value = f"{currency} {value}"
    return value + "%" if "%" in cells and not value.endswith("%") else value


MIN_HEAD_CELL = 12  # characters a shortened header cell keeps at least


def shortened_row(line: str, limit: int) -> str | None:
    """A Markdown table row of at most `limit` characters: its longest cells cut to their first words
    with "…" (a long units line over the labels, "(Millions, except percentages, per share amounts
    and where indicated)"), the short ones — the years — kept whole; None when it cannot be done."""
    if len(line) <= limit:
        return line
    cells = _row_cells(line)
    if cells is None:
        return None
    while True:
        row = "| " + " | ".join(cells) + " |"
        excess = len(row) - limit
        if excess <= 0:
            return row
        i = max(range(len(cells)), key=lambda k: len(cells[k]))
        if len(cells[i]) <= MIN_HEAD_CELL:
            return None
        keep = max(MIN_HEAD_CELL - 1, len(cells[i]) - excess - 1)
        cut = cells[i][:keep]
        if " " in cut[MIN_HEAD_CELL // 2 :]:
            cut = cut.rsplit(" ", 1)[0]
        cells[i] = cut.rstrip(" ,;:(") + "…"


def row_cells(row: str) -> list[str]:
    """A Markdown table row's cells, stripped (any row, however it was written)."""
    return [c.strip() for c in row.strip().strip("|").split("|")]


def is_header_row(line: str) -> bool:
    """Whether a Markdown table row names columns: cells after the first, and no figure but years."""
    cells = row_cells(line)
    return line.startswith("|") and any(c for c in cells[1:]) and not any(is_amount(c) for c in cells)


def same_header(a: str, b: str) -> bool:
    """Whether two table pieces' headers (header row and rule) can be one table's: equal, or one the
    other with cells shortened by shortened_row."""
    if a == b:
        return True
    rows_a, rows_b = a.split("\n"), b.split("\n")
    if len(rows_a) != len(rows_b) or rows_a[1:] != rows_b[1:]:
        return False
    cells_a, cells_b = _row_cells(rows_a[0]), _row_cells(rows_b[0])
    return cells_a is not None and cells_b is not None and len(cells_a) == len(cells_b) and all(
        x == y or (x.endswith("…") and y.startswith(x[:-1])) or (y.endswith("…") and x.startswith(y[:-1])) for x, y in zip(cells_a, cells_b)
    )


def _row_cells(line: str) -> list[str] | None:
    """A Markdown table row's cells as markdown_table writes them; None for a line that is not one."""
    return line[2:-2].split(" | ") if line.startswith("| ") and line.endswith(" |") else None



def continued_table(before: str, table: str) -> str | None:
    """A table that goes on from the one before it (the last thing on the page before; this one the
    first on its page) without repeating its header: the same columns, and a first row whose cells
    hold figures where the earlier table's last row does ("| P-2020 | Power cord UK | 33.82 |" under
    "| P-1019 | Filter | 12.00 |"). Returns it under the earlier header (its first row a row of
    data again), else None. A table of words only cannot be told from a new one: None."""
    old, new = before.split("\n"), table.split("\n")
    if len(old) < 3 or len(new) < 2 or not TABLE_RULE.match(old[1]) or not TABLE_RULE.match(new[1]) or new[0] == old[0]:
        return None
    shape = lambda line: [is_amount(c) for c in row_cells(line)]  # noqa: E731
    first, last, header = shape(new[0]), shape(old[-1]), shape(old[0])
    if len(first) != len(header) or first != last or not any(first) or first == header:
        return None
    return "\n".join([old[0], old[1], new[0], *new[2:]])
