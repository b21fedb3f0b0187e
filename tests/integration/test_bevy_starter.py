"""``sparky-assets init --engine bevy`` makes a game that builds and runs: cargo, for real.

The starter is created (bevy_sparky as a path dependency on this checkout's crate) and
built with sparky-assets, then ``cargo clippy -D warnings`` checks it and a headless run
(``--headless``: MinimalPlugins + AssetPlugin, no window or GPU) must load the atlas,
start ``hero/walk`` and exit 0. Without sprites the same run exits 1 naming the fix.

Sharing compiled crates: the project gets bevy_sparky's own Cargo.lock (same versions,
nothing to download: ``--offline``) and cargo's target folder is the one the bridge's tests
use (``CARGO_TARGET_DIR``), so only the crates whose features differ (the bridge's
dev-dependencies widen a few) and the starter itself compile: about 2.5 minutes on 2
cores the first time, seconds after. The windowed build (cargo feature ``window``, which
adds Bevy's renderer) is not compiled here: ~30 minutes cold on 2 cores (a hand-run
``cargo check`` with it passed without warnings); see engine-bridges/bevy/README.md.
"""

from __future__ import annotations

import shutil

import pytest

from sparky_assets.cli.main import main
from tests.integration.test_bevy_bridge import CRATE, cargo, check

# a cold compile of the starter (Bevy crates) is longer than the suite-wide test timeout
pytestmark = [pytest.mark.cargo, pytest.mark.timeout(3000)]


def test_bevy_starter_passes_clippy_and_runs_headless(tmp_path):
    root = tmp_path / "starter"
    assert main(["-q", "init", str(root), "--engine", "bevy"]) == 0
    assert main(["-q", "build", str(root)]) == 0
    assert (root / "assets/sprites/characters.atlas.ron").is_file()
    shutil.copy2(CRATE / "Cargo.lock", root / "Cargo.lock")
    headless = ("--offline", "--no-default-features")

    check(cargo("clippy", *headless, "--", "-D", "warnings", cwd=root))
    out = check(cargo("run", *headless, "--", "--headless", "--timeout-secs", "60", cwd=root))
    assert "atlas 'characters' loaded: 1 pages" in out, out[-3000:]
    assert "playing hero/walk (6 frames at 8 fps)" in out, out[-3000:]

    shutil.rmtree(root / "assets" / "sprites")
    missing = cargo("run", *headless, "--", "--headless", "--timeout-secs", "60", cwd=root)
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "run `sparky-assets build` first" in missing.stdout + missing.stderr
