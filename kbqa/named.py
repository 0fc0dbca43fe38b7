"""The documents a question names, and the documents of another company than the one it names.

A question that names a document ("the KX-200 manual", 员工手册, "Microsoft … Q2 2023") names the
files whose descriptions hold its name words (retrieval.named_documents prefers their sources); the
answer pipeline reads here which sources those are (`named_sources`), which named documents are
named only by words a better-named one holds (`lesser_named_by`), which documents are another
company's (`another_companys`: 紫金集团员工手册 for "蓝海集团的病假有几天？"), which sources name another
product or company than the asked one (`without_other_names`), and how the question writes a name.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.textfacts import STOP_WORDS, dictionary_tags, half_width, language, question_words, stem, terms
from kbqa.types import Hit


@dataclass
class Named:
    """The documents a question (as searched) names, as retrieval prefers them (retrieval.named_documents:
    file id -> the places of the question's name words it holds), each source's file id, and the named
    documents' descriptions."""

    files: dict[int, frozenset[int]] = field(default_factory=dict)
    sources: list[int | None] = field(default_factory=list)
    descriptions: dict[int, str] = field(default_factory=dict)
    distinct: frozenset[int] = frozenset()  # the places of the name words no other company's document holds (蓝海 of 蓝海集团, not 集团)
    others: frozenset[int] = frozenset()  # another company's documents (another_companys): 紫金集团员工手册 for "蓝海集团的病假有几天？"


def named_sources(catalog: Any, query: str, hits: list[Hit]) -> Named:
    """What the question names (Named); nothing when it names none. A document named only by words
    another named one holds too, without a rarer word that one holds (lesser_named_by), counts as not
    named: 紫金集团员工手册, named with 蓝海集团员工手册 by 集团 and 员工 of "蓝海集团员工的病假有几天？"
    (half of what 蓝海集团's holds), whose 十二天 was quoted for 蓝海集团."""
    from kbqa.retrieval import named_documents
    from kbqa.store.tokenize import name_tokens, name_words

    words = catalog.named_words(query) if hits else {}
    named = named_documents(catalog, query, words) if words else {}
    if not named:
        return Named()
    lesser = lesser_named_by(named, words)
    named = {f: places for f, places in named.items() if f not in lesser}
    rows = catalog.chunks([h.chunk_id for h in hits])
    described = {f: row.description if (row := catalog.file_by_id(f)) is not None else "" for f in named}
    tokens = functools.cache(lambda f: name_tokens(described[f]) if f in described else description_tokens(catalog, f))
    sources = [rows[h.chunk_id].file_id if h.chunk_id in rows else None for h in hits]

    def description(f: int) -> str:
        row = catalog.file_by_id(f) if f not in described else None
        return described[f] if f in described else (row.description if row is not None else "")

    kin = getattr(catalog, "described_with", None)
    others = another_companys(query, named, words, tokens) | other_organisations(query, named, sources, description, kin)
    places = set().union(*named.values())
    held = set().union(*(tokens(f) for f in others))  # (the 集团 of 紫金集团员工手册)
    shared = {p for p, w in enumerate(name_words(query)) if stem(w) in held}
    return Named(named, sources, described, frozenset(places - shared or places), others)


def lesser_named_by(named: dict[int, frozenset[int]], words: dict[int, dict[int, float]]) -> set[int]:
    """The named documents whose name words another named document holds all of, with one rarer than
    any of theirs (its weight, Catalog.named_words): 紫金集团员工手册 ({集团, 员工}) beside 蓝海集团员工手册
    ({蓝海, 集团, 员工}), 员工手册（2023版） beside 员工手册（2024版） for "2024版员工手册…", "Nordic Bank" beside
    "Acme Bank"; not "Globex benefits summary" ({Globex}) beside "Globex Industries staff handbook", whose
    "Industries" is no rarer than "Globex" (Initech Industries holds it)."""
    out = set()
    for f in named:
        mine = words.get(f, {})
        for g in named:
            theirs = words.get(g, {})
            if g != f and mine.keys() < theirs.keys() and max(theirs[p] for p in theirs.keys() - mine.keys()) > max(mine.values(), default=0.0):
                out.add(f)
                break
    return out


def another_companys(
    query: str, named: dict[int, frozenset[int]], words: dict[int, dict[int, float]], tokens: Callable[[int], list[str]]
) -> frozenset[int]:
    """The documents of another company than the one the question names: whose description holds a later
    word of the name (集团 of 蓝海集团, "Bank" of "Acme Bank") after a word of its own, and not the name's
    first word (紫金集团员工手册, "Nordic Bank handbook"); not 集团福利说明 (a company's own "group benefits")
    nor "Globex benefits summary" for "Globex Industries" (its first word), nor 病假管理办法 (病假 is no part
    of the name). A name starts at each run of a named document's words in the question and goes on with
    the words written right after it (of Chinese, only those a named document holds: 规定 of
    "蓝海集团规定…" is no part of it): "员工的病假，蓝海集团规定几天？" names 蓝海集团 (it named only 员工,
    the handbook's first word in the question, and 紫金集团's sick leave was quoted). tokens(file id): its
    description's name tokens (description_tokens)."""
    from kbqa.store.tokenize import name_words

    asked = name_words(query)
    lowered, stems = query.lower(), {stem(w) for w in asked}
    follows = [i + 1 < len(asked) and _follows(lowered, asked[i], asked[i + 1]) for i in range(len(asked))]
    held = set().union(*(tokens(f) for f in named))
    names = set()  # each name's first word and the words written right after it ("Acme Bank", 蓝海集团)
    for places in named.values():
        for first in places:
            if first > 0 and first - 1 in places and follows[first - 1]:
                continue  # within a run that starts before
            run = [first]
            while follows[run[-1]] and (asked[run[-1] + 1].isascii() or stem(asked[run[-1] + 1]) in held):
                run.append(run[-1] + 1)
            if len(run) > 1:
                names.add((stem(asked[first]), frozenset(stem(asked[p]) for p in run[1:])))
    out = set()
    for f in words if names else {}:  # (read in their descriptions: `words` leaves out a long run's 集团 that 紫金集团 holds)
        if f in named:
            continue
        theirs = tokens(f)
        for first, later in names:
            if first not in theirs and any(t in later and i > 0 and theirs[i - 1] not in STOP_WORDS and theirs[i - 1] not in stems
                                           for i, t in enumerate(theirs)):
                out.add(f)
    return frozenset(out)


def other_organisations(
    query: str, named: dict[int, frozenset[int]], sources: list[int | None], description: Callable[[int], str],
    described_with: Callable[[list[str]], dict[int, str]] | None = None,
) -> frozenset[int]:
    """The sources' documents of another organisation than the one the question writes by its name alone:
    "What is the probation period at Acme?" names Acme Corporation's handbook by "Acme", and Globex
    Industries' handbook, whose probation sentence was quoted for it, is another's; so is Globex's for
    "蓝海集团的试用期是多久？" (found by review). A document is another organisation's when its description
    names one (organisations) that the question does not write, while the question writes one that a
    named document's description names. (another_companys reads a name the question writes with its
    organisation's word: "Acme Bank".) A named document whose description starts with the word that named
    it, a name of its own (_a_name), is that name's too, with no company's word after it ("Northwind Travel
    Policy" for "Northwind的员工年假有几天？": 云杉科技员工手册's annual leave was quoted for Northwind, found by
    review; not "Engineering Department Guide").
    description(file id): its description; described_with(name tokens): other documents whose descriptions hold them
    (Catalog.described_with), where a document's kin is looked for (trade_names)."""
    from kbqa.store.tokenize import name_tokens, name_words

    asked = set(name_tokens(query))
    lang = language(query)
    words = name_words(query)
    owned = {w for f, places in named.items() for w in name_tokens(description(f))[:1]
             if _a_name(w) and any(p < len(words) and stem(words[p]) == w for p in places)}
    if not (set().union(*(organisations(description(f), lang) for f in named)) | owned) & asked:
        return frozenset()
    kin = trade_names({f: description(f) for f in {*sources, *named} if f is not None}, described_with)
    return frozenset(f for f in set(sources) - named.keys()
                     if f is not None and (theirs := organisations(description(f), lang) | kin.get(f, set())) and not theirs & asked)


def _a_name(word: str) -> bool:
    """Whether a description's first word is a name of its own (Northwind), not an English word (Engineering of
    "Engineering Department Guide", whose company's handbook was set aside as another's: found by review) nor a
    Chinese one (研发 of 研发中心工作规范): a Latin word no CC-CEDICT gloss uses."""
    from kbqa.bilingual import glossed_by

    return word.isascii() and word.isalpha() and word not in STOP_WORDS and len(word) > 2 and word not in (glossed_by() or {})


# a trade's word after a Chinese company's name (青松物流): an organisation only beside a kin document (trade_names)
_TRADE_WORDS = frozenset("物流 电子 软件 网络 地产 置业 实业 贸易 商贸 传媒 医药 制药 能源 电力 汽车 食品 航空 通信 控股 投资 证券 保险 "
                         "环保 化工 电器 机械 建设 物业 餐饮 零售 百货 文化 教育 咨询 银行".split())


def trade_names(descriptions: dict[int, str], described_with: Callable[[list[str]], dict[int, str]] | None = None) -> dict[int, set[str]]:
    """The organisations Chinese descriptions name by a trade's word (_TRADE_WORDS) rather than a
    company's, read only where two documents are of one kind and two names: 青松物流员工手册 beside
    云杉科技员工手册 (the same words after two names that share no word, each ending in a company's or a
    trade's word) names 青松 (found by review: its annual leave was quoted for "Northwind的员工年假…");
    not 跨境物流操作手册 beside 仓储管理操作手册 (仓储管理 is no name) nor beside 国内物流操作手册 (物流 in both). The kin
    are looked for among the descriptions given, and with described_with(tail) among the knowledge base's others."""
    heads, tails = _heads_and_tails(descriptions)
    if described_with is not None:
        more = {g: text for tail in set(tails.values()) for g, text in described_with(list(tail)).items() if g not in descriptions}
        found = _heads_and_tails(more)
        heads, tails = {**found[0], **heads}, {**found[1], **tails}
    out: dict[int, set[str]] = {}
    for f in descriptions:
        if f in heads and any(g != f and tails[g] == tails[f] and not set(heads[g]) & set(heads[f]) for g in heads):
            out[f] = set(heads[f][:-1])
    return out


def _heads_and_tails(descriptions: dict[int, str]) -> tuple[dict[int, list[str]], dict[int, tuple[str, ...]]]:
    """Of each Chinese description that starts with a name and a company's or a trade's word (青松 物流 | 员工 手册), the
    name tokens with that word, and the tokens after it."""
    from kbqa.store.tokenize import name_tokens

    heads: dict[int, list[str]] = {}
    tails: dict[int, tuple[str, ...]] = {}
    for f, text in descriptions.items():
        words = name_tokens(text)
        k = next((i for i in range(1, min(len(words), 4)) if words[i] in _TRADE_WORDS | _COMPANY_WORDS), 0)
        if k and not words[0].isascii() and len(words[0]) > 1 and words[0] not in STOP_WORDS and k + 1 < len(words):
            heads[f], tails[f] = words[:k + 1], tuple(words[k + 1:])
    return heads, tails


# a company's word after its name, at the start of a description's part: "Globex Industries Employee Handbook",
# 星河科技员工手册, 蓝海集团员工手册 (not "Sales Group Commission Plan", 本公司保密协议, 上海分公司, "Holiday Company Party":
# found by review); an institution's ("Peking University Library Rules", 北京大学…) only in the question's language, which
# writes its name as the question does or not at all (北京大学 is Peking University)
_COMPANY_WORDS = frozenset(stem(w) for w in "corporation corp inc incorporated ltd limited llc plc gmbh industries holdings".split()) \
    | frozenset(("集团", "科技", "公司", "有限公司", "股份有限公司"))
_INSTITUTION_WORDS = frozenset(stem(w) for w in "bank university college hospital institute foundation".split()) | frozenset(
    ("银行", "大学", "学院", "医院", "研究院", "研究所", "基金会"))


def organisations(description: str, lang: str) -> set[str]:
    """The organisations a document's description names, for a question in language `lang`: the first word
    of a part of it when the next is a company's word (_COMPANY_WORDS) — globex of "Globex Industries
    Employee Handbook", 星河 of 星河科技员工手册 — or, in a part of that language, an institution's."""
    from ingest.context import PART_SEPARATOR
    from kbqa.store.tokenize import name_tokens

    out = set()
    for part in description.split(PART_SEPARATOR):
        words = name_tokens(part)
        if len(words) < 2 or words[0] in STOP_WORDS or (not words[0].isascii() and len(words[0]) < 2):
            continue
        said = lambda w: w in _COMPANY_WORDS or (w in _INSTITUTION_WORDS and language(part) == lang)  # noqa: E731
        # the company's word after the name: the second token, or for a Chinese name of several tokens (阿里 巴巴 阿里巴巴
        # 集团, 字节 跳动 科技) the first that follows the name's pieces, which spell the start of the part
        k = 1 if said(words[1]) or words[0].isascii() else next((i for i in range(2, min(len(words), 4)) if said(words[i])), 0)
        if not k or not said(words[k]):
            continue
        pieces = words[:k]
        whole = _name_of_tokens(pieces)
        if k > 1 and not (not any(w.isascii() for w in pieces) and len(whole) <= 6 and re.sub(r"^[\W\d_]+", "", part).startswith(whole)):
            continue  # (a Chinese name of several tokens must spell the part's start, and be no longer than a name is)
        if k + 1 < len(words) and words[k] in words[k + 1] and words[k + 1] != whole + words[k]:
            continue  # the word is part of a longer one that follows it, as the tokens give it: 公司 of 子公司, 分公司, 科技 of 科技部
        out.update(pieces)
    return out


def _name_of_tokens(pieces: list[str]) -> str:
    """A name from its tokens: jieba's pieces then the whole (阿里 巴巴 阿里巴巴: the longest, which holds the others),
    or pieces side by side (字节 跳动)."""
    longest = max(pieces, key=len)
    return longest if all(p in longest for p in pieces) else "".join(pieces)


def description_tokens(catalog: Any, file_id: int) -> list[str]:
    """A document's description as name tokens (kbqa.store.tokenize.name_tokens), in order."""
    from kbqa.store.tokenize import name_tokens

    row = catalog.file_by_id(file_id)
    return name_tokens(row.description) if row is not None else []


def _follows(lowered: str, a: str, b: str) -> bool:
    """Whether word b is written right after word a in the (lowercased) question: 蓝海集团, "acme bank"."""
    return re.search(rf"{re.escape(a)}\s?{re.escape(b)}", lowered) is not None


def others_of(query: str, hits: list[Hit], found: Named) -> frozenset[int]:
    """The chunk ids of the sources of another company's documents (Named.others) whose passages do not
    name the asked one either (unnamed_sources): no evidence for it."""
    unnamed = unnamed_sources(query, hits, found)
    return frozenset(h.chunk_id for n, (h, f) in enumerate(zip(hits, found.sources), start=1) if n in unnamed and f in found.others)


def unnamed_sources(query: str, hits: list[Hit], found: Named) -> frozenset[int]:
    """The sources (numbered from 1) whose documents the question does not name (named_sources), nor
    their passages the name, when it names the document of another source: "How many days of annual
    leave do Globex employees get?" names Globex's handbook by its description, and Acme's "Employees
    receive 25 days…", ranked second, says another company's; a warranty policy's "The Nimbus AX-300
    is covered…" is about the AX-300 its manual's description names. A passage names them by a name word that no
    other company's document holds (Named.distinct): 紫金集团's "紫金集团员工…" does not name 蓝海集团 by their
    shared 集团 (found by review: its sick leave was quoted for "蓝海集团的病假有几天？")."""
    from kbqa.store.tokenize import name_terms, name_tokens

    named, files = found.files, found.sources
    if not named:
        return frozenset()
    places = found.distinct or set().union(*named.values())
    names = {t for t, positions in name_terms(query) if places & set(positions)}  # the question's words that named them
    of_named = [f in named for f in files]
    about = [yes or bool(names & set(name_tokens(h.text))) for h, yes in zip(hits, of_named)]
    return frozenset(n for n, yes in enumerate(about, start=1) if not yes) if any(of_named) else frozenset()


def source_names(query: str, found: Named) -> dict[int, str]:
    """For a question that names two documents or more by different names ("How many days of annual
    leave do Globex and Acme employees get?", "星河科技和蓝海集团…", "the KX-200 and KX-300 pumps"):
    each of their sources (numbered from 1) with the name as the question writes it, which an answer
    says before what it quotes of that document ("Globex: Employees receive 18 days… [1] Acme:
    Employees receive 25 days… [2]": the handbooks' sentences never say whose they are). A document
    whose name words another named one holds, with more (retrieval.lesser_named: last year's
    edition), and a name the question does not write in one piece name nothing."""
    from kbqa.retrieval import lesser_named
    from kbqa.store.tokenize import name_words

    named, files = found.files, found.sources
    lesser = lesser_named(named)
    places = {words for f, words in named.items() if f not in lesser}
    if len(places) < 2:
        return {}
    words = name_words(query)
    spans = {p: name_span(query, [words[i] for i in sorted(p) if i < len(words)]) for p in places}
    if any(span is None for span in spans.values()):
        return {}
    ordered = sorted(span for span in spans.values() if span is not None)
    if not all(COORDINATED.fullmatch(query[a[1]:b[0]]) for a, b in zip(ordered, ordered[1:])):
        return {}  # "Bluefin新员工的试用期…" names Bluefin's policy, and 员工 a 员工手册: one name is asked about, not two
    written = {p: query[span[0]:span[1]] for p, span in spans.items() if span is not None}
    # each name's one document (another's facts under the same name would read as that document's): of
    # the sources' documents it names, the one whose description says it first ("Acme Corporation", not
    # "Umbrella Ltd, formerly an Acme subsidiary", ranked above it), then the first source's
    shown = [f for f in dict.fromkeys(files) if f in named and f not in lesser]

    def says_first(f: int) -> int:
        at = found.descriptions.get(f, "").lower().find(written[named[f]].lower())
        return at if at >= 0 else 1 << 30

    chosen = {}
    for f in sorted(shown, key=lambda f: (says_first(f), shown.index(f))):
        chosen.setdefault(written[named[f]], f)
    return {n: written[named[f]] for n, f in enumerate(files, start=1) if f is not None and chosen.get(written.get(named.get(f, frozenset()), "")) == f}


# what stands between names the question asks about together: "Globex and Acme", "KX-200, KX-300 or
# the KX-500", "星河科技和蓝海集团", "Acme还是Globex"
COORDINATED = re.compile(r"\s*(?:,|，|、|/|&|\band\b|\bor\b|\bvs\.?|\bversus\b|和|与|及|以及|跟|同|还是|或者|或)\s*(?:(?:and|or)\s+)?(?:the\s+)?", re.I)


def name_as_written(question: str, words: list[str]) -> str:
    """The piece of the question that holds all the words (lower case) side by side, as written, with
    the rest of a Latin word or code they are part of ("KX-200" for kx and 200, or for 200 alone;
    "蓝海集团" for 蓝海 and 集团); "" when they are apart."""
    span = name_span(question, words)
    return question[span[0]:span[1]] if span else ""


def name_span(question: str, words: list[str]) -> tuple[int, int] | None:
    """Where name_as_written finds the words side by side in the question (start, end), or None."""
    low = question.lower()
    spans = sorted((m.start(), m.end()) for w in words for m in re.finditer(re.escape(w), low)) if words else []
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + 1 and low[merged[-1][1]:start].strip(" -") == "":
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    for a, b in merged:
        if all(w in low[a:b] for w in words):
            while a > 0 and _NAME_CHAR.match(question[a - 1]):  # the whole of a code the words are part of: "KX-200" for 200
                a -= 1
            while b < len(question) and _NAME_CHAR.match(question[b]):
                b += 1
            return a, b
    return None


_NAME_CHAR = re.compile(r"[A-Za-z0-9-]")


def names_a_file(catalog: Any, text: str) -> bool:
    """Whether a text names a file by its file name (see without_other_names)."""
    return bool(_named_by_file_name(catalog, text))


def _named_by_file_name(catalog: Any, text: str) -> dict[int, set[str]]:
    """The files a text names by their file names (of those Catalog.named_files finds, as retrieval
    prefers them): each with its file name's name tokens. A heading in a description names no file
    here: "婚假呢？" does not name the one handbook with a 婚假 heading."""
    from kbqa.store.tokenize import name_terms, name_tokens

    asked = {t for t, _ in name_terms(text)}
    out = {}
    for file_id in catalog.named_files(text):
        row = catalog.file_by_id(file_id)
        words = set(name_tokens(Path(row.name).stem)) if row is not None else set()
        if words & asked:
            out[file_id] = words
    return out


def without_other_names(catalog: Any, question: str, query: str, naming: str | None = None) -> str:
    """A follow-up's search (the earlier question and the follow-up: "蓝鲸数据的试用期是多久？ 那星河科技呢？")
    without the earlier question's words that name another file, by its file name, than the follow-up
    names: a first-hour review's "那星河科技呢？" searched 蓝鲸数据's handbook only, and was refused. A
    follow-up that names no file by its name, or the one the earlier question names, keeps its search,
    and so does a word of the other file's name that the follow-up's file holds too. naming: the
    earlier follow-up within the search that names the file instead of the question ("那蓝海集团呢？" of
    "星河科技的年假有几天？ 那蓝海集团呢？ 差旅报销呢？"): the words before it are read so."""
    from kbqa.store.tokenize import name_terms

    if query == question or not query.endswith(question):
        return query
    if naming is not None:
        at = query.rfind(naming, 0, len(query) - len(question))
        if at <= 0:
            return query
        question = query[at:]
    earlier = query[: len(query) - len(question)]
    mine = _named_by_file_name(catalog, naming if naming is not None else question)
    theirs = _named_by_file_name(catalog, earlier) if mine else {}
    if not theirs or theirs.keys() & mine.keys():
        return query
    other = {t for t, _ in name_terms(earlier)} & (set().union(*theirs.values()) - set().union(*mine.values()))
    # a word the follow-up's file says too is the topic, not the other file's name ("parental leave"
    # of globex_parental_leave_policy.md, asked of Acme's handbook)
    other = {t for t in other if not catalog.lexical_search(t, 1, file_ids=list(mine))}
    spans = [m.span() for m in re.finditer(r"[A-Za-z0-9]+", earlier) if stem(m.group().lower()) in other]
    for t in other:
        if not t.isascii() and len(t) > 1:  # (a lone character is no name)
            spans += [(m.start(), m.end()) for m in re.finditer(re.escape(t), earlier)]
    names = [_flat_name(f"{row.name} {row.description}") for row in map(catalog.file_by_id, theirs) if row is not None]
    cut = {i for a, b in spans for i in range(*_whole_name(earlier, a, b, names))}
    kept = "".join(ch for i, ch in enumerate(earlier) if i not in cut)
    return " ".join(f"{kept} {question}".split())


_NAME_UNIT = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


def _flat_name(text: str) -> str:
    return " ".join(re.sub(r"[_\W]+", " ", text).lower().split())


def _whole_name(text: str, start: int, end: int, names: list[str]) -> tuple[int, int]:
    """The span of the whole name that text[start:end] is a word of, as the other file's name or
    description writes it: "Bluefin" of "…at Bluefin Logistics give?" is "Bluefin Logistics", 蓝海 of
    蓝海云 is 蓝海云 (a name cut to its first word left "Logistics" and 云 to search)."""
    units = [m.span() for m in _NAME_UNIT.finditer(text)]
    first = next((i for i, (a, _) in enumerate(units) if a >= start), None)
    last = max((i for i, (_, b) in enumerate(units) if b <= end), default=None)
    if first is None or last is None or last < first:
        return start, end
    held = lambda i, j: any(_flat_name(text[units[i][0] : units[j][1]]) in n for n in names)  # noqa: E731
    while first > 0 and held(first - 1, last):
        first -= 1
    while last + 1 < len(units) and held(first, last + 1):
        last += 1
    return units[first][0], units[last][1]


# --- names the knowledge base never holds ---------------------------------------------------------
_LATIN = "A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F"
_LATIN_WORD = re.compile(f"(?:[{_LATIN}]['’])?[{_LATIN}][{_LATIN}0-9]*")  # (with an O' or a D': "O'Malley")
MOST_UNMENTIONED = 8  # names looked up in a question: a question of hundreds of names is no question of names
LONGEST_NAME = 40  # characters: a longer run of letters is no name to quote
# where a sentence starts: the question's start, a sentence's end, a dash between clauses; then perhaps a quote
_SENTENCE_START = re.compile(r"(?:^|[.!?。！？:：;；]|\s[-–—])\s*[\"“‘'(（\[]?\s*$")
# a word before a full stop that does not end a sentence: "vs. Initech", "St. Louis", "Mr. O'Brien"
_ABBREVIATED = re.compile(r"\b(?:vs|etc|e\.g|i\.e|approx|incl|no|st|mt|mr|mrs|ms|dr|prof|jr|sr|inc|ltd|co|corp|dept)\.\s*$", re.I)
# words a question capitalises that name nothing the documents must: greetings and thanks ("…, Thanks?",
# "OK?"), titles and a company's legal form ("Mr", "St", "Corp", "Corporation": "Acme Corporation" of a question
# over "Acme Corp"'s handbook was noted as never mentioned — found by review), months and days ("in January", "on Fridays": a time, not whose or which thing)
_NOT_NAMES = frozenset(stem(w) for w in (
    "ok okay thanks thank thx hi hello hey please pls dear sorry cheers mr mrs ms dr prof sir madam st mt inc ltd co corp llc plc "
    "gmbh corporation incorporated limited company january february march "
    "april may june july august september october november december monday tuesday wednesday thursday friday saturday sunday").split())
# jieba's dictionary tags of a Chinese proper name: a person's, a place's, an organisation's, another (宏达)
_PROPER_TAG = re.compile(r"n[rstz]")
_NOUN_TAG = re.compile(r"n|j")  # a noun, a name, an abbreviation (研发), or a word jieba does not know
# what a Chinese name qualifies when it names an organisation or a part of one (紫金集团, 星河科技, 技术部)
_HEADS = tuple(sorted(("集团", "公司", "分公司", "子公司", "科技", "银行", "大学", "学院", "医院", "中心", "部", "部门", "总部", "研究院",
                       "研究所", "工厂", "厂", "门店", "办公室", "事务所", "基金会", "协会", "学校", "中学", "小学", "政府", "委员会",
                       "股份"), key=len, reverse=True))  # (the longest first: 总部 is one, not 总 + 部)
_ASKING = re.compile("[哪什谁几怎]|多少")  # 哪支, 哪首: a question word with its measure word
_JOINS = re.compile("[和与及跟同在对向从把被给的了是那这]")  # a word cut with the word before a name: 和威尔 of 莱恩和威尔, 那紫金 of 那紫金集团呢


def unmentioned(catalog: Any, question: str, sources: list[Hit]) -> list[str]:
    """The names the question writes that no chunk of the knowledge base holds — not in any text,
    title or description, nor in the sources found — as the question writes them: "Initech" of "How
    many days of annual leave do Initech employees get?" over handbooks of Acme and Globex, 紫金集团 of
    "紫金集团员工的年假有几天？" over 蓝海集团's and 星河科技's. The answer says so before what the documents
    say of others (they answered both with another company's figures, and said nothing of it).

    A name is a Latin word written with a capital or a digit inside a sentence, or wholly in capitals
    or with a capital inside ("INITECH", "InGen", "O'Malley"): a capitalised first word of a sentence
    ("Vacation days at Globex?", "Quick question - Vacation days?"; "vs." and "St." end none), a
    courtesy ("Thanks", "OK"), a title ("Mr"), a legal form ("Corporation"), a month and a day of the week are none here, but any
    Latin word of a Chinese question is; names side by side are one ("Burger King"). A Chinese word is
    a name when it names an organisation or a part of one — it ends with, or comes right before, a word
    such as 集团, 公司, 大学 or 部 (华为公司, 紫金集团, 北京大学, 技术部) — or jieba's dictionary tags it a
    proper name (华为, 宏达); a common word before another (武器 of 武器制造商, 全职 of 全职员工) is none.
    Held: a word the documents write in two pieces or glued ("Wifi" for "Wi-Fi", "Tshirt" for "T-shirt",
    "KX-200" for "KX200"), in full-width letters (ＩＮＩＴＥＣＨ: see ingest.textfacts.half_width), and a
    Chinese word inside a longer one of the documents (销售部 of 销售部门; the embedded store's catalog
    only)."""
    from kbqa.store.tokenize import name_words

    question = half_width(unicodedata.normalize("NFC", question))
    names = name_words(question)
    latin, glued = _latin_names(question, names)
    han = _chinese_candidates(question, names)
    if not latin and not han:
        return []
    _, df = catalog.document_frequencies(list(dict.fromkeys([stem(w) for w in [*latin, *glued.values(), *han]])))
    held = lambda w: df.get(stem(w), 0) > 0  # noqa: E731  (a Chinese word is its own stem)
    found: list[tuple[int, int, str]] = []  # (start, end, as written) of each name not held
    for low, (written, a, b) in latin.items():
        if not (held(low) or held(glued.get(low, low)) or _held_in_two(catalog, low) or _held_in_chinese(catalog, _run_of(question, a, b))):
            found.append((a, b, written))
    found += _chinese_names(question, names, han, held)
    shown = half_width("\n".join(f"{h.file}\n{h.context}\n{' '.join(h.title_path)}\n{h.text}" for h in sources)).lower()
    flat = re.sub(r"[\W_]+", "", shown)
    out: list[tuple[int, int, str]] = []
    for a, b, written in sorted(found, key=lambda f: (f[0], -f[1])):
        low = written.lower()
        if (low.isascii() and re.sub(r"[\W_]+", "", low) in flat) or (not low.isascii() and (low in shown or _held_within(catalog, low) or (
                low.endswith("部门") and _held_within(catalog, low[:-1])))):  # (财务部门 of 财务部)
            continue
        if out and a < out[-1][1]:
            continue  # inside a longer name (大学 of 北京大学)
        if out and question[out[-1][1] : a] == " " and written[:1].isupper() and out[-1][2].isascii() and written.isascii():
            out[-1] = (out[-1][0], b, question[out[-1][0] : b])  # side by side: one name ("Burger King")
            continue
        out.append((a, b, written))
    return [written for _, _, written in out][:MOST_UNMENTIONED]


def _latin_names(question: str, names: list[str]) -> tuple[dict[str, tuple[str, int, int]], dict[str, str]]:
    """The question's Latin names (see unmentioned): each word looked up, in lower case, -> (as written, start, end);
    and each such word -> the code it is part of, written as one word ("kx" -> "kx200" of "KX-200")."""
    chinese = language(question) == "zh"  # (no capital starts a Chinese sentence: "Initech的年假有几天？")
    latin: dict[str, tuple[str, int, int]] = {}
    glued: dict[str, str] = {}
    for m in _LATIN_WORD.finditer(question):
        word = m.group()
        low = re.split("['’]", word.lower())[-1]  # (O'Malley is looked up as malley: words() cuts it there)
        if low not in names or low in STOP_WORDS or stem(low) in _NOT_NAMES or not 2 <= len(low) <= LONGEST_NAME:
            continue
        before = question[: m.start()]
        inside = any(ch.isupper() for ch in word[1:]) or any(ch.isdigit() for ch in word)
        if inside or chinese or (word[0].isupper() and (not _SENTENCE_START.search(before) or _ABBREVIATED.search(before))):
            latin.setdefault(low, (word, m.start(), m.end()))
            a, b = name_span(question, [low]) or m.span()
            if (code := re.sub(r"[\W_]+", "", question[a:b]).lower()) != low:
                glued[low] = code
            if len(latin) == MOST_UNMENTIONED:
                break
    return latin, glued


def _chinese_candidates(question: str, names: list[str]) -> list[str]:
    """The question's Chinese words that may be names (see unmentioned): not 几天 or 多少, which ask and name nothing."""
    asked = set(question_words(question))
    return [w for w in names if not w.isascii() and len(w) > 1 and w in asked and not _ASKING.search(w)][:3 * MOST_UNMENTIONED]


@functools.lru_cache(maxsize=1024)
def proper_name_terms(question: str) -> frozenset[str]:
    """The words (ingest.textfacts.terms) of the names the question writes, by unmentioned's rules but whether
    the knowledge base holds them or not: its Latin names ("Acme", "KX-200") and its Chinese organisations'
    names (蓝海集团, 技术部). (Read by each pass over an answer's evidence: computed once per question.)"""
    from kbqa.store.tokenize import name_words

    question = half_width(unicodedata.normalize("NFC", question))
    names = name_words(question)
    latin, _ = _latin_names(question, names)
    found = [question[slice(*(name_span(question, [low]) or (a, b)))] for low, (_, a, b) in latin.items()]  # (a code whole: KX-200)
    found += [written for _, _, written in _chinese_names(question, names, _chinese_candidates(question, names), lambda w: False)
              if not written.isascii()]
    return frozenset(terms(" ".join(found)))


def _chinese_names(question: str, names: list[str], han: list[str], held: Callable[[str], bool]) -> list[tuple[int, int, str]]:
    """The question's Chinese names the knowledge base does not hold (see unmentioned), each as
    (start, end, as written): an organisation's (华为公司, 紫金集团: the unheld nouns before its word, with
    it; a bare 公司 is none), or a proper name jieba's dictionary knows (华为) before a word the knowledge
    base holds (华为员工) or anywhere in a question of another language ("Do 华为 employees…")."""
    from kbqa.store.tokenize import name_runs

    spans = sorted({(a, b, names[i]) for run in name_runs(question) for i, (a, b) in run.items()})
    unheld = [(a, b, w) for a, b, w in spans if w in han and not held(w) and not _JOINS.match(w)]
    if not unheld:
        return []
    tags = dictionary_tags(w for _, _, w in unheld)
    noun = lambda w: _NOUN_TAG.match(tags.get(w) or "n") is not None  # noqa: E731  (not 创立 of 创立公司, 我们 of 我们公司)
    followed = {a for a, _, w in spans if held(w)}
    alone = language(question) != "zh"
    out = []
    for a, b, w in unheld:
        head = next((h for h in _HEADS if question.startswith(h, b)), None)
        if noun(w) and (w.endswith(_HEADS) or head):
            end = b + len(head) if head and not w.endswith(_HEADS) else b
            start = a
            while (before := next((s for s, e, x in unheld if e == start and noun(x)), None)) is not None:
                start = before  # with the unheld nouns right before it: 研发中心 of 研发 + 中心
            if not _only_heads(question[start:end]):  # (a bare 公司 or 集团公司 names none)
                out.append((start, end, question[start:end]))
        elif _PROPER_TAG.match(tags.get(w, "")) and (alone or b in followed):
            out.append((a, b, w))
    return out


def _only_heads(name: str) -> bool:
    while name and (head := next((h for h in _HEADS if name.endswith(h)), None)):
        name = name[: -len(head)]
    return not name


def _held_in_two(catalog: Any, word: str) -> bool:
    """Whether the knowledge base writes the word as two words side by side ("wi fi" for "wifi", "t shirt")."""
    splits = [f"{stem(word[:i])} {stem(word[i:])}" for i in range(1, min(len(word), 24))]  # (as indexed: "e commerc")
    if not splits:
        return False
    _, df = catalog.document_frequencies(splits)
    return any(n > 0 for n in df.values())


CHINESE_WAYS = 64  # at most this many Chinese words a Latin name is looked up as (_held_in_chinese)


def _held_in_chinese(catalog: Any, name: str) -> bool:
    """Whether the knowledge base writes a Latin name (one word, or capitalised words side by side) as a Chinese
    word glossed by all its words (CC-CEDICT, kbqa.bilingual): "New York" as 纽约 (found by review: "What is
    Northwind's hotel limit in New York?" over a Chinese policy giving 纽约's was told the documents never mention
    "New York")."""
    from kbqa.bilingual import gloss_terms, glossed_by, glosses, named

    reverse, read = glossed_by() or {}, glosses() or {}
    asked = gloss_terms(name)
    ways: set[str] | None = None
    for w in asked:
        ways = set(reverse.get(w, ())) if ways is None else ways & set(reverse.get(w, ()))
    # (a word glossed by the whole name: 纽约 is "New York", not "York")
    ways = {c for c in ways or () if any(gloss_terms(named(g, c)) == asked for g in read.get(c, "").split("/"))}
    if not ways:
        return False
    _, df = catalog.document_frequencies(sorted(ways)[:CHINESE_WAYS])
    return any(n > 0 for n in df.values())


def _run_of(question: str, a: int, b: int) -> str:
    """The capitalised Latin words side by side around question[a:b]: "New York" around "New"."""
    for m in re.finditer(r"[A-Z][\w'’-]*(?: [A-Z][\w'’-]*)*", question):
        if m.start() <= a and b <= m.end():
            return m.group()
    return question[a:b]


def _held_within(catalog: Any, word: str) -> bool:
    """Whether a word of the knowledge base holds the word (销售部门 holds 销售部: jieba cuts a document's
    and a question's text apart); a store without a word list holds none."""
    within = getattr(catalog, "holds_within", None)
    return bool(within is not None and within(word))
