"""Protocol v1 codec: every shared vector, round trips, the JSON Schema, the path rules."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import jsonschema
import msgpack
import pytest

from sparky_assets.hotreload.protocol import (
    ERROR_CODES,
    MAX_MESSAGE_BYTES,
    Asset,
    AssetsChanged,
    BuildError,
    BuildFailed,
    BuildFinished,
    BuildStarted,
    Hello,
    ProtocolError,
    decode,
    decode_envelope,
    encode,
    path_problem,
    validate_engine_path,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
SCHEMA = json.loads((ROOT / "docs" / "protocol.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
NAMES = (VECTORS / "INDEX").read_text(encoding="utf-8").split()
# JSON Schema cannot tell the msgpack float 2.0 from the int 2 once both are JSON numbers.
WHOLE_FLOAT_VECTORS = {"wrong_type_seq_float_whole", "wrong_type_seq_float32", "wrong_type_v_float"}
NON_CANONICAL_VECTORS = {"nonminimal_encodings"}
SESSION = "5f0c8a3e9b2d4f6a8c1e7b3d5a9f2c4e"


def load_vector(name: str) -> tuple[dict, bytes]:
    spec = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return spec, (VECTORS / f"{name}.msgpack").read_bytes()


def load_generator():
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building classes
    spec.loader.exec_module(module)
    return module


def common(seq: int = 1) -> dict:
    return {"session": SESSION, "seq": seq, "project": "dungeon"}


HERO = Asset(
    target="godot",
    path="sprites/hero.tres",
    engine_path="res://sprites/hero.tres",
    kind="sprite-frames",
    change="modified",
    hash="ab" * 32,
    sprites=("hero",),
    atlas="characters",
)


# --------------------------------------------------------------------------- vectors


def test_vector_set_is_large_and_balanced():
    specs = [load_vector(name)[0] for name in NAMES]
    assert len(specs) >= 100
    errors = {spec["error"] for spec in specs if spec["expect"] == "reject"}
    assert errors == set(ERROR_CODES), "every error code needs at least one vector"
    assert sum(spec["expect"] == "ok" for spec in specs) >= 25
    assert any(spec.get("ignored") for spec in specs)


def test_vectors_regenerate_byte_identical():
    generator = load_generator()
    files = generator.rendered(generator.build_all())
    on_disk = {p.name for p in VECTORS.iterdir() if p.suffix in (".json", ".msgpack") or p.name == "INDEX"}
    assert on_disk == set(files), "vector files on disk differ from what make_vectors.py writes"
    for name, data in files.items():
        assert (VECTORS / name).read_bytes() == data, f"{name} differs from make_vectors.py output"


def test_vector_files_stay_small():
    for path in VECTORS.iterdir():
        if path.suffix in (".json", ".msgpack"):
            assert path.stat().st_size < 8 * 1024, path.name


@pytest.mark.parametrize("name", NAMES)
def test_vector(name: str):
    spec, body = load_vector(name)
    max_bytes = spec.get("max_bytes", MAX_MESSAGE_BYTES)
    if spec["expect"] == "reject":
        with pytest.raises(ProtocolError) as caught:
            decode_envelope(spec["topic"], body, max_bytes)
        assert caught.value.code == spec["error"], caught.value.detail
        return
    envelope = decode_envelope(spec["topic"].encode("utf-8"), body, max_bytes)
    left_out = set(spec.get("unrepresentable", ()))
    assert {k: v for k, v in envelope.raw.items() if k not in left_out} == spec["decoded"]
    assert envelope.ignored == spec.get("ignored", False)
    assert (decode(spec["topic"], body, max_bytes) is None) == envelope.ignored


@pytest.mark.parametrize("name", NAMES)
def test_vector_against_schema(name: str):
    spec, body = load_vector(name)
    if spec["expect"] == "ok":
        VALIDATOR.validate(spec["decoded"])
    elif spec["error"] in ("missing-field", "wrong-type", "version", "path") and name not in WHOLE_FLOAT_VECTORS:
        # The body parses; the schema must refuse it just as the decoder does.
        mapping = msgpack.unpackb(body, raw=False, strict_map_key=False)
        assert not VALIDATOR.is_valid(mapping), f"schema accepts {name}, the decoder refuses it"


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_of_valid_vectors(name: str):
    spec, body = load_vector(name)
    if spec["expect"] != "ok" or spec.get("ignored"):
        return
    envelope = decode_envelope(spec["topic"], body, spec.get("max_bytes", MAX_MESSAGE_BYTES))
    message = envelope.message
    topic, encoded = encode(message)
    assert topic == spec["topic"].encode("ascii")
    assert decode(topic, encoded) == message
    if message.to_map() == envelope.raw and name not in NON_CANONICAL_VECTORS:
        assert encoded == body, "encode must give the vector's exact bytes (fixed key order, minimal ints)"


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --------------------------------------------------------------------------- encoder


def sample_messages():
    return [
        Hello(**common(1), interval_ms=2000, build=0),
        BuildStarted(**common(2), build=1, trigger=["sparky.toml"]),
        AssetsChanged(**common(3), build=1, assets=[HERO]),
        BuildFailed(**common(4), build=2, errors=[BuildError(message="boom", file="sparky.toml", line=1)]),
        BuildFinished(**common(5), build=2, ok=False, duration_ms=17, changed=0),
    ]


@pytest.mark.parametrize("message", sample_messages(), ids=lambda m: m.TYPE)
def test_encode_round_trips_and_matches_schema(message):
    topic, body = encode(message)
    assert topic == f"sparky.{message.TYPE}".encode()
    assert decode(topic, body) == message
    VALIDATOR.validate(msgpack.unpackb(body, raw=False))
    assert list(msgpack.unpackb(body, raw=False))[:5] == ["v", "type", "seq", "session", "project"]
    assert encode(message) == (topic, body), "encoding is deterministic"


def test_messages_are_frozen_and_hashable():
    message = sample_messages()[2]
    assert isinstance(message.assets, tuple) and isinstance(message.assets[0].sprites, tuple)
    with pytest.raises(AttributeError):
        message.seq = 9  # type: ignore[misc]
    assert hash(message) == hash(sample_messages()[2])


def test_a_string_is_not_accepted_as_a_sequence():
    with pytest.raises(TypeError, match="expected a sequence"):
        BuildStarted(**common(), build=1, trigger="sparky.toml")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (AssetsChanged(**common(), build=1, assets=[Asset(**{**HERO.__dict__, "path": "../x"})]), "path"),
        (AssetsChanged(**common(), build=1, assets=[Asset(**{**HERO.__dict__, "engine_path": "sprites/x"})]), "path"),
        (Hello(**common(True), interval_ms=2000, build=0), "wrong-type"),
        (Hello(**common(-1), interval_ms=2000, build=0), "wrong-type"),
        (Hello(**common(1), interval_ms=2.5, build=0), "wrong-type"),  # type: ignore[arg-type]
        (BuildFinished(**common(), build=1, ok=1, duration_ms=3, changed=0), "wrong-type"),  # type: ignore[arg-type]
        (BuildFailed(**common(), build=1, errors=[BuildError(message=None)]), "wrong-type"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_what_decoders_refuse(message, code):
    with pytest.raises(ProtocolError) as caught:
        encode(message)
    assert caught.value.code == code


def test_encode_refuses_a_body_over_the_bound():
    huge = BuildFailed(**common(), build=1, errors=[BuildError(message="x" * MAX_MESSAGE_BYTES)])
    with pytest.raises(ProtocolError) as caught:
        encode(huge)
    assert caught.value.code == "oversize"


# --------------------------------------------------------------------------- decoder bounds


def test_oversize_body_is_refused_without_parsing():
    # 4 MiB of the reserved byte: parsing would say "malformed"; the bound must say "oversize".
    with pytest.raises(ProtocolError) as caught:
        decode("sparky.hello", b"\xc1" * (4 << 20))
    assert caught.value.code == "oversize"


def test_max_bytes_is_configurable():
    _, body = encode(sample_messages()[0])
    assert decode("sparky.hello", body, max_bytes=len(body)) is not None
    with pytest.raises(ProtocolError, match="oversize"):
        decode("sparky.hello", body, max_bytes=len(body) - 1)


def test_deep_nesting_near_the_c_stack_limit_is_refused():
    body = msgpack.packb({**Hello(**common(), interval_ms=1, build=0).to_map()})
    deep = b"\x91" * 1000 + b"\x90"  # below msgpack's own stack limit: our depth check decides
    body = bytes([body[0] + 1]) + body[1:] + msgpack.packb("x") + deep
    with pytest.raises(ProtocolError) as caught:
        decode("sparky.hello", body)
    assert (caught.value.code, caught.value.detail) == ("malformed", "nesting deeper than 32")


def test_decode_accepts_bytes_like_bodies_and_str_or_bytes_topics():
    topic, body = encode(sample_messages()[1])
    assert decode(topic.decode(), memoryview(body)) == decode(topic, bytearray(body)) == sample_messages()[1]


def test_protocol_error_codes_are_the_spec_table():
    with pytest.raises(ValueError, match="unknown protocol error code"):
        ProtocolError("bad-thing", "x")
    error = ProtocolError("topic", "mismatch")
    assert (error.code, error.detail, str(error)) == ("topic", "mismatch", "topic: mismatch")


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path", ["a", "sprites/hero.tres", "a/b/c.png", "héros/épée.tres", "...", "a..b/.hidden", "x y/z"]
)
def test_normalized_relative_paths_pass(path):
    assert path_problem(path) is None
    validate_engine_path("bevy", path, path)
    validate_engine_path("godot", path, "res://" + path)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("C:/x", "':'"),
        ("https://x/y", "':'"),
        ("..", "'..'"),
        ("a/../b", "'..'"),
        (".", "'.'"),
        ("a/./b", "'.'"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
    ],
)
def test_bad_paths_name_their_problem(path, problem):
    assert problem in path_problem(path)
    with pytest.raises(ProtocolError) as caught:
        validate_engine_path("bevy", path, None)
    assert caught.value.code == "path"
    with pytest.raises(ProtocolError):
        validate_engine_path("godot", "ok.tres", "res://" + path)


def test_godot_engine_path_needs_res_prefix_and_others_must_not_have_it():
    validate_engine_path("godot", "a.tres", None)
    with pytest.raises(ProtocolError, match="does not start with 'res://'"):
        validate_engine_path("godot", "a.tres", "a.tres")
    with pytest.raises(ProtocolError, match="':'"):
        validate_engine_path("bevy", "a.ron", "res://a.ron")
