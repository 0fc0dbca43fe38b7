"""What a question asks for and which sentences of the sources answer it.

The facts the answer pipeline decides with: the kind of answer a question wants (a number, a
percentage, a date, a duration, a person, a place), the sentences of the retrieved passages ranked by how much of the
question they hold (question words weighted by how rare they are among the candidates, so the topic
word every passage repeats counts little), and whether the best of them holds an answer of the
asked kind."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ingest.context import PART_SEPARATOR
from ingest.tables import is_header_row, row_cells
from ingest.textfacts import ASKING_ZH, MONTHS, TABLE_RULE, coverage, idf_weights, is_amount, is_han, language, near_spelling, paragraph_sentences, states_something, terms
from kbqa.bilingual import Bridge
from kbqa.codes import YEAR, floors, nearest_about_another, version_numbers
from kbqa.types import Hit

# --- the kind of answer asked for -----------------------------------------------------------------
_KINDS_ZH: list[tuple[str, re.Pattern[str]]] = [
    ("duration", re.compile(r"多久|多长时间|多少(天|年|个月|月|周|小时|分钟|秒)|几(天|年|个月|周|小时|分钟)|期限")),
    ("date", re.compile(r"何时|什么时候|哪一?年|哪一?天|哪个月|几月|几号|哪一?日|什么时间|何年|哪个(年代|世纪|朝代)|哪一?世纪|哪个时期")),
    ("percent", re.compile(r"比例|比率|占比|百分比|百分之|[增降涨跌]幅|(?<![汇频功速])率(?:是|为|有|达到?)?(?:多少|几)")),
    # (asked as a figure: not "定价由谁制定？", "售价包含安装吗？", "如何申请报价？")
    ("money", re.compile(r"多少钱|(?:售价|单价|价钱|报价|定价|票价|价格|收费|费用)(?:是|为|要|大概|大约|一般)*(?:多少|几)"
                         r"|(?:售价|单价|价钱|定价|票价|价格)(?:是|呢)?\s*[？?]?\s*$")),
    ("number", re.compile(r"多少|几[个位名次种项件座条家所只人]?|多大|多高|多长|多远|多重|多深|多宽|多厚|百分之|比例|人口|面积|金额|费用|价格")),
    ("person", re.compile(r"谁|哪位|哪个人|什么人|哪些人")),
    ("place", re.compile(r"哪里|哪儿|在哪|何处|何地|什么地方|哪个(国家|城市|省|地区)|位于")),
    ("definition", re.compile(r"定义|是什么意思|什么意思|指的?是什么|什么是|是指什么|含义")),
]
_KINDS_EN: list[tuple[str, re.Pattern[str]]] = [
    ("duration", re.compile(r"\bhow long\b|\bhow many (days|weeks|months|years|hours|minutes|seconds)\b|\bdeadline\b|\bperiod\b", re.I)),
    ("date", re.compile(r"\bwhen\b|\b(what|which) (years?|dates?|days?|months?|centur(y|ies)|decades?)\b|\bwhat time\b", re.I)),
    ("percent", re.compile(r"\b(what|which) (percentage|percent)\b|\bhow much percent\b|\bpercentage\b|\bper ?cent\b", re.I)),
    # (asked as a figure: not "Who sets the prices?", "Does the price include installation?", "Where is the price list?")
    ("money", re.compile(r"\bhow much money\b|\b(how much|what) (does|do|did|will|would|is|are|was|were)\b.{0,60}\bcosts?\b"
                         r"|\b(what(?:'s| is| was| are| were| will be)|how much (?:is|are|was|were))\b.{0,30}\bprices?\b(?!\s+(?:list|match|guarantee|increase|rise|change|policy))"
                         r"|^\W*prices?\s+(?:of|for)\b", re.I)),
    ("number", re.compile(r"\bhow (many|much|far|old|big|large|tall|high|deep|long|fast|heavy|often)\b|\bwhat (percentage|percent|number|amount|share|fraction|proportion|cost|price)\b|\baverage\b|\btotal\b|\bcost\b", re.I)),
    ("person", re.compile(r"\bwho(m|se)?\b|\bwhich (person|people|scientists?|kings?|presidents?|authors?|compan(y|ies))\b", re.I)),
    ("place", re.compile(r"\bwhere\b|\b(what|which) (countr(y|ies)|cit(y|ies)|states?|regions?|places?|towns?)\b", re.I)),
    ("definition", re.compile(r"\bdefin(e|ition)\b|\bwhat does .+ mean\b|\bmeaning of\b", re.I)),
]

_NUM_ZH = "0-9０-９一二两三四五六七八九十百千万亿半几零〇"
_HAS_NUMBER_ZH = re.compile(rf"[0-9０-９]|[{_NUM_ZH}]+\s*[{_NUM_ZH}]*(年|月|日|天|周|个|次|人|名|米|公里|千米|元|倍|%|％|小时|分钟|秒|岁|位|种|项|座|条|家|所|万|亿|世纪|期|届|层|吨|克|公斤|平方)")
_HAS_NUMBER_EN = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|million|billion|trillion|dozen|half|twice|several)\b", re.I)
_PERCENT = re.compile(r"%|％|百分之|\bper ?cent\b|‰", re.I)
# a figure said as money: a currency, or a word of price or payment beside it ("unit price of 499", "| 单价 | 499 |")
_MONEY_ZH = re.compile(r"[¥￥$€£₹₩]|元|块钱|美金|人民币|[港台]?币|RMB|CNY|HKD|USD|售价|单价|价格|价钱|定价|报价|零售价|指导价|标价|原价|现价|"
                       r"票价|金额|收费|费用|月费|年费", re.I)
# English: a currency, or a word of price or payment with a figure at most two words after it ("unit price
# of 499", "costs $5"; not "low running costs: it draws only 30 W", "Pay attention to the 3 lights")
_MONEY_EN = re.compile(r"[$€£¥￥₹₩]|\b(usd|eur|gbp|rmb|cny|jpy|hkd|aud|cad|sgd|chf|inr|krw|twd|nzd|yuan|renminbi|dollars?|euros?|pounds? sterling|"
                       r"pence|cents?|yen|rupees?|francs?)\b|\b(price[sd]?|costs?|fees?|charge[sd]?|paid|worth|msrp|rrp)\b\W{1,3}(?:[A-Za-z]+\W{1,3}){0,2}\d",
                       re.I)
# a table's column named so: its rows' figures are sums of money
_MONEY_HEADER = re.compile(r"[$€£¥￥₹₩]|\b(prices?|costs?|fees?|charges?|amount|msrp|rrp|usd|eur|rmb|cny)\b|价|费|金额|零售|元", re.I)
_FREE = re.compile(r"(?<![\w-])free\b(?!-)|\bno charge\b|免费|不收费", re.I)
_CALENDAR_EN = re.compile(r"(?<![$€£¥￥\d.,])\b(?:\d{1,2}\s+)?(?:" + "|".join(MONTHS) + r")\b\.?(?:\s+\d{1,2}(?:st|nd|rd|th)?\b,?)?(?:\s+\d{4})?|(?<![$€£¥￥\d.,])\b(?:19|20)\d{2}\b", re.I)
_TIME_UNIT_ZH = re.compile(r"[年月日天周]|小时|分钟|秒|世纪|星期|工作日|期间|以内|之内|内")
_TIME_UNIT_EN = re.compile(r"\b(years?|months?|weeks?|days?|hours?|minutes?|seconds?|centur(y|ies)|decades?)\b", re.I)
_DATE_ZH = re.compile(r"\d{2,4}\s*年|[0-9一二三四五六七八九十〇零]+\s*[年月日]|世纪|朝|年代|时期|期间|之后|以前|之前|初|末")
_DATE_EN = re.compile(r"\b1\d{3}\b|\b20\d{2}\b|\b(january|february|march|april|may|june|july|august|september|october|november|december|century|decade|\d{1,2}(st|nd|rd|th))\b|\d", re.I)
_CALENDAR_ZH = re.compile(r"[0-9０-９]{4}\s*年(?:\s*[0-9０-９]{1,2}\s*月(?:\s*[0-9０-９]{1,2}\s*[日号])?)?|[0-9０-９一二三四五六七八九十]{1,3}\s*月\s*[0-9０-９一二三四五六七八九十]{1,3}\s*[日号]")
_SPAN_ZH = re.compile(r"(?<![0-9０-９])[0-9０-９一二两三四五六七八九十百〇零]{1,3}\s*个?\s*(日|天|周|星期|月|年)(内|以内|之内|后|以后|之后|以上|以下|左右|起)")
_DEFINES_ZH = re.compile(r"是指|指的是|是一[种个类门项部座支]|定义为|称为|泛指|简称|是以|的统称|的总称")
_DEFINES_EN = re.compile(r"\b(is|are|was|were|refers? to|means|is defined as|is called)\b", re.I)
_NAME_EN = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][A-Za-z]*[a-z][A-Za-z]*")  # a capitalized word, not a sentence's first


# capitalized words that name no one and nowhere: a month or a day ("…at the end of March" is no
# answer to "Which company gives more annual leave?")
_CALENDAR_WORDS = {w.lower() for w in MONTHS} | {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}


def _names_beyond(text: str, question: str) -> bool:
    """Whether an English text holds a capitalized word (a name) that the question does not give:
    "This paper examines LangChain" names no one for "Who wrote the LangChain paper?"."""
    given = {w.lower() for w in re.findall(r"[A-Za-z]+", question)} | _CALENDAR_WORDS
    return any(m.group().lower() not in given for m in _NAME_EN.finditer(text))


def asked_kind(question: str) -> str | None:
    """duration | date | percent | money | number | person | place | definition | None (anything else: what, why, how, ...)."""
    for kind, pattern in _KINDS_ZH if language(question) == "zh" else _KINDS_EN:
        if pattern.search(question):
            return kind
    return None


FIGURE = re.compile(r"\d+(?:[.,]\d+)*")


def _without_figures_of(text: str, question: str) -> str:
    """text without the figures the question already gives: "2015年末资产总额" does not answer
    "2015年末资产总额是多少？" with a number."""
    for figure in set(FIGURE.findall(question)):
        text = re.sub(rf"(?<![\d.,]){re.escape(figure)}(?!\d)", " ", text)
    return text


def has_kind(text: str, kind: str | None, lang: str, question: str = "", header: str = "") -> bool:
    """Whether a text holds an answer of the kind asked (always true for no kind, and for persons and
    places in Chinese, which plain text cannot tell); a figure or a name the question gives does not
    count. header: a table row's column names, which say what its figures are ("Dealer price")."""
    if kind is None:
        return True
    if question:
        text = _without_figures_of(text, question)
    zh = lang == "zh"
    if kind == "money":  # a figure said as money ("It delivers 2 litres a minute", "Due date 5 May 2024": no price)
        figures = _CALENDAR_ZH.sub(" ", text) if zh else _CALENDAR_EN.sub(" ", text)
        money = (_MONEY_ZH if zh else _MONEY_EN).search(figures) is not None or bool(header) and _MONEY_HEADER.search(header) is not None
        return (_HAS_NUMBER_ZH if zh else _HAS_NUMBER_EN).search(figures) is not None and money or _FREE.search(text) is not None
    number = (_HAS_NUMBER_ZH if zh else _HAS_NUMBER_EN).search(text) is not None
    if kind == "number":
        return number
    if kind == "percent":
        return _PERCENT.search(text) is not None
    if kind == "duration":
        if zh:  # a date ("4月15日", "2024年") is no length of time
            text = _CALENDAR_ZH.sub(" ", text)
            number = _HAS_NUMBER_ZH.search(text) is not None
        return number and (_TIME_UNIT_ZH if zh else _TIME_UNIT_EN).search(text) is not None
    if kind == "date":
        if zh:
            text = _SPAN_ZH.sub(" ", text)  # "送达之日起15日内" is a time limit, not a date
        return (_DATE_ZH if zh else _DATE_EN).search(text) is not None
    if kind == "definition":
        return (_DEFINES_ZH if zh else _DEFINES_EN).search(text) is not None
    return True if zh else _names_beyond(text, question)


# --- evidence sentences ---------------------------------------------------------------------------
@dataclass
class Sentence:
    n: int  # the number of its source, from 1
    pos: int  # its place in that source
    text: str
    score: float  # how well it answers the question (higher is better)
    own: float  # the weighted share of the question's words it holds
    coverage: float  # ... it holds with its neighbours and its source's title
    typed: bool  # whether it holds an answer of the asked kind
    header: str = ""  # a table row's header row in its source ("" for prose, or none found)
    opens: bool = False  # whether it begins a paragraph of its source
    section: str = ""  # a list item's section title, when it says what the question asks and the item does not
    elsewhere: bool = False  # whether its passage's section or document is about another code or version than the asked one
    field: str = ""  # the label of the message header field it is ("from", "日期"), in a passage that holds a message's header

    def reading(self, lang: str) -> str:
        """The sentence as an answer quotes it: a table row read with its header's column names
        ("总资产（元）：本报告期末 298,608,889.04；上年度末 306,236,911.04"), a list item after its section's
        title when that holds what is asked ("Version 3.0 — 20 November 2023: - New: end-to-end
        encryption…" for "Which version added end-to-end encryption?"), else as it is."""
        if self.header:
            return row_reading(self.header, self.text, lang)
        if self.section:
            return f"{self.section}：{self.text}" if lang == "zh" else f"{self.section}: {self.text}"
        return self.text


def column_rows(text: str) -> set[str]:
    """The rows of a passage's Markdown tables that name columns rather than hold data: a row with
    no figure but years that stands over the rule, or has an empty first cell ("| | 2022 | 2021 |",
    "| | 本报告期末 | 上年度末 |"), or names three columns or more over a row of figures ("| 股东名称 |
    股东性质 | 持股比例 |" set inside a table). A row of words ("| E3 | Sensor dirty | Clean it |",
    "| Rated power | 45 W |", a timetable's "| S103 | 09:00 |") is data: it may be the answer."""
    lines = [line.strip() for line in text.split("\n")]
    out = set()
    for i, line in enumerate(lines):
        if TABLE_RULE.match(line) or not is_header_row(line):
            continue
        after = lines[i + 1] if i + 1 < len(lines) else ""
        cells = row_cells(line)
        if (TABLE_RULE.match(after) or not cells[0]
                or sum(bool(c) for c in cells) >= 3 and after.startswith("|") and any(is_amount(c) for c in row_cells(after))
                and not any(_MEASURE.match(c) for c in cells) and not _a_figure_among_words(cells)):
            out.add(line)
    return out


def _a_figure_among_words(cells: list[str]) -> bool:
    """Whether a row holds a number that could be a year beside cells of words after its label: a staff
    list's "| Kenji Watanabe | Finance | 2041 | Shanghai |" (extension 2041) is data, where a header's years
    stand together ("| Item | 2023 | 2022 |", "| | 2023 Q1 | 2023 Q2 |")."""
    rest = [c for c in cells[1:] if c]
    dated = [c for c in rest if YEAR.search(c)]
    return bool(dated) and len(dated) < len(rest)


# a cell that is a figure with its unit ("1 Gbps", "2.5 GHz", "3 years"; not a year, "2023 Q1"): a value, so its row holds data
_MEASURE = re.compile(r"[(\[$€£¥+\-−–]*(?!(?:19|20)\d\d\b)\d[\d.,]*\s+[^\W\d_]")


def table_header(text: str, row: str, names: set[str] | None = None) -> str:
    """The header row of a Markdown table row in a passage: the nearest row above it that names
    columns (column_rows: "|  | 本报告期末 | 上年度末 |", "| | 2022 | 2021 |", "| Code | Problem | Fix |"),
    or "". names: the passage's column_rows, when known already."""
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if line.strip() == row), None)
    if at is None or not row.startswith("|"):
        return ""
    names = column_rows("\n".join(lines[max(0, at - 60):at + 1])) if names is None else names
    for line in reversed(lines[max(0, at - 60):at]):
        line = line.strip()
        if not line.startswith("|"):
            return ""
        if line in names:
            return line
    return ""


def row_reading(header: str, row: str, lang: str) -> str:
    """A table row read with its header: its label, then each figure after its column's name."""
    names, cells = row_cells(header), row_cells(row)
    if len(names) != len(cells) or not cells[0]:
        return row
    pairs = [f"{name} {cell}".strip() for name, cell in zip(names[1:], cells[1:]) if cell]
    if not pairs:
        return row
    return f"{cells[0]}：{'；'.join(pairs)}" if lang == "zh" else f"{cells[0]}: {'; '.join(pairs)}"


@dataclass
class Evidence:
    """The question's words and kind, and the candidate sentences of the sources, best first."""

    question: str
    lang: str
    kind: str | None
    sentences: list[Sentence] = field(default_factory=list)
    passage_coverage: list[float] = field(default_factory=list)  # per source, in order
    text_coverage: list[float] = field(default_factory=list)  # ... of its text and headings, without whose document it is
    relevance: list[float] = field(default_factory=list)  # per source, in order
    question_terms: set[str] = field(default_factory=set)  # the question's own words as looked for (misspellings read as the sources spell them)
    spelled: dict[str, str] = field(default_factory=dict)  # a question word found in no source -> the sources' word it misspells
    parts: list[tuple[int, int]] = field(default_factory=list)  # a question of two or more parts: each part's best sentence (n, pos)
    bridge: Bridge | None = None  # the sources are in the other language: how the question's words are said there
    # the sources (numbered from 1) of documents the question does not name while it names another
    # source's (retrieval.named_documents): not quoted beside a named one's sentence
    unnamed: frozenset[int] = frozenset()
    # the sources (numbered from 1) of the documents a question names by different names ("…Globex and
    # Acme employees…"), each with the name as the question writes it: said before what is quoted of it
    names: dict[int, str] = field(default_factory=dict)
    # per source, in order: the words of its section titles that its document's description does not hold
    # ("年假申请" of 星河科技员工手册's "## 年假申请": what the passage is about, not whose it is)
    sections: list[set[str]] = field(default_factory=list)
    # per source, in order: the words of its document's description (whose document it is: 星河科技 of 星河科技员工手册)
    whose: list[set[str]] = field(default_factory=list)

    @property
    def best(self) -> Sentence | None:
        return self.sentences[0] if self.sentences else None


# how much a sentence's source's relevance counts beside the question words it holds: a word shared
# by chance ("计数" in 统计数据) in a passage of relevance 0 does not outweigh the best passage's sentence
# (benchmarks/answers.py, extractive, first 600 questions: answers holding a gold answer 88.7 / 88.0 /
# 90.5% at 0, 90.8 / 89.5 / 91.5% at 0.3 on CMRC / XQuAD-zh / XQuAD-en)
SOURCE_WEIGHT = 0.3
ANOTHER_CODE = 0.3  # what a sentence loses whose document or section is about another code or version than the asked one

# a question with more words that no source holds than this is not a misspelling to correct (and a
# 4,000-character question of unknown words would cost seconds of edit distances)
SPELL_AT_MOST = 8


def gather(question: str, hits: list[Hit], query: str | None = None, titles: bool = True, bridge: Bridge | None = None) -> Evidence:
    """Rank the sentences of the hits for the question. `query` (a follow-up's standalone form) adds
    its words at half weight: the user's own words decide, the context words help. `bridge`: the
    hits are in the other language; a sentence holds the question words it says in that language
    (kbqa.bilingual)."""
    lang = language(question)
    kind = asked_kind(question) or (asked_kind(query) if query else None)  # "那病假呢？" after "年假有几天？" asks for days too
    own = terms(question)
    extra = terms(query) - own if query and query != question else set()
    per_source: list[list[tuple[int, str, set[str]]]] = []
    opens: list[set[int]] = []  # per source, the places of the sentences that begin a paragraph
    headers: list[set[str]] = []  # per source, its tables' rows that name columns
    subject_lines: list[list[str]] = []  # per source, a message's subject lines (read as its title)
    fields: list[bool] = []  # per source, whether it holds a message's header (is_message_header)
    asked_numbers = _plain_numbers(question)
    asks_subject = _ASKS_SUBJECT.search(question) is not None  # a message's subject line answers only this
    for hit in hits:
        said = paragraph_sentences(hit.text)
        opens.append({pos for pos, (_, first) in enumerate(said) if first})
        headers.append(column_rows(hit.text) if "|" in hit.text else set())
        message = is_message_header(hit.text)  # a memo's or e-mail's header: its fields answer what they label
        fields.append(message)
        subjects = [s for s, _ in said if message and _is_subject(s)]  # a memo's subject line: its title
        found = [(pos, s, _said(terms(s), bridge, s) | _numbers_in_ranges(s, asked_numbers)) for pos, (s, _) in enumerate(said)
                 if not is_title(s, hit) and s not in headers[-1] and not (s in subjects and not asks_subject)]  # a heading, a table's header say no answer
        per_source.append(found)
        subject_lines.append(subjects)
    everything = [t for source in per_source for _, _, t in source]
    title_terms = [_said(terms(heading := " ".join([*hit.title_path, hit.context, *subjects])), bridge, heading) if titles else set()  # what each passage is, whose
                   for hit, subjects in zip(hits, subject_lines)]
    vocabulary = set().union(*everything, *title_terms)
    unknown = [t for t in own if t not in vocabulary]
    spelled = {t: near for t in unknown if (near := near_spelling(t, vocabulary))} if len(unknown) <= SPELL_AT_MOST and bridge is None else {}
    own = (own - spelled.keys()) | set(spelled.values())
    own = _rejoined(question, own, vocabulary) | {f"{n}f" for n in floors(question) if f"{n}f" in vocabulary}  # "5th floor" is 5F
    weights = idf_weights(own | extra, everything)
    for t in extra:
        weights[t] *= 0.5
    wanted = list(own | extra)
    out = Evidence(question, lang, kind, question_terms=own, spelled=spelled, bridge=bridge)
    elsewhere = [nearest_about_another([*reversed(hit.title_path), hit.context], question) for hit in hits]
    lines = [{line.strip() for line in hit.text.split("\n")} if hit.title_path else set() for hit in hits]  # for _is_item
    alone = [{line.strip(" *_\t") for line in hit.text.split("\n")} for hit in hits]  # each passage's lines, bold marks off
    asks_version = _ASKS_VERSION.search(question) is not None
    for n, (hit, found) in enumerate(zip(hits, per_source), start=1):
        passage = set().union(*(t for _, _, t in found)) if found else set()
        title = title_terms[n - 1]
        out.passage_coverage.append(coverage(wanted, passage | title, weights))
        out.relevance.append(hit.relevance)
        out.whose.append(_said(terms(hit.context), bridge, hit.context))
        out.sections.append(_said(terms(" ".join(hit.title_path)), bridge, " ".join(hit.title_path)) - out.whose[-1])
        out.text_coverage.append(coverage(wanted, passage | out.sections[-1], weights))
        for i, (pos, text, t) in enumerate(found):
            if is_question(text) and text.strip(" *_") in alone[n - 1] and not re.search("[:：]", text):
                continue  # an FAQ's question, a line of its own, is no answer (it is read as the next sentence's neighbour)
            if is_numbering(text) or (i > 0 and is_numbering(found[i - 1][1]) and not found[i - 1][1].lower().startswith("step")
                                      and len(text.split()) <= 2 and text.rstrip().endswith(".")):
                continue  # "Chapter 2." and its title "Safety." of a heading run into its text are no answer (found by review:
                # both were quoted); they are read as the next sentence's neighbours. (A step's "Wait 30 seconds." and a
                # section's "Parking is free." are: found by the next review)
            # a sentence is read with its neighbours; a table row is read with its columns' names, not
            # with the rows beside it (the next state's row says nothing of Texas; "Stock (units)" says
            # what the row's 45 is)
            header = table_header(hit.text, text, headers[n - 1]) if text.startswith("|") else ""
            window = t | _said(terms(header), bridge, header) if text.startswith("|") else t | (found[i - 1][2] if i > 0 else set()) | (found[i + 1][2] if i + 1 < len(found) else set())
            label = header_field(text) if fields[n - 1] else None
            asked = _asks_field(label, kind, own) or asks_subject and label is not None and _HEADER_FIELDS[label][1] is None
            if asked:  # "From: HR department" holds the "sent" of "Who sent the memo?"
                t = t | (terms(_HEADER_FIELDS[label or ""][0]) & own)
                window |= t
            own_cov = coverage(wanted, t, weights)
            # ranked as read: a row says what its header names ("Distributor price" 769); its own words alone
            # decide whether to answer (the header's "Owner" is in every row of the table)
            read_cov = coverage(wanted, window, weights) if header else own_cov
            window_cov = coverage(wanted, window | title, weights)
            # (a sentence in the other language is read in its own: "37 hours" answers 多少小时, though not as 小时)
            typed = has_kind(text, kind, lang if bridge is None else language(text), question, header) if label is None else kind is None or asked  # a Date: is no date of what the memo says
            score = (0.5 * read_cov + 0.25 * window_cov + 0.25 * out.passage_coverage[-1] + (0.15 if kind and typed else 0.0)
                     + (ASKED_FIELD if asked else 0.0)
                     + SOURCE_WEIGHT * hit.relevance - 0.02 * (n - 1) - 0.02 * (len(text) > 300) - ANOTHER_CODE * elsewhere[n - 1])
            section = (hit.title_path[-1] if hit.title_path and _is_item(text, lines[n - 1])
                       and (terms(hit.title_path[-1]) & own - t or asks_version and version_numbers(hit.title_path[-1])) else "")
            out.sentences.append(Sentence(n, pos, text, score, own_cov, window_cov, typed, header, pos in opens[n - 1], section, elsewhere[n - 1],
                                          label or ""))
    out.sentences.sort(key=lambda s: -s.score)
    return out


def _said(found: set[str], bridge: Bridge | None, text: str = "") -> set[str]:
    """A text's terms with the question's words it says in the other language."""
    return found | bridge.said(found, text) if bridge is not None else found


_DATE_EN_FULL = re.compile(r"(?:\d{1,2}\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s*(?:\d{1,2},?\s*)?\d{4}|\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}", re.I)


def is_bare_date(text: str) -> bool:
    """Whether a line is a date and nothing else (a notice's "2024年4月15日" under its signature)."""
    rest = _DATE_EN_FULL.sub(" ", _CALENDAR_ZH.sub(" ", text))
    return rest != text and not re.search(r"[^\W_]", rest)


def is_question(text: str) -> bool:
    """Whether a sentence asks something (an FAQ's "**How often must I change my password?**")."""
    return text.rstrip(" *_\"'”’)）").endswith(("?", "？"))


_ASKS_SUBJECT = re.compile(r"\babout\W*$|\b(?:subject|topic)\b|主题|关于什么|讲什么|什么内容|什么事", re.I)  # not "the memo about X"
_ASKS_VERSION = re.compile(r"\b(?:which|what) (?:version|release)\b|哪个版本|哪一版|哪版|什么版本", re.I)


_PLAIN_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})*(?:\.\d+)?(?![\w.,]\d|[%％])")
_RANGE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})*(?:\.\d+)?)\s*(?:–|—|-|~|～|to|至|到)\s*(\d{1,3}(?:,\d{3})*(?:\.\d+)?)(?![\w.]|,\d)")


def _plain_numbers(question: str) -> dict[str, float]:
    """The numbers a question gives (not years, codes or percentages): "60" of "an order of 60 units"."""
    return {m.group(0): float(m.group(0).replace(",", "")) for m in _PLAIN_NUMBER.finditer(question)
            if not YEAR.fullmatch(m.group(0))}


def _numbers_in_ranges(text: str, numbers: dict[str, float]) -> set[str]:
    """The question's numbers that a range of the text holds ("50–199 units" holds the 60 of "an order of 60
    units?"), as the question writes them: a term of the text."""
    if not numbers:
        return set()
    out = set()
    for a, b in _RANGE.findall(text):
        lo, hi = float(a.replace(",", "")), float(b.replace(",", ""))
        out |= {word for word, n in numbers.items() if lo < hi and lo <= n <= hi}
    return out


def _rejoined(question: str, own: set[str], vocabulary: set[str]) -> set[str]:
    """The question's words with a Chinese verb split by what it asks rejoined where the sources write
    it whole: 放几天假 is 放假, 请几天假 请假 (two single characters of the question, in its order and apart,
    that are one word of the sources)."""
    singles = sorted((t for t in own if len(t) == 1 and is_han(t)), key=question.find)
    for a, b in zip(singles, singles[1:]):  # split: something between them (可达 cut in two is not a verb split)
        if question.find(b) > question.find(a) + 1 and a + b in vocabulary and a + b not in own:
            own = (own - {a, b}) | {a + b}
    return own


# a question of parts: "谁发的？什么时候发的？", "Who approved it, and on what date was it sent?"
_AND_ASKS = re.compile(r",?\s+and\s+(?=(?:who|whom|what|when|where|which|how|(?:on|in|at|for|from|by) (?:what|which))\b)", re.I)
MAX_PARTS = 3


def question_parts(question: str) -> list[str]:
    """The questions a question asks at once, each with a question word or an asked kind of its own; one
    part (the question itself) for a plain one."""
    text = question.strip()
    parts = [p.strip() for p in re.split(r"(?<=[？?])\s*", text) if p.strip()]
    if len(parts) < 2:
        parts = [p.strip() for p in _AND_ASKS.split(text) if p.strip()]
    if not 2 <= len(parts) <= MAX_PARTS or not all(asked_kind(p) or _ASKS.search(p) for p in parts):
        return [text]
    return parts


_ASKS = re.compile(rf"\b(?:who|whom|what|when|where|which|how|why)\b|{ASKING_ZH}", re.I)


def with_parts(question: str, hits: list[Hit], query: str, evidence: Evidence) -> Evidence:
    """The evidence of a question of parts (question_parts) with each part's best sentence first (each part read
    with the whole question's words at half weight), so that each is quoted: "谁发的？什么时候发的？" gets the
    From: line and the Date: line. A plain question's evidence is returned as it is."""
    parts = question_parts(question)
    if len(parts) < 2 or not evidence.sentences:
        return evidence
    top = evidence.sentences[0].score
    firsts: list[Sentence] = []
    for part in parts:
        best = gather(part, hits, query if query != part else None).best
        if best is not None and all((best.n, best.pos) != (f.n, f.pos) for f in firsts):
            firsts.append(replace(best, score=top))
    keys = {(f.n, f.pos) for f in firsts}
    return replace(evidence, sentences=firsts + [s for s in evidence.sentences if (s.n, s.pos) not in keys],
                   parts=sorted(keys))


_LIST_ITEM = re.compile(r"\s*(?:[-*•·]|\d{1,2}[.)、])\s")


def _is_item(text: str, lines: set[str]) -> bool:
    """A list item, or a short line of its own in the passage (its `lines`) that is no sentence (a
    slide's bullet: "Target release: 18 November 2024"; not the unfinished tail of a paragraph)."""
    if _LIST_ITEM.match(text):
        return True
    return len(text) <= 80 and text in lines and not text.startswith("|") and not re.search(r"[。.!?！？;；]\W*$", text)


# a heading's number alone, as a sentence splits it off the heading: "Chapter 2.", "Section 4.1.", "Part IV.", "第三章"
_NUMBERING = re.compile(r"(?:(?:chapter|chap\.|section|sect?\.|part|article|art\.|appendix|annex|clause|step|unit|lesson|§)\s*"
                        r"(?:\d+(?:\.\d+)*|[ivxlc]+|[a-z])|第[一二三四五六七八九十百零〇\d]+[章节条篇部])\s*[.:：]?", re.I)


def is_numbering(text: str) -> bool:
    """Whether a sentence is only a heading's number ("Chapter 2.", "Section 4.1.", 第三章)."""
    return _NUMBERING.fullmatch(text.strip()) is not None


_HEADING_LINE = re.compile(r"[^\d，。！？；：,.!?;:]{1,24}")
_LATIN_HEADING_LINE = re.compile(r"[^\d,.!?;:]{1,60}")


def is_heading_line(text: str) -> bool:
    """Whether a line reads as a heading (short, no sentence punctuation, no figure: a document's
    title, 第一章 公司简介, "History of the typewriter": 24 characters, or 6 words of Latin script).
    Unlike is_title it needs no source; it can still be an answer (a short list item), so it only
    keeps such a line out of the sentences quoted beside the best one."""
    text = text.strip()
    if _HEADING_LINE.fullmatch(text):
        return True
    return text.isascii() and len(text.split()) <= 6 and _LATIN_HEADING_LINE.fullmatch(text) is not None


# The fields of a message's or a memo's header ("From: HR department", "主题：办公室搬迁通知"): what each
# label means in the words a question uses for it ("Who sent the memo?" asks for From:, 谁发的 for 发件人),
# and the kind of answer its value is. A subject line is the message's title (kind None).
_HEADER_FIELDS: dict[str, tuple[str, str | None]] = {
    "from": ("sent sender wrote author 发件人 发 发送 发出", "person"), "sender": ("sent sender 发件人 发 发送 发出", "person"),
    "to": ("recipient recipients addressed 收件人 发给", "person"), "cc": ("copied 抄送", "person"),
    "date": ("date dated sent 日期 发 发出", "date"), "sent": ("sent date dated 发送 发 发出", "date"),
    "subject": ("subject topic 主题", None), "re": ("subject topic 主题", None),
    "发件人": ("发件人 发 发送 发出 发件", "person"), "发文单位": ("发文 发 发出 单位", "person"), "收件人": ("收件人 发给 收件 接收", "person"),
    "抄送": ("抄送", "person"), "日期": ("日期 时间 发 发出", "date"), "发送时间": ("发送 时间 发 发出", "date"),
    "主题": ("主题", None), "事由": ("事由", None),
}
_HEADER_FIELD = re.compile(r"\s*(" + "|".join(sorted(map(re.escape, _HEADER_FIELDS), key=len, reverse=True)) + r")\s*[:：]\s*\S", re.I)
ASKED_FIELD = 0.3  # the bonus of a header field a question asks for ("Who sent…" and From:)


def header_field(text: str) -> str | None:
    """The label of a message header's field the text is ("from" for "From: HR department"), else None."""
    m = _HEADER_FIELD.match(text)
    return m.group(1).lower() if m and len(text) <= 200 else None


def is_message_header(text: str) -> bool:
    """Whether a passage holds a message's header: a subject line and a sender or a recipient line among its
    first lines ("From: …", "To: …", "Subject: …"; 发件人、收件人、主题). A timetable's "Subject: Chemistry" or
    a library's "From: 9:00 / To: 18:30" is no header."""
    labels = {header_field(line.strip()) for line in text.split("\n")[:15]}
    kinds = {_HEADER_FIELDS[label][1] for label in labels if label}
    return None in kinds and "person" in kinds


def _is_subject(text: str) -> bool:
    label = header_field(text)
    return label is not None and _HEADER_FIELDS[label][1] is None


def _asks_field(label: str | None, kind: str | None, own: set[str]) -> bool:
    """Whether the question asks for this header field: a word of it means the label, and it asks for the
    label's kind of answer (a person for From:, a date for Date:)."""
    if label is None or kind is None:
        return False
    meaning, of_kind = _HEADER_FIELDS[label]
    return of_kind == kind and bool(terms(meaning) & own)


def is_title(text: str, hit: Hit) -> bool:
    """Whether a piece of text is only a heading, a file's name or its document's title (a part of
    its description): a weak model's favourite answer, and no evidence. A heading that states something
    ("Refunds are paid within 14 days", set as a section's title) is evidence like any sentence."""
    flat = _flat(text)
    if not flat:
        return True
    if states_something(text):
        return False
    names = [_flat(name) for name in [*hit.title_path, hit.file.rsplit(".", 1)[0], *hit.context.split(PART_SEPARATOR)]]
    return any(flat == name for name in names if len(name) > 1)  # not a date part's lone 年


def _flat(text: str) -> str:
    return re.sub(r"[\s#*:：\[\]\d]+", "", text).lower()
