"""A spreadsheet number as Excel shows it under its cell's number format: 0.055 under "0.0%" is 5.5%, 1234.5 under
"#,##0.00" is 1,234.50, under '"¥"#,##0' ¥1,235, and -8 under "0;(0)" is (8). A format this does not know (fractions,
scientific, conditions) leaves the number as General shows it: at most 15 significant digits, so that 0.1+0.2 is 0.3."""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from functools import lru_cache

_LOCALE = re.compile(r"\[\$([^\]-]*)(?:-[0-9A-Fa-f]+)?\]")  # [$€-407] is €, [$-409] nothing
_BRACKET = re.compile(r"\[[^\]]*\]")  # colours ([Red]), [DBNum1] and the like
_PLACES = "0#?"
_CONTEXT = Context(prec=400)  # room for any figure a cell holds (up to 1e308) and 40 places


def general(value: float) -> str:
    """A number as Excel's General format shows it, less its column-width rounding; an integer whole (an ID of 16
    digits), infinity and NaN as Python writes them."""
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:.15g}"


@lru_cache(maxsize=1024)
def _sections(fmt: str) -> tuple[str, ...]:
    """The format's sections (positive; negative; zero; text), split at semicolons outside quotes and escapes."""
    out, current, quoted, i = [], [], False, 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "\\" and not quoted and i + 1 < len(fmt):
            current.append(fmt[i : i + 2])
            i += 2
            continue
        elif ch == ";" and not quoted:
            out.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    out.append("".join(current))
    return tuple(out)


@lru_cache(maxsize=1024)
def _parts(section: str) -> tuple[str, str, str] | None:
    """A section as (text before the number, the number's pattern, text after it), or None when it is not a plain
    number pattern (a fraction, scientific notation, a date or text format). A section of text alone (an accounting
    format's "-" for zero) has an empty pattern."""
    before: list[str] = []
    pattern: list[str] = []
    after: list[str] = []
    i = 0
    while i < len(section):
        ch = section[i]
        where = after if pattern else before
        if ch == '"':
            end = section.find('"', i + 1)
            end = len(section) if end < 0 else end
            where.append(section[i + 1 : end])
            i = end + 1
            continue
        if ch == "\\" and i + 1 < len(section):
            where.append(section[i + 1])
            i += 2
            continue
        if ch in "_*":  # _x leaves the room of x (a space), *x repeats x to fill the cell: nothing here
            i += 2
            continue
        if ch in _PLACES or (ch in ".," and (pattern or (i + 1 < len(section) and section[i + 1] in _PLACES))):
            if after and pattern:
                return None  # digits in two places: a fraction, or a pattern this does not model
            pattern.append(ch)
        elif ch in "/EeyYmMdDhHsS@":
            return None
        else:
            where.append(ch)
        i += 1
    return "".join(before), "".join(pattern), "".join(after)


def shown(value: float, fmt: str | None) -> str:
    """The number as a cell of this format shows it (see the module's note); General where it cannot be (found by
    review: 1E999, NaN, a number of 400 digits or one past Decimal's precision failed the whole workbook)."""
    try:
        with localcontext(_CONTEXT):
            return _shown(value, fmt)
    except (ArithmeticError, ValueError, TypeError):
        return general(value) if isinstance(value, (int, float)) else str(value)


def _shown(value: float, fmt: str | None) -> str:
    if not fmt or len(fmt) > 255 or fmt.strip().lower() == "general" or "E+" in fmt.upper() or "E-" in fmt.upper() or not math.isfinite(value):
        return general(value)  # (Excel's formats are at most 255 characters: a longer one is no format of Excel's)
    sections = _sections(fmt)
    if any(re.search(r"\[[<>=]", s) for s in sections):
        return general(value)  # conditional sections: not modelled
    sign = ""
    if value < 0 and len(sections) >= 2 and sections[1].strip():
        section, value = sections[1], -value  # the negative section shows the number without its sign
    elif value == 0 and len(sections) >= 3 and sections[2].strip():
        section = sections[2]
    else:
        section = sections[0]
        if value < 0:
            sign, value = "-", -value
    section = _BRACKET.sub("", _LOCALE.sub(lambda m: m.group(1), section))
    parts = _parts(section)
    if parts is None:
        return sign + general(value)
    before, pattern, after = parts
    if not pattern:
        return before.strip() or sign + general(value)
    if (before + after).count("%") > 2 or sum(pattern.count(c) for c in _PLACES) > 40:
        return sign + general(value)  # as no format shows a figure: more places than Excel's 30 decimals, %%%
    number = Decimal(general(value)) * 100 ** (before + after).count("%")
    number /= 1000 ** (len(pattern) - len(pattern.rstrip(",")))  # trailing commas: shown in thousands (or millions)
    whole, _, decimals = pattern.rstrip(",").partition(".")
    least = sum(decimals.count(c) for c in "0?")
    most = sum(decimals.count(c) for c in _PLACES)
    number = number.quantize(Decimal(1).scaleb(-most), rounding=ROUND_HALF_UP)  # halves away from zero, as Excel
    text = f"{number:,f}" if "," in whole else f"{number:f}"
    head, _, tail = text.partition(".")
    tail = tail[:least] + tail[least:].rstrip("0")
    if head == "0" and "0" not in whole:
        head = ""  # "#.##" shows 0.5 as .5, and an accounting "??" shows zero as nothing
    text = head + ("." + tail if tail else "")
    if not text.strip("0.,"):
        sign = ""  # -0.001 under "0.00" is 0.00, not -0.00
    shown_text = (sign + before + text + after).strip()
    return shown_text or general(value)
