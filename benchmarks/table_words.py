"""Words a PDF's ruled tables lose: for every table the loader finds (page_tables), the page's words whose centre lies
in the table's box and that its Markdown does not hold. The page's lines inside a table's box are replaced by the
table, so such a word is gone from the knowledge base.

    python benchmarks/table_words.py --data ../shared/data/pdfqa/financebench/pdfs [--json out.json] [--verbose]

A word is compared by its letters and digits, lowercased ("65,112,424" as 65112424); one the Markdown holds anywhere
counts as kept. Reported: the words inside tables' boxes, those lost, and the files and pages losing any, with a
few lost words of each. Without the data folder it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _bare(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def lost_words(path: Path) -> tuple[int, list[tuple[int, str]]]:
    """The words inside the file's tables' boxes, and the (page, word) of those their Markdown lost."""
    import pymupdf

    from ingest.loaders.pdf_tables import page_tables, text_flags

    inside_total, lost = 0, []
    with pymupdf.open(path) as doc:
        for number, page in enumerate(doc, start=1):
            try:
                tables = page_tables(page, textpage=page.get_textpage(flags=text_flags()))
            except Exception:  # noqa: BLE001 - a page the finder fails on is the loader's business, not this count's
                continue
            if not tables:
                continue
            words = page.get_text("words")
            for box, markdown in tables:
                held = _bare(markdown)
                inside = [w[4] for w in words if box[0] - 1 <= (w[0] + w[2]) / 2 <= box[2] + 1 and box[1] - 1 <= (w[1] + w[3]) / 2 <= box[3] + 1]
                inside_total += len(inside)
                lost += [(number, w) for w in inside if _bare(w) and _bare(w) not in held]
    return inside_total, lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "pdfqa" / "financebench" / "pdfs")
    parser.add_argument("--json", type=Path, help="also write each file's figures here")
    parser.add_argument("--verbose", action="store_true", help="print each file losing words")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no data folder at {args.data}: nothing to measure")
        return 0
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    files = sorted(p for p in args.data.rglob("*.pdf") if p.is_file())
    report, inside, lost_total = {}, 0, 0
    for path in files:
        total, lost = lost_words(path)
        inside += total
        lost_total += len(lost)
        report[path.name] = {"table_words": total, "lost": len(lost), "pages": sorted({p for p, _ in lost}), "examples": [w for _, w in lost[:8]]}
        if args.verbose and lost:
            print(f"{path.name}: {len(lost)} of {total} (pages {report[path.name]['pages'][:10]}): {' '.join(report[path.name]['examples'])}")
    losing = sum(1 for r in report.values() if r["lost"])
    print(f"{len(files)} files: {inside:,} words inside ruled tables' boxes, {lost_total:,} lost ({lost_total / max(1, inside):.2%}), in {losing} files")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
