"""Autotile synthesis: every mask's tile, random maps assembled from the tables, seams pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest

from sparky_assets.tiles import autotile as at
from tests.tilesets_reference import ReferenceArtist

LAYOUTS = tuple(at.TEMPLATE_TILES)


def _pixel_class(pixels: np.ndarray, artist: ReferenceArtist) -> np.ndarray:
    """0 transparent, 1 fill, 2 border: what a seam must agree on across tiles."""
    packed = pixels.astype(np.uint32) @ np.array([1 << 24, 1 << 16, 1 << 8, 1], np.uint32)
    is_border = np.isin(packed, artist.edge.astype(np.uint32) @ np.array([1 << 24, 1 << 16, 1 << 8, 1], np.uint32))
    return np.where(pixels[..., 3] == 0, 0, np.where(is_border, 2, 1))


def _assemble_blob(tiles: list[np.ndarray], table: list[int], grid: np.ndarray, tile: int) -> np.ndarray:
    out = np.zeros((grid.shape[0] * tile, grid.shape[1] * tile, 4), np.uint8)
    for r, c in zip(*np.nonzero(grid), strict=True):
        out[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = tiles[table[at.neighbour_mask(grid, r, c)]]
    return out


def _assemble_corners(tiles: list[np.ndarray], grid: np.ndarray, tile: int) -> np.ndarray:
    """The dual grid: one corner tile per cell corner, the picture shifted back by half a tile."""
    padded = np.pad(grid, 1)
    rows, cols = grid.shape[0] + 1, grid.shape[1] + 1
    out = np.zeros((rows * tile, cols * tile, 4), np.uint8)
    for r in range(rows):
        for c in range(cols):
            key = at.corner_tile_for(padded[r, c], padded[r, c + 1], padded[r + 1, c], padded[r + 1, c + 1])
            out[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = tiles[key]
    half = tile // 2
    return out[half : half + grid.shape[0] * tile, half : half + grid.shape[1] * tile]


def _check_seams(picture: np.ndarray, grid: np.ndarray, artist: ReferenceArtist) -> None:
    """Across every seam between two cells, facing edge pixels are of one kind, or border against empty."""
    t = artist.tile
    classes = _pixel_class(picture, artist)
    # fill never touches empty; border meets border, fill or empty; the kinds as a pair must be allowed
    allowed = {(0, 0), (1, 1), (2, 2), (0, 2), (2, 0), (1, 2), (2, 1)}
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1] - 1):
            left, right = classes[r * t : (r + 1) * t, (c + 1) * t - 1], classes[r * t : (r + 1) * t, (c + 1) * t]
            assert set(zip(left.tolist(), right.tolist(), strict=True)) <= allowed, (
                f"vertical seam after cell ({r}, {c}): {left} vs {right}"
            )
    for r in range(grid.shape[0] - 1):
        for c in range(grid.shape[1]):
            top, bottom = classes[(r + 1) * t - 1, c * t : (c + 1) * t], classes[(r + 1) * t, c * t : (c + 1) * t]
            assert set(zip(top.tolist(), bottom.tolist(), strict=True)) <= allowed, (
                f"horizontal seam after cell ({r}, {c}): {top} vs {bottom}"
            )


def test_reduced_masks_are_the_47_blob_tiles():
    assert len(at.BLOB_MASKS) == 47
    assert at.BLOB_MASKS[0] == 0 and at.BLOB_MASKS[-1] == 0xFF
    assert at.blob_tile_for(at.NE) == at.blob_tile_for(0)  # a lone diagonal does not count
    assert at.blob_tile_for(at.N | at.E | at.NE) != at.blob_tile_for(at.N | at.E)
    assert len(set(at.blob_table())) == 47


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_mask_tile_matches_the_reference_drawing(layout):
    artist = ReferenceArtist(tile=16, border=3, seed=1)
    quadrants = at.cut_template(artist.template(layout), 16, layout)
    tiles, table = at.blob_set(quadrants), at.blob_table()
    for mask in range(256):
        grid = np.ones((3, 3), bool)
        for bit, (dr, dc) in at.OFFSETS.items():
            grid[1 + dr, 1 + dc] = bool(mask & bit)
        picture = _assemble_blob(tiles, table, grid, 16)
        assert np.array_equal(picture, artist.render(grid)), f"mask {mask:08b}"
        _check_seams(picture, grid, artist)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", range(6))
def test_random_maps_assemble_seamlessly(layout, seed):
    rng = np.random.default_rng(seed)
    tile, border = (8, 2) if seed % 2 else (12, 4)
    artist = ReferenceArtist(tile=tile, border=border, seed=seed)
    quadrants = at.cut_template(artist.template(layout), tile, layout)
    grid = rng.random((10, 12)) < (0.35 + 0.1 * seed)
    ideal = artist.render(grid)
    blob = _assemble_blob(at.blob_set(quadrants), at.blob_table(), grid, tile)
    corners = _assemble_corners(at.corner_set(quadrants), grid, tile)
    for picture in (blob, corners):
        _check_seams(picture, grid, artist)
        assert np.array_equal(picture, ideal)


def test_output_keeps_the_template_colours_and_is_deterministic():
    artist = ReferenceArtist(tile=16, border=3, seed=7)
    template = artist.template("blob5x3")
    first = at.sheet(at.blob_set(at.cut_template(template, 16, "blob5x3")), 8)
    again = at.sheet(at.blob_set(at.cut_template(template.copy(), 16, "blob5x3")), 8)
    assert first.tobytes() == again.tobytes()
    colours = {tuple(p) for p in template.reshape(-1, 4)} | {(0, 0, 0, 0)}
    assert {tuple(p) for p in first.reshape(-1, 4)} <= colours


def test_a_template_of_the_wrong_size_is_refused_with_the_expected_size():
    with pytest.raises(
        at.TemplateError, match=r"blob5x3 template of 16px tiles is 80x48 pixels \(5x3 tiles\); found 48x48"
    ):
        at.cut_template(np.zeros((48, 48, 4), np.uint8), 16, "blob5x3")
    with pytest.raises(at.TemplateError, match="even"):
        at.cut_template(np.zeros((30, 30, 4), np.uint8), 15, "corners")
    with pytest.raises(at.TemplateError, match="expected one of corners, blob3x3, blob5x3"):
        at.cut_template(np.zeros((30, 30, 4), np.uint8), 16, "wang")
