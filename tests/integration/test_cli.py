"""The CLI as a user meets it: help everywhere, exit codes, the watch security rule."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sparky_assets.cli.main import cli, main

COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere(command, capsys):
    args = ["--help"] if command is None else [command, "--help"]
    assert main(args) == 0
    assert "Usage:" in capsys.readouterr().out


def test_exit_codes_are_documented_in_help(capsys):
    main(["--help"])
    assert "0 ok, 1 a build step failed, 2 invalid input, 3 another build" in " ".join(capsys.readouterr().out.split())


def test_watch_refuses_a_non_loopback_endpoint_without_allow_remote(tmp_path, capsys):
    assert main(["-q", "init", str(tmp_path)]) == 0
    assert main(["watch", str(tmp_path), "--endpoint", "tcp://0.0.0.0:5557"]) == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err and "0.0.0.0" in err


def test_console_script_entry_point_returns_exit_codes(tmp_path):
    """`python -m sparky_assets` (same entry as the console script) exits with the code."""
    proc = subprocess.run(
        [sys.executable, "-m", "sparky_assets", "build", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no manifest found" in proc.stderr
