"""The ingest pipeline: files and folders → parsed (in a helper process with a time limit, read ahead
of the file being embedded) → split → embedded in batches → committed to the knowledge base one file
at a time, with progress. Executor local (a thread and the helper process) or ray (parse tasks and
embedding actors, kbqa.cluster), with the same commits.

An IngestRun is one ingest, in one thread, into one KnowledgeBase: it reads the knowledge base's
catalog, and writes through the KnowledgeBase's own write methods (_commit, _move_entry, _prune),
which change the catalog and the vector index together."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import queue
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import Document, LoadError, LoadOptions, UnsupportedFile, load_file, split_documents, supported_suffixes
from ingest.context import SIDECAR, describe, sidecar_description
from ingest.textfacts import approx_tokens, is_numeric, labels, meaningful
from ingest.worker import LoaderProcess
from kbqa.errors import KnowledgeBaseError
from kbqa.kb import is_kb_file, is_missing
from kbqa.store import FileRow, NewChunk, sha256_file, text_key
from kbqa.store.claims import FileClaims
from kbqa.types import FileResult, IngestReport, Progress

if TYPE_CHECKING:
    from kbqa.config import Config
    from kbqa.kb import KnowledgeBase

log = logging.getLogger(__name__)


def excluded_by(path: str, exclude: list[str]) -> str | None:
    """The pattern of `exclude` that leaves out the file at `path` inside a folder given ("drafts/a.txt"),
    or None: a pattern with a "/" in it is matched against the path ("drafts/*"; "2023/" and "old/2023"
    leave out what is inside), the others against the names of the file and of each folder on the way
    (".*", "*.tmp", "drafts")."""
    parts = path.split("/")
    for pattern in exclude:
        if "/" in pattern:
            inside = pattern.strip("/")
            if fnmatch.fnmatch(path, inside) or not inside.endswith("*") and fnmatch.fnmatch(path, inside + "/*"):
                return pattern
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return pattern
    return None


def ingestable_files(paths: Iterable[str | Path], exclude: list[str], home: Path | None = None) -> Iterator[tuple[Path, str]]:
    """(absolute file, name shown to users) for every file under the given files and folders. The
    folder's own path is resolved (a folder reached through a link is recorded where it is), a file
    that is a symbolic link is recorded where the link is, not where it points: it belongs to this
    folder, and leaves it (pruned) when the link goes. Entries inside a folder that are no file to
    read (a FIFO, a socket, a link that leads nowhere) are yielded too: the ingest reports each one
    as failed, with why, instead of passing over it in silence. What `exclude` leaves out (excluded_by,
    on a file's path inside the folder given) is not yielded, nor kbqa's home (`home`: its knowledge bases and caches;
    found by review: a folder holding the home recorded the caches as documents)."""
    home = home.resolve() if home is not None else None
    for given in paths:
        root = Path(given).expanduser()
        if not root.exists():
            raise KnowledgeBaseError(f"{given} does not exist")
        if root.is_file():
            yield root.absolute().parent.resolve() / root.name, root.name
            continue
        base = root.resolve()
        if base == home:
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not any(fnmatch.fnmatch(d, p) for p in exclude)
                                 and (home is None or (Path(dirpath) / d).resolve() != home))
            a_kb = "catalog.sqlite" in filenames  # a knowledge base kept in this folder (--kb PATH): not its own files
            for fn in sorted(filenames):
                if fn == SIDECAR or a_kb and is_kb_file(Path(dirpath) / fn):
                    continue  # kbqa.yaml describes the files beside it; it is not one of them
                full = Path(dirpath) / fn
                shown = full.relative_to(root).as_posix()
                if excluded_by(shown, exclude):
                    continue
                yield base / full.relative_to(root), shown


PARSE_AHEAD = 2  # files parsed ahead of the one being embedded
# An ingest looks at whether it was cancelled (a server stopping, with 3 s of grace) after each batch it
# embeds: a batch is sized from the speed of the one before to take about EMBED_BATCH_S, at least
# EMBED_BATCH_MIN tokens (two of the embedder's 512-token runs: both cores busy). A fixed 4,096 tokens
# took 1.0-1.3 s on one machine and over 3 s on one a third as fast.
EMBED_BATCH_S = 0.8
EMBED_BATCH_MIN = 1024  # tokens, about (approx_tokens)
SAVE_EVERY_S = 30  # a long ingest saves its vector index this often (else once, at its end)


@dataclass
class _FilePlan:
    path: Path
    name: str
    sha: str = ""
    size: int = 0
    mtime: float | None = None
    given: str = ""
    stamp: tuple[int, int] | None = None  # (size, mtime in ns) when it was hashed: another after reading means it changed meanwhile
    result: FileResult | None = None  # known before reading: skipped or failed
    future: Future[list[Document]] | None = None


def _not_a_file(path: Path) -> str:
    """Why an entry found in a folder is no file to read ("" when it is one, or is gone: reading it
    says so)."""
    if path.is_symlink() and not path.exists():
        return "a symbolic link that leads nowhere (its target is missing, or links loop): left out"
    if path.exists() and not path.is_file():
        return "not a regular file (a FIFO, a socket or a device): left out"
    return ""


def _not_read(path: Path) -> bool:
    """A file of a kind kbqa does not read, by its suffix (one without a suffix may be text: it is looked at)."""
    return bool(path.suffix) and path.suffix.lower() not in supported_suffixes()


def _stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file now; None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _page_progress(pages: queue.SimpleQueue[Progress], n: int, total: int, name: str) -> Callable[[int, int], None]:
    return lambda page, count: pages.put(Progress("file", n, total, name, page=page, pages=count))


class _Cancelled(BaseException):
    """An ingest's cancelled() said stop (a BaseException: no file's own error handling catches it)."""


class _ReadAhead:
    """Files parsed in a thread (through the helper process, with its time limit) while the main
    thread embeds and commits the one before: on two cores, parsing and embedding overlap instead
    of taking turns. At most `ahead` files are parsed before their turn; skipped files cost nothing."""

    def __init__(self, loader: LoaderProcess | None, ahead: int, remote: Any = None) -> None:
        self.loader, self.ahead, self.remote = loader, ahead, remote  # remote: a kbqa.cluster.RayExecutor
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="kbqa-parse")

    def _read(self, path: Path, options: LoadOptions) -> list[Document]:
        return self.loader.load(path, options) if self.loader is not None else load_file(path, options)

    def _submit(self, path: Path, options: LoadOptions) -> Future[list[Document]]:
        if self.remote is not None:
            return self.remote.submit(path, options)  # type: ignore[no-any-return]
        return self.pool.submit(self._read, path, options)

    def run(self, plans: Iterable[_FilePlan], options: Callable[[_FilePlan, int], LoadOptions], start: int = 0) -> Iterator[tuple[int, _FilePlan]]:
        """(number, plan) in file order, numbered from start; plans to read are submitted up to `ahead` files early."""
        waiting: deque[tuple[int, _FilePlan]] = deque()
        for n, plan in enumerate(plans, start):
            if plan.result is None:
                plan.future = self._submit(plan.path, options(plan, n))
            waiting.append((n, plan))
            while sum(1 for _, p in waiting if p.future is not None) > self.ahead or (waiting and waiting[0][1].future is None):
                yield waiting.popleft()
        while waiting:
            yield waiting.popleft()

    def wait(self, plan: _FilePlan, meanwhile: Callable[[], object]) -> list[Document]:
        assert plan.future is not None
        while True:
            try:
                return plan.future.result(timeout=0.2)
            except FutureTimeout:
                meanwhile()
            except Exception as exc:
                if self.remote is None:
                    raise
                raise self.remote.failure(exc) from None  # the loader's own error, or a worker lost for good

    def close(self, interrupted: bool) -> None:
        if interrupted and self.loader is not None:
            self.loader.kill()  # the parsing thread's file fails at once; the thread ends
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.loader is not None:
            self.loader.close(wait=not interrupted)


def load_options(config: Config) -> LoadOptions:
    """How the loaders read files, from the ingest section of the config."""
    ingest = config.ingest
    return LoadOptions(
        pdf_engine=ingest.pdf_engine,
        pdf_tables=ingest.pdf_tables,
        ocr=ingest.ocr,
        ocr_engine=ingest.ocr_engine,
        ocr_dpi=ingest.ocr_dpi,
        ocr_model_dir=ingest.ocr_model_dir,
        ocr_layout=ingest.ocr_layout,
        ocr_angle=ingest.ocr_angle,
        ocr_workers=ingest.ocr_workers,
        max_file_mb=ingest.max_file_mb,
        max_memory_mb=ingest.max_reader_memory_mb,
    )


# the settings that shape what a file becomes (its text, its chunks, what is embedded): changed, every file is read again
SHAPING = ("ingest.chunk_size", "ingest.chunk_overlap", "ingest.length_unit", "ingest.pdf_engine", "ingest.pdf_tables", "ingest.ocr",
           "ingest.ocr_engine", "ingest.ocr_dpi", "ingest.ocr_layout", "ingest.ocr_angle", "embeddings.embed_overlap")


def ingest_shape(config: Config) -> dict[str, Any]:
    """The SHAPING settings' values."""
    return {key: getattr(getattr(config, key.split(".")[0]), key.split(".")[1]) for key in SHAPING}


def shape_change(before: str | None, now: dict[str, Any]) -> str:
    """What changed between the settings a knowledge base's files were read with (as stored) and now ("ingest.chunk_size:
    400 → 100"), or "" (nothing, or nothing stored: a knowledge base from before they were)."""
    import json

    try:
        then = json.loads(before) if before else None
    except ValueError:
        then = None
    if not isinstance(then, dict):
        return ""
    return ", ".join(f"{k}: {then[k]} → {now[k]}" for k in SHAPING if k in then and then[k] != now[k])


def embedding_texts(pieces: list[Any], description: str = "", skip_overlap: bool = True) -> list[tuple[NewChunk, str]]:
    """Each chunk to store, with the text its vector is made from: the document's description, the
    title path and a table's caption in front of the chunk's text, without the overlap already
    embedded with the chunk before (skip_overlap), table rules or empty cells; a chunk that is
    mostly figures is embedded as its labels (textfacts.labels)."""
    out: list[tuple[NewChunk, str]] = []
    for p in pieces:
        titles = p.title_path + ([p.meta["caption"]] if p.meta.get("caption") else [])
        title = " > ".join(titles)
        body = p.text[p.meta.get("fresh", 0) :].lstrip() if skip_overlap else p.text
        body = meaningful(body or p.text)
        if is_numeric(body):  # a table: its labels carry the meaning, its figures are for BM25 and the reader
            body = labels(body)
        text = f"{title}\n{body}" if title and not p.text.startswith(titles[-1]) else body
        if description:
            text = f"{description}\n{text}"
        out.append((NewChunk(p.text, p.page, titles, p.meta.get("kind", "text"), p.meta.get("start"), p.meta.get("end"), text_key(text)), text))
    return out


class IngestRun:
    """One ingest into a knowledge base, in the calling thread: force reads unchanged files again,
    progress(Progress) is told each step, and cancelled() is asked between files, while one is
    read, and between embedding batches: once true, the ingest stops as if interrupted."""

    def __init__(self, kb: KnowledgeBase, *, force: bool = False, progress: Callable[[Progress], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> None:
        self.kb, self.force, self.cancelled = kb, force, cancelled
        self.notify: Callable[[Progress], None] = progress or (lambda p: None)
        self.remote: Any = None  # a Ray ingest's executor (kbqa.cluster.RayExecutor) while it runs: it embeds the chunks

    def files(self, paths: str | Path | Iterable[str | Path], *, prune: bool = False) -> IngestReport:
        """Ingest files and folders (KnowledgeBase.ingest): unchanged files skipped, changed ones
        replaced, each committed on its own; prune removes the files under the given folders that are gone."""
        kb, force, cancelled, notify = self.kb, self.force, self.cancelled, self.notify
        config = kb.config
        started = time.perf_counter()
        report = IngestReport()
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        scanned = time.time()  # entries written after this were found by another ingest: not this one's to prune
        # a file given by itself is named by its path in uploads/ when it is kept there (_upload_name); a
        # folder's files by their paths in the folder
        files = [(path, name if "/" in name else kb._upload_name(path) or name) for path, name in ingestable_files(paths, config.ingest.exclude, config.home_dir())]
        notify(Progress("scan", 0, len(files)))
        kb.catalog.set_meta("embedding_model", config.embeddings.model)
        kb.catalog.set_meta("embedding_dim", kb.embedder.dim)
        shape = ingest_shape(config)
        report.reread = shape_change(kb.catalog.get_meta("ingest_shape"), shape) if files else ""
        if report.reread and not force:  # (found by review: a new chunk_size or --ocr left every file as it was, "4 skipped")
            force = True
        with self._deleted_if_dropped():
            index = kb.index  # open (or repair) the vector index before the first file
        options = load_options(config)
        last_save = time.monotonic()
        dirty = False
        timeout = config.ingest.file_timeout_s
        remote = self._ray_executor() if config.ingest.executor == "ray" and files else None
        loader = LoaderProcess(timeout) if timeout and files and remote is None else None  # a hung or crashing parser is stopped, not fatal
        pages: queue.SimpleQueue[Progress] = queue.SimpleQueue()  # page progress from the parsing thread, shown by this one
        show_pages = lambda: [notify(pages.get()) for _ in range(pages.qsize())]

        def meanwhile() -> None:
            show_pages()
            if cancelled is not None and cancelled():
                raise _Cancelled

        ahead = _ReadAhead(loader, PARSE_AHEAD if remote is None else 2 * len(remote.actors) + 2, remote)
        self.remote = remote
        # another ingest of this knowledge base (another process) holds the files it is reading: they
        # are come back to once this run's free files are done, and by then most often skipped
        claims = None
        if config.store.backend == "embedded":
            try:
                claims = FileClaims(kb.folder)
            except OSError as exc:  # a folder it cannot write: the ingest goes on, unshared (and fails at its first commit if it must)
                log.warning("cannot claim files in %s (%s): another ingest of this knowledge base may read the same files", kb.folder, exc)

        def planned(todo: list[tuple[Path, str]], held: list[tuple[Path, str]]) -> Iterator[_FilePlan]:
            for path, name in todo:
                if claims is not None and not claims.take(str(path)):
                    held.append((path, name))
                    continue
                # --force reads each file once: not again one that another ingest read since this one began
                plan = self._plan_file(path, name, force and not self._recorded_since(str(path), scanned))
                if plan.result is not None and claims is not None:
                    claims.release(str(path))
                yield plan

        try:
            todo, done = files, 0
            while todo:
                held: list[tuple[Path, str]] = []
                for n, plan in ahead.run(planned(todo, held), lambda plan, n: replace(options, on_page=_page_progress(pages, n, len(files), plan.name)),
                                         start=done):
                    if cancelled is not None and cancelled():
                        raise _Cancelled
                    notify(Progress("file", n, len(files), plan.name))
                    result = plan.result or self._store_source(
                        str(plan.path), plan.name, plan.sha, plan.size, plan.mtime, lambda: ahead.wait(plan, meanwhile), force,
                        filename=plan.path.name, given=plan.given, changed=lambda: _stamp(plan.path) != plan.stamp,
                    )
                    if claims is not None:
                        claims.release(str(plan.path))
                    if kb._dropped():
                        raise self._deleted()
                    show_pages()
                    report.files.append(result)
                    dirty = dirty or result.status not in ("skipped",)
                    if dirty and time.monotonic() - last_save > SAVE_EVERY_S:
                        with self._deleted_if_dropped():
                            kb._save_index(index, kb.catalog.generation())
                        last_save, dirty = time.monotonic(), False
                    notify(Progress("file", n + 1, len(files), plan.name, result))
                done += len(todo) - len(held)
                if len(held) == len(todo):  # every file left is being read by the other ingest: its turn
                    notify(Progress("held", done, len(files), str(len(held))))
                    for _ in range(5):
                        time.sleep(0.1)
                        meanwhile()
                todo = held
            # the settings are the knowledge base's once every file it holds was read with them (an interrupted run, or one
            # of some of its files -- an upload, `kbqa ingest a.txt` -- leaves them to the next run of all: found by review)
            read = {str(p) for p, _ in files}
            if files and all(row.path in read for row in kb.catalog.files()):
                import json

                kb.catalog.set_meta("ingest_shape", json.dumps(shape))
            gone = self._gone(paths, {str(p) for p, _ in files if p.is_file()}, before=scanned)  # a link left dangling: gone
            if prune:
                report.files.extend(FileResult(row.name, "removed", chunks=row.chunks) for row in kb._prune(gone))
            else:
                report.gone = [row.name for row in gone]
        except (KeyboardInterrupt, _Cancelled):
            report.interrupted = True
        finally:  # interrupted or failing: the files being parsed ahead are stopped, not waited for
            ahead.close(interrupted=report.interrupted or sys.exc_info()[0] is not None)
            if claims is not None:
                claims.close()
            self.remote = None
            if remote is not None:
                remote.close()
            with self._deleted_if_dropped():
                kb._sync_index()
        if kb._dropped():  # after the last file's check: what it reports went with the folder
            raise self._deleted()
        report.seconds = time.perf_counter() - started
        notify(Progress("done", len(files), len(files)))
        return report

    def _ray_executor(self) -> Any:
        """The Ray executor of this ingest (ingest.executor ray): parse tasks and embedding actors."""
        from kbqa.cluster import RayExecutor

        ingest = self.kb.config.ingest
        return RayExecutor(self.kb.config.embeddings, address=ingest.ray_address, workers=ingest.ray_workers,
                           timeout_s=ingest.file_timeout_s, cache_dir=self.kb.config.home_dir() / "cache" / "models")

    def _plan_file(self, path: Path, name: str, force: bool) -> _FilePlan:
        """What ingesting one file takes, decided before it is read: its hash and the user's words
        about it (kbqa.yaml), or already its result (unchanged: skipped; unreadable: failed)."""
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:  # bytes of another system's encoding in a name: not storable, not printable
            shown = os.fsencode(name).decode("utf-8", "backslashreplace")
            return _FilePlan(path, shown, result=FileResult(
                shown, "failed", error="its name (or its folder's) is not valid UTF-8: rename it (e.g. convmv -f GBK -t UTF-8)"))
        odd = _not_a_file(path)
        if odd:  # opening a FIFO to hash it would wait for a writer for good
            return _FilePlan(path, name, result=FileResult(name, "failed", error=odd))
        try:
            stat = path.stat()
            # a file that reading refuses unread (over ingest.max_file_mb; a kind kbqa does not read) is not hashed (found by
            # review: a 4 GB video in a docs folder was hashed on every ingest, 16 s, to be listed as unsupported)
            unread = stat.st_size > self.kb.config.ingest.max_file_mb * 1024 * 1024 or _not_read(path)
            sha = f"unread:{stat.st_size}:{stat.st_mtime_ns}" if unread else sha256_file(path)
        except OSError as exc:
            return _FilePlan(path, name, result=FileResult(name, "failed", error=f"cannot read file: {exc.strerror or exc}"))
        root = path.parents[len(Path(name).parts) - 1] if len(Path(name).parts) > 1 else path.parent
        try:
            given = sidecar_description(path, root)  # the user's own words (kbqa.yaml) about this file
        except LoadError as exc:
            return _FilePlan(path, name, result=FileResult(name, "failed", error=str(exc)))
        if given:  # editing kbqa.yaml re-ingests the files it describes
            sha = text_key(f"{sha}\x00{given}")
        plan = _FilePlan(path, name, sha, stat.st_size, stat.st_mtime, given, stamp=(stat.st_size, stat.st_mtime_ns))
        plan.result = self._unchanged(str(path), name, sha, force)
        if plan.result is None:
            moved = self._moved_here(plan)
            plan.result = None if force else moved  # --force reads a moved file again, into its moved entry
        return plan

    def _moved_here(self, plan: _FilePlan) -> FileResult | None:
        """A file ingested before from a place where it no longer is (its folder was moved or renamed,
        perhaps with a symbolic link left in its old place), found here with the same file name and
        content: its entry moves here, with its chunks and vectors (nothing read or embedded again),
        instead of a second entry beside a stale one. An entry that failed there is dropped, and the
        file read as a new one. A file that is a symbolic link takes the entry recorded where it
        points (as earlier versions recorded it); an entry that is a link of its own stays."""
        key = str(plan.path)
        if self.kb.config.store.backend != "embedded" or self.kb.catalog.file(key) is not None:
            return None  # (a Milvus store is shared by hosts: a path missing here may be another host's file)
        parts = Path(plan.name).parts
        root = plan.path.parents[len(parts) - 1] if len(parts) > 1 else plan.path.parent
        target = os.path.realpath(key)  # a symbolic link's file: versions before 2026-12-03 recorded it there
        stale = [r for r in self.kb.catalog.files_with_hash(plan.sha)
                 if os.path.isabs(r.path) and (Path(r.path).name == plan.path.name or r.path == target != key)
                 and (is_missing(r.path) or os.path.realpath(r.path) == key and not os.path.islink(r.path) or r.path == target != key)
                 and (r.name == plan.name or not (root / r.name).is_file())]  # a copy at the entry's own place takes it
        if not stale:
            return None
        row = min(stale, key=lambda r: (r.status != "ok", r.name != plan.name, r.id))  # the same place in its folder first
        if not self.kb._move_entry(row, key, plan.name, plan.size, plan.mtime):
            return None  # a failed entry, dropped; or another process moved or removed it first: read the file as a new one
        return FileResult(plan.name, "moved", chunks=row.chunks, pages=row.pages)

    def _unchanged(self, key: str, name: str, sha: str, force: bool) -> FileResult | None:
        """A skipped result for a source already ingested with this hash (its name brought up to date)."""
        row = self.kb.catalog.file(key)
        if row and not force and row.sha256 == sha and row.status == "ok":
            if row.name != name:
                self.kb.catalog.rename_file(row.id, name)
            return FileResult(name, "skipped", chunks=row.chunks, pages=row.pages)
        return None

    def documents(self, sources: Iterable[tuple[str, list[Document]]]) -> IngestReport:
        """Ingest documents already in memory (KnowledgeBase.ingest_documents), keyed by source id."""
        started = time.perf_counter()
        report = IngestReport()
        self.kb.catalog.set_meta("embedding_model", self.kb.config.embeddings.model)
        self.kb.catalog.set_meta("embedding_dim", self.kb.embedder.dim)
        _ = self.kb.index  # open (or repair) the vector index before the first file
        try:
            for source_id, docs in sources:
                digest = text_key("\x00".join(d.text for d in docs))
                size = sum(len(d.text) for d in docs)
                report.files.append(self._store_source(source_id, source_id, digest, size, None, lambda docs=docs: docs, self.force))
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            self.kb._sync_index()
        if self.kb._dropped():
            raise self._deleted()
        report.seconds = time.perf_counter() - started
        return report

    @contextlib.contextmanager
    def _deleted_if_dropped(self) -> Iterator[None]:
        """A write of the index that fails because another process dropped this knowledge base (KnowledgeBase._save_index)
        is this ingest's deletion: on opening the index, saving it midway, syncing it at the end (test_interrupt.py's drop
        test failed at each, under load, with the write's message)."""
        try:
            yield
        except KnowledgeBaseError:
            if not self.kb._dropped():
                raise
            raise self._deleted() from None

    def _deleted(self) -> KnowledgeBaseError:
        """The error of an ingest whose knowledge base another process deleted (`kbqa kb drop`) while it ran."""
        return KnowledgeBaseError(f"knowledge base {self.kb.name!r} was deleted by another process during this ingest, and what "
                                  "it had ingested went with it: run the ingest again to make it anew")

    def _store_source(
        self, key: str, name: str, sha: str, size: int, mtime: float | None, read: Callable[[], list[Document]], force: bool,
        *, filename: str | None = None, given: str = "", changed: Callable[[], bool] | None = None,
    ) -> FileResult:
        """Read, split and embed one source, then replace it in catalog and index in one step.

        filename (files only) and given (the user's words from kbqa.yaml) go into the document's
        description (ingest.context), which every chunk is embedded and indexed with. changed():
        whether the file changed since it was hashed (asked once it is read): then what was read
        may not be what was hashed, and it is stored without a hash, to be read again next time."""
        t0 = time.perf_counter()
        skipped = self._unchanged(key, name, sha, force)
        if skipped is not None:
            return skipped
        row = self.kb.catalog.file(key)
        status, error, chunks, pages, vectors, description = "ok", None, [], None, {}, ""
        warning = None
        try:
            docs = read()
            warning = docs[0].meta.get("warning") if docs else None
            if changed is not None and changed():
                log.warning("%s changed while it was read: it is stored as read and read again by the next ingest", name)
                sha = ""  # matches no file's hash
            described = filename is not None or given or (docs and docs[0].meta.get("about"))
            description = describe(docs, filename, given) if described else ""
            # a big text takes seconds to split: a cancelled ingest (a server stopping) stops within it
            pieces = split_documents(docs, self.kb.config.ingest.chunk_size, self.kb.config.ingest.chunk_overlap, *self.kb.length_unit(),
                                     checkpoint=self.checkpoint)
            page_numbers = {d.page for d in docs if d.page}
            pages = max(page_numbers) if page_numbers else None
            chunks, vectors = self._embed_chunks(pieces, description)
        except UnsupportedFile as exc:
            status, error = "unsupported", str(exc)
        except LoadError as exc:
            status, error = "failed", str(exc)
        seconds = time.perf_counter() - t0
        if status != "ok" and row is not None and row.status == "ok":
            # keep the last good version searchable; record the error
            self.kb.catalog.set_file_error(row.id, error)
            return FileResult(name, status, error=error, seconds=seconds)
        self.kb._commit(path=key, name=name, sha256=sha, size=size, mtime=mtime, status=status, error=error or warning,
                        pages=pages, seconds=seconds, chunks=chunks, vectors=vectors, description=description)
        if status != "ok":
            return FileResult(name, status, error=error, seconds=seconds)
        return FileResult(name, "updated" if row else "added", chunks=len(chunks), pages=pages, seconds=seconds, warning=warning)

    def _embed_chunks(self, pieces: list[Any], description: str = "") -> tuple[list[NewChunk], dict[str, Any]]:
        """Embed the chunks (see embedding_texts), reusing cached vectors of unchanged text."""
        pairs = embedding_texts(pieces, description, skip_overlap=not self.kb.config.embeddings.embed_overlap)
        chunks = [c for c, _ in pairs]
        keys = list(dict.fromkeys(c.vector_key for c in chunks))
        vectors = self.kb.catalog.cached_vectors(keys)
        if self.kb.config.embeddings.cache and self.kb.config.store.backend == "embedded" and len(vectors) < len(keys):
            vectors.update(self.kb.vector_cache.get([k for k in keys if k not in vectors]))
        todo = {c.vector_key: text for c, text in pairs if c.vector_key not in vectors}
        remote = self.remote
        words = remote.cut_words(chunks, description) if remote is not None and chunks else None  # meanwhile, on Ray
        if todo:
            embedded = dict(zip(todo.keys(), self._embed(list(todo.values()))))
            if self.kb.config.embeddings.cache and self.kb.config.store.backend == "embedded":  # a Milvus-served KB keeps no local state
                self.kb.vector_cache.put(embedded)
            vectors.update(embedded)
        if words is not None:
            for chunk, cut in zip(chunks, words()):
                chunk.words = cut
        return chunks, vectors

    def checkpoint(self) -> None:
        """Raise _Cancelled once this ingest has been cancelled (a server stopping)."""
        if self.cancelled is not None and self.cancelled():
            raise _Cancelled

    def _embed(self, texts: list[str]) -> list[Any]:
        """Vectors of texts; here in batches, so that a cancelled ingest (a server stopping) stops
        within one batch even in a file of thousands of chunks. A Ray ingest embeds on its actors."""
        remote = self.remote
        if remote is not None:
            return list(remote.embed_documents(texts))
        out: list[Any] = []
        batch: list[str] = []
        size, limit = 0, EMBED_BATCH_MIN
        for i, text in enumerate(texts):
            batch.append(text)
            size += approx_tokens(text)  # the embedder tokenizes anyway: counting exactly here cost a second pass
            if size >= limit or i == len(texts) - 1:
                self.checkpoint()
                started = time.perf_counter()
                out.extend(self.kb.embedder.embed_documents(batch))
                seconds = time.perf_counter() - started
                limit = min(16 * EMBED_BATCH_MIN, max(EMBED_BATCH_MIN, int(size / max(seconds, 1e-3) * EMBED_BATCH_S)))
                batch, size = [], 0
        return out

    def _recorded_since(self, key: str, since: float) -> bool:
        """Whether the file at key was ingested (by any process) since `since` (time.time())."""
        row = self.kb.catalog.file(key)
        return row is not None and (row.ingested_at or 0.0) >= since

    def _gone(self, paths: list[str | Path], seen: set[str], before: float) -> list[FileRow]:
        """The files of this knowledge base under the given folders that this ingest did not find;
        one recorded (or moved) since it looked only when nothing is at its path (a file that came
        meanwhile and another ingest recorded is kept; a clock ahead when it was recorded keeps
        nothing that is gone)."""
        roots = [str(Path(p).expanduser().resolve()) for p in paths]
        return [row for row in self.kb.catalog.files()
                if row.path not in seen and any(row.path == r or row.path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
                and ((row.ingested_at or 0.0) < before or is_missing(row.path))]
