"""Fixtures of the preview page tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def console_errors():
    """Console errors and uncaught exceptions of the pages a test opens (``open_page``)."""
    return []
