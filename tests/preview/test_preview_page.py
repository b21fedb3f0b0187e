"""The preview page in real headless Chromium (tests/browser.py: Debian's chromium driven
by Playwright).

* The static report (``build --report``), opened from disk: no console errors; every
  atlas page at true size and zoomed, read back from screenshots and compared with the
  page PNG pixel for pixel (a smoothed zoom would blend block edges); hovering a region
  names it; animation players step through their frames with the durations the sheet
  gives, driven by the page's clock hook (no wall-clock timing).
* ``watch`` with the preview server: an edit updates the open page without a reload and
  re-renders only what changed; a broken edit shows the error with file and line; the
  reroll button gives the sprite a new seed and the page shows the rebuilt sprite.

A screenshot of each view is kept in the test's temp folder (``views/``).
"""

from __future__ import annotations

import base64
import io
import queue
import re
import threading
import time

import numpy as np
from PIL import Image

from sparky_assets.cli.main import main
from sparky_assets.hotreload.publisher import Publisher
from sparky_assets.preview.server import PreviewServer
from sparky_assets.preview.tilemap import tile_map
from sparky_assets.tiles.autotile import blob_table
from sparky_assets.watch.session import FileWatcher, WatchSession
from tests.helpers import copy_example, rgba

VIEWS = ("build", "atlases", "animations", "stills", "lock", "palettes", "tilesets")


def shot(element) -> np.ndarray:
    """What the screen shows of ``element``: layout boxes may start at a fractional
    position (text widths), which the compositor snaps to the nearest pixel."""
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    clip = {k: round(box[k]) for k in ("x", "y", "width", "height")}
    png = element.page.screenshot(clip=clip)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def keep_views(page, folder, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{prefix}-page.png"), full_page=True)
    for view in VIEWS:
        page.locator(f"#{view}").screenshot(path=str(folder / f"{prefix}-{view}.png"))


def assert_same_opaque_pixels(shown: np.ndarray, page: np.ndarray, zoom: int) -> None:
    """``shown`` is ``page`` scaled ``zoom`` times by pixel repetition, wherever the page
    is opaque (transparent pixels show the checkerboard behind them)."""
    h, w = page.shape[:2]
    assert shown.shape[:2] == (h * zoom, w * zoom)
    expected = np.repeat(np.repeat(page, zoom, axis=0), zoom, axis=1)
    opaque = expected[..., 3] == 255
    assert opaque.sum() > 100
    mismatched = np.argwhere(opaque & np.any(shown[..., :3] != expected[..., :3], axis=-1))
    assert not len(mismatched), f"{len(mismatched)} pixels differ, first at (y, x) {tuple(mismatched[0])}"


def assemble_map(sheet: np.ndarray, tileset: dict, layers: list, showing: dict | None = None) -> np.ndarray:
    """The map image: per cell its tiles cut from the sheet, drawn bottom to top (alpha over);
    ``showing``: the frame index each animated tile (by first-frame id) is on."""
    tw, th, columns = tileset["tile_width"], tileset["tile_height"], tileset["columns"]
    frame_of = {
        t["id"]: t["frames"][int((showing or {}).get(str(t["id"]), 0))] for t in tileset["plain"] if t["frames"]
    }
    out = np.zeros((len(layers) * th, len(layers[0]) * tw, 4), np.float64)
    for r, row in enumerate(layers):
        for c, stack in enumerate(row):
            for index in stack:
                index = frame_of.get(index, index)
                y, x = index // columns * th, index % columns * tw
                tile = sheet[y : y + th, x : x + tw].astype(np.float64)
                cell = out[r * th : (r + 1) * th, c * tw : (c + 1) * tw]
                alpha = tile[..., 3:] / 255
                cell[..., :3] = tile[..., :3] * alpha + cell[..., :3] * (1 - alpha)
                cell[..., 3:] = np.maximum(cell[..., 3:], tile[..., 3:])
    return out.round().astype(np.uint8)


def wait_until(page, expression: str, timeout_s: float = 20.0):
    """Poll ``expression`` in the page until truthy. (``page.wait_for_function`` compiles
    its predicate with ``eval``, which the served page's Content-Security-Policy forbids.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(50)


def open_page(browser_context, url: str, console_errors: list):
    page = browser_context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.goto(url)
    wait_until(page, "window.sparkyPreview && sparkyPreview.state.doc !== null")
    page.evaluate("sparkyPreview.ready()")
    return page


def test_static_report_atlases_hover_and_animation_timing(tmp_path, browser_context, console_errors):
    root = copy_example(tmp_path)
    assert main(["-q", "build", "--report", str(root)]) == 0
    report = root / "build" / "sprites" / "report" / "index.html"
    page = open_page(browser_context, report.as_uri(), console_errors)

    # static: no server, so no reroll buttons and no event stream
    assert page.locator("button.reroll").count() == 0
    assert page.evaluate("sparkyPreview.state.served") is False
    assert page.locator("#status").inner_text().startswith("built in")

    page.uncheck("#outlines")  # outlines are drawn over the zoomed view; compare without them
    sheets = root / "build" / "sprites" / "sheets"
    for name in ("characters_0.png", "world_0.png", "boss_0.png"):
        figure = page.locator(f'figure[data-page="{name}"]')
        png = rgba(sheets / name)
        assert_same_opaque_pixels(shot(figure.locator("img.true-size")), png, 1)
        zoomed = figure.locator("canvas.zoomed")
        zoom = int(zoomed.get_attribute("data-zoom"))
        assert zoom >= 2
        assert_same_opaque_pixels(shot(zoomed), png, zoom)
    page.check("#outlines")

    # hovering a region names it, with its size and trim
    doc = page.evaluate("sparkyPreview.state.doc")
    for atlas, region_name in (("characters", "hero/idle/0"), ("world", "sword")):
        page_doc = next(a for a in doc["atlases"] if a["name"] == atlas)["pages"][0]
        region = next(r for r in page_doc["regions"] if region_name in r["names"])
        canvas = page.locator(f'figure[data-page="{page_doc["name"]}"] canvas.zoomed')
        canvas.scroll_into_view_if_needed()
        zoom = int(canvas.get_attribute("data-zoom"))
        box = canvas.bounding_box()
        page.mouse.move(
            box["x"] + (region["x"] + region["w"] / 2) * zoom, box["y"] + (region["y"] + region["h"] / 2) * zoom
        )
        tooltip = page.locator("#tooltip")
        assert tooltip.is_visible()
        text = tooltip.inner_text()
        assert region_name in text and f"{region['w']}×{region['h']} px" in text
        if region["trim"]:
            assert f"in {region['trim'][2]}×{region['trim'][3]}" in text
        page.screenshot(path=str(tmp_path / "views" / f"static-hover-{atlas}.png"))

    # animations: the page's clock is taken over, so frames advance only when the test says
    page.evaluate("sparkyPreview.clock.takeOver()")
    attack = page.evaluate("sparkyPreview.player('hero/attack')")
    assert attack["durations"] == [83, 83, 83, 83] and attack["loop"] is False  # 12 fps, once
    page.evaluate("sparkyPreview.clock.advance(82)")
    assert page.evaluate("sparkyPreview.player('hero/attack').shown") == [0]
    page.evaluate("sparkyPreview.clock.advance(1)")
    assert page.evaluate("sparkyPreview.player('hero/attack').shown") == [0, 1]
    page.evaluate("sparkyPreview.clock.advance(83 * 2)")
    assert page.evaluate("sparkyPreview.player('hero/attack').shown") == [0, 1, 2, 3]
    page.evaluate("sparkyPreview.clock.advance(1000)")
    attack = page.evaluate("sparkyPreview.player('hero/attack')")
    assert attack["shown"] == [0, 1, 2, 3] and attack["playing"] is False  # a one-shot stops on its last frame
    # hero/walk (8 fps, looping) saw the same 82 + 1 + 166 + 1000 = 1249 ms: nine frames of 125 ms,
    # the tenth is due at 1250
    walk = page.evaluate("sparkyPreview.player('hero/walk')")
    assert walk["durations"] == [125] * 6
    assert walk["shown"] == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    page.evaluate("sparkyPreview.clock.advance(1)")
    assert page.evaluate("sparkyPreview.player('hero/walk').shown") == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]
    # the frame on screen is that frame of the atlas, pixel for pixel
    player = page.locator('[data-player="hero/walk"]')
    canvas = player.locator("canvas")
    zoom = int(page.evaluate("document.querySelector('[data-player=\"hero/walk\"] canvas').width")) // 16
    frame = next(f for f in doc["sprites"] if f["name"] == "hero")["animations"][1]["frames"][4]
    hero = next(s for s in doc["sprites"] if s["name"] == "hero")
    strip = np.asarray(Image.open(io.BytesIO(base64.b64decode(hero["locked"].split(",")[1]))).convert("RGBA"))
    assert_same_opaque_pixels(shot(canvas), strip[:, frame * 16 : (frame + 1) * 16], zoom)
    # stepping pauses and moves one frame; onion skin draws the previous frame underneath
    player.locator('button[title="next frame"]').click()
    walk = page.evaluate("sparkyPreview.player('hero/walk')")
    assert walk["playing"] is False and walk["shown"][-1] == 5
    plain = shot(canvas)
    player.locator('input[type="checkbox"]').check()
    assert np.any(shot(canvas) != plain)

    keep_views(page, tmp_path / "views", "static")

    # tilesets: the example's [[tileset]] drawn as a random map from the built sheet with the
    # build's own autotile pick table; pixels compared with the map assembled in Python
    assert page.locator("#tilesets").is_visible()
    tileset = next(t for t in doc["tilesets"] if t["name"] == "dungeon")
    assert tileset["set"] == "blob" and tileset["table"] == blob_table()  # mask -> tile for all 256 masks
    assert [t["name"] for t in tileset["plain"]] == ["floor", "lava"]
    sheet = rgba(root / "build" / "sprites" / "tilesets" / "dungeon.png")
    box = page.locator('#tilesets [data-key="dungeon"]')
    lava = next(t for t in tileset["plain"] if t["name"] == "lava")
    assert len(lava["frames"]) == 2 and lava["durations_ms"] == [333, 333]  # 2 frames at 3 fps
    canvas = box.locator("canvas.map")
    zoom = int(canvas.get_attribute("data-zoom"))
    for seed in (1, 2):
        shown_map = page.evaluate("sparkyPreview.tileMap('dungeon')")
        assert shown_map["seed"] == seed
        assert shown_map["layers"] == tile_map(tileset, seed)
        assert any(lava["id"] in stack for row in shown_map["layers"] for stack in row)
        page.evaluate("sparkyPreview.ready()")
        expected = assemble_map(sheet, tileset, shown_map["layers"], shown_map["frames"])
        assert_same_opaque_pixels(shot(canvas), expected, zoom)
        page.locator("#tilesets").screenshot(path=str(tmp_path / "views" / f"static-tilesets-seed{seed}.png"))
        box.locator("button.reroll-map").click()
    # the lava plays on the page's clock: 1251 ms since the clock was taken over is its
    # second frame (333 + 333 + 333 + 252); 82 ms on, the first again
    assert page.evaluate("sparkyPreview.tileMap('dungeon').frames") == {str(lava["id"]): 1}
    page.evaluate("sparkyPreview.clock.advance(80)")
    assert page.evaluate("sparkyPreview.tileMap('dungeon').frames") == {str(lava["id"]): 1}
    page.evaluate("sparkyPreview.clock.advance(2)")
    shown_map = page.evaluate("sparkyPreview.tileMap('dungeon')")
    assert shown_map["frames"] == {str(lava["id"]): 0}
    assert_same_opaque_pixels(shot(canvas), assemble_map(sheet, tileset, shown_map["layers"], {}), zoom)
    lava_frames = [assemble_map(sheet, tileset, shown_map["layers"], {str(lava["id"]): i}) for i in (0, 1)]
    assert not np.array_equal(*lava_frames)  # the two frames differ on this map
    # the page's map maker agrees with the Python one on other seeds and on a corner set
    corners = {**tileset, "set": "corners", "table": list(range(16))}
    for seed in range(3, 40):
        assert page.evaluate("([t, s]) => sparkyPreview.tileMapOf(t, s)", [tileset, seed]) == tile_map(tileset, seed)
        assert page.evaluate("([t, s]) => sparkyPreview.tileMapOf(t, s)", [corners, seed]) == tile_map(corners, seed)
    assert console_errors == []


class WatchWithPreview:
    """``watch --preview`` as the CLI wires it: a real file watcher, ZeroMQ publisher,
    watch session and preview server, on background threads."""

    def __init__(self, root):
        self.changes: queue.Queue = queue.Queue()
        self.watcher = FileWatcher(self.changes, root)
        self.publisher = Publisher("tcp://127.0.0.1:0", "dungeon")
        self.server = PreviewServer(root, port=0).start()
        self.session = WatchSession(
            root / "sparky.toml",
            self.publisher,
            self.changes,
            echo=lambda *a, **k: None,
            on_files=self.watcher.set_files,
            on_build=self.server.on_build,
        )
        self.thread = threading.Thread(target=self.session.run, daemon=True)
        self.thread.start()

    def close(self):
        self.session.stop_event.set()
        self.thread.join(10)
        self.watcher.stop()
        self.server.close()
        self.publisher.close()


def test_watch_preview_live_updates_errors_and_reroll(tmp_path, browser_context, console_errors):
    root = copy_example(tmp_path)
    manifest = root / "sparky.toml"
    running = WatchWithPreview(root)
    try:
        page = open_page(browser_context, running.server.url, console_errors)
        wait_until(page, "sparkyPreview.state.doc.build && sparkyPreview.state.doc.build.ok")
        page.evaluate("sparkyPreview.ready()")
        assert page.evaluate("sparkyPreview.state.served") is True
        page.evaluate(
            """() => {
                window.sameDocument = true;
                document.querySelector('#atlases [data-key="world"]').mark = 1;
                document.querySelector('#lock [data-key="hero"]').mark = 1;
                document.querySelector('#lock [data-key="knight"]').mark = 1;
            }"""
        )
        hero_before = page.evaluate("sparkyPreview.state.entries.sprites.get('hero').locked")
        updates = page.evaluate("sparkyPreview.state.updates")

        # an edit: hero gets another palette; only hero (and its atlas) change
        text = manifest.read_text()
        manifest.write_text(text.replace('name = "hero"\n', 'name = "hero"\npalette = "sweetie-16"\n', 1))
        wait_until(page, f"sparkyPreview.state.updates > {updates} && sparkyPreview.state.doc.build.ok")
        page.evaluate("sparkyPreview.ready()")
        assert page.evaluate("window.sameDocument") is True  # no reload
        assert page.evaluate("sparkyPreview.state.entries.sprites.get('hero').locked") != hero_before
        assert page.evaluate("document.querySelector('#lock [data-key=\"hero\"]').mark") is None  # re-rendered
        assert page.evaluate("document.querySelector('#lock [data-key=\"knight\"]').mark") == 1  # left alone
        assert page.evaluate("document.querySelector('#atlases [data-key=\"world\"]').mark") == 1
        sweetie = page.locator('#palettes [data-key="sweetie-16"] h3').inner_text()
        assert "2 sprites" in sweetie
        keep_views(page, tmp_path / "views", "watch-edit")

        # a broken edit: the error, with its file and line, without a reload
        good = manifest.read_text()
        broken = good.replace(
            'name = "hero"\npalette = "sweetie-16"\nstyle = "character"\nsize = [16, 16]',
            'name = "hero"\npalette = "sweetie-16"\nstyle = "character"\nsize = [16, "x"]',
            1,
        )
        assert broken != good
        line = broken.splitlines().index('size = [16, "x"]') + 1
        manifest.write_text(broken)
        errors = page.locator("#build-errors")
        errors.wait_for()
        link = errors.locator("a.loc").first
        # write_text truncates before it writes: the watcher may build the half-written file
        # first (its own error, e.g. an empty manifest), then the whole one
        deadline = time.monotonic() + 20
        while not re.fullmatch(rf"sparky\.toml:{line}:\d+", link.inner_text()):
            assert time.monotonic() < deadline, f"the error shown is still {link.inner_text()!r}"
            page.wait_for_timeout(50)
        assert link.get_attribute("href") == manifest.resolve().as_uri()
        assert "size" in errors.inner_text()
        assert page.locator("#status").inner_text() == "build failed"
        assert page.evaluate("window.sameDocument") is True
        assert page.locator('#atlases [data-key="characters"]').count() == 1  # the last good build stays
        keep_views(page, tmp_path / "views", "watch-broken")

        manifest.write_text(good)
        wait_until(page, "sparkyPreview.state.doc.build.ok")
        assert page.locator("#build-errors").count() == 0

        # reroll from the page: a new seed in sparky.toml, a rebuild, a new sprite
        hero_before = page.evaluate("sparkyPreview.state.entries.sprites.get('hero').locked")
        seed_before = page.evaluate("sparkyPreview.state.entries.sprites.get('hero').seed")
        page.locator('#lock [data-key="hero"] button.reroll').click()
        wait_until(page, f"sparkyPreview.state.entries.sprites.get('hero').seed !== {seed_before}")
        page.evaluate("sparkyPreview.ready()")
        hero = page.evaluate("sparkyPreview.state.entries.sprites.get('hero')")
        assert hero["locked"] != hero_before
        assert f"seed = {hero['seed']}" in manifest.read_text()
        shown = page.locator('#lock [data-key="hero"] figure.after img').get_attribute("src")
        assert shown == hero["locked"]
        assert page.evaluate("window.sameDocument") is True
        keep_views(page, tmp_path / "views", "watch-reroll")
        assert page.locator('#lock [data-key="coin"] button.reroll').count() == 0  # hand-drawn: nothing to reroll

        # a tileset edit (the floor tile turned upside down): the map is redrawn from the new sheet
        floor = root / "art" / "dungeon_floor.png"
        Image.fromarray(rgba(floor)[::-1].copy()).save(floor)
        sheet_before = page.evaluate("sparkyPreview.state.entries.tilesets.get('dungeon').image")
        wait_until(page, f"sparkyPreview.state.entries.tilesets.get('dungeon').image !== {sheet_before!r}")
        page.evaluate("sparkyPreview.ready()")
        tileset = page.evaluate("sparkyPreview.state.entries.tilesets.get('dungeon')")
        sheet = rgba(root / "build" / "sprites" / "tilesets" / "dungeon.png")
        old_sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(sheet_before.split(",")[1]))).convert("RGBA"))
        floor_id = tileset["plain"][0]["id"]
        y, x = floor_id // tileset["columns"] * 16, floor_id % tileset["columns"] * 16
        assert np.array_equal(sheet[y : y + 16, x : x + 16], old_sheet[y : y + 16, x : x + 16][::-1])
        canvas = page.locator('#tilesets [data-key="dungeon"] canvas.map')
        page.evaluate("sparkyPreview.clock.takeOver()")  # the lava plays: hold it on its first frame
        assert page.evaluate("sparkyPreview.tileMap('dungeon').frames") == {str(tileset["plain"][1]["id"]): 0}
        expected = assemble_map(sheet, tileset, tile_map(tileset, 1))
        assert_same_opaque_pixels(shot(canvas), expected, int(canvas.get_attribute("data-zoom")))
        assert page.evaluate("window.sameDocument") is True
        page.locator("#tilesets").screenshot(path=str(tmp_path / "views" / "watch-tileset-edit.png"))
        assert console_errors == []
    finally:
        running.close()


def test_corner_tileset_is_drawn_on_its_dual_grid(tmp_path, browser_context, console_errors):
    """A 16-tile corner set: the table is the build's, the map is a dual grid (a tile per
    four cells), and the page's pixels are the Python-assembled map's."""
    from sparky_assets.manifest.load import load_manifest
    from sparky_assets.reads import ReadContext
    from sparky_assets.tiles.build import build_tileset
    from tests.integration.test_tilesets import _project

    root, _ = _project(tmp_path, layout="corners", tileset="corners")
    assert main(["-q", "build", "--report", str(root)]) == 0
    manifest = load_manifest(root / "sparky.toml")
    spec = manifest.tilesets[0]
    made = build_tileset(spec, manifest.palettes[spec.palette], ReadContext(), root)
    page = open_page(browser_context, (root / "build" / "sprites" / "report" / "index.html").as_uri(), console_errors)
    tileset = page.evaluate("sparkyPreview.state.doc.tilesets[0]")
    assert tileset["set"] == "corners" and tileset["table"] == list(made.table)
    page.evaluate("sparkyPreview.clock.takeOver()")  # the ground (water) is animated: hold it on a frame
    page.evaluate("sparkyPreview.clock.advance(300)")
    shown = page.evaluate("sparkyPreview.tileMap('dungeon')")
    layers = shown["layers"]
    assert shown["frames"] == {str(tileset["plain"][0]["id"]): 1}  # 250 ms a frame
    assert layers == tile_map(tileset, 1) and (len(layers), len(layers[0])) == (9, 15)
    assert any(len(stack) == 2 for row in layers for stack in row)  # some terrain on the ground tile
    sheet = rgba(root / "build" / "sprites" / "tilesets" / "dungeon.png")
    canvas = page.locator('#tilesets [data-key="dungeon"] canvas.map')
    expected = assemble_map(sheet, tileset, layers, shown["frames"])
    assert_same_opaque_pixels(shot(canvas), expected, int(canvas.get_attribute("data-zoom")))
    page.locator("#tilesets").screenshot(path=str(tmp_path / "corner-tileset.png"))
    assert console_errors == []
