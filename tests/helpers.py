"""Shared test helpers: example projects in temp folders, output snapshots, image cutting,
commands run on a terminal."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "dungeon"
GENERATED = ("build", "godot-game/sprites", "bevy-game/assets/sprites", ".sparky")


def copy_example(dest: Path, name: str = "dungeon") -> Path:
    """A fresh copy of an example project (without any build outputs or cache)."""
    src = REPO / "examples" / name
    target = dest / name
    shutil.copytree(src, target, ignore=shutil.ignore_patterns(*[Path(g).name for g in GENERATED if "/" not in g]))
    for g in GENERATED:
        shutil.rmtree(target / g, ignore_errors=True)
    return target


def snapshot(root: Path, *, skip: tuple[str, ...] = (".sparky",)) -> dict[str, str]:
    """relative path → sha256 of every file under ``root`` (minus ``skip`` folders, which
    are never entered: a running watch creates and removes ``.sparky/staging`` at any
    time). A file that vanishes while it is read (a concurrent build's switch-over) is
    left out: callers that race a writer poll until the snapshot is what they expect."""
    out = {}
    for folder, dirs, files in os.walk(root):
        base = Path(folder).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = sorted(d for d in dirs if not any(prefix + d == s or (prefix + d).startswith(s + "/") for s in skip))
        for name in files:
            rel = prefix + name
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            try:
                out[rel] = hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()
            except FileNotFoundError:
                continue
    return dict(sorted(out.items()))


def mtimes(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_mtime_ns
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".sparky" not in p.parts
    }


def rgba(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def cut(page: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    return page[y : y + h, x : x + w]


def on_a_terminal(
    args: list[str], env: dict, on_output: Callable[[str, subprocess.Popen], None] | None = None, timeout_s: float = 400
) -> tuple[int, str, str]:
    """Run ``args`` with its stderr on a pseudo-terminal (a build draws its progress
    there) and its stdout piped; ``on_output(terminal text so far, process)`` is told
    as the terminal output grows. Returns (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = ""
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the command closed its end
                    break
                if not chunk:
                    break
                seen += chunk.decode(errors="replace")
                if on_output is not None:
                    on_output(seen, proc)
            elif proc.poll() is not None:
                break
        stdout = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return proc.returncode, stdout, seen
