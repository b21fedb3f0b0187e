"""The CPU image built and run for real, offline, on a real Docker engine.

No registry is reachable and containers get no network, so (docker/README.md,
"Offline builds"): the base image is a Debian bookworm made by debootstrap from the
machine's apt mirror and ``docker import``-ed (``.ci/docker-base``); the dependencies
come from a wheel folder built on the host at the host's own versions
(``.ci/docker-wheels``); ``docker build --network none`` installs from those wheels
only. Then ``sparky-assets build`` runs on a copy of the example inside the image, as
the image's non-root user, with ``--network none``, and its outputs are compared with a
build of another copy on the host: byte-identical, every file. compose.yaml's `watch`
command runs in the image too and serves its metrics (scraped inside the container).

Inputs come from the environment ``.ci/run`` sets up: ``SPARKY_DOCKER_BASE`` (the base
tarball) and ``SPARKY_DOCKER_WHEELS`` (the wheel folder); a Docker engine on the default
socket (``.ci/run`` starts ``dockerd --bridge=none --iptables=false``; running as root,
this test starts one the same way if none answers). Missing any: skipped locally, a
failure under ``CI=true``. The images are tagged ``*-sparky-test`` and kept, so Docker's
layer cache makes a rerun quick; the containers are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, copy_example, snapshot
from tests.integration.test_docker import (
    DOCKERFILES,
    WHEELS_DEFAULT,
    _compose,
    _context_copies,
    _ray_start,
    copy_into,
    documented_cluster_builds,
    interpolate,
    parse_dockerfile,
)

IMAGE = "sparky-assets:cpu-sparky-test"
RAY_IMAGE = "sparky-assets:ray-sparky-test"
IMAGE_USER = "1000:1000"

pytestmark = pytest.mark.timeout(1800)  # a cold image build on a loaded 2-core machine


def docker(*args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        assert result.returncode == 0, (
            f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def _engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI (CI: .ci/run installs docker.io)")
    started = None
    if not _engine_answers():
        if os.geteuid() != 0 or shutil.which("dockerd") is None:
            pytest.skip("no Docker engine answers and this test cannot start one (needs root and dockerd)")
        log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
        # as .ci/run does: no bridge network (no private-range addresses), no iptables rules
        started = subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false"], stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not _engine_answers():
            assert started.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    yield
    if started is not None:
        started.terminate()
        started.wait(60)


def _input(variable: str, script: str) -> Path:
    value = os.environ.get(variable)
    if not value or not Path(value).exists():
        pytest.skip(f"${variable} is not set to an existing path (CI: .ci/run sets it with {script})")
    return Path(value)


@pytest.fixture(scope="module")
def base_image(engine) -> str:
    """The debootstrapped base, imported once per tarball (the tag names its digest)."""
    tarball = _input("SPARKY_DOCKER_BASE", ".ci/docker-base")
    digest = hashlib.sha256()
    with tarball.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    tag = f"sparky-base:bookworm-{digest.hexdigest()[:12]}"
    if docker("image", "inspect", tag, check=False).returncode != 0:
        docker("import", str(tarball), tag)
    return tag


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    """A build context holding exactly what the Dockerfile copies, with the host's wheels
    as the WHEELS folder (``wheels/``)."""
    wheels = _input("SPARKY_DOCKER_WHEELS", ".ci/docker-wheels")
    context = tmp_path_factory.mktemp("context")
    dockerfile = parse_dockerfile(DOCKERFILES["cpu"])
    for instruction, source in _context_copies(dockerfile):
        destination = instruction.arguments.split()[-1]
        if source == WHEELS_DEFAULT:
            shutil.copytree(wheels, context / "wheels", ignore=shutil.ignore_patterns(".*"))
        else:
            copy_into(REPO / source, context, destination)
    shutil.copy2(DOCKERFILES["cpu"], context / "Dockerfile")
    return context


TEST_LABEL = "org.sparky-assets.test=1"


def build_image(context: Path, base_image: str, tag: str, *args: str) -> str:
    """``docker/Dockerfile.cpu`` built with ``--network none`` from the host's wheels only.

    The builder stage is tagged too (``TAG-builder``), so that both stages of the last
    build are the layer cache of the next; what a new build supersedes is left untagged
    and removed (only images with this test's label: nothing of anyone else's), so the
    engine's disk does not grow by a venv per source change."""
    build_args = [f"BASE_IMAGE={base_image}", "WHEELS=wheels", *args]
    common = ["build", "--network", "none", "--label", TEST_LABEL]
    common += [word for arg in build_args for word in ("--build-arg", arg)]
    environment = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the engine's classic builder: no buildx plugin needed
    for target in (["--target", "builder", "--tag", f"{tag}-builder"], ["--tag", tag]):
        docker(*common, *target, str(context), timeout=1500, env=environment)
    docker("image", "prune", "--force", "--filter", f"label={TEST_LABEL}", timeout=300)
    return tag


@pytest.fixture(scope="module")
def cpu_image(base_image, context) -> str:
    return build_image(context, base_image, IMAGE)


@pytest.fixture(scope="module")
def ray_image(base_image, context) -> str:
    """The image compose.yaml's ``ray-head`` service builds (its EXTRAS)."""
    extras = interpolate(_compose(), {})["services"]["ray-head"]["build"]["args"]["EXTRAS"]
    return build_image(context, base_image, RAY_IMAGE, f"EXTRAS={extras}")


def hand_to_image_user(project: Path) -> tuple[int, int]:
    """chown ``project`` to the image's user, who must write the bind-mounted folder."""
    uid, gid = (int(n) for n in IMAGE_USER.split(":"))
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the project folder to the image's user (uid 1000)")
    for path in [project, *project.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)
    return uid, gid


def test_the_image_builds_offline_and_runs_as_its_non_root_user(cpu_image):
    config = json.loads(docker("image", "inspect", cpu_image).stdout)[0]["Config"]
    assert config["User"] == IMAGE_USER
    assert config["Entrypoint"] == ["sparky-assets"] and config["Cmd"] == ["build", "/project"]
    probe = (
        "import importlib.util, os, numpy, PIL, prometheus_client;"
        "print(os.getuid(), numpy.__version__, PIL.__version__, importlib.util.find_spec('torch') is None)"
    )
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "python3", cpu_image, "-c", probe)
    uid, numpy_version, pillow_version, no_torch = result.stdout.split()
    import numpy
    import PIL

    assert uid == "1000"
    assert (numpy_version, pillow_version) == (numpy.__version__, PIL.__version__), "the host's wheels"
    assert no_torch == "True", "the CPU image has no torch"


def test_a_build_in_the_image_is_byte_identical_to_one_on_the_host(cpu_image, tmp_path):
    inside = copy_example(tmp_path / "container")
    on_host = copy_example(tmp_path / "host")
    uid, gid = hand_to_image_user(inside)

    host = subprocess.run(
        [sys.executable, "-m", "sparky_assets", "-q", "build", str(on_host)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert host.returncode == 0, host.stderr
    run = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        f"{inside}:/project",
        cpu_image,  # the default command: build /project, as the image's user
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "dungeon: built" in run.stdout

    expected, found = snapshot(on_host), snapshot(inside)
    assert found.keys() == expected.keys(), sorted(found.keys() ^ expected.keys())
    different = sorted(p for p in expected if expected[p] != found[p])
    assert not different, f"outputs differ between the container and the host: {different}"
    assert any(p.startswith("build/") for p in found) and any(p.endswith(".png") for p in found)
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in (inside / "build").rglob("*")}
    assert owners == {(uid, gid)}, f"the files the container wrote belong to {owners}"


def test_the_compose_watch_command_serves_metrics_inside_the_image(cpu_image, tmp_path):
    """compose.yaml's `watch` service command, run in the image (no network: scraped from
    inside the container with its own python): the initial build is counted."""
    command = interpolate(_compose(), {})["services"]["watch"]["command"]
    port = int(command[command.index("--metrics-port") + 1])
    project = copy_example(tmp_path)
    hand_to_image_user(project)
    container = docker(
        "run", "--detach", "--network", "none", "--volume", f"{project}:/project", cpu_image, *command
    ).stdout.strip()
    scrape = textwrap.dedent(f"""
        import sys, time, urllib.request
        deadline, text = time.monotonic() + 120, ""
        while 'sparky_builds_total{{result="ok"}} 1.0' not in text:
            if time.monotonic() > deadline:
                sys.exit("no build counted; last scrape: " + repr(text))
            time.sleep(0.2)
            try:
                text = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                pass
        print(text)
    """)
    try:
        result = docker("exec", container, "python3", "-c", scrape, check=False, timeout=180)
        logs = docker("logs", container, check=False)
        assert result.returncode == 0, result.stdout + result.stderr + logs.stdout + logs.stderr
        assert 'sparky_hotreload_messages_published_total{type="build-finished"} 1.0' in result.stdout
        assert "publishing on tcp://0.0.0.0:5557" in logs.stdout
    finally:
        docker("rm", "--force", container, check=False)


def _inside(container: str, code: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return docker("exec", container, "python3", "-c", textwrap.dedent(code), check=False, timeout=timeout)


def test_the_compose_ray_head_runs_a_cluster_build_byte_identical_to_the_host(ray_image, tmp_path):
    """compose.yaml's ``ray-head`` (its entrypoint and ``ray start`` command) in the Ray
    image, and the cluster build the file documents run on it with ``docker exec``: the
    outputs are the host's bytes, and Ray's own metrics (what Prometheus scrapes from
    the nodes) report the build's tasks."""
    head = interpolate(_compose(), {})["services"]["ray-head"]
    start = _ray_start(head)
    project = copy_example(tmp_path / "cluster")
    hand_to_image_user(project)
    on_host = copy_example(tmp_path / "host")
    host = subprocess.run(
        [sys.executable, "-m", "sparky_assets", "-q", "build", str(on_host)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert host.returncode == 0, host.stderr
    container = docker(
        "run",
        "--detach",
        "--network",
        "none",
        "--shm-size",
        head["shm_size"],
        # compose's network resolves the service name to the container: here, its loopback
        "--hostname",
        "ray-head",
        "--add-host",
        "ray-head:127.0.0.1",
        "--volume",
        f"{project}:/project",
        "--entrypoint",
        head["entrypoint"][0],
        ray_image,
        *head["command"],
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 180
        while docker("exec", container, "ray", "status", check=False, timeout=120).returncode != 0:
            logs = docker("logs", container, check=False)
            assert time.monotonic() < deadline, f"the Ray head never came up:\n{logs.stdout}{logs.stderr}"
            time.sleep(1)
        command = documented_cluster_builds()[-1]  # the one with --metrics-port
        build = docker("exec", container, "sparky-assets", *command, check=False, timeout=600)
        assert build.returncode == 0, build.stdout + build.stderr
        assert "ray: connected" in build.stderr and "dungeon: built" in build.stdout, build.stdout + build.stderr
        expected, found = snapshot(on_host), snapshot(project)
        assert found.keys() == expected.keys(), sorted(found.keys() ^ expected.keys())
        assert not sorted(p for p in expected if expected[p] != found[p]), "the cluster build differs from the host's"
        ray_metrics = _inside(
            container,
            f"""
            import sys, time, urllib.request
            deadline, text = time.monotonic() + 120, ""
            while 'ray_tasks{{' not in text:
                if time.monotonic() > deadline:
                    sys.exit("Ray reported no task metrics: " + text[-2000:])
                time.sleep(1)
                try:
                    text = urllib.request.urlopen("http://127.0.0.1:{start["metrics_export_port"]}/metrics").read().decode()
                except OSError:
                    pass
            """,
        )
        assert ray_metrics.returncode == 0, ray_metrics.stdout + ray_metrics.stderr
    finally:
        docker("rm", "--force", container, check=False)


def test_the_wheel_script_deletes_only_the_wheels_it_made(tmp_path):
    """``SPARKY_DOCKER_WHEELS`` may name a folder of the user's: remaking it deletes the
    wheels the script listed as its own, never the folder or anything else in it. Built
    offline from the ``.ci/run`` wheel folder (pip's ``--find-links``)."""
    source = _input("SPARKY_DOCKER_WHEELS", ".ci/docker-wheels")
    folder = tmp_path / "my wheels"
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's")
    (folder / "mine-1.0-py3-none-any.whl").write_bytes(b"the user's wheel")
    (folder / "old-0.1-py3-none-any.whl").write_bytes(b"an earlier run's")
    (folder / ".sparky-wheels").write_text("old-0.1-py3-none-any.whl\n../notes.txt\n.sparky-stamp\n")
    (folder / ".sparky-stamp").write_text("stale\n")
    env = {
        **os.environ,
        "SPARKY_DOCKER_WHEELS": str(folder),
        "PYTHON": sys.executable,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(source),
    }
    run = subprocess.run(
        ["bash", str(REPO / ".ci" / "docker-wheels")], env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == str(folder)
    listed = (folder / ".sparky-wheels").read_text().split()
    assert listed and all(name.endswith(".whl") and (folder / name).is_file() for name in listed)
    assert any(name.startswith("numpy-") for name in listed)
    assert (folder / "notes.txt").read_text() == "the user's"  # not a wheel of ours
    assert (folder / "mine-1.0-py3-none-any.whl").read_bytes() == b"the user's wheel"
    assert not (folder / "old-0.1-py3-none-any.whl").exists()  # listed by the last run: replaced
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == [".sparky-stamp", ".sparky-wheels"]
