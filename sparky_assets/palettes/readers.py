"""Readers for the palette files pixel artists trade: ``.hex``, ``.gpl``, ``.pal``, ``.png``.

Each reader is a pure function of the file's bytes: ``parse_*(data, name=, file=)``
returns a :class:`Palette` or raises :class:`InvalidInput` whose diagnostic names the
file, the 1-based line and column of the offending text (where the format has lines),
what was expected and what was found. ``READERS`` maps a lowercase file extension to
its parser, the way Pillow registers image plugins; :func:`read_palette_file` reads a
file from disk and dispatches on its extension.

Invariants of every returned palette: at least one colour, at most 256, all distinct
(a repeated colour keeps its first position), order as in the file.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..errors import Diagnostic, InvalidInput
from ..reads import ReadContext, ensure_reads
from .model import Palette

MAX_COLORS = 256
MAX_SWATCH_PIXELS = 4096 * 4096
"""Largest swatch image decoded (a bigger one is refused from its header)."""
MAX_PALETTE_FILE_BYTES = 16 << 20
STAGE = "palette"

PaletteParser = Callable[..., Palette]

_HEX_TOKEN = re.compile(r"#?([0-9A-Fa-f]{6})")
_INT_TOKEN = re.compile(r"[+-]?\d+")


def palette_error(
    message: str,
    *,
    file: str | None,
    line: int | None = None,
    column: int | None = None,
    key: str | None = None,
    expected: str | None = None,
    found: str | None = None,
    hint: str | None = None,
) -> InvalidInput:
    """The one constructor of palette diagnostics (file readers and name lookup)."""
    return InvalidInput(
        Diagnostic(
            message,
            file=file,
            line=line,
            column=column,
            key=key,
            stage=STAGE,
            expected=expected,
            found=found,
            hint=hint,
        )
    )


def _decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM); palette names from old tools may be Latin-1."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _finish(name: str, colors: Iterable[tuple[int, int, int]], *, file: str, format_name: str) -> Palette:
    """Drop repeats (first kept), then enforce 1..256 colours."""
    unique = tuple(dict.fromkeys(colors))
    if not unique:
        raise palette_error(
            f"{format_name} palette has no colours",
            file=file,
            expected="at least one colour",
            found="none",
        )
    if len(unique) > MAX_COLORS:
        raise palette_error(
            f"{format_name} palette has too many colours",
            file=file,
            expected=f"at most {MAX_COLORS} distinct colours",
            found=f"{len(unique)}",
            hint="a locked sprite must fit an indexed PNG",
        )
    return Palette(name, unique)


def _first_content_column(line: str) -> int:
    return len(line) - len(line.lstrip()) + 1


def _parse_rgb_fields(
    line_text: str,
    fields: list[str],
    *,
    file: str,
    line_number: int,
    count: int = 3,
) -> tuple[int, ...]:
    """``count`` integers 0-255 from ``fields``; anything else is a located error."""
    column = _first_content_column(line_text)
    shown = " ".join(fields[:count]) if len(fields) >= count else line_text.strip()
    expected = "'R G B' with values 0-255" if count == 3 else "'R G B A' with values 0-255"
    if len(fields) < count or not all(_INT_TOKEN.fullmatch(f) for f in fields[:count]):
        raise palette_error(
            "malformed colour row",
            file=file,
            line=line_number,
            column=column,
            expected=expected,
            found=repr(shown),
        )
    values = tuple(int(f) for f in fields[:count])
    for index, value in enumerate(values):
        if not 0 <= value <= 255:
            bad_column = line_text.find(fields[index], column - 1) + 1
            raise palette_error(
                "colour value out of range",
                file=file,
                line=line_number,
                column=bad_column,
                expected=expected,
                found=repr(shown),
            )
    return values


# --------------------------------------------------------------------------- .hex


def parse_hex(data: bytes, *, name: str, file: str) -> Palette:
    """Lospec ``.hex``: one ``RRGGBB`` per line, optional ``#``, blank lines allowed."""
    colors: list[tuple[int, int, int]] = []
    for line_number, line_text in enumerate(_decode_text(data).splitlines(), start=1):
        token = line_text.strip()
        if not token:
            continue
        match = _HEX_TOKEN.fullmatch(token)
        if match is None:
            raise palette_error(
                "malformed colour line",
                file=file,
                line=line_number,
                column=_first_content_column(line_text),
                expected="'RRGGBB' (six hex digits, optional '#')",
                found=repr(token),
            )
        value = int(match.group(1), 16)
        colors.append(((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF))
    return _finish(name, colors, file=file, format_name="hex")


# --------------------------------------------------------------------------- .gpl


def parse_gpl(data: bytes, *, name: str, file: str) -> Palette:
    """GIMP ``.gpl``: ``GIMP Palette`` header, optional ``Name:``/``Columns:``/``Channels:``
    lines, ``#`` comments, then ``R G B [name]`` rows (``R G B A [name]`` when
    ``Channels: RGBA``; alpha is ignored, palettes are opaque)."""
    lines = _decode_text(data).splitlines()
    header_index = next((i for i, text in enumerate(lines) if text.strip()), None)
    if header_index is None or lines[header_index].strip() != "GIMP Palette":
        found = repr(lines[header_index].strip()) if header_index is not None else "an empty file"
        raise palette_error(
            "not a GIMP palette",
            file=file,
            line=(header_index or 0) + 1,
            column=1,
            expected="'GIMP Palette' on the first line",
            found=found,
        )
    palette_name = name
    channels = 3
    colors: list[tuple[int, int, int]] = []
    for index in range(header_index + 1, len(lines)):
        line_number = index + 1
        line_text = lines[index]
        stripped = line_text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, colon, value = stripped.partition(":")
        keyword_lower = keyword.strip().lower()
        if colon and keyword_lower in ("name", "columns", "channels"):
            if keyword_lower == "name" and value.strip():
                palette_name = value.strip()
            elif keyword_lower == "columns" and not value.strip().isdigit():
                raise palette_error(
                    "malformed 'Columns:' line",
                    file=file,
                    line=line_number,
                    column=_first_content_column(line_text),
                    expected="'Columns: <number>'",
                    found=repr(stripped),
                )
            elif keyword_lower == "channels":
                mode = value.strip().upper()
                if mode not in ("RGB", "RGBA"):
                    raise palette_error(
                        "unsupported 'Channels:' value",
                        file=file,
                        line=line_number,
                        column=_first_content_column(line_text),
                        expected="'RGB' or 'RGBA'",
                        found=repr(value.strip()),
                    )
                channels = len(mode)
            continue
        values = _parse_rgb_fields(line_text, stripped.split(), file=file, line_number=line_number, count=channels)
        colors.append((values[0], values[1], values[2]))
    return _finish(palette_name, colors, file=file, format_name="GIMP")


# --------------------------------------------------------------------------- .pal


def parse_pal(data: bytes, *, name: str, file: str) -> Palette:
    """``.pal``: JASC-PAL text (Paint Shop Pro, Aseprite, Lospec) or Microsoft RIFF PAL."""
    if data[:4] == b"RIFF":
        return parse_riff_pal(data, name=name, file=file)
    return parse_jasc_pal(data, name=name, file=file)


def parse_jasc_pal(data: bytes, *, name: str, file: str) -> Palette:
    """JASC-PAL: ``JASC-PAL``, ``0100``, the colour count, then that many ``R G B`` lines."""
    lines = _decode_text(data).splitlines()

    def header_line(index: int, expected: str, valid: Callable[[str], bool]) -> str:
        text = lines[index].strip() if index < len(lines) else None
        if text is None or not valid(text):
            raise palette_error(
                "malformed JASC-PAL header",
                file=file,
                line=index + 1,
                column=1,
                expected=expected,
                found=repr(text) if text is not None else "end of file",
            )
        return text

    header_line(0, "'JASC-PAL'", lambda t: t == "JASC-PAL")
    header_line(1, "version '0100'", lambda t: t == "0100")
    declared = int(header_line(2, "the colour count (a number)", str.isdigit))
    colors: list[tuple[int, int, int]] = []
    last_row_line = 3
    for index in range(3, len(lines)):
        line_text = lines[index]
        stripped = line_text.strip()
        if not stripped:
            continue
        values = _parse_rgb_fields(line_text, stripped.split(), file=file, line_number=index + 1)
        if len(stripped.split()) > 3:
            # JASC rows are exactly R G B; a fourth field means a different format.
            raise palette_error(
                "malformed colour row",
                file=file,
                line=index + 1,
                column=_first_content_column(line_text),
                expected="'R G B' with values 0-255",
                found=repr(stripped),
            )
        colors.append((values[0], values[1], values[2]))
        last_row_line = index + 1
    if len(colors) != declared:
        raise palette_error(
            "colour count does not match the header",
            file=file,
            line=3,
            column=1,
            expected=f"{declared} colour rows (line 3)",
            found=f"{len(colors)} (last row on line {last_row_line})",
        )
    return _finish(name, colors, file=file, format_name="JASC-PAL")


def parse_riff_pal(data: bytes, *, name: str, file: str) -> Palette:
    """Microsoft RIFF palette: ``RIFF`` … ``PAL `` with a ``data`` chunk holding a
    LOGPALETTE (version, count, then count × ``R G B flags``)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"PAL ":
        raise palette_error(
            "not a RIFF palette",
            file=file,
            expected="'RIFF' … 'PAL ' header",
            found=repr(data[:12]),
        )
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (chunk_size,) = struct.unpack_from("<I", data, offset + 4)
        body = data[offset + 8 : offset + 8 + chunk_size]
        if chunk_id == b"data":
            if len(body) < 4:
                raise palette_error(
                    "truncated RIFF palette 'data' chunk",
                    file=file,
                    expected="at least 4 bytes (version, count)",
                    found=f"{len(body)} bytes",
                )
            _version, count = struct.unpack_from("<HH", body, 0)
            if len(body) < 4 + 4 * count:
                raise palette_error(
                    "truncated RIFF palette 'data' chunk",
                    file=file,
                    expected=f"{count} entries ({4 + 4 * count} bytes)",
                    found=f"{len(body)} bytes",
                )
            colors = [(body[4 + 4 * i], body[5 + 4 * i], body[6 + 4 * i]) for i in range(count)]
            return _finish(name, colors, file=file, format_name="RIFF PAL")
        offset += 8 + chunk_size + (chunk_size & 1)  # RIFF chunks are word-aligned
    raise palette_error(
        "RIFF palette has no 'data' chunk",
        file=file,
        expected="a 'data' chunk",
        found="none",
    )


# --------------------------------------------------------------------------- .png


def parse_png(data: bytes, *, name: str, file: str) -> Palette:
    """A swatch image: every distinct opaque colour in reading order (row-major).

    Fully transparent pixels are ignored; a partly transparent pixel is an error
    because a palette colour has no alpha to give it.
    """
    from ..images import open_checked, rgba_array

    try:
        with open_checked(io.BytesIO(data), MAX_SWATCH_PIXELS) as image:
            image.load()
            rgba = rgba_array(image)
    except Exception as exc:  # noqa: BLE001 - any decoder error (truncated data, a bomb) is a bad palette
        raise palette_error(
            "cannot read the swatch image",
            file=file,
            expected="a PNG image",
            found=str(exc) or type(exc).__name__,
        ) from None
    alpha = rgba[:, :, 3]
    partial = np.argwhere((alpha > 0) & (alpha < 255))
    if len(partial):
        y, x = (int(v) for v in partial[0])
        raise palette_error(
            "swatch pixel is partly transparent",
            file=file,
            expected="opaque (alpha 255) or fully transparent (alpha 0) pixels",
            found=f"alpha {int(alpha[y, x])} at pixel (x={x}, y={y})",
        )
    opaque = rgba[alpha == 255][:, :3]  # boolean indexing keeps row-major order
    packed = (
        (opaque[:, 0].astype(np.uint32) << 16) | (opaque[:, 1].astype(np.uint32) << 8) | opaque[:, 2].astype(np.uint32)
    )
    values, first_index = np.unique(packed, return_index=True)
    if len(values) > MAX_COLORS:
        raise palette_error(
            "swatch image has too many colours",
            file=file,
            expected=f"at most {MAX_COLORS} distinct opaque colours",
            found=f"{len(values)}",
            hint="a palette swatch is a small image of flat colour blocks, not artwork",
        )
    ordered = values[np.argsort(first_index, kind="stable")]
    colors = [(int(v >> 16) & 0xFF, int(v >> 8) & 0xFF, int(v) & 0xFF) for v in ordered]
    return _finish(name, colors, file=file, format_name="PNG swatch")


READERS: dict[str, PaletteParser] = {
    ".hex": parse_hex,
    ".gpl": parse_gpl,
    ".pal": parse_pal,
    ".png": parse_png,
}
"""Parser by lowercase file extension."""


def read_palette_file(path: Path, *, display_name: str | None = None, reads: ReadContext | None = None) -> Palette:
    """Read and parse ``path`` by its extension; diagnostics name ``display_name``
    (the project-relative path) when given. The palette is named after the file
    stem unless the format carries a name (GIMP ``Name:``)."""
    shown = display_name or str(path)
    parser = READERS.get(path.suffix.lower())
    if parser is None:
        raise palette_error(
            "unsupported palette file type",
            file=shown,
            expected=" ".join(READERS),
            found=repr(path.suffix or "no extension"),
        )
    try:
        size = path.stat().st_size
        if size > MAX_PALETTE_FILE_BYTES:
            raise palette_error(
                "palette file is too big",
                file=shown,
                expected=f"at most {MAX_PALETTE_FILE_BYTES} bytes",
                found=str(size),
            )
        data = ensure_reads(reads).read_bytes(path)
    except FileNotFoundError:
        raise palette_error("palette file not found", file=shown) from None
    except IsADirectoryError:
        raise palette_error("palette path is a directory, not a file", file=shown) from None
    except OSError as exc:
        raise palette_error("cannot read palette file", file=shown, found=exc.strerror) from None
    return parser(data, name=path.stem, file=shown)
