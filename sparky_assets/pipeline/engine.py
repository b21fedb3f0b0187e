"""The build engine: manifest → resolved project → the stage graph → files on disk.

:func:`resolve` turns the loaded manifest into generation requests and generate keys
(every file read goes through the build's :class:`~sparky_assets.reads.ReadContext`);
:class:`Builder` runs builds (kept warm by ``watch``). A build runs in three phases:
(1) generate every locked sprite whose lock entry is missing or stale (one batch per
generator: diffusion batches on the GPU), (2) walk the stage graph
(:mod:`.stages`: generate → process → pack → export, each keyed by what it read)
from the exports down with the generic :class:`~.graph.Evaluator`, so a no-op build
only computes keys and finds them cached, (3) write what changed (:mod:`.write`).
With a parallel executor, (1) and (2) overlap: the walk takes each generated sprite as
it needs it (:class:`~.stages.GenerationBatch`).
``--dry-run`` and :func:`check` are the same walk with the ``plan`` action. Outputs
are switched over together (:mod:`.outputs`); one build per project at a time
(:class:`ProjectLock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import registry
from ..errors import Diagnostic, DiagnosticSink, InvalidInput, ProjectLocked, suggest
from ..export.base import OutputFile, encode_png
from ..export.godot import godot_uid
from ..export.registry import always_on
from ..generators.base import FrameSpec, GenerationRequest
from ..manifest.load import load_manifest
from ..manifest.locate import KeyLocator
from ..manifest.schema import AtlasSpec, ExportSpec, Manifest, SpriteSpec
from ..palettes import Palette
from ..palettes.load import load_palette
from ..process.quantize import DIRECT_PIXELS
from ..reads import ReadContext, ensure_reads
from ..tiles.build import build_tileset
from ..tiles.formats import bevy_ron, godot_tres, tiled_tsx
from . import safepath
from .cache import CACHE_DIR, StageCache, cache_dir, cache_max_bytes
from .executor import Executor, warm_worker
from .fsutil import canonical_hash
from .graph import Evaluator
from .outputs import OutputLedger
from .report import BuildReport, stage_timer, timed_stage
from .safepath import STATE_DIR
from .stages import ENGINE_VERSION, StageContext, Stages, export_all
from .store import GeneratedStore
from .write import write_outputs


@dataclass(frozen=True)
class BuildOptions:
    frozen: bool = False
    """Use only locked generated art; fail if any locked sprite would need generating."""
    force: bool = False
    """Ignore the stage cache (locked generated art is still reused: see ``regenerate``)."""
    dry_run: bool = False
    only: tuple[str, ...] = ()
    regenerate: tuple[str, ...] = ()
    """Sprites to generate again even though their lock entry is current."""
    fast_png: bool = False
    """Encode pages quickly (a little larger) instead of as small as possible (``--fast-png``)."""


@dataclass
class SpritePlan:
    spec: SpriteSpec
    palette: Palette
    request: GenerationRequest
    generator: Any
    gen_key: str
    lockable: bool
    inputs: dict[str, Any]
    """What made it, recorded in sparky.lock to explain staleness under --frozen."""
    manifest_key: str = ""
    """Hash of :func:`manifest_inputs`."""


@dataclass
class ResolvedProject:
    manifest: Manifest
    sprites: dict[str, SpritePlan]
    atlases: list[AtlasSpec]
    exports: list[ExportSpec]
    locator: Callable[[str], tuple[int | None, int | None]] = field(default=lambda key: (None, None))
    plan: BuildReport | None = None
    """What a build would do (set by :func:`check`)."""


_HELD_LOCKS: set[int] = set()
"""The descriptors of the build locks this process holds."""


def _release_inherited_locks() -> None:
    """In a process forked from a build (a ``--jobs`` worker): close the build locks'
    descriptors it inherited. A ``flock`` belongs to the open file, which a forked copy
    shares: a worker outliving a killed build would keep the project locked."""
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_release_inherited_locks)


class ProjectLock:
    """An exclusive ``flock`` on ``.sparky/build.lock`` for the duration of a build (held
    by this process only: a forked child closes its copy, see :func:`_release_inherited_locks`)."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "build.lock"
        self.fd: int | None = None

    def __enter__(self) -> ProjectLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = safepath.open_state_file(self.path)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            self.fd = None
            raise ProjectLocked(
                Diagnostic(
                    f"another build of this project is running (pid {holder})",
                    file=str(self.path),
                    hint="wait for it to finish, or stop it",
                )
            ) from None
        _HELD_LOCKS.add(self.fd)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            _HELD_LOCKS.discard(self.fd)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# ------------------------------------------------------------------ resolve


def manifest_inputs(manifest: Manifest, s: SpriteSpec, frames: tuple[FrameSpec, ...]) -> dict[str, Any]:
    """What the manifest says about a sprite's generation (no file contents, no models).
    Its hash is the lock's ``manifest_key``: what ``--frozen`` compares, so a CI machine
    needs neither the generator's models nor its packages (nor the palette: under
    ``--frozen`` a palette edit re-quantizes the locked art, even for a generator that
    ``uses_palette``)."""
    return {
        "generator": s.generator,
        "prompt": s.prompt,
        "seed": s.seed,
        "size": [s.width, s.height],
        "frames": [[f.animation, f.index] + ([f.direction] if f.direction else []) for f in frames],
        "options": dict(s.options),
        "settings": dict(manifest.generators.get(s.generator, {})),
    }


def resolve(
    manifest: Manifest,
    frozen_store: GeneratedStore | None = None,
    reads: ReadContext | None = None,
    memo: dict[str, tuple] | None = None,
) -> ResolvedProject:
    """Make generation requests, validate every sprite with its generator and compute
    its generate key (files read through ``reads``). Raises ``InvalidInput`` with every problem.

    With ``frozen_store`` (``--frozen``), a sprite of a locked generator is neither
    validated nor keyed by its generator: its lock entry is used when the manifest
    inputs match, and the build reports it stale otherwise.

    ``memo`` (a warm Builder's, updated in place): a sprite's plan from the last build is
    used again when its spec, palette and generator table are the very objects it was
    made from (the manifest or that palette was not reloaded) and every file its
    generator read for it is unchanged; those reads are recorded again. Only
    successfully resolved sprites are kept."""
    sink = DiagnosticSink()
    file = str(manifest.path)
    locators: list[KeyLocator] = []

    def locate(key: str) -> tuple[int | None, int | None]:
        if not locators:  # read the text only when a diagnostic needs a position
            locators.append(KeyLocator(manifest.path.read_text(encoding="utf-8", errors="replace")))
        return locators[0].locate(key)

    def located(d: Diagnostic, base: str, sprite: str | None) -> Diagnostic:
        key = d.key or ""
        if key and not key.startswith(("generator.", "project.", "sprite[", "atlas[", "export.")):
            key = f"{base}.{key}"
        key = key or base
        own = d.file is None or d.file == file
        line, col = locate(key) if own and d.line is None else (d.line, d.column)
        return replace(
            d,
            file=d.file or file,
            line=line,
            column=col,
            key=key,
            sprite=sprite or d.sprite,
            stage=d.stage or "manifest",
        )

    reads = ensure_reads(reads)
    palettes = manifest.palettes
    plans: dict[str, SpritePlan] = {}
    settings_hashes: dict[str, str] = {}
    parsed_settings: dict[str, Any] = {}  # each generator's table, parsed once per build
    for s in manifest.sprites:
        base = s.key
        try:
            gen = registry.generator(s.generator)
        except InvalidInput as exc:
            for d in exc.diagnostics:
                sink.add(located(replace(d, key=f"{base}.generator"), base, s.name))
            continue
        except ImportError as exc:
            sink.add(
                located(
                    Diagnostic(f"generator '{s.generator}' cannot be loaded: {exc}", key=f"{base}.generator"),
                    base,
                    s.name,
                )
            )
            continue
        palette = palettes.get(s.palette)
        table = manifest.generators.get(s.generator)
        if memo is not None and frozen_store is None:
            hit = memo.get(s.name)
            if hit is not None and hit[0] is s and hit[1] is palette and hit[2] is table and hit[3].unchanged():
                reads.merge(hit[3])
                plans[s.name] = hit[4]
                continue
            memo.pop(s.name, None)
        frames = tuple(FrameSpec(a.name, i, a.direction) for a in s.animations for i in range(a.frames)) or (
            FrameSpec("", 0),
        )
        if s.generator not in parsed_settings:
            try:
                parsed_settings[s.generator] = gen.parse_settings(manifest.generators.get(s.generator, {}))
            except InvalidInput as exc:
                for d in exc.diagnostics:
                    sink.add(located(d, f"generator.{s.generator}", None))
                parsed_settings[s.generator] = None
        if parsed_settings[s.generator] is None:
            continue
        request = GenerationRequest(
            sprite=s.name,
            width=s.width,
            height=s.height,
            frames=frames,
            seed=s.seed,
            root=manifest.root,
            prompt=s.prompt,
            # the palette reaches a generator only if it asks (and then it is part of the
            # generate key); otherwise a palette change re-quantizes without regenerating
            palette=palette.colors if palette and gen.uses_palette else (),
            options=dict(s.options),
            settings=parsed_settings[s.generator],
        )
        lockable = gen.needs_lock
        described = manifest_inputs(manifest, s, frames)
        manifest_key = canonical_hash({"engine": ENGINE_VERSION, **described})
        if s.generator not in settings_hashes:
            settings_hashes[s.generator] = canonical_hash(described["settings"])[:16]
        inputs = {
            k: v
            for k, v in {
                "generator": s.generator,
                "prompt": s.prompt,
                "seed": s.seed,
                "size": [s.width, s.height],
                "frames": len(frames),
                "options": canonical_hash(described["options"])[:16] if s.options else None,
                "settings": settings_hashes[s.generator],
            }.items()
            if v is not None
        }
        if frozen_store is not None and lockable:
            entry = frozen_store.entries.get(s.name)
            gen_key = entry.key if entry is not None and entry.manifest_key == manifest_key else ""
            if palette is not None:
                plans[s.name] = SpritePlan(s, palette, request, gen, gen_key, lockable, inputs, manifest_key)
            continue
        own_reads = ReadContext()  # what the generator reads for this sprite (kept with the memo)
        try:
            problems = gen.validate(request, own_reads)
            for d in problems:
                sink.add(located(d, base, s.name))
            if problems or palette is None:
                continue
            gen_key = canonical_hash(
                {
                    "stage": "generate",
                    "engine": ENGINE_VERSION,
                    "generator": s.generator,
                    "key": gen.cache_key(request, own_reads),
                }
            )
        finally:
            reads.merge(own_reads)
        plans[s.name] = SpritePlan(s, palette, request, gen, gen_key, lockable, inputs, manifest_key)
        if memo is not None and frozen_store is None:
            memo[s.name] = (s, palette, table, own_reads, plans[s.name])
    if memo is not None and frozen_store is None:
        for name in [n for n in memo if n not in plans]:  # sprites gone from the manifest
            del memo[name]
    for d in safepath.inputs_in_outputs(manifest, reads.paths()):  # models, LoRAs, sources in an output folder
        sink.add(located(d, d.key or "project.out", d.sprite))
    sink.raise_if_any()

    return ResolvedProject(manifest, plans, list(manifest.atlases), list(manifest.exports), locate)


def check(path: str | Path) -> ResolvedProject:
    """Validate the manifest and every file it refers to, then walk the stage graph the
    way ``build --dry-run`` does (every key, every cache lookup; nothing computed or
    written), so ``check`` and a dry run are one evaluator and cannot disagree. The
    plan is on the returned project (``plan``)."""
    reads = ReadContext()
    manifest = load_manifest(path, reads)
    project = resolve(manifest, reads=reads)
    store = GeneratedStore(manifest.root)
    report = BuildReport(manifest.name, dry_run=True)
    stale = {n for n, plan in project.sprites.items() if plan.lockable and lock_is_stale(store, plan)}
    cache = StageCache(cache_dir(manifest.root))
    ctx = StageContext(manifest, project, BuildOptions(dry_run=True), cache, store, report, reads, fresh=stale)
    export_all(Evaluator(report, action="plan"), Stages.of(ctx), project.atlases, build_targets(manifest))
    project.plan = report
    return project


def lock_is_stale(store: GeneratedStore, plan: SpritePlan, regenerate: tuple[str, ...] = ()) -> bool:
    """Whether a locked sprite must be generated: asked to, or its lock entry is missing,
    made from other inputs, or its stored file changed."""
    name = plan.spec.name
    if name in regenerate:
        return True
    entry = store.entries.get(name)
    return entry is None or entry.key != plan.gen_key or not store.verify(name)


# ------------------------------------------------------------------- build


class Builder:
    """Runs builds of one project; keeps generators (and their models) warm between
    builds, which is what ``watch`` relies on."""

    def __init__(
        self,
        manifest_path: str | Path,
        *,
        on_progress: Callable[[str, int, int], None] | None = None,
        durable: bool = True,
        warm_frames: int = 50_000,
        defer_prune: bool = False,
        executor: Executor | None = None,
    ):
        """``durable``: fsync outputs before switching them over (survives power loss,
        not only crashes); ``watch`` turns it off for latency. ``warm_frames``: how many
        decoded frames to keep in memory between builds of this Builder. ``executor``:
        where batches of work run (:mod:`.executor`; default: this process) — kept, with
        its pool or cluster connection, until :meth:`close`."""
        self.manifest_path = Path(manifest_path)
        self.executor = executor or Executor()
        self.on_progress = on_progress
        self.durable = durable
        self.defer_prune = defer_prune
        self.warm = _WarmState(warm_frames)
        self._loaded: tuple[Manifest, ReadContext, dict[str, ReadContext]] | None = None
        self._last_cache: StageCache | None = None
        self._last_ledger: OutputLedger | None = None
        self.last_project: ResolvedProject | None = None
        """The project the last successful build resolved."""
        self.last_reads = ReadContext()
        """Every file the last build read, successful or not (``watch`` watches these)."""

    def _load_manifest(self, reads: ReadContext) -> Manifest:
        """The loaded manifest, reused while every file read to load it (the manifest,
        palette files, images read for their size) is unchanged — a watch rebuild after a
        sprite's PNG changed does not re-validate a big manifest."""
        if self._loaded is not None:
            reloaded = self._reload_palettes(*self._loaded)
            if reloaded is not None:
                self._loaded = reloaded
                reads.merge(reloaded[1])
                return reloaded[0]
        self._loaded = None
        loading = ReadContext()
        try:
            manifest = load_manifest(self.manifest_path, loading)
        finally:
            reads.merge(loading)
        self._loaded = (manifest, loading, _palette_reads(manifest))
        return manifest

    @staticmethod
    def _reload_palettes(manifest: Manifest, loaded_with: ReadContext, palette_reads: dict[str, ReadContext]):
        """The loaded manifest when nothing it was loaded from changed; when only palette
        files changed (a palette being edited under ``watch``), the manifest with just
        those palettes loaded again. None: load it all again (anything else changed, or a
        palette no longer loads: the full load reports it at its manifest key)."""
        changed = set(loaded_with.changed())
        if not changed:
            return manifest, loaded_with, palette_reads
        affected = {value for value, r in palette_reads.items() if changed & r.paths()}
        if not affected or changed - set().union(*(palette_reads[v].paths() for v in affected)):
            return None
        palettes, palette_reads = dict(manifest.palettes), dict(palette_reads)
        reads = loaded_with.without(set().union(*(palette_reads[v].paths() for v in affected)))
        for value in sorted(affected):
            palette_reads[value] = ReadContext()
            try:
                palettes[value] = load_palette(value, manifest.root, reads=palette_reads[value])
            except InvalidInput:
                return None
            reads.merge(palette_reads[value])
        return replace(manifest, palettes=palettes), reads, palette_reads

    def build(self, options: BuildOptions = BuildOptions()) -> BuildReport:
        started = time.perf_counter()
        folder = self.manifest_path if self.manifest_path.is_dir() else self.manifest_path.parent
        # a first build hands work over for sure: its workers get ready while it reads and plans
        first = (
            self.executor.parallel and not options.dry_run and self._loaded is None and not cache_dir(folder).is_dir()
        )
        if first:
            self.executor.start_early()
        reads = self.last_reads = ReadContext()
        manifest = self._load_manifest(reads)
        if first:
            self.executor.prepare(warm_worker, worker_warmup(manifest, self.executor.slots()))
        cache_max_bytes()  # a bad SPARKY_CACHE_MAX_MB is refused before anything is written
        state = safepath.bookkeeping_dir(manifest.root, STATE_DIR)
        with ProjectLock(state):
            run = _Build(
                manifest, state, options, self.on_progress, self.warm, self.durable, reads, prune=not self.defer_prune
            )
            run.executor = self.executor
            self._last_cache, self._last_ledger = run.cache, run.ledger
            self.last_project = None
            try:
                report = run.run()
            except BaseException:
                self.warm.store = None  # it may hold this build's uncommitted generated art
                raise
            self.last_project = run.project
        report.duration_s = time.perf_counter() - started
        return report

    def close(self) -> None:
        """Stop the executor's workers (a pool) or disconnect from its cluster."""
        self.executor.close()

    def prune_cache(self) -> int:
        """Write the last build's deferred cache entries and evict old ones (``watch``
        calls this once its messages are out, keeping both off the hot-reload path)."""
        if self._last_cache is None:
            return 0
        with ProjectLock(self._last_cache.root.parent):
            if self._last_ledger is not None:
                self._last_ledger.clean_staging()
            self._last_cache.flush()
            return self._last_cache.prune()


def _palette_reads(manifest: Manifest) -> dict[str, ReadContext]:
    """The files each of the manifest's palette files was loaded from (read once more
    into a context of its own; built-in palettes read nothing)."""
    found = {}
    for value in manifest.palettes:
        reads = ReadContext()
        try:
            load_palette(value, manifest.root, reads=reads)
        except InvalidInput:
            continue  # changed since the manifest loaded: the next build loads it all again
        if reads.record:
            found[value] = reads
    return found


class _WarmState:
    """What a long-lived Builder (``watch``) keeps between builds: processed frames by
    key (bounded, least recently used dropped first) and the parsed lock file."""

    def __init__(self, max_frames: int):
        self.max_frames = max_frames
        self.processed: dict[str, list[np.ndarray]] = {}
        self.resolved: dict[str, tuple] = {}
        """:func:`resolve`'s memo: the last build's sprite plans."""
        self.frame_count = 0
        self.store: tuple[tuple, GeneratedStore] | None = None
        self.pages: dict[str, list[tuple[np.ndarray, tuple, bytes]]] = {}
        """Per atlas, its last encoded pages: (pixels, encoding settings, PNG bytes)."""

    def get(self, key: str) -> list[np.ndarray] | None:
        frames = self.processed.pop(key, None)
        if frames is not None:
            self.processed[key] = frames  # most recently used last
        return frames

    def put(self, key: str, frames: list[np.ndarray]) -> None:
        if key in self.processed:
            return
        self.processed[key] = frames
        self.frame_count += len(frames)
        while self.frame_count > self.max_frames and self.processed:
            oldest = next(iter(self.processed))
            self.frame_count -= len(self.processed.pop(oldest))

    def generated_store(self, root: Path) -> GeneratedStore:
        lock = root / "sparky.lock"
        try:
            st = lock.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if self.store is not None and self.store[0] == stamp and stamp is not None:
            return self.store[1]
        store = GeneratedStore(root)
        self.store = (stamp, store)
        return store

    def saved_store(self, root: Path, store: GeneratedStore) -> None:
        st = (root / "sparky.lock").stat() if (root / "sparky.lock").exists() else None
        self.store = ((st.st_mtime_ns, st.st_size, st.st_ino), store) if st else None


class _Build:
    """One build: checks the options, generates locked sprites in batches, then walks
    the stage graph (:mod:`.stages`) from the exports down with one
    :class:`~.graph.Evaluator` — building, or planning for ``--dry-run`` — and writes
    what changed (:mod:`.write`)."""

    def __init__(
        self,
        manifest: Manifest,
        state: Path,
        options: BuildOptions,
        on_progress,
        warm: _WarmState,
        durable: bool,
        reads: ReadContext,
        prune: bool = True,
    ):
        self.prune = prune
        self.reads = reads
        self.manifest = manifest
        self.options = options
        self.on_progress = on_progress or (lambda stage, done, total: None)
        self.cache = StageCache(state / CACHE_DIR)
        if not prune:  # watch: cache writes and the staging folder's removal wait for Builder.prune_cache
            self.cache.deferred = []
        self.warm = warm
        self.store = warm.generated_store(manifest.root)
        self.store.problems.clear()
        self.ledger = OutputLedger(
            state,
            manifest.root,
            durable=durable,
            output_roots=[manifest.out / "sheets", manifest.out / "tilesets", *(e.root for e in manifest.exports)],
        )
        self.ledger.keep_staging = not prune
        self.report = BuildReport(manifest.name, dry_run=options.dry_run)
        self.executor: Executor = Executor()

    @timed_stage("plan")  # resolving, keys, the lock file: what the other stages leave
    def run(self) -> BuildReport:
        if not self.options.dry_run:
            self.ledger.recover()
        project = resolve(
            self.manifest, self.store if self.options.frozen else None, self.reads, memo=self.warm.resolved
        )
        self.project = project
        self._check_options(project)
        if not self.options.frozen:  # keep the lock's manifest inputs current where the result is
            for name, plan in project.sprites.items():
                if plan.lockable:
                    self.store.refresh(name, plan.gen_key, plan.manifest_key, plan.inputs)
        atlases = self._selected_atlases(project)
        targets = build_targets(self.manifest)
        if self.options.frozen:
            self._check_frozen(project)

        # locked sprites whose lock entry is missing or stale, in batches (GPU batches)
        wanted = self._only_sprites if self.options.only else set(project.sprites)
        to_generate = [
            n
            for n, plan in project.sprites.items()
            if plan.lockable and n in wanted and lock_is_stale(self.store, plan, self.options.regenerate)
        ]
        ctx = StageContext(
            self.manifest,
            project,
            self.options,
            self.cache,
            self.store,
            self.report,
            self.reads,
            self.warm,
            self.on_progress,
            fresh=set(to_generate),
            executor=self.executor,
        )
        stages = Stages.of(ctx)
        if self.options.dry_run:
            export_all(Evaluator(self.report, action="plan", force=self.options.force), stages, atlases, targets)
            return self.report
        evaluator = Evaluator(self.report, force=self.options.force)
        with _frozen_for_the_collector():
            files = self._make(evaluator, stages, ctx, to_generate, atlases, targets)
        store_changes: tuple[list, list] = ([], [])
        if not self.options.frozen:  # a frozen (CI) build never touches committed files
            self.store.forget_except(set(project.sprites))
            store_changes = self.store.changes()  # switched over together with the outputs
        with stage_timer(self.report, "write"):
            selected = {a.name for a in atlases} if self.options.only else None
            write_outputs(self.ledger, self.manifest.root, self.report, files, selected, store_changes)
        if store_changes[0] or store_changes[1]:
            self.store.committed()
            self.warm.saved_store(self.manifest.root, self.store)
        if self.prune:
            self.cache.prune()
        self.report.warnings += self.ledger.warnings + self.cache.warnings + self.store.problems
        return self.report

    def _make(
        self,
        evaluator: Evaluator,
        stages: Stages,
        ctx: StageContext,
        to_generate: list[str],
        atlases: list[AtlasSpec],
        targets: list[ExportSpec],
    ) -> dict[Path, tuple[ExportSpec, str, OutputFile]]:
        """Generate, then walk the graph — overlapping where the executor is parallel —
        into the files of every target."""
        batch = stages.generate.start_batch(
            to_generate, on_frames=lambda name, frames: evaluator.remember(stages.generate, name, frames)
        )
        parallel = self.executor.parallel
        ctx.batch = batch if parallel else None  # parallel: the walk takes each sprite as it needs it (ctx.settle)
        try:
            if not parallel:
                batch.finish()
            files = export_all(evaluator, stages, atlases, targets)
            self._add_tilesets(files, targets, lambda name: stages.process.pixels(name, evaluator), ctx)
            batch.finish()  # sprites no selected atlas holds
        except BaseException:
            batch.cancel()
            raise
        ctx.batch = None
        return files

    def _add_tilesets(
        self,
        files: dict[Path, tuple[ExportSpec, str, OutputFile]],
        targets: list[ExportSpec],
        processed: Callable[[str], list[np.ndarray]],
        ctx: StageContext,
    ) -> None:
        """Every ``[[tileset]]``: sheet + ``.tsx`` under ``<out>/tilesets``, and a TileSet ``.tres``
        / ``.tileset.ron`` next to the sheet in each Godot / Bevy export."""
        if not self.manifest.tilesets:
            return
        generic = ExportSpec("tilesets", self.manifest.out / "tilesets", {})
        for spec in self.manifest.tilesets:
            palette = self.manifest.palettes[spec.palette]
            try:
                base = processed(spec.base)[0] if spec.base is not None else None
                built = build_tileset(spec, palette, self.reads, self.manifest.root, base)
            except InvalidInput as exc:
                raise InvalidInput([ctx.located(d) for d in exc.diagnostics]) from None
            candidates = np.array(
                sorted({0} | {(r << 24) | (g << 16) | (b << 8) | 255 for r, g, b in palette.colors}), dtype=np.uint32
            )
            sheet = OutputFile(encode_png(built.image, candidates, fast=self.options.fast_png), "texture")
            image = f"{spec.name}.png"
            outputs: list[tuple[ExportSpec, str, OutputFile]] = [
                (generic, image, sheet),
                (generic, f"{spec.name}.tsx", OutputFile(tiled_tsx(built, image).encode(), "tileset")),
            ]
            for target in targets:
                if target.target not in ("godot", "bevy"):
                    continue
                sub = str(target.settings.get("dir", "sprites")).strip("/")
                prefix = f"{sub}/" if sub else ""  # engine paths only: the target's root holds its dir
                if target.target == "godot":
                    res = "res://" + prefix
                    tres = godot_tres(built, res + image, godot_uid(res + spec.name + ".tres"))
                    outputs += [
                        (target, image, replace(sheet, engine_path=res + image)),
                        (
                            target,
                            f"{spec.name}.tres",
                            OutputFile(tres.encode(), "tileset", engine_path=res + spec.name + ".tres"),
                        ),
                    ]
                else:
                    ron = bevy_ron(built, image)
                    outputs += [
                        (target, image, replace(sheet, engine_path=prefix + image)),
                        (
                            target,
                            f"{spec.name}.tileset.ron",
                            OutputFile(ron.encode(), "tileset", engine_path=f"{prefix}{spec.name}.tileset.ron"),
                        ),
                    ]
            for target, rel, f in outputs:
                path = target.root / rel
                if path in files:
                    raise InvalidInput(
                        Diagnostic(
                            f"two outputs want the same file {self.manifest.relative(path)}: tileset '{spec.name}' "
                            f"and the {files[path][0].target} export",
                            key=f"tileset[{spec.index}].name",
                            file=str(self.manifest.path),
                            line=self.project.locator(f"tileset[{spec.index}].name")[0],
                            stage="tileset",
                            hint="rename the tileset or the atlas",
                        )
                    )
                files[path] = (target, rel, f)

    def _check_options(self, project: ResolvedProject) -> None:
        problems = []
        if self.options.frozen and (self.options.force or self.options.regenerate):
            problems.append(
                Diagnostic(
                    "--frozen cannot be combined with --force or --regenerate",
                    hint="--frozen never generates; drop one of them",
                )
            )
        for name in self.options.regenerate:
            if name not in project.sprites:
                problems.append(
                    Diagnostic(f"--regenerate: no sprite named '{name}'", hint=suggest(name, project.sprites))
                )
        known = set(project.sprites) | {a.name for a in project.atlases}
        for name in self.options.only:
            if name not in known:
                problems.append(Diagnostic(f"--only: no sprite or atlas named '{name}'", hint=suggest(name, known)))
        if problems:
            raise InvalidInput(problems)

    def _check_frozen(self, project: ResolvedProject) -> None:
        stale = []
        for plan in project.sprites.values():
            if not plan.lockable:
                continue
            why, changed = self.store.staleness(plan.spec.name, plan.manifest_key, plan.inputs)
            if why:
                key = f"{plan.spec.key}.{changed[0]}" if changed else plan.spec.key
                line, col = project.locator(key)
                stale.append(
                    Diagnostic(
                        f"sprite '{plan.spec.name}' would need generating: {why}",
                        file=str(self.manifest.path),
                        line=line,
                        column=col,
                        key=key,
                        sprite=plan.spec.name,
                        stage="generate",
                        hint="run `sparky-assets build` where the generator can run, then commit sparky.lock and sparky-generated/",
                    )
                )
        if stale:
            raise InvalidInput(stale)

    @property
    def _only_sprites(self) -> set[str]:
        names = set()
        for a in self.project.atlases:
            if a.name in self.options.only:
                names |= set(a.sprites)
        return names | {n for n in self.options.only if n in self.project.sprites}

    def _selected_atlases(self, project: ResolvedProject) -> list[AtlasSpec]:
        if not self.options.only:
            return project.atlases
        return [a for a in project.atlases if a.name in self.options.only or set(a.sprites) & set(self.options.only)]


@contextlib.contextmanager
def _frozen_for_the_collector():
    """The objects made so far — manifest, plans, palettes, all alive until the build
    ends — frozen for Python's cyclic collector (``gc.freeze``) while the build makes
    its files: a full collection then walks only what the stages make (one took 15–30
    ms per 1,000 sprites walking the plans)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def worker_warmup(manifest: Manifest, slots: int) -> tuple[list, list[str]]:
    """What a pool's workers get ready while a first build plans (:func:`.executor.warm_worker`):
    the tables of the palettes the build locks more pixels against than its workers
    would lock before loading them anyway (:data:`~sparky_assets.process.quantize.DIRECT_PIXELS`
    each), and the generators that run in workers (``runs_on = "cpu"``)."""
    pixels: dict[str, int] = {}
    for s in manifest.sprites:
        pixels[s.palette] = pixels.get(s.palette, 0) + s.width * s.height * s.frame_count
    palettes = [manifest.palettes[p].colors for p, n in sorted(pixels.items()) if n > DIRECT_PIXELS * slots]
    generators = sorted(
        name
        for name in {s.generator for s in manifest.sprites}
        if getattr(registry.plugin_class(registry.GENERATORS, name), "runs_on", "process") == "cpu"
    )
    return palettes, generators


def build_targets(manifest: Manifest) -> list[ExportSpec]:
    """Every target a build writes: the always-on ones (``sheets``), then the manifest's."""
    always = [ExportSpec(name, manifest.out / name, {}) for name in always_on()]
    return [*always, *manifest.exports]
