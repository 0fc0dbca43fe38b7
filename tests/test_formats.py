"""Office, web, e-book and mail formats on small files the tests write."""

from __future__ import annotations

import zipfile
from email.message import EmailMessage
from pathlib import Path

from ingest import load_file


def test_xlsx_rows_become_records_with_sheet_names(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "住宿标准"
    ws.append(["城市", "每晚上限（元）"])
    ws.append(["杭州", 450])
    ws.append(["北京", 600])
    other = book.create_sheet("交通")
    other.append(["方式", "条件"])
    other.append(["飞机", "经部门负责人批准"])
    book.save(tmp_path / "a.xlsx")
    docs = load_file(tmp_path / "a.xlsx")
    assert [d.meta["title_path"] for d in docs] == [["住宿标准"], ["交通"]]
    assert [d.page for d in docs] == [1, 2]
    assert docs[0].text.startswith("| 城市 | 每晚上限（元） |\n|---|---|") and "| 杭州 | 450 |" in docs[0].text
    assert docs[0].meta["kind"] == "table"


def test_csv_and_tsv(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("name;age\nAlice;30\nBob;41\n", encoding="utf-8")
    assert "| Bob | 41 |" in load_file(tmp_path / "a.csv")[0].text
    (tmp_path / "b.tsv").write_bytes("产品\t价格\n净水器\t1999\n".encode("gbk"))
    assert "| 净水器 | 1999 |" in load_file(tmp_path / "b.tsv")[0].text


def test_pptx_slides_are_pages_with_notes(tmp_path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for title, body, notes in [("产品介绍", "Aurora X2 每分钟出水 2 升。", "讲者备注：强调出水量"), ("保修", "主机保修三年。", "")]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    table = deck.slides[1].shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text, table.cell(1, 0).text, table.cell(1, 1).text = "部件", "年限", "主机", "3"
    deck.save(tmp_path / "a.pptx")
    docs = load_file(tmp_path / "a.pptx")
    assert [d.page for d in docs] == [1, 2]
    assert docs[0].meta["title_path"] == ["产品介绍"] and "讲者备注" in docs[0].text
    assert "| 主机 | 3 |" in docs[1].text


def test_eml_body_and_text_attachment(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["Subject"] = "报销提醒"
    msg["From"] = "hr@example.com"
    msg["To"] = "all@example.com"
    msg.set_content("请在出差结束后三十天内提交报销。")
    msg.add_attachment("附件：住宿上限450元。".encode(), maintype="text", subtype="plain", filename="limits.txt")
    (tmp_path / "a.eml").write_bytes(bytes(msg))
    docs = load_file(tmp_path / "a.eml")
    assert docs[0].meta["title_path"] == ["报销提醒"] and "三十天内" in docs[0].text
    assert docs[1].meta["title_path"] == ["报销提醒", "limits.txt"] and "450" in docs[1].text


def test_epub_chapters_in_spine_order(tmp_path: Path) -> None:
    path = tmp_path / "a.epub"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="OEBPS/content.opf"/></rootfiles></container>')
        z.writestr("OEBPS/content.opf", '<package><manifest><item id="c2" href="two.xhtml"/><item id="c1" href="one.xhtml"/></manifest>'
                   '<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>')
        z.writestr("OEBPS/one.xhtml", "<html><body><h1>第一章</h1><p>从前有座山。</p></body></html>")
        z.writestr("OEBPS/two.xhtml", "<html><body><h1>第二章</h1><p>山里有座庙。</p></body></html>")
    docs = load_file(path)
    assert [d.meta["title_path"] for d in docs] == [["第一章"], ["第二章"]]
    assert "山里有座庙" in docs[1].text


def test_plain_text_title_lines(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("设备手册\n本手册介绍净水器的安装、使用与维护方法，请在安装前仔细阅读。\n\n维护\n滤芯每六个月更换一次，膜每两年更换一次，以保证出水质量。\n", encoding="utf-8")
    docs = load_file(tmp_path / "a.txt")
    assert [d.meta["title_path"] for d in docs] == [["设备手册"], ["维护"]]
