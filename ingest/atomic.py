"""Writing a file so that its readers see the old whole file or the new whole one, never part of one."""

from __future__ import annotations

import fcntl
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_LOOK = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
STALE_S = 600.0  # a temporary file nobody writes, untouched this long, is removed (see sweep)
UNUSED_S = 30 * 86400.0  # a cache kept in the temporary folder that no process used this long is removed (see used)


@contextmanager
def replacing(path: Path, mode: int = 0o666) -> Iterator[Path]:
    """A new empty file beside `path` for the block to write; when the block ends, the written file
    takes `path`'s place in one step (os.replace). When the block fails, the temporary file is
    removed and the error goes on.

    The file is made new (never through a link someone left at its name, in a shared temporary
    folder) with `mode` less the umask: 0o600 for a file only this user may trust. It is named
    PATH.PID.THREAD.tmp: two writers never share one, and a knowledge base knows such a file in its
    folder as its own (kb._OWN_FILE). The writer holds a lock on it until the block ends, so that
    sweep knows it is being written; temporary files of `path` that killed writers left are removed
    first (sweep)."""
    sweep(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, _NEW, mode)
    except FileExistsError:  # left by a process killed while it wrote (its number since used again)
        tmp.unlink()
        fd = os.open(tmp, _NEW, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while the block writes (through its own opening of tmp)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def sweep(path: Path, stale_s: float = STALE_S) -> list[Path]:
    """Remove the temporary files of `path` (PATH.PID.THREAD.tmp) that writers killed while they
    wrote left behind — a half-written vector index can be as large as the index — and return them.
    One is removed only when it is a plain file of this user's that no writer holds locked (a
    writer's lock ends with its process, whatever its number: a kbqa that is PID 1 in a container
    after one that was) and that was not written for `stale_s` seconds (a writer on another machine
    sharing the folder, where locks may not be seen, keeps writing to its file). Files that cannot
    be removed (a folder this user may not write) are left as they are."""
    pattern = re.compile(re.escape(path.name) + r"\.[0-9]+\.[0-9]+\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if pattern.fullmatch(entry.name) is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not entry.is_file(follow_symlinks=False) or info.st_uid != os.getuid() or now - info.st_mtime < stale_s:
                continue
            fd = os.open(entry.path, _LOOK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a writer holds it: in use
            if os.fstat(fd).st_ino == info.st_ino:  # still the file looked at
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def used(path: Path, family: str, unused_s: float = UNUSED_S) -> None:
    """Mark a cache kept in the temporary folder as used now (its mtime), and remove the other files
    of its family (a glob beside it, "kbqa-jieba-*.map") of this user's that no process used for
    unused_s: each virtualenv, dictionary version or version of the code that builds one names a new
    file (16 MB for jieba's table), and none was ever removed (seven sets, some 180 MB, in one /tmp)."""
    now = time.time()
    try:
        os.utime(path)
    except OSError:
        pass
    for other in path.parent.glob(family):
        if other == path:
            continue
        try:
            info = other.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and now - info.st_mtime > unused_s:
                other.unlink()
        except OSError:
            pass
