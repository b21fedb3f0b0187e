"""The ``sparky-assets`` command line: thin click commands, lazy imports.

Each command parses its options, calls into the package, and prints. Errors are
:class:`~sparky_assets.errors.SparkyError` s; :func:`main` prints every diagnostic and
exits with its documented code (0 ok, 1 build step failed, 2 invalid input,
3 project locked by another build).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import __version__
from ..errors import EXIT_BUILD_FAILED, SparkyError, raised_by_an_interrupt
from ..hotreload.protocol import DEFAULT_ENDPOINT


def _metrics_options(command):
    """``--metrics-port``/``--metrics-host`` (both commands); see docs/metrics.md."""
    command = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address of the metrics endpoint (loopback unless --allow-remote).",
    )(command)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port; needs the [metrics] extra).",
    )(command)


def _start_metrics(obj, project_path: Path, command: str, host: str, port: int | None, allow_remote: bool):
    """A :class:`~sparky_assets.metrics.BuildMetrics`, serving when ``port`` is given."""
    from ..manifest.load import find_manifest
    from ..metrics import BuildMetrics

    try:
        project = find_manifest(project_path).parent.resolve().name
    except SparkyError:
        project = ""  # the build reports the missing manifest itself
    metrics = BuildMetrics(project, command)
    if port is not None:
        url = metrics.serve(host, port, allow_remote)
        if allow_remote and not _loopback(host):
            obj.echo(f"warning: --allow-remote: metrics are readable by anyone who can reach {host}", err=True)
        obj.echo(f"metrics at {url}", err=True)
    return metrics


def _loopback(host: str) -> bool:
    from ..hotreload.publisher import is_loopback_endpoint

    return is_loopback_endpoint(f"tcp://{'[' + host + ']' if ':' in host else host}:0")


class _Ctx:
    def __init__(self, verbosity: int):
        self.verbosity = verbosity

    def echo(self, text: str, level: int = 0, err: bool = False) -> None:
        if self.verbosity >= level:
            click.echo(text, err=err)


def print_error(error: SparkyError) -> None:
    for d in error.diagnostics:
        click.secho("error: ", fg="red", bold=True, nl=False, err=True)
        click.echo(d.format(), err=True)
    if len(error.diagnostics) > 1:
        click.echo(f"{len(error.diagnostics)} problems found.", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sparky-assets")
@click.option("-q", "--quiet", count=True, help="Print less (errors only).")
@click.option("-v", "--verbose", count=True, help="Print more (every file written).")
@click.pass_context
def cli(ctx: click.Context, quiet: int, verbose: int) -> None:
    """Compile a sprite manifest (sparky.toml) into palette-locked pixel-art atlases
    with Bevy, Godot, TexturePacker and Aseprite metadata.

    Exit codes: 0 ok, 1 a build step failed, 2 invalid input, 3 another build holds the project.
    """
    ctx.obj = _Ctx(1 + verbose - quiet)


@cli.command()
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option(
    "--frozen",
    is_flag=True,
    help="Use only locked generated art (sparky.lock); fail if anything would need generating.",
)
@click.option("--force", is_flag=True, help="Rebuild everything, ignoring the cache.")
@click.option("--dry-run", is_flag=True, help="Print what a build would do, do nothing.")
@click.option("--only", multiple=True, metavar="NAME", help="Build only these sprites/atlases (repeatable).")
@click.option(
    "--regenerate", multiple=True, metavar="SPRITE", help="Generate these sprites again even if locked (repeatable)."
)
@click.option(
    "--report",
    "write_report",
    is_flag=True,
    help="Also write the preview page as static files to <project.out>/report/ (open index.html from disk).",
)
@click.option("--fast-png", is_flag=True, help="Encode PNGs quickly (a few % larger) instead of as small as possible.")
@_metrics_options
@click.option(
    "--metrics-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="After the build (also a failed one), write its Prometheus metrics to this file (node-exporter's textfile collector).",
)
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --metrics-host.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Run the CPU stages in this many local processes (default: the cores; 1: in this process).",
)
@click.option(
    "--executor",
    "executor_kind",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where generation, processing and packing run: local processes (--jobs) or a Ray cluster (extra [ray]).",
)
@click.option(
    "--ray-address",
    metavar="auto|HOST:PORT|ray://HOST:PORT",
    default=None,
    help="The Ray cluster to use with --executor ray (default: RAY_ADDRESS, else a Ray started on this machine).",
)
@click.pass_obj
def build(
    obj: _Ctx,
    path: Path,
    frozen: bool,
    force: bool,
    dry_run: bool,
    only: tuple[str, ...],
    regenerate: tuple[str, ...],
    write_report: bool,
    fast_png: bool,
    metrics_port: int | None,
    metrics_host: str,
    metrics_file: Path | None,
    allow_remote: bool,
    jobs: int | None,
    executor_kind: str,
    ray_address: str | None,
) -> None:
    """Build the project at PATH (a sparky.toml or a folder holding one).

    Generation, processing, packing and PNG encoding run in --jobs local processes, or on
    a Ray cluster with --executor ray (docs/cluster.md); the outputs are the same bytes.

    With --metrics-port the metrics are served while the build runs (progress, GPU
    memory; the final counts just before exit): for long builds watched live. A CI job
    wants --metrics-file: the process is gone before the next scrape, the file stays."""
    from ..metrics import chain
    from ..pipeline.engine import Builder, BuildOptions
    from ..pipeline.executor import make_executor

    if ray_address is not None and executor_kind != "ray":
        raise click.UsageError("--ray-address needs --executor ray")
    if jobs is not None and executor_kind == "ray":
        raise click.UsageError("--jobs sets local processes; with --executor ray the cluster decides")
    progress = None

    def tell(text: str) -> None:  # the executor's news (a cluster connected): above the progress line
        if progress is not None:
            progress.message(text)
        else:
            obj.echo(text, 1, err=True)

    executor = make_executor(executor_kind, jobs, ray_address or os.environ.get("RAY_ADDRESS"), echo=tell)
    metrics = None
    if metrics_port is not None or metrics_file is not None:
        metrics = _start_metrics(obj, path, "build", metrics_host, metrics_port, allow_remote)
    if obj.verbosity >= 1 and sys.stderr.isatty() and not dry_run:
        from .progress import ProgressLine

        progress = ProgressLine(sys.stderr, lambda: f" [{executor.describe()}]" if executor.parallel else "")
    builder = Builder(path, on_progress=chain(progress, metrics.on_progress if metrics else None), executor=executor)
    built = False
    try:
        try:
            report = builder.build(
                BuildOptions(
                    frozen=frozen, force=force, dry_run=dry_run, only=only, regenerate=regenerate, fast_png=fast_png
                )
            )
        finally:
            if progress:
                progress.close()
        if metrics is not None and not dry_run:
            metrics.record_build(report, builder.last_project)
        built = True
    except Exception:
        if metrics is not None:
            metrics.record_failure()
        raise
    finally:
        try:
            builder.close()
        finally:
            if metrics is not None:
                _finish_metrics(obj, metrics, metrics_file, built)
    obj.echo(report.summary(), level=1)
    for w in report.written:
        obj.echo(f"  wrote {w}", level=2)
    for r in report.removed:
        obj.echo(f"  removed {r}", level=2)
    if not dry_run:
        summary = _record_build(path, report)
        if write_report:
            from ..preview.document import collect
            from ..preview.site import REPORT_DIR
            from ..preview.site import write_report as write_site

            manifest = builder.last_project.manifest
            outputs = {manifest.root / rel for rel in _ledger(manifest.root)}
            assets: dict[str, bytes] = {}
            document = collect(manifest.root, summary, assets=assets)
            written = write_site(
                manifest.out / REPORT_DIR, document, owned_outputs=outputs, root=manifest.root, assets=assets
            )
            obj.echo(f"report: {written[0]}")


def _finish_metrics(obj: _Ctx, metrics, metrics_file: Path | None, built: bool) -> None:
    """Write ``--metrics-file`` and stop serving. A file that cannot be written never
    hides the build's own outcome: after a failed build it is a warning (the build's
    error and exit code stand); after a successful one it is exit 2 naming the file
    (docs/metrics.md). The metrics server stops either way."""
    try:
        if metrics_file is not None:
            metrics.write_textfile(metrics_file)
    except SparkyError as exc:
        if built:
            raise
        for d in exc.diagnostics:
            obj.echo(f"warning: {d.message}", err=True)
    finally:
        metrics.close()


def _ledger(root: Path) -> dict:
    import json

    try:
        return json.loads((root / ".sparky" / "outputs.json").read_text())
    except (OSError, ValueError):
        return {}


def _record_build(path: Path, report) -> dict | None:
    """Keep a successful build's summary in .sparky/ for `preview` (best effort: never
    fails a build; a failed build writes nothing, so `preview` checks the manifest itself)."""
    from ..manifest.load import find_manifest
    from ..preview.document import build_summary, save_summary

    try:
        root = find_manifest(path).parent.resolve()
        summary = build_summary(root, report.project, report)
        save_summary(root, summary)
        return summary
    except (SparkyError, OSError):
        return None


@cli.command()
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.pass_obj
def check(obj: _Ctx, path: Path) -> None:
    """Validate the manifest and every file it refers to, without building."""
    from ..pipeline.engine import check as run_check

    project = run_check(path)
    m = project.manifest
    obj.echo(
        f"{m.path}: ok — {len(m.sprites)} sprites, {len([a for a in m.atlases if not a.implicit])} atlases, "
        f"exports: {', '.join(e.target for e in m.exports) or 'none'}"
    )


@cli.command()
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.pass_obj
def clean(obj: _Ctx, path: Path) -> None:
    """Empty the build cache (.sparky/cache). Outputs, sparky.lock and sparky-generated/ stay."""
    from ..manifest.load import find_manifest
    from ..pipeline.cache import StageCache, cache_dir

    root = find_manifest(path).parent
    removed = StageCache(cache_dir(root)).clear()
    obj.echo(f"removed {removed} cache entries")


@cli.command()
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option(
    "--engine",
    type=click.Choice(["bevy", "godot", "generic"]),
    default="generic",
    show_default=True,
    help="Which engine the starter project is for.",
)
@click.option("--name", default=None, help="Project name (default: the folder's name).")
@click.option(
    "--bevy-sparky",
    "bevy_sparky",
    default=None,
    metavar="PATH|VERSION",
    help="bevy_sparky dependency of a Bevy starter: the crate's folder or a version "
    "(default: this checkout's engine-bridges/bevy, else the released version).",
)
@click.pass_obj
def init(obj: _Ctx, directory: Path, engine: str, name: str | None, bevy_sparky: str | None) -> None:
    """Create a starter project in DIRECTORY that builds and runs as it is.

    godot: sparky.toml, project.godot (pixel-art settings), the sparky_bridge addon
    (enabled, with its autoload) and a main scene playing the hero's walk clip.
    bevy: sparky.toml, a Cargo project depending on bevy_sparky whose main.rs plays the
    clip. generic: sparky.toml with TexturePacker and Aseprite exports. In an existing
    project only missing files and settings are added; nothing is overwritten.
    """
    from ..templates import init_project

    report = init_project(directory, engine, name, bevy_sparky)
    for path in report.created:
        obj.echo(f"  created {path}")
    for setting in report.added_settings:
        obj.echo(f"  added   project.godot {setting}")
    for what, why in report.skipped:
        obj.echo(f"  skipped {what} ({why})")
    for note in report.notes:
        obj.echo(f"  note: {note}")
    obj.echo(f"next: sparky-assets build {directory}")
    if engine == "godot":
        obj.echo(f"then: open {directory}/project.godot in Godot 4 (or `godot --path {directory}`)")
    elif engine == "bevy":
        obj.echo(f"then: cd {directory} && cargo run")


@cli.command()
@click.argument("sprite")
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=None, help="Use this seed instead of a random one.")
@click.pass_obj
def reroll(obj: _Ctx, sprite: str, path: Path, seed: int | None) -> None:
    """Give SPRITE a new seed in sparky.toml (then `build` regenerates it)."""
    from ..manifest.edit import set_sprite_seed

    new_seed, manifest = set_sprite_seed(path, sprite, seed)
    obj.echo(f"{manifest}: sprite '{sprite}' seed = {new_seed}; run `sparky-assets build` to regenerate it")


@cli.command()
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option(
    "--endpoint", default=None, help=f"ZeroMQ endpoint to publish on (default: the manifest's, {DEFAULT_ENDPOINT})."
)
@click.option(
    "--allow-remote", is_flag=True, help="Allow binding a non-loopback address (exposes build events to the network)."
)
@click.option(
    "--debounce-ms",
    default=50,
    show_default=True,
    help="A burst of changes made while a build runs is rebuilt once this long after its last change (a change to an idle watcher is built at once).",
)
@click.option("--preview", "with_preview", is_flag=True, help="Also serve the live preview page (loopback).")
@click.option(
    "--preview-port", default=None, type=int, help="Port of the preview page (implies --preview; default 8765)."
)
@click.option(
    "--fast-png/--small-png",
    default=True,
    show_default=True,
    help="Encode PNGs quickly (edit-time latency) or as small as possible (what `build` does).",
)
@_metrics_options
@click.pass_obj
def watch(
    obj: _Ctx,
    path: Path,
    endpoint: str | None,
    allow_remote: bool,
    debounce_ms: int,
    with_preview: bool,
    preview_port: int | None,
    fast_png: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Build, then rebuild on every change and publish hot-reload messages.

    With --preview, the same process serves the preview page, which updates after every
    build (Server-Sent Events) and shows a failed build's errors. With --metrics-port,
    Prometheus metrics (builds, durations, cache, messages, subscribers) at /metrics."""
    from ..watch.session import run_watch

    metrics = None
    if metrics_port is not None:
        metrics = _start_metrics(obj, path, "watch", metrics_host, metrics_port, allow_remote)
    server = None
    if with_preview or preview_port is not None:
        from ..manifest.load import find_manifest
        from ..preview.server import DEFAULT_PORT, PreviewServer

        root = find_manifest(path).parent
        server = PreviewServer(root, port=DEFAULT_PORT if preview_port is None else preview_port, echo=obj.echo)
        server.start()
        obj.echo(f"preview at {server.url}")
    try:
        run_watch(
            path,
            endpoint=endpoint,
            allow_remote=allow_remote,
            debounce_s=debounce_ms / 1000,
            echo=obj.echo,
            on_build=server.on_build if server else None,
            fast_png=fast_png,
            metrics=metrics,
        )
    finally:
        if server is not None:
            server.close()
        if metrics is not None:
            metrics.close()


@cli.command()
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to serve on (loopback unless --allow-remote)."
)
@click.option("--port", default=8765, show_default=True, help="Port to serve on (0: any free port).")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --host (anyone who can reach it sees the build and can reroll).",
)
@click.pass_obj
def preview(obj: _Ctx, path: Path, host: str, port: int, allow_remote: bool) -> None:
    """Serve a page showing the project's last build: atlases, animations, palettes, the summary.

    Builds first when the project has never been built. Rerolling a sprite from the page
    rebuilds it here; for live updates on every save use `watch --preview`."""
    import signal
    import threading

    from ..manifest.load import find_manifest
    from ..preview.server import PreviewServer

    root = find_manifest(path).parent
    server = PreviewServer(
        root, host=host, port=port, allow_remote=allow_remote, rebuild_after_reroll=True, echo=obj.echo
    )
    if allow_remote:
        obj.echo(f"warning: --allow-remote: anyone who can reach {host}:{server.port} sees the build and can reroll")
    if not (root / ".sparky" / "outputs.json").exists():
        obj.echo("no build yet: building first")
        server.rebuild()
    server.start()
    obj.echo(f"preview of {root / 'sparky.toml'} at {server.url} (Ctrl-C to stop)")

    def terminate(signum, frame):  # SIGTERM stops like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        obj.echo("stopping")
    finally:
        server.close()
        signal.signal(signal.SIGTERM, previous)


@cli.command()
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True, help="Publisher to subscribe to.")
@click.option("--json", "json_lines", is_flag=True, help="Print each message as a JSON line.")
def listen(endpoint: str, json_lines: bool) -> None:
    """Print the hot-reload messages a running `watch` publishes."""
    from ..hotreload.listener import run_listen

    code = run_listen(endpoint, json_lines=json_lines)
    if code:
        raise SystemExit(code)


class _ListByDefault(click.Group):
    """``models [PATH]`` lists; ``models fetch ...`` runs the subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_ListByDefault)
def models() -> None:
    """The models and LoRAs the manifest uses: `models [PATH] [--json]` lists them (path,
    architecture, size, fingerprint, present or missing, what --frozen needs);
    `models fetch [PATH] [--only NAME]` downloads missing hub models (the only command
    that uses the network)."""


@models.command("list")
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
def models_list(path: Path, as_json: bool) -> None:
    """List every model file the manifest at PATH uses (reads headers only)."""
    import json

    from ..pipeline.models import inventory

    found = inventory(path)
    click.echo(json.dumps(found.to_json(), indent=2) if as_json else found.text())


@models.command("fetch")
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option("--only", metavar="NAME", default=None, help="Fetch only this model (its reference in the manifest).")
def models_fetch(path: Path, only: str | None) -> None:
    """Download the manifest's missing hub models into the project's models/ folder."""
    from ..pipeline.models import fetch

    fetch(path, only=only, echo=click.echo)


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option(
    "--size", nargs=2, type=click.IntRange(min=1), metavar="W H", help="Sprite size in cells (fits exactly that grid)."
)
@click.option(
    "--palette", "palette_name", metavar="P", help="Built-in palette name or .hex/.gpl/.pal/.png file to lock to."
)
@click.option("--background", default="auto", show_default=True, help='"auto", "none" or a key colour "#rrggbb".')
@click.option("--tolerance", default=40, show_default=True, type=click.IntRange(0, 255), help="Background tolerance.")
@click.pass_obj
def pixelize(
    obj: _Ctx,
    source: Path,
    output: Path,
    size: tuple[int, int] | None,
    palette_name: str | None,
    background: str,
    tolerance: int,
) -> None:
    """Turn one high-resolution "fake pixel art" image into real pixel art (one pixel per cell)."""
    from .pixelize_cmd import run_pixelize

    obj.echo(run_pixelize(source, output, size or None, palette_name, background, tolerance))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and, as a script, exits with) the documented exit code."""
    try:
        cli.main(args=argv, prog_name="sparky-assets", standalone_mode=False)
    except SparkyError as exc:
        if raised_by_an_interrupt(exc):
            return 130
        print_error(exc)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 - an internal error is a failed build, with its traceback
        if raised_by_an_interrupt(exc):
            return 130
        if isinstance(exc, OSError):
            click.secho("error: ", fg="red", bold=True, nl=False, err=True)
            click.echo(f"{exc}", err=True)
            return EXIT_BUILD_FAILED
        import traceback

        traceback.print_exc()
        click.echo("internal error: please report it with the traceback above", err=True)
        return EXIT_BUILD_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
