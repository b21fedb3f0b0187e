"""The Python style gate: the tree is ``ruff format``-ed and ``ruff check``-clean
(configuration in pyproject.toml). ruff comes with the ``test`` extra; under CI a
missing ruff fails this test (tests/conftest.py turns the skip into a failure)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return [found]


@pytest.mark.parametrize("command", [["format", "--check", "--diff"], ["check", "--no-fix"]], ids=["format", "check"])
def test_python_tree_passes_ruff(command):
    result = subprocess.run([*_ruff(), *command, "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff {' '.join(command)} .\n{result.stdout}\n{result.stderr}"
