"""The build report: what each stage did, what changed, and the exit code.

One :class:`BuildReport` per build; the CLI prints :meth:`summary`, the watcher turns
:attr:`assets` into an ``assets-changed`` message, the preview shows all of it.
Stage timings are *exclusive*: stages evaluate lazily inside each other (export asks
pack, which asks process, which asks generate), and :func:`timed_stage` charges each
second to the innermost stage running, so the timings add up to the time spent in stages.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("generate", "process", "pack", "export")


@dataclass(frozen=True)
class ChangedAsset:
    target: str
    path: str
    """Relative to the target's output root."""
    engine_path: str | None
    kind: str
    change: str
    """``added`` ``modified`` ``removed``"""
    hash: str
    sprites: tuple[str, ...]
    atlas: str | None


@dataclass
class BuildReport:
    project: str
    ran: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in STAGES})
    """Stage → names of the items it actually computed (sprites, atlases, atlas:target)."""
    cached: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STAGES})
    assets: list[ChangedAsset] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    generator_stats: dict[str, dict] = field(default_factory=dict)
    dry_run: bool = False
    stage_s: dict[str, float] = field(default_factory=dict)
    """Stage → seconds spent in it, excluding the stages it asked for (see :func:`timed_stage`)."""
    _timing: list[list[float]] = field(default_factory=list, repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.assets)

    def summary(self) -> str:
        g, p, k, e = (self.ran[s] for s in STAGES)
        verb = "would run" if self.dry_run else "ran"
        lines = [f"{self.project}: {'plan' if self.dry_run else 'built'} in {self.duration_s:.2f}s"]
        if self.dry_run:
            lines.append(
                f"  would generate {len(g)}, re-process {len(p)}, re-pack {len(k)}, export {len(e)}"
                + ("" if any((g, p, k, e)) else " — nothing to do")
            )
        else:
            lines.append(
                f"  generated {len(g):4d}   re-processed {len(p):4d}   re-packed {len(k):4d}   exported {len(e):4d}"
                f"   (from cache: {self.cached['generate']} generated, {self.cached['process']} processed,"
                f" {self.cached['pack']} packed, {self.cached['export']} exported)"
            )
        for stage, names in zip(("generate", "process", "pack"), (g, p, k)):
            if names and len(names) <= 12:
                lines.append(f"  {stage} {verb}: {', '.join(names)}")
        for name, stats in sorted(self.generator_stats.items()):
            detail = ", ".join(f"{k} {v:.2f}s" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items())
            lines.append(f"  {name}: {detail}")
        if self.dry_run:
            return "\n".join(lines)
        if self.assets:
            counts = {c: sum(1 for a in self.assets if a.change == c) for c in ("added", "modified", "removed")}
            lines.append(
                f"  files: {counts['added']} added, {counts['modified']} modified, {counts['removed']} removed,"
                f" {self.unchanged} unchanged"
            )
        else:
            lines.append(f"  nothing changed ({self.unchanged} files up to date)")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)


@contextlib.contextmanager
def stage_timer(report: BuildReport, stage: str) -> Iterator[None]:
    """Add the wall time of the block, minus that of timed blocks inside it, to
    ``report.stage_s[stage]``."""
    frame = [time.perf_counter(), 0.0]  # start, time spent in nested stages
    report._timing.append(frame)
    try:
        yield
    finally:
        report._timing.pop()
        total = time.perf_counter() - frame[0]
        report.stage_s[stage] = report.stage_s.get(stage, 0.0) + total - frame[1]
        if report._timing:
            report._timing[-1][1] += total


def timed_stage(stage: str):
    """Decorate a method of an object with a ``report`` (:class:`BuildReport`): its
    wall time, minus that of timed methods it calls, is added to ``report.stage_s[stage]``."""

    def decorate(method):
        @functools.wraps(method)
        def timed(self, *args, **kwargs):
            with stage_timer(self.report, stage):
                return method(self, *args, **kwargs)

        return timed

    return decorate
