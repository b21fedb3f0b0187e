"""Planted bookkeeping: a cloned project may ship any ``.sparky/`` (journal, outputs
record, cache, lock file), any ``sparky.lock`` and any ``sparky-generated/``. Every path
read from them is checked before it is touched; corrupt files are reported and rebuilt
where that is safe (exit 0 with a warning), unsafe ones refused (exit 2). Whatever they
say, nothing outside the project changes and no input of the build is deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zlib

import pytest

from tests.adversarial.rig import Project, check_run, expect, tree

INPUTS = ("sparky.toml", "pal.hex", "art/coin.png", "godot/project.godot")


def _journal(doc) -> dict:
    return {".sparky/journal.json": json.dumps(doc) if not isinstance(doc, (str, bytes)) else doc}


def _outside(p: Project, name: str) -> str:
    return str(p.outside / name)


def _sha(p: Project, rel: str) -> str:
    return hashlib.sha256((p.root / rel).read_bytes()).hexdigest()


def _record_entry(sha: str) -> dict:
    return {"target": "sheets", "path": "x", "kind": "texture", "sprites": [], "atlas": "all", "sha256": sha}


def _lock_with(p: Project, **changes) -> str:
    """sparky.lock with the hero entry's fields changed."""
    import tomllib

    import tomli_w

    doc = tomllib.loads((p.root / "sparky.lock").read_text())
    doc["sprite"]["hero"].update(changes)
    return tomli_w.dumps(doc)


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` with a tiny (invalid) image body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _stored_bomb(p: Project) -> dict:
    stored = next((p.root / "sparky-generated").glob("hero.*.png"))
    data = _bomb_png(30000, 30000)
    rel = stored.relative_to(p.root).as_posix()
    return {rel: data, "sparky.lock": _lock_with(p, sha256=hashlib.sha256(data).hexdigest())}


def _stored_wrong_shape(p: Project) -> dict:
    from PIL import Image

    stored = next((p.root / "sparky-generated").glob("hero.*.png"))
    buf = io.BytesIO()
    Image.new("RGBA", (3, 5)).save(buf, "PNG")
    data = buf.getvalue()
    return {
        stored.relative_to(p.root).as_posix(): data,
        "sparky.lock": _lock_with(p, sha256=hashlib.sha256(data).hexdigest()),
    }


def _stored_garbage(p: Project) -> dict:
    stored = next((p.root / "sparky-generated").glob("hero.*.png"))
    return {stored.relative_to(p.root).as_posix(): b"garbage"}


def _every_cache_entry(content) -> object:
    def plant(p: Project) -> dict:
        out = {}
        for f in (p.root / ".sparky/cache").rglob("*"):
            if f.is_file():
                out[f.relative_to(p.root).as_posix()] = content
        return out

    return plant


FIFO = object()
FOLDER = object()

# id, planted files (or a function of the project giving them), env, exit code, location, fragments
CASES = [
    # -- the journal
    (
        "journal-move-outside",
        lambda p: {
            "payload.txt": "PAYLOAD",
            **_journal({"moves": [["payload.txt", "../outside/victim.txt"]], "remove": []}),
        },
        {},
        0,
        None,
        ["journal.json was discarded"],
    ),
    (
        "journal-remove-outside",
        lambda p: _journal({"moves": [], "remove": ["../outside/other.txt"], "record": {}}),
        {},
        0,
        None,
        ["discarded"],
    ),
    (
        "journal-absolute-outside",
        lambda p: _journal({"moves": [], "remove": [_outside(p, "victim.txt")]}),
        {},
        0,
        None,
        ["discarded"],
    ),
    (
        "journal-staged-outside",
        lambda p: _journal({"moves": [[_outside(p, "victim.txt"), "build/sprites/sheets/all_0.png"]]}),
        {},
        0,
        None,
        ["discarded"],
    ),
    (
        "journal-staged-in-project",
        lambda p: _journal({"moves": [["sparky.toml", "build/x.png"]]}),
        {},
        0,
        None,
        ["discarded"],
    ),
    (
        "journal-final-manifest",
        lambda p: {".sparky/staging/000000": "x", **_journal({"moves": [[".sparky/staging/000000", "sparky.toml"]]})},
        {},
        0,
        None,
        ["discarded"],
    ),
    (
        "journal-final-state",
        lambda p: {
            ".sparky/staging/000000": "x",
            **_journal({"moves": [[".sparky/staging/000000", ".sparky/outputs.json"]]}),
        },
        {},
        0,
        None,
        ["discarded"],
    ),
    (
        "journal-final-via-dotdot",
        lambda p: {
            ".sparky/staging/000000": "x",
            **_journal({"moves": [[".sparky/staging/000000", "build/../../outside/victim.txt"]]}),
        },
        {},
        0,
        None,
        ["discarded"],
    ),
    (
        "journal-remove-source",
        lambda p: _journal({"moves": [], "remove": ["art/coin.png"]}),
        {},
        0,
        None,
        ["not an output"],
    ),
    ("journal-corrupt", lambda p: _journal("{"), {}, 0, None, ["discarded"]),
    ("journal-not-utf8", lambda p: _journal(b"\xff\xfe{}"), {}, 0, None, ["discarded"]),
    ("journal-wrong-shape", lambda p: _journal({"moves": 5}), {}, 0, None, ["discarded"]),
    ("journal-list", lambda p: _journal([]), {}, 0, None, ["discarded"]),
    ("journal-move-int", lambda p: _journal({"moves": [5]}), {}, 0, None, ["discarded"]),
    ("journal-move-short", lambda p: _journal({"moves": [["a"]]}), {}, 0, None, ["discarded"]),
    ("journal-nul", lambda p: _journal({"moves": [["a\u0000", "b"]]}), {}, 0, None, ["discarded"]),
    ("journal-record-wrong", lambda p: _journal({"moves": [], "record": 5}), {}, 0, None, []),
    ("journal-deep", lambda p: _journal("[" * 100_000), {}, 0, None, ["discarded"]),
    ("journal-folder", lambda p: {".sparky/journal.json": FOLDER}, {}, 0, None, ["discarded"]),
    ("journal-fifo", lambda p: {".sparky/journal.json": FIFO}, {}, 0, None, ["discarded"]),
    # -- the outputs record
    (
        "record-outside",
        lambda p: {".sparky/outputs.json": json.dumps({"../outside/victim.txt": _record_entry("0" * 64)})},
        {},
        0,
        None,
        ["ignored 1"],
    ),
    (
        "record-absolute",
        lambda p: {".sparky/outputs.json": json.dumps({_outside(p, "victim.txt"): _record_entry("0" * 64)})},
        {},
        0,
        None,
        ["ignored 1"],
    ),
    (
        "record-manifest",
        lambda p: {".sparky/outputs.json": json.dumps({"sparky.toml": _record_entry(_sha(p, "sparky.toml"))})},
        {},
        0,
        None,
        ["ignored 1"],
    ),
    (
        "record-lock",
        lambda p: {".sparky/outputs.json": json.dumps({"sparky.lock": _record_entry(_sha(p, "sparky.lock"))})},
        {},
        0,
        None,
        ["ignored 1"],
    ),
    (
        "record-source-with-its-hash",
        lambda p: {".sparky/outputs.json": json.dumps({"art/coin.png": _record_entry(_sha(p, "art/coin.png"))})},
        {},
        0,
        None,
        [],
    ),
    (
        "record-stale-output-edited",
        lambda p: {
            "build/sprites/sheets/old_0.png": "edited by hand",
            ".sparky/outputs.json": json.dumps({"build/sprites/sheets/old_0.png": _record_entry("0" * 64)}),
        },
        {},
        0,
        None,
        [],
    ),
    ("record-corrupt", lambda p: {".sparky/outputs.json": "{{"}, {}, 0, None, ["outputs.json is unreadable"]),
    ("record-list", lambda p: {".sparky/outputs.json": "[]"}, {}, 0, None, ["not a table"]),
    (
        "record-wrong-types",
        lambda p: {".sparky/outputs.json": json.dumps({"build/x.png": {"sha256": 5}})},
        {},
        0,
        None,
        ["ignored 1"],
    ),
    (
        "record-sprites-not-list",
        lambda p: {".sparky/outputs.json": json.dumps({"build/x.png": {**_record_entry("0" * 64), "sprites": "hero"}})},
        {},
        0,
        None,
        ["ignored 1"],
    ),
    ("record-deep", lambda p: {".sparky/outputs.json": "[" * 100_000}, {}, 0, None, ["unreadable"]),
    ("record-folder", lambda p: {".sparky/outputs.json": FOLDER}, {}, 0, None, ["not a file"]),
    ("record-fifo", lambda p: {".sparky/outputs.json": FIFO}, {}, 0, None, ["not a file"]),
    # -- the stage cache
    ("cache-entries-garbage", _every_cache_entry(b"garbage"), {}, 0, None, ["corrupt or foreign"]),
    ("cache-entries-empty", _every_cache_entry(b""), {}, 0, None, ["corrupt or foreign"]),
    ("cache-entries-folders", _every_cache_entry(FOLDER), {}, 0, None, ["corrupt or foreign"]),
    ("cache-entries-fifos", _every_cache_entry(FIFO), {}, 0, None, ["corrupt or foreign"]),
    ("cache-stage-is-file", lambda p: {".sparky/cache/export": "not a folder"}, {}, 0, None, []),
    ("cache-is-file", lambda p: {".sparky/cache": "not a folder"}, {}, 0, None, []),
    ("state-tmp-is-file", lambda p: {".sparky/tmp": "x"}, {}, 0, None, []),
    ("state-build-lock-folder", lambda p: {".sparky/build.lock": FOLDER}, {}, 0, None, []),
    # -- sparky.lock and the store
    ("lock-corrupt", lambda p: {"sparky.lock": "[[[\n"}, {}, 2, r"sparky\.lock:1:", ["not valid TOML"]),
    ("lock-deep", lambda p: {"sparky.lock": "x = " + "[" * 100_000}, {}, 2, r"sparky\.lock", ["too deeply"]),
    (
        "lock-file-outside",
        lambda p: {"sparky.lock": _lock_with(p, file="../outside/victim.png")},
        {},
        2,
        r"sparky\.lock",
        ["points outside"],
    ),
    (
        "lock-file-absolute",
        lambda p: {"sparky.lock": _lock_with(p, file="/etc/passwd")},
        {},
        2,
        r"sparky\.lock",
        ["points outside"],
    ),
    (
        "lock-file-dotdot",
        lambda p: {"sparky.lock": _lock_with(p, file="sparky-generated/../sparky.toml")},
        {},
        2,
        r"sparky\.lock",
        ["points outside"],
    ),
    ("lock-file-int", lambda p: {"sparky.lock": _lock_with(p, file=5)}, {}, 2, r"sparky\.lock", []),
    (
        "lock-frames-string",
        lambda p: {"sparky.lock": _lock_with(p, frames="x")},
        {},
        2,
        r"sparky\.lock",
        ["incomplete"],
    ),
    (
        "lock-sprite-int",
        lambda p: {"sparky.lock": "version = 1\nsprite = 5\n"},
        {},
        2,
        r"sparky\.lock",
        ["not a table"],
    ),
    (
        "lock-entry-int",
        lambda p: {"sparky.lock": "version = 1\n[sprite]\nhero = 5\n"},
        {},
        2,
        r"sparky\.lock",
        ["incomplete"],
    ),
    ("lock-huge-size", lambda p: {"sparky.lock": _lock_with(p, width=10**9, height=10**9)}, {}, 0, None, []),
    ("lock-folder", lambda p: {"sparky.lock": FOLDER}, {}, 2, r"sparky\.lock", ["cannot be read"]),
    ("lock-fifo", lambda p: {"sparky.lock": FIFO}, {}, 2, r"sparky\.lock", ["cannot be read"]),
    ("store-bomb-with-its-hash", _stored_bomb, {}, 0, None, []),
    ("store-wrong-shape-with-its-hash", _stored_wrong_shape, {}, 0, None, []),
    ("store-garbage", _stored_garbage, {}, 0, None, []),
    ("store-is-file", lambda p: {"sparky-generated": "not a folder"}, {}, 1, "sparky-generated", ["cannot"]),
    # -- the environment
    ("cache-cap-words", lambda p: {}, {"SPARKY_CACHE_MAX_MB": "lots"}, 2, "SPARKY_CACHE_MAX_MB", ["whole number"]),
    ("cache-cap-negative", lambda p: {}, {"SPARKY_CACHE_MAX_MB": "-1"}, 2, "SPARKY_CACHE_MAX_MB", ["whole number"]),
    ("cache-cap-float", lambda p: {}, {"SPARKY_CACHE_MAX_MB": "1e3"}, 2, "SPARKY_CACHE_MAX_MB", []),
    ("cache-cap-huge", lambda p: {}, {"SPARKY_CACHE_MAX_MB": "9" * 40}, 2, "SPARKY_CACHE_MAX_MB", []),
    ("cache-cap-zero", lambda p: {}, {"SPARKY_CACHE_MAX_MB": "0"}, 0, None, []),
    ("cache-cap-empty", lambda p: {}, {"SPARKY_CACHE_MAX_MB": ""}, 0, None, []),
]


def _plant(p: Project, files: dict) -> None:
    import shutil

    for rel, content in files.items():
        path = p.root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is FIFO:
            os.mkfifo(path)
        elif content is FOLDER:
            (path / "inner").mkdir(parents=True)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_planted_bookkeeping(project, case):
    _, plant, env, code, where, fragments = case
    project.edit("seed = 7", "seed = 8")  # something to generate and write
    _plant(project, plant(project))
    inputs = {rel: _sha(project, rel) for rel in INPUTS}
    expect(project, code, where=where, contains=fragments, env=env)
    assert {rel: _sha(project, rel) for rel in INPUTS} == inputs, "an input of the build changed"
    if code == 0:  # rebuilt: the next build is a no-op with no warnings left
        again = project.build(env=env)
        check_run(project, again, 0, outside_before=project.outside_before)
        assert "nothing changed" in again.text and "warning" not in again.text, again.text


def test_a_bad_cache_cap_writes_nothing(fresh):
    """``SPARKY_CACHE_MAX_MB=lots`` on a never-built project: refused before anything exists."""
    before = tree(fresh.root)
    outcome = fresh.build(env={"SPARKY_CACHE_MAX_MB": "lots"})
    check_run(fresh, outcome, 2, where="SPARKY_CACHE_MAX_MB", outside_before=fresh.outside_before)
    assert tree(fresh.root) == before
