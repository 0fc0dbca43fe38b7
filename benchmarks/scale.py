"""Scale-out, measured on this machine in one run:

1. Ingest throughput of one folder: local ingest vs Ray (ingest.executor ray) with 1 and 2 embedding
   workers, each into an empty home (a local Ray runtime); --store milvus writes into the Milvus
   store (Milvus Lite) instead of the embedded one.
2. --query-sizes N ...: kb.search p50/p95 on the embedded store vs the Milvus store at the same size:
   N synthetic chunks (real CMRC sentences and e5 vectors mixed, as `retrieval.py --scale`), built
   once in .bench/, moved to Milvus Lite with `kb migrate --keep`, and 200 CMRC questions asked of each.

    python benchmarks/scale.py [--folder ../shared/data/docs] [--workers 1 2] [--pdf-only] [--store milvus]
    python benchmarks/scale.py --query-sizes 10000 100000 --no-ingest

Reports files, pages, chunks, seconds, pages/s, and each run's time over the local one. Ray's own
start (a few seconds) is included, as a user meets it. Without the data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def ingest(folder: Path, executor: str, workers: int, store: str = "embedded") -> dict[str, float]:
    from kbqa.config import load_config
    from kbqa.kb import KnowledgeBase

    with tempfile.TemporaryDirectory() as home:
        os.environ["KBQA_HOME"] = home
        config, _ = load_config(overrides={"ingest": {"executor": executor, "ray_workers": workers}, "store": {"backend": store}})
        kb = KnowledgeBase.open("scale", config)
        kb.embedder  # noqa: B018  (loaded before the clock, as in a running server)
        t0 = time.perf_counter()
        report = kb.ingest([folder])
        seconds = time.perf_counter() - t0
        result = {"files": len(report.files), "failed": sum(f.status == "failed" for f in report.files),
                  "pages": sum(f.pages or 0 for f in report.files), "chunks": kb.catalog.chunk_count(), "seconds": seconds}
        kb.close()
    if executor == "ray":
        import ray

        ray.shutdown()  # each run starts its own runtime, as `kbqa ingest --ray` does
    return result


def query_latency(n: int, home: Path, queries: int = 200) -> dict[str, float]:
    """kb.search p50/p95 (ms) over n synthetic chunks, embedded vs Milvus store, same chunks and vectors."""
    import statistics

    from retrieval import _scale_base, _synthetic

    from kbqa.config import Config, load_config
    from kbqa.evaluation import read_questions
    from kbqa.kb import KnowledgeBase, KnowledgeBaseError
    from kbqa.store import NewChunk, text_key

    qa = ROOT.parent / "shared" / "data" / "qa"
    os.environ["KBQA_HOME"] = str(home)
    config, _ = load_config()
    milvus = Config.model_validate({**config.model_dump(), "store": {**config.store.model_dump(), "backend": "milvus"}})
    name = f"qscale-{n}"
    kb = KnowledgeBase.open(name, config)
    if kb.catalog.chunk_count() != n:
        rows, base = _scale_base(kb, qa / "cmrc2018_dev.corpus.jsonl", 3000, home / "cache")
        kb.catalog.set_meta("embedding_model", config.embeddings.model)
        kb.catalog.set_meta("embedding_dim", kb.embedder.dim)
        for f in range(kb.catalog.chunk_count() // 1000, n // 1000):
            texts, vectors = _synthetic(rows, base, f * 1000, 1000, 0)
            chunks = [NewChunk(t, 1, [], "text", 0, len(t), text_key(t)) for t in texts]
            kb.catalog.replace_file(path=f"/scale/{f}", name=f"file{f}", sha256=str(f), size=0, mtime=0, status="ok", error=None, pages=1,
                                    seconds=0, chunks=chunks, vectors={c.vector_key: v for c, v in zip(chunks, vectors)})
    try:
        there = KnowledgeBase.open(name, milvus)  # made empty if missing
        whole = there.catalog.chunk_count() == n
        there.close() if whole else there.drop()  # an empty one: moved again
    except KnowledgeBaseError:  # a move killed half-way: migrate starts it over
        whole = False
    if not whole:
        t0 = time.perf_counter()
        KnowledgeBase.open(name, config).migrate("milvus", keep=True)
        print(f"  {n} chunks moved to Milvus Lite in {time.perf_counter() - t0:.0f} s", flush=True)
    kb.close()
    questions = [q.question for q in read_questions(qa / "cmrc2018_dev.questions.jsonl", queries)]
    out: dict[str, float] = {}
    for store, cfg in (("embedded", config), ("milvus", milvus)):
        base_kb = KnowledgeBase.open(name, cfg)
        for q in questions[:10]:  # warm: models loaded, files read
            base_kb.search(q)
        times = []
        for q in questions:
            t0 = time.perf_counter()
            base_kb.search(q)
            times.append((time.perf_counter() - t0) * 1000)
        base_kb.close()
        cuts = statistics.quantiles(times, n=20)
        out[f"{store}_p50_ms"], out[f"{store}_p95_ms"] = statistics.median(times), cuts[18]
    print(f"{n:8d} chunks: embedded p50 {out['embedded_p50_ms']:.1f} / p95 {out['embedded_p95_ms']:.1f} ms; "
          f"Milvus Lite p50 {out['milvus_p50_ms']:.1f} / p95 {out['milvus_p95_ms']:.1f} ms "
          f"({out['milvus_p50_ms'] / out['embedded_p50_ms']:.1f}x at p50)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=ROOT.parent / "shared" / "data" / "docs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pdf-only", action="store_true", help="only the folder's PDFs (copied to a scratch folder)")
    parser.add_argument("--store", choices=["embedded", "milvus"], default="embedded", help="the store the ingest runs write into")
    parser.add_argument("--query-sizes", type=int, nargs="*", default=[], metavar="N", help="query p50/p95, embedded vs Milvus, at these sizes")
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest runs")
    parser.add_argument("--home", type=Path, default=ROOT / ".bench", help="where the --query-sizes knowledge bases live (reused)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    for n in args.query_sizes:
        if not (ROOT.parent / "shared" / "data" / "qa").is_dir():
            print("no ../shared/data/qa: no query sizes measured")
            break
        query_latency(n, args.home)
    if args.no_ingest:
        return
    if not args.folder.is_dir():
        print(f"no {args.folder}: nothing to measure")
        return
    folder = args.folder
    scratch = None
    if args.pdf_only:
        scratch = Path(tempfile.mkdtemp())
        for i, pdf in enumerate(sorted(args.folder.rglob("*.pdf"))):
            shutil.copy(pdf, scratch / f"{i:04d}_{pdf.name}")
        folder = scratch
    try:
        runs = [("local", 1)] + [("ray", w) for w in args.workers]
        results = []
        for executor, workers in runs:
            r = ingest(folder, executor, workers, args.store)
            results.append((executor, workers, r))
            label = "local" if executor == "local" else f"ray, {workers} worker{'s' if workers > 1 else ''}"
            print(f"{label:16s}: {r['files']:4.0f} files ({r['failed']:.0f} failed) {r['pages']:6.0f} pages {r['chunks']:6.0f} chunks "
                  f"in {r['seconds']:7.1f} s = {r['pages'] / r['seconds']:6.2f} pages/s; "
                  f"{r['seconds'] / results[0][2]['seconds']:.2f}x the local time", flush=True)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
