"""Retrieval over real PDF collections: kbqa against the Langchain-Chatchat 0.3 recipe, one run.

    python benchmarks/pdfqa.py --data ../shared/data/pdfqa/financebench --cold     # empty home: honest ingest times
    python benchmarks/pdfqa.py --data ../shared/data/pdfqa/financebench            # vectors from the cache
    python benchmarks/pdfqa.py --data ... --reuse --set retrieval.named_boost=0     # search the last run's KB again

The data folder holds pdfs/ and questions.jsonl (gold: doc_id "pdfs/NAME.pdf", 1-based page,
evidence text). Both pipelines get the same PDFs and the same embedder (the configured one).

- kbqa: `kbqa ingest` of pdfs/ into a fresh knowledge base, then `search(question, top_k=5)`.
- Chatchat 0.3 recipe: PyMuPDF page text joined per file; its ChineseRecursiveTextSplitter-style
  750/150 splitting (LangChain's recursive splitter with Chatchat's separators); BM25 over
  jieba.lcut_for_search tokens and FAISS inner product, k=5 each, fused 0.5/0.5 by weighted
  reciprocal rank (c=60) as LangChain's EnsembleRetriever does. A chunk's pages are the pages its
  character span covers (any of them counts: generous to it).

Per question, over the top 5 sources:
- doc-hit@5: one comes from a gold filing;
- page-hit@5: one comes from a gold page (exact), and within one page (±1);
- evidence-hit@5: the five together hold at least half of the gold evidence's numbers and content
  words (any gold evidence, for questions with several);
- characters in the top 5: how much text those five sources hold (more text finds more evidence).
Without the data folder the script says so and exits 0. The knowledge base and the vector cache
live under --home (.bench/pdfqa); --cold empties it first, so both pipelines embed everything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval import parse_overrides  # the benchmarks' one --set parser

K = 5
DEEP = 20
CHATCHAT_SEPARATORS = ["\n\n", "\n", "。|！|？", r"\.\s|\!\s|\?\s", r"；|;\s", r"，|,\s"]
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


@dataclass
class Source:
    file: str  # the file name
    pages: set[int]
    text: str


@dataclass
class Question:
    id: str
    question: str
    gold: list[dict[str, Any]]


def read_questions(path: Path, limit: int | None) -> list[Question]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(Question(row["id"], row["question"], row["gold"]))
    return out[:limit] if limit else out


def evidence_terms(text: str) -> set[str]:
    """The numbers (two or more digits, separators dropped) and content words of a text."""
    from ingest.textfacts import content_words

    numbers = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    return {n for n in numbers if sum(ch.isdigit() for ch in n) >= 2} | set(content_words(text))


def score(q: Question, sources: list[Source]) -> dict[str, Any]:
    top = sources[:K]
    gold_files = {Path(g["doc_id"]).name for g in q.gold}
    doc = any(s.file in gold_files for s in top)
    page = any(s.file == Path(g["doc_id"]).name and g["page"] in s.pages for s in top for g in q.gold)
    near = any(s.file == Path(g["doc_id"]).name and any(abs(p - g["page"]) <= 1 for p in s.pages) for s in top for g in q.gold)
    found = evidence_terms("\n".join(s.text for s in top))
    share = 0.0  # the largest part of one gold evidence's terms that the five hold
    for g in q.gold:
        wanted = evidence_terms(g.get("evidence") or "")
        if wanted:
            share = max(share, len(wanted & found) / len(wanted))
    return {"doc": doc, "page": page, "page±1": near, "evidence": share >= 0.5, "share": round(share, 2), "chars": sum(len(s.text) for s in top)}


def summary(name: str, rows: list[dict[str, Any]], ingest_s: float, chunks: int, note: str) -> dict[str, Any]:
    n = max(1, len(rows))
    out = {"pipeline": name, "questions": len(rows), "chunks": chunks, "ingest_s": round(ingest_s, 1)}
    for key in ("doc", "page", "page±1", "evidence"):
        out[key] = round(sum(r[key] for r in rows) / n, 4)
    out["chars@5"] = round(sum(r["chars"] for r in rows) / n)  # how much text the five sources hold: more text finds more evidence
    out["note"] = note
    return out


# --- kbqa ----------------------------------------------------------------------------------------
def run_kbqa(
    data: Path, questions: list[Question], home: Path, overrides: dict[str, Any], reuse: bool = False
) -> tuple[dict[str, Any], list[dict[str, bool]]]:
    from kbqa.config import load_config
    from kbqa.kb import KnowledgeBase

    os.environ["KBQA_HOME"] = str(home)
    config, _ = load_config(overrides=overrides)
    name = "pdfqa-" + data.name
    seconds, note = 0.0, "ingest reused"
    if reuse and KnowledgeBase.exists(name, config):
        kb = KnowledgeBase.open(name, config)
    else:
        if KnowledgeBase.exists(name, config):
            KnowledgeBase.open(name, config).drop()
        kb = KnowledgeBase.open(name, config)
        files = sorted((data / "pdfs").glob("*.pdf"))
        print(f"kbqa: ingesting {len(files)} PDFs ...", flush=True)
        report = kb.ingest(data / "pdfs", progress=_progress("kbqa"))
        failed = [f for f in report.files if f.status == "failed"]
        pages = sum(f.pages or 0 for f in report.files)
        seconds, note = report.seconds, f"{pages / max(report.seconds, 1e-9):.2f} pages/s"
        print(f"kbqa: {report.seconds:.1f} s, {pages} pages, {kb.catalog.chunk_count()} chunks, {len(failed)} failed", flush=True)
    rows, deep = [], 0
    for q in questions:
        hits = kb.search(q.question, top_k=K, threshold=0.0)
        rows.append(score(q, [Source(Path(h.file).name, {h.page} if h.page else set(), h.text) for h in hits]))
        wide = kb.search(q.question, top_k=DEEP, threshold=0.0)  # how far down the gold page is: what a reranker could reorder
        deep += any(Path(h.file).name == Path(g["doc_id"]).name and h.page and abs(h.page - g["page"]) <= 1 for h in wide for g in q.gold)
    print(f"kbqa: a gold page (±1) within the top {DEEP} for {deep / max(1, len(questions)):.3f} of the questions", flush=True)
    result = summary("kbqa", rows, seconds, kb.catalog.chunk_count(), note)
    kb.close()
    return result, rows


def _progress(label: str) -> Any:
    last = [0.0]

    def show(p: Any) -> None:
        if p.stage == "file" and p.result is not None and time.monotonic() - last[0] > 20:
            last[0] = time.monotonic()
            print(f"  {label}: {p.done}/{p.total} files", flush=True)

    return show


# --- the Chatchat 0.3 recipe ---------------------------------------------------------------------
class BM25:
    """Okapi BM25 as rank_bm25's BM25Okapi computes it (k1 1.5, b 0.75, idf floor 0.25 x mean)."""

    def __init__(self, corpus: list[list[str]], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> None:
        self.k1, self.b = k1, b
        self.tf = [Counter(doc) for doc in corpus]
        self.lengths = np.array([len(d) for d in corpus], dtype=np.float64)
        self.avg = float(self.lengths.mean()) if len(corpus) else 0.0
        df: Counter[str] = Counter()
        for tf in self.tf:
            df.update(tf.keys())
        n = len(corpus)
        idf = {w: math.log(n - f + 0.5) - math.log(f + 0.5) for w, f in df.items()}
        floor = epsilon * (sum(idf.values()) / max(1, len(idf)))
        self.idf = {w: (v if v >= 0 else floor) for w, v in idf.items()}
        self.postings: dict[str, list[int]] = {}
        for i, tf in enumerate(self.tf):
            for w in tf:
                self.postings.setdefault(w, []).append(i)

    def top(self, query: list[str], k: int) -> list[int]:
        scores = np.zeros(len(self.tf))
        norm = self.k1 * (1 - self.b + self.b * self.lengths / max(self.avg, 1e-9))
        for w in query:
            for i in self.postings.get(w, []):
                f = self.tf[i][w]
                scores[i] += self.idf[w] * f * (self.k1 + 1) / (f + norm[i])
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def chatchat_chunks(files: list[Path]) -> list[Source]:
    import pymupdf
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        separators=CHATCHAT_SEPARATORS, is_separator_regex=True, keep_separator=True, chunk_size=750, chunk_overlap=150
    )
    out: list[Source] = []
    for path in files:
        try:  # a file PyMuPDF cannot open (empty, corrupt, encrypted) is left out, as the recipe's loader would fail it
            with pymupdf.open(path) as doc:
                texts = [page.get_text("text") for page in doc]
        except Exception:  # noqa: BLE001
            continue
        starts, pos = [], 0
        for t in texts:
            starts.append(pos)
            pos += len(t) + 1
        joined = "\n".join(texts)
        cursor = 0
        for d in splitter.create_documents([joined]):
            piece = d.page_content
            begin = joined.find(piece, cursor)
            begin = begin if begin >= 0 else max(0, joined.find(piece))
            cursor = begin + 1
            end = begin + len(piece)
            pages = {n + 1 for n, s in enumerate(starts) if s < end and (n + 1 == len(starts) or starts[n + 1] > begin)}
            out.append(Source(path.name, pages, piece))
    return out


def run_chatchat(data: Path, questions: list[Question], home: Path, overrides: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, bool]]]:
    import faiss
    import jieba

    from kbqa.config import load_config
    from kbqa.embeddings import make_embedder
    from kbqa.store.cache import VectorCache
    from kbqa.store.catalog import text_key

    os.environ["KBQA_HOME"] = str(home)
    config, _ = load_config(overrides=overrides)
    embedder = make_embedder(config.embeddings)
    cache = VectorCache(home / "cache", config.embeddings.model) if config.embeddings.cache else None
    files = sorted((data / "pdfs").glob("*.pdf"))
    print(f"chatchat recipe: reading and splitting {len(files)} PDFs ...", flush=True)
    t0 = time.perf_counter()
    chunks = chatchat_chunks(files)
    keys = [text_key(c.text) for c in chunks]
    vectors = cache.get(keys) if cache else {}
    todo = list(dict.fromkeys(k for k in keys if k not in vectors))
    print(f"chatchat recipe: {len(chunks)} chunks, embedding {len(todo)} (the rest from the vector cache) ...", flush=True)
    text_of = {k: c.text for k, c in zip(keys, chunks)}
    for i in range(0, len(todo), 256):
        part = todo[i : i + 256]
        got = dict(zip(part, embedder.embed_documents([text_of[k] for k in part])))
        if cache:
            cache.put(got)
        vectors.update(got)
        if (i // 256) % 10 == 0:
            print(f"  chatchat: {min(i + 256, len(todo))}/{len(todo)} embedded", flush=True)
    matrix = np.vstack([vectors[k] for k in keys]).astype(np.float32)
    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(matrix)
    bm25 = BM25([[w for w in jieba.lcut_for_search(c.text) if w.strip()] for c in chunks])
    seconds = time.perf_counter() - t0
    rows = []
    for q in questions:
        qv = np.asarray(embedder.embed_query(q.question), dtype=np.float32)[None, :]
        dense = [int(i) for i in index.search(qv, K)[1][0] if i >= 0]
        lexical = bm25.top([w for w in jieba.lcut_for_search(q.question) if w.strip()], K)
        fused: dict[int, float] = {}
        for ranking in (lexical, dense):  # EnsembleRetriever([bm25, faiss], weights=[0.5, 0.5]), c = 60
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + 0.5 / (60 + rank + 1)
        top = sorted(fused, key=lambda i: -fused[i])[:K]
        rows.append(score(q, [chunks[i] for i in top]))
    result = summary("Chatchat 0.3 recipe", rows, seconds, len(chunks), f"embedded {len(todo)} of {len(set(keys))} texts in this run")
    if cache:
        cache.close()
    return result, rows


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"| pipeline | doc-hit@{K} | page-hit@{K} | page-hit@{K} (±1) | evidence-hit@{K} | characters in the top {K} | chunks | ingest s | |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['pipeline']} | {r['doc']:.4f} | {r['page']:.4f} | {r['page±1']:.4f} | {r['evidence']:.4f} | {r['chars@5']} | {r['chunks']} | {r['ingest_s']} | {r['note']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "pdfqa" / "financebench")
    ap.add_argument("--only", choices=["kbqa", "chatchat"], default=None)
    ap.add_argument("--limit", type=int, default=None, help="first N questions only")
    ap.add_argument("--home", type=Path, default=ROOT / ".bench" / "pdfqa", help="where the knowledge base and the vector cache live")
    ap.add_argument("--cold", action="store_true", help="empty --home first (no cached vectors): honest ingest times")
    ap.add_argument("--reuse", action="store_true", help="search the knowledge base of the last run instead of ingesting again")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="kbqa config override")
    ap.add_argument("--misses", action="store_true", help="list the questions kbqa misses")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if not (args.data / "questions.jsonl").is_file() or not (args.data / "pdfs").is_dir():
        print(f"skipped: no pdfs/ and questions.jsonl under {args.data} (see ../shared/data/README.md)")
        return
    questions = read_questions(args.data / "questions.jsonl", args.limit)
    overrides = parse_overrides(args.set)
    home = args.home
    if args.cold:
        shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    results = []
    if args.only in (None, "kbqa"):
        result, rows = run_kbqa(args.data, questions, home, overrides, args.reuse)
        results.append(result)
        if args.misses:
            for q, r in zip(questions, rows):
                if not all(r[key] for key in ("doc", "page", "page±1", "evidence")):
                    print(f"  miss {q.id} {r} {q.question[:110]!r} gold {[(Path(g['doc_id']).name, g['page']) for g in q.gold]}")
    if args.only in (None, "chatchat"):
        result, _ = run_chatchat(args.data, questions, home, overrides)
        results.append(result)
    print(f"\n{len(questions)} questions, {args.data}" + (" (cold: no cached vectors)" if args.cold else f" (vectors cached under {home})"))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
