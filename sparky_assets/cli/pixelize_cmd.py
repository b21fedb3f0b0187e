"""The ``sparky-assets pixelize`` command's work: read, pixelize, write (atomically).

Kept out of ``cli/main.py`` so the command there stays a thin parse → call → print;
every problem is a :class:`~sparky_assets.errors.SparkyError` with its exit code
(2: unreadable input, bad option; 1: the output could not be written).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import BuildFailed, Diagnostic, InvalidInput


def run_pixelize(
    source: Path,
    output: Path,
    size: tuple[int, int] | None,
    palette_name: str | None,
    background: str,
    tolerance: int,
) -> str:
    """Pixelize ``source`` into ``output`` (PNG); returns the line to print."""
    from PIL import Image, UnidentifiedImageError

    from ..pipeline.fsutil import atomic_write
    from ..process.pixelize import parse_colour, pixelize_result

    try:
        with Image.open(source) as image:
            rgba = np.asarray(image.convert("RGBA"))
    except FileNotFoundError:
        raise InvalidInput(Diagnostic("input image not found", file=str(source), stage="pixelize")) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput(
            Diagnostic("cannot read the input image", file=str(source), found=str(exc), stage="pixelize")
        ) from None
    if background not in ("auto", "none"):
        try:
            parse_colour(background)
        except ValueError:
            raise InvalidInput(
                Diagnostic(
                    "invalid background colour",
                    key="--background",
                    expected='"auto", "none" or "#rrggbb"',
                    found=repr(background),
                    stage="pixelize",
                )
            ) from None
    palette = None
    if palette_name:
        from ..palettes.load import load_palette

        palette = load_palette(palette_name, Path.cwd(), key="--palette")
    result = pixelize_result(rgba, target_size=size, background=background, tolerance=tolerance, palette=palette)
    buffer = io.BytesIO()
    Image.fromarray(result.image).save(buffer, format="PNG")
    try:
        atomic_write(output, buffer.getvalue())
    except OSError as exc:
        raise BuildFailed(Diagnostic("cannot write the output image", file=str(output), found=str(exc))) from None
    height, width = result.image.shape[:2]
    return f"{output}: {width}x{height} px from {result.summary()}"
