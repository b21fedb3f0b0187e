"""The build engine: manifest → generated → locked → packed → exported → on disk.

Stages are pure functions; this module is the one place that reads caches and writes
files. Each stage's result is addressed by a key that hashes everything it depends
on, chained from what was actually generated::

    generate  H(generator name, generator.cache_key(request))
    process   H(content of the generated frames*, palette colours, outline, dither)
    pack      H(atlas name and settings, process keys + animations of its sprites)
    export    H(pack key, target, its settings, exporter version)

    * for locked generators, the SHA-256 of the stored result in sparky.lock (so a
      regenerated sprite that came out differently flows through even where the
      generator is not bit-exact); otherwise the generate key.

A build runs in three phases: (1) generate every locked sprite whose lock entry is
missing or stale (one batch per generator: diffusion batches on the GPU), (2) compute
the process/pack/export keys, (3) evaluate lazily from the export stage down, so a
no-op build only computes keys and ``stat`` s its outputs. Outputs are switched over
together (:mod:`.outputs`); one build per project at a time (:class:`ProjectLock`).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import registry
from ..errors import BuildFailed, Diagnostic, DiagnosticSink, InvalidInput, ProjectLocked, SparkyError, suggest
from ..export.base import PNG_VERSION, ExportContext, OutputFile, encode_png
from ..export.godot import godot_uid
from ..export.registry import always_on, exporter
from ..generators.base import FrameSpec, GenerationRequest
from ..manifest.load import load_manifest
from ..manifest.locate import KeyLocator
from ..manifest.schema import AtlasSpec, ExportSpec, Manifest, SpriteSpec
from ..pack.atlas import PACK_VERSION, AnimationInfo, FrameInput, PackedAtlas, PackedFrame, build_atlas
from ..pack.maxrects import PackError, PackResult, Placement, pack_maxrects
from ..palettes import Palette
from ..process.quantize import QUANTIZE_VERSION, quantize_to_palette
from ..process.shape import add_outline, darkest
from ..reads import ReadContext, ensure_reads
from ..tiles.build import build_tileset
from ..tiles.formats import bevy_ron, godot_tres, tiled_tsx
from . import safepath
from .cache import StageCache, cache_max_bytes
from .fsutil import canonical_hash, sha256_bytes
from .outputs import OutputLedger, PlannedWrite
from .report import BuildReport, ChangedAsset, timed_stage
from .store import GeneratedStore

ENGINE_VERSION = 2
STATE_DIR = ".sparky"


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


class ProjectLock:
    """An exclusive ``flock`` on ``.sparky/build.lock`` for the duration of a build."""

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
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
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
    manifest: Manifest, frozen_store: GeneratedStore | None = None, reads: ReadContext | None = None
) -> ResolvedProject:
    """Make generation requests, validate every sprite with its generator and compute
    its generate key (files read through ``reads``). Raises ``InvalidInput`` with every problem.

    With ``frozen_store`` (``--frozen``), a sprite of a locked generator is neither
    validated nor keyed by its generator: its lock entry is used when the manifest
    inputs match, and the build reports it stale otherwise."""
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
        problems = gen.validate(request, reads)
        for d in problems:
            sink.add(located(d, base, s.name))
        if problems or palette is None:
            continue
        gen_key = canonical_hash(
            {
                "stage": "generate",
                "engine": ENGINE_VERSION,
                "generator": s.generator,
                "key": gen.cache_key(request, reads),
            }
        )
        plans[s.name] = SpritePlan(s, palette, request, gen, gen_key, lockable, inputs, manifest_key)
    for d in safepath.inputs_in_outputs(manifest, reads.paths()):  # models, LoRAs, sources in an output folder
        sink.add(located(d, d.key or "project.out", d.sprite))
    sink.raise_if_any()

    return ResolvedProject(manifest, plans, list(manifest.atlases), list(manifest.exports), locate)


def check(path: str | Path) -> ResolvedProject:
    """Validate the manifest and every file it refers to, without building."""
    reads = ReadContext()
    return resolve(load_manifest(path, reads), reads=reads)


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
    ):
        """``durable``: fsync outputs before switching them over (survives power loss,
        not only crashes); ``watch`` turns it off for latency. ``warm_frames``: how many
        decoded frames to keep in memory between builds of this Builder."""
        self.manifest_path = Path(manifest_path)
        self.on_progress = on_progress
        self.durable = durable
        self.defer_prune = defer_prune
        self.warm = _WarmState(warm_frames)
        self._loaded: tuple[Manifest, ReadContext] | None = None
        self._last_cache: StageCache | None = None
        self.last_project: ResolvedProject | None = None
        """The project the last successful build resolved."""
        self.last_reads = ReadContext()
        """Every file the last build read, successful or not (``watch`` watches these)."""

    def _load_manifest(self, reads: ReadContext) -> Manifest:
        """The loaded manifest, reused while every file read to load it (the manifest,
        palette files, images read for their size) is unchanged — a watch rebuild after a
        sprite's PNG changed does not re-validate a big manifest."""
        if self._loaded is not None and self._loaded[1].unchanged():
            manifest, loaded_with = self._loaded
            reads.merge(loaded_with)
            return manifest
        self._loaded = None
        loading = ReadContext()
        try:
            manifest = load_manifest(self.manifest_path, loading)
        finally:
            reads.merge(loading)
        self._loaded = (manifest, loading)
        return manifest

    def build(self, options: BuildOptions = BuildOptions()) -> BuildReport:
        started = time.perf_counter()
        reads = self.last_reads = ReadContext()
        manifest = self._load_manifest(reads)
        cache_max_bytes()  # a bad SPARKY_CACHE_MAX_MB is refused before anything is written
        state = safepath.bookkeeping_dir(manifest.root, STATE_DIR)
        with ProjectLock(state):
            run = _Build(
                manifest, state, options, self.on_progress, self.warm, self.durable, reads, prune=not self.defer_prune
            )
            self._last_cache = run.cache
            self.last_project = None
            try:
                report = run.run()
            except BaseException:
                self.warm.store = None  # it may hold this build's uncommitted generated art
                raise
            self.last_project = run.project
        report.duration_s = time.perf_counter() - started
        return report

    def prune_cache(self) -> int:
        """Evict old cache entries after the last build (``watch`` calls this once its
        messages are out, keeping the walk off the hot-reload path)."""
        if self._last_cache is None:
            return 0
        with ProjectLock(self._last_cache.root.parent):
            return self._last_cache.prune()


class _WarmState:
    """What a long-lived Builder (``watch``) keeps between builds: processed frames by
    key (bounded, least recently used dropped first) and the parsed lock file."""

    def __init__(self, max_frames: int):
        self.max_frames = max_frames
        self.processed: dict[str, list[np.ndarray]] = {}
        self.frame_count = 0
        self.store: tuple[tuple, GeneratedStore] | None = None

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
        self.cache = StageCache(state / "cache")
        self.warm = warm
        self.store = warm.generated_store(manifest.root)
        self.store.problems.clear()
        self.ledger = OutputLedger(
            state,
            manifest.root,
            durable=durable,
            output_roots=[manifest.out / "sheets", manifest.out / "tilesets", *(e.root for e in manifest.exports)],
        )
        self.report = BuildReport(manifest.name, dry_run=options.dry_run)
        self._generated: dict[str, list[np.ndarray]] = {}
        self._processed: dict[str, list[np.ndarray]] = {}
        self._packed: dict[str, PackedAtlas] = {}
        self._pages_png: dict[str, tuple[bytes, ...]] = {}

    # -- plan ------------------------------------------------------------------

    @timed_stage("plan")  # resolving, keys, the lock file: what the other stages leave
    def run(self) -> BuildReport:
        if not self.options.dry_run:
            self.ledger.recover()
        project = resolve(self.manifest, self.store if self.options.frozen else None, self.reads)
        self.project = project
        self._check_options(project)
        if not self.options.frozen:  # keep the lock's manifest inputs current where the result is
            for name, plan in project.sprites.items():
                if plan.lockable:
                    self.store.refresh(name, plan.gen_key, plan.manifest_key, plan.inputs)
        atlases = self._selected_atlases(project)
        targets = self._targets(project)
        if self.options.frozen:
            self._check_frozen(project)

        # phase 1: locked sprites whose lock entry is missing or stale, in batches
        wanted = self._only_sprites if self.options.only else set(project.sprites)
        to_generate = [
            n for n, plan in project.sprites.items() if plan.lockable and n in wanted and self._lock_is_stale(plan)
        ]
        if self.options.dry_run:
            return self._plan_report(project, atlases, targets, to_generate)
        self._generate(to_generate)

        # phase 2 + 3: keys from what was generated, then evaluate from the exports down
        self._compute_keys(project)
        files = self._export_all(atlases, targets)
        self._add_tilesets(files, targets)
        store_changes: tuple[list, list] = ([], [])
        if not self.options.frozen:  # a frozen (CI) build never touches committed files
            self.store.forget_except(set(project.sprites))
            store_changes = self.store.changes()  # switched over together with the outputs
        self._write(files, selected={a.name for a in atlases} if self.options.only else None, store=store_changes)
        if store_changes[0] or store_changes[1]:
            self.store.committed()
            self.warm.saved_store(self.manifest.root, self.store)
        if self.prune:
            self.cache.prune()
        self.report.warnings += self.ledger.warnings + self.cache.warnings + self.store.problems
        return self.report

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

    def _lock_is_stale(self, plan: SpritePlan) -> bool:
        name = plan.spec.name
        if name in self.options.regenerate:
            return True
        entry = self.store.entries.get(name)
        return entry is None or entry.key != plan.gen_key or not self.store.verify(name)

    def _compute_keys(self, project: ResolvedProject) -> None:
        self.process_keys: dict[str, str] = {}
        for name, plan in project.sprites.items():
            entry = self.store.entries.get(name) if plan.lockable else None
            content = entry.sha256 if entry is not None and entry.key == plan.gen_key else plan.gen_key
            s = plan.spec
            self.process_keys[name] = canonical_hash(
                {
                    "stage": "process",
                    "engine": ENGINE_VERSION,
                    "quantize": QUANTIZE_VERSION,
                    "content": content,
                    "palette": plan.palette.digest(),
                    "outline": s.outline,
                    "dither": s.dither,
                }
            )
        self.pack_keys = {
            atlas.name: canonical_hash(
                {
                    "stage": "pack",
                    "engine": ENGINE_VERSION,
                    "pack": PACK_VERSION,
                    "name": atlas.name,
                    "settings": [
                        atlas.max_width,
                        atlas.max_height,
                        atlas.padding,
                        atlas.extrude,
                        atlas.power_of_two,
                        atlas.square,
                        atlas.trim,
                    ],
                    "sprites": [
                        [
                            n,
                            self.process_keys[n],
                            [
                                [a.name, a.frames, a.fps, a.loop]
                                + ([a.base, a.direction] if a.direction else [])
                                + (["timing", list(a.durations), a.playback, a.repeat] if a.timed else [])
                                + (["pivot", list(a.pivot)] if a.pivot is not None else [])
                                for a in project.sprites[n].spec.animations
                            ],
                        ]
                        + (_placement(project.sprites[n].spec) if project.sprites[n].spec.placed else [])
                        for n in atlas.sprites
                    ],
                }
            )
            for atlas in project.atlases
        }

    def _plan_report(self, project, atlases, targets, to_generate) -> BuildReport:
        """What a build would do: keys as they are now; sprites about to be generated
        count as changed all the way down."""
        self._compute_keys(project)
        fresh = set(to_generate)
        need_export, need_pack, need_process = [], [], []
        for atlas in atlases:
            dirty = bool(fresh & set(atlas.sprites))
            exports = [
                t
                for t in targets
                if dirty or self.options.force or not self.cache.has("export", self._export_key(atlas, t))
            ]
            need_export += [f"{atlas.name}:{t.target}" for t in exports]
            if exports and (dirty or self.options.force or not self.cache.has("pack", self.pack_keys[atlas.name])):
                need_pack.append(atlas.name)
                need_process += [
                    n
                    for n in atlas.sprites
                    if n in fresh or self.options.force or not self.cache.has("process", self.process_keys[n])
                ]
        image_gen = [
            n
            for n in need_process
            if not project.sprites[n].lockable and not self.cache.has("generate", project.sprites[n].gen_key)
        ]
        self.report.ran = {
            "generate": to_generate + image_gen,
            "process": need_process,
            "pack": need_pack,
            "export": need_export,
        }
        return self.report

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

    def _targets(self, project: ResolvedProject) -> list[ExportSpec]:
        always = [ExportSpec(name, self.manifest.out / name, {}) for name in always_on()]
        return [*always, *project.exports]

    def _export_key(self, atlas: AtlasSpec, target: ExportSpec) -> str:
        rel_root = target.root.relative_to(self.manifest.root).as_posix()
        version = exporter(target.target).version
        return canonical_hash(
            {
                "stage": "export",
                "engine": ENGINE_VERSION,
                "png": [PNG_VERSION, "fast" if self.options.fast_png else "small"],
                "pack": self.pack_keys[atlas.name],
                "target": target.target,
                "root": rel_root,
                "settings": dict(target.settings),
                "version": version,
            }
        )

    # -- stages ------------------------------------------------------------------

    @timed_stage("generate")
    def _generate(self, names: list[str], progress: bool = True) -> None:
        by_generator: dict[str, list[SpritePlan]] = {}
        for n in names:
            plan = self.project.sprites[n]
            by_generator.setdefault(plan.spec.generator, []).append(plan)
        done = 0
        for gen_name, plans in by_generator.items():
            gen = plans[0].generator
            try:
                results = gen.generate([p.request for p in plans], self.reads)
            except InvalidInput as exc:  # found only once generating (a truncated source, a LoRA that fits no module)
                raise InvalidInput([self._located(d, plans) for d in exc.diagnostics]) from exc
            except SparkyError:
                raise
            except Exception as exc:  # noqa: BLE001 - a generator bug is a failed build step
                raise BuildFailed(
                    Diagnostic(
                        f"generator '{gen_name}' failed: {type(exc).__name__}: {exc}",
                        stage="generate",
                        sprite=plans[0].spec.name if len(plans) == 1 else None,
                    )
                ) from exc
            if gen.last_stats:
                self.report.generator_stats[gen_name] = dict(gen.last_stats)
            for plan, frames in zip(plans, results):
                self._accept_generated(plan, frames)
                done += 1
                if progress:
                    self.on_progress("generate", done, len(names))

    def _located(self, d: Diagnostic, plans: list[SpritePlan] = ()) -> Diagnostic:
        """A generator's diagnostic with a manifest key, given the manifest's file and
        position; a key relative to its sprite (``source``) gets the sprite's prefix."""
        if d.file is not None or not d.key:
            return d
        key = d.key
        if not key.startswith(("generator.", "project.", "sprite[", "atlas[", "export.", "tileset[")):
            plan = next((p for p in plans if p.spec.name == d.sprite), plans[0] if len(plans) == 1 else None)
            if plan is not None:
                key = f"{plan.spec.key}.{key}"
                d = replace(d, sprite=plan.spec.name)
        line, column = self.project.locator(key)
        return replace(d, file=str(self.manifest.path), line=line, column=column, key=key)

    def _accept_generated(self, plan: SpritePlan, frames: list[np.ndarray]) -> None:
        s = plan.spec
        expected = (s.height, s.width, 4)
        if len(frames) != len(plan.request.frames) or any(f.shape != expected or f.dtype != np.uint8 for f in frames):
            raise BuildFailed(
                Diagnostic(
                    f"generator '{s.generator}' returned {len(frames)} frames of "
                    f"{[f.shape for f in frames[:2]]}, expected {len(plan.request.frames)} of {expected}",
                    sprite=s.name,
                    stage="generate",
                )
            )
        if plan.lockable:
            self.store.record(s.name, s.generator, plan.gen_key, frames, plan.inputs, plan.manifest_key)
        else:
            self.cache.put_arrays("generate", plan.gen_key, {}, frames)
        self._generated[s.name] = frames
        self.report.ran["generate"].append(s.name)

    @timed_stage("generate")
    def generated(self, name: str) -> list[np.ndarray]:
        if name in self._generated:
            return self._generated[name]
        plan = self.project.sprites[name]
        frames = None
        if plan.lockable:
            frames = self.store.lookup(name, plan.gen_key)
        else:
            hit = None if self.options.force else self.cache.get_arrays("generate", plan.gen_key)
            frames = hit[1] if hit else None
        if frames is None:
            if plan.lockable:  # verified in phase 1: someone changed sparky-generated/ during the build
                raise BuildFailed(
                    Diagnostic(
                        f"the stored result of sprite '{name}' changed during the build; run it again",
                        sprite=name,
                        stage="generate",
                    )
                )
            self._generate([name], progress=False)  # inside the export stage's progress
            return self._generated[name]
        self.report.cached["generate"] += 1
        self._generated[name] = frames
        return frames

    @timed_stage("process")
    def processed(self, name: str) -> list[np.ndarray]:
        if name in self._processed:
            return self._processed[name]
        plan = self.project.sprites[name]
        key = self.process_keys[name]
        frames = None if self.options.force else self.warm.get(key)
        if frames is not None:
            self.report.cached["process"] += 1
        else:
            hit = None if self.options.force else self.cache.get_arrays("process", key)
            if hit is not None:
                self.report.cached["process"] += 1
                frames = hit[1]
            else:
                frames = [self._process_frame(plan, f) for f in self.generated(name)]
                self.cache.put_arrays("process", key, {}, frames)
                self.report.ran["process"].append(name)
            self.warm.put(key, frames)
        self._processed[name] = frames
        return frames

    @staticmethod
    def _process_frame(plan: SpritePlan, frame: np.ndarray) -> np.ndarray:
        s = plan.spec
        if s.outline:
            color = (
                darkest(plan.palette.colors)
                if s.outline is True
                else tuple(int(s.outline[i : i + 2], 16) for i in (1, 3, 5))
            )
            frame = add_outline(frame, color)
        return quantize_to_palette(frame, plan.palette, s.dither)

    @timed_stage("pack")
    def packed(self, atlas: AtlasSpec) -> PackedAtlas:
        if atlas.name in self._packed:
            return self._packed[atlas.name]
        key = self.pack_keys[atlas.name]
        hit = None if self.options.force else self.cache.get_arrays("pack", key)
        if hit is not None:
            self.report.cached["pack"] += 1
            result = _atlas_from_cache(atlas.name, *hit)
        else:
            inputs, animations = [], []
            for n in atlas.sprites:
                spec = self.project.sprites[n].spec
                frames = self.processed(n)
                if spec.animations:
                    k = 0
                    for a in spec.animations:
                        for i in range(a.frames):
                            inputs.append(FrameInput(n, a.name, i, frames[k]))
                            k += 1
                        animations.append((n, a.name, a.fps, a.loop, a.durations, a.playback, a.repeat))
                else:
                    inputs.append(FrameInput(n, None, 0, frames[0]))
            try:
                result = build_atlas(
                    atlas.name,
                    inputs,
                    animations,
                    max_width=atlas.max_width,
                    max_height=atlas.max_height,
                    padding=atlas.padding,
                    extrude=atlas.extrude,
                    trim=atlas.trim,
                    power_of_two=atlas.power_of_two,
                    square=atlas.square,
                    pack=self._layout,
                )
            except PackError as exc:  # the manifest check should have caught it; still the user's settings
                key = f"atlas[{atlas.index}].max_size" if not atlas.implicit else f"sprite[{atlas.index}]"
                line, col = self.project.locator(key)
                raise InvalidInput(
                    Diagnostic(str(exc), file=str(self.manifest.path), line=line, column=col, key=key, stage="pack")
                ) from None
            self.cache.put_arrays("pack", key, _atlas_meta(result), list(result.pages))
            self.report.ran["pack"].append(atlas.name)
        self._packed[atlas.name] = result
        return result

    def _layout(self, sizes, max_width, max_height, **settings) -> PackResult:
        """:func:`pack_maxrects`, memoised on the sizes and settings (the ``layout``
        stage): re-locked frames keep their sizes, so their atlas is only recomposed."""
        key = canonical_hash(
            {
                "stage": "layout",
                "engine": ENGINE_VERSION,
                "sizes": list(sizes),
                "max": [max_width, max_height],
                **settings,
            }
        )
        payload = None if self.options.force else self.cache.get("layout", key)
        if payload is not None:
            try:
                doc = json.loads(payload)
                return PackResult(tuple(Placement(*p) for p in doc["placements"]), tuple(map(tuple, doc["pages"])))
            except (ValueError, KeyError, TypeError):
                self.cache.warnings.append(f"cache entry layout/{key[:12]} did not decode; rebuilt")
        result = pack_maxrects(sizes, max_width, max_height, **settings)
        doc = {
            "placements": [[p.page, p.x, p.y] for p in result.placements],
            "pages": [list(p) for p in result.page_sizes],
        }
        self.cache.put("layout", key, json.dumps(doc).encode())
        return result

    @timed_stage("export")
    def exported(self, atlas: AtlasSpec, target: ExportSpec) -> dict[str, OutputFile]:
        key = self._export_key(atlas, target)
        payload = None if self.options.force else self.cache.get("export", key)
        if payload is not None:
            files = _files_from_bytes(payload)
            if files is not None:
                self.report.cached["export"] += 1
                return files
        packed = self.packed(atlas)
        if atlas.name not in self._pages_png:  # encoded once, shared by every target
            colors = {c for n in atlas.sprites for c in self.project.sprites[n].palette.colors}
            candidates = np.array(
                sorted({0} | {(r << 24) | (g << 16) | (b << 8) | 255 for r, g, b in colors}), dtype=np.uint32
            )
            self._pages_png[atlas.name] = tuple(
                encode_png(p, candidates, fast=self.options.fast_png) for p in packed.pages
            )
        ctx = ExportContext(self.manifest, target, self._pages_png[atlas.name], dict(target.settings))
        impl = exporter(target.target)
        try:
            files = impl.export(packed, ctx)
        except InvalidInput as exc:  # an export setting the data cannot satisfy: point at the setting
            located_diags = []
            for d in exc.diagnostics:
                line, col = self.project.locator(d.key) if d.key and d.file is None else (d.line, d.column)
                located_diags.append(replace(d, file=d.file or str(self.manifest.path), line=line, column=col))
            raise InvalidInput(located_diags) from None
        self.cache.put("export", key, _files_to_bytes(files))
        self.report.ran["export"].append(f"{atlas.name}:{target.target}")
        return files

    def _export_all(
        self, atlases: list[AtlasSpec], targets: list[ExportSpec]
    ) -> dict[Path, tuple[ExportSpec, str, OutputFile]]:
        out: dict[Path, tuple[ExportSpec, str, OutputFile]] = {}
        total = len(atlases) * len(targets)
        for i, (atlas, target) in enumerate(((a, t) for a in atlases for t in targets), start=1):
            for rel, f in self.exported(atlas, target).items():
                path = target.root / rel
                if path in out:
                    other_target, _, other = out[path]
                    raise InvalidInput(
                        Diagnostic(
                            f"two outputs want the same file {self.manifest.relative(path)}: {target.target} export of atlas "
                            f"'{atlas.name}' and {other_target.target} export of atlas '{other.atlas}'",
                            stage="export",
                            hint="give each export target its own dir"
                            if other_target.target != target.target
                            else "rename a sprite or an atlas so their file names differ",
                        )
                    )
                out[path] = (target, rel, f)
            self.on_progress("export", i, total)
        return out

    def _add_tilesets(self, files: dict[Path, tuple[ExportSpec, str, OutputFile]], targets: list[ExportSpec]) -> None:
        """Every ``[[tileset]]``: sheet + ``.tsx`` under ``<out>/tilesets``, and a TileSet ``.tres``
        / ``.tileset.ron`` next to the sheet in each Godot / Bevy export."""
        if not self.manifest.tilesets:
            return
        generic = ExportSpec("tilesets", self.manifest.out / "tilesets", {})
        for spec in self.manifest.tilesets:
            palette = self.manifest.palettes[spec.palette]
            try:
                base = self.processed(spec.base)[0] if spec.base is not None else None
                built = build_tileset(spec, palette, self.reads, self.manifest.root, base)
            except InvalidInput as exc:
                raise InvalidInput([self._located(d) for d in exc.diagnostics]) from None
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

    # -- write -------------------------------------------------------------------

    @timed_stage("write")
    def _write(
        self,
        files: dict[Path, tuple[ExportSpec, str, OutputFile]],
        selected: set[str] | None,
        store: tuple[list, list] = ([], []),
    ) -> None:
        """Write what changed, remove what is no longer produced. ``selected`` (``--only``):
        outputs of other atlases are left alone. ``store``: generated-store writes and
        removals, switched over with the outputs."""
        writes, keep = [], {}
        for path, (target, rel, f) in sorted(files.items()):
            digest = sha256_bytes(f.data)
            meta = {
                "target": target.target,
                "path": rel,
                "kind": f.kind,
                "engine_path": f.engine_path,
                "sprites": list(f.sprites),
                "atlas": f.atlas,
                "sha256": digest,
            }
            if self.ledger.unchanged(path, digest, len(f.data)):
                keep[path] = meta
                self.report.unchanged += 1
                continue
            change = "modified" if path.exists() else "added"
            writes.append(PlannedWrite(path, f.data, meta))
            self.report.assets.append(
                ChangedAsset(target.target, rel, f.engine_path, f.kind, change, digest, f.sprites, f.atlas)
            )
        remove = []
        for rel, meta in sorted(self.ledger.record.items()):
            path = self.manifest.root / rel
            if path in files:
                continue
            if selected is not None and meta.get("atlas") not in selected:
                keep[path] = meta
                continue
            if not self.ledger.owns(rel):  # not in an output folder, or changed since: not ours
                continue
            remove.append(path)
            self.report.assets.append(
                ChangedAsset(
                    meta.get("target", "sheets"),
                    meta.get("path", rel),
                    meta.get("engine_path"),
                    meta.get("kind", "metadata"),
                    "removed",
                    "",
                    tuple(meta.get("sprites", ())),
                    meta.get("atlas"),
                )
            )
        self.ledger.commit(writes, keep, remove, extra_writes=store[0], extra_remove=store[1])
        self.report.written = [w.path for w in writes]
        self.report.removed = remove


# -------------------------------------------------------------- serialisation


def _atlas_meta(atlas: PackedAtlas) -> dict:
    return {
        "rects": [list(map(list, r)) for r in atlas.rects],
        "frames": [
            [
                f.sprite,
                f.animation,
                f.frame,
                f.page,
                f.slot,
                f.x,
                f.y,
                f.w,
                f.h,
                f.offset_x,
                f.offset_y,
                f.source_w,
                f.source_h,
            ]
            for f in atlas.frames
        ],
        "animations": [
            [a.sprite, a.name, a.fps, a.loop, list(a.frames)]
            + ([list(a.durations), a.playback, a.repeat] if a.timed else [])
            for a in atlas.animations
        ],
        "sprites": list(atlas.sprites),
    }


def _placement(spec) -> list:
    """A sprite's pivot and slices as key material (exports carry them)."""
    return [
        "placement",
        None if spec.pivot is None else list(spec.pivot),
        [
            [sl.name, list(sl.rect), sl.center and list(sl.center), sl.pivot and list(sl.pivot), sl.data]
            for sl in spec.slices
        ],
    ]


def _atlas_from_cache(name: str, meta: dict, pages: list[np.ndarray]) -> PackedAtlas:
    return PackedAtlas(
        name,
        tuple(pages),
        tuple(tuple(tuple(r) for r in page) for page in meta["rects"]),
        tuple(PackedFrame(*f) for f in meta["frames"]),
        tuple(
            AnimationInfo(s, n, fps, loop, tuple(fr), *([tuple(t[0]), *t[1:]] if t else []))
            for s, n, fps, loop, fr, *t in meta["animations"]
        ),
        tuple(meta["sprites"]),
    )


def _files_to_bytes(files: dict[str, OutputFile]) -> bytes:
    index, blobs, offset = [], [], 0
    for rel, f in sorted(files.items()):
        index.append([rel, f.kind, list(f.sprites), f.atlas, f.engine_path, offset, len(f.data)])
        blobs.append(f.data)
        offset += len(f.data)
    head = json.dumps(index).encode()
    return len(head).to_bytes(8, "big") + head + b"".join(blobs)


def _files_from_bytes(payload: bytes) -> dict[str, OutputFile] | None:
    try:
        n = int.from_bytes(payload[:8], "big")
        index = json.loads(payload[8 : 8 + n])
        body = payload[8 + n :]
        return {
            rel: OutputFile(body[o : o + size], kind, tuple(sprites), atlas, engine)
            for rel, kind, sprites, atlas, engine, o, size in index
        }
    except (ValueError, TypeError):
        return None
