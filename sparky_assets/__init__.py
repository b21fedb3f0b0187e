"""sparky-assets: a pixel-art asset compiler.

Reads a sprite manifest (``sparky.toml``), generates or loads sprites, locks them
to a palette, packs them into atlases and writes engine-ready metadata.
"""

__version__ = "0.1.0"
