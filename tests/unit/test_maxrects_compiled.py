"""The compiled packer core (``sparky_assets/pack/_cmaxrects.c``) against the Python
packer it ports (the reference): the same layouts, byte for byte, on random cases and on
the benchmark's sets; the same errors; its boundary checks; and the build itself.

Under ``CI=true`` the first test fails when the extension is not built (a skip is a
failure there), so CI always exercises the compiled path; ``tests/unit/test_maxrects.py``
runs every specification test on both paths.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sparky_assets.pack import maxrects
from sparky_assets.pack.maxrects import PackError, Placement, pack_maxrects

COMPILED = maxrects._cmaxrects


@pytest.fixture
def compiled():
    if COMPILED is None:
        pytest.skip("the compiled packer is not built (pip install -e . builds it)")
    return COMPILED


def test_the_extension_is_built(compiled):
    """A normal install (``pip install -e .``, a wheel) builds the C core; CI must use it."""
    assert compiled.__file__.endswith((".so", ".pyd"))
    assert compiled.LIMIT == 1 << 20


def both_paths(monkeypatch, *args, **kwargs):
    """pack_maxrects' result (or PackError text) on the compiled path, then on the Python one."""
    outcomes = []
    for module in (COMPILED, None):
        monkeypatch.setattr(maxrects, "_cmaxrects", module)
        try:
            outcomes.append(pack_maxrects(*args, **kwargs))
        except PackError as error:
            outcomes.append(("PackError", str(error), error.index, error.size, error.max_size))
    monkeypatch.setattr(maxrects, "_cmaxrects", COMPILED)
    return outcomes


settings_for_cases = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def packing_cases(draw):
    """Page limits, then rects that mostly fit them (an oversized one now and then)."""
    max_w, max_h = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    padding = draw(st.integers(0, 4))
    power_of_two, square = draw(st.booleans()), draw(st.booleans())
    high_w = draw(st.integers(1, max_w + 1 if draw(st.integers(0, 9)) == 0 else max(1, min(max_w, max_h) // 2)))
    high_h = draw(st.integers(1, max_h + 1 if draw(st.integers(0, 9)) == 0 else max(1, min(max_w, max_h) // 2)))
    sizes = draw(st.lists(st.tuples(st.integers(1, high_w), st.integers(1, high_h)), max_size=160))
    return sizes, max_w, max_h, padding, power_of_two, square


@settings_for_cases
@given(case=packing_cases())
@example(case=([(1, 1)], 10, 10, 0, False, False))
@example(case=([(1, 1)] * 5, 1, 1, 0, False, False))
@example(case=([(3, 5), (5, 3)] * 8, 16, 16, 1, True, True))
def test_compiled_and_python_paths_give_the_same_layout(compiled, monkeypatch, case):
    sizes, max_w, max_h, padding, power_of_two, square = case
    fast, reference = both_paths(
        monkeypatch, sizes, max_w, max_h, padding=padding, power_of_two=power_of_two, square=square
    )
    assert fast == reference


@settings_for_cases
@given(
    side=st.integers(2, 40),
    count=st.integers(1, 400),
    page=st.sampled_from([64, 100, 128, 256, 300]),
    seed=st.integers(0, 2**32 - 1),
    padding=st.integers(0, 2),
)
def test_many_similar_rects_give_the_same_layout(compiled, monkeypatch, side, count, page, seed, padding):
    """Equal and near-equal sizes make exact ties (same fit, same corner): broken the same way."""
    rng = np.random.default_rng(seed)
    sizes = [(int(w), int(h)) for w, h in rng.integers(max(1, side - 2), side + 1, size=(count, 2))]
    fast, reference = both_paths(monkeypatch, sizes, page, page, padding=padding)
    assert fast == reference


@pytest.mark.parametrize("seed", range(40))
def test_many_pages_and_attempts_give_the_same_layout(compiled, monkeypatch, seed):
    """Several pages and several start sizes per order: the compiled core reuses the first
    start's trajectory up to the page opening where another start diverges."""
    rng = np.random.default_rng(seed + 777)
    page = int(rng.integers(40, 260))
    high = int(rng.integers(4, min(64, page // 2)))
    sizes = [(int(w), int(h)) for w, h in rng.integers(1, high + 1, size=(int(rng.integers(20, 400)), 2))]
    shape = {"padding": int(rng.integers(0, 3)), "power_of_two": seed % 5 == 0, "square": seed % 7 == 0}
    fast, reference = both_paths(monkeypatch, sizes, page, page, **shape)
    assert fast == reference


@pytest.mark.parametrize(("count", "page"), [(1000, 2048), (5000, 2048), (1000, 512)])
def test_benchmark_sets_give_the_same_layout(compiled, monkeypatch, count, page):
    """bench/pack.py's sets (uniform 8-64 px, seed 2024)."""
    rng = np.random.default_rng(2024)
    sizes = [(int(w), int(h)) for w, h in rng.integers(8, 65, size=(count, 2))]
    fast, reference = both_paths(monkeypatch, sizes, page, page)
    assert fast == reference


@pytest.mark.parametrize(
    "sizes",
    [
        [(0, 4)],
        [(4, -1)],
        [(True, 4)],
        [(4.0, 4)],
        [(4, 4, 4)],
        [4],
        [(65, 4)],
        [(4, 4), (4, 2**70)],
        [(np.int64(4), np.int32(5))],
        np.array([[4, 5], [6, 7]]),
        ((4, 5), [6, 7]),
    ],
)
def test_inputs_the_fast_path_does_not_take_give_the_same_result_or_error(compiled, monkeypatch, sizes):
    fast, reference = both_paths(monkeypatch, sizes, 64, 64)
    assert fast == reference


def test_sizes_fast_path_converts_only_plain_valid_pairs(compiled):
    packed = compiled.sizes([(3, 4), [5, 6]], 10, 10)
    assert np.frombuffer(packed, dtype=np.int64).tolist() == [3, 4, 5, 6]
    assert compiled.sizes([], 10, 10) == b""
    for bad in ([(3, 11)], [(0, 1)], [(1, True)], [(1, 2.0)], [(1,)], [None], [(np.int64(1), 1)], "ab"):
        assert compiled.sizes(bad, 10, 10) is None


def test_placements_are_the_objects_init_makes(compiled):
    made = compiled.placements(Placement, [0, 1], [2, 3], [4, 5])
    expected = (Placement(0, 2, 4), Placement(1, 3, 5))
    assert made == expected
    assert [vars(p) for p in made] == [vars(p) for p in expected]
    assert [hash(p) for p in made] == [hash(p) for p in expected]
    with pytest.raises(AttributeError):
        made[0].x = 9  # still frozen
    with pytest.raises(TypeError):
        compiled.placements(tuple, [0], [0], [0])
    with pytest.raises(ValueError):
        compiled.placements(Placement, [0], [0, 1], [0])


def call_best_attempt(compiled, widths, heights=None, **overrides):
    args = {
        "starts": [(1.0, 1.0)],
        "budget": 2000,
        "max_w": 64,
        "max_h": 64,
        "padding": 0,
        "power_of_two": False,
        "square": False,
        "beat": None,
    }
    args.update(overrides)
    if heights is None:
        heights = np.full(len(widths), 4, dtype=np.int64) if getattr(widths, "ndim", 0) == 1 else widths
    return compiled.best_attempt(widths, heights, *args.values())


@pytest.mark.parametrize(
    ("widths", "overrides", "error"),
    [
        (np.array([0, 4]), {}, ValueError),  # a size below 1
        (np.array([65]), {}, ValueError),  # larger than the page
        (np.array([4, 4], dtype=np.int32), {}, ValueError),  # not int64
        (np.array([[4, 4]]), {}, ValueError),  # not 1-D
        (np.array([], dtype=np.int64), {}, ValueError),  # no rects
        ([4, 4], {}, TypeError),  # not a buffer
        (np.array([4]), {"max_w": 0}, ValueError),
        (np.array([4]), {"max_w": 1 << 20}, ValueError),  # beyond the compiled limits
        (np.array([4]), {"max_w": 2**70}, OverflowError),
        (np.array([4]), {"padding": -1}, ValueError),
        (np.array([4]), {"budget": 0}, ValueError),
        (np.array([4]), {"starts": []}, ValueError),
        (np.array([4]), {"starts": [(1.0,)]}, TypeError),
        (np.array([4]), {"starts": [(float("nan"), 1.0)]}, ValueError),
        (np.array([4]), {"starts": [(1.0, 1e300)]}, ValueError),
        (np.array([4]), {"starts": [(2.5, 1.0)]}, ValueError),  # area x scale x aspect must stay in int64
        (np.array([4]), {"starts": [(1.0, 3.0)]}, ValueError),
        (np.array([4]), {"beat": (1,)}, TypeError),
        (np.array([4]), {"beat": (1, -5)}, ValueError),
        (np.array([4]), {"square": True, "max_h": 32}, ValueError),
    ],
)
def test_the_compiled_core_checks_its_arguments(compiled, widths, overrides, error):
    """Called directly with what pack_maxrects never passes: an error, never a crash."""
    with pytest.raises(error):
        call_best_attempt(compiled, widths, **overrides)


def test_the_compiled_core_called_directly(compiled):
    pages, xs, ys, page_sizes = call_best_attempt(compiled, np.array([4, 5]))
    assert (pages, xs, ys, page_sizes) == ([0, 0], [5, 0], [0, 0], ((9, 4),))
    # nothing ranks below a one-page layout of area 1
    assert call_best_attempt(compiled, np.array([4, 5]), beat=(1, 1)) is None


def test_sizes_beyond_the_compiled_limits_use_the_python_packer(compiled, monkeypatch):
    """A page side + padding above 2**20 px goes to the Python code: same answer as it gives."""
    fast, reference = both_paths(monkeypatch, [(5, 7), (3, 3), (2**20, 2)], 2**20 + 5, 64)
    assert fast == reference
    assert fast.page_sizes[0][0] >= 2**20


def test_a_lone_one_pixel_rect_packs():
    """Was a crash: the narrow start size of a 1x1 rect asked for the square root of -1."""
    assert pack_maxrects([(1, 1)], 10, 10).page_sizes == ((1, 1),)
