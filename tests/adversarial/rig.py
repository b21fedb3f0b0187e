"""The adversarial rig: a tiny project beside an ``outside/`` folder, the CLI run in
process, and the checks every case makes.

Every case asserts the same things about a run (:func:`check_run`):

* the exit code, and a location (``sparky.toml:LINE:COL``, a path) in the output;
* no traceback and no "internal error";
* nothing written outside the project: the sibling ``outside/`` folder (where planted
  symlinks and journals point) is byte-identical, with the same file list;
* after a failure, the previous outputs are byte-identical (and ``sparky.lock`` and
  ``sparky-generated/`` with them);
* bounded memory: the process's peak resident size stays under :data:`PEAK_RSS_BYTES`
  (the cases that could allocate without bound also run under ``prlimit --as`` in a
  subprocess: ``test_processes.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sparky_assets.cli.main import main

REPO = Path(__file__).resolve().parents[2]
PEAK_RSS_BYTES = 3 << 30
"""Peak RSS of the test process: a decoded bomb (30000² RGBA = 3.6 GB) would pass it."""

MANIFEST = """\
[project]
name = "tiny"
palette = "pal.hex"
fps = 8

[[sprite]]
name = "hero"
size = 8
animations = { idle = 2, walk = { frames = 2, fps = 12 } }
seed = 7

[[sprite]]
name = "coin"
source = "art/coin.png"

[[atlas]]
name = "all"
sprites = ["hero", "coin"]

[export.godot]
project = "godot"

[export.bevy]
assets = "bevy/assets"

[export.texturepacker]
"""
"""The base project. Line numbers matter: cases name them in expected locations."""

PALETTE = "000000\n1d2b53\n7e2553\n008751\nab5236\n5f574f\nc2c3c7\nfff1e8\nff004d\nffa300\n"

OUTPUT_DIRS = ("build", "godot/sprites", "bevy/assets/sprites", "sparky-generated")
COMMITTED = ("sparky.lock",)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first ``needle`` in ``text``."""
    return text[: text.index(needle)].count("\n") + 1


def coin_png() -> bytes:
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    for x in range(1, 7):
        for y in range(1, 7):
            im.putpixel((x, y), (255, 163, 0, 255) if (x + y) % 3 else (171, 82, 54, 255))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def write_base(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "sparky.toml").write_text(MANIFEST)
    (root / "pal.hex").write_text(PALETTE)
    (root / "art").mkdir()
    (root / "art/coin.png").write_bytes(coin_png())
    (root / "godot").mkdir()
    (root / "godot/project.godot").write_text("config_version=4\n")
    (root / "bevy/assets").mkdir(parents=True)


def tree(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path → sha256 (or ``->target`` for a symlink, ``<dir>``, ``<fifo>``)."""
    out: dict[str, str] = {}
    if not folder.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            if p.is_symlink():
                out[rel] = "->" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "<dir>"
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "<special>"
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
    return out


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(*args: str, env: dict[str, str] | None = None) -> Outcome:
    """``sparky-assets ARGS`` in this process (the entry point every user runs)."""
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Outcome(code, out.getvalue(), err.getvalue())


def cli_subprocess(
    *args: str,
    cwd: Path | None = None,
    limit_as: int | None = None,
    fsize: int | None = None,
    env: dict | None = None,
    timeout: float = 120,
) -> Outcome:
    """The CLI as its own process, optionally under ``prlimit``: ``--as`` (bounded
    memory) and ``--fsize`` (a full disk: writes past it fail with EFBIG)."""
    command = [sys.executable, "-m", "sparky_assets", *args]
    limits = [f"--as={limit_as}"] * (limit_as is not None) + [f"--fsize={fsize}"] * (fsize is not None)
    if limits:
        command = ["prlimit", *limits, "--", *command]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    full_env.update(env or {})
    proc = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


class Project:
    """``base/game`` (the project) and ``base/outside`` (what must never change)."""

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "game"
        self.outside = base / "outside"

    @property
    def manifest(self) -> Path:
        return self.root / "sparky.toml"

    def edit(self, old: str, new: str, count: int = 1) -> None:
        text = self.manifest.read_text()
        assert old in text, old
        self.manifest.write_text(text.replace(old, new, count))

    def outputs(self) -> dict[str, str]:
        """Everything a build writes (outputs, the lock, the store), by content."""
        snap = tree(self.root, skip=(".sparky",))
        return {k: v for k, v in snap.items() if k.startswith(OUTPUT_DIRS) or k in COMMITTED}

    def build(self, *extra: str, env: dict[str, str] | None = None) -> Outcome:
        return cli("build", str(self.root), *extra, env=env)


def make_outside(base: Path) -> Path:
    outside = base / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "victim.txt").write_text("victim\n")
    (outside / "other.txt").write_text("other\n")
    (outside / "victim.png").write_bytes(coin_png())
    (outside / "deep/keep.png").write_bytes(b"\x89PNG keep")
    (outside / "tmp").mkdir()
    (outside / "tmp/keep").write_text("keep")
    (outside / "cache").mkdir()
    (outside / "cache/keep").write_text("keep")
    return outside


def check_run(
    project: Project,
    outcome: Outcome,
    code: int,
    *,
    where: str | None = None,
    contains: tuple[str, ...] = (),
    outside_before: dict[str, str],
    outputs_before: dict[str, str] | None = None,
) -> None:
    """The assertions every adversarial case makes (see the module docstring)."""
    text = outcome.text
    assert outcome.code == code, f"exit {outcome.code}, expected {code}:\n{text}"
    assert "Traceback" not in text and "internal error" not in text, text
    assert "\x00" not in text, "a NUL byte reached the terminal"
    if where is not None:
        assert re.search(where, text), f"no location matching {where!r} in:\n{text}"
    for fragment in contains:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    assert tree(project.outside) == outside_before, "something outside the project changed"
    if outputs_before is not None and code != 0:
        assert project.outputs() == outputs_before, "a failed build changed the previous outputs"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak < PEAK_RSS_BYTES, f"peak RSS {peak >> 20} MiB"


def expect(
    project: Project,
    code: int,
    *,
    where: str | None = None,
    contains=(),
    command: tuple[str, ...] = ("build",),
    env: dict[str, str] | None = None,
) -> Outcome:
    """Run ``sparky-assets COMMAND <project>`` and make every check of :func:`check_run`
    against the outputs as they were just before (and ``outside/`` as the case left it)."""
    before = project.outputs()
    outside = tree(project.outside)
    outcome = cli(*command, str(project.root), env=env)
    check_run(
        project,
        outcome,
        code,
        where=where,
        contains=tuple(contains),
        outside_before=outside,
        outputs_before=before,
    )
    return outcome


def png_bytes(array: np.ndarray, mode: str | None = None, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG", **save) if mode else Image.fromarray(array).save(buf, "PNG", **save)
    return buf.getvalue()


def copy_project(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=True)
