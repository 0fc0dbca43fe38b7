"""Every file under a folder of real-world documents either yields text or a one-line reason:
counts of ok / failed (with reason) / unsupported / crashed / timed out (issue 6's sweep).

    python benchmarks/robustness.py --data ../shared/data/docs [--timeout 60] [--ocr never] [--pdf-engine pdfplumber]

Each file is read in a forked child process with a time limit, so a crash or a hang is counted,
and memory cannot leak from one file to the next. Without the data folder it says so and exits 0.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _read(path: str, ocr: str, engine: str, conn: object) -> None:
    from ingest import LoadError, LoadOptions, UnsupportedFile, load_file

    try:
        docs = load_file(path, LoadOptions(ocr=ocr, pdf_engine=engine))
        conn.send(("ok", f"{sum(len(d.text) for d in docs)} chars"))  # type: ignore[attr-defined]
    except UnsupportedFile as exc:
        conn.send(("unsupported", str(exc)))  # type: ignore[attr-defined]
    except LoadError as exc:
        conn.send(("failed", str(exc)))  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "docs")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--ocr", default="auto", choices=["auto", "always", "never"])
    parser.add_argument("--pdf-engine", default="pymupdf", choices=["pymupdf", "pdfplumber", "pdfminer"])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: no data folder at {args.data}")
        return
    import ingest.loaders as _  # noqa: F401  (parsing libraries imported once, before forking)
    from ingest.loaders import _registry

    _registry()
    ctx = mp.get_context("fork")
    files = sorted(p for p in args.data.rglob("*") if p.is_file() and p.name not in ("SOURCE.md",))
    counts: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    slowest: list[tuple[float, str]] = []
    started = time.perf_counter()
    for path in files:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_read, args=(str(path), args.ocr, args.pdf_engine, child))
        t0 = time.perf_counter()
        proc.start()
        status, detail = "crashed", ""
        if parent.poll(args.timeout):
            try:
                status, detail = parent.recv()
            except EOFError:
                status, detail = "crashed", "child died"
        else:
            status, detail = ("timed out", f"over {args.timeout:g} s") if proc.is_alive() else ("crashed", f"exit code {proc.exitcode}")
        proc.join(1)
        if proc.is_alive():
            proc.kill()
            proc.join()
        if status == "crashed" and proc.exitcode not in (0, None):
            detail = f"exit code {proc.exitcode}"
        seconds = time.perf_counter() - t0
        slowest.append((seconds, path.name))
        counts[status] += 1
        if status in ("failed", "unsupported"):
            reasons[detail.split(":")[0][:60]] += 1
        if args.verbose or status in ("crashed", "timed out"):
            print(f"{status:11s} {seconds:6.2f}s {path.relative_to(args.data)}  {detail[:100]}", flush=True)
    total = time.perf_counter() - started
    print(f"\n{len(files)} files in {total:.0f} s: " + ", ".join(f"{counts[k]} {k}" for k in ("ok", "failed", "unsupported", "crashed", "timed out")))
    print("most common reasons: " + "; ".join(f"{r} ({n})" for r, n in reasons.most_common(8)))
    print("slowest: " + ", ".join(f"{name} {s:.1f}s" for s, name in sorted(slowest, reverse=True)[:5]))


if __name__ == "__main__":
    main()
