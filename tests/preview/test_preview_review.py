"""Generated (diffusion) art on the preview page, built with the tiny random-weight
Stable Diffusion pipeline (tests/tiny_pipeline.py) and shown in headless Chromium:
the model's raw image at its true size (and zoomed without smoothing), the detected
grid drawn over it where the build says it is, its confidence, the pixelized cells
before palette lock and the locked result. The raw images are kept by the build in the
stage cache (``review``, by generate key) and shipped as files next to the page."""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.request

import numpy as np
import pytest
from PIL import Image

from sparky_assets.cli.main import main
from sparky_assets.preview.document import collect
from sparky_assets.preview.server import PreviewServer
from sparky_assets.process.pixelize import pixelize
from tests.preview.test_preview_page import assert_same_opaque_pixels, open_page, shot

pytestmark = pytest.mark.diffusion

MANIFEST = """[project]
name = "dreams"
palette = "pico-8"

[generator.diffusion]
model = "models/tiny-sd"
steps = 1
guidance = 1.0
frames = "seed"
pixelize = { background = "none" }

[[sprite]]
name = "gem"
generator = "diffusion"
prompt = "red gem pixel art"
size = 16
seed = 3

[[sprite]]
name = "slime"
generator = "diffusion"
prompt = "green slime"
size = 16
animations = { idle = 2 }
seed = 5
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    import torch

    torch.set_num_threads(1)
    from tests.tiny_pipeline import save_tiny_pipeline

    folder = tmp_path_factory.mktemp("tiny-model") / "tiny-sd"
    save_tiny_pipeline(folder)
    return folder


@pytest.fixture(scope="module")
def built(tiny_model, tmp_path_factory):
    """The project, built once with ``--report``; tests copy nothing back into it."""
    root = tmp_path_factory.mktemp("dreams")
    (root / "models").mkdir()
    (root / "models" / "tiny-sd").symlink_to(tiny_model, target_is_directory=True)
    (root / "sparky.toml").write_text(MANIFEST)
    assert main(["-q", "build", "--report", str(root)]) == 0
    return root


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def data_uri(uri: str) -> np.ndarray:
    return decode(base64.b64decode(uri.split(",", 1)[1]))


def test_the_build_keeps_each_frames_raw_image_and_grid(built):
    report = built / "build" / "sprites" / "report"
    doc = collect(built, assets=(assets := {}))
    gem = next(s for s in doc["sprites"] if s["name"] == "gem")
    slime = next(s for s in doc["sprites"] if s["name"] == "slime")
    assert len(gem["review"]["frames"]) == 1 and len(slime["review"]["frames"]) == 2
    assert gem["review_note"] is None
    summary = json.loads((built / ".sparky" / "last-build.json").read_text())
    grids = summary["generator_stats"]["diffusion"]["grid"]  # "gem 16x16 cells of … (size, confidence 0.42…)"
    for sprite in (gem, slime):
        before = data_uri(sprite["before"]["image"])
        for i, frame in enumerate(sprite["review"]["frames"]):
            # shipped next to the page, byte for byte what the document names
            raw_png = (report / frame["raw"]).read_bytes()
            assert assets[frame["raw"]] == raw_png and re.fullmatch(r"assets/[0-9a-f]{16}\.png", frame["raw"])
            raw = decode(raw_png)
            assert raw.shape == (64, 64, 4) and (frame["width"], frame["height"]) == (64, 64)  # the tiny model's render
            # it is the image this frame was pixelized from: pixelize gives the stored frame again
            again = pixelize(raw[..., :3], target_size=(16, 16), background="none")
            assert np.array_equal(again, before[:, i * 16 : (i + 1) * 16])
            g = frame["grid"]
            assert g["x_edges"][0] == 0 and g["x_edges"][-1] == 64 and len(g["x_edges"]) == g["cells"][0] + 1
        weakest = min(f["grid"]["confidence"] for f in sprite["review"]["frames"])
        assert sprite["review"]["confidence"] == weakest
        assert f"{sprite['name']} {sprite['review']['frames'][0]['grid']['cells'][0]}x" in grids
        assert re.search(rf"{sprite['name']} [^;]*confidence {weakest:.2f}", grids)
    # without an asset folder the raw image is inlined
    inline = collect(built)
    assert next(s for s in inline["sprites"] if s["name"] == "gem")["review"]["frames"][0]["raw"].startswith(
        "data:image/png;base64,"
    )


def test_without_the_cache_the_page_says_why(built, tmp_path):
    import shutil

    clone = tmp_path / "clone"
    shutil.copytree(built, clone, symlinks=True, ignore=shutil.ignore_patterns("cache"))
    doc = collect(clone)
    gem = next(s for s in doc["sprites"] if s["name"] == "gem")
    assert gem["review"] is None and "not in this project's cache" in gem["review_note"]
    # watch keeps a memo between builds: a review, once read, is not read again
    memo: dict = {}
    first = collect(built, cache=memo, assets=(assets := {}))
    shutil.copytree(built, tmp_path / "moved", symlinks=True)
    moved = tmp_path / "moved"
    shutil.rmtree(moved / ".sparky" / "cache" / "review")
    again = collect(moved, cache=memo, assets=(assets_again := {}))
    assert again["sprites"][0]["review"] == first["sprites"][0]["review"] and assets_again == assets
    assert collect(moved)["sprites"][0]["review"] is None
    # a planted cache entry that does not check out is left out, not shown
    lock = (clone / "sparky.lock").read_text()
    key = re.search(r'\[sprite\.gem\][^\[]*?key = "([0-9a-f]+)"', lock, re.S).group(1)
    shutil.copytree(built / ".sparky" / "cache", clone / ".sparky" / "cache")
    entry = clone / ".sparky" / "cache" / "review" / key[:2] / key
    data = entry.read_bytes()
    entry.write_bytes(data[:-10] + b"0123456789")
    assert next(s for s in collect(clone)["sprites"] if s["name"] == "gem")["review"] is None


def grid_lines(with_grid: np.ndarray, without: np.ndarray) -> tuple[list[int], list[int]]:
    """Columns and rows where the overlay changed the picture along their whole length."""
    changed = np.any(with_grid[..., :3] != without[..., :3], axis=-1)
    columns = [int(x) for x in np.flatnonzero(changed.all(axis=0))]
    rows = [int(y) for y in np.flatnonzero(changed.all(axis=1))]
    return columns, rows


def expected_lines(edges: list[float], zoom: int, length: int) -> list[int]:
    return sorted({min(round(e * zoom), length * zoom - 1) for e in edges[1:-1]})


def test_page_shows_raw_image_grid_confidence_cells_and_locked(built, browser_context, console_errors, tmp_path):
    views = tmp_path / "views"
    views.mkdir()
    report = built / "build" / "sprites" / "report" / "index.html"
    page = open_page(browser_context, report.as_uri(), console_errors)
    doc = page.evaluate("sparkyPreview.state.doc")
    for name in ("gem", "slime"):
        sprite = next(s for s in doc["sprites"] if s["name"] == name)
        review = page.locator(f'#lock [data-key="{name}"] .review')
        frame = sprite["review"]["frames"][0]
        raw = decode((report.parent / frame["raw"]).read_bytes())
        image = review.locator("img.raw")
        # true size: the element is the image's size and shows its pixels one to one
        assert image.evaluate("i => [i.naturalWidth, i.naturalHeight, i.width, i.height]") == [64, 64, 64, 64]
        review.locator("input.show-grid").uncheck()
        assert_same_opaque_pixels(shot(image), raw, 1)
        # the confidence and the grid are written out
        text = review.locator(".confidence").inner_text()
        assert f"confidence {frame['grid']['confidence']:.2f}" in text
        assert f"grid {frame['grid']['cells'][0]}×{frame['grid']['cells'][1]} cells" in text
        # zoomed ×4 without smoothing, and the grid lines exactly where the build put them
        review.locator("select.zoom").select_option("4")
        page.evaluate("sparkyPreview.ready()")
        plain = shot(image)
        assert_same_opaque_pixels(plain, raw, 4)
        review.locator("input.show-grid").check()
        stage = review.locator(".raw-stage")
        columns, rows = grid_lines(shot(stage), plain)
        assert columns == expected_lines(frame["grid"]["x_edges"], 4, 64)
        assert rows == expected_lines(frame["grid"]["y_edges"], 4, 64)
        assert len(columns) >= 4 and len(rows) >= 4
        # the pixelized cells (before lock) and the locked result of the same frame
        zoom = int(review.locator("canvas.cells").evaluate("c => c.width")) // 16
        before = data_uri(sprite["before"]["image"])[:, :16]
        locked = data_uri(sprite["locked"])[:, :16]
        assert_same_opaque_pixels(shot(review.locator("canvas.cells")), before, zoom)
        assert_same_opaque_pixels(shot(review.locator("canvas.locked")), locked, zoom)
        review.screenshot(path=str(views / f"review-{name}.png"))
    # another frame of an animated sprite: its own raw image and grid
    review = page.locator('#lock [data-key="slime"] .review')
    review.locator("select.frame").select_option("1")
    page.evaluate("sparkyPreview.ready()")
    slime = next(s for s in doc["sprites"] if s["name"] == "slime")
    second = slime["review"]["frames"][1]
    assert review.locator("img.raw").get_attribute("src") == second["raw"]
    assert f"confidence {second['grid']['confidence']:.2f}" in review.locator(".confidence").inner_text()
    assert_same_opaque_pixels(shot(review.locator("canvas.cells")), data_uri(slime["before"]["image"])[:, 16:32], zoom)
    review.screenshot(path=str(views / "review-slime-frame2.png"))
    page.locator("#lock").screenshot(path=str(views / "review-lock.png"))
    assert console_errors == []


def test_served_page_loads_raw_images_and_reroll_shows_a_new_render(built, browser_context, console_errors, tmp_path):
    import shutil

    from tests.preview.test_preview_page import wait_until

    root = tmp_path / "dreams"
    shutil.copytree(built, root, symlinks=True)
    server = PreviewServer(root, port=0, rebuild_after_reroll=True).start()
    try:
        page = open_page(browser_context, server.url, console_errors)
        raw = page.locator('#lock [data-key="gem"] .review img.raw')
        name = raw.get_attribute("src")
        assert re.fullmatch(r"assets/[0-9a-f]{16}\.png", name)
        page.evaluate("sparkyPreview.ready()")
        assert raw.evaluate("i => i.complete && i.naturalWidth") == 64  # allowed by the page's CSP, served
        with urllib.request.urlopen(server.url + name) as response:
            assert response.read() == (root / "build" / "sprites" / "report" / name).read_bytes()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "assets/0123456789abcdef.png")
        assert missing.value.code == 404

        # reroll: a new seed, a new render from the model, its own grid; shown without a reload
        page.evaluate("window.sameDocument = true")
        page.locator('#lock [data-key="gem"] button.reroll').click()
        wait_until(page, "sparkyPreview.state.entries.sprites.get('gem').seed !== 3", timeout_s=120)
        page.evaluate("sparkyPreview.ready()")
        gem = page.evaluate("sparkyPreview.state.entries.sprites.get('gem')")
        frame = gem["review"]["frames"][0]
        assert frame["raw"] != name and raw.get_attribute("src") == frame["raw"]
        assert raw.evaluate("i => i.complete && i.naturalWidth") == 64
        with urllib.request.urlopen(server.url + frame["raw"]) as response:
            rerolled = decode(response.read())
        before = data_uri(gem["before"]["image"])
        assert np.array_equal(pixelize(rerolled[..., :3], target_size=(16, 16), background="none"), before)
        text = page.locator('#lock [data-key="gem"] .review .confidence').inner_text()
        assert f"confidence {frame['grid']['confidence']:.2f}" in text
        assert page.evaluate("window.sameDocument") is True
        page.locator('#lock [data-key="gem"]').screenshot(path=str(tmp_path / "review-gem-rerolled.png"))
        assert console_errors == []
    finally:
        server.close()


def test_report_keeps_only_the_assets_its_page_names(tmp_path):
    from sparky_assets.preview.site import write_report

    folder = tmp_path / "report"
    old, new = "assets/" + "a" * 16 + ".png", "assets/" + "b" * 16 + ".png"
    write_report(folder, {"project": "x"}, assets={old: b"\x89PNG old"})
    (folder / "assets" / "notes.txt").write_text("not ours")
    write_report(folder, {"project": "x"}, assets={new: b"\x89PNG new"})
    assert sorted(p.name for p in (folder / "assets").iterdir()) == ["b" * 16 + ".png", "notes.txt"]
    with pytest.raises(ValueError):
        write_report(folder, {"project": "x"}, assets={"../escape.png": b""})


def test_a_worker_chunk_brings_the_review_back(tiny_model, tmp_path):
    """Where generation runs elsewhere (a Ray actor, a pool worker), the review comes back
    with the frames and lands on the build's generator like ``last_stats``."""
    from sparky_assets.generators.base import FrameSpec, GenerationRequest
    from sparky_assets.generators.diffusion import DiffusionGenerator
    from sparky_assets.pipeline.executor import Generation, _Ready, generate_chunk
    from sparky_assets.reads import ReadContext

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-sd").symlink_to(tiny_model, target_is_directory=True)
    request = GenerationRequest(
        sprite="gem",
        width=16,
        height=16,
        frames=(FrameSpec("idle", 0), FrameSpec("idle", 1)),
        seed=3,
        root=tmp_path,
        prompt="red gem",
        settings={"model": "models/tiny-sd", "steps": 1, "guidance": 1.0, "pixelize": {"background": "none"}},
    )
    chunk = generate_chunk("diffusion", [request])
    review = chunk[3]["gem"]
    assert len(review) == 2 and all(f["png"].startswith(b"\x89PNG") and f["width"] == 64 for f in review)
    gen = DiffusionGenerator()  # not the worker's instance: only taking the chunk can set it
    run = Generation(gen, [([0], _Ready(lambda: chunk))], ReadContext())
    ((index, frames, png, processed),) = run.take()
    run.finish()
    assert (index, frames, png, processed) == (0, chunk[0][0], chunk[4][0], None)
    assert gen.last_review == {"gem": review}
