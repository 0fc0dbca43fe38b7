"""A read-only str -> number table in one file, memory-mapped: opening it costs nothing.

A one-shot command (`kbqa ask`) tokenizes one question: unmarshalling jieba's 580,000-entry prefix
dictionary for it takes half a second, while the few hundred lookups the question needs take a
millisecond from a mapped table. Layout (little-endian): a header, an open-addressing hash table of
entry numbers (CRC-32 of the key's UTF-8, linear probing, -1 = empty), the entries' key offsets into
a blob of UTF-8 keys, one float64 value per entry, then the blob."""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from ingest.atomic import replacing

MAGIC = b"KBQAMAP1"
_HEADER = struct.Struct("<8sQQd")  # magic, entries, table slots, a number stored beside the table (e.g. a total)


def write_table(path: Path, items: Iterable[tuple[str, float]], extra: float = 0.0) -> None:
    """Write the table atomically (a temp file renamed into place): readers see the old file or the new."""
    keys: list[bytes] = []
    values: list[float] = []
    for key, value in items:
        keys.append(key.encode("utf-8"))
        values.append(float(value))
    slots = 1 << max(4, (2 * len(keys)).bit_length())  # at most half full: short probes
    mask = slots - 1
    table = [-1] * slots
    for n, key in enumerate(keys):
        h = zlib.crc32(key) & mask
        while table[h] != -1:
            h = (h + 1) & mask
        table[h] = n
    offsets = [0]
    for key in keys:
        offsets.append(offsets[-1] + len(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, mode=0o600) as tmp, tmp.open("wb") as out:
        out.write(_HEADER.pack(MAGIC, len(keys), slots, extra))
        out.write(struct.pack(f"<{slots}i", *table))
        out.write(struct.pack(f"<{len(offsets)}Q", *offsets))
        out.write(struct.pack(f"<{len(values)}d", *values))
        out.write(b"".join(keys))


class MappedTable:
    """`key in t`, `t[key]`, `t.get(key)`, `len(t)` over a file written by write_table; read-only.

    A mapped lookup costs ~15x a dict's, so a caller with much to look up hands over to a dict:
    `when_busy` is called once, on the `budget`-th lookup (the lookup itself is still answered)."""

    def __init__(self, path: Path, budget: int = 0, when_busy: Callable[[], None] | None = None) -> None:
        self._left = budget if when_busy is not None else 0
        self._when_busy = when_busy
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if len(self._map) < _HEADER.size:
            raise ValueError(f"{path} is not a kbqa mapped table")
        magic, entries, slots, self.extra = _HEADER.unpack_from(self._map, 0)
        blob = _HEADER.size + 4 * slots + 8 * (entries + 1) + 8 * entries
        if magic != MAGIC or slots & (slots - 1) or slots <= entries or blob > len(self._map):
            raise ValueError(f"{path} is not a kbqa mapped table")
        self._entries, self._mask = entries, slots - 1
        view = memoryview(self._map)
        start = _HEADER.size
        self._table = view[start : start + 4 * slots].cast("i")
        start += 4 * slots
        self._offsets = view[start : start + 8 * (entries + 1)].cast("Q")
        start += 8 * (entries + 1)
        self._values = view[start : start + 8 * entries].cast("d")
        self._blob = start + 8 * entries
        if self._blob + self._offsets[entries] != len(self._map):  # cut short, or something else
            raise ValueError(f"{path} is not a kbqa mapped table (its size disagrees with its header)")

    def _find(self, key: str) -> int:
        if self._left:
            self._left -= 1
            if self._left <= 0:  # (<=: two threads may pass zero together; the hand-over still happens once)
                busy, self._when_busy, self._left = self._when_busy, None, 0
                if busy is not None:
                    busy()
        raw = key.encode("utf-8")
        h = zlib.crc32(raw) & self._mask
        table, offsets, data, blob = self._table, self._offsets, self._map, self._blob
        while (n := table[h]) != -1:
            if data[blob + offsets[n] : blob + offsets[n + 1]] == raw:
                return n
            h = (h + 1) & self._mask
        return -1

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._find(key) >= 0

    def __getitem__(self, key: str) -> float:
        n = self._find(key)
        if n < 0:
            raise KeyError(key)
        return self._values[n]

    def get(self, key: str, default: float | None = None) -> float | None:
        n = self._find(key)
        return default if n < 0 else self._values[n]

    def __len__(self) -> int:
        return self._entries
