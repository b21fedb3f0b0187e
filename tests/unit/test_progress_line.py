"""The progress line `build` draws on a terminal (sparky_assets/cli/progress.py): one
line redrawn in place whatever order the stages report in, on a virtual clock."""

from __future__ import annotations

import io
import re

from sparky_assets.cli.progress import BAR_WIDTH, ProgressLine


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(columns: int = 200) -> tuple[ProgressLine, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(out, lambda: " [2 processes]", interval=0.1, clock=clock, columns=lambda: columns)
    return line, out, clock


def frames(out: io.StringIO) -> list[str]:
    """Each redraw of the line as the terminal shows it."""
    return [re.sub(r"\x1b\[K$", "", f) for f in out.getvalue().split("\r")[1:]]


def test_interleaved_stages_are_one_line_with_a_bar_for_the_stage_the_build_waits_on():
    line, out, clock = make()
    line("generate", 0, 10)
    for i in range(1, 11):
        clock.now += 0.2
        line("process", i - 1, 10)  # the walk processes what the workers generated so far
        clock.now += 0.2
        line("generate", i, 10)
    line.close()
    drawn = frames(out)
    assert "\n" not in out.getvalue()[:-1]  # one line until the end
    assert out.getvalue().endswith("\n")
    assert all(f.startswith("generate  [2 processes] [") for f in drawn[:-1])  # generation is the first unfinished
    assert drawn[-2].startswith(f"generate  [2 processes] [{'#' * BAR_WIDTH}] 100%  10/10 | process 9/10")
    assert drawn[-1].startswith("process   [2 processes] [") and "90%  9/10 | generate 10/10" in drawn[-1]


def test_updates_are_drawn_at_most_every_interval_but_a_shown_bar_is_seen_full():
    line, out, clock = make()
    line("generate", 0, 1000)
    for i in range(1, 1000):
        clock.now += 0.001
        line("generate", i, 1000)
    assert len(frames(out)) == 10  # the first, then one per 0.1 s
    line("generate", 1000, 1000)  # finished: drawn at once, not on the next tick
    assert frames(out)[-1].startswith(f"generate  [2 processes] [{'#' * BAR_WIDTH}] 100%  1000/1000")


def test_a_count_that_grows_as_atlases_are_planned_never_starts_over():
    line, out, clock = make()
    for atlas in range(3):  # each atlas plans 5 more sprites to process
        for i in range(6):
            clock.now += 0.2
            line("process", atlas * 5 + i, (atlas + 1) * 5)
    line.close()
    counts = [tuple(map(int, re.search(r"(\d+)/(\d+)", f).groups())) for f in frames(out)]
    assert counts == sorted(counts) and counts[-1] == (15, 15)


def test_the_line_never_wraps():
    line, out, clock = make(columns=40)
    line("generate", 3, 10)
    line("process", 1, 2)
    clock.now += 1
    line("export", 0, 4)
    assert all(len(f) <= 39 for f in frames(out))


def test_nothing_reported_draws_nothing():
    line, out, _ = make()
    line.close()
    assert out.getvalue() == ""


def test_where_the_work_runs_is_asked_at_each_draw_and_news_goes_above_the_line():
    out, clock = io.StringIO(), Clock()
    where = ["ray at 127.0.0.1:6379"]
    line = ProgressLine(out, lambda: f" [{where[0]}]", clock=clock, columns=lambda: 200)
    line("generate", 0, 4)
    where[0] = "ray: 3 nodes, 6 CPUs, 0 GPUs"  # connected
    line.message("ray: connected")
    clock.now += 1
    line("generate", 1, 4)
    text = out.getvalue()
    assert text.count("\n") == 1 and "\r\x1b[Kray: connected\n" in text  # the news on a line of its own
    after = text.split("ray: connected\n")[1]
    assert after.startswith("generate  [ray at 127.0.0.1:6379] [")  # the line as it was, drawn again
    assert frames(out)[-1].startswith("generate  [ray: 3 nodes, 6 CPUs, 0 GPUs] [######")
