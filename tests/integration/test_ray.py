"""``build --executor ray`` against a real Ray cluster started here: a head and two
worker nodes (CPU only), each ``ray start`` in its own process group on loopback
(tests/ray_cluster.py), shared by the module and torn down even when a test fails.

A procedural and a tiny-diffusion project build through the cluster byte-identical to
a local build (sprites, lock, generated art, every output); a bad manifest fails with
exit 2 before the build even connects (the cluster's job table gains no driver); and
killing a worker node while generation runs on it still ends in the same, complete
build — Ray restarts the generation actor elsewhere and retries its calls. The builds
run as the CLI does, in a child process; progress is read from a pseudo-terminal."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sparky_assets.cli.main import main
from tests.helpers import REPO, on_a_terminal, snapshot

pytest.importorskip("ray")
sys.path.insert(0, str(REPO / "bench"))
from incremental import write_project  # noqa: E402

from tests.ray_cluster import LocalRayCluster  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster():
    with LocalRayCluster(workers=2, cpus_per_worker=1) as c:
        yield c


def diffusion_manifest(sprites: int, model: str = "models/tiny-sd") -> str:
    lines = [
        "[project]",
        'name = "tiny"',
        'palette = "pico-8"',
        "seed = 5",
        "",
        "[generator.diffusion]",
        f'model = "{model}"',
        "steps = 2",
        "guidance = 1.5",
        "batch_size = 4",
        'frames = "seed"',
        'pixelize = { background = "none" }',
        "",
    ]
    prompts = ["knight with a blue cape", "green slime", "gold coin", "red sword"]
    for i in range(sprites):
        lines += [
            "[[sprite]]",
            f'name = "s{i:02d}"',
            'generator = "diffusion"',
            f'prompt = "{prompts[i % 4]}"',
            f"seed = {100 + i}",
            "size = [16, 16]",
            "animations = { idle = 2 }",
            "",
        ]
    lines += ["[export.aseprite]", ""]
    return "\n".join(lines)


def diffusion_project(tiny_sd_project: Path, dest: Path, sprites: int, **kwargs) -> Path:
    shutil.copytree(tiny_sd_project / "models", dest / "models")
    (dest / "sparky.toml").write_text(diffusion_manifest(sprites, **kwargs))
    return dest


def ray_build(cluster: LocalRayCluster, root: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sparky_assets", "build", "--executor", "ray", "--ray-address", cluster.address, *extra]
        + [str(root)],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=400,
    )


_ASKERS: set[str] = set()


def cluster_jobs(cluster: LocalRayCluster) -> set[str]:
    """The IDs of every driver that ever connected to the cluster, but the ones this
    function used to ask."""
    code = (
        "import ray, ray._private.state as s; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
        "print(ray.get_runtime_context().get_job_id()); print(' '.join(sorted(j['JobID'] for j in s.jobs())))"
        % cluster.address
    )
    out = subprocess.run([sys.executable, "-c", code], env=cluster.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    me, jobs = out.stdout.strip().splitlines()[-2:]
    _ASKERS.add(me)
    return set(jobs.split()) - _ASKERS


def test_procedural_build_through_ray_is_byte_identical(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    for root in (local, remote):
        root.mkdir()
        write_project(root, 150)
    assert main(["-q", "build", "--jobs", "1", str(local)]) == 0
    out = ray_build(cluster, remote)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ray: connected (ray: 3 nodes, 2 CPUs, 0 GPUs)" in out.stderr
    assert "generated  150" in out.stdout
    assert snapshot(local) == snapshot(remote)
    assert (local / "sparky.lock").read_bytes() == (remote / "sparky.lock").read_bytes()


def test_bad_manifest_fails_before_connecting_then_tiny_diffusion_is_identical(cluster, tiny_sd_project, tmp_path):
    """A model that is not there is found while the manifest is checked: exit 2, and no
    driver ever joined the cluster (its job table is unchanged). Then the same project,
    fixed, builds on the cluster's generation actors exactly as it does here — and a
    second build finds the actors' pipeline still loaded."""
    bad = diffusion_project(tiny_sd_project, tmp_path / "bad", 4, model="models/not-there")
    before = cluster_jobs(cluster)
    out = ray_build(cluster, bad)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "not-there" in out.stderr and "ray: connected" not in out.stderr
    assert cluster_jobs(cluster) == before
    assert not (bad / "sparky.lock").exists()

    local = diffusion_project(tiny_sd_project, tmp_path / "local", 6)
    remote = diffusion_project(tiny_sd_project, tmp_path / "ray", 6)
    assert main(["-q", "build", "--jobs", "1", str(local)]) == 0
    out = ray_build(cluster, remote)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(cluster_jobs(cluster) - before) == 1  # the control: a build that ran did join
    assert "generated    6" in out.stdout
    assert snapshot(local) == snapshot(remote)
    assert list((remote / "sparky-generated").glob("s00.*.png"))

    again = ray_build(cluster, remote, "--regenerate", "s01")
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(r"diffusion: .*loaded 0\b", again.stdout), again.stdout  # warm: nothing loaded again
    assert snapshot(local) == snapshot(remote)


def test_killing_a_worker_node_mid_build_still_completes_identically(cluster, tiny_sd_project, tmp_path):
    local = diffusion_project(tiny_sd_project, tmp_path / "local", 16)
    remote = diffusion_project(tiny_sd_project, tmp_path / "ray", 16)
    assert main(["-q", "build", "--jobs", "1", str(local)]) == 0

    killed = []

    def kill_mid_build(seen: str, proc) -> None:
        percents = [int(p) for p in re.findall(r"generate\s+\[ray: 3 nodes[^\]]*\]\s+\[[#-]+\]\s+(\d+)%", seen)]
        if not killed and any(0 < p < 100 for p in percents):
            assert proc.poll() is None  # mid-build: generation has begun and not finished
            cluster.kill_worker(0)
            killed.append(True)

    args = [sys.executable, "-m", "sparky_assets", "build", "--executor", "ray", "--ray-address", cluster.address]
    code, stdout, seen = on_a_terminal(args + [str(remote)], cluster.env, kill_mid_build)  # it shows its progress
    assert killed, seen[:4000]
    assert code == 0, seen[-3000:]
    assert "generated   16" in stdout
    assert re.search(r"generate\s+\[ray[^\]]*\]\s+\[#+\]\s+100%", seen)  # the cluster's progress, to the end
    assert snapshot(local) == snapshot(remote)


def test_without_an_address_the_build_starts_a_private_ray_not_the_running_cluster(cluster):
    """Ray's own default (``address=None``) attaches to the cluster named by the
    ``ray_current_cluster`` file `ray start` leaves in Ray's temp folder; a build without
    ``--ray-address`` must start a Ray of its own instead, and ``auto`` still attaches."""
    temp = Path(tempfile.mkdtemp(prefix="sray"))  # short: Ray's socket paths live under it
    try:
        (temp / "ray").mkdir()
        (temp / "ray" / "ray_current_cluster").write_text(cluster.address)
        code = (
            "import sys, ray; from sparky_assets.pipeline.executor import RayExecutor\n"
            "ex = RayExecutor(None if sys.argv[1] == 'none' else sys.argv[1])\n"
            "ray = ex.connect(); print('GCS', ray.get_runtime_context().gcs_address); ex.close()\n"
        )
        env = {**cluster.env, "RAY_TMPDIR": str(temp), "HOME": str(temp / "home")}
        found = {}
        for address in ("none", "auto"):
            run = subprocess.run(
                [sys.executable, "-c", code, address], env=env, capture_output=True, text=True, timeout=300
            )
            assert run.returncode == 0, run.stderr[-3000:]
            found[address] = re.search(r"^GCS (\S+)$", run.stdout, re.M).group(1)
        port = f":{cluster.port}"  # (Ray names loopback by the machine's own address)
        assert found["auto"].endswith(port)
        assert not found["none"].endswith(port)
        # and its token stays in its environment: none written for every later Ray to find
        assert not (temp / "home" / ".ray").exists()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
