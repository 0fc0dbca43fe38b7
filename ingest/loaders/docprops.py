"""What an Office file (DOCX, PPTX, XLSX) says about itself: the title and subject of its core
properties (docProps/core.xml), which ride on its first document as "about" (see ingest.context).
A tool's default ("PowerPoint Presentation", "Slide 1", "Book1") is dropped there, as a PDF's is."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

from ingest.types import Document

CORE = "docProps/core.xml"
MAX_CORE_BYTES = 256_000  # a core.xml larger than this is no file's few properties: left unread


def core_about(path: Path) -> dict[str, str]:
    """{"title": …, "subject": …} of an Office file's core properties, each whitespace-joined; {} when it
    has none, or they cannot be read (the file's text is read all the same)."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(CORE)
            if info.file_size > MAX_CORE_BYTES:
                return {}
            root = ET.fromstring(z.read(info))
    except (KeyError, OSError, ET.ParseError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError):
        return {}
    about = {}
    for el in root:
        name = el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""
        if name in ("title", "subject") and el.text and el.text.strip():
            about[name] = " ".join(el.text.split())
    return about


def about_document(path: Path, about: dict[str, str]) -> Iterator[Document]:
    """An empty document that carries what the file says about itself (the loaders keep it on the first
    document with text: ingest.loaders.load_file), when it says anything."""
    if about:
        yield Document("", {"source": str(path), "page": None, "title_path": [], "kind": "text", "about": about})
