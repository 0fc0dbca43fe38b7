"""The answer pipeline, in one place: standalone question -> retrieve -> decide -> answer -> check.

- **Standalone question**: a follow-up is rewritten (a chat model) or joined to the previous question.
- **Retrieve**: the knowledge base's hybrid search, with no relevance floor beyond retrieval.threshold.
- **Decide**: answer or refuse from evidence, not from one cosine (`features`): the calibrated
  relevance of the best passage and its lead, how much of the question's distinctive words the best
  sentence (with its neighbours) and the best passage hold, how rare in the whole knowledge base the
  words the best passage lacks are, the embedder's similarity of the question and its best
  sentences, and whether they hold an answer of the kind asked (a number for 多少/how many, a date
  for 何时/when, ...). A logistic model fitted per embedding model and language combines them
  (configs/models.yaml, `calibration`; benchmarks/refusal.py --fit). What the question names that the
  sources must hold — a year, a month, a code, a version, a floor, a kind of a thing — is checked in
  `kbqa.scope`, which caps the confidence when the sources speak of another one; the documents the
  question names, and another company's documents that are no evidence for it, are read in `kbqa.named`.
  A refusal still shows the closest passages, as related material rather than an answer.
- **Answer**, by the answerer's declared capabilities: `extractive` quotes the best evidence
  sentences; a `completion` (base) model writes a short answer from the best evidence, streamed
  token by token only while it stays inside that evidence and holds the asked kind, else the
  extractive answer is given; a `chat` model gets numbered sources and may say the documents do
  not hold the answer, which turns the reply into a refusal.
- **Check**: every answer cites the passage it came from, as [n] in the sources' order (most
  relevant first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ingest.textfacts import content_words, is_wide, language, question_words, stem, substantive_words, terms
from kbqa.bilingual import bridge
from kbqa.codes import YEAR, about_another, codes, holds_code
from kbqa.evidence import FIGURE, Evidence, Sentence, gather, has_kind, is_bare_date, is_heading_line, is_title, with_parts
from kbqa.models import Calibration, pair_key
from kbqa.named import named_sources, names_a_file, others_of, proper_name_terms, source_names, unmentioned, unnamed_sources, without_other_names
from kbqa.scope import kind_said, not_asked_about, other_kind_said, uncovered_compounds, without_other_kinds
from kbqa.store.tokenize import name_words
from kbqa.types import AnswerStream, Capabilities, Hit, Usage

Message = dict[str, str]
_CITE = re.compile(r"\s*\[\d+\]")
_PUNCT = re.compile(r"[\s，。！？、；：,.!?;:\"'“”‘’（）()《》【】\[\]「」]+")
# what a chat model says when the sources do not hold the answer (the prompts ask for these words)
_SAYS_NO = re.compile(r"资料中没有找到|没有找到相关信息|无法根据(文档|资料)回答|documents do not contain|do not contain this information|not (mentioned|stated|found) in the (sources|documents)", re.I)


def squash(text: str) -> str:
    """Text without spaces, punctuation and case: for checking that one text is inside another."""
    return _PUNCT.sub("", text).lower()


def as_written(answer: str, evidence: str) -> bool:
    """Whether the answer stands in the evidence with the evidence's case (spaces and punctuation
    aside): a short answer "Xinghe2024" for a password the document writes "xinghe2024" is not
    shown (review); the evidence is quoted instead. A capital the model gives its first word
    ("Every 24 months") is allowed once that word is whole (a space follows it) and is letters only."""
    flat, inside = _PUNCT.sub("", answer), _PUNCT.sub("", evidence)
    if flat in inside:
        return True
    first, _, rest = answer.strip().partition(" ")
    return bool(rest.strip()) and first.isalpha() and flat[:1].swapcase() + flat[1:] in inside


def _signed(text: str, start: int) -> bool:
    """Whether the number at start carries a minus sign ("-16.55%", "| -2.49%"; not "KX-200", "2018-2019")."""
    return start > 0 and text[start - 1] in "-−" and not (start > 1 and text[start - 2].isalnum())


_HAN_DIGITS = "〇零一二三四五六七八九十百千万亿两"
_HAN_NUMERAL = re.compile(f"[{_HAN_DIGITS}]+")


def whole_numbers(answer: str, evidence: str) -> bool:
    """Whether every number of the answer stands whole in the evidence, with its sign: not cut from a
    longer one ("25" of "257,055,899", "345" of "12,345", 五天 of 十五天) and not without the minus sign
    the evidence gives it ("16.55%" of "-16.55%")."""
    for m in _HAN_NUMERAL.finditer(answer):
        if not re.search(f"(?<![{_HAN_DIGITS}]){m.group()}(?![{_HAN_DIGITS}])", evidence):
            return False
    for m in FIGURE.finditer(answer):
        number, signed = m.group(), _signed(answer, m.start())
        for found in re.finditer(re.escape(number), evidence):
            s, e = found.span()
            before, after = evidence[max(0, s - 2):s], evidence[e:e + 2]
            if before[-1:].isdigit() or (before[-1:] in (".", ",") and before[:1].isdigit()):
                continue  # the end of a longer number
            if after[:1].isdigit() or (after[:1] in (".", ",") and after[1:].isdigit()):
                continue  # the start of one
            if _signed(evidence, s) == signed:
                break
        else:
            return False
    return True


_NAME_WORD = re.compile(r"\b[A-Z][a-z]{2,}\b")
_OPENS = re.compile(r"(^|[.!?:;。！？：；]\s*|\n\s*(?:[-*•]|\d+[.)])?\s*|[\[(\"“'‘]\s*)$")  # what a sentence or an item starts after


def unsupported(answer: str, sources: list[Hit], question: str) -> list[str]:
    """What a generated answer says that neither its sources nor the question hold: a number (with
    its sign, whole: whole_numbers) or a name, a capitalized word inside a sentence. A chat model of
    135M parameters wrote "Christopher Latham Sholes, a Hungarian inventor" over a source that
    never says Hungarian."""
    answer = re.sub(r"(?m)^(\s*)\d{1,2}[.)、]\s", r"\1", _CITE.sub(" ", answer))  # a list's numbers are no claim
    held = "\n".join([question, *(h.text for h in sources), *(h.context for h in sources), *(" ".join(h.title_path) for h in sources)])
    words = set(re.findall(r"[a-z]+", held.lower()))
    out = [m.group() for m in FIGURE.finditer(answer) if not whole_numbers(m.group(), held)]
    out += [m.group() for m in _NAME_WORD.finditer(answer)
            if m.group().lower() not in words and not _OPENS.search(answer[max(0, m.start() - 8) : m.start()])]  # a capital inside a sentence
    return list(dict.fromkeys(out))


# --- capabilities ---------------------------------------------------------------------------------
EXTRACTIVE = Capabilities(extractive=True)


def capabilities_of(llm: Any) -> Capabilities:
    """An LLM backend's capabilities: declared by the backend (`capabilities`), else a chat model."""
    declared = getattr(llm, "capabilities", None)
    return declared if isinstance(declared, Capabilities) else Capabilities(chat=True)


# --- the decision ---------------------------------------------------------------------------------
@dataclass
class Decision:
    answer: bool
    confidence: float  # the fitted probability that the sources hold the answer
    reason: str  # answer | no-sources | no-words | weak-evidence | period-not-covered | code-not-covered | kind-not-covered | nothing-said | no-price
    features: dict[str, float] = field(default_factory=dict)


FEATURES = ("relevance", "coverage", "sentence", "passage", "typed", "sentence_cosine", "missing_max", "missing_sum", "rare_coverage", "words", "margin",
            "size")
# the knowledge base's size as the decision reads it stops growing here: the calibration was fitted on knowledge bases
# of 1 to 705 chunks, and a larger one is read as one of this size rather than beyond what the fit saw
SIZE_READ_UP_TO = 1000


def features(
    hits: list[Hit], evidence: Evidence, sentence_cosine: float, frequencies: tuple[int, dict[str, int]], relevance_range: tuple[float, float],
    among: list[Hit] | None = None,
) -> dict[str, float]:
    """The decision's inputs:
    relevance: the best source's calibrated relevance; margin: its lead over the second, in cosine;
    coverage / sentence / passage: the weighted share of the question's words in the best sentence
    with its neighbours / alone / in the best passage; typed: 1 when the best sentences hold an
    answer of the asked kind (or no kind is asked); sentence_cosine: the embedder's similarity of the
    question and its best sentences; missing_max / missing_sum: how rare (log inverse chunk frequency
    in the whole knowledge base) the rarest / all of the question's words missing from the best
    source are; rare_coverage: the share of that rarity the best source holds; words: how many
    content words the question has; size: log(1 + the knowledge base's chunks, at most SIZE_READ_UP_TO) --
    how rare a word is, and so the rarity features, read otherwise in a knowledge base of one document
    (benchmarks/refusal.py's NAME@article sets: fitted without it, XQuAD-zh's unanswerable questions
    asked of their article's knowledge base alone were answered 38.5% of the time, against 14.0% of the
    whole corpus's)."""
    best = evidence.best
    ranked = sorted((h.relevance for h in (hits if among is None else among)), reverse=True)  # (among: the sources of the evidence's language)
    chunks, df = frequencies
    rarity = {w: math.log((chunks + 1) / (n + 0.5)) for w, n in df.items()}
    unsaid = missing_words(hits, evidence, df)
    missing = [r for w, r in rarity.items() if w in unsaid]
    return {
        "relevance": ranked[0] if ranked else 0.0,
        "coverage": best.coverage if best else 0.0,
        "sentence": best.own if best else 0.0,
        "passage": max(evidence.passage_coverage, default=0.0),
        "typed": 1.0 if best is None or evidence.kind is None or any(s.typed for s in evidence.sentences[:2]) else 0.0,
        "sentence_cosine": sentence_cosine,
        # (across languages the question's words are in no passage at all: their rarity would measure the knowledge base's size)
        "missing_max": 0.0 if evidence.bridge is not None else max(missing, default=0.0),
        "missing_sum": 0.0 if evidence.bridge is not None else sum(missing),
        "rare_coverage": 1.0 - sum(missing) / sum(rarity.values()) if rarity else 1.0,
        "words": float(len(df)),
        "margin": ((ranked[0] - ranked[1]) if len(ranked) > 1 else (ranked[0] if ranked else 0.0)) * (relevance_range[1] - relevance_range[0]),
        "size": math.log(1 + min(chunks, SIZE_READ_UP_TO)),
    }


def missing_words(hits: list[Hit], evidence: Evidence, asked: dict[str, int] | set[str]) -> set[str]:
    """The question's words (`asked`, as the catalog counts them) that the evidence's best source does not
    hold: in its text, title path or document context, or, across languages, said through the dictionary."""
    held: set[str] = set()
    if evidence.best is not None:
        source = hits[evidence.best.n - 1]
        held = set(content_words(" ".join([*source.title_path, source.context]) + "\n" + source.text))
        if evidence.bridge is not None:  # the question's words the source says in its own language
            held |= evidence.bridge.said(held | terms(source.text), source.text)
    return {w for w in asked if w not in held and evidence.spelled.get(w) not in held}


def said_of_others(hits: list[Hit], evidence: Evidence, asked: dict[str, int], others: frozenset[int], names: frozenset[str]) -> bool:
    """Whether a word of the question but those that named its documents (names) is held by the passages of another
    company's documents (others: chunk ids, see others_of) and not by the best source of the named one's: what the
    question asks is what other companies' documents say ("Northwind的员工年假有几天？" and 云杉科技's 年假, beside
    Northwind's travel policy, which says its name and "Employees" only)."""
    if not others:
        return False
    theirs: set[str] = set()
    for h in hits:
        if h.chunk_id in others:
            said = set(content_words(h.text))
            theirs |= said | (evidence.bridge.said(said | terms(h.text), h.text) if evidence.bridge is not None else set())
    return any(w in theirs and w not in names for w in missing_words(hits, evidence, asked))


def decide(hits: list[Hit], f: dict[str, float], calibration: Calibration, words: int) -> Decision:
    """words: how many words the question has to look for (substantive_words); with none ("?", "的",
    "what?", "1") nothing can support an answer, whatever the fitted model would make of it."""
    if words == 0:  # (before the sources: a search for punctuation alone finds none)
        return Decision(False, 0.0, "no-words", f)
    if not hits:
        return Decision(False, 0.0, "no-sources")
    w = calibration.weights
    z = w.get("bias", 0.0) + sum(w.get(k, 0.0) * v for k, v in f.items())
    p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
    return Decision(p >= calibration.cut, round(p, 4), "answer" if p >= calibration.cut else "weak-evidence", f)


# --- answerers ------------------------------------------------------------------------------------
class Answerer(Protocol):
    capabilities: Capabilities
    name: str

    def answer(self, asked: Asked, sources: list[Hit], evidence: Evidence, gen: dict[str, Any]) -> Iterator[str]: ...


@dataclass
class Asked:
    question: str  # the user's own words
    query: str  # what was searched: the standalone form of a follow-up
    history: list[Message]
    lang: str


def _cited(sentence: Sentence, lang: str = "en") -> str:
    return f"{sentence.reading(lang)} [{sentence.n}]"


def extractive_sentences(evidence: Evidence, limit: int = 3) -> list[Sentence]:
    """The best evidence sentence and, up to `limit` in all, those scoring at least 60% of it, in
    reading order (a best table row first) — but not a heading line or a bit without letters, nor a sentence of a far less
    relevant passage (under half the best one's relevance) that holds no question word the kept
    ones lack: such a sentence only repeats the match (a company's name in another policy's first line)."""
    ranked = evidence.sentences[:max(limit, len(evidence.parts) + 1)]
    if not ranked:
        return []
    best = ranked[0]
    required = set(evidence.parts)  # each part's best sentence of a question of parts: quoted whatever it is
    wanted = evidence.question_terms
    asked_codes = codes(evidence.question)
    naming = proper_name_terms(evidence.question)  # (the names of "星河科技的…")
    keep = [best]
    held = terms(best.text) & wanted
    for s in ranked[1:]:
        if (s.n, s.pos) in required:
            keep.append(s)
            held |= terms(s.text) & wanted
            continue
        if s.score < 0.6 * best.score or is_heading_line(s.text) or not any(ch.isalpha() for ch in s.text):
            continue  # "1." of a numbered heading is no evidence
        if s.elsewhere and not best.elsewhere:
            continue  # the AX-300's reset time beside the AX-200's: another product's fact, not more of this answer
        if s.n in evidence.unnamed and best.n not in evidence.unnamed:
            continue  # Acme's 25 days of leave beside Globex's 18, for "…do Globex employees get?": another company's fact
        asked_here = terms(s.text) & wanted
        says_whose = bool(asked_here) and s.n <= len(evidence.whose) and asked_here <= naming & evidence.whose[s.n - 1] \
            and bool(terms(best.text) & wanted - asked_here)
        if (s.own == 0 or says_whose) and best.own > 0 and evidence.bridge is None and all(k.n != s.n for k in keep) \
                and not s.text.startswith("|") and not _section_says(evidence, s.n, wanted):
            continue  # a sentence of a passage not quoted yet that says no word of the question, nor do its section's titles (its
            # document's name, its neighbours may): 星河科技's overtime rule for "星河科技的年假有几天？"; not the steps under
            # "## 年假申请" for "星河科技的年假怎么申请？"; nor one that says of the question only words of its document's description,
            # whose document it is, a name it writes (星河科技's annual leave for "星河科技差旅报销期限是多久？": found by review). (Across languages
            # sentences are read by meaning.)
        if s.field or is_bare_date(s.text) and evidence.kind != "date":
            continue  # a memo's "Subject:" or "Date:", a notice's date under its signature: what the message is, not what it says
        if s.text.rstrip().endswith(LEADS_IN):
            continue  # a lead-in beside the answer ("…现将放假安排通知如下：") says nothing without what it leads into
        if any(squash(s.text) == squash(k.text) for k in keep):
            continue  # the same sentence in another file (a copy of a document): said once
        if s.text.startswith("|") and best.own > 0 and not {w for w in terms(s.text) & wanted if len(w) > 1 or not w.isascii()}:
            continue  # a table row without a word of the question: another record (Alabama's row beside Texas's; P-2020's beside P-3024's)
        if asked_codes and any(holds_code(best.text, c) for c in asked_codes) and not any(holds_code(s.text, c) for c in asked_codes) \
                and any(letters == a or number == b for letters, number in codes(s.text) for a, b in asked_codes):
            continue  # another product's row or sentence beside the asked one's, a code of its letters or number: the AX-300's
            # 769 and the KX-200's 1299 beside the KX-300's price for "KX-300多少钱？" (found by review); not a part's
            # (the BT-2 battery's charging time for "How long does the P-100 battery take to charge?": found by the next)
        words = terms(s.text) & wanted
        weak = evidence.relevance[s.n - 1] < 0.5 * evidence.relevance[best.n - 1]
        if weak and not words - held:
            continue
        keep.append(s)
        held |= words
    out, titled = [], set()
    # in reading order; but a table row asked for comes before the rows quoted beside it (the KX-500
    # Pro's price before the KX-500's, which the table lists first), and what comes before the best
    # sentence and holds no word of the question after the rest ("Replace the filters every 6 months."
    # before "The Aurora X2 comes with a 3-year warranty…", for "How long is the warranty…?"), and so
    # does one that holds only some of the best sentence's words ("The Aurora X2 is covered by a 24 months
    # warranty" after "Filters are not covered.", for "Are filters covered?")
    first = best if best.text.startswith("|") else None
    best_words = terms(best.text) & wanted

    def after(s: Sentence) -> bool:
        if not (best.own > 0 and s.n == best.n and s.pos < best.pos):
            return False
        return s.own == 0 or s.own < best.own and terms(s.text) & wanted < best_words

    order = lambda s: (s is not first, after(s), s.n, s.pos)  # noqa: E731
    names = evidence.names if len(set(evidence.names.values())) > 1 else {}
    if names:  # a question about named documents together: each one's sentences under its name, said once
        # ("Globex: … [1] … [1] Acme: … [2]"), in the order of their best; none of another document,
        # which would read as the last name's (found by review: Globex's 18 days after "Acme:")
        groups = list(dict.fromkeys(names[s.n] for s in keep if s.n in names))
        keep = [s for s in keep if s.n in names] or keep
        parts = set(evidence.parts)  # each name's best first (with_named_parts), then the rest in reading order
        order = lambda s: (groups.index(names[s.n]) if s.n in names else len(groups), (s.n, s.pos) not in parts, s is not first, after(s), s.n, s.pos)  # noqa: E731
    said: set[str] = set()  # the names said so far
    for s in sorted(keep, key=order):
        if s.section and (s.n, s.section) in titled:
            s = replace(s, section="")  # a section's title once, before its first item quoted
        titled.add((s.n, s.section))
        name = names.get(s.n, "")
        if name and name not in said and not s.header and not s.section and name.lower() not in s.text.lower():
            s = replace(s, section=name)  # "Globex: Employees receive 18 days…", "Acme: Employees receive 25 days…"
        if name:
            said.add(name)
        out.append(_with_what_follows(s, evidence, keep))
    return out


def _section_says(evidence: Evidence, n: int, words: set[str]) -> bool:
    """Whether source n's section titles hold one of the words (Evidence.sections; unknown: they may)."""
    return n > len(evidence.sections) or bool(evidence.sections[n - 1] & words)


LEADS_IN = ("：", ":")
FOLLOWING_CHARS = 300  # how much of what follows a sentence ending in a colon is quoted with it


def _with_what_follows(sentence: Sentence, evidence: Evidence, kept: list[Sentence]) -> Sentence:
    """A sentence that ends in a colon with what it leads into ("…由三个主要元素组成：" with 任务, 指令
    and 角色; "Important points:" with the list under it): the sentences after it in its paragraph,
    up to FOLLOWING_CHARS, that are not quoted on their own."""
    if not sentence.text.rstrip().endswith(LEADS_IN):
        return sentence
    after = {s.pos: s for s in evidence.sentences if s.n == sentence.n and s.pos > sentence.pos}
    taken = {(k.n, k.pos) for k in kept}
    text, pos = sentence.text, sentence.pos + 1
    while pos in after and (sentence.n, pos) not in taken and not after[pos].opens \
            and len(text) + len(after[pos].text) <= len(sentence.text) + FOLLOWING_CHARS:
        text += ("" if evidence.lang == "zh" else " ") + after[pos].text
        pos += 1
    return replace(sentence, text=text)


def extractive_text(evidence: Evidence) -> str:
    return " ".join(_cited(s, evidence.lang) for s in extractive_sentences(evidence))


def _says_more(text: str, asked: set[str]) -> bool:
    """Whether a short answer holds a word the question does not: not a piece of one of its words
    ("Tensor" of "TensorRT-LLM原来叫什么？", "DPO" of "DPO的全称？"), nor a lone Latin letter ("N")."""
    return any(not (len(t) == 1 and t.isascii() and t.isalpha()) and not any(t in a for a in asked) for t in terms(text))


_TOKEN_LEAD = re.compile(r"(?:[A-Za-z0-9]+[-/.#])+$")


def token_lead(answer: str, sentence: str) -> str:
    """What the sentence writes right before a short answer that starts inside a code or a number
    there: "PO-" of "PO-2024-0317" when the model said "2024-0317"; "" when it starts a word."""
    at = sentence.find(answer)
    if at <= 0 or not answer[:1].isalnum():
        return ""
    m = _TOKEN_LEAD.search(sentence[:at])
    return m.group(0) if m and (at == m.end()) and (m.start() == 0 or not sentence[m.start() - 1].isalnum()) else ""


_DANGLING = re.compile(r"\s+(?:a|an|the|of|to|in|on|at|for|by|with|and|or|from|into|than|as|per|that|which)$", re.I)


_TRAILING = " ,;:，；：、'\"‘’“”(（-—–"


def _without_dangling_word(text: str) -> str:
    """A short answer without a last word or mark that only leads on ("18 days of" -> "18 days",
    "14 Wellington Place," -> "14 Wellington Place", "90 days'" -> "90 days")."""
    while True:
        shorter = _DANGLING.sub("", text.rstrip(_TRAILING))
        if shorter == text:
            return text
        text = shorter


_CLAUSE = re.compile(r"[，；;]")


def _from_the_asked_clause(text: str, sentence: str, asked: set[str]) -> bool:
    """Whether a short answer comes from the clause of its sentence that the question points at. In a
    sentence of clauses ("10月1日至2日由张伟值班，10月3日至4日由李娜值班，10月5日至7日由王强值班"), an answer
    taken from a clause that says something of its own (words beside the answer) while another clause
    holds more of the question's words is a neighbour's: 王强 for "10月3日谁值班？", 北门 for "哪个门关闭？"
    over "东门关闭，请从北门进出". A clause that is the answer alone ("1990年，他出生于北京") is no neighbour."""
    clauses = [c for c in _CLAUSE.split(sentence) if c.strip()]
    flat = squash(text)
    held = [c for c in clauses if flat in squash(c)]
    if len(clauses) < 2 or len(held) != 1 or not terms(held[0]) - terms(text):
        return True
    return len(terms(held[0]) & asked) >= max(len(terms(c) & asked) for c in clauses)


def of_the_asked_year(text: str, sentence: str, question: str) -> bool:
    """Whether a short answer taken from a sentence that names years is said of a year the question asks: the year
    written nearest to it in the sentence (found by review: "Orion Analytics 2022年的利润是多少？" got "42.5 million
    dollars" of "revenue of 42.5 million dollars in 2023, up 12 percent from 2022"). A question without a year, a
    sentence without one, or an answer not found as written, asks nothing of it."""
    asked = set(YEAR.findall(question))
    at = sentence.find(text)
    years = [(m.start(), m.group()) for m in YEAR.finditer(sentence)] if asked and at >= 0 else []
    if not years:
        return True
    end = at + len(text)
    starts = [m.end() for m in _CLAUSE_END.finditer(sentence, 0, at)]
    stop = _CLAUSE_END.search(sentence, end)
    clause = (starts[-1] if starts else 0, stop.start() if stop else len(sentence))
    within = [y for y in years if clause[0] <= y[0] < clause[1]] or years  # the answer's own clause's years first
    nearest = min(within, key=lambda y: min(abs(y[0] - at), abs(y[0] - end)) if not at <= y[0] < end else 0)
    return nearest[1] in asked


_CLAUSE_END = re.compile(r"[，,;；。！？!?]\s*")


class ExtractiveAnswerer:
    """No generation: the evidence sentences that best hold the answer, cited."""

    capabilities = EXTRACTIVE
    name = "extractive"

    def answer(self, asked: Asked, sources: list[Hit], evidence: Evidence, gen: dict[str, Any]) -> Iterator[str]:
        for i, sentence in enumerate(extractive_sentences(evidence)):  # one piece a cited sentence
            yield ("" if i == 0 else " ") + _cited(sentence, evidence.lang)


class CompletionAnswerer:
    """A base model (no chat template) writes a short answer to a worked example from the best
    evidence. Its tokens are shown as they come while they stay inside that evidence (within one
    cell of a table, every number whole and with its sign); the answer must hold the asked kind and
    not be a heading, else the extractive answer is given instead."""

    capabilities = Capabilities(completion=True)

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.name = llm.name
        self.usage = Usage()
        self.quoted_only = False  # set when the answer is the evidence alone (the model's short answer did not hold)

    def _quoted(self, asked: Asked, sources: list[Hit], evidence: Evidence, gen: dict[str, Any]) -> Iterator[str]:
        """The evidence alone (the extractive answer): the model wrote none of it."""
        self.quoted_only = True
        yield from ExtractiveAnswerer().answer(asked, sources, evidence, gen)

    def answer(self, asked: Asked, sources: list[Hit], evidence: Evidence, gen: dict[str, Any]) -> Iterator[str]:
        from kbqa.llm import metered
        from kbqa.prompts import templates

        t = templates(asked.lang)
        best = evidence.best
        if best is None or len(evidence.parts) > 1 or len(set(evidence.names.values())) > 1:
            # (a question of parts, or of two named documents: each one's sentence is the answer, not the best one's)
            yield from self._quoted(asked, sources, evidence, gen)
            return
        figures = {sources[q.n - 1].file for q in extractive_sentences(evidence) if sources[q.n - 1].context and q.typed}
        if evidence.kind is not None and len(figures) > 1:
            # the evidence quotes answers of the asked kind from two documents or more that say what they are (two
            # handbooks' 12 and 10 days for "员工年假有几天？"): which one's is the answer the reader tells, not a short answer
            # from the best one's (found by review). (A corpus of paragraphs without descriptions, as the benchmarks', and a
            # second document's sentence of another kind keep the short answer.)
            yield from self._quoted(asked, sources, evidence, gen)
            return
        said = terms(best.text) & terms(asked.query)
        if said and said <= proper_name_terms(asked.query) & terms(sources[best.n - 1].context):
            # the best sentence says of the question only a name its document's description holds, whose document it is
            # (蓝海集团's annual leave for "蓝海集团的试用期是多久？"): no short answer ("12天") from it, the evidence alone
            yield from self._quoted(asked, sources, evidence, gen)
            return
        if best.text.rstrip().endswith(LEADS_IN):  # the answer is in what it leads into, which the model is not given
            yield from self._quoted(asked, sources, evidence, gen)
            return
        if best.text.startswith("|") and len(set(FIGURE.findall(best.text))) > 1:
            # a table row of several figures: which column is meant, the row alone does not say (the
            # model picked the change "-16.55%" for the revenue, last year's column for this year's)
            yield from self._quoted(asked, sources, evidence, gen)
            return
        # a 270M model copies whichever sentence is nearest the question: give it only the best one
        prompt = t.completion.format(context=f"[1] {best.text}", question=asked.question)
        short = {**gen, "max_tokens": min(int(gen.get("max_tokens", 64)), 48)}
        count, context = getattr(self.llm, "count_tokens", None), getattr(self.llm, "context", None)
        if count is not None and isinstance(context, int) and count(prompt) + short["max_tokens"] > context:
            yield from self._quoted(asked, sources, evidence, gen)  # a question too long for the model
            return
        inside = squash(best.text)
        asked_terms = terms(asked.query)
        shown, said, lead = "", "", ""
        held = True  # tokens are held back until the answer says something new, of the asked kind
        pieces = metered(self.llm, [{"role": "user", "content": prompt}], self.usage, stop=t.stop, **short)
        try:
            for piece in pieces:
                candidate = _CITE.sub("", said + piece)
                if squash(candidate) and squash(candidate) not in inside:
                    break  # the model left the evidence: stop generating, keep what was checked
                said = candidate
                text = said.strip().rstrip("。.")
                if "|" in text:
                    break  # it runs on across a table's cells: what was checked before stays
                whole = whole_numbers(text, best.text) and as_written(text, best.text)  # (a number still coming is shown once it is whole)
                if held and whole and text and _says_more(text, asked_terms) and has_kind(text, evidence.kind, asked.lang, asked.query) \
                        and not is_title(text, sources[best.n - 1]) and _from_the_asked_clause(text, best.text, asked_terms) \
                        and of_the_asked_year(text, best.text, asked.query):
                    held = False
                    lead = token_lead(text, best.text)  # "2024-0317" of "PO-2024-0317" is shown whole
                ready = lead + _without_dangling_word(text)  # "18 days of" is shown once what it leads to comes
                if not held and whole and as_written(ready, best.text) and len(ready) > len(shown) and ready.startswith(shown):
                    yield ready[len(shown):] if shown else ready
                    shown = ready
        finally:
            close = getattr(pieces, "close", None)
            if close:
                close()
        self.usage.cut = False  # what it gives is the checked short answer and the evidence, not a generation cut short
        if shown:  # then the evidence: the same sentences the extractive answer would give
            quoted = extractive_text(evidence)
            yield f" [{best.n}]"
            if squash(shown) != squash(_CITE.sub("", quoted)):
                yield ("。依据：" if asked.lang == "zh" else ". Evidence: ") + quoted
            return
        yield from self._quoted(asked, sources, evidence, gen)


class ChatAnswerer:
    """A chat model answers over numbered sources (trimmed to its context), citing them as [n]."""

    capabilities = Capabilities(chat=True)

    def __init__(self, llm: Any, history_tokens: int) -> None:
        self.llm = llm
        self.name = llm.name
        self.history_tokens = history_tokens
        self.refused = False  # set when the model said the sources lack the answer
        self.usage = Usage()

    def answer(self, asked: Asked, sources: list[Hit], evidence: Evidence, gen: dict[str, Any]) -> Iterator[str]:
        from kbqa.chat import trim_history
        from kbqa.llm import metered
        from kbqa.prompts import build_prompt

        budget = self.llm.context - int(gen["max_tokens"]) - 16
        turns = trim_history(asked.history, min(self.history_tokens, budget // 3), self.llm.count_tokens)
        prompt = build_prompt(asked.question, sources, budget_tokens=budget, count_tokens=self.llm.count_tokens, history=turns)
        text = ""
        for piece in metered(self.llm, prompt.messages, self.usage, stop=prompt.stop, **gen):
            text += piece
            yield piece
        if _SAYS_NO.search(text):
            self.refused = True
            return
        if text.strip() and not re.search(r"\[\d+\]", text) and evidence.best is not None:
            yield f" [{evidence.best.n}]"  # the passage the answer most likely came from
        missing = unsupported(text, sources, asked.query)
        if missing:  # said before the user relies on it: the model wrote what no source holds
            shown = "、".join(missing[:5]) if asked.lang == "zh" else ", ".join(missing[:5])
            yield (f"\n\n（注意：{shown} 不在资料中，请对照来源核实。）" if asked.lang == "zh"
                   else f"\n\n(Note: {shown} is not in the sources; check the answer against them.)")


def answerer_for(llm: Any, history_tokens: int = 1024) -> Answerer:
    """The answerer for an LLM backend (or for none: extractive), by its capabilities."""
    caps = capabilities_of(llm) if llm is not None else EXTRACTIVE
    if caps.extractive:
        return ExtractiveAnswerer()
    if caps.completion and not caps.chat:
        return CompletionAnswerer(llm)
    return ChatAnswerer(llm, history_tokens)


# --- the pipeline ---------------------------------------------------------------------------------
class Searchable(Protocol):
    """What the pipeline needs of a knowledge base: search, its embedder, its catalog's word counts."""

    name: str
    embedder: Any
    catalog: Any

    def search(self, question: str, *, top_k: int | None = None, threshold: float | None = None) -> list[Hit]: ...

    def is_empty(self) -> bool: ...


@dataclass
class Prepared:
    """Everything decided before the first word of the answer."""

    asked: Asked
    sources: list[Hit]  # most relevant first
    evidence: Evidence
    decision: Decision
    usage: Usage = field(default_factory=Usage)  # the LLM's tokens so far: a follow-up's rewrite
    unmentioned: tuple[str, ...] = ()  # names the question writes that the knowledge base never holds (kbqa.named.unmentioned)


def prepare(
    kb: Searchable,
    question: str,
    *,
    calibration: Callable[[str], Calibration],
    history: list[Message] | None = None,
    rewrite: str = "auto",
    rewriter: Any = None,
    top_k: int | None = None,
    threshold: float | None = None,
    rewrite_generation: dict[str, Any] | None = None,
) -> Prepared:
    """Standalone question, retrieve, decide. rewrite_generation: more of what the rewriter's stream takes."""
    from kbqa.chat import points_back, previous_questions, standalone_question

    history = history or []
    usage = Usage()
    query = standalone_question(question, history, rewriter, rewrite, usage, rewrite_generation) if history else question
    query = without_other_names(kb.catalog, question, query)
    if query != question and not names_a_file(kb.catalog, question) and not _CHOOSES.search(question):
        # a follow-up that names nothing after one that named a file is asked of that file ("差旅报销呢？" after
        # "那蓝海集团呢？" after "星河科技的年假有几天？" searched both companies, and answered with 星河科技's: found by review);
        # one that compares ("哪家更多？") asks of both
        for earlier in reversed(previous_questions(history)[1:]):
            if names_a_file(kb.catalog, earlier):
                query = without_other_names(kb.catalog, question, query, naming=earlier)
                break
    prepared = _retrieve_and_decide(kb, question, query, history, usage, calibration, top_k, threshold)
    if query != question and not prepared.decision.answer and not points_back(question):
        # a question that points back at nothing, searched with the conversation before it (joined to the last question
        # for its shortness, or rewritten by a chat model) and refused, is searched by itself too, kept when that
        # answers ("年假有几天？" after "蒙古的首都是哪里？" was refused: found by review)
        alone = _retrieve_and_decide(kb, question, question, history, usage, calibration, top_k, threshold)
        if alone.decision.answer:
            return alone
    return prepared


def reply_language(question: str, history: list[Message], hits: list[Hit]) -> str:
    """The language of the reply: the question's; for a question without a letter ("???", "2023?", "🦄🦄🦄?") the
    last earlier question's that has one, else Chinese where it is written with Chinese punctuation ("12？"), else the
    best source's, else English. (Such a question was answered in Chinese, whatever was asked before or held:
    `language` reads a text without letters as Chinese. Found by review.)"""
    if any(ch.isalpha() for ch in question):
        return language(question)
    for text in [m.get("content", "") for m in reversed(history) if m.get("role") == "user"]:
        if isinstance(text, str) and any(ch.isalpha() for ch in text):
            return language(text)
    if any(is_wide(ch) for ch in question):
        return "zh"
    return language(hits[0].text) if hits and any(ch.isalpha() for ch in hits[0].text) else "en"


def _retrieve_and_decide(kb: Searchable, question: str, query: str, history: list[Message], usage: Usage,
                         calibration: Callable[[str], Calibration], top_k: int | None, threshold: float | None) -> Prepared:
    """Retrieve for query (the standalone form of question) and decide whether the sources answer question."""
    hits = kb.search(query, top_k=top_k, threshold=threshold)
    hits = sorted(hits, key=lambda h: -h.relevance)  # shown and numbered most relevant first (by language: below)
    lang = reply_language(question, history, hits)
    searched = language(query)  # a follow-up's search joins the turns: its language is that text's, as retrieval read it
    frequencies = kb.catalog.document_frequencies(question_words(query))
    embedder = Embedded(kb.embedder)  # each sentence embedded once however often the evidence is read
    # the sources of each language are judged by the calibration of their language pair (kbqa.models.pair_key);
    # in a knowledge base of both languages, of the languages whose evidence answers, the one whose evidence says
    # more of the question's words (read through the dictionary across languages) gives the answer: two
    # calibrations' confidences do not compare (the weaker cross-language one runs high: the demo's "How often
    # should the PP cotton filter be replaced?" got the Chinese FAQ's clogged-filter sentence at 0.998 over the
    # English manual's "every 6 months" at 0.992), the share of the question said does
    languages = list(dict.fromkeys(language(h.text) for h in hits))[:2] or [searched]
    # the sources of another company's documents (others_of) are no evidence for the named one's: neither its
    # answer nor a sign that it covers a kind of leave (uncovered_compounds)
    found, judged_hits = named_sources(kb.catalog, query, hits), hits
    others = others_of(query, hits, found)
    written = name_words(query)
    naming = frozenset(stem(written[p]) for places in found.files.values() for p in places if p < len(written))
    judged = [judge(embedder, question, query, hits, searched, source, calibration, frequencies, others, naming) for source in languages]
    judged = kinds_across(judged, query, hits, searched, others)
    source, evidence, decision = best_supported(judged, searched)
    if len(languages) > 1 and decision.answer:  # the sources of the evidence's language first, each language's most relevant
        # first (an unrelated Chinese note's relevance for an English question can pass the English manual's that answers
        # it); a refusal's related passages stay most relevant first (found by review: 0.39, 0.28, 0.19, then 0.49)
        ordered = [h for h in hits if language(h.text) == source] + [h for h in hits if language(h.text) != source]
        if ordered != hits:  # (read again only when the numbering changed: across languages it embeds the sentences)
            hits = ordered
            evidence, _ = read_evidence(embedder, question, query, hits, searched, source, others)
    if decision.reason == "no-words":  # passages found for nothing in particular are not even related
        hits, evidence = [], gather(question, [], query)
    if hits is not judged_hits:  # (numbered anew)
        found = named_sources(kb.catalog, query, hits)
    if decision.reason == "weak-evidence" and not calibration(pair_key(searched, source)).stricter and compares_named(
        question, evidence, source_names(query, found)
    ):
        decision = replace(decision, answer=True, reason="compared")  # each one's figure is the answer: the comparison is the reader's
    if decision.answer:  # an answer's sources: passages with some relevance, or evidence (a refusal shows the closest, whatever they are);
        # of a knowledge base of both languages, a passage in another language than the answer's only when as likely
        # as not to hold the answer (an English manual's page for "员工每年有几天带薪年假？" is not a source of its answer)
        # evidence of no relevance is kept only where quoted (a price list's "2年" row, among the 年假 question's best
        # sentences but not quoted, was listed at relevance 0.00: found by review)
        quoted = {s.n for s in evidence.sentences[:3] if hits[s.n - 1].relevance > 0} | {s.n for s in extractive_sentences(evidence)}
        kept = [h for n, h in enumerate(hits, start=1)
                if n == 1 or n in quoted or (h.relevance >= OTHER_LANGUAGE_KEPT if language(h.text) != source else h.relevance > 0)]
        if len(kept) < len(hits):
            hits, (evidence, _) = kept, read_evidence(embedder, question, query, kept, searched, source, others)
            found = named_sources(kb.catalog, query, hits)
        if source == searched:  # (across languages, by meaning: a part's answer is found by its words)
            evidence = with_parts(question, hits, query, evidence)  # "谁发的？什么时候发的？": each part's answer quoted
        evidence = with_named_parts(question, replace(evidence, unnamed=unnamed_sources(query, hits, found), names=source_names(query, found)))
    names: tuple[str, ...] = ()
    if decision.answer:  # the question's own names; a follow-up that names nothing is read as searched ("And how many
        # hours…?" after "…Initech employees…?" is asked of Initech too), one that names a document is not ("And Globex?")
        names = tuple(unmentioned(kb.catalog, question, hits))
        if not names and query != question and not kb.catalog.named_files(question):
            names = tuple(unmentioned(kb.catalog, query, hits))
    return Prepared(Asked(question, query, history, lang), hits, evidence, decision, usage, names)


# a question that asks to choose between what it names: "Which has the longer warranty, the KX-200 or
# the KX-300?", "Does Acme or Globex give more leave?", "KX-200和KX-300哪个保修期更长？"
_CHOOSES = re.compile(r"\b(?:which|whether|or|vs\.?|versus|than|compared?)\b|哪|还是|相比|比较", re.I)
# the words of such a question that say how to compare or choose, not what: the rest must be said by each
# figure's sentence ("sick leave" is not said by "…days of paid annual leave")
_COMPARING = frozenset(stem(w) for w in (
    "which whether or than vs versus compare compared more less fewer most least longer shorter longest shortest higher lower highest "
    "lowest bigger larger smaller biggest largest smallest cheaper dearer cheapest better worse best worst faster slower fastest "
    "slowest earlier later greater greatest older newer heavier lighter one ones them both either company companies firm employer "
    "give gives offer offers have has get gets provide provides pay pays come comes carry carries").split()) | {
    "哪", "哪个", "哪家", "哪款", "哪种", "哪一个", "还是", "比", "比较", "相比", "更", "较", "最", "多", "少", "长", "短", "高", "低", "大", "小",
    "快", "慢", "贵", "便宜", "公司", "有", "提供", "给"}


# the words of such a question that name the kind of figure compared rather than a thing a sentence must
# say: "哪家的报销期限更长" is answered by "…出差结束后三十天内提交报销申请" (a length of time), not by the word 期限
_MEASURES = {stem(w): kind for kind, said in (
    ("duration", "期限 时限 时间 时长 期 多久 天数 period duration deadline"),  # (not "time": part-time, three times)
    ("percent", "比例 比率 百分比 percentage proportion"),
    ("money", "价格 售价 单价 价钱 price cost"),
) for w in said.split()}


def _measure(question: str) -> str:
    """The kind of figure a question that compares asks for by a word of _MEASURES, else "number"."""
    return next((_MEASURES[w] for w in terms(question) if w in _MEASURES), "number")


def _compared_words(question: str, evidence: Evidence) -> set[str]:
    """What a question that asks which of the named documents compares: its words, but the names,
    those that say how to compare or choose (_COMPARING) or the kind of figure (_MEASURES), and Chinese
    ones that begin with 更, 较 or 最."""
    # (the question's own words: not read as the sources spell them, which made 病假 年假)
    names = terms(" ".join(set(evidence.names.values())))
    words = {w for w in terms(question) - names - _COMPARING - _MEASURES.keys() if not (w[:1] in "更较最" and not w.isascii())}
    return {w for w in words if w.isascii() or not any(w != longer and w in longer for longer in words)}  # 保修期, not also 保修 and 修期


def _holds_all(sentence: Sentence, wanted: set[str], evidence: Evidence) -> bool:
    """Whether a sentence says every wanted word: an English one as such, a Chinese one whole or by a
    part of two characters or more (保修期 by 保修, said in English as "warranty"; not 病假 by 年假)."""
    held = terms(sentence.text) | terms(sentence.header)
    if evidence.bridge is not None:  # a sentence in the other language says the question's words in its own
        held |= evidence.bridge.said(held, sentence.text)
    parts = [h for h in held if not h.isascii() and len(h) >= 2]
    return all(w in held or not w.isascii() and any(h in w for h in parts) for w in wanted)


def _named_best(evidence: Evidence, name: str, wanted: set[str] | None = None) -> Sentence | None:
    """The best sentence of the sources named `name` (Evidence.names) that holds a word of the question
    (and every one of `wanted`, when given): not a heading, not a line without letters."""
    return next((s for s in evidence.sentences if evidence.names.get(s.n) == name and s.own > 0
                 and not is_heading_line(s.text) and any(ch.isalpha() for ch in s.text)
                 and (wanted is None or _holds_all(s, wanted, evidence))), None)


def compares_named(question: str, evidence: Evidence, names: dict[int, str]) -> bool:
    """Whether a question asks which of the documents it names together (source_names) is more, or
    has the longer, the cheaper …, and each one has a sentence that holds a figure and says all that is
    compared (_compared_words): "Which has the longer warranty, the KX-200 or the KX-300?" over "The pump
    carries a 2-year warranty" and "… a 5-year warranty", which never say "longer" (it was refused). Each
    figure, said with its name, answers it; which is more is the reader's to see. "Which gives more sick
    leave, Acme or Globex?" over their annual leave does not."""
    distinct = set(names.values())
    if len(distinct) < 2 or not _CHOOSES.search(question):
        return False
    evidence = replace(evidence, names=names)
    wanted = _compared_words(question, evidence)
    if not wanted:
        return False  # "Which is better, Acme or Globex?": nothing said to compare them on
    for name in distinct:
        best = _named_best(evidence, name, wanted)
        if best is None or not has_kind(best.text, _measure(question), language(best.text), question):
            return False
    return True


def with_named_parts(question: str, evidence: Evidence) -> Evidence:
    """The evidence of a question that asks about named documents together (Evidence.names) with each
    one's best sentence first (_named_best: one that says all that is compared, if any), as a part of a
    question of parts is, so that each is quoted: Acme's 25 days beside Globex's 18 for
    "Globex和Acme的年假分别是多少天？"."""
    distinct = list(dict.fromkeys(evidence.names.values()))
    if len(distinct) < 2 or not evidence.sentences:
        return evidence
    wanted = _compared_words(question, evidence)
    top = evidence.sentences[0].score
    firsts = [replace(best, score=top) for name in distinct
              if (best := _named_best(evidence, name, wanted) or _named_best(evidence, name)) is not None]
    keys = {(f.n, f.pos) for f in firsts}
    return replace(evidence, sentences=firsts + [s for s in evidence.sentences if (s.n, s.pos) not in keys],
                   parts=sorted(set(evidence.parts) | keys))


def kinds_across(
    judged: list[tuple[str, Evidence, Decision]], query: str, hits: list[Hit], searched: str, others: frozenset[int] = frozenset()
) -> list[tuple[str, Evidence, Decision]]:
    """When the sources of the question's language name another kind of the thing asked (kind-not-covered),
    the sources of the other language do not answer with a sentence that names another kind of it too and
    not the asked one: helper 56 found "青松A1空气净化器的售价是多少？" refused over the Chinese price list (单价),
    then answered at 0.95 with the English price list's KX-200 row ("List price", 标价). An English "retail
    price" (no such word) still answers it (helper 58). The sources of another company's documents
    (`others`: chunk ids, see others_of) hold no kind of the named one's."""
    # (refused for weak evidence too: "How many days of sick leave do Initech employees get?" was answered from the
    # Chinese handbooks' 年假, its English sources' refusal being weak evidence, not yet the kind's, with Initech unsaid)
    unsaid = next((j for j in judged if j[0] == searched and j[2].reason in ("kind-not-covered", "weak-evidence") and j[1].sentences), None)
    if unsaid is None or len(judged) < 2:
        return judged
    own = [h for h in hits if h.chunk_id not in others]
    kinds = uncovered_compounds(query, own, unsaid[1].sentences[0].text)
    out = []
    for source, evidence, decision in judged:
        if source != searched and decision.answer and evidence.sentences:
            texts = [" ".join([h.text, h.context, *h.title_path]) for h in own if language(h.text) == source]
            quoted = f"{evidence.sentences[0].header}\n{evidence.sentences[0].text}"  # (a table row's kind is in its header)
            if any(not kind_said(k, texts) and other_kind_said(k, quoted) for k in kinds):
                decision = Decision(False, min(decision.confidence, YEAR_NOT_HELD), "kind-not-covered", decision.features)
        out.append((source, evidence, decision))
    return out


# the question's own language answers with the figures the other's answers with when its evidence says at
# least the other's share of the question's words less this: the dictionary reads more of a question in the
# other language's sentence ("get" in 享有)
OWN_LANGUAGE_MARGIN = 0.35
_FIGURES = re.compile(r"\d+(?:[.:,]\d+)*")


def _same_figures(a: Evidence, b: Evidence) -> bool:
    """Whether the best three sentences of two languages' evidence give the same figures (a translation's)."""
    said = [{f for s in e.sentences[:3] for f in _FIGURES.findall(s.text)} for e in (a, b)]
    return bool(said[0]) and said[0] == said[1]


def best_supported(judged: list[tuple[str, Evidence, Decision]], searched: str | None = None) -> tuple[str, Evidence, Decision]:
    """Of the judgements of a knowledge base's languages (judge), the one that answers with evidence
    saying the most of the question, then the most confident; when none answers, the most confident
    (the first of equals). The judgement of the question's language (`searched`) answers when it says as
    much, or nearly as much with the same figures (OWN_LANGUAGE_MARGIN), and something (with nothing said,
    answer_confidence 0 would change which is shown, not only whether): helper 57 found "How many days of
    annual leave do I get?" over an English handbook and its Chinese translation answered in Chinese
    (shares 0.67 and 1.0, both "15"). When the question's language's own sources are refused for weak
    evidence, another language's answer stands only when its evidence says nearly as much of the question
    (OWN_LANGUAGE_MARGIN less at most): "What is the remote work allowance?" was answered with a Chinese
    handbook's overtime rule (加班…工作日…: "work" through the dictionary, a share of 0.16) beside the
    English handbooks' refused "Staff may work from home up to 3 days a week" (0.61); a Chinese 餐补
    sentence (0.37) still answers "What is the meal allowance?" beside a refused English internet
    allowance (0.42), and a refusal for another period (an English policy of 2025 for "…in 2023?") sets
    no bar for its Chinese translation of 2023 (found by a helper's review). When no language answers,
    the most confident refusal is shown, as before (answer_confidence 0 then answers with it)."""
    answering = [j for j in judged if j[2].answer]
    refused = next((j for j in judged if j[0] == searched and j[2].reason == "weak-evidence"), None)
    if refused is not None and answering:  # the question's language found too little: another language answers only by saying nearly as much
        bar = refused[2].features.get("coverage", 0.0) - OWN_LANGUAGE_MARGIN
        answering = [j for j in answering if j[2].features.get("coverage", 0.0) > bar]
        if not answering:
            return refused
    if answering:
        best = max(answering, key=lambda j: (j[2].features.get("coverage", 0.0), j[2].confidence))
        own = next((j for j in answering if j[0] == searched), None)
        if own is not None:
            mine, theirs = own[2].features.get("coverage", 0.0), best[2].features.get("coverage", 0.0)
            if mine > 0 and (mine >= theirs or (mine >= theirs - OWN_LANGUAGE_MARGIN and _same_figures(own[1], best[1]))):
                return own
        return best
    return max(judged, key=lambda j: j[2].confidence)


def judge(
    embedder: Any, question: str, query: str, hits: list[Hit], searched: str, source: str,
    calibration: Callable[[str], Calibration], frequencies: tuple[int, dict[str, int]], others: frozenset[int] = frozenset(),
    naming: frozenset[str] = frozenset(),
) -> tuple[str, Evidence, Decision]:
    """The evidence of the sources in language `source` and the decision it supports, read with the
    calibration of the pair (`searched`, the question's language as searched; `source`). others: the chunk
    ids of the sources of another company's documents (others_of), which are no evidence; naming: the question's
    words (stemmed) that named its documents (Named.files)."""
    evidence, similarity = read_evidence(embedder, question, query, hits, searched, source, others)
    calibrated = calibration(pair_key(searched, source))  # "zh-en": a Chinese question, English sources
    among = [h for h in hits if language(h.text) == source]
    facts = features(hits, evidence, similarity, frequencies, calibrated.relevance, among)
    decision = decide(among, facts, calibrated, len(substantive_words(query)))
    best = evidence.sentences[0].n - 1 if evidence.sentences else 0  # the source the answer quotes first
    quoted = evidence.sentences[0].text if evidence.sentences else ""
    # read in this language's sources only: the AX-200's English guide does not answer "…of the AX-300?" because
    # the Chinese guide beside it holds AX-300 (found by a helper's review: its password sentence was quoted at 0.999)
    at = next((i for i, h in enumerate(among) if h is hits[best]), None) if hits else None
    within, quoting = (among, at) if at is not None else (hits, best)
    elsewhere = not_asked_about(query, within, frequencies[1], quoting, quoted, others) if decision.answer else ""
    if elsewhere:  # at most YEAR_NOT_HELD
        p = min(decision.confidence, YEAR_NOT_HELD)
        decision = Decision(p >= calibrated.cut, p, "answer" if p >= calibrated.cut else elsewhere, facts)
    # across languages, evidence that holds none of the question's words, or whose best source holds them only where it
    # says whose document it is: the document's name is all it shares with the question (found by review: "Aurora X2
    # 的保修期是多久？" was answered with the FAQ's English RESET sentence at 0.94, "How long is the warranty of the Aurora
    # X2?" with its Chinese installation temperatures; an FAQ's heading that asks the question still counts)
    titled_only = evidence.best is not None and evidence.text_coverage[evidence.best.n - 1] == 0
    if decision.answer and source != searched and (facts["coverage"] == 0 or titled_only):  # at most NOTHING_SAID
        p = min(decision.confidence, NOTHING_SAID)
        decision = Decision(p >= calibrated.cut, p, "answer" if p >= calibrated.cut else "nothing-said", facts)
    # a question that names a company, beside other companies' documents (others) that hold a word of it its own best
    # source lacks, is answered only with a figure of the asked kind (found by review: "Northwind的员工年假有几天？", 云杉科技's
    # handbook set aside, was answered with Northwind's travel policy's hotel limits at 0.87 -- its "Employees" and
    # name were all it said; "京东集团每月几号发工资？" is still answered "于每月最后一个工作日发放", no number), at most NOTHING_SAID;
    # across languages not even so (helper 100: "How long is maternity leave at Northwind?", Globex's handbook set aside, got
    # Northwind's Chinese payday sentence, "一个工作日" a duration, at 0.97: a cross-language decision reads no missing word)
    untyped = source != searched or (evidence.kind is not None and not facts["typed"])
    if decision.answer and untyped and said_of_others(hits, evidence, frequencies[1], others, naming):
        decision = Decision(False, min(decision.confidence, NOTHING_SAID), "nothing-said", facts)
    if decision.answer and evidence.kind == "money" and not _priced(evidence, hits, query):  # at most NO_PRICE
        p = min(decision.confidence, NO_PRICE)
        decision = Decision(p >= calibrated.cut, p, "answer" if p >= calibrated.cut else "no-price", facts)
    return source, evidence, decision


def _priced(evidence: Evidence, hits: list[Hit], query: str) -> bool:
    """Whether one of the two best sentences holds a sum of money (Sentence.typed) said of what the
    question asks: not of another code — "KX-700多少钱？" is not answered by the KX-200's 1,299 yuan, nor
    "What is the price of the KX-900?" by the ZX-1's row, a sentence (with its row's header and its
    section) that names a code and none the question asks being about another product."""
    asked = codes(query)
    for s in evidence.sentences[:2]:
        about = " ".join([s.text, s.header, s.section, *hits[s.n - 1].title_path])
        if s.typed and not about_another(about, query) and not (asked and codes(about) and not any(holds_code(about, c) for c in asked)):
            return True
    return False


def read_evidence(
    embedder: Any, question: str, query: str, hits: list[Hit], lang: str, source: str, others: frozenset[int] = frozenset()
) -> tuple[Evidence, float]:
    """The evidence of the sources for the question and the embedder's best similarity of the question
    and its best sentences. `source`, the most relevant source's language, is the evidence's: when it
    is not the question's (`lang`), the question's words are read in it through the dictionary
    (kbqa.bilingual), the sentences are ranked by meaning too (by_meaning), and only sentences of that
    language are candidates (a sentence in the question's own language scores higher on the
    embedder's scale, which the calibration of the pair does not read). Of sources of both languages,
    only the source language's sentences are candidates in the question's language too: each language
    is judged on its own evidence (a Chinese handbook's judgement is not read from English sentences
    that hold the question's "Orion Analytics 2024"). The sentences of the sources in `others` (chunk ids:
    another company's, others_of) are none of it."""
    evidence = gather(question, hits, query, bridge=None if source == lang else bridge(terms(query), source))
    if source != lang or len({language(h.text) for h in hits}) > 1 or others:
        evidence = replace(evidence, sentences=[s for s in evidence.sentences
                                                if language(hits[s.n - 1].text) == source and hits[s.n - 1].chunk_id not in others])
    evidence = replace(evidence, sentences=without_other_kinds(query, evidence, hits))
    return (evidence, sentence_cosine(embedder, query, evidence)) if source == lang else by_meaning(embedder, query, evidence)


# an answer's sources in another language than the quoted one: at least this relevance (0.5 on the
# calibrated scale: as likely as not to hold the answer), unless quoted
OTHER_LANGUAGE_KEPT = 0.5
# kbqa's confidence at most when the question is in another language than the quoted sentence, and that
# sentence (with its neighbours) says none of its words, even through the dictionary: its meaning alone
# is near ("谁发明了电话？" got the typewriter's patent); answer_confidence 0 still answers
NOTHING_SAID = 0.05
YEAR_NOT_HELD = 0.05  # kbqa's confidence at most, when no source holds a year the question names (answer_confidence 0 still answers)
# ... when a question asks a price (售价, "How much does … cost?") and neither of the two best evidence
# sentences holds a sum of money (a figure with a currency or a word of price or payment, or "free"):
# "What is the price of the Aurora X2?" over its manual, which gives none, was answered with its maker
# and its warranty (a price sentence of another document further down does not answer it either)
NO_PRICE = 0.05


class Embedded:
    """One question's embeddings: each text is embedded once, however often the evidence is read
    (across languages a reading embeds up to MEANING_SENTENCES sentences, and a knowledge base of
    both languages reads it for each language, after ordering the sources and after dropping some)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.documents: dict[str, Any] = {}
        self.queries: dict[str, Any] = {}

    def embed_documents(self, texts: list[str]) -> list[Any]:
        new = [t for t in dict.fromkeys(texts) if t not in self.documents]
        if new:
            self.documents.update(zip(new, self.embedder.embed_documents(new)))
        return [self.documents[t] for t in texts]

    def embed_query(self, text: str) -> Any:
        if text not in self.queries:
            self.queries[text] = self.embedder.embed_query(text)
        return self.queries[text]


def sentence_cosine(embedder: Any, query: str, evidence: Evidence, top: int = 3) -> float:
    """The embedder's best similarity between the question and its top evidence sentences."""
    texts = [s.text for s in evidence.sentences[:top]]
    if not texts:
        return 0.0
    import numpy as np

    vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    return float((vectors @ np.asarray(embedder.embed_query(query), dtype=np.float32)).max())


MEANING_SENTENCES = 48  # the most sentences a question in another language than its sources embeds (~10 ms each on 2 cores)
MEANING_MARGIN = 0.05  # a sentence this much less similar to the question than the best one gains nothing from its meaning
MEANING_WEIGHT = 0.5  # what the most similar sentence gains: less than a sentence holding the question's words (review: the
# sentence naming "Project Falcon" had outweighed the one holding its budget; the headquarters, the CEO's)


def by_meaning(embedder: Any, query: str, evidence: Evidence) -> tuple[Evidence, float]:
    """The evidence of a question asked in another language than its sources, ranked by its
    words as that language says them (gather's score, through the dictionary's bridge) plus up to
    MEANING_WEIGHT for its meaning: all of it for the sentence the embedder finds most similar to the
    question, falling to 0 at MEANING_MARGIN less; and the best similarity. The dictionary misses
    names and new words, the embedder tells a topic from the answer less well: each covers the
    other. The first MEANING_SENTENCES of the word ranking are read; the rest follow."""
    import numpy as np

    read, rest = evidence.sentences[:MEANING_SENTENCES], evidence.sentences[MEANING_SENTENCES:]
    if not read:
        return evidence, 0.0
    vectors = np.asarray(embedder.embed_documents([s.text for s in read]), dtype=np.float32)
    similar = (vectors @ np.asarray(embedder.embed_query(query), dtype=np.float32)).tolist()
    best = max(similar)
    sentences = sorted((replace(s, score=s.score + (0.0 if is_heading_line(s.text) else MEANING_WEIGHT * max(0.0, 1.0 - (best - c) / MEANING_MARGIN)))
                        for c, s in zip(similar, read)), key=lambda s: -s.score)  # (a heading is as near as its section, and no answer)
    return replace(evidence, sentences=sentences + rest), float(best)


def empty_kb(kb_name: str, zh: bool) -> str:
    """What asking or searching a knowledge base without a chunk says."""
    return (f"知识库 {kb_name} 是空的：请先导入文件（kbqa ingest 文件夹 --kb {kb_name}，或在网页上上传）。" if zh else
            f"The knowledge base {kb_name!r} is empty: ingest files first (kbqa ingest FOLDER --kb {kb_name}, or upload them in the web app).")


def refusal(kb_name: str, prepared: Prepared, empty: bool) -> str:
    from kbqa.prompts import templates

    zh = prepared.asked.lang == "zh"
    if empty:
        return empty_kb(kb_name, zh)
    text = templates(prepared.asked.lang).no_answer
    if prepared.decision.reason == "no-words":
        return ("问题里没有可以在资料中查找的词：请说明想问什么（例如“年假有几天？”）。" if zh else
                "The question has no words to look for in the documents: say what you want to know (e.g. \"How many days of annual leave?\").")
    if prepared.sources:
        text += " 下面是最接近的资料，仅供参考，并非答案。" if zh else " The closest passages are listed below as related material, not as an answer."
    return text


def answer(kb: Searchable, prepared: Prepared, answerer: Answerer | None, gen: dict[str, Any], model: str = "") -> AnswerStream:
    """The answer as a stream; sources are known at once. A refusal (or no answerer) generates nothing."""
    asked = prepared.asked
    if not prepared.decision.answer or answerer is None:
        text = refusal(kb.name, prepared, kb.is_empty())
        refused = AnswerStream(asked.question, prepared.sources, iter([text]), answered=False, model="",  # kbqa's own words: no model wrote them
                               query=asked.query, confidence=prepared.decision.confidence)
        refused.usage = prepared.usage
        return refused
    stream = AnswerStream(asked.question, prepared.sources, iter(()), answered=True, model=model or answerer.name,
                          query=asked.query, confidence=prepared.decision.confidence)
    stream.unmentioned = list(prepared.unmentioned)
    pieces = _checked(answerer.answer(asked, prepared.sources, prepared.evidence, gen))
    stream.set_pieces(_noted(unmentioned_note(prepared.unmentioned, asked.lang), pieces) if prepared.unmentioned else pieces,
                      refused=lambda: bool(getattr(answerer, "refused", False)),
                      # the answer is the evidence alone when the model's short answer did not hold: say so
                      written_by=lambda: "extractive" if getattr(answerer, "quoted_only", False) else None)
    usage = getattr(answerer, "usage", None)  # counted as it generates
    if usage is not None:
        usage.add(prepared.usage)
    stream.usage = usage or prepared.usage
    return stream


def unmentioned_note(names: tuple[str, ...] | list[str], lang: str) -> str:
    """What an answer says first when the question names what the documents never mention: what
    follows is what they say of others, which may not hold for it."""
    if lang == "zh":
        return f"注意：资料中没有提到{'、'.join(f'“{n}”' for n in names)}，以下内容未必适用。\n\n"
    quoted = " or ".join(f"“{n}”" for n in names)
    return f"Note: the documents never mention {quoted}; what they say below may not apply to {'it' if len(names) == 1 else 'them'}.\n\n"


def _noted(note: str, pieces: Iterator[str]) -> Iterator[str]:
    """The note, then the answer's pieces (closing this closes them)."""
    yield note
    yield from pieces


def _checked(pieces: Iterator[str]) -> Iterator[str]:
    """The answerer's pieces without leading blanks; Ctrl-C ends the answer cleanly."""
    first = True
    try:
        for piece in pieces:
            if first:
                piece = piece.lstrip()
                if not piece:
                    continue
                first = False
            yield piece
    except KeyboardInterrupt:
        return
    finally:  # closed early (the reader stopped): the answerer stops at once and gives back its turn
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
