"""Where a build's independent work runs: this process, a local process pool, or Ray.

The :class:`~.graph.Evaluator` still decides *what* runs (memo → cache → compute) and
every value comes back to the build's process, which alone writes ``sparky.lock``,
``sparky-generated/`` and the outputs — in the same order as a serial build, so the
files are byte-identical whichever executor made them. An executor only runs chunks
of independent work — a :class:`Task` each (:meth:`Executor.submit`), or a batch of them
whose results come back in submission order (:meth:`Executor.map`) — and the build takes
the results in an order of its own, never in the order they happen to finish:

* generation of locked sprites (:meth:`Executor.start_generate`, taken chunk by chunk
  by ``stages.GenerationBatch`` while the walk goes on): one call per chunk of
  requests. A generator that ``runs_on = "cpu"`` (procedural) is split into chunks over
  the workers, which also process (outline + quantize) what they generated
  (:class:`ProcessAfter`), so a sprite's frames cross the process boundary once: the
  processed frames and the store PNG come back, the generated frames stay (only their
  shapes come back, :class:`FrameShape`). A ``"device"`` generator (diffusion) runs in
  this process locally and, on Ray, in one long-lived actor per GPU (``num_gpus=1``;
  one per node on a CPU-only cluster) that keeps its pipelines loaded across sprites
  and builds;
* processing of sprites whose generated art was not made by this build, in chunks;
* packing and composing an atlas, and PNG-encoding its pages, one atlas per task, where
  the workers share the build's cache (``--jobs``); on Ray the build packs (next to the
  layout cache: a re-quantized atlas keeps its layout) and a worker encodes big pages.

Workers that share the build's disk (``--jobs``: :attr:`Executor.shared_disk`) write
the content-addressed stage-cache entries they compute (process, pack, layout) with
the cache's own atomic write (temp file + rename: a killed worker leaves complete
entries or none), and the build adopts them instead of writing them again; a Ray
worker may be on another machine, so there the build writes them.

:class:`SerialExecutor` (``--jobs 1``) is the plain in-process path; :class:`LocalExecutor`
(``--jobs N``) a pool of N processes; :class:`RayExecutor` (``--executor ray``) a Ray
cluster. A pool or a cluster is started/connected on the first batch worth sending, i.e.
after the manifest was loaded and validated, so bad input never reaches a worker.
Work is chunked so that a task carries many sprites (Ray's per-task cost is a few
milliseconds; a sprite's work is about as much).

Failures: a worker's own error (bad input found while generating, a generator bug)
comes back as the same typed error a serial build raises. A Ray worker or node that
dies is Ray's business: tasks are retried (``max_retries``) and actors restarted
(``max_restarts`` / ``max_task_retries``) elsewhere — the build waits for the result.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import BuildFailed, Diagnostic, SparkyError

RAY_NAMESPACE = "sparky-assets"
TASK_RETRIES = 3
"""Ray retries a task whose worker died this many times (system failures only)."""
ACTOR_RESTARTS = 4
"""Ray restarts a generation actor whose worker or node died this many times. Its
calls are retried without a limit of their own (``max_task_retries=-1``): Ray waits
(with backoff) while the actor is unreachable or restarting — a dead node is noticed
only after its health checks fail — and gives up when the actor is dead for good."""

Progress = Callable[[int], None]
"""Called with the number of items done so far as chunks finish."""


def default_jobs() -> int:
    """The cores this process may use (``--jobs`` default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------- the work itself
# Module-level functions: a pool or a Ray worker imports them by name.


class WorkerError(Exception):
    """An unexpected exception in a worker (a generator bug), re-raised in the build
    with the worker's type name and traceback."""

    def __init__(self, type_name: str, message: str, trace: str):
        super().__init__(message)
        self.type_name = type_name
        self.trace = trace


@dataclass
class _Outcome:
    ok: bool
    value: Any = None
    error: tuple | None = None


def _call(fn: Callable, *args) -> _Outcome:
    """Run ``fn(*args)``; an exception is returned as data (typed errors keep their
    class and diagnostics) instead of crossing the process boundary as an exception."""
    try:
        return _Outcome(True, fn(*args))
    except SparkyError as exc:
        return _Outcome(False, error=("sparky", type(exc).__name__, exc.diagnostics))
    except Exception as exc:  # noqa: BLE001 - re-raised in the build, see _unwrap
        return _Outcome(False, error=("other", type(exc).__name__, str(exc), traceback.format_exc()))


def _unwrap(outcome: _Outcome) -> Any:
    if outcome.ok:
        return outcome.value
    assert outcome.error is not None
    if outcome.error[0] == "sparky":
        from .. import errors

        cls = getattr(errors, outcome.error[1], BuildFailed)
        raise cls(outcome.error[2])
    _, type_name, message, trace = outcome.error
    raise WorkerError(type_name, message, trace)


@dataclass(frozen=True)
class FrameShape:
    """A generated frame that stayed in the worker (its processed form came back
    instead): its shape and type, all the build checks of it."""

    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class ProcessAfter:
    """Process locked sprites in the worker that generated them: per request its
    (palette, outline, dither), or None to leave it to the build's walk. ``cache``: the
    stage cache's folder when the worker shares the build's disk (it writes the process
    entries), else None; ``force``: process even where the entry exists (``--force``)."""

    specs: list
    cache: str | None = None
    force: bool = False


def generate_chunk(
    generator_name: str, requests: list, process: ProcessAfter | None = None
) -> tuple[list[list[np.ndarray]], dict, Any, dict, list, list | None]:
    """One chunk of a generator's requests: (frames per request, the generator's
    ``last_stats``, the files it read, its ``last_review``, each request's store PNG —
    encoded here too, off the build's process — and, with ``process``, each request's
    (process key, processed frames — their shapes where the worker wrote the cache entry
    —, whether it did) or None where the build processes it; a processed request's
    generated frames are :class:`FrameShape` s)."""
    from .. import registry
    from ..reads import ReadContext
    from .store import store_png

    reads = ReadContext()
    gen = registry.generator(generator_name)
    frames = gen.generate(requests, reads)
    pngs = [store_png(f) if len(f) else None for f in frames]
    processed = None
    if process is not None:
        processed = _process_generated(requests, frames, pngs, process)
        frames = [
            fs if done is None else [FrameShape(f.shape, f.dtype) for f in fs] for fs, done in zip(frames, processed)
        ]
    stats, review = dict(gen.last_stats or {}), dict(getattr(gen, "last_review", None) or {})
    return frames, stats, reads, review, pngs, processed


def frames_as_asked(frames: list, count: int, height: int, width: int, kinds: tuple = (np.ndarray,)) -> bool:
    """Whether a generator returned what its request asked for: ``count`` frames, each
    one of ``kinds`` holding height × width RGBA bytes (checked in that order, so any
    object a plugin returns gets an answer, never an AttributeError)."""
    expected = (height, width, 4)
    return len(frames) == count and all(
        isinstance(f, kinds) and f.shape == expected and f.dtype == np.uint8 for f in frames
    )


def _process_generated(requests: list, frames: list, pngs: list, process: ProcessAfter) -> list:
    """:func:`generate_chunk`'s processing: the key is the one the build computes from
    the store PNG's hash (:func:`.stages.process_key`). A request whose frames are not
    what it asked for is left to the build (which reports it), and so is one whose
    entry is already in the cache (the build reads it)."""
    from .cache import worker_cache
    from .stages import process_frames, process_key

    cache = worker_cache(process.cache)
    out: list = []
    for request, sprite_frames, png, spec in zip(requests, frames, pngs, process.specs):
        if (
            spec is None
            or png is None
            or not frames_as_asked(sprite_frames, len(request.frames), request.height, request.width)
        ):
            out.append(None)
            continue
        palette, outline, dither = spec
        key = process_key(hashlib.sha256(png).hexdigest(), palette, outline, dither)
        if cache is not None and not process.force and cache.has("process", key):
            out.append(None)
            continue
        done = process_frames(sprite_frames, palette, outline, dither)
        out.append((key, *_kept(cache, key, done)))
    return out


def _kept(cache, key: str, frames: list[np.ndarray]) -> tuple[list, bool]:
    """A worker's processed frames written into the cache under ``key``: kept in its
    memory (a pack job it runs reads them there, :func:`.stages.keep_processed`) and
    only their shapes go back — the build reads the entry if it ever needs the pixels.
    Where the entry could not be written, the frames go back. Returns (what goes back,
    whether the entry was written)."""
    from .cache import put_arrays_from_worker
    from .stages import keep_processed

    if not put_arrays_from_worker(cache, "process", key, {}, frames):
        return frames, False
    keep_processed(key, frames)
    return [FrameShape(f.shape, f.dtype) for f in frames], True


def process_chunk(jobs: list[tuple]) -> list[tuple[list[np.ndarray], bool]]:
    """Outline + quantize: ``jobs`` are (frames, palette, outline, dither, process key,
    cache folder or None); per job the processed frames (their shapes where the worker
    wrote the cache entry: :func:`_kept`) and whether it did."""
    from .cache import worker_cache
    from .stages import process_frames

    caches: dict = {}
    out = []
    for frames, palette, outline, dither, key, root in jobs:
        done = process_frames(frames, palette, outline, dither)
        if root not in caches:
            caches[root] = worker_cache(root)
        out.append(_kept(caches[root], key, done))
    return out


def pack_chunk(jobs: list) -> list:
    """Pack, compose and encode atlases: ``jobs`` are :class:`.stages.PackJob` s."""
    from .stages import pack_in_worker

    return [pack_in_worker(job) for job in jobs]


def encode_chunk(jobs: list[tuple]) -> list[tuple[bytes, ...]]:
    """PNG-encode atlas pages: ``jobs`` are (pages, candidate colours, fast)."""
    from ..export.base import encode_png

    return [tuple(encode_png(p, candidates, fast=fast) for p in pages) for pages, candidates, fast in jobs]


def _generate_args(args: tuple):
    return generate_chunk(*args)


def warm_worker(arg: tuple[list, list[str]]) -> None:
    """Get a pool worker ready for a build's batches (:meth:`Executor.prepare`): ``arg``
    is (the colours of each palette it will lock many pixels against, the names of the
    ``cpu`` generators it will run) — their tables loaded, their first-call costs paid."""
    from .. import registry
    from ..process.quantize import prepare_palette

    palettes, generators = arg
    for colors in palettes:
        prepare_palette(colors)
    for name in generators:
        registry.generator(name).warm(palettes)


def noop_chunk(items: list) -> int:
    """Nothing (``bench/cluster.py`` measures a task's round trip with it)."""
    return len(items)


def chunked(items: Sequence, parts: int, min_size: int) -> list[list]:
    """``items`` in at most ``parts`` contiguous chunks of at least ``min_size`` (the last
    may be smaller), order kept."""
    items = list(items)
    if not items:
        return []
    parts = max(1, min(parts, len(items) // max(1, min_size)))
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


def guided_chunks(items: Sequence, slots: int, min_size: int) -> list[list]:
    """``items`` in contiguous chunks for ``slots`` workers, order kept, largest first:
    each chunk is a share of what is left (half of it over the slots), never under
    ``min_size`` nor a 32nd of a slot's share of the whole. Workers taking the next
    chunk as they finish end together: the last chunks are small, so none waits long
    on another's big one (guided self-scheduling)."""
    items = list(items)
    slots = max(1, slots)
    floor = max(1, min_size, len(items) // (32 * slots))
    out, i = [], 0
    while i < len(items):
        size = max(floor, -(-(len(items) - i) // (2 * slots)))
        out.append(items[i : i + size])
        i += size
    return out


def _weighed(chunks: Iterable, weights: list[int] | None) -> tuple[Iterable, list[int]]:
    """``chunks`` and their weights for progress (default: their lengths; the chunks are
    then listed first)."""
    if weights is None:
        chunks = list(chunks)
        weights = [len(c) for c in chunks]
    return chunks, weights


def merge_stats(parts: Sequence[dict]) -> dict:
    """Several chunks' ``last_stats`` as one: numbers add up, text is joined."""
    out: dict[str, Any] = {}
    for stats in parts:
        for k, v in stats.items():
            if k not in out:
                out[k] = v
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(out[k], (int, float)):
                out[k] = round(out[k] + v, 4) if isinstance(v, float) else out[k] + v
            elif v != out[k]:
                out[k] = f"{out[k]}; {v}"
    return out


# --------------------------------------------------------------- tasks


class Task:
    """One chunk of work handed to an executor (:meth:`Executor.submit`): :meth:`done`
    says, without waiting, whether its result is in; :meth:`result` waits for it and
    raises the worker's error the way a serial build would; :meth:`cancel` drops it if
    it has not started."""

    def done(self) -> bool:
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError

    def cancel(self) -> None:
        pass


class _Ready(Task):
    """Work run in the build's process, at once (its exception kept for :meth:`result`)."""

    def __init__(self, fn: Callable, *args):
        self._error: Exception | None = None
        try:
            self._value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - raised by result(), where the build takes it
            self._error = exc

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class Generation:
    """A generator's requests on an executor (:meth:`Executor.start_generate`): its chunks,
    taken in order — :meth:`take` waits for the next, :meth:`ready` says whether it is
    in — and, once all are taken, the generator's merged ``last_stats`` and
    ``last_review`` (:meth:`finish`)."""

    def __init__(self, generator, chunks: list[tuple[list[int], Task]], reads):
        self.generator = generator
        self.chunks = chunks
        self.reads = reads
        self.taken = 0
        self._stats: list[dict] = []
        self._review: dict[str, list] = {}

    def pending(self) -> bool:
        return self.taken < len(self.chunks)

    def ready(self) -> bool:
        """Whether the next chunk's result is in (taking it will not wait)."""
        return self.pending() and self.chunks[self.taken][1].done()

    def take(self) -> list[tuple[int, list, bytes | None, Any]]:
        """The next chunk's results, waiting for them: per request its index, frames,
        store PNG (None: the build encodes it) and what the worker processed of it (or
        None); the files it read go into the build's ``reads``."""
        indices, task = self.chunks[self.taken]
        self.taken += 1
        frames, stats, reads, review, pngs, processed = task.result()
        if reads is not None:
            self.reads.merge(reads)
        self._stats.append(stats)
        self._review.update(review)
        pngs = pngs or [None] * len(frames)
        processed = processed or [None] * len(frames)
        return list(zip(indices, frames, pngs, processed))

    def finish(self) -> None:
        self.generator.last_stats = merge_stats(self._stats)
        self.generator.last_review = self._review

    def cancel(self) -> None:
        for _, task in self.chunks[self.taken :]:
            task.cancel()


def _generate_here(generator, requests: list, reads) -> tuple:
    """:func:`generate_chunk` in the build's process, with the build's generator object
    (warm models) and ``reads``; the store PNGs are left to the build."""
    frames = generator.generate(requests, reads)
    review = dict(getattr(generator, "last_review", None) or {})
    return frames, dict(generator.last_stats or {}), None, review, None, None


# --------------------------------------------------------------- executors


class Executor:
    """Runs chunks of independent work; see the module docstring."""

    kind = "serial"
    parallel = False
    """Whether the build should hand work over in batches (False: the serial path)."""
    sent = 0
    """Chunks handed to workers so far (not run here)."""
    shared_disk = True
    """Whether workers see the build's files (they write their stage-cache entries)."""

    def describe(self) -> str:
        return "this process"

    def running(self) -> bool:
        """Whether workers are up (a pool started, a cluster connected)."""
        return False

    def slots(self) -> int:
        """How many chunks can run at once."""
        return 1

    def map(
        self, fn: Callable, chunks: Iterable, progress: Progress | None = None, weights: list[int] | None = None
    ) -> list:
        """``fn(chunk)`` for every chunk, results in order. ``progress`` gets the summed
        ``weights`` (default: chunk lengths) of the chunks done so far. With ``weights``
        (one per chunk), ``chunks`` may be an iterator that makes them as they are sent."""
        chunks, weights = _weighed(chunks, weights)
        out, done = [], 0
        for chunk, weight in zip(chunks, weights):
            out.append(fn(chunk))
            done += weight
            if progress:
                progress(done)
        return out

    def submit(self, fn: Callable, chunk: Any) -> Task:
        """Hand ``fn(chunk)`` over (here: run it now); its :class:`Task` gives the result."""
        return _Ready(fn, chunk)

    def start_generate(self, generator, requests: list, reads, process: ProcessAfter | None = None) -> Generation:
        """Start ``generator`` on ``requests``: here, in this process, now; a pool or a
        cluster splits them into chunks and returns at once. ``process``: where workers
        generate, they process what they made too (:func:`generate_chunk`)."""
        return Generation(
            generator, [(list(range(len(requests))), _Ready(_generate_here, generator, requests, reads))], reads
        )

    def close(self) -> None:
        pass

    def start_early(self) -> None:
        """Start what takes long to start, in the background, before there is work (a
        build that will surely hand work over calls it before reading the manifest)."""

    def prepare(self, warm: Callable[[Any], None], arg: Any) -> None:
        """Start the workers now, each running ``warm(arg)`` first (a build that will
        surely hand work over calls it once the manifest is read, before planning)."""

    # chunk sizes: a chunk should outweigh a task's fixed cost
    def chunks(self, items: Sequence, min_size: int) -> list[list]:
        return guided_chunks(items, self.slots(), min_size)

    def _generate_chunks(self, generator, requests, reads, process=None) -> Generation:
        """A ``cpu`` generator's requests in chunks, one task each."""
        chunks = self.chunks(range(len(requests)), 4)
        return Generation(
            generator,
            [
                (
                    c,
                    self.submit(
                        _generate_args,
                        (
                            generator.name,
                            [requests[i] for i in c],
                            None if process is None else replace(process, specs=[process.specs[i] for i in c]),
                        ),
                    ),
                )
                for c in chunks
            ],
            reads,
        )


SerialExecutor = Executor


def _pool_call(args: tuple) -> _Outcome:
    fn, chunk = args
    return _call(fn, chunk)


FORKSERVER_PRELOAD = ["sparky_assets.pipeline.executor", "sparky_assets.pipeline.stages"]
"""What a pool's fork server imports once, before it forks the workers."""


def _worker_start(warm: Callable[[Any], None] | None, arg: Any) -> None:
    """A pool worker's first acts: on Linux, ask to be killed when the process that
    started it dies (a build killed mid-way leaves no worker waiting for tasks forever),
    then :meth:`LocalExecutor.prepare`'s warm-up — a failure only makes for a colder
    start (an error in a pool's initializer would break the pool)."""
    _die_with_parent()
    if warm is not None:
        try:
            warm(arg)
        except Exception:  # noqa: BLE001 - the real work reports its own errors
            pass


def _die_with_parent() -> None:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux; elsewhere nothing): this process is
    killed when its parent — the build, or the fork server, which exits with the
    build — dies. If the parent died already, exit now."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def start_method() -> str:
    """How a local pool's workers start. ``fork`` on Linux from a build process with no
    other thread (the CLI's ``build``): a worker is a copy of the build, ready at once,
    with everything imported and nothing started twice. Elsewhere — a process with
    threads (``watch``, ``--metrics-port``, an application embedding the builder),
    where another thread may hold a lock the copy would inherit held — ``forkserver``:
    workers fork from a clean server process (``spawn`` where there is none)."""
    import multiprocessing

    if (
        sys.platform.startswith("linux")
        and threading.current_thread() is threading.main_thread()
        and threading.active_count() == 1
    ):
        return "fork"
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class _PoolTask(Task):
    """A task on a :class:`LocalExecutor`'s pool."""

    def __init__(self, executor: LocalExecutor, future):
        self.executor = executor
        self.future = future

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            outcome = self.future.result()
        except BrokenProcessPool as exc:
            raise self.executor._broken(exc) from exc
        return _unwrap(outcome)

    def cancel(self) -> None:
        self.future.cancel()


class LocalExecutor(Executor):
    """``--jobs N``: a pool of N worker processes on this machine (started on the first
    batch worth sending, kept for the life of the builder: a long-lived one reuses it)."""

    kind = "local"
    parallel = True

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)
        self._pool = None
        self._pool_lock = threading.Lock()
        self._starting: threading.Thread | None = None
        self._warm: tuple = (None, None)
        """What each worker runs first (:meth:`prepare`)."""

    def describe(self) -> str:
        return f"{self.jobs} local processes"

    def running(self) -> bool:
        return self._pool is not None

    def slots(self) -> int:
        return self.jobs

    def _executor(self):
        with self._pool_lock:
            if self._pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                method = start_method()
                ctx = multiprocessing.get_context(method)
                if method == "forkserver":
                    ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
                pool = ProcessPoolExecutor(
                    max_workers=self.jobs, mp_context=ctx, initializer=_worker_start, initargs=self._warm
                )
                if method == "fork":
                    # fork every worker now, with the build's objects frozen for the collector:
                    # a worker's collections then never walk them (nor copy the pages they are on)
                    gc.freeze()
                    try:
                        pool.submit(noop_chunk, [])
                    finally:
                        gc.unfreeze()
                self._pool = pool
            return self._pool

    def start_early(self) -> None:
        """Where workers fork from a server (:func:`start_method`), start it now: a
        fresh Python importing the stages (about a quarter of a second of CPU) while
        the build reads its manifest. Forked workers need nothing in advance."""
        if self.jobs <= 1 or self._pool is not None or start_method() != "forkserver":
            return
        import multiprocessing
        from multiprocessing import forkserver

        multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
        try:
            forkserver.ensure_running()
        except OSError:
            pass  # the first batch starts it, and reports

    def prepare(self, warm: Callable[[Any], None], arg: Any) -> None:
        """Start the workers now, each running ``warm(arg)`` first (palette tables, a
        generator's first-call costs), while the build goes on planning. Forked
        workers start here (a fork takes milliseconds); from a server, on a background
        thread (the server may still be importing). Only a pool not started yet takes
        it: a long-lived one is warm already. A failure here is left for the first
        real batch, which starts the pool and reports."""
        if self.jobs <= 1 or self._pool is not None or self._starting is not None:
            return
        self._warm = (warm, arg)
        if start_method() == "fork":
            try:
                self._executor()  # forks every worker
            except Exception:  # noqa: BLE001 - see the docstring
                pass
            return

        def start() -> None:
            try:
                pool = self._executor()
                for future in [pool.submit(noop_chunk, []) for _ in range(self.jobs)]:  # one spawn each
                    future.result()
            except Exception:  # noqa: BLE001 - see the docstring
                pass

        self._starting = threading.Thread(target=start, name="sparky-pool-start", daemon=True)
        self._starting.start()

    def _run(self, worker: Callable, args: Iterable, weights: list[int], progress: Progress | None) -> list:
        """``worker(a)`` for each of ``args`` — one per weight; an iterator is fine: each
        task goes to the pool as soon as it is made, so the workers start on the first
        while the build still makes the next — results in order."""
        if len(weights) <= 1 or self.jobs <= 1:  # nothing to share out: no pool
            out, done = [], 0
            for a, w in zip(args, weights):
                out.append(_unwrap(worker(a)))
                done += w
                if progress:
                    progress(done)
            return out
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        pool = self._executor()
        futures: dict = {}
        try:
            for i, a in enumerate(args):
                futures[pool.submit(worker, a)] = i
                self.sent += 1
            results: list[Any] = [None] * len(futures)
            done = 0
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                done += weights[i]
                if progress:
                    progress(done)
        except BrokenProcessPool as exc:  # a worker was killed (out of memory, a signal)
            raise self._broken(exc) from exc
        return [_unwrap(r) for r in results]  # the first error in submission order

    def _broken(self, exc: Exception) -> BuildFailed:
        """A worker was killed (out of memory, a signal): the pool is gone."""
        self.close()
        return BuildFailed(Diagnostic(f"a worker process died: {exc}", hint="run again, or with --jobs 1"))

    def map(self, fn, chunks, progress=None, weights=None):
        chunks, weights = _weighed(chunks, weights)
        return self._run(_pool_call, ((fn, c) for c in chunks), weights, progress)

    def submit(self, fn, chunk):
        pool = self._executor()
        self.sent += 1
        return _PoolTask(self, pool.submit(_pool_call, (fn, chunk)))

    def start_generate(self, generator, requests, reads, process=None):
        if generator.runs_on != "cpu" or len(requests) < 2:  # a device generator: one warm copy, here
            return super().start_generate(generator, requests, reads)
        return self._generate_chunks(generator, requests, reads, process)

    def worker_pids(self) -> list[int]:
        """The pool's worker processes (``bench/cluster.py`` reads their CPU time)."""
        return sorted(self._pool._processes) if self._pool is not None else []

    def close(self) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --------------------------------------------------------------- Ray


def ray_environment() -> None:
    """What every Ray process of ours runs with: no usage statistics, nothing fetched."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


def private_ray_auth() -> None:
    """Token authentication for a Ray this build starts for itself, with a token of its
    own in the environment (its raylet and workers inherit it). Left to itself, a new
    local Ray turns token mode on and writes ``~/.ray/auth_token``, which every later
    ``ray start`` and ``ray.init`` on the machine then picks up. An explicit
    ``RAY_AUTH_MODE`` is the user's choice and kept."""
    import secrets

    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    if "ray" in sys.modules:  # Ray read its settings from the environment when imported: again
        try:
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):
            pass


def _version_tag() -> str:
    """What every worker must run to compute the same bytes: the stage cache's toolchain
    (sparky-assets, engine, Python, numpy, Pillow, deflate)."""
    from .cache import toolchain

    return toolchain()


class GenerateWorker:
    """A Ray actor: one generator host per GPU (or per node on a CPU-only cluster).
    Generators keep their loaded pipelines in the process, so they stay warm across
    sprites and builds (the actor is detached and named; the next build finds it)."""

    def version(self) -> str:
        return _version_tag()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def generate(self, generator_name: str, requests: list) -> _Outcome:
        return _call(generate_chunk, generator_name, requests)


def _ray_task(fn: Callable, chunk: Any) -> _Outcome:
    return _call(fn, chunk)


class _RayTask(Task):
    """A Ray task or actor call (Ray retries it where its worker died)."""

    def __init__(self, ray, ref):
        self.ray = ray
        self.ref = ref

    def done(self) -> bool:
        ready, _ = self.ray.wait([self.ref], timeout=0)
        return bool(ready)

    def result(self) -> Any:
        try:
            outcome = self.ray.get(self.ref)
        except self.ray.exceptions.RayError as exc:
            raise _cluster_lost(exc) from exc
        return _unwrap(outcome)

    def cancel(self) -> None:
        try:
            self.ray.cancel(self.ref)
        except Exception:  # noqa: BLE001 - finished, or an actor call: nothing to cancel
            pass


def _cluster_lost(exc: Exception) -> BuildFailed:
    """Ray's retries are spent: the cluster lost the work."""
    return BuildFailed(
        Diagnostic(
            f"the Ray cluster could not finish the work: {type(exc).__name__}: {exc}",
            hint="check the cluster (`ray status`) and run again; nothing was written",
        )
    )


class RayExecutor(Executor):
    """``--executor ray``: tasks and actors on a Ray cluster (``address``: ``auto``, a
    head's ``HOST:PORT``, ``ray://HOST:PORT`` for Ray Client, or None to start Ray on
    this machine). Connected on the first batch; see docs/cluster.md."""

    kind = "ray"
    parallel = True
    shared_disk = False  # a worker node is another machine: the build writes the cache

    def __init__(self, address: str | None = None, echo: Callable[[str], None] | None = None):
        self.address = address
        self.echo = echo or (lambda text: None)
        self._ray = None
        self._task = None
        self._actors: list = []
        self._cpus = 1
        self._gpus = 0
        self._nodes: list[dict] = []

    # -- connection -----------------------------------------------------------

    def connect(self):
        if self._ray is not None:
            return self._ray
        ray_environment()
        if self.address is None:
            private_ray_auth()
        try:
            import ray
        except ImportError as exc:
            raise BuildFailed(
                Diagnostic(
                    f"--executor ray needs Ray ({exc})",
                    hint="pip install 'sparky-assets[ray]'",
                )
            ) from exc
        kwargs: dict[str, Any] = dict(namespace=RAY_NAMESPACE, log_to_driver=False, logging_level="WARNING")
        if self.address is None:  # a Ray of our own on this machine, loopback only
            kwargs.update(include_dashboard=False, _node_ip_address="127.0.0.1")
        try:
            # "local", not None: None attaches to whatever cluster `ray start` last started
            # on this machine (Ray's ray_current_cluster file), someone else's included
            ray.init(address=self.address or "local", **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BuildFailed(
                Diagnostic(
                    f"cannot connect to the Ray cluster at {self.address or 'a new local instance'}: {exc}",
                    hint="start one with `ray start --head` (docs/cluster.md) and pass its address with --ray-address",
                )
            ) from exc
        self._ray = ray
        self._nodes = [n for n in ray.nodes() if n.get("Alive")]
        resources = ray.cluster_resources()
        self._cpus = int(resources.get("CPU", 0))
        self._gpus = int(resources.get("GPU", 0))
        self._task = ray.remote(_ray_task).options(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)
        self._check_versions()
        self.echo(f"ray: connected ({self.describe()})")
        return ray

    def _check_versions(self) -> None:
        """The cluster's workers must run the same sparky-assets (a chunk's results
        would differ otherwise)."""
        ray = self._ray
        theirs = ray.get(ray.remote(_version_tag).options(num_cpus=0, max_retries=TASK_RETRIES).remote())
        if theirs != _version_tag():
            raise BuildFailed(
                Diagnostic(
                    f"the Ray cluster's workers run {theirs}, this build {_version_tag()}",
                    hint="install the same sparky-assets version on every node",
                )
            )

    def describe(self) -> str:
        if self._ray is None:
            return f"ray at {self.address or 'a local instance'}"
        return f"ray: {len(self._nodes)} nodes, {self._cpus} CPUs, {self._gpus} GPUs"

    def slots(self) -> int:
        return max(1, self._cpus)

    def running(self) -> bool:
        return self._ray is not None

    # -- tasks ----------------------------------------------------------------

    def _wait(self, refs: list, weights: list[int], progress: Progress | None) -> list:
        ray = self._ray
        index = {ref: i for i, ref in enumerate(refs)}
        pending, done = list(refs), 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    done += weights[index[ref]]
                if progress:
                    progress(done)
            results = ray.get(refs)
        except ray.exceptions.RayError as exc:
            raise _cluster_lost(exc) from exc
        return [_unwrap(r) for r in results]

    def map(self, fn, chunks, progress=None, weights=None):
        self.connect()
        chunks, weights = _weighed(chunks, weights)
        refs = [self._task.remote(fn, c) for c in chunks]
        self.sent += len(refs)
        return self._wait(refs, weights, progress)

    def submit(self, fn, chunk):
        self.connect()
        self.sent += 1
        return _RayTask(self._ray, self._task.remote(fn, chunk))

    def start_generate(self, generator, requests, reads, process=None):
        if generator.runs_on == "process":
            return super().start_generate(generator, requests, reads)
        self.connect()
        if generator.runs_on == "cpu":
            return self._generate_chunks(generator, requests, reads, process)
        actors = self.device_actors()
        chunks = chunked(range(len(requests)), 2 * len(actors), 1)
        tasks = []
        for i, chunk in enumerate(chunks):
            ref = actors[i % len(actors)].generate.remote(generator.name, [requests[k] for k in chunk])
            tasks.append((chunk, _RayTask(self._ray, ref)))
        self.sent += len(tasks)
        return Generation(generator, tasks, reads)

    def device_actors(self) -> list:
        """One generation actor per GPU (``num_gpus=1``), or one per node on a CPU-only
        cluster; detached and named, so a later build reuses the warm ones."""
        if self._actors:
            return self._actors
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        cls = ray.remote(GenerateWorker)
        if self._gpus:
            specs = [(f"gpu-{i}", dict(num_gpus=1, num_cpus=1)) for i in range(self._gpus)]
        else:
            cpu_nodes = sorted(n["NodeID"] for n in self._nodes if n.get("Resources", {}).get("CPU", 0) >= 1)
            specs = [
                (
                    f"cpu-{node[:12]}",
                    # no CPU held: between builds, tasks may use the node; soft: restarted elsewhere if it dies
                    dict(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True)),
                )
                for node in cpu_nodes
            ] or [("cpu-any", dict(num_cpus=0))]
        tag = _version_tag()
        actors = []
        for name, options in specs:
            actor = cls.options(
                name=f"generate-{name}",
                lifetime="detached",
                get_if_exists=True,
                max_restarts=ACTOR_RESTARTS,
                max_task_retries=-1,
                **options,
            ).remote()
            if ray.get(actor.version.remote()) != tag:  # left by another sparky-assets version
                ray.kill(actor)
                actor = cls.options(
                    name=f"generate-{name}",
                    lifetime="detached",
                    max_restarts=ACTOR_RESTARTS,
                    max_task_retries=-1,
                    **options,
                ).remote()
            actors.append(actor)
        self._actors = actors
        return actors

    def close(self) -> None:
        if self._ray is not None:
            self._ray.shutdown()  # detached actors stay up, warm for the next build
            self._ray = None
            self._actors = []


def make_executor(kind: str = "local", jobs: int | None = None, address: str | None = None, echo=None) -> Executor:
    """The executor the CLI options ask for: ``local`` with ``jobs`` processes (1: the
    serial path) or ``ray`` at ``address``."""
    if kind == "ray":
        return RayExecutor(address, echo=echo)
    jobs = default_jobs() if jobs is None else jobs
    return LocalExecutor(jobs) if jobs > 1 else SerialExecutor()
