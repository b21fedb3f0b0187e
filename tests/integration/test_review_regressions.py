"""Regressions found in review: each test names the bug it pins."""

from __future__ import annotations

import shutil

import numpy as np

from sparky_assets import registry
from sparky_assets.cli.main import main
from sparky_assets.pipeline.engine import Builder, BuildOptions
from tests.helpers import copy_example, snapshot


def build(root, **options):
    return Builder(root).build(BuildOptions(**options))


def edit(root, old, new):
    p = root / "sparky.toml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))


def test_renaming_an_atlas_renames_its_files(tmp_path):
    root = copy_example(tmp_path)
    build(root)
    edit(root, 'name = "characters"', 'name = "chars"')
    report = build(root)
    assert (root / "build/sprites/sheets/chars_0.png").exists()
    assert not (root / "build/sprites/sheets/characters_0.png").exists()
    assert (root / "bevy-game/assets/sprites/chars.atlas.ron").exists()
    assert {a.change for a in report.assets} == {"added", "removed", "modified"}


def test_regenerated_art_that_differs_flows_into_outputs_and_matches_frozen(tmp_path, monkeypatch):
    """A generator that is not bit-exact (a GPU): --regenerate records new pixels in the
    lock; the outputs must follow them, and a frozen build elsewhere must agree."""
    root = copy_example(tmp_path / "a")
    build(root)
    before = snapshot(root)
    gen = registry.generator("procedural")
    original = gen.generate

    def jittered(requests, reads=None):
        out = original(requests, reads)
        return [
            # far enough to land on other palette colours (the procedural art is palette colours already)
            [np.where(f[..., 3:] > 0, f ^ np.array([128, 128, 128, 0], np.uint8), f).astype(np.uint8) for f in frames]
            for frames in out
        ]

    monkeypatch.setattr(gen, "generate", jittered)
    report = build(root, regenerate=("hero",))
    monkeypatch.undo()
    assert report.ran["generate"] == ["hero"] and report.ran["process"] == ["hero"]
    after = snapshot(root)
    assert after["build/sprites/sheets/characters_0.png"] != before["build/sprites/sheets/characters_0.png"]
    ci = tmp_path / "ci"
    shutil.copytree(root, ci, ignore=shutil.ignore_patterns(".sparky", "build", "sprites"))
    build(ci, frozen=True)
    assert snapshot(ci) == after


def test_frozen_refuses_force_and_regenerate_and_unknown_names_are_errors(tmp_path, capsys):
    root = copy_example(tmp_path)
    assert main(["build", "--frozen", "--force", str(root)]) == 2
    assert main(["build", "--frozen", "--regenerate", "hero", str(root)]) == 2
    assert main(["build", "--regenerate", "heroo", str(root)]) == 2
    err = capsys.readouterr().err
    assert "--frozen cannot be combined" in err and "did you mean 'hero'?" in err


def test_force_rebuilds_without_regenerating_locked_art(tmp_path):
    root = copy_example(tmp_path)
    build(root)
    report = build(root, force=True)
    assert sorted(report.ran["generate"]) == ["coin", "potion", "torch"]
    assert len(report.ran["process"]) == 22 and not report.written


def test_an_unreadable_lock_is_an_error_not_a_regeneration(tmp_path, capsys):
    root = copy_example(tmp_path)
    lock = root / "sparky.lock"
    lines = lock.read_text().splitlines()
    lock.write_text("\n".join(lines[:4] + ["<<<<<<< HEAD"] + lines[4:]))
    before = snapshot(root)
    assert main(["build", str(root)]) == 2
    assert "sparky.lock:5:" in capsys.readouterr().err
    assert snapshot(root) == before


def test_export_dir_is_normalised_so_engine_paths_stay_valid(tmp_path):
    root = copy_example(tmp_path)
    edit(root, 'project = "godot-game"\ndir = "sprites"', 'project = "godot-game"\ndir = "./sprites//"')
    report = build(root)
    godot = [a for a in report.assets if a.target == "godot"]
    assert godot and all(a.engine_path.startswith("res://sprites/") and "//" not in a.engine_path[6:] for a in godot)
    assert "res://./" not in (root / "godot-game/sprites/hero.tres").read_text()


def test_lost_output_record_does_not_rewrite_identical_files(tmp_path):
    root = copy_example(tmp_path)
    build(root)
    (root / ".sparky/outputs.json").unlink()
    report = build(root)
    assert not report.written and not report.assets


def test_only_removes_stale_pages_of_the_atlas_it_rebuilt(tmp_path):
    root = copy_example(tmp_path)
    edit(root, "max_size = 256", "max_size = 48")
    build(root)
    assert (root / "build/sprites/sheets/characters_1.png").exists()
    edit(root, "max_size = 48", "max_size = 256")
    build(root, only=("characters",))
    assert not (root / "build/sprites/sheets/characters_1.png").exists()
    assert not build(root).assets


def test_output_folder_holding_a_source_is_refused(tmp_path, capsys):
    root = copy_example(tmp_path)
    edit(root, 'dir = "build/sprites/texturepacker"', 'dir = "art"')
    assert main(["build", str(root)]) == 2
    assert "export.texturepacker.dir: output folder holds an input of the build (art/" in capsys.readouterr().err


def test_frozen_build_never_rewrites_the_lock(tmp_path):
    root = copy_example(tmp_path)
    text = (root / "sparky.toml").read_text()
    start = text.index('[[sprite]]\nname = "spider"')
    end = text.index("[[sprite]]", start + 5)
    (root / "sparky.toml").write_text((text[:start] + text[end:]).replace('"ghost", "spider"]', '"ghost"]'))
    lock = (root / "sparky.lock").read_bytes()
    store = sorted(p.name for p in (root / "sparky-generated").iterdir())
    build(root, frozen=True)
    assert (root / "sparky.lock").read_bytes() == lock
    assert sorted(p.name for p in (root / "sparky-generated").iterdir()) == store
    build(root)  # a normal build drops the removed sprite from the lock
    assert b"[sprite.spider]" not in (root / "sparky.lock").read_bytes()
