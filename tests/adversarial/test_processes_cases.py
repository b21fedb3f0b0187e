"""Processes: two builds at once, signals in the middle of the output switch-over,
read-only output folders, a full disk (``prlimit --fsize``), an I/O error mid-switch,
and the cases that could allocate without bound run under ``prlimit --as``.

After any failure the previous outputs — and ``sparky.lock`` and ``sparky-generated/``
— are byte-identical; after a kill, every output is complete (old or new) and the next
build finishes the switch (the journal) and equals a clean build.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.adversarial.rig import REPO, Project, check_run, cli, cli_subprocess, copy_project, tree

LIMIT_AS = 1 << 30
"""Address-space limit for the bounded-memory runs (a decoded bomb needs 3.6 GB)."""


def _changed(project: Project) -> dict[str, str]:
    """Edit the project so every output (and the lock and store) changes; return what a
    clean build of the edited project writes."""
    project.edit("seed = 7", "seed = 8")
    reference = project.base / "reference"
    copy_project(project.root, reference)
    ref = Project(project.base)
    ref.root = reference
    assert cli("build", str(reference)).code == 0
    return ref.outputs()


def test_a_second_build_waits_its_turn(project):
    from sparky_assets.pipeline.engine import ProjectLock

    before = project.outputs()
    with ProjectLock(project.root / ".sparky"):
        outcome = project.build()
    check_run(
        project, outcome, 3, where=r"build\.lock", contains=("another build",), outside_before=project.outside_before
    )
    assert project.outputs() == before


_KILL_MID_SWITCH = textwrap.dedent(
    """
    import os, signal, sys
    from sparky_assets.cli.main import main
    real, moves = os.replace, []

    def replace(src, dst, *a, **k):  # the output switch-over moves staged files; signal after two
        real(src, dst, *a, **k)
        if "/.sparky/staging/" in str(src) and "/old/" not in str(src):
            moves.append(dst)
            if len(moves) == 2:
                os.kill(os.getpid(), int(sys.argv[2]))

    os.replace = replace
    sys.exit(main(["build", sys.argv[1]]))
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signal_in_the_middle_of_the_switch(project, sig):
    old = project.outputs()
    new = _changed(project)
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_MID_SWITCH, str(project.root), str(int(sig))],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    now = project.outputs()
    assert set(now) == set(old) | set(new) or set(now) <= set(old) | set(new)
    for rel, digest in now.items():  # every file is complete: its old or its new version
        assert digest in (old.get(rel), new.get(rel)), rel
    if sig == signal.SIGINT:  # Ctrl-C: rolled back at once
        assert proc.returncode == 130, proc.stderr
        assert now == old
        assert not (project.root / ".sparky/journal.json").exists()
    else:  # killed: the journal is left, and the next build rolls it forward
        assert proc.returncode == -sig
        assert (project.root / ".sparky/journal.json").exists()
        assert now != old
    outcome = project.build()
    check_run(project, outcome, 0, outside_before=project.outside_before)
    assert project.outputs() == new


def test_an_io_error_mid_switch_restores_the_previous_outputs(project, monkeypatch):
    old = project.outputs()
    _changed(project)
    real, moves = os.replace, []

    def failing(src, dst, *a, **k):
        if "/.sparky/staging/" in str(src) and "/old/" not in str(src):
            moves.append(dst)
            if len(moves) == 4:
                raise OSError(5, "Input/output error", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", failing)
    outcome = project.build()
    monkeypatch.undo()
    check_run(
        project,
        outcome,
        1,
        where=r"game/",
        contains=("previous outputs were restored", "Input/output error"),
        outside_before=project.outside_before,
        outputs_before=old,
    )
    assert not (project.root / ".sparky/journal.json").exists()
    assert project.build().code == 0


def _without_write_permission() -> list[str]:
    """A command prefix under which folder permissions apply (root ignores them)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE as root")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("folder", ["godot/sprites", "build/sprites/sheets", "sparky-generated"])
def test_a_read_only_output_folder_changes_nothing(project, folder):
    old = project.outputs()
    _changed(project)
    target = project.root / folder
    target.chmod(0o555)
    try:
        proc = subprocess.run(
            [*_without_write_permission(), sys.executable, "-m", "sparky_assets", "build", str(project.root)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        target.chmod(0o755)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and folder in proc.stderr and "Permission denied" in proc.stderr
    assert project.outputs() == old
    assert tree(project.outside) == project.outside_before


def test_a_full_disk_names_the_file_and_changes_nothing(project):
    old = project.outputs()
    _changed(project)
    outcome = cli_subprocess("build", str(project.root), env={}, timeout=120, limit_as=None, fsize=100)
    check_run(
        project,
        outcome,
        1,
        where=r"cannot stage \S+",
        contains=("File too large",),
        outside_before=project.outside_before,
        outputs_before=old,
    )


def _deep_manifest(p: Project) -> None:
    p.manifest.write_text(p.manifest.read_text() + "x = " + "[" * 200_000 + "]" * 200_000 + "\n")


def _big_manifest(p: Project) -> None:
    p.manifest.write_text(p.manifest.read_text() + "# " + "x" * (40 << 20) + "\n")


def _source_bomb(p: Project) -> None:
    from tests.adversarial.test_images_cases import bomb

    (p.root / "art/coin.png").write_bytes(bomb(60000, 60000))


def _sheet_bomb(p: Project) -> None:
    from tests.adversarial.test_images_cases import bomb

    (p.root / "art/coin.png").write_bytes(bomb(11000, 11000))
    p.edit('source = "art/coin.png"', 'source = "art/coin.png"\ngrid = [8, 8]')


def _palette_bomb(p: Project) -> None:
    from tests.adversarial.test_images_cases import bomb

    (p.root / "pal.png").write_bytes(bomb(60000, 60000))
    p.edit('palette = "pal.hex"', 'palette = "pal.png"')


def _store_bomb(p: Project) -> None:
    from tests.adversarial.test_bookkeeping_cases import _plant, _stored_bomb

    _plant(p, _stored_bomb(p))


@pytest.mark.parametrize(
    "case",
    [
        ("deep-manifest", _deep_manifest, 2),
        ("big-manifest", _big_manifest, 2),
        ("source-bomb", _source_bomb, 2),
        ("sheet-bomb", _sheet_bomb, 2),
        ("palette-bomb", _palette_bomb, 2),
        ("store-bomb", _store_bomb, 0),
    ],
    ids=lambda c: c[0],
)
def test_bounded_memory(project, case):
    """Run as its own process under ``prlimit --as=1GiB``: refused (or rebuilt) without
    ever holding the declared size in memory."""
    _, setup, code = case
    setup(project)
    old = project.outputs()
    outcome = cli_subprocess("build", str(project.root), limit_as=LIMIT_AS)
    assert "MemoryError" not in outcome.text and "Cannot allocate" not in outcome.text, outcome.text
    check_run(project, outcome, code, outside_before=project.outside_before, outputs_before=old)
