"""Exporter lookup (see :mod:`sparky_assets.registry`)."""

from __future__ import annotations

from ..registry import instance, names

GROUP = "sparky_assets.exporters"


def exporter_names() -> list[str]:
    return names(GROUP)


def exporter(name: str):
    return instance(GROUP, name)
