"""The whole knowledge base in Milvus (store.backend: milvus), so that servers keep no local state.

One knowledge base is three collections, named from the KB's name (`collection_prefix`):
- `<prefix>_chunks`: one row a chunk: its text, file, page, title path, kind, the dense vector, and
  `lexical`, the words BM25 indexes (the document's description, the title path and the text, cut into
  words by kbqa's own analyzer, store.tokenize: jieba for Chinese, Snowball stems for English, the same
  words as the embedded store's FTS5 table). Milvus' BM25 function turns `lexical` into the sparse
  vector `sparse` and ranks with it; its "standard" analyzer only splits the prepared words again.
- `<prefix>_files`: one row a file: path, name, sha256, status, error, chunk count, description.
- `<prefix>_meta`: key -> value: embedding model and dimension, the generation, when the KB was made.

Ids are derived, never counted: a file's id from its path, a chunk's from the file's path, its version
and the chunk's position. A version is the content's hash and how many times that content was committed
before (`_next_version`), so a re-run after a crash writes the same version and upserts what it wrote
before instead of duplicating it, and re-reading an unchanged file (a forced re-ingest) writes new rows
beside the ones still shown. Milvus has no transactions across rows, so a file is replaced in three
steps: its new chunks are upserted under the new version, then the file's row names that version (the
commit), then the version it replaced is deleted (and rows of any other version once they are an hour
old: a crashed attempt, or a writer elsewhere that lost a race for the same file). Readers take only
chunks whose version is their file's, so a crash between the steps shows the file as it was before, and
the next ingest of that file finishes the job. The generation (a random number written after each change) tells other processes that
something changed; nothing else is kept in memory that a change could make stale, beyond the file list,
re-read when the generation moves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kbqa.errors import KnowledgeBaseError
from kbqa.store.catalog import ChunkRow, FileRow, Neighbour, NewChunk, hold_calls, named_file_words, selective_words
from kbqa.store.tokenize import index_words, name_tokens, query_tokens

MAX_RESULTS = 16_384  # Milvus' most results of one search or query
TEXT_BYTES = 65_535  # Milvus' longest VARCHAR
CONSISTENCY = "Strong"  # every read sees every write before it (Milvus' default, Bounded, may lag: another server's commit unseen for a moment)
QUERY_BATCH = 4096  # rows per page when reading a whole collection
MAX_PREFIX = 240  # Milvus' collection names: 255 characters, "_chunks" included
SWEEP_AFTER_S = 3600  # rows of a file's versions that are neither current nor being written are deleted after this
_DUMMY = "_v"  # Milvus wants a vector field in every collection; files and meta carry a 2-d zero one
_NAME = re.compile(r"[A-Za-z0-9_]+")


def collection_prefix(name: str) -> str:
    """Collection names for a KB name: Milvus allows letters, digits and '_', so any other name (Chinese,
    '-', '.') is written in hex, and one too long for Milvus' 255 characters as a hash (its name is kept
    in its meta collection); the three forms cannot meet ("kbqa_n_", "kbqa_x_", "kbqa_h_")."""
    if _NAME.fullmatch(name):
        prefix = f"kbqa_n_{name}"
    else:
        prefix = f"kbqa_x_{name.encode('utf-8').hex()}"
    if len(prefix) > MAX_PREFIX:
        prefix = f"kbqa_h_{hashlib.sha256(name.encode('utf-8')).hexdigest()[:48]}"
    return prefix


def name_of(prefix: str, client: Any = None) -> str | None:
    if prefix.startswith("kbqa_h_") and client is not None:
        rows = client.get(f"{prefix}_meta", ids=["name"], output_fields=["value"])
        return str(rows[0]["value"]) if rows else None
    if prefix.startswith("kbqa_n_"):
        return prefix[7:]
    if prefix.startswith("kbqa_x_"):
        try:
            return bytes.fromhex(prefix[7:]).decode("utf-8")
        except ValueError:
            return None
    return None


def stable_id(*parts: str) -> int:
    """A positive 63-bit id from the parts (sha256): the same parts always give the same id."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def _fit(text: str, limit: int = TEXT_BYTES) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


class StoreUnavailable(RuntimeError):
    """The Milvus store cannot be reached or opened; the message says what to do. `reason` is what
    happened without the store's address, for clients of a kbqa server."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


CONNECT_TIMEOUT_S = 15.0  # the default of store.milvus_connect_s: how long a server that is busy or restarting is tried (pymilvus: one try of 10 s)
CALL_TIMEOUT_S = 60.0  # the default of store.milvus_timeout_s: how long one call may go unanswered (pymilvus: for ever)

_lite_users: dict[str, int] = {}  # Milvus Lite folder -> clients of this process open on it
_lite_lock = threading.Lock()
_lost_since: dict[str, float] = {}  # server URI -> when a refusal outlasted store.milvus_connect_s, until it answers again
_lost_lock = threading.Lock()
_connecting: dict[str, threading.Lock] = {}  # server URI -> held while a client of this process connects to it


def _found_lost(uri: str) -> None:
    with _lost_lock:
        _lost_since.setdefault(uri, time.monotonic())


def _found_answering(uri: str) -> None:
    with _lost_lock:
        _lost_since.pop(uri, None)


def _lost_for(uri: str) -> float | None:
    """Seconds since this process found the server at uri lost (None: it is not known lost). Every
    connection of the process shares it: a request, or an upload's clean-up, that meets a server
    found lost a moment ago by another connection fails at its first refusal instead of waiting again."""
    with _lost_lock:
        since = _lost_since.get(uri)
    return None if since is None else time.monotonic() - since


def connect(uri: str, token: str = "", timeout_s: float = CALL_TIMEOUT_S, connect_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A MilvusClient for a server URI (http://host:19530) or a Milvus Lite data folder (a path ending
    in .db; token: "user:password" or an API key, for a server with authentication), with a clear error
    when Lite's folder is held by another process. Hand it back with
    disconnect: the last client of a Lite folder stops its in-process server and frees the folder. Its
    calls to the server are bounded and a server lost on the way is said plainly (Guarded)."""
    # gRPC's C core prints keepalive notices (Milvus Lite's server asks for fewer pings) to stderr; pymilvus retries
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError as exc:
        raise StoreUnavailable("store.backend milvus needs: pip install 'kbqa[milvus]'") from exc
    for noisy in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)  # it logs every refused call as an error, with a traceback
    local = "://" not in uri
    if local:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    waits = _lost_for(uri) is None
    try:
        client = _client(MilvusClient, uri, token, local, connect_s)
    except MilvusException as exc:
        if local:
            raise StoreUnavailable(
                f"cannot open the Milvus Lite store {uri} ({exc.message}). Milvus Lite serves one process at a time: "
                f"to share it, run `milvus-lite server --data-dir {uri} --host 127.0.0.1 --port 19530` and set "
                "store.milvus_uri: http://127.0.0.1:19530 (KBQA_STORE__MILVUS_URI) in every kbqa process"
            ) from None
        if _accepts(uri):  # a stopped (SIGSTOP) or swamped server, or another program on that port: its kernel accepts, nothing answers
            raise StoreUnavailable(
                f"Milvus at {uri} accepts connections but did not answer ({_tried(uri, waits, connect_s)}): the server may be paused "
                "or overloaded, or another program listens there. Check the server, and the address given (store.milvus_uri, KBQA_STORE__MILVUS_URI, or kbqa kb migrate --uri)",
                reason=f"the Milvus store behind kbqa did not answer ({_tried(uri, waits, connect_s)}); its address is in the server's log",
            ) from None
        raise StoreUnavailable(
            f"cannot reach Milvus at {uri} ({_tried(uri, waits, connect_s)}): {exc.message}. "
            "Check that the server runs at the address given (store.milvus_uri, KBQA_STORE__MILVUS_URI, or kbqa kb migrate --uri)",
            reason=f"cannot reach the Milvus store behind kbqa ({_tried(uri, waits, connect_s)}); its address is in the server's log",
        ) from None
    if local:
        with _lite_lock:
            key = str(Path(uri).resolve())
            _lite_users[key] = _lite_users.get(key, 0) + 1
    return Guarded(client, uri, timeout_s, connect_s)


def _accepts(uri: str, timeout_s: float = 1.0) -> bool:
    """Whether something at the server URI's host and port accepts a TCP connection (told apart from
    nothing listening there, or no route, when a Milvus client could not connect)."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 19530)
        if not host:
            return False
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _client(make: Any, uri: str, token: str, local: bool, connect_s: float) -> Any:
    """A MilvusClient on a connection of its own. pymilvus shares one channel per address among a
    process's clients and keeps it after the last one closes, and gRPC shares TCP connections among
    channels: idle, their keepalive pings earn a GOAWAY (too_many_pings) from the server, and the next
    client on that connection failed at once with "Fail connecting to server" (a server process opening
    a store after a pause). A server is tried again for connect_s: one that restarts, or is
    busy, is waited for."""
    from pymilvus.exceptions import MilvusException

    options: dict[str, Any] = {"dedicated": True, "grpc_options": {"grpc.use_local_subchannel_pool": 1}}
    if token:
        options["token"] = token
    if local:
        return make(uri, **options)
    with _lost_lock:
        turn = _connecting.setdefault(uri, threading.Lock())
    with turn:  # (pymilvus' ConnectionManager makes one connection at a time, under its lock): the next learns whether this one found the server lost
        deadline = time.monotonic() + (0.0 if _lost_for(uri) is not None else connect_s)
        while True:
            try:
                client = make(uri, timeout=max(1.0, deadline - time.monotonic()), **options)
            except MilvusException:
                if time.monotonic() + 0.5 >= deadline:
                    _found_lost(uri)
                    raise
                time.sleep(0.5)
                continue
            _found_answering(uri)
            return client


def _tried(uri: str, waited: bool, connect_s: float) -> str:
    lost = _lost_for(uri)
    if waited or lost is None:
        return f"tried for {connect_s:g} s, store.milvus_connect_s"
    ago = "just now" if lost < 1 else f"{lost:.0f} s ago"
    return f"lost {ago} after {connect_s:g} s of tries, not waited for again until it answers"


# MilvusClient's calls that ask the server (the others build schemas and index parameters locally)
_CALLS = frozenset({"create_collection", "delete", "drop_collection", "flush", "get", "has_collection", "insert", "list_collections",
                    "load_collection", "query", "query_iterator", "search", "upsert"})
_ONCE = frozenset({"create_collection", "insert"})  # not asked again after a refusal: twice is not the same as once


class Guarded:
    """A MilvusClient whose calls to the server end. pymilvus waits for ever for a server that stopped
    answering (a stopped process, a network cut off), and a lost one surfaced as a traceback of its own
    (an ingest stopped with "MilvusException: Fail connecting to server" in a frame of pymilvus). Here
    each call has a deadline (timeout_s, store.milvus_timeout_s); a server that refuses the connection
    (it went down, or restarts) is asked again every 0.5 s for up to connect_s (store.milvus_connect_s), once per loss:
    after that, until it answers again, a call of any connection of this process (_lost_for) fails at its first refusal. A server that came back has
    the collections on disk but not loaded: one is loaded again and the call asked again. Otherwise the caller gets
    StoreUnavailable, which every face says plainly. The calls retried are idempotent (upserts and
    deletes by id or version, reads): a write that reached the server before its answer was lost
    is written again, the same; an insert or a collection's creation is not retried."""

    def __init__(self, client: Any, uri: str, timeout_s: float, connect_s: float = CONNECT_TIMEOUT_S) -> None:
        self._client, self._uri, self._timeout_s, self._connect_s = client, uri, timeout_s, connect_s

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in _CALLS or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", self._timeout_s)
            deadline = time.monotonic() + self._connect_s
            reloaded, waits = False, _lost_for(self._uri) is None
            while True:
                try:
                    result = attr(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001  (pymilvus' and gRPC's errors; others go on as they are)
                    how = _lost(exc)
                    if how == "released" and not reloaded:  # a restarted server has its collections on disk, not loaded
                        reloaded = True
                        self.load_collection(args[0] if args else kwargs["collection_name"])  # (guarded: a lost server said plainly)
                        continue
                    if how in (None, "released"):
                        raise
                    if how == "refused" and _lost_for(self._uri) is None and name not in _ONCE and time.monotonic() + 0.5 < deadline:
                        time.sleep(0.5)
                        continue
                    if how == "refused" and name not in _ONCE:  # (an insert refused once is not a server waited for)
                        _found_lost(self._uri)
                    raise self.unavailable(how, exc, waits) from None
                _found_answering(self._uri)
                return _GuardedPages(result, self) if name == "query_iterator" else result

        return call

    def unavailable(self, how: str, exc: BaseException, waited: bool | None = None) -> StoreUnavailable:
        """waited: whether the call was asked again for connect_s (None: it is not asked again, a page of a query's results)."""
        if how == "silent":
            what = f"it did not answer within {self._timeout_s:g} s (store.milvus_timeout_s)"
        elif waited is None:
            what = "it could not be reached while results were read (not asked again)"
        else:
            what = f"it could not be reached ({_tried(self._uri, waited, self._connect_s)})"
        detail = getattr(exc, "message", "") or str(exc) or type(exc).__name__
        if callable(getattr(exc, "details", None)) and callable(getattr(exc, "code", None)):  # a gRPC error: its code and words, not its repr
            detail = f"{exc.code().name}: {exc.details()}"
        return StoreUnavailable(
            f"lost the Milvus store at {self._uri}: {what}: {detail}. What was written before is kept; check that the server "
            "runs and store.milvus_uri (KBQA_STORE__MILVUS_URI) names it, then try again (an ingest goes on where it stopped)",
            reason=f"lost the Milvus store behind kbqa: {what}; its address is in the server's log",
        )


class _GuardedPages:
    """A query iterator whose pages, read from the server one by one, fail as Guarded's calls do (not retried)."""

    def __init__(self, pages: Any, guard: Guarded) -> None:
        self._pages, self._guard = pages, guard

    def next(self) -> Any:
        try:
            return self._pages.next()
        except Exception as exc:  # noqa: BLE001
            how = _lost(exc)
            if how in (None, "released"):
                raise
            raise self._guard.unavailable(how, exc) from None

    def close(self) -> None:
        self._pages.close()


def _lost(exc: BaseException) -> str | None:
    """"refused" (the server cannot be reached), "silent" (it did not answer in time), "released" (a
    collection not loaded: the server restarted) or None (any other error: the server answered)."""
    import grpc
    from pymilvus.exceptions import MilvusException

    code: Any = None
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        code = exc.code()
    elif isinstance(exc, MilvusException):
        code = exc.code
        if code == 2:  # pymilvus' CONNECT_FAILED: its reconnection after a failed call failed
            return "refused"
        if code == 101:  # CollectionNotLoaded
            return "released"
        if "Retry timeout" in (exc.message or ""):
            return "silent"
    if code == grpc.StatusCode.UNAVAILABLE:
        return "refused"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "silent"
    return None


def disconnect(client: Any, uri: str) -> None:
    client.close()
    if "://" in uri:
        return
    key = str(Path(uri).resolve())
    with _lite_lock:
        _lite_users[key] = _lite_users.get(key, 1) - 1
        last = _lite_users[key] <= 0
        if last:
            _lite_users.pop(key)
    if last:
        from milvus_lite import server_manager_instance

        server_manager_instance.release_server(uri)


def list_names(uri: str, token: str = "", timeout_s: float = CALL_TIMEOUT_S, connect_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    client = connect(uri, token, timeout_s, connect_s)
    try:
        names = {name_of(c[: -len("_meta")], client) for c in client.list_collections() if c.endswith("_meta")}
        return sorted(n for n in names if n)
    finally:
        disconnect(client, uri)


class MilvusCatalog:
    """The catalog and both searches of one knowledge base, all in Milvus: the same methods as the
    SQLite Catalog (kbqa.store.catalog), so the ingest pipeline and the retriever work on either."""

    def __init__(self, uri: str, name: str, *, create: bool = True, token: str = "", timeout_s: float = CALL_TIMEOUT_S,
                 connect_s: float = CONNECT_TIMEOUT_S) -> None:
        self.uri = uri
        self.name = name
        self._closed: str | None = None  # why it was closed (close(why)): later calls say so
        self._running = 0  # calls running now (see _using): the client is disconnected after the last
        self._state = threading.Lock()
        self._client: Any = connect(uri, token, timeout_s, connect_s)
        prefix = collection_prefix(name)
        self.chunks_c, self.files_c, self.meta_c = f"{prefix}_chunks", f"{prefix}_files", f"{prefix}_meta"
        self._writer = threading.RLock()
        self._pin = threading.local()  # the generation pinned by pinned() in this thread
        self._files: tuple[int, list[FileRow], dict[int, str]] | None = None  # (generation, rows, version by file id): read once per generation
        self._names: tuple[int, int, dict[str, list[int]]] | None = None  # (generation, described files, word -> their ids)
        self._have_chunks = False
        try:
            if not self.client.has_collection(self.meta_c):  # the meta collection is made last: it says the KB exists
                if not create:
                    raise FileNotFoundError(f"no knowledge base {name!r} in Milvus at {uri}")
                if not self.client.has_collection(self.files_c):  # (a creation cut short may have left it)
                    self._create_small(self.files_c, self._files_schema())
                self._create_small(self.meta_c, self._meta_schema())
                self.set_meta("name", name)
                self.set_meta("created", secrets.token_hex(8))
                self.set_meta("generation", 0)
            self._load(self.meta_c, self.files_c)
            self.opened_identity = self.identity()
        except BaseException:
            self.close()  # a Milvus Lite folder is freed when its last client goes
            raise

    @classmethod
    def exists(cls, uri: str, name: str, token: str = "", timeout_s: float = CALL_TIMEOUT_S, connect_s: float = CONNECT_TIMEOUT_S) -> bool:
        client = connect(uri, token, timeout_s, connect_s)
        try:
            return bool(client.has_collection(f"{collection_prefix(name)}_meta"))
        finally:
            disconnect(client, uri)

    def drop(self) -> None:
        """Delete the knowledge base: its meta collection first, so it stops existing in one step."""
        for collection in (self.meta_c, self.files_c, self.chunks_c):
            if self.client.has_collection(collection):
                self.client.drop_collection(collection)

    @property
    def client(self) -> Any:
        """The Milvus client; once the catalog is closed, KnowledgeBaseError (a call running then
        fails at its next request to Milvus, cleanly)."""
        if self._closed is not None:
            raise KnowledgeBaseError(self._closed)
        return self._client

    @property
    def closed(self) -> str | None:
        """Why the catalog was closed (None while it is open)."""
        return self._closed

    def close(self, why: str = "") -> None:
        """Later calls fail with KnowledgeBaseError(why); the client is disconnected now, or by the
        last call running when it ends (one disconnected under a running request failed inside pymilvus)."""
        with self._state:
            self._closed = self._closed or why or "the knowledge base was closed: open it again (KnowledgeBase.open)"
            client, self._client = (self._client, None) if self._running == 0 else (None, self._client)
        if client is not None:
            disconnect(client, self.uri)

    @contextmanager
    def _using(self) -> Iterator[None]:
        """Marks a call as running (every public method and pinned() go through it): close() leaves
        the client to the calls running, and the last of them disconnects it as it ends."""
        with self._state:
            self._running += 1
        try:
            yield
        finally:
            with self._state:
                self._running -= 1
                client = None
                if self._running == 0 and self._closed is not None:
                    client, self._client = self._client, None
            if client is not None:
                disconnect(client, self.uri)

    # --- collections -----------------------------------------------------------------------
    def _load(self, *collections: str) -> None:
        for c in collections:
            if self.client.has_collection(c):
                self.client.load_collection(c)

    def _create_small(self, collection: str, schema: Any) -> None:
        index = self.client.prepare_index_params()
        index.add_index(_DUMMY, index_type="FLAT", metric_type="L2")
        self.client.create_collection(collection, schema=schema, index_params=index, consistency_level=CONSISTENCY)

    def _files_schema(self) -> Any:
        from pymilvus import DataType

        s = self.client.create_schema(auto_id=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        for field, length in (("path", 4096), ("name", 4096), ("sha256", 128), ("status", 32), ("error", 8192),
                              ("description", 8192), ("version", 64)):
            s.add_field(field, DataType.VARCHAR, max_length=length)
        for field in ("size", "pages", "chunks"):
            s.add_field(field, DataType.INT64)
        for field in ("mtime", "seconds", "ingested_at"):
            s.add_field(field, DataType.DOUBLE)
        s.add_field(_DUMMY, DataType.FLOAT_VECTOR, dim=2)
        return s

    def _meta_schema(self) -> Any:
        from pymilvus import DataType

        s = self.client.create_schema(auto_id=False)
        s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=128)
        s.add_field("value", DataType.VARCHAR, max_length=TEXT_BYTES)
        s.add_field(_DUMMY, DataType.FLOAT_VECTOR, dim=2)
        return s

    def _ensure_chunks(self, dim: int) -> None:
        if self._have_chunks or self.client.has_collection(self.chunks_c):
            self._have_chunks = True
            return
        from pymilvus import DataType, Function, FunctionType

        s = self.client.create_schema(auto_id=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        for field in ("file_id", "chunk_no", "page", "start", "end"):
            s.add_field(field, DataType.INT64)
        s.add_field("version", DataType.VARCHAR, max_length=64)
        s.add_field("written", DataType.INT64)
        s.add_field("kind", DataType.VARCHAR, max_length=32)
        s.add_field("vector_key", DataType.VARCHAR, max_length=64)
        s.add_field("title_path", DataType.VARCHAR, max_length=TEXT_BYTES)
        s.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES)
        s.add_field("lexical", DataType.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True, analyzer_params={"tokenizer": "standard"})
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["lexical"], output_field_names=["sparse"]))
        index = self.client.prepare_index_params()
        index.add_index("dense", index_type="FLAT", metric_type="IP")  # a server install may choose HNSW/IVF: see README
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        for field in ("file_id", "vector_key"):  # a file's chunks, a text's vector: found without reading every row
            index.add_index(field, index_type="INVERTED")
        self.client.create_collection(self.chunks_c, schema=s, index_params=index, consistency_level=CONSISTENCY)
        self._load(self.chunks_c)
        self._have_chunks = True

    def _chunks_exist(self) -> bool:
        if not self._have_chunks and self.client.has_collection(self.chunks_c):
            self._load(self.chunks_c)
            self._have_chunks = True
        return self._have_chunks

    def flush(self) -> None:
        """Seal what was written into indexed segments (the ingest calls it every 30 s and at its end): rows
        still in Milvus' write buffer are searched one by one (Milvus Lite: 130 ms a search at 50k chunks
        after a flush, 2.9 s before one)."""
        for collection in (self.chunks_c, self.files_c):
            if self.client.has_collection(collection):
                self.client.flush(collection)

    # --- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.client.get(self.meta_c, ids=[key], output_fields=["value"])
        return str(rows[0]["value"]) if rows else default

    def set_meta(self, key: str, value: Any, db: Any = None) -> None:
        self.client.upsert(self.meta_c, [{"key": key, "value": _fit(str(value)), _DUMMY: [0.0, 0.0]}])

    def generation(self) -> int:
        pinned = getattr(self._pin, "generation", None)
        return pinned if pinned is not None else int(self.get_meta("generation", "0") or 0)

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Within this block this thread reads the generation once (a search asks for it at every step:
        each ask a round trip to Milvus); a change made meanwhile is seen by the next search."""
        with self._using():
            if getattr(self._pin, "generation", None) is not None:
                yield
                return
            self._pin.generation = int(self.get_meta("generation", "0") or 0)
            try:
                yield
            finally:
                self._pin.generation = None

    def _changed(self) -> None:
        self.set_meta("generation", secrets.randbits(62))

    def identity(self) -> str | None:
        """What tells this knowledge base apart from one made again under its name; None once dropped."""
        try:
            return self.get_meta("created")
        except Exception:  # noqa: BLE001  (pymilvus' errors for a collection that is gone, or a server that is)
            return None

    # --- files ----------------------------------------------------------------------------
    def files(self) -> list[FileRow]:
        return self._snapshot()[1]

    def _snapshot(self) -> tuple[int, list[FileRow], dict[int, str]]:
        """The file list and each file's current version, as of the store's generation now."""
        generation = self.generation()
        held = self._files
        if held is None or held[0] != generation:
            found = self._query_all(self.files_c, "", [*_FILE_FIELDS, "version"])
            rows = sorted((_file_row(r) for r in found), key=lambda r: r.name)
            held = self._files = (generation, rows, {int(r["id"]): str(r["version"]) for r in found})
        return held

    def _file_map(self) -> dict[int, FileRow]:
        return {r.id: r for r in self.files()}

    def _versions(self) -> dict[int, str]:
        return self._snapshot()[2]

    def file(self, path: str) -> FileRow | None:
        rows = self.client.get(self.files_c, ids=[stable_id(path)], output_fields=_FILE_FIELDS)
        return _file_row(rows[0]) if rows else None

    def file_by_id(self, file_id: int) -> FileRow | None:
        rows = self.client.get(self.files_c, ids=[int(file_id)], output_fields=_FILE_FIELDS)
        return _file_row(rows[0]) if rows else None

    def set_file_error(self, file_id: int, error: str | None) -> None:
        self._update_file(file_id, error=_fit(error or "", 8192))

    def rename_file(self, file_id: int, name: str) -> None:
        self._update_file(file_id, name=_fit(name, 4096))

    def _update_file(self, file_id: int, **changes: Any) -> None:
        with self._writer:
            rows = self.client.get(self.files_c, ids=[int(file_id)], output_fields=_FILE_FIELDS + ["version"])
            if rows:
                self.client.upsert(self.files_c, [{**_plain(rows[0]), **changes, _DUMMY: [0.0, 0.0]}])
                self._changed()

    def chunk_ids_of(self, file_id: int) -> list[int]:
        if not self._chunks_exist():
            return []
        return [int(r["id"]) for r in self._query_all(self.chunks_c, f"file_id == {int(file_id)}", ["id"])]

    def replace_file(
        self, *, path: str, name: str, sha256: str | None, size: int | None, mtime: float | None, status: str,
        error: str | None, pages: int | None, seconds: float, chunks: list[NewChunk], vectors: dict[str, np.ndarray],
        description: str = "",
    ) -> tuple[list[int], list[int]]:
        """Replace everything known of one file (see the module's note on the three steps); return
        (old chunk ids, new chunk ids)."""
        file_id = stable_id(path)
        with self._writer:
            committed = self.client.get(self.files_c, ids=[file_id], output_fields=["sha256", "version"])
            old_version = str(committed[0]["version"]) if committed else ""
            version = _next_version(sha256 or "", committed[0] if committed else None)
            new_ids = [stable_id(path, version, str(n)) for n in range(len(chunks))]
            old_ids = self.chunk_ids_of(file_id)
            if chunks:
                self._ensure_chunks(len(next(iter(vectors.values()))))
                rows = [
                    {
                        "id": chunk_id, "file_id": file_id, "version": version, "chunk_no": n, "written": int(time.time()),
                        "page": -1 if c.page is None else int(c.page), "start": -1 if c.start is None else int(c.start),
                        "end": -1 if c.end is None else int(c.end), "kind": c.kind[:32], "vector_key": c.vector_key,
                        "title_path": _titles_json(c.title_path), "text": _fit(c.text),
                        "lexical": _fit(c.words if c.words is not None else index_words(description, c.title_path, c.text)),
                        "dense": np.asarray(vectors[c.vector_key], dtype=np.float32).tolist(),
                    }
                    for n, (chunk_id, c) in enumerate(zip(new_ids, chunks))
                ]
                for start in range(0, len(rows), 500):
                    self.client.upsert(self.chunks_c, rows[start : start + 500])
            self.client.upsert(self.files_c, [{
                "id": file_id, "path": _fit(path, 4096), "name": _fit(name, 4096), "sha256": sha256 or "", "size": -1 if size is None else int(size),
                "mtime": -1.0 if mtime is None else float(mtime), "status": status, "error": _fit(error or "", 8192),
                "pages": -1 if pages is None else int(pages), "chunks": len(chunks), "seconds": float(seconds), "ingested_at": time.time(),
                "description": _fit(description, 8192), "version": version, _DUMMY: [0.0, 0.0],
            }])
            self._changed()  # before the old version goes: a reader's cached versions never hide both
            if self._chunks_exist():
                # the version this commit replaced goes now; rows of other versions (a crashed attempt, a
                # writer elsewhere that lost the race) once they are older than any write in progress
                gone = f'version == "{old_version}"' if old_version and old_version != version else "false"
                stale = f'(version != "{version}" and written < {int(time.time()) - SWEEP_AFTER_S})'
                self.client.delete(self.chunks_c, filter=f"file_id == {file_id} and ({gone} or {stale})")
        return [i for i in old_ids if i not in set(new_ids)], new_ids

    def remove_file(self, file_id: int, *, at: str | None = None) -> list[int] | None:
        """As Catalog.remove_file: at, only while the entry is still recorded at that path."""
        with self._writer:
            if at is not None and ((row := self.file_by_id(file_id)) is None or row.path != at):
                return None
            ids = self.chunk_ids_of(file_id)
            self.client.delete(self.files_c, ids=[int(file_id)])  # the commit: its chunks are nobody's now
            self._changed()
            if self._chunks_exist():
                self.client.delete(self.chunks_c, filter=f"file_id == {int(file_id)}")
        return ids

    def file_chunks(self, file_id: int) -> tuple[list[NewChunk], dict[str, np.ndarray]]:
        """One file's chunks in order and their vectors (for moving a knowledge base to another store)."""
        row = self.file_by_id(file_id)
        if row is None or not self._chunks_exist():
            return [], {}
        version = self._versions().get(int(file_id), "")
        found = self._query_all(self.chunks_c, f'file_id == {int(file_id)} and version == "{version}"',
                                ["chunk_no", "page", "title_path", "kind", "start", "end", "text", "vector_key", "dense"])
        found.sort(key=lambda r: int(r["chunk_no"]))
        chunks = [NewChunk(r["text"], _none(r["page"]), _titles(r["title_path"]), r["kind"], _none(r["start"]), _none(r["end"]), r["vector_key"])
                  for r in found]
        return chunks, {r["vector_key"]: np.asarray(r["dense"], dtype=np.float32) for r in found}

    # --- vectors --------------------------------------------------------------------------
    def cached_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Vectors of texts already in this knowledge base, by text hash (re-ingest embeds only new text)."""
        out: dict[str, np.ndarray] = {}
        if not keys or not self._chunks_exist():
            return out
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            quoted = ", ".join(f'"{k}"' for k in part if re.fullmatch(r"[0-9a-f]+", k))
            for r in self.client.query(self.chunks_c, filter=f"vector_key in [{quoted}]", output_fields=["vector_key", "dense"], limit=MAX_RESULTS):
                out[r["vector_key"]] = np.asarray(r["dense"], dtype=np.float32)
        return out

    def chunk_vectors(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        found: list[int] = []
        vecs: list[np.ndarray] = []
        if self._chunks_exist():
            for i in range(0, len(ids), 1000):
                for r in self._live(self.client.get(self.chunks_c, ids=[int(x) for x in ids[i : i + 1000]],
                                                    output_fields=["file_id", "version", "dense"])):
                    found.append(int(r["id"]))
                    vecs.append(np.asarray(r["dense"], dtype=np.float32))
        return np.array(found, dtype=np.int64), (np.vstack(vecs) if vecs else np.zeros((0, 0), dtype=np.float32))

    def chunk_count(self) -> int:
        """The chunks of the files as they are now (their rows' counts: no chunk is counted twice while
        a file is being replaced)."""
        return sum(r.chunks for r in self.files())

    def dense_search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not self._chunks_exist():
            return []
        hits = self.client.search(self.chunks_c, [np.asarray(query, dtype=np.float32).tolist()], anns_field="dense",
                                  limit=min(2 * k, MAX_RESULTS), search_params={"metric_type": "IP"}, output_fields=["file_id", "version"])[0]
        return [(int(h["id"]), float(h["distance"])) for h in self._live(hits)][:k]  # 2k: rows of a version being replaced take places

    # --- chunks and lexical search ----------------------------------------------------------
    def _live(self, rows: Any) -> list[dict[str, Any]]:
        """The rows (or search hits) of chunks that belong to their file's current version."""
        versions = self._versions() if rows else {}
        out = []
        for r in rows:
            entity = r.get("entity", r)
            if versions.get(int(entity["file_id"])) == entity["version"]:
                out.append({"id": r["id"], **entity, "distance": r.get("distance")})
        return out

    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        out: dict[int, ChunkRow] = {}
        if not ids or not self._chunks_exist():
            return out
        files = self._file_map()
        fields = ["file_id", "version", "chunk_no", "page", "title_path", "kind", "text", "vector_key", "start", "end"]
        for i in range(0, len(ids), 1000):
            for r in self._live(self.client.get(self.chunks_c, ids=[int(x) for x in ids[i : i + 1000]], output_fields=fields)):
                f = files.get(int(r["file_id"]))
                if f is None:
                    continue
                out[int(r["id"])] = ChunkRow(
                    id=int(r["id"]), file_id=f.id, name=f.name, path=f.path, chunk_no=int(r["chunk_no"]), page=_none(r["page"]),
                    title_path=_titles(r["title_path"]), kind=r["kind"], text=r["text"], vector_key=r["vector_key"], description=f.description,
                    start=_none(r["start"]), end=_none(r["end"]),
                )
        return out

    def following(self, chunk_id: int) -> ChunkRow | None:
        me = self.chunks([chunk_id]).get(int(chunk_id))
        if me is None:
            return None
        rows = self._live(self.client.query(
            self.chunks_c, filter=f"file_id == {me.file_id} and chunk_no == {me.chunk_no + 1}", output_fields=["id", "file_id", "version"], limit=MAX_RESULTS))
        return self.chunks([int(rows[0]["id"])]).get(int(rows[0]["id"])) if rows else None

    def neighbours(self, chunk_id: int, width: int) -> list[Neighbour]:
        me = self.chunks([chunk_id]).get(int(chunk_id))
        if me is None:
            return []
        rows = self._live(self.client.query(
            self.chunks_c, filter=f"file_id == {me.file_id} and chunk_no >= {me.chunk_no - width} and chunk_no <= {me.chunk_no + width}",
            output_fields=["id", "file_id", "version", "chunk_no", "page", "title_path", "kind", "start", "end", "text"], limit=MAX_RESULTS))
        table = me.kind == "table"
        same = [r for r in rows if _none(r["page"]) == me.page and _titles(r["title_path"]) == me.title_path and (r["kind"] == "table") == table]
        return [Neighbour(int(r["id"]), int(r["chunk_no"]), _none(r["start"]), _none(r["end"]), r["text"]) for r in sorted(same, key=lambda r: int(r["chunk_no"]))]

    def document_frequencies(self, words: list[str]) -> tuple[int, dict[str, int]]:
        """How many chunks hold each word: one BM25 search per word, counting its hits (a posting list's
        length; a word in more than MAX_RESULTS chunks counts as that many)."""
        counts = {w: 0 for w in words}
        if counts and self._chunks_exist():
            asked = [w for w in counts if w.strip()]
            hits = self.client.search(self.chunks_c, asked, anns_field="sparse", limit=MAX_RESULTS,
                                      search_params={"metric_type": "BM25"}, output_fields=["id"]) if asked else []
            counts.update({w: len(h) for w, h in zip(asked, hits)})
        return self.chunk_count(), counts

    def lexical_search(self, query: str, k: int, file_ids: list[int] | None = None) -> list[tuple[int, float]]:
        """Milvus' BM25 over the chunks' words; (chunk id, score, higher = better)."""
        words = self._selective(query_tokens(query))
        if not words or not self._chunks_exist():
            return []
        within = f"file_id in [{', '.join(str(int(i)) for i in file_ids)}]" if file_ids else ""
        hits = self.client.search(self.chunks_c, [" ".join(words)], anns_field="sparse", limit=min(2 * k, MAX_RESULTS), filter=within,
                                  search_params={"metric_type": "BM25"}, output_fields=["file_id", "version"])[0]
        return [(int(h["id"]), abs(float(h["distance"]))) for h in self._live(hits)][:k]  # Milvus Lite reports BM25 negated

    def _selective(self, words: list[str]) -> list[str]:
        """As Catalog._selective: above LARGE_KB chunks, words in more than COMMON_WORD of them are left out."""
        return selective_words(words, self.chunk_count(), self.document_frequencies)

    def named_files(self, query: str, most: float = 0.5) -> dict[int, float]:
        """As Catalog.named_files, over the file list's descriptions."""
        return {f: sum(words.values()) for f, words in self.named_words(query, most).items()}

    def named_words(self, query: str, most: float = 0.5) -> dict[int, dict[int, float]]:
        """As Catalog.named_words, over the file list's descriptions."""
        count, index = self._description_words()
        if count < 2:
            return {}
        return named_file_words(query, count, lambda term: index.get(term, []), most)

    def described_with(self, words: list[str], most: int = 20) -> dict[int, str]:
        """As Catalog.described_with, over the file list's descriptions."""
        _, index = self._description_words()
        held = [set(index.get(w, [])) for w in dict.fromkeys(words)]
        ids = sorted(set.intersection(*held))[:most] if held else []
        _, rows, _ = self._snapshot()
        return {r.id: r.description for r in rows if r.id in ids}

    def _description_words(self) -> tuple[int, dict[str, list[int]]]:
        """How many files are described, and each description word's files: cut once per generation."""
        generation, rows, _ = self._snapshot()
        if self._names is None or self._names[0] != generation:
            holders: dict[str, list[int]] = {}
            described = [r for r in rows if r.description]
            for r in described:
                for word in set(name_tokens(r.description)):
                    holders.setdefault(word, []).append(r.id)
            self._names = (generation, len(described), holders)
        return self._names[1], self._names[2]

    def file_chunk_ids(self, file_ids: list[int]) -> list[int]:
        if not file_ids or not self._chunks_exist():
            return []
        versions = self._versions()
        rows = self._query_all(self.chunks_c, f"file_id in [{', '.join(str(int(i)) for i in file_ids)}]", ["file_id", "version"])
        return [int(r["id"]) for r in rows if versions.get(int(r["file_id"])) == r["version"]]

    # --- reading everything ----------------------------------------------------------------
    def _query_all(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row that matches, however many (Milvus' query iterator: a plain query stops at MAX_RESULTS,
        and its pages come in no order to continue from)."""
        out: list[dict[str, Any]] = []
        batches = self.client.query_iterator(collection, batch_size=QUERY_BATCH, filter=expr, output_fields=list(dict.fromkeys(["id", *fields])))
        try:
            while rows := batches.next():
                out += rows
        finally:
            batches.close()
        return out

    def all_chunk_vectors(self, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        ids, vectors = self.chunk_vectors(self.file_chunk_ids([r.id for r in self.files()]))
        for i in range(0, len(ids), batch):
            yield ids[i : i + batch], vectors[i : i + batch]

    def chunk_ids(self) -> np.ndarray:
        return np.array(sorted(self.file_chunk_ids([r.id for r in self.files()])), dtype=np.int64)


hold_calls(MilvusCatalog, "pinned")


class MilvusDense:
    """The vector index of a Milvus-stored knowledge base: the chunks collection's dense field, written
    with the chunks by MilvusCatalog.replace_file; nothing is kept here or saved."""

    def __init__(self, catalog: MilvusCatalog, dim: int) -> None:
        self.catalog = catalog
        self.dim = dim

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        pass  # written with the chunks

    def remove(self, ids: list[int]) -> None:
        pass  # deleted with the chunks

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self.catalog.dense_search(query, k)

    def count(self) -> int:
        return self.catalog.chunk_count()

    def save(self, generation: int) -> None:
        self.catalog.flush()

    def saved_generation(self) -> int | None:
        return self.catalog.generation()

    def reset(self) -> None:
        pass

    def needs_rebuild(self) -> bool:
        return False

    def rebuild(self, batches: Any, **_: object) -> None:
        pass


_FILE_FIELDS = ["path", "name", "sha256", "size", "mtime", "status", "error", "pages", "chunks", "seconds", "ingested_at", "description"]


def _none(value: Any) -> Any:
    """Milvus has no NULL in these fields: -1 stands for it."""
    return None if value is None or value == -1 else value


def _titles_json(title_path: list[str]) -> str:
    """A title path as stored: each heading cut to 1,000 characters and at most 32 of them, so the JSON
    always fits the field whole."""
    return json.dumps([t[:1000] for t in title_path[-32:]], ensure_ascii=False)


def _titles(stored: str) -> list[str]:
    try:
        titles = json.loads(stored)
    except ValueError:
        return []
    return [str(t) for t in titles] if isinstance(titles, list) else []


def _next_version(sha256: str, committed: dict[str, Any] | None) -> str:
    """The version a file's new chunks are written under: from its content's hash and how many times
    that content was committed before ("2-<hash>": the third time, e.g. a forced re-read), so a re-run of
    an interrupted write uses the same version (and ids: an upsert, not a copy) while re-reading an
    unchanged file never overwrites the rows its committed version still shows."""
    passes = 0
    if committed is not None and committed.get("sha256") == sha256:
        head = str(committed.get("version", "")).split("-", 1)[0]
        passes = int(head) + 1 if head.isdigit() else 1
    return f"{passes}-{hashlib.sha256(sha256.encode('utf-8')).hexdigest()[:40]}"


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != _DUMMY}


def _file_row(r: dict[str, Any]) -> FileRow:
    return FileRow(
        id=int(r["id"]), path=r["path"], name=r["name"], sha256=r["sha256"] or None, size=_none(r["size"]), mtime=_none(r["mtime"]),
        status=r["status"], error=r["error"] or None, pages=_none(r["pages"]), chunks=int(r["chunks"]), seconds=r["seconds"],
        ingested_at=r["ingested_at"], description=r["description"],
    )
