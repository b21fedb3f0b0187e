"""Build hook: ship the top-level starter projects (templates/) inside the package.

``sparky-assets init`` copies hand-written starter projects that live in the repository's
``templates/`` folder. A wheel only carries packages, so building one copies that folder
into the package as ``sparky_assets/templates/starters/`` (``templates_root()`` looks there
first, then at the checkout's ``templates/`` for source and editable installs). Everything
else about the build is declared in pyproject.toml; MANIFEST.in puts templates/ in sdists.

It also builds ``sparky_assets.pack._cmaxrects``, the compiled core of the rectangle
packer (``sparky_assets/pack/_cmaxrects.c``). The extension is optional: without a C
compiler the build warns and goes on, and ``pack_maxrects`` runs its Python code (the
reference, which gives the same layouts, only slower). The wheel is then
platform-specific.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

TEMPLATES = Path(__file__).resolve().parent / "templates"


class BuildPyWithStarters(build_py):
    def run(self) -> None:
        super().run()
        if TEMPLATES.is_dir() and not self.editable_mode:
            target = Path(self.build_lib) / "sparky_assets" / "templates" / "starters"
            shutil.copytree(TEMPLATES, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


PACKER = Extension(
    "sparky_assets.pack._cmaxrects",
    sources=["sparky_assets/pack/_cmaxrects.c"],
    # C11, no float contraction (the page-size estimate multiplies doubles as Python does)
    extra_compile_args=[] if sys.platform == "win32" else ["-std=c11", "-ffp-contract=off"],
    optional=True,
)

setup(cmdclass={"build_py": BuildPyWithStarters}, ext_modules=[PACKER])
