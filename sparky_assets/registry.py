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
        "diffusion": "sparky_assets.generators.diffusion:DiffusionGenerator",
    },
    "sparky_assets.exporters": {
        "bevy": "sparky_assets.export.bevy:BevyExporter",
        "godot": "sparky_assets.export.godot:GodotExporter",
        "texturepacker": "sparky_assets.export.texturepacker:TexturePackerExporter",
        "aseprite": "sparky_assets.export.aseprite:AsepriteExporter",
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


@cache
def _load_class(group: str, name: str) -> Any:
    module, _, attr = _targets(group)[name].partition(":")
    return getattr(importlib.import_module(module), attr)


_instances: dict[tuple[str, str], Any] = {}


def instance(group: str, name: str) -> Any:
    """The shared instance of plugin ``name`` (generators keep models loaded)."""
    kind = "generator" if group.endswith("generators") else "export target"
    if name not in _targets(group):
        raise InvalidInput(
            Diagnostic(
                f"unknown {kind} '{name}'",
                hint=suggest(name, _targets(group)) or f"valid: {', '.join(_targets(group))}",
            )
        )
    key = (group, name)
    if key not in _instances:
        _instances[key] = _load_class(group, name)()
    return _instances[key]


def generator(name: str):
    return instance("sparky_assets.generators", name)


def generator_names() -> list[str]:
    return names("sparky_assets.generators")
