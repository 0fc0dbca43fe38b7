"""Hard-wrapped plain text and Markdown made whole again: a paragraph typed or exported with a line
break every 70 columns (or every 17 Chinese characters) is one paragraph, not a run of fragments
each read, quoted and cited as a sentence of its own (found by review: "年假有几天？" over a wrapped
.txt was answered "年假； [1] 工作满五年后，带薪年假增加到 [1] 员工入职满一年后，每年享有十天带薪 [1]").

A line is joined to the next when it reads as wrapped: it runs to near the paragraph's widest line
(WRAPPED_SHARE of it, the widest at least MIN_WRAP_COLUMNS), it does not end a sentence or introduce
a list, and neither it nor the next is a heading, a list item, a table row, a quote, code or a
rule or a field ("Date: 12 February 2024"), HTML or a link's reference; and only in a paragraph that ends a
sentence somewhere. Short lines (addresses, "型号：KX-200" lists), columns set apart by spaces, verse (a
capital after a line that ends in a word or a comma), items that begin alike, Markdown hard breaks and one
sentence per line stay as written. Chinese is joined without a space, anything else with one.
"""

from __future__ import annotations

import re
import unicodedata

WRAPPED_SHARE = 0.6  # a line at least this share of its paragraph's widest line reads as wrapped
MIN_WRAP_COLUMNS = 24  # a paragraph whose widest line is narrower is a list of short lines, not wrapped text
_ENDS = re.compile(r"[。！？!?.;；:：…]['\"’”」』）)\]]*(?:\[\d+\])*\s*$")  # (…with."[21]: a footnote mark after the end)
_PROSE = re.compile(r"[。！？!?]|\.(?:\s|$)")  # a block that ends no sentence anywhere is a list, whatever its lines' widths
_BLOCK = re.compile(r"^\s*(?:[-*+•·●○▪◦]\s|\d{1,3}[.)、．]\s?|[（(]?\d{1,3}[)）]|[一二三四五六七八九十]{1,3}[、.．]|第[一二三四五六七八九十百\d]+[条章节款]"
                    r"|[a-zA-Z][.)]\s|#{1,6}\s|>|\||```|~~~|={3,}\s*$|-{3,}\s*$|\*{3,}\s*$|<|\[[^\]]+\]:)")  # (HTML, a link's reference)
# a field's line ("Date: 12 February 2024", "Subject: …", "发件人：行政部"): a memo's header, a form, a spec sheet
_FIELD = re.compile(r"^\s*(?:[\w][\w.'-]*(?: [\w.'-]+){0,2}|[\u4e00-\u9fff]{1,8})\s?[:：]\s*\S")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


def columns(line: str) -> int:
    """How wide a line is set: a wide (CJK) character takes two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def unwrap(text: str) -> str:
    """The text with each hard-wrapped paragraph on one line (see the module); blank lines, fenced code and
    every line that is not wrapped prose kept as they are."""
    lines = text.split("\n")
    out: list[str] = []
    block: list[str] = []
    fenced = False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            out += _joined(block)
            block = []
            fenced = not fenced
            out.append(line)
        elif fenced or not line.strip():
            out += _joined(block)
            block = []
            out.append(line)
        else:
            block.append(line)
    out += _joined(block)
    return "\n".join(out)


def _joined(block: list[str]) -> list[str]:
    """A paragraph's lines with wrapped ones joined to the next."""
    if len(block) < 2:
        return block
    widest = max(columns(line.rstrip()) for line in block)
    if widest < MIN_WRAP_COLUMNS or not _PROSE.search("\n".join(block)):
        return block
    out = [block[0]]
    tail = block[0]  # the last line as written (out[-1] may be several joined)
    for line in block[1:]:
        if _wraps(tail, line, widest):
            a, b = out[-1].rstrip(), line.strip()
            out[-1] = a + ("" if _CJK.match(a[-1]) and _CJK.match(b[0]) else " ") + b
        else:
            out.append(line)
        tail = line
    return out


def _wraps(line: str, following: str, widest: int) -> bool:
    """Whether a line (as written) runs on into the following one (see the module)."""
    if _BLOCK.match(following) or _BLOCK.match(line) and line.lstrip().startswith(("#", "|", ">", "=", "---", "***")):
        return False
    if _FIELD.match(line) or _FIELD.match(following):  # (a memo's header lines, found when the suite ran: "Date: … Subject: …")
        return False
    if line.startswith(("    ", "\t", "|", ">")) or following.startswith(("    ", "\t")):
        return False
    if line.endswith(("  ", "\\")) or _ENDS.search(line) or "|" in line or "\t" in line.strip() or line.rstrip().endswith(">"):
        return False  # (a Markdown hard break; a sentence's or a list's end; a table's row; HTML)
    if re.search(r"\S {2,}\S", line.strip()) or re.search(r"\S {2,}\S", following.strip()):
        return False  # columns set apart by spaces: a table typed in text
    if re.search(r"[a-z,]$", line.rstrip()) and re.match(r"\s*[A-Z]", following):
        return False  # a line that ends in a word, and a next one that begins with a capital: verse, a list, not a wrap
    a, b = line.lstrip()[:2], following.lstrip()[:2]
    if len(a) == 2 and a == b and all(_CJK.match(ch) for ch in a):
        return False  # items of a list that begin alike ("员工入职满一年后…", "员工入职满十年后…")
    return columns(line.rstrip()) >= WRAPPED_SHARE * widest
