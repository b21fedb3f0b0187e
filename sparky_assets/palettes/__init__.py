"""Palettes: built-in named palettes and readers for the files pixel artists trade.

A :class:`Palette` is an ordered tuple of distinct RGB colours (at most 256). Use
:func:`load_palette` to resolve a manifest value (a built-in name or a path).
"""

from .model import Palette

__all__ = ["Palette"]
