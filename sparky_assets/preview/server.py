"""The preview server: the static page, its document over Server-Sent Events, rerolls.

One process, one mechanism: whoever runs builds (``watch --preview``: the watch session's
``on_build`` hook; ``preview``: the server itself, after a reroll) hands each finished
build to :meth:`PreviewServer.on_build`. The server re-reads the project's outputs into a
document (:func:`~.document.collect`) and sends every open page an ``update`` event
with only the entries that changed; a failed build keeps the last good document and
sends its errors. A page that connects gets the whole document as a ``snapshot`` event.

Security: the server binds loopback unless ``allow_remote`` (the rule ``watch`` applies
to its ZeroMQ endpoint); requests naming another ``Host`` are refused (DNS rebinding);
the page's only write, ``POST /api/reroll``, needs the per-process token that is
embedded in the served page (readable only by same-origin script), in an
``X-Sparky-Token`` header (which a cross-origin page cannot send without a CORS
preflight this server never grants), and a matching ``Origin`` when the browser sends one.
Nothing on disk is served: the page's files come from the package, images are inlined
or (raw model renders) served from memory under content-addressed ``/assets/`` names.
"""

from __future__ import annotations

import hmac
import json
import queue
import secrets
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import Diagnostic, InvalidInput, SparkyError
from ..hotreload.publisher import is_loopback_endpoint
from .document import build_summary, collect, diff, load_summary, save_summary
from .site import ASSET_NAME, PAGE_FILES, page_file, served_index

DEFAULT_PORT = 8765
MAX_BODY = 4096
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], preview: PreviewServer):
        self.preview = preview
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class PreviewServer:
    """Serves the preview of the project in ``root`` (the folder holding ``sparky.toml``).

    ``rebuild_after_reroll``: run the build itself after a reroll (``preview``); under
    ``watch`` the edit of ``sparky.toml`` already triggers one."""

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        allow_remote: bool = False,
        rebuild_after_reroll: bool = False,
        heartbeat_s: float = 15.0,
        echo: Callable[..., None] = lambda *a, **k: None,
    ):
        if not is_loopback_endpoint(f"tcp://{host}:{port}") and not allow_remote:
            raise InvalidInput(
                Diagnostic(
                    f"refusing to serve the preview on {host!r}: expected 127.0.0.1, localhost or ::1",
                    hint="pass --allow-remote to expose it (anyone who can reach it sees the build and can reroll)",
                )
            )
        self.root = Path(root).resolve()
        self.allow_remote = allow_remote
        self.rebuild_after_reroll = rebuild_after_reroll
        self.heartbeat_s = heartbeat_s
        self.echo = echo
        self.token = secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._clients: set[queue.Queue] = set()
        self._builder = None
        self._atlas_cache: dict[str, tuple] = {}
        self._assets: dict[str, bytes] = {}
        self._previous_assets: dict[str, bytes] = {}
        """The current document's assets, and the one before's (a page may still show it)."""
        self.document: dict[str, Any] | None = None
        self.builds = 0
        try:
            self.httpd = _Server((host, port), self)
        except OSError as exc:
            raise InvalidInput(
                Diagnostic(
                    f"cannot serve the preview on {host}:{port}: {exc.strerror}",
                    hint="pick another port (preview --port, watch --preview-port)",
                )
            ) from None
        self.host, self.port = host, self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def allowed_host(self, header: str | None) -> bool:
        if self.allow_remote:
            return True
        names = {self.host, "127.0.0.1", "localhost", "[::1]", f"[{self.host}]"}
        return header in {f"{n}:{self.port}" for n in names}

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> PreviewServer:
        """Load the last build from disk and serve on a background thread."""
        if self.document is None:
            self.document = self.last_build()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sparky-preview", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.put(None)
            self._clients.clear()
        if self._thread is not None:  # shutdown() waits for serve_forever, so only once started
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()

    # -- documents ----------------------------------------------------------------

    def last_build(self) -> dict[str, Any]:
        """The document of the last successful build; if the manifest no longer
        validates, with those errors as its summary (a failed build records nothing)."""
        from ..pipeline.engine import check

        document = self._collect(load_summary(self.root))
        try:
            check(self.root)
        except SparkyError as error:
            document["build"] = build_summary(self.root, document["project"], None, error.diagnostics)
        return document

    def _collect(self, summary: dict[str, Any] | None, cache: dict[str, tuple] | None = None) -> dict[str, Any]:
        assets: dict[str, bytes] = {}
        document = collect(self.root, summary, cache, assets)
        with self._lock:
            self._previous_assets, self._assets = self._assets, assets
        return document

    def asset(self, name: str) -> bytes | None:
        with self._lock:
            return self._assets.get(name, self._previous_assets.get(name))

    def subscribe(self) -> queue.Queue:
        client: queue.Queue = queue.Queue()
        with self._lock:
            if self.document is not None:
                client.put(("snapshot", json.dumps(self.document)))
            self._clients.add(client)
        return client

    def unsubscribe(self, client: queue.Queue) -> None:
        with self._lock:
            self._clients.discard(client)

    def publish(self, document: dict[str, Any]) -> None:
        """Show ``document`` on every open page (only what changed is sent)."""
        with self._lock:
            update = json.dumps(diff(self.document, document))
            self.document = document
            self.builds += 1
            for client in self._clients:
                client.put(("update", update))

    def on_build(self, report, diagnostics: list[Diagnostic]) -> None:
        """A build finished: its report, or ``None`` and why it failed. A good build's
        summary is recorded for a later ``preview``; a failed build keeps the last good document."""
        project = report.project if report is not None else (self.document or {}).get("project", self.root.name)
        summary = build_summary(self.root, project, report, diagnostics)
        if report is not None:
            try:  # for a later `preview`; like the CLI, a failed build records nothing
                save_summary(self.root, summary)
            except OSError as exc:
                self.echo(f"warning: cannot record the build summary: {exc}", err=True)
            document = self._collect(summary, self._atlas_cache)
        else:
            document = {**(self.document or self._collect(None)), "build": summary}
        self.publish(document)

    def rebuild(self) -> None:
        """Build the project in this process (``preview`` after a reroll) and publish it."""
        from ..pipeline.engine import Builder, BuildOptions

        with self._build_lock:
            if self._builder is None:
                self._builder = Builder(self.root / "sparky.toml")
            try:
                report = self._builder.build(BuildOptions())
            except SparkyError as error:
                self.on_build(None, error.diagnostics)
            except Exception as error:  # noqa: BLE001 - the server outlives a build bug, which the page shows
                self.on_build(None, [Diagnostic(f"internal error: {type(error).__name__}: {error}", stage="build")])
            else:
                self.on_build(report, [])

    def reroll(self, sprite: str) -> int:
        """Give ``sprite`` a new seed in ``sparky.toml``; rebuild if nobody else will."""
        from ..manifest.edit import set_sprite_seed

        known = {s["name"]: s for s in (self.document or {}).get("sprites", [])}
        if sprite in known and not known[sprite]["rerollable"]:
            raise InvalidInput(
                Diagnostic(
                    f"sprite '{sprite}' is not generated (generator {known[sprite]['generator']}): nothing to reroll",
                    sprite=sprite,
                )
            )
        seed, _ = set_sprite_seed(self.root / "sparky.toml", sprite)
        self.echo(f"reroll: sprite '{sprite}' seed = {seed}")
        if self.rebuild_after_reroll:
            threading.Thread(target=self.rebuild, name="sparky-preview-build", daemon=True).start()
        return seed


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "sparky-preview"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal is the watch log; requests are not news

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: dict[str, Any]) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _host_ok(self) -> bool:
        if self.server.preview.allowed_host(self.headers.get("Host")):
            return True
        self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unexpected Host header"})
        return False

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]
        preview = self.server.preview
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, served_index(preview.token), _TYPES[".html"], {"Content-Security-Policy": CSP})
        elif path.lstrip("/") in PAGE_FILES:
            name = path.lstrip("/")
            self._send(HTTPStatus.OK, page_file(name), _TYPES[Path(name).suffix])
        elif ASSET_NAME.fullmatch(path.lstrip("/")) and (data := preview.asset(path.lstrip("/"))) is not None:
            self._send(HTTPStatus.OK, data, "image/png")
        elif path == "/events":
            self._events()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    do_HEAD = do_GET

    def _events(self) -> None:
        preview = self.server.preview
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        client = preview.subscribe()
        try:
            while True:
                try:
                    item = client.get(timeout=preview.heartbeat_s)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    continue
                if item is None:
                    break
                kind, data = item
                self.wfile.write(f"event: {kind}\ndata: {data}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            preview.unsubscribe(client)

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        preview = self.server.preview
        if self.path != "/api/reroll":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path}"})
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host')}":
            self._json(HTTPStatus.FORBIDDEN, {"error": "cross-origin request refused"})
            return
        if not hmac.compare_digest(self.headers.get("X-Sparky-Token", ""), preview.token):
            self._json(HTTPStatus.FORBIDDEN, {"error": "missing or wrong X-Sparky-Token"})
            return
        if self.headers.get_content_type() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "expected application/json"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"expected a JSON body of 1..{MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            body = None
        sprite = body.get("sprite") if isinstance(body, dict) else None
        if not isinstance(sprite, str):
            self._json(HTTPStatus.BAD_REQUEST, {"error": 'expected {"sprite": "<name>"}'})
            return
        try:
            seed = preview.reroll(sprite)
        except SparkyError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "; ".join(d.format() for d in error.diagnostics)})
            return
        self._json(HTTPStatus.ACCEPTED, {"sprite": sprite, "seed": seed})
