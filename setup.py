"""Build hook: ship the top-level starter projects (templates/) inside the package.

``sparky-assets init`` copies hand-written starter projects that live in the repository's
``templates/`` folder. A wheel only carries packages, so building one copies that folder
into the package as ``sparky_assets/templates/starters/`` (``templates_root()`` looks there
first, then at the checkout's ``templates/`` for source and editable installs). Everything
else about the build is declared in pyproject.toml; MANIFEST.in puts templates/ in sdists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATES = Path(__file__).resolve().parent / "templates"


class BuildPyWithStarters(build_py):
    def run(self) -> None:
        super().run()
        if TEMPLATES.is_dir() and not self.editable_mode:
            target = Path(self.build_lib) / "sparky_assets" / "templates" / "starters"
            shutil.copytree(TEMPLATES, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildPyWithStarters})
