"""The Godot starter template and the example game hold exact copies of the sparky_bridge addon.

``engine-bridges/godot/addons/sparky_bridge`` is the source; ``just sync-addon``
(``engine-bridges/godot/sync_addon_copies.py``) refreshes the copies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sync_addon_copies", REPO / "engine-bridges/godot/sync_addon_copies.py")
sync = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("copy", sync.COPIES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_addon_copy_equals_the_source(copy):
    assert not copy.is_symlink(), f"{copy} must be a real folder (symlinks break on Windows and in the wheel)"
    source, copied = _files(sync.SOURCE), _files(copy)
    assert set(copied) == set(source), f"{copy}: files differ; run `just sync-addon`"
    stale = sorted(name for name in source if source[name] != copied[name])
    assert not stale, f"{copy}: {stale} differ from the source; run `just sync-addon`"
