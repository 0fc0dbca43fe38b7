"""Which process is ingesting which file of a knowledge base (DESIGN: a second ingest interleaves
by file). Two ingests of one folder at once each take a file only when no other holds it, and come
back later to the files the other held, by then most often ingested (skipped): the work is shared,
not done twice. Claims are advisory locks on one file in the knowledge base's folder, so a process
that dies lets its claims go with it.

Linux: one byte of `.ingest.claims` per file (open-file-description locks: each ingest run holds
its own, even two runs in one process). Elsewhere: the whole file, so one run at a time holds
claims and the other waits its turn."""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
from pathlib import Path

CLAIMS_FILE = ".ingest.claims"
_SPAN = 1 << 40  # byte offsets a path's hash falls on: two paths sharing one costs a wait, nothing worse
_OFD = hasattr(fcntl, "F_OFD_SETLK")


def _flock_struct(kind: int, offset: int) -> bytes:
    """A `struct flock` (Linux: short type, short whence, off_t start, off_t len, pid_t pid; 32 bytes
    on 64-bit and 32-bit systems with 64-bit offsets) for one byte at offset; pid 0, as OFD locks need."""
    packed = struct.pack("hhqqi", kind, os.SEEK_SET, offset, 1, 0)
    return packed + b"\0" * (32 - len(packed))


class FileClaims:
    """One ingest run's claims on files of a knowledge base (keyed by the catalog's path key)."""

    def __init__(self, folder: Path) -> None:
        self._fd = os.open(folder / CLAIMS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        self._held: set[int] = set()

    @staticmethod
    def _offset(key: str) -> int:
        return int.from_bytes(hashlib.sha1(key.encode("utf-8", "surrogateescape")).digest()[:8], "big") % _SPAN

    def take(self, key: str) -> bool:
        """Claim the file if no other run holds it (never waits)."""
        offset = self._offset(key)
        if offset in self._held:  # (two of this run's files on one byte: the second waits for the first)
            return False
        try:
            if _OFD:
                fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK, offset))
            elif not self._held:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            return False
        self._held.add(offset)
        return True

    def release(self, key: str) -> None:
        offset = self._offset(key)
        if offset not in self._held:
            return
        self._held.discard(offset)
        if _OFD:
            fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_UNLCK, offset))
        elif not self._held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @property
    def held(self) -> int:
        return len(self._held)

    def close(self) -> None:
        """Let every claim go (closing the file does: also when the process dies)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._held.clear()
