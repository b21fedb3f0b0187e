"""Containment: the one place that decides whether a path may be touched.

Everything a build reads back from disk about itself — ``.sparky/journal.json``,
``.sparky/outputs.json``, the stage cache, ``sparky.lock`` and ``sparky-generated/`` —
is untrusted input: a cloned project can ship any of it. So every path taken from
there, and every folder the build writes into, passes through this module first:

* :func:`resolve` never raises on a symlink loop: it reports it as bad input.
* :func:`require_inside` — the path, *after resolving symlinks*, lies inside a root.
* :func:`bookkeeping_dir` — ``.sparky/`` and ``sparky-generated/`` may not be symlinks
  (or sit below symlinks) that lead outside the project.
* :func:`output_path` — a file the build writes, replaces or deletes: inside the
  project once its folder's symlinks are resolved (the file itself is replaced or
  unlinked, never followed), never in ``.sparky/`` nor the manifest.
* :func:`record_path` — a path named by ``outputs.json``: relative, no ``..``,
  inside the project, and never the lock, the store or the manifest.

A refusal is an :class:`~sparky_assets.errors.InvalidInput` (exit code 2) naming the
path and where it leads.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path, PurePosixPath

from ..errors import Diagnostic, InvalidInput

STATE_DIR = ".sparky"
STORE_DIR = "sparky-generated"
LOCK_NAME = "sparky.lock"
MANIFEST_NAME = "sparky.toml"


def resolve(path: Path, *, what: str = "path", file: str | None = None) -> Path:
    """``path`` with every symlink resolved (it need not exist); a symlink loop is bad input."""
    try:
        return real_path(path)
    except (OSError, RuntimeError, ValueError) as exc:  # ELOOP, "Symlink loop", embedded NUL
        raise InvalidInput(
            Diagnostic(
                f"{what} {path} cannot be resolved: {_reason(exc)}",
                file=file or str(path),
                hint="remove the symlink loop" if "loop" in str(exc).lower() else None,
            )
        ) from None


def real_path(path: Path) -> Path:
    """``os.path.realpath`` that raises ``OSError`` (ELOOP) on a symlink loop instead of
    returning the loop's own path; a missing tail is fine."""
    try:
        return Path(os.path.realpath(path, strict=True))
    except (FileNotFoundError, NotADirectoryError):
        return Path(os.path.realpath(path, strict=False))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def is_inside(root: Path, path: Path) -> bool:
    """``path`` (resolved) equals or lies below ``root`` (resolved). False for loops."""
    try:
        real = real_path(path)
        real_root = real_path(root)
    except (OSError, RuntimeError, ValueError):
        return False
    return real == real_root or real_root in real.parents


def require_inside(root: Path, path: Path, *, what: str, file: str | None = None) -> Path:
    """The resolved ``path``; refused (exit 2) when it leads outside ``root``."""
    real = resolve(path, what=what, file=file)
    real_root = resolve(root, what="project root")
    if real != real_root and real_root not in real.parents:
        raise InvalidInput(
            Diagnostic(
                f"{what} {_shown(root, path)} leads outside the project (to {real})",
                file=file or str(path),
                hint="remove the symlink (or the entry naming it); sparky-assets never writes outside the project",
            )
        )
    return real


def _shown(root: Path, path: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def bookkeeping_dir(root: Path, name: str) -> Path:
    """``root/name`` (``.sparky`` or ``sparky-generated``), refused when it or a folder
    above it is a symlink leading outside the project."""
    folder = root / name
    require_inside(root, folder, what="bookkeeping folder")
    return folder


def output_path(root: Path, path: Path, *, what: str = "output", file: str | None = None) -> Path:
    """``path`` if the build may create, replace or delete it: its folder resolves
    inside ``root``, and it is neither under ``.sparky/`` nor the manifest itself."""
    return output_paths(root, [path], what=what, file=file)[0]


def output_paths(
    root: Path,
    paths: list[Path],
    *,
    what: str = "output",
    file: str | None = None,
    folders: dict[Path, Path] | None = None,
) -> list[Path]:
    """:func:`output_path` of each of ``paths``, with the root and every distinct folder
    resolved once (a build switching thousands of files over into a few folders).
    ``folders``: resolved folders to share between calls (one pass over a record)."""
    folders = {} if folders is None else folders
    real_root = folders.get(root)
    if real_root is None:
        real_root = folders[root] = resolve(root, what="project root")
    checked = []
    for path in paths:
        path = Path(path)
        if not path.is_absolute():
            path = root / path
        real_folder = folders.get(path.parent)
        if real_folder is None:
            real_folder = folders[path.parent] = require_inside(
                root, path.parent, what="output folder" if what == "output" else f"folder of {what}", file=file
            )
        real = real_folder / path.name
        rel = real.relative_to(real_root)
        if (
            not rel.parts
            or rel.parts[0] == STATE_DIR
            or rel.as_posix() == MANIFEST_NAME
            or path.name in ("", ".", "..")
        ):
            raise InvalidInput(
                Diagnostic(
                    f"{what} {rel.as_posix() or '.'} is not a place sparky-assets writes to",
                    file=file or str(path),
                    hint="delete .sparky/ (it is rebuilt) if it came with the project",
                )
            )
        checked.append(path)
    return checked


def record_path(root: Path, rel: object, *, file: str, folders: dict[Path, Path] | None = None) -> Path | None:
    """The absolute path an ``outputs.json`` entry names, or None when the entry is not a
    clean relative path inside the project outside the lock, the store and ``.sparky/``.
    ``folders``: as for :func:`output_paths`."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        return None
    pure = PurePosixPath(rel)
    if pure.is_absolute() or any(p in ("..", ".", "") for p in rel.split("/")):
        return None
    if pure.parts[0] in (STATE_DIR, STORE_DIR) or rel in (LOCK_NAME, MANIFEST_NAME):
        return None
    try:
        return output_paths(root, [root / rel], file=file, folders=folders)[0]
    except InvalidInput:
        return None


def journal_path(root: Path, value: object, *, file: str) -> Path:
    """A path a journal names (relative to ``root`` or absolute), checked like an output."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidInput(Diagnostic(f"journal entry {value!r} is not a path", file=file))
    path = Path(value)
    return output_path(root, path if path.is_absolute() else root / path, what="journal entry", file=file)


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; raises
    ``ValueError`` otherwise (a planted FIFO would block, a planted huge file exhaust
    memory) and ``FileNotFoundError`` when it is missing."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{path.name} is {st.st_size} bytes, more than the {limit} expected at most")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ValueError(f"{path.name} grew past {limit} bytes while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def inputs_in_outputs(manifest, files) -> list[Diagnostic]:
    """Diagnostics for every file the build read (``files``: its read record — source
    images, models, LoRA weights, a plugin's files) that lies in an output folder — the
    sheets folder or an export target's — where a build would overwrite or delete it.
    Keys locate the output folder's setting."""
    roots: list[tuple[Path, str]] = [(manifest.out / "sheets", "project.out")]
    roots += [(e.root, f"export.{e.target}") for e in manifest.exports]
    real_roots = []
    for folder, key in roots:
        try:
            real_roots.append((real_path(folder), key))
        except OSError:
            continue
    problems = []
    for file in sorted(files):
        try:
            real = real_path(Path(file))
        except OSError:
            continue
        for folder, key in real_roots:
            if real == folder or folder in real.parents:
                problems.append(
                    Diagnostic(
                        f"output folder {_shown(manifest.root, folder)} holds an input of the build "
                        f"({_shown(manifest.root, real)})",
                        key=key,
                        hint="outputs would overwrite inputs: keep sources, models and palettes outside it",
                    )
                )
    return problems


def discard(path: Path) -> None:
    """Remove ``path`` whatever it is — a file, a symlink (never followed), a FIFO, a
    folder — ignoring errors: for bookkeeping that is corrupt or was planted."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def open_state_file(path: Path) -> int:
    """A read-write descriptor on the regular file ``path`` in ``.sparky/``, created if
    needed. A symlink or anything but a regular file there is removed first: writing
    through a planted link would write outside the project."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
        discard(path)
    return os.open(path, flags, 0o644)
