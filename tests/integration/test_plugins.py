"""Third-party plugins are first-class: a generator and an exporter installed as a
package with entry points (tests/thirdparty_plugin.py) get their own manifest keys,
are checked with file positions like the built-ins, run in a real build and appear in
the generated reference page."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparky_assets.cli.main import main
from sparky_assets.errors import InvalidInput
from sparky_assets.manifest.reference import render
from sparky_assets.pipeline.engine import Builder, BuildOptions, check
from tests.helpers import rgba

MANIFEST = """[project]
name = "plugged"
palette = "pico-8"

[generator.recipe]
brightness = 0

[[sprite]]
name = "tomato"
generator = "recipe"
recipe = "recipes/red.json"
size = 8
animations = { idle = 2 }

[[sprite]]
name = "blob"
size = 8

[[atlas]]
name = "all"
sprites = ["tomato", "blob"]

[export.csv]
separator = ";"
"""


@pytest.fixture()
def project(tmp_path, recipe_plugin):
    root = tmp_path / "plugged"
    (root / "recipes").mkdir(parents=True)
    (root / "recipes/red.json").write_text(json.dumps({"rgb": [230, 40, 100]}))  # → pico-8 red
    (root / "sparky.toml").write_text(MANIFEST)
    return root


def test_a_third_party_generator_and_exporter_build_with_their_own_options(project):
    report = Builder(project).build(BuildOptions())
    assert sorted(report.ran["generate"]) == ["blob", "tomato"]
    assert report.generator_stats["recipe"] == {"frames": 2}
    csv = (project / "build/sprites/csv/all.csv").read_text().splitlines()
    assert csv[0] == "sprite;animation;frame;x;y;w;h"  # the exporter got its separator
    assert sum(line.startswith("tomato;idle;") for line in csv) == 2
    sheet = json.loads((project / "build/sprites/sheets/all.json").read_text())
    frame = next(f for f in sheet["frames"] if f["sprite"] == "tomato")
    x, y, w, h = frame["rect"]
    page = rgba(project / "build/sprites/sheets/all_0.png")
    assert np.all(page[y : y + h, x : x + w] == [255, 0, 77, 255])  # the generator read its recipe file

    # a setting of [generator.recipe] reaches the generator (parsed, defaults filled)
    manifest = project / "sparky.toml"
    manifest.write_text(MANIFEST.replace("brightness = 0", "brightness = 64"))
    again = Builder(project).build(BuildOptions())
    assert again.ran["generate"] == ["tomato"]
    page = rgba(project / "build/sprites/sheets/all_0.png")
    assert np.all(page[y : y + h, x : x + w] == [255, 119, 168, 255])  # (255, 104, 164) → pico-8 pink


@pytest.mark.parametrize(
    ("old", "new", "key", "fragments"),
    [
        ("brightness = 0", "brigthness = 0", "generator.recipe.brigthness", ["did you mean 'brightness'?"]),
        ("brightness = 0", "brightness = 99", "generator.recipe.brightness", ["value out of range", "[0, 64]"]),
        ('separator = ";"', 'separator = "|"', "export.csv.separator", ["invalid value '|'", "expected , or ;"]),
        ('recipe = "recipes/red.json"\n', "", "sprite[0]", ["missing required key 'recipe'"]),
        ('recipe = "recipes/red.json"', "recipe = 3", "sprite[0].recipe", ["wrong type", "found integer 3"]),
        ("size = 8\n\n[[atlas]]", 'size = 8\nrecipe = "x.json"\n\n[[atlas]]', "sprite[1].recipe", ["unknown key"]),
    ],
    ids=[
        "unknown-setting",
        "setting-range",
        "exporter-choice",
        "missing-option",
        "option-type",
        "other-generators-key",
    ],
)
def test_plugin_keys_are_checked_with_locations(project, capsys, old, new, key, fragments):
    manifest = project / "sparky.toml"
    text = MANIFEST.replace(old, new, 1)
    assert text != MANIFEST
    manifest.write_text(text)
    with pytest.raises(InvalidInput) as error:
        check(project)
    (problem,) = error.value.diagnostics
    assert problem.key == key and problem.file == str(manifest) and problem.line is not None
    for fragment in fragments:
        assert fragment in problem.format(), problem.format()
    assert main(["build", str(project)]) == 2
    assert f"sparky.toml:{problem.line}:" in capsys.readouterr().err
    assert not (project / "build").exists()


def test_plugins_appear_in_the_generated_reference(recipe_plugin):
    page = render()
    assert "### `recipe`" in page and "Solid frames in the colour a JSON recipe file names" in page
    assert "| `recipe` | path | required |" in page
    assert "`[generator.recipe]`:" in page and "| `brightness` | int (0..64) | `0` |" in page
    assert "### `[export.csv]`" in page and '| `separator` | str | `","` |' in page


def test_a_plugin_that_fails_to_import_disables_only_itself(project, recipe_plugin):
    (recipe_plugin / "sparky_recipe.py").write_text("raise ImportError('needs libfoo')\n")
    import sys

    sys.modules.pop("sparky_recipe", None)
    from sparky_assets import registry

    registry.refresh()
    with pytest.raises(InvalidInput) as error:
        check(project)
    messages = {d.key: d.message for d in error.value.diagnostics}
    assert "needs libfoo" in messages["generator.recipe"] and "needs libfoo" in messages["export.csv"]
    assert "### `procedural`" in render()  # the built-ins are unaffected
