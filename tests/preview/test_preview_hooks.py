"""The build's small hooks the preview reads: exclusive stage timings on the report,
and ``WatchSession(on_build=…)`` told of every build, good or failed."""

from __future__ import annotations

import queue

from sparky_assets.hotreload.publisher import Publisher
from sparky_assets.pipeline.engine import Builder, BuildOptions
from sparky_assets.watch.session import WatchSession
from tests.helpers import copy_example


def test_stage_timings_are_exclusive_and_cover_every_stage(tmp_path):
    root = copy_example(tmp_path)
    report = Builder(root).build(BuildOptions(force=True))
    assert set(report.stage_s) == {"plan", "generate", "process", "pack", "export", "write"}
    assert all(seconds >= 0 for seconds in report.stage_s.values())
    # exclusive times of nested stages add up to at most the whole build, never more
    assert sum(report.stage_s.values()) <= report.duration_s
    assert not report._timing  # every timed call closed its frame


def test_watch_session_tells_on_build_of_good_and_failed_builds(tmp_path):
    root = copy_example(tmp_path)
    seen = []
    publisher = Publisher("tcp://127.0.0.1:0", "dungeon")
    try:
        session = WatchSession(
            root / "sparky.toml",
            publisher,
            queue.Queue(),
            echo=lambda *a, **k: None,
            on_build=lambda report, errors: seen.append((report, errors)),
        )
        session.rebuild([])
        manifest = root / "sparky.toml"
        manifest.write_text(manifest.read_text().replace("size = [12, 12]", 'size = [12, "x"]', 1))
        session.rebuild(["sparky.toml"])
    finally:
        publisher.close()
    (good, good_errors), (failed, errors) = seen
    assert good is not None and good.project == "dungeon" and good_errors == []
    assert failed is None and errors and errors[0].file == str(manifest) and errors[0].line is not None
