"""Loading files in a child process, so a file that hangs or crashes its parser is stopped after a
time limit and reported, and the next file goes on in a fresh process.

The child is `python -m ingest.worker FD`, talking over a socket pair: not multiprocessing's spawn,
which re-imports the caller's main module (a script without `if __name__ == "__main__":` would
start itself again) and does not work from notebooks. Its standard output and error are not the
caller's: parser chatter (MuPDF, RapidOCR) never reaches a `--json` document or a progress bar."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.loaders import LoadOptions, load_file
from ingest.types import Document, LoadError, UnsupportedFile, one_line

_START_TIMEOUT_S = 120.0


def _watch_parent(parent: int, every_s: float = 1.0) -> None:
    """The child ends within a second of its parent's death: killed (kill -9), the parent can no longer
    stop a parser that runs past its time limit, and a review's orphan went on parsing a
    million-row sheet up to 1.9 GB before it noticed the closed socket."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="kbqa-parent-watch", daemon=True).start()


def _limit_memory(mb: float) -> None:
    """The child's heap and anonymous mappings (RLIMIT_DATA's soft limit) capped at mb, none for 0: a file that
    needs more fails with MemoryError rather than taking the machine's memory (found by review: a 315 KB PDF whose
    page draws 100 MB of text took MuPDF 7.7 GB, a 5 KB workbook openpyxl 3.7 GB a minute)."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        soft = int(mb * 2**20) if mb > 0 else hard
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
    except (ImportError, ValueError, OSError):
        pass  # no such limit here (Windows): the time limit still stops the file


def _serve(conn: Any) -> None:
    """The child: load each (path, options) it is sent and send back the documents or the error. After a file
    that ran out of memory the child ends, so that the next file starts in a fresh one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _watch_parent(os.getppid())
    conn.send(("ready", None))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if request is None:
            return
        path, options = request
        options = replace(options, on_page=lambda done, total: conn.send(("page", (done, total))))
        _limit_memory(options.max_memory_mb)
        try:
            docs = load_file(Path(path), options)
        except UnsupportedFile as exc:
            conn.send(("unsupported", str(exc)))
            continue
        except (LoadError, MemoryError) as exc:
            failure = str(exc) if isinstance(exc, LoadError) else "file too large to read in memory"
        except Exception as exc:  # noqa: BLE001 - anything a parser throws is that file's failure
            failure = one_line(f"{type(exc).__name__}: {exc}")
        else:
            _limit_memory(0)  # sending the documents may take memory of its own
            conn.send(("ok", docs))
            continue
        if options.max_memory_mb > 0 and _out_of_memory(failure):
            conn.send(("spent", f"{failure} (over ingest.max_reader_memory_mb={options.max_memory_mb:g}; raise it to read this file)"))
            return
        conn.send(("failed", failure))


def _out_of_memory(failure: str) -> bool:
    """Whether a reader's failure was memory running out (Python's MemoryError, MuPDF's or another C library's, a library
    that could not be mapped in: "failed to map segment from shared object")."""
    text = failure.lower()
    return "memory" in text or "alloc" in text or "map segment" in text  # MemoryError's, "calloc (4104 x 1 bytes) failed"


class LoaderProcess:
    """load(path, options) like ingest.load_file, in a reusable child process with a time limit per file."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Any = None

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _start(self) -> None:
        mine, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parent.parent)  # where the ingest package is, installed or not
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        chatter = None if os.environ.get("KBQA_LOG", "").lower() == "debug" else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.worker", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=2 if chatter is None else chatter, stderr=chatter, env=env,
        )
        theirs.close()
        self._conn = Connection(mine.detach())
        if not self._conn.poll(_START_TIMEOUT_S):
            self.close(wait=False)
            raise RuntimeError("the file loader process did not start")
        try:
            self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.wait(timeout=5) if self._proc else None
            self.close(wait=False)
            raise RuntimeError(f"the file loader process exited at start (exit code {code})") from None

    def load(self, path: Path, options: LoadOptions) -> list[Document]:
        if not self._alive():
            self._start()
        started = time.monotonic()
        on_page = options.on_page
        self._conn.send((str(path), replace(options, on_page=None)))
        while True:
            left = self.timeout_s - (time.monotonic() - started)
            if left <= 0 or not self._conn.poll(left):
                self.close(wait=False)
                raise LoadError(f"timed out after {self.timeout_s:g} s (ingest.file_timeout_s); the file was skipped")
            try:
                status, payload = self._conn.recv()
            except (EOFError, OSError):
                try:
                    code = self._proc.wait(timeout=5) if self._proc is not None else None
                except subprocess.TimeoutExpired:
                    code = None
                self.close(wait=False)
                limit = (f" (under ingest.max_reader_memory_mb={options.max_memory_mb:g}: if it ran out of memory, raise it to read this file)"
                         if options.max_memory_mb > 0 else "")  # (a C library may crash rather than fail at the limit: found by review)
                raise LoadError(f"the parser crashed on this file (exit code {code}) after {time.monotonic() - started:.1f} s{limit}") from None
            if status != "page":
                break
            if on_page is not None:
                on_page(*payload)
        if status == "ok":
            return list(payload)
        if status == "unsupported":
            raise UnsupportedFile(payload)
        if status == "spent":  # the child ran out of memory and is ending: the next file gets a fresh one
            self.close()
        raise LoadError(payload)

    def kill(self) -> None:
        """Stop the child now, from any thread: a load() waiting on it fails with "the parser crashed"."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def close(self, wait: bool = True) -> None:
        """Stop the child: asked to finish, or (wait=False, e.g. stuck on a file) killed."""
        if self._conn is not None:
            try:
                if wait and self._alive():
                    self._conn.send(None)
            except (OSError, ValueError):
                pass
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=2 if wait else 0.01)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None

    def __enter__(self) -> LoaderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":  # the child: python -m ingest.worker FD
    _serve(Connection(int(sys.argv[1])))
