"""Vector indexes keyed by chunk id: FAISS (embedded, default). The catalog stays the store of record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: list[int]) -> None: ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def count(self) -> int: ...

    def save(self, generation: int) -> None: ...

    def saved_generation(self) -> int | None: ...

    def reset(self) -> None: ...


class FaissIndex:
    """Exact inner product (IndexFlatIP) under an IndexIDMap2, written atomically (temp file + rename)."""

    def __init__(self, folder: Path, dim: int) -> None:
        import faiss

        self._faiss = faiss
        self.dim = dim
        self.file = folder / "vectors.faiss"
        self.state = folder / "vectors.json"
        self.index = self._empty()
        if self.file.exists():
            loaded = faiss.read_index(str(self.file))
            if loaded.d == dim:
                self.index = loaded

    def _empty(self):  # type: ignore[no-untyped-def]
        return self._faiss.IndexIDMap2(self._faiss.IndexFlatIP(self.dim))

    def reset(self) -> None:
        self.index = self._empty()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: list[int]) -> None:
        if ids:
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.index.ntotal == 0:
            return []
        scores, ids = self.index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), min(k, self.index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def count(self) -> int:
        return int(self.index.ntotal)

    def save(self, generation: int) -> None:
        tmp = self.file.with_suffix(".faiss.tmp")
        self._faiss.write_index(self.index, str(tmp))
        os.replace(tmp, self.file)
        tmp_state = self.state.with_suffix(".json.tmp")
        tmp_state.write_text(json.dumps({"generation": generation, "count": self.count(), "dim": self.dim}))
        os.replace(tmp_state, self.state)

    def saved_generation(self) -> int | None:
        try:
            state = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return None
        if not self.file.exists() or state.get("count") != self.count():
            return None
        return int(state["generation"])


def open_index(kind: str, folder: Path, dim: int, milvus_uri: str | None = None) -> VectorIndex:
    if kind == "faiss":
        return FaissIndex(folder, dim)
    raise ValueError(f"unknown vector index {kind!r}; choose faiss")
