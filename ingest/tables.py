"""Markdown tables: the one way every loader writes a table."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

CURRENCY = frozenset({"$", "€", "£", "¥", "￥", "US$", "HK$", "RMB"})  # a sign a statement sets in a cell of its own
SIGN_REACH = 3  # cells after a sign its figure may stand in (the rest of its merged header's span)
_FIGURE = re.compile(r"^[-–−+]?\(?[-–−]?\d[\d,]*(\.\d+)?\)?%?$")


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


def tidy_cells(rows: list[list[str]]) -> list[list[str]]:
    """A PDF table's cells with what its layout split joined: a currency sign in a cell of its own goes
    to the figure after it ("$" | "" | "1,093" -> "$ 1,093"), a "%" to the figure right before it; then each
    column that only repeats a neighbour (its every cell empty or equal to that neighbour's cell in the
    same row, signs aside: a merged cell spread over the columns it covers, the column a sign stood in)
    is dropped,
    so a row reads label, figure, figure. A column with its own header or any figure of its own stays."""
    rows = [list(r) for r in rows]
    for row in rows:
        for i, cell in enumerate(row):
            if cell in CURRENCY:
                j = next((k for k in range(i + 1, min(i + 1 + SIGN_REACH, len(row))) if row[k]), None)
                if j is not None and _FIGURE.match(row[j]):
                    row[j], row[i] = f"{cell} {row[j]}", ""
            elif cell == "%" and i > 0 and _FIGURE.match(row[i - 1]) and not row[i - 1].endswith("%"):
                row[i - 1], row[i] = row[i - 1] + "%", ""  # only the cell right before: an empty one may be another column's
    width = max((len(r) for r in rows), default=0)
    rows = [r + [""] * (width - len(r)) for r in rows]
    columns = list(range(width))

    def repeats(c: int, other: int) -> bool:
        return all(not r[c] or _bare(r[c]) == _bare(r[other]) for r in rows)

    dropped = True
    while dropped and len(columns) > 1:
        dropped = False
        for k, c in enumerate(columns):
            other = next((columns[n] for n in (k - 1, k + 1) if 0 <= n < len(columns) and repeats(c, columns[n])), None)
            if other is not None:
                for r in rows:  # "$ 52,862" over "52,862", "10.6%" over "10.6": the cell with its sign stays
                    if len(r[c]) > len(r[other]):
                        r[other] = r[c]
                del columns[k]
                dropped = True
                break
    return [[r[c] for c in columns] for r in rows]


def _bare(cell: str) -> str:
    """A cell without a currency sign before it or a % after it."""
    head, _, rest = cell.partition(" ")
    return (rest if head in CURRENCY and rest else cell).removesuffix("%")
