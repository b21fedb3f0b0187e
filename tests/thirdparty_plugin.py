"""A third-party plugin package, installed for a test the way pip installs one: a
folder on ``sys.path`` holding the module and a ``*.dist-info`` with its entry points.

The generator ``recipe`` paints each frame in the colour named by a JSON "recipe" file
(a per-sprite option), scaled by a ``[generator.recipe]`` setting; the exporter ``csv``
writes one line per packed frame with a configurable separator. Both declare their
keys as ``Field`` tables and nothing else: the manifest, the build, the reference page
and ``watch`` must treat them like the built-ins.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

MODULE = r'''
"""sparky-recipe: a tiny third-party generator and exporter."""

import hashlib
import json

import numpy as np

from sparky_assets.export.base import Exporter, OutputFile
from sparky_assets.generators.base import Generator
from sparky_assets.manifest.fields import Field
from sparky_assets.reads import ensure_reads


class RecipeGenerator(Generator):
    name = "recipe"
    doc = "Solid frames in the colour a JSON recipe file names (a test plugin)."
    needs_lock = False
    option_fields = {
        "recipe": Field("path", "JSON file with an `rgb` list (inside the project).", required=True),
    }
    settings_fields = {
        "brightness": Field("int", "Added to every channel.", 0, minimum=0, maximum=64),
    }

    def _recipe(self, request, reads):
        return json.loads(reads.read_bytes(request.root / request.options["recipe"]))

    def validate(self, request, reads=None):
        reads = ensure_reads(reads)
        path = request.root / request.options["recipe"]
        if not reads.is_file(path):
            from sparky_assets.errors import Diagnostic

            return [Diagnostic(f"recipe not found: {request.options['recipe']}", key="recipe")]
        return []

    def cache_key(self, request, reads=None):
        reads = ensure_reads(reads)
        data = reads.read_bytes(request.root / request.options["recipe"])
        return {"recipe": hashlib.sha256(data).hexdigest(), "settings": dict(request.settings),
                "size": [request.width, request.height], "frames": len(request.frames)}

    def generate(self, requests, reads=None):
        reads = ensure_reads(reads)
        out = []
        for request in requests:
            rgb = [min(255, c + request.settings["brightness"]) for c in self._recipe(request, reads)["rgb"]]
            frame = np.zeros((request.height, request.width, 4), np.uint8)
            frame[...] = [*rgb, 255]
            out.append([frame.copy() for _ in request.frames])
        self.last_stats = {"frames": sum(len(f) for f in out)}
        return out


class CsvExporter(Exporter):
    name = "csv"
    version = 1
    doc = "One CSV line per packed frame (a test plugin)."
    option_fields = {
        "dir": Field("str", "Folder for the CSV files; default `<project.out>/csv`."),
        "separator": Field("str", "Column separator.", ",", choices=(",", ";")),
    }

    def export(self, atlas, context):
        sep = context.settings.get("separator", ",")
        lines = [sep.join(["sprite", "animation", "frame", "x", "y", "w", "h"])]
        for f in atlas.frames:
            lines.append(sep.join(map(str, [f.sprite, f.animation or "", f.frame, f.x, f.y, f.w, f.h])))
        data = ("\n".join(lines) + "\n").encode()
        return {f"{atlas.name}.csv": OutputFile(data, "metadata", atlas.sprites, atlas.name)}
'''

ENTRY_POINTS = """
[sparky_assets.generators]
recipe = sparky_recipe:RecipeGenerator

[sparky_assets.exporters]
csv = sparky_recipe:CsvExporter
"""


def install(site: Path) -> Path:
    """Write the package into ``site`` (a folder to put on ``sys.path``)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "sparky_recipe.py").write_text(textwrap.dedent(MODULE).lstrip())
    info = site / "sparky_recipe-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sparky-recipe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS.lstrip())
    return site
