"""The build's stages, each a small :class:`~.graph.Stage` that owns its key formula::

    generate  H(generator name, generator.cache_key(request))        (in resolve: SpritePlan.gen_key)
    process   H(content of the generated frames*, palette colours, outline, dither)
    pack      H(atlas name and settings, process keys + animations of its sprites)
    export    H(pack key, target, its settings, exporter version, PNG writer)

    * for locked generators, the SHA-256 of the stored result in sparky.lock (so a
      regenerated sprite that came out differently flows through even where the
      generator is not bit-exact); otherwise the generate key.

A stage reads only through :class:`StageContext` (the resolved project, the stage
cache, the generated store, the warm frames of a long-lived builder) and returns
values; the :class:`~.graph.Evaluator` decides what runs, and :mod:`.write` puts the
exports on disk. Errors leave a stage as located diagnostics (``InvalidInput`` /
``BuildFailed``), never as a plugin's own exception.

To add a stage: subclass :class:`~.graph.Stage` here (key, load/save, inputs,
compute), give :class:`Stages` an instance, and demand it from the stage that needs it.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import numpy as np

from ..errors import BuildFailed, Diagnostic, InvalidInput, SparkyError
from ..export.base import PNG_VERSION, ExportContext, OutputFile, encode_png
from ..export.registry import exporter
from ..manifest.schema import AtlasSpec, ExportSpec, Manifest
from ..pack.atlas import PACK_VERSION, AnimationInfo, FrameInput, PackedAtlas, PackedFrame, build_atlas
from ..pack.maxrects import PackError, PackResult, Placement, pack_maxrects
from ..process.quantize import QUANTIZE_VERSION, quantize_to_palette
from ..process.shape import add_outline, darkest
from ..reads import ReadContext
from .cache import StageCache, put_arrays_from_worker, worker_cache
from .executor import (
    Executor,
    FrameShape,
    Generation,
    ProcessAfter,
    Task,
    encode_chunk,
    frames_as_asked,
    pack_chunk,
    process_chunk,
)
from .fsutil import canonical_hash
from .graph import Evaluator, Stage, Started
from .report import BuildReport, stage_timer
from .store import GeneratedStore

if TYPE_CHECKING:
    from .engine import BuildOptions, ResolvedProject, SpritePlan, _WarmState

ENGINE_VERSION = 2
"""Part of every key: bump when the engine changes what any stage produces."""


ENCODE_TASK_BYTES = 1 << 20
"""An atlas packed in the build's process whose pages to encode are smaller than this
in all (bytes of RGBA: a 512×512 page) has them encoded there too: a worker's round
trip would cost more than it saves."""


@dataclass
class StageContext:
    """What the stages of one build read and share."""

    manifest: Manifest
    project: ResolvedProject
    options: BuildOptions
    cache: StageCache
    store: GeneratedStore
    report: BuildReport
    reads: ReadContext
    warm: _WarmState | None = None
    on_progress: Callable[[str, int, int], None] = lambda stage, done, total: None
    """Told ``(stage, done, planned)`` for the whole build as work is planned and done
    (:meth:`planned`, :meth:`advanced`)."""
    progress: dict[str, list[int]] = field(default_factory=dict)
    """Per stage, ``[done, planned]`` so far: the walk plans atlas by atlas, so a stage's
    planned count grows as the build goes on; it never starts over."""
    fresh: set[str] = field(default_factory=set)
    """Locked sprites this build (re)generates: their content is unknown to a plan."""
    pages_png: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    executor: Executor = field(default_factory=Executor)
    """Where batches of independent work run (``--jobs``, ``--executor``)."""
    processed: dict[str, tuple[str, list[np.ndarray], bool]] = field(default_factory=dict)
    """Sprites the workers processed right after generating them: (process key, frames —
    their shapes where the worker wrote the cache entry: :meth:`ProcessStage.pixels` —,
    whether it did), used by the process stage."""
    batch: GenerationBatch | None = None
    """The locked sprites being generated while the walk runs (``--jobs``, Ray)."""

    def planned(self, stage: str, n: int) -> None:
        """``n`` more items of ``stage`` to do in this build."""
        if not n:
            return
        counts = self.progress.setdefault(stage, [0, 0])
        counts[1] += n
        self.on_progress(stage, counts[0], counts[1])

    def advanced(self, stage: str, n: int = 1) -> None:
        """``n`` more items of ``stage`` done."""
        counts = self.progress.setdefault(stage, [0, 0])
        counts[0] += n
        self.on_progress(stage, counts[0], counts[1])

    def settle(self, name: str) -> None:
        """Wait until a sprite this build is generating has been taken (recorded in the
        store, off :attr:`fresh`): what a stage reads of it is then current."""
        if self.batch is not None and name in self.fresh:
            self.batch.wait(name)

    def worker_cache_root(self) -> str | None:
        """The cache folder workers may write their entries into: None when they do not
        share this disk (Ray) or writes wait (``watch``'s deferred cache)."""
        if not self.executor.shared_disk or self.cache.deferred is not None:
            return None
        return str(self.cache.root)

    def located(self, d: Diagnostic, plans: Iterable[SpritePlan] = ()) -> Diagnostic:
        """A plugin's diagnostic with a manifest key, given the manifest's file and
        position; a key relative to its sprite (``source``) gets the sprite's prefix."""
        if d.file is not None or not d.key:
            return d
        plans = list(plans)
        key = d.key
        if not key.startswith(("generator.", "project.", "sprite[", "atlas[", "export.", "tileset[")):
            plan = next((p for p in plans if p.spec.name == d.sprite), plans[0] if len(plans) == 1 else None)
            if plan is not None:
                key = f"{plan.spec.key}.{key}"
                d = replace(d, sprite=plan.spec.name)
        line, column = self.project.locator(key)
        return replace(d, file=str(self.manifest.path), line=line, column=column, key=key)


# --------------------------------------------------------------------------- generate


class GenerateStage(Stage):
    """A sprite's frames from its generator. Locked generators run in batches started
    before the walk (:meth:`start_batch`: one call per generator, the GPU's batches;
    with a parallel executor the walk goes on meanwhile) and their results come from
    the store; the others (``image``) run on demand, cached."""

    name: ClassVar[str] = "generate"

    def __init__(self, ctx: StageContext):
        self.ctx = ctx

    def key(self, item: str, ev: Evaluator) -> str | None:
        return self.ctx.project.sprites[item].gen_key

    def forced(self, item: str, ev: Evaluator) -> bool:
        return ev.force and not self.ctx.project.sprites[item].lockable  # --force keeps locked art

    def counts_as_run(self, item: str, ev: Evaluator) -> bool:
        # a locked sprite runs in the batch phase, which reports it; a plan reports it here
        return ev.action == "plan" or not self.ctx.project.sprites[item].lockable

    def is_cached(self, item: str, key: str, ev: Evaluator) -> bool:
        if self.ctx.project.sprites[item].lockable:
            self.ctx.settle(item)
            return item not in self.ctx.fresh and self.ctx.store.entries.get(item) is not None
        return self.ctx.cache.has(self.name, key)

    def load(self, item: str, key: str, ev: Evaluator) -> list[np.ndarray] | None:
        if self.ctx.project.sprites[item].lockable:
            self.ctx.settle(item)
            return self.ctx.store.lookup(item, key)
        hit = self.ctx.cache.get_arrays(self.name, key)
        return hit[1] if hit else None

    def compute(self, item: str, ev: Evaluator) -> list[np.ndarray]:
        if self.ctx.project.sprites[item].lockable:  # verified before the walk: changed since
            raise BuildFailed(
                Diagnostic(
                    f"the stored result of sprite '{item}' changed during the build; run it again",
                    sprite=item,
                    stage="generate",
                )
            )
        return self.run_batch([item], progress=False)[item]

    def save(self, item: str, key: str, value: list[np.ndarray], ev: Evaluator) -> None:
        if not self.ctx.project.sprites[item].lockable:
            self.ctx.cache.put_arrays(self.name, key, {}, value)

    def run_batch(self, names: list[str], progress: bool = True) -> dict[str, list[np.ndarray]]:
        """Generate ``names`` and wait for all of them (:meth:`start_batch`); returns the
        frames of those the workers did not process."""
        return self.start_batch(names, progress).finish()

    def start_batch(
        self,
        names: list[str],
        progress: bool = True,
        on_frames: Callable[[str, list[np.ndarray]], None] | None = None,
    ) -> GenerationBatch:
        """Start generating ``names``, one call per generator (a pool or a cluster takes
        them in chunks and returns at once); locked results go to the store as the
        batch takes them (:class:`GenerationBatch`)."""
        return GenerationBatch(self, names, progress, on_frames)

    def _accept(self, plan: SpritePlan, frames: list[np.ndarray], png: bytes | None = None) -> list[np.ndarray]:
        s = plan.spec
        if not frames_as_asked(frames, len(plan.request.frames), s.height, s.width, (np.ndarray, FrameShape)):
            raise BuildFailed(
                Diagnostic(
                    f"generator '{s.generator}' returned {len(frames)} frames of "
                    f"{[getattr(f, 'shape', type(f).__name__) for f in frames[:2]]}, "
                    f"expected {len(plan.request.frames)} of {(s.height, s.width, 4)}",
                    sprite=s.name,
                    stage="generate",
                )
            )
        if plan.lockable:
            self.ctx.store.record(s.name, s.generator, plan.gen_key, frames, plan.inputs, plan.manifest_key, png)
            self.ctx.report.ran[self.name].append(s.name)
        return frames


class GenerationBatch:
    """Locked sprites being generated (:meth:`GenerateStage.start_batch`): every
    generator's chunks were handed to the executor at once; their results are taken in
    one fixed order — generator by generator, chunk by chunk — as the walk needs them
    (:meth:`wait`, through :meth:`StageContext.settle`), as they come in (:meth:`poll`)
    or all at once (:meth:`finish`), so what the build records never depends on timing.
    Taking a sprite records it in the store and takes it off ``ctx.fresh``; the frames
    the workers did not process are kept (:attr:`frames`) and handed to ``on_frames``.
    A generator's error leaves as a located diagnostic (``InvalidInput``) or a failed
    step (``BuildFailed``), and the chunks not taken yet are cancelled."""

    def __init__(
        self,
        stage: GenerateStage,
        names: list[str],
        progress: bool = True,
        on_frames: Callable[[str, list[np.ndarray]], None] | None = None,
    ):
        self.stage = stage
        self.ctx = ctx = stage.ctx
        self.progress = progress
        if progress:
            ctx.planned(GenerateStage.name, len(names))
        self.frames: dict[str, list[np.ndarray]] = {}
        self.on_frames = on_frames
        self.pending: set[str] = set(names)
        by_generator: dict[str, list[SpritePlan]] = {}
        for n in names:
            plan = ctx.project.sprites[n]
            by_generator.setdefault(plan.spec.generator, []).append(plan)
        self.runs: list[tuple[str, list[SpritePlan], Generation]] = []
        with stage_timer(ctx.report, GenerateStage.name):
            for gen_name, plans in by_generator.items():
                process = None
                if ctx.executor.parallel:  # workers process what they generate (frames cross once)
                    specs = [(p.palette, p.spec.outline, p.spec.dither) if p.lockable else None for p in plans]
                    process = ProcessAfter(specs, ctx.worker_cache_root(), ctx.options.force)
                try:
                    run = ctx.executor.start_generate(
                        plans[0].generator, [p.request for p in plans], ctx.reads, process
                    )
                except Exception as exc:  # noqa: BLE001 - located, like a chunk's error
                    self._fail(gen_name, plans, exc)
                self.runs.append((gen_name, plans, run))

    def wait(self, name: str) -> None:
        """Take chunks until ``name``'s is taken."""
        if name in self.pending:
            with stage_timer(self.ctx.report, GenerateStage.name):
                while name in self.pending:
                    self._take()

    def poll(self) -> None:
        """Take the chunks whose results are in, without waiting."""
        if self.runs and self.runs[0][2].ready():
            with stage_timer(self.ctx.report, GenerateStage.name):
                while self.runs and self.runs[0][2].ready():
                    self._take()

    def finish(self) -> dict[str, list[np.ndarray]]:
        """Take every chunk; the frames of the sprites the workers did not process."""
        if self.runs:
            with stage_timer(self.ctx.report, GenerateStage.name):
                while self.runs:
                    self._take()
        return self.frames

    def cancel(self) -> None:
        """Drop the chunks not taken (an error elsewhere ended the build)."""
        for _, _, run in self.runs:
            run.cancel()
        self.runs = []
        self.pending.clear()

    def _take(self) -> None:
        ctx = self.ctx
        gen_name, plans, run = self.runs[0]
        try:
            results = run.take()
        except Exception as exc:  # noqa: BLE001 - see _fail
            self._fail(gen_name, plans, exc)
        for i, frames, png, done in results:
            plan = plans[i]
            frames = self.stage._accept(plan, frames, png)
            name = plan.spec.name
            if done is not None:  # the frames stayed in the worker
                ctx.processed[name] = done
            else:
                self.frames[name] = frames
                if self.on_frames is not None:
                    self.on_frames(name, frames)
            self.pending.discard(name)
            ctx.fresh.discard(name)
        if self.progress:
            ctx.advanced(GenerateStage.name, len(results))
        if not run.pending():
            self.runs.pop(0)
            run.finish()
            gen = run.generator
            if gen.last_stats:
                ctx.report.generator_stats[gen_name] = dict(gen.last_stats)
            review = getattr(gen, "last_review", None) or {}
            for plan in plans:  # the raw model images and grids, for the preview page
                if review.get(plan.spec.name):
                    ctx.cache.put_review(plan.gen_key, review[plan.spec.name])

    def _fail(self, gen_name: str, plans: list[SpritePlan], exc: Exception) -> NoReturn:
        """Cancel what is left and raise ``exc`` as the build reports it: bad input found
        only once generating (a truncated source, a LoRA that fits no module) located in
        the manifest, a generator bug as a failed build step."""
        self.cancel()
        if isinstance(exc, InvalidInput):
            raise InvalidInput([self.ctx.located(d, plans) for d in exc.diagnostics]) from exc
        if isinstance(exc, SparkyError):
            raise exc
        raise BuildFailed(
            Diagnostic(
                f"generator '{gen_name}' failed: {getattr(exc, 'type_name', type(exc).__name__)}: {exc}",
                stage="generate",
                sprite=plans[0].spec.name if len(plans) == 1 else None,
            )
        ) from exc


# --------------------------------------------------------------------------- process


_PROCESS_KEYS: dict[tuple, str] = {}
"""Process keys by their inputs, kept across builds (``watch`` keys hundreds of unchanged
sprites per edit); emptied when it reaches :data:`_PROCESS_KEYS_MAX` entries."""
_PROCESS_KEYS_MAX = 100_000


class ProcessStage(Stage):
    """Outline, then quantize to the sprite's palette (OKLab nearest, optional dither)."""

    name: ClassVar[str] = "process"

    def __init__(self, ctx: StageContext, generate: GenerateStage):
        self.ctx = ctx
        self.generate = generate
        self._keys: dict[str, str | None] = {}
        self._written: set[str] = set()
        """Keys whose cache entry a worker wrote (:meth:`save` adopts them)."""

    def key(self, item: str, ev: Evaluator) -> str | None:
        if item in self._keys:
            return self._keys[item]
        ctx = self.ctx
        plan = ctx.project.sprites[item]
        content: str | None = plan.gen_key
        if plan.lockable:
            ctx.settle(item)
            entry = ctx.store.entries.get(item)
            current = entry is not None and entry.key == plan.gen_key and item not in ctx.fresh
            content = entry.sha256 if current else None  # a plan cannot know what generating will make
        key = None if content is None else process_key(content, plan.palette, plan.spec.outline, plan.spec.dither)
        self._keys[item] = key
        return key

    def is_cached(self, item: str, key: str, ev: Evaluator) -> bool:
        if self._made_by_worker(item, key):
            return False
        warm = self.ctx.warm
        return (warm is not None and key in warm.processed) or self.ctx.cache.has(self.name, key)

    def _made_by_worker(self, item: str, key: str) -> bool:
        """Processed by the worker that generated it in this build (which may have written
        the cache entry too): computed — from what the worker made — not loaded."""
        done = self.ctx.processed.get(item)
        return done is not None and done[0] == key

    def load(self, item: str, key: str, ev: Evaluator) -> list[np.ndarray] | None:
        if self._made_by_worker(item, key):
            return None
        warm = self.ctx.warm
        frames = warm.get(key) if warm is not None else None
        if frames is None:
            hit = self.ctx.cache.get_arrays(self.name, key)
            frames = hit[1] if hit else None
            if frames is not None and warm is not None:
                warm.put(key, frames)
        return frames

    def inputs(self, item: str, ev: Evaluator) -> Iterable[tuple[Stage, Any]]:
        return [(self.generate, item)]

    def _premade(self, item: str, ev: Evaluator) -> list[np.ndarray] | None:
        """What the worker that generated ``item`` made of it (this build's key only)."""
        done = self.ctx.processed.get(item)
        if done is None or done[0] != self.key(item, ev):
            return None
        if done[2]:
            self._written.add(done[0])
        return done[1]

    def compute(self, item: str, ev: Evaluator) -> list[np.ndarray]:
        self.ctx.planned(self.name, 1)  # the serial walk: one sprite at a time, as the atlases need them
        frames = self._premade(item, ev)
        if frames is None:
            plan = self.ctx.project.sprites[item]
            frames = [process_frame(plan, f) for f in ev.demand(self.generate, item)]
        self.ctx.advanced(self.name)
        return frames

    def compute_many(self, items: list[str], ev: Evaluator) -> list[list[np.ndarray]]:
        """Sprites in chunks on the build's executor (each sprite is independent); those
        the generating workers processed already are taken as they are."""
        ctx = self.ctx
        out: list[list[np.ndarray] | None] = [self._premade(n, ev) for n in items]
        todo = [i for i, frames in enumerate(out) if frames is None]
        root = ctx.worker_cache_root()
        jobs = []
        for i in todo:
            plan = ctx.project.sprites[items[i]]
            frames = ev.demand(self.generate, items[i])
            jobs.append((frames, plan.palette, plan.spec.outline, plan.spec.dither, self.key(items[i], ev), root))
        ctx.planned(self.name, len(items))
        ctx.advanced(self.name, len(items) - len(jobs))  # processed by the workers that generated them
        told = 0

        def progress(n: int) -> None:  # n of this call's jobs are done
            nonlocal told
            ctx.advanced(self.name, n - told)
            told = n

        done = ctx.executor.map(process_chunk, ctx.executor.chunks(jobs, 16), progress)
        for i, job, (frames, written) in zip(todo, jobs, (result for chunk in done for result in chunk)):
            out[i] = frames
            if written:
                self._written.add(job[4])
        return out  # type: ignore[return-value]

    def pixels(self, item: str, ev: Evaluator) -> list[np.ndarray]:
        """The sprite's processed frames as pixels. Where a worker wrote the cache entry,
        the value holds only the frames' shapes (:class:`~.executor.FrameShape`: the
        pixels stayed in the worker); they are read from the entry then — or made again
        if it is gone."""
        frames = ev.demand(self, item)
        if not _shapes_only(frames):
            return frames
        plan = self.ctx.project.sprites[item]
        hit = self.ctx.cache.get_arrays(self.name, self.key(item, ev))
        shapes = [(f.shape, f.dtype) for f in frames]
        if hit is not None and [(f.shape, f.dtype) for f in hit[1]] == shapes:
            pixels = hit[1]
        else:
            pixels = process_frames(ev.demand(self.generate, item), plan.palette, plan.spec.outline, plan.spec.dither)
        ev.remember(self, item, pixels)
        return pixels

    def save(self, item: str, key: str, value: list[np.ndarray], ev: Evaluator) -> None:
        if key in self._written:  # a worker wrote it
            self.ctx.cache.adopt(self.name, key)
        else:
            self.ctx.cache.put_arrays(self.name, key, {}, value)
        if self.ctx.warm is not None and not _shapes_only(value):
            self.ctx.warm.put(key, value)


def _shapes_only(frames: list) -> bool:
    """Whether a process value holds only its frames' shapes (a worker kept the pixels)."""
    return any(isinstance(f, FrameShape) for f in frames)


def process_key(content: str, palette, outline, dither) -> str:
    """The process stage's key: ``content`` is the generated frames' identity (the store
    PNG's SHA-256 for a locked sprite, else the generate key). Worker processes compute
    it too (:func:`.executor.generate_chunk`); memoised across builds."""
    # the types too: True == 1 in a tuple, not in the JSON that is hashed
    inputs = (content, palette.digest(), type(outline), outline, type(dither), dither)
    key = _PROCESS_KEYS.get(inputs)
    if key is None:
        key = canonical_hash(
            {
                "stage": ProcessStage.name,
                "engine": ENGINE_VERSION,
                "quantize": QUANTIZE_VERSION,
                "content": content,
                "palette": inputs[1],
                "outline": outline,
                "dither": dither,
            }
        )
        if len(_PROCESS_KEYS) >= _PROCESS_KEYS_MAX:
            _PROCESS_KEYS.clear()
        _PROCESS_KEYS[inputs] = key
    return key


def process_frame(plan: SpritePlan, frame: np.ndarray) -> np.ndarray:
    return process_frames([frame], plan.palette, plan.spec.outline, plan.spec.dither)[0]


def process_frames(frames: list[np.ndarray], palette, outline, dither: str) -> list[np.ndarray]:
    """Outline (``True``: the palette's darkest colour, or ``#rrggbb``), then quantize."""
    if outline:
        color = darkest(palette.colors) if outline is True else tuple(int(outline[i : i + 2], 16) for i in (1, 3, 5))
        frames = [add_outline(f, color) for f in frames]
    return [quantize_to_palette(f, palette, dither) for f in frames]


# --------------------------------------------------------------------------- pack


class PackStage(Stage):
    """An atlas's pages: MaxRects placement (memoised on the frame sizes: the ``layout``
    cache), then composition of the processed frames."""

    name: ClassVar[str] = "pack"

    def __init__(self, ctx: StageContext, process: ProcessStage):
        self.ctx = ctx
        self.process = process
        self._keys: dict[str, str | None] = {}
        self._written: set[str] = set()
        """Keys whose cache entry a worker wrote (:meth:`save` adopts them)."""

    def label(self, item: AtlasSpec) -> str:
        return item.name

    def key(self, item: AtlasSpec, ev: Evaluator) -> str | None:
        if item.name in self._keys:
            return self._keys[item.name]
        sprites = self.ctx.project.sprites
        process_keys = [self.process.key(n, ev) for n in item.sprites]
        key = None
        if None not in process_keys:
            key = canonical_hash(
                {
                    "stage": self.name,
                    "engine": ENGINE_VERSION,
                    "pack": PACK_VERSION,
                    "name": item.name,
                    "settings": [
                        item.max_width,
                        item.max_height,
                        item.padding,
                        item.extrude,
                        item.power_of_two,
                        item.square,
                        item.trim,
                    ],
                    "sprites": [
                        [
                            n,
                            k,
                            [
                                [a.name, a.frames, a.fps, a.loop]
                                + ([a.base, a.direction] if a.direction else [])
                                + (["timing", list(a.durations), a.playback, a.repeat] if a.timed else [])
                                + (["pivot", list(a.pivot)] if a.pivot is not None else [])
                                for a in sprites[n].spec.animations
                            ],
                        ]
                        + (_placement(sprites[n].spec) if sprites[n].spec.placed else [])
                        for n, k in zip(item.sprites, process_keys)
                    ],
                }
            )
        self._keys[item.name] = key
        return key

    def is_cached(self, item: AtlasSpec, key: str, ev: Evaluator) -> bool:
        return self.ctx.cache.has(self.name, key)

    def load(self, item: AtlasSpec, key: str, ev: Evaluator) -> PackedAtlas | None:
        hit = self.ctx.cache.get_arrays(self.name, key)
        return _atlas_from_cache(item.name, *hit) if hit is not None else None

    def inputs(self, item: AtlasSpec, ev: Evaluator) -> Iterable[tuple[Stage, Any]]:
        return [(self.process, n) for n in item.sprites]

    def _frames(self, item: AtlasSpec, ev: Evaluator, refs: bool = False) -> tuple[list[FrameInput], list[tuple]]:
        """The atlas's processed frames and animations, as :func:`build_atlas` takes them.
        ``refs``: a frame whose cache entry a worker wrote is a :class:`FrameRef` (a
        pack worker reads it itself)."""
        ctx = self.ctx
        inputs, animations = [], []
        for n in item.sprites:
            spec = ctx.project.sprites[n].spec
            frames = ev.demand(self.process, n)
            key = self.process.key(n, ev)
            if refs and key in self.process._written:
                frames = [FrameRef(key, k) for k in range(len(frames))]
            else:
                frames = self.process.pixels(n, ev)
            if spec.animations:
                k = 0
                for a in spec.animations:
                    for i in range(a.frames):
                        inputs.append(FrameInput(n, a.name, i, frames[k]))
                        k += 1
                    animations.append((n, a.name, a.fps, a.loop, a.durations, a.playback, a.repeat))
            else:
                inputs.append(FrameInput(n, None, 0, frames[0]))
        return inputs, animations

    def compute(self, item: AtlasSpec, ev: Evaluator) -> PackedAtlas:
        self.ctx.planned(self.name, 1)  # counted like the serial walk's process: as the atlases come
        packed = self._pack_here(item, ev)
        self.ctx.advanced(self.name)
        return packed

    def _pack_here(self, item: AtlasSpec, ev: Evaluator) -> PackedAtlas:
        inputs, animations = self._frames(item, ev)
        try:
            return build_atlas(
                item.name,
                inputs,
                animations,
                **_atlas_settings(item),
                pack=lambda sizes, w, h, **settings: layout(self.ctx.cache, sizes, w, h, ev.force, **settings),
            )
        except PackError as exc:  # the manifest check should have caught it; still the user's settings
            raise self._pack_error(item, str(exc)) from None

    def start(self, item: AtlasSpec, ev: Evaluator) -> _PackRun:
        """On a parallel executor an atlas's work is a task (the build goes on with the
        next atlas): where the workers share the cache, one task packs it, composes its
        pages and PNG-encodes them (:func:`pack_in_worker`); where they cannot reach it
        (Ray nodes, ``watch``'s deferred writes) the atlas is packed here, next to the
        layout cache, and the pages a long-lived builder cannot reuse are encoded on a
        worker when they are big (:data:`ENCODE_TASK_BYTES`). Either way every byte is
        the serial build's. Where no worker is running yet, the atlas is packed here."""
        ctx = self.ctx
        root = ctx.worker_cache_root()
        if not ctx.executor.running():  # no workers up (an edit's one atlas): not worth starting them
            return _PackRun(self.compute(item, ev))
        if root is not None:
            ctx.planned(self.name, 1)  # done when finish takes the worker's atlas
            job = PackJob(
                item.name,
                *self._frames(item, ev, refs=True),
                _atlas_settings(item),
                ev.force,
                self.key(item, ev),
                root,
                _candidates(ctx, item),
                ctx.options.fast_png,
            )
            return _PackRun(None, ctx.executor.submit(pack_chunk, [job]))
        packed = self.compute(item, ev)
        reused = _reused_pages(ctx, item.name, packed.pages)
        missing = [page for page, png in zip(packed.pages, reused) if png is None]
        if sum(page.nbytes for page in missing) < ENCODE_TASK_BYTES:
            return _PackRun(packed)  # encoded by the export stage, here
        job = (tuple(missing), _candidates(ctx, item), ctx.options.fast_png)
        return _PackRun(packed, ctx.executor.submit(encode_chunk, [job]), reused)

    def ready(self, item: AtlasSpec, started: _PackRun) -> bool:
        return started.task is None or started.task.done()

    def cancel(self, item: AtlasSpec, started: _PackRun) -> None:
        if started.task is not None:
            started.task.cancel()

    def finish(self, item: AtlasSpec, started: _PackRun, ev: Evaluator) -> PackedAtlas:
        ctx = self.ctx
        if started.task is None:
            return started.packed
        if started.packed is not None:  # the pages were encoding on a worker
            (encoded,) = started.task.result()
            fresh = iter(encoded)
            pngs = tuple(png if png is not None else next(fresh) for png in started.reused)
            ctx.pages_png[item.name] = pngs
            _remember_pages(ctx, item.name, started.packed.pages, pngs)
            return started.packed
        ((packed, pngs, written, warnings, error),) = started.task.result()
        if error is not None:
            raise self._pack_error(item, error)
        if packed is None:  # the worker could not read a frame: packed here (pages encoded by export)
            packed = self._pack_here(item, ev)
        else:
            ctx.cache.warnings.extend(warnings)
            if written:
                self._written.add(self.key(item, ev))
            ctx.pages_png[item.name] = pngs
            if not written:  # else its pages came back as shapes (the exporters need no more)
                _remember_pages(ctx, item.name, packed.pages, pngs)
        ctx.advanced(self.name)
        return packed

    def _pack_error(self, item: AtlasSpec, message: str) -> InvalidInput:
        key = f"atlas[{item.index}].max_size" if not item.implicit else f"sprite[{item.index}]"
        line, col = self.ctx.project.locator(key)
        return InvalidInput(
            Diagnostic(message, file=str(self.ctx.manifest.path), line=line, column=col, key=key, stage="pack")
        )

    def save(self, item: AtlasSpec, key: str, value: PackedAtlas, ev: Evaluator) -> None:
        if key in self._written:  # a worker wrote it
            self.ctx.cache.adopt(self.name, key)
        else:
            self.ctx.cache.put_arrays(self.name, key, _atlas_meta(value), list(value.pages))


def _atlas_settings(item: AtlasSpec) -> dict[str, Any]:
    return dict(
        max_width=item.max_width,
        max_height=item.max_height,
        padding=item.padding,
        extrude=item.extrude,
        trim=item.trim,
        power_of_two=item.power_of_two,
        square=item.square,
    )


def layout(cache: StageCache | None, sizes, max_width, max_height, force: bool, **settings) -> PackResult:
    """:func:`pack_maxrects`, memoised on the sizes and settings (the ``layout`` cache):
    re-quantized frames keep their sizes, so their atlas is only recomposed."""
    key = canonical_hash(
        {
            "stage": "layout",
            "engine": ENGINE_VERSION,
            "sizes": list(sizes),
            "max": [max_width, max_height],
            **settings,
        }
    )
    payload = None if force or cache is None else cache.get("layout", key)
    if payload is not None:
        try:
            doc = json.loads(payload)
            return PackResult(tuple(Placement(*p) for p in doc["placements"]), tuple(map(tuple, doc["pages"])))
        except (ValueError, KeyError, TypeError):
            cache.warnings.append(f"cache entry layout/{key[:12]} did not decode; rebuilt")  # type: ignore[union-attr]
    result = pack_maxrects(sizes, max_width, max_height, **settings)
    doc = {
        "placements": [[p.page, p.x, p.y] for p in result.placements],
        "pages": [list(p) for p in result.page_sizes],
    }
    if cache is not None:
        cache.put("layout", key, json.dumps(doc).encode())
    return result


@dataclass(frozen=True)
class FrameRef:
    """A processed frame a pack job does not carry (:func:`pack_in_worker` reads it
    itself): its sprite's process key and its index among the sprite's frames. Only
    for entries a worker wrote into the cache the job's worker shares."""

    key: str
    index: int


_KEPT: OrderedDict[str, list[np.ndarray]] = OrderedDict()
"""A worker's processed frames by process key — those it wrote into the cache — so that
a pack job sent to it reads them from memory instead (bounded: :data:`_KEPT_BYTES`)."""
_KEPT_BYTES = 64 << 20
_kept_bytes = 0


def keep_processed(key: str, frames: list[np.ndarray]) -> None:
    """Remember a worker's processed frames (written into the cache under ``key``)."""
    global _kept_bytes
    if key in _KEPT:
        return
    _KEPT[key] = frames
    _kept_bytes += sum(f.nbytes for f in frames)
    while _kept_bytes > _KEPT_BYTES and _KEPT:
        _kept_bytes -= sum(f.nbytes for f in _KEPT.popitem(last=False)[1])


def _with_frames(inputs: list[FrameInput], cache: StageCache | None) -> list[FrameInput] | None:
    """``inputs`` with every :class:`FrameRef` replaced by its frame (this worker's
    memory, else the cache entry, verified); None where one cannot be read."""
    found: dict[str, list[np.ndarray]] = {}
    out = []
    for i in inputs:
        ref = i.image
        if isinstance(ref, FrameRef):
            frames = found.get(ref.key)
            if frames is None:
                frames = _KEPT.get(ref.key)
                if frames is None:
                    hit = cache.get_arrays("process", ref.key) if cache is not None else None
                    if hit is None:
                        return None
                    frames = hit[1]
                found[ref.key] = frames
            if ref.index >= len(frames):
                return None
            i = replace(i, image=frames[ref.index])
        out.append(i)
    return out


@dataclass
class PackJob:
    """One atlas for :func:`pack_in_worker`: its frames, animations and settings, the
    pack key (the worker writes the entry under it), the build's cache folder (the
    worker shares its disk), and how its pages are encoded."""

    name: str
    inputs: list[FrameInput]
    animations: list[tuple]
    settings: dict[str, Any]
    force: bool
    key: str | None
    cache: str
    candidates: np.ndarray
    fast: bool


@dataclass
class _PackRun:
    """An atlas :meth:`PackStage.start` began: packed here (``packed``) or in a worker
    (``packed`` None), and the task (pack, or encode the pages not ``reused``) if any."""

    packed: PackedAtlas | None
    task: Task | None = None
    reused: list[bytes | None] = field(default_factory=list)


def pack_in_worker(job: PackJob) -> tuple:
    """Pack and compose an atlas, encode its pages and write its pack and layout
    entries into the shared cache. Returns (the atlas — its pages as
    :class:`~.executor.FrameShape` s where the pack entry holds them —, its pages' PNG
    bytes, whether the pack entry was written, cache warnings, a :class:`PackError`'s
    message or None). A pack entry that could not be written is left to the build (which writes
    it and warns if that fails too), so its warning is not returned."""
    cache = worker_cache(job.cache)
    inputs = _with_frames(job.inputs, cache)
    if inputs is None:  # an entry the job refers to is gone: the build packs this atlas itself
        return None, (), False, [], None
    try:
        packed = build_atlas(
            job.name,
            inputs,
            job.animations,
            **job.settings,
            pack=lambda sizes, w, h, **settings: layout(cache, sizes, w, h, job.force, **settings),
        )
    except PackError as exc:
        return None, (), False, [], str(exc)
    pngs = tuple(encode_png(p, job.candidates, fast=job.fast) for p in packed.pages)
    warnings = list(cache.warnings) if cache is not None else []
    written = job.key is not None and put_arrays_from_worker(
        cache, "pack", job.key, _atlas_meta(packed), list(packed.pages)
    )
    if written:  # the pixels are in the cache entry and the PNGs: only the pages' shapes travel back
        packed = replace(packed, pages=tuple(FrameShape(p.shape, p.dtype) for p in packed.pages))
    return packed, pngs, written, warnings, None


# --------------------------------------------------------------------------- export


class ExportStage(Stage):
    """One target's files for one atlas (the exporter never touches the disk)."""

    name: ClassVar[str] = "export"

    def __init__(self, ctx: StageContext, pack: PackStage):
        self.ctx = ctx
        self.pack = pack

    def label(self, item: tuple[AtlasSpec, ExportSpec]) -> str:
        return f"{item[0].name}:{item[1].target}"

    def key(self, item: tuple[AtlasSpec, ExportSpec], ev: Evaluator) -> str | None:
        atlas, target = item
        pack_key = self.pack.key(atlas, ev)
        if pack_key is None:
            return None
        return canonical_hash(
            {
                "stage": self.name,
                "engine": ENGINE_VERSION,
                "png": [PNG_VERSION, "fast" if self.ctx.options.fast_png else "small"],
                "pack": pack_key,
                "target": target.target,
                "root": target.root.relative_to(self.ctx.manifest.root).as_posix(),
                "settings": dict(target.settings),
                "version": exporter(target.target).version,
            }
        )

    def is_cached(self, item, key: str, ev: Evaluator) -> bool:
        return self.ctx.cache.has(self.name, key)

    def load(self, item, key: str, ev: Evaluator) -> dict[str, OutputFile] | None:
        payload = self.ctx.cache.get(self.name, key)
        return _files_from_bytes(payload) if payload is not None else None

    def inputs(self, item, ev: Evaluator) -> Iterable[tuple[Stage, Any]]:
        return [(self.pack, item[0])]

    def compute(self, item: tuple[AtlasSpec, ExportSpec], ev: Evaluator) -> dict[str, OutputFile]:
        ctx = self.ctx
        atlas, target = item
        packed = ev.demand(self.pack, atlas)
        if atlas.name not in ctx.pages_png:  # encoded once, shared by every target
            ctx.pages_png[atlas.name] = self._encode_pages(atlas.name, packed.pages, _candidates(ctx, atlas))
        export_context = ExportContext(ctx.manifest, target, ctx.pages_png[atlas.name], dict(target.settings))
        try:
            return exporter(target.target).export(packed, export_context)
        except InvalidInput as exc:  # an export setting the data cannot satisfy: point at the setting
            located = []
            for d in exc.diagnostics:
                line, col = ctx.project.locator(d.key) if d.key and d.file is None else (d.line, d.column)
                located.append(replace(d, file=d.file or str(ctx.manifest.path), line=line, column=col))
            raise InvalidInput(located) from None

    def _encode_pages(self, name: str, pages: tuple[np.ndarray, ...], candidates: np.ndarray) -> tuple[bytes, ...]:
        """The pages' PNG bytes (those a long-lived builder can reuse: :func:`_reused_pages`)."""
        fast = self.ctx.options.fast_png
        out = tuple(
            png if png is not None else encode_png(page, candidates, fast=fast)
            for page, png in zip(pages, _reused_pages(self.ctx, name, pages))
        )
        _remember_pages(self.ctx, name, pages, out)
        return out

    def save(self, item, key: str, value: dict[str, OutputFile], ev: Evaluator) -> None:
        self.ctx.cache.put(self.name, key, _files_to_bytes(value))


def _candidates(ctx: StageContext, atlas: AtlasSpec) -> np.ndarray:
    """The colours an atlas's pages can hold (speeds up their PNG encoding)."""
    colors = {c for n in atlas.sprites for c in ctx.project.sprites[n].palette.colors}
    return np.array(sorted({0} | {(r << 24) | (g << 16) | (b << 8) | 255 for r, g, b in colors}), dtype=np.uint32)


def _reused_pages(ctx: StageContext, name: str, pages) -> list[bytes | None]:
    """Per page, its PNG bytes from a long-lived builder's (``watch``) last build of the
    atlas where its pixels and PNG mode are unchanged (an edit that re-quantized a
    sprite on another page), else None: the bytes depend on nothing else (the candidate
    colours only speed up indexing)."""
    setting = (PNG_VERSION, ctx.options.fast_png)
    before = ctx.warm.pages.get(name, ()) if ctx.warm is not None else ()
    out: list[bytes | None] = []
    for i, page in enumerate(pages):
        last = before[i] if i < len(before) else None
        out.append(last[2] if last is not None and last[1] == setting and np.array_equal(last[0], page) else None)
    return out


def _remember_pages(ctx: StageContext, name: str, pages, pngs) -> None:
    """A long-lived builder keeps an atlas's last pages and their PNG bytes."""
    if ctx.warm is not None:
        setting = (PNG_VERSION, ctx.options.fast_png)
        ctx.warm.pages[name] = [(page, setting, data) for page, data in zip(pages, pngs)]


@dataclass
class Stages:
    """The graph of one build: export → pack → process → generate."""

    generate: GenerateStage
    process: ProcessStage
    pack: PackStage
    export: ExportStage

    @classmethod
    def of(cls, ctx: StageContext) -> Stages:
        generate = GenerateStage(ctx)
        process = ProcessStage(ctx, generate)
        pack = PackStage(ctx, process)
        return cls(generate, process, pack, ExportStage(ctx, pack))


def export_all(
    ev: Evaluator, stages: Stages, atlases: list[AtlasSpec], targets: list[ExportSpec]
) -> dict[Path, tuple[ExportSpec, str, OutputFile]]:
    """Every selected (atlas, target)'s files by output path; two outputs wanting the
    same path is bad input. In a plan walk nothing is returned."""
    ctx = stages.export.ctx
    out: dict[Path, tuple[ExportSpec, str, OutputFile]] = {}
    if ev.action == "build":
        ctx.planned(stages.export.name, len(atlases) * len(targets))
    if ev.action == "build" and ctx.executor.parallel:
        _pipeline(ev, stages, atlases, targets)
    for atlas, target in ((a, t) for a in atlases for t in targets):
        files = ev.demand(stages.export, (atlas, target))
        if ev.action == "plan":
            continue
        for rel, f in files.items():
            path = target.root / rel
            if path in out:
                other_target, _, other = out[path]
                raise InvalidInput(
                    Diagnostic(
                        f"two outputs want the same file {ctx.manifest.relative(path)}: {target.target} export of atlas "
                        f"'{atlas.name}' and {other_target.target} export of atlas '{other.atlas}'",
                        stage="export",
                        hint="give each export target its own dir"
                        if other_target.target != target.target
                        else "rename a sprite or an atlas so their file names differ",
                    )
                )
            out[path] = (target, rel, f)
        ctx.advanced(stages.export.name)
    return out


def _pipeline(ev: Evaluator, stages: Stages, atlases: list[AtlasSpec], targets: list[ExportSpec]) -> None:
    """What :func:`export_all`'s walk would compute, made atlas by atlas while the
    executor's workers run: an atlas is planned as soon as its sprites are generated
    (:meth:`StageContext.settle` waits for them), the sprites it needs processed are
    processed in chunks, its pack is started (a task: :meth:`PackStage.start`) and, once
    it and every atlas before it are in, its exports are made here — the build's own
    work overlaps the workers'. Values are taken in atlas order: what is saved and
    reported never depends on timing."""
    ctx = stages.export.ctx
    running: deque[tuple[Started | None, list]] = deque()

    def take_first() -> None:
        started, exports = running.popleft()
        ev.finish(started)
        ev.demand_many(stages.export, exports)

    try:
        for atlas in atlases:
            planned = ev.would_run(stages.export, [(atlas, t) for t in targets])
            ev.demand_many(stages.process, [item for s, item in planned if s is stages.process])
            started = ev.start(stages.pack, atlas) if any(s is stages.pack for s, _ in planned) else None
            running.append((started, [item for s, item in planned if s is stages.export]))
            while running and (running[0][0] is None or running[0][0].ready()):
                take_first()
            if ctx.batch is not None:
                ctx.batch.poll()  # progress, and the store, as chunks come in
        while running:
            take_first()
    finally:
        for started, _ in running:  # an error: drop what no one will take
            if started is not None:
                started.cancel()


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
