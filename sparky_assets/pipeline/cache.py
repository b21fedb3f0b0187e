"""The content-addressed stage cache (``.sparky/cache``).

An entry is addressed by ``(stage, key)`` where the key is the hash of everything the
stage's output depends on (see the engine). Each entry file carries a header with a
magic string, the cache format version, the toolchain that computed it
(:func:`toolchain`), its own key and the SHA-256 of its payload. An entry of another
format version or toolchain (sparky-assets, numpy, Pillow or deflate upgraded) is
stale: deleted quietly and treated as a miss. One whose header or payload does not
check out (truncated, bit-flipped, another key) is reported, deleted and treated as a
miss. Neither is ever used. Writes are atomic, so a crash or kill leaves complete entries or none.
The build's worker processes (``--jobs``) write the entries they compute themselves
(:func:`worker_cache`; same format, same atomic write), and the build adopts them
(:meth:`StageCache.adopt`).
The whole folder is safe to delete; above a size cap (1 GiB, ``SPARKY_CACHE_MAX_MB``)
the least recently used entries are evicted after a build. The cap is read (and
checked: a whole number of megabytes) when the cache is opened, before a build writes
anything. The folder must stay inside the project (``.sparky/`` may not be a symlink
leading elsewhere): :mod:`.safepath` checks it before anything is read or deleted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Diagnostic, InvalidInput, SparkyError
from . import safepath
from .fsutil import atomic_write

CACHE_DIR = "cache"
"""The stage cache's folder in a project's state folder (``.sparky``)."""


def cache_dir(root: Path) -> Path:
    """A project's stage cache folder: ``<root>/.sparky/cache``."""
    return Path(root) / safepath.STATE_DIR / CACHE_DIR


CACHE_FORMAT = 2
"""2: array entries are a JSON line + raw bytes (:func:`encode_arrays`), not ``.npz``."""
MAGIC = b"SPARKY-CACHE\n"


@functools.cache
def toolchain() -> str:
    """Everything besides its key that a cached value depends on: this sparky-assets
    and its engine version, Python, and the libraries whose results are in the values
    (numpy's arithmetic, Pillow's decoding and resampling, libdeflate's bytes in every
    PNG). Also what a Ray cluster's workers must match (:mod:`.executor`)."""
    import deflate
    import PIL

    from .. import __version__
    from .stages import ENGINE_VERSION

    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return (
        f"sparky-assets {__version__} engine {ENGINE_VERSION} python {python} "
        f"numpy {np.__version__} Pillow {PIL.__version__} deflate {deflate.__version__}"
    )


DEFAULT_MAX_BYTES = 1 << 30
"""Cache size above which least-recently-used entries are evicted (``SPARKY_CACHE_MAX_MB``)."""
MAX_ENV = "SPARKY_CACHE_MAX_MB"
ENTRY_LIMIT = 1 << 30
STALE: Any = object()
"""What :meth:`StageCache._verify` returns for an entry another version wrote."""
REVIEW_STAGE = "review"
"""Cache folder of generated sprites' reviews (raw model images and grids), by generate key."""


def cache_max_bytes() -> int:
    """The size cap from ``SPARKY_CACHE_MAX_MB`` (default 1024); bad input (exit 2) when
    it is not a whole number of megabytes."""
    raw = os.environ.get(MAX_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_BYTES
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise InvalidInput(
            Diagnostic(
                "the cache size cap is not a whole number of megabytes",
                key=MAX_ENV,
                expected="an integer >= 0, such as 1024",
                found=repr(raw[:40]),
                hint=f"unset {MAX_ENV} for the default (1024)",
            )
        )
    return int(text) << 20


@dataclass
class StageCache:
    root: Path
    warnings: list[str] = field(default_factory=list)
    used: set[Path] = field(default_factory=set)
    """Entries read or written by this build: never evicted by :meth:`prune`."""
    written: int = 0
    stale: int = 0
    """Entries of another format version or toolchain this build found and deleted (no
    warning: an upgrade makes them all stale at once, and a miss is only slower)."""
    max_bytes: int = -1
    """Size cap; -1: from the environment (:func:`cache_max_bytes`)."""
    deferred: list[Callable[[], None]] | None = None
    """When a list (a ``watch`` build): writes wait there until :meth:`flush`, which the
    session calls once its messages are out (a cache entry is only ever a speed-up)."""

    def flush(self) -> None:
        """Write what was deferred; from now on writes go straight to disk."""
        pending, self.deferred = self.deferred or [], None
        for write in pending:
            write()

    def __post_init__(self) -> None:
        if self.max_bytes < 0:
            self.max_bytes = cache_max_bytes()
        safepath.require_inside(self.root.parent.parent, self.root, what="cache folder")

    def _path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def has(self, stage: str, key: str) -> bool:
        """An entry exists (not yet verified: :meth:`get` does that)."""
        return self._path(stage, key).exists()

    def get(self, stage: str, key: str) -> bytes | None:
        path = self._path(stage, key)
        try:
            raw = safepath.read_regular(path, max(self.max_bytes, ENTRY_LIMIT))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError):  # a folder, a FIFO, a huge planted file: never read it
            raw = b""
        self.used.add(path)
        try:
            os.utime(path)  # recency for eviction
        except OSError:
            pass
        payload = self._verify(raw, stage, key)
        if payload is STALE:
            self.stale += 1
            safepath.discard(path)
            return None
        if payload is None:
            self.warnings.append(f"cache entry {stage}/{key[:12]} was corrupt or foreign; rebuilt")
            safepath.discard(path)
        return payload

    @staticmethod
    def _verify(raw: bytes, stage: str, key: str) -> bytes | None:
        """The payload; :data:`STALE` for a well-formed entry of this stage and key that
        another format version or toolchain wrote; None for anything else."""
        if not raw.startswith(MAGIC):
            return None
        end = raw.find(b"\n", len(MAGIC))
        if end < 0:
            return None
        try:
            header = json.loads(raw[len(MAGIC) : end])
        except ValueError:
            return None
        payload = raw[end + 1 :]
        if not isinstance(header, dict) or header.get("stage") != stage or header.get("key") != key:
            return None
        if header.get("format") != CACHE_FORMAT or header.get("toolchain") != toolchain():
            # format 1 headers had the same fields (no toolchain); an int check keeps garbage out
            return STALE if isinstance(header.get("format"), int) else None
        if header.get("size") != len(payload) or header.get("sha256") != hashlib.sha256(payload).hexdigest():
            return None
        return payload

    def put(self, stage: str, key: str, payload: bytes) -> None:
        if self.deferred is not None:
            self.deferred.append(lambda: self.put(stage, key, payload))
            return
        header = {
            "format": CACHE_FORMAT,
            "toolchain": toolchain(),
            "stage": stage,
            "key": key,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        path = self._path(stage, key)
        for folder in (self.root, path.parent.parent, path.parent):  # planted files where folders go
            if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()):
                safepath.discard(folder)
        try:
            atomic_write(
                path,
                MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload,
                fsync=False,
                tmp_dir=self.root.parent / "tmp",
            )
        except SparkyError as exc:  # a cache that cannot be written (full disk, planted file) is only slower
            self.warnings.append(f"cache entry {stage}/{key[:12]} not saved: {exc.diagnostics[0].message}")
            return
        self.used.add(path)
        self.written += 1

    def adopt(self, stage: str, key: str) -> None:
        """Count an entry a worker process wrote for this build as this build's own
        (kept by :meth:`prune`, which then runs)."""
        self.used.add(self._path(stage, key))
        self.written += 1

    # -- typed helpers -------------------------------------------------------

    def get_arrays(self, stage: str, key: str) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        payload = self.get(stage, key)
        if payload is None:
            return None
        try:
            decoded = decode_arrays(payload)
        except Exception:  # noqa: BLE001 - a payload that does not decode is corrupt
            decoded = None
        if decoded is None:
            self.warnings.append(f"cache entry {stage}/{key[:12]} did not decode; rebuilt")
            safepath.discard(self._path(stage, key))
        return decoded

    def put_arrays(self, stage: str, key: str, meta: dict[str, Any], arrays: list[np.ndarray]) -> None:
        if self.deferred is not None:  # encoded when written
            self.deferred.append(lambda: self.put(stage, key, encode_arrays(meta, arrays)))
            return
        self.put(stage, key, encode_arrays(meta, arrays))

    def put_review(self, key: str, frames: list[dict[str, Any]]) -> None:
        """A generated sprite's review (:attr:`~sparky_assets.generators.base.Generator.last_review`)
        under its generate key: one JSON line (per frame its size, grid and PNG length),
        then the frames' PNG bytes."""
        meta = [{k: v for k, v in f.items() if k != "png"} | {"bytes": len(f["png"])} for f in frames]
        self.put(
            REVIEW_STAGE, key, json.dumps(meta, sort_keys=True).encode() + b"\n" + b"".join(f["png"] for f in frames)
        )

    def get_review(self, key: str) -> list[dict[str, Any]] | None:
        """What :meth:`put_review` kept (``None`` when absent or not decodable)."""
        payload = self.get(REVIEW_STAGE, key)
        if payload is None:
            return None
        try:
            end = payload.index(b"\n")
            frames, offset = json.loads(payload[:end]), end + 1
            for frame in frames:
                size = int(frame.pop("bytes"))
                frame["png"] = payload[offset : offset + size]
                offset += size
            if offset != len(payload) or not all(f["png"].startswith(b"\x89PNG") for f in frames):
                raise ValueError("sizes do not add up")
        except (ValueError, TypeError, KeyError, AttributeError):
            self.warnings.append(f"cache entry {REVIEW_STAGE}/{key[:12]} did not decode")
            safepath.discard(self._path(REVIEW_STAGE, key))
            return None
        return frames

    def prune(self, max_bytes: int | None = None) -> int:
        """Evict least-recently-used entries until the cache fits ``max_bytes``; entries
        this build used are kept. Only walks the folder when this build wrote entries
        (a no-op build costs nothing). Returns the number of entries removed."""
        if max_bytes is None:
            max_bytes = self.max_bytes
        if not self.written or not self.root.exists():
            return 0
        entries = []
        total = 0
        for path in self.root.glob("*/*/*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            total += st.st_size
            if path not in self.used:
                entries.append((st.st_mtime_ns, str(path), st.st_size))
        removed = 0
        for _, path, size in sorted(entries):
            if total <= max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    def clear(self) -> int:
        """Delete every entry; returns the number of files removed."""
        if not self.root.exists():
            return 0
        count = sum(1 for p in self.root.rglob("*") if p.is_file())
        shutil.rmtree(self.root)
        return count


def worker_cache(root: str | Path | None) -> StageCache | None:
    """The build's stage cache, opened in a worker process that shares its disk (None:
    the worker writes nothing, the build does). A write that fails here is left to the
    build, which writes the entry itself (and warns if that fails too)."""
    if root is None:
        return None
    return StageCache(Path(root), max_bytes=ENTRY_LIMIT)


def put_arrays_from_worker(cache: StageCache | None, stage: str, key: str, meta: dict, arrays: list) -> bool:
    """:meth:`StageCache.put_arrays` in a worker: whether the entry is now on disk."""
    if cache is None:
        return False
    before = cache.written
    cache.put_arrays(stage, key, meta, arrays)
    return cache.written > before


ARRAY_DTYPES = frozenset({"|u1", "<u2", "<u4", "<i4", "<i8", "<f4", "<f8", "|b1"})
"""What an array entry may hold (no object arrays: a cache entry never runs code)."""


def encode_arrays(meta: dict[str, Any], arrays: list[np.ndarray]) -> bytes:
    """``meta`` and ``arrays`` as one payload: a JSON line (the meta, and each array's
    dtype and shape), then the arrays' bytes back to back (C order, little-endian). A
    few microseconds where ``np.savez`` (a zip archive) took about a millisecond."""
    parts, described = [], []
    for array in arrays:
        array = np.ascontiguousarray(array)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        if array.dtype.str not in ARRAY_DTYPES:
            raise TypeError(f"cannot cache an array of {array.dtype}")
        described.append([array.dtype.str, list(array.shape)])
        parts.append(array.tobytes())
    head = json.dumps({"meta": meta, "arrays": described}, sort_keys=True, separators=(",", ":")).encode()
    return b"".join([head, b"\n", *parts])


def decode_arrays(payload: bytes) -> tuple[dict[str, Any], list[np.ndarray]] | None:
    """The meta and arrays of :func:`encode_arrays` (writable copies); None when the
    payload does not describe itself exactly."""
    end = payload.find(b"\n")
    if end < 0:
        return None
    head = json.loads(payload[:end])
    if not isinstance(head, dict) or not isinstance(head.get("meta"), dict) or not isinstance(head.get("arrays"), list):
        return None
    arrays, offset = [], end + 1
    for entry in head["arrays"]:
        if not (
            isinstance(entry, list) and len(entry) == 2 and entry[0] in ARRAY_DTYPES and isinstance(entry[1], list)
        ):
            return None
        dtype, shape = np.dtype(entry[0]), entry[1]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            return None
        size = dtype.itemsize * math.prod(shape)
        if offset + size > len(payload):
            return None
        arrays.append(np.frombuffer(payload, dtype, math.prod(shape), offset).reshape(shape).copy())
        offset += size
    return (head["meta"], arrays) if offset == len(payload) else None
