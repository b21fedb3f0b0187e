"""``sparky-assets init``: starter projects.

A template is a manifest built from a Python dict and written with tomli-w (so it is
always valid TOML), plus a palette file and, per engine, the folders it exports to.
"""

from __future__ import annotations

from pathlib import Path

import tomli_w

from ..errors import Diagnostic, InvalidInput
from ..manifest.schema import MANIFEST_NAME

# Sweetie 16 by GrafxKid, as a Lospec .hex file.
_PALETTE = """1a1c2c
5d275d
b13e53
ef7d57
ffcd75
a7f070
38b764
257179
29366f
3b5dc9
41a6f6
73eff7
f4f4f4
94b0c2
566c86
333c57
"""


def _manifest(name: str, engine: str) -> dict:
    doc: dict = {
        "project": {"name": name, "out": "build/sprites", "palette": "palettes/sweetie-16.hex", "seed": 1},
        "sprite": [
            {
                "name": "hero",
                "size": [16, 16],
                "style": "character",
                "animations": {"idle": 4, "walk": 6},
                "fps": 8,
                "outline": True,
            },
            {
                "name": "slime",
                "size": [16, 16],
                "style": "creature",
                "animations": {"idle": 4},
                "fps": 6,
                "outline": True,
            },
            {"name": "coin", "size": [8, 8], "style": "item", "animations": {"spin": 4}, "fps": 10},
            {"name": "grass", "size": [16, 16], "style": "tile"},
        ],
        "atlas": [
            {"name": "characters", "sprites": ["hero", "slime"], "padding": 1, "max_size": 512},
            {"name": "world", "sprites": ["coin", "grass"], "padding": 1, "max_size": 512},
        ],
    }
    if engine == "godot":
        doc["export"] = {"godot": {"project": ".", "dir": "sprites"}}
    elif engine == "bevy":
        doc["export"] = {"bevy": {"assets": "assets", "dir": "sprites"}}
    else:
        doc["export"] = {"texturepacker": {}, "aseprite": {}}
    return doc


def write_template(directory: Path, engine: str, name: str | None = None) -> list[Path]:
    directory = Path(directory)
    target = directory / MANIFEST_NAME
    if target.exists():
        raise InvalidInput(Diagnostic("a manifest already exists here; not overwriting it", file=str(target)))
    directory.mkdir(parents=True, exist_ok=True)
    name = name or directory.resolve().name or "game"
    header = (
        "# sparky-assets manifest — reference: docs/manifest.md\n"
        "# build with: sparky-assets build    watch: sparky-assets watch\n\n"
    )
    target.write_text(header + tomli_w.dumps(_manifest(name, engine)), encoding="utf-8")
    palette = directory / "palettes" / "sweetie-16.hex"
    palette.parent.mkdir(exist_ok=True)
    palette.write_text(_PALETTE, encoding="utf-8")
    written = [target, palette]
    if engine == "godot" and not (directory / "project.godot").exists():
        pg = directory / "project.godot"
        pg.write_text(
            'config_version=5\n\n[application]\n\nconfig/name="' + name + '"\n\n'
            "[rendering]\n\ntextures/canvas_textures/default_texture_filter=0\n",
            encoding="utf-8",
        )
        written.append(pg)
    if engine == "bevy":
        (directory / "assets").mkdir(exist_ok=True)
    return written
