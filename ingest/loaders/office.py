"""Word documents, read from their XML (transitional and strict OOXML alike): headings become the
title path; paragraphs keep list markers; text boxes, content controls, equations and charts give
their text; tables become Markdown tables with merged cells repeated."""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from ingest.loaders.charts import chart_text
from ingest.loaders.docprops import about_document, core_about
from ingest.loaders.ocr import Pictures
from ingest.tables import Repeats, markdown_table
from ingest.types import Document, LoadError

_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)


def _local(element: Any) -> str:
    tag = element.tag if isinstance(element.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


def _attr(element: Any, name: str) -> str | None:
    """An attribute by local name, whatever its namespace (w:val in transitional or strict)."""
    for key, value in element.attrib.items():
        if key.rsplit("}", 1)[-1] == name:
            return str(value)
    return None


def _child(element: Any, name: str) -> Any:
    for c in element:
        if _local(c) == name:
            return c
    return None


@dataclass
class _Package:
    zf: zipfile.ZipFile
    main: str
    rels: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (type, part)
    styles: dict[str, tuple[str, str | None, int | None]] = field(default_factory=dict)  # id -> (name, based on, outline level)
    numbering: dict[tuple[str, str], str] = field(default_factory=dict)  # (numId, ilvl) -> numFmt
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    pictures: Pictures = field(default_factory=lambda: Pictures(None))  # embedded images, OCR'd as LoadOptions allow
    repeats: Repeats = field(default_factory=Repeats)  # what merged cells may repeat, for the whole document
    style_lists: dict[str, tuple[str, str]] = field(default_factory=dict)  # style id -> (numId, ilvl) of list styles
    chunks_read: set[str] = field(default_factory=set)  # the altChunk parts read (each once)

    def part_rels(self, part: str) -> dict[str, tuple[str, str]]:
        name = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
        try:
            root = ET.fromstring(self.zf.read(name))
        except (KeyError, ET.ParseError):
            return {}
        out = {}
        for rel in root:
            if rel.get("TargetMode") == "External":
                continue
            target = rel.get("Target", "")
            full = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(posixpath.dirname(part), target))
            out[rel.get("Id", "")] = (rel.get("Type", ""), full)
        return out

    def read(self, part: str) -> Any:
        return ET.fromstring(self.zf.read(part))


def _open(path: Path, options: Any = None) -> tuple[_Package, Any]:
    zf = zipfile.ZipFile(path)
    top = _Package(zf, "")
    main = next((part for kind, part in top.part_rels("").values() if kind.endswith("/officeDocument")), None)
    if main is None:
        main = "word/document.xml" if "word/document.xml" in zf.namelist() else None
    if main is None:
        raise LoadError("not a Word document (no main document part inside)")
    pkg = _Package(zf, main, pictures=Pictures(options))
    pkg.rels = pkg.part_rels(main)
    for kind, part in pkg.rels.values():
        try:
            if kind.endswith("/styles"):
                _read_styles(pkg, pkg.read(part))
            elif kind.endswith("/numbering"):
                _read_numbering(pkg, pkg.read(part))
        except (KeyError, ET.ParseError):
            pass
    return pkg, pkg.read(main)


def _read_styles(pkg: _Package, root: Any) -> None:
    for style in root:
        if _local(style) != "style":
            continue
        sid = _attr(style, "styleId") or ""
        name_el, based, ppr = _child(style, "name"), _child(style, "basedOn"), _child(style, "pPr")
        outline = _child(ppr, "outlineLvl") if ppr is not None else None
        level = int(_attr(outline, "val") or 9) if outline is not None else None
        numpr = _child(ppr, "numPr") if ppr is not None else None
        if numpr is not None and _child(numpr, "numId") is not None:
            ilvl = _child(numpr, "ilvl")
            pkg.style_lists[sid] = (_attr(_child(numpr, "numId"), "val") or "", _attr(ilvl, "val") or "0" if ilvl is not None else "0")
        pkg.styles[sid] = (_attr(name_el, "val") or "" if name_el is not None else "", _attr(based, "val") if based is not None else None, level)


def _read_numbering(pkg: _Package, root: Any) -> None:
    abstract: dict[str, dict[str, str]] = {}
    for el in root:
        if _local(el) == "abstractNum":
            levels = {}
            for lvl in el:
                if _local(lvl) == "lvl":
                    fmt = _child(lvl, "numFmt")
                    levels[_attr(lvl, "ilvl") or "0"] = (_attr(fmt, "val") or "decimal") if fmt is not None else "decimal"
            abstract[_attr(el, "abstractNumId") or ""] = levels
    for el in root:
        if _local(el) == "num":
            ref = _child(el, "abstractNumId")
            for ilvl, fmt in abstract.get(_attr(ref, "val") or "" if ref is not None else "", {}).items():
                pkg.numbering[(_attr(el, "numId") or "", ilvl)] = fmt


def _style_level(pkg: _Package, style_id: str | None) -> int | None:
    """Heading level from the style's name ("heading 2", "Title", "标题 2") or its outline level."""
    seen = 0
    while style_id and seen < 10:
        name, based, outline = pkg.styles.get(style_id, (style_id, None, None))
        if name.strip().lower() == "title":
            return 1
        m = _HEADING_STYLE.match(name.strip()) or _HEADING_STYLE.match(re.sub(r"(?i)^heading(\d)$", r"heading \1", style_id))
        if m:
            return int(m.group(1))
        if outline is not None and outline < 9:
            return outline + 1
        style_id, seen = based, seen + 1
    return None


def _text(pkg: _Package, element: Any, nested: list[str]) -> str:
    """The text of a paragraph's runs; text boxes and charts inside go to nested as paragraphs of their own."""
    out: list[str] = []

    def walk(el: Any) -> None:
        name = _local(el)
        if name in ("t",):  # w:t and m:t (equations)
            out.append(el.text or "")
        elif name == "tab":
            out.append("\t")
        elif name in ("br", "cr"):
            out.append("\n")
        elif name == "noBreakHyphen":  # COVID-19 and 555-0100 keep their hyphens (found by review: "COVID19")
            out.append("-")
        elif name in ("Fallback", "delText", "instrText", "rPr", "pPr"):
            return  # the fallback copy of a drawing, deleted text, field codes, formatting
        elif name == "txbxContent":
            for p in el.iter():
                if _local(p) == "p" and p is not el:
                    text = _text(pkg, p, nested).strip()
                    if text:
                        nested.append(text)
            return
        elif name == "blip":
            rid = next((v for k, v in el.attrib.items() if k.endswith("}embed")), None)
            text = _image_text(pkg, rid)
            if text:
                nested.append(text)
            return
        elif name == "chart":
            rid = next((v for k, v in el.attrib.items() if k.endswith("}id")), None)
            kind, part = pkg.rels.get(rid or "", ("", ""))
            if part:
                try:
                    text = chart_text(pkg.zf.read(part))
                except (KeyError, ET.ParseError):
                    text = ""
                if text:
                    nested.append(text)
            return
        else:
            for c in el:
                walk(c)

    for c in element:
        if _local(c) == "p" and _local(element) == "txbxContent":
            continue
        walk(c)
    return "".join(out)


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def _image_text(pkg: _Package, rid: str | None) -> str:
    """OCR of an embedded raster picture (when ingest.ocr allows); vector formats are left alone."""
    kind, part = pkg.rels.get(rid or "", ("", ""))
    if not part.lower().endswith(_IMAGE_SUFFIXES):
        return ""
    return pkg.pictures.text(lambda: pkg.zf.read(part))


def _list_marker(pkg: _Package, ppr: Any) -> str:
    """"- " or "3. " for a list item (numbering on the paragraph or on its style), else ""."""
    numpr = _child(ppr, "numPr") if ppr is not None else None
    style = _child(ppr, "pStyle") if ppr is not None else None
    if numpr is not None:
        num, ilvl = _child(numpr, "numId"), _child(numpr, "ilvl")
        key = (_attr(num, "val") or "" if num is not None else "", _attr(ilvl, "val") or "0" if ilvl is not None else "0")
    elif style is not None and (_attr(style, "val") or "") in pkg.style_lists:
        key = pkg.style_lists[_attr(style, "val") or ""]
    else:
        return ""
    if key[0] in ("", "0"):
        return ""
    fmt = pkg.numbering.get(key, "bullet")
    if fmt in ("bullet", "none"):
        return "- "
    for other in [k for k in pkg.counters if k[0] == key[0] and int(k[1]) > int(key[1])]:
        del pkg.counters[other]  # a deeper list restarts under a new item
    pkg.counters[key] = pkg.counters.get(key, 0) + 1
    return f"{pkg.counters[key]}. "


_WRAPPERS = {"sdt", "sdtContent", "customXml"}  # content controls and custom XML around rows and cells


def _within(parent: Any, kind: str) -> Iterator[Any]:
    """The children of parent named kind ("tr", "tc"), and those inside content controls or custom XML around them
    (Word's repeating sections: found by review, a form's rows and a cell in custom XML were lost), in order; walked
    with a stack of its own, however deep the wrappers nest."""
    stack = [iter(parent)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif _local(child) == kind:
            yield child
        elif _local(child) in _WRAPPERS:
            stack.append(iter(child))


WORD_MAX_COLUMNS = 63  # Word's own limit on a table's columns: a gridSpan past it is hostile or broken


def _table_rows(pkg: _Package, tbl: Any) -> list[list[str]]:
    """A table's rows, a merged cell's text repeated over the columns and rows it covers (within the document's Repeats)."""
    rows: list[list[str]] = []
    above: dict[int, str] = {}  # column -> text of the cell a vertical merge continues
    repeats = pkg.repeats
    for tr in _within(tbl, "tr"):
        cells: list[str] = []
        for cell in _within(tr, "tc"):
            tcpr = _child(cell, "tcPr")
            span = _grid_span(tcpr)
            vmerge = _child(tcpr, "vMerge") if tcpr is not None else None
            column = len(cells)
            if vmerge is not None and (_attr(vmerge, "val") or "continue") == "continue":
                text = above.get(column, "")
                text = text if repeats.allow(text, 1) else ""
            else:
                parts = []
                for block in _blocks(pkg, cell):
                    parts.append(block[2] if block[0] == "p" else " ".join(" ".join(r) for r in block[2]))
                text = " ".join(" ".join(parts).split())
            copies = text if repeats.allow(text, span - 1) else ""
            for k in range(span):
                above[column + k] = text if k == 0 else copies
                cells.append(text if k == 0 else copies)
        rows.append(cells)
    return rows


def _grid_span(tcpr: Any) -> int:
    """The columns a cell spans: 1 to WORD_MAX_COLUMNS (found by review: a gridSpan of 30 million took 2.9 GB)."""
    grid_span = _child(tcpr, "gridSpan") if tcpr is not None else None
    try:
        return max(1, min(int(_attr(grid_span, "val") or 1), WORD_MAX_COLUMNS)) if grid_span is not None else 1
    except ValueError:
        return 1


def _blocks(pkg: _Package, container: Any) -> Iterator[tuple[str, int | None, Any]]:
    """("p", heading level or None, text) and ("table", None, rows) in reading order."""
    for el in container:
        name = _local(el)
        if name == "p":
            ppr = _child(el, "pPr")
            style = _child(ppr, "pStyle") if ppr is not None else None
            level = _style_level(pkg, _attr(style, "val")) if style is not None else None
            outline = _child(ppr, "outlineLvl") if ppr is not None else None
            if level is None and outline is not None and int(_attr(outline, "val") or 9) < 9:
                level = int(_attr(outline, "val") or 0) + 1
            nested: list[str] = []
            text = _text(pkg, el, nested).strip()
            if text:
                yield "p", level, (_list_marker(pkg, ppr) if not level else "") + text
            for extra in nested:
                yield "p", None, extra
        elif name == "tbl":
            yield "table", None, _table_rows(pkg, el)
        elif name == "altChunk":  # a part in another format set into the document: web apps' "export to Word" is HTML
            for text in _alt_chunk(pkg, _attr(el, "id")):
                yield "p", None, text
        elif name in ("sdt", "customXml", "smartTag", "ins"):
            content = _child(el, "sdtContent") if name == "sdt" else el
            if content is not None:
                yield from _blocks(pkg, content)


def _alt_chunk(pkg: _Package, rid: str | None) -> list[str]:
    """The paragraphs of an altChunk's part when it is HTML (or MHT: HTML in MIME, as html-docx-js writes it) or text
    (found by review: a document that was one such chunk had "no text"); another format's (RTF, a DOCX) is passed over."""
    _, part = pkg.rels.get(rid or "", ("", ""))
    suffix = posixpath.splitext(part.lower())[1]
    if suffix not in (".htm", ".html", ".xhtml", ".txt", ".mht", ".mhtml") or part in pkg.chunks_read:
        return []  # each part once: 400 references to one 20 MB part were 8 GB of text (found by review)
    pkg.chunks_read.add(part)
    try:
        raw = pkg.zf.read(part)
    except KeyError:
        return []
    from ingest.loaders.html import html_text
    from ingest.loaders.text import decode_bytes, looks_binary

    try:
        if suffix in (".mht", ".mhtml"):
            import email
            import email.policy

            from ingest.loaders.mail import part_text

            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            if parsed.get("Content-Type") is None:  # not MIME at all (found by review: bytes read as paragraphs)
                return []
            body = parsed.get_body(preferencelist=("html", "plain"))
            text = part_text(body) if body is not None else ""
            suffix = ".txt" if body is not None and body.get_content_type() == "text/plain" else ".html"
        else:
            text = decode_bytes(raw)
    except (LoadError, LookupError, ValueError):
        return []
    text = text if suffix == ".txt" else html_text(text)
    if looks_binary(text):  # bytes in a part named as text (found by review: a PNG's bytes as paragraphs)
        return []
    return [line.strip() for line in text.split("\n") if line.strip()]


def _notes(pkg: _Package) -> Iterator[tuple[str, str]]:
    """(kind, text) of the document's footnotes, endnotes and comments, each as "[1] text" lines (found by review:
    a handbook's six footnotes, legal citations among them, were never read)."""
    for kind, title in (("footnotes", "Footnotes"), ("endnotes", "Endnotes"), ("comments", "Comments")):
        part = next((p for t, p in pkg.rels.values() if t.endswith("/" + kind)), None)
        if part is None:
            continue
        try:
            root = pkg.read(part)
        except (KeyError, ET.ParseError):
            continue
        lines = []
        for note in root:
            if _attr(note, "type") in ("separator", "continuationSeparator", "continuationNotice"):
                continue
            try:  # its paragraphs and tables as the body's are read (a text box's paragraphs once: found by review)
                said = [content if kind == "p" else " ".join(" ".join(r) for r in content) for kind, _, content in _blocks(pkg, note)]
            except RecursionError:  # nested past reason: this note is lost, not the document (found by review)
                continue
            text = " ".join(" ".join(said).split())
            if text:
                lines.append(f"[{_attr(note, 'id') or len(lines) + 1}] {text}")
        if lines:
            yield title, "\n".join(lines)


MAX_HEADER = 200  # a page header longer than this is body text set there, not a running title
MAX_HEADER_PART = 64_000  # bytes of a header part's XML past which it is not read at all
HEADERS_KEPT = 2  # at most this many distinct page headers describe the document
_PAGE_ONLY = re.compile(r"^[\W\d_]*(?:(?:page|p\.|第|页|頁|of|共)[\W\d_]*)*$", re.IGNORECASE)  # "Page 3 of 9", "第 1 页", "- 2 -"


def _headers(pkg: _Package) -> str:
    """The document's page headers' text (its sections' headers, in part order), each whitespace-joined,
    distinct ones joined by " | ": a company's name and the document's title are often written there
    alone ("云杉科技有限公司 · 员工手册"). Page numbers alone, and a header longer than MAX_HEADER, are left out."""
    out: list[str] = []
    parts = sorted({part for kind, part in pkg.rels.values() if kind.endswith("/header")})
    for part in parts:
        try:
            if pkg.zf.getinfo(part).file_size > MAX_HEADER_PART:
                continue  # (a header of megabytes is no running title: 159 MB of one took 1.5 GB to join, found by review)
            root = pkg.read(part)
            # read with its own relationships (an image's rId there names another part than the body's same rId, whose
            # picture it took: found by review) and no OCR (a logo's text is no title; the body's pictures keep theirs)
            own = replace(pkg, rels=pkg.part_rels(part), pictures=Pictures(None), chunks_read=set())
            said = [content if kind == "p" else " ".join(" ".join(r) for r in content) for kind, _, content in _blocks(own, root)]
        except (KeyError, ET.ParseError, RecursionError):
            continue
        text = " ".join(" ".join(said).split())
        if text and not _PAGE_ONLY.match(text) and len(text) <= MAX_HEADER and text not in out:
            out.append(text)
    return " | ".join(out[:HEADERS_KEPT])


def load_docx(path: Path, options: object) -> Iterator[Document]:
    if not zipfile.is_zipfile(path):
        raise LoadError("not a valid DOCX file (not a zip archive; old .doc or mislabelled?)")
    try:
        pkg, root = _open(path, options)
    except (KeyError, ET.ParseError, zipfile.BadZipFile) as exc:
        raise LoadError(f"corrupt DOCX: {exc}") from exc
    body = _child(root, "body")
    if body is None:
        raise LoadError("corrupt DOCX: the document has no body")
    title_path: list[tuple[int, str]] = []
    lines: list[str] = []

    def section() -> Iterator[Document]:
        text = "\n".join(lines).strip()
        if text:
            yield Document(text, {"source": str(path), "page": None, "title_path": [t for _, t in title_path], "kind": "text"})

    with pkg.zf:
        about = core_about(path)
        if header := _headers(pkg):  # (said of the document, not in its text: it repeats on every page)
            about["header"] = header
        yield from about_document(path, about)
        for kind, level, content in _blocks(pkg, body):
            if kind == "p":
                if level:
                    yield from section()
                    lines = [content]
                    title_path = [(lv, t) for lv, t in title_path if lv < level] + [(level, content)]
                else:
                    lines.append(content)
            else:
                table = markdown_table(content)
                if table:
                    yield from section()
                    lines = []
                    yield Document(table, {"source": str(path), "page": None, "title_path": [t for _, t in title_path], "kind": "table"})
        yield from section()
        for title, text in _notes(pkg):
            yield Document(text, {"source": str(path), "page": None, "title_path": [title], "kind": "text"})
