"""The build graph's evaluator: one generic, memoising walk over declared stages.

A :class:`Stage` says, for one item (a sprite, an atlas, an (atlas, target) pair),
what its key is (a hash of exactly what it reads), how a cached value is found and
stored, which other stages' values it needs, and how to compute it. The
:class:`Evaluator` is the only code that decides *whether* a stage runs: memo, then
cache, then compute — and it is the same walk for every action:

* ``build`` — values are computed where the cache misses and stored;
* ``plan`` (``build --dry-run``, ``check``) — nothing is computed or written: a miss
  is recorded as "would run" and its inputs are planned in turn. A key that cannot
  be known yet (it hashes what an upstream stage has still to make) counts as a miss.

Both actions count what ran and what came from the cache in the same
:class:`~.report.BuildReport`, so a dry run cannot drift from a build.

Invariants: a stage's value is computed at most once per build (memo); ``force``
skips cache reads, never writes; stage errors are :class:`~sparky_assets.errors.SparkyError` s
(typed per layer, already diagnostics) and pass through unchanged.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .report import BuildReport, stage_timer

Action = Literal["build", "plan"]
PLANNED = object()
"""The value of a stage that a ``plan`` walk found would run."""


class Stage:
    """One kind of step in the graph. Subclasses set ``name`` (the report's stage) and
    implement the methods below; ``item`` is whatever identifies one unit of work."""

    name: ClassVar[str] = ""

    def key(self, item: Any, ev: Evaluator) -> str | None:
        """The cache key: a hash of everything the value depends on. None when it is
        not known before an upstream stage has run (only in a ``plan`` walk)."""
        raise NotImplementedError

    def label(self, item: Any) -> str:
        """How the report names this unit of work."""
        return str(item)

    def load(self, item: Any, key: str, ev: Evaluator) -> Any | None:
        """The stored value for ``key``, or None."""
        raise NotImplementedError

    def is_cached(self, item: Any, key: str, ev: Evaluator) -> bool:
        """Whether :meth:`load` would find a value (``plan``: without decoding it)."""
        return self.load(item, key, ev) is not None

    def inputs(self, item: Any, ev: Evaluator) -> Iterable[tuple[Stage, Any]]:
        """The (stage, item) values :meth:`compute` asks for (walked by ``plan``)."""
        return ()

    def compute(self, item: Any, ev: Evaluator) -> Any:
        raise NotImplementedError

    def compute_many(self, items: list[Any], ev: Evaluator) -> list[Any]:
        """:meth:`compute` for several independent items (:meth:`Evaluator.demand_many`);
        a stage whose work can run elsewhere hands it to the build's executor here."""
        return [self.compute(item, ev) for item in items]

    def start(self, item: Any, ev: Evaluator) -> Any:
        """Begin computing ``item`` (:meth:`Evaluator.start`): a stage whose work can run
        elsewhere hands it to the build's executor and returns what :meth:`finish` needs
        to take the value; by default the value itself, computed now."""
        return self.compute(item, ev)

    def ready(self, item: Any, started: Any) -> bool:
        """Whether :meth:`finish` would take the value without waiting."""
        return True

    def cancel(self, item: Any, started: Any) -> None:
        """Drop work :meth:`start` began (the build failed elsewhere)."""

    def finish(self, item: Any, started: Any, ev: Evaluator) -> Any:
        """The value :meth:`start` began (waiting for it)."""
        return started

    def save(self, item: Any, key: str, value: Any, ev: Evaluator) -> None:
        raise NotImplementedError

    def forced(self, item: Any, ev: Evaluator) -> bool:
        """Whether ``--force`` makes this unit skip its stored value."""
        return ev.force

    def counts_as_run(self, item: Any, ev: Evaluator) -> bool:
        """Whether :meth:`compute` is reported under this stage (a stage that delegates
        the work, like generate for locked sprites, reports it where it happens)."""
        return True


class Evaluator:
    """Memo → cache → compute, for any stage; see the module docstring."""

    def __init__(self, report: BuildReport, *, action: Action = "build", force: bool = False):
        self.report = report
        self.action = action
        self.force = force
        self._memo: dict[tuple[str, Hashable], Any] = {}
        self.planned: list[tuple[Stage, Any]] = []
        """(stage, item) a ``plan`` walk found would run, in walk order."""

    def demand(self, stage: Stage, item: Any) -> Any:
        """The value of ``stage`` for ``item`` (``build``), or :data:`PLANNED` / a cached
        marker (``plan``)."""
        memo_key = (stage.name, _hashable(item))
        if memo_key in self._memo:
            return self._memo[memo_key]
        with stage_timer(self.report, stage.name):
            value = self._evaluate(stage, item)
        self._memo[memo_key] = value
        return value

    def _evaluate(self, stage: Stage, item: Any) -> Any:
        key = stage.key(item, self)
        if self.action == "plan":
            if key is not None and not stage.forced(item, self) and stage.is_cached(item, key, self):
                self.report.cached[stage.name] += 1
                return True
            if stage.counts_as_run(item, self):
                self.report.ran[stage.name].append(stage.label(item))
            self.planned.append((stage, item))
            for upstream, upstream_item in stage.inputs(item, self):
                self.demand(upstream, upstream_item)
            return PLANNED
        memo_key = (stage.name, _hashable(item))
        if self._load(stage, item, key, memo_key):
            return self._memo[memo_key]
        return self._made(stage, item, key, stage.compute(item, self))

    def _load(self, stage: Stage, item: Any, key: str | None, memo_key: tuple) -> bool:
        """Whether the value under ``key`` was in the stage cache (``--force`` skips it);
        a found value is counted as cached and memoised."""
        if key is None or stage.forced(item, self):
            return False
        value = stage.load(item, key, self)
        if value is None:
            return False
        self.report.cached[stage.name] += 1
        self._memo[memo_key] = value
        return True

    def _made(self, stage: Stage, item: Any, key: str | None, value: Any) -> Any:
        """A value just made: saved under its key (computed now if it was not known
        before), reported as run and memoised."""
        key = key if key is not None else stage.key(item, self)
        if key is not None:
            stage.save(item, key, value, self)
        if stage.counts_as_run(item, self):
            self.report.ran[stage.name].append(stage.label(item))
        self._memo[(stage.name, _hashable(item))] = value
        return value

    def demand_many(self, stage: Stage, items: Iterable[Any]) -> None:
        """Make the values of ``stage`` for ``items`` (``build`` only) the way :meth:`demand`
        would, one by one, but computing the misses together (:meth:`Stage.compute_many`:
        in chunks on the build's executor). Saves and reports in ``items`` order."""
        misses: list[tuple[Any, str | None]] = []
        seen: set = set()
        with stage_timer(self.report, stage.name):
            for item in items:
                memo_key = (stage.name, _hashable(item))
                if memo_key in self._memo or memo_key in seen:
                    continue
                seen.add(memo_key)
                key = stage.key(item, self)
                if not self._load(stage, item, key, memo_key):
                    misses.append((item, key))
            values = stage.compute_many([item for item, _ in misses], self) if misses else []
            for (item, key), value in zip(misses, values):
                self._made(stage, item, key, value)

    def start(self, stage: Stage, item: Any) -> Started | None:
        """Begin making the value of ``stage`` for ``item`` the way :meth:`demand` would
        (``build`` only): memo, then cache — None, the value is in the memo — else
        :meth:`Stage.start` (a task on the build's executor). :meth:`finish` takes it;
        the build goes on meanwhile."""
        memo_key = (stage.name, _hashable(item))
        if memo_key in self._memo:
            return None
        with stage_timer(self.report, stage.name):
            key = stage.key(item, self)
            if self._load(stage, item, key, memo_key):
                return None
            return Started(stage, item, key, stage.start(item, self))

    def finish(self, started: Started | None) -> None:
        """Take the value :meth:`start` began: saved, reported and memoised as
        :meth:`demand` does."""
        if started is None:
            return
        with stage_timer(self.report, started.stage.name):
            value = started.stage.finish(started.item, started.state, self)
            self._made(started.stage, started.item, started.key, value)

    def would_run(self, stage: Stage, items: Iterable[Any]) -> list[tuple[Stage, Any]]:
        """The (stage, item) pairs that demanding ``stage`` for ``items`` would compute
        — a ``plan`` walk that reports nothing, knowing this walk's values so far."""
        from .report import BuildReport

        planner = Evaluator(BuildReport(self.report.project), action="plan", force=self.force)
        planner._memo = ChainMap({}, self._memo)  # type: ignore[assignment]  # its own entries go in the first
        for item in items:
            planner.demand(stage, item)
        return planner.planned

    def remember(self, stage: Stage, item: Any, value: Any) -> None:
        """Record a value made outside the walk (a batch of generated sprites)."""
        self._memo[(stage.name, _hashable(item))] = value


@dataclass
class Started:
    """A value :meth:`Evaluator.start` began: its stage, item, key (None: known once
    made) and what :meth:`Stage.finish` takes."""

    stage: Stage
    item: Any
    key: str | None
    state: Any

    def ready(self) -> bool:
        return self.stage.ready(self.item, self.state)

    def cancel(self) -> None:
        self.stage.cancel(self.item, self.state)


def _hashable(item: Any) -> Hashable:
    if isinstance(item, tuple):
        return tuple(_hashable(i) for i in item)
    try:
        hash(item)
        return item
    except TypeError:
        return id(item)
