"""Ingest on a Ray cluster (`ingest.executor: ray`): files parsed as Ray tasks, chunks embedded by Ray
actors that load the model once each; the driver (the `kbqa ingest` process) lists the files, splits
and commits each file to the knowledge base on its own, as a local ingest does.

- A file travels as its bytes (read by the driver, which also hashes it), so workers need no shared
  file system. Each parse task runs ingest's loader in the worker's helper process (ingest.worker),
  with the per-file time limit and crash isolation of a local ingest.
- A worker that dies (killed, out of memory, its machine gone) is replaced by Ray: its parse task and
  its embedding call are retried (PARSE_RETRIES, EMBED_RETRIES); a file that still fails is reported
  as failed and the run goes on. Commits are per file and keyed by the file, so a re-run or a retry
  never duplicates anything; an interrupted run resumes from what was committed.
- `ray.init()` starts a local Ray runtime when no address is given (cores of this machine), or joins
  a running cluster (`ray start --head` on one machine, `ray start --address HEAD:6379` on the others;
  every node needs kbqa installed, with its model files).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from ingest import Document, LoadOptions
from kbqa.config import EmbeddingsConfig

PARSE_RETRIES = 2  # a parse task whose worker died is run again this many times
EMBED_RETRIES = 3  # an embedding call whose actor died is run again (on the restarted actor)
PARSE_CPUS = 0.5  # what a parse task reserves: parsing waits on its helper process much of the time
EMBED_CHUNK = 64  # texts per embedding call: small enough to spread one file's chunks over the actors
WORDS_CHUNK = 256  # chunks per word-cutting task


def start(address: str | None, workers: int) -> Any:
    """ray, initialised: joined to the cluster at `address`, or a local runtime on this machine."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("ingest.executor ray needs: pip install 'kbqa[cluster]'") from exc
    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parent.parent)  # local workers import kbqa and ingest from here
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}}
        if address:
            ray.init(address=address, runtime_env=env, logging_level="ERROR", log_to_driver=False)
        else:
            # logical CPUs: one per embedding actor (each holds one for its life) plus this machine's
            # cores for the parse tasks, so the actors can never leave the parsing without a slot
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            ray.init(num_cpus=workers + cores, runtime_env=env, include_dashboard=False, logging_level="ERROR",
                     log_to_driver=False)
    return ray


_LOADER: Any = None  # one helper process per Ray worker, reused by the parse tasks it runs


def parse_file(name: str, data: bytes, options: LoadOptions, timeout_s: float) -> list[Document]:
    """The body of a parse task: the file's bytes written to a private temporary folder under its own
    name (loaders read the suffix), then loaded as a local ingest loads it."""
    global _LOADER
    from ingest import load_file
    from ingest.worker import LoaderProcess

    with tempfile.TemporaryDirectory(prefix="kbqa-ray-") as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(data)
        if not timeout_s:
            return load_file(path, options)
        if _LOADER is None:
            _LOADER = LoaderProcess(timeout_s)
        _LOADER.timeout_s = timeout_s
        return _LOADER.load(path, options)


def cut_words(description: str, items: list[tuple[list[str], str]]) -> list[str]:
    """The body of a word-cutting task: each (title path, text) as BM25 will index it."""
    from kbqa.store.tokenize import index_words

    return [index_words(description, title_path, text) for title_path, text in items]


class EmbedWorker:
    """The body of an embedding actor: the knowledge base's embedder, loaded once."""

    def __init__(self, config: EmbeddingsConfig, cache_dir: str | None) -> None:
        from kbqa.embeddings import make_embedder

        self.embedder = make_embedder(config, Path(cache_dir) if cache_dir else None)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embedder.embed_documents(texts), dtype=np.float32)

    def pid(self) -> int:
        return os.getpid()


class RayExecutor:
    """What a knowledge base's ingest uses in place of its local parser and embedder."""

    def __init__(self, config: EmbeddingsConfig, *, address: str | None, workers: int, timeout_s: float,
                 cache_dir: Path | None) -> None:
        ray = start(address, workers)
        self._ray = ray
        self.timeout_s = timeout_s
        self._parse = ray.remote(num_cpus=PARSE_CPUS, max_retries=PARSE_RETRIES)(parse_file)
        self._words = ray.remote(num_cpus=PARSE_CPUS, max_retries=PARSE_RETRIES)(cut_words)
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=EMBED_RETRIES)(EmbedWorker)
        self.actors = [actor.remote(config, str(cache_dir) if cache_dir else None) for _ in range(max(1, workers))]
        self._next = 0

    # --- parsing: the interface of kbqa.kb's local read-ahead ----------------------------------
    def submit(self, path: Path, options: LoadOptions) -> Future[list[Document]]:
        from dataclasses import replace

        data = path.read_bytes()
        ref = self._parse.remote(path.name, data, replace(options, on_page=None), self.timeout_s)
        return ref.future()  # type: ignore[no-any-return]

    def failure(self, exc: BaseException) -> BaseException:
        """A parse task's error as a local ingest reports it: the loader's own errors unchanged, a
        worker lost for good as a LoadError for that file."""
        from ingest import LoadError, UnsupportedFile

        cause = getattr(exc, "cause", None)
        if isinstance(cause, (LoadError, UnsupportedFile)):
            return cause
        if isinstance(exc, (LoadError, UnsupportedFile)):
            return exc
        return LoadError(f"the Ray worker parsing this file failed {PARSE_RETRIES + 1} times: {type(exc).__name__}")

    # --- embedding: the Embedder protocol's embed_documents -------------------------------------
    def cut_words(self, chunks: Sequence[Any], description: str) -> Callable[[], list[str]]:
        """What BM25 will index for each chunk (kbqa.store.tokenize.index_words), cut by Ray tasks while
        the driver goes on; call the result for the words, in order. jieba and the stemmer run at a few
        hundred chunks a second a core: on the driver alone they would cap a big cluster's ingest."""
        items = [(c.title_path, c.text) for c in chunks]
        refs = [self._words.remote(description, items[i : i + WORDS_CHUNK]) for i in range(0, len(items), WORDS_CHUNK)]
        return lambda: [w for part in self._ray.get(refs) for w in part]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """The texts in slices of EMBED_CHUNK over the actors, round robin; vectors in order."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        refs = []
        for start in range(0, len(texts), EMBED_CHUNK):
            actor = self.actors[self._next % len(self.actors)]
            self._next += 1
            refs.append(actor.embed.remote(list(texts[start : start + EMBED_CHUNK])))
        return np.vstack(self._ray.get(refs))

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
