"""Benchmark: CPU per sprite of the procedural generator and of its store PNG.

Run: ``python bench/procedural.py [--sprites 1000] [--rounds 5] [--anchor DIR]`` (a minute).

The sprites of ``bench/build.py``'s projects (``bench/incremental.py``'s manifest: the
four styles in turn, 16, 24 and 32 px, every other sprite animated with idle 4 + walk 4,
the endesga-32 palette) are generated one request at a time through the real
``ProceduralGenerator``, and each sprite's frames are encoded as the generated store
keeps them (``store_png``). Each round is timed with ``time.process_time`` (CPU seconds
of the process, what a shared machine inflates least); the best round is printed, in
milliseconds per sprite. With ``--anchor DIR`` (a checkout of another commit, e.g.
``git worktree add DIR <commit>``) the same is measured for that tree, in its own
process, alternating with this one round by round, and the ratio is printed. The
generator's output is locked art: ``tests/unit/test_procedural_identity.py`` checks that
the frames and store PNG bytes did not change.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from pathlib import Path
from sparky_assets.generators.base import FrameSpec, GenerationRequest
from sparky_assets.generators.procedural import STYLES, ProceduralGenerator
from sparky_assets.palettes.builtin import BUILTIN_PALETTES
from sparky_assets.pipeline.store import store_png

count = int(sys.argv[1])
palette = tuple(tuple(c) for c in BUILTIN_PALETTES["endesga-32"].colors)
requests = []
for i in range(count):  # bench/incremental.py's write_project, as the build plans it
    animations = {"idle": 4, "walk": 4} if i % 2 else {"default": 1}
    size = 16 + 8 * (i % 3)
    requests.append(GenerationRequest(
        sprite=f"s{i:04d}", width=size, height=size, seed=7, root=Path("."), palette=palette,
        frames=tuple(FrameSpec(name, k) for name, n in animations.items() for k in range(n)),
        options={"style": STYLES[i % 4]},
    ))
generator = ProceduralGenerator()
generator.generate(requests[:20])  # imports and first-call set-up out of the timing
start = time.process_time()
frames = [generator.generate([r])[0] for r in requests]
middle = time.process_time()
for f in frames:
    store_png(f)
end = time.process_time()
print(json.dumps({"generate": (middle - start) / count, "store_png": (end - middle) / count}))
"""


def measure(tree: Path, count: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # cwd: ``python -c`` puts the working folder first on sys.path, before PYTHONPATH
    command = [sys.executable, "-c", CHILD, str(count)]
    out = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sprites", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--anchor", type=Path, help="a checkout of another commit, alternated with this tree")
    args = parser.parse_args(argv)
    trees = {"this": ROOT} if args.anchor is None else {"anchor": args.anchor.resolve(), "this": ROOT}
    best: dict[str, dict[str, float]] = {name: {} for name in trees}
    print(f"{args.sprites} sprites, best of {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for round_ in range(args.rounds):
        for name in list(trees) if round_ % 2 == 0 else list(trees)[::-1]:
            got = measure(trees[name], args.sprites)
            for key, value in got.items():
                best[name][key] = min(best[name].get(key, value), value)
    print(f"{'tree':<8} {'generate ms/sprite':>19} {'store_png ms/sprite':>20} {'both':>7}")
    for name, figures in best.items():
        both = figures["generate"] + figures["store_png"]
        print(f"{name:<8} {figures['generate'] * 1e3:>19.3f} {figures['store_png'] * 1e3:>20.3f} {both * 1e3:>7.3f}")
    if args.anchor is not None:
        ratios = {k: best["this"][k] / best["anchor"][k] for k in ("generate", "store_png")}
        total = sum(best["this"].values()) / sum(best["anchor"].values())
        print(
            f"this / anchor: generate {ratios['generate']:.2f}x, store_png {ratios['store_png']:.2f}x, "
            f"both {total:.2f}x (load average now {os.getloadavg()[0]:.2f})"
        )


if __name__ == "__main__":
    main()
