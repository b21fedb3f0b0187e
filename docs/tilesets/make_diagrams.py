"""Draw the template layout diagrams in docs/tilesets/ (run from the repository root).

``python docs/tilesets/make_diagrams.py``: for each layout, a template drawn by the test
suite's reference artist (fill inside, border within 3 px of empty cells), scaled ×4 with
a grid line between tiles, and the 47-tile blob set and the 16-tile corner set the
synthesis makes from the 5×3 template. Deterministic: rerunning rewrites the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sparky_assets.tiles import autotile  # noqa: E402
from tests.tilesets_reference import ReferenceArtist  # noqa: E402

HERE = Path(__file__).resolve().parent
TILE, SCALE = 16, 4
GRID = np.array([255, 255, 255, 255], np.uint8)
BACKDROP = np.array([34, 32, 52, 255], np.uint8)


def framed(image: np.ndarray) -> np.ndarray:
    """Transparent pixels on a dark backdrop, scaled, with a 1-px line between tiles."""
    solid = np.where(image[..., 3:4] == 0, BACKDROP, image)
    big = solid.repeat(SCALE, 0).repeat(SCALE, 1)
    big[:: TILE * SCALE, :] = GRID
    big[:, :: TILE * SCALE] = GRID
    return big


def save(name: str, image: np.ndarray) -> None:
    Image.fromarray(framed(image)).save(HERE / name, optimize=False, compress_level=9)


def main() -> None:
    artist = ReferenceArtist(tile=TILE, border=3, seed=1)
    for layout in autotile.TEMPLATE_TILES:
        save(f"template-{layout}.png", artist.template(layout))
    quadrants = autotile.cut_template(artist.template("blob5x3"), TILE, "blob5x3")
    save("blob-47.png", autotile.sheet(autotile.blob_set(quadrants), 8))
    save("corners-16.png", autotile.sheet(autotile.corner_set(quadrants), 4))


if __name__ == "__main__":
    main()
