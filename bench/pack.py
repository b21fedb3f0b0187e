"""Benchmark: ``pack_maxrects`` against maxrects-packer 2.7.4 and rectpack 0.2.2.

maxrects-packer (npm; the packer behind free-tex-packer) runs in Node: the script
installs it into the user cache folder (``~/.cache/sparky-assets/node-bench``) with
``npm install`` when missing, packs each set ``--repeats`` times in one Node process
(JIT warm) with ``smart: true, pot: false, square: false, allowRotation: false``, and
times the ``addArray`` call. Without Node/npm its rows are left out. ``--no-rectpack``
skips rectpack (its MaxRectsBssf takes minutes).

Run: ``python bench/pack.py`` (about 30 s on an idle machine: rectpack's
MaxRectsBssf needs ~12 s for 1,000 rects, SkylineBl several seconds for 5,000).
``--full`` also runs rectpack MaxRectsBssf on 5,000 rects (≈ 400 s). Rects are uniform
random 8–64 px on each side (seeded), packed without rotation into pages of at most
2048x2048 (512x512 in the third case), no padding.

Columns: time (ours: best of N runs, rectpack: one run, ``time.perf_counter``);
``ratio`` = that row's time / our time (how many times faster we are; ``1.00`` on our
own row); pages used; occupancy = sum of rect areas / sum of page areas, where a page
is the bounding box of its rects for every packer (ours shrinks pages to it; a user of
rectpack would crop the same way), so the figures compare like with like; ``full
fill`` = area of the rects on every page but the last / the area of those pages at the
maximum size (how full a page gets before a new one opens: the MaxRects quality figure
when the rects overflow one page; ``-`` when there is one page). The third case packs
1,000 rects into 512x512 pages to compare that figure cheaply.

Ours runs the compiled core (``sparky_assets/pack/_cmaxrects.c``, built by ``pip install``)
when it is built, else the Python packer (same layouts); the header line says which.

Our time for 1,000 rects includes several attempts (sort order x start size, the best
kept); for 5,000 rects ``pack_maxrects`` makes a single attempt.

The machine is shared: when it is busy every time grows, so compare the ratios (same
run) rather than absolute times. Without ``--full`` the 5,000-rect rectpack figure is
the anchor measured on an idle machine, scaled by this run's load (rectpack's
1,000-rect time here / its 12.3 s anchor), and marked as an estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparky_assets.pack.maxrects import occupancy, pack_maxrects  # noqa: E402

PAGE = 2048
SEED = 2024
ANCHOR_1000_MAXRECTS_S = 12.3  # DESIGN.md §9, idle machine
ANCHOR_5000_MAXRECTS_S = 400.0  # DESIGN.md §9: 394–406 s, idle machine


def random_sizes(count: int, seed: int = SEED) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(w), int(h)) for w, h in rng.integers(8, 65, size=(count, 2))]


Row = tuple[float, int, float, float | None]  # seconds, pages, occupancy, full fill


def full_fill(pages_of_rects: list[tuple[int, int, int]], page_count: int, page: int) -> float | None:
    """Rect area on all pages but the last (page, w, h) / their area at ``page``²."""
    if page_count < 2:
        return None
    area = sum(w * h for p, w, h in pages_of_rects if p < page_count - 1)
    return area / ((page_count - 1) * page * page)


def run_ours(sizes: list[tuple[int, int]], page: int, repeats: int) -> Row:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = pack_maxrects(sizes, page, page)
        best = min(best, time.perf_counter() - start)
    placed = [(p.page, w, h) for (w, h), p in zip(sizes, result.placements)]
    pages = len(result.page_sizes)
    return best, pages, occupancy(sizes, result), full_fill(placed, pages, page)


def run_rectpack(sizes: list[tuple[int, int]], page: int, algorithm: str) -> Row:
    import rectpack

    packer = rectpack.newPacker(pack_algo=getattr(rectpack, algorithm), rotation=False)
    for index, (w, h) in enumerate(sizes):
        packer.add_rect(w, h, rid=index)
    packer.add_bin(page, page, count=float("inf"))
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
    # rectpack numbers bins in the order it opened them; the last one is the partial one
    order = {b: k for k, b in enumerate(sorted(extents))}
    fill = full_fill([(order[b], w, h) for b, _x, _y, w, h, _rid in placed], len(extents), page)
    return elapsed, len(extents), rect_area / page_area, fill


MAXRECTS_PACKER = "maxrects-packer@2.7.4"
_NODE_SCRIPT = r"""
import { readFileSync } from "node:fs";
// the package.json "main" is a UMD file under "type": "module"; its ESM build is this one
import { MaxRectsPacker } from "maxrects-packer/dist/maxrects-packer.mjs";
const input = JSON.parse(readFileSync(0, "utf8"));
const opts = { smart: true, pot: false, square: false, allowRotation: false, border: 0 };
let best = Infinity, bins = null;
for (let r = 0; r < input.repeats; r++) {
  const packer = new MaxRectsPacker(input.page, input.page, 0, opts);
  const rects = input.sizes.map(([width, height], i) => ({ width, height, data: i }));
  const t0 = process.hrtime.bigint();
  packer.addArray(rects);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (ms < best) best = ms;
  bins = packer.bins.map((b) => b.rects.map((r) => [r.x, r.y, r.width, r.height]));
}
process.stdout.write(JSON.stringify({ ms: best, bins }));
"""


def node_bench_dir() -> Path:
    """Where ``maxrects-packer`` is installed for this benchmark: the user cache folder."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sparky-assets" / "node-bench"


def ensure_maxrects_packer() -> Path | None:
    """Install maxrects-packer 2.7.4 (npm) into the cache folder when missing; None
    when Node or npm is not installed."""
    folder = node_bench_dir()
    package = folder / "node_modules" / "maxrects-packer" / "package.json"
    if not package.exists() or '"version": "2.7.4"' not in package.read_text():
        if not (shutil.which("npm") and shutil.which("node")):
            return None
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(folder),
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                MAXRECTS_PACKER,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    script = folder / "pack.mjs"
    script.write_text(_NODE_SCRIPT)
    return script


def run_maxrects_packer(script: Path, sizes: list[tuple[int, int]], page: int, repeats: int) -> Row:
    """maxrects-packer in Node (best of ``repeats`` packs in one process, so Node's JIT
    is warm as in a long-running tool; the ``addArray`` call alone is timed)."""
    payload = json.dumps({"sizes": sizes, "page": page, "repeats": repeats})
    out = subprocess.run(
        ["node", str(script)], input=payload, capture_output=True, text=True, check=True, cwd=script.parent
    )
    result = json.loads(out.stdout)
    bins = result["bins"]
    if sum(len(b) for b in bins) != len(sizes):
        raise SystemExit("maxrects-packer did not place every rect")
    extents = [(max(x + w for x, _, w, _ in b), max(y + h for _, y, _, h in b)) for b in bins]
    rect_area = sum(w * h for w, h in sizes)
    placed = [(k, w, h) for k, b in enumerate(bins) for _, _, w, h in b]
    return (
        result["ms"] / 1000,
        len(bins),
        rect_area / sum(w * h for w, h in extents),
        full_fill(placed, len(bins), page),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also run rectpack on 5,000 rects (MaxRectsBssf ≈ 400 s)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of ours (best kept)")
    parser.add_argument("--no-rectpack", action="store_true", help="skip rectpack (ours and maxrects-packer only)")
    args = parser.parse_args(argv)
    script = ensure_maxrects_packer()
    if script is None:
        print("maxrects-packer: node/npm not installed, its rows are left out")

    cases = [
        (1000, PAGE, ["MaxRectsBssf", "SkylineBl"]),
        (5000, PAGE, (["MaxRectsBssf"] if args.full else []) + ["SkylineBl"]),
        (1000, 512, ["MaxRectsBssf"]),
    ]
    header = (
        f"{'rects':>5} {'page':>5}  {'packer':<22} {'time':>11} {'ratio':>7} "
        f"{'pages':>5} {'occupancy':>9} {'full fill':>9}"
    )
    print(f"rects 8-64 px uniform (seed {SEED}), no rotation, no padding")
    from sparky_assets.pack import maxrects

    core = "compiled core (_cmaxrects)" if maxrects._cmaxrects else "Python packer (the C core is not built)"
    print(f"sparky pack_maxrects: {core}; load average {os.getloadavg()[0]:.1f}")
    print(header)
    print("-" * len(header))

    def row(count: int, page: int, name: str, figures: Row, ratio: float) -> None:
        seconds, pages, occ, fill = figures
        fill_text = "-" if fill is None else f"{fill:.1%}"
        print(
            f"{count:>5} {page:>5}  {name:<22} {seconds * 1000:>9.1f}ms {ratio:>7.1f} "
            f"{pages:>5} {occ:>9.1%} {fill_text:>9}",
            flush=True,
        )

    load = None  # this run's rectpack time / the idle-machine anchor
    for count, page, anchors in cases:
        sizes = random_sizes(count)
        ours = run_ours(sizes, page, args.repeats)
        row(count, page, "sparky pack_maxrects", ours, 1.0)
        if script is not None:
            figures = run_maxrects_packer(script, sizes, page, args.repeats)
            row(count, page, "maxrects-packer 2.7.4", figures, figures[0] / ours[0])
        for algorithm in [] if args.no_rectpack else anchors:
            figures = run_rectpack(sizes, page, algorithm)
            row(count, page, "rectpack " + algorithm, figures, figures[0] / ours[0])
            if (count, page, algorithm) == (1000, PAGE, "MaxRectsBssf"):
                load = figures[0] / ANCHOR_1000_MAXRECTS_S
        if count == 5000 and not args.full and not args.no_rectpack:
            estimate = ANCHOR_5000_MAXRECTS_S * (load or 1.0)
            print(
                f"{count:>5} {page:>5}  {'rectpack MaxRectsBssf':<22} "
                f"{'~' + format(estimate, '.0f'):>10}s "
                f"{estimate / ours[0]:>7.0f}   (estimate, not run: 400 s anchor x this "
                f"run's load {load or 1.0:.2f}; --full measures it)"
            )


if __name__ == "__main__":
    main()
