"""The lattice table finder on small PDFs drawn in the test: same Markdown as PyMuPDF's find_tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymupdf
import pytest

from ingest.loaders.lattice import find_grids
from ingest.loaders.pdf_tables import page_tables, ruling_lines
from ingest.tables import markdown_table, tidy_cells


def _grid(page: Any, xs: list[float], ys: list[float], skip: set[tuple[int, int]] = frozenset()) -> None:
    """Rules at xs and ys; skip: (row, column) of vertical rule pieces left out, merging two cells."""
    for y in ys:
        page.draw_line((xs[0], y), (xs[-1], y))
    for c, x in enumerate(xs):
        for r in range(len(ys) - 1):
            if (r, c) not in skip:
                page.draw_line((x, ys[r]), (x, ys[r + 1]))


def _fill(page: Any, xs: list[float], ys: list[float], rows: list[list[str]], dy: float = 13) -> None:
    """Each row's texts at the left of their cells, dy below the row's top rule; "" writes nothing."""
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            if text:
                page.insert_text((xs[c] + 4, ys[r] + dy), text, fontsize=9)


def _write(page: Any, placed: list[tuple[float, float, str]]) -> None:
    """Texts set at (x, baseline y), as lines outside any table."""
    for x, y, text in placed:
        page.insert_text((x, y), text, fontsize=9)


def _page(tmp_path: Path, draw: Any, rotate: int = 0) -> Any:
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    draw(page)
    if rotate:
        page.set_rotation(rotate)
    doc.save(tmp_path / "t.pdf")
    return pymupdf.open(tmp_path / "t.pdf")[0]


def _both(page: Any) -> list[str]:
    """page_tables' Markdown, after checking that the lattice finder gives what find_tables gives."""
    ours = page_tables(page)
    assert ours == page_tables(page, finder="pymupdf")
    return [text for _, text in ours]


def test_ruled_grid_becomes_a_markdown_table(tmp_path: Path) -> None:
    def draw(page: Any) -> None:
        xs, ys = [72, 200, 330, 460], [100, 125, 150, 175]
        _grid(page, xs, ys)
        for r, row in enumerate([["City", "Hotel", "Meals"], ["Hangzhou", "450", "100"], ["Beijing", "600", "120"]]):
            for c, text in enumerate(row):
                page.insert_text((xs[c] + 4, ys[r] + 17), text, fontsize=10)

    page = _page(tmp_path, draw)
    assert _both(page) == ["| City | Hotel | Meals |\n|---|---|---|\n| Hangzhou | 450 | 100 |\n| Beijing | 600 | 120 |"]
    grids = find_grids(page, (70, 98, 462, 177), page.get_cdrawings(), page.get_textpage().extractRAWDICT()["blocks"])
    assert grids is not None and [(g.row_count, g.col_count) for g in grids] == [(3, 3)]


def test_merged_header_cell_is_repeated_over_the_columns_it_spans(tmp_path: Path) -> None:
    def draw(page: Any) -> None:
        xs, ys = [72, 200, 330, 460], [100, 125, 150, 175]
        _grid(page, xs, ys, skip={(0, 2)})  # no rule between "Cost" and the cell right of it: one header cell
        page.insert_text((76, 117), "City", fontsize=10)
        page.insert_text((204, 117), "Cost", fontsize=10)
        for r, row in enumerate([["Hangzhou", "450", "100"], ["Beijing", "600", "120"]], start=1):
            for c, text in enumerate(row):
                page.insert_text((xs[c] + 4, ys[r] + 17), text, fontsize=10)

    page = _page(tmp_path, draw)
    assert _both(page) == ["| City | Cost | Cost |\n|---|---|---|\n| Hangzhou | 450 | 100 |\n| Beijing | 600 | 120 |"]


def test_a_statement_reads_label_and_figures_without_the_columns_its_signs_stood_in(tmp_path: Path) -> None:
    """Financial statements set "$" in a cell of its own and a year over both the sign and the figure:
    the sign goes with its figure, and the columns that only repeat a neighbour are dropped."""
    def draw(page: Any) -> None:
        xs, ys = [72, 250, 270, 350, 370, 450], [100, 125, 150, 175, 200]
        _grid(page, xs, ys, skip={(0, 2), (0, 4)})  # "2023" and "2022" each span a sign's column and a figure's
        rows = [["(Millions)", "2023", "", "2022", ""], ["Revenue", "$", "1,093", "$", "840"],
                ["Costs", "", "(482)", "", "(547)"], ["Margin", "", "56.2", "%", "53.0"]]
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                if text:
                    page.insert_text((xs[c] + 4, ys[r] + 17), text, fontsize=10)

    page = _page(tmp_path, draw)
    assert _both(page) == ["| (Millions) | 2023 | 2022 |\n|---|---|---|\n| Revenue | $ 1,093 | $ 840 |\n"
                           "| Costs | (482) | (547) |\n| Margin | 56.2% | 53.0 |"]


def test_a_table_whose_header_is_above_its_rules_reads_each_merged_figure_once(tmp_path: Path) -> None:
    """A filing's summary table (American Express's, page 44) rules only its rows: no header row says
    which columns belong together, but the merged cells do: a figure spread over a sign's column and
    a "%" column in one row, a sign in a cell of its own in another. Equal figures of two years, each
    in a cell of its own, stay two."""
    xs = [72, 250, 265, 330, 345, 360, 425, 440]
    rows = [  # (column where the cell starts, text); the cells between are merged into it
        [(0, "Total revenues"), (1, "$"), (2, "52,862"), (4, "$"), (5, "42,380")],
        [(0, "Expenses"), (1, "41,095"), (4, "33,110")],
        [(0, "Dividends per share"), (1, "$"), (2, "1.72"), (4, "$"), (5, "1.72")],
        [(0, "Return on equity"), (1, "32.3"), (3, "%"), (4, "33.7"), (6, "%")],
    ]
    ys = [100 + 25 * r for r in range(len(rows) + 1)]

    def draw(page: Any) -> None:
        starts = [{c for c, _ in row} | {len(xs) - 1} for row in rows]
        _grid(page, xs, ys, skip={(r, c) for r in range(len(rows)) for c in range(len(xs)) if c not in starts[r]})
        for r, row in enumerate(rows):
            for c, text in row:
                page.insert_text((xs[c] + 2, ys[r] + 17), text, fontsize=9)

    page = _page(tmp_path, draw)
    assert _both(page) == ["| Total revenues | $ 52,862 | $ 42,380 |\n|---|---|---|\n| Expenses | 41,095 | 33,110 |\n"
                           "| Dividends per share | $ 1.72 | $ 1.72 |\n| Return on equity | 32.3% | 33.7% |"]


def test_heads_set_above_a_headless_ruled_table_become_its_header(tmp_path: Path) -> None:
    """The years and the units line set as text above a table whose rules start at its first figures
    (most filings' summary tables) are its header; a section label just above the rules is its first
    row; what is above the heads (a caption, a line over the labels alone) and the sentence after the
    table stay text, and no line is lost or read twice."""
    from ingest import load_file

    xs, ys = [72, 300, 400, 500], [200, 220, 240]

    def draw(page: Any) -> None:
        _write(page, [(72, 140, "TABLE 3: OPERATING RESULTS FOR THE GROUP"), (72, 158, "Years Ended December 31,"),
                      (72, 172, "(Millions)"), (340, 172, "2023"), (440, 172, "2022"), (72, 194, "Selected data")])
        _grid(page, xs, ys)
        _fill(page, xs, ys, [["Revenue", "1,093", "840"], ["Costs", "(482)", "(547)"]], dy=15)
        page.insert_text((72, 280), "Revenue grew by a third.", fontsize=9)

    page = _page(tmp_path, draw)
    assert _both(page) == ["| (Millions) | 2023 | 2022 |\n|---|---|---|\n| Selected data |  |  |\n"
                           "| Revenue | 1,093 | 840 |\n| Costs | (482) | (547) |"]
    docs = load_file(tmp_path / "t.pdf")
    text = "\n".join(d.text for d in docs)
    for line in ("TABLE 3: OPERATING RESULTS FOR THE GROUP", "Years Ended December 31,", "Selected data", "Revenue grew by a third."):
        assert text.count(line) == 1, line
    assert [d.meta["kind"] for d in docs if "1,093" in d.text] == ["table"]


def test_lines_above_a_ruled_table_that_are_not_heads_stay_text(tmp_path: Path) -> None:
    """A sentence, a figure of another table, or a line set across the labels' column and the figures'
    just above the rules ends the look upwards: the table keeps its first row as header, as before."""
    xs, ys = [72, 300, 400, 500], [200, 220, 240]
    for x, above in ((72, "The table below shows revenue and costs for the year."), (72, "Prior total 1,234"),
                     (72, "Selected operating data of the group, by year, in millions of euros"), (250, "Group results by year")):

        def draw(page: Any, x: int = x, above: str = above) -> None:
            page.insert_text((340, 172), "2023", fontsize=9)
            page.insert_text((440, 172), "2022", fontsize=9)
            page.insert_text((x, 188), above, fontsize=9)
            _grid(page, xs, ys)
            _fill(page, xs, ys, [["Revenue", "1,093", "840"], ["Costs", "(482)", "(547)"]], dy=15)

        page = _page(tmp_path, draw)
        assert _both(page) == ["| Revenue | 1,093 | 840 |\n|---|---|---|\n| Costs | (482) | (547) |"], above


def test_merged_cells_join_columns_only_where_no_column_has_texts_of_its_own_beside_an_empty_one(tmp_path: Path) -> None:
    """Found by review of the first version of the merged-cell join: a "n/a" merged over two years
    joined them although each year holds its own figures in other rows (which year a figure was for
    was lost); a header cell merged over all the columns joined a year's column with its neighbours
    and lost the year; a name merged over two columns in some rows keeps the one standing alone."""
    xs, ys = [72, 300, 400, 500], [200, 218, 236, 254]

    def sparse(page: Any) -> None:
        page.insert_text((340, 192), "2023", fontsize=9)
        page.insert_text((440, 192), "2022", fontsize=9)
        _grid(page, xs, ys, skip={(1, 2)})  # "n/a" over both years
        _fill(page, xs, ys, [["Impairment", "1,093", ""], ["Restructuring", "n/a", ""], ["Litigation", "", "547"]], dy=13)

    assert _both(_page(tmp_path, sparse)) == ["|  | 2023 | 2022 |\n|---|---|---|\n| Impairment | 1,093 |  |\n| Restructuring | n/a | n/a |\n| Litigation |  | 547 |"]

    wide = [72, 250, 270, 350, 370, 450]

    def quarter(page: Any) -> None:
        _grid(page, wide, [100, 120, 140, 160, 180], skip={(0, 2), (0, 3), (0, 4)})  # "Q4" over the four columns right of the labels
        rows = [["", "Q4"], ["(Millions)", "", "2022", "", "2021"], ["Sales", "$", "23,706", "$", "24,804"], ["Net earnings", "", "3,520", "", "4,736"]]
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                if text:
                    page.insert_text((wide[c] + 4, 100 + 20 * r + 15), text, fontsize=9)

    (text,) = _both(_page(tmp_path, quarter))
    assert "2022" in text and "2021" in text and "23,706" in text and "24,804" in text


def test_heads_are_not_taken_from_another_table_or_the_running_head(tmp_path: Path) -> None:
    """Two ruled tables 14 pt apart: the lower one's header is not read from the upper one's rows;
    a table in the page's top tenth does not take the running head as its header."""
    xs = [72, 300, 400, 500]

    def stacked(page: Any) -> None:
        for ys, rows in (([200, 218, 236], [["Lease term", "7 years", "6 years"], ["Discount rate", "3 %", "4 %"]]),
                         ([250, 268, 286], [["Revenue", "1,093", "840"], ["Costs", "(482)", "(547)"]])):
            _grid(page, xs, ys)
            for r, row in enumerate(rows):
                for c, text in enumerate(row):
                    page.insert_text((xs[c] + 4, ys[r] + 13), text, fontsize=9)

    assert _both(_page(tmp_path, stacked)) == ["| Lease term | 7 years | 6 years |\n|---|---|---|\n| Discount rate | 3 % | 4 % |",
                                               "| Revenue | 1,093 | 840 |\n|---|---|---|\n| Costs | (482) | (547) |"]

    def top(page: Any) -> None:
        page.insert_text((320, 40), "Annual Report 2023", fontsize=9)  # the running head, over the figures' columns
        ys = [52, 70, 88]
        _grid(page, xs, ys)
        _fill(page, xs, ys, [["Revenue", "1,093", "840"], ["Costs", "(482)", "(547)"]], dy=13)

    assert _both(_page(tmp_path, top)) == ["| Revenue | 1,093 | 840 |\n|---|---|---|\n| Costs | (482) | (547) |"]


def test_a_group_head_narrower_than_its_columns_stands_over_each(tmp_path: Path) -> None:
    """"Unbilled" centred over two year columns reaches into both (its middle is between theirs); the
    years set as one line with wide spaces go one to each column."""
    xs, ys = [72, 280, 340, 400, 460, 520], [180, 198, 216]

    def draw(page: Any) -> None:
        _write(page, [(330, 160, "Unbilled"), (455, 160, "Claims"), (290, 174, "2022                   2021"),
                      (410, 174, "2022"), (470, 174, "2021")])
        _grid(page, xs, ys)
        _fill(page, xs, ys, [["Current", "6,478", "5,870", "", "4"], ["Total", "8,634", "8,620", "16", "15"]], dy=13)

    assert _both(_page(tmp_path, draw)) == ["|  | Unbilled 2022 | Unbilled 2021 | Claims 2022 | Claims 2021 |\n|---|---|---|---|---|\n"
                                            "| Current | 6,478 | 5,870 |  | 4 |\n| Total | 8,634 | 8,620 | 16 | 15 |"]


def test_a_period_over_all_the_heads_stands_over_each_column_and_a_hyphenated_head_is_one_word(tmp_path: Path) -> None:
    """Found by review: "Year ended December 31, 2022" alone in its row over heads without a year
    (regions) went to the one column it was centred over; a head broken at a hyphen read "Non- controlling"."""
    xs, ys = [72, 250, 330, 410, 490], [184, 202, 220]

    def draw(page: Any) -> None:
        _write(page, [(300, 150, "Year ended December 31, 2022"), (255, 164, "Americas"), (335, 164, "Asia"), (415, 164, "Non-"),
                      (415, 176, "controlling")])
        _grid(page, xs, ys)
        _fill(page, xs, ys, [["Sales", "1,093", "840", "12"], ["Costs", "(482)", "(547)", "(3)"]])

    assert _both(_page(tmp_path, draw)) == [
        "|  | Year ended December 31, 2022 Americas | Year ended December 31, 2022 Asia | Year ended December 31, 2022 Non-controlling |\n"
        "|---|---|---|---|\n| Sales | 1,093 | 840 | 12 |\n| Costs | (482) | (547) | (3) |"
    ]


def test_a_box_around_a_paragraph_is_not_a_table(tmp_path: Path) -> None:
    def draw(page: Any) -> None:
        page.draw_rect((72, 100, 500, 200))
        page.insert_textbox((80, 110, 490, 190), "Note. " + "Travel must be approved in advance by the head of the department. " * 3, fontsize=10)
        page.insert_text((72, 260), "Body text after the box.", fontsize=10)

    page = _page(tmp_path, draw)
    assert ruling_lines(page)[:2] == (2, 2)  # the box's four sides: below the gate, so no finder runs
    assert _both(page) == []
    grids = find_grids(page, (70, 98, 502, 202), page.get_cdrawings(), page.get_textpage().extractRAWDICT()["blocks"])
    assert grids == []  # one cell: no table either


def test_a_page_without_rules_has_no_tables(tmp_path: Path) -> None:
    page = _page(tmp_path, lambda p: p.insert_text((72, 100), "Just a line of text.", fontsize=10))
    assert ruling_lines(page) == (0, 0, None)
    assert _both(page) == []


def test_upright_pages_never_ask_find_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def draw(page: Any) -> None:
        _grid(page, [72, 200, 330], [100, 125, 150])
        for r, row in enumerate([["a", "b"], ["1", "2"]]):
            for c, text in enumerate(row):
                page.insert_text((76 + 128 * c, 117 + 25 * r), text, fontsize=10)

    page = _page(tmp_path, draw)
    monkeypatch.setattr(pymupdf.Page, "find_tables", lambda *a, **k: pytest.fail("find_tables was called"))
    assert [text for _, text in page_tables(page)] == ["| a | b |\n|---|---|\n| 1 | 2 |"]


def test_rotated_page_is_read_upright(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A landscape table stored sideways on a portrait page with /Rotate 90 (as scanners and report
    tools write them): found on the page turned upright, read in its reading direction, its box in the
    page's own coordinates where the loader's text lines are, and the page's rotation left as it was."""
    from ingest import LoadOptions, load_file

    source = pymupdf.open()
    landscape = source.new_page(width=842, height=595)
    _grid(landscape, [72, 200, 330], [100, 125, 150])
    for r, row in enumerate([["City", "Hotel"], ["Hangzhou", "450"]]):
        for c, text in enumerate(row):
            landscape.insert_text((76 + 128 * c, 117 + 25 * r), text, fontsize=10)
    landscape.insert_text((72, 300), "A paragraph below the table.", fontsize=10)
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.show_pdf_page(page.rect, source, 0, rotate=90)
    page.set_rotation(90)
    doc.save(tmp_path / "rotated.pdf")

    page = pymupdf.open(tmp_path / "rotated.pdf")[0]
    monkeypatch.setattr(pymupdf.Page, "find_tables", lambda *a, **k: pytest.fail("find_tables was called"))
    [(box, text)] = page_tables(page)
    assert text == "| City | Hotel |\n|---|---|\n| Hangzhou | 450 |"
    spans = {s["text"]: s["bbox"] for b in page.get_text("dict")["blocks"] for line in b.get("lines", []) for s in line["spans"]}
    assert all(pymupdf.Rect(box).contains(pymupdf.Rect(spans[w])) for w in ("City", "450"))
    assert not pymupdf.Rect(box).intersects(pymupdf.Rect(spans["A paragraph below the table."]))
    assert page.rotation == 90
    docs = load_file(tmp_path / "rotated.pdf", LoadOptions(ocr="never"))
    assert [d.meta["kind"] for d in docs] == ["table", "text"]
    assert "Hangzhou" not in docs[1].text and "paragraph below" in docs[1].text


def test_only_pages_that_paint_a_path_are_read_for_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The content-stream check skips get_cdrawings on text-only pages (a clip rectangle paints nothing),
    never on a page whose rules are drawn directly, inside a form XObject, or by an annotation."""
    from ingest.loaders.pdf_tables import may_draw_rules

    def table(page: Any) -> None:
        _grid(page, [50, 200, 350], [100, 130, 160])
        for r, row in enumerate([("Name", "Days"), ("Annual leave", "15")]):
            for c, text in enumerate(row):
                page.insert_text((55 + 150 * c, 120 + 30 * r), text)

    doc = pymupdf.open()
    text_only = doc.new_page()
    text_only.insert_text((72, 72), "Only words here, set in a clip.")
    text_only.wrap_contents()
    drawn = doc.new_page()
    table(drawn)
    source = pymupdf.open()
    table(source.new_page())
    in_form = doc.new_page()
    in_form.show_pdf_page(in_form.rect, source, 0)  # the table arrives as a form XObject
    annotated = doc.new_page()
    annotated.insert_text((72, 72), "Struck out.")
    annotated.add_line_annot((72, 80), (300, 80))
    doc.save(tmp_path / "gate.pdf")
    pages = list(pymupdf.open(tmp_path / "gate.pdf"))
    assert [may_draw_rules(p) for p in pages] == [False, True, True, True]

    read: list[int] = []
    original = pymupdf.Page.get_cdrawings
    monkeypatch.setattr(pymupdf.Page, "get_cdrawings", lambda self, *a, **k: read.append(self.number) or original(self, *a, **k))
    found = [page_tables(p) for p in pages]
    assert read == [1, 2, 3]
    assert found[0] == [] and found[1] and found[2] and [t for _, t in found[1]] == [t for _, t in found[2]]


def test_a_figure_spread_over_merged_columns_is_kept_once_with_its_sign() -> None:
    """As read from a filing's summary table (a figure's merged cell repeated over the columns it
    covers, a sign in a cell of its own in some rows only); a column with a header of its own stays."""
    rows = [
        ["(Millions)", "", "2022", "2022", "2022", "", "2021", "2021", "2021", "Change"],
        ["Total revenues", "", "$", "52,862", "52,862", "", "$", "42,380", "42,380", "25%"],
        ["Expenses", "", "41,095", "41,095", "41,095", "", "33,110", "33,110", "33,110", "24"],
        ["Return on equity", "", "32.3", "32.3%", "", "", "33.7", "33.7%", "", ""],
    ]
    assert markdown_table(tidy_cells(rows)) == (
        "| (Millions) | 2022 | 2021 | Change |\n|---|---|---|---|\n| Total revenues | $ 52,862 | $ 42,380 | 25% |\n"
        "| Expenses | 41,095 | 33,110 | 24 |\n| Return on equity | 32.3% | 33.7% |  |"
    )


def test_columns_with_headers_or_figures_of_their_own_are_never_joined() -> None:
    """Found by review of the first version, which joined these: a "%" column with its own header, a
    unit column, two columns of equal figures in a table whose header is on the previous page, a
    header over two sub-columns with figures of their own."""
    same = [
        [["Segment", "2023", "%", "2022", "%"], ["Retail", "1,093", "62.1", "840", "58.3"]],
        [["Parameter", "Min", "Typ", "Max", "Unit"], ["Duty cycle", "40", "50", "60", "%"], ["Line regulation", "", "0.1", "0.5", "%"]],
        [["Share capital", "1,000", "1,000"], ["Share premium", "500", "500"]],
        [["City", "Cost", "Cost"], ["Hangzhou", "450", "100"]],
    ]
    for rows in same:
        assert tidy_cells(rows) == rows
    assert tidy_cells([["a", None, "%"], [None, "", "1"]]) == [["a", "%"], ["", "1"]]  # None is an empty cell
    assert tidy_cells([]) == []
