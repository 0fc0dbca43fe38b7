"""Plain text and Markdown, with the encoding detected (UTF-8/16/32, GB18030/GBK, Big5, ...)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from ingest.types import Document, LoadError

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def _looks_binary(text: str) -> bool:
    sample = text[:4000]
    odd = sum(1 for ch in sample if not (ch.isprintable() or ch in "\n\r\t\f"))
    return odd > max(3, len(sample) * 0.05)


def decode_bytes(data: bytes) -> str:
    """Decode bytes of unknown encoding (BOM, UTF-8, then detection: GB18030/GBK, Big5, UTF-16
    without BOM, ...); raise LoadError for binary data."""
    text: str | None = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data.decode(encoding, errors="replace")
            break
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            from charset_normalizer import from_bytes

            best = from_bytes(data).best()
            if best is None:
                raise LoadError("binary content, not text (mislabelled file?)") from None
            text = str(best)
    if _looks_binary(text):
        raise LoadError("binary content, not text (mislabelled file?)")
    return text


def read_text(path: Path) -> str:
    text = decode_bytes(path.read_bytes())
    return text.replace("\r\n", "\n").replace("\r", "\n")


_SENTENCE_END = re.compile(r"[。！？!?；;，,：:.…）)」』”\"]$")


def _is_title(line: str, next_line: str) -> bool:
    """A plain-text title: a short line without closing punctuation, above a longer line."""
    line = line.strip()
    return (
        0 < len(line) <= 40
        and not _SENTENCE_END.search(line)
        and len(next_line.strip()) > max(2 * len(line), 20)
        and not line.startswith(("-", "*", "•", "|"))
    )


def text_sections(text: str, title: str | None = None) -> Iterator[tuple[list[str], str]]:
    """Split plain text into (title_path, body) sections at title lines that head a paragraph.

    title, when given (a document's own title), is the first element of every title path."""
    base = [title] if title else []
    lines = text.split("\n")
    current_title: list[str] = []
    body: list[str] = []
    for i, line in enumerate(lines):
        starts_block = i == 0 or not lines[i - 1].strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if starts_block and _is_title(line, nxt):
            if "".join(body).strip():
                yield base + current_title, "\n".join(body)
            current_title = [line.strip()] if line.strip() != title else []
            body = [line]
        else:
            body.append(line)
    if "".join(body).strip():
        yield base + current_title, "\n".join(body)


def text_documents(text: str, source: str, title: str | None = None) -> list[Document]:
    """Documents for a plain text: one per titled section (see text_sections)."""
    return [
        Document(body, {"source": source, "page": None, "title_path": path, "kind": "text"})
        for path, body in text_sections(text, title)
    ]


def load_text(path: Path, options: object) -> Iterator[Document]:
    yield from text_documents(read_text(path), str(path))


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_sections(text: str) -> Iterator[tuple[list[str], str]]:
    """Yield (title_path, body) for each heading section of a Markdown text."""
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            if "".join(body).strip():
                yield [t for _, t in path], "\n".join(body)
            body = []
            level = len(m.group(1))
            path = [(lv, t) for lv, t in path if lv < level] + [(level, m.group(2))]
            body.append(line)
        else:
            body.append(line)
    if "".join(body).strip():
        yield [t for _, t in path], "\n".join(body)


def load_markdown(path: Path, options: object) -> Iterator[Document]:
    for title_path, body in markdown_sections(read_text(path)):
        if not [line for line in body.split("\n") if line.strip() and not _HEADING.match(line)]:
            continue  # a heading with nothing under it: its title reaches the chunks below it
        yield Document(body, {"source": str(path), "page": None, "title_path": title_path, "kind": "text"})
