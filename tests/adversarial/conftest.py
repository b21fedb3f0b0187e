"""Fixtures for the adversarial corpus: one built baseline per session, copied per case."""

from __future__ import annotations

import pytest

from tests.adversarial.rig import Project, copy_project, make_outside, tree, write_base


@pytest.fixture(scope="session")
def baseline(tmp_path_factory):
    """A built tiny project (outputs, lock, store, warm cache) to copy from."""
    base = tmp_path_factory.mktemp("adversarial-baseline")
    project = Project(base)
    write_base(project.root)
    outcome = project.build()
    assert outcome.code == 0, outcome.text
    return project.root


@pytest.fixture()
def project(baseline, tmp_path):
    """A fresh copy of the built baseline, with ``outside/`` beside it."""
    p = Project(tmp_path)
    copy_project(baseline, p.root)
    make_outside(tmp_path)
    p.outside_before = tree(p.outside)
    return p


@pytest.fixture()
def fresh(tmp_path):
    """The tiny project never built (no outputs, no .sparky/), with ``outside/``."""
    p = Project(tmp_path)
    write_base(p.root)
    make_outside(tmp_path)
    p.outside_before = tree(p.outside)
    return p
