"""Benchmark: cold and no-op builds of big procedural projects (issue: performance).

Run: ``python bench/build.py [--sprites 100 1000 5000] [--jobs N] [--anchor DIR [--repeat N]]``
(a few minutes on 2 cores).

For each size, ``bench/incremental.py``'s manifest (styles mixed, half the sprites
animated, one atlas per 100 sprites, sheets output) is built in a fresh child process
from nothing (empty ``.sparky``, no ``sparky.lock``, an empty palette-table cache), then
built again in another fresh process with nothing changed (the no-op build). Printed:
wall time, the build's CPU time (what a loaded machine inflates least: the build process
and, with ``--jobs`` above 1, its worker processes, read from ``/proc``), sprites/s, the build process's peak
resident memory (``ru_maxrss``), the time per stage from the build report (each stage's
own time, without the stages it asked for) and the load average when the build ended
(the machine is shared: read wall times with it). ``--jobs`` is the CLI's ``--jobs``
(default 1, the serial path; 0: every core, the CLI's default).

``--anchor DIR``: a checkout of another commit (``git worktree add DIR <commit>``) built
the same way, cold builds only, alternated with this tree ``--repeat`` times (the order
flips each round), then the median wall and CPU time of each and their ratio.
Goals (issue: performance): 5,000 cold in under 15 s, growth no worse than linear,
peak memory under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from incremental import write_project  # noqa: E402

CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
from sparky_assets.pipeline.engine import Builder, BuildOptions
from sparky_assets.pipeline.executor import make_executor
jobs = int(sys.argv[2])
def tree_cpu():
    # CPU seconds of this process and every process under it (a pool's workers, a
    # forkserver), with what each has reaped: Linux /proc; elsewhere this process only
    try:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                except OSError:
                    continue
                stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    except OSError:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return own.ru_utime + own.ru_stime
    tree = {os.getpid()}
    for _ in range(8):
        tree |= {pid for pid, (parent, _) in stats.items() if parent in tree}
    total = sum(stats[pid][1] for pid in tree if pid in stats)
    return total / os.sysconf("SC_CLK_TCK")
builder = Builder(sys.argv[1], executor=make_executor(jobs=jobs or None))
start, cpu = time.perf_counter(), tree_cpu()
report = builder.build(BuildOptions())
wall = time.perf_counter() - start
cpu = tree_cpu() - cpu
builder.close()
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": peak_kb / 1024, "stages": report.stage_s,
                  "load": os.getloadavg()[0]}))
"""

STAGES = ("plan", "generate", "process", "pack", "export", "write")


def build_in_child(root: Path, tables: Path, jobs: int = 1, tree: Path = ROOT) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "SPARKY_TABLE_CACHE": str(tables)}
    command = [sys.executable, "-c", CHILD, str(root), str(jobs)]
    # cwd: ``python -c`` puts the working folder first on sys.path, before PYTHONPATH
    out = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sprites", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (0: every core, the CLI default)")
    parser.add_argument("--anchor", type=Path, help="a checkout of another commit, alternated with this tree")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of anchor and this tree (with --anchor)")
    args = parser.parse_args(argv)
    print(f"--jobs {args.jobs}, load average before: {os.getloadavg()[0]:.2f}")
    if args.anchor is not None:
        compare(args)
        return
    header = f"{'sprites':>7} {'build':<6} {'wall s':>7} {'CPU s':>7} {'sprites/s':>9} {'peak MB':>8}  " + " ".join(
        f"{s:>8}" for s in STAGES
    )
    header += f" {'load':>5}"
    print(header + "\n" + "-" * len(header))
    for count in args.sprites:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "project"
            root.mkdir()
            write_project(root, count)
            for kind in ("cold", "no-op"):
                figures = build_in_child(root, Path(tmp) / "tables", args.jobs)
                stages = " ".join(f"{figures['stages'].get(s, 0.0):>8.2f}" for s in STAGES)
                print(
                    f"{count:>7} {kind:<6} {figures['wall']:>7.2f} {figures['cpu']:>7.2f} {count / figures['wall']:>9.0f} "
                    f"{figures['peak_mb']:>8.0f}  {stages} {figures['load']:>5.2f}",
                    flush=True,
                )


def compare(args: argparse.Namespace) -> None:
    """Cold builds of the anchor tree and this one, alternated."""
    trees = {"anchor": args.anchor.resolve(), "this": ROOT}
    print(
        f"{'tree':<6} {'sprites':>7} {'wall s':>7} {'CPU s':>7} {'peak MB':>8}  " + " ".join(f"{s:>8}" for s in STAGES)
    )
    for count in args.sprites:
        figures: dict[str, list[dict]] = {name: [] for name in trees}
        for round_ in range(args.repeat):
            for name in ("anchor", "this") if round_ % 2 == 0 else ("this", "anchor"):
                with tempfile.TemporaryDirectory() as tmp:
                    root = Path(tmp) / "project"
                    root.mkdir()
                    write_project(root, count)
                    got = build_in_child(root, Path(tmp) / "tables", args.jobs, trees[name])
                figures[name].append(got)
                stages = " ".join(f"{got['stages'].get(s, 0.0):>8.2f}" for s in STAGES)
                print(
                    f"{name:<6} {count:>7} {got['wall']:>7.2f} {got['cpu']:>7.2f} {got['peak_mb']:>8.0f}  {stages}"
                    f"  load {got['load']:.2f}",
                    flush=True,
                )
        wall = {name: statistics.median(f["wall"] for f in runs) for name, runs in figures.items()}
        cpu = {name: statistics.median(f["cpu"] for f in runs) for name, runs in figures.items()}
        print(
            f"{count} sprites, --jobs {args.jobs}, median of {args.repeat}: wall {wall['anchor']:.2f} -> "
            f"{wall['this']:.2f} s ({wall['this'] / wall['anchor']:.2f}x), CPU {cpu['anchor']:.2f} -> "
            f"{cpu['this']:.2f} s ({cpu['this'] / cpu['anchor']:.2f}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
