"""The procedural generator's output is locked art: byte-identical frames, rig and store PNG.

``tests/data/procedural_digests.json`` holds, for 320 requests spread over every style,
sizes from 4 to 257 cells, seeds, palettes (none, 32, 5, 2 and 1 colours), colour words,
animation kinds and lengths, and facing directions, the SHA-256 of the frames, of the rig
(:func:`frame_cells`: cells and part ids) and of the store PNG (:func:`store_png`). The
table was written by the generator as it was before its speed work (``ALGORITHM_VERSION``
1); any speed-up must reproduce it exactly. Regenerate it only together with a bump of
``ALGORITHM_VERSION``: ``python tests/unit/test_procedural_identity.py --write``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sparky_assets.generators import procedural
from sparky_assets.generators.base import FrameSpec, GenerationRequest
from sparky_assets.palettes.builtin import BUILTIN_PALETTES
from sparky_assets.pipeline.store import store_png

TABLE = Path(__file__).resolve().parents[1] / "data" / "procedural_digests.json"
COUNT = 320

SIZES = (
    (4, 4),
    (5, 7),
    (8, 8),
    (12, 10),
    (16, 16),
    (17, 17),
    (24, 24),
    (32, 32),
    (31, 40),
    (48, 48),
    (64, 64),
    (65, 65),
    (96, 80),
    (128, 128),
    (257, 130),
    (40, 24),
    (20, 33),
)
PALETTES = (
    (),
    tuple(tuple(c) for c in BUILTIN_PALETTES["endesga-32"].colors),
    ((0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)),
    ((20, 20, 30), (200, 180, 90)),
    ((90, 120, 200),),
    tuple(tuple(c) for c in BUILTIN_PALETTES["pico-8"].colors),
)
PROMPTS = (None, "a blue cape", "red and gold armour", "dark green slime", "pink", "steel grey white")
ANIMATIONS = (
    {"idle": 4, "walk": 4},
    {"idle": 4, "walk": 6, "run": 4, "jump": 5, "attack": 3, "die": 4},
    {"idle": 2, "run": 6},
    {"jump": 3, "attack": 6, "hop": 4},
    {"idle": 6, "dash": 5, "strike": 4},
    {"pulse": 8},
    {"default": 1},
    {"walk": 8, "jump": 4, "cast": 5},
)
DIRECTION_SETS = ((), (), ("s", "n", "e", "w"), ("n", "ne", "e", "se", "s", "sw", "w", "nw"))


def combo(i: int) -> GenerationRequest:
    """The ``i``-th request of the table (index arithmetic only: stable everywhere)."""
    style = procedural.STYLES[i % 4]
    size = SIZES[(i // 4) % len(SIZES)]
    animations = ANIMATIONS[(i // 2 + i // 17) % len(ANIMATIONS)]
    directions = DIRECTION_SETS[(i // 3 + i // 29) % len(DIRECTION_SETS)]
    frames = tuple(
        FrameSpec(f"{name}_{d}" if d else name, k, d)
        for d in directions or ("",)
        for name, n in animations.items()
        for k in range(n)
    )
    return GenerationRequest(
        sprite=f"s{i:03d}",
        width=size[0],
        height=size[1],
        frames=frames,
        seed=(i * 7919) % 1009,
        root=Path("."),
        prompt=PROMPTS[(i // 5 + i // 23) % len(PROMPTS)],
        palette=PALETTES[(i // 7 + i) % len(PALETTES)],
        options={"style": style},
    )


def digests(req: GenerationRequest) -> dict[str, str]:
    (frames,) = procedural.ProceduralGenerator().generate([req])
    pixels = hashlib.sha256()
    for frame in frames:
        pixels.update(repr((frame.shape, str(frame.dtype))).encode())
        pixels.update(np.ascontiguousarray(frame).tobytes())
    rig = hashlib.sha256()
    blueprint, _ = procedural._blueprint(req)
    counts = procedural._frame_counts(req.frames)
    for spec in req.frames:
        for grid in procedural.frame_cells(blueprint, spec, counts[spec.animation]):
            rig.update(repr((grid.shape, str(grid.dtype))).encode())
            rig.update(np.ascontiguousarray(grid).tobytes())
    return {
        "frames": pixels.hexdigest()[:24],
        "rig": rig.hexdigest()[:24],
        "store_png": hashlib.sha256(store_png(frames)).hexdigest()[:24],
    }


def table() -> dict[str, dict[str, str]]:
    return json.loads(TABLE.read_text())["digests"]


def table_text(rows: dict[str, dict[str, str]]) -> str:
    """One line per request, so a diff of the table names the requests that changed."""
    lines = [f'"{i}": {json.dumps(row, sort_keys=True)}' for i, row in rows.items()]
    return f'{{"algorithm_version": {procedural.ALGORITHM_VERSION}, "digests": {{\n' + ",\n".join(lines) + "\n}}\n"


@pytest.mark.parametrize("chunk", range(8))
def test_frames_rig_and_store_png_match_the_locked_digests(chunk):
    assert procedural.ALGORITHM_VERSION == 1, "a new algorithm version needs a new table (see the module docstring)"
    expected = table()
    assert len(expected) == COUNT
    mismatched = []
    for i in range(chunk, COUNT, 8):
        req = combo(i)
        got = digests(req)
        if got != expected[str(i)]:
            mismatched.append((i, req.options["style"], (req.width, req.height), got, expected[str(i)]))
    assert not mismatched, mismatched[:3]


def test_a_warmed_generator_draws_the_same():
    """``warm`` (a ``--jobs`` worker's first act) fills the per-palette and per-size
    memos with throwaway sprites: what is drawn afterwards is unchanged."""
    procedural.ProceduralGenerator().warm(PALETTES)
    expected = table()
    for i in range(3, COUNT, 41):
        assert digests(combo(i)) == expected[str(i)], i


def test_the_table_covers_every_style_palette_animation_and_direction_set():
    reqs = [combo(i) for i in range(COUNT)]
    assert {r.options["style"] for r in reqs} == set(procedural.STYLES)
    assert {len(r.palette) for r in reqs} == {len(p) for p in PALETTES}
    assert {(r.width, r.height) for r in reqs} == set(SIZES)
    assert {r.prompt for r in reqs} == set(PROMPTS)
    assert {frozenset(s.direction for s in r.frames) for r in reqs} >= {frozenset({""}), frozenset(DIRECTION_SETS[3])}
    names = {s.animation.split("_")[0] for r in reqs for s in r.frames}
    assert names == {n for a in ANIMATIONS for n in a}
    # rigged styles are turned (views), and big sprites are upscaled from the cell grid
    assert any(r.options["style"] == "character" and len({s.direction for s in r.frames}) == 8 for r in reqs)
    assert any(procedural._layout(r.width, r.height).scale > 1 for r in reqs)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: test_procedural_identity.py --write  (only with an ALGORITHM_VERSION bump)")
    rows = {str(i): digests(combo(i)) for i in range(COUNT)}
    TABLE.write_text(table_text(rows))
    print(f"wrote {len(rows)} rows to {TABLE}")
