"""Vector indexes keyed by chunk id: FAISS (embedded, default). The catalog stays the store of record."""

from __future__ import annotations

import json
import math
import os
import struct
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.atomic import replacing


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

    def rebuild(self, batches: Iterable[tuple[np.ndarray, np.ndarray]], *, train: np.ndarray | None = None, total: int = 0) -> None: ...


def _write_state(path: Path, state: dict[str, object]) -> None:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(state))


def _read_state(path: Path) -> dict[str, object]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


DELTA_MAGIC = b"KBQADLT1"
_DELTA_HEAD = struct.Struct("<8sqqq")  # magic, generation, rows added, ids removed


def choose_faiss_kind(chunks: int, hnsw_above: int, ivf_above: int) -> str:
    """The index kind for a knowledge base of this many chunks: exact below hnsw_above, an HNSW graph
    up to ivf_above, an inverted file (clustered, compressed codes) above it."""
    if chunks > ivf_above:
        return "ivf"
    return "hnsw" if chunks > hnsw_above else "flat"


def ivf_lists(n: int) -> int:
    """Inverted lists for n vectors: about 2·sqrt(n) (2000 at 1M), and at least 39 training points each."""
    return max(1, min(int(2 * math.sqrt(max(n, 1))), n // 39 or 1, 65536))


class FaissIndex:
    """FAISS by chunk id, saved as a whole file plus an append-only delta.

    kind "flat" is exact inner product; "hnsw" an HNSW graph (M=32), which cannot delete: removed
    ids are filtered out of results and the graph is rebuilt by the knowledge base when they pile up;
    "ivf" an inverted file over k-means lists (faiss code `ivf_code`: SQ8 by default, 1 byte a
    dimension; PQ48 etc. also work), trained on a sample of the vectors when the index is built.

    Persistence: vectors.faiss is the index as of a full save; vectors.delta holds what changed
    since (one record per save: generation, ids and vectors added, ids removed), appended and
    fsynced, then vectors.json (written atomically) records the generation, the count and how many
    delta bytes are valid: a crash mid-append leaves bytes past that mark, ignored and cut off by the
    next save. Opening replays the delta onto the whole file. The delta is folded into a full save
    when it holds more rows than delta_fraction of the whole file (or the index is small), after a
    rebuild, or when another process saved since this one read the files.

    Thread-safe: every call holds the index's lock, and a rebuild fills a new index off to the side
    before swapping it in, so a search never sees a write half applied."""

    FULL_SAVE_BELOW = 20_000  # vectors: an index this small is always written whole (cheap)

    def __init__(self, folder: Path, dim: int, kind: str = "flat", *, delta_fraction: float = 0.1,
                 ivf_code: str = "SQ8", ivf_nprobe: int = 0, owner: str = "") -> None:
        import faiss

        self._faiss = faiss
        self._lock = threading.RLock()
        self.dim = dim
        self.kind = kind
        self.delta_fraction = delta_fraction
        self.ivf_code = ivf_code
        self.ivf_nprobe = ivf_nprobe
        self.owner = owner  # the catalog the saved files belong to: files of another (a knowledge base made again) are not read
        self.ivf: dict[str, object] = {}  # for kind ivf: code, nlist, trained_on, nprobe
        self.file = folder / "vectors.faiss"
        self.state = folder / "vectors.json"
        self.delta = folder / "vectors.delta"
        self.deleted: set[int] = set()
        self.index = self._empty()
        self._loaded = False  # the files on disk were read and agree with each other
        self._disk: tuple[object, int] = (None, 0)  # (stamp of the full save, valid delta bytes) this object knows
        self._base_rows = 0  # rows in the whole file plus the delta as of the last save
        self._delta_rows = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # added since the last save
        self._pending_removed: list[int] = []
        self._full = True  # the next save writes the whole index
        if self.file.exists():
            self._load()
        else:  # an IVF index saved before it had any vector to train on has no file
            saved = _read_state(self.state)
            if saved.get("kind") == self.kind and saved.get("count") == 0 and "generation" in saved and self._ours(saved):
                self._loaded, self._disk, self._full = True, (saved.get("stamp"), 0), False

    # --- files ---------------------------------------------------------------------------------
    def _load(self) -> None:
        saved = _read_state(self.state)
        if saved.get("kind", "flat") != self.kind or saved.get("dim", self.dim) != self.dim or not self._ours(saved):
            return  # another kind or dimension, or another catalog's: the knowledge base rebuilds it
        loaded = self._faiss.read_index(str(self.file))
        if loaded.d != self.dim:
            return
        self.index = loaded
        self.deleted = set(saved.get("deleted", []))  # type: ignore[arg-type]
        self.ivf = dict(saved.get("ivf", {}))  # type: ignore[arg-type]
        self._set_nprobe()
        valid = int(saved.get("delta_bytes", 0))  # type: ignore[arg-type]
        rows = self._replay(valid) if valid else 0
        if rows is None:
            return  # the delta is shorter than the state says: not loaded, so rebuilt
        self._loaded = True
        self._disk = (saved.get("stamp"), valid)
        self._base_rows, self._delta_rows = int(self.index.ntotal) - rows, rows
        self._full = False

    def _ours(self, saved: dict[str, object]) -> bool:
        """Whether saved files belong to this index's catalog (files saved before owners were recorded do)."""
        return not self.owner or saved.get("owner", self.owner) == self.owner

    def _replay(self, valid: int) -> int | None:
        """Apply the first `valid` bytes of the delta; the rows they added, or None if they are not there."""
        try:
            with open(self.delta, "rb") as fh:
                data = fh.read(valid)
        except OSError:
            return None
        if len(data) < valid:
            return None
        pos, rows, width = 0, 0, 4 * self.dim
        while pos < valid:
            magic, _generation, added, removed = _DELTA_HEAD.unpack_from(data, pos)
            if magic != DELTA_MAGIC:
                return None
            pos += _DELTA_HEAD.size
            ids = np.frombuffer(data, dtype=np.int64, count=added, offset=pos)
            pos += 8 * added
            vectors = np.frombuffer(data, dtype=np.float32, count=added * self.dim, offset=pos).reshape(added, self.dim)
            pos += width * added
            gone = np.frombuffer(data, dtype=np.int64, count=removed, offset=pos)
            pos += 8 * removed
            self._add_now(ids, vectors)  # ids are never reused: adds before removes is exact
            self._remove_now(gone.tolist())
            rows += added + removed
        return rows

    def save(self, generation: int) -> None:
        with self._lock:
            on_disk = _read_state(self.state)
            changed = sum(len(i) for i, _ in self._pending) + len(self._pending_removed)
            elsewhere = (on_disk.get("stamp"), int(on_disk.get("delta_bytes", 0))) != self._disk  # type: ignore[arg-type]
            whole = (self._full or elsewhere or self.index is None or not self.file.exists() or self.index.ntotal < self.FULL_SAVE_BELOW
                     or self._delta_rows + changed > self.delta_fraction * max(self._base_rows, 1))
            if whole:
                self._save_whole(generation)
            else:
                self._append_delta(generation, changed)

    def _state(self, generation: int, **extra: object) -> dict[str, object]:
        state: dict[str, object] = {"generation": generation, "count": self.count(), "dim": self.dim, "kind": self.kind, "owner": self.owner}
        if self.kind == "ivf":
            state["ivf"] = self.ivf
        return {**state, **extra}

    def _save_whole(self, generation: int) -> None:
        stamp = os.urandom(8).hex()
        # first say that no generation is on disk: a crash before the last step leaves an index
        # that is rebuilt, never a new whole file read with an old delta
        _write_state(self.state, {"dim": self.dim, "kind": self.kind, "owner": self.owner})
        if self.index is None:  # an IVF index with nothing to train on yet
            self.file.unlink(missing_ok=True)
        else:
            with replacing(self.file) as tmp:
                self._faiss.write_index(self.index, str(tmp))
        with open(self.delta, "wb"):
            pass
        _write_state(self.state, self._state(generation, deleted=sorted(self.deleted), stamp=stamp, delta_bytes=0))
        self._disk = (stamp, 0)
        self._base_rows, self._delta_rows = self.count() + len(self.deleted), 0
        self._loaded = True
        self._pending, self._pending_removed, self._full = [], [], False

    def _append_delta(self, generation: int, changed: int) -> None:
        stamp, valid = self._disk
        ids = np.concatenate([i for i, _ in self._pending]) if self._pending else np.zeros(0, dtype=np.int64)
        vectors = np.vstack([v for _, v in self._pending]) if self._pending else np.zeros((0, self.dim), dtype=np.float32)
        gone = np.asarray(self._pending_removed, dtype=np.int64)
        record = b"".join([_DELTA_HEAD.pack(DELTA_MAGIC, generation, len(ids), len(gone)), ids.astype(np.int64).tobytes(),
                           np.ascontiguousarray(vectors, dtype=np.float32).tobytes(), gone.tobytes()])
        if changed:
            with open(self.delta, "r+b" if self.delta.exists() else "wb") as fh:
                fh.truncate(valid)  # bytes past the valid mark are a crashed save's
                fh.seek(valid)
                fh.write(record)
                fh.flush()
                os.fsync(fh.fileno())
            valid += len(record)
        deleted = _read_state(self.state).get("deleted", [])  # as of the whole file; later ones are in the delta
        _write_state(self.state, self._state(generation, deleted=deleted, stamp=stamp, delta_bytes=valid))
        self._disk = (stamp, valid)
        self._delta_rows += changed
        self._pending, self._pending_removed = [], []

    def saved_generation(self) -> int | None:
        state = _read_state(self.state)
        if not self._loaded or state.get("count") != self.count() or "generation" not in state or not self._ours(state):
            return None
        if (state.get("stamp"), int(state.get("delta_bytes", 0))) != self._disk:  # type: ignore[arg-type]
            return None  # saved by another process since: not what this object holds
        return int(state["generation"])  # type: ignore[arg-type]

    # --- the index -----------------------------------------------------------------------------
    def _empty(self, train: np.ndarray | None = None, total: int = 0):  # type: ignore[no-untyped-def]
        faiss = self._faiss
        if self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = 128
            return faiss.IndexIDMap2(inner)
        if self.kind == "ivf":
            if train is None or not len(train):
                return None  # trained on the first vectors added (or the rebuild's sample)
            n = max(total, len(train))
            nlist = max(1, min(ivf_lists(n), len(train) // 39 or 1))
            code = self.ivf_code if not self.ivf_code.startswith("PQ") or len(train) >= 10_000 else "SQ8"  # PQ needs 256+ points a code book
            index = faiss.index_factory(self.dim, f"IVF{nlist},{code}", faiss.METRIC_INNER_PRODUCT)
            ivf = faiss.extract_index_ivf(index)
            ivf.cp.niter = 10
            ivf.cp.max_points_per_centroid = 64
            index.train(np.ascontiguousarray(train, dtype=np.float32))
            self.ivf = {"code": code, "nlist": nlist, "trained_on": int(n)}
            self._set_nprobe(index)
            return index
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _set_nprobe(self, index=None) -> None:  # type: ignore[no-untyped-def]
        index = self.index if index is None else index
        if self.kind != "ivf" or index is None:
            return
        nlist = int(self.ivf.get("nlist", 1))  # type: ignore[arg-type]
        nprobe = self.ivf_nprobe or max(16, nlist // 16)
        self._faiss.extract_index_ivf(index).nprobe = min(nlist, nprobe)
        self.ivf["nprobe"] = min(nlist, nprobe)

    def wants_training(self) -> bool:
        return self.kind == "ivf"

    def reset(self) -> None:
        with self._lock:
            self.index = self._empty()
            self.deleted = set()
            self._pending, self._pending_removed, self._full = [], [], True

    def rebuild(self, batches: Iterable[tuple[np.ndarray, np.ndarray]], *, train: np.ndarray | None = None, total: int = 0) -> None:
        """Replace the whole index by these (ids, vectors); searches meanwhile use the old one.
        An IVF index is trained on `train` (a sample of the vectors; else the first batch)."""
        fresh = self._empty(train, total) if train is not None else self._empty()
        for ids, vectors in batches:
            if len(ids):
                vectors = np.ascontiguousarray(vectors, dtype=np.float32)
                if fresh is None:
                    fresh = self._empty(vectors, total)
                fresh.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        with self._lock:
            self.index, self.deleted = fresh, set()
            self._pending, self._pending_removed, self._full = [], [], True

    def _add_now(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self.index is None:
            self.index = self._empty(vectors, len(ids))
        self.index.add_with_ids(vectors, ids)

    def _remove_now(self, ids: list[int]) -> None:
        if not ids or self.index is None:
            return
        if self.kind == "hnsw":
            self.deleted.update(int(i) for i in ids)
        else:
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def _note(self) -> None:
        """Pending changes past the delta limit are not kept twice in memory: the next save is whole."""
        rows = sum(len(i) for i, _ in self._pending) + len(self._pending_removed)
        if rows > self.delta_fraction * max(self._base_rows, 1) and rows > 1000:
            self._pending, self._pending_removed, self._full = [], [], True

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            ids = np.asarray(ids, dtype=np.int64)
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            with self._lock:
                self._add_now(ids, vectors)
                if not self._full:
                    self._pending.append((ids.copy(), vectors.copy()))
                    self._note()

    def remove(self, ids: list[int]) -> None:
        if not len(ids):
            return
        with self._lock:
            self._remove_now([int(i) for i in ids])
            if not self._full:
                self._pending_removed.extend(int(i) for i in ids)
                self._note()

    def ids(self) -> np.ndarray:
        """The chunk ids this index holds (deleted ones left out)."""
        with self._lock:
            if self.index is None:
                return np.zeros(0, dtype=np.int64)
            if self.kind == "ivf":
                lists = self._faiss.extract_index_ivf(self.index).invlists
                parts = [self._faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                         for i in range(lists.nlist) if lists.list_size(i)]
                return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, dtype=np.int64)
            held = self._faiss.vector_to_array(self.index.id_map).astype(np.int64)
            return np.setdiff1d(held, np.fromiter(self.deleted, dtype=np.int64)) if self.deleted else held

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self._lock:
            if self.index is None or self.index.ntotal == 0:
                return []
            want = min(k + len(self.deleted), self.index.ntotal)
            scores, ids = self.index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), want)
            hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and int(i) not in self.deleted]
        return hits[:k]

    def count(self) -> int:
        with self._lock:
            return (int(self.index.ntotal) if self.index is not None else 0) - len(self.deleted)

    def needs_rebuild(self) -> bool:
        """Many deletions (HNSW), or an IVF index that has grown to four times what it was trained for."""
        if self.index is None:
            return False
        if self.kind == "ivf":
            return self.index.ntotal >= 10_000 and self.index.ntotal > 4 * int(self.ivf.get("trained_on", 0))  # type: ignore[arg-type]
        return len(self.deleted) > max(1000, self.index.ntotal // 10)


class MilvusIndex:
    """Milvus (a server URI for scale, or a Milvus Lite .db file) through pymilvus' MilvusClient."""

    def __init__(self, folder: Path, dim: int, uri: str | None = None, collection: str | None = None,
                 options: dict[str, Any] | None = None) -> None:
        try:
            import pymilvus  # noqa: F401
        except ImportError as exc:
            raise RuntimeError("store.vector_index=milvus needs: pip install 'kbqa[milvus]'") from exc
        from kbqa.store.milvus import connect
        self.dim = dim
        self.uri = uri or str(folder / "milvus.db")
        self.collection = collection or "kbqa_" + "".join(ch if ch.isalnum() else "_" for ch in folder.name)
        self.state = folder / "milvus.json"
        self.client = connect(self.uri, **(options or {}))  # a channel of its own; calls bounded, a lost server said plainly
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

    def rebuild(self, batches: Iterable[tuple[np.ndarray, np.ndarray]], **_: object) -> None:
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


def open_index(kind: str, folder: Path, dim: int, *, faiss_index: str = "flat", milvus_uri: str | None = None,
               milvus_options: dict[str, Any] | None = None, **faiss_options: object) -> VectorIndex:
    """faiss_options: delta_fraction, ivf_code, ivf_nprobe (see FaissIndex); milvus_options: token,
    timeout_s, connect_s (kbqa.store.milvus.connect)."""
    if kind == "faiss":
        return FaissIndex(folder, dim, faiss_index, **faiss_options)  # type: ignore[arg-type]
    if kind == "milvus":
        return MilvusIndex(folder, dim, milvus_uri, options=milvus_options)
    raise ValueError(f"unknown vector index {kind!r}; choose faiss or milvus")
