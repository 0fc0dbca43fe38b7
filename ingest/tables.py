"""Markdown tables: the one way every loader writes a table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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
