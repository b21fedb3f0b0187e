"""Benchmark: where the build runs — one process, ``--jobs 2``, a Ray cluster of 2 workers.

Run: ``python bench/cluster.py`` (about 5 minutes on 2 busy cores; needs the ``[ray]``
and ``[diffusion]`` extras).

Two projects, each built cold (empty ``.sparky``, no lock) in a fresh child process,
per executor, in one run: 1,000 procedural sprites (``bench/incremental.py``'s
manifest) and 64 tiny-diffusion sprites (``tests/tiny_pipeline.py``'s random-weight
pipeline, 64×64 renders, 2 steps, one thread per worker). Executors: ``--jobs 1``
(the serial path, the anchor), ``--jobs 2`` (a local pool) and ``--executor ray`` on a
real cluster started here (``tests/ray_cluster.py``: a head with no CPUs and 2 worker
nodes of 1 CPU). The local executors are measured first, with no cluster on the
machine (its daemons take CPU time even while idle: on 2 cores, time the second worker
of ``--jobs 2`` needs); then the cluster is started and Ray is measured against
``--jobs 1`` built again beside it. Rounds alternate the executors. Printed per build: wall time, the
time in the CPU stages (generate + process + pack + export, from the build report),
their span (from the first CPU stage entered to the last one left: with a parallel
executor the build plans each atlas while the workers generate and pack, and that
planning is inside the span, not in the sum) and the speed-up of each against
``--jobs 1`` of the same round; every build's
outputs are compared with the anchor's (byte-identical, or the run fails). For the
local executors also the CPU seconds of the build process (in all, and in the CPU
stages), of the pool's forkserver (``fs``: in all, and in the CPU stages — it imports
the stages, then forks the workers; 0 where the build forks its workers itself, as a
build process without threads does) and of each pool worker: with free cores a build
takes at most its own CPU time plus the forkserver's plus its busiest worker's — the
*free-core estimate*, for the whole build and for the CPU stages alone (what the goal
is about: the build process's, the forkserver's and the busiest worker's CPU seconds
after the first CPU stage began — a first build's workers start once the manifest is
read and warm up while the build plans: palette tables, a throwaway sprite per style).

Then Ray's own cost per task: the median round trip of a no-op task carrying a
16-sprite chunk (``executor.noop_chunk``), minus the same call made locally; the same
per task for the procedural build's batch — as many tasks as its generate stage sends
the 2-worker cluster (14 for 1,000 sprites), all at once, the way a build submits a
stage's chunks (median of 20) —; and for 200 tasks in flight at once.
Goals (issue 17): Ray's per-task overhead under 5 ms for batched work; ``--jobs 2``
at least 1.7× ``--jobs 1`` on the CPU stages (met only if both the sum and the span
are). The load average is printed: on a
shared machine the second core is not free, and the ratios say so. So every round
also measures the machine's own ceiling on this work (``2x jobs 1``): two ``--jobs 1``
builds of two copies of the procedural project started together, their throughput
against one build — what any split of the work over two processes can reach here
(two vCPUs on one physical core, or a neighbour on the second, show as less than 2×) —
and the summary says how much of it ``--jobs 2`` reaches.

Projects stay on disk until the run ends (see :func:`make_project`: deleting them
between builds slowed the next build's file creation in the kernel, round by round).

``--anchor-tree DIR`` (a checkout of an earlier commit, e.g. ``git archive main | tar
-x -C DIR``) adds that code's ``--jobs 1`` and ``--jobs 2`` to every round, alternated
with this tree's, to compare a change with its anchor under the same load (its
outputs must be the same bytes too); ``--no-ray`` leaves Ray out (faster).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from incremental import write_project  # noqa: E402

CHILD = r"""
import contextlib, json, os, sys, time
from multiprocessing import forkserver
from sparky_assets.pipeline import engine, graph, report as report_module, stages
from sparky_assets.pipeline.engine import Builder, BuildOptions
from sparky_assets.pipeline.executor import make_executor

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def forkserver_cpu():
    # the pool's forkserver (it imports the stages, then forks the workers)
    pid = forkserver._forkserver._forkserver_pid
    return cpu_seconds(pid) if pid else 0.0

# the build process's CPU seconds per stage (own time, like the report's wall times),
# and the forkserver's CPU seconds when the first CPU stage began
STAGE_CPU, _open, FORKSERVER, EXECUTOR, SPAN = {}, [], {}, [None], {}
_wall_timer = report_module.stage_timer
CPU_STAGES = ("generate", "process", "pack", "export")

@contextlib.contextmanager
def cpu_timer(report, stage):
    if stage in CPU_STAGES and not FORKSERVER:
        FORKSERVER["before_stages"] = forkserver_cpu()
        # the pool's workers too (started early, warmed while the build planned)
        FORKSERVER["workers"] = {pid: cpu_seconds(pid) for pid in getattr(EXECUTOR[0], "worker_pids", list)()}
    if stage in CPU_STAGES:  # the CPU stages' span: first one entered .. last one left
        SPAN.setdefault("start", time.perf_counter())
    frame = [time.process_time(), 0.0]
    _open.append(frame)
    try:
        with _wall_timer(report, stage):
            yield
    finally:
        if stage in CPU_STAGES:
            SPAN["end"] = time.perf_counter()
        _open.pop()
        total = time.process_time() - frame[0]
        STAGE_CPU[stage] = STAGE_CPU.get(stage, 0.0) + total - frame[1]
        if _open:
            _open[-1][1] += total

for module in (report_module, engine, graph, stages):
    module.stage_timer = cpu_timer

def main():
    kind, jobs, address, root = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None, sys.argv[4]
    executor = make_executor(kind, jobs, address)
    EXECUTOR[0] = executor
    builder = Builder(root, executor=executor)
    start, cpu = time.perf_counter(), time.process_time()
    report = builder.build(BuildOptions())
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    pids = getattr(executor, "worker_pids", lambda: [])()
    workers = [cpu_seconds(pid) for pid in pids]
    before = FORKSERVER.get("workers", {})
    workers_stages = [cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids]
    server = forkserver_cpu() if workers else 0.0
    builder.close()
    print(json.dumps({"wall": wall, "span": SPAN["end"] - SPAN["start"], "stages": report.stage_s, "sent": executor.sent, "main_cpu": cpu,
                      "stage_cpu": STAGE_CPU, "workers_cpu": workers, "workers_stages_cpu": workers_stages, "forkserver_cpu": server,
                      "forkserver_stages_cpu": server - FORKSERVER.get("before_stages", 0.0)}))

if __name__ == "__main__":
    main()
"""

OVERHEAD = r"""
import json, statistics, sys, time
import numpy as np
import ray
from sparky_assets.pipeline.executor import _ray_task, noop_chunk, _call, ray_environment

ray_environment()
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
task = ray.remote(_ray_task).options(num_cpus=1, max_retries=3)
chunk = [np.zeros((24, 24, 4), np.uint8) for _ in range(16)]  # a chunk's worth of sprites
ray.get([task.remote(noop_chunk, chunk) for _ in range(8)])  # workers started
rtt = []
for _ in range(60):
    t = time.perf_counter(); ray.get(task.remote(noop_chunk, chunk)); rtt.append(time.perf_counter() - t)
local = []
for _ in range(60):
    t = time.perf_counter(); _call(noop_chunk, chunk); local.append(time.perf_counter() - t)
t = time.perf_counter(); ray.get([task.remote(noop_chunk, chunk) for _ in range(200)]); many = time.perf_counter() - t
batch, per_batch = int(sys.argv[2]), []  # as a build sends a stage's chunks: all at once
for _ in range(20):
    t = time.perf_counter(); ray.get([task.remote(noop_chunk, chunk) for _ in range(batch)]); per_batch.append(time.perf_counter() - t)
print(json.dumps({"rtt_ms": statistics.median(rtt) * 1e3, "local_ms": statistics.median(local) * 1e3,
                  "in_flight_ms": many / 200 * 1e3, "batch_ms": statistics.median(per_batch) / batch * 1e3}))
"""

DIFFUSION = """[project]
name = "tiny"
palette = "pico-8"
seed = 5

[generator.diffusion]
model = "models/tiny-sd"
steps = 2
guidance = 1.5
batch_size = 4
frames = "seed"
pixelize = {{ background = "none" }}
{sprites}
"""


def diffusion_project(root: Path, model: Path, count: int) -> None:
    root.mkdir(parents=True)
    shutil.copytree(model, root / "models" / "tiny-sd")
    prompts = ["knight with a blue cape", "green slime", "gold coin", "red sword"]
    sprites = "".join(
        f'\n[[sprite]]\nname = "d{i:02d}"\ngenerator = "diffusion"\nprompt = "{prompts[i % 4]}"\nseed = {i}\nsize = [16, 16]\n'
        for i in range(count)
    )
    (root / "sparky.toml").write_text(DIFFUSION.format(sprites=sprites))


def make_project(tmp: Path, project: str, count: int) -> Path:
    """A fresh ``procedural`` or ``diffusion`` project of ``count`` sprites, in a folder
    of its own under ``tmp`` (the tiny pipeline saved at ``tmp/tiny-sd``). Projects stay
    until the run ends (``tmp`` goes then): on a filesystem without a journal (ext4
    without one, as on the VMs this was measured on) the kernel will not reuse an inode
    freed in the last 60–300 s and scans past every such inode for each file it creates —
    deleting a built project (about 2,300 files) between builds made the next build's
    cache writes cost up to 0.9 ms of system time per file, a different amount each
    round, and twice over for two processes creating files at once."""
    root = Path(tempfile.mkdtemp(prefix=f"{project}-", dir=tmp)) / project
    if project == "procedural":
        root.mkdir()
        write_project(root, count)
    else:
        diffusion_project(root, tmp / "tiny-sd", count)
    return root


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".sparky" not in p.parts:
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


CPU_STAGES = ("generate", "process", "pack", "export")
PAIR = ("2x jobs 1", "pair", 1, "", ROOT)
"""The machine's own ceiling, measured in every round: :func:`two_at_once`."""


def build(env: dict, kind: str, jobs: int, address: str, root: Path, tree: Path = ROOT, sync: bool = True) -> dict:
    """One cold build in a child process running the code of ``tree``."""
    if sync:
        os.sync()  # the last build's files written back first: their writeback would slow this one's
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(jobs), address, str(root)],
        env={**env, "PYTHONPATH": str(tree)},
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(f"build failed ({kind} {jobs}):\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["cpu"] = sum(figures["stages"].get(s, 0.0) for s in CPU_STAGES)
    figures["main_stages_cpu"] = sum(figures["stage_cpu"].get(s, 0.0) for s in CPU_STAGES)
    figures["digest"] = digest(root)
    return figures


def two_at_once(env: dict, tmp: Path, project: str, sprites: int, tree: Path) -> list[dict]:
    """Two ``--jobs 1`` builds of two copies of the project, started together: what
    this machine gives two processes at once, on this very work — the most any split of
    it over 2 processes can reach here (a second core shared with a neighbour, or two
    vCPUs on one physical core, shows as less than 2×)."""
    import threading

    roots = [make_project(tmp, project, sprites) for _ in range(2)]
    os.sync()
    out: list[dict] = [{}, {}]

    def run(i: int) -> None:
        out[i] = build(env, "local", 1, "", roots[i], tree, sync=False)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not all(out):
        raise SystemExit(f"{project}: a build of the pair failed")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sprites", type=int, default=1000, help="procedural sprites")
    parser.add_argument("--diffusion", type=int, default=64, help="tiny-diffusion sprites (0: skip)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--anchor-tree", type=Path, help="an earlier checkout to measure in the same rounds")
    parser.add_argument("--no-ray", action="store_true", help="leave the Ray cluster out")
    args = parser.parse_args(argv)
    from tests.ray_cluster import LocalRayCluster

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "SPARKY_TABLE_CACHE": str(tmp / "tables")}
        projects = [("procedural", args.sprites)] + ([("diffusion", args.diffusion)] if args.diffusion else [])
        if args.diffusion:
            from tests.tiny_pipeline import save_tiny_pipeline

            save_tiny_pipeline(tmp / "tiny-sd")
        executors = [("jobs 1", "local", 1, "", ROOT), ("jobs 2", "local", 2, "", ROOT), PAIR]
        if args.anchor_tree:
            tree = args.anchor_tree.resolve()
            executors += [("jobs 1 a", "local", 1, "", tree), ("jobs 2 a", "local", 2, "", tree)]
        for project, count in projects:  # not measured: the palette tables and model files ready, for every build alike
            root = make_project(tmp, project, count if project == "procedural" else 2)
            build(env, "local", 1, "", root)
        ratios: dict[tuple[str, str], list[float]] = {}
        print("local executors (no Ray cluster on the machine):")
        rounds(args.rounds, projects, executors, env, tmp, ratios)
        if args.anchor_tree:
            print("(jobs 1 a / jobs 2 a: the anchor tree's code; ratios against this tree's jobs 1)")
        if args.no_ray:
            summary(ratios)
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            return
        with LocalRayCluster(workers=2, cpus_per_worker=1) as cluster:
            # its daemons take CPU time even while idle: the local executors were measured
            # without it, and Ray against `--jobs 1` measured with it, round by round
            print("\nRay (a cluster of 2 worker nodes on this machine; jobs 1 again, as its anchor):")
            env = {**cluster.env, "SPARKY_TABLE_CACHE": str(tmp / "tables")}
            ray_executors = [("jobs 1", "local", 1, "", ROOT), ("ray 2w", "ray", 0, cluster.address, ROOT)]
            rounds(args.rounds, projects, ray_executors, env, tmp, ratios)
            from sparky_assets.pipeline.executor import guided_chunks

            batch = len(guided_chunks(range(args.sprites), 2, 4))  # the generate tasks of the procedural build
            out = subprocess.run(
                [sys.executable, "-c", OVERHEAD, cluster.address, str(batch)],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        o = json.loads(out.stdout.strip().splitlines()[-1])
        per_task, batched = o["rtt_ms"] - o["local_ms"], o["batch_ms"] - o["local_ms"]
        print(
            f"\nray no-op task, 16-sprite chunk: round trip {o['rtt_ms']:.2f} ms, local call {o['local_ms']:.3f} ms "
            f"→ overhead {per_task:.2f} ms per task ({per_task / 16:.3f} ms per sprite); "
            f"{batch} at once (a {args.sprites}-sprite build's generate tasks): {batched:.2f} ms per task; "
            f"200 in flight: {o['in_flight_ms']:.2f} ms per task"
        )
        print(
            f"goals: overhead < 5 ms per task: {'met' if batched < 5 else 'NOT met'} for a build's batch "
            f"({batched:.2f} ms), {'met' if per_task < 5 else 'NOT met'} for a lone task ({per_task:.2f} ms); ",
            end="",
        )
        summary(ratios)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def rounds(count: int, projects: list, executors: list, env: dict, tmp: Path, ratios: dict) -> None:
    """``count`` rounds of a cold build of each project per executor (alternating their
    order), each against the round's first (``jobs 1``); ratios go into ``ratios``."""
    header = (
        f"{'project':<11} {'sprites':>7} {'executor':<8} {'wall s':>7} {'cpu s':>7} {'wall x':>7} {'cpu x':>7}"
        f" {'span x':>7}"
        f"  {'tasks':>5}  CPU s: build process (in the CPU stages) + forkserver (in them) + workers (in them)"
        " → free-core estimate (CPU stages)"
    )
    print(header + "\n" + "-" * len(header), flush=True)
    for r in range(count):
        for project, sprites in projects:
            anchor = None
            order = executors if r % 2 == 0 else [executors[0], *reversed(executors[1:])]
            for label, kind, jobs, address, tree in order:
                if kind == "pair":
                    if project != "procedural":  # the goal's work only
                        continue
                    pair = two_at_once(env, tmp, project, sprites, tree)
                    if any(f["digest"] != anchor["digest"] for f in pair):
                        raise SystemExit(f"{project} {label}: outputs differ from jobs 1")
                    # the throughput of two at once against one: 2 × one build's time / the slower of the two
                    x = {m: 2 * anchor[m] / max(f[m] for f in pair) for m in ("wall", "cpu", "span")}
                    ratios.setdefault((project, label), []).append(x["cpu"])
                    ratios.setdefault((project, label + " span"), []).append(x["span"])
                    print(
                        f"{project:<11} {sprites:>7} {label:<8} {max(f['wall'] for f in pair):>7.2f} "
                        f"{max(f['cpu'] for f in pair):>7.2f} {x['wall']:>6.2f}x {x['cpu']:>6.2f}x {x['span']:>6.2f}x"
                        "      -  (the slower of two jobs 1 builds run at once; x: their throughput against one)",
                        flush=True,
                    )
                    continue
                root = make_project(tmp, project, sprites)
                figures = build(env, kind, jobs, address, root, tree)
                anchor = anchor or figures
                if figures["digest"] != anchor["digest"]:
                    raise SystemExit(f"{project} {label}: outputs differ from jobs 1")
                wall_x, cpu_x = anchor["wall"] / figures["wall"], anchor["cpu"] / figures["cpu"]
                span_x = anchor["span"] / figures["span"]
                ratios.setdefault((project, label), []).append(cpu_x)
                ratios.setdefault((project, label + " span"), []).append(span_x)
                workers = figures["workers_cpu"]
                # with free cores the build would take at most its own CPU time plus the
                # forkserver's plus the busiest worker's (phases alternate: the build waits
                # while workers work); the same for the CPU stages alone (the build
                # process's and the forkserver's CPU seconds in them; workers work only there)
                busiest = max(workers, default=0.0)
                # in the CPU stages: what each worker spent after the first CPU stage began
                # (a first build's workers start and get ready while the build plans)
                busiest_in_stages = max(figures["workers_stages_cpu"], default=0.0)
                server, server_in_stages = figures["forkserver_cpu"], figures["forkserver_stages_cpu"]
                free_x = anchor["main_cpu"] / (figures["main_cpu"] + server + busiest)
                stages_x = anchor["main_stages_cpu"] / (
                    figures["main_stages_cpu"] + server_in_stages + busiest_in_stages
                )
                if kind == "local":
                    ratios.setdefault((project, label + " free-core"), []).append(free_x)
                    ratios.setdefault((project, label + " free-core CPU stages"), []).append(stages_x)
                cpus = " + ".join(f"{w:.2f} ({ws:.2f})" for w, ws in zip(workers, figures["workers_stages_cpu"]))
                where = f"{figures['main_cpu']:.2f} ({figures['main_stages_cpu']:.2f})" + (
                    f" + fs {server:.2f} ({server_in_stages:.2f}) + [{cpus}] → {free_x:.2f}x ({stages_x:.2f}x)"
                    if workers
                    else ""
                )
                print(
                    f"{project:<11} {sprites:>7} {label:<8} {figures['wall']:>7.2f} {figures['cpu']:>7.2f} "
                    f"{wall_x:>6.2f}x {cpu_x:>6.2f}x {span_x:>6.2f}x  {figures['sent']:>5}  "
                    + (where if kind == "local" else "(workers on the cluster)"),
                    flush=True,
                )


def summary(ratios: dict[tuple[str, str], list[float]]) -> None:
    """The median ratios against ``jobs 1``, and the ``--jobs 2`` goal."""
    kinds = {
        "": "CPU stages (sum of their times)",
        " span": "CPU stages' span (first entered .. last left, wall)",
        " free-core": "free-core estimate, whole build",
        " free-core CPU stages": "free-core estimate, CPU stages",
    }
    for (project, label), values in ratios.items():
        suffix = next((k for k in sorted(kinds, key=len, reverse=True) if k and label.endswith(k)), "")
        name = label[: len(label) - len(suffix)]
        if name == "jobs 1":
            continue
        print(f"{project} {name}: {kinds[suffix]} {statistics.median(values):.2f}x jobs 1 (median of {len(values)})")
    jobs2 = statistics.median(ratios[("procedural", "jobs 2")])
    span2 = statistics.median(ratios[("procedural", "jobs 2 span")])
    free2 = statistics.median(ratios[("procedural", "jobs 2 free-core CPU stages")])
    print(
        f"jobs 2 ≥ 1.7x on the CPU stages: {'met' if min(jobs2, span2) >= 1.7 else 'NOT met'} ({jobs2:.2f}x measured,"
        f" {span2:.2f}x on their span; {free2:.2f}x estimated from CPU seconds, for 2 free cores)"
    )
    if ("procedural", PAIR[0]) in ratios:
        ceiling = statistics.median(ratios[("procedural", PAIR[0])])
        ceiling_span = statistics.median(ratios[("procedural", PAIR[0] + " span")])
        print(
            f"this machine's ceiling for 2 processes on this work ({PAIR[0]}): {ceiling:.2f}x on the CPU stages,"
            f" {ceiling_span:.2f}x on their span; jobs 2 reaches {jobs2 / ceiling:.0%} / {span2 / ceiling_span:.0%} of it"
        )


if __name__ == "__main__":
    main()
