"""Manifest layer: key locations, the reference page, edits."""

from __future__ import annotations

from pathlib import Path

from sparky_assets.manifest.locate import KeyLocator
from sparky_assets.manifest.reference import render

REPO = Path(__file__).resolve().parents[2]


def test_reference_page_matches_the_schema():
    assert (REPO / "docs/manifest.md").read_text() == render(), (
        "run: python -m sparky_assets.manifest.reference > docs/manifest.md"
    )


def test_locator_finds_table_array_and_inline_keys():
    text = (
        '[project]\nname = "x"\n\n[[sprite]]\nname = "a"\n\n[[sprite]]\nname = "b"\nanimations = { idle = 2, walk = 3 }\n'
        '[sprite.pixelize]\ngrid = [4, 4]\n\n[export.godot]\nproject = "g"\n'
    )
    loc = KeyLocator(text)
    assert loc.locate("project.name") == (2, 1)
    assert loc.locate("sprite[1].name") == (8, 1)
    assert loc.locate("sprite[1].animations.walk") == (9, 26)
    assert loc.locate("sprite[1].animations.walk.frames") == (9, 26)
    assert loc.locate("sprite[1].pixelize.grid") == (11, 1)
    assert loc.locate("export.godot.project") == (14, 1)
    assert loc.locate("sprite[5].name") == (None, None)


def test_locator_skips_multiline_strings():
    text = '[[sprite]]\nname = "a"\nprompt = """\n[[sprite]]\nsize = 3\n"""\n\n[[sprite]]\nname = "b"\nsize = 4\n'
    loc = KeyLocator(text)
    assert loc.locate("sprite[0].prompt") == (3, 1)
    assert loc.locate("sprite[1].size") == (10, 1)
    assert loc.locate("sprite[0].size") == (None, None) or loc.locate("sprite[0].size") == (1, 1)
