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

RTL_TEXT = "[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]"  # Hebrew, Arabic, Syriac, Thaana and their presentation forms
_ALEFS = "\u0627\u0623\u0625\u0622"
_LAM = "\u0644"


def _strong(ch: str) -> str:
    """'R' for right-to-left letters, 'L' for left-to-right letters and digits, '' for the rest."""
    kind = unicodedata.bidirectional(ch)
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


def logical_text(chars: list[dict[str, Any]], size: float) -> str:
    """The text of a right-to-left line from its characters (as PyMuPDF lists them, ligatures fixed).
    Spaces come from the gaps between glyphs: some PDFs draw a space as wide as the word around it."""
    clusters: list[list[Any]] = []  # [x0, x1, text]
    for c in chars:
        x0, _, x1, _ = c["bbox"]
        if c["c"].isspace():
            continue
        if (x1 - x0 < 0.5 or unicodedata.combining(c["c"])) and clusters:  # a zero-width alef, a vowel mark
            clusters[-1][2] += c["c"]
        else:
            clusters.append([x0, x1, c["c"]])
    clusters.sort(key=lambda cluster: -(cluster[0] + cluster[1]) / 2)
    words: list[list[str]] = []  # right to left, each word's clusters right to left
    for i, (x0, x1, text) in enumerate(clusters):
        if not words or clusters[i - 1][0] - x1 > 0.2 * size:
            words.append([])
        words[-1].append(text)
    units = [u for n, word in enumerate(words) for u in ([" "] if n else []) + word]
    kinds = [_strong(u[0]) for u in units]
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
