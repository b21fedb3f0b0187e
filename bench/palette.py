"""Benchmark: palette lock (OKLab nearest-colour table) against Pillow's quantize.

Run: ``python bench/palette.py [--repeats 20]`` (about a minute on a quiet machine).

Inputs, seeded: a 512×512 image with many colours, the way a model's output looks
(smooth gradients, a low-frequency colour field and per-pixel noise: ~200k distinct
colours), and 1,000 frames of 32×32 cut from a second such image. Palettes: pico-8
(16 colours) and aap-64 (64). For each case, in the same run:

- ours: ``quantize_to_palette(rgba, palette)`` — exact OKLab nearest colour, one table
  lookup per pixel, the table built or loaded before timing (it is cached);
- anchor: Pillow ``Image.fromarray(rgb).quantize(palette=..., dither=NONE)`` — RGB
  nearest on a colour cache, the image conversion included (ours includes its own).

Figures: Mpx/s of process CPU time (best of ``--repeats``, ours and Pillow
alternated: the machines are shared, and CPU time is what load inflates least), ratio
ours / Pillow, and the mean OKLab distance between each input pixel and the colour it
became (lower = more faithful).
Also: the table build time per palette (fresh, no cache) and the time to load it back
from the disk cache. Goal (issue: performance): ≥ 0.5× Pillow's throughput with a
lower OKLab error; table < 1 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparky_assets.colour import srgb_to_oklab  # noqa: E402
from sparky_assets.palettes.builtin import BUILTIN_PALETTES  # noqa: E402
from sparky_assets.process import quantize  # noqa: E402
from sparky_assets.process.quantize import build_table, palette_table, quantize_to_palette  # noqa: E402

PALETTES = ("pico-8", "aap-64")


def model_like_image(size: int, seed: int) -> np.ndarray:
    """Smooth gradients + a low-frequency colour field + per-pixel noise, opaque RGBA."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    field = rng.random((3, 9, 9))
    coarse = np.stack([np.kron(f, np.ones((size // 8 + 1, size // 8 + 1)))[:size, :size] for f in field], axis=-1)
    base = np.stack([xx, yy, 1 - (xx + yy) / 2], axis=-1)
    img = (0.45 * base + 0.45 * coarse) * 255 + rng.normal(0, 12, (size, size, 3))
    rgba = np.full((size, size, 4), 255, np.uint8)
    rgba[..., :3] = np.clip(img, 0, 255).astype(np.uint8)
    return rgba


def oklab_error(source: np.ndarray, locked: np.ndarray) -> float:
    d = srgb_to_oklab(source[..., :3].reshape(-1, 3)) - srgb_to_oklab(locked[..., :3].reshape(-1, 3))
    return float(np.sqrt((d * d).sum(axis=1)).mean())


def best_of(repeats: int, fn, clock=time.perf_counter) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)

    big = model_like_image(512, 1)
    sheet = model_like_image(1024, 2)
    frames = [sheet[y : y + 32, x : x + 32].copy() for y in range(0, 1024, 32) for x in range(0, 1024, 32)][:1000]
    distinct = len(np.unique(big[..., :3].reshape(-1, 3), axis=0))
    print(f"palette lock: 512x512 many-colour image ({distinct} distinct colours), 1,000 frames of 32x32")

    with tempfile.TemporaryDirectory() as cache:
        quantize.os.environ["SPARKY_TABLE_CACHE"] = cache
        print(f"\n{'palette':<8} {'colours':>7} {'table build':>12} {'(CPU time)':>11} {'load from disk':>15}")
        for name in PALETTES:
            colors = np.array(BUILTIN_PALETTES[name].colors, np.uint8)
            cpu = time.process_time()
            build = best_of(1, lambda: build_table(colors))
            cpu = time.process_time() - cpu
            palette_table(colors)  # build once more through the cache: writes the file
            quantize._tables.clear()
            load = best_of(1, lambda: palette_table(colors))
            print(f"{name:<8} {len(colors):>7} {build * 1000:>10.0f}ms {cpu * 1000:>9.0f}ms {load * 1000:>13.0f}ms")

        header = f"{'case':<22} {'palette':<8} {'ours Mpx/s':>10} {'Pillow Mpx/s':>12} {'ratio':>6} {'ours err':>9} {'Pillow err':>10}"
        print("\n" + header + "\n" + "-" * len(header))
        for name in PALETTES:
            palette = BUILTIN_PALETTES[name]
            pal_img = Image.new("P", (1, 1))
            pal_img.putpalette(bytes(np.array(palette.colors, np.uint8).ravel()))
            quantize_to_palette(big, palette)  # table ready (memory), as in a build
            for case, images in (("512x512", [big]), ("1000 frames of 32x32", frames)):
                pixels = sum(i.shape[0] * i.shape[1] for i in images)
                rgb = [np.ascontiguousarray(i[..., :3]) for i in images]
                ours = pil = float("inf")
                for _ in range(args.repeats):  # alternated: a burst of load hits both alike
                    ours = min(
                        ours, best_of(1, lambda: [quantize_to_palette(i, palette) for i in images], time.process_time)
                    )
                    pil = min(
                        pil,
                        best_of(
                            1,
                            lambda: [
                                Image.fromarray(r, "RGB").quantize(palette=pal_img, dither=Image.Dither.NONE)
                                for r in rgb
                            ],
                            time.process_time,
                        ),
                    )
                ours_out = np.concatenate([quantize_to_palette(i, palette).reshape(-1, 4) for i in images])
                pil_out = np.concatenate(
                    [
                        np.asarray(
                            Image.fromarray(r, "RGB")
                            .quantize(palette=pal_img, dither=Image.Dither.NONE)
                            .convert("RGBA")
                        ).reshape(-1, 4)
                        for r in rgb
                    ]
                )
                source = np.concatenate([i.reshape(-1, 4) for i in images])
                print(
                    f"{case:<22} {name:<8} {pixels / ours / 1e6:>10.1f} {pixels / pil / 1e6:>12.1f} "
                    f"{pil / ours:>6.2f} {oklab_error(source, ours_out):>9.4f} {oklab_error(source, pil_out):>10.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
