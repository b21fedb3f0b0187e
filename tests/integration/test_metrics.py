"""Prometheus metrics for real: a ``sparky-assets watch --metrics-port`` process is scraped
over HTTP while a real subscriber connects and files are edited; ``build
--metrics-file`` writes the text format a node-exporter textfile collector reads;
``build --metrics-port`` serves while a build runs (a plugin generator holds the build
open until the test has scraped it). Every scrape is parsed with prometheus_client's
own parser. Waits are for outcomes (a counter reaching a value), never for time.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import zmq

pytest.importorskip("prometheus_client")  # the [metrics] extra, in [test]
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from sparky_assets.cli.main import main  # noqa: E402
from sparky_assets.hotreload.publisher import Publisher  # noqa: E402
from sparky_assets.metrics import BuildMetrics  # noqa: E402
from sparky_assets.pipeline.engine import Builder, BuildOptions  # noqa: E402
from tests.helpers import REPO, copy_example  # noqa: E402

STAGES = ("generate", "process", "pack", "export")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, from the Prometheus text format."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return samples(response.read().decode())


def save(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.saving")
    tmp.write_text(text)
    tmp.replace(path)


class Process:
    """A ``sparky-assets`` subprocess whose output lines are read on a thread."""

    def __init__(self, *args: str, env: dict | None = None):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sparky_assets", *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 120.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0 and self.process.poll() is None or not self.lines.empty(), (
                f"no line matching {pattern!r}; output so far: {self.seen}"
            )
            try:
                line = self.lines.get(timeout=max(0.05, min(left, 1.0)))
            except queue.Empty:
                continue
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(20)


def until(url: str, predicate, what: str, timeout: float = 120.0) -> dict:
    """Scrape until ``predicate(samples)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        found = scrape(url)
        if predicate(found):
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def ok_builds(found) -> float:
    return value(found, "sparky_builds_total", result="ok")


def test_a_watch_session_is_scraped_and_its_counters_move(tmp_path):
    root = copy_example(tmp_path)
    watch = Process("watch", str(root), "--endpoint", "tcp://127.0.0.1:0", "--metrics-port", "0")
    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    try:
        url = watch.wait_line(r"metrics at (http://127\.0\.0\.1:\d+/metrics)").group(1)
        endpoint = watch.wait_line(r"publishing on (tcp://127\.0\.0\.1:\d+)").group(1)
        first = until(url, lambda f: ok_builds(f) == 1, "the initial build")
        assert value(first, "sparky_builds_total", result="failed") == 0
        assert value(first, "sparky_build_duration_seconds_count") == 1
        for stage in STAGES:
            assert value(first, "sparky_stage_duration_seconds_count", stage=stage) == 1
        # a fresh copy: everything but the locked sprites is computed
        assert value(first, "sparky_cache_misses_total", stage="process") > 0
        assert value(first, "sparky_cache_misses_total", stage="pack") > 0
        assert value(first, "sparky_cache_hits_total", stage="generate") > 0  # sparky.lock's sprites
        generated = sum(v for (n, _), v in first.items() if n == "sparky_generated_sprites_total")
        images = sum(v for (n, _), v in first.items() if n == "sparky_generated_images_total")
        assert generated == value(first, "sparky_cache_misses_total", stage="generate") > 0
        assert images >= generated
        assert value(first, "sparky_last_generate_seconds_per_sprite") > 0
        assert value(first, "sparky_last_generate_images_per_second") > 0
        assert value(first, "sparky_hotreload_messages_published_total", type="build-finished") == 1
        assert value(first, "sparky_hotreload_subscribers") == 0
        assert value(first, "sparky_info", command="watch", project="dungeon", version="0.1.0") == 1

        subscriber.connect(endpoint)
        subscriber.setsockopt(zmq.SUBSCRIBE, b"")
        until(url, lambda f: value(f, "sparky_hotreload_subscribers") == 1, "the subscriber to be counted")

        gpl = root / "palettes/items.gpl"
        save(gpl, gpl.read_text().replace("228  59  68", "230  60  70"))
        second = until(url, lambda f: ok_builds(f) >= 2, "the rebuild after the edit")
        assert value(second, "sparky_build_duration_seconds_count") == ok_builds(second)
        # build-finished goes out before the build is counted (and another may have begun)
        published = value(second, "sparky_hotreload_messages_published_total", type="build-finished")
        assert published >= ok_builds(second)
        assert value(second, "sparky_hotreload_messages_published_total", type="assets-changed") >= 2
        assert value(second, "sparky_output_files_changed_total", change="modified") > 0
        # the edit changed one palette: the unaffected sprites come from the cache
        assert value(second, "sparky_cache_hits_total", stage="process") > 0
        # the subscriber really got those messages
        topics = set()
        while subscriber.poll(1000):
            topics.add(subscriber.recv_multipart()[0])
        assert any(t.endswith(b"build-finished") for t in topics), topics

        manifest = root / "sparky.toml"
        save(manifest, manifest.read_text() + "\n[[sprite]]\nname = 3\n")
        third = until(url, lambda f: value(f, "sparky_builds_total", result="failed") == 1, "the failed build")
        assert value(third, "sparky_hotreload_messages_published_total", type="build-failed") == 1

        subscriber.close(0)
        until(url, lambda f: value(f, "sparky_hotreload_subscribers") == 0, "the subscriber to leave")
    finally:
        subscriber.close(0)
        context.term()
        watch.stop()
    assert watch.process.returncode == 0, watch.seen


def test_build_writes_a_textfile_for_node_exporter(tmp_path):
    root = copy_example(tmp_path)
    out = tmp_path / "textfile" / "sparky.prom"
    out.parent.mkdir()
    assert main(["-q", "build", str(root), "--metrics-file", str(out)]) == 0
    first = samples(out.read_text())
    assert ok_builds(first) == 1
    assert value(first, "sparky_cache_misses_total", stage="export") > 0
    assert value(first, "sparky_last_success_timestamp_seconds") > 0
    # each build counts afresh (as a new process would): nothing to do, the exports come
    # from the cache and nothing upstream of them is even asked for
    assert main(["-q", "build", str(root), "--metrics-file", str(out)]) == 0
    second = samples(out.read_text())
    assert ok_builds(second) == 1
    for stage in STAGES:
        assert value(second, "sparky_cache_misses_total", stage=stage) == 0
    assert value(second, "sparky_cache_hits_total", stage="export") > 0
    assert not [p for p in out.parent.iterdir() if p != out], "written atomically: no temporary left behind"

    # a failed build still writes its file (exit code 2: invalid input)
    manifest = root / "sparky.toml"
    manifest.write_text(manifest.read_text() + "\n[[sprite]]\nname = 3\n")
    assert main(["-q", "build", str(root), "--metrics-file", str(out)]) == 2
    failed = samples(out.read_text())
    assert value(failed, "sparky_builds_total", result="failed") == 1 and ok_builds(failed) == 0
    # when the last good build was survives the failure (for a "no success for a day" alert)
    last_good = value(second, "sparky_last_success_timestamp_seconds")
    assert last_good > value(first, "sparky_last_success_timestamp_seconds") > 0
    assert value(failed, "sparky_last_success_timestamp_seconds") == last_good


def test_a_metrics_file_that_cannot_be_written_never_hides_the_builds_outcome(tmp_path, capsys):
    """The file is written after the build, in a ``finally``: its failure must not replace
    the build's own error (a warning then), must not skip stopping the metrics server, and
    after a successful build is exit 2 naming the file (docs/metrics.md)."""
    root = copy_example(tmp_path)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the textfile folder should be")
    out = blocked / "sparky.prom"
    manifest = root / "sparky.toml"
    good = manifest.read_text()

    def build() -> tuple[int, str]:
        code = main(["-q", "build", str(root), "--metrics-file", str(out), "--metrics-port", "0"])
        err = capsys.readouterr().err
        url = re.search(r"metrics at (http://\S+)", err).group(1)
        with pytest.raises(OSError):  # the server was stopped (connection refused)
            urllib.request.urlopen(url, timeout=10)
        return code, err

    manifest.write_text(good + "\n[[sprite]]\nname = 3\n")
    code, err = build()
    assert code == 2 and "sprite[" in err  # the build's own error, located
    assert f"warning: cannot write metrics to {out}" in err

    manifest.write_text(good)
    code, err = build()
    assert code == 2 and f"cannot write metrics to {out}" in err and "warning" not in err
    assert (root / "build" / "sprites" / "sheets").is_dir()  # the build itself went through


GATE_PLUGIN = '''
import os
import time
from pathlib import Path

import numpy as np

from sparky_assets.generators.base import Generator


class GateGenerator(Generator):
    """Blank frames, made only once the test opens the gate (a file appears)."""

    name = "gate"
    doc = "Waits for $SPARKY_TEST_GATE/open (a test plugin)."
    needs_lock = False

    def cache_key(self, request, reads=None):
        return {"size": [request.width, request.height], "frames": len(request.frames)}

    def generate(self, requests, reads=None):
        gate = Path(os.environ["SPARKY_TEST_GATE"])
        (gate / "entered").write_text("")
        deadline = time.monotonic() + 300
        while not (gate / "open").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never opened the gate")
            time.sleep(0.02)
        return [[np.zeros((r.height, r.width, 4), np.uint8) for _ in r.frames] for r in requests]
'''


def test_build_serves_metrics_while_it_runs(tmp_path):
    site = tmp_path / "site"
    (site / "sparky_gate-1.0.dist-info").mkdir(parents=True)
    (site / "sparky_gate.py").write_text(textwrap.dedent(GATE_PLUGIN).lstrip())
    (site / "sparky_gate-1.0.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: sparky-gate\nVersion: 1.0\n")
    (site / "sparky_gate-1.0.dist-info/entry_points.txt").write_text(
        "[sparky_assets.generators]\ngate = sparky_gate:GateGenerator\n"
    )
    root = tmp_path / "gated"
    root.mkdir()
    (root / "sparky.toml").write_text(
        '[project]\nname = "gated"\npalette = "pico-8"\n\n'
        '[[sprite]]\nname = "held"\ngenerator = "gate"\nsize = 8\nanimations = { idle = 3 }\n\n'
        '[[sprite]]\nname = "free"\nsize = 8\n'
    )
    gate = tmp_path / "gate"
    gate.mkdir()
    build = Process(
        "build",
        str(root),
        "--metrics-port",
        "0",
        env={"PYTHONPATH": os.pathsep.join([str(REPO), str(site)]), "SPARKY_TEST_GATE": str(gate)},
    )
    try:
        url = build.wait_line(r"metrics at (http://127\.0\.0\.1:\d+/metrics)").group(1)
        deadline = time.monotonic() + 120
        while not (gate / "entered").exists():
            assert build.process.poll() is None and time.monotonic() < deadline, build.seen
            time.sleep(0.05)
        during = scrape(url)  # the build is held inside the generator
        assert ok_builds(during) == 0
        assert value(during, "sparky_info", command="build", project="gated", version="0.1.0") == 1
        (gate / "open").write_text("")
        assert build.process.wait(120) == 0, build.seen
    finally:
        build.stop()
    with pytest.raises(OSError):  # the exporter stopped with the build
        scrape(url)


def test_a_non_loopback_metrics_host_needs_allow_remote(tmp_path, capsys):
    root = copy_example(tmp_path)
    code = main(["watch", str(root), "--metrics-port", "0", "--metrics-host", "0.0.0.0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "refusing to serve metrics on '0.0.0.0'" in err and "--allow-remote" in err
    assert main(["build", str(root), "--metrics-port", "0", "--metrics-host", "192.0.2.1"]) == 2


def test_a_missing_prometheus_client_is_a_clear_error(tmp_path):
    blocker = tmp_path / "blocker" / "prometheus_client"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed here')\n")
    root = copy_example(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "sparky_assets", "build", str(root), "--metrics-file", str(tmp_path / "m.prom")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(REPO)])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'sparky-assets[metrics]'" in result.stderr
    assert not (root / "build").exists(), "nothing is built when metrics were asked for and cannot be given"


def test_registries_are_private_and_the_publisher_counts_peers(tmp_path):
    root = copy_example(tmp_path)
    builder = Builder(root)
    report = builder.build(BuildOptions())
    one, two = BuildMetrics("a"), BuildMetrics("b")
    one.record_build(report, builder.last_project)
    one_text = samples(_exposition(one))
    assert ok_builds(one_text) == 1 and ok_builds(samples(_exposition(two))) == 0

    publisher = Publisher("tcp://127.0.0.1:0", "p", heartbeat_ms=100)
    context = zmq.Context()
    peers = [context.socket(zmq.SUB) for _ in range(2)]
    try:
        two.attach_publisher(publisher)
        for peer in peers:
            peer.connect(publisher.last_endpoint)

        def subscribers():
            return value(samples(_exposition(two)), "sparky_hotreload_subscribers")

        _until(lambda: subscribers() == 2)
        peers[0].close(0)
        _until(lambda: subscribers() == 1)
        hellos = value(samples(_exposition(two)), "sparky_hotreload_messages_published_total", type="hello")
        assert hellos == publisher.sent_counts()["hello"] >= 1
    finally:
        for peer in peers:
            peer.close(0)
        context.term()
        publisher.close()


def _exposition(metrics: BuildMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def _until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
