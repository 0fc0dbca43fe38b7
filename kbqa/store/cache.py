"""A vector cache shared by every knowledge base of one embedding model: text hash -> vector.

Re-ingesting, rebuilding or ingesting the same text into another knowledge base never embeds it again."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import numpy as np

from kbqa.errors import KnowledgeBaseError
from kbqa.store.catalog import write_ahead


class VectorCache:
    def __init__(self, folder: Path, model: str, timeout_s: float = 30) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^\w.\-]+", "_", model)[-80:]
        self.db = sqlite3.connect(folder / f"vectors-{safe}.sqlite", timeout=timeout_s, check_same_thread=False, isolation_level=None)
        write_ahead(self.db, timeout_s)  # (two first ingests of a fresh home open this file together: "database is locked")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors(key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self._lock = threading.Lock()  # one connection for every thread: one call at a time, and never closed under one
        self._closed: str | None = None

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            self._check()
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                rows = self.db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
                out.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        return out

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._check()
            with self.db:
                self.db.executemany(
                    "INSERT OR IGNORE INTO vectors(key, vector) VALUES(?, ?)",
                    [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()],
                )

    def forget(self, keys: list[str]) -> None:
        """Delete these vectors: those a catalog deleted with their text, or a dropped knowledge base held (no text a
        knowledge base no longer holds stays in the home; another knowledge base holding the same text keeps its own
        copy in its catalog)."""
        with self._lock:
            self._check()
            with self.db:
                for i in range(0, len(keys), 500):
                    part = keys[i : i + 500]
                    self.db.execute(f"DELETE FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)

    def _check(self) -> None:
        if self._closed is not None:
            raise KnowledgeBaseError(self._closed)

    def close(self, why: str = "") -> None:
        with self._lock:
            if self._closed is None:
                self._closed = why or "the vector cache was closed"
                self.db.close()
