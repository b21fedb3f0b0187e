"""The progress line ``build`` draws on a terminal.

Stages overlap (a pool or a cluster generates while the build processes, packs and
exports what is already in), so the build's progress is one line redrawn in place, not
a bar per stage opened and closed as updates alternate: a bar for the first stage in
pipeline order that is not finished — where the build waits — and the counts of the
others. The build reports counts for the whole build (a stage's planned count grows as
the walk plans atlas by atlas; it never starts over).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

ORDER = ("generate", "process", "pack", "export")
BAR_WIDTH = 24


class ProgressLine:
    """``(stage, done, planned)`` updates drawn as one line on ``stream`` (a terminal):
    at most every ``interval`` seconds, and at once when the stage whose bar is shown
    finishes (its bar is seen full before it moves on). ``where`` says where the work
    runs, asked at each draw (a cluster is described once connected). :meth:`message`
    prints a line above it; :meth:`close` draws the last state and ends the line."""

    def __init__(
        self,
        stream: TextIO,
        where: Callable[[], str] = lambda: "",
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ):
        self.stream = stream
        self.where = where
        self.interval = interval
        self.clock = clock
        self.columns = columns
        self.counts: dict[str, tuple[int, int]] = {}
        self.drawn_at: float | None = None
        self.drawn = ""
        self.focus: str | None = None
        """The stage whose bar was drawn last."""

    def __call__(self, stage: str, done: int, planned: int) -> None:
        self.counts[stage] = (done, planned)
        if stage == self.focus and done >= planned:
            self._draw(stage)
            self.focus = None  # the next bar is chosen at the next timed draw
        elif self.drawn_at is None or self.clock() - self.drawn_at >= self.interval:
            self._draw(self.waiting_on())

    def waiting_on(self) -> str:
        """The first stage in pipeline order with work left (the last seen when none has)."""
        seen = self._seen()
        return next((s for s in seen if self.counts[s][0] < self.counts[s][1]), seen[-1])

    def text(self, focus: str) -> str:
        """The line: ``focus``'s bar, then every other stage's counts."""
        done, planned = self.counts[focus]
        share = done / planned if planned else 1.0
        filled = int(share * BAR_WIDTH)
        where = self.where()
        head = (
            f"{focus:9s}{where} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {int(share * 100):3d}%  {done}/{planned}"
        )
        others = [f"{s} {d}/{p}" for s in self._seen() if s != focus for d, p in [self.counts[s]]]
        return " | ".join([head, *others])

    def message(self, text: str) -> None:
        """``text`` on a line of its own above the progress line, which is drawn again."""
        self.stream.write(f"\r\x1b[K{text}\n")
        if self.drawn:
            self.stream.write(self.drawn)
        self.stream.flush()

    def close(self) -> None:
        if self.counts:
            self._draw(self.waiting_on())
            self.stream.write("\n")
            self.stream.flush()
            self.counts = {}
            self.drawn = ""

    def _seen(self) -> list[str]:
        return sorted(self.counts, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))

    def _draw(self, focus: str) -> None:
        line = self.text(focus)[: max(self.columns() - 1, 20)]  # never wraps: \r redraws one row
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()
        self.drawn_at = self.clock()
        self.drawn = line
        self.focus = focus
