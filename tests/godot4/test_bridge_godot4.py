"""The sparky_bridge addon's non-editor scripts under Godot 4.6 (the web runtime, tests/godot4/harness.py).

The same unit checks and decode cases as the Godot 3 run (tests/bridge_cases.py): every
core script compiles in Godot 4.6, the reload planner, session tracker, status texts and
ZMTP frame bytes pass their checks, and the msgpack decoder + protocol checks agree with
the protocol vectors and with the Python reference decoder on 2,518 edge cases and
mutations. The runtime autoload compiles too (its reload swap: test_runtime_autoload.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bridge_cases import check_differential, check_unit_results, check_vector, decode_cases, vector_names

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "engine-bridges" / "godot"
ADDON = BRIDGE / "addons" / "sparky_bridge"
# Everything in the addon that needs no editor (plugin.gd extends EditorPlugin, which an
# export template does not have: see engine-bridges/godot/README.md).
EDITOR_ONLY = {"plugin.gd"}
RUNNER = "res://tests/run_tests_godot4.gd"


def addon_files() -> dict[str, bytes]:
    files = {f"addons/sparky_bridge/{p.name}": p.read_bytes() for p in sorted(ADDON.iterdir()) if p.is_file()}
    for name in ("bridge_tests.gd", "run_tests_godot4.gd"):
        files[f"tests/{name}"] = (BRIDGE / "tests" / name).read_bytes()
    return files


COMPILE_ALL = """extends Node

func _ready() -> void:
	for path: String in %s:
		var script: Script = load(path)
		print("SPARKY ", JSON.stringify({"script": path, "compiled": script != null and script.can_instantiate()}))
	print("SPARKY ", JSON.stringify({"done": true}))
	get_tree().quit(0)
"""


def test_every_non_editor_addon_script_compiles_in_godot_46(godot_web):
    scripts = sorted(f"res://addons/sparky_bridge/{p.name}" for p in ADDON.glob("*.gd") if p.name not in EDITOR_ONLY)
    assert "res://addons/sparky_bridge/runtime.gd" in scripts and len(scripts) >= 8
    scripts += ["res://tests/bridge_tests.gd", RUNNER]
    run = godot_web.run(addon_files(), script=COMPILE_ALL % ("[" + ", ".join(f'"{s}"' for s in scripts) + "]"))
    run.assert_clean()
    compiled = {record["script"]: record["compiled"] for record in run.records if "script" in record}
    assert compiled == dict.fromkeys(scripts, True)


@pytest.fixture(scope="module")
def godot4_bridge_run(godot_web):
    cases = decode_cases()
    files = {**addon_files(), "tests/decode_cases.tsv": cases.manifest, "tests/decode_cases.bin": cases.blob}
    run = godot_web.run(
        files,
        script=f'extends Node\n\nfunc _ready() -> void:\n\tadd_child(load("{RUNNER}").new())\n',
        timeout_s=240,
    )
    run.assert_clean()
    return cases, run


def test_unit_checks_pass_in_godot_46(godot4_bridge_run):
    _, run = godot4_bridge_run
    check_unit_results(run.records)


def test_every_protocol_vector_decodes_as_specified_in_godot_46(godot4_bridge_run):
    cases, run = godot4_bridge_run
    results = {record["case"]: record for record in run.records if "case" in record}
    names = vector_names()
    assert len(names) >= 100
    for name in names:
        key = f"vector:{name}"
        check_vector(name, cases.expected[key], results.get(key), run.transcript())


def test_decoder_agrees_with_the_python_reference_in_godot_46(godot4_bridge_run):
    cases, run = godot4_bridge_run
    results = {record["case"]: record for record in run.records if "case" in record}
    check_differential(cases.expected, results)
    timing = next(record for record in run.records if "decoded_cases" in record)
    print(
        f"\ndecoder: {timing['decoded_cases']} bodies decoded and checked in Godot 4.6 (web, wasm), "
        f"{timing['decode_us'] / timing['decoded_cases']:.0f} µs each on average"
    )
