"""Pixelize on real pixel art (crafter sprites, tests/data/pixelart) degraded the ways
models and file formats degrade it: fractional and drifting grids, blur, JPEG halos,
soft shadows, shading ramps. Every check is exact after the sprite's own palette lock.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from sparky_assets.cli.main import main as cli_main
from sparky_assets.palettes import Palette
from sparky_assets.process.pixelize import (
    SPLIT_GAIN,
    Grid,
    _Flatness,
    detect_grid,
    grid_misfit,
    lock_cells,
    pixelize,
    pixelize_result,
    refinement_gain,
    settle_octave,
)
from sparky_assets.process.quantize import quantize_to_palette

DATA = Path(__file__).resolve().parents[1] / "data" / "pixelart"
WHITE = (255, 255, 255)


def sprite(name: str) -> np.ndarray:
    rgba = np.asarray(Image.open(DATA / f"{name}.png").convert("RGBA")).copy()
    rgba[..., 3] = np.where(rgba[..., 3] >= 128, 255, 0)
    rgba[rgba[..., 3] == 0] = 0
    return rgba


def palette_of(rgba: np.ndarray) -> Palette:
    colours = np.unique(rgba[rgba[..., 3] == 255][:, :3], axis=0)
    return Palette("sprite", tuple(tuple(int(v) for v in c) for c in colours))


def flatten(rgba: np.ndarray, background=WHITE) -> np.ndarray:
    rgb = rgba[..., :3].copy()
    rgb[rgba[..., 3] == 0] = background
    return rgb


def resize(rgb: np.ndarray, scale_x: float, scale_y: float | None = None, method=Image.NEAREST) -> np.ndarray:
    height, width = rgb.shape[:2]
    size = (round(width * scale_x), round(height * (scale_y or scale_x)))
    return np.asarray(Image.fromarray(rgb).resize(size, method))


def jpeg(rgb: np.ndarray, quality: int = 70) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=2)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def exact_fraction(result: np.ndarray, truth: np.ndarray) -> float:
    assert result.shape == truth.shape
    locked = quantize_to_palette(np.ascontiguousarray(result), palette_of(truth))
    t_opaque, o_opaque = truth[..., 3] == 255, locked[..., 3] == 255
    right = (~t_opaque & ~o_opaque) | (t_opaque & o_opaque & (locked[..., :3] == truth[..., :3]).all(-1))
    return float(right.mean())


# --------------------------------------------------------------------------- grids


@pytest.mark.parametrize("scale", [2.5, 3.0, 5.5, 7.3, 12.0])
def test_fractional_and_integer_scales_are_exact_with_the_size(scale):
    truth = sprite("zombie")
    image = resize(flatten(truth), scale)
    result = pixelize_result(image, target_size=(16, 16), palette=palette_of(truth))
    assert exact_fraction(result.image, truth) == 1.0
    assert result.source == "size"
    assert result.grid.period_x == pytest.approx(image.shape[1] / 16, rel=0.01)


@pytest.mark.parametrize("scale", [3.0, 5.5, 7.3])
def test_fractional_period_is_detected_without_the_size(scale):
    image = resize(flatten(sprite("cow")), scale)
    grid = detect_grid(image)
    assert grid.period_x == pytest.approx(image.shape[1] / 16, rel=0.015)
    assert grid.period_y == pytest.approx(image.shape[0] / 16, rel=0.015)
    assert grid.confidence > 0.9
    assert pixelize(image).shape[:2] == (16, 16)


def test_octave_error_is_resolved_to_the_true_period():
    # Most colour changes of this sprite fall on every other cell line at x4; the
    # comb of period 8 then fits almost as well, but the lines in between are real.
    truth = sprite("player")
    image = resize(flatten(truth), 4.0)
    assert detect_grid(image).period_x == pytest.approx(4.0, rel=0.01)


def test_phase_offset_with_cut_cells_at_the_edges():
    truth = sprite("iron_sword")
    canvas = np.full((17, 17, 3), 255, np.uint8)
    canvas[:16, :16] = flatten(truth)
    big = resize(canvas, 6.0)
    shifted = np.full_like(big, 255)
    shifted[2:, 4:] = big[:-2, :-4]  # grid lines at 4 (x) and 2 (y) px, cut cells at both ends
    result = pixelize_result(shifted, target_size=(16, 16), palette=palette_of(truth))
    assert exact_fraction(result.image, truth) == 1.0
    assert result.grid.phase_x == pytest.approx(4.0, abs=0.5)
    assert result.grid.phase_y == pytest.approx(2.0, abs=0.5)


def drifting_upscale(rgb: np.ndarray, start: float, end: float) -> np.ndarray:
    """Cells that widen smoothly from ``start`` px (left/top) to ``end`` px."""
    cells = rgb.shape[0]
    widths = np.linspace(start, end, cells)
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    length = int(round(edges[-1]))
    centres = np.arange(length) + 0.5
    index = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, cells - 1)
    return rgb[index][:, index]


def test_drifting_grid_is_followed():
    truth = np.concatenate([np.concatenate([sprite("zombie"), sprite("cow")], 1)] * 2, 0)  # 32x32 cells
    image = drifting_upscale(flatten(truth), 5.5, 6.5)  # 3 px off a uniform grid mid-way
    result = pixelize_result(image, target_size=(32, 32), palette=palette_of(truth))
    assert exact_fraction(result.image, truth) >= 0.995
    assert result.grid.drift_x != 0
    uniform = pixelize_result(
        image, grid=Grid(image.shape[1] / 32, image.shape[0] / 32), target_size=(32, 32), palette=palette_of(truth)
    )
    assert exact_fraction(uniform.image, truth) < exact_fraction(result.image, truth)


def test_known_size_wins_over_a_clearer_grid_of_another_size_unless_overwhelming():
    truth = sprite("cow")
    image = resize(flatten(truth), 6.0)  # 96 px: 16 cells of 6 px
    # 16 cells is what the image holds: fitted, confidently.
    fitted = pixelize_result(image, target_size=(16, 16))
    assert fitted.source == "size" and fitted.grid.confidence > 0.9
    # A size with no grid of that cell count in the image (8 cells of 12 px): the
    # evidence for 16 cells is overwhelming, so that grid is used (and said so).
    other = pixelize_result(image, target_size=(8, 8))
    assert other.source == "override"
    assert other.grid.period_x == pytest.approx(6.0, rel=0.02)
    assert other.image.shape[:2] == (8, 8)


def test_confidence_separates_grids_from_noise():
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert detect_grid(noise).confidence < 0.3
    assert pixelize_result(noise, target_size=(16, 16)).grid.confidence < 0.3
    assert detect_grid(np.full((64, 64, 3), 200, np.uint8)).confidence == 0.0
    assert detect_grid(resize(flatten(sprite("zombie")), 5.5)).confidence > 0.9
    assert pixelize_result(jpeg(resize(flatten(sprite("zombie")), 5.5)), target_size=(16, 16)).grid.confidence > 0.5


# --------------------------------------------------------------------------- colour


def ramp_sprite() -> np.ndarray:
    """A 16x16 sprite: an outlined ball shaded by a 6-step ramp 12 levels apart."""
    ramp = [(60 + 12 * i, 90 + 12 * i, 160 + 12 * i) for i in range(6)]
    rgba = np.zeros((16, 16, 4), np.uint8)
    yy, xx = np.mgrid[0:16, 0:16]
    distance = np.hypot(yy - 7.5, xx - 7.5)
    inside = distance < 6.5
    shade = np.clip(((xx + yy) / 30 * 6).astype(int), 0, 5)
    rgba[inside, :3] = np.array(ramp, np.uint8)[shade[inside]]
    rgba[inside, 3] = 255
    outline = (distance >= 6.5) & (distance < 7.6)
    rgba[outline] = (20, 20, 30, 255)
    return rgba


def test_shading_ramp_survives_blur_and_jpeg_without_a_palette():
    truth = ramp_sprite()
    image = jpeg(np.asarray(Image.fromarray(resize(flatten(truth), 6.0)).filter(ImageFilter.GaussianBlur(1.0))))
    result = pixelize(image, target_size=(16, 16))
    opaque = truth[..., 3] == 255
    assert ((result[..., 3] == 255) == opaque).all()
    # Every real shade keeps its own colour: close (within JPEG's error) and distinct.
    error = np.abs(result[..., :3].astype(int) - truth[..., :3].astype(int))[opaque].max(axis=-1)
    assert np.percentile(error, 90) <= 6  # a ramp step is 12
    assert len(np.unique(result[opaque][:, :3], axis=0)) >= len(palette_of(truth).colors)
    assert exact_fraction(pixelize(image, target_size=(16, 16), palette=palette_of(truth)), truth) == 1.0


def test_small_cells_are_unmixed_only_where_blur_mixed_them():
    truth = ramp_sprite()
    blurred = np.asarray(Image.fromarray(resize(flatten(truth), 3.0)).filter(ImageFilter.GaussianBlur(1.0)))
    result = pixelize_result(blurred, target_size=(16, 16), palette=palette_of(truth))
    assert exact_fraction(result.image, truth) >= 0.98  # 3-px cells under σ 1 blur: 4 of 256 cells may flip
    assert result.kernel["Y"].startswith("box σ")  # a blur kernel was chosen...
    crisp = pixelize_result(resize(flatten(truth), 3.0), target_size=(16, 16))
    assert crisp.kernel["Y"] == "box σ0"  # ...and none when there is no blur


def test_bicubic_model_render_with_cell_jitter():
    truth = sprite("zombie")
    rng = np.random.default_rng(7)
    jittered = np.clip(flatten(truth) + rng.normal(0, 3, (16, 16, 3)), 0, 255).round().astype(np.uint8)
    image = resize(jittered, 512 / 16 * 0.97, method=Image.BICUBIC)
    result = pixelize_result(image, target_size=(16, 16), palette=palette_of(truth))
    assert exact_fraction(result.image, truth) >= 0.99


# --------------------------------------------------------------------------- background


def test_jpeg_halos_do_not_eat_the_outline_or_leave_specks():
    truth = ramp_sprite()
    image = jpeg(resize(flatten(truth), 5.0), quality=60)
    result = pixelize(image, target_size=(16, 16))  # background "auto", no palette
    assert ((result[..., 3] == 255) == (truth[..., 3] == 255)).all()
    outline = (truth[..., :3] == (20, 20, 30)).all(-1) & (truth[..., 3] == 255)
    # The outline stays dark (JPEG moves a 1-cell line's chroma, not its lightness).
    lightness = result[outline][:, :3].astype(float) @ np.array([0.299, 0.587, 0.114])
    assert lightness.max() <= 40


def test_soft_shadow_becomes_transparent():
    truth = ramp_sprite()
    big = resize(flatten(truth), 6.0).astype(np.float64)
    yy, xx = np.mgrid[0 : big.shape[0], 0 : big.shape[1]]
    shadow = np.exp(-(((yy - 88) / 6) ** 2 + ((xx - 48) / 30) ** 2)) * 0.25  # under the ball
    background = (flatten(truth) == 255).all(-1)
    mask = resize(background.astype(np.uint8) * 255, 6.0) > 0
    big[mask] *= (1 - shadow[mask])[:, None]
    image = np.asarray(Image.fromarray(big.round().astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8)))
    result = pixelize(image, target_size=(16, 16), palette=palette_of(truth))
    assert exact_fraction(result, truth) == 1.0


def test_key_colour_and_none_and_existing_alpha():
    truth = sprite("cow")
    image = resize(flatten(truth, (255, 0, 255)), 4.0)
    keyed = pixelize(image, target_size=(16, 16), background="#ff00ff", palette=palette_of(truth))
    assert exact_fraction(keyed, truth) == 1.0
    kept = pixelize(image, target_size=(16, 16), background="none")
    assert (kept[..., 3] == 255).all()
    rgba = resize(truth, 4.0)  # already transparent: alpha does the work
    assert exact_fraction(pixelize(rgba, target_size=(16, 16)), truth) == 1.0


def test_outputs_keep_the_invariants_and_are_deterministic():
    image = jpeg(resize(flatten(sprite("player")), 5.5))
    first = pixelize_result(image, target_size=(16, 16))
    second = pixelize_result(image, target_size=(16, 16))
    assert np.array_equal(first.image, second.image) and first.as_dict() == second.as_dict()
    assert set(np.unique(first.image[..., 3])) <= {0, 255}
    assert (first.image[first.image[..., 3] == 0][:, :3] == 0).all()
    assert "16x16" not in first.summary() or "confidence" in first.summary()
    assert pixelize(image[:4, :4], target_size=(16, 16)).shape == (16, 16, 4)


# --------------------------------------------------------------------------- command


def test_pixelize_command(tmp_path, capsys):
    truth = sprite("zombie")
    source = tmp_path / "in.png"
    Image.fromarray(jpeg(resize(flatten(truth), 5.5))).save(source)
    out = tmp_path / "out.png"
    assert cli_main(["pixelize", str(source), str(out), "--size", "16", "16"]) == 0
    result = np.asarray(Image.open(out))
    assert result.shape == (16, 16, 4)
    assert "16x16 px from" in capsys.readouterr().out
    assert exact_fraction(result, truth) >= 0.98
    assert cli_main(["pixelize", str(tmp_path / "missing.png"), str(out)]) == 2
    assert cli_main(["pixelize", str(source), str(out), "--background", "red"]) == 2
    assert cli_main(["pixelize", str(source), str(out), "--palette", "no-such-palette"]) == 2


# --------------------------------------------------------------------------- octaves by flatness


def test_flatness_settles_a_half_or_double_period_comb_guess():
    # Pixel-art cells are flat: a grid twice too fine splits flat cells (gain ≈ noise),
    # one twice too coarse leaves real lines inside its cells (gain far above it).
    truth = sprite("player")
    rng = np.random.default_rng(5)
    image = np.clip(resize(flatten(truth), 6.0) + rng.normal(0, 6, (96, 96, 3)), 0, 255).astype(np.uint8)
    rgba = np.concatenate([image, np.full((96, 96, 1), 255, np.uint8)], axis=2)
    flat = _Flatness(rgba)
    true = Grid(6.0, 6.0)
    assert refinement_gain(flat, true, Grid(3.0, 3.0)) < SPLIT_GAIN / 2
    assert refinement_gain(flat, Grid(12.0, 12.0), true) > 4 * SPLIT_GAIN
    for guess in (Grid(3.0, 3.0), Grid(12.0, 12.0), Grid(2.0, 2.0)):
        settled = settle_octave(rgba, guess)
        assert settled.period_x == pytest.approx(6.0) and settled.period_y == pytest.approx(6.0)
        assert settled.phase_x % 6.0 == pytest.approx(0.0)


def test_a_smooth_render_is_not_split_into_finer_cells():
    # Bicubic cells have no flat interior; the lines a finer grid would add carry no
    # crisp change, so the render's own grid stays.
    truth = sprite("zombie")
    image = resize(flatten(truth), 24.0, method=Image.BICUBIC)
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert settle_octave(rgba, Grid(24.0, 24.0)).period_x == pytest.approx(24.0)


def test_render_margin_of_cut_background_cells_is_dropped_without_a_size():
    truth = sprite("cow")
    canvas = np.full((18, 18, 3), 255, np.uint8)
    canvas[1:17, 1:17] = flatten(truth)
    big = resize(canvas, 30.0)  # 540 px, 16 cells of 30 px inside a one-cell margin
    cropped = big[28:-2, 2:-28]  # margins of 2 and 28 px: cut cells of background
    result = pixelize_result(cropped, palette=palette_of(truth), background=WHITE)
    assert result.image.shape[:2] == (16, 16)
    assert exact_fraction(result.image, truth) == 1.0


def test_cells_lock_exactly_as_the_palette_lock_does():
    rng = np.random.default_rng(1)
    cells = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)
    cells[..., 3] = np.where(rng.random((24, 24)) < 0.8, 255, 0)
    palette = palette_of(sprite("player"))
    locked = lock_cells(cells, np.array(palette.colors, np.float64))
    expected = quantize_to_palette(cells, palette)
    assert np.array_equal(locked, expected)


def test_known_size_prefers_the_flatter_of_the_comb_grid_and_the_even_division():
    truth = sprite("zombie")
    image = resize(flatten(truth), 2.5)  # cells of 2 and 3 px alternating
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    flat = _Flatness(rgba)
    even = Grid(2.5, 2.5)
    bent = Grid(2.44, 2.44, 0.0, 0.0, 1.0, 0.4, 0.4)  # one cell too many, bent to fit
    # 2–3 px cells leave interiors of a pixel or two: a tie, which the even division wins.
    assert grid_misfit(flat, even) <= grid_misfit(flat, bent)
    assert grid_misfit(flat, even) < grid_misfit(flat, Grid(5.0, 5.0))
    big = resize(flatten(truth), 6.0)
    flat = _Flatness(np.concatenate([big, np.full(big.shape[:2] + (1,), 255, np.uint8)], axis=2))
    assert grid_misfit(flat, Grid(6.0, 6.0)) < grid_misfit(flat, Grid(5.8, 5.8, 0.0, 0.0, 1.0, 0.4, 0.4))
    result = pixelize_result(image, target_size=(16, 16), palette=palette_of(truth))
    assert exact_fraction(result.image, truth) == 1.0


def test_counting_median_and_channel_sum_equal_numpy():
    # The grid fit's fast paths must give numpy's exact numbers (outputs stay byte-identical).
    from sparky_assets.process.pixelize import _channel_sum, _int_median

    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 4, 101, 1000):
        for high in (1, 2, 9, 766, 195076):
            values = rng.integers(0, high, size)
            assert _int_median(values) == float(np.median(values)), (size, high)
    planes = rng.integers(0, 1021, (5, 7, 4)).astype(np.int16)
    assert np.array_equal(_channel_sum(planes), planes.sum(axis=2, dtype=np.int32))
    assert _channel_sum(planes).dtype == np.int32


def test_span_sums_and_rect_means_equal_plain_sums():
    # Interior means come from integer sums over ordered, disjoint spans (one reduceat
    # pass): empty spans, a span reaching the last pixel and adjacent spans included.
    from sparky_assets.process.pixelize import _rect_means, _span_sums

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (23, 31, 4), dtype=np.uint8)
    lo, hi = np.array([0, 4, 4, 9, 12, 30]), np.array([3, 4, 9, 12, 20, 31])
    sums = _span_sums(image, lo, hi, 1)
    for k, (a, b) in enumerate(zip(lo, hi)):
        assert np.array_equal(sums[:, k], image[:, a:b].astype(np.int64).sum(axis=1)), k
    with pytest.raises(ValueError):
        _span_sums(image, np.array([0, 2]), np.array([3, 5]), 0)
    y_spans = (np.array([0, 5, 22]), np.array([5, 6, 23]))
    means, valid = _rect_means(image, (lo, hi), y_spans, 2)
    for i, (y0, y1) in enumerate(zip(*y_spans)):
        for k, (x0, x1) in enumerate(zip(lo, hi)):
            block = image[y0:y1, x0:x1].reshape(-1, 4)
            assert valid[i, k] == (y1 - y0 >= 2 and x1 - x0 >= 2)
            if block.size:
                assert np.allclose(means[i, k], block.mean(axis=0), rtol=0, atol=1e-9)


def test_box_average_and_strided_profiles():
    from sparky_assets.process.pixelize import _box_average, change_profiles

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (50, 37, 4), dtype=np.uint8)
    for factor in (2, 3, 17):
        small = _box_average(image, factor)
        h, w = 50 // factor, 37 // factor
        blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, 4).astype(np.float64)
        assert small.shape == (h, w, 4) and small.dtype == np.uint8
        assert np.abs(small - blocks.mean(axis=(1, 3))).max() <= 0.5
    # Cells many rows tall: every 4th row sees the same column boundaries as all rows.
    truth = sprite("zombie")
    big = np.concatenate([resize(flatten(truth), 24.0), np.full((384, 384, 1), 255, np.uint8)], axis=2)
    full_x, full_y = change_profiles(big, 1)
    strided_x, strided_y = change_profiles(big, 1, 4)
    assert np.array_equal(np.nonzero(full_x)[0], np.nonzero(strided_x)[0])
    assert np.array_equal(np.nonzero(full_y)[0], np.nonzero(strided_y)[0])


def test_large_cells_are_fitted_on_strided_profiles_and_keep_the_phase():
    # 26.3-px cells, lines at 11.3 + k·26.3 px: the fit works on every 3rd row / column
    # and a 3x box-averaged image, and the grid it returns is in the full image's pixels.
    truth = sprite("zombie")
    canvas = np.full((18, 18, 3), 255, np.uint8)
    canvas[1:17, 1:17] = flatten(truth)
    image = resize(canvas, 26.3, method=Image.BICUBIC)[15:-22, 15:-22]
    options = {"target_size": (16, 16), "palette": palette_of(truth), "background": WHITE}
    result = pixelize_result(image, **options)
    assert result.source == "size"
    assert result.grid.period_x == pytest.approx(26.3, abs=0.2)
    for phase in (result.grid.phase_x, result.grid.phase_y):
        off = (phase - 11.3) % result.grid.period_x
        assert min(off, result.grid.period_x - off) < 1.0
    true_grid = pixelize_result(image, grid=Grid(26.3, 26.3, 11.3, 11.3), **options)
    assert (result.image == true_grid.image).all(axis=-1).mean() >= 0.99


def test_blas_runs_on_one_thread_inside_pixelize_and_is_restored():
    from threadpoolctl import threadpool_info

    import sparky_assets.process.pixelize as module

    seen = []

    @module._one_blas_thread
    def probe():
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    probe()
    assert seen and all(n == 1 for n in seen)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before

    # nested decorated calls run inside the outermost limit, which alone restores it
    @module._one_blas_thread
    def outer():
        probe()
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    seen.clear()
    outer()
    assert seen and all(n == 1 for n in seen)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_cells_of_two_and_a_half_px_are_not_bent_without_the_size():
    # Nearest-neighbour 2.5-px cells are 2 and 3 px wide in turn: a drifting grid can
    # fit that rounding (one cell too many), so cells under DRIFT_MIN_PERIOD px never
    # bend. Lines of 27 cells with 60% of them changing (the seed bent the old fit).
    from sparky_assets.process.pixelize import _fit_axis

    rng = np.random.default_rng(10)
    profile = np.zeros(71)
    lines = np.floor(np.arange(1, 28) * 2.5 + 0.5).astype(int)
    changing = rng.random(lines.size) < 0.6
    profile[lines[changing]] = rng.integers(20, 100, int(changing.sum()))
    fit = _fit_axis(profile, 0.4)
    assert fit.drift == 0.0
    assert fit.period == pytest.approx(2.5)
    truth = np.concatenate([np.concatenate([sprite("zombie"), sprite("cow")], 1)] * 2, 0)  # 32x32 cells
    result = pixelize_result(resize(flatten(truth), 2.5), palette=palette_of(truth), background=WHITE)
    assert (result.grid.drift_x, result.grid.drift_y) == (0.0, 0.0)
    assert exact_fraction(result.image, truth) == 1.0


def test_render_margin_of_almost_a_whole_cell_is_dropped_without_a_size():
    # Margins of 29 px around 30-px cells (0.97 of a cell): an edge cell more than half
    # a pixel short of a full one is cut (CUT_SLACK), and this one is background.
    truth = sprite("cow")
    canvas = np.full((18, 18, 3), 255, np.uint8)
    canvas[1:17, 1:17] = flatten(truth)
    cropped = resize(canvas, 30.0)[1:-1, 1:-1]
    result = pixelize_result(cropped, palette=palette_of(truth), background=WHITE)
    assert result.image.shape[:2] == (16, 16)
    assert exact_fraction(result.image, truth) == 1.0
