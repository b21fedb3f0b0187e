"""Rectangle packing for atlas pages: MaxRects, Best-Short-Side-Fit, no rotation.

Role: given the (width, height) of every frame, choose a page and a top-left corner
for each so that frames never overlap, keep at least ``padding`` empty pixels between
any two of them, and use as few and as small pages as the heuristic manages. The
build engine calls :func:`pack_maxrects`; nothing here touches pixels or files.

Invariants (all covered by ``tests/unit/test_maxrects.py``):

* Every rect lies inside its page; no two rects on a page overlap, and the gap between
  any two is at least ``padding`` pixels (the page border needs no gap).
* ``PackResult.placements[i]`` belongs to ``sizes[i]``: input order is preserved.
* Deterministic: the same arguments give the same result, on every platform. Only
  numpy arrays and Python lists are used, no dict/set iteration; every tie is broken
  by a fixed rule (page, then leftover short side, long side, y, x, then array order,
  which itself depends only on the input; sort ties go to the lower input index).
* No rect is rotated. A rect larger than the largest usable page raises
  :class:`PackError` before anything is packed.
* Page sizes are the bounding box of the page's rects, then rounded up to powers of
  two and/or made square when asked; never larger than the maximum. With
  ``power_of_two`` the usable maximum is the largest power of two that fits in
  ``max_width`` x ``max_height``; with ``square`` it is the smaller of the two.

Placement rule: rects go in a fixed sort order (longest side first, by default); each
takes the free rect with the Best Short Side Fit on the lowest page where it fits, so
earlier pages fill up first and the last page holds the rest. Pages start at the size
the remaining area needs (at most the maximum) and grow right/bottom in small steps
when a rect fits nowhere, which keeps a small atlas compact instead of strung along the
top edge of a 2048-pixel page; a new page opens only when a rect fits nowhere and the
last page is already at the maximum size. Several attempts (start size x sort order)
are packed while attempts x rects stays under ``_PLACEMENT_BUDGET``; the one with the
fewest pages, then the least page area, wins (the earlier attempt on a tie). More
than 1,000 rects get a single attempt. With several pages, the last page's rects are
then packed again on their own (now their exact set is known) and that layout is kept
when it is one page of less area.

How it stays fast (the classic MaxRects loop is O(free rects^2) per rect in pure
Python): the free rectangles of all pages live in one preallocated column-major numpy
array (pages side by side in x lanes), so scoring every candidate is a dozen vector
operations. A placed rect only splits the free rects it intersects, and a new piece
can only be contained in a free rect that touches the placed rect, so the containment
prune compares the few new pieces with that small neighbourhood in plain Python, never
with the whole list. Free rects narrower or shorter than every rect still to come are
dropped (they can never be used), except on the growable page's right/bottom border.

The attempts loop also exists compiled (``_cmaxrects.c``, built by setup.py as an
optional extension): a port of ``_pack_in_order``/``_finish`` and the ranking of
``_best_attempt`` (plus per-page index lists and shared trajectories, which change no
result) that gives exactly the layouts of the Python code, which stays the reference
and the fallback when the extension is not built or the sizes are beyond its limits
(page side + padding + 2 or the rect count above 2**20).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

try:  # the compiled core (setup.py builds it when a C compiler is there)
    from . import _cmaxrects
except ImportError:  # built without a C compiler: the Python packer below (the reference)
    _cmaxrects = None

__all__ = ["PackError", "PackResult", "Placement", "occupancy", "pack_maxrects"]

# Rows of the free-rectangle store (int64, one column per rect): left, top, minus the
# right edge, minus the bottom edge (edges exclusive; negated so that "touches the
# placed rect" is one vectorized <= against a 4-vector), width, height and the page key
# (page index * page stride, so that it dominates the fit score).
_X, _Y, _NEG_R, _NEG_B, _W, _H, _PAGE = range(7)
_NO_FIT = np.iinfo(np.int64).max

# Several attempts (sort order x starting page size) are packed and the best kept,
# as long as attempts x rects stays within this many placements: small atlases get
# every attempt, 5,000 rects get exactly one, so large inputs stay well under a second.
_PLACEMENT_BUDGET = 2000

# Starting page size (area scale, width/height) of each attempt, most useful first.
_PAGE_STARTS = tuple((scale, aspect) for scale in (1.0, 1.1, 1.05, 1.2) for aspect in (1.0, 1.3, 1 / 1.3))

# A page that is full grows by 1/_GROWTH_DIVISOR of its side (at least the rect):
# small steps keep the final bounding box tight.
_GROWTH_DIVISOR = 64


class PackError(ValueError):
    """A rect cannot be packed (larger than the page) or an argument is invalid."""

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        size: tuple[int, int] | None = None,
        max_size: tuple[int, int] | None = None,
    ):
        super().__init__(message)
        self.index = index
        self.size = size
        self.max_size = max_size


@dataclass(frozen=True)
class Placement:
    """Where one rect went: its page (from 0) and its top-left corner in pixels."""

    page: int
    x: int
    y: int


@dataclass(frozen=True)
class PackResult:
    """The placement of every input rect (input order) and each page's final size."""

    placements: tuple[Placement, ...]
    page_sizes: tuple[tuple[int, int], ...]


def occupancy(sizes: Sequence[tuple[int, int]], result: PackResult) -> float:
    """Sum of rect areas / sum of page areas (0.0 when there are no pages)."""
    page_area = sum(w * h for w, h in result.page_sizes)
    if page_area == 0:
        return 0.0
    return sum(int(w) * int(h) for w, h in sizes) / page_area


def pack_maxrects(
    sizes: Sequence[tuple[int, int]],
    max_width: int,
    max_height: int,
    *,
    padding: int = 0,
    power_of_two: bool = False,
    square: bool = False,
) -> PackResult:
    """Pack ``sizes`` (width, height >= 1) into as few pages of at most
    ``max_width`` x ``max_height`` pixels as the heuristic finds.

    ``padding`` is the minimum number of empty pixels between any two rects (none is
    required at the page border). ``power_of_two`` rounds each final page dimension
    up to a power of two; ``square`` makes each final page's width equal its height.
    Raises :class:`PackError` naming the rect index, its size and the maximum page
    size when a rect cannot fit on any page, or when an argument is invalid.
    """
    for name, value in (("max_width", max_width), ("max_height", max_height)):
        if not _is_int(value) or value < 1:
            raise PackError(f"{name} must be an integer >= 1, found {value!r}")
    if not _is_int(padding) or padding < 0:
        raise PackError(f"padding must be an integer >= 0, found {padding!r}")
    max_width, max_height, padding = int(max_width), int(max_height), int(padding)

    limit_w, limit_h = _usable_max(max_width, max_height, power_of_two, square)
    widths, heights = _validated_sizes(sizes, limit_w, limit_h, max_width, max_height, power_of_two, square)
    count = len(widths)
    if count == 0:
        return PackResult(placements=(), page_sizes=())

    # Padding is packed as part of each rect (to its right and bottom); the bins grow
    # by the same amount, so a rect touching the right/bottom border has its padding
    # outside the real page. Two rects are then always >= padding apart.
    best = _best_attempt(widths, heights, limit_w, limit_h, padding, power_of_two, square)
    assert best is not None
    pages, xs, ys, page_sizes = _repack_last_page(
        best, widths, heights, limit_w, limit_h, padding, power_of_two, square
    )
    if _cmaxrects is not None:  # the same objects, made without running __init__ per rect
        return PackResult(_cmaxrects.placements(Placement, pages, xs, ys), page_sizes)
    return PackResult(tuple(map(Placement, pages, xs, ys)), page_sizes)


# A layout: page, x and y of every rect (input order) and each page's final size.
_Layout = tuple[list[int], list[int], list[int], tuple[tuple[int, int], ...]]


def _best_attempt(
    widths: np.ndarray,
    heights: np.ndarray,
    limit_w: int,
    limit_h: int,
    padding: int,
    power_of_two: bool,
    square: bool,
    beat: tuple[int, int] | None = None,
) -> _Layout | None:
    """The attempt of fewest pages, then least page area (the earlier one on a tie);
    None when none ranks below ``beat``. An attempt is abandoned as soon as a lower
    bound of its rank (pages opened so far, their final sizes so far) reaches the best
    rank already found (or ``beat``): it could no longer win, so the result is the one
    every attempt run to the end would give."""
    count = len(widths)
    if _cmaxrects is not None and max(limit_w, limit_h) + padding + 2 <= _cmaxrects.LIMIT and count <= _cmaxrects.LIMIT:
        starts = _page_starts(power_of_two, square)
        return _cmaxrects.best_attempt(
            widths, heights, starts, _PLACEMENT_BUDGET, limit_w, limit_h, padding, power_of_two, square, beat
        )
    padded_w = widths + padding
    padded_h = heights + padding
    best: tuple[tuple[int, int], _Layout] | None = None
    for order, sizing in _attempts(widths, heights, count, limit_w, limit_h, padding, power_of_two, square):
        bound = beat if best is None else best[0] if beat is None else min(best[0], beat)
        packed = _pack_in_order(order, padded_w, heights=padded_h, sizing=sizing, bound=bound)
        if packed is None:
            continue
        layout = _finish(*packed, widths, heights, sizing)
        rank = (len(layout[3]), sum(w * h for w, h in layout[3]))
        if (best is None or rank < best[0]) and (beat is None or rank < beat):
            best = (rank, layout)
    return None if best is None else best[1]


def _repack_last_page(
    layout: _Layout,
    widths: np.ndarray,
    heights: np.ndarray,
    limit_w: int,
    limit_h: int,
    padding: int,
    power_of_two: bool,
    square: bool,
) -> _Layout:
    """Pack the last page's rects again on their own and keep that when it is one page
    of less area. The last page was opened (and sized) while the earlier pages were
    still being filled; packed alone, with its exact set of rects known and the
    attempts its smaller count affords, it usually comes out tighter."""
    pages, xs, ys, page_sizes = layout
    if len(page_sizes) < 2:
        return layout
    last = len(page_sizes) - 1
    members = [i for i, p in enumerate(pages) if p == last]
    old_w, old_h = page_sizes[last]
    # only a layout of one page and less area is kept: attempts that cannot be one are dropped early
    sub = _best_attempt(
        widths[members], heights[members], limit_w, limit_h, padding, power_of_two, square, beat=(1, old_w * old_h)
    )
    if sub is None:
        return layout
    xs, ys = list(xs), list(ys)
    for i, x, y in zip(members, sub[1], sub[2]):
        xs[i], ys[i] = x, y
    return pages, xs, ys, page_sizes[:last] + sub[3]


# ---------------------------------------------------------------------------
# argument handling


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _floor_pow2(value: int) -> int:
    return 1 << (value.bit_length() - 1)


def _ceil_pow2(value: int) -> int:
    return 1 << max(value - 1, 0).bit_length()


def _usable_max(max_w: int, max_h: int, power_of_two: bool, square: bool) -> tuple[int, int]:
    if square:
        max_w = max_h = min(max_w, max_h)
    if power_of_two:
        max_w, max_h = _floor_pow2(max_w), _floor_pow2(max_h)
    return max_w, max_h


def _validated_sizes(
    sizes: Sequence[tuple[int, int]],
    limit_w: int,
    limit_h: int,
    max_w: int,
    max_h: int,
    power_of_two: bool,
    square: bool,
) -> tuple[np.ndarray, np.ndarray]:
    if _cmaxrects is not None:  # plain lists/tuples of valid ints: checked and converted in C
        pairs = _cmaxrects.sizes(sizes, min(limit_w, 1 << 62), min(limit_h, 1 << 62))
        if pairs is not None:
            pairs = np.frombuffer(pairs, dtype=np.int64).reshape(-1, 2)
            return pairs[:, 0].copy(), pairs[:, 1].copy()
    widths = np.empty(len(sizes), dtype=np.int64)
    heights = np.empty(len(sizes), dtype=np.int64)
    for index, size in enumerate(sizes):
        try:
            w, h = size
        except (TypeError, ValueError):
            raise PackError(f"rect {index}: expected a (width, height) pair, found {size!r}", index=index) from None
        if not (_is_int(w) and _is_int(h)) or w < 1 or h < 1:
            raise PackError(f"rect {index}: width and height must be integers >= 1, found {w!r}x{h!r}", index=index)
        if w > limit_w or h > limit_h:
            limit = f"{limit_w}x{limit_h} px"
            if (limit_w, limit_h) != (max_w, max_h):
                rules = " and ".join(r for r, on in (("power_of_two", power_of_two), ("square", square)) if on)
                limit += f" (max size {max_w}x{max_h} px with {rules})"
            raise PackError(
                f"rect {index} is {int(w)}x{int(h)} px, larger than the maximum page size {limit}",
                index=index,
                size=(int(w), int(h)),
                max_size=(limit_w, limit_h),
            )
        widths[index], heights[index] = w, h
    return widths, heights


def _attempts(
    widths: np.ndarray,
    heights: np.ndarray,
    count: int,
    limit_w: int,
    limit_h: int,
    padding: int,
    power_of_two: bool,
    square: bool,
) -> list[tuple[np.ndarray, _PageSizing]]:
    """(order, page sizing) pairs to try, best first, within the placement budget.
    Orders or sizings that coincide (equal-sized frames sort the same every way) are
    tried once."""
    orders: list[np.ndarray] = []
    for order in _sort_orders(widths, heights):
        if not any(np.array_equal(order, seen) for seen in orders):
            orders.append(order)
    sizings = [
        _PageSizing(limit_w, limit_h, padding, power_of_two, square, scale, aspect)
        for scale, aspect in _page_starts(power_of_two, square)
    ]
    pairs = [(order, sizing) for order in orders for sizing in sizings]
    return pairs[: max(1, _PLACEMENT_BUDGET // count)]


def _page_starts(power_of_two: bool, square: bool) -> list[tuple[float, float]]:
    """The (area scale, aspect) of each attempt's page sizing, duplicates dropped."""
    starts: list[tuple[float, float]] = []
    for scale, aspect in _PAGE_STARTS:
        if square or power_of_two:
            aspect = 1.0  # not used by these page shapes: skip the duplicates
        if (scale, aspect) not in starts:
            starts.append((scale, aspect))
    return starts


def _sort_orders(widths: np.ndarray, heights: np.ndarray) -> list[np.ndarray]:
    """Packing orders, best first on typical sprite sets; ties go to the lower index.

    ``np.lexsort`` is stable and sorts by the last key first, so the index is the
    final tie-break implicitly.
    """
    long_side = np.maximum(widths, heights)
    short_side = np.minimum(widths, heights)
    area = widths * heights
    return [
        np.lexsort((-short_side, -long_side)),  # longest side, then shortest side
        np.lexsort((-long_side, -area)),  # area
        np.lexsort((-widths, -heights)),  # height, then width
        np.lexsort((-heights, -widths)),  # width, then height
    ]


# ---------------------------------------------------------------------------
# page sizes


@dataclass(frozen=True)
class _PageSizing:
    """Initial page size, growth steps and final rounding, in real (unpadded) pixels.

    Internally a page of real size w x h is a bin of (w + padding) x (h + padding).
    """

    max_w: int
    max_h: int
    padding: int
    power_of_two: bool
    square: bool
    area_scale: float = 1.0
    """A new page starts at ``area_scale`` times the area still to pack..."""
    aspect: float = 1.0
    """...with width / height about ``aspect`` (ignored for square pages)."""

    def initial(self, area: int, need_w: int, need_h: int) -> tuple[int, int]:
        """A page for the remaining padded ``area`` that fits a need_w x need_h rect
        (real pixels). Sized to the area; growth takes care of a bad estimate."""
        pad = self.padding
        need_w, need_h = min(need_w, self.max_w), min(need_h, self.max_h)
        area = max(1, int(area * self.area_scale))
        if self.power_of_two:
            return self._initial_pow2(area, need_w, need_h)
        if self.square:
            side = max(math.isqrt(area - 1) + 1 - pad, need_w, need_h)
            side = min(side, self.max_w)
            return side, side
        # (at least 1: a lone 1x1 rect with aspect < 1 would ask for the root of -1)
        width = min(max(math.isqrt(max(int(area * self.aspect), 1) - 1) + 1 - pad, need_w), self.max_w)
        height = min(max(-(-area // (width + pad)) - pad, need_h), self.max_h)
        return width, height

    def _initial_pow2(self, area: int, need_w: int, need_h: int) -> tuple[int, int]:
        pad = self.padding
        best: tuple[tuple[int, int, int], tuple[int, int]] | None = None
        width = _ceil_pow2(need_w)
        while width <= self.max_w:
            height = _ceil_pow2(need_h)
            while height <= self.max_h:
                if self.square and width != height:
                    height *= 2
                    continue
                if (width + pad) * (height + pad) >= area:
                    # smallest area, then the most square, then wider rather than taller
                    rank = (width * height, abs(width.bit_length() - height.bit_length()), -width)
                    if best is None or rank < best[0]:
                        best = (rank, (width, height))
                    break
                height *= 2
            width *= 2
        return best[1] if best is not None else (self.max_w, self.max_h)

    def grown(self, width: int, height: int, need_w: int, need_h: int) -> tuple[int, int]:
        """The next larger page after ``width`` x ``height`` (real pixels) when a rect of
        padded size need_w x need_h fit nowhere; unchanged when already at the max."""
        if self.square:
            if self.power_of_two:
                side = width * 2
            else:
                side = width + max(-(-width // _GROWTH_DIVISOR), need_w, need_h)
            side = min(side, self.max_w)
            return side, side
        grow_width = width < self.max_w and (width <= height or height >= self.max_h)
        if grow_width:
            step = width if self.power_of_two else max(-(-width // _GROWTH_DIVISOR), need_w)
            return min(width + step, self.max_w), height
        if height < self.max_h:
            step = height if self.power_of_two else max(-(-height // _GROWTH_DIVISOR), need_h)
            return width, min(height + step, self.max_h)
        return width, height

    def final(self, used_w: int, used_h: int) -> tuple[int, int]:
        """The size written for a page whose rects span ``used_w`` x ``used_h``."""
        if self.square:
            used_w = used_h = max(used_w, used_h)
        if self.power_of_two:
            used_w, used_h = _ceil_pow2(used_w), _ceil_pow2(used_h)
        return min(used_w, self.max_w), min(used_h, self.max_h)


def _finish(
    pages: np.ndarray, xs: np.ndarray, ys: np.ndarray, widths: np.ndarray, heights: np.ndarray, sizing: _PageSizing
) -> _Layout:
    page_count = int(pages.max()) + 1
    used_w = np.zeros(page_count, dtype=np.int64)
    used_h = np.zeros(page_count, dtype=np.int64)
    np.maximum.at(used_w, pages, xs + widths)
    np.maximum.at(used_h, pages, ys + heights)
    page_sizes = tuple(sizing.final(int(w), int(h)) for w, h in zip(used_w, used_h))
    return pages.tolist(), xs.tolist(), ys.tolist(), page_sizes


# ---------------------------------------------------------------------------
# the packer


class _FreeRects:
    """The maximal free rectangles of every page: columns of a growable int64 array.

    Column-major (one contiguous row per field) so the per-rect scans run on
    contiguous memory. Pages sit side by side in x, in lanes ``lane`` pixels wide, so
    a geometric test can never match a rect of another page. Invariant: no rect is
    contained in another rect of the same page.
    """

    def __init__(self, capacity: int = 1024):
        self.cols = np.empty((7, capacity), dtype=np.int64)
        self.count = 0
        self.limits = np.empty((4, 1), dtype=np.int64)  # scratch for the "near" test

    def reserve(self, extra: int) -> None:
        needed = self.count + extra
        if needed > self.cols.shape[1]:
            grown = np.empty((7, max(needed, 2 * self.cols.shape[1])), dtype=np.int64)
            grown[:, : self.count] = self.cols[:, : self.count]
            self.cols = grown

    def append(self, new_cols: np.ndarray) -> None:
        extra = new_cols.shape[1]
        self.reserve(extra)
        self.cols[:, self.count : self.count + extra] = new_cols
        self.count += extra

    def replace(self, holes: list[int], new_rows: list[list[int]]) -> None:
        """Overwrite columns ``holes`` (ascending) with ``new_rows``; when there are
        more holes than new rows, close the gaps with the last columns."""
        n_holes, n_new = len(holes), len(new_rows)
        if n_new:
            new_cols = np.array(new_rows, dtype=np.int64).T
        if n_new >= n_holes:
            if n_holes:
                self.cols[:, holes] = new_cols[:, :n_holes]
            if n_new > n_holes:
                self.append(new_cols[:, n_holes:])
            return
        if n_new:
            self.cols[:, holes[:n_new]] = new_cols
        left_over = holes[n_new:]
        new_count = self.count - len(left_over)
        low = [i for i in left_over if i < new_count]
        if low:
            high = [i for i in left_over if i >= new_count]
            sources = [i for i in range(new_count, self.count) if i not in high]
            self.cols[:, low] = self.cols[:, sources]
        self.count = new_count


def _pack_in_order(
    order: np.ndarray,
    widths: np.ndarray,
    *,
    heights: np.ndarray,
    sizing: _PageSizing,
    bound: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Place padded rects in ``order``; returns page, x, y per input index. None as soon
    as (pages, sum of final page areas) of what is placed so far — a lower bound of the
    finished layout's rank, since pages only grow — reaches ``bound``."""
    pad = sizing.padding
    ow = widths[order]
    oh = heights[order]
    count = len(order)
    # What is still to come at each step: its area (to size a new page), its largest
    # sides (a new page must fit them) and, after this step, its smallest sides (a
    # free rect narrower or shorter than those is useless and dropped).
    area_left = np.cumsum((ow * oh)[::-1])[::-1].tolist()
    max_w_left = np.maximum.accumulate(ow[::-1])[::-1].tolist()
    max_h_left = np.maximum.accumulate(oh[::-1])[::-1].tolist()
    min_w_after = np.minimum.accumulate(ow[::-1])[::-1].tolist()[1:] + [1 << 62]
    min_h_after = np.minimum.accumulate(oh[::-1])[::-1].tolist()[1:] + [1 << 62]
    ow_list, oh_list = ow.tolist(), oh.tolist()

    lane = max(sizing.max_w, sizing.max_h) + pad + 2  # > any bin side + 1
    page_stride = lane * lane  # > any (short side * lane + long side)
    free = _FreeRects()
    page_dims: list[tuple[int, int]] = []  # real size of each page so far
    last_growable = False
    used: list[list[int]] = []  # per page: the right and bottom edge of its rects (real pixels)
    areas: list[int] = []  # per page: its final area for that span
    out_page = [0] * count
    out_x = [0] * count
    out_y = [0] * count

    for step in range(count):
        w = ow_list[step]
        h = oh_list[step]
        while True:
            n = free.count
            if n:
                cols = free.cols
                dw = cols[_W, :n] - w
                dh = cols[_H, :n] - h
                short = np.minimum(dw, dh)
                key = short * lane
                key += np.maximum(dw, dh)
                key += cols[_PAGE, :n]
                key[short < 0] = _NO_FIT
                best = int(key.argmin())
                best_key = key[best]
                if best_key != _NO_FIT:
                    ties = np.nonzero(key == best_key)[0]
                    if len(ties) > 1:  # top-most, then left-most
                        position = cols[_Y, ties] * page_stride + cols[_X, ties]
                        best = int(ties[position.argmin()])
                    break
            # Fits nowhere: grow the last page, or open a new one.
            last = len(page_dims) - 1
            if last_growable:
                grown = sizing.grown(*page_dims[last], w, h)
                _grow_page(free, last, lane, page_stride, page_dims[last], grown, pad)
                page_dims[last] = grown
                last_growable = sizing.grown(*grown, w, h) != grown
                continue
            size = sizing.initial(area_left[step], max_w_left[step] - pad, max_h_left[step] - pad)
            page = last + 1
            page_dims.append(size)
            last_growable = sizing.grown(*size, w, h) != size
            bin_w, bin_h = size[0] + pad, size[1] + pad
            free.append(
                np.array(
                    [[page * lane], [0], [-(page * lane + bin_w)], [-bin_h], [bin_w], [bin_h], [page * page_stride]],
                    dtype=np.int64,
                )
            )

        ux = int(cols[_X, best])
        uy = int(cols[_Y, best])
        page = int(cols[_PAGE, best]) // page_stride
        out_page[step], out_x[step], out_y[step] = page, ux - page * lane, uy
        if bound is not None:
            while len(used) < len(page_dims):
                used.append([0, 0])
                areas.append(0)
            span = used[page]
            right, bottom = ux - page * lane + w - pad, uy + h - pad
            if right > span[0] or bottom > span[1]:
                span[0], span[1] = max(span[0], right), max(span[1], bottom)
                final_w, final_h = sizing.final(span[0], span[1])
                areas[page] = final_w * final_h
                if (len(page_dims), sum(areas)) >= bound:
                    return None
            elif len(page_dims) > bound[0]:
                return None
        border = None
        if last_growable and page == len(page_dims) - 1:
            border = (page * lane + page_dims[page][0] + pad, page_dims[page][1] + pad)
        _split_free(free, ux, uy, ux + w, uy + h, page * page_stride, min_w_after[step], min_h_after[step], border)

    pages = np.empty(count, dtype=np.int64)
    xs = np.empty(count, dtype=np.int64)
    ys = np.empty(count, dtype=np.int64)
    pages[order], xs[order], ys[order] = out_page, out_x, out_y
    return pages, xs, ys


def _split_free(
    free: _FreeRects,
    ux: int,
    uy: int,
    ur: int,
    ub: int,
    page_key: int,
    min_w: int,
    min_h: int,
    border: tuple[int, int] | None,
) -> None:
    """Remove the placed rect [ux, ur) x [uy, ub) from the free rects.

    Only the few rects near the placed one take part, so this is plain Python: numpy
    finds them, and per-call overhead would dominate on a handful of rects.
    """
    cols = free.cols
    n = free.count
    # Closed test: rects that intersect or touch the placed one. Only these can be
    # split, and only these can contain a new piece (every piece borders the placed
    # rect), so the prune never needs the rest of the list.
    limits = free.limits
    limits[:, 0] = (ur, ub, -ux, -uy)
    near = np.nonzero((cols[:4, :n] <= limits).all(axis=0))[0].tolist()
    holes: list[int] = []
    pieces: list[tuple[int, int, int, int]] = []
    others: list[tuple[int, int, int, int]] = []
    for index, (x, y, neg_r, neg_b) in zip(near, cols[:4, near].T.tolist()):
        r, b = -neg_r, -neg_b
        if x < ur and r > ux and y < ub and b > uy:
            holes.append(index)
            if x < ux:
                pieces.append((x, y, ux, b))
            if r > ur:
                pieces.append((ur, y, r, b))
            if y < uy:
                pieces.append((x, y, r, uy))
            if b > ub:
                pieces.append((x, ub, r, b))
        else:
            others.append((x, y, r, b))

    if border is None:
        useful = [p for p in pieces if p[2] - p[0] >= min_w and p[3] - p[1] >= min_h]
    else:  # a thin piece on the right/bottom border widens when the page grows
        border_r, border_b = border
        useful = [
            p for p in pieces if (p[2] - p[0] >= min_w and p[3] - p[1] >= min_h) or p[2] == border_r or p[3] == border_b
        ]

    # Largest first: a piece inside another piece then always meets that piece (or
    # one containing it) among the survivors already kept; of identical pieces the
    # first is kept. Sorting by (-area, position in the list) is deterministic.
    if len(useful) > 1:
        useful.sort(key=lambda p: (p[0] - p[2]) * (p[3] - p[1]))
    kept: list[tuple[int, int, int, int]] = []
    survivors: list[list[int]] = []
    for piece in useful:
        x, y, r, b = piece
        for q in kept:
            if q[0] <= x and q[1] <= y and q[2] >= r and q[3] >= b:
                break
        else:
            for q in others:
                if q[0] <= x and q[1] <= y and q[2] >= r and q[3] >= b:
                    break
            else:
                kept.append(piece)
                survivors.append([x, y, -r, -b, r - x, b - y, page_key])
    free.replace(holes, survivors)


def _grow_page(
    free: _FreeRects, page: int, lane: int, page_stride: int, old: tuple[int, int], new: tuple[int, int], pad: int
) -> None:
    """Enlarge one page's bin from ``old`` to ``new`` (real sizes) keeping the free
    list maximal: rects touching the old right/bottom border stretch to the new one,
    and the new strips are added unless a stretched rect already covers them.
    (A stretched rect cannot contain another rect: its part inside the old bin is the
    old rect itself, and old rects never contained each other.)"""
    left = page * lane
    old_r, old_b = left + old[0] + pad, old[1] + pad
    new_r, new_b = left + new[0] + pad, new[1] + pad
    n = free.count
    cols = free.cols[:, :n]
    on_page = cols[_PAGE] == page * page_stride
    cols[_NEG_R, np.nonzero(on_page & (cols[_NEG_R] == -old_r))[0]] = -new_r
    cols[_NEG_B, np.nonzero(on_page & (cols[_NEG_B] == -old_b))[0]] = -new_b
    cols[_W] = -cols[_NEG_R] - cols[_X]
    cols[_H] = -cols[_NEG_B] - cols[_Y]
    strips = []
    if new_r > old_r:
        strips.append([old_r, 0, new_r, new_b])
    if new_b > old_b:
        strips.append([left, old_b, new_r, new_b])
    page_rects = cols[:4, on_page].T.tolist()  # (x, y, -r, -b)
    for x, y, r, b in strips:
        if not any(q[0] <= x and q[1] <= y and q[2] <= -r and q[3] <= -b for q in page_rects):
            free.append(np.array([[x], [y], [-r], [-b], [r - x], [b - y], [page * page_stride]], dtype=np.int64))
