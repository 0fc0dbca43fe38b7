"""The data that crosses from ingest/ to kbqa/: documents and chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """A piece of a file with its place: one page of a PDF, one sheet, or a whole text file.

    meta keys: source (path as given), page (1-based or None), title_path (list of headings),
    kind ("text" | "table" | "ocr").
    """

    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def page(self) -> int | None:
        return self.meta.get("page")


@dataclass
class Chunk:
    """A piece of a Document small enough to embed; meta adds chunk_no, start and end offsets."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def page(self) -> int | None:
        return self.meta.get("page")

    @property
    def title_path(self) -> list[str]:
        return list(self.meta.get("title_path") or [])


class LoadError(Exception):
    """A file that cannot be read; the message is the one-line reason shown to the user."""


MAX_REASON = 300  # characters of a parser's own error kept in a file's one-line reason


def one_line(error: str) -> str:
    """A parser's error as one line of at most MAX_REASON characters: its first line, or a traceback's last (what went
    wrong: ONNX Runtime's errors carry a Python traceback, found by review, and were stored whole as the file's reason)."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if not lines:
        return error.strip()
    traceback = next((i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line), None)
    line = lines[0] if traceback is None else (lines[0].split("Traceback (most recent call last)")[0] + lines[-1]).strip()
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


class UnsupportedFile(LoadError):
    """No loader is registered for this file type."""
