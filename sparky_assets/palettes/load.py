"""Resolve a manifest ``palette`` value to a :class:`Palette`.

A value is either a built-in palette name (case-insensitive, see
:data:`BUILTIN_PALETTES`) or a path to a palette file relative to the project root.
A value with a path separator or a file extension is a path; anything else is a name.

Invariants: a path never resolves outside the project root (``..``, absolute paths and
symlinks that lead out are refused), so a manifest cannot read arbitrary files; the
result depends only on the value and the bytes of the file it names.
"""

from __future__ import annotations

from pathlib import Path, PurePath

from ..errors import suggest
from ..reads import ReadContext, ensure_reads
from .builtin import BUILTIN_PALETTES
from .model import Palette
from .readers import READERS, palette_error, read_palette_file

STAGE = "palette"


def builtin_names() -> list[str]:
    """The built-in palette names, sorted."""
    return sorted(BUILTIN_PALETTES)


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or PurePath(value).suffix != ""


def _resolve_inside_root(value: str, root: Path) -> Path | None:
    """The resolved file path, or None when it would leave ``root``."""
    root_resolved = root.resolve()
    try:
        candidate = (root_resolved / value).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte: refused like a path that leads out
        return None
    try:
        candidate.relative_to(root_resolved)
    except ValueError:
        return None
    return candidate


def load_palette(
    value: str,
    root: Path,
    *,
    manifest_file: str | None = None,
    key: str | None = None,
    reads: ReadContext | None = None,
) -> Palette:
    """The palette named by ``value``: a built-in name or a file under ``root``.

    ``manifest_file`` and ``key`` locate the value in the manifest for errors about
    the value itself (unknown name, bad extension, missing file, path escaping the
    root); errors inside a palette file name that file, line and column. A file is
    read through ``reads`` (recorded there, found or not).
    """
    text = value.strip()
    if not text:
        raise palette_error(
            "empty palette value",
            file=manifest_file,
            key=key,
            expected="a built-in palette name or a .hex/.gpl/.pal/.png file",
            found="''",
        )
    if not _looks_like_path(text):
        palette = BUILTIN_PALETTES.get(text.lower())
        if palette is not None:
            return palette
        names = builtin_names()
        raise palette_error(
            f"unknown palette '{text}'",
            file=manifest_file,
            key=key,
            expected=f"a built-in palette ({', '.join(names)}) or a palette file path",
            hint=suggest(text.lower(), names),
        )

    suffix = PurePath(text).suffix.lower()
    if suffix not in READERS:
        raise palette_error(
            f"unsupported palette file type for '{text}'",
            file=manifest_file,
            key=key,
            expected=f"one of {' '.join(READERS)}",
            found=repr(PurePath(text).suffix),
        )
    path = _resolve_inside_root(text, root)
    if path is None:
        raise palette_error(
            f"palette path '{text}' leads outside the project root (or is a symlink loop)",
            file=manifest_file,
            key=key,
            expected="a path inside the project root",
            found=repr(text),
            hint="copy the palette into the project (symlinks that lead out are refused too)",
        )
    reads = ensure_reads(reads)
    if not reads.is_file(path):
        raise palette_error(
            f"palette file '{text}' not found" if not path.exists() else f"palette path '{text}' is not a file",
            file=manifest_file,
            key=key,
            hint="paths are relative to the project root",
        )
    display = path.relative_to(root.resolve()).as_posix()
    return read_palette_file(path, display_name=display, reads=reads)
