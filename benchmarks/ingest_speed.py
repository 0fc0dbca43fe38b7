"""Parsing speed and OCR quality on pages this script renders from known text (issue 6), and
end-to-end ingest of a real folder against its embedding floor (issue 17).

    python benchmarks/ingest_speed.py [--pages 60] [--ocr-pages 6] [--pdfs ../shared/data/docs]
    python benchmarks/ingest_speed.py --folder ../shared/data/pdfqa/financebench/pdfs

--folder: `kbqa ingest DIR` into an empty home (no vector cache), then the floor: the very texts
that ingest embedded, embedded alone in one go; then the Chatchat-style pipeline (PyMuPDF page
text, 750/150 splitting, the same embedder). Pages/s, chunks/s, tokens/s, and ingest / floor.

Text PDF pages/s per engine; OCR seconds per A4 page at the default resolution (both cores busy);
OCR character accuracy (rapidfuzz ratio of whitespace-free text) on Chinese and English pages.
Needs no outside data; with --pdfs, also the default engine's pages/s over every real PDF under that
folder, with ruled-table finding on and off (ingest.pdf_tables), text layer only.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZH = ("知识库问答系统从用户自己的文档中寻找答案，并标明每个答案来自哪个文件的哪一页。"
      "扫描版的文件需要先经过文字识别，识别的速度和准确率决定了入库的体验。")
EN = ("A local knowledge base answers questions from the user's own documents and shows the file and page "
      "of every source. Scanned pages go through optical character recognition first.")


def make_pdf(path: Path, pages: int, as_image: bool = False) -> list[str]:
    import pymupdf

    doc = pymupdf.open()
    texts = []
    for i in range(pages):
        zh = i % 2 == 0
        body = "\n".join(f"{i + 1}.{j + 1} " + (ZH if zh else EN) for j in range(6))
        texts.append(body)
        page = doc.new_page(width=595, height=842)
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 800), body, fontsize=12, fontname="china-s" if zh else "helv", lineheight=1.6)
    if as_image:  # a scanned copy: each page becomes a picture with no text layer
        scanned = pymupdf.open()
        for page in doc:
            pix = page.get_pixmap(dpi=200)
            new = scanned.new_page(width=595, height=842)
            new.insert_image(new.rect, pixmap=pix)
        scanned.save(path)
    else:
        doc.save(path)
    return texts


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--ocr-pages", type=int, default=6, help="scanned pages to OCR (0: skip OCR)")
    parser.add_argument("--pdfs", type=Path, default=None, help="a folder of real PDFs (searched recursively)")
    parser.add_argument("--folder", type=Path, default=None, help="end-to-end ingest of this folder against its embedding floor")
    parser.add_argument("--runs", type=int, default=3, help="with --pdfs: the best of this many runs counts")
    args = parser.parse_args()
    if args.folder is not None:
        folder_speed(args.folder)
        return
    from rapidfuzz import fuzz

    from ingest import LoadOptions, load_file

    if args.pdfs is not None:
        real_pdf_speed(args.pdfs, args.runs)

    with tempfile.TemporaryDirectory() as tmp:
        text_pdf = Path(tmp) / "text.pdf"
        make_pdf(text_pdf, args.pages)
        for engine in ("pymupdf", "pdfplumber", "pdfminer"):
            t0 = time.perf_counter()
            docs = load_file(text_pdf, LoadOptions(pdf_engine=engine, ocr="never"))
            seconds = time.perf_counter() - t0
            pages = len({d.page for d in docs})
            print(f"text PDF, {engine:10s}: {pages / seconds:7.1f} pages/s ({pages} pages in {seconds:.2f} s)", flush=True)
        if args.ocr_pages < 1:
            return
        scan_pdf = Path(tmp) / "scan.pdf"
        truth = make_pdf(scan_pdf, args.ocr_pages, as_image=True)
        load_file(make_pdf_tiny(Path(tmp)), LoadOptions(ocr="always"))  # load the OCR models once, untimed
        t0 = time.perf_counter()
        docs = load_file(scan_pdf, LoadOptions(ocr="auto"))
        seconds = time.perf_counter() - t0
        by_page = {}
        for d in docs:  # a page can give several documents (one per section)
            by_page[d.page] = by_page.get(d.page, "") + "\n" + d.text
        pages = [by_page.get(i + 1, "") for i in range(len(truth))]
        print(f"OCR (rapidocr + layout, {LoadOptions().ocr_dpi} dpi): {seconds / len(truth):.2f} s per A4 page over {len(truth)} pages", flush=True)
        for lang, idx in (("Chinese", [i for i in range(len(truth)) if i % 2 == 0]), ("English", [i for i in range(len(truth)) if i % 2 == 1])):
            scores = [fuzz.ratio(squash(truth[i]), squash(pages[i])) / 100 for i in idx]
            if scores:
                print(f"OCR character accuracy, {lang}: {sum(scores) / len(scores):.3f} over {len(scores)} pages", flush=True)


def real_pdf_speed(folder: Path, runs: int = 3) -> None:
    """pages/s of the default engine over every PDF under folder, tables on and off in turn, each the
    best of runs (the machine's speed drifts by several percent between runs)."""
    import pymupdf

    from ingest import LoadError, LoadOptions, load_file

    files = sorted(folder.rglob("*.pdf"))
    if not files:
        print(f"skipped real PDFs: none under {folder}")
        return

    def one_run(tables: bool) -> tuple[int, float]:
        pages, t0 = 0, time.perf_counter()
        for path in files:
            try:
                with pymupdf.open(path) as doc:
                    count = doc.page_count
                load_file(path, LoadOptions(ocr="never", pdf_tables=tables))
                pages += count
            except (LoadError, RuntimeError, ValueError):
                continue  # corrupt or encrypted: the robustness benchmark's business
        return pages, time.perf_counter() - t0

    best: dict[bool, tuple[int, float]] = {}
    for _ in range(runs):
        for tables in (True, False):
            pages, seconds = one_run(tables)
            if tables not in best or seconds < best[tables][1]:
                best[tables] = (pages, seconds)
    for tables in (True, False):
        pages, seconds = best[tables]
        print(f"real PDFs, pymupdf, pdf_tables={str(tables).lower():5s}: {pages / seconds:6.1f} pages/s ({pages} pages of {len(files)} files in {seconds:.2f} s, best of {runs})", flush=True)
    print(f"real PDFs, tables on / off: {best[True][1] / best[False][1]:.2f}x the time", flush=True)


def folder_speed(folder: Path) -> None:
    """kbqa ingest of a folder vs embedding the same texts alone vs the Chatchat-style pipeline."""
    import os

    from ingest import LoadOptions, load_file, split_documents
    from ingest.context import describe

    if not folder.is_dir():
        print(f"skipped: {folder} is not a folder")
        return
    with tempfile.TemporaryDirectory() as home:
        os.environ["KBQA_HOME"] = home
        from kbqa.kb import KnowledgeBase
        from kbqa.pipeline import embedding_texts

        kb = KnowledgeBase.open("speed", embeddings={"cache": False})
        embedder = kb.embedder
        embedder.embed_documents(["warm up the runtime"])  # model load is not ingest work
        t0 = time.perf_counter()
        report = kb.ingest(folder)
        ingest_s = time.perf_counter() - t0
        pages = sum(f.pages or 0 for f in report.files if f.status != "skipped")
        chunks = kb.catalog.chunk_count()
        # the floor: the same texts, embedded alone (parsed again here, untimed)
        texts: list[str] = []
        options = LoadOptions(pdf_tables=kb.config.ingest.pdf_tables, ocr=kb.config.ingest.ocr)
        for f in report.files:
            if f.status not in ("added", "updated"):
                continue
            path = folder / f.name
            docs = load_file(path, options)
            pieces = split_documents(docs, kb.config.ingest.chunk_size, kb.config.ingest.chunk_overlap, *kb.length_unit())
            texts += [t for _, t in embedding_texts(pieces, describe(docs, path.name), not kb.config.embeddings.embed_overlap)]
        texts = list(dict.fromkeys(texts))
        count = getattr(embedder, "count_tokens", None)
        tokens = sum(count(t) for t in texts) if count else 0
        t0 = time.perf_counter()
        embedder.embed_documents(texts)
        floor_s = time.perf_counter() - t0
        kb.close()
    print(f"{folder}: {len(report.files)} files, {pages} pages, {chunks} chunks, {tokens} tokens embedded")
    print(f"kbqa ingest     : {ingest_s:7.1f} s  {pages / ingest_s:6.2f} pages/s  {chunks / ingest_s:6.1f} chunks/s  {tokens / ingest_s:7.0f} tokens/s")
    print(f"embedding floor : {floor_s:7.1f} s  {pages / floor_s:6.2f} pages/s  {chunks / floor_s:6.1f} chunks/s  {tokens / floor_s:7.0f} tokens/s")
    print(f"ingest / floor  : {ingest_s / floor_s:.2f}x  (target <= 1.25x)", flush=True)
    pdfs = sorted(folder.rglob("*.pdf"))
    if pdfs:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from pdfqa import chatchat_chunks

        t0 = time.perf_counter()
        pieces = chatchat_chunks(pdfs)
        embedder.embed_documents([c.text for c in pieces])
        chat_s = time.perf_counter() - t0
        print(f"Chatchat-style  : {chat_s:7.1f} s  {pages / chat_s:6.2f} pages/s  {len(pieces) / chat_s:6.1f} chunks/s  ({len(pdfs)} PDFs, {len(pieces)} chunks)")
        print(f"kbqa ingest / Chatchat-style: {ingest_s / chat_s:.2f}x", flush=True)


def make_pdf_tiny(folder: Path) -> Path:
    path = folder / "warm.pdf"
    make_pdf(path, 1, as_image=True)
    return path


if __name__ == "__main__":
    main()
