"""Ingest throughput of one folder: local ingest vs Ray (ingest.executor ray) with 1 and 2 embedding
workers, each into an empty home, on this machine (a local Ray runtime), in one run.

    python benchmarks/scale.py [--folder ../shared/data/docs] [--workers 1 2] [--pdf-only]

Reports files, pages, chunks, seconds, pages/s, and each run's time over the local one. Ray's own
start (a few seconds) is included, as a user meets it. Without the folder it says so and exits 0.
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


def ingest(folder: Path, executor: str, workers: int) -> dict[str, float]:
    from kbqa.config import load_config
    from kbqa.kb import KnowledgeBase

    with tempfile.TemporaryDirectory() as home:
        os.environ["KBQA_HOME"] = home
        config, _ = load_config(overrides={"ingest": {"executor": executor, "ray_workers": workers}})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=ROOT.parent / "shared" / "data" / "docs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pdf-only", action="store_true", help="only the folder's PDFs (copied to a scratch folder)")
    args = parser.parse_args()
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
            r = ingest(folder, executor, workers)
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
