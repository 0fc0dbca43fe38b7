"""What a question names that its sources must hold: a year, a month, a code, a version, a floor, a
kind of a thing (病假, "sick leave", "part-time").

Each check says when the sources speak of another one than the asked (another year, another code of
the same letters, another kind of the same thing), so that the answer pipeline caps its confidence
(`answer.YEAR_NOT_HELD`) instead of answering with another period's or another kind's figure, or
leaves such sentences out of the evidence (`without_other_kinds`).
"""

from __future__ import annotations

import re

from ingest.textfacts import MONTHS, STOP_WORDS, han, question_words, stem
from kbqa.codes import CODE, YEAR, about_other_code, codes, floors, holds_code, holds_version, plan_floors, versions
from kbqa.evidence import Evidence, Sentence
from kbqa.named import COORDINATED
from kbqa.types import Hit


def kind_said(kind: str, texts: list[str]) -> bool:
    """Whether texts of the other language say a kind the question names: 病假 by "sick leave", "sick
    leave" by 病假 (CC-CEDICT)."""
    from kbqa.bilingual import kind_words, kinds_in_english

    if kind.isascii():
        m, h = (stem(w.lower()) for w in kind.split())
        return any(w in t for w in kind_words().get((m, h), ()) for t in texts)
    held = [{stem(w.lower()) for w in _LATIN.findall(t)} for t in texts]
    return any(m in t and h in t for m, h in kinds_in_english(kind) for t in held)


def other_kind_said(kind: str, quoted: str) -> bool:
    """Whether a sentence of the other language names another kind of the thing a question's kind is:
    "List price" (标价) for 售价, 年假 for "sick leave" (病假)."""
    from kbqa.bilingual import kind_words, kinds_in_english, other_kinds

    if kind.isascii():
        asked = kind_words().get(tuple(stem(w.lower()) for w in kind.split()), frozenset())  # type: ignore[arg-type]
        return any(names_another_kind(w, quoted) for w in asked)
    words = [stem(w.lower()) for w in _LATIN.findall(quoted)]
    theirs = {pair: kind_words().get(pair, frozenset()) for pair in zip(words, words[1:])}
    return any(other_kinds({kind}, found) and _another_kind(kinds_in_english(kind), {pair}) for pair, found in theirs.items() if found)


def without_other_kinds(query: str, evidence: Evidence, hits: list[Hit]) -> list[Sentence]:
    """The evidence's sentences but those that name another kind of a thing the question names (年假 for
    病假, "annual leave" for "sick leave"; see names_another_kind, uncovered_compounds) from a passage
    that never says the asked kind, when a sentence that says it holds an answer of the asked type (a
    number of days): "蓝海集团员工的病假有几天？" over 蓝海集团's handbook (annual leave only) and a 请假规定
    giving 病假八天 was answered with the handbook's 年假, the named document's sentence scoring higher
    ("How many days of sick leave do Acme employees get?" with Acme's 25 days of annual leave). A text
    says a kind by its words, a table header, or its section's and document's titles (under "## 病假",
    "员工因病请假的，每年可享受带薪十天，不占用年假。" says it); a kind the question names too is no other
    kind ("年假和病假各有几天？" keeps both); a note that names the asked kind without an answer ("以上售价
    均含增值税", "List prices exclude VAT") leaves every sentence (helper 62: the price list's 单价 rows
    and "unit price of 499" were dropped for them)."""
    sentences = evidence.sentences
    if evidence.kind is None or not sentences:
        return sentences
    around = [" ".join([s.text, s.header, s.section, *hits[s.n - 1].title_path]) for s in sentences]
    kinds = [w for w in question_words(query) if _HAN_PAIR.fullmatch(w) and w[0] not in _NOT_KIND_CHARACTERS
             and any(w in text and s.typed for s, text in zip(sentences, around))]
    asked_pairs = {(stem(m.lower()), stem(h.lower())) for m, h in _PAIR.findall(query)}
    pairs = [p for p in asked_pairs if p[0] not in STOP_WORDS and p[1] not in STOP_WORDS
             and any(p in _pairs(text) and s.typed for s, text in zip(sentences, around))]
    if not kinds and not pairs:
        return sentences
    passages = {n: " ".join([h.text, h.context, *h.title_path]) for n, h in enumerate(hits, start=1)}  # each source's text, once
    heard = {n: set(_pairs(text)) for n, text in passages.items()} if pairs else {}

    def another(s: Sentence) -> bool:
        for w in kinds:
            asked = any(c + w[1] in query for c in re.findall(f"(.){re.escape(w[1])}", s.text) if c + w[1] != w)
            if w not in passages[s.n] and not asked and names_another_kind(w, s.text):
                return True
        said = [stem(w.lower()) for w in _LATIN.findall(s.text)] if pairs else []
        return any(p not in heard[s.n] and pair_names_another(p, said, asked_pairs) for p in pairs)

    # (a sentence of a passage that says the asked kind anywhere is kept: "婚假须提前三天申请。员工结婚的，可享受带薪
    # 假期十天，可与年假合并使用。" -- helper 63: the answer was dropped for its 年假, the notice rule quoted)
    return [s for s in sentences if not another(s)]


def _pairs(text: str) -> list[tuple[str, str]]:
    """A text's English words (stemmed), each with the next."""
    words = [stem(w.lower()) for w in _LATIN.findall(text)]
    return list(zip(words, words[1:]))


def not_asked_about(
    query: str, hits: list[Hit], counts: dict[str, int], best: int = 0, quoted: str = "", others: frozenset[int] = frozenset()
) -> str:
    """Why the sources, however close, speak of something other than what the question names (the
    reason a refusal gives), or "": another period, another code, another kind. best: the index of the
    source the answer quotes first; others: the chunk ids of sources whose kinds say nothing of the
    documents the question names (others_of)."""
    if uncovered_years(list(counts), hits, best) or uncovered_months(query, hits, best):
        return "period-not-covered"
    if uncovered_codes(query, hits) or uncovered_versions(query, hits) or uncovered_kinds(query, hits, best) or uncovered_floors(query, hits, best):
        return "code-not-covered"
    if uncovered_compounds(query, [h for h in hits if h.chunk_id not in others], quoted):
        return "kind-not-covered"
    return ""


def uncovered_floors(question: str, hits: list[Hit], best: int = 0) -> list[str]:
    """The floors the question names ("4th floor", 4楼) that no source holds in any form ("4F", "4th floor",
    4楼, 4层) while the quoted source names other floors ("3F printer", "5F printer"): a first-hour review's
    "What is the IP address of the 4th floor printer?" was answered with the 3F printer's."""
    asked = floors(question)
    if not asked or not hits:
        return []
    texts = [" ".join([h.text, h.context, *h.title_path]) for h in hits]
    held = set().union(*(floors(t) | plan_floors(t) for t in texts))
    others = plan_floors(texts[best])
    return sorted(f"{n}F" for n in asked if n not in held and others - {n})


_COMPOUND = re.compile(r"(?<![\w-])([a-z]{2,12})-(time|term|year|month|day|week|hour|rate|level|class|side)\b", re.I)  # "part-time"


def uncovered_kinds(question: str, hits: list[Hit], best: int = 0) -> list[str]:
    """The kinds the question names by a hyphenated compound ("part-time", "short-term") that no source
    holds in any form ("part time", "parttime") while the quoted source names another of the same head ("full-time"):
    a first-hour review's "How many days of annual leave do part-time employees get?" was answered with
    the full-time rule of a policy for full-time employees."""
    asked = {(a.lower(), b.lower()) for a, b in _COMPOUND.findall(question) if a.lower() not in _NOT_KINDS}
    if not asked or not hits:
        return []
    texts = [" ".join([h.text, h.context, *h.title_path]).lower() for h in hits]
    quoted = {(a.lower(), b.lower()) for a, b in _COMPOUND.findall(texts[best])}
    return sorted(f"{a}-{b}" for a, b in asked
                  if not any(re.search(rf"\b{a}[- ]?{b}\b", t) for t in texts) and any(h == b and m != a for m, h in quoted))


_PAIR = re.compile(r"(?<![A-Za-z])(?=([A-Za-z]{3,})\s+([A-Za-z]{3,})(?![A-Za-z]))")  # two words in a row, overlapping ("Acme的sick leave" too)


_LATIN = re.compile(r"[A-Za-z]+")


_HAN_PAIR = re.compile(r"[\u4e00-\u9fff]{2}")


_ASKING_KIND = r"(?:什么|哪[一个种些]?|何)"  # "是什么颜色？" asks for a kind: it names none ("什么病假规定", "多少病假" do)


# first characters that ask, count or point rather than name a kind (几次 and 三次 are no kinds of "times": XQuAD-zh's
# "丹佛有几次进攻被阻挡…" was refused over "…有三次都被挡在了禁区之外")
_NOT_KIND_CHARACTERS = frozenset("几多哪何啥每各该这那本此其某首全一二三四五六七八九十百千万两〇零半数")


def _another_kind(asked: set[tuple[str, str]], said: set[tuple[str, str]]) -> bool:
    """Whether two words' (modifier, head) glosses name another kind of one thing: a head in common, and
    no gloss in common (路费 and 旅费 are both "travel expenses")."""
    return not asked & said and bool({h for _, h in asked} & {h for _, h in said})


def _names_another_in_chinese(pair: tuple[str, str], whole: str, quoted: str) -> bool:
    """Whether Chinese sources say no word of an English kind (modifier, head; stemmed: CC-CEDICT's words for it,
    kbqa.bilingual.kind_words) while the quoted Chinese sentence names another kind of it: "How many days of maternity
    leave do employees get?" over a handbook giving 病假 or 陪产假 alone (found by review: answered with the sick leave)."""
    from kbqa.bilingual import kind_words

    if not _HAN_PAIR.search(quoted):
        return False
    asked = kind_words().get(pair, frozenset())
    return bool(asked) and not any(w in without_longer_kinds(w, whole) for w in asked) and any(names_another_kind(w, quoted) for w in asked)


def longer_kinds(word: str, text: str) -> list[str]:
    """The longer words of the text that end with a Chinese word of two characters and name another kind of its thing
    (CC-CEDICT's glosses, _another_kind): 陪产假 "paternity leave" for 产假 "maternity leave" (jieba cuts it 陪 / 产假:
    found by review, "产假有几天？" was answered with the demo handbook's 陪产假 at 0.999); not 带薪年假 for 年假 (no such
    word), nor 年休假 for 休假 (休假 names no kind: "to take leave")."""
    from kbqa.bilingual import glosses, kinds_in_english

    if word not in text:
        return []
    read = glosses() or {}
    found = {text[max(0, m.start() - k):m.end()] for m in re.finditer(re.escape(word), text) for k in (1, 2) if m.start() >= k}
    longer = [w for w in found if w in read and han(w) == w]
    if not longer:
        return []
    mine = kinds_in_english(word)
    return [w for w in longer if mine and _another_kind(mine, kinds_in_english(w))]


def without_longer_kinds(word: str, text: str) -> str:
    """The text with the longer words that name another kind of the word's thing (longer_kinds) blotted out."""
    for longer in longer_kinds(word, text):
        text = text.replace(longer, "□" * len(longer))
    return text


def names_another_kind(word: str, text: str) -> bool:
    """Whether a text names another kind of the thing a Chinese word of two characters names: a word
    with its last character and another first one (not one that asks or counts: 几假), whose English
    glosses share a head with the word's and no gloss (_another_kind): 年假 for 病假; not 旅费 for 路费."""
    from kbqa.bilingual import kinds_in_english

    siblings = {c + word[1] for c in re.findall(f"(.){re.escape(word[1])}", text) if c not in _NOT_KIND_CHARACTERS}
    # and a three-character word as it is shortened, its middle left out: 年休假 (the legal term) is 年假 (found by review:
    # "青松物流的婚假有几天？" was answered with its 年休假, whose 休假 is "to take leave", no kind)
    siblings |= {a + word[1] for a, b in re.findall(f"(.)(.){re.escape(word[1])}", text) if a not in _NOT_KIND_CHARACTERS and b not in _NOT_KIND_CHARACTERS}
    siblings -= {word}
    siblings |= set(longer_kinds(word, text))  # 陪产假 for 产假
    kinds = kinds_in_english(word) if siblings else set()  # (the dictionary is read only for a word with a sibling here)
    return bool(kinds) and any(_another_kind(kinds, kinds_in_english(o)) for o in siblings)


def pair_names_another(pair: tuple[str, str], said: list[str], skip: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset()) -> bool:
    """Whether words (stemmed, in order) name another kind of the thing an English pair (modifier, head;
    stemmed) names: a pair of the same head and another modifier whose CC-CEDICT words are other kinds
    (kbqa.bilingual.other_kinds) -- "annual leave" for "sick leave". Pairs in `skip` are none (the
    question's own). The dictionary is read only when such a pair is there."""
    from kbqa.bilingual import kind_words, other_kinds

    m, h = pair
    others = {p for p in zip(said, said[1:]) if p[1] == h and p[0] != m and p[0] not in STOP_WORDS and p not in skip}
    if not others:
        return False
    words = kind_words()
    mine = words.get(pair)
    return bool(mine) and any(other_kinds(mine, words.get(p, frozenset())) for p in others)


def uncovered_compounds(question: str, hits: list[Hit], quoted: str) -> list[str]:
    """The kinds of a thing the question names ("sick leave", 病假) that no source holds, not even their
    modifier ("sick"; 病 in a clause with 假: 因病请假), while the quoted sentence names another kind of that thing
    ("annual leave", 年假): a review's "蓝海集团的病假有几天？" over handbooks that say nothing of sick leave
    was answered with the annual leave. Other kinds of one thing are what Chinese words of two characters
    with the same last one and CC-CEDICT glosses of two English words are (kbqa.bilingual.other_kinds):
    病假 and 年假, "sick leave" and "annual leave" by them; not "paid leave" or "tap water" (no such
    word), "cell phone" and "mobile phone" (one word, 手机), words that merely meet ("internet based",
    部分地区's 分地). On the refusal test's five sets (5,960 questions) it changed no decision (benchmarks/refusal.py)."""
    if not hits or not quoted:
        return []
    whole = "\n".join(" ".join([h.text, h.context, *h.title_path]) for h in hits)
    held = {stem(w.lower()) for w in _LATIN.findall(whole)}
    said = [stem(w.lower()) for w in _LATIN.findall(quoted)]
    found = []
    for m, h in _PAIR.findall(question):  # (the dictionary is read only for a pair the quoted sentence has a sibling of)
        m, h, text = stem(m.lower()), stem(h.lower()), f"{m} {h}"
        if m in held or m in STOP_WORDS or h in STOP_WORDS:
            continue
        if pair_names_another((m, h), said) or _names_another_in_chinese((m, h), whole, quoted):
            found.append(text)
    for w in question_words(question):
        if not _HAN_PAIR.fullmatch(w) or w[0] in _NOT_KIND_CHARACTERS or re.search(f"{_ASKING_KIND}{w}[的呢吗？?。！!\\s]*$", question):
            continue
        if longer_kinds(w, question):  # (the question asks the longer kind: 陪产假)
            continue
        text = without_longer_kinds(w, whole)  # (产假 is not said by 陪产假)
        if w in text or re.search(f"{w[0]}[^。！？；!?;\n]{{0,6}}{w[1]}|{w[1]}[^。！？；!?;\n]{{0,6}}{w[0]}", text):  # in one clause: 因病请假
            continue
        if w not in without_longer_kinds(w, quoted) and names_another_kind(w, quoted):  # (a text that says the word itself names it, whatever else)
            found.append(w)
    return list(dict.fromkeys(found))


_NOT_KINDS = frozenset(  # words before "-year", "-time"… that count rather than name a kind ("three-year", "one-time", "last-minute")
    "one two three four five six seven eight nine ten eleven twelve first second third last next same each every multi many several".split()
)


_HAN_DIGITS = str.maketrans("〇零一二三四五六七八九", "00123456789")


def uncovered_years(words: list[str], hits: list[Hit], best: int = 0) -> list[str]:
    """The years the question names that the best source's document does not hold (in the
    text, title or description of its sources here), also as part of a word ("FY2019") or in Chinese
    numerals (二〇一九年), when the best source names another year, or another source of its file a later one. Sources without the year asked
    about answer for another year: a first-hour review's "东北电气2019年的营业收入是多少？" over a report of
    2018's first quarter was answered with 2018's figures; and "2023年劳动节5月3日谁值班？" was answered
    from the 2024 notice, because another company's travel policy said 2023."""
    years = [w for w in words if YEAR.fullmatch(w)]
    if not years or not hits:
        return []
    texts = [_with_arabic_years(" ".join([h.text, h.context, *h.title_path])) for h in [hits[best], *hits] if h.file == hits[best].file]
    missing = [y for y in years if not any(y in t for t in texts)]
    # only when the best source's document speaks of another period here: the best source names another
    # year, or another source of its file names a later one (a policy "Effective 1 January 2024" whose
    # leave section names no year does not answer "…in 2022?"; one in force since 2019 or "last revised
    # March 2022" still answers "…in 2024?"). A document that names no year at all may still be about the
    # one asked (XQuAD-zh's "2015年黑豹队的防守…" is answered by a passage that says 本赛季)
    if not missing:
        return []
    if YEAR.search(texts[0]):
        return missing
    later = [y for y in missing if any(int(m) > int(y) for t in texts[1:] for m in YEAR.findall(t))]
    return later


# a month named in a question: "December", "Dec." (not "may", a verb), "12月", "十二月"
_MONTH_EN = re.compile(r"\b(" + "|".join(MONTHS) + r"|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?)\b")


_MONTH_ZH = re.compile(r"(?<![0-9０-９〇零一二两三四五六七八九十])(1[0-2]|0?[1-9]|十[一二]?|[一二三四五六七八九])\s*月(?!份?[内以之]|[0-9]+日内)")


# 2024-04-09, 2024/4, 2024.04.09 (with a dot only with its day: "2024.1" may be a version)
_MONTH_ISO = re.compile(r"(?<![\d.])(?:19|20)\d\d(?:[-/_](0?[1-9]|1[0-2])(?:[-/_](?:0?[1-9]|[12]\d|3[01]))?|\.(0?[1-9]|1[0-2])\.(?:0?[1-9]|[12]\d|3[01]))(?![\d])")


_HAN_MONTHS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10, "十一": 11, "十二": 12}


def _months(text: str) -> set[int]:
    """The months a text names (1..12): English month names and abbreviations (capitalised, so "may"
    the verb is none), "12月" / "十二月" in Chinese (not a span: "6个月", "3月内"), and a date written
    by numbers ("2024-04-09" in a file's name)."""
    found = set()
    for m in _MONTH_EN.finditer(text):
        word = m.group(1).rstrip(".")
        if word == "May" and not re.search(r"\d\s*$", text[max(0, m.start() - 4) : m.start()]) and not re.match(r"\s*\d", text[m.end() :]):
            continue  # "May I ask…": May is a month beside a number only ("May 2015", "5 May")
        found.add(next(i for i, name in enumerate(MONTHS, start=1) if name.startswith(word[:3])))
    for m in _MONTH_ZH.finditer(text):
        n = m.group(1)
        found.add(int(n) if n.isdigit() else _HAN_MONTHS[n])
    found.update(int(m.group(1) or m.group(2)) for m in _MONTH_ISO.finditer(text))
    return found


def uncovered_months(question: str, hits: list[Hit], best: int = 0) -> list[int]:
    """The months the question names that the best source's document does not hold (in the
    text, title or description of its sources here), when the best source names another month:
    "Texas in December 2015" over a table of November 2015's checks was answered with November's
    figures. A source that names no month may still be about the one asked, as with years."""
    asked = _months(question)
    if not asked or not hits:
        return []
    held = [_months(" ".join([h.text, h.context, *h.title_path])) for h in [hits[best], *hits] if h.file == hits[best].file]  # (as for years)
    missing = sorted(m for m in asked if not any(m in h for h in held))
    return missing if missing and held[0] - asked else []


def uncovered_versions(question: str, hits: list[Hit]) -> list[str]:
    """The product versions the question names ("Atlas 4.0") that no source holds, when the best
    (first) source names another version of the product: a first-hour review's "How long is the
    warranty for Atlas 4.0?" over an inventory of Atlas 1.0 and 2.0 was answered with 2.0's 24 months."""
    asked = versions(question)
    if not asked or not hits:
        return []
    texts = [" ".join([h.text, h.context, *h.title_path]) for h in hits]
    others = {name for name, _, _ in versions(texts[0])}
    return sorted(f"{name.title()} {major}.{minor}" for name, major, minor in asked
                  if name in others and not any(holds_version(t, (name, major, minor)) for t in texts))


def uncovered_codes(question: str, hits: list[Hit]) -> list[str]:
    """The codes the question names ("P-4010", "KX-700", "Q4") that no source holds in any way it
    may be written (holds_code), when the best (first) source names another code of the same
    letters: a first-hour review's "Which bin holds part P-4010?" over a catalogue of P-1010 … P-3028
    was answered with P-1010's row, and "Q4 revenue" over a Q3 review with Q3's. A source about another
    of the question's codes (by its description or section titles) does not hold it for them ("E4 on
    the KX-300" in the KX-500's manual)."""
    asked = codes(question)
    if not asked or not hits:
        return []
    texts = [" ".join([h.text, h.context, *h.title_path]) for h in hits]
    others = {letters for letters, _ in codes(texts[0])}

    about = [" ".join([h.context, *h.title_path]) for h in hits]  # what each source's document and section are
    together = coordinated_codes(question)

    def holds(n: int, code: tuple[str, int]) -> bool:
        # held by a source whose document is not about another of the question's codes: "error E4 on the
        # KX-300" is not held by the KX-500's manual; and a code asked about together with another of its
        # letters ("the KX-200 and KX-300") by a source about it, or about none of its letters: the
        # KX-200's manual that names the KX-300's seals in passing holds nothing of the KX-300's warranty
        if not holds_code(texts[n], code) or any(about_other_code(about[n], c, asked) for c in asked - {code}):
            return False
        return code not in together or holds_code(about[n], code) or code[0] not in {held for held, _ in codes(about[n])}

    return sorted(f"{letters}{number}" for letters, number in asked if letters in others and not any(holds(n, (letters, number)) for n in range(len(texts))))


def coordinated_codes(question: str) -> set[tuple[str, int]]:
    """The codes a question asks about together with another of the same letters, joined by "and",
    "or", a comma … ("What warranty do the KX-200 and KX-300 pumps have?"), not one related to
    another ("Does the KX-200 accept the seals of the KX-300?"); "KX-200和KX-700" too."""
    found = [(m.start(), m.end(), (m.group(1).upper(), int(m.group(2)))) for m in CODE.finditer(question) if not YEAR.fullmatch(m.group(2))]
    out: set[tuple[str, int]] = set()
    for (_, end, a), (start, _, b) in zip(found, found[1:]):
        if a[0] == b[0] and a != b and COORDINATED.fullmatch(question[end:start]):
            out |= {a, b}
    return out


def _with_arabic_years(text: str) -> str:
    return text + " " + re.sub(r"[〇零一二三四五六七八九]{4}", lambda m: m.group().translate(_HAN_DIGITS), text)
