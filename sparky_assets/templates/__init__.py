"""``sparky-assets init``: copy a hand-written starter project, or add its missing parts to an existing one.

The starters are real projects in the repository's top-level ``templates/`` folder
(``godot/``, ``bevy/``, ``generic/``), shipped in the wheel as ``sparky_assets/templates/
starters/`` (``setup.py`` copies them at build time). A starter is copied file by file;
the only edits are the tokens ``{{project_name}}``, ``{{crate_name}}`` and
``{{bevy_sparky_dependency}}`` in text files.

Invariants:
- Never overwrites: an existing file is skipped and reported. In an existing Godot project
  the only change to a present file is *adding* missing ``project.godot`` settings (the
  ``SparkyBridge`` autoload, the enabled plugin, pixel-art filtering and snapping); values
  already set are left alone and reported.
- Everything written stays inside the target folder; writes are atomic (temp + rename).
- The Godot starter's ``addons/sparky_bridge`` is a copy of ``engine-bridges/godot/addons/
  sparky_bridge`` (tests keep the copies equal).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Diagnostic, InvalidInput
from ..manifest.schema import MANIFEST_NAME

ENGINES = ("godot", "bevy", "generic")
TEXT_SUFFIXES = {".toml", ".godot", ".md", ".rs"}
BEVY_SPARKY_VERSION = "0.1.0"
PLUGIN_CFG = "res://addons/sparky_bridge/plugin.cfg"
AUTOLOAD_NAME = "SparkyBridge"
AUTOLOAD_VALUE = '"*res://addons/sparky_bridge/runtime.gd"'
_VERSION_REQ = re.compile(r"^[=^~<>]*\s*\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?$")

# Settings the Godot starter needs, added to an existing project.godot when missing:
# (section, key, value).
GODOT_SETTINGS = (
    ("autoload", AUTOLOAD_NAME, AUTOLOAD_VALUE),
    ("rendering", "textures/canvas_textures/default_texture_filter", "0"),
    ("rendering", "2d/snap/snap_2d_transforms_to_pixel", "true"),
    ("rendering", "2d/snap/snap_2d_vertices_to_pixel", "true"),
)


def templates_root() -> Path:
    """The starters: packaged beside this module in a wheel, else the checkout's ``templates/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "starters", here.parents[1] / "templates"):
        if (candidate / "godot" / MANIFEST_NAME).is_file():
            return candidate
    raise FileNotFoundError("the starter templates are missing from this installation (templates/)")


def checkout_bevy_crate() -> Path | None:
    """``engine-bridges/bevy`` when sparky-assets runs from a source checkout."""
    crate = Path(__file__).resolve().parents[2] / "engine-bridges" / "bevy"
    return crate if (crate / "Cargo.toml").is_file() else None


@dataclass
class InitReport:
    """What ``init`` did: files created, files (or settings) left as they were, settings added."""

    root: Path
    engine: str
    created: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    added_settings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _escape(text: str) -> str:
    """Content of a double-quoted string in TOML, Godot's project.godot and Rust alike."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}" if char not in "\t" else "\\t")
        else:
            out.append(char)
    return "".join(out)


def crate_name(name: str) -> str:
    """A valid Cargo package name from a project name (``My Game!`` → ``my_game``)."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "game"
    return "game_" + cleaned if cleaned[0].isdigit() else cleaned


def bevy_sparky_dependency(spec: str | None, project: Path) -> str:
    """The TOML value for the ``bevy_sparky`` dependency.

    ``spec`` is a folder holding bevy_sparky's ``Cargo.toml`` (a path dependency, written
    relative to the project when possible) or a version requirement (``0.1``). None: the
    checkout's crate when run from a source checkout, else this release's version.
    """
    if spec is None:
        crate = checkout_bevy_crate()
        return _path_dependency(crate, project) if crate else f'"{BEVY_SPARKY_VERSION}"'
    if _VERSION_REQ.match(spec.strip()) and not Path(spec).exists():
        return f'"{spec.strip()}"'
    crate = Path(spec).expanduser()
    if not (crate / "Cargo.toml").is_file():
        raise InvalidInput(
            Diagnostic(
                "--bevy-sparky is neither a version nor a folder holding bevy_sparky's Cargo.toml",
                key="--bevy-sparky",
                expected="a version such as 0.1 or a path such as ../sparky-assets/engine-bridges/bevy",
                found=spec,
            )
        )
    return _path_dependency(crate.resolve(), project)


def _path_dependency(crate: Path, project: Path) -> str:
    try:
        path = Path(os.path.relpath(crate, project.resolve())).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        path = crate.as_posix()
    return f'{{ path = "{_escape(path)}" }}'


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.sparky-init.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _render(data: bytes, suffix: str, tokens: dict[str, str]) -> bytes:
    if suffix not in TEXT_SUFFIXES:
        return data
    text = data.decode("utf-8")
    for token, value in tokens.items():
        text = text.replace("{{" + token + "}}", value)
    return text.encode("utf-8")


def _template_files(engine: str) -> list[tuple[str, Path]]:
    root = templates_root() / engine
    return sorted(
        (path.relative_to(root).as_posix(), path)
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


def init_project(directory: Path, engine: str, name: str | None = None, bevy_sparky: str | None = None) -> InitReport:
    """Copy the ``engine`` starter into ``directory``, adding only what is missing."""
    if engine not in ENGINES:
        raise InvalidInput(Diagnostic("unknown engine", key="--engine", expected=" | ".join(ENGINES), found=engine))
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise InvalidInput(Diagnostic("not a folder", file=str(root)))
    root.mkdir(parents=True, exist_ok=True)
    name = name or root.resolve().name or "game"
    report = InitReport(root, engine)
    existing_godot = (root / "project.godot").is_file()
    existing_cargo = (root / "Cargo.toml").is_file()

    tokens = {"project_name": _escape(name), "crate_name": crate_name(name)}
    if engine == "bevy":
        tokens["bevy_sparky_dependency"] = bevy_sparky_dependency(bevy_sparky, root)

    for relative, source in _template_files(engine):
        target = root / relative
        if relative == "project.godot" and existing_godot:
            _merge_project_godot(target, report)
            continue
        if target.exists():
            report.skipped.append((relative, "exists"))
            continue
        _write_atomic(target, _render(source.read_bytes(), source.suffix or source.name, tokens))
        report.created.append(target)

    if engine == "bevy":
        (root / "assets").mkdir(exist_ok=True)
        if existing_cargo:
            report.notes.append(
                f"Cargo.toml exists: add `bevy_sparky = {tokens['bevy_sparky_dependency']}` to its [dependencies]"
            )
    return report


# ------------------------------------------------------------------ project.godot


_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")


def _merge_project_godot(path: Path, report: InitReport) -> None:
    """Add the starter's settings that ``path`` lacks; never change a value that is set."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    sections = _sections(lines)
    additions: list[tuple[str, str, str]] = []
    for section, key, value in GODOT_SETTINGS:
        current = sections.get(section, {}).get(key)
        if current is None:
            additions.append((section, key, value))
        elif current.strip() != value:
            report.skipped.append((f"project.godot [{section}] {key}", f"already set to {current.strip()}"))

    plugins = sections.get("editor_plugins", {}).get("enabled")
    if plugins is None:
        additions.append(("editor_plugins", "enabled", f'PackedStringArray("{PLUGIN_CFG}")'))
    elif PLUGIN_CFG not in plugins:
        listed = re.findall(r'"([^"]*)"', plugins)
        new_value = "PackedStringArray(" + ", ".join(f'"{p}"' for p in [*listed, PLUGIN_CFG]) + ")"
        lines = _set_in_section(lines, "editor_plugins", "enabled", new_value)
        report.added_settings.append(f"[editor_plugins] enabled += {PLUGIN_CFG}")

    for section, key, value in additions:
        lines = _add_to_section(lines, section, f"{key}={value}")
        report.added_settings.append(f"[{section}] {key}={value}")
    if report.added_settings:
        _write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))
    else:
        report.skipped.append(("project.godot", "has every setting the bridge needs"))


def _sections(lines: list[str]) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in lines:
        match = _SECTION.match(line.strip())
        if match:
            current = match.group(1)
            sections.setdefault(current, {})
        elif "=" in line and not line.lstrip().startswith(";"):
            key, value = line.split("=", 1)
            sections.setdefault(current, {})[key.strip()] = value
    return sections


def _set_in_section(lines: list[str], section: str, key: str, value: str) -> list[str]:
    out, current = [], ""
    for line in lines:
        match = _SECTION.match(line.strip())
        if match:
            current = match.group(1)
        elif current == section and line.split("=", 1)[0].strip() == key:
            line = f"{key}={value}"
        out.append(line)
    return out


def _add_to_section(lines: list[str], section: str, entry: str) -> list[str]:
    """Append ``entry`` at the end of ``[section]`` (creating the section at the end if absent)."""
    start = next((i for i, line in enumerate(lines) if line.strip() == f"[{section}]"), None)
    if start is None:
        while lines and not lines[-1].strip():
            lines = lines[:-1]
        return [*lines, "", f"[{section}]", "", entry]
    end = next((i for i in range(start + 1, len(lines)) if _SECTION.match(lines[i].strip())), len(lines))
    insert_at = end
    while insert_at > start + 1 and not lines[insert_at - 1].strip():
        insert_at -= 1
    return [*lines[:insert_at], entry, *lines[insert_at:]]
