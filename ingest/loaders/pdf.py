"""PDF through PyMuPDF (default), pdfplumber (tables as Markdown) or pdfminer; OCR for scanned pages."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ingest.loaders.bidi import RTL_TEXT, is_rtl_line, lam_alef, logical_text
from ingest.loaders.ocr import ocr_blocks
from ingest.loaders.pdf_engines import pdfminer_pages, pdfplumber_pages
from ingest.loaders.pdf_tables import MARGIN, inside, page_tables, text_flags
from ingest.loaders.text_tables import number_tables
from ingest.loaders.reading_order import block_text, is_rtl, level, reading_order, union
from ingest.tables import continued_table
from ingest.textfacts import PAGE_NUMBER, join_wrapped_lines
from ingest.types import Document, LoadError

ENGINES = ("pymupdf", "pdfplumber", "pdfminer")


_COMPAT = re.compile("[\u2e80-\u2fdf\uf900-\ufaff\U0002f800-\U0002fa1f\ufb00-\ufb4f]")


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # glyphs a font maps to no character


_UNUSUAL = re.compile(f"{_COMPAT.pattern}|{_CONTROL.pattern}|[\u00ad\u2044]")  # anything _normalize changes


def _normalize(text: str) -> str:
    """Drop control characters (what glyphs without a Unicode mapping come out as); fold the Kangxi
    radicals, CJK compatibility ideographs and ligatures some PDFs emit to the ordinary characters
    (NFKC), leaving full-width Chinese punctuation as it is; the fraction slash of "1⁄4" becomes "/"."""
    if not _UNUSUAL.search(text):  # most lines: one search instead of two substitutions
        return text
    text = _COMPAT.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text)
    return _CONTROL.sub("", text.replace("\u00ad", "").replace("\u2044", "/"))




_RTL = re.compile(RTL_TEXT)


def quiet_pymupdf() -> Any:
    """PyMuPDF with MuPDF's own messages ("MuPDF error: syntax error in content stream") kept out of
    standard output, where they would break `--json` documents; they stay in TOOLS.mupdf_warnings()."""
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    return pymupdf


def _text_dict(page: Any, textpage: Any = None) -> dict[str, Any]:
    """PyMuPDF's page dict without the images: decoding them cost up to 20x the text (docling's PDFs).
    textpage: the page's TextPage made with text_flags(), if already made."""
    flags = text_flags()
    page_dict = dict(page.get_text("dict", flags=flags, textpage=textpage))
    if _RTL.search("".join(span["text"] for b in page_dict["blocks"] for line in b.get("lines", []) for span in line["spans"])):
        page_dict = _rtl_dict(page, flags)
    return page_dict


def _rtl_dict(page: Any, flags: int) -> dict[str, Any]:
    """The page dict rebuilt from its characters, right-to-left lines in logical order (see bidi.py).
    Lines of a block side by side on one baseline are one line there (a label and its date drawn
    piece by piece); such a line becomes one span, set in the largest size of its spans."""
    page_dict = dict(page.get_text("rawdict", flags=flags))
    for block in page_dict["blocks"]:
        lines: list[dict[str, Any]] = []
        for line in block.get("lines", []):
            if lines and level(lines[-1]["bbox"], line["bbox"]) and is_rtl_line(_chars(lines[-1]) + _chars(line)):
                last = lines[-1]
                lines[-1] = {**last, "bbox": union([last["bbox"], line["bbox"]]), "spans": last["spans"] + line["spans"]}
            else:
                lines.append(line)
        for line in lines:
            chars = _chars(line)
            for span in line["spans"]:
                span["text"] = "".join(c["c"] for c in lam_alef(span.pop("chars", [])))
            if line["spans"] and is_rtl_line(chars):
                size = max(span["size"] for span in line["spans"])
                line["spans"] = [{**line["spans"][0], "size": size, "text": logical_text(lam_alef(chars), size)}]
        if "lines" in block:
            block["lines"] = lines
    return page_dict


def _chars(line: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for span in line["spans"] for c in span.get("chars", [])]


_DIGITS = re.compile(r"\d+")


def _edge_key(text: str) -> str:
    """A margin line with its numbers blanked, so "Page 3" and "Page 4" are the same running line."""
    return _DIGITS.sub("#", " ".join(text.lower().split()))


def _margin_keys(layout: list[dict[str, Any]], rect: Any) -> set[str]:
    top = rect.y0 + MARGIN * rect.height
    bottom = rect.y1 - MARGIN * rect.height
    return {_edge_key(text) for block in layout for _, text, y0, y1, *_ in block.get("lines", []) if text and (y1 <= top or y0 >= bottom)}


def repeated_margin_lines(keys: list[set[str]]) -> set[str]:
    """Margin lines (numbers aside; one set of keys a page) found on three pages or more (two in a short
    document): running heads and footers, dropped from the text; page numbers always are."""
    if len(keys) < 2:
        return {k for page in keys for k in page if PAGE_NUMBER.match(k)}
    counts: dict[str, int] = {}
    for page in keys:
        for key in page:
            counts[key] = counts.get(key, 0) + 1
    need = min(3, max(2, int(0.4 * len(keys) + 0.999)))
    return {k for k, n in counts.items() if n >= need or PAGE_NUMBER.match(k)}


TABLE = -2.0  # the "font size" of a table block: never a title, never merged; its own document (kind "table")
ITEM = -3.0  # marks where a checkbox or bullet glyph without a character stood: the next paragraph is not merged up


def _ordered_blocks(page: Any, tables_wanted: bool = True) -> list[dict[str, Any]]:
    """The page's text blocks in reading order, each ruled table one block of Markdown in place of
    the lines inside it (the table goes where its first line was in the content stream)."""
    textpage = page.get_textpage(flags=text_flags())  # made once: the page's text, then its tables' cells
    blocks = [b for b in _text_dict(page, textpage)["blocks"] if b.get("type") == 0 and block_text(b).strip()]
    rtl = is_rtl(blocks)
    tables = page_tables(page, textpage=textpage) if tables_wanted and not rtl else []  # PyMuPDF's table cells hold right-to-left text reversed
    if tables:
        kept: list[dict[str, Any]] = []
        placed: set[int] = set()
        for block in blocks:
            lines = [line for line in block["lines"] if not inside(line["bbox"], [box for box, _ in tables])]
            if len(lines) < len(block["lines"]):
                for i, (box, _) in enumerate(tables):
                    if i not in placed and any(inside(line["bbox"], [box]) for line in block["lines"]):
                        placed.add(i)
                        kept.append({"bbox": box, "lines": [], "table": tables[i][1]})
            if lines:
                kept.append({**block, "lines": lines, "bbox": union([line["bbox"] for line in lines])})
        kept += [{"bbox": box, "lines": [], "table": text} for i, (box, text) in enumerate(tables) if i not in placed]
        blocks = kept
    return reading_order(blocks, rtl)


Line = tuple[str, str, float, float, float, float, float]  # raw text, normalized text, top, bottom, font size, left, right


def page_layout(page: Any, tables: bool = True) -> list[dict[str, Any]]:
    """The page's blocks in reading order, kept small (the page's text is read once, for its margins and
    its paragraphs): {"table": Markdown} for a ruled table, else {"lines": [Line, ...]}."""
    layout: list[dict[str, Any]] = []
    for block in _ordered_blocks(page, tables):
        if "table" in block:
            layout.append({"table": block["table"]})
            continue
        lines: list[Line] = []
        for line in block["lines"]:
            raw = "".join(span["text"] for span in line["spans"])
            size = max((span["size"] for span in line["spans"] if _normalize(span["text"]).strip()), default=0.0)
            lines.append((raw, _normalize(raw).strip(), line["bbox"][1], line["bbox"][3], size, line["bbox"][0], line["bbox"][2]))
        layout.append({"lines": lines})
    layout = _without_overprints(layout)
    return number_tables(layout, page.rect.width, page.rect.y0 + MARGIN * page.rect.height) if tables else layout


def _same_row(a: Line, b: Line) -> bool:
    """Two lines of one height at one height, a hair apart at most (not a superscript beside its line)."""
    ha, hb = a[3] - a[2], b[3] - b[2]
    return min(ha, hb) >= 0.8 * max(ha, hb) and abs(a[2] - b[2]) <= 0.2 * max(ha, hb, 1e-6)


def _overprint(a: Line, b: Line) -> bool:
    """Whether two lines are one text printed over itself: their boxes (nearly) coincide and the
    shorter's text is inside the longer's."""
    width = min(a[6], b[6]) - max(a[5], b[5])
    height = min(a[3], b[3]) - max(a[2], b[2])
    if width <= 0 or height <= 0 or not _same_row(a, b):  # most lines of a row sit side by side
        return False
    smaller = min((a[6] - a[5]) * (a[3] - a[2]), (b[6] - b[5]) * (b[3] - b[2]))
    short, long = sorted(("".join(a[1].split()), "".join(b[1].split())), key=len)
    return width * height >= 0.7 * max(smaller, 1e-6) and short in long


def _staggered(a: Line, b: Line) -> Line | None:
    """Two copies of one text cut into lines at different places ("披露日期：2012" and "2012 年3 月27"
    over it, a hair to the right): b starts inside a and repeats a's end. The two as one line."""
    if not (a[5] < b[5] < a[6] < b[6]) or not _same_row(a, b):
        return None
    if a[6] - b[5] < 0.25 * min(a[6] - a[5], b[6] - b[5]):
        return None
    shared = next((k for k in range(min(len(a[1]), len(b[1])), 1, -1) if a[1].endswith(b[1][:k])), 0)
    if not shared:
        return None
    text = a[1] + b[1][shared:]
    return (text, text, min(a[2], b[2]), max(a[3], b[3]), a[4], a[5], b[6])


def _without_overprints(layout: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's lines with fake bold undone: a title drawn four times, a hair apart, to look bold
    reads "安利股份安利股份安利股份安利股份" otherwise. Of lines that overprint each other (_overprint)
    the longest text stays, where the first of them was; copies cut at different places are joined
    (_staggered)."""
    kept: dict[int, list[tuple[int, int]]] = {}  # a line's top, rounded -> (block, line) of the lines kept there
    out: list[dict[str, Any]] = [{"table": b["table"]} if "table" in b else {"lines": list(b["lines"])} for b in layout]
    gone: set[tuple[int, int]] = set()
    for i, block in enumerate(out):
        for j, line in enumerate(block.get("lines", [])):
            if not line[1]:
                continue
            row = round(line[2])
            near = [(bi, li) for r in (row - 1, row, row + 1) for bi, li in kept.get(r, [])]
            twin = next(((bi, li) for bi, li in near if _overprint(out[bi]["lines"][li], line)), None)
            if twin is not None:
                first = out[twin[0]]["lines"][twin[1]]
                if len("".join(line[1].split())) > len("".join(first[1].split())):
                    out[twin[0]]["lines"][twin[1]] = line  # the fuller text, where the first copy was
                gone.add((i, j))
                continue
            joined = next(((bi, li, m) for bi, li in near if (m := _staggered(out[bi]["lines"][li], line))), None)
            if joined is not None:
                bi, li, whole = joined
                out[bi]["lines"][li] = whole
                gone.add((i, j))
                continue
            kept.setdefault(row, []).append((i, j))
    if not gone:
        return out
    return [b if "table" in b else {"lines": [ln for j, ln in enumerate(b["lines"]) if (i, j) not in gone]}
            for i, b in enumerate(out) if "table" in b or any((i, j) not in gone for j in range(len(b["lines"])))]


class _Para(NamedTuple):
    text: str
    size: float
    short: bool  # its last line stops well before its column's right edge (_ends_short)
    top: float  # of its first line
    middle: float  # of its last line, halfway down


def _line_spans(layout: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(left, right) of the page's text lines, for _ends_short."""
    return [(line[5], line[6]) for block in layout for line in block.get("lines", []) if line[1]]


def _ends_short(left: float, right: float, lines: list[tuple[float, float]], rect: Any) -> bool:
    """A line that stops well before the right edge of its column did not wrap: the paragraph it
    ends is complete. The column's edge is where most lines starting where this one starts end (the
    upper quartile of their right ends, so a title across two columns does not move it); a line
    with no column to compare with (a centred or lone one) is not called short."""
    rights = sorted(r for l, r in lines if abs(l - left) <= 0.02 * rect.width)
    edge = rights[(3 * len(rights)) // 4] if len(rights) >= 3 else right
    return edge - left > 0.3 * rect.width and right < edge - 0.25 * (edge - left)


def _paragraph(lines: list[Line], columns: list[tuple[float, float]], rect: Any) -> _Para:
    """Consecutive lines of one block as a paragraph, in the first line's font size."""
    first, last = lines[0], lines[-1]
    text = join_wrapped_lines("\n".join(line[1] for line in lines))
    return _Para(text, first[4], _ends_short(last[5], last[6], columns, rect), first[2], (last[2] + last[3]) / 2)


def page_blocks(layout: list[dict[str, Any]], rect: Any, drop: set[str] | None = None) -> list[tuple[str, float]]:
    """A page's paragraphs with their font size: its lines (page_layout) joined into one paragraph while
    the gap to the next line is small, split at larger gaps and at block changes. Margin lines whose key
    is in drop (running heads, footers, page numbers) are left out; each ruled table is one paragraph
    of Markdown (font size TABLE). A block is run onto the paragraph above when that paragraph reads
    as unfinished — no sentence end, same size, and its last line runs to the right edge of its
    column (a line that stops short, like a title's, ended its paragraph) — or when the block starts
    on that paragraph's last line (a subscript set as a block of its own)."""
    paragraphs: list[_Para] = []
    top = rect.y0 + MARGIN * rect.height
    bottom = rect.y1 - MARGIN * rect.height
    columns = _line_spans(layout)
    for block in layout:
        if "table" in block:
            paragraphs.append(_Para(block["table"], TABLE, True, 0.0, 0.0))
            continue
        current: list[Line] = []
        # a repeated margin line between two lines of a block that reaches into the page's body is the block's text, no
        # running head or footer (found by review: "…guaranteed Interest Only loans are based on …" lost its middle line)
        texts = [i for i, line in enumerate(block["lines"]) if line[1]]
        body = any(not (y1 <= top or y0 >= bottom) for _, text, y0, y1, *_ in block["lines"] if text)
        for n, line in enumerate(block["lines"]):
            raw, text, top_y, bottom_y, line_size = line[:5]
            if not text:
                if raw.strip():  # only glyphs without characters (checkboxes, bullets): what follows is a new item
                    if current:
                        paragraphs.append(_paragraph(current, columns, rect))
                        current = []
                    paragraphs.append(_Para("", ITEM, True, 0.0, 0.0))
                continue
            if drop and (bottom_y <= top or top_y >= bottom) and _edge_key(text) in drop and (
                not body or not texts[0] < n < texts[-1] or PAGE_NUMBER.match(_edge_key(text))
            ):
                continue
            if current:
                height = max(1.0, bottom_y - top_y)
                size = current[0][4]
                last = current[-1]
                if (top_y - last[3] > 0.9 * height or abs(line_size - size) > 0.15 * max(size, 1.0)  # a gap, or a change of font size,
                        # or a line that stopped short, above this one: "Section 4 - Annual leave" over its text
                        or (top_y > (last[2] + last[3]) / 2 and _ends_short(last[5], last[6], columns, rect))):
                    paragraphs.append(_paragraph(current, columns, rect))
                    current = []
            current.append(line)
        if current:
            paragraphs.append(_paragraph(current, columns, rect))
    merged: list[_Para] = []
    item = False
    for para in paragraphs:
        if para.size == ITEM:
            item = True
            continue
        above = merged[-1] if merged else None
        if (
            above and not item and para.size != TABLE and above.size != TABLE
            and (not above.short or para.top < above.middle)
            and not re.search(r"[。！？.!?:：;；)）]$", above.text) and len(above.text) > 30
            and para.text[:1] not in "#•-·*" and abs(para.size - above.size) <= 0.15 * max(para.size, 1.0)
        ):
            merged[-1] = above._replace(text=join_wrapped_lines(above.text + "\n" + para.text), short=para.short, middle=para.middle)
        else:
            merged.append(para)
        item = False
    return [(para.text, para.size) for para in merged]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def _body_size(paragraphs: list[tuple[str, float]]) -> float:
    """The font size most of the text is set in (tables aside); 0 without text."""
    weights: dict[float, int] = {}
    for text, size in paragraphs:
        if size != TABLE:
            weights[round(size, 1)] = weights.get(round(size, 1), 0) + len(text)
    return max(weights, key=lambda k: weights[k]) if weights else 0.0


class Headings:
    """Which paragraphs are section titles: the PDF's outline (bookmarks) when it has one, else lines
    set clearly larger than the body text (up to three levels, by size)."""

    def __init__(self, doc: Any, pages: list[list[tuple[str, float]]]) -> None:
        self.outline: dict[int, list[tuple[int, str]]] = {}
        for depth, title, page in doc.get_toc(simple=True):
            if title.strip() and page >= 1:
                self.outline.setdefault(page, []).append((depth, _squash(title)))
        self.body = _body_size([p for paragraphs in pages for p in paragraphs])
        sizes = sorted({round(size * 2) / 2 for paragraphs in pages for text, size in paragraphs if self._large(text, size)}, reverse=True)
        self.levels = {size: min(i + 1, 3) for i, size in enumerate(sizes)}
        self.title, self.title_size = self._first_title(pages[0] if pages else [])

    def _large(self, text: str, size: float, body: float = 0.0, longest: int = 80) -> bool:
        body = body or self.body
        return (body > 0 and size >= 1.15 * body and len(text) <= longest and not re.search(r"[。！？；，,;]$", text)
                and len(re.findall(r"[^\W\d_]", text)) >= 2)  # a large bullet or figure is no title (found by review:
        # "JOHNSON & JOHNSON > •" headed 312 of the 10-K's 393 pages)

    def _first_title(self, first_page: list[tuple[str, float]]) -> tuple[str, float]:
        """The first page's title, for a file whose metadata has none: the one paragraph set in that page's
        largest size, with two words or more, clearly larger than *that page's* body (a cover page set
        small throughout) and up to 200 characters ("Creating Large Language Model Applications
        Utilizing LangChain: A Primer on Developing LLM Apps Fast", 101), with its size; "" when there is none."""
        body = _body_size(first_page)
        if not body:
            return "", 0.0
        top = max(size for _, size in first_page if size != TABLE)
        largest = [text for text, size in first_page if size == top]
        if len(largest) != 1 or len(re.findall(r"[^\W\d_]{2,}", largest[0])) < 2:
            return "", 0.0
        return (largest[0], top) if self._large(largest[0], top, body=body, longest=200) else ("", 0.0)

    def level(self, page: int, text: str, size: float) -> int | None:
        if self.outline:
            key = _squash(text)
            for level, title in self.outline.get(page, []):
                if key == title or (key.startswith(title) and len(key) <= len(title) + 8):
                    return level
            return None
        if self._large(text, size):
            return self.levels.get(round(size * 2) / 2)
        return None


def _needs_ocr(text: str, options: Any, page: Any = None) -> bool:
    """ocr auto: a page whose text layer is (nearly) empty or garbled, and that shows something to
    read — an image (a scan) or many vector paths (text drawn as outlines). A page with a line of
    text and nothing else ("Page 7", a blank page) is not rendered and read again: 3.5 s each, and
    a 100-page file of such pages ran past its time limit."""
    if options.ocr == "always":
        return True
    if options.ocr == "never":
        return False
    visible = sum(1 for ch in text if not ch.isspace())
    if not (visible < 10 or text.count("\ufffd") > visible * 0.3):
        return False
    return page is None or _shows_something(page)


def _shows_something(page: Any) -> bool:
    try:
        return bool(page.get_images(full=False)) or len(page.get_cdrawings()) >= 20
    except Exception:  # noqa: BLE001 - a broken page: let OCR try
        return True


def _render(page: Any, dpi: int) -> Any:
    import numpy as np

    pix = page.get_pixmap(dpi=dpi)
    return np.ascontiguousarray(np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, pix.n)[:, :, :3])


def _ocr_blocks(page: Any, options: Any, workers: int = 1) -> list[Any]:
    return ocr_blocks(_render(page, options.ocr_dpi), options.ocr_engine, options.ocr_model_dir, options.ocr_layout, options.ocr_angle, workers)


class _OcrAhead:
    """OCR of a document's scanned pages on several threads (one OCR engine each, one core each),
    a few pages ahead of the page being assembled; pages are rendered on the calling thread."""

    def __init__(self, doc: Any, pages: list[int], options: Any, workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.doc, self.todo, self.options, self.workers = doc, list(pages), options, workers
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="kbqa-ocr") if workers > 1 and len(pages) > 1 else None
        self.running: dict[int, Any] = {}
        self._fill()

    def _fill(self) -> None:
        while self.pool is not None and self.todo and len(self.running) < 2 * self.workers:
            n = self.todo.pop(0)
            o = self.options
            self.running[n] = self.pool.submit(ocr_blocks, _render(self.doc[n - 1], o.ocr_dpi), o.ocr_engine, o.ocr_model_dir, o.ocr_layout, o.ocr_angle, self.workers)

    def blocks(self, number: int) -> list[Any]:
        if self.pool is None or number not in self.running:
            return _ocr_blocks(self.doc[number - 1], self.options)
        result = self.running.pop(number).result()
        self._fill()
        return result

    def close(self) -> None:
        if self.pool is not None:
            for future in self.running.values():
                future.cancel()
            self.pool.shutdown(wait=True)


def ocr_workers(options: Any) -> int:
    """Threads for OCR pages: ingest.ocr_workers, or 0 = one per core (at most 4)."""
    import os

    wanted = int(getattr(options, "ocr_workers", 0) or 0)
    return max(1, wanted if wanted > 0 else min(4, os.cpu_count() or 1))


def _ocr_page(page: Any, options: Any) -> str:
    return "\n\n".join(b.text for b in _ocr_blocks(page, options))


def _page_doc(path: Path, number: int, text: str, kind: str = "text", title_path: list[str] | None = None) -> Document:
    return Document(_normalize(text), {"source": str(path), "page": number, "title_path": list(title_path or []), "kind": kind})


def load(path: Path, options: Any) -> Iterator[Document]:
    if options.pdf_engine not in ENGINES:
        raise LoadError(f"unknown pdf_engine {options.pdf_engine!r}; choose one of {', '.join(ENGINES)}")
    pymupdf = quiet_pymupdf()

    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:
        raise LoadError(f"corrupt or unreadable PDF: {exc}") from exc
    with doc:
        if doc.needs_pass:
            raise LoadError("encrypted PDF: remove the password first (e.g. qpdf --decrypt)")
        if doc.page_count == 0:
            raise LoadError("PDF has no pages")
        meta = doc.metadata or {}
        about = {"title": meta.get("title") or "", "subject": meta.get("subject") or ""}
        damaged = REPAIRED if doc.is_repaired else ""
        yield from _with_about(_read_pages(path, doc, options, about), about, damaged)


REPAIRED = ("damaged PDF: MuPDF had to repair it to read it, and part of its text may be missing "
            "(a download cut short?); ingest a good copy")


def _with_about(docs: Iterator[Document], about: dict[str, str], warning: str = "") -> Iterator[Document]:
    """The file's own title and subject ride on its first document (see ingest.context), and so
    does a warning about the file as a whole (meta "warning": it was read, but not all of it may be)."""
    for n, d in enumerate(docs):
        if n == 0:
            d.meta["about"] = about
            if warning:
                d.meta["warning"] = warning
        yield d


def _read_pages(path: Path, doc: Any, options: Any, about: dict[str, str]) -> Iterator[Document]:
    texts: list[str] = []
    if options.pdf_engine == "pymupdf":
        yield from _pymupdf_sections(path, doc, options, about)
        return
    elif options.pdf_engine == "pdfplumber":
        texts = drop_repeated_edges(pdfplumber_pages(path))
    else:
        texts = drop_repeated_edges(pdfminer_pages(path))
    for number, text in enumerate(texts, start=1):
        if getattr(options, "on_page", None):
            options.on_page(number, len(texts))
        if _needs_ocr(text, options, doc[number - 1]):
            yield _page_doc(path, number, _ocr_page(doc[number - 1], options), "ocr")
        else:
            yield _page_doc(path, number, text)


def _pymupdf_sections(path: Path, doc: Any, options: Any, about: dict[str, str]) -> Iterator[Document]:
    """One document per page and section: a title (outline entry or large font) starts a section,
    and every document carries the path of titles above it. A file without a title of its own
    (metadata) takes its first page's title (Headings.title) into `about`, before the first document."""
    layouts, rects = [], []
    for page in doc:  # each page loaded once (loading one costs as much as reading a short page's text)
        rects.append(page.rect)
        layouts.append(page_layout(page, getattr(options, "pdf_tables", True)))
    drop = repeated_margin_lines([_margin_keys(layout, rect) for layout, rect in zip(layouts, rects)])
    pages = [page_blocks(layout, rect, drop) for layout, rect in zip(layouts, rects)]
    del layouts
    headings = Headings(doc, pages)
    if not about.get("title") and not headings.outline and headings.title and not headings.level(1, headings.title, headings.title_size):
        about["title"] = headings.title  # (a title that is a heading already is in the description as one)
    report = getattr(options, "on_page", None) or (lambda done, total: None)
    scanned = [n for n, paragraphs in enumerate(pages, start=1) if _needs_ocr("\n\n".join(t for t, _ in paragraphs), options, doc[n - 1])]
    ahead = _OcrAhead(doc, scanned, options, ocr_workers(options)) if scanned else None
    try:
        yield from _assemble(path, pages, set(scanned), ahead, headings, report)
    finally:
        if ahead is not None:
            ahead.close()


def _assemble(path: Path, pages: list[list[tuple[str, float]]], scanned: set[int], ahead: Any, headings: Headings, report: Any) -> Iterator[Document]:
    path_: list[tuple[int, str]] = []
    last_table = ""  # the table the page before ended with: one that goes on at this page's top takes its header
    for number, paragraphs in enumerate(pages, start=1):
        report(number, len(pages))
        kind = "text"
        if number in scanned:  # a scanned page: OCR blocks in layout order, titles marked by the layout model
            kind = "ocr"
            paragraphs = [(b.text, -1.0 if b.kind == "title" else 0.0) for b in ahead.blocks(number)]
        section: list[str] = []
        titles = [t for _, t in path_]
        ended_with = last_table
        last_table = ""
        for at, (para, size) in enumerate(paragraphs):
            if size == TABLE:  # a ruled table: a document of its own, so the splitter cuts it by rows under its header
                if section:
                    yield _page_doc(path, number, "\n\n".join(section), kind, titles)
                    section = []
                if at == 0 and ended_with:
                    para = continued_table(ended_with, para) or para
                yield _page_doc(path, number, para, "table", titles)
                if at == len(paragraphs) - 1:
                    last_table = para
                continue
            if size < 0:  # an OCR title: its level from the outline, else a top-level section
                level = headings.level(number, para, 0.0) if headings.outline else 1
            else:
                level = headings.level(number, para, size)
            if level:
                if section:
                    yield _page_doc(path, number, "\n\n".join(section), kind, titles)
                path_ = [(lv, t) for lv, t in path_ if lv < level] + [(level, _normalize(para))]
                titles, section = [t for _, t in path_], []
            section.append(para)
        if section:
            yield _page_doc(path, number, "\n\n".join(section), kind, titles)


def drop_repeated_edges(pages: list[str]) -> list[str]:
    """Without geometry: the first and last two lines of each page, dropped where the same line
    (numbers aside) starts or ends three pages or more (two in a short document), or is a bare page number."""
    if len(pages) < 2:
        return pages
    split = [p.split("\n") for p in pages]
    counts: dict[str, int] = {}
    for lines in split:
        for key in {_edge_key(x) for x in lines[:2] + lines[-2:] if x.strip()}:
            counts[key] = counts.get(key, 0) + 1
    need = min(3, max(2, int(0.4 * len(pages) + 0.999)))
    drop = {k for k, n in counts.items() if n >= need or PAGE_NUMBER.match(k)}
    out = []
    for lines in split:
        edge = set(range(min(2, len(lines)))) | set(range(max(0, len(lines) - 2), len(lines)))
        out.append("\n".join(x for i, x in enumerate(lines) if not (i in edge and x.strip() and _edge_key(x) in drop)))
    return out
