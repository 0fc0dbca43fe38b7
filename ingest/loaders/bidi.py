"""Logical order for right-to-left lines of a PDF page (Arabic, Persian, Hebrew).

PyMuPDF gives each span's Arabic letters in logical order, but not what surrounds them: punctuation at
a span's edge stays where it was drawn ("،وعليه" for "وعليه،"), a date drawn as separate spans comes out
backwards ("19/09/1403" for "1403/09/19"), and a lam-alef ligature's zero-width alef comes before its lam.
Here a right-to-left line is rebuilt from its characters' positions: read right to left, then each run of
left-to-right text (Latin words, numbers, and the separators between them) turned back to read left to right.
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Every letter Unicode writes right to left (bidi class R or AL) lies in these ranges (a test checks it):
# Hebrew, Arabic, Syriac, Thaana, N'Ko and their presentation forms, and the right-to-left scripts beyond the BMP.
RTL_TEXT = "[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff\U0001e800-\U0001efff]"
_ALEFS = "\u0627\u0623\u0625\u0622"
_LAM = "\u0644"


def _strong(text: str) -> str:
    """'R' for right-to-left letters, 'L' for left-to-right letters and digits, '' for the rest
    (of a glyph's first character: a ligature's text can be several)."""
    if not text:
        return ""
    kind = unicodedata.bidirectional(text[0])
    if kind in ("R", "AL"):
        return "R"
    if kind in ("L", "EN", "AN"):
        return "L"
    return ""


def lam_alef(chars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chars with each lam-alef ligature as lam then alef (PyMuPDF puts the zero-width alef first)."""
    chars = list(chars)
    i = 0
    while i < len(chars) - 1:
        c, d = chars[i], chars[i + 1]
        if c["c"] in _ALEFS and d["c"] == _LAM and c["bbox"][2] - c["bbox"][0] < 0.5:
            chars[i], chars[i + 1] = d, c
            i += 1
        i += 1
    return chars


def is_rtl_line(chars: list[dict[str, Any]]) -> bool:
    kinds = [_strong(c["c"]) for c in chars]
    return kinds.count("R") > kinds.count("L")


def _words(chars: list[dict[str, Any]], size: float, rtl: bool) -> list[list[str]]:
    """The line's words in drawing order (right to left when rtl), each a list of glyph clusters: a zero-width
    alef or a vowel mark goes with the letter before it. Spaces come from the gaps between glyphs, not from
    space characters: some PDFs draw a space as wide as the word around it."""
    clusters: list[list[Any]] = []  # [x0, x1, text]
    for c in chars:
        x0, _, x1, _ = c["bbox"]
        if not c["c"] or c["c"].isspace() or c["c"].startswith("(cid:"):  # pdfminer's name for a glyph without a character
            continue
        if any(t == c["c"] and abs(a - x0) < 1 and abs(b - x1) < 1 for a, b, t in clusters[-3:]):
            continue  # the same glyph drawn twice (fake bold, shadows)
        if (x1 - x0 < 0.5 or unicodedata.combining(c["c"][0])) and clusters:
            clusters[-1][2] += c["c"]
        else:
            clusters.append([x0, x1, c["c"]])
    clusters.sort(key=lambda cluster: (cluster[0] + cluster[1]) / 2, reverse=rtl)
    words: list[list[str]] = []
    for i, (x0, x1, text) in enumerate(clusters):
        gap = (clusters[i - 1][0] - x1) if rtl else (x0 - clusters[i - 1][1]) if i else 0.0
        if not words or gap > 0.2 * size:
            words.append([])
        words[-1].append(text)
    return words


def line_text(chars: list[dict[str, Any]], size: float) -> str:
    """A line's text from its characters ({"c", "bbox"}), in logical order whichever way it runs."""
    if is_rtl_line(chars):
        return logical_text(chars, size)
    return " ".join("".join(word) for word in _words(chars, size, rtl=False))


def logical_text(chars: list[dict[str, Any]], size: float) -> str:
    """The text of a right-to-left line from its characters (as PyMuPDF lists them, ligatures fixed)."""
    words = _words(chars, size, rtl=True)  # right to left, each word's clusters right to left
    units = [u for n, word in enumerate(words) for u in ([" "] if n else []) + word]
    kinds = [_strong(u) for u in units]
    out: list[str] = []
    i = 0
    while i < len(units):
        if kinds[i] != "L":
            out.append(units[i])
            i += 1
            continue
        end = j = i  # a left-to-right run: up to its last L before the next R
        while j < len(units) and kinds[j] != "R":
            if kinds[j] == "L":
                end = j
            j += 1
        out.extend(reversed(units[i : end + 1]))
        i = end + 1
    return "".join(out)
