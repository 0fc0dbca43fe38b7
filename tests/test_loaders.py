"""Loaders on small files the tests write: encodings, PDF pages, DOCX structure, HTML, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EN_PAGES, ZH_PAGES, write_docx, write_page_pdf, write_pages_pdf, write_pdf
from ingest import LoadError, UnsupportedFile, load_file

TEXT = "北京是中华人民共和国的首都。臺灣的繁體字也要正確。"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_text_encodings_come_out_right(tmp_path: Path, encoding: str) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes(TEXT.encode(encoding))
    assert load_file(p)[0].text.strip() == TEXT


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_english_utf16_without_a_byte_order_mark(tmp_path: Path, encoding: str) -> None:
    """Such text decodes as UTF-8 too (NULs are characters), and was refused as binary."""
    text = "This is a test document to use for unit tests.\n\nDoylestown, PA 18901 — 中文也可以。\n"
    (tmp_path / "plain.txt").write_bytes(text.encode(encoding))
    assert load_file(tmp_path / "plain.txt")[0].text.strip() == text.strip()


def test_gbk_and_big5(tmp_path: Path) -> None:
    simplified = "知识库问答系统支持中文文档，报销须在三十天内提交。"
    (tmp_path / "gbk.txt").write_bytes(simplified.encode("gbk"))
    assert load_file(tmp_path / "gbk.txt")[0].text == simplified
    traditional = "知識庫問答系統支援繁體中文文件，報銷須在三十天內提交。"
    (tmp_path / "big5.txt").write_bytes(traditional.encode("big5"))
    assert load_file(tmp_path / "big5.txt")[0].text == traditional



def test_hard_wrapped_text_markdown_and_mail_are_read_as_whole_paragraphs(tmp_path: Path) -> None:
    """Found by helper 99: a paragraph wrapped every 17 Chinese characters (or 50 columns) was read as fragments, each
    quoted and cited as a sentence ("年假； [1] 工作满五年后，带薪年假增加到 [1] …"). Short lines, lists, tables, code and one
    sentence per line stay as written."""
    (tmp_path / "leave.txt").write_text("休假制度\n\n员工入职满一年后，每年享有十天带薪\n年假；工作满五年后，带薪年假增加到\n十五天。婚假为三天。\n\n"
                                        "型号：KX-200\n价格：1299元\n", encoding="utf-8")
    text = "\n".join(d.text for d in load_file(tmp_path / "leave.txt"))
    assert "员工入职满一年后，每年享有十天带薪年假；工作满五年后，带薪年假增加到十五天。婚假为三天。" in text
    assert "型号：KX-200\n价格：1299元" in text  # (short lines: a list, not wrapped prose)
    (tmp_path / "memo.txt").write_text("From: HR department\nTo: All staff\nDate: 12 February 2024\nSubject: New annual leave rules\n\n"
                                       "From 1 March 2024, all full-time staff receive 30 days of annual leave.\n", encoding="utf-8")
    assert "Date: 12 February 2024\nSubject: New annual leave rules" in load_file(tmp_path / "memo.txt")[0].text  # (fields: a header)
    (tmp_path / "laptop.md").write_text(
        "# Laptop policy\n\nA lost laptop must be reported to the IT helpdesk\nwithin 24 hours by calling extension 4455.\n\n"
        "- Encrypt the disk before you travel with the laptop\n  and keep it with you.\n- Never lend it.\n\n"
        "| Item | Limit |\n|---|---|\n| Laptop | 1 |\n\n```\nsudo fdesetup enable --user someone-with-a-long-name\nfdesetup status\n```\n\n"
        "The first rule is this one.\nThe second rule is that one, which is longer.\n", encoding="utf-8")
    text = load_file(tmp_path / "laptop.md")[0].text
    assert "A lost laptop must be reported to the IT helpdesk within 24 hours by calling extension 4455." in text
    assert "- Encrypt the disk before you travel with the laptop and keep it with you.\n- Never lend it." in text
    assert "| Item | Limit |\n|---|---|\n| Laptop | 1 |" in text and "--user someone-with-a-long-name\nfdesetup status" in text
    assert "The first rule is this one.\nThe second rule" in text
    (tmp_path / "note.eml").write_text("From: it@example.com\nTo: all@example.com\nSubject: Laptops\n\nA lost laptop must be "
                                       "reported to the IT helpdesk\nwithin 24 hours by calling extension 4455.\n", encoding="utf-8")
    assert "helpdesk within 24 hours" in load_file(tmp_path / "note.eml")[0].text

def test_pdf_pages_are_one_based_and_chinese_text_is_clean(tmp_path: Path) -> None:
    docs = load_file(write_pdf(tmp_path / "zh.pdf", ZH_PAGES, font="china-s"))
    assert [d.page for d in docs] == [1, 2]
    assert "每年享有十天带薪年假" in docs[1].text
    docs = load_file(write_pdf(tmp_path / "en.pdf", EN_PAGES))
    assert "every 24 months" in docs[1].text and docs[1].page == 2


@pytest.mark.parametrize("engine", ["pymupdf", "pdfplumber", "pdfminer"])
def test_every_pdf_engine_reads_pages(tmp_path: Path, engine: str) -> None:
    from ingest import LoadOptions

    docs = load_file(write_pdf(tmp_path / "en.pdf", EN_PAGES), LoadOptions(pdf_engine=engine))
    assert [d.page for d in docs] == [1, 2]
    assert "RO membrane" in docs[1].text


@pytest.mark.parametrize("engine", ["pymupdf", "pdfplumber", "pdfminer"])
def test_pdf_columns_read_in_order_when_the_content_stream_is_not(tmp_path: Path, engine: str) -> None:
    """A designed page writes its right column first and its title last: read title, left, right."""
    import pymupdf

    from ingest import LoadOptions

    left = ["The left column opens the report with the first paragraph.", "The left column goes on with a second paragraph."]
    right = ["The right column follows with a third paragraph of text.", "The right column closes the page with a fourth one."]
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    for x, paragraphs in ((320, right), (50, left)):
        for i, text in enumerate(paragraphs):
            page.insert_textbox(pymupdf.Rect(x, 150 + 120 * i, x + 220, 250 + 120 * i), text, fontsize=11)
    page.insert_textbox(pymupdf.Rect(50, 80, 545, 120), "Annual water quality report of the plant", fontsize=18)
    doc.save(tmp_path / "columns.pdf")
    text = " ".join(" ".join(d.text for d in load_file(tmp_path / "columns.pdf", LoadOptions(pdf_engine=engine))).split())
    positions = [text.index(t) for t in ["Annual water quality report", *left, *right]]
    assert positions == sorted(positions), text


def test_pdf_unruled_table_rows_read_across_when_the_page_is_reordered(tmp_path: Path) -> None:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_textbox(pymupdf.Rect(60, 130, 540, 190), "Filter lifetimes measured in the lab over two years of daily use.", fontsize=11)
    rows = [["Filter", "Months", "Price"], ["Carbon", "six", "ninety"], ["Membrane", "twenty-four", "four hundred"]]
    for c in range(3):  # written column by column, each cell its own block
        for r, row in enumerate(rows):
            page.insert_text((60 + 170 * c, 230 + 24 * r), row[c], fontsize=11)
    page.insert_textbox(pymupdf.Rect(60, 60, 540, 100), "Maintenance schedule of the water purifier", fontsize=18)  # drawn last, read first
    doc.save(tmp_path / "rows.pdf")
    text = "\n".join(d.text for d in load_file(tmp_path / "rows.pdf"))
    positions = [text.index(t) for t in ["Maintenance schedule", "Filter lifetimes", "Carbon", "six", "ninety", "Membrane", "twenty-four"]]
    assert positions == sorted(positions), text


def _ruled_table_pdf(path: Path) -> Path:
    write_page_pdf(path, ["Sales by region are shown in the table below.", [["Region", "Q1", "Q2"], ["North", "80", "95"], ["South", "120", "131"]],
                          "The south grew faster than the north in the second quarter."])
    return path


def test_pdf_ruled_table_becomes_a_markdown_table_in_place(tmp_path: Path) -> None:
    from ingest import LoadOptions

    path = _ruled_table_pdf(tmp_path / "table.pdf")
    docs = load_file(path)
    tables = [d for d in docs if d.meta["kind"] == "table"]  # its own document: the splitter repeats its header
    assert len(tables) == 1 and tables[0].page == 1 and tables[0].text.startswith("| Region | Q1 | Q2 |")
    text = "\n".join(d.text for d in docs)
    assert "| Region | Q1 | Q2 |" in text and "| South | 120 | 131 |" in text
    assert text.index("shown in the table below") < text.index("| Region") < text.index("| South") < text.index("grew faster")
    plain = "\n".join(d.text for d in load_file(path, LoadOptions(pdf_tables=False)))
    assert "|" not in plain and "South" in plain and "131" in plain


def test_pdf_merged_cells_repeat_their_label_over_the_cells_they_cover(tmp_path: Path) -> None:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    xs, ys = [50, 200, 300, 400], [100, 120, 140, 160]
    for y in ys:
        page.draw_line((xs[1] if y == ys[1] else xs[0], y), (xs[-1], y))  # "Name" spans the two header rows
    for x in xs:
        page.draw_line((x, ys[1] if x == xs[2] else ys[0]), (x, ys[-1]))  # "Score" spans the two columns on the right
    for x, y, text in [(55, 125, "Name"), (205, 115, "Score"), (205, 135, "math"), (305, 135, "art"), (55, 155, "Ann"), (205, 155, "90"), (305, 155, "80")]:
        page.insert_text((x, y), text, fontsize=10)
    doc.save(tmp_path / "merged.pdf")
    table = next(d for d in load_file(tmp_path / "merged.pdf") if d.meta["kind"] == "table")
    assert table.text.splitlines()[0] == "| Name | Score | Score |"
    assert "| Name | math | art |" in table.text and "| Ann | 90 | 80 |" in table.text


def test_pdf_table_cells_keep_identifiers_whole(tmp_path: Path) -> None:
    """PyMuPDF's own cell text puts a low-drawn underscore on a line of its own ("FUNCTION ID _")."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    for y in (100, 120, 140, 160):
        page.draw_line((50, y), (350, y))
    for x in (50, 200, 350):
        page.draw_line((x, 100), (x, 160))
    for x, y, text in [(55, 115, "Column name"), (205, 115, "Type"), (55, 135, "FUNCTION_ID"), (205, 135, "VARCHAR(30)"), (55, 155, "USER_NAME"), (205, 155, "VARCHAR(10)")]:
        page.insert_text((x, y), text, fontsize=10)
    doc.save(tmp_path / "ids.pdf")
    table = next(d for d in load_file(tmp_path / "ids.pdf") if d.meta["kind"] == "table")
    assert "| FUNCTION_ID | VARCHAR(30) |" in table.text and "| USER_NAME | VARCHAR(10) |" in table.text


def test_a_repeated_line_of_a_paragraph_running_into_the_bottom_margin_is_kept(tmp_path: Path) -> None:
    """Found by review (helper 95, a bank's two-page rate sheet): a notes paragraph ran into the page's bottom tenth,
    and its line that read the same on both pages was dropped as a running footer, from the middle of the paragraph:
    "Comparison rates for fixed payments will not reduce…". A page number there still goes."""
    import pymupdf

    doc = pymupdf.open()
    for n, last in enumerate(["payments will not reduce your loan balance. This may cost you more.", "payments will not reduce your loan balance, which may cost you more."]):
        page = doc.new_page(width=612, height=792)
        page.insert_text((40, 60), f"Loan rates {n + 1}", fontsize=18)
        page.insert_text((40, 100), f"Standard variable rate: {5.37 + n:.2f}% p.a.", fontsize=11)
        page.insert_text((40, 712), f"Comparison rates for variable loans {n + 1} assume a 5 year interest only period. Comparison rates for fixed\n"
                         "interest only loans assume an interest only period equal to the fixed period. During that period your\n" + last, fontsize=9)
        page.insert_text((300, 780), f"{n + 1}", fontsize=9)
    doc.save(tmp_path / "rates.pdf")
    docs = load_file(tmp_path / "rates.pdf")
    assert len(docs) == 2
    for d in docs:
        assert "Comparison rates for fixed interest only loans assume an interest only period equal to the fixed period." in d.text, d.text
        assert not d.text.rstrip().endswith(("1", "2"))


def test_a_large_bullet_or_figure_in_a_pdf_is_no_section_title(tmp_path: Path) -> None:
    """Found by review (helper 95): a bullet set large ("•") passed for a title, and "JOHNSON & JOHNSON > •" was the
    title path of 312 of the 10-K's 393 pages (and is embedded with every chunk)."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "Risk Factors", fontsize=16)
    y = 110
    for text in ("Our business depends on the supply of raw materials from a few vendors.", "Changes in tax law may raise our costs."):
        page.insert_text((72, y), "•", fontsize=16)
        page.insert_text((90, y), text, fontsize=10)
        page.insert_text((72, y + 30), "1", fontsize=16)
        y += 60
    doc.save(tmp_path / "risks.pdf")
    docs = load_file(tmp_path / "risks.pdf")
    assert all(d.meta["title_path"] == ["Risk Factors"] for d in docs), [d.meta["title_path"] for d in docs]
    assert "Changes in tax law" in "\n".join(d.text for d in docs)


def test_chinese_wrapped_in_a_pdf_table_cell_is_joined_without_a_space(tmp_path: Path) -> None:
    """Found by review (helper 95, an annual report's table): "扣除非经常性损 益的净利润" — a cell's wrapped Chinese
    got a space at the break, and a search for 损益 missed it."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    for y in (100, 140, 170):
        page.draw_line((50, y), (350, y))
    for x in (50, 150, 350):
        page.draw_line((x, 100), (x, 170))
    page.insert_text((55, 115), "扣除非经常性损", fontsize=10, fontname="china-s")
    page.insert_text((55, 130), "益的净利润", fontsize=10, fontname="china-s")
    page.insert_text((155, 120), "1,234,567", fontsize=10)
    page.insert_text((55, 160), "营业收入", fontsize=10, fontname="china-s")
    page.insert_text((155, 160), "9,876,543", fontsize=10)
    doc.save(tmp_path / "cjk.pdf")
    text = "\n".join(d.text for d in load_file(tmp_path / "cjk.pdf"))
    assert "扣除非经常性损益的净利润" in text, text


@pytest.mark.parametrize("engine", ["pymupdf", "pdfplumber", "pdfminer"])
def test_pdf_right_to_left_line_drawn_in_pieces_reads_in_logical_order(tmp_path: Path, engine: str) -> None:
    import pymupdf

    from ingest import LoadOptions

    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font.exists():
        pytest.skip("needs an Arabic font (fonts-dejavu-core)")
    doc = pymupdf.open()
    page = doc.new_page()
    measure = pymupdf.Font(fontfile=str(font))
    label = "تاريخ ارائه مدارک"  # "date documents were submitted": drawn right-aligned, glyphs in visual order
    page.insert_text((500 - measure.text_length(label[::-1], 12), 100), label[::-1], fontfile=str(font), fontname="dv", fontsize=12)
    x = 300.0
    for piece in ["19", "/", "09", "/", "1403"]:  # the date 1403/09/19, drawn piece by piece from the right
        x -= measure.text_length(piece, 12)
        page.insert_text((x, 100), piece, fontfile=str(font), fontname="dv", fontsize=12)
    doc.save(tmp_path / "rtl.pdf")
    text = " ".join(d.text for d in load_file(tmp_path / "rtl.pdf", LoadOptions(pdf_engine=engine)))
    assert " ".join(text.split()) == "تاريخ ارائه مدارک 1403/09/19"  # a line or two: the other engines cut lines at wide gaps


def test_a_column_line_beside_a_gap_in_the_other_column_stays_in_its_column() -> None:
    from ingest.loaders.reading_order import xy_order

    def block(name: str, x0: float, y0: float, x1: float, y1: float) -> dict[str, object]:
        return {"bbox": (x0, y0, x1, y1), "lines": [{"spans": [{"text": name}]}], "name": name}

    blocks = [block("title", 60, 50, 550, 70), block("heading", 70, 100, 150, 115)]
    blocks += [block(f"left{i}", 65, 140 + 20 * i, 295, 152 + 20 * i) for i in range(6)]
    blocks += [block("right0", 318, 95, 550, 107), block("right1", 318, 119, 550, 131)]  # left column: white space after its heading
    blocks += [block(f"right{i}", 318, 140 + 20 * (i - 2), 550, 152 + 20 * (i - 2)) for i in range(2, 8)]
    order = [b["name"] for b in xy_order(blocks)]
    assert order == ["title", "heading"] + [f"left{i}" for i in range(6)] + [f"right{i}" for i in range(8)]


def test_right_to_left_characters_to_logical_order() -> None:
    from ingest.loaders.bidi import lam_alef, logical_text

    def chars(*glyphs: tuple[str, float, float]) -> list[dict[str, object]]:
        return [{"c": c, "bbox": (x0, 0.0, x1, 10.0)} for c, x0, x1 in glyphs]

    # "وعليه،" as PyMuPDF lists it: the comma drawn at the left of the word comes first
    assert logical_text(chars(("،", 40, 43), ("و", 60, 64), ("ع", 56, 60), ("ل", 52, 56), ("ي", 48, 52), ("ه", 43, 48)), 10) == "وعليه،"
    # "خلال": the lam-alef ligature's zero-width alef is listed before its lam; a space as wide as the word is ignored
    word = lam_alef(chars(("خ", 30, 36), ("ا", 30, 30), ("ل", 24, 30), (" ", 10, 36), ("ل", 18, 24)))
    assert logical_text(word, 10) == "خلال"
    # Latin and numbers inside a right-to-left line keep their own direction (drawn "PDF 20 باب")
    line = chars(("ب", 90, 96), ("ا", 86, 90), ("ب", 80, 86), ("P", 20, 26), ("D", 26, 32), ("F", 32, 38), ("2", 44, 50), ("0", 50, 56))
    assert logical_text(line, 10) == "باب PDF 20"


@pytest.mark.parametrize("engine", ["pymupdf", "pdfplumber", "pdfminer"])
def test_running_heads_footers_and_page_numbers_are_dropped(tmp_path: Path, engine: str) -> None:
    import pymupdf

    from ingest import LoadOptions

    doc = pymupdf.open()
    body = ["Unpack the unit and check the parts.", "Connect the inlet hose to the tap.", "Flush the new filters for five minutes.", "Replace the RO membrane every 24 months."]
    for n, sentence in enumerate(body, start=1):
        page = doc.new_page(width=595, height=842)
        page.insert_text((60, 40), "Aurora X2 Service Manual - Confidential", fontsize=9)
        page.insert_textbox(pymupdf.Rect(60, 120, 535, 700), sentence, fontsize=12)
        page.insert_text((280, 820), f"Page {n} of 4", fontsize=9)
    doc.save(tmp_path / "m.pdf")
    docs = load_file(tmp_path / "m.pdf", LoadOptions(pdf_engine=engine))
    text = "\n".join(d.text for d in docs)
    assert "Confidential" not in text and "of 4" not in text
    assert [d.text.strip() for d in docs] == body


def test_a_title_line_is_not_run_into_the_paragraph_below_it(tmp_path: Path) -> None:
    """Every line its own block (as many PDF writers set them): the lines of a paragraph are joined,
    but a title in body size that stops short of the column's edge stays its own paragraph."""
    import pymupdf

    doc = pymupdf.open()
    en = doc.new_page(width=595, height=842)
    title = "Aurora X2 Water Purifier - User Manual"
    body = [
        "The Aurora X2 is a reverse-osmosis water purifier made by Xinghe Technology and it",
        "delivers up to two litres of purified water per minute and removes more than ninety",
        "nine percent of lead, chlorine and bacteria from the water of the cold tap.",
    ]
    for y, line in zip(range(60, 200, 20), [title, *body]):
        en.insert_text((60, y), line, fontsize=12)
    zh = doc.new_page(width=595, height=842)
    zh_title = "星河科技员工手册"
    zh_body = ["公司总部位于杭州，员工入职后须在三十天内完成岗位培训并通过考核，培训内容", "包括信息安全、报销制度和考勤规定，未通过考核者由部门负责人安排补考。"]
    for y, line in zip(range(60, 200, 20), [zh_title, *zh_body]):
        zh.insert_text((60, y), line, fontname="china-s", fontsize=12)
    doc.save(tmp_path / "manual.pdf")
    docs = load_file(tmp_path / "manual.pdf")
    assert docs[0].text.split("\n\n") == [title, " ".join(body)]
    assert docs[1].text.split("\n\n") == [zh_title, "".join(zh_body)]


def test_fake_bold_is_read_once(tmp_path: Path) -> None:
    """A title drawn four times a hair apart, to look bold (Chinese annual reports do this), is read
    once, also when the copies are cut into lines at different places; a superscript whose letters
    are in the line beside it stays."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    for dx, dy in [(0, 0), (0.24, 0), (0, 0.24), (0.24, 0.24)]:
        page.insert_text((128 + dx, 100 + dy), "安徽安利合成革股份有限公司", fontname="china-s", fontsize=24)
    for dx in (0, 0.24):  # the date drawn twice, the second copy as two runs cut elsewhere
        page.insert_text((180 + dx, 200), "披露日期：2012", fontname="china-s", fontsize=18)
    page.insert_text((180.24 + pymupdf.get_text_length("披露日期：", fontname="china-s", fontsize=18), 200), "2012 年3 月27 日",
                     fontname="china-s", fontsize=18)
    page.insert_text((60, 300), "Sales grew in the first quarter of the year, ahead of the 21", fontsize=12)
    page.insert_text((60 + pymupdf.get_text_length("Sales grew in the first quarter of the year, ahead of the 21", fontsize=12), 295), "st", fontsize=7)
    doc.save(tmp_path / "bold.pdf")
    text = "\n".join(d.text for d in load_file(tmp_path / "bold.pdf"))
    assert text.count("安徽安利合成革股份有限公司") == 1, text
    assert "披露日期：2012 年3 月27 日" in text and text.count("2012") == 1, text
    assert "21 st" in text or "21st" in text, text


def test_docx_headings_and_tables(tmp_path: Path) -> None:
    docs = load_file(write_docx(tmp_path / "a.docx"))
    text_doc = next(d for d in docs if "三十天" in d.text)
    assert text_doc.meta["title_path"] == ["差旅报销制度", "报销时限"]
    table = next(d for d in docs if d.meta["kind"] == "table")
    assert "| 杭州 | 450 |" in table.text


def test_markdown_title_path(tmp_path: Path) -> None:
    p = tmp_path / "a.md"
    p.write_text("# 手册\n\n## 假期\n\n年假十天。\n\n## 报销\n\n三十天内。\n", encoding="utf-8")
    docs = load_file(p)
    assert [d.meta["title_path"] for d in docs] == [["手册", "假期"], ["手册", "报销"]]


def test_html_main_text_without_scripts(tmp_path: Path) -> None:
    p = tmp_path / "a.html"
    p.write_text(
        "<html><head><script>var x=1;</script><style>p{}</style></head><body><nav>Home | About</nav>"
        "<h1>Guide</h1><p>First paragraph.</p><h2>Details</h2><p>Second &amp; last.</p></body></html>",
        encoding="utf-8",
    )
    docs = load_file(p)
    text = "\n".join(d.text for d in docs)
    assert "var x" not in text and "Home | About" not in text
    assert "Second & last." in text
    assert docs[-1].meta["title_path"] == ["Guide", "Details"]


def test_html_sidebar_is_left_out_but_an_aside_in_the_article_is_kept(tmp_path: Path) -> None:
    """Found by a first-hour review: a news page's <aside> ("Related news: Kestrel opens sales office
    in Warsaw (2022)", "Subscribe") became chunks and was quoted in answers about the article. An
    <aside> inside the <article> or <main> (a note, a pull quote) is the page's own text."""
    p = tmp_path / "news.html"
    p.write_text(
        "<html><body><main><article><h1>Ningbo centre opens</h1><p>The centre opened on 18 March 2024.</p>"
        "<aside>Note: figures are preliminary.</aside></article></main>"
        "<aside><h2>Related news</h2><ul><li>Kestrel opens sales office in Warsaw (2022)</li></ul>"
        "<aside>Subscribe to our newsletter</aside></aside><p>Contact: press@example.com</p></body></html>",
        encoding="utf-8",
    )
    text = "\n".join(d.text for d in load_file(p))
    assert "Warsaw" not in text and "Subscribe" not in text and "Related news" not in text, text
    assert "opened on 18 March 2024." in text and "Note: figures are preliminary." in text and "press@example.com" in text, text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.pdf", b"%PDF-1.7 garbage", "corrupt"),
        ("empty.txt", b"", "empty file"),
        ("fake.docx", b"not a zip at all", "not a valid DOCX"),
        ("binary.txt", bytes(range(256)) * 20, "binary"),
    ],
)
def test_bad_files_give_a_one_line_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(LoadError) as info:
        load_file(p)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_a_decompression_bomb_in_an_office_file_is_refused_before_parsing(tmp_path: Path) -> None:
    """A 300 KB .docx whose document.xml unpacks to 300 MB: refused from the zip's directory, before
    a parser reads it into memory."""
    import zipfile

    from ingest import LoadOptions

    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as part:
            for _ in range(300):
                part.write(b"<w:t>a</w:t>" * 87_382)  # ~1 MB a time, never all in memory here
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(LoadError, match="unpacks to 31[0-9] MB"):
        load_file(bomb, LoadOptions(max_file_mb=200))
    for name in ("bomb.xlsm", "bomb.pdf"):  # found by review: as .xlsm (checked by suffix: missed) it took 10 GB
        other = tmp_path / name
        other.write_bytes(bomb.read_bytes())
        with pytest.raises(LoadError, match="unpacks to 31[0-9] MB"):
            load_file(other, LoadOptions(max_file_mb=200))


def test_pages_with_a_short_line_and_nothing_to_see_are_not_ocr_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ocr auto reads a page again from its picture only when the page shows something (a scan, text
    drawn as outlines): 40 pages of one short line each went through OCR at 3.5 s a page."""
    import ingest.loaders.pdf as pdf

    def no_ocr(*args: object, **kwargs: object) -> list[object]:
        raise AssertionError("OCR was run on a page with nothing to read")

    monkeypatch.setattr(pdf, "ocr_blocks", no_ocr)
    words = [f"item {chr(97 + n % 26)}{chr(97 + n // 26)}" for n in range(40)]  # short, and no running footer
    docs = load_file(write_pdf(tmp_path / "sparse.pdf", words))
    assert [d.text for d in docs] == words and all(d.meta["kind"] == "text" for d in docs)


def test_encrypted_pdf(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="encrypted"):
        load_file(write_pdf(tmp_path / "s.pdf", ["secret"], password="pw"))


def test_unsupported_type(tmp_path: Path) -> None:
    p = tmp_path / "a.xyz"
    p.write_text("x")
    with pytest.raises(UnsupportedFile):
        load_file(p)


def test_paddleocr_without_models_names_the_option(tmp_path: Path) -> None:
    from PIL import Image

    from ingest import LoadOptions

    Image.new("RGB", (200, 60), "white").save(tmp_path / "scan.png")
    with pytest.raises(LoadError, match="ingest.ocr_model_dir"):
        load_file(tmp_path / "scan.png", LoadOptions(ocr_engine="paddleocr"))
    with pytest.raises(LoadError, match="no det/ and rec/"):
        load_file(tmp_path / "scan.png", LoadOptions(ocr_engine="paddleocr", ocr_model_dir=str(tmp_path)))


def test_pdf_titles_from_large_fonts_and_from_the_outline(tmp_path: Path) -> None:
    import pymupdf

    def build(outline: bool) -> Path:
        doc = pymupdf.open()
        page = doc.new_page(width=595, height=842)
        page.insert_text((60, 100), "Aurora X2 Manual", fontsize=22)
        page.insert_text((60, 140), "Installation", fontsize=16)
        page.insert_textbox(pymupdf.Rect(60, 160, 535, 300), "Connect the inlet hose to the cold water tap and open the valve slowly.", fontsize=11)
        page.insert_text((60, 340), "Maintenance", fontsize=16)
        page.insert_textbox(pymupdf.Rect(60, 360, 535, 500), "Replace the RO membrane every 24 months and the PP filter every 6 months.", fontsize=11)
        page = doc.new_page(width=595, height=842)
        page.insert_textbox(pymupdf.Rect(60, 100, 535, 300), "Clean the outer case with a soft damp cloth once a month.", fontsize=11)
        if outline:
            doc.set_toc([[1, "Aurora X2 Manual", 1], [2, "Installation", 1], [2, "Maintenance", 1]])
        path = tmp_path / f"titled-{outline}.pdf"
        doc.save(path)
        return path

    for outline in (False, True):
        docs = load_file(build(outline))
        by_text = {d.text.split("\n")[-1]: (d.page, d.meta["title_path"]) for d in docs}
        assert by_text["Connect the inlet hose to the cold water tap and open the valve slowly."] == (1, ["Aurora X2 Manual", "Installation"])
        assert by_text["Replace the RO membrane every 24 months and the PP filter every 6 months."] == (1, ["Aurora X2 Manual", "Maintenance"])
        # the section goes on across the page break
        assert by_text["Clean the outer case with a soft damp cloth once a month."] == (2, ["Aurora X2 Manual", "Maintenance"])


def test_markdown_made_only_of_headings_keeps_them(tmp_path: Path) -> None:
    (tmp_path / "outline.md").write_text("# 产品手册\n\n## 安装\n\n## 保养\n", encoding="utf-8")
    assert load_file(tmp_path / "outline.md")[0].text == "# 产品手册\n## 安装\n## 保养"



@pytest.mark.slow
def test_an_image_named_as_a_document_is_read_as_the_image_it_is(tmp_path: Path) -> None:
    """Found by helper 99: a scan saved as scan.pdf (a PNG inside) failed with "no text found in file"; it is OCR'd, with a
    warning that says what it is. A text that begins "BM" is still text."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=600, height=200)
    page.insert_text((20, 80), "The meeting room password is 8823.", fontsize=24)
    page.get_pixmap(dpi=150).save(str(tmp_path / "scan.pdf"), output="png")
    docs = load_file(tmp_path / "scan.pdf")
    assert "password is 8823" in docs[0].text and docs[0].meta["warning"] == "a PNG image named .pdf: read as an image, by OCR"
    (tmp_path / "cars.txt").write_text("BMW manual: the car is fast.", encoding="utf-8")
    assert load_file(tmp_path / "cars.txt")[0].text == "BMW manual: the car is fast."


@pytest.mark.slow
def test_a_word_headers_picture_is_read_with_the_headers_own_relationships(tmp_path: Path) -> None:
    """Found by helper 100: a header's picture was looked up among the body's relationships; where both used the same id
    (rId9), the body picture's OCR'd text ("INVOICE TOTAL 4500") went into the description and left the body."""
    import re
    import zipfile

    import docx
    from PIL import Image, ImageDraw, ImageFont

    for text, name in (("INVOICE TOTAL 4500", "body.png"), ("ACME LOGO", "logo.png")):
        picture = Image.new("RGB", (900, 200), "white")
        ImageDraw.Draw(picture).text((20, 60), text, fill="black", font=ImageFont.load_default(size=60))
        picture.save(tmp_path / name)
    word = docx.Document()
    word.add_paragraph("The chart below shows the invoice.")
    word.add_picture(str(tmp_path / "body.png"))
    word.sections[0].header.paragraphs[0].add_run().add_picture(str(tmp_path / "logo.png"))
    word.save(str(tmp_path / "base.docx"))
    with zipfile.ZipFile(tmp_path / "base.docx") as z:
        body_id = re.findall(r'Id="(rId\d+)" Type="[^"]*/image"', z.read("word/_rels/document.xml.rels").decode())[0]
        header_id = re.findall(r'r:embed="(rId\d+)"', z.read("word/header1.xml").decode())[0]
        with zipfile.ZipFile(tmp_path / "collide.docx", "w") as out:  # the header's picture under the body picture's id
            for info in z.infolist():
                data = z.read(info)
                if info.filename in ("word/header1.xml", "word/_rels/header1.xml.rels"):
                    data = data.replace(f'"{header_id}"'.encode(), f'"{body_id}"'.encode())
                out.writestr(info, data)
    docs = load_file(tmp_path / "collide.docx")
    assert "4500" in "\n".join(d.text for d in docs) and "4500" not in str(docs[0].meta.get("about")), [d.text for d in docs]

def test_a_text_file_without_a_suffix_is_read_and_a_binary_one_is_not(tmp_path: Path) -> None:
    from ingest import UnsupportedFile

    (tmp_path / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n", encoding="utf-8")
    assert "Apache License" in load_file(tmp_path / "LICENSE")[0].text
    (tmp_path / "blob").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" * 20)
    with pytest.raises(UnsupportedFile):
        load_file(tmp_path / "blob")


def test_every_right_to_left_letter_is_in_the_quick_check() -> None:
    import re
    import sys
    import unicodedata

    from ingest.loaders.bidi import RTL_TEXT
    from ingest.loaders.reading_order import rtl_text

    letters = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.bidirectional(chr(c)) in ("R", "AL") and chr(c).isalpha()]
    assert letters and all(re.match(RTL_TEXT, ch) for ch in letters)
    assert rtl_text("שלום עולם, hi") and rtl_text("مرحبا بالعالم") and not rtl_text("hello 世界") and not rtl_text("")


def _statement_pdf(path: Path) -> Path:
    """A cash flow statement set without rules: labels flush left, figures flush right under years."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    font = pymupdf.Font("helv")
    page.insert_text((60, 60), "Consolidated Statement of Cash Flows", fontsize=14)
    page.insert_text((60, 80), "(In millions)", fontsize=10)
    rows = [
        ("", ["2018 ", "2017 ", "2016 "]),  # years set a little left of their figures' right edge
        ("Net income", ["$", "5,363", "$", "4,869", "$", "5,058"]),
        ("Depreciation and amortization", ["1,488", "1,544", "1,474"]),
        ("Investing activities", []),
        ("Purchases of property and equipment", ["(1,577)", "(1,373)", "(1,420)"]),
        ("Proceeds from sale of assets", ["262", "49", "-"]),
        ("Net cash used in investing activities", ["(1,315)", "(1,324)", "(1,362)"]),
    ]
    for r, (label, figures) in enumerate(rows):
        y = 110 + 16 * r
        if label:
            page.insert_text((60, y), label, fontsize=10)
        rights = iter([400, 470, 540])
        for figure in figures:
            if figure == "$":  # the currency sign sits at the column's left
                page.insert_text((350 + 70 * (len([f for f in figures[: figures.index(figure)] if f != "$"])), y), "$", fontsize=10)
                continue
            right = next(rights)
            page.insert_text((right - font.text_length(figure, 10), y), figure, fontsize=10)
    page.insert_text((60, 250), "The accompanying notes are an integral part of this statement.", fontsize=10)
    doc.save(path)
    return path


def test_pdf_unruled_statement_becomes_a_table_with_its_years_as_the_header(tmp_path: Path) -> None:
    docs = load_file(_statement_pdf(tmp_path / "statement.pdf"))
    tables = [d for d in docs if d.meta.get("kind") == "table"]
    assert len(tables) == 1, [d.text for d in docs]
    lines = tables[0].text.split("\n")
    assert lines[0] == "|  | 2018 | 2017 | 2016 |"
    assert "| Net income | 5,363 | 4,869 | 5,058 |" in lines  # a lone "$" is no cell
    assert "| Investing activities |  |  |  |" in lines
    assert "| Purchases of property and equipment | (1,577) | (1,373) | (1,420) |" in lines
    assert "| Proceeds from sale of assets | 262 | 49 | - |" in lines
    text = "\n".join(d.text for d in docs)
    assert text.index("Consolidated Statement of Cash Flows") < text.index("| Net income") < text.index("The accompanying notes")


def test_pdf_unruled_statement_pieces_keep_the_title_units_and_years(tmp_path: Path) -> None:
    from ingest import split_documents

    docs = load_file(_statement_pdf(tmp_path / "statement.pdf"))
    for d in docs:
        d.meta["source"] = "statement.pdf"
    pieces = [c for c in split_documents(docs, chunk_size=120, chunk_overlap=0) if c.meta.get("kind") == "table"]
    assert len(pieces) >= 2
    for piece in pieces:
        assert piece.text.startswith("|  | 2018 | 2017 | 2016 |"), piece.text
        assert "Consolidated Statement of Cash Flows" in piece.meta["caption"] and "(In millions)" in piece.meta["caption"]
    assert any("| Purchases of property and equipment | (1,577) |" in p.text for p in pieces)


def test_pdf_prose_and_contents_with_numbers_stay_text(tmp_path: Path) -> None:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    font = pymupdf.Font("helv")
    for i, (label, number) in enumerate([("Item 1. Business", "3"), ("Item 1A. Risk Factors", "12"), ("Item 2. Properties", "25"), ("Item 3. Legal Proceedings", "27")]):
        page.insert_text((60, 80 + 16 * i), label, fontsize=10)
        page.insert_text((540 - font.text_length(number, 10), 80 + 16 * i), number, fontsize=10)
    page.insert_textbox(pymupdf.Rect(60, 200, 540, 400), "Revenue grew 12 % in 2018 to 1,577 million, after 1,373 million in 2017 and 1,420 million in 2016. "
                        "Operating income was 5,363 million, and 4,869 million a year before.", fontsize=10)
    doc.save(tmp_path / "prose.pdf")
    docs = load_file(tmp_path / "prose.pdf")
    assert all(d.meta.get("kind") != "table" for d in docs), [d.text for d in docs]
    text = "\n".join(d.text for d in docs)
    assert "Item 1A. Risk Factors 12" in text and "after 1,373 million in 2017" in text


def test_pdf_a_heading_in_body_size_is_not_glued_to_its_paragraph(tmp_path: Path) -> None:
    """Found by a first-hour review: "Section 4 - Annual leave Full-time employees receive…": a title
    set in body size on the line above its text, in one block, was joined into the paragraph."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_textbox(pymupdf.Rect(50, 50, 550, 400), "Section 4 - Annual leave\nFull-time employees receive 22 days of paid annual leave "
                        "per year, plus public holidays. Part-time employees receive leave pro rata, and up to 5 unused days may be "
                        "carried over to the next year.\nSection 5 - Sick leave\nEmployees must tell their manager before 10:00.", fontsize=10)
    doc.save(tmp_path / "handbook.pdf")
    text = "\n".join(d.text for d in load_file(tmp_path / "handbook.pdf"))
    assert "Section 4 - Annual leave\n\nFull-time employees receive 22 days" in text, text
    assert "paid annual leave per year, plus public holidays" in text  # (a wrapped line still runs on)
    assert "Section 5 - Sick leave\n\nEmployees must" in text, text


def test_pdf_unruled_table_keeps_every_figure_and_leaves_what_it_cannot_split(tmp_path: Path) -> None:
    """Found by review: a row drawn as one line with more figures than columns lost them, a years
    header drawn as one line was lost, "n/a" pushed a row into the labels, a running head became
    column heads, and two statements side by side were mixed into one."""
    import pymupdf

    doc = pymupdf.open()
    font = pymupdf.Font("helv")

    def right(page: pymupdf.Page, x: float, y: float, text: str) -> None:
        page.insert_text((x - font.text_length(text, 10), y), text, fontsize=10)

    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 40), "ACME Corp", fontsize=9)  # a running head in the top margin
    right(page, 540, 40, "Annual Report 2023")
    page.insert_text((340, 110), "2023        2022", fontsize=10)  # the years as one line
    for i, (label, a, b) in enumerate([("Revenue", "100", "90"), ("Costs", "50", "45"), ("Europe", "800", "n/a"), ("Profit", "50", "45")]):
        page.insert_text((72, 130 + 16 * i), label, fontsize=10)
        right(page, 400, 130 + 16 * i, a)
        right(page, 470, 130 + 16 * i, b)
    page.insert_text((72, 130 + 16 * 4), "Segments A B C 11 22 33 44", fontsize=10)
    side = doc.new_page(width=612, height=792)
    for i, (left, right_label) in enumerate([("Cash", "Operating"), ("Receivables", "Investing"), ("Inventory", "Financing"), ("Total", "Net change")]):
        y = 120 + 16 * i
        side.insert_text((60, y), left, fontsize=10)
        right(side, 230, y, str(10 + i))
        right(side, 280, y, str(20 + i))
        side.insert_text((320, y), right_label, fontsize=10)
        right(side, 500, y, str(30 + i))
        right(side, 550, y, str(40 + i))
    doc.save(tmp_path / "odd.pdf")
    docs = load_file(tmp_path / "odd.pdf")
    table = next(d.text for d in docs if d.meta.get("kind") == "table" and d.page == 1)
    lines = table.split("\n")
    assert lines[0] == "|  | 2023 | 2022 |", table
    assert "| Europe | 800 | n/a |" in lines and "| Segments A B C 11 22 | 33 | 44 |" in lines
    assert "ACME Corp" in "\n".join(d.text for d in docs if d.page == 1 and d.meta.get("kind") != "table")
    assert not [d for d in docs if d.page == 2 and d.meta.get("kind") == "table"]  # side by side: left as text
    words = " ".join(d.text for d in docs if d.page == 2).split()
    assert all(w in words for w in ["Cash", "10", "20", "Operating", "30", "40", "Net", "change", "13", "23", "33", "43"])


def test_a_heading_of_thousands_of_characters_is_cut_in_the_title_path_and_kept_whole_in_the_text(tmp_path: Path) -> None:
    # every chunk under a heading is embedded and indexed with its title path: a 24,000-character one
    # made a 24 KB Markdown file take 41.6 s to ingest (2.6 s now)
    from ingest.loaders import HEADING_CHARS

    path = tmp_path / "long.md"
    path.write_text("# " + "标题" * 12000 + "\n\n储能电池在零下十度以下不能充电。\n\n## Short one\n\n滤芯每六个月更换一次。\n", encoding="utf-8")
    docs = load_file(path)
    titles = [t for d in docs for t in d.meta["title_path"]]
    assert titles and all(len(t) <= HEADING_CHARS for t in titles) and titles[0].endswith("…") and "Short one" in titles
    assert "标题" * 12000 in "".join(d.text for d in docs)


def _line(y: float, text: str, x0: float = 100.0, char: float = 30.0) -> list[tuple[tuple[float, float, float, float], str]]:
    """One OCR'd line of CJK text: boxes of 30 px a character, 30 px high."""
    return [((x0, y, x0 + char * len(text), y + 30), text)]


def test_ocr_lines_are_joined_into_paragraphs() -> None:
    """A scanned notice's lines, as the OCR boxes give them (each line 20 characters wide, a
    paragraph's first line set in by two): the lines wrapped inside a paragraph are one text, so a
    sentence wrapped over two lines is one sentence (each line stayed a line of its own: the answer to
    "可以在多少日内申请行政复议？" was cut at "…送达之日起6"). A line that stops short ends its
    paragraph; a Latin line wraps with a space."""
    from ingest.loaders.layout import paragraphs

    rows = [
        _line(0, "当事人不服本处罚决定的，依照《中华人", x0=160),
        _line(40, "民共和国行政复议法》第九条之规定，可自本"),
        _line(80, "决定书送达之日起60日内向南京海关申请行"),
        _line(120, "政复议。"),
        _line(160, "到期不缴纳罚款的，每日可以按罚款数额", x0=160),
        _line(200, "的百分之三加处罚款。"),
        _line(240, "地址：哈尔滨市松北区创新一路1299号。"),
    ]
    assert paragraphs(rows).split("\n") == [
        "当事人不服本处罚决定的，依照《中华人民共和国行政复议法》第九条之规定，可自本决定书送达之日起60日内向南京海关申请行政复议。",
        "到期不缴纳罚款的，每日可以按罚款数额的百分之三加处罚款。",
        "地址：哈尔滨市松北区创新一路1299号。",
    ]
    english = [_line(0, "The membrane removes salts and most", char=15), _line(40, "dissolved solids.", char=15), _line(80, "Flush it.", char=15)]
    assert paragraphs(english) == "The membrane removes salts and most dissolved solids.\nFlush it."
    assert paragraphs([]) == ""


def test_a_scanned_pages_bare_page_number_is_no_text() -> None:
    """Found by a first-hour review: a scanned notice's page number "3", which the layout model left
    outside every region, was kept as a paragraph of its own. A bare page number in the top or bottom
    tenth of the page is dropped; the same figure in the body, or a line of words in the margin, stays."""
    from ingest.loaders.layout import Region, arrange

    body = Region("text", (100, 200, 800, 300))
    words = [*_line(210, "到期不缴纳罚款的，每日可以按罚款数额"), *_line(1700, "3", x0=600), *_line(1000, "- 7 -", x0=600),
             *_line(1650, "第 2 页 共 5 页", x0=500), *_line(1720, "南京海关", x0=100)]
    texts = [b.text for b in arrange(words, [body], 1240.0, 1754.0)]
    assert sorted(texts) == sorted(["到期不缴纳罚款的，每日可以按罚款数额", "- 7 -", "南京海关"]), texts
    assert "3" in [b.text for b in arrange(words, [body], 1240.0)]  # the page's height unknown: nothing dropped
    notice = [*_line(210, "本件与原本核对无异"), *_line(1480, "3", x0=605)]
    assert [b.text for b in arrange(notice, [body], 1240.0, 1754.0)] == ["本件与原本核对无异"]  # centred, the last line, at 84%
    aside = [*_line(210, "本件与原本核对无异"), *_line(1480, "3", x0=100)]
    assert "3" in [b.text for b in arrange(aside, [body], 1240.0, 1754.0)]  # not centred: kept


def test_a_pdf_table_going_on_over_the_page_without_its_header_keeps_it(tmp_path: Path) -> None:
    """Found by a first-hour review: a parts catalogue's table went on over three pages with its
    header on the first only; page 2's first row (P-2020) became the header, repeated in every piece,
    and "Which bin holds P-3024?" was answered with bare rows. A table at a page's top with the same
    columns as the one the page before ended with, and figures where its last row has them, takes its
    header; a new table with a header of its own stays as it is."""
    header = ["Part No.", "Description", "Unit price"]
    write_pages_pdf(tmp_path / "parts.pdf", [
        ["Spare parts catalogue", [header, ["P-1010", "Fan motor", "58.00"], ["P-1011", "Rear latch", "36.74"]]],
        [[["P-2020", "Power cord", "33.82"], ["P-2021", "Filter door", "71.91"]]],
        [[["P-3024", "Wi-Fi module", "45.44"], ["P-3025", "Handle", "66.98"]]],
        [[["Region", "Dealer", "Phone"], ["North", "Anna", "0512-6688"]]],
    ])
    tables = [d for d in load_file(tmp_path / "parts.pdf") if d.meta["kind"] == "table"]
    assert [d.meta["page"] for d in tables] == [1, 2, 3, 4]
    for d, first in zip(tables[1:3], ("| P-2020 | Power cord | 33.82 |", "| P-3024 | Wi-Fi module | 45.44 |")):
        assert d.text.split("\n")[:3] == ["| Part No. | Description | Unit price |", "|---|---|---|", first], d.text
    assert tables[3].text.startswith("| Region | Dealer | Phone |\n|---|"), tables[3].text
