"""Shared headless Chromium for tests: one browser per test session, pages served over loopback HTTP.

Role: the pytest fixtures and helpers every browser-driven test uses (the Godot 4.6 web
runtime harness in ``tests/godot4``, the preview page tests). Loaded for the whole suite by
``pytest_plugins`` in ``tests/conftest.py``.

Invariants:
- The browser is Debian's ``chromium`` (or ``$SPARKY_CHROMIUM``) driven by Playwright through
  ``executable_path``; Playwright's own browser download (``playwright install``) is never
  used, so nothing is fetched at test time.
- One browser process per session (``chromium_browser``); each test opens its own context
  (``browser_context``), so pages never share storage or caches with another test.
- Files are served by :class:`LoopbackServer` from memory or a folder on 127.0.0.1 only,
  with the cross-origin-isolation headers wasm builds ask for. ``file://`` is never used
  (WebAssembly streaming compilation and ``fetch`` need http).
- A missing Chromium or Playwright skips (and so fails under ``CI=true``, tests/conftest.py).
"""

from __future__ import annotations

import mimetypes
import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
# GPU and sandbox flags keep Chromium quiet and working as root inside containers.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio")

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")


def chromium_executable() -> str | None:
    """The system Chromium: ``$SPARKY_CHROMIUM`` if set, else the first of ``CHROMIUM_NAMES`` on PATH."""
    configured = os.environ.get("SPARKY_CHROMIUM")
    if configured:
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class LoopbackServer:
    """A static HTTP server on 127.0.0.1 (ephemeral port) serving in-memory files and folders.

    ``add_file(url_path, data)`` serves bytes; ``add_folder(url_prefix, folder)`` serves a
    folder's files under a prefix. Later additions shadow earlier ones. Every response carries
    COOP/COEP so pages are cross-origin isolated (SharedArrayBuffer, as threaded wasm wants).
    """

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._folders: list[tuple[str, Path]] = []
        self._lock = threading.Lock()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = unquote(urlsplit(self.path).path)
                server.requests.append(path)
                body = server.lookup(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", mimetypes.guess_type(path)[0] or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # quiet: tests read `requests`
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def add_file(self, url_path: str, data: bytes | str) -> None:
        with self._lock:
            self._files["/" + url_path.lstrip("/")] = data.encode("utf-8") if isinstance(data, str) else data

    def add_files(self, files: Mapping[str, bytes | str]) -> None:
        for url_path, data in files.items():
            self.add_file(url_path, data)

    def add_folder(self, url_prefix: str, folder: Path) -> None:
        with self._lock:
            self._folders.insert(0, ("/" + url_prefix.strip("/"), folder.resolve()))

    def lookup(self, path: str) -> bytes | None:
        with self._lock:
            if path in self._files:
                return self._files[path]
            folders = list(self._folders)
        for prefix, folder in folders:
            if not path.startswith(prefix.rstrip("/") + "/"):
                continue
            candidate = (folder / path[len(prefix.rstrip("/")) + 1 :]).resolve()
            # Never serve outside the folder (``..`` in a URL).
            if candidate.is_relative_to(folder) and candidate.is_file():
                return candidate.read_bytes()
        return None

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture(scope="session")
def chromium_browser():
    """One headless system Chromium for the whole session (a Playwright ``Browser``)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")
    executable = chromium_executable()
    if executable is None:
        pytest.skip("chromium not found (Debian package `chromium`; .ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_context(chromium_browser) -> Iterator:
    """A fresh browser context (own storage and cache) for one test."""
    context = chromium_browser.new_context()
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    """A running :class:`LoopbackServer` for one test."""
    with LoopbackServer() as server:
        yield server
