"""A real Ray cluster on this machine for tests and ``bench/cluster.py``: a head (no CPUs
of its own, so work runs on the workers) and N worker nodes, each ``ray start --block``
in its own process group, on free ports and in a temp folder of its own (several
clusters can run at once). Nothing is fetched and no usage statistics are sent.

``with LocalRayCluster(workers=2) as cluster:`` … ``cluster.address`` … — the exit
kills every process group (also when the body failed) and removes the folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayCluster:
    def __init__(self, workers: int = 2, cpus_per_worker: int = 1, start_timeout: float = 180.0):
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.start_timeout = start_timeout
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # short: Ray's socket paths live under it (the limit is ~107 characters)
        self.temp = Path(tempfile.mkdtemp(prefix="sray"))
        self.heads: list[subprocess.Popen] = []
        self.nodes: list[subprocess.Popen] = []
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
            # notice a killed node in ~3 s instead of ~15 (the tests kill one)
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        self.ray = str(Path(sys.executable).with_name("ray"))

    def _start(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.temp / log, "wb")  # noqa: SIM115 - kept open for the process's life
        return subprocess.Popen(
            [self.ray, "start", "--block", "--disable-usage-stats", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as one
        )

    def _wait_log(self, log: str, proc: subprocess.Popen, deadline: float) -> None:
        while time.monotonic() < deadline:
            text = (self.temp / log).read_text(errors="replace")
            if "Ray runtime started" in text:
                return
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"ray start did not come up:\n{(self.temp / log).read_text(errors='replace')[-3000:]}")

    def start(self) -> LocalRayCluster:
        deadline = time.monotonic() + self.start_timeout
        head = [
            "--head",
            f"--port={self.port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=0",
            "--num-gpus=0",
            "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--temp-dir={self.temp}",
        ]
        self.heads.append(self._start(head, "head.log"))
        self._wait_log("head.log", self.heads[0], deadline)
        for i in range(self.workers):
            self.add_worker(deadline)
        self.wait_nodes(self.workers + 1, deadline)
        return self

    def add_worker(self, deadline: float | None = None) -> subprocess.Popen:
        i = len(self.nodes)
        proc = self._start(
            [
                f"--address={self.address}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={self.cpus_per_worker}",
                "--num-gpus=0",
                f"--dashboard-agent-listen-port={free_port()}",
            ],
            f"worker{i}.log",
        )
        self.nodes.append(proc)
        self._wait_log(f"worker{i}.log", proc, deadline or time.monotonic() + self.start_timeout)
        return proc

    def alive_nodes(self) -> int:
        code = (
            "import ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))" % self.address
        )
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else -1

    def wait_nodes(self, count: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.alive_nodes() >= count:
                return
            time.sleep(0.5)
        raise TimeoutError(f"the cluster did not reach {count} nodes")

    def kill_worker(self, i: int) -> None:
        """Kill worker node ``i`` outright: its raylet and every worker process on it."""
        _killpg(self.nodes[i], signal.SIGKILL)

    def stop(self) -> None:
        for proc in [*self.nodes, *self.heads]:
            _killpg(proc, signal.SIGTERM)
        end = time.monotonic() + 5
        for proc in [*self.nodes, *self.heads]:
            try:
                proc.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _killpg(proc, signal.SIGKILL)  # whatever of the group is left
            proc.wait()
        # Ray's worker processes (actors too) run in process groups of their own: they are
        # the processes whose command line names this cluster's temp folder
        for _ in range(3):
            stray = self._stray_pids()
            for pid in stray:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.3 if stray else 0)
            shutil.rmtree(self.temp, ignore_errors=True)
            if not stray:
                break

    def _stray_pids(self) -> list[int]:
        mark = str(self.temp).encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if mark in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    def log(self, name: str = "head.log") -> str:
        return (self.temp / name).read_text(errors="replace")

    def __enter__(self) -> LocalRayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _killpg(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
