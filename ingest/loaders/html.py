"""HTML: main text and headings, without scripts, styles, menus or forms (stdlib parser)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from ingest.loaders.text import decode_bytes
from ingest.tables import MAX_REPEATED_CHARS, Repeats, markdown_table
from ingest.types import Document

# never text: code and the <title> (the page's name, not its content; kept as metadata)
_CODE = {"script", "style", "svg", "template", "title"}
# not the page's text: navigation and form controls (a <form> itself may hold a whole page: ASP.NET's do)
_SKIP = _CODE | {"noscript", "nav", "button", "select", "textarea"}
# the page's own header and footer (a logo, links, a copyright line); inside <main> or <article>, an article's
# title and byline (found by review: "Refund policy 2024" and a whole ASP.NET page in a <form> were lost)
_PAGE_PARTS = {"header", "footer"}
_BLOCK = {"p", "div", "li", "tr", "br", "table", "section", "article", "aside", "blockquote", "pre", "dd", "dt", "ul", "ol"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _Table:
    """One table being read: rows of (text, rowspan, colspan)."""

    def __init__(self, repeats: Repeats) -> None:
        self.repeats = repeats  # the page's: what its tables' spans may still repeat (a page of 100 such tables, each under
        self.rows: list[list[tuple[str, int, int]]] = []  # the limit, was 260 MB: found by review)
        self.row: list[tuple[str, int, int]] | None = None
        self.cell: list[str] | None = None
        self.span = (1, 1)
        self.caption: list[str] = []  # its <caption>: said above it (found by review: it was dropped)
        self.in_caption = False

    def grid(self) -> list[list[str]]:
        """Cells placed on a grid, a spanning cell's text repeated over the cells it covers. A rowspan ends at the
        table's last row, as a browser ends it; a table whose spans would make it over MAX_GRID_CELLS cells or repeat
        over MAX_REPEATED_CHARS characters is laid out as if it had no spans (found by review: 68 KB of
        rowspan=100 colspan=100 cells became 104 MB of text and 2.8 GB of memory)."""
        taken = self._placed(spread=True)
        if taken is not None:
            self.repeats.added += sum(map(len, taken.values())) - sum(len(text) for row in self.rows for text, _, _ in row)
        if taken is None:  # the spans' places kept, their text once (every row's cells stay under their heads)
            taken = self._placed(spread=True, repeat=False)
        if taken is None:
            taken = self._placed(spread=False) or {}
        if not taken:
            return []
        height = max(r for r, _ in taken) + 1
        width = max(c for _, c in taken) + 1
        if height * width > MAX_GRID_CELLS:  # ragged rows, one of them very long: each row's cells as they are
            rows: list[list[str]] = [[] for _ in range(height)]
            for (r, _), text in sorted(taken.items()):
                rows[r].append(text)
            return rows
        return [[taken.get((r, c), "") for c in range(width)] for r in range(height)]

    @property
    def budget(self) -> int:
        return MAX_REPEATED_CHARS - self.repeats.added

    def _placed(self, spread: bool, repeat: bool = True) -> dict[tuple[int, int], str] | None:
        """Each grid position's text (spread: a spanning cell's over the places it covers, or with repeat False "" in
        all but its first); None when spreading the spans would pass the limits."""
        taken: dict[tuple[int, int], str] = {}
        repeated = 0
        for r, row in enumerate(self.rows):
            c = 0
            for text, rowspan, colspan in row:
                while (r, c) in taken:
                    c += 1
                rows = min(rowspan, len(self.rows) - r) if spread else 1
                for dr in range(rows):
                    for dc in range(colspan if spread else 1):
                        taken[(r + dr, c + dc)] = text if repeat or (dr, dc) == (0, 0) else ""
                repeated += len(text) * (rows * (colspan if spread else 1) - 1) if repeat else 0
                c += colspan if spread else 1
                if spread and (len(taken) > MAX_GRID_CELLS or repeated > self.budget):
                    return None
        width = max((c for _, c in taken), default=-1) + 1
        if spread and width * len(self.rows) > MAX_GRID_CELLS:
            return None
        return taken


MAX_GRID_CELLS = 1_000_000  # a table's cells, empty ones included, once its spans are spread


def _span(attrs: list[tuple[str, str | None]], name: str) -> int:
    value = dict(attrs).get(name) or "1"
    try:
        return max(1, min(int(value.strip()), 100))
    except ValueError:
        return 1


class _Sections(HTMLParser):
    def __init__(self, lenient: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.skipped = _CODE if lenient else _SKIP  # lenient: all but code (a page whose text is all in a <nav> never closed)
        self.lenient = lenient
        self.skip = 0
        self.repeats = Repeats()  # the characters the page's tables' spans have repeated (MAX_REPEATED_CHARS for all)
        self.heading: int | None = None
        self.heading_text: list[str] = []
        self.path: list[tuple[int, str]] = []
        self.body: list[str] = []
        self.sections: list[tuple[list[str], str]] = []
        self.tables: list[_Table] = []
        self.main = 0  # inside <main> or <article>: the page's own text
        self.section = 0  # inside a <section>: whose <header> and <footer> are its own, not the page's
        self.outside: list[bool] = []  # per open <aside>, <header> or <footer>: whether it is skipped
        self.buttons: list[bool] = []  # per open <button>: whether it is skipped

    def flush(self) -> None:
        text = "".join(self.body)
        lines = [" ".join(line.split()) if not line.startswith("| ") else line for line in text.split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            self.sections.append(([t for _, t in self.path], text))
        self.body = []

    def _break(self) -> None:
        """A line ends here (in a table's cell, a space)."""
        if self._in_cell():
            self.tables[-1].cell.append(" ")  # type: ignore[union-attr]
        else:
            self.body.append("\n")

    def _in_cell(self) -> bool:
        return bool(self.tables) and self.tables[-1].cell is not None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "button" and tag in self.skipped:  # a control ("Search", "Menu"), unless it is a heading's text: an FAQ's
            shown = not self.skip and self.heading is not None and not "".join(self.heading_text).strip()  # question (not "Copy link")
            self.buttons.append(not shown)
            self.skip += not shown
            if shown and self.heading is None:
                self._break()
            return
        if tag == "aside" or tag in _PAGE_PARTS:  # a sidebar ("Related news", "Subscribe") or the page's header or footer
            own = tag in _PAGE_PARTS and self.section > 0  # a <section>'s own header (its title, its date) is its text
            self.outside.append(not self.main and not own and not self.skip and not self.lenient)  # outside the page's main text is none of it
            self.skip += self.outside[-1]
        elif tag in ("main", "article") and not self.skip:
            self.main += 1
        elif tag == "section" and not self.skip:
            self.section += 1
        if tag in self.skipped:
            self.skip += 1
        elif self.skip:
            return
        elif tag == "table":
            self.tables.append(_Table(self.repeats))
        elif self.tables and tag == "caption" and not self._in_cell():
            self.tables[-1].in_caption = True
        elif self.tables and tag == "tr":
            self.tables[-1].row = []
        elif self.tables and tag in ("td", "th"):
            table = self.tables[-1]
            if table.row is None:
                table.row = []
            table.cell, table.span = [], (_span(attrs, "rowspan"), _span(attrs, "colspan"))
        elif self._in_cell():
            if tag in _BLOCK or tag in _HEADINGS:
                self.tables[-1].cell.append(" ")  # type: ignore[union-attr]
        elif tag in _HEADINGS:
            self.flush()
            self.heading, self.heading_text = _HEADINGS[tag], []
        elif tag in _BLOCK:
            self.body.append("\n")

    def _end_cell(self, table: _Table) -> None:
        if table.cell is not None:
            if table.row is None:
                table.row = []
            table.row.append(("".join(table.cell), *table.span))
            table.cell = None

    def _end_row(self, table: _Table) -> None:
        self._end_cell(table)
        if table.row is not None:
            table.rows.append(table.row)
            table.row = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and tag in self.skipped:
            if self.buttons and self.buttons.pop():
                self.skip = max(0, self.skip - 1)
            elif not self.skip and self.heading is None:
                self._break()
            return
        if (tag == "aside" or tag in _PAGE_PARTS) and self.outside and self.outside.pop():
            self.skip -= 1
            return
        if tag in ("main", "article") and self.main and not self.skip:
            self.main -= 1
        if tag == "section" and self.section and not self.skip:
            self.section -= 1
        if tag in self.skipped:
            self.skip = max(0, self.skip - 1)
        elif self.skip:
            return
        elif tag == "table" and self.tables:
            table = self.tables.pop()
            self._end_row(table)
            grid = table.grid()
            caption = " ".join("".join(table.caption).split())
            if self._in_cell():  # a table inside a cell: its text joins the cell
                self.tables[-1].cell.append(" " + " ".join([caption, *(" ".join(c for c in r if c) for r in grid)]) + " ")  # type: ignore[union-attr]
            else:
                rectangle = len(grid) * max(map(len, grid), default=0) <= MAX_GRID_CELLS
                text = markdown_table(grid) if rectangle else "\n".join(" | ".join(r) for r in grid if any(r))
                self.body.append("\n" + (caption + "\n" if caption else "") + text + "\n")
        elif self.tables and tag == "caption":
            self.tables[-1].in_caption = False
        elif self.tables and tag in ("td", "th"):
            self._end_cell(self.tables[-1])
        elif self.tables and tag == "tr":
            self._end_row(self.tables[-1])
        elif self._in_cell():
            return
        elif tag in _HEADINGS and self.heading is not None:
            title = " ".join("".join(self.heading_text).split())
            if title:
                self.path = [(lv, t) for lv, t in self.path if lv < self.heading] + [(self.heading, title)]
                self.body.append(title + "\n")
            self.heading = None
        elif tag in _BLOCK:
            self.body.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self._in_cell():
            self.tables[-1].cell.append(data)  # type: ignore[union-attr]
        elif self.tables and self.tables[-1].in_caption:
            self.tables[-1].caption.append(data)
        elif self.tables:
            return  # whitespace between rows and cells
        elif self.heading is not None:
            self.heading_text.append(data)
        else:
            self.body.append(data)


def html_sections(markup: str) -> list[tuple[list[str], str]]:
    """(title_path, text) for each heading section of an HTML page; tables as Markdown tables. A page whose text
    is all in what is passed over (a <nav> never closed, a page that is one <header>) is read again for all but code."""
    for lenient in (False, True):
        parser = _Sections(lenient)
        parser.feed(markup)
        parser.close()
        while parser.tables:  # tables never closed: keep what they hold
            parser.handle_endtag("table")
        parser.flush()
        if parser.sections:
            break
    return parser.sections


def html_text(markup: str) -> str:
    return "\n\n".join(text for _, text in html_sections(markup))


def page_title(markup: str) -> str:
    m = re.search(r"<title[^>]*>(.*?)</title>", markup, flags=re.I | re.S)
    return " ".join(html.unescape(m.group(1)).split()) if m else ""


def load(path: Path, options: object) -> Iterator[Document]:
    markup = decode_bytes(path.read_bytes())
    title = page_title(markup)
    for title_path, text in html_sections(markup):
        yield Document(text, {"source": str(path), "page": None, "title_path": title_path, "kind": "text", "about": {"title": title}})
