"""What a document says about itself, in one line: the context every one of its chunks carries.

A filing's page 37 rarely repeats the company's name; an HR handbook's leave rules never say whose
handbook they are. So each document gets a short description at ingest, built from:

1. what the user wrote for it (`kbqa.yaml` beside the file or in a folder above it, or the
   Markdown front matter's title/description),
2. the file's own title and subject (PDF metadata, Office core properties, HTML <title>) and a Word
   document's page headers, unless they are a bare ID or a tool's default ("Microsoft Word -
   draft.docx", "PowerPoint Presentation", "Slide 1"),
3. the file name (words only: "AMCOR_2023Q2_10Q.pdf" -> "AMCOR 2023Q2 10Q"),
4. the first page's title block (its headings; a text without pages: its top-level title; a page
   without headings: its first line, when that line reads as a title) and the first date printed on
   the first page.

kbqa embeds and BM25-indexes every chunk with this description in front; the stored and shown
text stays the chunk itself. A sidecar `kbqa.yaml`::

    description: Acme Corp HR documents          # every file in this folder and below
    files:
      handbook.pdf: Acme Corp employee handbook, 2024 edition   # one file
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ingest.textfacts import MONTHS, ends_a_clause
from ingest.types import Document, LoadError

SIDECAR = "kbqa.yaml"
MAX_CHARS = 240  # the description's length limit: about 60 tokens of every chunk's 512
MAX_SIDECAR_BYTES = 256_000  # a kbqa.yaml larger than this is refused unread (YAML is read at ~0.5 MB/s)
_LETTER = re.compile(r"[^\W\d_]")
_TOOL_TITLE = re.compile(r"^\s*(microsoft (word|excel|powerpoint)\s*-\s*|untitled\b|document\d*\b)", re.IGNORECASE)
# a title that is an Office template's or a tool's default, whole: python-pptx's "PowerPoint Presentation", "Slide 1"
_DEFAULT_TITLE = re.compile(r"(?:(?:microsoft )?(?:powerpoint|word|excel) )?(?:presentation|演示文稿|document|文档|workbook|工作簿|book|sheet|"
                            r"title slide|slide|幻灯片|title|subject|标题|主题)\s*\d*|新建\s*(?:microsoft\s*)?\S*\s*(?:文档|演示文稿|工作表)\s*\d*",
                            re.IGNORECASE)
_EXTENSION = re.compile(r"\.(docx?|xlsx?|pptx?|pdf|txt|md|html?|indd|qxd)\s*$", re.IGNORECASE)
MAX_TITLE = 80  # a first line longer than this is body text run together, not a title
MAX_HEADING = 200  # a heading the loader marked (a paper's title runs to 100 characters and more)
PART_SEPARATOR = " — "  # between a description's parts (its title, name, title block, date)
_MONTHS = "|".join(MONTHS)
_DATE = re.compile(
    rf"\b(?:{_MONTHS})\s+\d{{1,2}},?\s+(?:19|20)\d\d\b"  # March 31, 2023
    r"|\b(?:19|20)\d\d-\d\d-\d\d\b"  # 2023-03-31
    r"|(?:19|20)\d\d\s*年(?:\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?)?"  # 2023年3月31日
)


def _words(text: str) -> int:
    """How many words of two or more letters a text holds (a CJK run counts as one)."""
    return sum(1 for w in re.findall(r"[^\W\d_]{2,}", text))


def clean_title(title: str | None) -> str:
    """A file's own title, or "" when it says nothing: an ID, a tool's default, a path."""
    title = " ".join(str(title or "").split())
    title = _EXTENSION.sub("", _TOOL_TITLE.sub("", title)).strip(" -_")
    looks_like_a_path = title.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:\\", title) is not None
    looks_like_a_file_name = " " not in title and ("_" in title or "." in title)
    if _words(title) < 1 or len(title) > 200 or looks_like_a_path or looks_like_a_file_name or _DEFAULT_TITLE.fullmatch(title):
        return ""
    return title


def name_words(filename: str) -> str:
    """A file name as words: the stem with separators turned into spaces, but for the dot of a version
    or a code ("manual_v2.1" -> "manual v2.1"); "" when it has no letters."""
    stem = Path(filename).stem
    words = " ".join(re.sub(r"[_+~]+|(?<![0-9A-Za-z])\.+|\.+(?!\d)", " ", stem).split())
    return words if _LETTER.search(words) else ""


def title_line(text: str) -> str:
    """A page's first line when it reads as a title: short, with words, not a sentence or a list
    item ("星河科技员工手册", "PepsiCo Reports First-Quarter 2023 Results"); "" otherwise. For pages whose
    title is set in body size, so the loader marked no heading."""
    line = " ".join(next((ln for ln in text.split("\n") if ln.strip()), "").split())
    if not line or len(line) > MAX_TITLE or _words(line) < 1 or ends_a_clause(line):
        return ""
    return line


def first_date(text: str) -> str:
    m = _DATE.search(text)
    return " ".join(m.group(0).split()) if m else ""


def describe(docs: list[Document], filename: str | None = None, given: str = "") -> str:
    """The document's description: what the user gave, its own title, its name, its title block."""
    first = docs[0].meta if docs else {}
    about: dict[str, Any] = dict(first.get("about") or {})
    parts = [given, about.get("description", "")]
    parts += [clean_title(about.get("title")), clean_title(about.get("subject")), clean_title(about.get("header"))]
    if filename:
        parts.append(name_words(filename))
    first_page = first.get("page")
    heads: list[str] = []
    if first_page is not None:  # the first page's title block (its headings)
        for doc in docs[:12]:
            if doc.meta.get("page") != first_page:
                break
            heads += [t for t in doc.meta.get("title_path") or [] if t not in heads and len(t) <= MAX_HEADING]
    else:  # a text's top-level title: the one its sections' title paths all begin with, or its first section's (not
        # the headings of the sections after it)
        roots = {tuple(d.meta.get("title_path") or [])[:1] for d in docs if d.meta.get("title_path")}
        opening = next((d.meta.get("title_path") or [] for d in docs if d.text.strip()), [])
        top = next(iter(roots))[0] if len(roots) == 1 else opening[0] if opening else ""
        heads += [top] if top and len(top) <= MAX_HEADING else []
    page_text = "\n".join(d.text for d in docs[:12] if d.meta.get("page") == first_page)
    if not heads and first_page is not None:  # a title in body size: the first line, if it reads as one
        heads.append(title_line(page_text))
    parts += heads[:3]
    parts.append(first_date(page_text[:4000]) if first_page is not None else "")
    kept: list[tuple[str, str]] = []  # (part, its letters and digits in lower case)
    for part in parts:
        part = " ".join(str(part or "").split())
        key = re.sub(r"\W+", "", part).lower()
        if not key or any(key in k for _, k in kept):
            continue
        kept = [(p, k) for p, k in kept if k not in key] + [(part, key)]  # a longer part replaces one it holds
    text = PART_SEPARATOR.join(p for p, _ in kept)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1].rstrip() + "…"


def _read_sidecar(path: Path) -> dict[str, Any]:
    """A kbqa.yaml's mapping. Refused with LoadError: one over MAX_SIDECAR_BYTES, one using YAML
    aliases (a few hundred bytes of nested aliases expand to gigabytes once read as text: an
    uploaded zip could take a server's memory), one YAML cannot read (also: nested too deep, a number
    of thousands of digits), and descriptions that are not text. Read once per version of the file
    (it describes every file of its folder and the folders below)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise LoadError(f"{path}: not a readable {SIDECAR} ({exc.__class__.__name__}); fix or remove it") from None
    if stat.st_size > MAX_SIDECAR_BYTES:
        raise LoadError(f"{path}: {SIDECAR} is larger than {MAX_SIDECAR_BYTES:,} bytes; keep it to descriptions")
    parsed = _parsed_sidecar(str(path), stat.st_mtime_ns, stat.st_size)
    if isinstance(parsed, str):
        raise LoadError(parsed)
    return parsed


@functools.lru_cache(maxsize=64)
def _parsed_sidecar(name: str, mtime_ns: int, size: int) -> dict[str, Any] | str:
    """The mapping, or why it is refused (a refusal is remembered too)."""
    try:
        return _parse_sidecar(Path(name))
    except LoadError as exc:
        return str(exc)


def _parse_sidecar(path: Path) -> dict[str, Any]:
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise LoadError(f"{path}: {SIDECAR} uses a YAML alias (*name, line {self.peek_event().start_mark.line + 1}); "
                                "write each description out")
            return super().compose_node(parent, index)

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=NoAliases) or {}  # noqa: S506  (a SafeLoader)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001  (yaml's errors, and RecursionError, ValueError of what it builds)
        raise LoadError(f"{path}: not a readable {SIDECAR} ({exc.__class__.__name__}); fix or remove it") from None
    files = data.get("files", {}) if isinstance(data, dict) else []
    if not isinstance(files, dict | None) or not all(_text_or_none(v) for v in [data.get("description"), *(files or {}).values()]):
        raise LoadError(f"{path}: {SIDECAR} holds a mapping with 'description' and 'files' (name: description), "
                        "each description one piece of text")
    return data


def _text_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def sidecar_description(path: Path, root: Path | None = None) -> str:
    """What `kbqa.yaml` files say about a file: each folder's `description` from root down to the
    file's folder, then the file's own entry under `files:` of its folder's kbqa.yaml."""
    path = Path(path)
    folders = [path.parent]
    if root is not None:
        root = Path(root)
        while folders[-1] != root and root in folders[-1].parents:
            folders.append(folders[-1].parent)
    parts: list[str] = []
    for folder in reversed(folders):
        sidecar = folder / SIDECAR
        if not sidecar.is_file():
            continue
        data = _read_sidecar(sidecar)
        parts.append(str(data.get("description") or ""))
        if folder == path.parent:
            parts.append(str((data.get("files") or {}).get(path.name) or ""))
    return " — ".join(" ".join(p.split()) for p in parts if p.strip())
