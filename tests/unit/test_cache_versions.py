"""Stage cache entries written by another version: an entry of an older cache format, or
one computed with other numpy / Pillow / deflate / sparky-assets versions, is a quiet miss
(deleted, rebuilt, no warning per entry); a corrupt entry still warns."""

from __future__ import annotations

import hashlib
import json

import deflate
import numpy as np
import PIL

from sparky_assets import __version__
from sparky_assets.pipeline.cache import CACHE_FORMAT, MAGIC, StageCache, toolchain
from sparky_assets.pipeline.executor import _version_tag

KEY = "ab" * 32


def entry(payload: bytes, **header) -> bytes:
    """An entry file as a writer with this header wrote it (format 1 wrote these fields)."""
    fields = {"stage": "process", "key": KEY, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    return MAGIC + json.dumps({**fields, **header}, sort_keys=True).encode() + b"\n" + payload


def plant(cache: StageCache, raw: bytes):
    path = cache.root / "process" / KEY[:2] / KEY
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def test_the_toolchain_names_every_library_whose_results_are_cached():
    tag = toolchain()
    for part in (__version__, f"numpy {np.__version__}", f"Pillow {PIL.__version__}", f"deflate {deflate.__version__}"):
        assert part in tag
    assert _version_tag() == tag  # a Ray cluster's workers must match the same


def test_entries_of_an_older_format_are_dropped_without_a_warning_each(tmp_path):
    cache = StageCache(tmp_path / ".sparky" / "cache")
    for n in range(3):
        path = plant(cache, entry(b"old payload %d" % n, format=CACHE_FORMAT - 1))
        assert cache.get("process", KEY) is None and not path.exists()
    assert cache.warnings == [] and cache.stale == 3


def test_an_entry_another_toolchain_computed_is_a_miss(tmp_path):
    cache = StageCache(tmp_path / ".sparky" / "cache")
    older = toolchain().replace(f"numpy {np.__version__}", "numpy 1.26.0")
    path = plant(cache, entry(b"payload", format=CACHE_FORMAT, toolchain=older))
    assert cache.get("process", KEY) is None and not path.exists()
    assert cache.warnings == [] and cache.stale == 1
    cache.put("process", KEY, b"payload")  # rebuilt under this toolchain: a hit
    assert cache.get("process", KEY) == b"payload"


def test_a_corrupt_entry_of_this_version_still_warns(tmp_path):
    cache = StageCache(tmp_path / ".sparky" / "cache")
    raw = entry(b"payload", format=CACHE_FORMAT, toolchain=toolchain())
    plant(cache, raw[:-1] + b"X")  # one flipped byte
    assert cache.get("process", KEY) is None
    assert cache.stale == 0 and "corrupt or foreign" in cache.warnings[0]
    plant(cache, entry(b"payload", format="1", toolchain=toolchain()))  # not even a format number
    assert cache.get("process", KEY) is None and len(cache.warnings) == 2
