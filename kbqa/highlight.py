"""Which passage of a retrieved chunk matched the question, and where it lies on its PDF page: for
highlighting it in a source view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.textfacts import han, sentence_spans, terms


def passage_span(text: str, question: str) -> tuple[int, int] | None:
    """(start, end) of the sentence of text sharing most with the question; None when none shares anything."""
    wanted = terms(question)
    best, best_score = None, 0.0
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        if not sentence.strip():
            continue
        shared = len(wanted & terms(sentence))
        score = shared / (1 + 0.002 * len(sentence))
        if shared and score > best_score:
            best, best_score = (a, b), score
    if best is None:
        return None
    start, end = best
    while start < end and text[start].isspace():
        start += 1
    return start, end


MAX_PIXELS = 4_000_000  # a page drawn larger is drawn at a lower resolution (a PDF page may be 200 inches square)


def page_image(source: Path, page: int, dpi: int = 110, outline: str | None = None) -> bytes | None:
    """A PNG of one page of a PDF (1-based page), with the text `outline` framed in red where the page
    holds it, at most MAX_PIXELS; None when the file is not a PDF, is gone, has no such page, or
    MuPDF cannot draw it."""
    if source.suffix.lower() != ".pdf" or not source.is_file() or page < 1:
        return None
    from ingest.loaders.pdf import quiet_pymupdf

    pymupdf = quiet_pymupdf()
    try:
        with pymupdf.open(source) as doc:
            if page > doc.page_count:
                return None
            sheet = doc[page - 1]
            for rect in _passage_rects(sheet, outline or ""):
                sheet.draw_rect(rect + (-2, -2, 2, 2), color=(0.85, 0.1, 0.1), width=1.5)  # in memory only: the file is not written
            inches = max(sheet.rect.width * sheet.rect.height / 72**2, 1e-6)
            dpi = min(dpi, int((MAX_PIXELS / inches) ** 0.5))  # (a 14,400 pt page at 110 dpi: 484 Mpx, 1.3 GB and seconds a view)
            return bytes(sheet.get_pixmap(dpi=max(dpi, 1)).tobytes("png"))
    except (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase):  # (MuPDF's own errors, e.g. "Overly large image", are none of the first two)
        return None


def _passage_rects(page: Any, passage: str) -> list[Any]:
    """Where a passage lies on a PDF page: the boxes of its words' lines, found by searching for
    its start and its end (a page's lines break where the chunk's text does not)."""
    words = passage.split()
    if not words:
        return []
    cjk = bool(han(passage))
    text = "".join(words) if cjk else " ".join(words)
    probes = [text[:12], text[-12:]] if cjk else [" ".join(words[:5]), " ".join(words[-5:])]
    found = [r for probe in dict.fromkeys(p for p in probes if p.strip()) for r in page.search_for(probe)[:1]]
    if not found:
        return []
    top, bottom = min(r.y0 for r in found), max(r.y1 for r in found)
    lines = [b for b in page.get_text("blocks") if b[3] >= top - 1 and b[1] <= bottom + 1 and str(b[4]).strip()]
    import pymupdf

    return [pymupdf.Rect(min(b[0] for b in lines), top, max(b[2] for b in lines), bottom)] if lines else found
