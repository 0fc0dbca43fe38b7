"""Scanned pages through OCR with the layout model: columns in reading order, the title marked,
the running head and the page number dropped. The page is drawn here, as a scanner would give it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import LoadOptions, load_file

pytestmark = pytest.mark.slow  # real models or servers in subprocesses: `pytest -m "not slow"` skips them

pytest.importorskip("rapid_layout")

LEFT = ["The PP cotton filter removes", "sand and rust from the water.", "Replace it every six months", "or when the flow slows down."]
RIGHT = ["The RO membrane removes salts", "and most dissolved solids.", "Replace it every two years", "and flush the new membrane."]


def draw_page(path: Path) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (1240, 1754), "white")  # A4 at 150 dpi
    d = ImageDraw.Draw(img)
    small, body, big = (ImageFont.load_default(size=s) for s in (22, 28, 48))
    d.text((100, 60), "AURORA SERVICE BULLETIN 2024", fill="black", font=small)
    d.line((100, 95, 1140, 95), fill="black", width=2)
    d.text((100, 160), "Filter Replacement Guide", fill="black", font=big)
    for i, (left, right) in enumerate(zip(LEFT, RIGHT)):
        d.text((100, 300 + i * 45), left, fill="black", font=body)
        d.text((660, 300 + i * 45), right, fill="black", font=body)
    d.text((100, 700), "Check the indicator light on the front panel every month.", fill="black", font=body)
    d.text((580, 1680), "Page 3", fill="black", font=small)
    img.save(path)
    return path


def test_two_columns_title_and_page_furniture(tmp_path: Path) -> None:
    page = draw_page(tmp_path / "scan.png")
    docs = load_file(page)
    text = "\n".join(d.text for d in docs)
    assert "BULLETIN" not in text and "Page 3" not in text
    assert docs[0].meta["title_path"] == ["Filter Replacement Guide"]
    # each column read top to bottom, the left one first, the full-width line last
    flat = " ".join(text.split())  # (lines wrapped inside a paragraph are joined)
    assert " ".join(LEFT) in flat and " ".join(RIGHT) in flat
    assert text.index(LEFT[-1]) < text.index(RIGHT[0]) < text.index("indicator light")


def test_without_layout_lines_run_across_the_columns(tmp_path: Path) -> None:
    page = draw_page(tmp_path / "scan.png")
    text = "\n".join(d.text for d in load_file(page, LoadOptions(ocr_layout=False)))
    assert f"{LEFT[0]} {RIGHT[0]}" in text  # what kbqa avoids with the layout model


def test_scanned_pdf_page_gets_layout_and_titles(tmp_path: Path) -> None:
    import pymupdf

    image = draw_page(tmp_path / "scan.png")
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_image(page.rect, filename=str(image))  # no text layer: a scan
    doc.save(tmp_path / "scan.pdf")
    docs = load_file(tmp_path / "scan.pdf")
    assert {d.meta["kind"] for d in docs} == {"ocr"} and {d.page for d in docs} == {1}
    assert docs[-1].meta["title_path"] == ["Filter Replacement Guide"]
    assert "BULLETIN" not in "\n".join(d.text for d in docs)


def test_a_cropped_text_line_is_read(tmp_path: Path) -> None:
    """A small image cropped tight around its text (a label, a screenshot of one line) is read
    whole: without a border the detector reads this one as 'EILTERPP-2024'."""
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    img = Image.new("RGB", (400, 80), "white")
    ImageDraw.Draw(img).text((20, 20), "FILTER PP-2024", fill="black", font=ImageFont.load_default(size=24))
    img = img.crop(ImageOps.invert(img.convert("L")).getbbox())
    img.save(tmp_path / "line.jpg", quality=70)
    assert load_file(tmp_path / "line.jpg")[0].text == "FILTER PP-2024"


def test_scanned_pages_ocr_side_by_side_give_the_same_text(tmp_path: Path) -> None:
    """Several OCR threads (ingest.ocr_workers) read a scanned PDF exactly as one does, in page order."""
    import pymupdf
    from PIL import Image, ImageDraw, ImageFont

    doc = pymupdf.open()
    for n in range(1, 5):
        img = Image.new("RGB", (1240, 600), "white")
        ImageDraw.Draw(img).text((100, 200), f"Scanned page number {n} of the filter manual", fill="black", font=ImageFont.load_default(size=36))
        img.save(tmp_path / f"p{n}.png")
        page = doc.new_page(width=595, height=288)
        page.insert_image(page.rect, filename=str(tmp_path / f"p{n}.png"))
    doc.save(tmp_path / "scan4.pdf")
    one = load_file(tmp_path / "scan4.pdf", LoadOptions(ocr_workers=1))
    two = load_file(tmp_path / "scan4.pdf", LoadOptions(ocr_workers=2))
    assert [(d.page, d.text) for d in one] == [(d.page, d.text) for d in two]
    assert [d.page for d in two] == [1, 2, 3, 4]
    assert all(f"page number {d.page} of" in d.text for d in two)

