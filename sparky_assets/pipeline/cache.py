"""The content-addressed stage cache (``.sparky/cache``).

An entry is addressed by ``(stage, key)`` where the key is the hash of everything the
stage's output depends on (see the engine). Each entry file carries a header with a
magic string, the cache format version, its own key and the SHA-256 of its payload;
an entry whose header or payload does not check out (truncated, bit-flipped, from
another format version, another key) is reported, deleted and treated as a miss —
never used. Writes are atomic, so a crash or kill leaves complete entries or none.
The whole folder is safe to delete; above a size cap (1 GiB, ``SPARKY_CACHE_MAX_MB``)
the least recently used entries are evicted after a build.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .fsutil import atomic_write

CACHE_FORMAT = 1
MAGIC = b"SPARKY-CACHE\n"


DEFAULT_MAX_BYTES = 1 << 30
"""Cache size above which least-recently-used entries are evicted (``SPARKY_CACHE_MAX_MB``)."""


@dataclass
class StageCache:
    root: Path
    warnings: list[str] = field(default_factory=list)
    used: set[Path] = field(default_factory=set)
    """Entries read or written by this build: never evicted by :meth:`prune`."""
    written: int = 0

    def _path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def has(self, stage: str, key: str) -> bool:
        """An entry exists (not yet verified: :meth:`get` does that)."""
        return self._path(stage, key).exists()

    def get(self, stage: str, key: str) -> bytes | None:
        path = self._path(stage, key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        self.used.add(path)
        try:
            os.utime(path)  # recency for eviction
        except OSError:
            pass
        payload = self._verify(raw, stage, key)
        if payload is None:
            self.warnings.append(f"cache entry {stage}/{key[:12]} was corrupt or foreign; rebuilt")
            path.unlink(missing_ok=True)
        return payload

    @staticmethod
    def _verify(raw: bytes, stage: str, key: str) -> bytes | None:
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
        if (
            not isinstance(header, dict)
            or header.get("format") != CACHE_FORMAT
            or header.get("stage") != stage
            or header.get("key") != key
        ):
            return None
        if header.get("size") != len(payload) or header.get("sha256") != hashlib.sha256(payload).hexdigest():
            return None
        return payload

    def put(self, stage: str, key: str, payload: bytes) -> None:
        header = {
            "format": CACHE_FORMAT,
            "stage": stage,
            "key": key,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        path = self._path(stage, key)
        atomic_write(
            path,
            MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload,
            fsync=False,
            tmp_dir=self.root.parent / "tmp",
        )
        self.used.add(path)
        self.written += 1

    # -- typed helpers -------------------------------------------------------

    def get_arrays(self, stage: str, key: str) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        payload = self.get(stage, key)
        if payload is None:
            return None
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                arrays = [data[f"a{i}"] for i in range(meta.pop("__count"))]
        except Exception:  # noqa: BLE001 - a payload that does not decode is corrupt
            self.warnings.append(f"cache entry {stage}/{key[:12]} did not decode; rebuilt")
            self._path(stage, key).unlink(missing_ok=True)
            return None
        return meta, arrays

    def put_arrays(self, stage: str, key: str, meta: dict[str, Any], arrays: list[np.ndarray]) -> None:
        buf = io.BytesIO()
        blob = json.dumps({**meta, "__count": len(arrays)}, sort_keys=True).encode()
        np.savez(buf, meta=np.frombuffer(blob, dtype=np.uint8), **{f"a{i}": a for i, a in enumerate(arrays)})
        self.put(stage, key, buf.getvalue())

    def prune(self, max_bytes: int | None = None) -> int:
        """Evict least-recently-used entries until the cache fits ``max_bytes``; entries
        this build used are kept. Only walks the folder when this build wrote entries
        (a no-op build costs nothing). Returns the number of entries removed."""
        if max_bytes is None:
            max_bytes = int(os.environ.get("SPARKY_CACHE_MAX_MB", DEFAULT_MAX_BYTES >> 20)) << 20
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
