"""The page's files: the package's ``static/`` folder, and the static report.

The same ``index.html`` serves both ways. Opened from disk it loads ``data.js`` (the
document as ``window.SPARKY_PREVIEW = …``) from its own folder — a plain ``<script>``,
since a page opened from ``file://`` may not ``fetch()`` its neighbours. Served, the
server swaps the ``<!-- sparky:data -->`` block for a ``<meta name="sparky-token">`` and
the page takes its document from the event stream instead (:mod:`.server`).
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..errors import Diagnostic, InvalidInput
from ..pipeline.fsutil import atomic_write
from ..pipeline.safepath import output_path

PAGE_FILES = ("index.html", "preview.js", "preview.css")
DATA_FILE = "data.js"
REPORT_DIR = "report"
ASSET_DIR = "assets"
ASSET_NAME = re.compile(r"assets/[0-9a-f]{16}\.png")
"""A large image the page loads next to itself (see :func:`~.document.collect`)."""
_DATA_BLOCK = re.compile(r"<!-- sparky:data -->.*?<!-- /sparky:data -->", re.S)


def page_file(name: str) -> bytes:
    """One of :data:`PAGE_FILES`, as shipped in the wheel."""
    if name not in PAGE_FILES:
        raise KeyError(name)
    return (files(__package__) / "static" / name).read_bytes()


def served_index(token: str) -> bytes:
    """``index.html`` for the server: the data script replaced by the request token."""
    html = page_file("index.html").decode()
    meta = f'<meta name="sparky-token" content="{token}">'
    return _DATA_BLOCK.sub(meta, html, count=1).encode()


def data_script(document: dict[str, Any]) -> bytes:
    return b"window.SPARKY_PREVIEW = " + json.dumps(document, sort_keys=True).encode() + b";\n"


def write_report(
    folder: Path,
    document: dict[str, Any],
    *,
    owned_outputs: set[Path] = frozenset(),
    root: Path | None = None,
    assets: dict[str, bytes] | None = None,
) -> list[Path]:
    """Write the static report into ``folder``; returns the files written. Refuses a
    folder that holds a build output (``owned_outputs``): the report must not clobber one;
    with the project ``root``, also a folder that symlinks out of it. ``assets`` (names
    ``assets/<hash>.png`` → bytes, from :func:`~.document.collect`) go next to the page;
    asset files of earlier reports that this one no longer names are removed."""
    folder = Path(folder)
    clash = sorted(p for p in owned_outputs if p == folder or folder in p.parents)
    if clash:
        raise InvalidInput(
            Diagnostic(
                f"the report folder {folder} holds build outputs ({clash[0].name}, …)",
                stage="export",
                hint="point that export somewhere else; the report is written to <project.out>/report",
            )
        )
    files = {name: page_file(name) for name in PAGE_FILES}
    files[DATA_FILE] = data_script(document)
    for name, data in sorted((assets or {}).items()):
        if not ASSET_NAME.fullmatch(name):
            raise ValueError(f"not an asset name: {name!r}")
        files[name] = data
    written = []
    for name, data in files.items():
        path = output_path(root, folder / name, what="report file") if root is not None else folder / name
        atomic_write(path, data, fsync=False)
        written.append(path)
    stale = folder / ASSET_DIR
    if stale.is_dir() and not stale.is_symlink():
        for old in stale.iterdir():
            if f"{ASSET_DIR}/{old.name}" not in files and ASSET_NAME.fullmatch(f"{ASSET_DIR}/{old.name}"):
                old.unlink(missing_ok=True)
    return written
