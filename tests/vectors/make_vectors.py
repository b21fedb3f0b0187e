"""Writes the shared hot-reload protocol test vectors (``NAME.msgpack`` + ``NAME.json``).

Run from anywhere: ``python tests/vectors/make_vectors.py`` rewrites the folder;
``--check`` only compares and exits 1 if any file would change (the unit tests do the
same). The output is deterministic: fixed sessions, hashes and key orders, no clock.

Bodies are built here with plain ``msgpack.packb`` on ordered dicts or assembled byte by
byte (malformed ones) — never with ``sparky_assets.hotreload.protocol.encode`` — so the
vectors check the encoder/decoder instead of echoing them. Expected results come from
the rules in ``docs/protocol.md``, written next to each vector, not from running a
decoder. Every vector has exactly one fault, except the ``precedence_*`` ones, which
pin the spec's check order.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

HERE = Path(__file__).resolve().parent
MAX_FILE_BYTES = 8 * 1024

SESSION = "5f0c8a3e9b2d4f6a8c1e7b3d5a9f2c4e"
SESSION_B = "0123456789abcdef0123456789abcdef"
PROJECT = "dungeon"


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def common(type_: str, seq: int, project: str = PROJECT, session: str = SESSION) -> dict[str, Any]:
    return {"v": 1, "type": type_, "seq": seq, "session": session, "project": project}


def raw_map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A msgpack map assembled from already-encoded keys and values (any bytes at all)."""
    count = len(pairs)
    if count < 16:
        header = bytes([0x80 | count])
    elif count < 1 << 16:
        header = b"\xde" + struct.pack(">H", count)
    else:
        header = b"\xdf" + struct.pack(">I", count)
    return header + b"".join(key + value for key, value in pairs)


def pairs_of(mapping: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(pack(key), pack(value)) for key, value in mapping.items()]


def replace_value(mapping: dict[str, Any], key: str, raw_value: bytes) -> bytes:
    """``mapping`` packed, with ``key``'s value replaced by the raw bytes ``raw_value``."""
    return raw_map([(pack(k), raw_value if k == key else pack(v)) for k, v in mapping.items()])


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    assert key in mapping, key
    return {k: v for k, v in mapping.items() if k != key}


def with_value(mapping: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    assert key in mapping, key
    return {k: (value if k == key else v) for k, v in mapping.items()}


# --------------------------------------------------------------------------- sample messages


def hello(seq: int = 1, build: int = 0, **overrides: Any) -> dict[str, Any]:
    return {**common("hello", seq, **overrides), "interval_ms": 2000, "build": build}


def asset(
    target: str,
    path: str,
    engine_path: str | None,
    kind: str,
    change: str = "modified",
    sprites: list[str] | None = None,
    atlas: str | None = "characters",
) -> dict[str, Any]:
    return {
        "target": target,
        "path": path,
        "engine_path": engine_path,
        "kind": kind,
        "change": change,
        "hash": "" if change == "removed" else sha(f"{target}:{path}"),
        "sprites": ["hero"] if sprites is None else sprites,
        "atlas": atlas,
    }


GODOT_HERO = asset("godot", "sprites/hero.tres", "res://sprites/hero.tres", "sprite-frames")
GODOT_PAGE = asset(
    "godot", "sprites/characters_0.png", "res://sprites/characters_0.png", "texture", sprites=["hero", "slime"]
)
BEVY_ATLAS = asset("bevy", "sprites/characters.atlas.ron", "sprites/characters.atlas.ron", "atlas")


def assets_changed(assets: list[dict[str, Any]], seq: int = 3, build: int = 1, **overrides: Any) -> dict[str, Any]:
    return {**common("assets-changed", seq, **overrides), "build": build, "assets": assets}


def build_error(**fields: Any) -> dict[str, Any]:
    base = {
        "file": "sparky.toml",
        "line": 12,
        "column": 11,
        "sprite": "hero",
        "stage": "manifest",
        "message": "unknown palette 'endesga32' — did you mean 'endesga-32'?",
    }
    base.update(fields)
    return base


def build_failed(errors: list[dict[str, Any]], seq: int = 5, build: int = 2) -> dict[str, Any]:
    return {**common("build-failed", seq), "build": build, "errors": errors}


def build_started(trigger: list[str], seq: int = 2, build: int = 1) -> dict[str, Any]:
    return {**common("build-started", seq), "build": build, "trigger": trigger}


def build_finished(ok: bool = True, seq: int = 4, build: int = 1, duration_ms: int = 231, changed: int = 2):
    return {**common("build-finished", seq), "build": build, "ok": ok, "duration_ms": duration_ms, "changed": changed}


def topic_of(mapping: dict[str, Any]) -> str:
    return "sparky." + mapping["type"]


# --------------------------------------------------------------------------- vector records


@dataclass
class Vector:
    name: str
    description: str
    topic: str
    body: bytes
    expect: str
    decoded: Any = None
    error: str | None = None
    max_bytes: int | None = None
    ignored: bool = False
    unrepresentable: list[str] = field(default_factory=list)

    def json_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"description": self.description, "topic": self.topic, "expect": self.expect}
        if self.expect == "ok":
            record["decoded"] = self.decoded
        else:
            record["error"] = self.error
        if self.max_bytes is not None:
            record["max_bytes"] = self.max_bytes
        if self.ignored:
            record["ignored"] = True
        if self.unrepresentable:
            record["unrepresentable"] = self.unrepresentable
        return record


VECTORS: list[Vector] = []


def ok(name: str, description: str, mapping: dict[str, Any], *, body: bytes | None = None, **extra: Any) -> None:
    VECTORS.append(
        Vector(
            name,
            description,
            extra.pop("topic", topic_of(mapping)),
            pack(mapping) if body is None else body,
            "ok",
            decoded=mapping,
            **extra,
        )
    )


def reject(name: str, description: str, error: str, body: bytes | dict[str, Any], *, topic: str | None = None, **extra):
    if isinstance(body, dict):
        topic = topic or topic_of(body)
        body = pack(body)
    VECTORS.append(Vector(name, description, topic or "sparky.hello", body, "reject", error=error, **extra))


# --------------------------------------------------------------------------- valid messages


def valid_vectors() -> None:
    ok("hello_start", "first message of a session: seq 1, no build yet", hello())
    ok("hello_heartbeat", "a later heartbeat: build 3 was the last started", hello(seq=57, build=3))
    ok(
        "hello_unicode_project",
        "project name with non-ASCII letters and an emoji (4-byte UTF-8)",
        hello(project="ダンジョン dragon 🐉 ünïcödé"),
    )
    ok("hello_empty_project", "an empty project name is still a str", hello(project=""))
    ok(
        "seq_max",
        "seq = 2^53 - 1, the largest int allowed in v1 (encoded as uint64)",
        hello(seq=(1 << 53) - 1),
    )
    ok("build_started_initial", "the initial build: no trigger paths", build_started([]))
    ok(
        "build_started_triggers",
        "three trigger paths, project-relative",
        build_started(["sparky.toml", "palettes/dungeon.hex", "art/coin.png"], seq=9, build=4),
    )
    ok(
        "build_started_long_trigger",
        "a trigger path longer than 255 bytes (msgpack str16; body > 255 bytes: a long ZMTP frame)",
        build_started(["art/" + "/".join(f"level-{i:02d}-very-long-directory-name" for i in range(8)) + "/hero.png"]),
    )
    ok("assets_changed_one", "one Godot SpriteFrames file", assets_changed([GODOT_HERO]))
    ok(
        "assets_changed_all_targets",
        "one asset per target; engine_path nil where the target has none; atlas nil",
        assets_changed(
            [
                GODOT_PAGE,
                GODOT_HERO,
                asset("godot", "sprites/hero_idle_0.tres", "res://sprites/hero_idle_0.tres", "atlas-texture"),
                BEVY_ATLAS,
                asset("bevy", "sprites/characters_0.png", "sprites/characters_0.png", "texture"),
                asset("texturepacker", "characters.json", None, "metadata"),
                asset("aseprite", "characters.json", None, "metadata", atlas=None),
                asset("sheets", "hero_walk.png", None, "texture", change="added", atlas=None),
            ]
        ),
    )
    ok(
        "assets_changed_removed",
        "a removed asset has an empty hash; an added one a full hash",
        assets_changed(
            [
                asset("godot", "sprites/slime.tres", "res://sprites/slime.tres", "sprite-frames", "removed", ["slime"]),
                asset("godot", "sprites/bat.tres", "res://sprites/bat.tres", "sprite-frames", "added", ["bat"]),
            ],
            seq=12,
            build=3,
        ),
    )
    ok(
        "assets_changed_godot_engine_path_nil",
        "engine_path may be nil for any target, godot included",
        assets_changed([asset("godot", "sprites/extra.json", None, "metadata")]),
    )
    many = [
        asset(
            "godot" if i % 2 == 0 else "bevy",
            f"sprites/mob_{i:02d}.png",
            f"res://sprites/mob_{i:02d}.png" if i % 2 == 0 else f"sprites/mob_{i:02d}.png",
            "texture",
            sprites=[f"mob{i}"],
            atlas="mobs",
        )
        for i in range(18)
    ]
    ok("assets_changed_many", "18 assets (msgpack array16)", assets_changed(many, seq=40, build=7))
    ok(
        "assets_changed_unicode",
        "non-ASCII sprite names, paths and atlas names",
        assets_changed(
            [
                asset(
                    "godot",
                    "sprites/héros/épée.tres",
                    "res://sprites/héros/épée.tres",
                    "sprite-frames",
                    sprites=["héros", "スライム", "🐉"],
                    atlas="персонажи",
                ),
                asset("bevy", "sprites/スライム.png", "sprites/スライム.png", "texture", sprites=["スライム"]),
            ]
        ),
    )
    long_dir = "/".join(f"deeply-nested-folder-number-{i}" for i in range(10))
    ok(
        "assets_changed_long_path",
        "path and engine_path longer than 255 bytes (str16)",
        assets_changed([asset("godot", f"{long_dir}/hero.tres", f"res://{long_dir}/hero.tres", "sprite-frames")]),
    )
    ok(
        "build_failed_manifest",
        "one manifest error with every field set",
        build_failed([build_error()]),
    )
    ok(
        "build_failed_nil_fields",
        "an error with only a message: file, line, column, sprite, stage nil",
        build_failed(
            [build_error(file=None, line=None, column=None, sprite=None, stage=None, message="out of memory")]
        ),
    )
    ok(
        "build_failed_many",
        "several errors, one message longer than 255 bytes (str16)",
        build_failed(
            [
                build_error(),
                build_error(
                    file="palettes/dungeon.hex",
                    line=3,
                    column=1,
                    sprite=None,
                    stage="palette",
                    message="'#12345' is not a colour: expected 6 hex digits, found 5",
                ),
                build_error(
                    file="art/coin.png",
                    line=None,
                    column=None,
                    sprite="coin",
                    stage="generate",
                    message="source image is 100×30 px; grid [16, 16] needs a multiple of 16 — " * 5,
                ),
                build_error(
                    file=None,
                    line=None,
                    column=None,
                    sprite=None,
                    stage="write",
                    message="could not replace build/sprites/godot/hero.tres: permission denied",
                ),
            ]
        ),
    )
    ok("build_finished_ok", "a successful build that changed 2 assets", build_finished())
    ok(
        "build_finished_failed",
        "a failed build: ok false, nothing changed",
        build_finished(ok=False, seq=6, build=2, duration_ms=12, changed=0),
    )
    ok(
        "build_finished_large_duration",
        "duration_ms above 65535 (msgpack uint32)",
        build_finished(duration_ms=4_000_000, changed=0),
    )

    extra = {
        **hello(seq=3, build=1),
        "x-nil": None,
        "x-bool": True,
        "x-neg-fixint": -5,
        "x-int8": -100,
        "x-int16": -1000,
        "x-int32": -100_000,
        "x-int64": -(1 << 40),
        "x-uint32": 4_000_000_000,
        "x-str": "future field",
        "x-array": [1, "two", None, [3]],
        "x-map": {"nested": {"deeper": [True, False]}},
        "x-empty-map": {},
    }
    ok(
        "extra_keys",
        "unknown keys of every JSON-representable kind (more than 15 keys: map16) are ignored and kept",
        extra,
    )
    ok(
        "extra_keys_nested",
        "unknown keys inside an asset map and an error map are ignored",
        assets_changed([{**GODOT_HERO, "x-frames": 4, "x-tags": ["a", "b"]}]),
    )
    ok(
        "extra_keys_float",
        "floats (float32 and float64) in unknown keys are parsed and ignored",
        {**hello(), "x-f32": 0.5, "x-f64": -2.25},
        body=raw_map(
            pairs_of(hello())
            + [(pack("x-f32"), b"\xca" + struct.pack(">f", 0.5)), (pack("x-f64"), b"\xcb" + struct.pack(">d", -2.25))]
        ),
    )
    ok(
        "extra_keys_bin_ext",
        "bin and ext values in unknown keys are parsed and ignored (JSON cannot hold them: see 'unrepresentable')",
        hello(),
        body=raw_map(
            pairs_of(hello())
            + [
                (pack("x-bin"), b"\xc4\x03\x00\xff\x10"),
                (pack("x-fixext4"), b"\xd6\x05\x01\x02\x03\x04"),
                (pack("x-ext8"), b"\xc7\x03\x07abc"),
            ]
        ),
        unrepresentable=["x-bin", "x-fixext4", "x-ext8"],
    )
    deep: Any = []
    for _ in range(30):
        deep = [deep]
    ok(
        "depth_32",
        "nesting depth exactly 32 (the top map is depth 1, then 31 arrays): the deepest allowed",
        {**hello(), "x-deep": deep},
    )
    ok(
        "nonminimal_encodings",
        "valid but non-minimal encodings: map32, str32, str8 for short strings, uint64/int64/int8 for small ints, array32",
        build_started(["a.png"], seq=7, build=2),
        body=(
            b"\xdf\x00\x00\x00\x07"
            + b"\xdb\x00\x00\x00\x01v"
            + b"\xcf"
            + struct.pack(">Q", 1)
            + b"\xd9\x04type"
            + b"\xdb\x00\x00\x00\x0dbuild-started"
            + b"\xa3seq"
            + b"\xd3"
            + struct.pack(">q", 7)
            + b"\xa7session"
            + b"\xda\x00\x20"
            + SESSION.encode()
            + b"\xa7project"
            + b"\xd9\x07"
            + PROJECT.encode()
            + b"\xa5build"
            + b"\xd0\x02"
            + b"\xa7trigger"
            + b"\xdd\x00\x00\x00\x01"
            + b"\xdb\x00\x00\x00\x05a.png"
        ),
    )
    boundary = pack(hello())
    ok(
        "oversize_boundary",
        "a body exactly max_bytes long is accepted (only larger bodies are refused)",
        hello(),
        max_bytes=len(boundary),
    )
    ok(
        "unknown_type_ignored",
        "an unknown type with valid common fields decodes but is ignored (it still counts for seq)",
        {**common("log", 8), "level": "info", "text": "cache warm"},
        ignored=True,
    )
    ok(
        "unknown_type_no_fields",
        "an unknown type needs only the common fields",
        common("build-progress", 9),
        ignored=True,
    )


# --------------------------------------------------------------------------- refused messages


def malformed_vectors() -> None:
    base = pack(hello())
    session_at = base.index(SESSION.encode())
    reject("truncated_empty", "an empty body", "malformed", b"")
    reject("truncated_after_map_header", "only the map header byte", "malformed", base[:1])
    reject("truncated_in_key", "cut inside the key 'type'", "malformed", base[:5])
    reject(
        "truncated_in_str8_header",
        "cut between the str8 marker and its length byte",
        "malformed",
        base[: session_at - 1],
    )
    reject("truncated_in_string", "cut in the middle of the session string", "malformed", base[: session_at + 10])
    reject("truncated_last_byte", "the last byte is missing", "malformed", base[:-1])
    long_body = pack(build_started(["x" * 300]))
    str16_at = long_body.index(b"\xda\x01\x2c")
    reject(
        "truncated_in_str16_header",
        "cut between the two length bytes of a str16",
        "malformed",
        long_body[: str16_at + 2],
        topic="sparky.build-started",
    )
    reject("truncated_uint64", "cut inside a uint64 value", "malformed", pack(hello(seq=(1 << 53) - 1))[:16])
    reject("trailing_byte", "a valid body followed by one nil byte", "malformed", base + b"\xc0")
    reject("trailing_message", "two valid bodies back to back", "malformed", base + base)
    reject(
        "reserved_c1",
        "the reserved byte 0xc1 as a value",
        "malformed",
        raw_map(pairs_of(hello()) + [(pack("x"), b"\xc1")]),
    )
    reject("key_int", "a map key that is an int", "malformed", raw_map(pairs_of(hello()) + [(pack(7), pack(1))]))
    reject("key_nil", "a map key that is nil", "malformed", raw_map(pairs_of(hello()) + [(b"\xc0", pack(1))]))
    reject(
        "key_bin", "a map key that is bin, not str", "malformed", raw_map(pairs_of(hello()) + [(b"\xc4\x01x", pack(1))])
    )
    reject(
        "key_int_nested",
        "a non-string key inside a nested map of an unknown key",
        "malformed",
        raw_map(pairs_of(hello()) + [(pack("x"), raw_map([(pack(1), pack(2))]))]),
    )
    reject(
        "duplicate_key",
        "the key 'seq' twice (decoders would disagree on which wins)",
        "malformed",
        raw_map(pairs_of(hello()) + [(pack("seq"), pack(2))]),
    )
    reject(
        "invalid_utf8",
        "the project string holds bytes that are not UTF-8",
        "malformed",
        replace_value(hello(), "project", b"\xa3\xff\xfe\xfd"),
    )
    reject(
        "invalid_utf8_cut_sequence",
        "a string ending in the first byte of a 2-byte UTF-8 sequence",
        "malformed",
        replace_value(hello(), "project", b"\xa2h\xc3"),
    )
    deep: Any = []
    for _ in range(31):
        deep = [deep]
    reject(
        "too_deep", "nesting depth 33 (top map + 32 arrays) in an unknown key", "malformed", {**hello(), "x-deep": deep}
    )
    reject(
        "too_deep_maps",
        "nesting depth 33 built from maps",
        "malformed",
        raw_map(pairs_of(hello()) + [(pack("x"), b"\x81\xa1k" * 31 + b"\x80")]),
    )
    reject(
        "too_deep_huge",
        "nesting depth 5001: a decoder that recurses per level must stop at 32, not crash",
        "malformed",
        raw_map(pairs_of(hello()) + [(pack("x"), b"\x91" * 4999 + b"\x90")]),
    )
    for name, value, what in (
        ("array", [hello()], "an array holding a valid map"),
        ("str", "hello", "a str"),
        ("nil", None, "nil"),
        ("int", 1, "an int"),
    ):
        reject(f"not_a_map_{name}", f"the body is {what}", "not-a-map", pack(value))


def field_vectors() -> None:
    for key in ("v", "type", "seq", "session", "project", "interval_ms", "build"):
        reject(f"missing_{key}", f"hello without '{key}'", "missing-field", without(hello(), key), topic="sparky.hello")
    reject("missing_trigger", "build-started without 'trigger'", "missing-field", without(build_started([]), "trigger"))
    reject(
        "missing_assets",
        "assets-changed without 'assets'",
        "missing-field",
        without(assets_changed([GODOT_HERO]), "assets"),
    )
    for key in ("target", "path", "engine_path", "hash", "sprites", "atlas"):
        reject(
            f"missing_asset_{key}",
            f"an asset map without '{key}' (nil fields must be present)",
            "missing-field",
            assets_changed([GODOT_PAGE, without(GODOT_HERO, key)]),
        )
    for key in ("message", "line", "stage"):
        reject(
            f"missing_error_{key}",
            f"an error map without '{key}'",
            "missing-field",
            build_failed([without(build_error(), key)]),
        )
    for key in ("ok", "duration_ms", "changed"):
        reject(f"missing_{key}", f"build-finished without '{key}'", "missing-field", without(build_finished(), key))

    wrong: list[tuple[str, str, dict[str, Any] | bytes, str]] = [
        ("v_str", "v is the str '1'", with_value(hello(), "v", "1"), "sparky.hello"),
        ("v_bool", "v is true (not the int 1)", with_value(hello(), "v", True), "sparky.hello"),
        (
            "v_float",
            "v is the float 1.0",
            replace_value(hello(), "v", b"\xcb" + struct.pack(">d", 1.0)),
            "sparky.hello",
        ),
        ("type_int", "type is an int", with_value(hello(), "type", 5), "sparky.hello"),
        ("seq_str", "seq is the str '1'", with_value(hello(), "seq", "1"), "sparky.hello"),
        ("seq_negative", "seq is -1 (negative fixint)", with_value(hello(), "seq", -1), "sparky.hello"),
        ("seq_negative_int64", "seq is -2^40 (int64)", with_value(hello(), "seq", -(1 << 40)), "sparky.hello"),
        ("seq_bool", "seq is true", with_value(hello(), "seq", True), "sparky.hello"),
        ("seq_float", "seq is the float 1.5", with_value(hello(), "seq", 1.5), "sparky.hello"),
        (
            "seq_float_whole",
            "seq is the float64 2.0 (a float even though it is whole)",
            replace_value(hello(), "seq", b"\xcb" + struct.pack(">d", 2.0)),
            "sparky.hello",
        ),
        (
            "seq_float32",
            "seq is the float32 3.0",
            replace_value(hello(), "seq", b"\xca" + struct.pack(">f", 3.0)),
            "sparky.hello",
        ),
        ("seq_too_big", "seq is 2^53, above the v1 int range", with_value(hello(), "seq", 1 << 53), "sparky.hello"),
        (
            "seq_uint64_max",
            "seq is 2^64 - 1 (reads as -1 in a signed 64-bit int)",
            with_value(hello(), "seq", (1 << 64) - 1),
            "sparky.hello",
        ),
        ("seq_nil", "seq is nil", with_value(hello(), "seq", None), "sparky.hello"),
        ("session_int", "session is an int", with_value(hello(), "session", 12345), "sparky.hello"),
        ("project_nil", "project is nil", with_value(hello(), "project", None), "sparky.hello"),
        ("project_bin", "project is bin, not str", with_value(hello(), "project", b"dungeon"), "sparky.hello"),
        ("interval_ms_str", "interval_ms is a str", with_value(hello(), "interval_ms", "2000"), "sparky.hello"),
        ("trigger_str", "trigger is a str, not an array", build_started("sparky.toml"), "sparky.build-started"),
        ("trigger_item_int", "a trigger item is an int", build_started(["a.png", 3]), "sparky.build-started"),
        ("assets_map", "assets is a map, not an array", assets_changed({"0": GODOT_HERO}), "sparky.assets-changed"),
        (
            "asset_not_map",
            "an asset is an array",
            assets_changed([["godot", "sprites/hero.tres"]]),
            "sparky.assets-changed",
        ),
        (
            "asset_target_nil",
            "an asset's target is nil",
            assets_changed([with_value(GODOT_HERO, "target", None)]),
            "sparky.assets-changed",
        ),
        (
            "asset_engine_path_int",
            "an asset's engine_path is an int",
            assets_changed([with_value(GODOT_HERO, "engine_path", 5)]),
            "sparky.assets-changed",
        ),
        (
            "asset_hash_nil",
            "an asset's hash is nil (removed assets use '')",
            assets_changed([with_value(GODOT_HERO, "hash", None)]),
            "sparky.assets-changed",
        ),
        (
            "asset_sprites_item_nil",
            "an asset's sprites holds nil",
            assets_changed([with_value(GODOT_HERO, "sprites", ["hero", None])]),
            "sparky.assets-changed",
        ),
        (
            "asset_atlas_bool",
            "an asset's atlas is false",
            assets_changed([with_value(GODOT_HERO, "atlas", False)]),
            "sparky.assets-changed",
        ),
        ("error_line_negative", "an error's line is -3", build_failed([build_error(line=-3)]), "sparky.build-failed"),
        (
            "error_line_str",
            "an error's line is the str '12'",
            build_failed([build_error(line="12")]),
            "sparky.build-failed",
        ),
        (
            "error_message_nil",
            "an error's message is nil",
            build_failed([build_error(message=None)]),
            "sparky.build-failed",
        ),
        ("errors_item_str", "an errors item is a str", build_failed(["boom"]), "sparky.build-failed"),
        ("ok_int", "ok is the int 1, not a bool", with_value(build_finished(), "ok", 1), "sparky.build-finished"),
        ("ok_nil", "ok is nil", with_value(build_finished(), "ok", None), "sparky.build-finished"),
        (
            "duration_negative",
            "duration_ms is -1",
            with_value(build_finished(), "duration_ms", -1),
            "sparky.build-finished",
        ),
    ]
    for name, description, body, topic in wrong:
        reject(f"wrong_type_{name}", description, "wrong-type", body, topic=topic)

    reject("version_2", "v is 2", "version", with_value(hello(), "v", 2))
    reject("version_0", "v is 0", "version", with_value(hello(), "v", 0))
    reject(
        "version_unknown_type",
        "v is 2 on an unknown type (not ignored: refused)",
        "version",
        with_value(common("log", 4), "v", 2),
    )


def path_vectors() -> None:
    cases = [
        ("dotdot", "path has a '..' component", with_value(GODOT_HERO, "path", "sprites/../../etc/passwd")),
        ("dotdot_leading", "path starts with '..'", with_value(BEVY_ATLAS, "path", "../outside.ron")),
        ("absolute", "path is absolute", with_value(BEVY_ATLAS, "path", "/etc/passwd")),
        ("backslash", "path contains a backslash", with_value(GODOT_HERO, "path", "sprites\\hero.tres")),
        ("drive_letter", "path starts with a drive letter", with_value(BEVY_ATLAS, "path", "C:/game/x.ron")),
        ("nul", "path contains a NUL", with_value(GODOT_HERO, "path", "sprites/hero\x00.tres")),
        ("empty", "path is empty", with_value(GODOT_HERO, "path", "")),
        ("dot_component", "path has a '.' component", with_value(GODOT_HERO, "path", "./sprites/hero.tres")),
        ("empty_component", "path has an empty component ('//')", with_value(GODOT_HERO, "path", "sprites//hero.tres")),
        ("trailing_slash", "path ends with '/'", with_value(GODOT_HERO, "path", "sprites/")),
        ("godot_res_dotdot", "godot engine_path is res://../x", with_value(GODOT_HERO, "engine_path", "res://../x")),
        ("godot_no_res", "godot engine_path lacks res://", with_value(GODOT_HERO, "engine_path", "sprites/hero.tres")),
        (
            "godot_user_scheme",
            "godot engine_path uses user://",
            with_value(GODOT_HERO, "engine_path", "user://sprites/hero.tres"),
        ),
        ("godot_res_only", "godot engine_path is just res://", with_value(GODOT_HERO, "engine_path", "res://")),
        (
            "godot_res_absolute",
            "godot engine_path is res:///etc/passwd",
            with_value(GODOT_HERO, "engine_path", "res:///etc/passwd"),
        ),
        (
            "godot_res_backslash",
            "godot engine_path has a backslash after res://",
            with_value(GODOT_HERO, "engine_path", "res://sprites\\hero.tres"),
        ),
        (
            "bevy_absolute",
            "bevy engine_path is an absolute host path",
            with_value(BEVY_ATLAS, "engine_path", "/home/dev/game/assets/sprites/characters.atlas.ron"),
        ),
        ("bevy_url", "bevy engine_path is a URL", with_value(BEVY_ATLAS, "engine_path", "https://example.com/x.ron")),
        (
            "bevy_dotdot",
            "bevy engine_path leaves the assets folder",
            with_value(BEVY_ATLAS, "engine_path", "sprites/../../secret.ron"),
        ),
        (
            "bevy_res",
            "a bevy engine_path may not use res:// (':')",
            with_value(BEVY_ATLAS, "engine_path", "res://sprites/characters.atlas.ron"),
        ),
        (
            "texturepacker_engine_path",
            "a non-nil engine_path on another target follows the same rules",
            asset("texturepacker", "characters.json", "/abs/characters.json", "metadata"),
        ),
    ]
    for name, description, bad_asset in cases:
        # The bad asset comes second, after a valid one, so decoders must check every asset.
        reject(f"path_{name}", description, "path", assets_changed([GODOT_PAGE, bad_asset]))


def topic_and_precedence_vectors() -> None:
    reject("topic_mismatch", "a hello body on the build-started topic", "topic", hello(), topic="sparky.build-started")
    reject("topic_no_prefix", "topic 'hello' without 'sparky.'", "topic", hello(), topic="hello")
    reject("topic_case", "topic 'sparky.Hello' (topics are case-sensitive)", "topic", hello(), topic="sparky.Hello")
    reject("topic_trailing_space", "topic with a trailing space", "topic", hello(), topic="sparky.hello ")
    reject(
        "topic_unknown_type",
        "an unknown type on another type's topic is refused, not ignored",
        "topic",
        common("log", 8),
        topic="sparky.hello",
    )

    reject(
        "precedence_oversize_before_malformed",
        "garbage larger than max_bytes: oversize (the body is not parsed)",
        "oversize",
        b"\xc1" * 100,
        max_bytes=64,
    )
    reject(
        "precedence_malformed_before_fields",
        "trailing bytes after a body that also lacks seq: malformed (parsing comes first)",
        "malformed",
        pack(without(hello(), "seq")) + b"\x00",
    )
    reject(
        "precedence_version_first",
        "v 2 with other fields missing or of other types and a mismatched topic: version",
        "version",
        {"v": 2, "type": "hello", "seq": "one", "payload": [1, 2]},
        topic="sparky.something-else",
    )
    reject(
        "precedence_topic_before_seq",
        "topic mismatch and seq of the wrong type: topic (checked right after type)",
        "topic",
        with_value(hello(), "seq", "1"),
        topic="sparky.build-finished",
    )
    reject(
        "precedence_common_before_unknown_type",
        "an unknown type without session: missing-field (common fields are checked for every type)",
        "missing-field",
        without(common("log", 8), "session"),
    )
    reject("oversize", f"a {len(pack(hello()))}-byte hello with max_bytes 64", "oversize", hello(), max_bytes=64)
    body = pack(hello())
    reject("oversize_by_one", "a body one byte over max_bytes", "oversize", body, max_bytes=len(body) - 1)


def build_all() -> list[Vector]:
    VECTORS.clear()
    valid_vectors()
    malformed_vectors()
    field_vectors()
    path_vectors()
    topic_and_precedence_vectors()
    names = [vector.name for vector in VECTORS]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise SystemExit(f"duplicate vector names: {sorted(duplicates)}")
    return list(VECTORS)


def rendered(vectors: list[Vector]) -> dict[str, bytes]:
    """File name → bytes for every vector, plus ``INDEX`` (one vector name per line)."""
    files: dict[str, bytes] = {}
    for vector in sorted(vectors, key=lambda v: v.name):
        files[f"{vector.name}.msgpack"] = vector.body
        text = json.dumps(vector.json_record(), indent=1, ensure_ascii=False) + "\n"
        files[f"{vector.name}.json"] = text.encode("utf-8")
    files["INDEX"] = "".join(f"{vector.name}\n" for vector in sorted(vectors, key=lambda v: v.name)).encode()
    for name, data in files.items():
        if len(data) >= MAX_FILE_BYTES:
            raise SystemExit(f"{name} is {len(data)} bytes; vector files must stay under {MAX_FILE_BYTES}")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if a file would change")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: this folder)")
    args = parser.parse_args(argv)
    files = rendered(build_all())
    known = set(files) | {"make_vectors.py", "README.md", "__pycache__"}
    stale = sorted(p.name for p in args.out.iterdir() if p.name not in known) if args.out.exists() else []
    changed = [
        name
        for name, data in files.items()
        if not (args.out / name).is_file() or (args.out / name).read_bytes() != data
    ]
    if args.check:
        for name in changed:
            print(f"would change: {name}", file=sys.stderr)
        for name in stale:
            print(f"stale file: {name}", file=sys.stderr)
        return 1 if changed or stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out / name).unlink()
    for name in changed:
        (args.out / name).write_bytes(files[name])
    print(f"{(len(files) - 1) // 2} vectors, {len(changed)} files written, {len(stale)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
