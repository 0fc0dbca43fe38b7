"""Ruled tables on a PyMuPDF page, written as Markdown tables.

Only pages that draw the horizontal and vertical rules a ruled table needs are searched (counting
them costs about 1 ms, and is skipped where the page's content streams paint no path at all); on a
mixed folder of real PDFs that is one page in six or seven. The search is our lattice finder
(ingest/loaders/lattice.py: PyMuPDF's "lines" algorithm without its per-character cost); a rotated
page is searched turned upright. PyMuPDF's `find_tables` (40-120 ms a page, and seconds on a form)
runs only where the lattice finder is not sure to agree (a mirrored page, or one it failed on).
"""

from __future__ import annotations

import re
from typing import Any

from ingest.loaders.lattice import find_grids
from ingest.tables import FIGURE, YEAR, Cells, markdown_table, tidy_columns
from ingest.textfacts import is_wide

Box = tuple[float, float, float, float]


def text_flags() -> int:
    """How the loader reads a page's text: PyMuPDF's dict flags without the images (decoding them cost
    up to 20x the text)."""
    import pymupdf

    return int(pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES)


def ruling_lines(page: Any, paths: list[dict[str, Any]] | None = None) -> tuple[int, int, Box | None]:
    """Horizontal and vertical rules (lines, thin rectangles, the four sides of a box) drawn on the
    page, and the box that holds them all. paths: the page's get_cdrawings(), if already read."""
    horizontal = vertical = 0
    boxes: list[Box] = []
    for path in page.get_cdrawings() if paths is None else paths:
        for item in path.get("items", []):
            if item[0] == "l":
                (x0, y0), (x1, y1) = item[1], item[2]
            elif item[0] == "re":
                x0, y0, x1, y1 = item[1]
            else:
                continue
            width, height = abs(x1 - x0), abs(y1 - y0)
            is_h, is_v = height < 2 and width > 10, width < 2 and height > 10
            is_box = item[0] == "re" and width > 10 and height > 10
            horizontal += is_h + 2 * is_box
            vertical += is_v + 2 * is_box
            if is_h or is_v or is_box:
                boxes.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    if not boxes:
        return horizontal, vertical, None
    return horizontal, vertical, (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


# A painting operator (stroke or fill: S s f F f* B B* b b*) as a token of a content stream. A path that
# is only clipped (`re W n`) draws nothing; text strings and inline images can only add false alarms.
_PAINT = re.compile(rb"[\s)\]>}][SsfFBb]\*?[\s(\[</{%]")


def may_draw_rules(page: Any) -> bool:
    """False when the page cannot hold a rule: its content streams paint no path, and it has no
    annotations or form XObjects (whose drawings get_cdrawings reports too). Reading the streams costs
    ~0.2 ms a page, get_cdrawings ~1 ms; on ../shared/data/docs 44% of pages need no get_cdrawings."""
    try:
        return _PAINT.search(b" " + page.read_contents() + b" ") is not None or bool(page.annot_xrefs() or page.get_xobjects())
    except Exception:  # noqa: BLE001 - not a PDF page, or a broken stream: ask get_cdrawings
        return True


FINDERS = ("lattice", "pymupdf")


def page_tables(page: Any, finder: str = "lattice", textpage: Any = None) -> list[tuple[Box, str]]:
    """The page's ruled tables of two rows and two columns or more: (bounding box, Markdown).
    finder: "lattice" (ours, find_tables where ours is not sure) or "pymupdf" (find_tables alone,
    the reference benchmarks/table_speed.py compares against). textpage: the page's TextPage made
    with text_flags(), if the caller has one (reading the page's text is most of what tables cost)."""
    if not may_draw_rules(page):
        return []
    if page.rotation and finder == "lattice":
        upright = _upright_tables(page)
        if upright is not None:
            return upright
    return _tables(page, finder, textpage)


def _upright_tables(page: Any) -> list[tuple[Box, str]] | None:
    """A rotated page's tables, found on the page turned upright in memory the way find_tables turns
    it (PyMuPDF's page_rotation_set0), where rules, characters and reading direction agree; their boxes
    mapped back to the rotated page's own coordinates, where the loader's text lines are. (Before,
    find_tables got a clip in the rotated page's coordinates and searched the upright page with it:
    tables were cut, 45 ms a page.) None: PyMuPDF could not turn the page."""
    import pymupdf

    try:
        from pymupdf.table import page_rotation_reset, page_rotation_set0
    except ImportError:
        return None
    back = page.derotation_matrix
    try:
        upright, xref, rotation, mediabox = page_rotation_set0(page)
    except Exception:  # noqa: BLE001 - a page PyMuPDF cannot turn: find_tables decides
        return None
    try:
        tables = _tables(upright, "lattice", None)
    finally:
        page_rotation_reset(upright, xref, rotation, mediabox)
    return [(tuple(pymupdf.Rect(box) * back), text) for box, text in tables]


def _tables(page: Any, finder: str, textpage: Any) -> list[tuple[Box, str]]:
    paths = page.get_cdrawings()
    horizontal, vertical, ruled = ruling_lines(page, paths)
    if horizontal < 3 or vertical < 2 or ruled is None:
        return []
    import pymupdf

    clip = pymupdf.Rect(ruled) + (-2, -2, 2, 2)  # only the ruled part of the page: the finder reads every character in its clip
    found: list[Any] | None = None
    blocks: list[dict[str, Any]] | None = None
    if finder == "lattice":
        blocks = (textpage or page.get_textpage(flags=text_flags())).extractRAWDICT()["blocks"]
        try:
            found = find_grids(page, tuple(clip), paths, blocks)
        except Exception:  # noqa: BLE001 - whatever went wrong, find_tables decides
            found = None
    if found is None:
        blocks = None
        getattr(pymupdf, "no_recommend_layout", lambda: None)()  # PyMuPDF would print an advert on stdout
        try:
            found = page.find_tables(clip=clip).tables
        except Exception:  # a malformed drawing must not cost the page its text
            return []
    kept = []
    for table in found:
        if table.row_count < 2 or table.col_count < 2:
            continue  # a frame around a paragraph, not a table
        raw = table.extract() if page.rotation else cell_texts(page, table, blocks)  # (a rotated page's characters are not in the cells' coordinates)
        if is_table(raw):
            kept.append((table, *tidy_columns(*spans_filled(table, raw))))
    tables = []
    for table, rows, columns in kept:
        box = tuple(table.bbox)
        if not page.rotation and headless(rows):
            # heads are looked for below the running heads and below any other table above this one
            ceiling = max([page.rect.y0 + MARGIN * page.rect.height] + [
                other.bbox[3] for other, _, _ in kept if other is not table and other.bbox[3] <= box[1] + 1 and other.bbox[0] < box[2] and box[0] < other.bbox[2]])
            if blocks is None:
                blocks = page_chars(page, page.rect)
            found_heads = heads_above(table, columns, blocks, ceiling)
            if found_heads is not None:
                header, sections, top = found_heads
                rows = [header, *sections, *rows]
                box = (box[0], top, box[2], box[3])
        text = markdown_table(rows)
        if text:
            tables.append((box, text))
    return tables


MARGIN = 0.1  # the top and bottom tenth of a page is where running heads, footers and page numbers live
HEAD_CHARS = 60  # a column head is short; a longer line above a table is text
LABEL_HEAD_CHARS = 100  # ... over the labels: "(Millions, except percentages, per share amounts and where indicated)"
HEAD_ROWS = 4  # rows of heads (and section labels) looked for above a table


def headless(rows: list[list[str]]) -> bool:
    """Whether a table's first row is one of its figures (its header set above its rules, as text)."""
    return bool(rows) and any(FIGURE.match(cell) and not YEAR.match(cell) for cell in rows[0][1:] if cell)


def _dated(text: str) -> bool:
    """Whether a head names a year ("Year ended December 31, 2022", "FY2023")."""
    return any(YEAR.match(word.strip(",.()")[-4:]) for word in text.split())


def _datum(word: str) -> bool:
    """A figure a table's body would hold ("1,234", "5.2%", "(482)"), not a year or a day ("30,")."""
    return bool(FIGURE.match(word)) and not YEAR.match(word.strip(",.")) and (sum(ch.isdigit() for ch in word) >= 3 or any(ch in word for ch in ".%("))


def heads_above(table: Any, columns: list[list[int]], blocks: list[dict[str, Any]], ceiling: float) -> tuple[list[str], list[list[str]], float] | None:
    """A headless ruled table's column heads, read from the short lines set just above its top rule
    ("Years Ended December 31," over the years, "(Millions)" over the labels): (the header row over
    `columns` — tidy_columns' columns, each a list of the table's columns —, the section labels
    between the heads and the table as rows of their own, the new top of the table's box). Walking
    up from the table, rows of lines are taken while they are short, hold no figure but years, and
    sit within two lines of the row below and below `ceiling` (the page's running heads, another
    table); a row of label text alone is a section label only below the heads. None when no row of
    heads stands over the figure columns, or when a line whose centre would fall in the widened box
    is not one of them (no text is lost)."""
    cells = [row.cells for row in table.rows]
    width = max((len(r) for r in cells), default=0)
    lefts = [min((r[c][0] for r in cells if c < len(r) and r[c] is not None), default=None) for c in range(width)]
    if not columns or any(x is None for x in lefts):
        return None
    x0, top, x1, _ = table.bbox
    bounds = [(float(lefts[c]), float(lefts[c + 1]) if c + 1 < width else float(x1)) for c in range(width)]  # type: ignore[arg-type]
    spans = [(bounds[g[0]][0], bounds[g[-1]][1]) for g in columns]
    label_right = spans[0][1]
    lines = []
    for block in blocks:
        for line in block.get("lines", []):
            text = _line_text(line)
            lx0, ly0, lx1, ly1 = line["bbox"]
            if text and ly1 <= top + 1 and ly0 >= ceiling and lx0 >= x0 - 2 and lx1 <= x1 + 2:
                lines.append((text, float(lx0), float(ly0), float(lx1), float(ly1)))
    rows: list[list[tuple[str, float, float, float, float]]] = []
    for line in sorted(lines, key=lambda ln: -ln[4]):  # bottom up
        if rows and abs(line[2] - rows[-1][0][2]) <= 0.3 * max(line[4] - line[2], 1.0):
            rows[-1].append(line)
        else:
            rows.append([line])
    heads: list[list[tuple[str, float, float, float, float]]] = []
    sections: list[list[tuple[str, float, float, float, float]]] = []
    bottom = top
    for row in rows[:HEAD_ROWS + 2]:
        height = max(ln[4] - ln[2] for ln in row)
        if bottom - max(ln[4] for ln in row) > 2 * height or len(heads) + len(sections) >= HEAD_ROWS:
            break
        if any(len(t) > (LABEL_HEAD_CHARS if right <= label_right + 2 else HEAD_CHARS) or t.endswith(".") or any(_datum(w) for w in t.split())
               for t, _, _, right, _ in row):
            break
        if any(left < label_right - 2 < right - 4 for _, left, _, right, _ in row):
            break  # a line from the labels' column into the figures': a caption or a title, not a head
        if any(ln[3] > label_right + 2 for ln in row):
            heads.append(row)
        elif not heads and len(row) == 1:
            sections.append(row)
        else:
            break
        bottom = min(ln[2] for ln in row)
    if not heads:
        return None
    new_top = min(ln[2] for row in heads for ln in row) - 0.5
    taken = {(ln[0], round(ln[1], 1), round(ln[2], 1)) for row in heads + sections for ln in row}
    for block in blocks:  # every line whose centre the widened box holds must be a head or a section label
        for line in block.get("lines", []):
            lx0, ly0, lx1, ly1 = line["bbox"]
            if x0 <= (lx0 + lx1) / 2 <= x1 and new_top <= (ly0 + ly1) / 2 <= top:
                text = _line_text(line)
                if text and (text, round(float(lx0), 1), round(float(ly0), 1)) not in taken:
                    return None
    header = [""] * len(columns)
    for k, row in reversed(list(enumerate(heads))):  # top down
        over_figures = [ln for ln in row if ln[3] > label_right + 2]
        below = [ln for r in heads[:k] for ln in r if ln[3] > label_right + 2]
        for text, lx0, _, lx1, _ in sorted(row, key=lambda ln: ln[1]):
            reach = [j for j in range(1, len(spans)) if lx0 < spans[j][1] - 2 and spans[j][0] + 2 < lx1]  # the columns it reaches into
            words = text.split()
            if lx1 <= label_right + 2 or len(spans) < 2:
                over = [0]
            elif len(reach) >= 2 and len(words) == len(reach) and all(YEAR.match(w) for w in words):  # "2023   2022" set as one line
                for j, word in zip(reach, words):
                    header[j] = f"{header[j]} {word}".strip()
                continue
            elif len(over_figures) == 1 and len(below) >= 2 and _dated(text) and not any(_dated(ln[0]) for ln in below):
                over = list(range(1, len(spans)))  # the period of every column below: "Year ended December 31, 2022" over the regions
            else:  # the columns whose middles it spans, else those it reaches into ("Unbilled" centred over two)
                over = [j for j in range(1, len(spans)) if lx0 - 2 <= (spans[j][0] + spans[j][1]) / 2 <= lx1 + 2] or reach
                if not over:
                    middle = (lx0 + lx1) / 2
                    over = [min(range(1, len(spans)), key=lambda j: abs((spans[j][0] + spans[j][1]) / 2 - middle))]
            for j in over:  # a head broken at a hyphen ("Non-" over "controlling") is one word again
                header[j] = header[j] + text if header[j].endswith("-") else f"{header[j]} {text}".strip()
    labels = [[" ".join(ln[0] for ln in row)] + [""] * (len(columns) - 1) for row in reversed(sections)]
    return header, labels, new_top


def _line_text(line: dict[str, Any]) -> str:
    """A rawdict line's text, its white space collapsed."""
    return " ".join("".join(ch["c"] for span in line["spans"] for ch in span["chars"]).split())


def page_chars(page: Any, clip: Any) -> list[dict[str, Any]]:
    """The characters in clip as rawdict blocks, the way cell_texts reads them."""
    import pymupdf

    return page.get_textpage(clip=pymupdf.Rect(clip), flags=text_flags()).extractRAWDICT()["blocks"]


PARAGRAPHS = 500  # characters: a "cell" holding more is a page's layout grid, not a table
LABEL = 40  # a merged cell repeated over the cells it covers: a header or a row label, not a paragraph


def is_table(rows: list[list[str | None]]) -> bool:
    """Whether ruled cells hold a table rather than a diagram's boxes or a page's layout grid: most rows
    have two filled cells, and no cell holds paragraphs of running text."""
    filled = [sum(1 for cell in row if cell and cell.strip()) for row in rows]
    if sum(1 for n in filled if n >= 2) < 0.5 * len(rows):
        return False
    return max((len(cell) for row in rows for cell in row if cell), default=0) <= PARAGRAPHS


def cell_texts(page: Any, table: Any, blocks: list[dict[str, Any]] | None = None) -> list[list[str | None]]:
    """Each cell's text from the page's characters whose centre lies in it, line by line; None for a cell
    that a merged cell covers. (PyMuPDF's own extract places glyphs by their ink, so an underscore drawn
    low ends on a line of its own: "FUNCTION ID _" for "FUNCTION_ID".) blocks: page_chars of an area
    holding the table (or the whole page), if already read."""
    import bisect
    import itertools

    cells = [(r, c, box) for r, row in enumerate(table.rows) for c, box in enumerate(row.cells) if box is not None]
    lines: dict[tuple[int, int], list[list[str]]] = {(r, c): [] for r, c, _ in cells}
    tops = [row.bbox[1] for row in table.rows]
    by_row: dict[int, list[tuple[int, int, Any]]] = {}
    for cell in cells:
        by_row.setdefault(cell[0], []).append(cell)
    reaching: dict[int, list[tuple[int, int, Any]]] = {}  # each row's band [its top, the next top): the cells reaching into it
    for cell in cells:
        first, last_row = max(0, bisect.bisect_right(tops, cell[2][1]) - 1), max(0, bisect.bisect_left(tops, cell[2][3]) - 1)
        for r in range(first, last_row + 1):
            reaching.setdefault(r, []).append(cell)
    box = table.bbox
    for block in page_chars(page, box) if blocks is None else blocks:
        if block["bbox"][0] > box[2] or block["bbox"][2] < box[0] or block["bbox"][1] > box[3] or block["bbox"][3] < box[1]:
            continue  # a block beside the table
        for line in block.get("lines", []):
            lb = line["bbox"]
            if lb[0] > box[2] or lb[2] < box[0] or lb[1] > box[3] or lb[3] < box[1]:
                continue  # a line beside the table: no character's centre is in a cell
            near = {cell[:2]: cell for r in range(max(0, bisect.bisect_right(tops, lb[1]) - 1), max(0, bisect.bisect_right(tops, lb[3]) - 1) + 1) for cell in reaching.get(r, [])}
            touching = [cell for cell in near.values() if cell[2][0] <= lb[2] and lb[0] <= cell[2][2] and cell[2][1] <= lb[3] and lb[1] <= cell[2][3]]
            if len(touching) == 1 and (b := touching[0][2])[0] < lb[0] and lb[2] < b[2] and b[1] < lb[1] and lb[3] < b[3]:
                # the whole line inside one cell and touching no other: every character's centre is there
                lines[touching[0][:2]].append([ch["c"] for span in line["spans"] for ch in span["chars"]])
                continue
            last: tuple[int, int] | None = None
            for span in line["spans"]:
                for ch in span["chars"]:
                    x, y = (ch["bbox"][0] + ch["bbox"][2]) / 2, (ch["bbox"][1] + ch["bbox"][3]) / 2
                    row = max(0, bisect.bisect_right(tops, y) - 1)
                    candidates = itertools.chain(by_row.get(row, []), cells)  # a merged cell can start in an earlier row
                    key = next(((r, c) for r, c, b in candidates if b[0] <= x <= b[2] and b[1] <= y <= b[3]), None)
                    if key is None:
                        continue
                    if key != last:
                        lines[key].append([])
                        last = key
                    lines[key][-1].append(ch["c"])
    texts: list[list[str | None]] = [[None] * len(row.cells) for row in table.rows]
    for (r, c), parts in lines.items():
        texts[r][c] = _joined([t for part in parts if (t := " ".join("".join(part).split()))])
    return texts


def _joined(lines: list[str]) -> str:
    """A cell's lines, those wrapped between Chinese characters joined without a break (found by review: "扣除非经常性损
    益的净利润"); the others on lines of their own."""
    out = lines[:1]
    for line in lines[1:]:
        if is_wide(out[-1][-1]) and is_wide(line[0]):
            out[-1] += line
        else:
            out.append(line)
    return "\n".join(out)


def spans_filled(table: Any, rows: list[list[str | None]]) -> tuple[list[list[str]], Cells | None]:
    """The table's cells, each cell that a merged cell covers holding the merged cell's text (the way
    docling writes them), so a column keeps its whole header and a row its label when the splitter cuts
    a long table by rows; and for each cell the (row, column) of the cell its text is from (None: an
    empty covered cell), which tidy_columns reads to join the columns a merged cell spans. PyMuPDF gives
    a covered cell as None; the merged cell is the one whose box holds the covered cell's centre (its
    column's middle, its row's middle). Only short merged cells (labels, figures) are repeated."""
    boxes = [row.cells for row in table.rows]
    if len(boxes) != len(rows) or any(len(b) != len(r) for b, r in zip(boxes, rows)):
        return [[cell or "" for cell in row] for row in rows], None
    centres: dict[int, float] = {}
    for c in range(max((len(r) for r in rows), default=0)):
        xs = sorted((b[c][0] + b[c][2]) / 2 for b in boxes if c < len(b) and b[c] is not None)
        if xs:
            centres[c] = xs[len(xs) // 2]
    merged = [(r, c, box) for r, row in enumerate(boxes) for c, box in enumerate(row) if box is not None]
    filled = [[cell or "" for cell in row] for row in rows]
    origin: Cells = [[(r, c) if boxes[r][c] is not None else None for c in range(len(row))] for r, row in enumerate(rows)]
    for r, row in enumerate(rows):
        top = table.rows[r].bbox[1]  # the row's own height ends at its first cell bottom (a merged cell reaches further down)
        middle = (top + min((b[3] for b in boxes[r] if b is not None), default=table.rows[r].bbox[3])) / 2
        for c, cell in enumerate(row):
            if boxes[r][c] is not None or c not in centres:
                continue
            x = centres[c]
            at = next(((i, j) for i, j, b in merged if b[0] < x < b[2] and b[1] < middle < b[3]), None)
            source = filled[at[0]][at[1]] if at is not None else ""
            if source and len(source) <= LABEL:
                filled[r][c], origin[r][c] = source, at
    return filled, origin


def inside(box: Box, areas: list[Box]) -> bool:
    """Whether the centre of box lies in one of the areas (tables' boxes)."""
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(a[0] <= x <= a[2] and a[1] <= y <= a[3] for a in areas)
