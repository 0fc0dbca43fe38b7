"""EPUB: the book's XHTML chapters in spine order, headings as the title path."""

from __future__ import annotations

import html
import posixpath
import re
import zipfile
from urllib.parse import unquote
from collections.abc import Iterator
from pathlib import Path

from ingest.loaders.html import html_sections
from ingest.loaders.text import decode_bytes, text_codec
from ingest.types import Document, LoadError


def load_epub(path: Path, options: object) -> Iterator[Document]:
    if not zipfile.is_zipfile(path):
        raise LoadError("not a valid EPUB file (not a zip archive)")
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        container = z.read("META-INF/container.xml").decode("utf-8", "replace") if "META-INF/container.xml" in names else ""
        m = re.search(r'full-path="([^"]+)"', container)
        chapters: list[str] = []
        if m and m.group(1) in names:
            opf_path = m.group(1)
            opf = z.read(opf_path).decode("utf-8", "replace")
            items = dict(re.findall(r'<item\b[^>]*\bid="([^"]+)"[^>]*\bhref="([^"]+)"', opf))
            items.update({k: v for v, k in re.findall(r'<item\b[^>]*\bhref="([^"]+)"[^>]*\bid="([^"]+)"', opf)})
            base = posixpath.dirname(opf_path)
            for idref in re.findall(r'<itemref\b[^>]*\bidref="([^"]+)"', opf):
                if idref in items:  # an href is a URL: "第1章.xhtml" and "chapter%201.xhtml" are written encoded (found by review)
                    href = unquote(html.unescape(items[idref])).split("#", 1)[0]
                    chapters.append(posixpath.normpath(posixpath.join(base, href)))
        if not chapters:
            chapters = sorted(n for n in names if n.lower().endswith((".xhtml", ".html", ".htm")))
        for name in chapters:
            if name not in names:
                continue
            for title_path, text in html_sections(_chapter_text(z.read(name))):
                yield Document(text, {"source": str(path), "page": None, "title_path": title_path, "kind": "text"})


_DECLARED = re.compile(rb"""<\?xml[^>]*\bencoding=["']([A-Za-z0-9._-]+)["']""")


def _chapter_text(data: bytes) -> str:
    """A chapter's XHTML as text: UTF-8 as EPUB asks, else the encoding its XML declaration names (a GBK chapter
    read as UTF-8 was replacement characters: found by review), else as the text loader finds it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    declared = _DECLARED.match(data.lstrip()[:200])
    codec = text_codec(declared.group(1).decode("ascii")) if declared else None
    if codec is not None:  # (not one no document is written in: punycode took minutes, found by review)
        return data.decode(codec, errors="replace")
    try:
        return decode_bytes(data)
    except LoadError:
        return data.decode("utf-8", "replace")
