"""Byte-identical outputs on every machine (issue: reproducible builds).

The example and a multi-page, multi-palette project (procedural sprites under four
palettes, dithering, a many-colour source image, a pixelized source, pages that
overflow) are built from scratch — generated, locked, packed, exported — in three
environments, and every file each build wrote must be byte-identical across them:

- ``newest``: this interpreter (the test environment: the newest numpy and Pillow pip
  resolved for it);
- ``no-simd``: the same with numpy's SIMD dispatch turned off
  (``NPY_DISABLE_CPU_FEATURES`` = every dispatched feature this CPU has);
- ``oldest``: numpy 1.26.4 + Pillow 10.4.0, the floor pyproject.toml promises, in a
  venv made by ``.ci/oldest-env`` (``.ci/run`` makes it; ``SPARKY_OLDEST_PYTHON`` or
  the default place in the user cache folder).

Each environment gets its own palette-table cache, so each builds its own tables.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparky_assets.export.png import encode_png

ROOT = Path(__file__).resolve().parents[2]


def oldest_python() -> Path | None:
    env = os.environ.get("SPARKY_OLDEST_PYTHON")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    candidate = (
        cache / "sparky-assets" / "envs" / f"oldest-py{sys.version_info[0]}.{sys.version_info[1]}" / "bin" / "python"
    )
    return candidate if candidate.exists() else None


def simd_features(python: str) -> list[str]:
    code = (
        "try:\n from numpy._core._multiarray_umath import __cpu_dispatch__ as d, __cpu_features__ as f\n"
        "except ImportError:\n from numpy.core._multiarray_umath import __cpu_dispatch__ as d, __cpu_features__ as f\n"
        "print(' '.join(k for k in d if f.get(k)))"
    )
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def versions(python: str, env: dict[str, str]) -> str:
    code = "import numpy, PIL; print(f'numpy {numpy.__version__} Pillow {PIL.__version__}')"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.strip()


def write_repro_project(root: Path) -> None:
    """Four palettes (two built-in, a .hex file, the project default), dithering,
    outlines, a 64×64 many-colour source image, a pixelized 4×-upscaled source with
    noise, and a 96² atlas limit so pages overflow."""
    (root / "art").mkdir(parents=True)
    rng = np.random.default_rng(21)
    yy, xx = np.mgrid[:64, :64]
    sky = np.zeros((64, 64, 4), np.uint8)
    sky[..., 0] = (xx * 4 + rng.integers(0, 9, (64, 64))).clip(0, 255)
    sky[..., 1] = (yy * 3 + 40 + rng.integers(0, 9, (64, 64))).clip(0, 255)
    sky[..., 2] = (255 - xx * 2 - yy).clip(0, 255)
    sky[..., 3] = np.where((xx - 32) ** 2 + (yy - 32) ** 2 < 900, 255, 0)
    (root / "art" / "sky.png").write_bytes(encode_png(sky, clear_hidden=False))
    cells = rng.integers(0, 256, (12, 12, 4)).astype(np.uint8)
    cells[..., 3] = 255
    big = np.repeat(np.repeat(cells, 4, axis=0), 4, axis=1).astype(np.int16)
    big[..., :3] += rng.integers(-6, 7, big[..., :3].shape)
    (root / "art" / "blocky.png").write_bytes(encode_png(big.clip(0, 255).astype(np.uint8), clear_hidden=False))
    (root / "warm.hex").write_text("2b0f0e\n6b2a1a\nb5532c\ne89f4b\nf6e3a1\nffffff\n")
    sprites = []
    palettes = ["pico-8", "gameboy", "warm.hex", None]
    styles = ["creature", "character", "item", "tile"]
    for i in range(12):
        lines = [
            "[[sprite]]",
            f'name = "p{i:02d}"',
            f'style = "{styles[i % 4]}"',
            f"size = {[16, 24, 32][i % 3]}",
        ]
        if palettes[i % 4]:
            lines.append(f'palette = "{palettes[i % 4]}"')
        if i % 3 == 1:
            lines.append("animations = { idle = 3, walk = 4 }")
        if i % 5 == 2:
            lines.append('dither = "bayer4"')
        if i % 4 == 3:
            lines.append("outline = true")
        sprites.append("\n".join(lines))
    sprites.append('[[sprite]]\nname = "sky"\nsource = "art/sky.png"\npalette = "endesga-32"')
    sprites.append('[[sprite]]\nname = "sky_dither"\nsource = "art/sky.png"\npalette = "pico-8"\ndither = "bayer8"')
    sprites.append('[[sprite]]\nname = "blocky"\nsource = "art/blocky.png"\npixelize = { grid = [4, 4] }')
    text = "\n".join(
        [
            '[project]\nname = "repro"\npalette = "endesga-32"\nseed = 99\n',
            *sprites,
            '\n[[atlas]]\nname = "mixed"\nsprites = ["p*"]\nmax_size = 96\npadding = 1\nextrude = 1\n',
            '[[atlas]]\nname = "images"\nsprites = ["sky*", "blocky"]\nmax_size = 64\n',
            "[export.texturepacker]\n[export.aseprite]\n",
        ]
    )
    (root / "sparky.toml").write_text(text)


def fresh_example(root: Path) -> None:
    shutil.copytree(
        ROOT / "examples" / "dungeon",
        root,
        ignore=shutil.ignore_patterns(".sparky", "build", "sparky.lock", "sparky-generated", ".godot", "sprites"),
    )


def snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".sparky" not in p.relative_to(root).parts
    }


def test_every_output_is_byte_identical_across_numpy_pillow_and_simd(tmp_path):
    oldest = oldest_python()
    if oldest is None or not oldest.exists():
        pytest.skip("no oldest-supported environment: run `bash .ci/oldest-env` (CI does)")
    base = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    base["PYTHONPATH"] = str(ROOT)
    environments = {
        "newest": (sys.executable, {}),
        "no-simd": (sys.executable, {"NPY_DISABLE_CPU_FEATURES": " ".join(simd_features(sys.executable))}),
        "oldest": (str(oldest), {}),
    }
    sources = tmp_path / "sources"
    write_repro_project(sources / "repro")
    fresh_example(sources / "dungeon")
    results: dict[str, dict[str, dict[str, str]]] = {}
    described = []
    for name, (python, extra) in environments.items():
        env = {**base, **extra, "SPARKY_TABLE_CACHE": str(tmp_path / f"tables-{name}")}
        described.append(f"{name}: {versions(python, env)} {extra or ''}")
        for project in ("repro", "dungeon"):
            work = tmp_path / name / project
            shutil.copytree(sources / project, work)
            before = set(snapshot(work))
            run = subprocess.run(
                [python, "-m", "sparky_assets", "build", str(work)], env=env, capture_output=True, text=True
            )
            assert run.returncode == 0, f"{name} {project}:\n{run.stdout}\n{run.stderr}"
            files = snapshot(work)
            assert len(set(files) - before) > 10, f"{name} {project} wrote almost nothing"
            results.setdefault(project, {})[name] = files
    for project, by_env in results.items():
        reference = by_env["newest"]
        pages = [f for f in reference if f.endswith(".png") and "/sheets/" in f]
        assert len(pages) >= 3, pages
        for name, files in by_env.items():
            differing = sorted(f for f in set(files) | set(reference) if files.get(f) != reference.get(f))
            assert not differing, f"{project}: {name} differs from newest in {differing[:8]}\n" + "\n".join(described)
    repro_pages = [f for f in results["repro"]["newest"] if f.startswith("build/sprites/sheets/mixed_")]
    assert len(repro_pages) >= 2, repro_pages  # the atlas really overflowed into several pages
