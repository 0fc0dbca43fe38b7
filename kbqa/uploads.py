"""Files handed in over the web: safe names, size limits, and zip archives unpacked without surprises."""

from __future__ import annotations

import fcntl
import glob
import hashlib
import lzma
import os
import re
import shutil
import socket
import uuid
import zipfile
import zlib
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ingest.context import SIDECAR
from kbqa.kb import safe_filename
from kbqa.pipeline import ingestable_files


@dataclass
class Unpacked:
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: reason"
    kept: list[tuple[Path, Path]] = field(default_factory=list)  # (stored file, the earlier version it replaced, kept aside)


KEPT_PREFIX = ".kept-"  # the earlier version of an updated file, until its update is ingested (hidden: never ingested)
# which machine kept it (a store.uploads_dir is shared by servers on several machines, whose locks do not reach each other)
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:4]
_KEPT_TAG = len(KEPT_PREFIX) + 4 + 8 + 1  # ".kept-" + host + id + "-": the kept file's own name follows


def _put(partial: Path, dest: Path, out: Unpacked) -> None:
    """Move a whole upload into place. A file it replaces (an updated version) is kept aside, linked
    as .kept-<id>-<name> beside it, until the update is ingested (settle_kept): the catalog describes
    that version until then, and an update that fails, or is stopped or killed, gives it back."""
    if dest.is_file() and not dest.is_symlink():
        kept = dest.parent / f"{KEPT_PREFIX}{_HOST}{uuid.uuid4().hex[:8]}-{dest.name}"
        try:
            os.link(dest, kept)
        except OSError:  # no hard links here: moved aside, then replaced
            os.replace(dest, kept)
        out.kept.append((dest, kept))
    os.replace(partial, dest)


def _kept_for(kept: Path) -> Path:
    return kept.parent / kept.name[_KEPT_TAG:]


def described_version(path: Path, recorded_sha: str) -> Path:
    """The stored file to show for a catalog entry: while an update of it is being ingested, the
    earlier version kept aside, which the entry (recorded_sha) still describes; else the file."""
    for kept in path.parent.glob(f"{glob.escape(KEPT_PREFIX)}*-{glob.escape(path.name)}"):
        if _kept_for(kept) == path:
            from kbqa.store import sha256_file

            try:
                if sha256_file(kept) == recorded_sha:
                    return kept
            except OSError:
                continue
    return path


@contextmanager
def alone(target: Path) -> Iterator[None]:
    """Uploads into one folder take turns across processes (servers sharing a home): one process's
    update keeps, ingests and settles its file before another's stores over it (two servers'
    updates of one name lost the file, or left the disk holding one version and the catalog the
    other)."""
    fd = os.open(target / ".writing", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # the lock goes with it


def settle_kept(pairs: list[tuple[Path, Path]], recorded_sha: Callable[[str], str | None]) -> None:
    """After an upload's ingest: each updated file whose catalog entry still describes the earlier
    version (its ingest failed, was stopped, or the update was refused as a duplicate) gets that
    version back; the others let it go. recorded_sha(path): the content hash the catalog holds for
    the file at path, or None."""
    from kbqa.store import sha256_file

    for dest, kept in pairs:
        try:
            if recorded_sha(str(dest)) == sha256_file(kept):
                os.replace(kept, dest)
            else:
                kept.unlink()
        except OSError:
            continue


def _decoded_name(info: zipfile.ZipInfo) -> str:
    """Zip names not flagged UTF-8 are CP437 by the spec, but Info-ZIP's zip on Linux and macOS writes
    UTF-8 without the flag, and Chinese Windows tools write GBK: the first of the three that decodes."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    for encoding in ("utf-8", "gbk"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def unpack_zip(
    archive: Path, target: Path, *, max_bytes: int, max_files: int = 5000, shown_as: str | None = None, member_bytes: int | None = None,
    room: Callable[[], str | None] | None = None, admit: Budget | None = None,
) -> Unpacked:
    """Extract the regular files of a zip into target under safe names (no path traversal, no links,
    no hidden files, no empty files), stopping at max_bytes of uncompressed data (zip bombs) or max_files,
    or where room() says the disk is nearly full (Budget.room: a small zip unpacked past
    server.min_free_disk_mb, found by review); a member over member_bytes (the limit of one uploaded
    file) is left out, as that file would be. admit: the request's Budget, whose cap on files of new content
    (Budget.admit) each member meets as an uploaded file does: those past it are named."""
    out = Unpacked()
    shown = shown_as or archive.name
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        out.skipped.append(f"{shown}: not a readable zip archive ({exc})")
        return out
    total = empty = 0
    placed: set[Path] = set()
    try:
        target.mkdir(exist_ok=True)  # not parents: never re-create a knowledge base deleted meanwhile (found by review)
    except OSError as exc:
        zf.close()
        out.skipped.append(f"{shown}: cannot be stored ({_reason(exc)})")
        return out
    with zf:
        for info in zf.infolist():
            name = _decoded_name(info)
            parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]  # "../" climbs nowhere
            if not info.filename:  # (a name that begins with NUL: zipfile cuts it there, and its is_dir() fails: found by review)
                out.skipped.append(f"{shown}: a member without a name, not extracted")
                continue
            if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                out.skipped.append(f"{name}: a symbolic link, not extracted")
                continue
            if info.flag_bits & 0x1:  # (zipfile's own error says "File <ZipInfo filename=… compress_type=…> is encrypted")
                out.skipped.append(f"{name}: encrypted (password-protected); not extracted: upload it unencrypted")
                continue
            if info.file_size == 0:  # nothing to read: not stored, not ingested (5,000 of them held an ingest slot for minutes)
                empty += 1
                continue
            if len(out.files) >= max_files:
                out.skipped.append(f"{shown}: more than {max_files} files; the rest were not extracted")
                break
            if member_bytes is not None and info.file_size > member_bytes:
                out.skipped.append(f"{name}: over the upload limit of {member_bytes / 2**20:.0f} MB")
                continue
            if total + info.file_size > max_bytes:
                out.skipped.append(f"{name}: the archive unpacks to more than {max_bytes / 2**20:.0f} MB; the rest were not extracted")
                break
            if room is not None and (short := room()) is not None:
                out.skipped.append(f"{name}: not extracted, nor the rest: {short}")
                break
            dest = target.joinpath(*[safe_filename(p) for p in parts[-8:]])  # each part sanitised: no "..", no "/"
            if dest in placed:  # two members of one name (an archive may hold both): the second is "name (2).ext"
                n = 2
                while (dest.parent / numbered(dest.name, n)) in placed:
                    n += 1
                dest = dest.parent / numbered(dest.name, n)
            if target.resolve() not in dest.resolve().parents:
                out.skipped.append(f"{name}: a path outside the archive's folder, not extracted")
                continue
            written = 0
            partial = dest.parent / f".upload-{uuid.uuid4().hex}.part"  # the member appears only once whole
            try:
                _folders_below(target, dest.parent)  # fails where a file has that folder's name, or the archive's folder is gone
                with zf.open(info) as src, open(partial, "wb") as fh:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if total + written > max_bytes or (member_bytes is not None and written > member_bytes):
                            raise ValueError("larger than its header says")  # the header lied about the size
                        fh.write(chunk)
                if admit is not None and not admit.admit(partial):
                    partial.unlink()
                    out.skipped.append(f"{name}: {admit.files_over()}")
                    continue
                _put(partial, dest, out)
            except (zipfile.BadZipFile, ValueError, RuntimeError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
                if partial.is_file():  # an earlier upload of the same member stays as it was
                    partial.unlink()
                if not target.is_dir():  # deleted meanwhile with its knowledge base: nothing is written again in its place
                    out.skipped.append(f"{shown}: not extracted, nor the rest: its folder is gone (the knowledge base was deleted?)")
                    break
                if isinstance(exc, (FileExistsError, NotADirectoryError)):
                    why = "a file of the archive has the name of its folder"
                elif isinstance(exc, IsADirectoryError):
                    why = "a folder of the archive has its name"
                elif isinstance(exc, (zlib.error, lzma.LZMAError, EOFError)) or (isinstance(exc, OSError) and not exc.strerror):
                    why = "its compressed data is damaged"  # (zlib's "Error -3 while decompressing data", bz2's bare OSError)
                else:
                    why = _reason(exc)
                out.skipped.append(f"{name}: {why}; not extracted")
                continue
            total += written
            placed.add(dest)
            out.files.append(dest)
    if empty:
        out.skipped.append(f"{shown}: {empty} empty file{'s' if empty > 1 else ''}, not extracted")
    return out


def _folders_below(root: Path, folder: Path) -> None:
    """Make `folder` and the folders between it and `root`, which must exist (FileNotFoundError otherwise): a zip's member
    folders never re-create an archive's folder, nor a knowledge base, that was deleted while it was unpacked (with
    mkdir(parents=True), 768 members of an upload came back into a knowledge base deleted by another process, and
    into the one made again under its name: found by review)."""
    if not root.is_dir():
        raise FileNotFoundError(2, "No such file or directory")
    here = root
    for part in folder.relative_to(root).parts:
        here = here / part
        here.mkdir(exist_ok=True)


def _reason(exc: BaseException) -> str:
    """Why a file could not be stored, without the server's paths."""
    return (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else str(exc)


def unique_name(target: Path, safe: str, given: str, taken: Container[str], folder: bool = False, sidecar: bool = False) -> str:
    """The name an upload (or, folder=True, a zip's or an uploaded folder's folder) is stored under. A
    name already clean replaces the file of that name (an updated version); a name that cleaning
    changed (".bashrc" -> "bashrc"), one already used in this batch, or one held by the other kind (a
    folder where a file goes, a file where a folder goes) never replaces anything: it becomes
    "name (2).ext". sidecar: a kbqa.yaml may be stored as such (one inside an uploaded folder
    describes its folder, as in a zip)."""
    changed = safe != Path(given.replace("\\", "/")).name

    def free(name: str, first: bool) -> bool:
        path = target / name
        if folder:  # an existing folder is this archive's earlier upload: unpacked again over it
            return name not in taken and not path.is_file()
        return name not in taken and not path.is_dir() and not ((changed or not first) and path.exists())

    # a single upload named kbqa.yaml would describe every other upload (ingest.context): kept as a file, never as that
    if free(safe, True) and (folder or sidecar or safe != SIDECAR):
        return safe
    # the first free number after those taken, found in as many looks as the count of them has digits (found by review:
    # counting up from 2 made storing n copies of one name take n² looks, 22 s for 4,000 in one upload)
    if free(numbered(safe, 2, folder), False):
        return numbered(safe, 2, folder)
    taken_up_to, free_at = 2, 4
    while not free(numbered(safe, free_at, folder), False):
        taken_up_to, free_at = free_at, free_at * 2
    while free_at - taken_up_to > 1:  # (a gap among numbers taken otherwise, by files deleted, may be found instead: also free)
        middle = (taken_up_to + free_at) // 2
        taken_up_to, free_at = (taken_up_to, middle) if free(numbered(safe, middle, folder), False) else (middle, free_at)
    return numbered(safe, free_at, folder)


def numbered(name: str, n: int, folder: bool = False) -> str:
    """The n-th name of its kind: "report (2).pdf" (a folder's: "docs (2)")."""
    stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") and not folder else (name, "", "")
    return f"{stem} ({n}){dot}{suffix}"


MAX_FOLDER_DEPTH = 8  # an uploaded folder's files keep at most this many folders of their path (a zip's members: as many parts)


def upload_folder(target: Path, folder: str, taken: set[str], folders: dict[str, str]) -> str | None:
    """Where, under target, a file of an uploaded folder is stored: the folders of its path in the
    folder the user chose ("制度/子目录", the browser's webkitRelativePath without the file), each
    cleaned as a file name is (no "..", no "/"), relative and "/"-joined; "" for none. The first
    one is named as a zip's folder is (unique_name: the same folder uploaded again is updated in
    place, a file of that name is never replaced) once per batch (folders: the names given -> the
    names used). None: a path through a hidden folder (.git, __MACOSX), whose files are not stored."""
    parts = [p for p in folder.replace("\\", "/").split("/") if p.strip() not in ("", ".", "..")]
    if any(p.lstrip().startswith(".") or p == "__MACOSX" for p in parts):
        return None
    if not parts:
        return ""
    parts = parts[:1] + parts[1:][-(MAX_FOLDER_DEPTH - 1):]
    top = folders.get(parts[0])
    if top is None:
        top = unique_name(target, safe_filename(parts[0]), parts[0], taken, folder=True)
        taken.add(top)
        folders[parts[0]] = top
    return "/".join([top, *(safe_filename(p) for p in parts[1:])])


@dataclass
class _Within:
    """The names a batch stored in one of its folders: `taken` (paths relative to the uploads folder)
    read under a prefix, not copied out of it for each file (that was quadratic: 4.1 s to store 5,000
    one-byte files of one folder, 10.5 s for 10,000; now 1.4 s and 2.2 s)."""

    taken: set[str]
    prefix: str

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.prefix + name in self.taken


def short_of_disk(places: Iterable[Path], floor_mb: float, reserve_bytes: int = 0) -> str | None:
    """What to tell an uploader when a disk holding one of places (the home, where a request's body
    lands first) has less than floor_mb free (server.min_free_disk_mb; 0: never), or less than that and
    reserve_bytes (what an ingest about to run may write), else None. Uploads stop there, so that one
    request, or many at once, cannot fill the server's disk (found by review: the web chat's page sends
    a whole folder in one request, which Gradio stored whole, without a cap, before kbqa saw it)."""
    if floor_mb <= 0:
        return None
    for place in places:
        existing = next((p for p in (place, *place.parents) if p.exists()), None)
        try:
            free = shutil.disk_usage(existing).free if existing is not None else None
        except OSError:
            continue
        if free is not None and free - reserve_bytes < floor_mb * 2**20:
            room = (f"{free / 2**20:,.0f} MB free; ingesting them takes up to {reserve_bytes / 2**20:,.0f} MB, which would leave less than "
                    if reserve_bytes else f"{free / 2**20:,.0f} MB free, under ")
            return (f"the server's disk is nearly full ({room}server.min_free_disk_mb = {floor_mb:g} MB): "
                    "nothing more is stored; free some space on the server, then upload again")
    return None


def disk_full(exc: BaseException) -> bool:
    """Whether an error is the disk running out of room (ENOSPC, SQLite's "database or disk is full")."""
    import errno
    import sqlite3

    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


@dataclass
class Budget:
    """Bytes one request may still store, all its files and unpacked archives together; files: how many
    files of new content it may store (server.max_upload_files; None: no cap); held: the content hashes
    the knowledge base holds (and, as they are stored, this request's); room(): why no more may be stored
    now (short_of_disk), looked at before each file and each member of an archive."""

    left: int
    room: Callable[[], str | None] | None = None
    files: int | None = None
    held: set[str] = field(default_factory=set)
    new: int = 0  # files of new content stored so far

    def admit(self, stored: Path) -> bool:
        """Whether a file just written may stay: content the knowledge base or this request holds already
        (an unchanged file sent again, a copy) costs nothing, as its ingest does nothing; other content is
        counted against `files` (found by review: counting every file, a folder sent again to store the
        rest of it past the cap never got further)."""
        if self.files is None:
            return True
        from kbqa.store import sha256_file

        sha = sha256_file(stored)
        if sha in self.held:
            return True
        if self.new >= self.files:
            return False
        self.held.add(sha)
        self.new += 1
        return True

    def files_over(self) -> str:
        return f"not stored: one upload stores at most {self.files} files of new content (server.max_upload_files); upload the rest in another"


def store_upload(
    name: str, source: BinaryIO, target: Path, *, max_bytes: int, taken: set[str] | None = None, budget: Budget | None = None,
    folder: str = "", folders: dict[str, str] | None = None,
) -> Unpacked:
    """Save one uploaded file under target with a safe name, refusing it past max_bytes; a .zip is
    unpacked (up to ten times max_bytes, each member at most max_bytes) into a folder named after it. taken: the names already
    stored in this batch, relative to target (updated here); budget: what the whole request may still store.
    folder: the file's folders in an uploaded folder (upload_folder; folders: that batch's folder
    names, updated here), under which it is stored. The file appears only once it is whole; a
    problem is reported for this file, never raised."""
    out = Unpacked()
    taken = set() if taken is None else taken
    budget = budget or Budget(max_bytes * 10)
    given = re.split(r"[\\/]", name or "")[-1].strip()
    if given.startswith("."):  # a folder's .DS_Store, .gitignore: skipped, as `kbqa ingest` skips them (ingest.exclude)
        rest = given.lstrip(".")
        shown = given[: len(given) - len(rest)][:8] + (safe_filename(rest) if rest else "")
        out.skipped.append(f"{shown}: a hidden file (its name begins with '.'), not stored")
        return out
    shown = safe_filename(name or "upload")
    within = upload_folder(target, folder, taken, {} if folders is None else folders) if folder else ""
    if within is None:
        out.skipped.append(f"{shown}: in a hidden folder (its name begins with '.'), not stored")
        return out
    home = target / within if within else target
    if budget.room is not None and (short := budget.room()) is not None:
        out.skipped.append(f"{shown}: not stored: {short}")
        return out
    partial = target / f".upload-{uuid.uuid4().hex}.part"  # hidden: never ingested
    try:
        target.mkdir(exist_ok=True)  # not parents: never re-create a knowledge base deleted meanwhile
        if within:
            try:
                home.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                out.skipped.append(f"{within}/{shown}: a file has the name of its folder ({within}); not stored")
                return out
            if target.resolve() not in home.resolve().parents:  # (a link in the uploads folder: never followed out)
                out.skipped.append(f"{within}/{shown}: a path outside the uploads folder, not stored")
                return out
        written = 0
        cap = min(max_bytes, budget.left)
        with partial.open("wb") as fh:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > cap:
                    break
                fh.write(chunk)
        if written > cap:
            limit = f"the upload limit of {max_bytes / 2**20:.0f} MB" if cap == max_bytes else "what one request may store"
            out.skipped.append(f"{shown}: over {limit}")
            return out
        prefix = within + "/" if within else ""
        here = _Within(taken, prefix)  # the names stored in its folder in this batch
        if shown.lower().endswith(".zip"):
            unpacked_as = unique_name(home, Path(shown).stem, Path(name or "upload").stem, here, folder=True)
            taken.add(prefix + unpacked_as)
            unpacked = unpack_zip(partial, home / unpacked_as, max_bytes=min(max_bytes * 10, budget.left), shown_as=shown,
                                  member_bytes=max_bytes, room=budget.room, admit=budget)
            budget.left -= sum(f.stat().st_size for f in unpacked.files)
            return unpacked
        if not budget.admit(partial):  # (found by review: one request of two zips stored 10,000 files, and two such held both ingest
            out.skipped.append(f"{shown}: {budget.files_over()}")  # slots for minutes)
            return out
        safe = unique_name(home, shown, name, here, sidecar=bool(within))  # a nameless upload was cleaned to "upload": it replaces nothing
        taken.add(prefix + safe)
        _put(partial, home / safe, out)
        budget.left -= written
        out.files.append(home / safe)
    except OSError as exc:
        out.skipped.append(f"{shown}: cannot be stored ({_reason(exc)})")
    finally:
        partial.unlink(missing_ok=True)
    return out


def discard_upload(uploads: Path, path: Path) -> None:
    """Delete the stored copy of an uploaded file whose entry was removed, and the folders (an
    unpacked zip's) it leaves empty; a file outside the uploads folder (ingested from disk) is the
    user's own and stays."""
    try:
        root, path = uploads.resolve(), path.resolve()
    except OSError:
        return
    if root not in path.parents:
        return
    path.unlink(missing_ok=True)
    folder = path.parent
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break
        folder = folder.parent


@contextmanager
def uploading(target: Path, recorded: Callable[[], set[str]], exclude: list[str], sweep: bool = True,
              recorded_sha: Callable[[str], str | None] | None = None) -> Iterator[list[Path]]:
    """For the block, this process stores into the uploads folder target (a shared lock on
    target/.uploading, which a killed process lets go of). First (sweep), when no other process
    holds it, what killed uploads left there is removed: partial files, and stored files that never
    reached the catalog (recorded(): the paths it holds); and the earlier versions a killed update
    had kept aside are given back where the catalog still describes them (recorded_sha, see
    settle_kept). Yields the files removed.

    A file counts as recorded when any catalog path ends with its path inside target: a home that
    was moved or restored elsewhere, or one folder mounted at two paths, keeps every file. Files
    ingest would skip (kbqa.yaml) are left alone."""
    target.mkdir(exist_ok=True)  # not parents: never re-create a knowledge base deleted meanwhile
    fd = os.open(target / ".uploading", os.O_RDWR | os.O_CREAT, 0o600)
    removed: list[Path] = []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no other process is storing here now
        except BlockingIOError:
            pass
        else:
            if recorded_sha is not None:  # (in a shared store.uploads_dir, sweep off: only what this machine kept)
                settle_kept([(_kept_for(k), k) for k in target.rglob(f"{KEPT_PREFIX}*")
                             if k.is_file() and (sweep or k.name[len(KEPT_PREFIX):].startswith(_HOST))], recorded_sha)
            if sweep:
                removed = _left_behind(target, recorded(), exclude)
                for path in removed:
                    discard_upload(target, path)
        fcntl.flock(fd, fcntl.LOCK_SH)  # another process sweeping in between is waited for here
        yield removed
    finally:
        os.close(fd)  # the lock goes with it


def _left_behind(target: Path, recorded: set[str], exclude: list[str]) -> list[Path]:
    ends = {"/" + Path(p).as_posix().lstrip("/") for p in recorded}
    suffixes = {e[i:] for e in ends for i in range(len(e)) if e[i] == "/"}  # every tail of every recorded path
    left = list(target.rglob(".upload-*.part"))
    for path, _ in ingestable_files([target], exclude):
        if path.is_file() and "/" + path.relative_to(target).as_posix() not in suffixes:
            left.append(path)
    return left
