"""Specification tests for ``sparky_assets.pack.maxrects.pack_maxrects``.

Every packing result is checked with an independent numpy occupancy grid: each rect
is painted together with its padding gap (``padding`` pixels to the right and below,
which is what "at least ``padding`` empty pixels between any two rects" means on a
pixel grid), and no grid cell may be painted twice.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparky_assets.pack.maxrects import (
    PackError,
    PackResult,
    Placement,
    occupancy,
    pack_maxrects,
)


def assert_valid_packing(
    sizes: list[tuple[int, int]],
    result: PackResult,
    max_width: int,
    max_height: int,
    padding: int = 0,
) -> None:
    """Inside its page, no overlap, gaps >= padding, page sizes within the max and tight."""
    assert len(result.placements) == len(sizes)
    assert all(isinstance(p, Placement) for p in result.placements)
    used_pages = {p.page for p in result.placements}
    assert used_pages == set(range(len(result.page_sizes))), "every page holds a rect"
    grids = []
    for page_w, page_h in result.page_sizes:
        assert 1 <= page_w <= max_width and 1 <= page_h <= max_height
        # The extra padding margin lets the gap of a rect on the right/bottom border
        # be painted without clipping (no gap is needed at the border itself).
        grids.append(np.zeros((page_h + padding, page_w + padding), dtype=np.int32))
    for index, ((w, h), place) in enumerate(zip(sizes, result.placements)):
        page_w, page_h = result.page_sizes[place.page]
        assert place.x >= 0 and place.y >= 0, f"rect {index} at negative position"
        assert place.x + w <= page_w and place.y + h <= page_h, (
            f"rect {index} ({w}x{h} at {place}) leaves its {page_w}x{page_h} page"
        )
        grids[place.page][place.y : place.y + h + padding, place.x : place.x + w + padding] += 1
    for page, grid in enumerate(grids):
        assert grid.max() <= 1, f"page {page}: rects overlap or are closer than {padding} px"


@pytest.fixture(autouse=True, params=["compiled", "python"])
def packer_path(request, monkeypatch):
    """Every test here runs on the compiled core (``_cmaxrects``, what a normal install
    uses) and on the Python packer (the reference, and the fallback without a compiler)."""
    from sparky_assets.pack import maxrects

    if request.param == "python":
        monkeypatch.setattr(maxrects, "_cmaxrects", None)
    elif maxrects._cmaxrects is None:
        pytest.skip("the compiled packer is not built (pip install -e . builds it)")
    return request.param


def random_sizes(seed: int, count: int, low: int = 8, high: int = 64) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(w), int(h)) for w, h in rng.integers(low, high + 1, size=(count, 2))]


# --- the basics ---------------------------------------------------------------------


def test_empty_input_gives_no_pages():
    assert pack_maxrects([], 64, 64) == PackResult(placements=(), page_sizes=())


def test_single_rect_sits_at_the_origin_on_a_page_of_its_own_size():
    result = pack_maxrects([(10, 7)], 64, 64)
    assert result.placements == (Placement(0, 0, 0),)
    assert result.page_sizes == ((10, 7),)


def test_rect_exactly_the_max_size_fits():
    result = pack_maxrects([(64, 32)], 64, 32)
    assert result.placements == (Placement(0, 0, 0),)
    assert result.page_sizes == ((64, 32),)


def test_placements_follow_input_order():
    sizes = [(4, 4), (30, 30), (10, 2), (2, 10), (16, 16)]
    result = pack_maxrects(sizes, 64, 64)
    assert_valid_packing(sizes, result, 64, 64)
    # The big rect is packed first (largest side first) and lands at the origin, but
    # its placement is still reported in its input slot.
    assert result.placements[1] == Placement(0, 0, 0)
    assert result.placements[0] != Placement(0, 0, 0)


def test_packing_is_deterministic_and_depends_only_on_the_sizes():
    sizes = random_sizes(7, 200)
    first = pack_maxrects(sizes, 512, 512, padding=1)
    assert pack_maxrects(list(sizes), 512, 512, padding=1) == first
    assert pack_maxrects(tuple(sizes), 512, 512, padding=1) == first
    assert pack_maxrects(np.array(sizes), 512, 512, padding=1) == first


def test_equal_rects_are_tie_broken_by_index():
    """Identical sizes are interchangeable; the lower index takes the earlier spot."""
    result = pack_maxrects([(8, 8)] * 4, 16, 16)
    assert [(p.x, p.y) for p in result.placements] == [(0, 0), (8, 0), (0, 8), (8, 8)]


# --- tight packing and pages ----------------------------------------------------------


@pytest.mark.parametrize("side, page", [(8, 64), (16, 256), (10, 50), (32, 2048)])
def test_equal_squares_fill_full_pages_exactly(side, page):
    per_page = (page // side) ** 2
    sizes = [(side, side)] * (2 * per_page)
    result = pack_maxrects(sizes, page, page)
    assert_valid_packing(sizes, result, page, page)
    assert result.page_sizes == ((page, page), (page, page))
    assert occupancy(sizes, result) == 1.0
    assert [sum(p.page == k for p in result.placements) for k in (0, 1)] == [per_page] * 2


def test_equal_squares_make_a_square_page_without_waste():
    sizes = [(16, 16)] * 64
    result = pack_maxrects(sizes, 2048, 2048)
    assert_valid_packing(sizes, result, 2048, 2048)
    assert result.page_sizes == ((128, 128),)


def test_overflow_opens_new_pages_and_earlier_pages_stay_full():
    sizes = [(30, 30)] * 10  # four fit on a 64x64 page
    result = pack_maxrects(sizes, 64, 64)
    assert_valid_packing(sizes, result, 64, 64)
    assert len(result.page_sizes) == 3
    counts = [sum(p.page == k for p in result.placements) for k in range(3)]
    assert counts == [4, 4, 2]
    assert result.page_sizes[2] in ((60, 30), (30, 60))  # the last page shrinks


def test_small_rects_fill_holes_of_earlier_pages_before_a_new_page_is_used():
    # Three 40x40 rects need three 64x64 pages, each leaving an L-shaped hole of
    # 24 px; the 20x20 rects must go into those holes instead of a fourth page.
    sizes = [(40, 40)] * 3 + [(20, 20)] * 9
    result = pack_maxrects(sizes, 64, 64)
    assert_valid_packing(sizes, result, 64, 64)
    assert len(result.page_sizes) == 3


def test_pages_shrink_to_the_bounding_box_of_their_rects():
    sizes = [(10, 10), (5, 20)]
    result = pack_maxrects(sizes, 1000, 1000)
    assert_valid_packing(sizes, result, 1000, 1000)
    page_w, page_h = result.page_sizes[0]
    right = max(p.x + w for p, (w, h) in zip(result.placements, sizes))
    bottom = max(p.y + h for p, (w, h) in zip(result.placements, sizes))
    assert (page_w, page_h) == (right, bottom)
    assert page_w * page_h <= 15 * 20  # compact, not strung along a 1000 px edge


def test_a_small_atlas_stays_compact_instead_of_lining_up_along_the_max_width():
    sizes = [(32, 32)] * 100
    result = pack_maxrects(sizes, 2048, 2048)
    assert_valid_packing(sizes, result, 2048, 2048)
    page_w, page_h = result.page_sizes[0]
    assert max(page_w, page_h) <= 2 * min(page_w, page_h)
    assert occupancy(sizes, result) >= 0.9


# --- padding ------------------------------------------------------------------------


@pytest.mark.parametrize("padding", [1, 2, 5])
def test_padding_keeps_rects_apart_but_not_from_the_border(padding):
    sizes = [(8, 8)] * 4
    result = pack_maxrects(sizes, 64, 64, padding=padding)
    assert_valid_packing(sizes, result, 64, 64, padding)
    # 2x2 grid: the border needs no gap, so the page is exactly two rects + one gap.
    assert result.page_sizes == ((16 + padding, 16 + padding),)


def test_padding_is_not_needed_at_the_page_border_for_a_full_page():
    sizes = [(10, 10)] * 4
    result = pack_maxrects(sizes, 21, 21, padding=1)
    assert_valid_packing(sizes, result, 21, 21, 1)
    assert len(result.page_sizes) == 1
    assert pack_maxrects(sizes, 20, 20, padding=1).page_sizes == ((10, 10),) * 4


# --- power of two and square ---------------------------------------------------------


@pytest.mark.parametrize("square", [False, True])
def test_power_of_two_pages(square):
    sizes = random_sizes(3, 150, 5, 40)
    result = pack_maxrects(sizes, 1024, 1024, padding=1, power_of_two=True, square=square)
    assert_valid_packing(sizes, result, 1024, 1024, 1)
    for w, h in result.page_sizes:
        assert w & (w - 1) == 0 and h & (h - 1) == 0, (w, h)
        if square:
            assert w == h


def test_square_pages():
    sizes = [(50, 10)] * 3
    result = pack_maxrects(sizes, 500, 300, square=True)
    assert_valid_packing(sizes, result, 500, 300)
    assert all(w == h <= 300 for w, h in result.page_sizes)


def test_power_of_two_never_exceeds_a_max_that_is_not_a_power_of_two():
    sizes = [(40, 40)] * 12
    result = pack_maxrects(sizes, 100, 100, power_of_two=True)
    assert_valid_packing(sizes, result, 100, 100)
    assert set(result.page_sizes) == {(64, 64)}
    assert len(result.page_sizes) == 12  # a 64x64 page holds one 40x40 rect


def test_power_of_two_and_square_bounding_box_rounding():
    result = pack_maxrects([(33, 5)], 256, 256, power_of_two=True)
    assert result.page_sizes == ((64, 8),)
    result = pack_maxrects([(33, 5)], 256, 256, power_of_two=True, square=True)
    assert result.page_sizes == ((64, 64),)
    result = pack_maxrects([(33, 5)], 256, 256, square=True)
    assert result.page_sizes == ((33, 33),)


# --- errors ---------------------------------------------------------------------------


def test_rect_larger_than_the_page_raises_pack_error_naming_index_size_and_max():
    with pytest.raises(PackError) as caught:
        pack_maxrects([(10, 10), (20, 20), (300, 12)], 256, 256)
    message = str(caught.value)
    assert "rect 2" in message and "300x12" in message and "256x256" in message
    assert caught.value.index == 2
    assert caught.value.size == (300, 12)
    assert caught.value.max_size == (256, 256)
    assert isinstance(caught.value, ValueError)


def test_pack_error_for_a_too_tall_rect():
    with pytest.raises(PackError, match=r"rect 0 is 5x65 px.*64x64"):
        pack_maxrects([(5, 65)], 64, 64)


def test_pack_error_uses_the_power_of_two_and_square_limits():
    with pytest.raises(
        PackError,
        match=r"rect 0 is 70x10 px.*64x64 px \(max size 100x100 px "
        r"with power_of_two\)",
    ):
        pack_maxrects([(70, 10)], 100, 100, power_of_two=True)
    with pytest.raises(PackError, match=r"rect 0 is 90x10 px.*80x80 px"):
        pack_maxrects([(90, 10)], 100, 80, square=True)


@pytest.mark.parametrize("sizes", [[(0, 5)], [(5, -1)], [(2.5, 3)], [(True, 3)], [(1, 2, 3)], [5]])
def test_invalid_sizes_raise_pack_error(sizes):
    with pytest.raises(PackError, match="rect 0"):
        pack_maxrects(sizes, 64, 64)


@pytest.mark.parametrize(
    "kwargs",
    [dict(max_width=0, max_height=5), dict(max_width=5, max_height=-2), dict(max_width=5, max_height=5, padding=-1)],
)
def test_invalid_arguments_raise_pack_error(kwargs):
    with pytest.raises(PackError):
        pack_maxrects([(1, 1)], **kwargs)


# --- property-style ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_random_inputs_always_give_valid_packings(seed):
    rng = np.random.default_rng(1000 + seed)
    max_w = int(rng.integers(16, 400))
    max_h = int(rng.integers(16, 400))
    padding = int(rng.integers(0, 4))
    power_of_two = bool(rng.integers(0, 2))
    square = bool(rng.integers(0, 2))
    limit = min(max_w, max_h) if square else None
    cap_w = (limit or max_w) if not power_of_two else 1 << ((limit or max_w).bit_length() - 1)
    cap_h = (limit or max_h) if not power_of_two else 1 << ((limit or max_h).bit_length() - 1)
    count = int(rng.integers(1, 250))
    # Mixed shapes: tiny, thin, and up to the usable page size.
    widths = np.minimum(rng.integers(1, max(2, cap_w // int(rng.choice([1, 3, 8]))) + 1, size=count), cap_w)
    heights = np.minimum(rng.integers(1, max(2, cap_h // int(rng.choice([1, 3, 8]))) + 1, size=count), cap_h)
    sizes = [(int(w), int(h)) for w, h in zip(widths, heights)]
    result = pack_maxrects(sizes, max_w, max_h, padding=padding, power_of_two=power_of_two, square=square)
    assert_valid_packing(sizes, result, max_w, max_h, padding)
    for w, h in result.page_sizes:
        if square:
            assert w == h
        if power_of_two:
            assert w & (w - 1) == 0 and h & (h - 1) == 0


@pytest.mark.parametrize("seed", range(5))
def test_random_sprite_sets_pack_densely(seed):
    """A quality floor, not only validity: typical sprite sets fill their page well."""
    sizes = random_sizes(seed, 300)
    result = pack_maxrects(sizes, 2048, 2048)
    assert_valid_packing(sizes, result, 2048, 2048)
    assert len(result.page_sizes) == 1
    assert occupancy(sizes, result) >= 0.85


def test_five_thousand_rects_pack_correctly():
    sizes = random_sizes(2024, 5000)
    result = pack_maxrects(sizes, 2048, 2048)
    assert_valid_packing(sizes, result, 2048, 2048)
    total = sum(w * h for w, h in sizes)
    assert len(result.page_sizes) == -(-total // (2048 * 2048))  # as few pages as area allows
    assert result.page_sizes[0] == (2048, 2048)
    first_page = sum(w * h for (w, h), p in zip(sizes, result.placements) if p.page == 0)
    assert first_page / (2048 * 2048) >= 0.95


def test_five_thousand_rects_with_padding_into_small_pages():
    sizes = random_sizes(99, 5000)
    result = pack_maxrects(sizes, 512, 512, padding=2)
    assert_valid_packing(sizes, result, 512, 512, 2)
    assert len(result.page_sizes) > 10


# --- the free-rectangle invariant (white-box) ------------------------------------------


def maximal_empty_rects(grid: np.ndarray) -> set[tuple[int, int, int, int]]:
    """Every maximal empty axis-aligned rect of ``grid`` as (x, y, right, bottom), by
    brute force over all rects (fine for the small grids used here)."""
    height, width = grid.shape
    filled = np.zeros((height + 1, width + 1), dtype=np.int64)
    filled[1:, 1:] = grid.cumsum(0).cumsum(1)

    def empty(x: int, y: int, r: int, b: int) -> bool:
        return filled[b, r] - filled[y, r] - filled[b, x] + filled[y, x] == 0

    found = set()
    for x in range(width):
        for r in range(x + 1, width + 1):
            for y in range(height):
                for b in range(y + 1, height + 1):
                    if not empty(x, y, r, b):
                        break  # taller rects from this top are not empty either
                    if (x > 0 and empty(x - 1, y, r, b)) or (r < width and empty(x, y, r + 1, b)):
                        continue
                    if (y > 0 and empty(x, y - 1, r, b)) or (b < height and empty(x, y, r, b + 1)):
                        continue
                    found.add((x, y, r, b))
    return found


def free_rects_of(free) -> set[tuple[int, int, int, int]]:
    from sparky_assets.pack.maxrects import _H, _NEG_B, _NEG_R, _PAGE, _W, _X, _Y

    cols = free.cols[:, : free.count]
    x, y, right, bottom = cols[_X], cols[_Y], -cols[_NEG_R], -cols[_NEG_B]
    assert (cols[_W] == right - x).all() and (cols[_H] == bottom - y).all()
    assert (cols[_PAGE] == 0).all()
    rects = [tuple(r) for r in np.stack([x, y, right, bottom]).T.tolist()]
    assert len(rects) == len(set(rects)), "duplicate free rects"
    return set(rects)


@pytest.mark.parametrize("seed", range(12))
def test_split_and_grow_keep_exactly_the_maximal_free_rects(seed):
    """After any placement (anywhere inside a free rect) or page growth, the free list
    is exactly the set of maximal empty rectangles of the page: nothing missing (which
    would waste space), nothing contained in another (which would waste time)."""
    from sparky_assets.pack.maxrects import _FreeRects, _grow_page, _split_free

    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(3, 9)), int(rng.integers(3, 8))
    grid = np.zeros((height, width), dtype=np.int64)
    lane = 64
    free = _FreeRects(capacity=4)  # small, so the store has to grow too
    free.append(np.array([[0], [0], [-width], [-height], [width], [height], [0]]))
    assert free_rects_of(free) == maximal_empty_rects(grid)
    for _ in range(25):
        current = sorted(free_rects_of(free))
        if rng.random() < 0.2 and (width < 12 or height < 10):
            new_w = min(12, width + int(rng.integers(0, 4)))
            new_h = min(10, height + int(rng.integers(0, 4)))
            _grow_page(free, 0, lane, lane * lane, (width, height), (new_w, new_h), 0)
            grown = np.zeros((new_h, new_w), dtype=np.int64)
            grown[:height, :width] = grid
            grid, width, height = grown, new_w, new_h
        elif current:
            x, y, r, b = current[int(rng.integers(len(current)))]
            w, h = int(rng.integers(1, r - x + 1)), int(rng.integers(1, b - y + 1))
            ux, uy = int(rng.integers(x, r - w + 1)), int(rng.integers(y, b - h + 1))
            assert grid[uy : uy + h, ux : ux + w].sum() == 0
            grid[uy : uy + h, ux : ux + w] = 1
            _split_free(free, ux, uy, ux + w, uy + h, 0, 1, 1, None)
        else:
            break
        assert free_rects_of(free) == maximal_empty_rects(grid)


@pytest.mark.parametrize("seed", range(6))
def test_abandoned_attempts_do_not_change_the_chosen_layout(seed):
    """Attempts are abandoned once they cannot win; the winner must be the attempt an
    exhaustive run (every attempt to the end, fewest pages then least area, earliest on
    a tie) picks."""
    from sparky_assets.pack import maxrects

    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 40, (int(rng.integers(20, 200)), 2))
    widths, heights = sizes[:, 0].astype(np.int64), sizes[:, 1].astype(np.int64)
    settings = [(128, 0, False, False), (96, 1, False, True), (128, 2, True, False)][seed % 3]
    page, padding, pot, square = settings
    limit_w, limit_h = maxrects._usable_max(page, page, pot, square)
    exhaustive = None
    for order, sizing in maxrects._attempts(widths, heights, len(widths), limit_w, limit_h, padding, pot, square):
        done = maxrects._pack_in_order(order, widths + padding, heights=heights + padding, sizing=sizing)
        layout = maxrects._finish(*done, widths, heights, sizing)
        rank = (len(layout[3]), sum(w * h for w, h in layout[3]))
        if exhaustive is None or rank < exhaustive[0]:
            exhaustive = (rank, layout)
    chosen = maxrects._best_attempt(widths, heights, limit_w, limit_h, padding, pot, square)
    assert chosen == exhaustive[1]
