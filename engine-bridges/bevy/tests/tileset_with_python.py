"""Build a blob tileset with the Python pipeline for tests/tileset.rs.

``python tileset_with_python.py DIR``: writes a project into DIR (a reference artist's
blob5x3 template, a Bevy export to DIR/assets), builds it with ``sparky-assets``, and
prints one JSON line: the Python pick table for all 256 masks, a random terrain grid and
each cell's neighbour mask as ``sparky_assets.tiles.autotile`` computes it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sparky_assets.cli.main import main as sparky
from sparky_assets.tiles import autotile
from tests.tilesets_reference import BORDER, FILL, ReferenceArtist

MANIFEST = """
[project]
name = "bevy-tiles"
palette = "terrain.hex"

[[tileset]]
name = "dungeon"
tile_size = 8
template = "walls.png"
terrain = "wall"
data = { solid = true }

[export.bevy]
assets = "assets"
dir = "tiles"
"""


def main() -> int:
    root = Path(sys.argv[1])
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ReferenceArtist(tile=8, border=2, seed=4).template("blob5x3")).save(root / "walls.png")
    (root / "terrain.hex").write_text("".join(f"{r:02x}{g:02x}{b:02x}\n" for r, g, b, _ in [*FILL, *BORDER]))
    (root / "sparky.toml").write_text(MANIFEST)
    if sparky(["-q", "build", str(root)]) != 0:
        return 1
    grid = np.random.default_rng(8).random((7, 9)) < 0.55
    masks = [[autotile.neighbour_mask(grid, r, c) for c in range(grid.shape[1])] for r in range(grid.shape[0])]
    print(json.dumps({"table": autotile.blob_table(), "grid": grid.astype(int).tolist(), "masks": masks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
