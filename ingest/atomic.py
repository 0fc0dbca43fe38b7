"""Writing a file so that its readers see the old whole file or the new whole one, never part of one."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
STALE_S = 600.0  # a temporary file of a writer that is gone, untouched this long, is removed (see sweep)


@contextmanager
def replacing(path: Path, mode: int = 0o666) -> Iterator[Path]:
    """A new empty file beside `path` for the block to write; when the block ends, the written file
    takes `path`'s place in one step (os.replace). When the block fails, the temporary file is
    removed and the error goes on.

    The file is made new (never through a link someone left at its name, in a shared temporary
    folder) with `mode` less the umask: 0o600 for a file only this user may trust. It is named
    PATH.PID.THREAD.tmp: two writers never share one, and a knowledge base knows such a file in its
    folder as its own (kb._OWN_FILE). Temporary files of `path` that killed writers left are
    removed first (sweep)."""
    sweep(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, _NEW, mode)
    except FileExistsError:  # left by a process killed while it wrote (its number since used again)
        tmp.unlink()
        fd = os.open(tmp, _NEW, mode)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep(path: Path, stale_s: float = STALE_S) -> list[Path]:
    """Remove the temporary files of `path` (PATH.PID.THREAD.tmp) that writers killed while they
    wrote left behind — a half-written vector index can be as large as the index — and return them.
    One is removed only when it is a plain file of this user's, its process no longer runs and it
    has not been written for `stale_s` seconds (a process of that number on another machine sharing
    the folder keeps writing to its file). Files that cannot be removed (a folder this user may not
    write) are left as they are."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)\.\d+\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None or int(found[1]) == os.getpid():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if (not entry.is_file(follow_symlinks=False) or info.st_uid != os.getuid()
                    or now - info.st_mtime < stale_s or _running(int(found[1]))):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _running(pid: int) -> bool:
    """Whether a process of this number runs (one of another user's counts: it cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
