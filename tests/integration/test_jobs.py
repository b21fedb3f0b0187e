"""``build --jobs N``: the CPU stages in N local processes give the same bytes as the
serial path (``--jobs 1``), on the example and on a 200-sprite procedural project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sparky_assets.cli.main import main
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


def test_200_sprites_jobs_2_is_byte_identical_and_really_parallel(tmp_path):
    roots = []
    for jobs in (1, 2):
        root = tmp_path / f"jobs{jobs}"
        root.mkdir()
        write_project(root, 200)
        executor = LocalExecutor(jobs) if jobs > 1 else None
        builder = Builder(root, executor=executor)
        try:
            report = builder.build(BuildOptions())
        finally:
            builder.close()
        assert len(report.ran["generate"]) == 200 and len(report.ran["process"]) == 200
        if executor is not None:
            assert executor.sent >= 4  # generate and process chunks went to the pool
        roots.append((root, report))
    (one, serial), (two, parallel) = roots
    assert snapshot(one) == snapshot(two)
    assert (one / "sparky.lock").read_bytes() == (two / "sparky.lock").read_bytes()
    for stage in ("generate", "process", "pack", "export"):  # the same work, reported in the same order
        assert serial.ran[stage] == parallel.ran[stage]
        assert serial.cached[stage] == parallel.cached[stage]

    # an edit that re-processes some sprites (a palette edit) also goes through the pool
    for root in (one, two):
        (root / "one.hex").write_text("000000\nffffff\nff0000\n00ff00\n0000ff\n808080\n")
    reports = []
    for root, jobs in ((one, 1), (two, 2)):
        builder = Builder(root, executor=LocalExecutor(jobs) if jobs > 1 else None)
        try:
            reports.append(builder.build(BuildOptions()))
        finally:
            builder.close()
    assert reports[0].ran == reports[1].ran and reports[0].ran["process"] == ["s0000"]
    assert snapshot(one) == snapshot(two)


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
