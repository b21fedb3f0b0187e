"""The read context: every file a build reads goes through a :class:`ReadContext`,
which records it as (path, content digest).

The record is what the build depended on, and the one place that knows it:
``watch`` watches exactly the recorded paths; a long-lived builder reuses the loaded
manifest while the files read to load it are unchanged. A new kind of input (a plugin's
recipe file, a model folder) needs no edit anywhere else: reading it through the
context is enough.

Invariants: a path is recorded absolute and resolved; a file looked for but missing is
recorded too (``ABSENT``), so its appearance counts as a change; a digest is of the
content (never an mtime) — stats only let :meth:`ReadContext.unchanged` skip re-hashing
a file whose size, mtime and inode are all the same.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

ABSENT = "absent"
"""Recorded for a path that was looked for and not found."""
PRESENT = "present"
"""Recorded for a path whose existence (not content) was checked."""
LISTING = "listing:"
"""Prefix of what is recorded for a folder whose entries were listed (then a digest of
its entry names and kinds): a file added to, removed from or renamed in it is a change."""


def _scan(folder: Path) -> tuple[str, list[os.DirEntry]] | None:
    """``folder``'s entries and their digest (names, and which are folders); None when
    it cannot be listed."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return None
    names = sorted(f"{e.name}/" if e.is_dir(follow_symlinks=False) else e.name for e in entries)
    return LISTING + hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape")).hexdigest(), entries


def _listing_digest(folder: Path) -> str | None:
    scan = _scan(folder)
    return scan[0] if scan else None


def _resolved(path: Path) -> Path:
    """``path`` resolved; a symlink loop is an ``OSError`` (ELOOP) like any unreadable path."""
    try:
        return Path(path).resolve()
    except RuntimeError as exc:  # Python 3.11 reports a loop this way
        raise OSError(errno.ELOOP, str(exc), str(path)) from None


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode)


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file. Anything else (a FIFO would block the build forever,
    a device never end) raises ``OSError`` like a missing file: inputs are untrusted."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class ReadContext:
    """Reads files and records what was read. Plugins receive one (``reads``) in every
    method the build calls; a plugin called directly may be given none
    (:func:`ensure_reads` makes a throwaway one)."""

    def __init__(self) -> None:
        self.record: dict[Path, str] = {}
        """resolved path → content digest (SHA-256 hex, or a plugin's own digest), ``PRESENT`` or ``ABSENT``."""
        self._stamps: dict[Path, tuple | None] = {}
        self._foreign: set[Path] = set()
        """Paths whose digest a plugin computed its own way: changed when their stats change."""

    def _note(self, path: Path, digest: str, stamp: tuple | None) -> None:
        # a content digest beats an existence check of the same file
        if self.record.get(path) not in (None, ABSENT, PRESENT) and digest in (PRESENT, ABSENT):
            return
        self.record[path] = digest
        self._stamps[path] = stamp

    def read_bytes(self, path: Path) -> bytes:
        """The file's bytes (``OSError`` as :meth:`Path.read_bytes` raises it), recorded."""
        path = _resolved(path)
        stamp = _stamp(path)
        try:
            data = _read_regular(path)
        except OSError:
            self._note(path, ABSENT, None)
            raise
        self._note(path, hashlib.sha256(data).hexdigest(), stamp)
        return data

    def read_text(self, path: Path, encoding: str = "utf-8", errors: str = "replace") -> str:
        return self.read_bytes(path).decode(encoding, errors)

    def is_file(self, path: Path) -> bool:
        """Whether ``path`` is a file; recorded (its content when it is read later)."""
        try:
            path = _resolved(path)
        except OSError:
            return False
        stamp = _stamp(path)
        found = path.is_file()
        self._note(path, PRESENT if found else ABSENT, stamp)
        return found

    def list_folder(self, folder: Path, recursive: bool = True) -> list[Path]:
        """The entries of ``folder`` (every level with ``recursive``), sorted, as
        ``folder.rglob("*")`` / ``iterdir()`` give them; each folder listed is recorded,
        so a weight file dropped into a model folder later is a change. A folder that
        cannot be listed is recorded missing and lists nothing."""
        folder = _resolved(folder)
        found: list[Path] = []
        pending = [folder]
        while pending:
            current = pending.pop()
            stamp = _stamp(current)
            scan = _scan(current)
            self._note(current, scan[0] if scan else ABSENT, stamp if scan else None)
            if scan is None:
                continue
            for entry in scan[1]:
                found.append(Path(entry.path))
                if recursive and entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
        return sorted(found)

    def note(self, path: Path, digest: str) -> None:
        """Record a file a plugin hashed itself (a model's sampled weights digest)."""
        path = Path(path).resolve()
        self._note(path, digest, _stamp(path))
        self._foreign.add(path)

    def merge(self, other: ReadContext) -> None:
        for path, digest in other.record.items():
            self._note(path, digest, other._stamps.get(path))
        self._foreign |= other._foreign

    def paths(self) -> set[Path]:
        return set(self.record)

    def same_content(self, paths: Iterable[Path]) -> bool:
        """Whether each of ``paths`` was read by this context and still has the content it
        had then (hashed now: a change notice is the reason to ask, so stats are not
        trusted — a same-size rewrite within one mtime tick keeps them). A path not read,
        only checked for, looked for and missing, or digested by a plugin is "changed"."""
        for path in paths:
            path = Path(path).resolve()
            digest = self.record.get(path)
            if digest in (None, ABSENT, PRESENT) or path in self._foreign:
                return False
            if digest.startswith(LISTING):
                if _listing_digest(path) != digest:
                    return False
                continue
            try:
                if hashlib.sha256(_read_regular(path)).hexdigest() != digest:
                    return False
            except OSError:
                return False
        return True

    def unchanged(self) -> bool:
        """Whether every recorded file still is what was read (stats first, then content)."""
        return not self.changed(first_only=True)

    def changed(self, first_only: bool = False) -> list[Path]:
        """The recorded files that are no longer what was read (stats first, then
        content); only the first found with ``first_only``."""
        found = []
        for path, digest in self.record.items():
            stamp = _stamp(path)
            if stamp == self._stamps.get(path) and (stamp is not None or digest == ABSENT):
                continue
            if digest == ABSENT:
                if stamp is None:
                    continue
            elif digest.startswith(LISTING):
                if stamp is not None and _listing_digest(path) == digest:
                    self._stamps[path] = stamp  # same entries (a file in it was rewritten)
                    continue
            elif stamp is not None and path.is_file() and path not in self._foreign:
                if digest == PRESENT:
                    continue
                try:
                    if hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                        self._stamps[path] = stamp  # same content, new stats: no re-hash next time
                        continue
                except OSError:
                    pass
            found.append(path)
            if first_only:
                break
        return found

    def without(self, paths: Iterable[Path]) -> ReadContext:
        """A copy that forgets ``paths`` (resolved paths, as recorded)."""
        drop = set(paths)
        copy = ReadContext()
        copy.record = {p: d for p, d in self.record.items() if p not in drop}
        copy._stamps = {p: s for p, s in self._stamps.items() if p not in drop}
        copy._foreign = self._foreign - drop
        return copy


def ensure_reads(reads: ReadContext | None) -> ReadContext:
    """``reads``, or a throwaway context for a plugin called outside a build."""
    return reads if reads is not None else ReadContext()
