"""Codes, product versions and floors a text names ("P-4010", "KX-300", "Q4", "E3"; "Atlas 2.2"; "5th floor", "5F"), and whether
a source holds one in any way it may be written. The refusal rules (kbqa.scope) and the evidence
ranking (kbqa.evidence) read them."""

from __future__ import annotations

import re

YEAR = re.compile(r"(?<!\d)(?:1[5-9]|20)\d\d(?!\d)")  # a question's year word (fullmatch), one in a source's text (search)

# a code a question names: letters then digits, glued or joined by a hyphen ("P-4010", "KX-700",
# "Q4", "E3", "S103"), written against Chinese too ("KX-300显示E4是什么意思？": a Chinese character
# is no part of it); not a year ("FY2019"), nor a version's major number ("v2" of "v2.0")
CODE = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z]{1,4})-?(\d{1,6})(?![A-Za-z0-9_-]|\.\d)")
# ... as a source may write it: "E03" for E3, "P-4010-B", "v2.0", "Room 301"; neither this nor a range
# (below) inside a run of letters and digits (a UUID's "…84e1-785e-4e31…" holds no E4, nor E1 to E785)
HELD_CODE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,4})[-_ ]?(\d{1,6})")
# ... or within a range ("P-5000 to P-5099", "S101–S105", "KX-300至KX-500")
CODE_RANGE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,4})[-_ ]?(\d{1,6})\s*(?:to|through|–|—|-|~|至|到)\s*(?:\1[-_ ]?)?(\d{1,6})(?!\d)", re.I)
QUARTER_WORDS = {1: r"first|1st|一", 2: r"second|2nd|二", 3: r"third|3rd|三", 4: r"fourth|4th|四"}


def codes(text: str) -> set[tuple[str, int]]:
    """The codes a question names, as (letters in capitals, number)."""
    return {(m.group(1).upper(), int(m.group(2))) for m in CODE.finditer(text) if not YEAR.fullmatch(m.group(2))}


def holds_code(text: str, code: tuple[str, int]) -> bool:
    """Whether a source's text holds a code in any way it may be written: padded, with a suffix or
    a version's minor number, inside a range of codes, and a quarter in words ("fourth quarter", 第四季度)."""
    letters, number = code
    if any(m.group(1).upper() == letters and int(m.group(2)) == number for m in HELD_CODE.finditer(text)):
        return True
    if any(m.group(1).upper() == letters and int(m.group(2)) <= number <= int(m.group(3)) for m in CODE_RANGE.finditer(text)):
        return True
    words = QUARTER_WORDS.get(number) if letters == "Q" else None
    return bool(words and re.search(rf"(?i)\b(?:{words})[\s-]+quarter\b|第?(?:{words})季度", text))


# a product's version a question names: a capitalised name, then a number with a dot ("Atlas 3.0",
# "CloudNote v2.1", "Python 3.11"); "version 2" and a lone "2.3" name no product
VERSION = re.compile(r"(?<![\w.-])([A-Z][A-Za-z]{1,24})[ -]?v?(\d{1,3})\.(\d{1,3})(?:\.\d{1,3})?(?![\d]|\.\d)")  # (a patch number is read past)
HELD_VERSION = re.compile(r"(?<![\w.-])([A-Z][A-Za-z]{1,24})[ -]?(?:v|version\s*)?(\d{1,3})(?:\.(\d{1,3}))?(?!\d)", re.I)


# a document's own numbering, not a product: "Clause 9.1" may be held as "9.1 Termination"
# (and an amount: "USD 9.99")
NUMBERING = frozenset("ANNEX ARTICLE APPENDIX CHAPTER CLAUSE EXHIBIT FIG FIGURE ITEM LEVEL NOTE PAGE PARA PARAGRAPH PART RULE SCHEDULE "
                      "SECTION SEC STEP TABLE VERSION VOL VOLUME USD EUR GBP CNY RMB JPY CHF HKD AUD CAD".split())


def versions(text: str) -> set[tuple[str, int, int]]:
    """The product versions a text names, as (name in capitals, major, minor)."""
    return {(m.group(1).upper(), int(m.group(2)), int(m.group(3))) for m in VERSION.finditer(text) if m.group(1).upper() not in NUMBERING}


def holds_version(text: str, version: tuple[str, int, int]) -> bool:
    """Whether a source holds a product's version: "Atlas 3.0", "Atlas v3.0.2", "Atlas version 3", "Atlas 3" for 3.0;
    or the number alone where the source names the product too ("Python 3.10, 3.11 and 3.12", "Atlas 2.1 … Version 2.2")."""
    name, major, minor = version
    if any(m.group(1).upper() == name and int(m.group(2)) == major and int(m.group(3) or 0) == minor
           for m in HELD_VERSION.finditer(text)):
        return True
    return bool(re.search(rf"(?<![\w.]){major}\.0*{minor}(?!\d|\.\d)", text)) and bool(re.search(rf"(?i)\b{re.escape(name)}\b", text))


def about_other_code(about: str, code: tuple[str, int], asked: set[tuple[str, int]] | frozenset[tuple[str, int]] = frozenset()) -> bool:
    """Whether a source's document or section (its description and title path: `about`) names
    another code of the same letters and neither this one nor another the question asks of them
    (`asked`): the KX-500's manual for the KX-300; not the KX-300's manual for "What warranty do the
    KX-200 and KX-300 pumps have?" (it was, each manual about another code than the other's, and the
    question was refused)."""
    letters = code[0]
    return letters in {held for held, _ in codes(about)} and not any(holds_code(about, c) for c in {code, *asked} if c[0] == letters)


def about_another(about: str, question: str) -> bool:
    """Whether `about` is about another code or version than the question names, of the same letters
    or product, and not an asked one too: the "Q3 2024: Atlas 2.1" slide for "When is Atlas 2.2
    released?", the KX-500's manual for "error E4 on the KX-300"; not the KX-300's manual for a
    question of the KX-200 and the KX-300."""
    asked = codes(question)
    if any(about_other_code(about, code, asked) for code in asked):
        return True
    names = {name for name, _, _ in versions(about)}
    asked_versions = versions(question)
    return any(v[0] in names and not any(holds_version(about, w) for w in asked_versions if w[0] == v[0]) for v in asked_versions)


# a version number by itself, as release notes title their sections: with a "v" or "version" ("v3.1.0
# (2024-01-15)", "Version 3.2") or of three numbers ("3.1.2"); not a section's number ("2.2 Signing in")
VERSION_NUMBER = re.compile(r"(?<![\w.])(?:(?:v|version\s*)(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?|(\d{1,3})\.(\d{1,3})\.(\d{1,3}))(?![\w]|\.\d)", re.I)


def version_numbers(text: str) -> set[tuple[int, int, int]]:
    """The version numbers a text holds, as (major, minor, patch): "v3.1" is (3, 1, 0)."""
    out = set()
    for m in VERSION_NUMBER.finditer(text):
        a, b, c = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        out.add((int(a), int(b), int(c or 0)))
    return out


def nearest_about_another(parts: list[str], question: str) -> bool:
    """about_another, read from the nearest of a passage's parts (its section's title) to the farthest
    (its document's description): the first part that names a code or version of the asked kind
    decides. The "AX-300: Setup and reset" section of a manual titled "AX-200 / AX-300" is about another
    code than "…the AX-200?"; a release note's "v3.1.0 (2024-01-15)" section is about another version
    than "…Atlas Console v3.1.2?" (a section title that is a version number decides by the number)."""
    asked_codes, asked_versions = codes(question), versions(question)
    asked_numbers = version_numbers(question) if asked_versions else set()
    for i, part in enumerate(parts):
        if about_another(part, question):
            return True
        if any(holds_code(part, c) for c in asked_codes) or any(holds_version(part, v) for v in asked_versions):
            return False
        if asked_numbers and i < len(parts) - 1 and (numbers := version_numbers(part)):
            return not numbers & asked_numbers
    return False


# a floor as a question names it ("5th floor", 5楼, 5层; not 楼梯, 层主) and as a building's plans write it ("5F", "5/F")
FLOOR = re.compile(r"\b(\d{1,3})(?:st|nd|rd|th)\s+floor\b|(?<![\d.])(\d{1,3})\s*(?:楼|层)(?!梯|道|房|盘|主)", re.I)
PLAN_FLOOR = re.compile(r"(?<![\w.])(\d{1,3})\s*/?F\b")


def floors(text: str) -> set[int]:
    """The floors a text names in words ("5th floor", 5楼, 5层)."""
    return {int(a or b) for a, b in FLOOR.findall(text)}


def plan_floors(text: str) -> set[int]:
    """The floors a text names as plans write them ("3F printer", "5/F")."""
    return {int(n) for n in PLAN_FLOOR.findall(text)}
