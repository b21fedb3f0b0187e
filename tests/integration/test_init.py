"""``sparky-assets init``: starters copied from templates/, existing projects completed, never overwritten.

Running the starters is tested elsewhere: the Godot one in Godot 4.6
(tests/godot4/test_starter_godot4.py), the Bevy one with cargo (test_bevy_starter.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from sparky_assets.cli.main import main
from sparky_assets.templates import crate_name, templates_root
from tests.helpers import snapshot

REPO = Path(__file__).resolve().parents[2]


def _texts(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".toml", ".godot", ".md", ".rs")
    }


@pytest.mark.parametrize("engine", ["godot", "bevy", "generic"])
def test_starter_is_the_template_with_its_tokens_filled(tmp_path, engine, capsys):
    root = tmp_path / 'Quote "Game"'
    assert main(["init", str(root), "--engine", engine]) == 0
    template = templates_root() / engine
    made = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert made == {p.relative_to(template).as_posix() for p in template.rglob("*") if p.is_file()}
    for name, text in _texts(root).items():
        assert "{{" not in text, f"{name} keeps a template token"
    manifest = tomllib.loads((root / "sparky.toml").read_text(encoding="utf-8"))
    assert manifest["project"]["name"] == 'Quote "Game"'
    assert "created" in capsys.readouterr().out
    if engine == "godot":
        assert 'config/name="Quote \\"Game\\""' in (root / "project.godot").read_text(encoding="utf-8")
        assert (root / "addons/sparky_bridge/plugin.cfg").is_file()
    if engine == "bevy":
        cargo = tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
        assert cargo["package"]["name"] == "quote_game"
        # From a checkout, the path of this repository's crate, relative to the project.
        path = cargo["dependencies"]["bevy_sparky"]["path"]
        assert (root / path / "Cargo.toml").resolve() == REPO / "engine-bridges/bevy/Cargo.toml"


def test_init_again_adds_nothing_and_overwrites_nothing(tmp_path, capsys):
    root = tmp_path / "game"
    assert main(["-q", "init", str(root), "--engine", "godot"]) == 0
    assert main(["-q", "build", str(root)]) == 0
    (root / "main.gd").write_text("# my own main script\n", encoding="utf-8")
    before = snapshot(root, skip=())
    capsys.readouterr()
    assert main(["init", str(root), "--engine", "godot"]) == 0
    out = capsys.readouterr().out
    assert snapshot(root, skip=()) == before
    assert "created" not in out and "skipped main.gd (exists)" in out and "skipped sparky.toml (exists)" in out


EXISTING_PROJECT = """; an existing game
config_version=5

[application]

config/name="Existing"
run/main_scene="res://levels/start.tscn"

[editor_plugins]

enabled=PackedStringArray("res://addons/other/plugin.cfg")

[rendering]

textures/canvas_textures/default_texture_filter=1
"""


def test_init_completes_an_existing_godot_project(tmp_path, capsys):
    root = tmp_path / "existing"
    root.mkdir()
    (root / "project.godot").write_text(EXISTING_PROJECT, encoding="utf-8")
    assert main(["init", str(root), "--engine", "godot"]) == 0
    out = capsys.readouterr().out
    project = (root / "project.godot").read_text(encoding="utf-8")
    # Kept: the game's own main scene and its explicit filter; added: what the bridge needs.
    assert 'run/main_scene="res://levels/start.tscn"' in project
    assert "textures/canvas_textures/default_texture_filter=1" in project
    assert "default_texture_filter (already set to 1)" in out
    assert (
        'enabled=PackedStringArray("res://addons/other/plugin.cfg", "res://addons/sparky_bridge/plugin.cfg")' in project
    )
    assert '[autoload]\n\nSparkyBridge="*res://addons/sparky_bridge/runtime.gd"' in project
    assert "2d/snap/snap_2d_transforms_to_pixel=true" in project
    assert (root / "addons/sparky_bridge/runtime.gd").is_file() and (root / "sparky.toml").is_file()
    assert main(["-q", "build", str(root)]) == 0
    assert (root / "sprites/hero.tres").is_file()
    # Running init again changes nothing in project.godot.
    assert main(["-q", "init", str(root), "--engine", "godot"]) == 0
    assert (root / "project.godot").read_text(encoding="utf-8") == project


def test_init_completes_an_existing_cargo_project_without_touching_it(tmp_path, capsys):
    root = tmp_path / "rusty"
    (root / "src").mkdir(parents=True)
    cargo = '[package]\nname = "rusty"\nversion = "0.1.0"\nedition = "2021"\n'
    (root / "Cargo.toml").write_text(cargo, encoding="utf-8")
    (root / "src/main.rs").write_text("fn main() {}\n", encoding="utf-8")
    assert main(["init", str(root), "--engine", "bevy", "--bevy-sparky", "0.1"]) == 0
    out = capsys.readouterr().out
    assert (root / "Cargo.toml").read_text(encoding="utf-8") == cargo
    assert (root / "src/main.rs").read_text(encoding="utf-8") == "fn main() {}\n"
    assert 'add `bevy_sparky = "0.1"` to its [dependencies]' in out
    manifest = tomllib.loads((root / "sparky.toml").read_text(encoding="utf-8"))
    assert manifest["export"]["bevy"]["assets"] == "assets" and (root / "assets").is_dir()


def test_bevy_sparky_flag_takes_a_version_or_a_crate_folder(tmp_path, capsys):
    assert main(["-q", "init", str(tmp_path / "v"), "--engine", "bevy", "--bevy-sparky", "0.2.1"]) == 0
    assert tomllib.loads((tmp_path / "v/Cargo.toml").read_text())["dependencies"]["bevy_sparky"] == "0.2.1"
    crate = REPO / "engine-bridges" / "bevy"
    assert main(["-q", "init", str(tmp_path / "p"), "--engine", "bevy", "--bevy-sparky", str(crate)]) == 0
    dependency = tomllib.loads((tmp_path / "p/Cargo.toml").read_text())["dependencies"]["bevy_sparky"]
    assert (tmp_path / "p" / dependency["path"]).resolve() == crate
    capsys.readouterr()
    assert main(["init", str(tmp_path / "bad"), "--engine", "bevy", "--bevy-sparky", "./no/such/crate"]) == 2
    err = capsys.readouterr().err
    assert "--bevy-sparky" in err and "./no/such/crate" in err


def test_crate_names_are_valid_cargo_names():
    assert crate_name("My Game!") == "my_game"
    assert crate_name("2d-demo") == "game_2d_demo"
    assert crate_name("***") == "game"


def test_the_wheel_ships_the_starters(tmp_path):
    """setup.py copies templates/ into the package: an installed wheel can run init."""
    pytest.importorskip("setuptools")
    wheels = tmp_path / "wheels"
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "setup.py", "MANIFEST.in"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("sparky_assets", "templates"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        + ["--wheel-dir", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("sparky_assets-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "sparky_assets/templates/starters/" + p.relative_to(REPO / "templates").as_posix()
        for p in (REPO / "templates").rglob("*")
        if p.is_file()
    }
    assert expected <= names, sorted(expected - names)[:10]
