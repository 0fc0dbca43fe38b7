"""Vector indexes keyed by chunk id: FAISS (embedded, default). The catalog stays the store of record."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
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

    def needs_rebuild(self) -> bool: ...

    def rebuild(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None: ...


def _write_state(path: Path, state: dict[str, object]) -> None:
    tmp = path.with_suffix(f".json.{os.getpid()}.{threading.get_ident()}.tmp")  # two writers never share a temp file
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _read_state(path: Path) -> dict[str, object]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


class FaissIndex:
    """FAISS under an IndexIDMap2, written atomically (temp file + rename).

    kind "flat" is exact inner product; "hnsw" an HNSW graph (M=32), which cannot delete: removed
    ids are filtered out of results and the graph is rebuilt by the knowledge base when they pile up.

    Thread-safe: every call holds the index's lock, and a rebuild fills a new index off to the side
    before swapping it in, so a search never sees a write half applied."""

    def __init__(self, folder: Path, dim: int, kind: str = "flat") -> None:
        import faiss

        self._faiss = faiss
        self._lock = threading.RLock()
        self.dim = dim
        self.kind = kind
        self.file = folder / "vectors.faiss"
        self.state = folder / "vectors.json"
        self.deleted: set[int] = set()
        self.index = self._empty()
        if self.file.exists():
            loaded = faiss.read_index(str(self.file))
            saved = _read_state(self.state)
            if loaded.d == dim and saved.get("kind", "flat") == kind:
                self.index = loaded
                self.deleted = set(saved.get("deleted", []))  # type: ignore[arg-type]

    def _empty(self):  # type: ignore[no-untyped-def]
        if self.kind == "hnsw":
            inner = self._faiss.IndexHNSWFlat(self.dim, 32, self._faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = 128
            return self._faiss.IndexIDMap2(inner)
        return self._faiss.IndexIDMap2(self._faiss.IndexFlatIP(self.dim))

    def reset(self) -> None:
        with self._lock:
            self.index = self._empty()
            self.deleted = set()

    def rebuild(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Replace the whole index by these (ids, vectors); searches meanwhile use the old one."""
        fresh = self._empty()
        for ids, vectors in batches:
            if len(ids):
                fresh.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        with self._lock:
            self.index, self.deleted = fresh, set()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            with self._lock:
                self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: list[int]) -> None:
        if not len(ids):
            return
        with self._lock:
            if self.kind == "hnsw":
                self.deleted.update(int(i) for i in ids)
            else:
                self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def ids(self) -> np.ndarray:
        """The chunk ids this index holds (deleted ones left out)."""
        with self._lock:
            held = self._faiss.vector_to_array(self.index.id_map).astype(np.int64)
            return np.setdiff1d(held, np.fromiter(self.deleted, dtype=np.int64)) if self.deleted else held

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self._lock:
            if self.index.ntotal == 0:
                return []
            want = min(k + len(self.deleted), self.index.ntotal)
            scores, ids = self.index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), want)
            hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and int(i) not in self.deleted]
        return hits[:k]

    def count(self) -> int:
        with self._lock:
            return int(self.index.ntotal) - len(self.deleted)

    def needs_rebuild(self) -> bool:
        return len(self.deleted) > max(1000, self.index.ntotal // 10)

    def save(self, generation: int) -> None:
        with self._lock:
            tmp = self.file.with_suffix(f".faiss.{os.getpid()}.{threading.get_ident()}.tmp")
            self._faiss.write_index(self.index, str(tmp))
            os.replace(tmp, self.file)
            _write_state(self.state, {"generation": generation, "count": self.count(), "dim": self.dim, "kind": self.kind,
                                      "deleted": sorted(self.deleted)})

    def saved_generation(self) -> int | None:
        state = _read_state(self.state)
        if not self.file.exists() or state.get("count") != self.count() or "generation" not in state:
            return None
        return int(state["generation"])  # type: ignore[arg-type]


class MilvusIndex:
    """Milvus (a server URI for scale, or a Milvus Lite .db file) through pymilvus' MilvusClient."""

    def __init__(self, folder: Path, dim: int, uri: str | None = None, collection: str | None = None) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise RuntimeError("store.vector_index=milvus needs: pip install 'kbqa[milvus]'") from exc
        self.dim = dim
        self.uri = uri or str(folder / "milvus.db")
        self.collection = collection or "kbqa_" + "".join(ch if ch.isalnum() else "_" for ch in folder.name)
        self.state = folder / "milvus.json"
        self.client = MilvusClient(self.uri)
        if not self.client.has_collection(self.collection):
            self._create()

    def _create(self) -> None:
        self.client.create_collection(self.collection, dimension=self.dim, metric_type="IP", auto_id=False)

    def reset(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        self._create()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        rows = [{"id": int(i), "vector": np.asarray(v, dtype=np.float32).tolist()} for i, v in zip(ids, vectors)]
        for start in range(0, len(rows), 1000):
            self.client.insert(self.collection, rows[start : start + 1000])

    def remove(self, ids: list[int]) -> None:
        if ids:
            self.client.delete(self.collection, ids=[int(i) for i in ids])

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        result = self.client.search(self.collection, [np.asarray(query, dtype=np.float32).tolist()], limit=k)
        return [(int(hit["id"]), float(hit["distance"])) for hit in result[0]]

    def count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def needs_rebuild(self) -> bool:
        return False

    def rebuild(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        self.reset()
        for ids, vectors in batches:
            self.add(ids, vectors)

    def save(self, generation: int) -> None:
        self.client.flush(self.collection)
        _write_state(self.state, {"generation": generation, "count": self.count(), "uri": self.uri, "collection": self.collection})

    def saved_generation(self) -> int | None:
        state = _read_state(self.state)
        if state.get("count") != self.count() or "generation" not in state:
            return None
        return int(state["generation"])  # type: ignore[arg-type]


def open_index(kind: str, folder: Path, dim: int, *, faiss_index: str = "flat", milvus_uri: str | None = None) -> VectorIndex:
    if kind == "faiss":
        return FaissIndex(folder, dim, faiss_index)
    if kind == "milvus":
        return MilvusIndex(folder, dim, milvus_uri)
    raise ValueError(f"unknown vector index {kind!r}; choose faiss or milvus")
