"""``build --jobs N``: the CPU stages in N local processes give the same bytes as the
serial path (``--jobs 1``), on the example and on a 200-sprite procedural project —
outputs, lock, and the stage-cache entries the workers write themselves (process,
pack, layout: never written again by the build's process); a worker killed mid-build
leaves a cache whose every entry verifies, and the next build uses it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparky_assets.cli.main import main
from sparky_assets.errors import BuildFailed
from sparky_assets.pipeline.cache import StageCache
from sparky_assets.pipeline.engine import Builder, BuildOptions
from sparky_assets.pipeline.executor import Executor, LocalExecutor, chunked, merge_stats
from tests.helpers import REPO, copy_example, snapshot

sys.path.insert(0, str(REPO / "bench"))
from incremental import write_project  # noqa: E402


def test_chunks_keep_order_and_size():
    items = list(range(10))
    assert chunked(items, 3, 1) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert chunked(items, 8, 4) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # at least 4 a chunk
    assert chunked(items, 4, 50) == [items]
    assert chunked([], 4, 1) == []
    assert merge_stats(
        [{"images": 2, "load_s": 0.5, "device": "cpu"}, {"images": 3, "load_s": 0.25, "device": "cpu"}]
    ) == {
        "images": 5,
        "load_s": 0.75,
        "device": "cpu",
    }


def test_example_jobs_2_is_byte_identical_to_jobs_1(tmp_path):
    one = copy_example(tmp_path / "one")
    two = copy_example(tmp_path / "two")
    assert main(["-q", "build", "--jobs", "1", str(one)]) == 0
    assert main(["-q", "build", "--jobs", "2", str(two)]) == 0
    assert snapshot(one) == snapshot(two)
    assert len(snapshot(one)) > 40


def cache_entries(root: Path) -> dict[str, bytes]:
    """``stage/key`` → bytes of every stage-cache entry of a project."""
    cache = root / ".sparky" / "cache"
    return {f"{p.parts[-3]}/{p.name}": p.read_bytes() for p in cache.glob("*/*/*") if p.is_file()}


def test_200_sprites_jobs_2_is_byte_identical_and_really_parallel(tmp_path, monkeypatch):
    # what the build's own process writes into the stage cache (the pool's workers are
    # other processes: their writes are not seen here)
    written_here: list[str] = []
    put = StageCache.put

    def recording_put(self, stage, key, payload):
        written_here.append(stage)
        return put(self, stage, key, payload)

    monkeypatch.setattr(StageCache, "put", recording_put)
    roots = []
    for jobs in (1, 2):
        root = tmp_path / f"jobs{jobs}"
        root.mkdir()
        write_project(root, 200)
        executor = LocalExecutor(jobs) if jobs > 1 else None
        builder = Builder(root, executor=executor)
        written_here.clear()
        try:
            report = builder.build(BuildOptions())
        finally:
            builder.close()
        assert len(report.ran["generate"]) == 200 and len(report.ran["process"]) == 200
        assert len(report.ran["pack"]) == 2
        if executor is not None:
            # 8 generate (+ process) chunks and one pack task per atlas went to the pool
            assert executor.sent == 8 + 2
            # the workers wrote the process, pack and layout entries; this process did not
            assert not {"process", "pack", "layout"} & set(written_here)
        else:
            assert {"process", "pack", "layout"} <= set(written_here)
        roots.append((root, report))
    (one, serial), (two, parallel) = roots
    assert snapshot(one) == snapshot(two)
    assert (one / "sparky.lock").read_bytes() == (two / "sparky.lock").read_bytes()
    # the same entries, byte for byte: packed in a worker = packed here (layout included)
    entries = cache_entries(one)
    assert entries == cache_entries(two)
    assert sum(e.startswith("process/") for e in entries) == 200
    assert sum(e.startswith(("pack/", "layout/")) for e in entries) == 4
    for stage in ("generate", "process", "pack", "export"):  # the same work, reported in the same order
        assert serial.ran[stage] == parallel.ran[stage]
        assert serial.cached[stage] == parallel.cached[stage]

    # an edit that re-processes one sprite (a palette edit): the same bytes; one chunk's
    # worth of work runs in the build's process, and a project with a stage cache does
    # not start the pool early, so no worker process is started at all
    for root in (one, two):
        (root / "one.hex").write_text("000000\nffffff\nff0000\n00ff00\n0000ff\n808080\n")
    reports = []
    for root, jobs in ((one, 1), (two, 2)):
        executor = LocalExecutor(jobs) if jobs > 1 else Executor()
        builder = Builder(root, executor=executor)
        try:
            reports.append(builder.build(BuildOptions()))
            if jobs > 1:
                assert executor.worker_pids() == [] and executor.sent == 0
        finally:
            builder.close()
    assert reports[0].ran == reports[1].ran and reports[0].ran["process"] == ["s0000"]
    assert snapshot(one) == snapshot(two)


def test_a_worker_killed_mid_build_leaves_a_cache_that_verifies(tmp_path):
    """SIGKILL one pool worker as soon as the first generate chunk is back (the others
    are still generating, processing and writing cache entries): the build fails with
    a clear error, every entry left in the cache verifies, and the next build uses the
    entries and ends byte-identical to a serial build."""
    root = tmp_path / "killed"
    root.mkdir()
    write_project(root, 200)
    executor = LocalExecutor(2)
    killed: list[int] = []

    def kill_one(stage: str, done: int, total: int) -> None:
        if stage == "generate" and done and not killed:
            killed.append(executor.worker_pids()[0])
            os.kill(killed[0], signal.SIGKILL)

    builder = Builder(root, executor=executor, on_progress=kill_one)
    try:
        with pytest.raises(BuildFailed, match="a worker process died"):
            builder.build(BuildOptions())
    finally:
        builder.close()
    assert killed
    entries = cache_entries(root)
    assert any(e.startswith("process/") for e in entries)  # the first chunk's, at least
    cache = StageCache(root / ".sparky" / "cache")
    for entry in entries:
        stage, key = entry.split("/")
        assert cache.get(stage, key) is not None, entry
    assert cache.warnings == []
    assert not (root / "sparky.lock").exists()  # nothing of the failed build was committed

    builder = Builder(root, executor=LocalExecutor(2))
    try:
        report = builder.build(BuildOptions())
    finally:
        builder.close()
    assert report.cached["process"] > 0 and not report.warnings
    serial = tmp_path / "serial"
    serial.mkdir()
    write_project(serial, 200)
    Builder(serial).build(BuildOptions())
    assert snapshot(root) == snapshot(serial)


def test_a_worker_error_is_the_same_typed_error():
    """An error raised in a worker process comes back as the error this process would
    raise: a SparkyError keeps its class and diagnostics; anything else keeps its name."""
    from sparky_assets import registry
    from sparky_assets.errors import InvalidInput

    pool = LocalExecutor(2)
    try:
        for executor in (Executor(), pool):
            with pytest.raises(InvalidInput) as typed:
                executor.map(registry.generator, ["procedural", "no-such-generator"])
            assert "no-such-generator" in str(typed.value)
            with pytest.raises(Exception) as other:
                executor.map(int, ["1", "x"])
            assert getattr(other.value, "type_name", type(other.value).__name__) == "ValueError"
            assert "invalid literal for int()" in str(other.value)
        assert pool.sent == 4
    finally:
        pool.close()


def test_cli_refuses_mixed_executor_options(tmp_path):
    root = copy_example(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "sparky_assets", "build", "--ray-address", "auto", str(root)],
        capture_output=True,
        text=True,
        cwd=Path(REPO),
        timeout=120,
    )
    assert out.returncode == 2 and "--ray-address needs --executor ray" in out.stderr
    assert not (root / "build").exists()


def test_frames_as_asked_answers_for_anything_a_generator_returns():
    """The one check of a generator's frames (the build's, and a worker's before it
    processes them): count, size, RGBA bytes — and a non-array is a no, not a crash."""
    from sparky_assets.pipeline.executor import FrameShape, frames_as_asked

    good = [np.zeros((8, 6, 4), np.uint8), np.zeros((8, 6, 4), np.uint8)]
    assert frames_as_asked(good, 2, 8, 6)
    assert not frames_as_asked(good, 3, 8, 6)  # too few
    assert not frames_as_asked(good, 2, 6, 8)  # transposed
    assert not frames_as_asked([good[0], good[1].astype(np.float32)], 2, 8, 6)
    assert not frames_as_asked([[[0, 0, 0, 255]] * 6] * 8, 1, 8, 6)  # nested lists
    assert not frames_as_asked([None], 1, 8, 6)
    shape = FrameShape((8, 6, 4), np.dtype(np.uint8))
    assert not frames_as_asked([shape], 1, 8, 6)
    assert frames_as_asked([shape], 1, 8, 6, (np.ndarray, FrameShape))
