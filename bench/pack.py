"""Benchmark: ``pack_maxrects`` against rectpack 0.2.2 (MaxRectsBssf, SkylineBl).

Run: ``/work/venv/bin/python bench/pack.py`` (about 15 s: rectpack's MaxRectsBssf
needs ~12 s for 1,000 rects). ``--full`` also runs rectpack on 5,000 rects (MaxRectsBssf
≈ 400 s). Rects are uniform random 8–64 px on each side (seeded), packed without
rotation into pages of at most 2048x2048, no padding.

Columns: time (ours: best of N runs, rectpack: one run, ``time.perf_counter``);
``ratio`` = that row's time / our time (how many times faster we are; ``1.00`` on our
own row); pages used; occupancy = sum of rect areas / sum of page areas, where a page
is the bounding box of its rects for every packer (ours shrinks pages to it; a user of
rectpack would crop the same way), so the figures compare like with like.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparky_assets.pack.maxrects import occupancy, pack_maxrects  # noqa: E402

PAGE = 2048
SEED = 2024
ANCHOR_5000_MAXRECTS_S = "394–406 s (docs: DESIGN.md §9, measured on this machine)"


def random_sizes(count: int, seed: int = SEED) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(w), int(h)) for w, h in rng.integers(8, 65, size=(count, 2))]


def run_ours(sizes: list[tuple[int, int]], repeats: int) -> tuple[float, int, float]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = pack_maxrects(sizes, PAGE, PAGE)
        best = min(best, time.perf_counter() - start)
    return best, len(result.page_sizes), occupancy(sizes, result)


def run_rectpack(sizes: list[tuple[int, int]], algorithm: str) -> tuple[float, int, float]:
    import rectpack

    packer = rectpack.newPacker(pack_algo=getattr(rectpack, algorithm), rotation=False)
    for index, (w, h) in enumerate(sizes):
        packer.add_rect(w, h, rid=index)
    packer.add_bin(PAGE, PAGE, count=float("inf"))
    start = time.perf_counter()
    packer.pack()
    elapsed = time.perf_counter() - start
    placed = packer.rect_list()
    if len(placed) != len(sizes):
        raise SystemExit(f"rectpack {algorithm} placed {len(placed)} of {len(sizes)} rects")
    extents: dict[int, list[int]] = {}
    for bin_index, x, y, w, h, _rid in placed:
        extent = extents.setdefault(bin_index, [0, 0])
        extent[0] = max(extent[0], x + w)
        extent[1] = max(extent[1], y + h)
    page_area = sum(w * h for w, h in extents.values())
    rect_area = sum(w * h for w, h in sizes)
    return elapsed, len(extents), rect_area / page_area


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="also run rectpack on 5,000 rects (MaxRectsBssf ≈ 400 s)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of ours (best kept)")
    args = parser.parse_args(argv)

    cases = [(1000, ["MaxRectsBssf", "SkylineBl"]),
             (5000, ["MaxRectsBssf", "SkylineBl"] if args.full else [])]
    header = f"{'rects':>5}  {'packer':<24} {'time':>10} {'ratio':>7} {'pages':>5} {'occupancy':>9}"
    print(f"pages <= {PAGE}x{PAGE}, rects 8-64 px uniform (seed {SEED}), no rotation, "
          "no padding")
    print(header)
    print("-" * len(header))
    for count, anchors in cases:
        sizes = random_sizes(count)
        ours_s, ours_pages, ours_occ = run_ours(sizes, args.repeats)
        print(f"{count:>5}  {'sparky pack_maxrects':<24} {ours_s * 1000:>8.1f}ms {1:>7.2f} "
              f"{ours_pages:>5} {ours_occ:>9.1%}", flush=True)
        for algorithm in anchors:
            elapsed, pages, occ = run_rectpack(sizes, algorithm)
            print(f"{count:>5}  {'rectpack ' + algorithm:<24} {elapsed * 1000:>8.1f}ms "
                  f"{elapsed / ours_s:>7.1f} {pages:>5} {occ:>9.1%}", flush=True)
        if not anchors:
            print(f"{count:>5}  {'rectpack MaxRectsBssf':<24} {'skipped':>10}   (run with "
                  f"--full; anchor {ANCHOR_5000_MAXRECTS_S} → ratio ≈ "
                  f"{394 / ours_s:.0f}x)")


if __name__ == "__main__":
    main()
