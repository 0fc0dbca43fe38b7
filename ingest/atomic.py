"""Writing a file so that its readers see the old whole file or the new whole one, never part of one."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


@contextmanager
def replacing(path: Path, mode: int = 0o666) -> Iterator[Path]:
    """A new empty file beside `path` for the block to write; when the block ends, the written file
    takes `path`'s place in one step (os.replace). When the block fails, the temporary file is
    removed and the error goes on.

    The file is made new (never through a link someone left at its name, in a shared temporary
    folder) with `mode` less the umask: 0o600 for a file only this user may trust. It is named
    PATH.PID.THREAD.tmp: two writers never share one, and a knowledge base knows such a file in its
    folder as its own (kb._OWN_FILE)."""
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
