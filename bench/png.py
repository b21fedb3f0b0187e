"""Benchmark: the PNG writer's bytes and time against Pillow and oxipng.

Run: ``python bench/png.py [--sprites 1000] [--repeats 3]`` (needs ``pyoxipng``: the
``bench`` extra, ``pip install -e '.[bench]'``). About a minute on a quiet machine.

Pages: the example's (``examples/dungeon``) and a generated 1,000-sprite procedural
project's (``bench/incremental.py``'s manifest: 10 atlases), built first, then read
back as RGBA. Every encoder gets the same RGBA page and must give back the same
pixels (checked). In the same run:

- ``sparky``: ``encode_png(rgba)`` — what ``build`` writes (filter trials, level 10);
- ``sparky --fast-png``: ``encode_png(rgba, fast=True)`` — what ``watch`` writes;
- ``Pillow``: the same indexed image (palette + tRNS) saved by Pillow with its
  defaults, and with ``optimize=True``;
- ``oxipng``: pyoxipng's default level (2) run over Pillow's default output.

Times: best of ``--repeats``, whole set of pages, ``time.perf_counter``; every row
includes turning RGBA into an indexed image (ours and Pillow's share
:func:`index_colours`). oxipng runs on both cores (it is multithreaded); its time
excludes Pillow's save it starts from. Goals (issue: reproducible builds): ``sparky``
smaller than Pillow ``optimize=True`` and within 3 % of oxipng; ``--fast-png`` under
2× the time of Pillow's default save.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from incremental import write_project  # noqa: E402

from sparky_assets.export.png import encode_png, index_colours  # noqa: E402
from sparky_assets.pipeline.engine import Builder, BuildOptions  # noqa: E402


def pages_of(root: Path) -> list[np.ndarray]:
    Builder(root).build(BuildOptions())
    pages = []
    for path in sorted((root / "build" / "sprites" / "sheets").glob("*.png")):
        with Image.open(path) as im:
            pages.append(np.asarray(im.convert("RGBA")))
    return pages


def pillow_png(rgba: np.ndarray, optimize: bool) -> bytes:
    indices, palette = index_colours(rgba)
    im = Image.fromarray(indices, "P")
    im.putpalette(palette[:, :3].tobytes())
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=optimize, transparency=palette[:, 3].tobytes())
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGBA"))


def measure(pages: list[np.ndarray], encode, repeats: int) -> tuple[int, float]:
    best, outputs = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = [encode(p) for p in pages]
        best = min(best, time.perf_counter() - start)
    for page, data in zip(pages, outputs):
        if not np.array_equal(decoded(data), page):
            raise SystemExit("an encoder changed the pixels")
    return sum(len(d) for d in outputs), best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sprites", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import oxipng

    with tempfile.TemporaryDirectory() as tmp:
        example = Path(tmp) / "example"
        shutil.copytree(ROOT / "examples" / "dungeon", example, ignore=shutil.ignore_patterns("build", ".sparky"))
        big = Path(tmp) / "big"
        big.mkdir()
        write_project(big, args.sprites)
        sets = {"example": pages_of(example), f"{args.sprites} sprites": pages_of(big)}

    encoders = {
        "sparky": lambda p: encode_png(p),
        "sparky --fast-png": lambda p: encode_png(p, fast=True),
        "Pillow default": lambda p: pillow_png(p, False),
        "Pillow optimize=True": lambda p: pillow_png(p, True),
    }
    header = f"{'pages':<14} {'encoder':<22} {'bytes':>9} {'vs sparky':>9} {'time':>10} {'vs Pillow default':>17}"
    print(header + "\n" + "-" * len(header))
    for name, pages in sets.items():
        results = {k: measure(pages, enc, args.repeats) for k, enc in encoders.items()}
        sources = [pillow_png(p, False) for p in pages]
        start = time.perf_counter()
        oxi = [oxipng.optimize_from_memory(s) for s in sources]
        results["oxipng level 2"] = (sum(len(d) for d in oxi), time.perf_counter() - start)
        for page, data in zip(pages, oxi):
            if not np.array_equal(decoded(data), page):
                raise SystemExit("oxipng changed the pixels")
        ours = results["sparky"][0]
        anchor = results["Pillow default"][1]
        label = f"{name} ({len(pages)})"
        for encoder, (size, seconds) in results.items():
            print(
                f"{label:<14} {encoder:<22} {size:>9} {size / ours:>9.3f} {seconds * 1000:>8.1f}ms {seconds / anchor:>16.2f}x",
                flush=True,
            )
            label = ""


if __name__ == "__main__":
    main()
