"""The Bevy bridge crate's own checks, run from the one test command.

`cargo fmt --check`, `cargo clippy -D warnings` and `cargo test` in
`engine-bridges/bevy`: the decoder against every shared vector, the atlas loader
against the current Python exporter's output (built at test time with this Python),
and a headless Bevy App receiving real ZeroMQ messages. Cargo's target folder lives
outside the clone (``CARGO_TARGET_DIR``, default the user's cache folder:
``$XDG_CACHE_HOME/sparky-assets/cargo-target`` or ``~/.cache/sparky-assets/cargo-target``)
so repeated runs reuse Bevy's compiled crates.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CRATE = Path(__file__).resolve().parents[2] / "engine-bridges" / "bevy"

# a cold Bevy compile takes ~10-25 min on 2 cores: longer than the suite-wide test timeout
pytestmark = [pytest.mark.cargo, pytest.mark.timeout(3000)]


def cargo(*args: str, timeout: int = 3000, cwd: Path = CRATE) -> subprocess.CompletedProcess:
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed (CI installs it)")
    env = dict(os.environ)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    env.setdefault("CARGO_TARGET_DIR", str(cache / "sparky-assets" / "cargo-target"))
    env["SPARKY_PYTHON"] = sys.executable
    return subprocess.run(["cargo", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def check(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def test_cargo_fmt_is_clean():
    check(cargo("fmt", "--check"))


def test_cargo_clippy_has_no_warnings():
    check(cargo("clippy", "--locked", "--all-targets", "--", "-D", "warnings"))


def test_cargo_test_passes():
    out = check(cargo("test", "--locked"))
    passed = sum(int(m) for m in re.findall(r"test result: ok\. (\d+) passed", out))
    assert passed >= 10, out[-3000:]


def test_tilemap_example_autotiles_the_example_room_as_the_python_table_does(tmp_path):
    """examples/tilemap.rs on the example game's built tileset prints each cell's tile index:
    walls as the Python pick table names them for their neighbours, floor and lava tiles."""
    import numpy as np

    from sparky_assets.cli.main import main
    from sparky_assets.tiles import autotile
    from tests.helpers import copy_example

    root = copy_example(tmp_path)
    assert main(["-q", "build", str(root)]) == 0
    proc = cargo("run", "--locked", "-q", "--example", "tilemap", "--", str(root / "bevy-game" / "assets"))
    printed = [[int(n) for n in line.split()] for line in check(proc).splitlines() if line.strip()[:1].isdigit()]
    source = (CRATE / "examples" / "tilemap.rs").read_text(encoding="utf-8")
    room = re.findall(r'^    "([#.~]+)",$', source, re.M)
    grid = np.array([[ch == "#" for ch in row] for row in room])
    table = autotile.blob_table()
    expected = [
        [
            table[autotile.neighbour_mask(grid, y, x)] if ch == "#" else {".": 47, "~": 48}[ch]
            for x, ch in enumerate(row)
        ]
        for y, row in enumerate(room)
    ]
    assert printed == expected
