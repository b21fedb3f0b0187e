"""Benchmark: cold and no-op builds of big procedural projects (issue: performance).

Run: ``python bench/build.py [--sprites 100 1000 5000]`` (a few minutes on 2 cores).

For each size, ``bench/incremental.py``'s manifest (styles mixed, half the sprites
animated, one atlas per 100 sprites, sheets output) is built in a fresh child process
from nothing (empty ``.sparky``, no ``sparky.lock``, an empty palette-table cache), then
built again in another fresh process with nothing changed (the no-op build). Printed:
wall time, the build's CPU time (what a loaded machine inflates least), sprites/s, the
child's peak resident memory (``ru_maxrss``) and the time per stage from the build
report (each stage's own time, without the stages it asked for).
Goals (issue: performance): 5,000 cold in under 15 s, growth no worse than linear,
peak memory under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from incremental import write_project  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from sparky_assets.pipeline.engine import Builder, BuildOptions
start, cpu = time.perf_counter(), time.process_time()
report = Builder(sys.argv[1]).build(BuildOptions())
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": peak_kb / 1024, "stages": report.stage_s}))
"""

STAGES = ("plan", "generate", "process", "pack", "export", "write")


def build_in_child(root: Path, tables: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARKY_TABLE_CACHE": str(tables)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(root)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sprites", type=int, nargs="+", default=[100, 1000, 5000])
    args = parser.parse_args(argv)
    header = f"{'sprites':>7} {'build':<6} {'wall s':>7} {'CPU s':>7} {'sprites/s':>9} {'peak MB':>8}  " + " ".join(
        f"{s:>8}" for s in STAGES
    )
    print(header + "\n" + "-" * len(header))
    for count in args.sprites:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "project"
            root.mkdir()
            write_project(root, count)
            for kind in ("cold", "no-op"):
                figures = build_in_child(root, Path(tmp) / "tables")
                stages = " ".join(f"{figures['stages'].get(s, 0.0):>8.2f}" for s in STAGES)
                print(
                    f"{count:>7} {kind:<6} {figures['wall']:>7.2f} {figures['cpu']:>7.2f} {count / figures['wall']:>9.0f} "
                    f"{figures['peak_mb']:>8.0f}  {stages}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
