"""Array cache entries: what goes in comes out, and a payload that does not describe
itself exactly (the SHA-256 check passed, but the content is foreign) is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparky_assets.pipeline.cache import StageCache, decode_arrays, encode_arrays


def test_arrays_and_meta_round_trip_as_writable_copies():
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (5, 7, 4)).astype(np.uint8),
        np.arange(6, dtype=">i4").reshape(2, 3),  # big-endian in, little-endian out
        np.zeros((0, 3), np.uint8),
        np.asfortranarray(rng.random((3, 2))),
    ]
    meta = {"pages": [[5, 7]], "name": "x"}
    got_meta, got = decode_arrays(encode_arrays(meta, arrays))
    assert got_meta == meta and len(got) == len(arrays)
    for a, b in zip(arrays, got):
        assert np.array_equal(a, b) and a.shape == b.shape and b.flags.writeable
    assert got[1].dtype == np.dtype("<i4")


def test_object_arrays_are_never_cached():
    with pytest.raises(TypeError):
        encode_arrays({}, [np.array([object()], dtype=object)])


@pytest.mark.parametrize(
    "payload",
    [
        b"no header line",
        b'{"meta":{},"arrays":[["|u1",[4]]]}\n123',  # short
        b'{"meta":{},"arrays":[["|u1",[2]]]}\n123',  # trailing bytes
        b'{"meta":{},"arrays":[["|O",[1]]]}\n12345678',  # object dtype
        b'{"meta":{},"arrays":[["|u1",[-1]]]}\n',
        b'{"meta":{},"arrays":[["|u1",[true]]]}\n1',
        b'{"meta":[],"arrays":[]}\n',
    ],
)
def test_a_payload_that_does_not_describe_itself_is_refused(payload):
    assert decode_arrays(payload) is None


def test_a_foreign_payload_is_a_miss_with_a_warning(tmp_path):
    cache = StageCache(tmp_path / ".sparky" / "cache")
    cache.put("process", "k" * 64, json.dumps({"meta": {}, "arrays": [["|u1", [9]]]}).encode() + b"\n1")
    assert cache.get_arrays("process", "k" * 64) is None
    assert cache.warnings and "did not decode" in cache.warnings[0]
    cache.put_arrays("process", "k" * 64, {"a": 1}, [np.ones((2, 2), np.uint8)])
    meta, arrays = cache.get_arrays("process", "k" * 64)
    assert meta == {"a": 1} and np.array_equal(arrays[0], np.ones((2, 2), np.uint8))
