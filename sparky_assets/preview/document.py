"""The preview document: everything the page shows, as one JSON-ready dict.

It is read from what a build leaves on disk — never from the engine's internals — so
the static report, ``preview`` (reading a past build) and ``watch --preview`` (right
after a build) show the same thing:

* ``.sparky/outputs.json`` (the output ledger) names the ``sheets`` target's files;
  each ``<atlas>.json`` there and its page PNGs give regions, frames and animations;
* ``sparky.lock`` + ``sparky-generated/`` give each generated sprite *before* palette
  lock; an ``image`` sprite's source PNG is its "before";
* the manifest (when it loads) gives each sprite's generator, seed, prompt and palette,
  and the palettes' colours;
* the build summary (:func:`build_summary`, kept in ``.sparky/last-build.json``) gives
  what ran, what came from cache, stage timings, warnings and errors.

Shape (``format`` 1)::

    {format, project, build, notes,
     atlases:  [{key, hash, name, pages: [{name, image, width, height, regions}]}],
     sprites:  [{key, hash, name, atlas, generator, seed, width, height, locked, frames,
                 animations: [{name, fps, loop, frames, durations_ms}], before,
                 review, review_note, colors, rerollable}],
     palettes: [{key, hash, name, colors: [{hex, count}], sprites}],
     tilesets: [{key, hash, name, tile_width, tile_height, columns, image, set, table,
                 plain: [{id, name, frames, durations_ms}], tiles: [{id, name, x, y}]}]}

Images are ``data:image/png`` URIs (page PNGs byte for byte as written), except a
diffusion sprite's raw model renders, which can be large: with an ``assets`` dict
(the static report, the server) they are files next to the page, named by content
(``assets/<sha256:16>.png``). Every entry of a collection has a ``key`` (unique in it)
and a ``hash`` of its content: an update (:func:`diff`) carries only entries whose
hash changed.

``review`` (diffusion sprites): ``{frames: [{raw, width, height, grid}], confidence}``
— per frame the model's raw image and the pixel grid pixelize found in it (cells,
period, phase, drift, confidence, source, and the grid lines' pixel positions
``x_edges``/``y_edges``), as the build kept them in the stage cache under the sprite's
generate key; ``confidence`` is the least sure frame's. ``None`` with a
``review_note`` when the cache does not have them (generated elsewhere, cache cleared).

A tileset comes from the build's Tiled ``.tsx`` and sheet: ``set`` is ``blob``,
``corners`` or ``None``, ``table`` the build's autotile pick table (8-neighbour mask →
tile id for blob, NW<<3|NE<<2|SW<<1|SE → tile id for corners), ``plain`` the other tiles
(the page's map uses the first as ground, the rest as decoration; :mod:`.tilemap`).
Invariant: the same files on disk give the same document, byte for byte once JSON-encoded.

Everything read here is untrusted (a cloned project ships its own ``.sparky/``): paths
from ``outputs.json``, the atlas descriptions and ``sparky.lock`` are read only when they
resolve inside the project (:mod:`~sparky_assets.pipeline.safepath`), and only regular
files of bounded size; anything else is left out of the page.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import Diagnostic, SparkyError
from ..export.png import encode_png as export_png
from ..pack.atlas import play_order
from ..pipeline.fsutil import atomic_write
from ..pipeline.safepath import STATE_DIR, is_inside, read_regular, record_path

DOCUMENT_FORMAT = 1
COLLECTIONS = ("atlases", "sprites", "palettes", "tilesets")
SUMMARY_NAME = "last-build.json"
MAX_FILE = 256 << 20
"""Largest file the preview reads (a planted huge or endless file is skipped, not read)."""
REVIEW_MISSING = (
    "the model's raw image is not in this project's cache (generated on another machine, "
    "or the cache was cleared or evicted it); regenerate the sprite to see it"
)
MAX_REVIEW_SIDE = 4096
"""Largest raw model image the page shows (a planted cache entry may claim anything)."""


# ------------------------------------------------------------------ build summary


def error_entry(d: Diagnostic, root: Path) -> dict[str, Any]:
    """One diagnostic for the page: its text, and a ``file://`` link with line/column."""
    entry: dict[str, Any] = {
        "message": d.format_message(),
        "key": d.key,
        "sprite": d.sprite,
        "stage": d.stage,
        "file": None,
        "line": d.line,
        "column": d.column,
        "href": None,
    }
    if d.file:
        path = Path(d.file)
        path = path if path.is_absolute() else root / path
        try:
            entry["file"] = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            entry["file"] = str(path)
        entry["href"] = path.resolve().as_uri()
    return entry


def build_summary(root: Path, project: str, report=None, diagnostics: Sequence[Diagnostic] = ()) -> dict[str, Any]:
    """What a build did (``report``, a :class:`~sparky_assets.pipeline.report.BuildReport`)
    or why it failed (``diagnostics``), as the page's ``build`` section."""
    if report is None:
        return {"ok": False, "project": project, "errors": [error_entry(d, root) for d in diagnostics]}
    changes = {c: sum(1 for a in report.assets if a.change == c) for c in ("added", "modified", "removed")}
    return {
        "ok": True,
        "project": report.project,
        "duration_s": round(report.duration_s, 4),
        "ran": {stage: list(names) for stage, names in report.ran.items()},
        "cached": dict(report.cached),
        "stage_s": {stage: round(s, 4) for stage, s in getattr(report, "stage_s", {}).items()},
        "files": {**changes, "unchanged": report.unchanged},
        "generator_stats": report.generator_stats,
        "warnings": list(report.warnings),
        "errors": [],
    }


def save_summary(root: Path, summary: dict[str, Any]) -> None:
    """Keep the last build's summary in ``.sparky/`` for a later ``preview``."""
    atomic_write(root / STATE_DIR / SUMMARY_NAME, json.dumps(summary, sort_keys=True).encode(), fsync=False)


def _read(path: Path) -> bytes:
    """A regular file of bounded size (``OSError``/``ValueError`` otherwise)."""
    return read_regular(path, MAX_FILE)


def load_summary(root: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads(_read(root / STATE_DIR / SUMMARY_NAME))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


# ------------------------------------------------------------------ collection


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def encode_png(pixels: np.ndarray) -> bytes:
    """The package's PNG writer (same bytes on every machine), quick mode, exact pixels."""
    return export_png(pixels, fast=True, clear_hidden=False)


def _hashed(entry: dict[str, Any]) -> dict[str, Any]:
    entry["hash"] = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:16]
    return entry


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def colour_counts(pixels: np.ndarray) -> dict[str, int]:
    """Opaque pixels per colour (``#rrggbb``), for the palette's usage counts."""
    opaque = pixels[pixels[..., 3] > 0][:, :3].astype(np.uint32)
    if not len(opaque):
        return {}
    packed = (opaque[:, 0] << 16) | (opaque[:, 1] << 8) | opaque[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    return {f"#{int(v):06x}": int(c) for v, c in zip(values, counts)}


def _load_manifest(root: Path):
    from ..manifest.load import load_manifest

    try:
        return load_manifest(root / "sparky.toml")
    except SparkyError:
        return None


def _ledger_files(root: Path, target: str, kind: str, suffix: str) -> list[Path]:
    """Files of one export ``target`` and ``kind`` the last build wrote, per the ledger."""
    ledger = root / STATE_DIR / "outputs.json"
    try:
        record = json.loads(_read(ledger))
    except (OSError, ValueError):
        return []
    found = []
    for rel, meta in sorted(record.items()) if isinstance(record, dict) else ():
        if not isinstance(meta, dict) or meta.get("target") != target or meta.get("kind") != kind:
            continue
        path = record_path(root, rel, file=str(ledger))
        if path is not None and path.name.endswith(suffix):
            found.append(path)
    return found


def _sheet_documents(root: Path) -> list[tuple[Path, dict]]:
    """The ``sheets`` target's atlas descriptions the last build wrote, per the ledger."""
    found = []
    for path in _ledger_files(root, "sheets", "metadata", ".json"):
        try:
            doc = json.loads(_read(path))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("format") == 1 and "atlas" in doc:
            found.append((path, doc))
    return found


MAX_TSX = 16 << 20
MAX_TILE_SIDE = 4096
MAX_TILE_COLUMNS = 4096
"""Bounds of a tileset description's tile size and columns (a planted file may claim anything)."""


def _whole(element, name: str, low: int, high: int) -> int:
    """The attribute ``name`` as a whole number in ``low..high``; ``ValueError`` naming
    it, the range and what was found otherwise."""
    text = element.attrib[name]
    digits = text.strip()
    value = int(digits) if len(digits) <= 12 and digits.isascii() and digits.lstrip("-").isdigit() else None
    if value is None or not low <= value <= high:
        raise ValueError(f"{name} is {text[:20]!r}, expected a whole number from {low} to {high}")
    return value


def _tileset(path: Path) -> dict[str, Any]:
    """A tileset entry from the build's Tiled ``.tsx`` and its sheet: the tiles, and the
    autotile pick table rebuilt from the Wang set with the build's own rule
    (:func:`~sparky_assets.tiles.autotile.reduce_mask`), so the page never re-implements
    it. Raises ``ValueError`` (and friends) on anything that is not such a file."""
    from xml.etree import ElementTree

    from ..tiles import autotile

    root = ElementTree.fromstring(read_regular(path, MAX_TSX))
    width, height = (_whole(root, k, 1, MAX_TILE_SIDE) for k in ("tilewidth", "tileheight"))
    columns = _whole(root, "columns", 1, MAX_TILE_COLUMNS)
    image = root.find("image")
    sheet = _read(_page_path(path, {"image": image.attrib["source"]}))
    wang: dict[int, list[int]] = {}
    wangset = root.find("wangsets/wangset")
    if wangset is not None:
        for tile in wangset.iter("wangtile"):
            wang[int(tile.attrib["tileid"])] = [int(v) for v in tile.attrib["wangid"].split(",")]
    table: list[int] = []
    kind = None
    if wang:
        kind = "blob" if wangset.attrib.get("type") == "mixed" else "corners"
        if kind == "blob":
            by_mask = {sum(1 << i for i, v in enumerate(ids) if v): t for t, ids in sorted(wang.items())}
            table = [by_mask[autotile.reduce_mask(m)] for m in range(256)]
        else:
            by_key = {autotile.corner_tile_for(ids[7], ids[1], ids[5], ids[3]): t for t, ids in sorted(wang.items())}
            table = [by_key[k] for k in range(16)]
    tiles, plain = [], []
    for tile in root.iter("tile"):
        index = _whole(tile, "id", 0, MAX_TILE_COLUMNS * MAX_TILE_COLUMNS)
        name = next((p.attrib["value"] for p in tile.iter("property") if p.attrib.get("name") == "name"), str(index))
        frames = [(int(f.attrib["tileid"]), max(1, int(f.attrib["duration"]))) for f in tile.iter("frame")]
        tiles.append({"id": index, "name": name, "x": index % columns * width, "y": index // columns * height})
        if index not in wang:
            plain.append(
                {"id": index, "name": name, "frames": [f for f, _ in frames], "durations_ms": [d for _, d in frames]}
            )
    return {
        "key": root.attrib["name"],
        "name": root.attrib["name"],
        "tile_width": width,
        "tile_height": height,
        "columns": columns,
        "image": png_uri(sheet),
        "set": kind,
        "table": table,
        "plain": plain,
        "tiles": tiles,
    }


def _tilesets(root: Path, notes: list[str]) -> list[dict[str, Any]]:
    """The tilesets the build wrote; a description that does not hold up is left out,
    with a note on the page naming it and why (a half-removed file says nothing)."""
    out = []
    for path in _ledger_files(root, "tilesets", "tileset", ".tsx"):
        try:
            out.append(_hashed(_tileset(path)))
        except FileNotFoundError:
            continue  # removed since the build: nothing to say
        except (
            OSError,
            ValueError,
            ArithmeticError,
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
            SyntaxError,
        ) as exc:  # planted or damaged
            shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
            notes.append(f"warning: tileset {shown} left out: {reason[:200]}")
    return out


def _frame_key(frame: dict) -> str:
    return frame["sprite"] if frame["animation"] is None else f"{frame['sprite']}/{frame['animation']}/{frame['frame']}"


def _page_path(description: Path, page: dict) -> Path:
    """A page PNG named by an atlas description: a file next to it, nowhere else."""
    name = page["image"]
    if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
        raise ValueError(f"page image {name!r} is not a file name")
    path = description.parent / name
    if not is_inside(description.parent, path):
        raise ValueError(f"page image {name!r} leads out of its folder")
    return path


def _atlas_entry(path: Path, doc: dict) -> tuple[dict, list[np.ndarray]]:
    pages, pixels = [], []
    for p, page in enumerate(doc["pages"]):
        data = _read(_page_path(path, page))
        pixels.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")))
        regions: dict[tuple, dict] = {}
        for f in doc["frames"]:
            if f["page"] != p:
                continue
            x, y, w, h = f["rect"]
            region = regions.setdefault((x, y, w, h), {"x": x, "y": y, "w": w, "h": h, "names": [], "trim": None})
            region["names"].append(_frame_key(f))
            if [w, h] != f["source_size"]:
                region["trim"] = [*f["offset"], *f["source_size"]]
        pages.append(
            {
                "name": page["image"],
                "image": png_uri(data),
                "width": page["size"][0],
                "height": page["size"][1],
                "regions": list(regions.values()),
            }
        )
    return {"key": doc["atlas"], "name": doc["atlas"], "pages": pages}, pixels


def _locked_frames(doc: dict, pages: list[np.ndarray], sprite: str) -> list[tuple[dict, np.ndarray]]:
    """The sprite's frames as packed, untrimmed back to their source size."""
    out = []
    for f in doc["frames"]:
        if f["sprite"] != sprite:
            continue
        x, y, w, h = f["rect"]
        sw, sh = f["source_size"]
        ox, oy = f["offset"]
        frame = np.zeros((sh, sw, 4), dtype=np.uint8)
        frame[oy : oy + h, ox : ox + w] = pages[f["page"]][y : y + h, x : x + w]
        out.append((f, frame))
    return out


def _before(root: Path, name: str, spec, lock: dict) -> dict | None:
    """The sprite before palette lock: its stored generated frames, or its source image."""
    entry = lock.get(name)
    candidates = []
    if isinstance(entry, dict) and isinstance(entry.get("file"), str):
        candidates.append(("store", entry["file"], root / "sparky-generated"))
    source = spec.options.get("source") if spec is not None else None
    if isinstance(source, str):
        candidates.append(("source", source, root))
    for kind, rel, inside in candidates:
        path = root / rel
        if not is_inside(inside, path):
            continue
        try:
            return {"source": kind, "file": rel, "image": png_uri(_read(path))}
        except (OSError, ValueError):
            continue
    return None


def _asset(data: bytes, assets: dict[str, bytes] | None) -> str:
    """A PNG for the page: inlined as a ``data:`` URI, or (``assets`` given: the static
    report and the server) kept in ``assets`` under a content-addressed name that the
    page loads next to itself (``assets/<sha256:16>.png``)."""
    if assets is None:
        return png_uri(data)
    name = f"assets/{hashlib.sha256(data).hexdigest()[:16]}.png"
    assets[name] = data
    return name


def _edges(values: Any, length: int) -> list[float]:
    if not isinstance(values, list) or not 2 <= len(values) <= length + 1:
        raise ValueError("grid edges")
    edges = [float(v) for v in values]
    if edges[0] != 0 or edges[-1] != length or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError("grid edges")
    return edges


def _review(root: Path, key: str, assets: dict[str, bytes] | None) -> dict[str, Any] | None:
    """A generated sprite's review as the build kept it in the stage cache under its
    generate ``key``: per frame the model's raw image and the pixel grid found in it.
    The cache is untrusted: anything that does not check out leaves the review out."""
    from ..pipeline.cache import StageCache, cache_dir

    try:
        cache = StageCache(cache_dir(root), max_bytes=MAX_FILE)
        frames = cache.get_review(key)
    except (SparkyError, OSError):
        return None
    if not frames:
        return None
    out = []
    try:
        for frame in frames:
            width, height, grid = int(frame["width"]), int(frame["height"]), frame["grid"]
            with Image.open(io.BytesIO(frame["png"])) as im:
                if im.format != "PNG" or im.size != (width, height) or max(width, height) > MAX_REVIEW_SIDE:
                    return None
            shown = {
                "cells": [int(v) for v in grid["cells"]][:2],
                "period": [float(v) for v in grid["period"]][:2],
                "phase": [float(v) for v in grid["phase"]][:2],
                "drift": [float(v) for v in grid.get("drift", (0, 0))][:2],
                "confidence": float(grid["confidence"]),
                "source": str(grid["source"])[:16],
                "x_edges": _edges(grid["x_edges"], width),
                "y_edges": _edges(grid["y_edges"], height),
            }
            out.append({"raw": _asset(frame["png"], assets), "width": width, "height": height, "grid": shown})
    except (KeyError, TypeError, ValueError, OSError, SyntaxError, Image.DecompressionBombError):
        return None
    return {"frames": out, "confidence": min(f["grid"]["confidence"] for f in out)}


def _memo_review(
    root: Path, key: str, assets: dict[str, bytes] | None, cache: dict[str, tuple] | None, seen: dict[str, tuple]
) -> dict[str, Any] | None:
    """:func:`_review`, remembered in ``cache`` by generate key between calls (``watch``
    rebuilds): a key's review never changes, and its raw images can be megabytes."""
    memo = f"review:{'files' if assets is not None else 'inline'}:{key}"
    if cache is not None and memo in cache:
        review, files = cache[memo]
    else:
        files = {}
        review = _review(root, key, files if assets is not None else None)
    if review is not None:  # a missing one may appear (regenerated with the same key): look again next time
        seen[memo] = (review, files)
    if assets is not None:
        assets.update(files)
    return review


def _read_lock(root: Path) -> dict:
    try:
        data = tomllib.loads(_read(root / "sparky.lock").decode("utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and TOMLDecodeError are ValueErrors
        return {}
    sprites = data.get("sprite")
    return sprites if isinstance(sprites, dict) else {}


def _packed_sprites(doc: dict, pages: list[np.ndarray]) -> list[dict[str, Any]]:
    """What an atlas's outputs say about each of its sprites: the locked frames as a
    strip, animations in strip positions with per-frame durations, colour counts."""
    out = []
    for name in dict.fromkeys(f["sprite"] for f in doc["frames"]):
        frames = _locked_frames(doc, pages, name)
        # atlas frame index → position in this sprite's strip
        position = {i: k for k, i in enumerate(i for i, f in enumerate(doc["frames"]) if f["sprite"] == name)}
        strip = np.concatenate([image for _, image in frames], axis=1)
        animations = []
        for a in doc["animations"]:
            if a["sprite"] != name:
                continue
            # per-frame timing when the sheet carries it, else from the fps
            # and in play order for one cycle (the sheet's ``direction``: reverse, ping-pong …)
            played = [a["frames"][k] for k in play_order(len(a["frames"]), a.get("direction", "forward"))]
            durations = [int(doc["frames"][i].get("duration_ms") or round(1000 / a["fps"])) for i in played]
            animations.append(
                {
                    "name": a["name"],
                    "fps": a["fps"],
                    "loop": a["loop"],
                    "frames": [position[i] for i in played],
                    "durations_ms": durations,
                }
            )
        out.append(
            {
                "name": name,
                "atlas": doc["atlas"],
                "width": int(frames[0][1].shape[1]),
                "height": int(frames[0][1].shape[0]),
                "frames": len(frames),
                "locked": png_uri(encode_png(strip)),
                "animations": animations,
                "counts": colour_counts(strip),
            }
        )
    return out


def _atlas(path: Path, doc: dict, cache: dict[str, tuple] | None, seen: dict[str, tuple]) -> tuple[dict, list[dict]]:
    """The atlas entry and its sprites' packed parts, reused from ``cache`` while the
    atlas's description and page files are byte-identical (``watch`` rebuilds)."""
    digest = hashlib.sha256(_read(path))
    for page in doc["pages"]:
        digest.update(_read(_page_path(path, page)))
    key = digest.hexdigest()
    if cache is not None and key in cache:
        seen[key] = cache[key]
        return cache[key]
    atlas, pages = _atlas_entry(path, doc)
    seen[key] = (_hashed(atlas), _packed_sprites(doc, pages))
    return seen[key]


def collect(
    root: Path,
    summary: dict[str, Any] | None = None,
    cache: dict[str, tuple] | None = None,
    assets: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """The preview document of the project whose ``sparky.toml`` is in ``root``.

    ``cache`` (a dict the caller keeps between calls) skips re-reading unchanged atlases;
    it is left holding only the atlases of this call. ``assets``: where large images
    (raw model renders) go instead of being inlined (:func:`_asset`)."""
    from ..palettes.load import load_palette
    from ..registry import generator as find_generator

    root = Path(root).resolve()
    manifest = _load_manifest(root)
    specs = {s.name: s for s in manifest.sprites} if manifest else {}
    lock = _read_lock(root)
    sheets = _sheet_documents(root)
    if manifest is not None:  # the manifest's atlas order, then any others
        order = {a.name: i for i, a in enumerate(manifest.atlases)}
        sheets.sort(key=lambda item: (order.get(item[1]["atlas"], len(order)), item[1]["atlas"]))

    atlases, sprites = [], []
    usage: dict[str, dict[str, int]] = {}
    seen: dict[str, tuple] = {}
    for path, doc in sheets:
        try:
            atlas, packed = _atlas(path, doc, cache, seen)
        except (OSError, KeyError, ValueError, IndexError, TypeError):  # half-removed or planted: skip it
            continue
        atlases.append(atlas)
        for part in packed:
            name = part["name"]
            spec = specs.get(name)
            generator = spec.generator if spec else None
            rerollable = False
            if generator is not None:
                try:
                    rerollable = bool(getattr(find_generator(generator), "needs_lock", True))
                except (SparkyError, ImportError):
                    rerollable = False
            palette = spec.palette if spec else None
            if palette is not None:
                bucket = usage.setdefault(palette, {})
                for hex_colour, n in part["counts"].items():
                    bucket[hex_colour] = bucket.get(hex_colour, 0) + n
            entry = {k: v for k, v in part.items() if k != "counts"}
            entry.update(
                key=name,
                generator=generator,
                seed=spec.seed if spec else None,
                prompt=spec.prompt if spec else None,
                palette=palette,
                before=_before(root, name, spec, lock),
                review=None,
                review_note=None,
                colors=[{"hex": h, "count": n} for h, n in sorted(part["counts"].items())],
                rerollable=rerollable,
            )
            locked = lock.get(name)
            if generator == "diffusion" and isinstance(locked, dict) and isinstance(locked.get("key"), str):
                entry["review"] = _memo_review(root, locked["key"], assets, cache, seen)
                entry["review_note"] = None if entry["review"] else REVIEW_MISSING
            sprites.append(_hashed(entry))
    if cache is not None:
        cache.clear()
        cache.update(seen)
    if manifest is not None:
        order = {n: i for i, n in enumerate(specs)}
        sprites.sort(key=lambda s: (order.get(s["name"], len(order)), s["name"]))

    palettes = []
    if manifest is not None:
        for value in dict.fromkeys([manifest.palette, *(s.palette for s in manifest.sprites)]):
            try:
                palette = load_palette(value, root)
            except SparkyError:
                continue
            used = usage.get(value, {})
            palettes.append(
                _hashed(
                    {
                        "key": value,
                        "name": value,
                        "colors": [{"hex": _hex(c), "count": used.get(_hex(c), 0)} for c in palette.colors],
                        "sprites": [s["name"] for s in sprites if s["palette"] == value],
                    }
                )
            )

    notes: list[str] = []
    tilesets = _tilesets(root, notes)
    return {
        "format": DOCUMENT_FORMAT,
        "project": manifest.name if manifest else (summary or {}).get("project", root.name),
        "build": summary,
        "notes": notes,
        "atlases": atlases,
        "sprites": sprites,
        "palettes": palettes,
        "tilesets": tilesets,
    }


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The update that turns the page showing ``old`` into ``new``: per collection the
    new order of keys and only the entries whose hash changed; scalars as they are."""
    update: dict[str, Any] = {k: v for k, v in new.items() if k not in COLLECTIONS}
    for name in COLLECTIONS:
        before = {e["key"]: e["hash"] for e in (old or {}).get(name, [])}
        update[name] = {
            "order": [e["key"] for e in new[name]],
            "changed": [e for e in new[name] if before.get(e["key"]) != e["hash"]],
        }
    return update
