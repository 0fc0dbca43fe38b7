"""Every passage knows its document: descriptions from what a file says about itself and from
kbqa.yaml, questions that name a document get that document's sources, table pieces keep their
caption and units. The collection: two companies' HR handbooks and two product manuals whose
passages say the same thing in the same words, and never name their company."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, run_kbqa, write_pdf

from ingest import Document, load_file, split_documents
from ingest.context import clean_title, describe, name_words, title_line
from kbqa.named import name_as_written
from kbqa.kb import KnowledgeBase

SECTIONS_EN = {
    "Annual leave": "Employees receive {leave} days of paid annual leave each calendar year. Unused days lapse at the end of March.",
    "Working hours": "The working week is {hours} hours. Core hours run from ten to four; the rest is flexible.",
    "Expenses": "Travel expenses are reimbursed within {days} days of a claim with receipts attached.",
    "Remote work": "Staff may work from home up to {remote} days a week with their manager's agreement.",
}
SECTIONS_ZH = {
    "年假": "员工入职满一年后，每年享有{leave}天带薪年假，未休年假不予折现。",
    "加班": "加班须提前申请，工作日加班按{rate}倍工资计算。",
    "报销": "差旅费用须在出差结束后{days}天内提交报销申请。",
}
MANUAL = {
    "Filters": "Replace the sediment filter every {months} months and the carbon filter every year.",
    "Warranty": "The pump carries a {years}-year warranty from the date of purchase.",
    "Cleaning": "Wipe the tank with a soft cloth; never use bleach or solvents.",
    "Installation": "Fit the unit under the sink and connect the feed valve to the cold water line.",
}


def _markdown(title: str, sections: dict[str, str], **values: object) -> str:
    return f"# {title}\n\n" + "\n\n".join(f"## {h}\n\n{body.format(**values)}" for h, body in sections.items()) + "\n"


def write_collection(d: Path) -> Path:
    (d / "acme").mkdir(parents=True)
    (d / "globex").mkdir()
    (d / "manuals").mkdir()
    (d / "acme" / "handbook.md").write_text(_markdown("Employee handbook", SECTIONS_EN, leave=25, hours=37, days=30, remote=2), encoding="utf-8")
    (d / "globex" / "handbook.md").write_text(_markdown("Employee handbook", SECTIONS_EN, leave=18, hours=40, days=14, remote=3), encoding="utf-8")
    # the folders' names say nothing: kbqa.yaml says whose handbook each is
    (d / "acme" / "kbqa.yaml").write_text("description: Acme Corporation\n", encoding="utf-8")
    (d / "globex" / "kbqa.yaml").write_text("files:\n  handbook.md: Globex Industries staff handbook\n", encoding="utf-8")
    (d / "星河科技员工手册.md").write_text(_markdown("员工手册", SECTIONS_ZH, leave="十", rate="1.5", days="三十"), encoding="utf-8")
    (d / "蓝海集团员工手册.md").write_text(_markdown("员工手册", SECTIONS_ZH, leave="十五", rate="2", days="十五"), encoding="utf-8")
    (d / "manuals" / "KX-200 manual.md").write_text(_markdown("Water purifier manual", MANUAL, months=6, years=2), encoding="utf-8")
    (d / "manuals" / "KX-300 manual.md").write_text(_markdown("Water purifier manual", MANUAL, months=9, years=5), encoding="utf-8")
    # a price list whose description names no model: its rows do
    (d / "prices 2024.md").write_text("# Price list 2024\n\n| Model | Description | List price | Dealer price |\n|---|---|---|---|\n"
                                      "| KX-200 | Under-sink purifier | 1,299 | 999 |\n| KX-300 | Under-sink purifier with UV | 1,899 | 1,449 |\n",
                                      encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    home = tmp_path_factory.mktemp("home")
    d = write_collection(tmp_path_factory.mktemp("docs"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KBQA_HOME", str(home))
        with KnowledgeBase.open("companies", llm="extractive") as kb:
            report = kb.ingest([d])
            assert report.ok, [(f.name, f.error) for f in report.files]
            assert "kbqa.yaml" not in {f.name.rsplit("/", 1)[-1] for f in kb.files()}  # describes files, is not one
    yield home, d


@pytest.fixture
def kb(collection: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[KnowledgeBase]:
    monkeypatch.setenv("KBQA_HOME", str(collection[0]))
    with KnowledgeBase.open("companies", llm="extractive") as kb:
        yield kb


def _files(hits: list) -> set[str]:
    return {h.file for h in hits}


@pytest.mark.parametrize(
    ("question", "file", "fact"),
    [
        ("How many days of annual leave do Acme employees get?", "acme/handbook.md", "25"),
        ("How many days of annual leave do Globex employees get?", "globex/handbook.md", "18"),
        ("How many hours is the working week at Globex?", "globex/handbook.md", "40"),
        ("星河科技员工手册里年假有几天？", "星河科技员工手册.md", "十天"),
        ("蓝海集团的加班工资怎么算？", "蓝海集团员工手册.md", "2倍"),
        # the name written against what is asked of it: one run of Chinese name words, of which the
        # handbook's description holds 4 characters of 10 (it named nothing, and both handbooks' 期限 were quoted)
        ("蓝海集团差旅报销期限是多久？", "蓝海集团员工手册.md", "十五天"),
        ("How often should the sediment filter be replaced on the KX-300?", "manuals/KX-300 manual.md", "9 months"),
        ("What warranty does the KX-200 pump have?", "manuals/KX-200 manual.md", "2-year"),
        # an English name written against Chinese (review X05: "Bluefin新员工的试用期是多长？" named nothing, and
        # Xinghe's 6个月 answered for Bluefin's 3 months)
        ("Globex的年假有几天？", "globex/handbook.md", "18"),
    ],
)
@pytest.mark.slow
def test_a_question_that_names_a_document_gets_only_its_sources(kb: KnowledgeBase, question: str, file: str, fact: str) -> None:
    hits = kb.search(question, top_k=3)
    assert _files(hits) == {file}, [(h.file, h.text[:50]) for h in hits]
    assert fact in hits[0].text
    answer = kb.ask(question)
    assert answer.answered_from_documents and fact in answer.text, answer.text
    assert answer.sources[0].file == file


@pytest.mark.slow
def test_a_chinese_question_reads_the_english_handbooks_figures_as_the_kind_it_asks(kb: KnowledgeBase) -> None:
    """Across languages a sentence's kind was read with the question's language's patterns: "18 days"
    holds no 天, so no English sentence answered "多少天", and "Globex和Acme的年假分别是多少天？" was
    refused with the leave sentences shown as related."""
    answer = kb.ask("Globex和Acme的年假分别是多少天？")
    assert answer.answered_from_documents and "18 days" in answer.text, answer.text


def test_a_question_of_two_models_gets_each_models_fact(kb: KnowledgeBase) -> None:
    """Found by review: "What warranty do the KX-200 and KX-300 pumps have?" was refused (code-not-
    covered) with both manuals' warranty first: each manual counted as about another model than the
    other one asked."""
    answer = kb.ask("What warranty do the KX-200 and KX-300 pumps have?")
    assert answer.answered_from_documents and "2-year" in answer.text and "5-year" in answer.text, answer.text
    assert "KX-200: The pump carries a 2-year" in answer.text and "KX-300: The pump carries a 5-year" in answer.text, answer.text


@pytest.mark.slow
def test_a_name_the_documents_never_mention_is_said_before_what_they_say(kb: KnowledgeBase) -> None:
    """Found by review: "How many days of annual leave do Initech employees get?" was answered with
    Globex's 18 days and Acme's 25, "紫金集团员工的年假有几天？" with 蓝海集团's and 星河科技's, and neither
    said that no document is Initech's or 紫金集团's. The answer now says so first."""
    from kbqa.named import unmentioned

    answer = kb.ask("How many days of annual leave do Initech employees get?")
    assert answer.answered_from_documents and answer.unmentioned == ["Initech"], answer.unmentioned
    assert answer.text.startswith("Note: the documents never mention “Initech”") and "18 days" in answer.text, answer.text
    answer = kb.ask("紫金集团员工的年假有几天？")
    assert answer.unmentioned == ["紫金集团"] and answer.text.startswith("注意：资料中没有提到“紫金集团”"), answer.text
    assert kb.ask("Initech的年假有几天？").unmentioned == ["Initech"]  # a Chinese question's Latin word is a name wherever it stands
    for question, names in (("Which gives more annual leave, Initech or Umbrella?", ["Initech", "Umbrella"]),
                            ('What does "INITECH" pay for overtime?', ["INITECH"]), ("How does InGen handle expenses?", ["InGen"]),
                            ("研发中心员工的年假有几天？", ["研发中心"]), ("华为员工的年假有几天？", ["华为"]),
                            ("staff (Initech) leave?", ["Initech"]), ("How many days of leave do staff at Zu\u0308rich get?", ["Zürich"]),
                            ("ＩＮＩＴＥＣＨ的年假有几天？", ["INITECH"]),
                            # found by review: an organisation's word after the name or in it, an O', "vs." and "St.", two words
                            ("华为公司员工的年假有几天？", ["华为公司"]), ("华为公司的年假有几天？", ["华为公司"]), ("技术部员工的年假有几天？", ["技术部"]),
                            ("北京大学员工的年假有几天？", ["北京大学"]), ("How many days of annual leave do 华为 employees get?", ["华为"]),
                            ("Should I ask Sean O'Malley about annual leave?", ["Sean O'Malley"]),
                            ("Do Acme employees get more leave vs. Initech employees?", ["Initech"]), ("How many days do Burger King staff get?", ["Burger King"]),
                            ("Should I ask Mr. Smith about leave?", ["Smith"]), ("Is the St. Louis office open?", ["Louis"]),
                            ("集团总部员工的年假有几天？", []), ("子公司员工的年假有几天？", []), ("蓝海集团公司员工的年假有几天？", []),
                            ("How many days do Acme Corp staff get?", []), ("莱恩和威尔资助了什么？", []),
                            # found by review: words that name nothing before 员工, courtesies, a sentence after a dash,
                            # a code the documents glue (KX200 for KX-200) or write apart (T-shirt for Tshirt)
                            ("所有员工的年假有几天？", []), ("我们公司员工的年假有几天？", []), ("目前员工的年假有几天？", []),
                            ("实习员工的年假有几天？", []), ("全职员工的年假有几天？", []), ("How many days of annual leave do I get, Thanks?", []),
                            ("哪支团队的年假最多？", []), ("创立公司的员工年假有几天？", []),
                            ("Quick question - Vacation days per year?", []), ("Can I work from home on Fridays in January?", []),
                            ("Does the KX200 have a UV lamp?", []), ("Which is the EMployee handbook?", []),
                            # what the documents name, a capitalised first word, a qualifier the documents hold
                            ("How many days of annual leave do Globex employees get?", []), ("Vacation days at Globex?", []),
                            ("蓝海集团员工的年假有几天？", []), ("员工每年休假几天？", []), ("Does the KX-200 have a UV lamp?", [])):
        assert unmentioned(kb.catalog, question, kb.search(question)) == names, question
    answer = kb.ask("How many days of annual leave do Globex employees get?")
    assert answer.unmentioned == [] and answer.text.startswith("Employees receive 18 days"), answer.text
    # a follow-up is read as searched (found by review: "And how many hours…?" after the Initech question had no note)
    history = [{"role": "user", "content": "How many days of annual leave do Initech employees get?"}, {"role": "assistant", "content": "…"}]
    assert kb.ask("And how many hours is the working week?", history=history).unmentioned == ["Initech"]
    assert kb.ask("And Globex?", history=history).unmentioned == []  # (found by review: it still named Initech)
    assert kb.ask("那紫金集团呢？", history=history).unmentioned == ["紫金集团"]  # its own name, not the one before
    many = "Which of " + ", ".join(f"Zq{chr(97 + i % 26)}{i}tech" for i in range(300)) + " gives most leave?"  # looked up: the first 8
    assert unmentioned(kb.catalog, many, []) == [f"Zq{chr(97 + i)}{i}tech" for i in range(8)]
    # a refusal says it its own way; before, the Chinese handbooks' 年假 answered it (the English sources' refusal was
    # for weak evidence, Initech unsaid, not yet for the kind, so the other language's kind was not checked)
    refused = kb.ask("How many days of sick leave do Initech employees get?")
    assert not refused.answered_from_documents and refused.unmentioned == [], refused.text


@pytest.mark.slow
def test_an_answer_about_two_named_documents_says_whose_each_fact_is(kb: KnowledgeBase) -> None:
    """Found by review: "How many days of annual leave do Globex and Acme employees get?" was answered
    "Employees receive 18 days … [1] … Employees receive 25 days … [2]": the handbooks never say whose
    they are, and the answer did not either."""
    text = kb.ask("How many days of annual leave do Globex and Acme employees get?").text
    assert "Globex: Employees receive 18 days" in text and "Acme: Employees receive 25 days" in text, text
    text = kb.ask("星河科技和蓝海集团的加班工资怎么算？").text
    assert "蓝海集团：加班须提前申请，工作日加班按2倍" in text and "星河科技：加班须提前申请，工作日加班按1.5倍" in text, text
    # one named document, or one name: nothing to tell apart
    assert kb.ask("How many days of annual leave do Globex employees get?").text.startswith("Employees receive 18 days")
    # each document's sentences under its name (found by review: Globex's 40 hours came after "Acme: …" and read as Acme's)
    text = kb.ask("How many days of annual leave and how many hours of work do Globex and Acme staff get?").text
    assert text.index("Globex: ") < text.index("The working week is 40 hours") < text.index("Acme: "), text
    # 员工 names the Chinese 员工手册 too, but is not asked about beside Globex (found by review: "Bluefin：…")
    text = kb.ask("Globex员工的年假有几天？").text
    assert text.startswith("Employees receive 18 days") and "Globex：" not in text, text
    with KnowledgeBase.open("companies") as default:  # the default LLM, gemma-3-270m: no short answer of one of them
        text = default.ask("How many days of annual leave do Globex and Acme employees get?").text
    assert text.startswith("Globex: Employees receive 18 days") and "Acme: Employees receive 25 days" in text, text
    assert name_as_written("What warranty do the KX-200 and KX-300 pumps have?", ["kx", "300"]) == "KX-300"
    assert name_as_written("What warranty do the KX-200 and KX-300 pumps have?", ["300"]) == "KX-300"  # "kx" in every description
    assert name_as_written("Has Verizon increased its debt between 2022 and 2021?", ["verizon", "2022"]) == ""  # apart


@pytest.mark.slow
def test_a_question_that_asks_which_of_two_named_documents_gets_each_ones_figure(kb: KnowledgeBase) -> None:
    """"Which has the longer warranty, the KX-200 or the KX-300?" was refused: the manuals' warranty
    sentences ranked first and second, but neither says "longer". Each figure under its name answers it."""
    for question in ("Which has the longer warranty, the KX-200 or the KX-300?", "KX-200和KX-300哪个保修期更长？"):
        answer = kb.ask(question)
        assert answer.answered_from_documents, (question, answer.text)
        assert re.search("KX-200[:：]The pump carries a 2-year", answer.text.replace(": ", ":")), answer.text
        assert re.search("KX-300[:：]The pump carries a 5-year", answer.text.replace(": ", ":")), answer.text
    # a figure of something else is no answer: still refused (found by review: sick leave answered with annual leave)
    for question in ("Which has the longer battery life, the KX-200 or the KX-300?", "Which company gives more sick leave, Acme or Globex?",
                     "Do Acme or Globex employees get paid sick leave?", "Which is better, the KX-200 or the KX-300?"):
        assert not kb.ask(question).answered_from_documents, question
    text = kb.ask("Which company gives more annual leave, Acme or Globex?").text
    assert "Acme: Employees receive 25 days" in text and "Globex: Employees receive 18 days" in text, text
    # a word that names the kind of figure compared (期限, "period") is said by a figure of that kind: "哪家的报销期限更长"
    # was refused, 期限 being in no sentence; 还是 joins two names (it made one run of them, and 蓝海集团 named nothing)
    for question in ("星河科技和蓝海集团哪家的报销期限更长？", "星河科技还是蓝海集团的报销期限更长？"):
        text = kb.ask(question).text
        assert "星河科技：差旅费用须在出差结束后三十天内" in text and "蓝海集团：差旅费用须在出差结束后十五天内" in text, (question, text)
    text = kb.ask("Which company has the longer reimbursement period, Acme or Globex?").text
    assert "Acme: Travel expenses are reimbursed within 30 days" in text and "Globex: Travel expenses are reimbursed within 14 days" in text, text
    assert not kb.ask("Which company gives a longer sick leave period, Acme or Globex?").answered_from_documents
    from kbqa.answer import _measure  # "part-time", "three times" ask for no length of time (found by review)
    assert [_measure(q) for q in ("Which company has more part-time staff, Initech or Umbrella?", "Which was recalled more times, KX-200 or KX-300?",
                                  "Which company has the longer notice period, Acme or Globex?", "哪家的报销期限更长？", "哪家的公积金比例更高？")] == [
        "number", "number", "duration", "duration", "percent"]
    # a user's stricter answer_confidence holds a comparison back like any answer below it (note56's item)
    strict = kb.ask("Which has the longer warranty, the KX-200 or the KX-300?", answer_confidence=0.99)
    assert not strict.answered_from_documents, strict.text
    # ... but the fitted cut as the README writes it (0.22 English, 0.19 Chinese: found by review, 0.19 turned comparisons off)
    for question, cut in (("Which has the longer warranty, the KX-200 or the KX-300?", 0.22), ("星河科技和蓝海集团哪家的报销期限更长？", 0.19)):
        assert kb.ask(question, answer_confidence=cut).answered_from_documents, (question, cut)


@pytest.mark.slow
def test_a_name_is_said_of_the_document_whose_description_says_it_first(kb: KnowledgeBase, tmp_path: Path) -> None:
    """Found by review: a handbook described "Umbrella Ltd, formerly an Acme subsidiary", ranked above
    Acme's own, had its 10 days quoted as "Acme: …"."""
    d = tmp_path / "formerly"
    for folder, description, days in (("acme", "Acme Corporation", 30), ("globex", "Globex Industries staff handbook", 14),
                                       ("umbrella", "Umbrella Ltd, formerly an Acme subsidiary", 10), ("initech", "Initech Software handbook", 21),
                                       ("hooli", "Hooli staff handbook", 7)):  # (a name in more than half of the descriptions names nothing)
        (d / folder).mkdir(parents=True)
        (d / folder / "kbqa.yaml").write_text(f"description: {description}\n", encoding="utf-8")
        (d / folder / "handbook.md").write_text(_markdown("Employee handbook", SECTIONS_EN, leave=20, hours=38, days=days, remote=1), encoding="utf-8")
    with KnowledgeBase.open("formerly", llm="extractive") as other:
        assert other.ingest([d]).ok
        text = other.ask("Acme or Globex: who reimburses travel expenses faster?").text
        assert "Acme: Travel expenses are reimbursed within 30 days" in text and "within 10 days" not in text, text


@pytest.mark.slow
def test_a_row_that_names_the_asked_model_is_preferred_like_the_models_manual(kb: KnowledgeBase) -> None:
    """Found by a first-hour review: "What is the distributor price of the AX-300?" was refused: the manual that
    names the AX-300 took every place, and the price list's row for it came 6th; then its row lost to a meeting's
    "Prepare the distributor price list" (the row's "Distributor price" is in the table's header)."""
    hits = kb.search("What is the dealer price of the KX-300?", top_k=3)
    assert hits[0].file == "prices 2024.md", [(h.file, h.text[:40]) for h in hits]
    answer = kb.ask("What is the dealer price of the KX-300?")
    assert answer.answered_from_documents and "1,449" in answer.text, answer.text


def test_a_question_that_names_no_document_still_searches_them_all(kb: KnowledgeBase) -> None:
    hits = kb.search("How many days of paid annual leave do employees receive?", top_k=4)
    assert {"acme/handbook.md", "globex/handbook.md"} <= _files(hits)


def test_a_question_about_a_kind_of_leave_no_handbook_names_is_refused(kb: KnowledgeBase) -> None:
    """Found by a review: the handbooks say nothing of sick leave, and "蓝海集团的病假有几天？" was answered with
    Lanhai's annual leave (confidence 0.70), "How many days of sick leave do Acme employees get?" with Acme's (0.47)."""
    for question in ["蓝海集团的病假有几天？", "How many days of sick leave do Acme employees get?"]:
        answer = kb.ask(question)
        assert not answer.answered_from_documents and answer.sources, (question, answer.text)
    assert "十五天带薪年假" in kb.ask("蓝海集团的年假有几天？").text
    assert kb.ask("How many days of annual leave do Acme employees get?").text.startswith("Employees receive 25 days")


def test_an_answer_quotes_no_sentence_that_says_only_whose_document_it_is(kb: KnowledgeBase) -> None:
    """Found by review: "星河科技的年假有几天？" was answered with the annual leave and, as [2], the same
    handbook's overtime rule, which holds no word of the question (its document's description holds
    星河科技). A sentence beside a quoted one of its passage still follows it ("…up to 10 days per year;
    a doctor's note is needed after three days.")."""
    assert kb.ask("星河科技的年假有几天？").text == "员工入职满一年后，每年享有十天带薪年假，未休年假不予折现。 [1]"
    assert kb.ask("蓝海集团的加班工资怎么算？").text == "加班须提前申请，工作日加班按2倍工资计算。 [1]"
    both = kb.ask("年假有几天？").text  # a sentence that says what is asked is quoted from each handbook
    assert "十五天带薪年假" in both and "十天带薪年假" in both, both


def test_another_language_answers_only_by_saying_more_than_the_refused_own_language(kb: KnowledgeBase) -> None:
    """Found by a helper's review: "What Is The Remote Work Allowance?" was answered with 星河科技's overtime
    rule (confidence 0.91; 0.34 in lower case): its 工作日 says "work" through the dictionary (a share of
    the question of 0.16), while the English handbooks' "Staff may work from home up to 3 days a week"
    (0.61) was refused."""
    for question in ["What is the remote work allowance?", "What Is The Remote Work Allowance?"]:
        answer = kb.ask(question)
        assert "加班" not in answer.text, (question, answer.text)
        assert not answer.answered_from_documents or "work from home" in answer.text, (question, answer.text)
    overtime = kb.ask("How is overtime paid?")  # the Chinese handbooks say more of it than any English passage
    assert overtime.answered_from_documents and "加班" in overtime.text, overtime.text


REVIEWED = {  # a helper's review collection: a policy and its older translation, a handbook with a Chinese supplement, a manual
    "policy_en.md": "# Contoso Travel Policy (2025)\n\n## Hotels\n\nEmployees may book hotels up to 600 yuan per night in tier-1 cities. "
                    "In other cities the limit is 400 yuan per night.\n\n## Meals\n\nThe daily meal allowance on business trips is 150 yuan.\n",
    "policy_zh.md": "# Contoso 差旅政策（2023）\n\n## 酒店\n\n员工在一线城市预订酒店的标准为每晚500元。其他城市为每晚350元。\n\n## 餐费\n\n出差期间每日餐费补贴为120元。\n",
    "handbook_en.md": "# Northwind Employee Handbook\n\n## Remote Work\n\nStaff may work from home up to 2 days a week with their manager's "
                      "approval. The company provides a monthly internet allowance of 200 yuan for remote work.\n",
    "shouce_zh.md": "# Northwind 员工补充规定\n\n## 餐补\n\n公司为每位员工每月发放餐补600元，随工资一起发放。\n\n## 体检\n\n公司每年组织一次免费体检，体检时间一般安排在每年10月。\n",
    "xinghe_zh.md": "# 星河科技员工手册\n\n## 年假\n\n星河科技员工每年享有15天带薪年假。\n\n## 年假申请\n\n需提前两周在OA系统提交，经部门经理审批。"
                    "未休完的部分可顺延至次年3月底。\n\n## 加班\n\n工作日加班按1.5倍工资支付。周末加班可安排调休。\n",
    "ax200_en.md": "# AX-200 Router Quick Guide\n\n## Reset\n\nTo reset the AX-200 router, hold the reset button for 10 seconds.\n\n"
                   "## Default password\n\nThe default admin password of the AX-200 is printed on the label under the router.\n",
    "ax300_zh.md": "# AX-300 路由器快速指南\n\n## 恢复出厂设置\n\nAX-300路由器恢复出厂设置时，按住复位键15秒。\n\n## 默认密码\n\nAX-300的默认管理密码为admin123。\n",
    "x1_en.md": "# Lumina X1 Projector Guide\n\n## Warranty\n\nThe Lumina X1 is covered for 2 years from the purchase date.\n\n"
                "## Warranty exclusions\n\nLamps, remote controls and water damage are not included.\n\n"
                "## Brightness\n\nThe Lumina X1 has a brightness of 3200 lumens. Eco mode lowers it to 2400 lumens.\n",
}


@pytest.mark.slow
def test_what_the_two_rules_above_must_not_leave_out(tmp_path: Path, home: Path) -> None:
    """Found by a helper's review of the two rules above in their first forms: a refusal of the question's
    language for another period set the bar for its translation ("…in 2023?" over a 2025 policy and its
    2023 translation was refused), a refused English internet allowance set it for the Chinese 餐补 (by a
    share of the question only 0.05 higher), and the steps under "## 年假申请" and "## Warranty
    exclusions", whose sentences hold no word of the question, were left out although their section
    titles hold it."""
    for files, question, fact in [(("policy_en.md", "policy_zh.md"), "What was the hotel limit per night in tier-1 cities in 2023?", "每晚500元"),
                                  (("handbook_en.md", "shouce_zh.md"), "What is the meal allowance?", "餐补600元"),
                                  (("xinghe_zh.md", "x1_en.md"), "星河科技的年假怎么申请？", "OA系统"),
                                  (("xinghe_zh.md", "x1_en.md"), "How long is the Lumina X1 warranty and what is excluded?", "not included")]:
        d = tmp_path / files[0]
        if not d.exists():
            d.mkdir()
            for name in files:
                (d / name).write_text(REVIEWED[name], encoding="utf-8")
        with KnowledgeBase.open(files[0].split(".")[0], llm="extractive") as kb:
            assert kb.ingest([d]).ok
            answer = kb.ask(question)
        assert answer.answered_from_documents and fact in answer.text, (question, answer.text)


@pytest.mark.slow
def test_a_source_of_one_language_is_not_held_to_a_code_by_the_other_languages_sources(tmp_path: Path, home: Path) -> None:
    """Found by a helper's review: over an English AX-200 guide and a Chinese AX-300 guide, "What is the
    default admin password of the AX-300?" was answered with the AX-200's label sentence (0.999), and
    "AX-200路由器怎么恢复出厂设置？" with the AX-300's 15 seconds: each language's sources are judged apart,
    and a code the question names counted as held because the other language's guide holds it."""
    d = tmp_path / "docs"
    d.mkdir()
    for name in ("ax200_en.md", "ax300_zh.md"):
        (d / name).write_text(REVIEWED[name], encoding="utf-8")
    with KnowledgeBase.open("routers", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        assert "admin123" in kb.ask("What is the default admin password of the AX-300?").text
        assert "10 seconds" in kb.ask("AX-200路由器怎么恢复出厂设置？").text
        assert "label" in kb.ask("What is the default admin password of the AX-200?").text
        assert "15秒" in kb.ask("AX-300路由器怎么恢复出厂设置？").text


@pytest.mark.slow
def test_a_sentence_that_goes_on_from_a_quoted_one_is_still_quoted(tmp_path: Path, home: Path) -> None:
    """The rule above leaves out a passage's sentence that says no word of the question only when nothing of
    its passage is quoted: "a doctor's note is needed after three days" goes on from the sick leave it
    follows (a helper's review found it dropped by a first form of the rule)."""
    d = tmp_path / "docs"
    d.mkdir()
    (d / "benefits.md").write_text("# Benefits\n\n## Annual leave\n\nEmployees receive 20 days of annual leave per year.\n\n"
                                   "## Sick leave\n\nSick leave is paid for up to 10 days per year; a doctor's note is needed after three days.\n\n"
                                   "## Pension\n\nThe company pays 5 percent of salary into the pension plan.\n", encoding="utf-8")
    (d / "leave.md").write_text("# 请假制度\n\n## 年假\n\n员工入职满一年后，每年享有十天带薪年假。\n\n## 病假\n\n员工每年可享受带薪病假五天，超过三天须提供医院证明。\n\n"
                                "## 事假\n\n事假须提前三天提出申请，事假期间不发工资。\n", encoding="utf-8")
    (d / "kbqa.yaml").write_text("files:\n  leave.md: 年假与病假规定\n  benefits.md: Annual leave and sick leave rules\n", encoding="utf-8")
    with KnowledgeBase.open("goes-on", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        text = kb.ask("How much annual leave and sick leave do I get?").text
        assert "20 days of annual leave" in text and "up to 10 days" in text and "a doctor's note is needed" in text, text
        assert "事假" not in kb.ask("年假和病假各有几天？").text  # (a passage that says nothing asked: not quoted)


def _initech_gives_sick_leave(d: Path) -> None:
    """A third company's handbook, in English, that gives sick leave (which the others do not)."""
    (d / "initech").mkdir(parents=True)
    (d / "initech" / "kbqa.yaml").write_text("description: Initech Industries\n", encoding="utf-8")
    (d / "initech" / "handbook.md").write_text("# Employee handbook\n\n## Sick leave\n\nEmployees receive 12 days of paid sick leave per year.\n",
                                               encoding="utf-8")


def _refused(kb: KnowledgeBase, questions: list[str]) -> None:
    for question in questions:
        answer = kb.ask(question)
        assert not answer.answered_from_documents, (question, answer.text)


def _answered(kb: KnowledgeBase, asked: list[tuple[str, str]]) -> None:
    """Each question is answered from the documents, and its answer holds what it must say."""
    for question, said in asked:
        answer = kb.ask(question)
        assert answer.answered_from_documents and said in answer.text, (question, answer.text)


@pytest.mark.slow
def test_a_kind_of_leave_only_another_companys_handbook_names_is_refused_for_the_named_company(tmp_path: Path, home: Path) -> None:
    """Found by review: with 紫金集团's handbook giving 12 days of sick leave beside handbooks that say
    nothing of it, "蓝海集团的病假有几天？" was answered with 蓝海集团's annual leave: another company's sick
    leave counted as the named handbook's (and 紫金集团's passage named 蓝海集团 by their shared 集团); and
    (helper 61) "…Globex Industries employees…" with Initech Industries' sick leave, quoted as the answer."""
    d = write_collection(tmp_path / "docs")
    for path in [*(d / "manuals").iterdir(), d / "prices 2024.md"]:
        path.unlink()
    (d / "紫金集团员工手册.md").write_text("# 紫金集团员工手册\n\n## 病假\n\n紫金集团员工因病请假，每年可享受带薪病假十二天，需提供医院证明。\n\n"
                                          "## 年假\n\n员工每年享有带薪年假二十天。\n", encoding="utf-8")
    _initech_gives_sick_leave(d)
    with KnowledgeBase.open("sick", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        _refused(kb, ["蓝海集团的病假有几天？", "How many days of sick leave do Globex Industries employees get?",
                      "How many days of paid sick leave do Globex Industries employees get per year?",
                      # 紫金集团's handbook holds 集团 and 员工 of "蓝海集团员工", half of what 蓝海集团's holds, and was named
                      # with it; "员工…，蓝海集团…" began its name at 员工 (note58): both quoted 紫金集团's 十二天
                      "蓝海集团员工的病假有几天？", "员工的病假，蓝海集团规定几天？"])
        assert "十二天" in kb.ask("紫金集团的病假有几天？").text
        assert "十二天" in kb.ask("病假有几天？").text  # a question that names no company: whoever's handbook holds it
        assert "12 days" in kb.ask("How many days of sick leave do Initech employees get?").text
        assert "十五天带薪年假" in kb.ask("蓝海集团的年假有几天？").text


@pytest.mark.slow
def test_the_named_companys_other_documents_still_answer_for_it(tmp_path: Path, home: Path) -> None:
    """Found by helper 59 on a first version of the rule above: a company's second document ("Globex benefits
    summary", 蓝海福利说明, 集团福利说明) must still answer for it when the question names the company by more
    words than that document's description holds ("Globex Industries"), or when it names no company at all
    (a one-company knowledge base's 请假制度); only another company's document is no answer."""
    d = tmp_path / "docs"
    (d / "globex").mkdir(parents=True)
    (d / "蓝海集团员工手册.md").write_text("# 员工手册\n\n## 年假\n\n员工入职满一年后，每年享有十五天带薪年假，未休年假不予折现。\n", encoding="utf-8")
    (d / "请假制度.md").write_text("# 请假制度\n\n## 事假\n\n员工请事假须提前三天申请。\n", encoding="utf-8")
    _initech_gives_sick_leave(d)
    (d / "globex" / "kbqa.yaml").write_text("files:\n  handbook.md: Globex Industries staff handbook\n  benefits.md: Globex benefits summary\n",
                                            encoding="utf-8")
    (d / "globex" / "handbook.md").write_text("# Employee handbook\n\n## Annual leave\n\nEmployees receive 18 days of paid annual leave each calendar year.\n",
                                              encoding="utf-8")
    (d / "globex" / "benefits.md").write_text("# Benefits\n\n## Sick leave\n\nGlobex employees receive 10 days of paid sick leave per year.\n",
                                              encoding="utf-8")
    with KnowledgeBase.open("sick", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        assert "12 days" in kb.ask("How many days of sick leave do Initech employees get?").text
        assert "10 days" in kb.ask("How many days of sick leave do Globex Industries employees get?").text
        (d / "请假制度.md").write_text("# 请假制度\n\n## 病假\n\n员工因病请假，每年可享受带薪病假八天，需提供医院证明。\n", encoding="utf-8")
        assert kb.ingest([d]).ok
        answer = kb.ask("蓝海集团员工的病假有几天？")
        assert "八天" in answer.text and "12 days" not in answer.text, answer.text


@pytest.mark.slow
def test_a_sentence_about_another_kind_is_no_answer_when_a_source_says_the_asked_kind(tmp_path: Path, home: Path) -> None:
    """Found by this session's review of the rule above: 蓝海集团's handbook gives only annual leave, a
    general 请假规定 gives sick leave; "蓝海集团员工的病假有几天？" was answered with the handbook's 年假
    (the named document's sentence scored higher), the 病假 sentence quoted after it or not at all; and "How
    many days of sick leave do Acme employees get?" with Acme's 25 days of annual leave."""
    d = tmp_path / "docs"
    d.mkdir()
    (d / "蓝海集团员工手册.md").write_text("# 员工手册\n\n## 年假\n\n员工入职满一年后，每年享有十五天带薪年假，未休年假不予折现。\n", encoding="utf-8")
    (d / "请假规定.md").write_text("# 请假规定\n\n## 病假\n\n员工因病请假，每年可享受带薪病假八天，需提供医院证明。\n\n"
                                   "## 事假\n\n员工请事假须提前三天申请，每年事假累计不超过五天。\n", encoding="utf-8")
    with KnowledgeBase.open("leave", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        for question in ["蓝海集团员工的病假有几天？", "蓝海集团规定的病假有几天？", "员工的病假，蓝海集团规定几天？"]:
            answer = kb.ask(question)
            assert "八天" in answer.text and "十五天" not in answer.text, (question, answer.text)
        both = kb.ask("病假和事假各有几天？").text  # a kind the question names too is no other kind
        assert "八天" in both and "五天" in both, both
        assert "十五天" in kb.ask("年假有几天？").text
    (d / "Acme handbook.md").write_text("# Employee handbook\n\n## Annual leave\n\nEmployees receive 25 days of paid annual leave each year.\n",
                                        encoding="utf-8")
    (d / "Leave policy.md").write_text("# Leave policy\n\n## Sick leave\n\nEmployees receive 8 days of paid sick leave per year.\n", encoding="utf-8")
    with KnowledgeBase.open("leave", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        for question in ["How many days of sick leave do Acme employees get?", "How many days of sick leave do employees get?"]:
            answer = kb.ask(question)
            assert "8 days" in answer.text and "25 days" not in answer.text, (question, answer.text)
        assert "25 days" in kb.ask("How many days of annual leave do Acme employees get?").text


@pytest.mark.slow
def test_a_sentence_that_names_another_kind_in_passing_still_answers(tmp_path: Path, home: Path) -> None:
    """Found by helper 62 on a first version of the rule above: answers that name another kind in passing
    ("不占用年假" under "## 病假"), or whose kind only a note names without an answer ("以上售价均含增值税" under
    the 单价 rows; "List prices exclude VAT"), were dropped; and a company's own regulations were taken for
    another company's ("蓝海集团费用报销管理办法…" refused 财务部费用报销管理办法's 三十天). Helper 63 on the
    second: an answer that says its kind another way ("结婚的…带薪假期十天", "who marry") and names annual
    leave in passing was dropped for a rule beside it that names the kind ("婚假须提前三天…申请")."""
    d = tmp_path / "docs"
    d.mkdir()
    (d / "请假制度.md").write_text("# 请假制度\n\n## 病假\n\n员工因病请假的，每年可享受带薪十天，不占用年假。\n\n病假超过三天须提供二级以上医院证明。\n\n"
                                   "## 产假\n\n女员工生育可休假一百五十八天，休完后可连休年假。\n\n产假申请须提前一个月提交。\n", encoding="utf-8")
    (d / "价格表.md").write_text("# 2024年产品价格表\n\n青松A1空气净化器单价为2999元。\n\n青松A2空气净化器单价为3999元。\n\n以上售价均含增值税，运费另计。\n",
                                encoding="utf-8")
    (d / "蓝海集团员工手册.md").write_text("# 员工手册\n\n## 年假\n\n员工入职满一年后，每年享有十五天带薪年假。\n", encoding="utf-8")
    (d / "财务部费用报销管理办法.md").write_text("# 费用报销管理办法\n\n报销须在费用发生后三十天内提交。\n", encoding="utf-8")
    (d / "人力资源部考勤管理制度.md").write_text("# 考勤管理制度\n\n迟到三次按旷工半天处理。\n", encoding="utf-8")
    # (helper 63: the answer says the kind another way, and names another in passing, beside a rule that names it)
    (d / "假期规定.md").write_text("# 假期规定\n\n## 结婚\n\n婚假须提前三天向部门负责人申请。员工结婚的，可享受带薪假期十天，可与年假合并使用。\n",
                                   encoding="utf-8")
    english = tmp_path / "english"  # (a knowledge base of its own: of both languages, the Chinese rule answers the English question)
    english.mkdir()
    (english / "Price list.md").write_text("# Price list 2024\n\nThe AX-200 router has a unit price of 499 dollars.\n\n"
                                           "The AX-300 router has a unit price of 699 dollars.\n\nList prices exclude VAT and shipping.\n", encoding="utf-8")
    (english / "Leave rules.md").write_text("# Leave rules\n\n## Marrying\n\nMarriage leave must be requested 3 days in advance. Employees who "
                                            "marry receive 10 paid days off, which may be combined with annual leave.\n", encoding="utf-8")
    with KnowledgeBase.open("passing-en", llm="extractive") as kb:
        assert kb.ingest([english]).ok
        _answered(kb, [("What is the list price of the AX-200 router?", "499"), ("How many days of marriage leave do employees get?", "10 paid days")])
    with KnowledgeBase.open("passing", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        _answered(kb, [("病假有几天？", "十天"), ("产假有多少天？", "一百五十八天"), ("青松A1空气净化器的售价是多少？", "2999"), ("婚假有几天？", "带薪假期十天"),
                      ("蓝海集团费用报销管理办法规定报销期限是多久？", "三十天"), ("蓝海集团考勤管理制度里迟到怎么处理？", "旷工半天")])


@pytest.mark.slow
def test_a_kind_the_sources_of_the_questions_language_do_not_name_is_not_answered_from_the_other_language(tmp_path: Path) -> None:
    """Found by review: "青松A1空气净化器的售价是多少？" was refused over the Chinese price list (its 单价 is
    another kind of price than 售价), then answered at 0.95 with the English price list's KX-200 row."""
    d = tmp_path / "prices"
    d.mkdir()
    (d / "prices 2024.md").write_text("# Price list 2024\n\n| Model | Description | List price | Dealer price |\n|---|---|---|---|\n"
                                      "| KX-200 | Under-sink purifier | 1,299 | 999 |\n| KX-300 | Under-sink purifier with UV | 1,899 | 1,449 |\n",
                                      encoding="utf-8")
    (d / "青松家电价目表.md").write_text("# 青松家电价目表\n\n青松A1空气净化器单价为1999元，预订须交定金300元。\n\n青松落地电扇的单价为299元。\n", encoding="utf-8")
    with KnowledgeBase.open("prices", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        answer = kb.ask("青松A1空气净化器的售价是多少？")
        assert "KX-200" not in answer.text, answer.text
        assert "1999元" in kb.ask("青松A1空气净化器的单价是多少？").text


def test_a_name_that_shares_only_generic_words_with_a_description_names_nothing(kb: KnowledgeBase) -> None:
    """"星海国际工程集团" is not 蓝海集团 because both are a 集团 (a review's "哈尔滨电气国际工程有限责任公司"
    named the report of "东北电气发展股份有限公司" by their shared 电气, 有限 and 公司, and the notice about
    the company asked for fell from the top of the sources)."""
    ids = {f.name: f.id for f in kb.files()}
    assert ids["蓝海集团员工手册.md"] in kb.catalog.named_files("蓝海集团的年假有几天？")
    assert ids["蓝海集团员工手册.md"] not in kb.catalog.named_files("星海国际工程集团的年假有几天？")
    hits = kb.search("星海国际工程集团的年假有几天？", top_k=4)
    assert {"星河科技员工手册.md", "蓝海集团员工手册.md"} <= _files(hits), [(h.file, h.text[:30]) for h in hits]


def test_descriptions_come_from_the_files_and_kbqa_yaml(kb: KnowledgeBase) -> None:
    described = {f.name: f.description for f in kb.files()}
    assert described["acme/handbook.md"].startswith("Acme Corporation")
    assert described["globex/handbook.md"].startswith("Globex Industries staff handbook")
    assert "KX-300 manual" in described["manuals/KX-300 manual.md"]
    assert "星河科技员工手册" in described["星河科技员工手册.md"]
    # the stored and shown text stays the chunk itself
    hit = kb.search("How many hours is the working week at Globex?", top_k=1)[0]
    assert "Globex" not in hit.text


@pytest.mark.slow
def test_editing_kbqa_yaml_reingests_the_files_it_describes(tmp_path: Path, home: Path) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.md").write_text(_markdown("Handbook", SECTIONS_EN, leave=25, hours=37, days=30, remote=2), encoding="utf-8")
    (d / "b.md").write_text(_markdown("Handbook", SECTIONS_EN, leave=18, hours=40, days=14, remote=3), encoding="utf-8")
    with KnowledgeBase.open("sidecar", llm="extractive") as kb:
        assert kb.ingest(d).ok
        assert {f.status for f in kb.ingest(d).files} == {"skipped"}
        (d / "kbqa.yaml").write_text("files:\n  a.md: Initech handbook\n  b.md: Umbrella handbook\n", encoding="utf-8")
        statuses = {f.name: f.status for f in kb.ingest(d).files}
        assert statuses == {"a.md": "updated", "b.md": "updated"}
        hits = kb.search("Annual leave days at Umbrella?", top_k=2)
        assert _files(hits) == {"b.md"} and "18" in hits[0].text
        (d / "kbqa.yaml").write_text("files: [not, a, mapping]\n", encoding="utf-8")
        report = kb.ingest(d)
        errors = {f.name: f.error for f in report.files}
        assert all(e and "kbqa.yaml" in e for e in errors.values()), errors
        assert kb.search("Annual leave days at Umbrella?", top_k=1)[0].file == "b.md"  # the last good version stays


@pytest.mark.slow
def test_the_cli_shows_a_files_description(tmp_path: Path, home: Path) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    write_pdf(d / "KX-200 manual.pdf", ["Water purifier manual\n\nReplace the sediment filter every 6 months."])
    assert run_kbqa("ingest", str(d), "--kb", "m").returncode == 0
    out = run_kbqa("kb", "files", "m", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert "KX-200 manual" in rows[0]["description"]


# --- descriptions and captions, one function at a time ------------------------------------------------
def test_a_files_own_title_counts_unless_it_is_an_id_or_a_tools_default() -> None:
    assert clean_title("10-K - 02/07/2019 - 3M Company") == "10-K - 02/07/2019 - 3M Company"
    assert clean_title("0001018724-18-000005") == ""
    assert clean_title("Microsoft Word - F20_10K_VFinal_07.01.2020.docx") == ""
    assert clean_title("F20_10K_VFinal_07.01.2020") == ""
    assert clean_title("/home/me/report.pdf") == ""
    assert name_words("AMCOR_2023Q2_10Q.pdf") == "AMCOR 2023Q2 10Q"
    assert name_words("20230331.pdf") == ""
    assert name_words("manual_v2.1.pdf") == "manual v2.1" and name_words("report.final.docx") == "report final"


def test_describe_joins_title_name_title_block_and_date_without_repeats() -> None:
    docs = [
        Document("UNITED STATES\n\nFor the quarterly period ended March 31, 2023", {"page": 1, "title_path": ["FORM 10-Q"], "about": {"title": "0000950170-23-014423"}}),
        Document("Microsoft Corporation\n\n(Exact name of registrant)", {"page": 1, "title_path": ["FORM 10-Q", "MICROSOFT CORPORATION"]}),
        Document("Revenue grew.", {"page": 2, "title_path": ["PART I"]}),
    ]
    assert describe(docs, "MSFT_2023Q3_10Q.pdf") == "MSFT 2023Q3 10Q — FORM 10-Q — MICROSOFT CORPORATION — March 31, 2023"
    assert describe(docs, None, given="Microsoft quarterly filings").startswith("Microsoft quarterly filings — ")
    # a text without pages: the title its sections share, not its sections' headings (found by a first-hour review:
    # "q2 project status report — Summary — People — Costs")
    report = [Document("Project Status Report\nReport date: 2024-06-28", {"page": None, "title_path": []}),
              *(Document(f"{h} text.", {"page": None, "title_path": [h]}) for h in ("Summary", "People", "Costs"))]
    assert describe(report, "q2_project_status_report.txt") == "q2 project status report"
    handbook = [Document(f"{h} text.", {"page": None, "title_path": ["Bluefin Logistics GmbH - Staff Handbook", h]}) for h in ("Leave", "Notice")]
    assert describe(handbook, "handbook.txt") == "Bluefin Logistics GmbH - Staff Handbook"  # (it holds the name)
    minutes = [Document(f"{h} text.", {"page": None, "title_path": [h]}) for h in ("Product Meeting - Minutes", "Discussion", "Action items")]
    assert describe(minutes, "notes.docx") == "notes — Product Meeting - Minutes"  # the first section's title, not the others'


def test_markdown_front_matter_describes_the_file_and_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("---\ntitle: KX-200 service notes\nauthor: Jo\n---\n# Pump\n\nThe pump hums.\n", encoding="utf-8")
    docs = load_file(path)
    assert docs[0].meta["about"] == {"title": "KX-200 service notes"}
    assert "author" not in "".join(d.text for d in docs)
    assert describe(docs, path.name).startswith("KX-200 service notes")



def test_office_files_are_described_by_their_core_properties_and_word_page_headers(tmp_path: Path) -> None:
    """Found by review: a Word document's core title and page header, a deck's and a workbook's core title, were never
    read (context.py said they were): "US Trustee Handbook", written only in a handbook's page header, described nothing."""
    import docx
    import openpyxl
    import pptx

    word = docx.Document()
    word.core_properties.title = "Acme Corporation Employee Handbook"
    word.sections[0].header.paragraphs[0].text = "Acme Corporation · HR-POL-007"
    word.sections[0].footer.paragraphs[0].text = "Confidential"
    word.add_paragraph("Employees receive 25 days of annual leave.")
    word.save(str(tmp_path / "hb.docx"))
    docs = load_file(tmp_path / "hb.docx")
    assert docs[0].meta["about"] == {"title": "Acme Corporation Employee Handbook", "header": "Acme Corporation · HR-POL-007"}
    assert describe(docs, "hb.docx") == "Acme Corporation Employee Handbook — Acme Corporation · HR-POL-007 — hb"
    assert "HR-POL-007" not in "".join(d.text for d in docs) and "Confidential" not in describe(docs, "hb.docx")
    numbered = docx.Document()
    numbered.sections[0].header.paragraphs[0].text = "Page 3 of 9"
    numbered.add_paragraph("Text.")
    numbered.save(str(tmp_path / "numbered.docx"))
    assert describe(load_file(tmp_path / "numbered.docx"), "numbered.docx") == "numbered"  # a page number describes nothing
    deck = pptx.Presentation()  # python-pptx's template: "PowerPoint Presentation", a tool's default
    deck.slides.add_slide(deck.slide_layouts[1]).placeholders[1].text = "Revenue grew 12%."
    deck.save(str(tmp_path / "deck.pptx"))
    assert describe(load_file(tmp_path / "deck.pptx"), "deck.pptx") == "deck"
    deck.core_properties.title = "KX-300 launch plan"
    deck.save(str(tmp_path / "deck.pptx"))
    assert describe(load_file(tmp_path / "deck.pptx"), "deck.pptx") == "KX-300 launch plan — deck"
    book = openpyxl.Workbook()
    book.active.append(["Model", "Price"])
    book.active.append(["KX-300", 1999])
    book.properties.title = "Price list 2024"
    book.save(str(tmp_path / "prices.xlsx"))
    assert describe(load_file(tmp_path / "prices.xlsx"), "prices.xlsx").startswith("Price list 2024 — prices")
    for default in ("PowerPoint Presentation", "Slide 1", "Book1", "Title", "新建 Microsoft Word 文档", "PowerPoint 演示文稿"):
        assert clean_title(default) == "", default


STATEMENT = (
    "Consolidated Statement of Cash Flows\n\n(Millions) 2018 2017 2016\n\n"
    + " ".join(f"Line item number {n} {1000 + n:,} {900 + n:,} ({800 + n:,})" for n in range(60))
)


def test_pieces_of_a_statement_read_as_text_carry_its_title_and_units() -> None:
    chunks = split_documents([Document(STATEMENT, {"source": "s.pdf", "page": 60, "title_path": ["3M COMPANY"], "kind": "text"})], 200, 0)
    assert len(chunks) > 2
    assert "caption" not in chunks[0].meta  # the first piece holds the title block itself
    for c in chunks[1:]:
        assert c.meta["caption"] == "Consolidated Statement of Cash Flows (Millions) 2018 2017 2016"


def test_a_ruled_table_carries_the_lines_above_it_and_its_units() -> None:
    docs = [
        Document("Results of operations\n\nTable 4. Revenue by region\n\n(in millions)", {"source": "r.pdf", "page": 3, "kind": "text"}),
        Document("| Region | 2023 | 2022 |\n|---|---|---|\n" + "\n".join(f"| R{n} | {n} | {n + 1} |" for n in range(80)), {"source": "r.pdf", "page": 3, "kind": "table"}),
    ]
    tables = [c for c in split_documents(docs, 300, 0) if c.meta["kind"] == "table"]
    assert len(tables) > 1
    for c in tables:
        assert c.meta["caption"] == "Table 4. Revenue by region (in millions)"
        assert c.text.startswith("| Region | 2023 | 2022 |")


def test_a_columns_unit_is_not_the_tables() -> None:
    """Found by a second first-hour review: an inventory sheet's header cell "单价（元）" put "（元）" in every piece's
    caption, as if the whole table were in yuan; a cell that is the units alone ("| (Millions) | 2018 |") still counts."""
    sheet = Document("| 物料编号 | 物料名称 | 库存数量 | 单价（元） |\n|---|---|---|---|\n" + "\n".join(f"| M-{n} | 螺栓 | {n} | 0.85 |" for n in range(60)),
                     {"source": "库存.xlsx", "page": 1, "title_path": ["库存"], "kind": "table"})
    assert all("元" not in c.meta.get("caption", "") for c in split_documents([sheet], 300, 0))
    statement = Document("| (Millions) | 2018 | 2017 |\n|---|---|---|\n" + "\n".join(f"| Item {n} | {n} | {n + 1} |" for n in range(60)),
                         {"source": "s.pdf", "page": 60, "kind": "table"})
    assert all("(Millions)" in c.meta.get("caption", "") for c in split_documents([statement], 300, 0))


def test_a_tables_caption_is_never_the_table_before_it() -> None:
    """Found by a first-hour review: a Word file's second table carried the whole first table and the
    line between them as its caption ("| Header Col 1 | Header Col 2 | |---|---| | Lorem ipsum | … Nested Table")."""
    docs = [
        Document("Simple uniform table", {"source": "t.docx", "page": None, "kind": "text"}),
        Document("| Header Col 1 | Header Col 2 |\n|---|---|\n| Lorem ipsum | A link example |", {"source": "t.docx", "page": None, "kind": "table"}),
        Document("Nested Table", {"source": "t.docx", "page": None, "kind": "text"}),
        Document("| a | b | c |\n|---|---|---|\n| d | e | f |", {"source": "t.docx", "page": None, "kind": "table"}),
        Document("| x | y |\n|---|---|\n| 1 | 2 |", {"source": "t.docx", "page": None, "kind": "table"}),
    ]
    tables = [c for c in split_documents(docs, 300, 0) if c.meta["kind"] == "table"]
    assert [c.meta.get("caption") for c in tables] == ["Simple uniform table", "Nested Table", "Simple uniform table"]


def test_prose_gets_no_caption() -> None:
    text = "A first line\n\n" + "Plain prose about the company and its people, with no table in sight. " * 30
    assert all("caption" not in c.meta for c in split_documents([Document(text, {"source": "p.txt", "kind": "text"})], 200, 0))


@pytest.mark.slow
def test_the_retrieval_sets_corpus_documents_get_no_description(tmp_path: Path, home: Path) -> None:
    from ingest import text_documents

    with KnowledgeBase.open("plain") as kb:
        kb.ingest_documents([("doc-1", text_documents("The typewriter was patented in 1868.", "doc-1", "Typewriter"))])
        assert [f.description for f in kb.files()] == [""]


def test_readme_documents_the_description_and_kbqa_yaml() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "kbqa.yaml" in readme and "named_boost" in readme


def test_a_mostly_numeric_piece_is_embedded_as_its_labels_under_its_caption() -> None:
    from kbqa.pipeline import embedding_texts

    chunks = split_documents([Document(STATEMENT, {"source": "s.pdf", "page": 60, "title_path": ["3M COMPANY"], "kind": "text"})], 200, 0)
    pairs = embedding_texts(chunks[1:2], "3M 2018 10K")
    stored, embedded = pairs[0]
    assert embedded.startswith("3M 2018 10K\n3M COMPANY > Consolidated Statement of Cash Flows (Millions) 2018 2017 2016\n")
    assert "Line item number" in embedded and "1,0" not in embedded.split("\n", 2)[2]  # labels, not figures
    assert stored.text == chunks[1].text and "1,0" in stored.text  # what is stored and shown keeps every figure
    prose = split_documents([Document("The pump carries a 2-year warranty from the date of purchase.", {"source": "p.md", "kind": "text"})], 200, 0)
    assert embedding_texts(prose)[0][1] == "The pump carries a 2-year warranty from the date of purchase."


def test_a_first_page_title_set_in_body_size_describes_the_pdf(tmp_path: Path) -> None:
    en = write_pdf(tmp_path / "handbook.pdf", ["Acme Staff Handbook\n\nEmployees receive 25 days of paid leave.", "Expenses are paid monthly."])
    zh = write_pdf(tmp_path / "手册.pdf", ["星河科技员工手册\n\n公司实行标准工时制，每周工作五天。"], font="china-s")
    prose = write_pdf(tmp_path / "notes.pdf", ["Employees receive 25 days of paid leave.\n\nExpenses are paid monthly."])
    assert describe(load_file(en), en.name) == "Acme Staff Handbook"  # it holds the file name's words
    assert describe(load_file(zh), zh.name) == "星河科技员工手册"
    assert describe(load_file(prose), prose.name) == "notes"  # a sentence is not a title


def test_a_cover_pages_long_title_describes_the_pdf(tmp_path: Path) -> None:
    """Found by a first-hour review: a paper behind a repository's cover page (set in 6-point type, its
    title of 101 characters in 13 points, smaller than the paper's 12-point body by more than the
    heading rule's 1.15) was described by its file name alone, "langchain"."""
    import pymupdf

    title = "Creating Large Language Model Applications Utilizing LangChain: A Primer on Developing LLM Apps Fast"
    doc = pymupdf.open()
    cover = doc.new_page()
    cover.insert_text((40, 40), "See discussions, stats, and author profiles for this publication at: https://example.org/p/1", fontsize=6)
    cover.insert_textbox(pymupdf.Rect(40, 60, 560, 110), title, fontsize=13)
    for y, line in enumerate(["2 authors:", "Oguzhan Topsakal", "Florida Polytechnic University", "All content following this page was uploaded by the authors."]):
        cover.insert_text((40, 140 + 14 * y), line, fontsize=6.6)
    for n in range(3):
        doc.new_page().insert_textbox(pymupdf.Rect(60, 60, 535, 800), "LangChain offers chains and agents for building applications. " * 30, fontsize=12)
    path = tmp_path / "langchain.pdf"
    doc.save(path)
    docs = load_file(path)
    assert describe(docs, path.name) == title  # the file's title, as its metadata would give it
    assert all(d.meta["title_path"] == [] for d in docs)  # not a heading over every page (an earnings release lost a question so)
    plain = write_pdf(tmp_path / "notes.pdf", ["Employees receive 25 days of paid leave.\n\nExpenses are paid monthly."])
    assert describe(load_file(plain), plain.name) == "notes"  # one size throughout: no title


def test_a_title_line_is_short_has_words_and_is_not_a_sentence() -> None:
    assert title_line("\n  PepsiCo Reports First-Quarter 2023 Results\nbody") == "PepsiCo Reports First-Quarter 2023 Results"
    assert title_line("The pump hums.\n") == ""
    assert title_line("2023-03-31\n") == ""
    assert title_line("Aurora X2 Water Purifier - User Manual 1. Overview The Aurora X2 is a reverse-osmosis purifier for homes") == ""


def test_a_documents_pages_are_ordered_among_its_places_and_a_page_found_twice_gains() -> None:
    """Issue 15 (financebench page-hit): a statement page whose rows two candidates match comes
    before a page one passage matches a little better; the documents keep their places."""
    from types import SimpleNamespace

    from kbqa.retrieval import PAGE_BONUS, by_page

    rows = {1: SimpleNamespace(file_id=10, page=3), 2: SimpleNamespace(file_id=20, page=1), 3: SimpleNamespace(file_id=10, page=7),
            4: SimpleNamespace(file_id=10, page=7), 5: SimpleNamespace(file_id=30, page=None)}
    ranked = [(1, 0.90), (2, 0.88), (3, 0.86), (5, 0.85), (4, 0.84)]
    assert 0.86 + PAGE_BONUS > 0.90
    assert [c for c, _ in by_page(ranked, rows)] == [3, 4, 2, 1, 5]  # file 10's first place: its page 7, found twice


def test_a_named_document_whose_name_words_another_holds_with_more_is_a_lesser_name() -> None:
    from kbqa.retrieval import lesser_named

    # "Acme handbook 2024": the 2024 edition holds words 0, 1, 2; the 2023 edition 0, 1; a memo naming Acme 0
    assert lesser_named({1: frozenset({0, 1, 2}), 2: frozenset({0, 1}), 3: frozenset({0})}) == {2, 3}
    assert lesser_named({1: frozenset({0, 1}), 2: frozenset({0, 2})}) == set()  # each holds a word the other lacks


def test_a_question_that_asks_for_a_quantity_prefers_tables() -> None:
    """Issue 15 (financebench "the FY2018 capital expenditure amount"): a question that asks for a
    quantity puts a table passage QUANTITY_TABLE ahead of the prose around it; others leave it be."""
    from kbqa.retrieval import QUANTITY, QUANTITY_TABLE

    asks = ["What is the FY2018 capital expenditure amount (in USD millions) for 3M?", "How many days of annual leave do staff get?",
            "What is the AX-300's power consumption rate?", "蓝海集团的年假有几天？", "差旅报销的比例是多少？"]
    for question in asks:
        assert QUANTITY.search(question), question
    for question in ["Who are the primary customers of Boeing?", "What does the KX-200 manual say about cleaning the filter?",
                     "远程办公需要谁批准？", "Has Pfizer reported any ongoing legal battles?"]:
        assert not QUANTITY.search(question), question
    assert 0 < QUANTITY_TABLE < 0.1  # a tie-breaker among the named document's passages, not a second naming


def test_a_passage_of_figures_only_is_of_no_language_when_cosines_are_moved_across_languages() -> None:
    """ingest.textfacts.language calls a text without letters Chinese: financebench's pieces of figure
    rows made an English question's candidates look like two languages, and moving their cosines to
    the English scale put them ahead of their filings' text (page-hit ±1 0.714 -> 0.703)."""
    from types import SimpleNamespace

    from kbqa.retrieval import on_pair_scales

    rows = {1: SimpleNamespace(text="Net sales rose 12% in fiscal 2023."), 2: SimpleNamespace(text="| 1,234 | 5,678 |\n| 91 | 12 |")}
    cosines = {1: 0.82, 2: 0.71}
    scales = {"en": (0.78, 0.89), "en-zh": (0.69, 0.84)}  # (the calibrated relevance ranges of the pairs)
    assert on_pair_scales(cosines, rows, "en", scales, embedder=None) == cosines  # one language: as they are
    rows[3] = SimpleNamespace(text="年假为十五天。")
    moved = on_pair_scales({**cosines, 3: 0.765}, rows, "en", scales, embedder=None)
    assert moved[1] == 0.82 and moved[2] == 0.71 and abs(moved[3] - (0.78 + 0.5 * 0.11)) < 1e-9  # only the Chinese one is moved


@pytest.mark.slow
def test_a_question_that_names_a_document_reads_relevance_on_its_own_languages_scale(kb: KnowledgeBase) -> None:
    """Found rereading the change: when a question named a document, the name was searched with the
    question's language variable re-used for its words, and every hit's relevance was read on the
    catalog's default range instead of the question language's calibration. A named question's hits
    read the same relevance as the same passages found without the named preference."""
    from kbqa.retrieval import Retriever

    question = "How many days of annual leave do Acme employees get?"
    named = {h.chunk_id: h.relevance for h in kb.search(question, top_k=5, threshold=0)}
    plain_config = kb.config.retrieval.model_copy(update={"named_boost": 0.0})
    plain = {h.chunk_id: h.relevance for h in Retriever(kb.catalog, kb.index, kb.embedder, plain_config).search(question, 20, 0.0)}
    common = set(named) & set(plain)
    assert common and all(named[i] == plain[i] for i in common), [(named[i], plain[i]) for i in common]


def test_an_english_name_written_against_chinese_is_a_name_and_is_not_glued_to_it() -> None:
    """The words that may name a document: "Bluefin" in "Bluefin新员工的试用期是多长？" (it was read with the
    Chinese after it as one cased word, and named nothing), and a pair of English names glued as a
    file name writes them ("Best Buy" -> "bestbuy"), never an English name glued to Chinese."""
    from kbqa.store.tokenize import name_terms

    terms = [t for t, _ in name_terms("Bluefin新员工的试用期是多长？")]
    assert "bluefin" in terms and "试用期" in terms and not any("bluefin" in t and t != "bluefin" for t in terms), terms
    terms = [t for t, _ in name_terms("Best Buy的毛利率是多少？")]
    assert {"best", "buy", "bestbuy"} <= set(terms) and not any(t.startswith("buy") and t != "buy" for t in terms), terms
    assert [t for t, _ in name_terms("What is Bluefin's probation period?")] == ["bluefin"]


@pytest.mark.slow
def test_an_answer_to_a_question_that_names_a_document_quotes_no_other_documents_fact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found uploading a folder of one-paragraph policies: "How many days of annual leave do Globex
    employees get?" was answered "Employees receive 18 days … [1] Employees receive 25 days … [2]",
    the second from Acme's policy (each handbook one chunk, so Acme's ranked second). A question that
    names no company still gets both."""
    monkeypatch.setenv("KBQA_HOME", str(tmp_path / "home"))
    docs = tmp_path / "docs"
    for company, days in (("acme", 25), ("globex", 18)):
        (docs / company).mkdir(parents=True)
        (docs / company / "leave.md").write_text(f"# Leave\n\nEmployees receive {days} days of paid annual leave.\n", encoding="utf-8")
        (docs / company / "kbqa.yaml").write_text(f"description: {company.title()} Corporation staff handbook\n", encoding="utf-8")
    with KnowledgeBase.open("policies", llm="extractive") as kb:
        assert kb.ingest([docs]).ok
        for question in ("How many days of annual leave do Globex employees get?", "Globex员工每年有几天年假？"):
            answer = kb.ask(question)
            assert answer.answered_from_documents and "18 days" in answer.text and "25 days" not in answer.text, (question, answer.text)
            assert answer.sources[0].file == "globex/leave.md"
        both = kb.ask("How many days of annual leave do employees get?")
        assert "18 days" in both.text and "25 days" in both.text, both.text


def _write_company_handbooks(d: Path) -> None:
    """Two Chinese and two English handbooks of different companies, and a price list (helper 79's collection)."""
    import docx
    import openpyxl

    d.mkdir()
    (d / "蓝海集团员工手册.md").write_text("# 蓝海集团员工手册\n\n## 年假\n蓝海集团正式员工每年享有带薪年假12天，工作满五年后增加至15天。\n\n"
                                      "## 病假\n员工因病请假，每年可享受带薪病假5天，需提供医院证明。\n\n"
                                      "## 差旅报销\n差旅费用须在出差结束后15天内提交报销申请，逾期不予报销。\n", encoding="utf-8")
    (d / "星河科技员工手册.txt").write_text("星河科技员工手册\n\n年假\n星河科技正式员工每年享有带薪年假10天，工作满三年后增加至14天。\n\n"
                                       "加班\n工作日加班按小时工资的150%支付加班费，周末加班按200%支付。\n\n"
                                       "差旅报销\n差旅费用须在出差结束后30天内提交报销申请。\n", encoding="utf-8")
    (d / "acme_handbook.html").write_text(
        "<html><head><title>Acme Corporation Employee Handbook</title></head><body><h1>Acme Corporation Employee Handbook</h1>"
        "<h2>Annual leave</h2><p>Full-time employees of Acme Corporation receive 25 days of paid annual leave per year.</p>"
        "<h2>Remote work</h2><p>Staff may work from home up to two days per week with manager approval.</p>"
        "<h2>Expenses</h2><p>Expense claims must be submitted within 20 days of the trip's end.</p></body></html>", encoding="utf-8")
    globex = docx.Document()
    globex.add_heading("Globex Industries Employee Handbook", 0)
    globex.add_heading("Annual leave", 1)
    globex.add_paragraph("Full-time employees of Globex Industries receive 18 days of paid annual leave per year.")
    globex.add_heading("Probation", 1)
    globex.add_paragraph("New employees serve a probation period of three months.")
    globex.save(str(d / "globex_handbook.docx"))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "价格表"
    for row in (["型号", "名称", "单价（元）", "保修期"], ["KX-200", "净水器", 1299, "2年"], ["KX-300", "净水器 Pro", 1999, "5年"],
                ["AX-300", "Air purifier", 769, "3年"]):
        sheet.append(row)
    book.save(str(d / "price_list.xlsx"))


def _ingested(folder: Path, kb_name: str, files: dict[str, str]) -> KnowledgeBase:
    """A knowledge base (extractive) of these files, written into folder and ingested."""
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase.open(kb_name, llm="extractive")
    assert kb.ingest([folder]).ok
    return kb


@pytest.mark.slow
def test_another_organisations_handbook_is_no_evidence_for_the_named_one(tmp_path: Path, home: Path) -> None:
    """Found by helper 79: "What is the probation period at Acme?" was answered with Globex Industries'
    probation period (a name written without its "Corporation" marked no other company's handbook), and
    "星河科技的病假有几天？" with another handbook's sick leave. And a refusal listed its related passages out
    of order (an answer's sources are grouped by language; a refusal's need not be), an answer a price
    list's row at relevance 0.00, a price or a warranty every product's row, and the default model gave
    "12天" of one handbook for "员工年假有几天？" (the other says 10天) and for "蓝海集团的试用期是多久？" (from
    its annual leave: the handbook says nothing of probation; refusing such questions refused synonyms,
    helper 80, and is not done)."""
    d = tmp_path / "docs"
    _write_company_handbooks(d)
    with KnowledgeBase.open("companies", llm="extractive") as kb:
        assert kb.ingest([d]).ok
        _refused(kb, ["星河科技的病假有几天？", "What is the probation period at Acme?"])
        for question, said in [("蓝海集团的年假有几天？", "12天"), ("蓝海集团的年休假有几天？", "12天"), ("星河科技的加班费怎么算？", "150%"),
                               ("星河科技的报销期限是多久？", "30天"), ("蓝海集团的病假有几天？", "5天"), ("KX-300多少钱？", "1999"),
                               ("What is the probation period at Globex?", "three months"), ("How many days of annual leave do Acme employees get?", "25 days")]:
            answer = kb.ask(question)
            assert answer.answered_from_documents and said in answer.text, (question, answer.text)
            assert all(s.relevance > 0 for s in answer.sources[1:]), (question, [(s.file, s.relevance) for s in answer.sources])
        # a follow-up after one that named another company's handbook is asked of that one (it searched both, 星河科技's first)
        history = [{"role": "user", "content": "星河科技的年假有几天？"}, {"role": "assistant", "content": "10天"},
                   {"role": "user", "content": "那蓝海集团呢？"}, {"role": "assistant", "content": "12天"}]
        text = kb.ask("差旅报销呢？", history=history).text
        assert "15天" in text and "30天" not in text, text
        # another product's row beside the asked one's was quoted too (they share KX or 300)
        for question, said, unsaid in [("KX-300多少钱？", "1999", ("769", "1299")), ("KX-200的保修期是多久？", "2年", ("5年", "3年")),
                                       ("Which has the longer warranty, the KX-200 or the KX-300?", "5年", ("769",))]:
            text = kb.ask(question).text
            assert said in text and not any(u in text for u in unsaid), (question, text)
        for question in ("KX-500多少钱？", "Who is the CEO of Acme?", "蓝海集团的试用期是多久？"):
            related = kb.ask(question).sources
            assert related and [s.relevance for s in related] == sorted((s.relevance for s in related), reverse=True), (question, related)
    with KnowledgeBase.open("companies") as kb:  # the default model: two handbooks' figures are quoted, no short answer of one
        text = kb.ask("员工年假有几天？").text  # (it answered "12天 [1]。依据：…12天… [1] …10天… [2]")
        assert "12天" in text and "10天" in text and not text.startswith("12天"), text
        assert not kb.ask("蓝海集团的试用期是多久？").text.startswith("12天")  # (a sentence that says only whose handbook it is)
        assert kb.ask("蓝海集团的年假有几天？").text.startswith("12天 [1]")  # (the short answer where the sentence says what is asked)
    # what the README listed as not caught yet: another company's handbook whose description shares no word with the
    # name (紫金集团's for 星河科技), and one in the other language (Initech's sick leave for 蓝海集团)
    with _ingested(tmp_path / "more", "companies-more", {
            "蓝海集团员工手册.md": "# 蓝海集团员工手册\n\n## 年假\n\n蓝海集团正式员工每年享有带薪年假十五天。\n",
            "星河科技员工手册.md": "# 星河科技员工手册\n\n## 年假\n\n星河科技正式员工每年享有带薪年假十天。\n",
            "紫金集团员工手册.md": "# 紫金集团员工手册\n\n## 病假\n\n紫金集团员工每年享有带薪病假十二天。\n",
            "initech.md": "# Initech Industries staff handbook\n\n## Sick leave\n\nEmployees receive 8 days of paid sick leave per year.\n"}) as kb:
        _refused(kb, ["星河科技的病假有几天？", "蓝海集团的病假有几天？"])
        assert "十二天" in kb.ask("紫金集团的病假有几天？").text and "8 days" in kb.ask("How many days of sick leave do Initech employees get?").text
    # found by review: beside another 集团's handbook, whose 集团 is then too common to weigh, "蓝海集团每月…" named no
    # document (its run of name words is long) and the other company's payday was quoted for it
    with _ingested(tmp_path / "payday", "companies-payday", {
            "蓝海集团员工手册.md": "# 蓝海集团员工手册\n\n## 年假\n蓝海集团正式员工每年享有带薪年假12天。\n",
            "京东集团员工手册.md": "# 京东集团员工手册\n\n## 年假\n京东集团正式员工每年享有带薪年假8天。\n\n## 薪酬\n员工工资于每月最后一个工作日发放。\n"}) as kb:
        assert "最后一个工作日" not in kb.ask("蓝海集团每月几号发工资？").text
        assert "最后一个工作日" in kb.ask("京东集团每月几号发工资？").text
    # found by review: a company's name of several tokens (阿里巴巴集团: 阿里 巴巴 阿里巴巴 集团) or one jieba knows whole
    # (华润集团) was no organisation, so its handbook answered for 蓝海集团; a department's rules (信息科技部) were one
    with _ingested(tmp_path / "groups", "companies-groups", {
            "蓝海集团员工手册.md": "# 蓝海集团员工手册\n\n## 年假\n蓝海集团正式员工每年享有带薪年假12天。\n",
            "阿里巴巴集团员工手册.md": "# 阿里巴巴集团员工手册\n\n## 病假\n员工每年可享受带薪病假7天。\n",
            "华润集团员工手册.md": "# 华润集团员工手册\n\n## 产假\n女员工享有产假158天。\n",
            "信息科技部运维管理制度.md": "# 信息科技部运维管理制度\n\n## 巡检\n机房服务器每周巡检一次。\n"}) as kb:
        _refused(kb, ["蓝海集团的病假有几天？", "蓝海集团的产假有几天？"])
        _answered(kb, [("阿里巴巴集团的病假有几天？", "7天"), ("华润集团的产假有几天？", "158天"), ("蓝海集团的服务器多久巡检一次？", "每周")])
    # what the first forms of these rules broke (helper 80): a part's code is no other product, a company's own policy
    # whose title names no organisation ("本公司…", "Sales Group …") still answers for it, a step's or a section's short
    # sentence after its number is quoted, a comparison after a follow-up asks of both
    f = tmp_path / "regressions"
    f.mkdir()
    for name, text in [("P-100.md", "# P-100 Label Printer Guide\n\n## Battery\n\nThe P-100 runs for 8 hours on a full charge using the BT-2 "
                                    "battery. The BT-2 takes 3 hours to charge fully.\n"),
                       ("蓝海集团员工手册.md", "# 蓝海集团员工手册\n\n## 年假\n\n员工入职满一年后，每年享有10天带薪年假。\n"),
                       ("星河科技员工手册.md", "# 星河科技员工手册\n\n## 年假\n\n员工每年享有12天带薪年假。\n"),
                       ("本公司保密协议.md", "# 本公司保密协议\n\n违反保密义务的，须向公司支付违约金五十万元。\n"),
                       ("acme.md", "# Acme Corp Employee Handbook\n\n## Leave\n\nEmployees receive 20 days of paid annual leave per year.\n"),
                       ("sales.md", "# Sales Group Commission Plan\n\nAccount executives earn a commission of 8% on each closed deal, paid quarterly.\n"),
                       ("router_guide.txt", "Nimbus R7 Router Quick Guide\n\nResetting the router\nIf the router stops responding, reset it as "
                                            "follows. Step 1. Unplug the power cable. Step 2. Wait 30 seconds. Step 3. Plug the cable back in.\n\n"
                                            "Parking\nSection 5. Parking is free. Visitors must register at reception.\n")]:
        (f / name).write_text(text, encoding="utf-8")
    with KnowledgeBase.open("companies-regressions", llm="extractive") as kb:
        assert kb.ingest([f]).ok
        _answered(kb, [("How long does the P-100 battery take to charge?", "3 hours"), ("蓝海集团违反保密协议要赔多少钱？", "五十万元"),
                      ("What commission do Acme account executives earn?", "8%"), ("Is parking free?", "Parking is free."),
                      ("How long should I wait after unplugging the router?", "Wait 30 seconds.")])
        history = [{"role": "user", "content": "星河科技的年假有几天？"}, {"role": "assistant", "content": "12天"},
                   {"role": "user", "content": "那蓝海集团呢？"}, {"role": "assistant", "content": "10天"}]
        text = kb.ask("哪家更多？", history=history).text
        assert "12天" in text and "10天" in text, text
        # a legal form is no name the documents must hold ("Corporation" of "Acme Corporation" over "Acme Corp"'s handbook)
        assert kb.ask("How many days of leave do Acme Corporation employees get?").unmentioned == []
        assert kb.ask("How many days of leave do Initech Company employees get?").unmentioned == ["Initech"]


def test_trade_names_are_read_only_beside_a_kin_document() -> None:
    """A Chinese company named by its trade (青松物流) rather than a company's word is an organisation
    when another document of the same kind has another such name; a topic before a trade's word is not."""
    from kbqa.named import trade_names

    assert trade_names({1: "青松物流员工手册", 2: "云杉科技员工手册", 3: "Northwind Travel Policy"}) == {1: {"青松"}, 2: {"云杉"}}
    assert trade_names({1: "青松物流员工手册"}) == {}  # no kin: 物流 alone names no company
    assert trade_names({1: "跨境物流操作手册", 2: "仓储管理操作手册"}) == {}  # 仓储管理 is no name
    assert trade_names({1: "跨境物流操作手册", 2: "国内物流操作手册"}) == {}  # 物流 in both: a topic
    assert trade_names({1: "年假管理办法", 2: "病假管理办法"}) == {}


@pytest.mark.slow
def test_a_company_named_only_by_its_document_gets_no_other_companys_handbook(tmp_path: Path, home: Path) -> None:
    """Found by helper 96: "Northwind公司的员工年假有几天？" quoted 云杉科技's handbook; Northwind's only document, its travel
    policy, names no company's word ("Northwind Travel Policy"), so no other handbook counted as another company's. And
    青松物流's, which names its company by its trade alone, was quoted once 云杉科技's was not."""
    with _ingested(tmp_path / "docs", "northwind", {
            "云杉科技员工手册.md": "# 云杉科技员工手册\n\n## 休假\n\n员工入职满一年后，每年享有带薪年假十天；工作满十年的，年假为十五天。\n",
            "青松物流员工手册.md": "# 青松物流员工手册\n\n## 假期\n\n员工每年享有年休假五天，婚假三天，产假九十八天。\n",
            "northwind_travel_policy.md": "# Northwind Travel Policy\n\n## Hotel limits\n\nEmployees book hotels within the nightly "
                                          "limits below. London: 180 GBP per night. New York: 250 USD per night.\n"}) as kb:
        _refused(kb, ["Northwind公司的员工年假有几天？", "Northwind的员工年假有几天？", "How many days of annual leave do Northwind employees get?"])
        _answered(kb, [("云杉科技的年假有几天？", "十天"), ("青松物流的婚假有几天？", "三天"), ("员工年假有几天？", "年假"),
                      ("What is the hotel limit in London at Northwind?", "180 GBP")])
    # the same with Northwind's policy in Chinese: its 员工 and name were all the hotel sentence said of the question, and it
    # was quoted at 0.55 (云杉科技's and 青松物流's handbooks, which say 年假 and 病假, set aside as other companies')
    with _ingested(tmp_path / "zh", "northwind-zh", {
            "云杉科技员工手册.md": "# 云杉科技员工手册\n\n## 休假\n\n员工入职满一年后，每年享有带薪年假十天。\n\n病假需提供医院证明。\n",
            "青松物流员工手册.md": "# 青松物流员工手册\n\n## 假期\n\n员工每年享有年休假五天，婚假三天，产假九十八天。\n",
            "northwind差旅制度.md": "# Northwind差旅制度\n\n## 住宿标准\n\n员工出差须在以下每晚限额内预订酒店。伦敦：每晚180英镑。纽约：每晚250美元。\n"}) as kb:
        _refused(kb, ["Northwind的员工年假有几天？", "Northwind的员工病假有几天？", "How many days of annual leave do Northwind employees get?"])
        _answered(kb, [("Northwind在伦敦住酒店每晚限额多少？", "180英镑"), ("What is the hotel limit in London at Northwind?", "180英镑")])


@pytest.mark.slow
def test_a_latin_name_written_in_chinese_by_the_documents_is_mentioned(tmp_path: Path, home: Path) -> None:
    """Found by review: "What is the hotel limit in New York?" over a Chinese policy that gives 纽约's limit said first
    that the documents never mention "New York" (the dictionary reads a name as the Chinese word glossed by all of it:
    纽约 is "New York", not "York")."""
    with _ingested(tmp_path / "docs", "new-york", {
            "差旅制度.md": "# 差旅制度\n\n## 住宿标准\n\n员工出差须在以下每晚限额内预订酒店。伦敦：每晚180英镑。纽约：每晚250美元。\n"}) as kb:
        for question, unmentioned in [("What is the hotel limit in New York?", []), ("What is the hotel limit in London?", []),
                                      ("What is the hotel limit in York?", ["York"]), ("What is the hotel limit in Chicago?", ["Chicago"])]:
            answer = kb.ask(question)
            assert answer.answered_from_documents and answer.unmentioned == unmentioned, (question, answer.unmentioned, answer.text)


@pytest.mark.slow
def test_a_longer_word_that_ends_with_the_asked_kind_names_another_kind(tmp_path: Path, home: Path) -> None:
    """Found by helper 99: "产假有几天？" (maternity leave) was answered at 0.999 with the demo handbook's 陪产假 (paternity
    leave: jieba cuts it 陪 / 产假), and "How many days of maternity leave do employees get?" with a Chinese 病假 sentence."""
    with _ingested(tmp_path / "docs", "longer-kinds", {
            "员工手册.md": "# 员工手册\n\n## 假期\n\n员工结婚可享受三天婚假，子女出生时男员工可享受十五天陪产假。\n",
            "考勤制度.md": "# 考勤制度\n\n## 病假\n\n第二条 员工病假每年最多十二天，需提供医院证明。\n"}) as kb:
        _refused(kb, ["产假有几天？", "How many days of maternity leave do employees get?"])
        _answered(kb, [("陪产假有几天？", "十五天陪产假"), ("婚假有几天？", "三天婚假"), ("How many days of sick leave do employees get?", "十二天")])


@pytest.mark.slow
def test_a_departments_guide_does_not_set_its_companys_handbook_aside(tmp_path: Path, home: Path) -> None:
    """Found by helper 100 on the first form of the rule that a document named by its description's first word stands for
    that name: "Engineering Department Guide" made Contoso Inc.'s handbook another organisation's, and "How much hotel
    expense per night is reimbursed for Engineering staff?" was refused ($200 before); and across languages, with
    Globex's handbook set aside, "How long is maternity leave at Northwind?" got Northwind's Chinese payday sentence at 0.97."""
    with _ingested(tmp_path / "docs", "department", {
            "contoso-employee-handbook.md": "# Contoso Inc. Employee Handbook\n\nContoso employees receive 18 days of paid annual leave per "
                                            "year.\nHotel expenses are reimbursed up to $200 per night.\n",
            "engineering-department-guide.md": "# Engineering Department Guide\n\nEngineering uses flexible hours; core hours are 10:00 to "
                                               "16:00.\nCode must be reviewed by two colleagues before merging.\n"}) as kb:
        _answered(kb, [("How much hotel expense per night is reimbursed for Engineering staff?", "$200"),
                       ("What are Engineering's core hours?", "10:00 to 16:00")])
    with _ingested(tmp_path / "pay", "maternity", {
            "globex-handbook.md": "# Globex Industries Employee Handbook\n\n## Payroll\nGlobex payroll runs on the 25th of each month.\n\n"
                                  "## Maternity leave\nMaternity leave is 16 weeks at full pay.\n",
            "northwind-paie.md": "# Northwind 薪酬制度\n\nNorthwind员工工资于每月最后一个工作日发放。\n"}) as kb:
        _refused(kb, ["How long is maternity leave at Northwind?"])
        _answered(kb, [("How long is maternity leave at Globex?", "16 weeks"), ("Northwind每月几号发工资？", "最后一个工作日")])
