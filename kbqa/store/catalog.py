"""The SQLite catalog, the store of record: files, chunks, an FTS5 table for BM25, cached vectors."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.textfacts import without_diacritics
from kbqa.errors import KnowledgeBaseError
from kbqa.store.tokenize import VERSION as TOKENIZER_VERSION
from kbqa.store.tokenize import index_words, name_runs, name_terms, name_tokens, query_tokens

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are never reused: a stale client cannot hit another file
    path TEXT NOT NULL UNIQUE,      -- absolute path
    name TEXT NOT NULL,             -- path relative to the folder it was ingested from
    sha256 TEXT, size INTEGER, mtime REAL,
    status TEXT NOT NULL,           -- ok | failed | unsupported
    error TEXT,
    pages INTEGER, chunks INTEGER NOT NULL DEFAULT 0,
    seconds REAL, ingested_at REAL,
    description TEXT NOT NULL DEFAULT ''  -- what the document says about itself (ingest.context): in every chunk's context
);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a vector index that is behind cannot mistake a new chunk for an old one
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    chunk_no INTEGER NOT NULL,
    page INTEGER,
    title_path TEXT NOT NULL DEFAULT '[]',
    kind TEXT NOT NULL DEFAULT 'text',
    start INTEGER, "end" INTEGER,
    text TEXT NOT NULL,
    vector_key TEXT NOT NULL        -- sha256 of the text that was embedded
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id, chunk_no);
CREATE INDEX IF NOT EXISTS files_by_hash ON files(sha256);
CREATE INDEX IF NOT EXISTS chunks_by_vector ON chunks(vector_key);  -- which vectors a chunk still uses (_forget_vectors)
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS files_fts USING fts5(tokens, tokenize = 'unicode61 remove_diacritics 2');  -- descriptions, by file id
CREATE TABLE IF NOT EXISTS vectors(key TEXT PRIMARY KEY, vector BLOB NOT NULL);
"""


def _forget_vectors(db: sqlite3.Connection, keys: set[str]) -> list[str]:
    """Delete the vectors of these keys that no chunk uses any more; return their keys. (Found by review: they were
    kept for good, a file edited ten times held eleven versions' vectors, and a removed file's stayed.)"""
    gone: list[str] = []
    for key in keys:
        if db.execute("SELECT 1 FROM chunks WHERE vector_key=? LIMIT 1", (key,)).fetchone() is None:
            db.execute("DELETE FROM vectors WHERE key=?", (key,))
            gone.append(key)
    return gone


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class FileRow:
    id: int
    path: str
    name: str
    sha256: str | None
    size: int | None
    mtime: float | None
    status: str
    error: str | None
    pages: int | None
    chunks: int
    seconds: float | None
    ingested_at: float | None
    description: str = ""


@dataclass
class ChunkRow:
    id: int
    file_id: int
    name: str
    path: str
    chunk_no: int
    page: int | None
    title_path: list[str]
    kind: str
    text: str
    vector_key: str = ""
    description: str = ""
    start: int | None = None  # where it starts and ends in its document (a section, the text around a table)
    end: int | None = None


@dataclass
class Neighbour:
    """A chunk beside a search hit (Catalog.neighbours)."""

    id: int
    chunk_no: int
    start: int | None
    end: int | None
    text: str


@dataclass
class NewChunk:
    text: str
    page: int | None
    title_path: list[str]
    kind: str
    start: int | None
    end: int | None
    vector_key: str
    words: str | None = None  # what BM25 indexes (tokenize.index_words), when cut already (on a Ray worker)


JOURNAL_KEPT = 64 << 20  # bytes of the write-ahead log kept after a checkpoint


def write_ahead(db: sqlite3.Connection, timeout_s: float) -> None:
    """WAL mode for this connection; on a file another thread or process is creating at this moment
    SQLite says 'locked' at once (its busy timeout does not cover this), so it is asked again
    meanwhile, up to timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Catalog:
    """One SQLite file in WAL mode: each thread reads through its own connection (readers never
    wait for each other or see a write half done) and one thread of this process writes at a time
    (other processes wait on SQLite's own lock, up to 30 s)."""

    busy_timeout_s = 30.0  # how long a write waits for another process's (SQLite's busy timeout)

    def __init__(self, path: Path, forget: Callable[[list[str]], None] | None = None) -> None:
        self.path = path
        self.forget = forget  # told the keys of the vectors deleted here (the home's vector cache deletes them too)
        self._local = threading.local()
        self._counted: tuple[int, int] | None = None  # (generation, chunks): chunk_count()'s cache
        self._connections: dict[int, sqlite3.Connection] = {}  # by thread id, to close them all
        self._connections_lock = threading.Lock()
        self._writer = threading.RLock()
        self._closed: str | None = None  # why it was closed (close(why)): later calls say so
        self._busy: dict[int, int] = {}  # thread id -> calls of it running now (see _using)
        write_ahead(self.db, self.busy_timeout_s)
        with self._writer:
            self._add_description_column()
            self.db.executescript(SCHEMA)
            self._never_reuse_chunk_ids()
            if self.get_meta("created") is None:  # what tells it apart from one made again under its name (the vector index's owner)
                self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('created', ?)", (secrets.token_hex(8),))
        if self.get_meta("vectors_pruned") is None:  # a catalog from before vectors were deleted with their text: once
            with self.transaction() as db:
                gone = [r[0] for r in db.execute("SELECT key FROM vectors WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE vector_key = vectors.key)")]
                db.executemany("DELETE FROM vectors WHERE key=?", [(k,) for k in gone])
                self.set_meta("vectors_pruned", "1", db)
            self._forgotten(gone)
        self.opened_identity = self.identity()
        if self.get_meta("tokenizer") != TOKENIZER_VERSION:
            self.rebuild_fts()

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use). Once the catalog is closed, each thread
        closes its own connection at its next use and gets KnowledgeBaseError."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._connections.get(threading.get_ident()) is not conn:
            conn = None  # closed by release_idle() while this thread was not using it
        if self._closed is not None:
            with self._connections_lock:  # a call of this thread still running closes it when it ends (_using)
                idle = not self._busy.get(threading.get_ident()) and self._connections.pop(threading.get_ident(), None) is not None
            if idle and conn is not None:
                self._local.conn = None
                conn.close()
            raise KnowledgeBaseError(self._closed)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            # the journal is cut back to this after each checkpoint: a large ingest's (1.3 times its text) stayed on disk for
            # as long as the server ran, which kept the disk under server.min_free_disk_mb (found by review)
            conn.execute(f"PRAGMA journal_size_limit={JOURNAL_KEPT}")
            self._local.conn = conn
            with self._connections_lock:
                alive = {t.ident for t in threading.enumerate()}
                for ident in [i for i in self._connections if i not in alive]:  # threads that ended
                    self._connections.pop(ident).close()
                self._connections[threading.get_ident()] = conn
        return conn

    def _never_reuse_chunk_ids(self) -> None:
        """Catalogs written before chunk ids were AUTOINCREMENT get the table rebuilt with it (ids kept)."""
        sql = self.db.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='chunks'").fetchone()[0]
        if "AUTOINCREMENT" in sql.upper():
            return
        with self.transaction() as db:
            db.execute("ALTER TABLE chunks RENAME TO chunks_before_autoincrement")
            create = SCHEMA.split("CREATE TABLE IF NOT EXISTS chunks(", 1)[1].split(");", 1)[0]
            db.execute(f"CREATE TABLE chunks({create})")
            db.execute("INSERT INTO chunks SELECT * FROM chunks_before_autoincrement")
            db.execute("DROP TABLE chunks_before_autoincrement")
            db.execute("CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id, chunk_no)")

    def _add_description_column(self) -> None:
        """Catalogs written before documents had descriptions get the column (empty)."""
        exists = self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='files'").fetchone()
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(files)")}
        if exists and "description" not in columns:
            self.db.execute("ALTER TABLE files ADD COLUMN description TEXT NOT NULL DEFAULT ''")

    def rebuild_fts(self) -> None:
        """Re-tokenize every chunk and description into the FTS tables (after a tokenizer change)."""
        with self.transaction() as db:
            db.execute("DELETE FROM chunks_fts")
            db.execute("DELETE FROM files_fts")
            rows = db.execute("SELECT c.id, f.description, c.title_path, c.text FROM chunks c JOIN files f ON f.id = c.file_id").fetchall()
            db.executemany(
                "INSERT INTO chunks_fts(rowid, tokens) VALUES(?, ?)",
                [(r[0], _fts_text(r[1], json.loads(r[2]), r[3])) for r in rows],
            )
            files = db.execute("SELECT id, description FROM files WHERE description != ''").fetchall()
            db.executemany("INSERT INTO files_fts(rowid, tokens) VALUES(?, ?)", [(r[0], " ".join(name_tokens(r[1]))) for r in files])
            self.set_meta("tokenizer", TOKENIZER_VERSION, db)

    @property
    def closed(self) -> str | None:
        """Why the catalog was closed (None while it is open)."""
        return self._closed

    def close(self, why: str = "") -> None:
        """Close every connection no call is using now; one in use is closed by its thread when that
        call ends (closing a connection another thread runs a statement on crashed the process).
        Later calls fail with KnowledgeBaseError(why)."""
        self._closed = why or "the knowledge base was closed: open it again (KnowledgeBase.open)"
        with self._connections_lock:
            idle = [i for i in self._connections if not self._busy.get(i)]
            for ident in idle:
                self._connections.pop(ident).close()
        if threading.get_ident() in idle:
            self._local.conn = None

    def release_idle(self) -> int:
        """Close the connections no call is using now, leaving the catalog open: each thread opens
        its own again at its next call (a server that holds many knowledge bases for its many threads
        keeps its open files bounded). How many were closed."""
        with self._connections_lock:
            idle = [self._connections.pop(i) for i in list(self._connections) if not self._busy.get(i)]
        for conn in idle:
            conn.close()
        return len(idle)

    @contextmanager
    def _using(self) -> Iterator[None]:
        """Marks a call of this thread as running on its connection (every public method and
        transaction() go through it): close() leaves the connection to the call, which closes it
        as it ends."""
        ident = threading.get_ident()
        with self._connections_lock:
            self._busy[ident] = self._busy.get(ident, 0) + 1
        try:
            yield
        finally:
            conn = None
            with self._connections_lock:
                left = self._busy.pop(ident) - 1
                if left:
                    self._busy[ident] = left
                elif self._closed is not None:
                    conn = self._connections.pop(ident, None)
            if conn is not None:
                self._local.conn = None
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write, all or nothing; one writing thread at a time in this process."""
        with self._using(), self._writer:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                db.execute("COMMIT")

    # --- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        (db or self.db).execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, str(value)))

    def generation(self) -> int:
        return int(self.get_meta("generation", "0") or 0)

    def flush(self) -> None:
        """Nothing to do: each commit is durable and indexed when it returns."""

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """A read of several steps (a search): nothing to pin here, each statement reads the database
        as it is; its connection is in use throughout."""
        with self._using():
            yield

    def follow_folder(self, folder: Path) -> int:
        """Files kept inside the knowledge base's folder (its uploads) are recorded by absolute path: when
        the folder was moved, copied or restored elsewhere, their paths are rewritten to the new place,
        once (the folder's path is kept in meta). A folder reachable at two paths at once (two mounts of
        one disk) changes nothing. Returns how many paths were rewritten."""
        here = str(folder.resolve())
        known = self.get_meta("folder")
        recorded = known or self._folder_of_uploads(here)
        if known == here or (recorded is not None and recorded != here and _same_folder(recorded, here)):
            return 0
        moved = 0
        with self.transaction() as db:
            if recorded is not None and recorded != here:
                old, new = recorded.rstrip(os.sep) + os.sep, here.rstrip(os.sep) + os.sep
                for file_id, path in db.execute("SELECT id, path FROM files WHERE substr(path, 1, ?) = ?", (len(old), old)).fetchall():
                    target = new + path[len(old) :]
                    if known is None and not os.path.exists(target):
                        continue  # a folder read off an upload's path is a guess: only what came along moves
                    moved += db.execute("UPDATE OR IGNORE files SET path=? WHERE id=?", (target, file_id)).rowcount
            self.set_meta("folder", here, db)
        return moved

    def _folder_of_uploads(self, here: str) -> str | None:
        """Where a catalog written before meta 'folder' was kept, read off the first file uploaded into
        it (<home>/kbs/<name>/uploads/...) that is now in this folder's uploads (the knowledge base's
        folder may have been renamed too)."""
        marker = f"{os.sep}uploads{os.sep}"
        for (path,) in self.db.execute("SELECT path FROM files WHERE instr(path, ?) > 0 ORDER BY id", (marker,)):
            folder = path[: path.rindex(marker)]
            if Path(folder).parent.name == "kbs" and os.path.exists(here + path[len(folder) :]):
                return folder
        return None

    # --- files ----------------------------------------------------------------------------
    def file(self, path: str) -> FileRow | None:
        row = self.db.execute("SELECT * FROM files WHERE path=?", (path,)).fetchone()
        return FileRow(**dict(row)) if row else None

    def files_with_hash(self, sha256: str) -> list[FileRow]:
        """The files ingested with this content, from any folder."""
        return [FileRow(**dict(r)) for r in self.db.execute("SELECT * FROM files WHERE sha256=?", (sha256,))]

    def move_file(self, file_id: int, old_path: str, path: str, *, name: str, size: int | None, mtime: float | None) -> int:
        """Record that a file at old_path now lives at path under name (its folder moved or was renamed),
        in one commit: its chunks, their ids and vectors stay as they are. Returns the commits made: 0
        when the entry is no longer at old_path or path has one already (another process was first)."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM files WHERE path=?", (path,)).fetchone():
                return 0
            if not db.execute("UPDATE files SET path=?, name=?, size=?, mtime=?, ingested_at=? WHERE id=? AND path=?",
                              (path, name, size, mtime, time.time(), file_id, old_path)).rowcount:  # recorded here now
                return 0
            self.set_meta("generation", self.generation() + 1, db)
        return 1

    def file_by_id(self, file_id: int) -> FileRow | None:
        row = self.db.execute("SELECT * FROM files WHERE id=?", (file_id,)).fetchone()
        return FileRow(**dict(row)) if row else None

    def files(self) -> list[FileRow]:
        return [FileRow(**dict(r)) for r in self.db.execute("SELECT * FROM files ORDER BY name")]

    def set_file_error(self, file_id: int, error: str | None) -> None:
        """Record why the last try to read a file failed (its last good version stays searchable)."""
        self.db.execute("UPDATE files SET error=? WHERE id=?", (error, file_id))

    def rename_file(self, file_id: int, name: str) -> None:
        self.db.execute("UPDATE files SET name=? WHERE id=?", (name, file_id))

    def identity(self) -> int | None:
        """What tells this knowledge base apart from one made again under its name: the file's inode."""
        try:
            return self.path.stat().st_ino
        except OSError:
            return None

    def file_chunks(self, file_id: int) -> tuple[list[NewChunk], dict[str, np.ndarray]]:
        """One file's chunks in order and their vectors (for moving a knowledge base to another store)."""
        rows = self.db.execute(
            'SELECT text, page, title_path, kind, start, "end", vector_key FROM chunks WHERE file_id=? ORDER BY chunk_no', (file_id,)
        ).fetchall()
        chunks = [NewChunk(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6]) for r in rows]
        return chunks, self.cached_vectors(list(dict.fromkeys(c.vector_key for c in chunks)))

    def chunk_ids_of(self, file_id: int) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE file_id=?", (file_id,))]

    def replace_file(
        self,
        *,
        path: str,
        name: str,
        sha256: str | None,
        size: int | None,
        mtime: float | None,
        status: str,
        error: str | None,
        pages: int | None,
        seconds: float,
        chunks: list[NewChunk],
        vectors: dict[str, np.ndarray],
        description: str = "",
    ) -> tuple[list[int], list[int]]:
        """Replace everything known of one file in one transaction; return (old ids, new ids)."""
        with self.transaction() as db:
            row = db.execute("SELECT id FROM files WHERE path=?", (path,)).fetchone()
            old_ids: list[int] = []
            old_keys: set[str] = set()
            if row:
                file_id = row[0]
                old = db.execute("SELECT id, vector_key FROM chunks WHERE file_id=?", (file_id,)).fetchall()
                old_ids, old_keys = [r[0] for r in old], {r[1] for r in old}
                db.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(i,) for i in old_ids])
                db.execute("DELETE FROM chunks WHERE file_id=?", (file_id,))
                db.execute("DELETE FROM files_fts WHERE rowid=?", (file_id,))
                db.execute(
                    "UPDATE files SET name=?, sha256=?, size=?, mtime=?, status=?, error=?, pages=?, chunks=?, seconds=?, ingested_at=?, "
                    "description=? WHERE id=?",
                    (name, sha256, size, mtime, status, error, pages, len(chunks), seconds, time.time(), description, file_id),
                )
            else:
                cur = db.execute(
                    "INSERT INTO files(path, name, sha256, size, mtime, status, error, pages, chunks, seconds, ingested_at, description) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                    (path, name, sha256, size, mtime, status, error, pages, len(chunks), seconds, time.time(), description),
                )
                file_id = int(cur.lastrowid or 0)
            if description:
                db.execute("INSERT INTO files_fts(rowid, tokens) VALUES(?, ?)", (file_id, " ".join(name_tokens(description))))
            db.executemany(
                "INSERT OR IGNORE INTO vectors(key, vector) VALUES(?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()],
            )
            new_ids: list[int] = []
            for n, c in enumerate(chunks):
                cur = db.execute(
                    'INSERT INTO chunks(file_id, chunk_no, page, title_path, kind, start, "end", text, vector_key) VALUES(?,?,?,?,?,?,?,?,?)',
                    (file_id, n, c.page, json.dumps(c.title_path, ensure_ascii=False), c.kind, c.start, c.end, c.text, c.vector_key),
                )
                chunk_id = int(cur.lastrowid or 0)
                new_ids.append(chunk_id)
                db.execute("INSERT INTO chunks_fts(rowid, tokens) VALUES(?, ?)", (chunk_id, c.words if c.words is not None else _fts_text(description, c.title_path, c.text)))
            gone = _forget_vectors(db, old_keys - {c.vector_key for c in chunks})
            self.set_meta("generation", self.generation() + 1, db)
        self._forgotten(gone)
        return old_ids, new_ids

    def remove_file(self, file_id: int, *, at: str | None = None) -> list[int] | None:
        """Remove a file's entry and chunks; returns the chunk ids removed. at: only while the entry is
        still recorded at that path (None when it is not: another process moved or removed it first)."""
        with self.transaction() as db:
            if at is not None and not db.execute("SELECT 1 FROM files WHERE id=? AND path=?", (file_id, at)).fetchone():
                return None
            held = db.execute("SELECT id, vector_key FROM chunks WHERE file_id=?", (file_id,)).fetchall()
            ids, keys = [r[0] for r in held], {r[1] for r in held}
            db.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(i,) for i in ids])
            db.execute("DELETE FROM chunks WHERE file_id=?", (file_id,))
            db.execute("DELETE FROM files_fts WHERE rowid=?", (file_id,))
            db.execute("DELETE FROM files WHERE id=?", (file_id,))
            gone = _forget_vectors(db, keys)
            self.set_meta("generation", self.generation() + 1, db)
        self._forgotten(gone)
        return ids

    def _forgotten(self, keys: list[str]) -> None:
        """Tell `forget` of vectors deleted here (after the commit); its failure costs a cache entry, not the change."""
        if keys and self.forget is not None:
            try:
                self.forget(keys)
            except Exception as exc:  # (kbqa's forget says its own failures; another's may not)
                log.warning("the vector cache kept %d vectors of deleted text (%s)", len(keys), exc)

    # --- vectors --------------------------------------------------------------------------
    def cached_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            q = f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})"
            for key, blob in self.db.execute(q, part):
                out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def all_chunk_vectors(self, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every chunk, in batches, for rebuilding a vector index."""
        cur = self.db.execute("SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.key = c.vector_key ORDER BY c.id")
        while rows := cur.fetchmany(batch):
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vecs

    def chunk_ids(self) -> np.ndarray:
        return np.array([r[0] for r in self.db.execute("SELECT id FROM chunks")], dtype=np.int64)

    def chunk_vectors(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the given chunks that still exist."""
        found: list[int] = []
        vecs: list[np.ndarray] = []
        for i in range(0, len(ids), 500):
            part = [int(x) for x in ids[i : i + 500]]
            q = f"SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.key = c.vector_key WHERE c.id IN ({','.join('?' * len(part))})"
            for chunk_id, blob in self.db.execute(q, part):
                found.append(int(chunk_id))
                vecs.append(np.frombuffer(blob, dtype=np.float32))
        return np.array(found, dtype=np.int64), (np.vstack(vecs) if vecs else np.zeros((0, 0), dtype=np.float32))

    def chunk_count(self) -> int:
        """Counted once per generation (every change of chunks makes a new one): a count over 1M rows
        costs ~6 ms, and a search asks for it."""
        generation = self.generation()
        if self._counted is None or self._counted[0] != generation:
            self._counted = (generation, int(self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]))
        return self._counted[1]

    # --- chunks and lexical search ----------------------------------------------------------
    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        out: dict[int, ChunkRow] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = (
                "SELECT c.id, c.file_id, f.name, f.path, c.chunk_no, c.page, c.title_path, c.kind, c.text, c.vector_key, f.description, "
                'c.start, c."end" '
                f"FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id IN ({','.join('?' * len(part))})"
            )
            for r in self.db.execute(q, part):
                out[r["id"]] = ChunkRow(
                    id=r["id"], file_id=r["file_id"], name=r["name"], path=r["path"], chunk_no=r["chunk_no"],
                    page=r["page"], title_path=json.loads(r["title_path"]), kind=r["kind"], text=r["text"],
                    vector_key=r["vector_key"], description=r["description"], start=r["start"], end=r["end"],
                )
        return out

    def following(self, chunk_id: int) -> ChunkRow | None:
        """The chunk after this one in its file (None at its end): what a heading or a lead-in
        sentence introduces."""
        row = self.db.execute(
            "SELECT n.id FROM chunks c JOIN chunks n ON n.file_id = c.file_id AND n.chunk_no = c.chunk_no + 1 WHERE c.id=?", (chunk_id,)
        ).fetchone()
        return self.chunks([row[0]]).get(row[0]) if row else None

    def neighbours(self, chunk_id: int, width: int) -> list[Neighbour]:
        """A chunk and up to `width` chunks on each side from the same file, page and section, of
        its own sort (table pieces with a table piece, other chunks with other chunks), in order:
        the material for widening a search hit."""
        me = self.db.execute("SELECT file_id, chunk_no, page, title_path, kind FROM chunks WHERE id=?", (chunk_id,)).fetchone()
        if me is None:
            return []
        rows = self.db.execute(
            'SELECT id, chunk_no, start, "end", text FROM chunks WHERE file_id=? AND chunk_no BETWEEN ? AND ? AND page IS ? AND title_path=? '
            f"AND kind {'=' if me['kind'] == 'table' else '!='} 'table' ORDER BY chunk_no",
            (me["file_id"], me["chunk_no"] - width, me["chunk_no"] + width, me["page"], me["title_path"]),
        )
        return [Neighbour(*r) for r in rows]

    def document_frequencies(self, words: list[str]) -> tuple[int, dict[str, int]]:
        """The number of chunks, and how many of them hold each word (words as query_tokens gives
        them): how rare a question's words are in this knowledge base."""
        db = self.db
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab USING fts5vocab(main, chunks_fts, row)")
        counts = {w: 0 for w in words}
        for word in counts:
            if word.isalnum():  # one FTS5 token: its count is in the vocabulary (as unicode61 keeps it: "zürich" as "zurich")
                row = db.execute("SELECT doc FROM temp.chunks_vocab WHERE term=?", (without_diacritics(word),)).fetchone()
                counts[word] = int(row[0]) if row else 0
            else:  # "3.11", "x.25": FTS5 holds it as a phrase of two tokens
                counts[word] = int(db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (_quoted(word),)).fetchone()[0])
        return self.chunk_count(), counts

    def holds_within(self, word: str) -> bool:
        """Whether the index holds this word inside a longer one, or as a word and the start of the next
        (销售部 in 销售部门, cut 销售 + 部门): for the rare word of a question that no chunk holds whole, as
        jieba cuts a document's text and a question's apart. One pass over the index's word list."""
        db = self.db
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab USING fts5vocab(main, chunks_fts, row)")
        if db.execute("SELECT 1 FROM temp.chunks_vocab WHERE instr(term, ?) > 0 LIMIT 1", (word,)).fetchone() is not None:
            return True
        for i in range(1, min(len(word), 12)):
            head, rest = word[:i], word[i:]
            if '"' in word or not db.execute("SELECT 1 FROM temp.chunks_vocab WHERE term = ?", (head,)).fetchone():
                continue
            if db.execute("SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT 1", (f'"{head} {rest}"*',)).fetchone():
                return True
        return False

    def lexical_search(self, query: str, k: int, file_ids: list[int] | None = None) -> list[tuple[int, float]]:
        """BM25 over the FTS5 table, optionally only in some files; (chunk id, bm25 score, higher = better)."""
        words = self._selective(query_tokens(query))
        if not words:
            return []
        match = " OR ".join(_quoted(w) for w in words)
        ranked = "SELECT rowid AS id, -bm25(chunks_fts) AS score FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY score DESC LIMIT ?"
        if not file_ids:
            return [(int(r[0]), float(r[1])) for r in self.db.execute(ranked, (match, k))]
        # within some files: the best of the whole ranking that are theirs (an FTS5 rowid filter
        # would score every match one by one: seconds instead of milliseconds)
        files = ",".join(str(int(i)) for i in file_ids)
        rows = self.db.execute(
            f"WITH ranked AS ({ranked}) SELECT ranked.id, ranked.score FROM ranked JOIN chunks c ON c.id = ranked.id "
            f"WHERE c.file_id IN ({files}) ORDER BY ranked.score DESC LIMIT ?",
            (match, max(k, LEXICAL_WITHIN_DEPTH), k),
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    def _selective(self, words: list[str]) -> list[str]:
        """The words to match: in a knowledge base of more than LARGE_KB chunks, a word held by more
        than COMMON_WORD of them is left out (the rarest word always stays). BM25 scores every chunk
        a matched word is in: "年" in 600,000 of 1M chunks cost half a second a question, and a word
        that common decides little (its idf is low; the dense search still reads the whole question)."""
        return selective_words(words, self.chunk_count(), self.document_frequencies)

    def named_files(self, query: str, most: float = 0.5) -> dict[int, float]:
        """Files whose description the question names, with how strongly: for each of the question's
        name words found in a description (in any form: "Best Buy" or "BESTBUY"), its idf among the
        described files, summed. A word in more than `most` of the descriptions names nothing
        ("form", "handbook" in a folder of handbooks)."""
        return {f: sum(words.values()) for f, words in self.named_words(query, most).items()}

    def named_words(self, query: str, most: float = 0.5) -> dict[int, dict[int, float]]:
        """What named_files sums: for each file, the question's name words its description holds (by
        their place among the question's name words) with their weights (see named_file_words)."""
        db = self.db
        described = int(db.execute("SELECT count(*) FROM files WHERE description != ''").fetchone()[0])
        if described < 2:
            return {}
        holders = lambda term: [int(r[0]) for r in db.execute("SELECT rowid FROM files_fts WHERE files_fts MATCH ?", (_quoted(term),))]  # noqa: E731
        return named_file_words(query, described, holders, most)

    def described_with(self, words: list[str], most: int = 20) -> dict[int, str]:
        """Up to `most` files whose descriptions hold all these name tokens (kbqa.store.tokenize.name_tokens),
        with their descriptions: the documents of a kind ("员工 手册") whatever their names."""
        if not words:
            return {}
        match = " AND ".join(_quoted(w) for w in dict.fromkeys(words))
        ids = [int(r[0]) for r in self.db.execute("SELECT rowid FROM files_fts WHERE files_fts MATCH ? LIMIT ?", (match, most))]
        q = f"SELECT id, description FROM files WHERE id IN ({','.join(str(i) for i in ids)})"
        return {int(r[0]): str(r[1]) for r in self.db.execute(q)} if ids else {}

    def file_chunk_ids(self, file_ids: list[int]) -> list[int]:
        q = f"SELECT id FROM chunks WHERE file_id IN ({','.join(str(int(i)) for i in file_ids)})"
        return [r[0] for r in self.db.execute(q)] if file_ids else []


LARGE_KB = 200_000  # chunks: above this, BM25 leaves out the commonest question words (Catalog._selective)
COMMON_WORD = 0.02  # ... those held by more than this share of the chunks
LEXICAL_WITHIN_DEPTH = 5000  # how deep in the whole BM25 ranking a search within some files looks


def _same_folder(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def selective_words(words: list[str], total: int, frequencies: Callable[[list[str]], tuple[int, dict[str, int]]]) -> list[str]:
    """The question's words BM25 matches in a knowledge base of `total` chunks (see Catalog._selective);
    frequencies(words) -> (chunks, chunks holding each word), asked only above LARGE_KB."""
    if total <= LARGE_KB or len(words) < 2:
        return words
    _, counts = frequencies(words)
    kept = [w for w in words if counts[w] <= COMMON_WORD * total]
    return kept or [min(words, key=lambda w: counts[w])]


def _held(method: Callable[..., Any]) -> Callable[..., Any]:
    """The method, marked in use while it runs (its class's _using()); a generator method for as
    long as it is iterated."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def iterated(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            with self._using():
                yield from method(self, *args, **kwargs)
        return iterated

    @functools.wraps(method)
    def called(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._using():
            return method(self, *args, **kwargs)
    return called


def hold_calls(cls: type, *unheld: str) -> None:
    """Wrap every public method of a catalog class in its _using() (close() then waits for the calls
    running and refuses later ones), but those named: close, and those that use _using() themselves."""
    for name, method in list(vars(cls).items()):
        if inspect.isfunction(method) and not name.startswith("_") and name not in ("close", *unheld):
            setattr(cls, name, _held(method))


hold_calls(Catalog, "transaction", "pinned", "identity", "flush", "release_idle")  # every public method that reads or writes


def named_file_words(question: str, described: int, holders: Callable[[str], list[int]], most: float) -> dict[int, dict[int, float]]:
    """For each file, the question's name words its description holds (name_terms; holders(term):
    the described files holding it), by their place among the question's name words, each weighted
    by its idf among the described files; a word held by more than `most` of them names nothing. One
    word found in two forms counts once (its best weight). Of a run of Chinese name words (name_runs),
    a description must hold at least half the run's characters for its words to count, or its first
    LEADING_NAME characters: "哈尔滨电气国际工程有限责任公司" does not name the report of
    "东北电气发展股份有限公司" by their shared 电气, 有限 and 公司 (it did, and that report's chunks were
    put before the notice about the company the question names), while "蓝海集团差旅报销期限" names
    蓝海集团's handbook (it named nothing: 4 of its 10 characters), also beside 京东集团's, whose 集团 is then
    too common to weigh but still spells the name's first characters ("蓝海集团每月几号发工资？" named
    nothing, and 京东集团's payday was quoted for it: found by review)."""
    covered: dict[int, dict[int, float]] = {}  # file id -> question word -> its best weight
    spelled: dict[int, set[int]] = {}  # file id -> the places of the question's name words it holds, common ones too (集团)
    for term, positions in name_terms(question):
        files = holders(term)
        for file_id in files:
            spelled.setdefault(file_id, set()).update(positions)
        if not files or len(files) > most * described:
            continue
        weight = math.log(described / len(files))
        for file_id in files:
            mine = covered.setdefault(file_id, {})
            for p in positions:
                mine[p] = max(mine.get(p, 0.0), weight)
    for run in name_runs(question):
        whole = _characters(run.values())
        first = min(start for start, _ in run.values())
        for file_id, mine in covered.items():  # (a word too common to name a file still spells its name: 集团 of 蓝海集团 beside 京东集团)
            held = {i for p, (start, end) in run.items() if p in mine or p in spelled[file_id] for i in range(start, end)}
            if 2 * len(held) < whole and not all(first + k in held for k in range(LEADING_NAME)):
                for p in run:
                    mine.pop(p, None)
    return {f: words for f, words in covered.items() if words}


# a description that holds the first this many characters of a run of Chinese name words names it
# however long the run: the name, then what is asked of it, written together ("蓝海集团差旅报销期限是多久？")
LEADING_NAME = 4


def _characters(spans: Iterable[tuple[int, int]]) -> int:
    """How many characters the spans cover together."""
    return len({i for start, end in spans for i in range(start, end)})


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _fts_text(description: str, title_path: list[str], text: str) -> str:
    """What BM25 indexes for a chunk (a module-level name: benchmarks/retrieval.py --scale memoises it)."""
    return index_words(description, title_path, text)
