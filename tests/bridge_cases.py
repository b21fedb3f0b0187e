"""The Godot bridge's test cases, shared by its Godot 3 run (tests/integration/test_godot_bridge.py)
and its Godot 4.6 run (tests/godot4/test_bridge_godot4.py).

Role: one definition of the unit checks the GDScript runner must report (``UNIT_TESTS``),
of the decode cases (every protocol vector, hand-made edge cases, seeded mutations, each
with the Python reference decoder's verdict), and of how a runner's results are judged,
so the same tests hold in both engines.
"""

from __future__ import annotations

import json
import math
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from sparky_assets.hotreload import protocol as reference

VECTORS = Path(__file__).resolve().parent / "vectors"
SESSION_A = "a1" * 16
MUTATION_SEED = 20240601


def body(type_: str, seq: int, session: str = SESSION_A, **fields: Any) -> bytes:
    return msgpack.packb(
        {"v": 1, "type": type_, "seq": seq, "session": session, "project": "dungeon", **fields},
        use_bin_type=True,
    )


def frames(type_: str, seq: int, session: str = SESSION_A, **fields: Any) -> list[bytes]:
    return [f"sparky.{type_}".encode(), body(type_, seq, session, **fields)]


def hello(seq: int, session: str = SESSION_A, interval_ms: int = 2000) -> list[bytes]:
    return frames("hello", seq, session, interval_ms=interval_ms, build=0)


def asset(target: str, path: str, engine_path: str | None, kind: str, change: str = "modified") -> dict:
    return {
        "target": target,
        "path": path,
        "engine_path": engine_path,
        "kind": kind,
        "change": change,
        "hash": "" if change == "removed" else "ab" * 32,
        "sprites": ["hero"],
        "atlas": "characters",
    }


UNIT_TESTS = {
    "tracker/first-message-rescans",
    "tracker/next-seq-trusted",
    "tracker/gap-rescans",
    "tracker/duplicate-rescans",
    "tracker/new-session-rescans",
    "tracker/new-session-then-trusted",
    "tracker/counts-rescans",
    "planner/nothing-pending",
    "planner/update-every-godot-file",
    "planner/reimport-textures",
    "planner/reload-resources",
    "planner/no-scan-when-trusted",
    "planner/modified-texture-no-first-import",
    "planner/plan-taken-once",
    "planner/queued-while-busy",
    "planner/still-busy",
    "planner/queue-merged",
    "planner/added-texture-first-import",
    "planner/rescan-scans",
    "planner/rescan-keeps-files",
    "planner/hello-rescan-scans",
    "planner/refuses-outside",
    "planner/keeps-inside",
    "planner/managed-prefix",
    "planner/known-paths-textures-first",
    "planner/reload-tilesets",
    "planner/known-paths-keep-tilesets",
    "errors/full",
    "errors/no-line",
    "status/offline",
    "status/connected",
    "status/building",
    "status/failed",
    "status/ok",
    "status/offline-again",
    "status/tooltip",
    "endpoint/parse",
    "endpoint/no-scheme",
    "endpoint/bad-port",
    "endpoint/port-range",
    "frames/greeting",
    "frames/ready",
    "frames/subscription",
    "frames/pong",
}


def vector_names() -> list[str]:
    index = VECTORS / "INDEX"
    if not index.exists():
        return []
    return [line.strip() for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]


def to_plain(value: Any) -> Any:
    """A reference-decoder value in the runner's JSON form (opaque bin/ext/uint64)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        if value > (1 << 63) - 1:
            return {"$opaque": "uint64", "ext_type": 0}
        return value
    if isinstance(value, bytes):
        return {"$opaque": "bin", "ext_type": 0}
    if isinstance(value, msgpack.ExtType):
        return {"$opaque": "ext", "ext_type": value.code}
    if isinstance(value, msgpack.Timestamp):
        return {"$opaque": "ext", "ext_type": -1}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    raise TypeError(f"unexpected decoded value {value!r}")


def from_runner(value: Any) -> Any:
    """The runner's JSON back to Python values (floats travel as IEEE-754 bits)."""
    if isinstance(value, list):
        return [from_runner(item) for item in value]
    if isinstance(value, dict):
        if set(value) == {"$f64"}:
            return struct.unpack(">d", bytes.fromhex(value["$f64"]))[0]
        return {key: from_runner(item) for key, item in value.items()}
    return value


def same(left: Any, right: Any) -> bool:
    """Equality that keeps bool, int and float apart (Python's 1 == True == 1.0 does not)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, float) or isinstance(right, float):
        if not (isinstance(left, float) and isinstance(right, float)):
            return False
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, list) or isinstance(right, list):
        return (
            isinstance(left, list)
            and isinstance(right, list)
            and len(left) == len(right)
            and all(same(a, b) for a, b in zip(left, right))
        )
    if isinstance(left, dict) or isinstance(right, dict):
        return (
            isinstance(left, dict)
            and isinstance(right, dict)
            and set(left) == set(right)
            and all(same(left[key], right[key]) for key in left)
        )
    return type(left) is type(right) and left == right


def reference_result(topic: bytes, data: bytes, max_bytes: int) -> dict[str, Any]:
    try:
        envelope = reference.decode_envelope(topic, data, max_bytes)
    except reference.ProtocolError as error:
        return {"ok": False, "error": error.code}
    return {"ok": True, "type": envelope.type, "ignored": envelope.ignored, "decoded": to_plain(envelope.raw)}


def mutated_bodies(seed: int) -> list[tuple[str, bytes, bytes]]:
    """(name, topic, body): every prefix of a few valid bodies, then random mutations."""
    rng = random.Random(seed)
    bases: list[tuple[bytes, bytes]] = []
    for name in vector_names():
        spec = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
        if spec["expect"] == "ok":
            bases.append((spec["topic"].encode("utf-8"), (VECTORS / f"{name}.msgpack").read_bytes()))
    bases.append(
        (
            b"sparky.assets-changed",
            body(
                "assets-changed",
                3,
                build=2,
                assets=[asset("godot", "hero.tres", "res://sprites/hero.tres", "sprite-frames")],
            ),
        )
    )
    cases: list[tuple[str, bytes, bytes]] = []
    short = [base for base in bases if len(base[1]) < 400]
    for index, (topic, data) in enumerate(short[:4]):
        for length in range(len(data)):
            cases.append((f"prefix-{index}-{length}", topic, data[:length]))
    interesting = [
        0xC0,
        0xC1,
        0xC2,
        0xC4,
        0xC7,
        0xCA,
        0xCB,
        0xCF,
        0xD3,
        0xD4,
        0xD8,
        0xD9,
        0xDB,
        0xDC,
        0xDD,
        0xDE,
        0xDF,
        0xFF,
        0x00,
        0x7F,
        0x80,
        0x90,
        0xA0,
    ]
    for number in range(1500):
        topic, data = rng.choice(bases)
        mutable = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            operation = rng.randrange(4)
            position = rng.randrange(len(mutable)) if mutable else 0
            if operation == 0 and mutable:
                mutable[position] = rng.randrange(256)
            elif operation == 1 and mutable:
                mutable[position] = rng.choice(interesting)
            elif operation == 2:
                mutable.insert(position, rng.randrange(256))
            elif mutable:
                del mutable[position]
        cases.append((f"mutation-{number}", topic, bytes(mutable)))
    return cases


def handmade_bodies() -> list[tuple[str, bytes, bytes, int]]:
    """Edge cases the vectors leave to chance: huge claimed lengths, deep nesting in
    unknown keys, every msgpack format under an unknown key, long strings."""
    good = {"v": 1, "type": "hello", "seq": 1, "session": SESSION_A, "project": "p", "interval_ms": 5, "build": 0}
    packed = msgpack.packb(good)
    head = bytes([0x80 | (len(good) + 1)]) + packed[1:] + msgpack.packb("x")
    cases: list[tuple[str, bytes, bytes, int]] = []
    extras = {
        "array32-claims-4g": b"\xdd\xff\xff\xff\xff",
        "map32-claims-4g": b"\xdf\xff\xff\xff\xff",
        "str32-claims-4g": b"\xdb\xff\xff\xff\xff" + b"a",
        "bin32-claims-4g": b"\xc6\xff\xff\xff\xff",
        "ext32-claims-4g": b"\xc9\xff\xff\xff\xff\x01",
        "deep-33-arrays": b"\x91" * 31 + b"\x90",
        "deep-32-arrays": b"\x91" * 30 + b"\x90",
        "deep-5000": b"\x91" * 5000 + b"\x90",
        "timestamp32": b"\xd6\xff" + b"\x00\x00\x00\x01",
        "timestamp64-bad-ns": b"\xd7\xff" + b"\xff\xff\xff\xfc" + b"\x00\x00\x00\x00",
        "timestamp96": b"\xc7\x0c\xff" + b"\x00\x00\x00\x01" + b"\x00" * 8,
        "timestamp-bad-length": b"\xd5\xff\x00\x00",
        "fixext16": b"\xd8\x05" + b"\x00" * 16,
        "bin8": b"\xc4\x03abc",
        "float32": b"\xca" + struct.pack(">f", 1.5e-30),
        "float64-nan": b"\xcb" + struct.pack(">d", float("nan")),
        "float64-inf": b"\xcb" + struct.pack(">d", float("-inf")),
        "uint64-max": b"\xcf" + b"\xff" * 8,
        "int64-min": b"\xd3\x80" + b"\x00" * 7,
        "negative-fixint": b"\xe0",
        "str16-long": b"\xda\x01\x2c" + "é".encode() * 150,
        "str32-70k": b"\xdb" + struct.pack(">I", 70_000) + b"z" * 70_000,
        "str-nul": b"\xa3a\x00b",
        "str-overlong": b"\xa2\xc0\xaf",
        "str-surrogate": b"\xa3\xed\xa0\x80",
        "str-above-10ffff": b"\xa4\xf4\x90\x80\x80",
        "str-4-byte-emoji": b"\xa4\xf0\x9f\x98\x80",
        "nested-map-int-key": b"\x81\x01\x02",
        "nested-map-dup-key": b"\x82\xa1k\x01\xa1k\x02",
    }
    for name, extra in extras.items():
        cases.append((f"extra-{name}", b"sparky.hello", head + extra, reference.MAX_MESSAGE_BYTES))
    nul_path = body(
        "assets-changed",
        2,
        build=1,
        assets=[asset("godot", "a\x00b.png", "res://a\x00b.png", "texture")],
    )
    cases.append(("nul-in-path", b"sparky.assets-changed", nul_path, reference.MAX_MESSAGE_BYTES))
    nul_type = body("hello\x00x", 2)
    cases.append(("nul-in-type-topic-without", b"sparky.hello", nul_type, reference.MAX_MESSAGE_BYTES))
    cases.append(("nul-in-type-topic-with", b"sparky.hello\x00x", nul_type, reference.MAX_MESSAGE_BYTES))
    cases.append(("not-a-map-array", b"sparky.hello", msgpack.packb([good]), reference.MAX_MESSAGE_BYTES))
    cases.append(("not-a-map-str", b"sparky.hello", msgpack.packb("hello"), reference.MAX_MESSAGE_BYTES))
    cases.append(("exact-bound", b"sparky.hello", packed, len(packed)))
    cases.append(("one-over-bound", b"sparky.hello", packed, len(packed) - 1))
    return cases


@dataclass
class DecodeCases:
    """Every decode case as the runner reads them: a TSV manifest and one blob of bodies."""

    expected: dict[str, dict[str, Any]]
    manifest: str
    """One line per case: name, topic hex, max_bytes, offset in the blob, length."""
    blob: bytes


def decode_cases() -> DecodeCases:
    """Vectors, hand-made edge cases and mutations, each with what the reference decoder says."""
    expected: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    blob = bytearray()

    def add(name: str, topic: bytes, data: bytes, max_bytes: int, expectation: dict[str, Any]) -> None:
        lines.append(f"{name}\t{topic.hex()}\t{max_bytes}\t{len(blob)}\t{len(data)}")
        blob.extend(data)
        expected[name] = expectation

    for name in vector_names():
        spec = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
        data = (VECTORS / f"{name}.msgpack").read_bytes()
        add(
            f"vector:{name}",
            spec["topic"].encode("utf-8"),
            data,
            spec.get("max_bytes", reference.MAX_MESSAGE_BYTES),
            spec,
        )
    for name, topic, data, max_bytes in handmade_bodies():
        add(f"handmade:{name}", topic, data, max_bytes, reference_result(topic, data, max_bytes))
    for name, topic, data in mutated_bodies(seed=MUTATION_SEED):
        limit = reference.MAX_MESSAGE_BYTES
        add(f"fuzz:{name}", topic, data, limit, reference_result(topic, data, limit))
    return DecodeCases(expected, "\n".join(lines) + "\n", bytes(blob))


def check_vector(name: str, spec: dict[str, Any], result: dict[str, Any] | None, transcript: str = "") -> None:
    """Assert that a runner's result for vector ``name`` is what the vector's spec says."""
    assert result is not None, f"Godot printed no result for {name}:\n{transcript}"
    if spec["expect"] == "reject":
        assert not result["ok"], f"{name}: accepted, expected {spec['error']}"
        assert result["error"] == spec["error"], (
            f"{name}: {result['error']} ({result['detail']}), expected {spec['error']}"
        )
        return
    assert result["ok"], f"{name}: refused with {result.get('error')}: {result.get('detail')}"
    decoded = from_runner(result["decoded"])
    for key in spec.get("unrepresentable", []):
        assert isinstance(decoded.get(key), dict) and "$opaque" in decoded[key], (name, key, decoded.get(key))
        del decoded[key]
    assert same(decoded, spec["decoded"]), f"{name}: decoded {decoded!r}\nexpected {spec['decoded']!r}"
    assert result["ignored"] is spec.get("ignored", False)
    assert result["type"] == spec["decoded"]["type"]


def check_differential(expected: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]) -> int:
    """Assert the runner agrees with the reference on every non-vector case; returns how many were compared."""
    disagreements = []
    compared = 0
    for name, want in expected.items():
        if name.startswith("vector:"):
            continue
        got = results.get(name)
        compared += 1
        if got is None:
            disagreements.append(f"{name}: no result")
        elif want["ok"] != got["ok"]:
            disagreements.append(f"{name}: reference {want}, godot {got}")
        elif not want["ok"] and want["error"] != got["error"]:
            disagreements.append(f"{name}: reference {want['error']}, godot {got['error']} ({got['detail']})")
        elif want["ok"] and not (
            same(from_runner(got["decoded"]), want["decoded"]) and got["ignored"] is want["ignored"]
        ):
            disagreements.append(f"{name}: reference {want}, godot {got}")
    assert compared > 1500
    assert not disagreements, "\n".join(disagreements[:20])
    outcomes = {
        want["error"] if not want["ok"] else "ok" for name, want in expected.items() if not name.startswith("vector:")
    }
    # The mutations must reach deep into the checks, not just break the msgpack.
    assert {"ok", "malformed", "wrong-type", "missing-field", "not-a-map", "topic"} <= outcomes
    return compared


def check_unit_results(records: list[dict[str, Any]]) -> None:
    """Assert the runner reported exactly ``UNIT_TESTS`` and every one passed."""
    results = {r["test"]: r for r in records if "test" in r}
    assert set(results) == UNIT_TESTS, f"missing {UNIT_TESTS - set(results)}, unexpected {set(results) - UNIT_TESTS}"
    failed = {name: r["detail"] for name, r in results.items() if not r["ok"]}
    assert not failed
