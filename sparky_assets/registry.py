"""Plugin registries for generators and exporters.

Built-ins are listed here; third-party packages add their own through the entry-point
groups ``sparky_assets.generators`` and ``sparky_assets.exporters`` (the built-ins are
declared there too, in pyproject.toml). A plugin that fails to import disables only
itself: the error is kept and shown when something asks for it by name.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from .errors import Diagnostic, InvalidInput, suggest

_BUILTIN = {
    "sparky_assets.generators": {
        "procedural": "sparky_assets.generators.procedural:ProceduralGenerator",
        "image": "sparky_assets.generators.image:ImageGenerator",
        "aseprite": "sparky_assets.generators.aseprite:AsepriteGenerator",
        "diffusion": "sparky_assets.generators.diffusion:DiffusionGenerator",
    },
    "sparky_assets.exporters": {
        "bevy": "sparky_assets.export.bevy:BevyExporter",
        "godot": "sparky_assets.export.godot:GodotExporter",
        "texturepacker": "sparky_assets.export.texturepacker:TexturePackerExporter",
        "aseprite": "sparky_assets.export.aseprite:AsepriteExporter",
        "sheets": "sparky_assets.export.sheets:SheetsExporter",
    },
}


@cache
def _targets(group: str) -> dict[str, str]:
    found = dict(_BUILTIN[group])
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep.value)
    return dict(sorted(found.items()))


def names(group: str) -> list[str]:
    return list(_targets(group))


GENERATORS = "sparky_assets.generators"
EXPORTERS = "sparky_assets.exporters"


def refresh() -> None:
    """Look the entry points up again (after a package was installed in this process)."""
    _targets.cache_clear()
    _load_class.cache_clear()
    _instances.clear()


@cache
def _load_class(group: str, name: str) -> Any:
    module, _, attr = _targets(group)[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def _unknown(group: str, name: str) -> InvalidInput:
    kind = "generator" if group == GENERATORS else "export target"
    valid = [n for n in _targets(group) if group == GENERATORS or not _is_always(n)]
    return InvalidInput(
        Diagnostic(f"unknown {kind} '{name}'", hint=suggest(name, valid) or f"valid: {', '.join(valid)}")
    )


def _is_always(name: str) -> bool:
    try:
        return bool(plugin_class(EXPORTERS, name).always)
    except (ImportError, AttributeError, InvalidInput):
        return False


def plugin_class(group: str, name: str) -> Any:
    """The class of plugin ``name``: its declared fields and capabilities, without
    making an instance. ``InvalidInput`` for an unknown name, ``ImportError`` (or any
    error the plugin's module raises) for one that cannot be loaded."""
    if name not in _targets(group):
        raise _unknown(group, name)
    return _load_class(group, name)


def loadable_classes(group: str) -> dict[str, Any]:
    """Every plugin of ``group`` that imports, by name (the reference page lists them)."""
    out = {}
    for name in _targets(group):
        try:
            out[name] = _load_class(group, name)
        except Exception:  # noqa: BLE001 - a broken plugin disables only itself
            continue
    return out


_instances: dict[tuple[str, str], Any] = {}


def instance(group: str, name: str) -> Any:
    """The shared instance of plugin ``name`` (generators keep models loaded)."""
    key = (group, name)
    if key not in _instances:
        _instances[key] = plugin_class(group, name)()
    return _instances[key]


def generator(name: str):
    return instance(GENERATORS, name)


def generator_names() -> list[str]:
    return names(GENERATORS)
