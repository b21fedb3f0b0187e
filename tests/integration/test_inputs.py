"""What a build reads is recorded in one place (its read context) and ``watch``
watches exactly that: every input kind — the manifest, palette files, source images
(read for their size or their pixels), a diffusion model folder, LoRA files, and a
file a third-party generator's option names — with nothing guessed from extensions."""

from __future__ import annotations

import json
import queue
import shutil

from PIL import Image

from sparky_assets.generators.diffusion import _SKIPPED_SUFFIXES
from sparky_assets.hotreload.publisher import Publisher
from sparky_assets.reads import ABSENT
from sparky_assets.watch.session import FileWatcher, WatchSession

MANIFEST = """[project]
name = "inputs"
palette = "pal.hex"

[generator.diffusion]
model = "models/tiny-sd"
lora = ["loras/pixel.safetensors"]
steps = 1
guidance = 1.0
frames = "seed"
pixelize = { background = "none" }

[[sprite]]
name = "sized"
source = "art/sized.png"
size = 8

[[sprite]]
name = "unsized"
source = "art/unsized.png"

[[sprite]]
name = "dreamt"
generator = "diffusion"
prompt = "a red gem"
size = 8

[[sprite]]
name = "tomato"
generator = "recipe"
recipe = "recipes/red.json"
size = 8

[[sprite]]
name = "blob"
palette = "pico-8"
size = 8
"""


def model_files(folder):
    return {
        p.resolve()
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() not in _SKIPPED_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def model_folders(folder):
    """The model folder and every folder in it: their listings were read (a weight file
    added to any of them changes the model)."""
    return {folder.resolve()} | {p.resolve() for p in folder.rglob("*") if p.is_dir()}


def test_watch_watches_exactly_what_the_build_read_for_every_input_kind(tiny_sd_project, recipe_plugin, tmp_path):
    root = tmp_path / "inputs"
    shutil.copytree(tiny_sd_project, root)
    (root / "pal.hex").write_text("000000\nffffff\nff004d\n29adff\n")
    (root / "art").mkdir()
    Image.new("RGBA", (8, 8), (255, 255, 255, 255)).save(root / "art/sized.png")
    Image.new("RGBA", (12, 10), (0, 0, 0, 255)).save(root / "art/unsized.png")
    (root / "recipes").mkdir()
    recipe = root / "recipes/red.json"
    recipe.write_text(json.dumps({"rgb": [255, 0, 77]}))
    manifest = root / "sparky.toml"
    manifest.write_text(MANIFEST)

    watched: list[set] = []
    publisher = Publisher("tcp://127.0.0.1:0", "inputs")
    changes: queue.Queue = queue.Queue()
    watcher = FileWatcher(changes, root)
    try:
        session = WatchSession(
            manifest, publisher, changes, echo=lambda *a, **k: None, on_files=lambda f: watched.append(set(f))
        )
        report = session.rebuild([])
        assert report is not None and sorted(report.ran["generate"]) == ["blob", "dreamt", "sized", "tomato", "unsized"]
        expected = (
            {
                manifest.resolve(),
                (root / "pal.hex").resolve(),  # palette file
                (root / "art/sized.png").resolve(),  # source read for its pixels
                (root / "art/unsized.png").resolve(),  # source read for its size too
                (root / "loras/pixel.safetensors").resolve(),  # LoRA
                recipe.resolve(),  # a plugin's own input: no edit anywhere in sparky-assets for it
            }
            | model_files(root / "models/tiny-sd")
            | model_folders(root / "models/tiny-sd")
        )  # weights, configs, listings
        assert watched[-1] == expected
        assert watched[-1] == session.builder.last_reads.paths() | {manifest.resolve()}

        # a failed build watches what it read too: the missing recipe is watched, so
        # putting it back rebuilds (no raw-TOML fallback needed)
        recipe.unlink()
        assert session.rebuild(["recipes/red.json"]) is None
        assert session.builder.last_reads.record[recipe.resolve()] == ABSENT
        assert recipe.resolve() in watched[-1]
        watcher.set_files(watched[-1])
        recipe.write_text(json.dumps({"rgb": [41, 173, 255]}))
        assert changes.get(timeout=10) == recipe.resolve()
        assert session.rebuild(["recipes/red.json"]) is not None
        assert watched[-1] == expected
    finally:
        watcher.stop()
        publisher.close()


def test_the_manifest_is_reused_while_every_file_read_to_load_it_is_unchanged(tmp_path):
    """The long-lived builder's manifest-reuse check uses the same record: an image
    read for its size changes the size; a file only read at generate time does not
    reload the manifest."""
    from sparky_assets.pipeline.engine import Builder, BuildOptions

    root = tmp_path / "p"
    (root / "art").mkdir(parents=True)
    Image.new("RGBA", (8, 8), (255, 0, 0, 255)).save(root / "art/a.png")
    Image.new("RGBA", (8, 8), (0, 0, 255, 255)).save(root / "art/b.png")
    (root / "sparky.toml").write_text(
        '[project]\nname = "p"\n\n[[sprite]]\nname = "a"\nsource = "art/a.png"\n\n'
        '[[sprite]]\nname = "b"\nsource = "art/b.png"\nsize = 8\n'
    )
    builder = Builder(root)
    builder.build(BuildOptions())
    loaded = builder._loaded[0]
    Image.new("RGBA", (8, 8), (0, 255, 0, 255)).save(root / "art/b.png")  # read by the generator only
    assert builder.build(BuildOptions()).ran["generate"] == ["b"]
    assert builder._loaded[0] is loaded
    Image.new("RGBA", (16, 8), (0, 255, 0, 255)).save(root / "art/a.png")  # read for its size
    report = builder.build(BuildOptions())
    assert builder._loaded[0] is not loaded and builder._loaded[0].sprite("a").width == 16
    assert report.ran["generate"] == ["a"]
