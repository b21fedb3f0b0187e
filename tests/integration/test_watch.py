"""`watch` for real: a watchdog observer on real files, a real ZeroMQ PUB socket on
loopback and a real subscriber. Edit → assets-changed naming exactly the changed
outputs; bad edit → build-failed with its location, watcher alive, outputs untouched;
fix → normal rebuild; and a soak of random edits."""

from __future__ import annotations

import queue
import random
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from sparky_assets.hotreload.listener import listen
from sparky_assets.hotreload.protocol import AssetsChanged, BuildFailed, BuildFinished, BuildStarted
from sparky_assets.hotreload.publisher import Publisher
from sparky_assets.watch.session import FileWatcher, WatchSession
from tests.helpers import copy_example, snapshot


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
                assert left > 0, f"timed out; got {[(m.TYPE, getattr(m, 'build', None)) for m in self.messages][-10:]}"
                self.arrived.wait(left)

    def finished(self, build: int) -> BuildFinished:
        return self.wait_for(lambda m: isinstance(m, BuildFinished) and m.build == build)[0]

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
    gpl.write_text(gpl.read_text().replace("228  59  68", "230  60  70"))
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
    manifest.write_text(good.replace("size = [16, 12]", "size = [16, 0]", 1))
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
    manifest.write_text(good.replace("size = [16, 12]", "size = [16, 14]", 1))
    done = running.finished(3)
    assert done.ok and running.of_build(3, AssetsChanged)


def test_a_burst_of_saves_is_one_rebuild(running):
    manifest = running.root / "sparky.toml"
    text = manifest.read_text()
    for i in range(5):
        manifest.write_text(text.replace("seed = 1234", f"seed = {1234 + i + 1}"))
        time.sleep(0.005)
    running.finished(2)
    time.sleep(0.5)
    assert not running.of_build(3, BuildStarted)


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
        (root / "pal.hex").write_text("000000\nffffff\nff0000\n00ff00\n")
        (root / "sparky.toml").write_text(base.format(**state))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if r.changes.empty() and r.messages and isinstance(r.messages[-1], BuildFinished) and r.messages[-1].ok:
                time.sleep(0.3)
                if r.changes.empty() and isinstance(r.messages[-1], BuildFinished):
                    break
        mem_end = tracemalloc.get_traced_memory()[0]
        assert r.thread.is_alive()
        assert not r.errors
        seqs = [m.seq for m in r.messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq gap"
        assert not r.rescans
        assert mem_end < mem_mid + 8 * 2**20, (mem_mid, mem_end)
        builds = max(m.build for m in r.messages if isinstance(m, BuildStarted))
        assert builds >= 20
    finally:
        tracemalloc.stop()
        r.close()
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in ("pal.hex", "sparky.toml"):
        (clean / name).write_bytes((root / name).read_bytes())
    Builder(clean).build(BuildOptions(fast_png=True))  # what watch writes (its default)
    assert snapshot(clean, skip=(".sparky",)) == snapshot(root, skip=(".sparky",))


def test_a_source_in_a_folder_created_later_is_picked_up(running):
    from PIL import Image

    root = running.root
    manifest = root / "sparky.toml"
    manifest.write_text(manifest.read_text() + '\n[[sprite]]\nname = "gem2"\nsource = "newart/gem2.png"\n')
    done = running.finished(2)
    assert not done.ok  # the source does not exist yet
    (root / "newart").mkdir()
    Image.new("RGBA", (8, 8), (255, 0, 0, 255)).save(root / "newart/gem2.png")
    done = running.finished(3)
    assert done.ok
    assert (root / "build/sprites/sheets/gem2_0.png").exists()


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
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(isinstance(m, BuildFinished) and m.ok and m.build >= 3 for m in running.messages):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no successful rebuild after the folder came back")
    from PIL import Image

    potion = art / "potion.png"
    im = Image.open(potion).convert("RGBA")
    im.putpixel((2, 2), (255, 255, 255, 255))
    im.save(potion)
    last = max(m.build for m in running.messages if isinstance(m, BuildFinished))
    done = running.finished(last + 1)
    assert done.ok and any(
        a.sprites == ("potion",) or "potion" in a.sprites
        for m in running.of_build(last + 1, AssetsChanged)
        for a in m.assets
    )
