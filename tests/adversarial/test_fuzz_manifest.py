"""Fuzzing the manifest loader with Hypothesis: generated TOML documents (manifest-
shaped, with values of every TOML type, hostile strings, huge and non-finite numbers)
and byte-level mutations of a valid manifest. ``sparky-assets check`` must answer
exit 0 or 2 — never a traceback, never "internal error". Bounded example counts keep
it well under a minute; a failure prints the document that caused it.
"""

from __future__ import annotations

import datetime as dt
import math

import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.adversarial.rig import MANIFEST, cli, write_base

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same documents every run: a CI failure reproduces locally
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

KEYS = [
    "name", "out", "palette", "seed", "generator", "size", "fps", "animations", "loop", "prompt", "negative_prompt",
    "style", "source", "grid", "strength", "pixelize", "outline", "dither", "sprites", "max_size", "padding",
    "extrude", "power_of_two", "square", "trim", "project", "assets", "dir", "endpoint", "allow_remote", "frames",
]  # fmt: skip

strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["hero", "coin", "all", "pal.hex", "art/coin.png", "pico-8", "godot", "../x", "/etc/passwd", "a/b", ".",
         "..", "", "tcp://0.0.0.0:1", "tcp://127.0.0.1:99999", "procedural", "image", "diffusion", "bayer4",
         "#ff00ff", "*", "hero\n", "he\x00ro", "x" * 300, "creature", "sheets"]
    ),
)  # fmt: skip
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 8, 16, 4096, 4097, -1, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.5, 1e308]),
)
scalars = st.one_of(
    strings,
    numbers,
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=12,
)


def table(keys: list[str]):
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=6)), values, max_size=6)


documents = st.fixed_dictionaries(
    {},
    optional={
        "project": st.one_of(table(KEYS[:7]), values),
        "sprite": st.one_of(st.lists(table(KEYS[:20]), max_size=4), values),
        "atlas": st.one_of(st.lists(table(["name", "sprites", *KEYS[20:26]]), max_size=3), values),
        "export": st.one_of(st.dictionaries(st.sampled_from(["godot", "bevy", "texturepacker", "aseprite", "x"]), table(KEYS[-8:]), max_size=3), values),
        "hot_reload": st.one_of(table(["endpoint", "allow_remote"]), values),
        "generator": st.one_of(st.dictionaries(st.sampled_from(["procedural", "image", "diffusion", "zz"]), table(KEYS), max_size=2), values),
        "extra": values,
    },
)  # fmt: skip


def _check(root, data: bytes) -> None:
    (root / "sparky.toml").write_bytes(data)
    outcome = cli("check", str(root))
    text = outcome.text
    assert outcome.code in (0, 2), f"exit {outcome.code} for:\n{data[:2000]!r}\n{text}"
    assert "Traceback" not in text and "internal error" not in text, f"for:\n{data[:2000]!r}\n{text}"


@FUZZ_SETTINGS
@given(doc=documents)
@example(doc={"project": {"name": "x", "fps": math.nan}})
@example(doc={"sprite": [{"name": "a", "animations": {"b": {"frames": 2, "fps": math.inf}}}], "project": {"name": "x"}})
def test_generated_documents_are_ok_or_invalid_input(tmp_path_factory, doc):
    root = tmp_path_factory.mktemp("fuzz") / "game"
    write_base(root)
    _check(root, tomli_w.dumps(doc).encode())


mutations = st.lists(
    st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, len(MANIFEST)), st.binary(max_size=4)),
    min_size=1,
    max_size=6,
)


@FUZZ_SETTINGS
@given(edits=mutations)
def test_mutated_manifests_are_ok_or_invalid_input(tmp_path_factory, edits):
    root = tmp_path_factory.mktemp("fuzz") / "game"
    write_base(root)
    data = bytearray(MANIFEST.encode())
    for kind, at, chunk in edits:
        at = min(at, len(data))
        if kind == "insert":
            data[at:at] = chunk
        elif kind == "delete":
            del data[at : at + len(chunk) + 1]
        else:
            data[at : at + len(chunk)] = chunk
    _check(root, bytes(data))
