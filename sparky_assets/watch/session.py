"""``sparky-assets watch``: rebuild on change, publish hot-reload messages.

The change source is injectable: :class:`FileWatcher` (watchdog) puts changed paths
on a queue; :class:`WatchSession` takes batches off it and runs an incremental build
with a long-lived
:class:`~sparky_assets.pipeline.engine.Builder` (generators and their models stay
loaded), and publishes ``build-started`` → ``assets-changed`` (only when files changed)
→ ``build-finished``, or ``build-failed`` with every diagnostic. A failed build never
stops the session and leaves the last good outputs in place. After every build the
watched files are exactly the files that build read (its read context's record), so a
new kind of input — a plugin's own file — is watched without an edit here.

Latency (edit → ``assets-changed``): a change that finds the session idle is built at
once (leading edge: no debounce wait); only changes that pile up while a build runs are
a burst, debounced into one follow-up build (``debounce_s`` of quiet). A batch whose
files all still have the content the last build read (an editor's touch, a save of the
same bytes, the second event of one save) builds nothing. A leading-edge build that
read a half-written file is corrected by the follow-up its later events cause (waiting
for inotify's close-write instead was measured: watchdog delivers it ~240 ms late).
``assets-changed`` goes out as soon as the build returns (its outputs switched over);
the watch set, cache writes and pruning, the preview hook and logging come after it.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..errors import Diagnostic, SparkyError, raised_by_an_interrupt
from ..hotreload.protocol import STAGES, Asset, BuildError, ProtocolError
from ..hotreload.publisher import Publisher
from ..manifest.load import find_manifest
from ..metrics import chain
from ..pipeline.engine import Builder, BuildOptions
from ..pipeline.report import BuildReport


def watched_files(manifest_path: Path, builder: Builder) -> set[Path]:
    """Exactly what the last build read (recorded by its read context, whether it
    succeeded or not: a file a failed build looked for and did not find is watched
    too), plus the manifest itself (a build that could not even find it read nothing)."""
    return {manifest_path.resolve(), *builder.last_reads.paths()}


def protocol_assets(report: BuildReport) -> list[Asset]:
    """A build's changed files as the protocol's ``assets-changed`` entries (what ``watch`` publishes)."""
    return [
        Asset(
            target=a.target,
            path=a.path,
            engine_path=a.engine_path,
            kind=a.kind,
            change=a.change,
            hash=a.hash,
            sprites=a.sprites,
            atlas=a.atlas,
        )
        for a in report.assets
    ]


class FileWatcher(FileSystemEventHandler):
    """A watchdog observer on the folders of the watched files and on each of their
    ancestors up to the project root (all non-recursive), so that a folder created,
    deleted or replaced after the watch started is noticed: on any folder event the
    watches are re-laid. Changes of watched files (writes, atomic replaces, creations,
    deletions) go onto ``changes``.

    Watches are re-laid on a thread of the watcher's own, never in the observer's event
    callback: watchdog calls :meth:`on_any_event` holding its observer lock, which
    ``schedule``/``unschedule`` take too, so a callback waiting for :attr:`_lock` while
    :meth:`set_files` (holding it) waits for the observer lock deadlocked both — and no
    change was seen again."""

    def __init__(self, changes: queue.Queue[Path], root: Path):
        self.changes = changes
        self.root = Path(root)
        self.observer = Observer()
        self.files: set[Path] = set()
        self._watches: dict[Path, object] = {}
        self._lock = threading.Lock()
        self._folder_events: queue.Queue[list[Path] | None] = queue.Queue()
        self._relayer = threading.Thread(target=self._relay_loop, name="sparky-watch-relay", daemon=True)
        self.observer.start()
        self._relayer.start()

    def _folders(self) -> set[Path]:
        """Every existing folder from each watched file's folder up to the project root,
        and each watched folder itself (one whose listing the build read)."""
        folders = set()
        for f in self.files:
            for folder in (f, *f.parents):
                if folder != self.root and self.root not in folder.parents:
                    break
                if folder.is_dir():
                    folders.add(folder)
        return folders

    def set_files(self, files: Iterable[Path]) -> None:
        with self._lock:
            self.files = {Path(f) for f in files}
            self._relay()

    def _relay(self) -> None:
        wanted = self._folders()
        for folder in list(self._watches):
            if folder not in wanted or not folder.is_dir():
                try:
                    self.observer.unschedule(self._watches.pop(folder))
                except (KeyError, ValueError):
                    pass
        for folder in wanted - set(self._watches):
            try:
                self._watches[folder] = self.observer.schedule(self, str(folder), recursive=False)
            except OSError:  # vanished between the check and the watch; the next event re-lays
                pass

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [
            Path(p if isinstance(p, str) else p.decode())
            for p in (event.src_path, getattr(event, "dest_path", ""))
            if p
        ]
        if event.is_directory:
            if event.event_type == "modified":  # a file inside changed: handled by its own event
                return
            self._folder_events.put(paths)
            return
        for path in paths:
            if path in self.files:
                self.changes.put(path)
            elif path.parent in self.files:  # a file added to, removed from or renamed in a listed folder
                self.changes.put(path.parent)

    def _relay_loop(self) -> None:
        """Re-lay the watches after each folder event, then queue the watched files the
        folder holds: a folder holding watched files appeared, vanished or moved (mv, git
        checkout, rm -r), which changes those files. Queued here, after the re-lay: a
        file written into a new folder before its watch was laid is built from there,
        and re-laying can drop the per-file events still queued for a removed watch."""
        while (paths := self._folder_events.get()) is not None:
            with self._lock:
                self._relay()
                files = list(self.files)
            for f in files:
                if any(p == f or p in f.parents or p.parent == f for p in paths):
                    self.changes.put(f)

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
        self._folder_events.put(None)
        self._relayer.join(timeout=5)


class WatchSession:
    def __init__(
        self,
        manifest_path: Path,
        publisher: Publisher,
        changes: queue.Queue[Path],
        *,
        debounce_s: float = 0.05,
        echo: Callable[..., None] = print,
        on_files: Callable[[set[Path]], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        on_build: Callable[[BuildReport | None, list[Diagnostic]], None] | None = None,
        fast_png: bool = True,
    ):
        """``on_build`` is told every finished build after its messages are out: the
        report, or ``None`` and the diagnostics of a failed build (the preview page).
        ``fast_png``: encode pages quickly (edit-time latency over bytes; the default)."""
        self.manifest_path = manifest_path
        self.root = manifest_path.parent
        self.publisher = publisher
        self.changes = changes
        self.debounce_s = debounce_s
        self.echo = echo
        self.on_files = on_files or (lambda files: None)
        self.on_build = on_build or (lambda report, errors: None)
        self.clock = clock
        self.fast_png = fast_png
        # not durable: a dev loop trades power-loss durability (fsync) for latency;
        # outputs are still switched over atomically and survive a crash or kill
        self.builder = Builder(manifest_path, durable=False, defer_prune=True)
        self.build_number = 0
        self.stop_event = threading.Event()
        self.building = False
        """Inside :meth:`Builder.build` (where :meth:`interrupt` may stop the session at once)."""

    def run(self) -> None:
        self.rebuild([])
        while not self.stop_event.is_set():
            self.step()

    def interrupt(self) -> None:
        """Stop the session (a signal handler's job: Ctrl-C, SIGTERM). Waiting for changes,
        or between a build and its housekeeping (messages, cache writes, the preview, the
        log line): the loop ends at its next turn, within ``wait_s``, with every step it
        began finished. Inside a build, or asked a second time: ``KeyboardInterrupt`` at
        once — a build is safe to abandon anywhere (outputs are switched over atomically,
        cache entries written whole). Never raised at an arbitrary point outside a build:
        an interrupt between two statements of library code can turn into another error —
        CPython 3.11's ``shutil.rmtree`` closes a folder's descriptor a second time when
        interrupted between its ``close`` and the flag that records it, which raises
        EBADF or closes a descriptor another thread has just opened."""
        again = self.stop_event.is_set()
        self.stop_event.set()
        if again or self.building:
            raise KeyboardInterrupt

    def step(self, wait_s: float = 0.2) -> BuildReport | None | bool:
        """One turn of the loop: wait up to ``wait_s`` for changes and build them.
        ``False`` when nothing was built (no change, or none that changed content);
        otherwise what :meth:`rebuild` returns."""
        batch = self.next_batch(wait_s)
        if not batch or self.stop_event.is_set() or self.builder.last_reads.same_content(batch):
            return False
        return self.rebuild(sorted({self._rel(p) for p in batch}))

    def next_batch(self, wait_s: float = 0.2) -> set[Path]:
        """The changed paths to build next. Changes already queued arrived while the last
        build ran: a burst, collected until ``debounce_s`` passes with no new one. With
        none queued the session is idle: the first change to arrive (within ``wait_s``)
        is built at once, with whatever else is already queued beside it."""
        batch = self._drain()
        if batch:
            while not self.stop_event.is_set():
                try:
                    batch.add(self.changes.get(timeout=self.debounce_s))
                except queue.Empty:
                    return batch
            return batch
        try:
            first = self.changes.get(timeout=wait_s)
        except queue.Empty:
            return set()
        return {first} | self._drain()

    def _drain(self) -> set[Path]:
        found = set()
        while True:
            try:
                found.add(self.changes.get_nowait())
            except queue.Empty:
                return found

    def _rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    def rebuild(self, trigger: list[str]) -> BuildReport | None:
        """One build and its messages. The watch set is updated *before* build-finished
        goes out, so an edit made as soon as a client sees it is never missed."""
        self.build_number += 1
        build = self.build_number
        started = self.clock()
        self.publisher.build_started(build, trigger)
        report, errors = None, []
        self.building = True
        try:
            report = self.builder.build(BuildOptions(fast_png=self.fast_png))
        except Exception as error:  # noqa: BLE001 - the watcher must survive any build bug
            if raised_by_an_interrupt(error):  # an error while a Ctrl-C or SIGTERM unwound the build
                raise KeyboardInterrupt from error
            if isinstance(error, SparkyError):
                errors = error.diagnostics
            else:
                errors = [Diagnostic(f"internal error: {type(error).__name__}: {error}", stage="build")]
        finally:
            self.building = False
        assets = []
        if report is not None:
            assets = protocol_assets(report)
            try:
                if assets:
                    self.publisher.assets_changed(build, assets)
            except ProtocolError as error:  # an output path the protocol cannot carry: say so, keep watching
                errors = [Diagnostic(f"cannot announce the changed files: {error}", stage="export")]
        self.on_files(watched_files(self.manifest_path, self.builder))
        duration_ms = int((self.clock() - started) * 1000)
        if errors:
            self._failed(build, errors, duration_ms)
            self.on_build(None, errors)
            return None
        self.publisher.build_finished(build, True, duration_ms, len(assets))
        self.on_build(report, [])
        try:
            self.builder.prune_cache()
        except SparkyError:  # a CLI build holds the project: prune next time
            pass
        what = ", ".join(trigger) if trigger else "initial build"
        counts = (
            f"{len(report.ran['generate'])} generated, {len(report.ran['process'])} processed, "
            f"{len(report.ran['pack'])} packed"
        )
        self.echo(f"[{build}] {what}: {len(assets)} files changed ({counts}) in {duration_ms} ms")
        for w in report.warnings:
            self.echo(f"  warning: {w}")
        return report

    def _failed(self, build: int, diagnostics: list[Diagnostic], duration_ms: int) -> None:
        for d in diagnostics:
            self.echo(f"error: {d.format()}", err=True)
        errors = [
            BuildError(
                message=d.format_message() if d.key is None else f"{d.key}: {d.format_message()}",
                file=self._rel(Path(d.file)) if d.file else None,
                line=d.line,
                column=d.column,
                sprite=d.sprite,
                stage=_stage(d.stage),
            )
            for d in diagnostics
        ]
        self.publisher.build_failed(build, errors)
        self.publisher.build_finished(build, False, duration_ms, 0)
        self.echo(f"[{build}] build failed ({len(errors)} problems); keeping the last good outputs")


def _stage(stage: str | None) -> str | None:
    return stage if stage in STAGES else None


def run_watch(
    path: str | Path,
    *,
    endpoint: str | None = None,
    allow_remote: bool = False,
    debounce_s: float = 0.05,
    echo: Callable[..., None] = print,
    on_build: Callable[[BuildReport | None, list[Diagnostic]], None] | None = None,
    fast_png: bool = True,
    metrics=None,
) -> None:
    """The CLI entry: publisher + real file watcher + session, until Ctrl-C. The whole
    manifest is validated (the normal loader) before anything binds: an invalid one is
    exit 2, and ``[hot_reload]`` values are never read from unchecked TOML.
    ``on_build``: see :class:`WatchSession`. ``metrics``
    (:class:`~sparky_assets.metrics.BuildMetrics`) is told every build and counts the
    publisher's messages and peers."""
    from .endpoint import bind_publisher

    manifest_path = find_manifest(path)
    publisher = bind_publisher(manifest_path, endpoint, allow_remote, echo)
    changes: queue.Queue[Path] = queue.Queue()
    watcher = FileWatcher(changes, manifest_path.parent)
    if metrics is not None:
        metrics.attach_publisher(publisher)

        def record(report: BuildReport | None, errors: list[Diagnostic]) -> None:
            if report is None:
                metrics.record_failure()
            else:
                metrics.record_build(report, session.builder.last_project)

        on_build = chain(record, on_build)
    session = WatchSession(
        manifest_path,
        publisher,
        changes,
        debounce_s=debounce_s,
        echo=echo,
        on_files=watcher.set_files,
        on_build=on_build,
        fast_png=fast_png,
    )
    echo(f"watching {manifest_path} — publishing on {publisher.last_endpoint} (Ctrl-C to stop)")

    def stop(signum, frame):  # Ctrl-C, and SIGTERM (docker stop, service managers)
        session.interrupt()

    previous = _handle_signals(stop)
    try:
        session.run()
    except KeyboardInterrupt:
        pass
    finally:
        echo("stopping")
        watcher.stop()
        publisher.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        echo("stopped; hot-reload socket closed")


def _handle_signals(handler) -> dict[int, object]:
    """Install ``handler`` for SIGTERM, and for SIGINT unless it is ignored (a process
    started in the background); returns the previous handlers by signal (none installed,
    and nothing returned, outside the main thread, where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    return previous
