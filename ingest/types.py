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


class UnsupportedFile(LoadError):
    """No loader is registered for this file type."""
