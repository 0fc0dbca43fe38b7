"""Plain text and Markdown, with the encoding detected (UTF-8/16/32, GB18030/GBK, Big5, ...)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from ingest.loaders.unwrap import unwrap
from ingest.textfacts import han as han_characters
from ingest.textfacts import states_something
from ingest.types import Document, LoadError

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


# The most frequent Chinese characters, simplified and traditional: real Chinese text is full of
# them, while bytes of another encoding decoded as GB18030/Big5 give rare characters or none.
_COMMON_ZH = set(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里用道行所然家种事成"
    "方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实日军者意无力它与长把机十民第公此已工"
    "使情明性知全三又关点正业外将两高间由问很最重并物手应战向头文体政美相见被利什二等产或新己制身果加西斯月话合回特代内信表"
    "化老给世位次度门任常先海通教儿原东声提立及比员解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结"
    "反受目太量再感建务做接必场件计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基书非则听白界达光放强即像难且权"
    "思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改收根干造言联"
    "持组每济车亲极林服快办议往元英士证近失转夫令准布始怎存未远叫台单影具罗字爱击流备兵连调深商算质团集百需价花党华城石级整"
    "府离况亚请技际约示复病息究线似官火断精满支视消越器容照须九增研写称企八功包片史委查轻易早曾除农找装广显阿李标谈吃图念六"
    "們這個來為國說時會對後於與動現經關點學進種發開當從還沒實問間機長見頭樣體應無門將電話氣結場產業質數變東兩員區師們處"
)


def _chinese_decoding(data: bytes) -> str | None:
    """data as GB18030 or Big5 when one of them yields mostly common Chinese characters."""
    best: tuple[float, str] | None = None
    for encoding in ("gb18030", "big5"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        han = han_characters(text)
        if len(han) < max(2, 0.3 * sum(1 for ch in text if ord(ch) > 127)):
            continue
        share = sum(1 for ch in han if ch in _COMMON_ZH) / len(han)
        # a few characters are as likely Latin letters paired by chance ("prüfen … Grüße" as GBK: 4 characters, 1
        # common; found by review): a short text must be mostly common characters
        if share >= (0.2 if len(han) >= 20 else 0.5) and (best is None or share > best[0]):
            best = (share, text)
    return best[1] if best else None


def looks_binary(text: str) -> bool:
    """Whether decoded text is really binary data: more than 5% of its start (and more than 3
    characters) neither printable nor blank (U+3000 indents Chinese paragraphs), or U+FFFD where
    bytes could not be decoded."""
    sample = text[:4000]
    odd = sum(1 for ch in sample if ch == "\ufffd" or not (ch.isprintable() or ch.isspace()))
    return odd > max(3, len(sample) * 0.05)


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 without a byte-order mark, told by its NUL bytes: an ASCII character's high byte, on
    one side of every pair (odd offsets little-endian, even ones big-endian). Such text is valid
    UTF-8 too (NUL is a character), so this comes first."""
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 4 or len(data) % 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= max(2, pairs // 20) and even * 10 <= odd:
        encoding = "utf-16-le"
    elif even >= max(2, pairs // 20) and odd * 10 <= even:
        encoding = "utf-16-be"
    else:
        return None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def decode_bytes(data: bytes) -> str:
    """Decode bytes of unknown encoding (BOM, UTF-8, then detection: GB18030/GBK, Big5, UTF-16
    without BOM, ...); raise LoadError for binary data."""
    text: str | None = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data.decode(encoding, errors="replace")
            break
    if text is None:
        text = _utf16_without_bom(data)
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _chinese_decoding(data)
        if text is None:
            from charset_normalizer import from_bytes

            found = list(from_bytes(data))
            if not found:
                raise LoadError("binary content, not text (mislabelled file?)") from None
            # Windows-1252 where it reads the text as cleanly as the best guess: short French or Portuguese read as
            # Central European came out "crčme", "reuniăo" (found by review)
            western = [m for m in found if m.encoding == "cp1252" and m.chaos <= found[0].chaos + 0.05]
            text = str(western[0] if western else found[0])
    text = _ANSI.sub("", text)  # a log's colours are no text (found by review: a coloured .log was taken for binary)
    if looks_binary(text):
        raise LoadError("binary content, not text (mislabelled file?)")
    return text


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")  # terminal codes: colours, cursor moves, titles


# codecs Python calls text encodings that no document is written in, or that decode in quadratic time (punycode:
# 133 s for a 2 KB EPUB chapter that declared it, found by review)
_NO_CHARSET = {"punycode", "idna", "raw-unicode-escape", "unicode-escape", "raw_unicode_escape", "unicode_escape"}


def text_codec(label: str) -> str | None:
    """The codec a declared charset names when it is one documents are written in: None for a label Python does not
    know, for a codec that is no charset (base64, rot13, zlib) and for those of _NO_CHARSET."""
    import codecs

    try:
        info = codecs.lookup(label.strip())
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NO_CHARSET:
        return None
    return info.name


def read_text(path: Path) -> str:
    text = decode_bytes(path.read_bytes())
    return text.replace("\r\n", "\n").replace("\r", "\n")


_SENTENCE_END = re.compile(r"[。！？!?；;，,：:.…）)」』”\"]$")


def _reads_as_title(line: str, longest: int) -> bool:
    """Short, without closing punctuation, not a list item or a table row."""
    return 0 < len(line) <= longest and not _SENTENCE_END.search(line) and not line.startswith(("-", "*", "•", "|"))


def _is_title(line: str, next_line: str) -> bool:
    """A plain-text title: a short line without closing punctuation, above a longer line."""
    line = line.strip()
    return _reads_as_title(line, 40) and len(next_line.strip()) > max(2 * len(line), 20)


def _own_title_line(lines: list[str]) -> int | None:
    """The index of a text's title line: its first line, alone in its paragraph ("Internal memo", a
    blank line, …), neither listing values nor stating something (states_something), over a longer paragraph, one that a section title heads ("Bluefin Logistics
    GmbH - Staff Handbook", a blank line, "Annual leave", its text) or one that a salutation opens
    ("关于2024年国庆节放假安排的通知", a blank line, "各部门：")."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or first + 1 >= len(lines) or lines[first + 1].strip():
        return None
    after = next((i for i in range(first + 1, len(lines)) if lines[i].strip()), None)
    if after is None:
        return None
    following = lines[after + 1] if after + 1 < len(lines) else ""
    line = lines[first].strip()
    reads_as_title = _reads_as_title(line, 60) and not _LISTS.search(line) and not states_something(line)
    salutation = lines[after].rstrip().endswith(("：", ":", ",", "，")) and len(lines[after].strip()) <= 40  # 各部门：, Dear colleagues,
    if reads_as_title and (_is_title(line, lines[after]) or salutation or _is_title(lines[after], following)):
        return first
    return None


# a first line that lists values ("name,age,city"): content, not the text's title
_LISTS = re.compile(r"[,，;；]")


def text_sections(text: str, title: str | None = None) -> Iterator[tuple[list[str], str]]:
    """Split plain text into (title_path, body) sections at title lines that head a paragraph.

    title, when given (a document's own title), is the first element of every title path."""
    base = [title] if title else []
    lines = text.split("\n")
    current_title: list[str] = []
    body: list[str] = []
    first = _own_title_line(lines) if not title else None
    if first is not None:  # the text's own title: the first part of every section's title path
        base = [lines[first].strip()]
    for i, line in enumerate(lines):
        starts_block = i == 0 or not lines[i - 1].strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if i == first:
            body.append(line)  # (kept in the text: a section holding only it is no chunk, see ingest.split)
            continue
        if starts_block and _is_title(line, nxt) and not states_something(line):  # "Refunds are paid within 14 days" is content
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
        Document(unwrap(body), {"source": source, "page": None, "title_path": path, "kind": "text"})
        for path, body in text_sections(text, title)
    ]


def load_text(path: Path, options: object) -> Iterator[Document]:
    text = read_text(path)
    if is_markdown(text):
        yield from _markdown_documents(path, text)
        return
    yield from text_documents(text, str(path))


def is_markdown(text: str) -> bool:
    """Whether a plain text is Markdown under another name: two or more "# Title" lines, each after a
    blank line or at the start (a .txt of a guide whose chapters are "## 第一章…")."""
    lines = text.split("\n")
    heads = sum(1 for i, line in enumerate(lines) if _HEADING.match(line) and (i == 0 or not lines[i - 1].strip()))
    return heads >= 2


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


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """A Markdown file's YAML front matter (title, description, and the like as text) and the rest."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(m.group(1))
    except Exception:  # noqa: BLE001  (yaml's errors, and ValueError, RecursionError of what it builds: "date: 2023-02-29")
        return {}, text  # not front matter after all: keep it as text (found by review: the whole post failed)
    if not isinstance(data, dict):
        return {}, text
    about = {str(k): str(v) for k, v in data.items() if isinstance(v, (str, int, float)) and str(k) in ("title", "description", "subject")}
    return about, text[m.end() :]


def load_markdown(path: Path, options: object) -> Iterator[Document]:
    yield from _markdown_documents(path, read_text(path))


def _markdown_documents(path: Path, text: str) -> Iterator[Document]:
    headings_only: list[str] = []
    found = False
    about, text = front_matter(text)
    if about:  # the file's own words about itself ride on its first document (see ingest.context)
        yield Document("", {"source": str(path), "page": None, "title_path": [], "kind": "text", "about": about})
    for title_path, body in markdown_sections(text):
        if not [line for line in body.split("\n") if line.strip() and not _HEADING.match(line)]:
            headings_only.append(body.strip())  # a heading with nothing under it: its title reaches the chunks below it
            continue
        found = True
        yield Document(unwrap(body), {"source": str(path), "page": None, "title_path": title_path, "kind": "text"})
    if not found and headings_only:  # an outline and nothing else: the headings are the text
        yield Document("\n".join(headings_only), {"source": str(path), "page": None, "title_path": [], "kind": "text"})
