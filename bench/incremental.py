"""Incremental build benchmark (issue: incremental builds).

Builds a generated 1,000-sprite procedural manifest and prints, in one run: the cold
build time, the no-op build time, and the rebuild time after a one-sprite palette
change, each as a ratio to the cold build. Goals: no-op < 1 s and < 5% of cold;
one-sprite change < 10% of cold.

    python bench/incremental.py [--sprites 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sparky_assets.pipeline.engine import Builder, BuildOptions

STYLES = ("creature", "character", "item", "tile")


def write_project(root: Path, sprites: int) -> None:
    lines = ["[project]", 'name = "bench"', 'palette = "endesga-32"', "seed = 7", ""]
    for i in range(sprites):
        lines += ["[[sprite]]", f'name = "s{i:04d}"', f'style = "{STYLES[i % 4]}"', f"size = {16 + 8 * (i % 3)}"]
        if i % 2:
            lines.append("animations = { idle = 4, walk = 4 }")
        if i == 0:
            lines.append('palette = "one.hex"')
        lines.append("")
    for a in range((sprites + 99) // 100):
        lines += ["[[atlas]]", f'name = "atlas{a}"', f'sprites = ["s{a:02d}*"]', "max_size = 2048", ""]
    (root / "sparky.toml").write_text("\n".join(lines))
    (root / "one.hex").write_text("000000\nffffff\nff0000\n00ff00\n0000ff\n")


def timed(builder: Builder) -> tuple[float, object]:
    t0 = time.perf_counter()
    report = builder.build(BuildOptions())
    return time.perf_counter() - t0, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sprites", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, args.sprites)
        builder = Builder(root)
        cold, report = timed(builder)
        frames = sum(1 for _ in report.ran["process"])
        noop, noop_report = timed(builder)
        assert not noop_report.written
        (root / "one.hex").write_text("000000\nfefefe\nff0000\n00ff00\n0000ff\n")
        change, change_report = timed(builder)
        print(f"incremental build, {args.sprites} procedural sprites ({frames} processed), one atlas per 100 sprites")
        print(f"{'build':28s} {'seconds':>9s} {'ratio to cold':>14s}  goal")
        print(f"{'cold':28s} {cold:9.3f} {1.0:14.3f}")
        print(
            f"{'no-op':28s} {noop:9.3f} {noop / cold:14.3f}  < 1 s and < 0.05  "
            f"{'ok' if noop < 1 and noop / cold < 0.05 else 'MISSED'}"
        )
        print(
            f"{'one-sprite palette change':28s} {change:9.3f} {change / cold:14.3f}  < 0.10  "
            f"{'ok' if change / cold < 0.10 else 'MISSED'}"
        )
        print(
            f"  (change re-ran: generate {len(change_report.ran['generate'])}, process {len(change_report.ran['process'])}, "
            f"pack {change_report.ran['pack']}, export {len(change_report.ran['export'])})"
        )


if __name__ == "__main__":
    main()
