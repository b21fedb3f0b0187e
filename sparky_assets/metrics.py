"""Prometheus metrics of ``watch`` and ``build`` (the ``[metrics]`` extra, ``prometheus-client``).

Everything is derived *after* a build from its :class:`~sparky_assets.pipeline.report.BuildReport`
(counts, stage timings, cache hits) and the resolved project (which generator made each
sprite, how many frames it has), plus three live sources read at scrape time: the
hot-reload publisher's message counts and connected peers, and torch's CUDA allocator when
a generator has already initialised CUDA in this process. Nothing is threaded through the
pipeline. One private :class:`~prometheus_client.CollectorRegistry` per
:class:`BuildMetrics`: no process-global state (two instances in one process, as in the
tests, never see each other's figures).

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` and ``_bytes``
units); the full list with meanings is in ``docs/metrics.md``. The HTTP exporter binds
loopback unless told otherwise, the rule ``watch`` applies to its hot-reload socket:
build metrics name the project and, through the cache and timing figures, say what is
being worked on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import Diagnostic, InvalidInput
from .pipeline.report import STAGES, BuildReport

# Build and stage durations: an incremental watch rebuild is milliseconds, a cold
# diffusion build of a large project is an hour.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

INSTALL_HINT = "install the metrics extra: pip install 'sparky-assets[metrics]'"


def _prometheus():
    try:
        import prometheus_client
    except ImportError:
        raise InvalidInput(
            Diagnostic(
                "--metrics-port/--metrics-file need prometheus-client, which is not installed", hint=INSTALL_HINT
            )
        ) from None
    return prometheus_client


class BuildMetrics:
    """The metrics of one ``watch`` or ``build`` process.

    Call :meth:`record_build` after every successful build, :meth:`record_failure` after a
    failed one, :meth:`attach_publisher` once the hot-reload socket is bound; serve them
    with :meth:`serve` or write them with :meth:`write_textfile`."""

    def __init__(self, project: str = "", command: str = "watch"):
        prometheus = _prometheus()
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        from . import __version__

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Info("sparky", "The sparky-assets process these metrics come from.", registry=r).info(
            {"version": __version__, "command": command, "project": project}
        )
        self.builds = Counter("sparky_builds", "Builds finished, by result (ok, failed).", ["result"], registry=r)
        for result in ("ok", "failed"):
            self.builds.labels(result)  # both series exist from the start, at 0
        self.build_seconds = Histogram(
            "sparky_build_duration_seconds", "Wall time of successful builds.", buckets=DURATION_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            "sparky_stage_duration_seconds",
            "Seconds each build spent in a stage, excluding the stages it asked for (exclusive timing).",
            ["stage"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.cache_hits = Counter(
            "sparky_cache_hits", "Stage items taken from the cache (or the lock).", ["stage"], registry=r
        )
        self.cache_misses = Counter("sparky_cache_misses", "Stage items computed.", ["stage"], registry=r)
        for stage in STAGES:
            self.cache_hits.labels(stage)
            self.cache_misses.labels(stage)
        self.generate_seconds = Counter(
            "sparky_generate_seconds", "Seconds spent generating sprites (the generate stage).", registry=r
        )
        self.generated_sprites = Counter(
            "sparky_generated_sprites",
            "Sprites generated (not from cache or lock), by generator.",
            ["generator"],
            registry=r,
        )
        self.generated_images = Counter(
            "sparky_generated_images", "Frames (images) generated, by generator.", ["generator"], registry=r
        )
        self.seconds_per_sprite = Gauge(
            "sparky_last_generate_seconds_per_sprite",
            "Generation seconds per sprite in the last build that generated any.",
            registry=r,
        )
        self.seconds_per_image = Gauge(
            "sparky_last_generate_seconds_per_image",
            "Generation seconds per frame in the last build that generated any.",
            registry=r,
        )
        self.images_per_second = Gauge(
            "sparky_last_generate_images_per_second",
            "Frames generated per second of generation in the last build that generated any.",
            registry=r,
        )
        self.files_changed = Counter(
            "sparky_output_files_changed", "Output files added, modified or removed by builds.", ["change"], registry=r
        )
        for change in ("added", "modified", "removed"):
            self.files_changed.labels(change)
        self.last_success = Gauge(
            "sparky_last_success_timestamp_seconds", "Unix time of the last successful build.", registry=r
        )
        self.progress_done = Gauge(
            "sparky_build_progress_done", "Items the running build has finished in a stage.", ["stage"], registry=r
        )
        self.progress_planned = Gauge(
            "sparky_build_progress_planned", "Items the running build computes in a stage.", ["stage"], registry=r
        )
        self._publisher = None
        self._succeeded = False
        r.register(_LiveCollector(self, prometheus))
        self._server = None
        self._server_thread = None

    # ------------------------------------------------------------------ recording

    def record_build(self, report: BuildReport, project=None) -> None:
        """Count one successful build. ``project`` (the builder's ``last_project``) says
        which generator made each generated sprite and how many frames it has.
        ``sparky_builds_total`` moves last: a scrape that sees the build counted sees
        all of its figures."""
        self.build_seconds.observe(report.duration_s)
        for stage in STAGES:
            self.stage_seconds.labels(stage).observe(report.stage_s.get(stage, 0.0))
            self.cache_hits.labels(stage).inc(report.cached.get(stage, 0))
            self.cache_misses.labels(stage).inc(len(report.ran.get(stage, ())))
        for asset in report.assets:
            self.files_changed.labels(asset.change).inc()
        generated = report.ran.get("generate", [])
        generate_s = report.stage_s.get("generate", 0.0)
        self.generate_seconds.inc(generate_s)
        if generated:
            images = 0
            for name in generated:
                plan = project.sprites.get(name) if project is not None else None
                generator = plan.spec.generator if plan is not None else "unknown"
                frames = len(plan.request.frames) if plan is not None else 1
                self.generated_sprites.labels(generator).inc()
                self.generated_images.labels(generator).inc(frames)
                images += frames
            self.seconds_per_sprite.set(generate_s / len(generated))
            self.seconds_per_image.set(generate_s / images)
            if generate_s > 0:
                self.images_per_second.set(images / generate_s)
        self.last_success.set(time.time())
        self._succeeded = True
        self.builds.labels("ok").inc()

    def record_failure(self) -> None:
        self.builds.labels("failed").inc()

    def on_progress(self, stage: str, done: int, total: int) -> None:
        """The builder's progress callback: live figures while a long build runs."""
        self.progress_done.labels(stage).set(done)
        self.progress_planned.labels(stage).set(total)

    def attach_publisher(self, publisher) -> None:
        """Report ``publisher``'s messages and connected peers (starts its peer count)."""
        publisher.track_subscribers()
        self._publisher = publisher

    # ------------------------------------------------------------------ exposing

    def serve(self, host: str, port: int, allow_remote: bool = False) -> str:
        """Serve ``/metrics`` on ``host:port`` (port 0: any free one) from a background
        thread; returns the URL. A non-loopback host needs ``allow_remote``."""
        from prometheus_client import start_http_server

        from .hotreload.publisher import is_loopback_endpoint

        bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
        if not is_loopback_endpoint(f"tcp://{bracketed}:{port}") and not allow_remote:
            raise InvalidInput(
                Diagnostic(
                    f"refusing to serve metrics on {host!r}: expected 127.0.0.1, localhost or ::1",
                    key="--metrics-host",
                    hint="pass --allow-remote to expose them (no authentication; they name the project)",
                )
            )
        try:
            self._server, self._server_thread = start_http_server(port, addr=host.strip("[]"), registry=self.registry)
        except OSError as exc:
            raise InvalidInput(
                Diagnostic(
                    f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                    key="--metrics-port",
                    hint="pick another port, or 0 for any free one",
                )
            ) from None
        return f"http://{bracketed}:{self._server.server_port}/metrics"

    def write_textfile(self, path: Path) -> None:
        """Write the metrics in the text format, atomically (a temporary file renamed
        over ``path``), for node-exporter's textfile collector. A process without a
        successful build keeps the previous file's ``sparky_last_success_timestamp_seconds``,
        so a failed CI build does not erase when the last good one was."""
        from prometheus_client import write_to_textfile

        path = Path(path)
        if not self._succeeded:
            previous = _previous_success(path)
            if previous:
                self.last_success.set(previous)
        try:
            write_to_textfile(str(path), self.registry)
        except OSError as exc:
            raise InvalidInput(
                Diagnostic(f"cannot write metrics to {path}: {exc.strerror or exc}", key="--metrics-file")
            ) from None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _previous_success(path: Path) -> float:
    """``sparky_last_success_timestamp_seconds`` in an earlier metrics file, else 0."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "sparky_last_success_timestamp_seconds":
                    return float(sample.value)
    except (OSError, ValueError, UnicodeDecodeError):
        pass  # no file, or not one of ours: nothing to carry over
    return 0.0


class _LiveCollector:
    """Figures read at scrape time: hot-reload messages and peers, CUDA memory."""

    def __init__(self, metrics: BuildMetrics, prometheus):
        self.metrics = metrics
        self.core = prometheus.metrics_core

    def describe(self):
        return []  # dynamic: the GPU families exist only once CUDA is in use

    def collect(self):
        core = self.core
        publisher = self.metrics._publisher
        if publisher is not None:
            sent = core.CounterMetricFamily(
                "sparky_hotreload_messages_published", "Hot-reload messages sent, by type.", labels=["type"]
            )
            for kind, count in sorted(publisher.sent_counts().items()):
                sent.add_metric([kind], count)
            yield sent
            yield core.GaugeMetricFamily(
                "sparky_hotreload_subscribers",
                "Peers connected to the hot-reload socket (engine bridges, `listen`).",
                value=publisher.subscribers,
            )
        yield from _cuda_memory(core)


def _cuda_memory(core) -> list:
    """torch's CUDA allocator figures per device, only when this process already uses
    CUDA: metrics never import torch or create a CUDA context themselves."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return []
        allocated = core.GaugeMetricFamily(
            "sparky_gpu_memory_allocated_bytes", "CUDA memory held by tensors (torch).", labels=["device"]
        )
        reserved = core.GaugeMetricFamily(
            "sparky_gpu_memory_reserved_bytes", "CUDA memory reserved by torch's caching allocator.", labels=["device"]
        )
        total = core.GaugeMetricFamily("sparky_gpu_memory_total_bytes", "The device's memory.", labels=["device"])
        for index in range(torch.cuda.device_count()):
            device = f"cuda:{index}"
            allocated.add_metric([device], torch.cuda.memory_allocated(index))
            reserved.add_metric([device], torch.cuda.memory_reserved(index))
            total.add_metric([device], torch.cuda.get_device_properties(index).total_memory)
        return [allocated, reserved, total]
    except Exception:  # noqa: BLE001 - a scrape never fails because the GPU is in a bad state
        return []


def chain(*callbacks: Callable | None) -> Callable | None:
    """One callback calling each of ``callbacks`` that is not None, in order."""
    present = [c for c in callbacks if c is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def call(*args, **kwargs):
        for callback in present:
            callback(*args, **kwargs)

    return call
