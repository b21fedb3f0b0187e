"""Paths and symlinks: folders and files that lead out of the project, symlink loops,
and links planted where outputs and bookkeeping go. One table of setups; each runs a
build (or ``clean``) of a built project and checks the rig's invariants.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.adversarial.rig import Project, check_run, cli, expect, tree


def _replace_with_link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def _to_outside(rel: str, folder: str | None = None):
    """Make ``rel`` a symlink to a folder outside (a copy of what it held)."""

    def setup(p: Project) -> None:
        target = p.outside / (folder or rel.replace("/", "_"))
        if (p.root / rel).is_dir():
            shutil.copytree(p.root / rel, target, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
        _replace_with_link(p.root / rel, target)

    return setup


def _loop(rel: str):
    def setup(p: Project) -> None:
        a = p.root / rel
        _replace_with_link(a, a.parent / (a.name + ".loop"))
        os.symlink(a, a.parent / (a.name + ".loop"))

    return setup


def _file_link(rel: str, outside_name: str):
    def setup(p: Project) -> None:
        _replace_with_link(p.root / rel, p.outside / outside_name)

    return setup


def _output_link_outside(p: Project) -> None:
    # an output file replaced by a link to an outside file: the build replaces the link,
    # never writes through it
    _replace_with_link(p.root / "build/sprites/sheets/all_0.png", p.outside / "victim.png")


def _export_folder_link_inside(p: Project) -> None:
    shutil.move(p.root / "godot/sprites", p.root / "godot/real-sprites")
    os.symlink("real-sprites", p.root / "godot/sprites")


def _state_file_link(name: str, target: str):
    def setup(p: Project) -> None:
        (p.root / ".sparky").mkdir(exist_ok=True)
        _replace_with_link(p.root / ".sparky" / name, p.outside / target)

    return setup


def _lock_entry_link(p: Project) -> None:
    stored = next((p.root / "sparky-generated").glob("hero.*.png"))
    shutil.copy(stored, p.outside / "stored.png")
    _replace_with_link(stored, p.outside / "stored.png")


def _manifest_folder_link(p: Project) -> None:
    os.symlink(p.root, p.base / "alias")


def _dangling_source(p: Project) -> None:
    _replace_with_link(p.root / "art/coin.png", p.outside / "missing.png")


def _nested_output_dir_link(p: Project) -> None:
    # build/sprites -> outside: both the sheets and the texturepacker folders lead out
    _to_outside("build/sprites", "sprites")(p)


# id, setup, command, exit code, location regex, fragments
CASES = [
    ("state-folder-outside", _to_outside(".sparky", "state"), "build", 2, r"\.sparky", ["leads outside the project"]),
    ("state-folder-outside-clean", _to_outside(".sparky", "state"), "clean", 2, r"\.sparky", ["leads outside"]),
    ("state-folder-loop", _loop(".sparky"), "build", 2, r"\.sparky", ["cannot be resolved"]),
    ("store-outside", _to_outside("sparky-generated", "gen"), "build", 2, "sparky-generated", ["leads outside"]),
    ("store-loop", _loop("sparky-generated"), "build", 2, "sparky-generated", ["cannot be resolved"]),
    ("lock-outside", _file_link("sparky.lock", "victim.txt"), "build", 2, r"sparky\.lock", ["leads outside"]),
    ("sheets-outside", _to_outside("build/sprites/sheets"), "build", 2, "sheets", ["leads outside"]),
    ("project-out-outside", _nested_output_dir_link, "build", 2, r"sparky\.toml:1:", ["outside the project root"]),
    ("texturepacker-outside", _to_outside("build/sprites/texturepacker"), "build", 2, "texturepacker", ["outside"]),
    ("godot-folder-outside", _to_outside("godot/sprites"), "build", 2, "godot/sprites", ["leads outside"]),
    ("godot-project-outside", _to_outside("godot"), "build", 2, "godot", ["outside"]),
    ("bevy-assets-outside", _to_outside("bevy/assets"), "build", 2, "bevy", ["outside"]),
    ("bevy-sprites-outside", _to_outside("bevy/assets/sprites"), "build", 2, "bevy/assets/sprites", ["outside"]),
    ("art-folder-outside", _to_outside("art"), "build", 2, r"sparky\.toml:14:", ["outside the project root"]),
    ("source-file-outside", _file_link("art/coin.png", "victim.png"), "build", 2, r"sparky\.toml:14:", ["outside"]),
    ("source-loop", _loop("art/coin.png"), "build", 2, r"sparky\.toml:14:", []),
    ("source-dangling", _dangling_source, "build", 2, r"sparky\.toml:14:", []),
    ("palette-outside", _file_link("pal.hex", "victim.txt"), "build", 2, r"sparky\.toml:3:", ["outside"]),
    ("palette-loop", _loop("pal.hex"), "build", 2, r"sparky\.toml:3:", ["symlink loop"]),
    ("stored-art-outside", _lock_entry_link, "build", 2, r"sparky\.lock", ["outside"]),
    ("output-file-link-outside", _output_link_outside, "build", 0, None, []),
    ("export-folder-link-inside", _export_folder_link_inside, "build", 0, None, []),
    ("manifest-through-alias", _manifest_folder_link, "build-alias", 0, None, []),
    ("cache-folder-outside", _state_file_link("cache", "cache"), "build", 2, "cache", ["leads outside"]),
    ("cache-folder-outside-clean", _state_file_link("cache", "cache"), "clean", 2, "cache", ["leads outside"]),
    ("tmp-folder-outside", _state_file_link("tmp", "tmp"), "build", 0, None, []),
    ("staging-folder-outside", _state_file_link("staging", "tmp"), "build", 0, None, []),
    ("build-lock-outside", _state_file_link("build.lock", "victim.txt"), "build", 0, None, []),
    ("outputs-record-outside", _state_file_link("outputs.json", "victim.txt"), "build", 0, None, []),
    ("journal-outside", _state_file_link("journal.json", "victim.txt"), "build", 0, None, []),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_path_case(project, case):
    _, setup, command, code, where, fragments = case
    # a changed seed: the build has something to write (and generate) into every output
    project.edit("seed = 7", "seed = 8")
    setup(project)
    outside_before = tree(project.outside)  # as the setup left it
    if command == "build-alias":
        before = project.outputs()
        outcome = cli("build", str(project.base / "alias"))
        check_run(project, outcome, code, outside_before=outside_before, outputs_before=before)
    else:
        expect(project, code, where=where, contains=fragments, command=(command,))
    if code == 0 and command.startswith("build"):  # a second build is a no-op and still safe
        again = cli("build", str(project.root))
        check_run(project, again, 0, outside_before=outside_before)
        assert "nothing changed" in again.text, again.text
