"""HTML: main text and headings, without scripts, styles, menus or forms (stdlib parser)."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from ingest.loaders.text import decode_bytes
from ingest.types import Document

_SKIP = {"script", "style", "noscript", "nav", "header", "footer", "form", "svg", "template", "button", "select"}
_BLOCK = {"p", "div", "li", "tr", "br", "table", "section", "article", "blockquote", "pre", "dd", "dt", "ul", "ol"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self.heading: int | None = None
        self.heading_text: list[str] = []
        self.path: list[tuple[int, str]] = []
        self.body: list[str] = []
        self.sections: list[tuple[list[str], str]] = []
        self.cell = False

    def flush(self) -> None:
        text = "".join(self.body)
        lines = [" ".join(line.split()) for line in text.split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            self.sections.append(([t for _, t in self.path], text))
        self.body = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag in _HEADINGS and not self.skip:
            self.flush()
            self.heading, self.heading_text = _HEADINGS[tag], []
        elif tag in _BLOCK:
            self.body.append("\n")
        elif tag in ("td", "th"):
            self.body.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
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
        if self.heading is not None:
            self.heading_text.append(data)
        else:
            self.body.append(data)


def html_sections(markup: str) -> list[tuple[list[str], str]]:
    """(title_path, text) for each heading section of an HTML page."""
    parser = _Sections()
    parser.feed(markup)
    parser.close()
    parser.flush()
    return parser.sections


def html_text(markup: str) -> str:
    return "\n\n".join(text for _, text in html_sections(markup))


def load(path: Path, options: object) -> Iterator[Document]:
    for title_path, text in html_sections(decode_bytes(path.read_bytes())):
        yield Document(text, {"source": str(path), "page": None, "title_path": title_path, "kind": "text"})
