"""Palettes: built-ins, the four file readers, and manifest value resolution."""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparky_assets.errors import InvalidInput
from sparky_assets.palettes.builtin import BUILTIN_PALETTES
from sparky_assets.palettes.load import builtin_names, load_palette
from sparky_assets.palettes.model import Palette
from sparky_assets.palettes.readers import (
    READERS,
    parse_gpl,
    parse_hex,
    parse_jasc_pal,
    parse_pal,
    parse_png,
    read_palette_file,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "palettes"
SWEETIE = BUILTIN_PALETTES["sweetie-16"].colors


def only_diagnostic(excinfo: pytest.ExceptionInfo[InvalidInput]):
    assert len(excinfo.value.diagnostics) == 1
    diagnostic = excinfo.value.diagnostics[0]
    assert diagnostic.stage == "palette"
    return diagnostic


def png_bytes(rgba: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize(
    "name, count, first, last",
    [
        ("pico-8", 16, (0x00, 0x00, 0x00), (0xFF, 0xCC, 0xAA)),
        ("sweetie-16", 16, (0x1A, 0x1C, 0x2C), (0x33, 0x3C, 0x57)),
        ("endesga-32", 32, (0xBE, 0x4A, 0x2F), (0xC2, 0x85, 0x69)),
        ("endesga-64", 64, (0xFF, 0x00, 0x40), (0x57, 0x1C, 0x27)),
        ("dawnbringer-16", 16, (0x14, 0x0C, 0x1C), (0xDE, 0xEE, 0xD6)),
        ("dawnbringer-32", 32, (0x00, 0x00, 0x00), (0x8A, 0x6F, 0x30)),
        ("aap-64", 64, (0x06, 0x06, 0x08), (0x42, 0x39, 0x34)),
        ("1bit", 2, (0, 0, 0), (255, 255, 255)),
    ],
)
def test_builtin_palettes_have_the_published_size_and_endpoints(name, count, first, last):
    palette = BUILTIN_PALETTES[name]
    assert len(palette) == count
    assert palette.colors[0] == first
    assert palette.colors[-1] == last


def test_gameboy_is_the_four_dmg_greens_darkest_first():
    assert BUILTIN_PALETTES["gameboy"].colors == (
        (0x0F, 0x38, 0x0F),
        (0x30, 0x62, 0x30),
        (0x8B, 0xAC, 0x0F),
        (0x9B, 0xBC, 0x0F),
    )


def test_every_builtin_is_distinct_valid_rgb_and_named_lowercase_hyphenated():
    for name, palette in BUILTIN_PALETTES.items():
        assert name == palette.name == name.lower()
        assert " " not in name and "_" not in name
        assert 1 <= len(palette) <= 256
        assert len(set(palette.colors)) == len(palette.colors)
        assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in palette.colors)


def test_builtin_names_is_sorted_and_complete():
    assert builtin_names() == sorted(BUILTIN_PALETTES)


# ----------------------------------------------------------------------------- readers


@pytest.mark.parametrize(
    "fixture", ["sweetie-16.hex", "sweetie-16.gpl", "sweetie-16.pal", "sweetie-16-riff.pal", "sweetie-16.png"]
)
def test_each_format_of_sweetie_16_reads_back_the_builtin_colours_in_order(fixture):
    palette = read_palette_file(DATA / fixture)
    assert palette.colors == SWEETIE


def test_gpl_takes_its_name_from_the_name_line_and_others_from_the_file_stem():
    assert read_palette_file(DATA / "sweetie-16.gpl").name == "Sweetie 16"
    assert read_palette_file(DATA / "sweetie-16.hex").name == "sweetie-16"


def test_hex_accepts_hash_prefix_blank_lines_and_mixed_case():
    palette = parse_hex(b"\n#FF0000\n\n00ff00\n  #0000Ff  \n", name="p", file="p.hex")
    assert palette.colors == ((255, 0, 0), (0, 255, 0), (0, 0, 255))


def test_hex_names_the_line_column_and_text_of_a_bad_line():
    with pytest.raises(InvalidInput) as excinfo:
        parse_hex(b"ff0000\n00ff00\n\n  12345g\n", name="p", file="art/p.hex")
    diagnostic = only_diagnostic(excinfo)
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == ("art/p.hex", 4, 3)
    assert diagnostic.found == "'12345g'"
    assert "RRGGBB" in diagnostic.expected
    assert diagnostic.format().startswith("art/p.hex:4:3: ")


def test_gpl_parses_arbitrary_whitespace_comments_and_colour_names():
    text = b"GIMP Palette\nName: Test\nColumns: 4\n# comment\n\n  0   0 0\tBlack Night\n255\t255  255\n"
    palette = parse_gpl(text, name="stem", file="t.gpl")
    assert palette.name == "Test"
    assert palette.colors == ((0, 0, 0), (255, 255, 255))


def test_gpl_rgba_channels_ignore_alpha():
    text = b"GIMP Palette\nChannels: RGBA\n10 20 30 128 half\n40 50 60 255\n"
    assert parse_gpl(text, name="p", file="p.gpl").colors == ((10, 20, 30), (40, 50, 60))


def test_gpl_out_of_range_value_reports_line_column_and_row():
    text = b"GIMP Palette\nName: x\n# c\n12 300 7 Bad\n"
    with pytest.raises(InvalidInput) as excinfo:
        parse_gpl(text, name="p", file="p.gpl")
    diagnostic = only_diagnostic(excinfo)
    assert (diagnostic.line, diagnostic.column) == (4, 4)
    assert diagnostic.expected == "'R G B' with values 0-255"
    assert diagnostic.found == "'12 300 7'"
    assert "line" not in diagnostic.message  # the location lives in line/column
    assert diagnostic.format() == (
        "p.gpl:4:4: colour value out of range (expected 'R G B' with values 0-255, found '12 300 7') [palette]"
    )


def test_gpl_row_with_too_few_numbers_is_rejected():
    with pytest.raises(InvalidInput) as excinfo:
        parse_gpl(b"GIMP Palette\n1 2\n", name="p", file="p.gpl")
    assert only_diagnostic(excinfo).line == 2


def test_gpl_without_header_is_rejected_on_line_one():
    with pytest.raises(InvalidInput) as excinfo:
        parse_gpl(b"0 0 0\n", name="p", file="p.gpl")
    diagnostic = only_diagnostic(excinfo)
    assert diagnostic.line == 1
    assert diagnostic.expected == "'GIMP Palette' on the first line"


def test_jasc_pal_count_mismatch_is_reported():
    text = b"JASC-PAL\n0100\n3\n0 0 0\n1 1 1\n"
    with pytest.raises(InvalidInput) as excinfo:
        parse_jasc_pal(text, name="p", file="p.pal")
    diagnostic = only_diagnostic(excinfo)
    assert diagnostic.line == 3
    assert "3 colour rows" in diagnostic.expected
    assert diagnostic.found.startswith("2")


@pytest.mark.parametrize(
    "text, line",
    [(b"JASC\n0100\n1\n0 0 0\n", 1), (b"JASC-PAL\n0200\n1\n0 0 0\n", 2), (b"JASC-PAL\n0100\nx\n", 3)],
)
def test_jasc_pal_header_errors_name_the_header_line(text, line):
    with pytest.raises(InvalidInput) as excinfo:
        parse_pal(text, name="p", file="p.pal")
    assert only_diagnostic(excinfo).line == line


def test_riff_pal_without_data_chunk_is_rejected():
    data = b"RIFF" + struct.pack("<I", 4) + b"PAL "
    with pytest.raises(InvalidInput):
        parse_pal(data, name="p", file="p.pal")


def test_duplicates_are_dropped_keeping_the_first_position():
    palette = parse_hex(b"ff0000\n00ff00\nff0000\n0000ff\n00ff00\n", name="p", file="p.hex")
    assert palette.colors == ((255, 0, 0), (0, 255, 0), (0, 0, 255))


@pytest.mark.parametrize(
    "parser, data",
    [
        (parse_hex, b"\n\n"),
        (parse_gpl, b"GIMP Palette\nName: empty\n"),
        (parse_jasc_pal, b"JASC-PAL\n0100\n0\n"),
    ],
)
def test_empty_palettes_are_errors(parser, data):
    with pytest.raises(InvalidInput) as excinfo:
        parser(data, name="p", file="p")
    assert only_diagnostic(excinfo).expected == "at least one colour"


def test_more_than_256_distinct_colours_is_an_error():
    data = "\n".join(f"{i:06x}" for i in range(257)).encode()
    with pytest.raises(InvalidInput) as excinfo:
        parse_hex(data, name="p", file="p.hex")
    assert only_diagnostic(excinfo).found == "257"
    # 256 distinct plus repeats is fine
    data = "\n".join(f"{i % 256:06x}" for i in range(600)).encode()
    assert len(parse_hex(data, name="p", file="p.hex")) == 256


def test_png_swatch_reads_row_major_ignores_transparent_and_dedupes():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (9, 9, 9, 255)
    rgba[0, 1] = (0, 0, 0, 0)  # transparent: ignored
    rgba[0, 2] = (1, 2, 3, 255)
    rgba[1, 0] = (200, 100, 50, 255)
    rgba[1, 1] = (9, 9, 9, 255)  # repeat: ignored
    rgba[1, 2] = (255, 255, 255, 0)  # transparent with a colour: still ignored
    palette = parse_png(png_bytes(rgba), name="s", file="s.png")
    assert palette.colors == ((9, 9, 9), (1, 2, 3), (200, 100, 50))


def test_png_swatch_rejects_partly_transparent_pixels_and_too_many_colours():
    rgba = np.full((1, 2, 4), 255, np.uint8)
    rgba[0, 1, 3] = 37
    with pytest.raises(InvalidInput) as excinfo:
        parse_png(png_bytes(rgba), name="s", file="s.png")
    assert "alpha 37 at pixel (x=1, y=0)" in only_diagnostic(excinfo).found

    values = np.arange(300, dtype=np.uint32)
    rgba = np.zeros((1, 300, 4), np.uint8)
    rgba[0, :, 1] = values >> 8
    rgba[0, :, 2] = values & 0xFF
    rgba[0, :, 3] = 255
    with pytest.raises(InvalidInput) as excinfo:
        parse_png(png_bytes(rgba), name="s", file="s.png")
    assert only_diagnostic(excinfo).found == "300"


def test_png_that_is_not_an_image_is_a_clear_error():
    with pytest.raises(InvalidInput) as excinfo:
        parse_png(b"not a png", name="s", file="s.png")
    assert only_diagnostic(excinfo).expected == "a PNG image"


def test_readers_registry_covers_the_documented_extensions():
    assert sorted(READERS) == [".gpl", ".hex", ".pal", ".png"]


# ----------------------------------------------------------------------------- load_palette


def test_load_builtin_names_case_insensitively(tmp_path):
    assert load_palette("Endesga-32", tmp_path) is BUILTIN_PALETTES["endesga-32"]
    assert load_palette(" pico-8 ", tmp_path) is BUILTIN_PALETTES["pico-8"]


def test_unknown_name_suggests_the_closest_builtin_and_lists_all(tmp_path):
    with pytest.raises(InvalidInput) as excinfo:
        load_palette("endesga32", tmp_path, manifest_file="sparky.toml", key="project.palette")
    diagnostic = only_diagnostic(excinfo)
    assert diagnostic.message == "unknown palette 'endesga32'"
    assert diagnostic.hint == "did you mean 'endesga-32'?"
    assert (diagnostic.file, diagnostic.key) == ("sparky.toml", "project.palette")
    for name in builtin_names():
        assert name in diagnostic.expected
    assert "unknown palette 'endesga32'" in str(excinfo.value)
    assert "did you mean 'endesga-32'?" in str(excinfo.value)


def test_load_files_relative_to_the_root_and_errors_name_the_relative_path(tmp_path):
    (tmp_path / "art").mkdir()
    shutil.copy(DATA / "sweetie-16.gpl", tmp_path / "art" / "mine.gpl")
    assert load_palette("art/mine.gpl", tmp_path).colors == SWEETIE

    (tmp_path / "art" / "bad.hex").write_text("ff0000\nzzz\n")
    with pytest.raises(InvalidInput) as excinfo:
        load_palette("art/bad.hex", tmp_path)
    diagnostic = only_diagnostic(excinfo)
    assert (diagnostic.file, diagnostic.line) == ("art/bad.hex", 2)


def test_paths_escaping_the_root_are_refused(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.hex").write_text("ff0000\n")
    (project / "link.hex").symlink_to(tmp_path / "outside.hex")
    for value in ["../outside.hex", str(tmp_path / "outside.hex"), "link.hex"]:
        with pytest.raises(InvalidInput) as excinfo:
            load_palette(value, project, key="project.palette")
        assert "outside the project root" in only_diagnostic(excinfo).message


def test_unknown_extension_lists_the_supported_ones(tmp_path):
    (tmp_path / "p.act").write_bytes(b"\0" * 768)
    with pytest.raises(InvalidInput) as excinfo:
        load_palette("p.act", tmp_path)
    assert only_diagnostic(excinfo).expected == "one of .hex .gpl .pal .png"


def test_missing_file_and_directory_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInput) as excinfo:
        load_palette("nope.hex", tmp_path, manifest_file="sparky.toml")
    assert only_diagnostic(excinfo).message == "palette file 'nope.hex' not found"
    (tmp_path / "dir.gpl").mkdir()
    with pytest.raises(InvalidInput) as excinfo:
        load_palette("dir.gpl", tmp_path)
    assert "not a file" in only_diagnostic(excinfo).message


def test_a_palette_file_is_read_through_the_read_context_found_or_not(tmp_path):
    from sparky_assets.reads import ABSENT, ReadContext

    reads = ReadContext()
    load_palette("endesga-32", tmp_path, reads=reads)
    assert reads.record == {}  # a built-in reads no file
    with pytest.raises(InvalidInput):
        load_palette("palettes/p.hex", tmp_path, reads=reads)
    missing = (tmp_path / "palettes" / "p.hex").resolve()
    assert reads.record == {missing: ABSENT}  # its creation must count as a change
    missing.parent.mkdir()
    shutil.copy(DATA / "sweetie-16.hex", missing)
    assert not reads.unchanged()
    load_palette("palettes/p.hex", tmp_path, reads=reads)
    assert reads.record[missing] == hashlib.sha256(missing.read_bytes()).hexdigest() and reads.unchanged()


def test_loaded_palette_is_a_model_palette_with_a_content_digest(tmp_path):
    shutil.copy(DATA / "sweetie-16.hex", tmp_path / "a.hex")
    palette = load_palette("a.hex", tmp_path)
    assert isinstance(palette, Palette)
    assert palette.digest() == BUILTIN_PALETTES["sweetie-16"].digest()
