"""Ruled-table finding: our lattice finder against PyMuPDF's find_tables, on the pages that draw rules (issue 17).

    python benchmarks/table_speed.py [--data ../shared/data/docs] [--rounds 3] [--no-parse]

Table-heavy pages: every page of every PDF under --data (searched recursively; i1040nr.pdf too if it
is there) whose ruling lines pass page_tables' gate. Each such page is read once as the loader reads it
(its text), then timed in the same process, the two finders taking turns which goes first:
  (a) find_tables: page_tables(page, finder="pymupdf"), what the loader did before the lattice finder;
  (b) lattice:     page_tables(page), the lattice finder with find_tables where it is not sure;
  (b') lattice as the loader calls it: the page's TextPage made beforehand, as the loader makes it for
       the page's text anyway (so reading the characters costs the tables nothing more).
Reported: pages, tables found by each, agreement on upright pages (both give as many tables with the
same Markdown; and their boxes are equal too, to the last digit), how many pages the lattice finder left
to find_tables, how many were rotated (ours reads them on the page turned upright, in the page's
reading direction; find_tables was given a clip in the rotated page's coordinates, so they are not
compared), and the speed ratios (a)/(b) and
(a)/(b'). Then the whole-PDF parse through ingest's real loader (text layer only), in pages/s: tables
off, tables on, and tables on with find_tables alone (the loader before), files taking turns.
Only ratios within one run mean anything on a shared machine. Without the data folder it says so and
exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pdf_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    extra = [p for p in sorted(folder.parent.rglob("i1040*.pdf")) if p not in files] if folder.parent.exists() else []
    return files + extra  # the IRS form the issue timed, wherever under the shared data it lies


def ruled_pages(files: list[Path]) -> list[tuple[Path, int]]:
    """The pages whose drawn rules pass page_tables' gate."""
    import pymupdf

    from ingest.loaders.pdf_tables import ruling_lines

    found = []
    for path in files:
        try:
            with pymupdf.open(path) as doc:
                if doc.needs_pass:
                    continue
                for page in doc:
                    horizontal, vertical, box = ruling_lines(page)
                    if horizontal >= 3 and vertical >= 2 and box is not None:
                        found.append((path, page.number))
        except (RuntimeError, ValueError):
            continue  # corrupt: the robustness benchmark's business
    return found


def finder_speed(pages: list[tuple[Path, int]], rounds: int) -> None:
    import pymupdf

    from ingest.loaders.lattice import find_grids
    from ingest.loaders.pdf_tables import page_tables, ruling_lines, text_flags

    seconds = {"a": 0.0, "b": 0.0, "b'": 0.0}
    tables = {"a": 0, "b": 0}
    agree = same_boxes = fell_back = rotated = 0
    docs: dict[Path, Any] = {}
    try:
        for i, (path, number) in enumerate(pages):
            doc = docs.get(path) or docs.setdefault(path, pymupdf.open(path))
            page = doc[number]
            page.get_text("dict", flags=text_flags())  # the loader reads the page's text first (fonts loaded, content parsed once)
            results: dict[str, list[tuple[Any, str]]] = {}
            for r in range(rounds):
                for which in ["a", "b", "b'"] if (i + r) % 2 == 0 else ["b'", "b", "a"]:
                    textpage = page.get_textpage(flags=text_flags()) if which == "b'" else None  # the loader's, made for the page's text
                    t0 = time.perf_counter()
                    found = page_tables(page, finder="pymupdf") if which == "a" else page_tables(page, textpage=textpage)
                    seconds[which] += time.perf_counter() - t0
                    results.setdefault(which, found)
            tables["a"] += len(results["a"])
            tables["b"] += len(results["b"])
            markdown = {which: [text for _, text in found] for which, found in results.items()}
            if page.rotation:  # read upright by ours; find_tables searched it with a clip in the wrong coordinates
                rotated += 1
                continue
            agree += markdown["a"] == markdown["b"] == markdown["b'"]
            same_boxes += results["a"] == results["b"] == results["b'"]
            box = ruling_lines(page)[2]
            clip = (box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2) if box else tuple(page.rect)
            fell_back += find_grids(page, clip, page.get_cdrawings(), []) is None  # (untimed)
    finally:
        for doc in docs.values():
            doc.close()
    n = len(pages)
    print(f"table-heavy pages: {n}; tables found: find_tables {tables['a']}, lattice {tables['b']}")
    upright = n - rotated
    print(f"upright pages, agreement (same number of tables, same Markdown): {agree}/{upright} = {100 * agree / max(upright, 1):.1f} %; boxes equal too: {same_boxes}/{upright}")
    print(f"upright pages the lattice finder left to find_tables (mirrored): {fell_back}")
    print(f"rotated pages (read on the page turned upright; find_tables got a clip in the rotated page's coordinates): {rotated}")
    for which, label in (("a", "(a) find_tables"), ("b", "(b) lattice"), ("b'", "(b') lattice, loader's TextPage")):
        print(f"  {label:34s} {1000 * seconds[which] / max(n * rounds, 1):7.2f} ms/page")
    shared = seconds["b'"]
    print(f"speed ratio (a)/(b): {seconds['a'] / seconds['b']:.2f}x   (a)/(b'): {seconds['a'] / shared:.2f}x", flush=True)


def parse_speed(files: list[Path]) -> None:
    """Whole-PDF parse through ingest's loader, pages/s: tables off, on, and on with find_tables alone."""
    import pymupdf

    import ingest.loaders.pdf as pdf_loader
    from ingest import LoadError, LoadOptions, load_file
    from ingest.loaders.pdf_tables import page_tables

    lattice_tables = pdf_loader.page_tables

    def find_tables_only(page: Any, textpage: Any = None) -> Any:
        return page_tables(page, finder="pymupdf")

    modes = ("off", "on", "on, find_tables only")
    seconds = dict.fromkeys(modes, 0.0)
    pages = 0
    for i, path in enumerate(files):
        try:
            with pymupdf.open(path) as doc:
                count = doc.page_count
                if doc.needs_pass:
                    continue
            load_file(path, LoadOptions(ocr="never", pdf_tables=False))  # warm: the file read from disk once
        except (LoadError, RuntimeError, ValueError):
            continue  # corrupt or encrypted: the robustness benchmark's business
        taken = {}
        try:
            for mode in modes if i % 2 == 0 else modes[::-1]:
                pdf_loader.page_tables = find_tables_only if mode == "on, find_tables only" else lattice_tables
                t0 = time.perf_counter()
                load_file(path, LoadOptions(ocr="never", pdf_tables=mode != "off"))
                taken[mode] = time.perf_counter() - t0
        except (LoadError, RuntimeError, ValueError):
            continue
        finally:
            pdf_loader.page_tables = lattice_tables
        pages += count
        for mode in modes:
            seconds[mode] += taken[mode]
    print(f"whole-PDF parse, {pages} pages of {len(files)} files (pymupdf, text layer only):")
    for mode in modes:
        print(f"  tables {mode:22s} {pages / seconds[mode]:7.1f} pages/s ({seconds[mode]:.1f} s)")
    print(f"tables on / tables off: {seconds['off'] / seconds['on']:.2f} of the speed; before (find_tables only): {seconds['off'] / seconds['on, find_tables only']:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "docs", help="a folder of PDFs, searched recursively")
    parser.add_argument("--rounds", type=int, default=3, help="times each page is timed with each finder")
    parser.add_argument("--no-parse", action="store_true", help="skip the whole-PDF parse")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no PDFs at {args.data}")
        return
    from ingest.loaders.pdf import quiet_pymupdf

    quiet_pymupdf()
    files = pdf_files(args.data)
    pages = ruled_pages(files)
    if not pages:
        print(f"skipped: no ruled pages in the {len(files)} PDFs under {args.data}")
        return
    irs = [p for p in files if p.name.lower().startswith("i1040")]
    print(f"{len(files)} PDFs under {args.data}" + (f" (with {', '.join(p.name for p in irs)})" if irs else " (no i1040nr.pdf there)"))
    finder_speed(pages, args.rounds)
    if not args.no_parse:
        parse_speed(files)


if __name__ == "__main__":
    main()
