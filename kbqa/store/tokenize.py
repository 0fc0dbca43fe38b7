"""Tokens for the lexical (BM25) index: jieba search-mode words for Chinese, Snowball-stemmed
lower-case words for English (the words themselves come from ingest.textfacts). Bump VERSION when
the output changes: catalogs re-tokenize."""

from __future__ import annotations

import re

from ingest.textfacts import DOTTED, HAN, content_words, stem, words

VERSION = "9"


def tokens(text: str) -> list[str]:
    """Index tokens: every word (stop words too: they cost little and phrase queries keep working)."""
    return [stem(t) for t in words(text)]


def index_words(description: str, title_path: list[str], text: str) -> str:
    """What BM25 indexes for a chunk, in either store: its document's description, its title path and
    its text, as index tokens joined by spaces."""
    return " ".join(tokens(f"{description}\n{' '.join(title_path)}\n{text}"))


def query_tokens(text: str) -> list[str]:
    """Distinct query words without stop words."""
    return content_words(text)


_YEAR = re.compile(r"(?:19|20)\d\d")


def _year_parts(word: str) -> list[str]:
    """For a word that glues a year to letters ("fy2018", "2023q2"): the year and the rest."""
    m = _YEAR.search(word)
    if not (m and len(word) > 4 and any(ch.isalpha() for ch in word)):
        return []
    return [m.group(0)] + [rest for rest in (word[: m.start()], word[m.end() :]) if len(rest) >= 2]


def name_tokens(text: str) -> list[str]:
    """A document description's tokens for matching questions to it: its index tokens, the year and
    the rest of a word that glues them, so "Q2 of fiscal 2023" meets "AMCOR_2023Q2_10Q", and the
    parts of a word joined by dots ("2023.06": 2023 and 06)."""
    out: list[str] = []
    for word in tokens(text):
        parts = word.split(".") if "." in word else []  # "2023.06" also names 2023, as FTS5 reads it
        out += [word, *_year_parts(word), *parts]
    return out


_CASED = re.compile(rf"[^\W_{HAN}]+|[{HAN}]+")  # a Chinese run apart: "Bluefin新员工的…" holds the name "Bluefin"
_HAN_RUN = re.compile(f"[{HAN}]")


def _is_name(word: str) -> bool:
    """A word that can name something in English: it has a capital or a digit ("Best", "3M", "KX",
    "FY2018", "Q2"), unlike "state" or "margin"; any Chinese word can."""
    return any(ch.isupper() or ch.isdigit() for ch in word) or not word.isascii()


def _is_dotted_name(word: str) -> bool:
    """A version or a code joined by dots ("2.1", "x.25", "v3.0"): it names something."""
    return DOTTED.fullmatch(word) is not None and any(ch.isdigit() for ch in word)


def name_words(question: str) -> list[str]:
    """The question's words that can name a document (see name_terms), in the order name_terms numbers them."""
    cased = {w.lower() for w in _CASED.findall(question) if _is_name(w)}
    wanted = set(query_tokens(question))
    return [w for w in dict.fromkeys(words(question)) if (w in cased or not w.isascii() or _is_dotted_name(w)) and stem(w) in wanted]


# words that join two names rather than belong to one (和, 与, 及 are stop words, never name words)
JOINING = frozenset("还是 或者 或是 以及 跟 同 对比 相比 比较".split())


def name_runs(question: str) -> list[dict[int, tuple[int, int]]]:
    """The question's runs of Chinese name words that touch in its text, each as {position in
    name_terms: (start, end) in the question}: "哈尔滨电气国际工程有限责任公司" is one run of 哈尔滨, 电气,
    国际, 工程, 有限, 责任, 有限责任, 公司 -- one name, which a description holding only its 电气, 有限
    and 公司 ("东北电气发展股份有限公司") does not name (see named_file_words). A joining word (JOINING) ends
    a run: "星河科技还是蓝海集团" is two names (it was one, and 蓝海集团's handbook was named by no run's half)."""
    lowered = question.lower()
    spans = sorted((start, start + len(w), i) for i, w in enumerate(name_words(question))
                   if not w.isascii() and w not in JOINING and (start := lowered.find(w)) >= 0)
    runs: list[dict[int, tuple[int, int]]] = []
    end = -1
    for start, stop, i in spans:
        if start > end or not runs:
            runs.append({})
        runs[-1][i] = (start, stop)
        end = max(end, stop) if start <= end else stop
    return runs


def name_terms(question: str) -> list[tuple[str, tuple[int, ...]]]:
    """The tokens of a question that may name a document, each with the positions of the question's
    name words it stands for: every content word that can be a name (see _is_name) and the year and
    rest of one that glues them (one position), and two neighbouring English names glued together as
    a file name writes them ("Best Buy" -> "bestbuy": two positions). A name found in two forms
    counts once (see Catalog.named_files)."""
    names = name_words(question)
    out: list[tuple[str, tuple[int, ...]]] = []
    for i, word in enumerate(names):
        out += [(t, (i,)) for t in [stem(word), *_year_parts(stem(word))]]
    position = {w: i for i, w in enumerate(names)}
    raw = _CASED.findall(question)
    for a, b in zip(raw, raw[1:]):
        if a.isalpha() and b.isalpha() and _is_name(a) and _is_name(b) and not (_HAN_RUN.match(a) or _HAN_RUN.match(b)):
            covers = tuple(position[w.lower()] for w in (a, b) if w.lower() in position)
            out.append((stem((a + b).lower()), covers or (len(names),)))
    return out
