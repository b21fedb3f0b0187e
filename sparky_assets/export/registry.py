"""Exporter lookup (see :mod:`sparky_assets.registry`)."""

from __future__ import annotations

from ..registry import EXPORTERS as GROUP
from ..registry import instance, loadable_classes, names


def exporter_names() -> list[str]:
    """Targets a manifest may configure (``always`` ones, like ``sheets``, are not)."""
    classes = loadable_classes(GROUP)
    return [n for n in names(GROUP) if n not in classes or not classes[n].always]


def always_on() -> list[str]:
    """Targets every build writes (``sheets``)."""
    return [n for n, cls in loadable_classes(GROUP).items() if cls.always]


def exporter(name: str):
    return instance(GROUP, name)
