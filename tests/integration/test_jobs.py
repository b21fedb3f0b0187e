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
import time
from pathlib import Path

import numpy as np
import pytest

from sparky_assets.cli.main import main
from sparky_assets.errors import BuildFailed
from sparky_assets.pipeline.cache import StageCache
from sparky_assets.pipeline.engine import Builder, BuildOptions
from sparky_assets.pipeline.executor import Executor, LocalExecutor, chunked, guided_chunks, merge_stats
from tests.helpers import REPO, copy_example, on_a_terminal, snapshot

sys.path.insert(0, str(REPO / "bench"))
from incremental import write_project  # noqa: E402


def build_serial_and_parallel(tmp_path: Path, setup=None) -> list[tuple[Path, object]]:
    """A cold build of the 200-sprite project with ``--jobs 1``, then with ``--jobs 2``:
    (root, report) of each; ``setup(root, jobs)`` runs before each build."""
    out = []
    for jobs in (1, 2):
        root = tmp_path / f"jobs{jobs}"
        root.mkdir()
        write_project(root, 200)
        if setup is not None:
            setup(root, jobs)
        builder = Builder(root, executor=LocalExecutor(jobs) if jobs > 1 else None)
        try:
            out.append((root, builder.build(BuildOptions())))
        finally:
            builder.close()
    return out


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


def test_guided_chunks_shrink_so_workers_finish_together():
    for n, slots, min_size in [(1000, 2, 4), (200, 2, 4), (64, 8, 16), (5000, 2, 4), (7, 2, 4), (1, 4, 1), (0, 2, 4)]:
        chunks = guided_chunks(range(n), slots, min_size)
        assert [i for c in chunks for i in c] == list(range(n))  # every item once, in order
        sizes = [len(c) for c in chunks]
        assert sizes == sorted(sizes, reverse=True)  # largest first
        floor = max(min_size, n // (32 * slots))
        assert all(s >= floor for s in sizes[:-1])  # only the last may be smaller
        # each chunk is at most half of what was left over the slots (rounded up, or the floor)
        left = n
        for s in sizes:
            assert s <= max(floor, -(-left // (2 * slots)))
            left -= s
    assert [len(c) for c in guided_chunks(range(1000), 2, 4)] == [
        250,
        188,
        141,
        106,
        79,
        59,
        45,
        33,
        25,
        19,
        15,
        15,
        15,
        10,
    ]


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
            # the generate (+ process) chunks and one pack task per atlas went to the pool
            assert executor.sent == len(guided_chunks(range(200), 2, 4)) + 2
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


def test_a_pool_forks_from_a_build_without_threads_else_from_a_server():
    """The start method is chosen where it runs: a fresh process (the CLI's ``build``)
    forks its workers; the same process with another thread running uses the fork
    server (a copy of a threaded process may inherit a lock held)."""
    script = (
        "import threading\n"
        "from sparky_assets.pipeline.executor import start_method\n"
        "print(start_method())\n"
        "stop = threading.Event(); t = threading.Thread(target=stop.wait); t.start()\n"
        "print(start_method()); stop.set(); t.join()\n"
        "print(start_method())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["fork", "forkserver", "fork"]


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_both_start_methods_build_the_same_bytes(tmp_path, monkeypatch, method):
    from sparky_assets.pipeline import executor as executor_module

    monkeypatch.setattr(executor_module, "start_method", lambda: method)
    roots = {}
    for jobs in (1, 2):
        root = roots[jobs] = tmp_path / f"jobs{jobs}"
        root.mkdir()
        write_project(root, 60)
        executor = LocalExecutor(jobs) if jobs > 1 else None
        builder = Builder(root, executor=executor)
        try:
            builder.build(BuildOptions())
            if executor is not None:
                assert executor._pool._mp_context.get_start_method() == method
                assert len(executor.worker_pids()) == 2 and executor.sent > 2
        finally:
            builder.close()
    assert snapshot(roots[1]) == snapshot(roots[2])


def record_pid(folder: str) -> None:
    """A warm-up that leaves a file named after its process (see the test below)."""
    (Path(folder) / str(os.getpid())).write_text("warm")


def fail_to_warm(_arg) -> None:
    raise RuntimeError("no table today")


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_prepare_warms_every_worker_once_before_its_first_task(tmp_path, monkeypatch, method):
    from sparky_assets.pipeline import executor as executor_module
    from sparky_assets.pipeline.executor import noop_chunk

    monkeypatch.setattr(executor_module, "start_method", lambda: method)
    executor = LocalExecutor(2)
    try:
        executor.start_early()
        executor.prepare(record_pid, str(tmp_path))
        executor.prepare(fail_to_warm, None)  # a started pool takes no second warm-up
        assert executor.map(noop_chunk, [[1, 2], [3], [4], [5]]) == [2, 1, 1, 1]
        pids = executor.worker_pids()
    finally:
        executor.close()  # waits for the workers: a worker that took no task may still be warming
    assert len(pids) == 2 and sorted(int(p.name) for p in tmp_path.iterdir()) == pids

    # a warm-up that fails only makes for a colder start: the pool works
    executor = LocalExecutor(2)
    try:
        executor.prepare(fail_to_warm, None)
        assert executor.map(noop_chunk, [[1], [2], [3]]) == [1, 1, 1]
    finally:
        executor.close()


def test_map_takes_chunks_made_while_the_first_run():
    """With ``weights``, ``map`` takes an iterator: each chunk goes to the pool as soon as
    it is made (the pack stage makes an atlas's job while the workers pack the last)."""
    from sparky_assets.pipeline.executor import noop_chunk

    made = []

    def chunks():
        for i in range(5):
            made.append(i)
            yield list(range(i + 1))

    executor = LocalExecutor(2)
    progress = []
    try:
        assert executor.map(noop_chunk, chunks(), progress.append, weights=[1] * 5) == [1, 2, 3, 4, 5]
    finally:
        executor.close()
    assert made == [0, 1, 2, 3, 4] and executor.sent == 5 and sorted(progress) == [1, 2, 3, 4, 5]
    assert Executor().map(noop_chunk, iter([[1], [2, 3]]), weights=[1, 1]) == [1, 2]


def test_worker_warmup_names_the_big_palettes_and_the_worker_generators(tmp_path):
    from sparky_assets.manifest.load import load_manifest
    from sparky_assets.pipeline.engine import worker_warmup
    from sparky_assets.process.quantize import DIRECT_PIXELS

    write_project(tmp_path, 200)
    manifest = load_manifest(tmp_path / "sparky.toml")
    pixels = sum(s.width * s.height * s.frame_count for s in manifest.sprites)
    assert DIRECT_PIXELS * 2 < pixels < DIRECT_PIXELS * 16
    # one.hex locks one 16×16 sprite: its workers search its colours directly
    assert worker_warmup(manifest, 2) == ([manifest.palettes["endesga-32"].colors], ["procedural"])
    # with 16 workers none of them would lock enough pixels to load a table
    assert worker_warmup(manifest, 16) == ([], ["procedural"])


@pytest.mark.parametrize("gone", [False, True])
def test_pack_jobs_refer_to_the_workers_entries(tmp_path, monkeypatch, gone):
    """A pack job carries references (process key, frame) to the entries the workers
    wrote, not the frames; a worker that cannot read one packs nothing, and the build
    packs that atlas itself — either way the same bytes as a serial build."""
    from sparky_assets.pipeline import executor as executor_module
    from sparky_assets.pipeline import stages

    monkeypatch.setattr(executor_module, "start_method", lambda: "fork")  # the workers inherit the patches
    if gone:
        monkeypatch.setattr(stages, "_with_frames", lambda inputs, cache: None)
    refs = []
    submit = LocalExecutor.submit

    def inspecting_submit(self, fn, chunk):
        if fn is stages.pack_chunk:
            refs.append([isinstance(i.image, stages.FrameRef) for job in chunk for i in job.inputs])
        return submit(self, fn, chunk)

    monkeypatch.setattr(LocalExecutor, "submit", inspecting_submit)
    (one, serial), (two, parallel) = build_serial_and_parallel(tmp_path)
    assert serial.ran["pack"] == parallel.ran["pack"] == ["atlas0", "atlas1"]
    assert len(refs) == 2 and all(all(r) and len(r) > 100 for r in refs)
    assert snapshot(one) == snapshot(two)
    assert cache_entries(one) == cache_entries(two)


def test_generation_and_the_walk_overlap(tmp_path, monkeypatch):
    """With workers, the walk does not wait for the whole batch: the first atlas's pack
    is handed over once its sprites are in, before the last generation chunk is taken;
    chunks are taken in order and the outputs are the serial build's."""
    from sparky_assets.pipeline import executor as executor_module
    from sparky_assets.pipeline import stages

    monkeypatch.setattr(executor_module, "start_method", lambda: "fork")
    events: list[tuple[str, int]] = []
    take, submit = executor_module.Generation.take, LocalExecutor.submit

    def logged_take(self):
        events.append(("take", self.taken))
        return take(self)

    def logged_submit(self, fn, chunk):
        events.append(("pack" if fn is stages.pack_chunk else "task", 0))
        return submit(self, fn, chunk)

    monkeypatch.setattr(executor_module.Generation, "take", logged_take)
    monkeypatch.setattr(LocalExecutor, "submit", logged_submit)
    (one, _), (two, _) = build_serial_and_parallel(tmp_path, lambda root, jobs: events.clear())
    takes = [n for kind, n in events if kind == "take"]
    assert takes == list(range(len(takes))) and len(takes) > 2  # in order
    first_pack = next(i for i, (kind, _) in enumerate(events) if kind == "pack")
    last_take = max(i for i, (kind, _) in enumerate(events) if kind == "take")
    assert first_pack < last_take
    assert snapshot(one) == snapshot(two)


@pytest.mark.parametrize("entry_gone", [False, True])
def test_the_pixels_of_a_sprite_a_worker_processed(tmp_path, monkeypatch, entry_gone):
    """A worker that wrote a sprite's process entry sends back only the frames' shapes
    (the pixels stay in its memory, for its pack jobs); where the build needs the
    pixels — a tileset drawn from a generated tile — it reads the entry, or makes them
    again where the entry is gone: the serial build's bytes either way."""
    from sparky_assets.pipeline import executor as executor_module

    monkeypatch.setattr(executor_module, "start_method", lambda: "fork")  # the workers inherit the patches
    read: list[str] = []
    get_arrays = StageCache.get_arrays

    def spied(self, stage, key):
        read.append(stage)
        return None if entry_gone and stage == "process" else get_arrays(self, stage, key)

    def setup(root: Path, jobs: int) -> None:
        with open(root / "sparky.toml", "a") as f:
            f.write('\n[[sprite]]\nname = "ground"\nstyle = "tile"\nsize = 16\n\n')
            f.write('[[tileset]]\nname = "ground"\nbase = "ground"\ntile_size = 16\n')
        if jobs == 2:
            monkeypatch.setattr(StageCache, "get_arrays", spied)

    (one, _), (two, _) = build_serial_and_parallel(tmp_path, setup)
    assert "process" in read  # the build process asked the cache for the tile's pixels
    assert (two / "build/sprites/tilesets/ground.png").exists()
    assert snapshot(one) == snapshot(two)


def test_a_worker_keeps_its_processed_frames_within_a_bound(monkeypatch):
    from sparky_assets.pipeline import stages

    monkeypatch.setattr(stages, "_KEPT", stages.OrderedDict())
    monkeypatch.setattr(stages, "_kept_bytes", 0)
    monkeypatch.setattr(stages, "_KEPT_BYTES", 3 * 1024)
    frame = np.zeros((16, 16, 4), np.uint8)  # 1 KiB
    for k in "abcd":
        stages.keep_processed(k, [frame])
    assert list(stages._KEPT) == ["b", "c", "d"] and stages._kept_bytes == 3 * 1024
    inputs = [stages.FrameInput("s", None, 0, stages.FrameRef("c", 0))]
    assert stages._with_frames(inputs, None)[0].image is frame
    assert stages._with_frames([stages.FrameInput("s", None, 0, stages.FrameRef("a", 0))], None) is None
    assert stages._with_frames([stages.FrameInput("s", None, 0, stages.FrameRef("c", 1))], None) is None


def test_a_killed_build_leaves_no_worker_and_no_lock(tmp_path):
    """Forked workers never hold the build's lock (a forked copy of the lock's
    descriptor would keep the project locked after the build died), and a build
    SIGKILLed while they run takes them with it (they would wait for tasks forever)."""
    from sparky_assets.pipeline.engine import ProjectLock

    state = tmp_path / ".sparky"
    script = (
        "import os, signal\n"
        "from pathlib import Path\n"
        "from sparky_assets.pipeline.engine import ProjectLock\n"
        "from sparky_assets.pipeline.executor import LocalExecutor, start_method\n"
        "def lock_open(paths):  # whether one of this process's descriptors is the lock file\n"
        "    fds = [os.path.join('/proc/self/fd', fd) for fd in os.listdir('/proc/self/fd')]\n"
        "    return [any(os.path.realpath(fd) == p for fd in fds) for p in paths]\n"
        "assert start_method() == 'fork'\n"
        f"with ProjectLock(Path({str(state)!r})) as lock:\n"
        "    executor = LocalExecutor(2)\n"
        "    path = [os.path.realpath(lock.path)]\n"
        "    print(executor.map(lock_open, [path, path, path]), lock_open(path))\n"
        "    print(*executor.worker_pids(), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    log = tmp_path / "out.txt"
    with log.open("w") as out:  # a file, not a pipe: a worker left alive would hold a pipe open
        code = subprocess.run([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT, cwd=REPO).returncode
    lines = log.read_text().splitlines()
    assert code == -signal.SIGKILL, lines
    assert lines[0] == "[[False], [False], [False]] [True]"  # the workers closed their copy
    pids = [int(p) for p in lines[1].split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_running(pid) for pid in pids)
    with ProjectLock(state):
        pass


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def collector_state(_chunk) -> tuple[int, int]:
    """A worker's frozen objects and full collections so far (see the test below)."""
    import gc

    return gc.get_freeze_count(), gc.get_stats()[2]["collections"]


def test_forked_workers_leave_the_builds_objects_to_the_parent(monkeypatch):
    """The workers fork with the build's objects frozen: their collector never walks
    (or copies the memory of) what they inherited; the build's own is unfrozen."""
    import gc

    from sparky_assets.pipeline import executor as executor_module

    monkeypatch.setattr(executor_module, "start_method", lambda: "fork")
    executor = LocalExecutor(2)
    try:
        states = executor.map(collector_state, [[1], [2], [3]])
    finally:
        executor.close()
    assert all(frozen > 1000 for frozen, _ in states)
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_counts_the_whole_build_and_never_starts_over(tmp_path, monkeypatch, jobs):
    """``on_progress`` is told each stage's counts for the whole build — the two atlases'
    sprites in one count, generation and the walk interleaved — never a count that goes
    back (which drew a bar per atlas and stage, reopened as the stages alternated)."""
    from sparky_assets.pipeline import executor as executor_module

    monkeypatch.setattr(executor_module, "start_method", lambda: "fork")
    write_project(tmp_path, 200)
    told: dict[str, list[tuple[int, int]]] = {}
    order: list[str] = []

    def on_progress(stage: str, done: int, planned: int) -> None:
        told.setdefault(stage, []).append((done, planned))
        order.append(stage)

    builder = Builder(tmp_path, executor=LocalExecutor(jobs) if jobs > 1 else None, on_progress=on_progress)
    try:
        report = builder.build(BuildOptions())
    finally:
        builder.close()
    for stage, counts in told.items():
        assert all(d <= p for d, p in counts), stage
        assert all(d0 <= d1 and p0 <= p1 for (d0, p0), (d1, p1) in zip(counts, counts[1:])), stage
    assert told["generate"][-1] == (200, 200) and len(report.ran["generate"]) == 200
    assert told["process"][-1] == (200, 200) and len(report.ran["process"]) == 200
    assert told["pack"][-1] == (2, 2) and len(report.ran["pack"]) == 2  # counted as each atlas is packed
    assert told["export"][-1] == (2, 2)  # two atlases, one target
    if jobs > 1:  # the walk went on while chunks came in: the stages' reports interleave
        assert order.index("process") < len(order) - 1 - order[::-1].index("generate")


def test_build_on_a_terminal_draws_one_progress_line(tmp_path):
    """`build --jobs 2` on a terminal: the stages' progress is one line redrawn in place
    (before, a bar per stage was opened each time the reports alternated between
    generation and the walk), ending with every stage's count."""
    import re

    write_project(tmp_path, 200)
    code, stdout, seen = on_a_terminal(
        [sys.executable, "-m", "sparky_assets", "build", "--jobs", "2", str(tmp_path)],
        {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )
    assert code == 0, seen[-3000:]
    text = seen.replace("\r\n", "\n")
    lines = [line for line in text.split("\n") if line]
    assert len(lines) == 1, text  # one line, redrawn with \r
    last = re.sub(r"\x1b\[K", "", lines[0].split("\r")[-1])
    assert (
        last == f"export    [2 local processes] [{'#' * 24}] 100%  2/2 | generate 200/200 | process 200/200 | pack 2/2"
    )
    assert re.search(r"generated\s+200\b", stdout), stdout
