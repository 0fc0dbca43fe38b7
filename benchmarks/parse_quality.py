"""Parse quality against docling's ground-truth Markdown, per format and per PDF engine (issue 6's score).

    python benchmarks/parse_quality.py --data ../shared/data/docs/docling_testdata [--verbose] [--json scores.json]

Score: rapidfuzz ratio/100 between the ground truth with Markdown markup removed (headings, emphasis,
table pipes and rules — docling writes rules as "| - | - |" — backslash escapes, links and images) and
the extracted text, both with all whitespace removed and lower-cased. Each format's anchor (plain text
as the simple pipelines take it) is measured the same way and printed beside kbqa's figure. The extracted text is each document's text, preceded by the section titles (title_path)
it does not itself contain, e.g. a sheet's name, the way the ground truth writes them as headings. Without the data folder it says so and exits 0.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORMATS = {"pdf": ".pdf", "docx": ".docx", "pptx": ".pptx", "xlsx": ".xlsx", "html": ".html"}


def strip_markdown(md: str) -> str:
    md = re.sub(r"<!--.*?-->", "", md, flags=re.S)
    md = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", md)  # images
    md = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", md)  # links keep their text
    md = re.sub(r"^\s{0,3}#{1,6}\s*", "", md, flags=re.M)  # headings
    md = re.sub(r"^\s*[-*+]\s+\[[ xX]\]", "", md, flags=re.M)  # task-list checkboxes "- [ ]", "- [x]"
    md = re.sub(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$", "", md, flags=re.M)  # table rules ("| - | - |" too)
    md = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|<>~])", lambda m: "\x00" if m.group(1) in "*_`" else m.group(1), md)  # escapes
    md = md.replace("|", "")
    md = re.sub(r"(\*\*|__|\*|_|`)", "", md)  # emphasis and code marks
    md = md.replace("\x00", "")  # an escaped mark is still markup-free text: drop it like the marks
    return md


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def strip_extracted(text: str) -> str:
    """Our Markdown tables carry the same markup the ground truth loses."""
    return strip_markdown(text)


def extracted_text(docs: list) -> str:
    """The documents' text, each new section title that the text itself lacks (a sheet's name, a
    table's caption: kept in title_path and put in front of every chunk for the embedder) first."""
    parts, last_title = [], None
    for d in docs:
        title = list(d.meta.get("title_path") or [])
        if title and title != last_title:
            parts.extend(t for t in title if t not in d.text and (last_title is None or t not in last_title))
        last_title = title
        parts.append(d.text)
    return "\n".join(parts)


def ground_truth(source: Path) -> Path | None:
    folder = source.parent.parent / "groundtruth"
    for name in (source.name + ".md", source.stem + ".md"):
        if (folder / name).exists():
            return folder / name
    return None


def anchor_text(source: Path) -> str:
    """Plain text the way the simple pipelines take it (the issue's anchor): PyMuPDF page text,
    python-docx paragraphs and table cells, python-pptx text frames, openpyxl cell values, BeautifulSoup text."""
    suffix = source.suffix.lower()
    if suffix == ".pdf":
        import pymupdf

        with pymupdf.open(source) as doc:
            return "\n".join(page.get_text() for page in doc)
    if suffix == ".docx":
        import docx

        d = docx.Document(str(source))
        parts = [p.text for p in d.paragraphs]
        parts += [cell.text for table in d.tables for row in table.rows for cell in row.cells]
        return "\n".join(parts)
    if suffix == ".pptx":
        import pptx

        deck = pptx.Presentation(str(source))
        return "\n".join(shape.text_frame.text for slide in deck.slides for shape in slide.shapes if shape.has_text_frame)
    if suffix in (".xlsx", ".xlsm"):
        import openpyxl

        book = openpyxl.load_workbook(source, read_only=True, data_only=True)
        parts = [str(v) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for v in row if v is not None]
        book.close()
        return "\n".join(parts)
    from bs4 import BeautifulSoup

    return BeautifulSoup(source.read_bytes(), "html.parser").get_text()


def score_file(source: Path, engine: str | None) -> float | None:
    from rapidfuzz import fuzz

    from ingest import LoadError, LoadOptions, load_file

    truth = ground_truth(source)
    if truth is None:
        return None
    if engine == "anchor":
        try:
            text = anchor_text(source)
        except Exception:
            text = ""
    else:
        options = LoadOptions(pdf_engine=engine or "pymupdf", ocr="never")
        try:
            text = extracted_text(load_file(source, options))
        except LoadError:
            text = ""
    return float(fuzz.ratio(squash(strip_markdown(truth.read_text(encoding="utf-8"))), squash(strip_extracted(text)))) / 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "docs" / "docling_testdata")
    parser.add_argument("--verbose", action="store_true", help="print each file's score")
    parser.add_argument("--json", type=Path, help="also write each file's score here: {format or 'pdf (engine)': {file: score}}, to compare runs file by file")
    args = parser.parse_args()
    base = args.data / "tests" / "data"
    if not base.exists():
        print(f"skipped: no docling test data at {args.data}")
        return
    anchors = {"pdf": 0.947, "docx": 0.794, "pptx": 0.841, "xlsx": 0.771, "html": 0.957}
    targets = {"pdf": 0.97, "html": 0.97, "docx": 0.93, "pptx": 0.93, "xlsx": 0.93}
    per_file: dict[str, dict[str, float]] = {}
    for fmt, suffix in FORMATS.items():
        engines = (["pymupdf", "pdfplumber", "pdfminer"] if fmt == "pdf" else [None]) + ["anchor"]
        sources = sorted(p for p in (base / fmt / "sources").glob(f"*{suffix}*") if p.suffix.lower() in (suffix, ".xlsm"))
        for engine in engines:
            scores = []
            for src in sources:
                s = score_file(src, engine)
                if s is not None:
                    scores.append(s)
                    per_file.setdefault(fmt + (f" ({engine})" if engine else ""), {})[src.name] = s
                    if args.verbose:
                        print(f"    {src.name}: {s:.3f}")
            if scores:
                mean = statistics.mean(scores)
                label = fmt + (f" ({engine})" if engine else "")
                if engine == "anchor":
                    label = f"{fmt} anchor, measured"
                print(f"{label:20s} {mean:.3f} over {len(scores)} files   issue's anchor {anchors[fmt]:.3f}  target {targets[fmt]:.2f}", flush=True)
    if args.json:
        import json

        args.json.write_text(json.dumps(per_file, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
