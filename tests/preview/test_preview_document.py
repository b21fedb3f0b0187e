"""The preview document, the static report and the preview server, without a browser:
what the page is given is what the build wrote; updates carry only what changed; the
server refuses what a foreign page could send it."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparky_assets.cli.main import main
from sparky_assets.errors import InvalidInput
from sparky_assets.palettes.load import load_palette
from sparky_assets.preview.document import collect, diff, load_summary
from sparky_assets.preview.server import PreviewServer
from sparky_assets.preview.site import PAGE_FILES, page_file
from tests.helpers import copy_example, rgba


def image(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA"))


@pytest.fixture
def built(tmp_path) -> Path:
    root = copy_example(tmp_path)
    assert main(["-q", "build", "--report", str(root)]) == 0
    return root


def test_document_is_what_the_build_wrote(built):
    doc = collect(built, load_summary(built))
    assert [a["name"] for a in doc["atlases"]] == ["characters", "world", "boss"]
    assert len(doc["sprites"]) == 22 and [t["name"] for t in doc["tilesets"]] == ["dungeon"]
    assert (
        doc["build"]["ok"] and doc["build"]["files"]["added"] == 55
    )  # 49 sprite-atlas files + the example tileset (sheet, .tsx, Godot .tres, Bevy .ron, ...)
    sheets = built / "build" / "sprites" / "sheets"
    for atlas in doc["atlases"]:
        for page in atlas["pages"]:  # the page PNG byte for byte
            assert base64.b64decode(page["image"].split(",", 1)[1]) == (sheets / page["name"]).read_bytes()
    # every sprite's locked strip is its frames cut from the page, untrimmed to source size
    world = json.loads((sheets / "world.json").read_text())
    page = rgba(sheets / "world_0.png")
    sword = next(s for s in doc["sprites"] if s["name"] == "sword")
    frame = next(f for f in world["frames"] if f["sprite"] == "sword")
    (x, y, w, h), (ox, oy) = frame["rect"], frame["offset"]
    strip = image(sword["locked"])
    assert strip.shape == (12, 12, 4) and (w, h) != (12, 12)  # trimmed in the atlas
    assert np.array_equal(strip[oy : oy + h, ox : ox + w], page[y : y + h, x : x + w])
    assert strip[..., 3].sum() == page[y : y + h, x : x + w, 3].sum()
    # animations: frames in strip order and the durations the fps gives
    hero = next(s for s in doc["sprites"] if s["name"] == "hero")
    assert [(a["name"], a["frames"], a["durations_ms"]) for a in hero["animations"]] == [
        ("idle", [0, 1, 2, 3], [125] * 4),
        ("walk", [4, 5, 6, 7, 8, 9], [125] * 6),
        ("attack", [10, 11, 12, 13], [83] * 4),
    ]
    assert hero["before"]["source"] == "store" and hero["rerollable"]
    coin = next(s for s in doc["sprites"] if s["name"] == "coin")
    assert coin["before"] == {"source": "source", "file": "art/coin.png", "image": coin["before"]["image"]}
    assert not coin["rerollable"]


def test_tilesets_are_the_built_sheet_and_the_builds_pick_table(built):
    from sparky_assets.manifest.load import load_manifest
    from sparky_assets.reads import ReadContext
    from sparky_assets.tiles.build import build_tileset

    tileset = collect(built)["tilesets"][0]
    sheet = built / "build" / "sprites" / "tilesets" / "dungeon.png"
    assert base64.b64decode(tileset["image"].split(",", 1)[1]) == sheet.read_bytes()
    manifest = load_manifest(built / "sparky.toml")
    spec = manifest.tilesets[0]
    made = build_tileset(spec, manifest.palettes[spec.palette], ReadContext(), built)
    assert tileset["table"] == list(made.table) and len(tileset["table"]) == 256
    assert tileset["columns"] == made.columns and tileset["set"] == "blob"
    assert [t["id"] for t in tileset["tiles"]] == [t.index for t in made.tiles]
    assert tileset["plain"] == [
        {
            "id": t.index,
            "name": t.name,
            "frames": list(t.frames),
            "durations_ms": [round(1000 / t.fps)] * len(t.frames) if t.frames else [],
        }
        for t in made.tiles
        if t.mask is None
    ]


def test_a_planted_tileset_description_is_left_out(built):
    """An XML bomb, an image path out of the folder, a broken file: no tileset, no hang."""
    tsx = built / "build" / "sprites" / "tilesets" / "dungeon.tsx"
    good = tsx.read_text()
    laughs = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10 if i else "lol"}">' for i in range(10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE t [{laughs}]><tileset name="&l9;"/>'
    for planted in (bomb, good.replace('source="dungeon.png"', 'source="../../sparky.toml"'), good[:200]):
        tsx.write_text(planted)
        assert collect(built)["tilesets"] == []
    tsx.write_text(good)
    assert [t["name"] for t in collect(built)["tilesets"]] == ["dungeon"]


@pytest.mark.parametrize(
    "attribute, value",
    [
        ("columns", "0"),
        ("columns", "-3"),
        ("columns", "x"),
        ("columns", "99999999999999999999"),
        ("tilewidth", "0"),
        ("tileheight", "-16"),
        ("tilewidth", "1e9"),
    ],
)
def test_a_tileset_with_impossible_tile_sizes_is_left_out_with_a_warning(built, attribute, value):
    """A planted ``columns="0"`` (or a negative, huge or non-numeric size) must not crash
    the page's document (it divided by columns): the tileset is left out, the page says why."""
    tsx = built / "build" / "sprites" / "tilesets" / "dungeon.tsx"
    good = tsx.read_text()
    planted, count = re.subn(rf'\b{attribute}="[^"]*"', f'{attribute}="{value}"', good, count=1)
    assert count == 1
    tsx.write_text(planted)
    doc = collect(built)
    assert doc["tilesets"] == [] and len(doc["sprites"]) == 22
    assert len(doc["notes"]) == 1
    assert "build/sprites/tilesets/dungeon.tsx" in doc["notes"][0] and attribute in doc["notes"][0]
    tsx.write_text(good)
    doc = collect(built)
    assert [t["name"] for t in doc["tilesets"]] == ["dungeon"] and doc["notes"] == []


def test_palette_usage_counts_every_locked_pixel(built):
    doc = collect(built)
    by_palette: dict[str, int] = {}
    for sprite in doc["sprites"]:
        strip = image(sprite["locked"])
        colours = {"#{:02x}{:02x}{:02x}".format(*p[:3]) for p in strip.reshape(-1, 4) if p[3]}
        allowed = {"#{:02x}{:02x}{:02x}".format(*c) for c in load_palette(sprite["palette"], built).colors}
        assert colours <= allowed, f"{sprite['name']} has colours outside {sprite['palette']}"
        by_palette[sprite["palette"]] = by_palette.get(sprite["palette"], 0) + int((strip[..., 3] > 0).sum())
    for palette in doc["palettes"]:
        assert sum(c["count"] for c in palette["colors"]) == by_palette[palette["name"]]


def test_same_files_same_document_and_updates_carry_only_changes(built):
    first = collect(built)
    assert json.dumps(collect(built)) == json.dumps(first)
    assert all(not diff(first, first)[c]["changed"] for c in ("atlases", "sprites", "palettes", "tilesets"))
    manifest = built / "sparky.toml"
    manifest.write_text(manifest.read_text().replace('name = "hero"\n', 'name = "hero"\npalette = "sweetie-16"\n', 1))
    assert main(["-q", "build", str(built)]) == 0
    update = diff(first, collect(built, load_summary(built)))
    assert [e["key"] for e in update["sprites"]["changed"]] == ["hero"]
    assert [e["key"] for e in update["atlases"]["changed"]] == ["characters"]
    assert {e["key"] for e in update["palettes"]["changed"]} == {"endesga-32", "sweetie-16"}
    assert update["sprites"]["order"] == [s["key"] for s in first["sprites"]]
    assert update["build"]["ran"]["process"] == ["hero"]


def test_preview_of_a_broken_manifest_shows_its_errors_with_file_and_line(built):
    manifest = built / "sparky.toml"
    text = manifest.read_text()
    manifest.write_text(text.replace('palette = "endesga-32"', 'palette = "endesga32"', 1))
    recorded = load_summary(built)
    assert main(["-q", "build", str(built)]) == 2
    assert load_summary(built) == recorded  # a failed build writes nothing
    server = PreviewServer(built, port=0)
    try:
        document = server.last_build()
    finally:
        server.close()
    assert len(document["atlases"]) == 3  # the last good outputs, still shown
    assert document["build"]["ok"] is False
    (error,) = document["build"]["errors"]
    assert error["file"] == "sparky.toml" and error["line"] == text.splitlines().index('palette = "endesga-32"') + 1
    assert error["href"] == manifest.resolve().as_uri() and "endesga-32" in error["message"]


def test_planted_paths_never_put_outside_files_on_the_page(built, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret bytes")
    sheets = built / "build" / "sprites" / "sheets"
    world = json.loads((sheets / "world.json").read_text())
    world["pages"][0]["image"] = "../../../../secret.png"
    (sheets / "world.json").write_text(json.dumps(world))
    (sheets / "boss_0.png").unlink()
    (sheets / "boss_0.png").symlink_to(secret)
    lock = built / "sparky.lock"
    lock.write_text(re.sub(r'file = "sparky-generated/hero\.\w+\.png"', 'file = "../secret.png"', lock.read_text()))
    assert 'file = "../secret.png"' in lock.read_text() and (built / "../secret.png").exists()
    ledger = built / ".sparky" / "outputs.json"
    record = json.loads(ledger.read_text())
    record["../secret.json"] = {"target": "sheets", "kind": "metadata"}
    ledger.write_text(json.dumps(record))
    tsx = built / "build" / "sprites" / "tilesets" / "dungeon.tsx"
    tsx.write_text(tsx.read_text().replace('source="dungeon.png"', 'source="../../../../secret.png"'))

    doc = collect(built)
    assert [a["name"] for a in doc["atlases"]] == ["characters"] and doc["tilesets"] == []
    assert next(s for s in doc["sprites"] if s["name"] == "hero")["before"] is None
    assert base64.b64encode(secret.read_bytes()).decode() not in json.dumps(doc)


def test_report_is_the_shipped_page_plus_its_data(built):
    folder = built / "build" / "sprites" / "report"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*PAGE_FILES, "data.js"])
    for name in PAGE_FILES:
        assert (folder / name).read_bytes() == page_file(name)
        # nothing from the network: no absolute URLs, no fetch of local files
        assert not re.search(rb"https?://|//cdn|@import", page_file(name)), name
    assert b"fetch(" not in page_file("preview.js").replace(b'fetch("api/reroll"', b"")
    data = (folder / "data.js").read_text()
    assert data.startswith("window.SPARKY_PREVIEW = ") and data.endswith(";\n")
    assert json.loads(data[len("window.SPARKY_PREVIEW = ") : -2])["project"] == "dungeon"


# ------------------------------------------------------------------ the server


def request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{server.port}", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def test_server_serves_the_page_and_refuses_foreign_requests(built):
    server = PreviewServer(built, port=0).start()
    try:
        response, html = request(server, "GET", "/")
        assert response.status == 200 and "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert f'<meta name="sparky-token" content="{server.token}">'.encode() in html
        assert b"data.js" not in html  # served pages take the document from /events
        assert request(server, "GET", "/data.js")[0].status == 404
        assert request(server, "GET", "/../sparky.toml")[0].status == 404
        assert request(server, "GET", "/", headers={"Host": "evil.example:80"})[0].status == 421

        def reroll(sprite="hero", **headers):
            body = json.dumps({"sprite": sprite})
            base = {"Content-Type": "application/json", "X-Sparky-Token": server.token}
            response, data = request(server, "POST", "/api/reroll", body, {**base, **headers})
            return response.status, json.loads(data)

        manifest = (built / "sparky.toml").read_text()
        assert reroll(**{"X-Sparky-Token": "guess"})[0] == 403
        assert reroll(Origin="http://evil.example")[0] == 403
        assert reroll(**{"Content-Type": "text/plain"})[0] == 415
        status, body = reroll("heroo")
        assert status == 400 and "did you mean 'hero'" in body["error"]
        status, body = reroll("coin")
        assert status == 400 and "not generated" in body["error"]
        assert (built / "sparky.toml").read_text() == manifest  # nothing refused touched the manifest
        status, body = reroll(Origin=f"http://127.0.0.1:{server.port}")
        assert status == 202 and f"seed = {body['seed']}" in (built / "sparky.toml").read_text()
    finally:
        server.close()


def test_server_streams_a_snapshot_then_updates(built):
    server = PreviewServer(built, port=0, rebuild_after_reroll=True, heartbeat_s=0.5).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        conn.request("GET", "/events", headers={"Host": f"localhost:{server.port}"})
        stream = conn.getresponse()
        assert stream.headers["Content-Type"] == "text/event-stream"

        def next_event():
            fields = {}
            while True:
                line = stream.readline().decode().rstrip("\n")
                if not line and fields:
                    return fields["event"], json.loads(fields["data"])
                if line and not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    fields[key] = value

        kind, snapshot = next_event()
        assert kind == "snapshot" and len(snapshot["sprites"]) == 22
        seed = server.reroll("knight")  # rebuilds in the server's process
        kind, update = next_event()
        assert kind == "update" and update["build"]["ok"]
        (knight,) = update["sprites"]["changed"]
        assert knight["name"] == "knight" and knight["seed"] == seed
        conn.close()
    finally:
        server.close()


def test_server_binds_loopback_unless_allowed(built):
    with pytest.raises(InvalidInput, match="refusing to serve the preview"):
        PreviewServer(built, host="0.0.0.0", port=0)


# ------------------------------------------------------------------ the commands


def read_until(proc, pattern: str, timeout_s: float = 30.0) -> re.Match:
    """The first stdout line of ``proc`` matching ``pattern`` (read on a thread: no blocking past the deadline).
    Every line read is kept in ``proc.lines`` (for a failing test's message)."""
    found: queue.Queue = queue.Queue()
    proc.lines = lines = []

    def pump():
        for line in proc.stdout:
            lines.append(line)
            match = re.search(pattern, line)
            if match:
                found.put(match)
                break
        else:
            found.put(None)
        for line in proc.stdout:  # keep draining: a full pipe would block the process's prints
            lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    match = found.get(timeout=timeout_s)
    assert match, f"{proc.args} ended without printing {pattern!r}"
    return match


def sse_events(port: int):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/events", headers={"Host": f"127.0.0.1:{port}"})
    stream = conn.getresponse()
    fields: dict[str, str] = {}
    for raw in stream:
        line = raw.decode().rstrip("\n")
        if not line and fields:
            yield fields["event"], json.loads(fields["data"])
            fields = {}
        elif line and not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value


@pytest.mark.parametrize("command", ["watch", "preview"])
def test_commands_serve_the_preview_and_stop_on_sigterm(tmp_path, command):
    root = copy_example(tmp_path)
    args = [sys.executable, "-m", "sparky_assets", command, str(root)]
    args += ["--preview-port", "0", "--endpoint", "tcp://127.0.0.1:0"] if command == "watch" else ["--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        port = int(read_until(proc, r"http://127\.0\.0\.1:(\d+)/").group(1))
        events = sse_events(port)
        kind, document = next(events)
        assert kind == "snapshot"
        if document["build"] is None:  # `watch` served before its first build finished: that comes next
            kind, update = next(events)
            assert kind == "update"
            document = {**update, "sprites": update["sprites"]["changed"]}
        # (`preview` built first: the project had never been built)
        assert len(document["sprites"]) == 22 and document["build"]["ok"]
        if command == "watch":  # an edit: the open stream gets the new build
            manifest = root / "sparky.toml"
            manifest.write_text(manifest.read_text().replace("seed = 1234", "seed = 4321", 1))
            kind, update = next(events)
            while kind == "update" and not update["build"]["ok"]:
                # write_text truncates, then writes: a loaded machine can let watch build the
                # half-written file first (a failed build, as an editor's save would cause);
                # the complete file is another change, built next
                kind, update = next(events)
            assert kind == "update" and update["build"]["ok"] and update["sprites"]["changed"]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        if code != 0:
            time.sleep(0.5)  # the reader thread takes the last lines
        assert code == 0, "".join(proc.lines[-60:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
