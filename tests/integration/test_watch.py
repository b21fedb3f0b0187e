"""`watch` for real: a watchdog observer on real files, a real ZeroMQ PUB socket on
loopback and a real subscriber. Edit → assets-changed naming exactly the changed
outputs; bad edit → build-failed with its location, watcher alive, outputs untouched;
fix → normal rebuild; and a soak of random edits.

Nothing here asserts on time (a loaded machine delays events and builds by seconds):
edits are written atomically (one event each, never a half-written file), waits are
for *outcomes* (a message, the outputs of the last edit) with generous deadlines, and
the debouncing itself is tested on a scheduled change queue with its own clock.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from sparky_assets.hotreload.listener import listen
from sparky_assets.hotreload.protocol import AssetsChanged, BuildFailed, BuildFinished, BuildStarted
from sparky_assets.hotreload.publisher import Publisher
from sparky_assets.watch.session import FileWatcher, WatchSession, run_watch
from tests.helpers import copy_example, snapshot


def save(path: Path, text: str) -> None:
    """Write like an editor that saves atomically: one rename, never a torn file."""
    tmp = path.with_name(f".{path.name}.saving")
    tmp.write_text(text)
    tmp.replace(path)


def idle(messages: list, changes: queue.Queue) -> bool:
    """No change waiting and the last build event (heartbeats aside) is a build-finished."""
    events = [m for m in messages if m.TYPE != "hello"]
    return changes.empty() and bool(events) and isinstance(events[-1], BuildFinished)


def save_image(image, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.saving.png")
    image.save(tmp)
    tmp.replace(path)


class ScheduledChanges(queue.Queue):
    """A change queue that delivers each path at its scheduled time on a virtual clock:
    ``get(timeout)`` advances the clock instead of sleeping, so the debouncer runs
    deterministically however loaded the machine is."""

    def __init__(self, events: list[tuple[float, Path]]):
        super().__init__()
        self.now = 0.0
        self.events = sorted(events, key=lambda e: e[0])

    def get(self, block: bool = True, timeout: float | None = None):
        if self.events and self.events[0][0] <= self.now + (timeout or 0.0):
            at, path = self.events.pop(0)
            self.now = max(self.now, at)
            return path
        self.now += timeout or 0.0
        raise queue.Empty


class Running:
    """A watch session + subscriber, both on background threads."""

    def __init__(self, root: Path):
        self.messages: list = []
        self.errors: list = []
        self.rescans: list = []
        self.arrived = threading.Condition()
        self.changes: queue.Queue = queue.Queue()
        self.watcher = FileWatcher(self.changes, root)
        self.publisher = Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=200)
        self.session = WatchSession(
            root / "sparky.toml",
            self.publisher,
            self.changes,
            debounce_s=0.05,
            echo=lambda *a, **k: None,
            on_files=self.watcher.set_files,
        )
        self.stop_sub = threading.Event()
        connected = threading.Event()
        self.sub = threading.Thread(
            target=listen,
            kwargs=dict(
                endpoint=self.publisher.last_endpoint,
                on_message=self._on_message,
                on_error=lambda e, t: self.errors.append(e),
                stop_event=self.stop_sub,
                on_connected=connected.set,
            ),
            daemon=True,
        )
        self.sub.start()
        connected.wait(5)
        self.wait_for(lambda m: m.TYPE == "hello")  # subscription is live
        self.thread = threading.Thread(target=self.session.run, daemon=True)
        self.thread.start()
        self.finished(1)

    def _on_message(self, envelope, rescan):
        with self.arrived:
            if rescan is not None and self.messages:
                self.rescans.append(rescan)
            if envelope.message is not None:
                self.messages.append(envelope.message)
            self.arrived.notify_all()

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                hits = [m for m in self.messages if predicate(m)]
                if hits:
                    return hits
                left = deadline - time.monotonic()
                assert left > 0, self.timed_out()
                self.arrived.wait(left)

    def timed_out(self) -> str:
        """What arrived (heartbeats left out), the listener's errors and rescans: a
        timeout then says whether a build ran and failed, never ran, or was not seen."""
        shown = [
            (m.TYPE, getattr(m, "build", None), getattr(m, "ok", None), getattr(m, "errors", None))
            for m in self.messages
            if m.TYPE != "hello"
        ]
        return f"timed out; got {shown[-12:]}; listener errors {self.errors[-5:]}; rescans {self.rescans[-5:]}"

    def finished(self, build: int) -> BuildFinished:
        return self.wait_for(lambda m: isinstance(m, BuildFinished) and m.build == build)[0]

    def ok_after(self, build: int, timeout: float = 120.0) -> BuildFinished:
        """The first successful build numbered above ``build`` (however many builds the
        machine's event timing made in between)."""
        return self.wait_for(lambda m: isinstance(m, BuildFinished) and m.ok and m.build > build, timeout)[0]

    def of_build(self, build: int, kind):
        return [m for m in self.messages if isinstance(m, kind) and m.build == build]

    def close(self):
        self.session.stop_event.set()
        self.thread.join(5)
        self.stop_sub.set()
        self.sub.join(5)
        self.watcher.stop()
        self.publisher.close()


@pytest.fixture()
def running(tmp_path):
    root = copy_example(tmp_path)
    r = Running(root)
    r.root = root
    yield r
    r.close()


def test_edit_publishes_exactly_the_changed_outputs(running):
    root = running.root
    before = snapshot(root)
    gpl = root / "palettes/items.gpl"
    save(gpl, gpl.read_text().replace("228  59  68", "230  60  70"))
    done = running.finished(2)
    assert done.ok
    after = snapshot(root)
    # the store (sparky-generated/: the procedural gem uses the palette) is bookkeeping, not an output
    changed_on_disk = {
        p
        for p in after
        if before.get(p) != after[p] and not p.startswith(("sparky.", "sparky-generated/", "palettes/"))
    }
    (message,) = running.of_build(2, AssetsChanged)
    roots = {
        "sheets": "build/sprites/sheets",
        "godot": "godot-game/sprites",
        "bevy": "bevy-game/assets/sprites",
        "texturepacker": "build/sprites/texturepacker",
        "aseprite": "build/sprites/aseprite",
    }
    announced = {f"{roots[a.target]}/{a.path}" for a in message.assets}
    assert announced == changed_on_disk
    assert (started := running.of_build(2, BuildStarted)) and started[0].trigger == ("palettes/items.gpl",)
    godot = [a for a in message.assets if a.target == "godot"]
    assert godot and all(a.engine_path.startswith("res://sprites/") for a in godot)
    assert done.changed == len(message.assets)


def test_bad_edit_fails_keeps_outputs_and_a_fix_rebuilds(running):
    root = running.root
    manifest = root / "sparky.toml"
    good = manifest.read_text()
    before = snapshot(root)
    save(manifest, good.replace("size = [16, 12]", "size = [16, 0]", 1))
    done = running.finished(2)
    assert not done.ok
    (failed,) = running.of_build(2, BuildFailed)
    (error,) = failed.errors
    line = good[: good.index("size = [16, 12]")].count("\n") + 1
    assert (error.file, error.line, error.column, error.stage, error.sprite) == (
        "sparky.toml",
        line,
        1,
        "manifest",
        "bat",
    )
    assert "size out of range" in error.message
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k != "sparky.toml"} == {
        k: v for k, v in before.items() if k != "sparky.toml"
    }
    assert running.thread.is_alive()
    save(manifest, good.replace("size = [16, 12]", "size = [16, 14]", 1))
    done = running.finished(3)
    assert done.ok and running.of_build(3, AssetsChanged)


def _session(root: Path, changes: queue.Queue) -> WatchSession:
    class Silent:
        def __getattr__(self, name):
            return lambda *a, **k: None

    return WatchSession(root / "sparky.toml", Silent(), changes, debounce_s=0.05, echo=lambda *a, **k: None)


@pytest.mark.parametrize(
    "gaps, batches",
    [
        ([0.0, 0.005, 0.005, 0.005, 0.005], [5]),  # a burst of saves: one rebuild
        ([0.0] + [0.04] * 20, [21]),  # saves closer than the debounce extend it, however long
        ([0.0, 0.06, 0.06], [1, 1, 1]),  # saves further apart: one rebuild each
        # an idle watcher builds the first save of a later burst at once (leading edge);
        # here no build runs between batches, so its next saves each find it idle too
        ([0.0, 0.01, 0.3, 0.01, 0.01], [2, 1, 1, 1]),
    ],
    ids=["burst", "long-burst", "spaced", "two-bursts"],
)
def test_a_burst_of_saves_is_one_rebuild(tmp_path, gaps, batches):
    """The debouncer on a scheduled queue: which saves share a rebuild depends only on
    their spacing, never on how fast the machine is."""
    root = copy_example(tmp_path)
    times = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    paths = [root / f"art/file{i}.png" for i in range(len(gaps))]
    changes = ScheduledChanges(list(zip(times, paths)))
    session = _session(root, changes)
    got = []
    while True:
        batch = session.next_batch(wait_s=1.0)
        if not batch:
            break
        got.append(batch)
    assert [len(b) for b in got] == batches
    assert sorted(session._rel(p) for b in got for p in b) == sorted(f"art/file{i}.png" for i in range(len(gaps)))


def test_a_burst_of_real_saves_ends_on_the_last_one(running):
    """Five quick saves through the real file watcher: however the machine groups them,
    no build fails and the outputs end up those of the last save."""
    manifest = running.root / "sparky.toml"
    text = manifest.read_text()
    for i in range(5):
        save(manifest, text.replace("seed = 1234", f"seed = {1234 + i + 1}"))
    final = manifest.read_text()
    clean = running.root.parent / "clean"
    copy_example(clean)
    (clean / "dungeon/sparky.toml").write_text(final)
    from sparky_assets.pipeline.engine import Builder, BuildOptions

    Builder(clean / "dungeon").build(BuildOptions(fast_png=True))  # what watch writes (its default)
    expected = {k: v for k, v in snapshot(clean / "dungeon").items() if not k.startswith("sparky.")}
    deadline = time.monotonic() + 120
    while not (
        any(isinstance(m, BuildFinished) and m.build >= 2 for m in running.messages)
        and {k: v for k, v in snapshot(running.root).items() if not k.startswith("sparky.")} == expected
    ):
        current = {k: v for k, v in snapshot(running.root).items() if not k.startswith("sparky.")}
        assert time.monotonic() < deadline, (
            "the outputs never reached those of the last save: "
            f"{sorted(k for k in set(current) | set(expected) if current.get(k) != expected.get(k))[:8]}"
        )
        time.sleep(0.1)  # polling for an outcome; nothing depends on how long it takes
    while not idle(running.messages, running.changes):
        assert time.monotonic() < deadline, "the watcher never went idle"
        time.sleep(0.1)
    assert all(m.ok for m in running.messages if isinstance(m, BuildFinished))


class RecordingQueue(queue.Queue):
    """A real queue that remembers each timeout a ``get`` asked for: whether the session
    waited for a debounce is an outcome a test can check without measuring time."""

    def __init__(self):
        super().__init__()
        self.waits: list[float | None] = []
        self.arrive_while_waiting: list[Path] = []
        """Changes that come in once the session is waiting (an edit to an idle watcher)."""

    def get(self, block=True, timeout=None):
        if block:
            self.waits.append(timeout)
            while self.arrive_while_waiting:
                self.put(self.arrive_while_waiting.pop(0))
        return super().get(block, timeout)


@pytest.fixture()
def stepped(tmp_path):
    """A session driven by hand (``step``) on an injected queue, publishing for real."""
    root = copy_example(tmp_path)
    publisher = Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=200)
    changes = RecordingQueue()
    session = WatchSession(root / "sparky.toml", publisher, changes, debounce_s=3600, echo=lambda *a, **k: None)
    assert session.rebuild([]) is not None
    yield session, changes, root
    publisher.close()


def test_a_change_to_an_idle_watcher_is_built_without_a_debounce_wait(stepped):
    session, changes, root = stepped
    manifest = root / "sparky.toml"
    manifest.write_text(manifest.read_text().replace("seed = 1234", "seed = 99"))
    changes.arrive_while_waiting.append(manifest)
    report = session.step(wait_s=0)
    assert report and session.build_number == 2
    assert {a.target for a in report.assets}  # the edit changed outputs, announced by build 2
    assert 3600 not in changes.waits  # the hour-long debounce was never waited for
    assert session.step(wait_s=0) is False  # and nothing is left over


def test_changes_piled_up_during_a_build_are_one_follow_up_build(stepped):
    session, changes, root = stepped
    session.debounce_s = 0.001
    manifest, gpl = root / "sparky.toml", root / "palettes/items.gpl"
    text = manifest.read_text()
    for seed in (7, 8, 9):  # three saves while "a build runs": already queued when the loop looks
        manifest.write_text(text.replace("seed = 1234", f"seed = {seed}"))
        changes.put(manifest)
    gpl.write_text(gpl.read_text().replace("228  59  68", "230  60  70"))
    changes.put(gpl)
    published = []
    announce = session.publisher.build_started

    def build_started(build, trigger):  # the real publisher, with what it was asked to send noted
        published.append((build, tuple(trigger)))
        announce(build, trigger)

    session.publisher.build_started = build_started
    assert session.step(wait_s=0)
    assert published == [(2, ("palettes/items.gpl", "sparky.toml"))]  # one build for the whole burst
    assert 0.001 in changes.waits  # it was debounced: waited for quiet
    assert session.builder.last_reads.same_content([manifest, gpl])  # built from the last saves
    assert session.step(wait_s=0) is False and session.build_number == 2


def test_a_change_notice_without_new_content_builds_nothing(stepped):
    session, changes, root = stepped
    manifest = root / "sparky.toml"
    manifest.write_bytes(manifest.read_bytes())  # a save of the same bytes (new mtime)
    changes.arrive_while_waiting.append(manifest)
    assert session.step(wait_s=0) is False
    assert session.build_number == 1
    manifest.write_text(manifest.read_text().replace("seed = 1234", "seed = 5"))
    changes.arrive_while_waiting.append(manifest)
    assert session.step(wait_s=0) and session.build_number == 2


def test_soak_random_edits(tmp_path):
    """Random valid and invalid edits, some in bursts: the watcher survives, every
    message decodes, seq has no gaps, final outputs equal a clean build, memory is bounded."""
    from sparky_assets.pipeline.engine import Builder, BuildOptions

    root = tmp_path / "soak"
    root.mkdir()
    (root / "pal.hex").write_text("000000\nffffff\nff0000\n00ff00\n")
    base = (
        '[project]\nname = "soak"\npalette = "pal.hex"\n\n[[sprite]]\nname = "a"\nsize = 8\nseed = {a}\n'
        'animations = {{ idle = 2 }}\n\n[[sprite]]\nname = "b"\nsize = 8\nseed = {b}\n\n'
        '[[atlas]]\nname = "all"\nsprites = ["a", "b"]\npadding = {p}\n'
    )
    (root / "sparky.toml").write_text(base.format(a=1, b=2, p=1))
    r = Running(root)
    rng = random.Random(7)
    edits = 300
    tracemalloc.start()
    try:
        state = dict(a=1, b=2, p=1)
        mem_mid = None
        for i in range(edits):
            kind = rng.random()
            if kind < 0.15:
                (root / "sparky.toml").write_text(base.format(**state).replace("size = 8", "size = -8", 1))
            elif kind < 0.25:
                (root / "pal.hex").write_text("000000\nffffff\n" + rng.choice(["ff0000\n", "0000ff\n", "zz\n"]))
            else:
                state[rng.choice("abp")] = rng.randint(0, 5)
                (root / "sparky.toml").write_text(base.format(**state))
            if rng.random() < 0.7:  # most edits wait for their build; the rest pile up in bursts
                time.sleep(0.06)
            if i == edits // 2:
                mem_mid = tracemalloc.get_traced_memory()[0]
        save(root / "pal.hex", "000000\nffffff\nff0000\n00ff00\n")
        save(root / "sparky.toml", base.format(**state))
        clean = tmp_path / "clean"
        clean.mkdir()
        for name in ("pal.hex", "sparky.toml"):
            (clean / name).write_bytes((root / name).read_bytes())
        Builder(clean).build(BuildOptions(fast_png=True))  # what watch writes (its default)
        expected = snapshot(clean, skip=(".sparky",))
        deadline = time.monotonic() + 180
        while not (
            idle(r.messages, r.changes) and snapshot(root, skip=(".sparky",)) == expected
        ):  # the outcome of the last edit, however long the machine takes to get there
            assert time.monotonic() < deadline, "the watcher never caught up with the last edit"
            time.sleep(0.2)
        mem_end = tracemalloc.get_traced_memory()[0]
        assert r.thread.is_alive()
        assert not r.errors
        seqs = [m.seq for m in r.messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq gap"
        assert not r.rescans
        assert mem_end < mem_mid + 8 * 2**20, (mem_mid, mem_end)
        builds = max(m.build for m in r.messages if isinstance(m, BuildStarted))
        assert builds > 1  # how many depends on how the machine grouped the edits
    finally:
        tracemalloc.stop()
        r.close()
    assert snapshot(clean, skip=(".sparky",)) == snapshot(root, skip=(".sparky",))


def test_a_source_in_a_folder_created_later_is_picked_up(running):
    from PIL import Image

    root = running.root
    manifest = root / "sparky.toml"
    save(manifest, manifest.read_text() + '\n[[sprite]]\nname = "gem2"\nsource = "newart/gem2.png"\n')
    done = running.finished(2)
    assert not done.ok  # the source does not exist yet
    (root / "newart").mkdir()
    save_image(Image.new("RGBA", (8, 8), (255, 0, 0, 255)), root / "newart/gem2.png")
    running.ok_after(2)
    assert (root / "build/sprites/sheets/gem2_0.png").exists()


def test_a_file_added_to_a_listed_folder_is_a_change_of_that_folder(tmp_path):
    """A folder whose listing a build read (a model folder) is watched itself: a weight
    file dropped into it is reported as a change of the folder."""
    changes: queue.Queue = queue.Queue()
    folder = tmp_path / "models" / "tiny"
    folder.mkdir(parents=True)
    watcher = FileWatcher(changes, tmp_path)
    try:
        watcher.set_files({folder})
        (folder / "extra.safetensors").write_bytes(b"\0" * 8)
        assert changes.get(timeout=30) == folder
    finally:
        watcher.stop()


def test_relaying_watches_while_folders_come_and_go_never_deadlocks(tmp_path):
    """The session re-lays the watches after every build (set_files) while the observer
    reports folder events; both used to take the watcher's lock and watchdog's observer
    lock in opposite orders, and a deadlock left watch deaf for good. Folders are made
    and removed beside the watched ones while the watched set alternates (so each call
    schedules or unschedules a watch); afterwards a save is still seen."""
    (tmp_path / "a").mkdir()
    watched = [tmp_path / "top.png", tmp_path / "a" / "x.png"]
    changes: queue.Queue = queue.Queue()
    watcher = FileWatcher(changes, tmp_path)
    done = threading.Event()

    def churn():
        i = 0
        while not done.is_set():
            folder = tmp_path / f"d{i % 5}"
            folder.mkdir(exist_ok=True)
            folder.rmdir()
            i += 1

    def relay():
        for n in range(3000):
            watcher.set_files(watched if n % 2 else watched[:1])

    churner = threading.Thread(target=churn, daemon=True)
    relayer = threading.Thread(target=relay, daemon=True)
    try:
        churner.start()
        relayer.start()
        relayer.join(300)
        assert not relayer.is_alive(), "set_files never returned: the watcher deadlocked"
        done.set()
        churner.join(30)
        watcher.set_files(watched)
        while not changes.empty():
            changes.get()
        save(tmp_path / "a" / "x.png", "saved")
        assert changes.get(timeout=30) == tmp_path / "a" / "x.png"
    finally:
        done.set()
        if not relayer.is_alive():  # (a deadlocked observer would never stop)
            watcher.stop()


def test_a_folder_deleted_and_recreated_is_still_watched(running):
    import shutil

    root = running.root
    art = root / "art"
    saved = {p.name: p.read_bytes() for p in art.iterdir()}
    shutil.rmtree(art)
    running.finished(2)  # sources gone: a failed build
    art.mkdir()
    for name, data in saved.items():
        (art / name).write_bytes(data)
    running.ok_after(2)  # a successful rebuild once the folder came back
    from PIL import Image

    potion = art / "potion.png"
    im = Image.open(potion).convert("RGBA")
    im.putpixel((2, 2), (255, 255, 255, 255))
    last = max(m.build for m in running.messages if isinstance(m, BuildStarted))
    save_image(im, potion)
    running.wait_for(
        lambda m: (
            isinstance(m, AssetsChanged)
            and m.build > last
            and any(a.sprites == ("potion",) or "potion" in a.sprites for a in m.assets)
        )
    )


class Stopped:
    """``run_watch`` on this (the main) thread, as the CLI runs it, its lines recorded,
    until a signal the test sends stops it."""

    def __init__(self, root: Path):
        self.root = root
        self.lines: list[str] = []

    def run(self) -> float:
        before = signal.getsignal(signal.SIGTERM)
        started = time.monotonic()
        run_watch(self.root, endpoint="tcp://127.0.0.1:0", echo=lambda text, *a, **k: self.lines.append(text))
        assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back
        assert self.lines[-2:] == ["stopping", "stopped; hot-reload socket closed"], self.lines
        return time.monotonic() - started


def terminate_me() -> None:
    """SIGTERM to this process, its handler run before this returns: a signal's Python
    handler runs in the main thread at its next check, which a sleep (a system call the
    signal interrupts) is."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)


def test_a_signal_during_a_builds_housekeeping_lets_it_finish(tmp_path, monkeypatch):
    # SIGTERM arrives as the build's cache entries are written: they are all written (an
    # interrupt in the middle of library code can turn into another error — shutil.rmtree
    # raised EBADF, and `watch` exited 1), the build's line is printed, then the session ends.
    from sparky_assets.pipeline.engine import Builder

    real_prune = Builder.prune_cache
    pruned = []

    def prune_cache(self):
        terminate_me()
        pruned.append(real_prune(self))

    monkeypatch.setattr(Builder, "prune_cache", prune_cache)
    watch = Stopped(copy_example(tmp_path))
    watch.run()
    assert pruned == [0]
    assert [line for line in watch.lines if line.startswith("[")][0].startswith("[1] initial build: ")
    cache = watch.root / ".sparky" / "cache"
    assert len(list(cache.glob("process/*/*"))) == 22  # written after the build, as watch defers them


def test_a_signal_during_a_build_stops_it_at_once(tmp_path, monkeypatch):
    from sparky_assets.pipeline.engine import Builder

    def build(self, options):
        terminate_me()
        time.sleep(60)  # a long build: interrupted, never finished
        raise AssertionError("the build was not interrupted")

    monkeypatch.setattr(Builder, "build", build)
    watch = Stopped(copy_example(tmp_path))
    assert watch.run() < 30
    assert not any(line.startswith("[") for line in watch.lines)  # no build line: none finished


def test_a_signal_to_an_idle_watcher_stops_it(tmp_path):
    watch = Stopped(copy_example(tmp_path))

    def later():  # from another thread, while the session waits for changes
        while not any(line.startswith("[1] ") for line in watch.lines):
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=later, daemon=True).start()
    watch.run()
    assert sum(line.startswith("[") for line in watch.lines) == 1


def test_an_error_raised_while_an_interrupt_unwinds_a_build_is_the_interrupt(tmp_path, monkeypatch):
    # library code cleaning up after Ctrl-C can fail in turn (shutil.rmtree's second close:
    # EBADF); that is the interrupt — the session stops — not a failed build to report
    from sparky_assets.pipeline.engine import Builder

    def build(self, options):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OSError(9, "Bad file descriptor") from None

    monkeypatch.setattr(Builder, "build", build)
    watch = Stopped(copy_example(tmp_path))
    watch.run()
    assert not any(line.startswith("[") for line in watch.lines)  # no build line, failed or not
