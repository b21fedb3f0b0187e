"""Pixelize benchmark: grid recovery and cell accuracy on synthetic fake pixel art.

For every scale factor 3..16, ``--sprites`` random pixel sprites (16x16, 24x20, 12x18)
are upscaled with a random phase offset, blurred (Gaussian, ``--blur`` px), noised
(sigma 4) and JPEG re-encoded (quality ``--quality``, Pillow's default 4:2:0 chroma
unless ``--no-subsampling``). Printed per factor and in total:

* period: fraction of images whose period *and* phase are recovered exactly;
* ours: cell accuracy of ``pixelize(image, target_size=sprite size)`` (cells with the
  right transparency and, snapped to the sprite's palette, the right colour; best of
  shifts by at most one cell — see tests/unit/test_pixelize.py);
* nearest: the same for Pillow ``resize(NEAREST)`` to the sprite size (the anchor);
* mode / no-unmix: ours with the mode collapse, and without palette unmixing;
* ms: wall time per image of ``pixelize`` (detection included).

Run: ``python bench/pixelize.py [--sprites 6] [--blur 1.0] [--quality 70]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tests.unit.test_pixelize as synthetic  # noqa: E402  (the test's sprite + degradation model)
from sparky_assets.process.pixelize import detect_grid, pixelize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sprites", type=int, default=6, help="sprites per scale factor")
    parser.add_argument("--blur", type=float, default=1.0)
    parser.add_argument("--quality", type=int, default=70)
    parser.add_argument("--no-subsampling", action="store_true", help="JPEG 4:4:4 instead of 4:2:0")
    parser.add_argument("--factors", default="3-16", help="e.g. 3-16 or 4,8,16")
    args = parser.parse_args()
    if "-" in args.factors:
        low, high = (int(v) for v in args.factors.split("-"))
        factors = list(range(low, high + 1))
    else:
        factors = [int(v) for v in args.factors.split(",")]
    synthetic.SUBSAMPLING = 0 if args.no_subsampling else 2

    print(
        f"pixelize bench: {args.sprites} sprites/factor, blur {args.blur} px, noise 4, JPEG q{args.quality} "
        f"{'4:4:4' if args.no_subsampling else '4:2:0'}"
    )
    print(f"{'factor':>6} {'period':>7} {'ours':>7} {'nearest':>8} {'mode':>7} {'no-unmix':>9} {'ms':>7}")
    totals: dict[str, list[float]] = {k: [] for k in ("period", "ours", "nearest", "mode", "plain", "ms")}
    for factor in factors:
        rows: dict[str, list[float]] = {k: [] for k in totals}
        for _, seed, (width, height), phase in synthetic.cases(factors=[factor], sprites_per_factor=args.sprites):
            rgb, opaque = synthetic.make_sprite(seed, width, height)
            image = synthetic.fake_pixel_art(
                rgb, factor, phase=phase, seed=seed, blur=args.blur, jpeg_quality=args.quality
            )
            grid = detect_grid(image)
            rows["period"].append(
                float(
                    grid.period_x == factor == grid.period_y
                    and (grid.phase_x, grid.phase_y) == (phase[0] % factor, phase[1] % factor)
                )
            )
            started = time.perf_counter()
            result = pixelize(image, target_size=(width, height))
            rows["ms"].append((time.perf_counter() - started) * 1000)
            rows["ours"].append(synthetic.cell_accuracy(result, rgb, opaque))
            rows["nearest"].append(
                synthetic.cell_accuracy(synthetic.nearest_downscale(image, (width, height)), rgb, opaque)
            )
            rows["mode"].append(
                synthetic.cell_accuracy(pixelize(image, target_size=(width, height), method="mode"), rgb, opaque)
            )
            rows["plain"].append(
                synthetic.cell_accuracy(pixelize(image, target_size=(width, height), unmix=False), rgb, opaque)
            )
        for key, values in rows.items():
            totals[key].extend(values)
        print(_row(str(factor), rows))
    print(_row("total", totals))


def _row(label: str, rows: dict[str, list[float]]) -> str:
    mean = {k: float(np.mean(v)) for k, v in rows.items()}
    return (
        f"{label:>6} {mean['period']:7.1%} {mean['ours']:7.2%} {mean['nearest']:8.2%} {mean['mode']:7.2%} "
        f"{mean['plain']:9.2%} {mean['ms']:7.1f}"
    )


if __name__ == "__main__":
    main()
