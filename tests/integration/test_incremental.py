"""Incremental builds: exactly the stages an edit requires rerun; frozen builds;
corrupt cache entries; one build at a time; SIGKILL at random moments."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from sparky_assets.cli.main import main
from sparky_assets.errors import ProjectLocked
from sparky_assets.pipeline.engine import STATE_DIR, Builder, BuildOptions, ProjectLock
from tests.helpers import copy_example, mtimes, snapshot


def build(root: Path, **options):
    return Builder(root).build(BuildOptions(**options))


def edit(root: Path, old: str, new: str) -> None:
    path = root / "sparky.toml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.fixture()
def project(tmp_path):
    root = copy_example(tmp_path)
    first = build(root)
    assert sorted(first.ran["generate"]) == ["coin", "potion", "torch"]  # the rest comes from the committed lock
    assert len(first.ran["process"]) == 22
    return root


def test_noop_build_writes_nothing_and_reports_nothing_changed(project):
    before = mtimes(project)
    report = build(project)
    assert report.ran == {"generate": [], "process": [], "pack": [], "export": []}
    assert not report.assets and not report.written
    assert "nothing changed" in report.summary()
    assert mtimes(project) == before


def test_touching_a_file_without_changing_it_does_nothing(project):
    for p in [project / "sparky.toml", project / "art/coin.png", project / "palettes/items.gpl"]:
        os.utime(p, None)
    page = project / "build/sprites/sheets/world_0.png"
    os.utime(page, (1, 1))  # an output touched by someone else: hashed, found equal, left alone
    report = build(project)
    assert report.ran == {"generate": [], "process": [], "pack": [], "export": []}
    assert not report.written


def test_palette_change_requantizes_and_repacks_and_regenerates_only_palette_users(project):
    """A palette edit never regenerates a sprite whose generator ignores the palette
    (the hand-drawn ones); the procedural generator declares ``uses_palette`` (it picks
    its colours from the palette), so its sprite is made again — from the lock's point
    of view a new input, not a stale entry."""
    gpl = project / "palettes/items.gpl"
    gpl.write_text(gpl.read_text().replace("254 231  97", "250 220  90"))
    report = build(project)
    users = {"gem", "coin", "potion", "torch"}
    assert report.ran["generate"] == ["gem"]  # procedural; coin, potion, torch are image sprites
    assert set(report.ran["process"]) == users
    assert report.ran["pack"] == ["world"]
    assert {e.split(":")[0] for e in report.ran["export"]} == {"world"}


def test_padding_change_repacks_only(project):
    edit(project, "padding = 1\ntrim = true", "padding = 2\ntrim = true")
    report = build(project)
    assert report.ran["generate"] == [] and report.ran["process"] == []
    assert report.ran["pack"] == ["world"]
    assert len(report.ran["export"]) == 5  # sheets + 4 targets of that atlas


def test_prompt_change_regenerates_that_sprite_only(project):
    # the procedural generator reads only colour words from a prompt: this one changes nothing
    edit(project, 'name = "ghost"\n', 'name = "ghost"\nprompt = "a sad ghost"\n')
    assert build(project).ran == {"generate": [], "process": [], "pack": [], "export": []}
    edit(project, 'prompt = "a sad ghost"', 'prompt = "a blue ghost"')
    report = build(project)
    assert report.ran["generate"] == ["ghost"]
    assert report.ran["process"] == ["ghost"]
    assert report.ran["pack"] == ["characters"]


def test_source_png_change_reprocesses_that_sprite_only(project):
    from PIL import Image

    png = project / "art/potion.png"
    im = Image.open(png).convert("RGBA")
    im.putpixel((1, 1), (255, 255, 255, 255))
    im.save(png)
    report = build(project)
    assert report.ran["generate"] == ["potion"] and report.ran["process"] == ["potion"]
    assert report.ran["pack"] == ["world"]


def test_dry_run_plans_without_writing(project):
    edit(project, 'name = "ghost"\n', 'name = "ghost"\nseed = 7\n')
    before = snapshot(project, skip=())
    report = build(project, dry_run=True)
    assert report.ran["generate"] == ["ghost"] and report.ran["pack"] == ["characters"]
    assert snapshot(project, skip=()) == before
    assert build(project).ran["generate"] == ["ghost"]


EDITS = [
    ("seed", lambda root: edit(root, 'name = "ghost"\n', 'name = "ghost"\nseed = 7\n')),
    ("palette", lambda root: _rewrite(root / "palettes/items.gpl", "254 231  97", "250 220  90")),
    ("padding", lambda root: edit(root, "padding = 1\ntrim = true", "padding = 2\ntrim = true")),
    ("source", lambda root: _repaint(root / "art/potion.png")),
    ("dither", lambda root: edit(root, 'name = "slime_green"\n', 'name = "slime_green"\ndither = "bayer2"\n')),
    ("nothing", lambda root: None),
]


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def _repaint(png: Path) -> None:
    im = Image.open(png).convert("RGBA")
    im.putpixel((1, 1), (255, 255, 255, 255))
    im.save(png)


@pytest.mark.parametrize("change", EDITS, ids=[e[0] for e in EDITS])
def test_dry_run_check_and_build_are_one_walk(project, change):
    """``build --dry-run`` and ``check`` walk the same graph with the plan action as a
    build walks with the build action: what they say would run is what runs."""
    from sparky_assets.pipeline.engine import check

    change[1](project)
    planned = build(project, dry_run=True)
    checked = check(project).plan
    built = build(project)
    for stage in ("generate", "process", "pack", "export"):
        assert sorted(planned.ran[stage]) == sorted(built.ran[stage]) == sorted(checked.ran[stage]), stage
        assert planned.cached[stage] == built.cached[stage] == checked.cached[stage], stage


def test_only_builds_the_named_atlas(project):
    edit(project, "padding = 1\ntrim = true", "padding = 3\ntrim = true")
    edit(project, "max_size = 256\npadding = 1", "max_size = 256\npadding = 2")
    report = build(project, only=("world",))
    assert report.ran["pack"] == ["world"]
    assert build(project).ran["pack"] == ["characters"]


def test_frozen_reproduces_byte_identical_outputs_without_generating(project, tmp_path):
    clean_machine = tmp_path / "ci" / "dungeon"
    shutil.copytree(project, clean_machine, ignore=shutil.ignore_patterns(".sparky", "build", "sprites"))
    shutil.rmtree(clean_machine / "bevy-game/assets/sprites", ignore_errors=True)
    report = build(clean_machine, frozen=True)
    lockable = [n for n in report.ran["generate"] if n not in ("coin", "potion", "torch")]
    assert lockable == []  # every generated sprite came from sparky-generated/
    assert snapshot(clean_machine) == snapshot(project)


def test_frozen_with_a_stale_sprite_fails_naming_it_and_writes_nothing(project, capsys):
    edit(project, 'name = "bat"\n', 'name = "bat"\nseed = 99\n')
    edit(project, 'name = "key"\n', 'name = "key"\nprompt = "golden"\n')
    before = snapshot(project, skip=())
    assert main(["build", "--frozen", str(project)]) == 2
    err = capsys.readouterr().err
    assert "sprite 'bat' would need generating: changed since locked: seed" in err
    assert "sprite 'key' would need generating: changed since locked: prompt" in err
    assert snapshot(project, skip=()) == before


def test_reroll_changes_only_that_sprites_seed_and_keeps_comments(project):
    assert main(["-q", "reroll", "bat", str(project), "--seed", "42"]) == 0
    text = (project / "sparky.toml").read_text()
    assert "# ---------------------------------------------------------------- monsters" in text
    report = build(project)
    assert report.ran["generate"] == ["bat"]


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "version"])
def test_corrupt_cache_entry_is_rebuilt_with_a_warning_never_used(project, damage):
    """A damaged entry warns; one of another format version is quietly stale. Neither is used."""
    entries = sorted((project / STATE_DIR / "cache" / "process").rglob("*"))
    entries = [p for p in entries if p.is_file()]
    victim = entries[0]
    raw = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(raw[: len(raw) // 2])
    elif damage == "bitflip":
        victim.write_bytes(raw[:-10] + bytes([raw[-10] ^ 0x40]) + raw[-9:])
    else:
        from sparky_assets.pipeline.cache import CACHE_FORMAT

        stamp = f'"format": {CACHE_FORMAT}'.encode()
        assert stamp in raw
        victim.write_bytes(raw.replace(stamp, b'"format": 99', 1))
    shutil.rmtree(project / STATE_DIR / "cache" / "pack")
    shutil.rmtree(project / STATE_DIR / "cache" / "export")
    expected = snapshot(project)
    report = build(project)
    if damage == "version":  # another version's entry: stale, dropped without a warning
        assert not any("corrupt or foreign" in w for w in report.warnings), report.warnings
    else:
        assert any("corrupt or foreign" in w for w in report.warnings), report.warnings
    assert len(report.ran["process"]) == 1
    assert snapshot(project) == expected


def test_a_second_concurrent_build_is_refused(project, capsys):
    with ProjectLock(project / STATE_DIR):
        with pytest.raises(ProjectLocked):
            build(project)
        assert main(["build", str(project)]) == 3
    assert "another build of this project is running" in capsys.readouterr().err


def test_clean_empties_the_cache_only(project):
    assert main(["-q", "clean", str(project)]) == 0
    assert not (project / STATE_DIR / "cache").exists()
    assert (project / "sparky.lock").exists()
    report = build(project)
    assert report.ran["generate"] == ["coin", "potion", "torch"]  # hand-drawn: re-sliced; generated: from the store
    assert not report.written


# ------------------------------------------------------------------ crash test


def _kill_loop(tmp_path: Path, kills: int) -> None:
    rng = random.Random(1234)
    reference = copy_example(tmp_path / "ref")
    build(reference)
    new_outputs = snapshot(reference)
    root = copy_example(tmp_path / "victim")
    # the "old" version: a build with another padding, so old and new files differ
    edit(root, "padding = 1\ntrim = true", "padding = 4\ntrim = true")
    build(root)
    old_outputs = snapshot(root)
    edit(root, "padding = 4\ntrim = true", "padding = 1\ntrim = true")
    cmd = [sys.executable, "-m", "sparky_assets", "-q", "build", "--force", str(root)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    duration = time.perf_counter() - t0
    for i in range(kills):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = snapshot(root)
        for rel, digest in now.items():
            if rel in new_outputs or rel in old_outputs:
                assert digest in (new_outputs.get(rel), old_outputs.get(rel)), f"kill {i}: {rel} is torn or foreign"
        if i % 2:  # sometimes go back to the old version before the next kill
            edit(root, "padding = 1\ntrim = true", "padding = 4\ntrim = true")
            build(root)
            edit(root, "padding = 4\ntrim = true", "padding = 1\ntrim = true")
    report = build(root)
    assert snapshot(root) == new_outputs, "after the kills a normal build must equal a clean build"
    assert not report.warnings or all("rebuilt" in w for w in report.warnings)


def test_sigkill_at_random_moments_never_tears_outputs(tmp_path):
    _kill_loop(tmp_path, kills=6)


@pytest.mark.slow
def test_sigkill_fifty_times_never_tears_outputs(tmp_path):
    _kill_loop(tmp_path, kills=50)


def test_committed_example_lock_builds_frozen(tmp_path):
    """The example ships sparky.lock + sparky-generated/: a frozen build of a fresh copy
    generates nothing lockable (when this fails, rebuild the example and commit its lock)."""
    root = copy_example(tmp_path)
    report = build(root, frozen=True)
    assert sorted(report.ran["generate"]) == ["coin", "potion", "torch"]  # hand-drawn: sliced, never locked


def test_cache_evicts_least_recently_used_entries_above_its_cap(project, monkeypatch):
    cache = project / STATE_DIR / "cache"
    size = lambda: sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    for i in range(4):  # each palette edit adds process/pack/export entries
        gpl = project / "palettes/items.gpl"
        gpl.write_text(gpl.read_text().replace(f"254 231  {97 + i}", f"254 231  {98 + i}"))
        build(project)
    grown = size()
    monkeypatch.setenv("SPARKY_CACHE_MAX_MB", "0")  # evict everything this build did not use
    gpl.write_text(gpl.read_text().replace("254 231  101", "254 231  102"))
    report = build(project)
    assert size() < grown
    expected = snapshot(project)
    monkeypatch.delenv("SPARKY_CACHE_MAX_MB")
    again = build(project)  # what the last build used survived: a no-op
    assert again.ran == {"generate": [], "process": [], "pack": [], "export": []}
    assert snapshot(project) == expected and report.ran["pack"] == ["world"]


@pytest.mark.parametrize("syncfs", ["syncfs", "fsync each file"])
def test_staged_files_are_made_durable_before_the_journal_names_them(project, monkeypatch, syncfs):
    """A durable build writes every staged file, then makes them durable in one pass
    (``syncfs``, or per-file fsync where there is none), before the journal exists."""
    from sparky_assets.pipeline import fsutil, outputs

    if syncfs != "syncfs":
        monkeypatch.setattr(fsutil, "_syncfs", None)
    elif fsutil._syncfs is None:
        pytest.skip("no syncfs on this platform")
    seen = []

    def spy(folder, files):
        seen.append((len(files), all(f.stat().st_size > 0 for f in files), (folder.parent / "journal.json").exists()))
        fsutil.make_durable(folder, files)

    monkeypatch.setattr(outputs, "make_durable", spy)
    edit(project, "padding = 1\ntrim = true", "padding = 3\ntrim = true")
    report = build(project)
    assert report.written and len(seen) == 1
    count, complete, journal_existed = seen[0]
    assert count >= len(report.written) and complete and not journal_existed


def test_lock_text_equals_tomli_w_of_the_whole_lock(project):
    """sparky.lock is put together entry by entry (memoised between builds); it must be
    byte for byte what tomli_w makes of the whole document, before and after an edit."""
    import tomli_w

    from sparky_assets.pipeline.store import LOCK_VERSION, GeneratedStore, lock_fields

    def whole(store: GeneratedStore) -> str:
        sprites = {name: lock_fields(e) for name, e in sorted(store.entries.items())}
        return tomli_w.dumps({"version": LOCK_VERSION, "sprite": sprites})

    store = GeneratedStore(project)
    assert len(store.entries) > 3 and store.lock_text() == whole(store)
    assert (project / "sparky.lock").read_text().split("\n", 1)[1] == store.lock_text()
    name = sorted(store.entries)[1]
    store.entries[name].inputs = {**store.entries[name].inputs, "seed": 5, "extra": {"nested": [1, 2]}}
    assert store.lock_text() == whole(store)  # one entry re-formatted, the rest from the memo
    store.entries.clear()
    assert store.lock_text() == whole(store)


def test_a_warm_builder_reloads_only_an_edited_palette_file(project, tmp_path):
    """Under ``watch`` a palette file edit reloads that palette, not the whole manifest;
    the outputs equal a fresh build's, and a broken palette is still reported in full."""
    from sparky_assets.errors import InvalidInput

    builder = Builder(project)
    builder.build(BuildOptions())
    before = builder._loaded[0]
    gpl = project / "palettes/items.gpl"
    gpl.write_text(gpl.read_text().replace("254 231  97", "254 231  99"))
    report = builder.build(BuildOptions())
    after = builder._loaded[0]
    assert after.sprites is before.sprites and after.palettes is not before.palettes  # partial reload
    assert report.ran["process"]
    fresh = shutil.copytree(project, tmp_path / "fresh", ignore=shutil.ignore_patterns(".sparky"))
    build(fresh)
    assert snapshot(fresh) == snapshot(project)
    good = gpl.read_text()
    gpl.write_text(good.replace("254 231  99", "254 231 999"))
    with pytest.raises(InvalidInput) as failed:
        builder.build(BuildOptions())
    assert any(d.file and d.file.endswith("items.gpl") and d.line for d in failed.value.diagnostics)
    gpl.write_text(good)
    assert builder.build(BuildOptions()).ran["process"] == []  # back to the built palette: all cached
    assert builder.build(BuildOptions()).ran == {"generate": [], "process": [], "pack": [], "export": []}


def test_a_warm_builder_reuses_sprite_plans_until_what_made_them_changes(project, tmp_path):
    """``watch`` resolves only the sprites whose spec, palette or read files changed;
    the reads of a reused plan are still recorded (watched), and the outputs equal a
    fresh build's."""
    builder = Builder(project)
    builder.build(BuildOptions())
    first = builder.last_project.sprites
    builder.build(BuildOptions())
    again = builder.last_project.sprites
    assert all(again[n] is first[n] for n in first)  # nothing changed: every plan reused
    png = (project / "art/potion.png").resolve()
    assert png in builder.last_reads.paths()  # a reused plan's reads are still recorded (watched)
    gpl = project / "palettes/items.gpl"
    gpl.write_text(gpl.read_text().replace("254 231  97", "254 231  99"))
    builder.build(BuildOptions())
    changed = builder.last_project.sprites
    renewed = sorted(n for n in first if changed[n] is not first[n])
    assert renewed and renewed == sorted(n for n, p in first.items() if p.spec.palette == "palettes/items.gpl")
    im = Image.open(png).convert("RGBA")  # a source image: the manifest is loaded again, every plan made anew
    im.putpixel((1, 1), (255, 255, 255, 255))
    im.save(png)
    report = builder.build(BuildOptions())
    assert report.ran["generate"] == ["potion"]
    assert all(builder.last_project.sprites[n] is not changed[n] for n in changed)
    fresh = shutil.copytree(project, tmp_path / "fresh", ignore=shutil.ignore_patterns(".sparky"))
    build(fresh)
    assert snapshot(fresh) == snapshot(project)


def test_a_watch_builder_writes_its_cache_entries_after_the_build(project):
    """``watch`` defers cache writes and the staging folder's removal until its messages
    are out (``prune_cache``): no entry is on disk before, every one after, and a fresh
    builder then reruns nothing."""
    edit(project, "[[sprite]]", '[[sprite]]\nname = "late"\nstyle = "item"\nsize = 16\n\n[[sprite]]')
    entries = lambda: sorted(p for p in (project / STATE_DIR / "cache").rglob("*") if p.is_file())  # noqa: E731
    before = entries()
    watch = Builder(project, durable=False, defer_prune=True)
    report = watch.build(BuildOptions())
    assert report.ran["generate"] == ["late"]
    assert entries() == before
    assert (project / STATE_DIR / "staging").is_dir()
    watch.prune_cache()
    assert len(entries()) > len(before)
    assert not (project / STATE_DIR / "staging").exists()
    again = build(project)
    assert again.ran == {"generate": [], "process": [], "pack": [], "export": []}
