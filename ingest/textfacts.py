"""Facts about text that every part needs, in one place: which characters are Chinese (CJK), the
language of a text, sentence and clause boundaries, content words and how much two texts share.

It lives in `ingest` because the loaders and the splitter need it and `ingest` may not import
`kbqa`; `kbqa` imports it from here. jieba and the Snowball stemmer load on first use."""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
import zlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ingest.atomic import used
from ingest.mapped import MappedTable, write_table
from ingest.once import made_once

# --- characters ----------------------------------------------------------------------------------
# Han ideographs (CJK Extension A, the Unified block, compatibility ideographs): "Chinese characters".
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Everything East Asian that is set one character per em and ~one token each: radicals, CJK
# punctuation, kana, Han, fullwidth forms. Lines of such text wrap without a space.
WIDE = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
_HAN_RE = re.compile(f"[{HAN}]")
_WIDE_RE = re.compile(f"[{WIDE}]")
_WIDE_SPANS = [(ord(WIDE[i]), ord(WIDE[i + 2])) for i in range(0, len(WIDE), 3)]  # WIDE's ranges as code points
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")


def join_wrapped_lines(block: str) -> str:
    """Join the lines a PDF wrapped inside one paragraph block: no break where either side is a CJK
    character, words re-joined at a hyphen, a space elsewhere."""
    block = block.strip()
    if "\n" not in block:  # one line (most paragraphs): nothing to join
        return block
    pieces = block.split("\n")
    parts = [pieces[0].rstrip(" \t")]
    for left, right in zip(pieces, pieces[1:]):  # each break, judged on the lines as they were
        text = right.strip(" \t")
        if len(left) > 1 and left[-1] == "-" and left[-2] in _LOWER and right[:1] in _LOWER:
            parts[-1] = parts[-1][:-1]  # hyphen-\nated: one word
            parts.append(text)
        elif text and (kept := left.rstrip(" \t")) and (_WIDE_RE.match(kept[-1]) or _WIDE_RE.match(text[0])):
            parts.append(text)  # 中文 wrapped (also "6" / "个月"): no space
        else:
            parts.append(" " + text)
    return "".join(parts)


def is_han(ch: str) -> bool:
    return bool(_HAN_RE.match(ch))


def is_wide(ch: str) -> bool:
    return bool(_WIDE_RE.match(ch))


def wide_mask(text: str) -> Any:
    """For each character of text, whether it is_wide: a numpy array of bools, made at C speed."""
    import numpy as np

    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    mask = np.zeros(len(codes), dtype=bool)
    for lo, hi in _WIDE_SPANS:
        mask |= (codes >= lo) & (codes <= hi)
    return mask


def han(text: str) -> str:
    """The Han characters of a text, in order."""
    return "".join(_HAN_RE.findall(text))


def language(text: str) -> str:
    """'zh' when over a fifth of the letters are Han characters (or there are no letters), else 'en'."""
    letters = sum(1 for ch in text if ch.isalpha())
    if not letters:
        return "zh"
    return "zh" if len(_HAN_RE.findall(text)) / letters > 0.2 else "en"


def approx_tokens(text: str) -> int:
    """A safe over-estimate of a text's tokens when no tokenizer is at hand: a wide character ~1
    token, any other ~1/3."""
    wide = len(_WIDE_RE.findall(text))
    return wide + (len(text) - wide) // 3 + 1


# --- sentences ------------------------------------------------------------------------------------
CLOSERS = "”’\"')）」』》】"
# the end of a sentence: Chinese or English end punctuation (an English full stop only before a space),
# with any closing quotes and brackets after it
SENTENCE_END = re.compile(rf"(?:[。！？!?；;…]+|\.(?=\s))[{CLOSERS}]*")
CLAUSE_END = re.compile(r"[，,、：:]")
_NOT_PROSE = re.compile(r"^\s*(#{1,6}\s|\|?[-: |]+\|?\s*$)")  # a Markdown heading or table rule


def ends_a_clause(text: str) -> bool:
    """Whether a text ends the way a sentence or a clause does (。！？；… . , 、 ：), closing quotes aside."""
    tail = text.rstrip().rstrip(CLOSERS)
    return bool(tail) and (SENTENCE_END.match(tail[-1] + " ") is not None or CLAUSE_END.match(tail[-1]) is not None)


_NUMBER = re.compile(r"^[(\[$€£¥+\-−–]*\d[\d.,]*%?[)\]]*[,;:]?$")
_YEAR_ONLY = re.compile(r"^[(\[]?(?:19|20)\d\d[)\]]?[,;:]?$")


def is_amount(word: str) -> bool:
    """A figure that is not a year alone: "4,755,785.11", "-16.55%", "(1,234)"; not "2022" or "(2021)"."""
    return _NUMBER.match(word) is not None and _YEAR_ONLY.match(word) is None


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")

# a page-number line with its digits written as "#": "#", "- # -", "page # of #", "第#页 共#页", "iv"
PAGE_NUMBER = re.compile(r"^[ivxlc]{1,7}$|^#\s*[-–]\s*#$|^(page\s*)?[-–—(\[]?\s*#\s*([/of]+\s*#)?\s*[-–—)\]]?$|^第\s*#\s*页(\s*[/，,]?\s*共\s*#\s*页)?$", re.I)


# A line that states something: a verb of being, duty or time ("Refunds are paid within 14 days",
# "会议室密码是8823", "退款期限为7个工作日"). Such a line is content even where it stands like a heading; a
# heading in question form ("What is covered", "Can I work from home", "我们是谁") states nothing, nor does a
# noun phrase with a number ("Your first 30 days", "入职3个月内", "七天内无理由退货").
_STATEMENT = re.compile(
    r"\b(?:is|are|was|were|will|must|shall|should|can|may|has|have|had|be|been|do|does|did)\b|是|为\d|必须|应当|应该|将于",
    re.I,
)
ASKING_ZH = "什么|如何|怎么|怎样|哪|谁|几|多少|多久|何时|是否|吗|呢"  # the words a Chinese question asks with
_QUESTION_FORM = re.compile(
    r"^\W*(?:what|who|whom|whose|how|when|where|why|which|can|could|is|are|do|does|did|should|will|would|may|must|has|have)\b"
    f"|{ASKING_ZH}", re.I)


def states_something(line: str) -> bool:
    """Whether a short line says something (see _STATEMENT) rather than naming a part of the text."""
    return bool(_STATEMENT.search(line)) and not _QUESTION_FORM.search(line)


def is_page_number(line: str) -> bool:
    """A line that is a bare page number: "3", "- 3 -", "Page 3 of 10", "第3页 共10页", "iv"."""
    return PAGE_NUMBER.match(re.sub(r"\d+", "#", " ".join(line.lower().split()))) is not None


def is_numeric(text: str) -> bool:
    """Mostly numbers: at least 3 in 10 of its words (a table, or a table read as text)."""
    words = text.split()
    return len(words) >= 8 and sum(1 for w in words if _NUMBER.match(w)) / len(words) >= 0.3


def labels(text: str) -> str:
    """A table's words without its figures: row and column labels, captions and years stay, amounts
    go. What a mostly-numeric chunk is embedded as: figures mean little to an embedder and crowd
    the labels out of its tokens (BM25 still indexes every figure)."""
    out = []
    for line in text.split("\n"):
        kept = [w for w in line.split() if not _NUMBER.match(w) or _YEAR_ONLY.match(w)]
        kept = [w for w in kept if w not in ("$", "%", "|", "—", "–", "-")]
        if kept:
            out.append(" ".join(kept))
    return "\n".join(out)


TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_EMPTY_CELLS = re.compile(r"\|(?:[ \t]*\|)+")


def meaningful(text: str) -> str:
    """A text as it should be embedded: Markdown table rules dropped, runs of empty cells and
    padding squeezed to one separator (they cost tokens and say nothing). The stored text keeps them."""
    if "|" not in text:
        return text
    lines = []
    for line in text.split("\n"):
        if TABLE_RULE.match(line):
            continue
        if line.lstrip().startswith("|"):
            line = " ".join(_EMPTY_CELLS.sub("|", line).split()).strip("| ")
        lines.append(line)
    return "\n".join(lines)


# a dot that ends an abbreviation, not a sentence: an initialism ("U.S.C.", "e.g."), before a word
# that does not start with a capital ("11 U.S.C. § 1302"); a title or a reference word, always ("Dr. Li", "No. 5")
_INITIALISM = re.compile(r"(?<![\w.])(?:[A-Za-z]\.){2,}$")
_ABBREVIATION = re.compile(r"(?<![\w.])(?:Mr|Mrs|Ms|Dr|Prof|St|No|Nos|Fig|Figs|Sec|Art|Vol|vs|pp|cf|al)\.$")
# a name's initial ("Samuel W. Soule", "sold to E. Remington"): one capital and its dot before a name,
# not before a word that begins sentences ("…in Appendix B. The next…", "vitamin C. It…")
_INITIAL = re.compile(r"(?<![\w.])[A-Z]\.$")
_NAME_AFTER = re.compile(r"\s*([A-Z][a-z]+|[A-Z]\.)")
_STARTS_SENTENCES = frozenset(
    "A An And After All Also Although Another Any As At Because Before Both But By Each Either Every For From He Her Here "
    "His How However I If In Instead It Its Later Many Most My No Not Now Of On One Only Or Other Our Over Since So Some Such "
    "That The Their Then There These They This Those Though Thus To Under Unlike Until We What When Where Whether Which While Who "
    "Why With Within Yet You Your".split())


def _ends_a_sentence(text: str, end: int) -> bool:
    """Whether the dot before `end` (a dot and space) ends a sentence."""
    before = text[max(0, end - 12) : end]
    if _ABBREVIATION.search(before):
        return False
    if _INITIAL.search(before):
        name = _NAME_AFTER.match(text, end)
        if name and name.group(1) not in _STARTS_SENTENCES:
            return False
    after = text[end:].lstrip()[:1]
    return not (_INITIALISM.search(before) and after and not after.isupper())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: ends at end punctuation or a line break; spans cover the text.
    A Markdown table row is one sentence whatever its cells say ("| 3 | 萌新求教…CPU？ | 把.cuda()去掉就行 |"),
    and an abbreviation's dot ends none (_ends_a_sentence)."""
    spans, start = [], 0
    for m in re.finditer(rf"{SENTENCE_END.pattern}|\n", text):
        if m.group() != "\n":
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            line = text[line_start : len(text) if line_end < 0 else line_end].strip()
            if line.startswith("|") and line.endswith("|") and len(line) > 1:
                continue  # inside a table row
            if m.group().startswith(".") and not _ends_a_sentence(text, m.start() + 1):
                continue
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def sentences(text: str) -> list[str]:
    """The sentences of a passage, stripped, without Markdown headings, table rules or one-character bits."""
    return [s for s, _ in paragraph_sentences(text)]


def paragraph_sentences(text: str) -> list[tuple[str, bool]]:
    """sentences(text), each with whether it begins a paragraph (the passage's first, or after a blank line)."""
    out = []
    for a, b in sentence_spans(text):
        s = text[a:b].strip()
        if len(s) > 1 and not _NOT_PROSE.match(s):
            out.append((s, not out or "\n\n" in text[max(0, a - 2) : a + (len(text[a:b]) - len(text[a:b].lstrip()))]))
    return out


# --- words ----------------------------------------------------------------------------------------
WORD = re.compile(rf"[\w{HAN}]+", re.UNICODE)
# a word with inner dots, as jieba keeps it: a version, a decimal or a code ("3.11", "x.25", "v2.0",
# "4.2"); its parts alone would say less
DOTTED = re.compile(r"\w+(?:\.\w+)+", re.UNICODE)


def word_of(token: str) -> str:
    """A jieba token as the word kbqa keeps, or "": lower case; letters, digits and Han, or such runs
    joined by dots. (A percentage as jieba cuts it, "20%", is no word: indexed as "20" it made "more
    than 20% of revenue" match every 20 in a filing, and financebench lost a page.)"""
    token = token.strip().lower()
    return token if WORD.fullmatch(token) or DOTTED.fullmatch(token) else ""


_ASCII_WORD = re.compile(r"[a-z]+")
STOP_WORDS = frozenset(
    "的 了 是 在 和 与 及 或 也 都 就 而 之 其 这 那 有 为 以 于 对 从 把 被 让 吗 呢 吧 啊 么 什么 哪 哪些 哪个 怎么 怎样 如何 多少 几 谁 "
    "a an the of to in on at for by with is are was were be been being do does did what which who whom whose when where why how "
    "and or not no it its this that these those as from into than then there their they them he she his her you your i we our "
    "me my him us am has have had having can could would should will shall may might must about above after again against all "
    "any because before below between both during each few further here if just more most nor only other over own same so some "
    "such through too under until up very while out off once s t also many much one".split()
)


# words that ask rather than say: left out when a question is compared with a passage (not from BM25 queries)
QUESTION_WORDS = frozenset(
    "多久 多长 多大 多高 多远 多重 多少钱 多长时间 哪里 哪儿 哪一 哪年 哪天 哪位 哪种 什么 什么样 什么时候 何时 何地 何处 为什么 为何 "
    "是否 能否 可否 几天 几年 几个 几种 请问 一下 呢 吗 哪家 哪国 哪些人 谁是 "
    "whom whose which what when where why how does did do".split()
) | frozenset(  # ... and words that only frame a question (修建的那座堡垒叫什么名字 asks about 修建 and 堡垒)
    "叫 叫做 名字 名称 称作 做 用 们 里 曾 曾经 被 给 该 此 这位 这些 这种 这个 这首 这座 这次 这项 那个 那些 那座 那位 "
    "通常 一般 可以 能够 能 会 应该 如果 还是 或者 人们 有人 某些 一些 其中 之一 "
    "call name known".split()
)


# ... and the asking phrases cut out before a question is compared: 哪一年, 几个月, 多少人, 什么样, 的定义
_ASKING = re.compile(r"(?:哪一?|几|多少)[年月日天周个位种次家国所条项座件名人样些类部本首台]|为?什么(?:时候|时间|地方|样)?|的?定义")


# Lookups served from the mapped dictionary before the whole dictionary is loaded: about as long as
# the load itself takes (a mapped lookup costs ~1.5 us, a dict one ~0.1 us; the load ~0.5 s).
MAPPED_LOOKUPS = 300_000


@made_once()
def _jieba() -> Any:
    """jieba, its prefix dictionary read from a memory-mapped table when one was written before (a
    question is cut in a millisecond, not after half a second of unmarshalling); a long text (an
    ingest) loads the whole dictionary after MAPPED_LOOKUPS lookups. The same words either way."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.dt
    path = _mapped_dictionary_path(tokenizer)
    if path is not None and path.is_file():
        try:
            table = MappedTable(path, MAPPED_LOOKUPS, lambda: _load_whole_dictionary(tokenizer))
        except (OSError, ValueError):
            table = None
        if table is not None:
            with tokenizer.lock:
                tokenizer.FREQ, tokenizer.total, tokenizer.initialized = table, table.extra, True
            used(path, "kbqa-jieba-*.map")
            return jieba
    jieba.initialize()
    if path is not None:
        try:
            write_table(path, tokenizer.FREQ.items(), tokenizer.total)
            used(path, "kbqa-jieba-*.map")
        except OSError:
            pass  # a read-only temp folder: the next command loads the dictionary as this one did
    return jieba


def dictionary_tags(words: Iterable[str]) -> dict[str, str]:
    """jieba's part-of-speech tags of the words its dictionary holds ("n", "nr", "v", "r", …), read from
    its dictionary file for these words only (jieba.posseg keeps the whole table: 350,000 words), each
    word's once a process (a word the dictionary lacks: no tag)."""
    wanted = set(words)
    if wanted - _TAGS.keys():
        if len(_TAGS) > 100_000:  # (questions of made-up words do not grow it for good)
            _TAGS.clear()
        _TAGS.update(_read_tags(wanted - _TAGS.keys()))
    return {w: tag for w in wanted if (tag := _TAGS.get(w))}


_TAGS: dict[str, str] = {}  # (at most a few words a question, and only of questions with an unknown qualifier)


def _read_tags(wanted: set[str]) -> dict[str, str]:
    import jieba

    out = dict.fromkeys(wanted, "")
    try:
        with jieba.dt.get_dict_file() as f:
            for raw in f:
                line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                word, _, rest = line.partition(" ")
                if word in wanted:
                    out[word] = rest.split()[-1] if len(rest.split()) > 1 else ""
    except OSError:
        pass
    return out


def _mapped_dictionary_path(tokenizer: Any) -> Path | None:
    """Beside jieba's own cache (the temp folder), named by jieba's version and dictionary file."""
    import tempfile

    import jieba

    try:
        with tokenizer.get_dict_file() as f:
            dictionary = Path(f.name)
        stat = dictionary.stat()
    except (OSError, AttributeError):
        return None
    key = f"{jieba.__version__}|{dictionary}|{stat.st_size}|{stat.st_mtime_ns}"
    return Path(tempfile.gettempdir()) / f"kbqa-jieba-{zlib.crc32(key.encode()):08x}.map"


def _load_whole_dictionary(tokenizer: Any) -> None:
    with tokenizer.lock:
        tokenizer.initialized = False
    tokenizer.initialize()  # later lookups go to the dict it loads


_THREAD = threading.local()


def _stemmer() -> Any:
    """This thread's Snowball stemmer: one shared by two threads fails ("string index out of range",
    CI: two requests building the dictionary of kbqa.bilingual at once)."""
    found = getattr(_THREAD, "stemmer", None)
    if found is None:
        import snowballstemmer

        found = _THREAD.stemmer = snowballstemmer.stemmer("english")
    return found


def without_diacritics(word: str) -> str:
    """A word as the FTS5 tables' unicode61 tokenizer (remove_diacritics 2) holds it: "zürich" as "zurich"."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """An English word's Snowball stem, a Latin word's with an accent without it ("maizière" as "maiziere":
    the index's FTS5 drops accents, and "Maiziere" was stemmed "maizier" while the accented word was
    kept whole, so they never met); any other word as it is."""
    if not _ASCII_WORD.fullmatch(word):
        if word.isascii() or not _LATIN_RUN.fullmatch(word):
            return word
        plain = without_diacritics(word)
        if not _ASCII_WORD.fullmatch(plain):
            return word
        word = plain
    return str(_stemmer().stemWord(word))


# jieba cuts a text block by block, each block alone: a run of these characters (its re_han_default),
# or what lies between two runs. A short block's words are kept: English words and numbers repeat,
# and jieba looks every one of them up letter by letter (11 ms a chunk of an English filing).
_JIEBA_BLOCK = re.compile("([\u4E00-\u9FD5a-zA-Z0-9+#&\\._%\\-]+)")
_SHORT_BLOCK = 24


# a word of Latin letters with an accent ("Zürich", "Nestlé", "São"): one word, which jieba cuts at the accent ("z", "ü", "rich")
_LATIN_RUN = re.compile("[A-Za-z0-9\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F]+")  # (no backtracking: linear in a long run)


# full-width letters and digits ("ＡＢＣ科技", "１９７９年", as Chinese text often writes them) read as the
# ordinary ones: jieba cut them into one word a character, so "ABC" or "1979" never met them (full-width
# punctuation stays: it ends Chinese clauses)
_HALF_WIDTH = {c: c - 0xFEE0 for r in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A)) for c in range(r[0], r[1] + 1)}


def half_width(text: str) -> str:
    """The text with full-width letters and digits as the ordinary ones ("ＩＮＩＴＥＣＨ" as "INITECH")."""
    return text if text.isascii() else text.translate(_HALF_WIDTH)


def words(text: str) -> list[str]:
    """Lower-case words: jieba's search-mode words for Chinese (overlapping), runs of letters and digits
    (an accented Latin word whole; full-width ones as the ordinary ones)."""
    out: list[str] = []
    text = half_width(text)
    at = 0
    if not text.isascii():
        for run in _LATIN_RUN.finditer(text):
            if not run.group().isascii():
                out += _jieba_words(text[at:run.start()])
                out.append(run.group().lower())
                at = run.end()
    return out + _jieba_words(text[at:])


def _jieba_words(text: str) -> list[str]:
    out: list[str] = []
    for block in _JIEBA_BLOCK.split(text):
        if block:
            out += _short_block_words(block) if len(block) <= _SHORT_BLOCK else _block_words(block)
    return out


def _block_words(block: str) -> list[str]:
    out: list[str] = []
    for token in _jieba().cut_for_search(block):
        word = word_of(token)
        if word:
            out.append(word)
    return out


@lru_cache(maxsize=100_000)
def _short_block_words(block: str) -> tuple[str, ...]:
    return tuple(_block_words(block))


def content_words(text: str) -> list[str]:
    """Distinct stemmed words without stop words, in order of appearance."""
    seen: dict[str, None] = {}
    for token in words(text):
        if token not in STOP_WORDS:
            seen[stem(token)] = None
    return list(seen)


def question_words(question: str) -> list[str]:
    """A question's content words, as the lexical index has them, without words that only ask."""
    return [w for w in content_words(question) if w not in QUESTION_WORDS]


def substantive_words(question: str) -> list[str]:
    """The question's words that say what it is about: its content words without asking words and
    without short bare numbers ("1", "12?" ask about nothing; "8021", "3.11", "400-820-1234" are
    codes, versions and numbers a document may hold)."""
    return [w for w in question_words(question) if not (re.fullmatch(r"[\d.,:%/-]+", w) and sum(c.isdigit() for c in w) < 3)]


def terms(text: str) -> set[str]:
    """What two texts are compared by: content words (no question words) plus the pairs of adjacent
    Han characters inside them (robust to how jieba happens to cut a phrase)."""
    found = {w for w in content_words(_ASKING.sub(" ", text)) if w not in QUESTION_WORDS}
    pairs = {w[i : i + 2] for w in found if len(w) > 2 and len(han(w)) == len(w) for i in range(len(w) - 1)}
    return found | pairs


def term_weight(term: str) -> float:
    """Longer terms say more: a Han pair or short word 1.6, a long word up to 2.2."""
    return 1.0 + 0.3 * min(len(term), 4)


def coverage(wanted: Iterable[str], found: set[str], weights: dict[str, float] | None = None) -> float:
    """The weighted share of the wanted words that are found (0..1; 1 when nothing is wanted). A word
    counts once with the terms inside it (word_units): found whole, it counts fully; else as far as
    its longest piece found reaches (米尔 of 克什米尔: half)."""
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return 1.0
    w = weights or {}
    total = got = 0.0
    for whole, parts in word_units(tuple(wanted)):
        weight = w.get(whole, term_weight(whole))
        total += weight
        if whole in found:
            got += weight
        else:
            pieces = [len(p) for p in parts if p in found]
            got += weight * max(pieces) / len(whole) if pieces else 0.0
    return got / total if total else 1.0


@lru_cache(maxsize=4096)
def word_units(wanted: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """The wanted terms grouped into words: each term inside no longer one (克什米尔), with the
    terms inside it (克什, 什米, 米尔): a long name counts once, not once per piece."""
    longest = sorted(wanted, key=lambda t: (-len(t), t))
    units: list[tuple[str, list[str]]] = []
    for t in longest:
        home = next((u for u in units if t in u[0]), None)
        if home is None:
            units.append((t, []))
        else:
            home[1].append(t)
    return [(whole, tuple(parts)) for whole, parts in units]


def idf_weights(wanted: Iterable[str], texts: list[set[str]]) -> dict[str, float]:
    """A weight per wanted term: longer and rarer among the texts counts more."""
    n = len(texts)
    return {t: math.log(1 + (n + 1) / (1 + sum(1 for s in texts if t in s))) * term_weight(t) for t in wanted}


def near_spelling(word: str, vocabulary: Iterable[str]) -> str | None:
    """A word of vocabulary that word is a misspelling of (maastrich → maastricht, septicemia →
    septicaemia, typewritt → typewrit): letters only, at least 5 of them, one edit away (two from 9
    letters; an edit: a letter added, dropped, changed, or two neighbours swapped) and the same first
    letter. None when there is no such word or more than one at the least distance. (Two edits from 6
    letters, which would take "Ghandi" to Gandhi, told answerable from unanswerable questions worse on
    XQuAD-en: benchmarks/refusal.py.)"""
    if len(word) < 5 or not word.isascii() or not word.isalpha():
        return None
    limit = 2 if len(word) >= 9 else 1
    best: list[str] = []
    least = limit + 1
    for other in vocabulary:
        if other == word or other[:1] != word[:1] or abs(len(other) - len(word)) > limit or not other.isascii() or not other.isalpha():
            continue
        d = _edits(word, other, limit + 1)  # exact up to limit
        if d > limit:
            continue
        if d < least:
            best, least = [other], d
        elif d == least:
            best.append(other)
    return best[0] if len(best) == 1 else None


def _edits(a: str, b: str, stop: int) -> int:
    """Optimal string alignment distance of a and b; any value >= stop once it is known to be at least that."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) >= stop:
            return stop
        prev2, prev = prev, row
    return prev[-1]
