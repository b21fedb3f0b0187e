"""Manifest syntax and types: every broken or hostile manifest is exit 2 with its
location, or builds (exit 0) when it is merely unusual; never a traceback, never a
write outside the project, and the previous outputs untouched after a failure.

One table, one parametrized test. An edit is a list of steps applied to the base
manifest (``tests/adversarial/rig.py``): ``(old, new)`` replaces the first ``old``;
``ALL(old, new)`` every one; ``APPEND(text)``; ``TEXT(text)`` the whole file;
``RAW(fn)`` a function of the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.adversarial.rig import check_run, cli, expect


@dataclass(frozen=True)
class ALL:
    old: str
    new: str


@dataclass(frozen=True)
class APPEND:
    text: str


@dataclass(frozen=True)
class TEXT:
    text: str


@dataclass(frozen=True)
class RAW:
    fn: object


def at(line: int) -> str:
    """The location ``sparky.toml:LINE:COL``."""
    return rf"sparky\.toml:{line}:\d+"


def deep(open_: str, close: str, depth: int = 5000) -> str:
    return open_ * depth + "1" + close * depth


APPENDED = 27  # the first line of APPEND text

CASES = [
    # id, edit, exit code, location regex, fragments
    # -- syntax and encoding
    ("deep-inline-tables", [APPEND("x = " + deep("{a = ", "}"))], 2, r"sparky\.toml", ["nested too deeply"]),
    ("deep-arrays", [APPEND("x = " + deep("[", "]"))], 2, r"sparky\.toml", ["nested too deeply"]),
    ("deep-mixed", [APPEND("x = " + deep("[{a = ", "}]", 3000))], 2, r"sparky\.toml", ["nested too deeply"]),
    # a half-saved file (an editor's truncate-then-write seen mid-way): where it stops
    ("half-saved", [RAW(lambda b: b[: b.index(b'"tiny"') + 3])], 2, r"sparky\.toml:2:11\b", ["Unterminated string"]),
    ("bom", [RAW(lambda b: b"\xef\xbb\xbf" + b)], 0, None, []),
    ("crlf", [RAW(lambda b: b.replace(b"\n", b"\r\n"))], 0, None, []),
    (
        "invalid-utf8-in-string",
        [RAW(lambda b: b.replace(b'"tiny"', b'"ti\xffny"'))],
        2,
        r"sparky\.toml:2:11",
        ["UTF-8"],
    ),
    ("invalid-utf8-in-comment", [RAW(lambda b: b + b"# caf\xc3\x28\n")], 2, at(APPENDED), ["UTF-8"]),
    ("overlong-utf8", [RAW(lambda b: b.replace(b'"tiny"', b'"\xc0\xafx"'))], 2, r"sparky\.toml:2:", ["UTF-8"]),
    ("lone-surrogate-utf8", [RAW(lambda b: b.replace(b'"tiny"', b'"\xed\xa0\x80"'))], 2, r"sparky\.toml:2:", []),
    ("unterminated-string", [('name = "tiny"', 'name = "tiny')], 2, at(2), ["TOML syntax error"]),
    ("duplicate-key", [("fps = 8", "fps = 8\nfps = 9")], 2, at(5), ["TOML syntax error"]),
    ("binary-garbage", [RAW(lambda b: bytes(range(256)) * 4)], 2, r"sparky\.toml", []),
    ("empty-file", [TEXT("")], 2, r"sparky\.toml", ["name"]),
    ("only-comments", [TEXT("# nothing here\n# at all\n")], 2, r"sparky\.toml", ["name"]),
    ("too-big", [APPEND("# " + "x" * (17 << 20) + "\n")], 2, r"sparky\.toml", ["at most"]),
    ("long-comment-line", [APPEND("# " + "x" * 1_000_000 + "\n")], 0, None, []),
    ("nul-in-comment", [APPEND("# a\x00b\n")], 2, at(APPENDED), []),
    ("datetime-value", [("fps = 8", "fps = 1979-05-27")], 2, at(4), ["wrong type"]),
    # -- names
    ("name-nul", [('name = "hero"', 'name = "he\\u0000ro"')], 2, at(7), ["control characters", "\\x00"]),
    ("name-newline", [('name = "hero"', 'name = "hero\\n"')], 2, at(7), ["control characters"]),
    ("name-escape-sequence", [('name = "hero"', 'name = "\\u001b[31mred"')], 2, at(7), ["\\x1b"]),
    ("name-300", [ALL('"hero"', '"' + "h" * 300 + '"')], 2, at(7), ["more than 128"]),
    ("name-129", [ALL('"hero"', '"' + "h" * 129 + '"')], 2, at(7), ["more than 128"]),
    ("name-128-ok", [ALL('"hero"', '"' + "h" * 128 + '"')], 0, None, []),
    ("name-slash", [('name = "hero"', 'name = "mobs/hero"')], 2, at(7), ["path separators"]),
    ("name-backslash", [('name = "hero"', 'name = "mobs\\\\hero"')], 2, at(7), ["path separators"]),
    ("name-dotdot", [('name = "hero"', 'name = "he..ro"')], 2, at(7), ["'..'"]),
    ("name-leading-dot", [('name = "hero"', 'name = ".hero"')], 2, at(7), ["invalid"]),
    ("name-leading-dash", [('name = "hero"', 'name = "-hero"')], 2, at(7), ["invalid"]),
    ("name-unicode", [('name = "hero"', 'name = "héro"')], 2, at(7), ["invalid"]),
    ("name-space", [('name = "hero"', 'name = "he ro"')], 2, at(7), ["invalid"]),
    ("name-empty", [('name = "hero"', 'name = ""')], 2, at(7), ["empty name"]),
    ("name-int", [('name = "hero"', "name = 5")], 2, at(7), ["wrong type"]),
    ("atlas-name-slash", [('name = "all"', 'name = "a/ll"')], 2, at(17), ["path separators"]),
    ("atlas-name-long", [('name = "all"', 'name = "' + "a" * 200 + '"')], 2, at(17), ["more than 128"]),
    ("animation-name-slash", [("idle = 2", '"a/b" = 2')], 2, at(9), ["invalid animation name"]),
    ("animation-name-nul", [("idle = 2", '"a\\u0000" = 2')], 2, at(9), ["\\x00"]),
    ("duplicate-sprite", [('name = "coin"', 'name = "hero"')], 2, at(13), ["duplicate sprite name"]),
    ("atlas-named-like-sprite", [('name = "all"', 'name = "hero"')], 2, at(17), ["duplicate name"]),
    ("unknown-key-nul", [APPEND('"a\\u0000b" = 1\n')], 2, r"sparky\.toml:2[67]:", ["\\x00"]),
    # -- numbers
    ("fps-nan", [("fps = 8", "fps = nan")], 2, at(4), ["finite"]),
    ("fps-inf", [("fps = 8", "fps = inf")], 2, at(4), ["finite"]),
    ("fps-minus-inf", [("fps = 8", "fps = -inf")], 2, at(4), ["finite"]),
    ("animation-fps-nan", [("fps = 12", "fps = nan")], 2, at(9), ["finite"]),
    ("animation-fps-inf", [("fps = 12", "fps = +inf")], 2, at(9), ["finite"]),
    ("sprite-fps-nan", [("seed = 7", "seed = 7\nfps = nan")], 2, at(11), ["finite"]),
    ("fps-zero", [("fps = 8", "fps = 0")], 2, at(4), ["out of range"]),
    ("fps-huge", [("fps = 8", "fps = 1e308")], 2, at(4), ["out of range"]),
    # strength is a key of the diffusion generator's sprites (an image sprite does not take it)
    (
        "strength-nan",
        [('source = "art/coin.png"', 'source = "art/coin.png"\nstrength = nan\ngenerator = "diffusion"')],
        2,
        at(15),
        ["finite"],
    ),
    ("size-zero", [("size = 8", "size = 0")], 2, at(8), ["out of range"]),
    ("size-huge", [("size = 8", "size = 5000")], 2, at(8), ["out of range"]),
    ("size-negative", [("size = 8", "size = [-8, 8]")], 2, at(8), ["out of range"]),
    ("size-three", [("size = 8", "size = [1, 2, 3]")], 2, at(8), ["wrong type"]),
    ("size-string", [("size = 8", 'size = "16"')], 2, at(8), ["wrong type"]),
    ("size-float", [("size = 8", "size = 8.5")], 2, at(8), ["wrong type"]),
    ("size-bool", [("size = 8", "size = true")], 2, at(8), ["wrong type"]),
    ("size-int64-max", [("size = 8", "size = 9223372036854775807")], 2, at(8), ["out of range"]),
    ("seed-negative", [("seed = 7", "seed = -1")], 2, at(10), ["out of range"]),
    ("seed-float", [("seed = 7", "seed = 7.0")], 2, at(10), ["wrong type"]),
    ("project-seed-float", [("fps = 8", "fps = 8\nseed = 1.5")], 2, at(5), ["wrong type"]),
    ("frames-zero", [("idle = 2", "idle = 0")], 2, at(9), ["out of range"]),
    ("frames-huge", [("idle = 2", "idle = 100000")], 2, at(9), ["out of range"]),
    ("padding-negative", [('sprites = ["hero", "coin"]', 'sprites = ["hero", "coin"]\npadding = -1')], 2, at(19), []),
    ("extrude-huge", [('sprites = ["hero", "coin"]', 'sprites = ["hero", "coin"]\nextrude = 99')], 2, at(19), []),
    ("grid-zero", [('source = "art/coin.png"', 'source = "art/coin.png"\ngrid = [0, 0]')], 2, at(15), []),
    # -- types and structure
    ("project-int", [TEXT("project = 1\n")], 2, at(1), ["wrong type"]),
    ("project-name-int", [('name = "tiny"', "name = 1")], 2, at(2), ["wrong type"]),
    ("sprite-int", [TEXT('sprite = 1\n[project]\nname = "t"\n')], 2, at(1), ["wrong type"]),
    ("sprite-list-of-ints", [TEXT('sprite = [1, 2]\n[project]\nname = "t"\n')], 2, r"sparky\.toml", []),
    ("atlas-string", [TEXT('atlas = "x"\n[project]\nname = "t"\n')], 2, at(1), ["wrong type"]),
    ("generator-int", [TEXT('generator = 5\n[project]\nname = "t"\n')], 2, at(1), ["wrong type"]),
    ("export-int", [TEXT('export = 5\n[project]\nname = "t"\n')], 2, at(1), ["wrong type"]),
    ("unknown-section", [APPEND("[sprites]\nx = 1\n")], 2, at(APPENDED), ["unknown section"]),
    ("unknown-sprite-key", [("seed = 7", 'seed = 7\ncolour = "red"')], 2, at(11), ["unknown key 'colour'"]),
    ("procedural-unknown-setting", [APPEND("[generator.procedural]\ncolours = 3\n")], 2, at(28), ["colours"]),
    ("image-unknown-setting", [APPEND("[generator.image]\nscale = 2\n")], 2, at(28), ["scale"]),
    ("hot-reload-endpoint-int", [APPEND("[hot_reload]\nendpoint = 5\n")], 2, at(28), ["wrong type"]),
    ("hot-reload-allow-remote-string", [APPEND('[hot_reload]\nallow_remote = "false"\n')], 2, at(28), ["wrong type"]),
    ("hot-reload-unknown-key", [APPEND("[hot_reload]\nport = 1\n")], 2, at(28), ["unknown key"]),
    ("dither-unknown", [("seed = 7", 'seed = 7\ndither = "floyd"')], 2, at(11), ["unknown dither"]),
    ("outline-bad", [("seed = 7", 'seed = 7\noutline = "#zzzzzz"')], 2, at(11), ["wrong type"]),
    ("prompt-int", [("seed = 7", "seed = 7\nprompt = 5")], 2, at(11), ["wrong type"]),
    ("pixelize-int", [('source = "art/coin.png"', 'source = "art/coin.png"\npixelize = 5')], 2, at(15), []),
    ("animations-string", [("animations = {", 'animations = "idle" #{')], 2, at(9), ["wrong type"]),
    ("style-unknown", [("seed = 7", 'seed = 7\nstyle = "robot"')], 2, at(11), ["unknown procedural style"]),
    (
        "atlas-glob-matches-nothing",
        [('sprites = ["hero", "coin"]', 'sprites = ["hero", "coin", "zz*"]')],
        2,
        at(18),
        [],
    ),
    ("godot-project-missing", [('project = "godot"', "")], 2, at(20), ["missing required key"]),
    ("export-unknown", [APPEND("[export.unity]\n")], 2, at(APPENDED), ["unknown export target"]),
    # -- atlas fit (also checked by `check`: see test_check_agrees_on_fit)
    (
        "extrude-fit",
        [('sprites = ["hero", "coin"]', 'sprites = ["hero", "coin"]\nmax_size = [8, 8]\nextrude = 1')],
        2,
        at(19),
        ["with extrude = 1"],
    ),
    (
        "power-of-two-fit",
        [
            ("size = 8", "size = 9"),
            ('sprites = ["hero", "coin"]', 'sprites = ["hero", "coin"]\nmax_size = [12, 12]\npower_of_two = true'),
        ],
        2,
        at(19),
        ["power_of_two"],
    ),
    (
        "square-fit",
        [
            ("size = 8", "size = [12, 8]"),
            ('sprites = ["hero", "coin"]', 'sprites = ["hero", "coin"]\nmax_size = [16, 10]\nsquare = true'),
        ],
        2,
        at(19),
        ["square"],
    ),
    # -- paths named by the manifest
    ("palette-empty", [('palette = "pal.hex"', 'palette = ""')], 2, at(3), ["empty palette"]),
    ("palette-escape", [('palette = "pal.hex"', 'palette = "../outside/pal.hex"')], 2, at(3), ["outside"]),
    ("palette-absolute", [('palette = "pal.hex"', 'palette = "/etc/passwd.hex"')], 2, at(3), ["outside"]),
    ("palette-unknown-name", [('palette = "pal.hex"', 'palette = "nope"')], 2, at(3), ["unknown palette"]),
    ("palette-nul", [('palette = "pal.hex"', 'palette = "p\\u0000.hex"')], 2, at(3), []),
    ("source-escape", [('source = "art/coin.png"', 'source = "../outside/victim.png"')], 2, at(14), ["outside"]),
    ("source-absolute", [('source = "art/coin.png"', 'source = "/etc/passwd"')], 2, at(14), ["outside"]),
    ("source-missing", [('source = "art/coin.png"', 'source = "art/none.png"')], 2, at(14), ["not found"]),
    ("source-nul", [('source = "art/coin.png"', 'source = "art/co\\u0000in.png"')], 2, at(14), []),
    ("source-is-folder", [('source = "art/coin.png"', 'source = "art"')], 2, at(14), []),
    ("out-escape", [("fps = 8", 'fps = 8\nout = "../outside"')], 2, at(5), ["outside the project"]),
    ("out-absolute", [("fps = 8", 'fps = 8\nout = "/tmp"')], 2, at(5), ["outside the project"]),
    ("out-in-state-folder", [("fps = 8", 'fps = 8\nout = ".sparky"')], 2, at(5), ["overlaps .sparky/"]),
    ("out-in-store", [("fps = 8", 'fps = 8\nout = "sparky-generated/x"')], 2, at(5), ["overlaps"]),
    ("godot-escape", [('project = "godot"', 'project = "../outside"')], 2, at(21), ["outside the project"]),
    (
        "bevy-dir-dotdot",
        [('assets = "bevy/assets"', 'assets = "bevy/assets"\ndir = "../../.."')],
        2,
        at(25),
        ["escapes"],
    ),
    ("texturepacker-dir-holds-source", [APPEND('dir = "art"\n')], 2, at(APPENDED), ["holds an input"]),
    ("texturepacker-dir-is-root", [APPEND('dir = "."\n')], 2, at(APPENDED), []),
    (
        "sheets-hold-source",
        [('source = "art/coin.png"', 'source = "build/sprites/sheets/all_0.png"')],
        2,
        at(1),
        ["holds an input"],
    ),
    (
        "godot-folder-holds-source",
        [('source = "art/coin.png"', 'source = "godot/sprites/all_0.png"')],
        2,
        at(20),
        ["holds an input"],
    ),
    (
        "palette-in-sheets",
        [('palette = "pal.hex"', 'palette = "build/sprites/sheets/p.hex"')],
        2,
        at(1),
        ["holds an input"],
    ),
]


def _apply(text: bytes, steps) -> bytes:
    for step in steps:
        if isinstance(step, tuple):
            old, new = step
            assert old.encode() in text, old
            text = text.replace(old.encode(), new.encode(), 1)
        elif isinstance(step, ALL):
            text = text.replace(step.old.encode(), step.new.encode())
        elif isinstance(step, APPEND):
            text = text + step.text.encode()
        elif isinstance(step, TEXT):
            text = step.text.encode()
        else:
            text = step.fn(text)
    return text


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_manifest_case(project, case):
    _, steps, code, where, fragments = case
    if case[0] == "palette-in-sheets":  # the palette must exist for the sheets check to be the only problem
        (project.root / "build/sprites/sheets/p.hex").write_text("000000\nffffff\n")
    project.manifest.write_bytes(_apply(project.manifest.read_bytes(), steps))
    expect(project, code, where=where, contains=fragments)


@pytest.mark.parametrize("case", [c for c in CASES if c[0].endswith("-fit")], ids=lambda c: c[0])
def test_check_agrees_on_fit(project, case):
    """`check` says what `build` would: a frame that fits max_size but not once extrude,
    power_of_two or square apply is refused by both."""
    _, steps, code, where, fragments = case
    project.manifest.write_bytes(_apply(project.manifest.read_bytes(), steps))
    from tests.adversarial.rig import cli

    outcome = cli("check", str(project.root))
    check_run(project, outcome, code, where=where, contains=tuple(fragments), outside_before=project.outside_before)


@pytest.mark.parametrize(
    "line",
    ["seed = 7  # keep this comment", "seed=7 # tight", "seed = 7\t# tab", "seed = 0x7  # hex"],
    ids=["comment", "tight", "tab", "hex"],
)
def test_reroll_keeps_the_seed_lines_comment(project, line):
    project.edit("seed = 7", line)
    outcome = cli("reroll", "hero", str(project.root), "--seed", "42")
    check_run(project, outcome, 0, outside_before=project.outside_before)
    text = project.manifest.read_text()
    value = line.split("=", 1)[1].split("#")[0].strip()
    assert line.replace(value, "42", 1) in text.splitlines(), text
