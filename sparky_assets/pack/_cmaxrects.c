/* Compiled core of sparky_assets/pack/maxrects.py: the attempts loop of
 * ``_best_attempt`` (``_pack_in_order`` + ``_finish`` + the rank) in C.
 *
 * It is a line-for-line port of the Python packer, which stays the reference: every
 * layout it returns is the one the Python code returns for the same arguments
 * (tests/unit/test_maxrects_compiled.py compares them). The Python keeps the free
 * rects of all pages in one int64 array with pages side by side in x "lanes" and
 * encodes (page, short side, long side) and (y, x) as single integers; here the page
 * is its own column, coordinates are page-local and the same orderings are compared
 * as tuples. The array order of the free rects (which decides exact ties) is kept
 * identical: the same appends, the same hole filling in ``replace``. On top of the
 * port, without changing a result: each page keeps the indices of its free rects in
 * that order (a split scans its own page only; the fit search skips pages that cannot
 * hold the rect), and attempts that differ only in their start size reuse the first
 * one's trajectory up to the page opening where they diverge (see Shared below).
 *
 * Inputs come from untrusted manifests (through pack_maxrects' validation): every
 * argument is checked again here, sizes are limited so that no int64 expression can
 * overflow (page sides + padding below 2**20, at most 2**20 rects: every product
 * below stays under 2**62), all allocations are checked, and the computation runs on
 * private copies of the inputs with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

/* max(page side) + padding + 2 and the rect count must stay at or below this. */
#define SPARKY_LIMIT ((i64)1 << 20)
#define GROWTH_DIVISOR 64
#define NONE_AFTER ((i64)1 << 62)

typedef struct {
    i64 max_w, max_h, pad;
    int pow2, square;
    double scale, aspect;
} Sizing;

typedef struct {
    i64 x, y, r, b;
} Rect4;

/* The indices of one page's free rects, ascending (the order the Python code meets
 * them in its global array), and what lets the fit search skip the page: the largest
 * free width and height on it, and a (w, h) that fit nowhere on it since it last changed. */
typedef struct {
    size_t *idx;
    size_t len, cap;
    i64 max_w, max_h, fail_w, fail_h;
} PageList;

#define NO_FAIL INT64_MAX

typedef struct {
    /* the free rects of every page, structure of arrays; r and b are exclusive edges */
    i64 *x, *y, *r, *b, *w, *h, *pg;
    size_t n, cap;
    PageList *pages; /* one per page (at most one page per rect) */
    size_t n_pages_alloc;
    /* scratch of _split_free: index lists (capacity scap >= n), pieces (pcap >= 4n) */
    size_t *near, *holes, *others;
    size_t scap;
    Rect4 *pieces, *tmp, *kept;
    size_t pcap;
} Work;

static void work_free(Work *wk) {
    free(wk->x); free(wk->y); free(wk->r); free(wk->b); free(wk->w); free(wk->h); free(wk->pg);
    free(wk->near); free(wk->holes); free(wk->others);
    free(wk->pieces); free(wk->tmp); free(wk->kept);
    for (size_t p = 0; p < wk->n_pages_alloc; p++) free(wk->pages[p].idx);
    free(wk->pages);
    memset(wk, 0, sizeof(*wk));
}

static int grow_array(void *ptr, size_t count, size_t item) {
    void **p = (void **)ptr;
    if (count == 0 || count > SIZE_MAX / item) return -1;
    void *grown = realloc(*p, count * item);
    if (grown == NULL) return -1;
    *p = grown;
    return 0;
}

/* room for ``needed`` free rects; 0 or -1 (out of memory) */
static int reserve_free(Work *wk, size_t needed) {
    if (needed <= wk->cap) return 0;
    size_t cap = wk->cap > SIZE_MAX / 2 ? needed : 2 * wk->cap;
    if (cap < needed) cap = needed;
    if (cap < 256) cap = 256;
    if (grow_array(&wk->x, cap, sizeof(i64)) || grow_array(&wk->y, cap, sizeof(i64)) ||
        grow_array(&wk->r, cap, sizeof(i64)) || grow_array(&wk->b, cap, sizeof(i64)) ||
        grow_array(&wk->w, cap, sizeof(i64)) || grow_array(&wk->h, cap, sizeof(i64)) ||
        grow_array(&wk->pg, cap, sizeof(i64)))
        return -1;
    wk->cap = cap;
    return 0;
}

/* scratch for a split of ``n`` free rects */
static int reserve_scratch(Work *wk, size_t n) {
    if (n == 0) n = 1;
    if (n > wk->scap) {
        size_t cap = n > SIZE_MAX / 2 ? n : 2 * n;
        if (grow_array(&wk->near, cap, sizeof(size_t)) || grow_array(&wk->holes, cap, sizeof(size_t)) ||
            grow_array(&wk->others, cap, sizeof(size_t)))
            return -1;
        wk->scap = cap;
    }
    if (n > SIZE_MAX / 4) return -1;
    if (4 * n > wk->pcap) {
        size_t cap = 4 * n > SIZE_MAX / 2 ? 4 * n : 8 * n;
        if (grow_array(&wk->pieces, cap, sizeof(Rect4)) || grow_array(&wk->tmp, cap, sizeof(Rect4)) ||
            grow_array(&wk->kept, cap, sizeof(Rect4)))
            return -1;
        wk->pcap = cap;
    }
    return 0;
}

/* page lists: insert/remove keep them ascending (binary search, memmove) */
static size_t pl_lower_bound(const PageList *pl, size_t index) {
    size_t lo = 0, hi = pl->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pl->idx[mid] < index) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int pl_insert(PageList *pl, size_t index) {
    if (pl->len == pl->cap) {
        size_t cap = pl->cap ? 2 * pl->cap : 64;
        if (grow_array(&pl->idx, cap, sizeof(size_t))) return -1;
        pl->cap = cap;
    }
    size_t at = pl->len && pl->idx[pl->len - 1] < index ? pl->len : pl_lower_bound(pl, index);
    memmove(pl->idx + at + 1, pl->idx + at, (pl->len - at) * sizeof(size_t));
    pl->idx[at] = index;
    pl->len++;
    return 0;
}

static void pl_remove(PageList *pl, size_t index) {
    size_t at = pl_lower_bound(pl, index);
    if (at < pl->len && pl->idx[at] == index) {
        memmove(pl->idx + at, pl->idx + at + 1, (pl->len - at - 1) * sizeof(size_t));
        pl->len--;
    }
}

static void set_free(Work *wk, size_t i, i64 x, i64 y, i64 r, i64 b, i64 page) {
    wk->x[i] = x;
    wk->y[i] = y;
    wk->r[i] = r;
    wk->b[i] = b;
    wk->w[i] = r - x;
    wk->h[i] = b - y;
    wk->pg[i] = page;
}

static int append_free(Work *wk, i64 x, i64 y, i64 r, i64 b, i64 page) {
    if (reserve_free(wk, wk->n + 1) || pl_insert(&wk->pages[page], wk->n)) return -1;
    set_free(wk, wk->n, x, y, r, b, page);
    wk->n++;
    return 0;
}

/* after the rects of ``page`` changed: its largest free sides, no known misfit */
static void pl_refresh(Work *wk, i64 page) {
    PageList *pl = &wk->pages[page];
    i64 max_w = 0, max_h = 0;
    for (size_t j = 0; j < pl->len; j++) {
        size_t i = pl->idx[j];
        max_w = max_w > wk->w[i] ? max_w : wk->w[i];
        max_h = max_h > wk->h[i] ? max_h : wk->h[i];
    }
    pl->max_w = max_w;
    pl->max_h = max_h;
    pl->fail_w = pl->fail_h = NO_FAIL;
}

static void copy_free(Work *wk, size_t dst, size_t src) {
    wk->x[dst] = wk->x[src];
    wk->y[dst] = wk->y[src];
    wk->r[dst] = wk->r[src];
    wk->b[dst] = wk->b[src];
    wk->w[dst] = wk->w[src];
    wk->h[dst] = wk->h[src];
    wk->pg[dst] = wk->pg[src];
}

/* _FreeRects.replace: overwrite ``holes`` (ascending) with ``rows``; when there are
 * more holes than rows, close the gaps with the last columns (same order as numpy). */
static int replace_free(Work *wk, const size_t *holes, size_t n_holes, const Rect4 *rows, size_t n_new, i64 page) {
    if (n_new >= n_holes) {
        if (reserve_free(wk, wk->n + (n_new - n_holes))) return -1;
        for (size_t i = 0; i < n_holes; i++) set_free(wk, holes[i], rows[i].x, rows[i].y, rows[i].r, rows[i].b, page);
        for (size_t i = n_holes; i < n_new; i++)
            if (append_free(wk, rows[i].x, rows[i].y, rows[i].r, rows[i].b, page)) return -1;
        return 0;
    }
    for (size_t i = 0; i < n_new; i++) set_free(wk, holes[i], rows[i].x, rows[i].y, rows[i].r, rows[i].b, page);
    const size_t *left_over = holes + n_new;
    size_t n_left = n_holes - n_new;
    size_t new_count = wk->n - n_left;
    /* left_over is ascending: the "low" ones (< new_count) come first, then the "high" */
    size_t n_low = 0;
    while (n_low < n_left && left_over[n_low] < new_count) n_low++;
    const size_t *high = left_over + n_low;
    size_t n_high = n_left - n_low, h = 0, k = 0;
    /* the left-over holes leave the page's list (both ascending: one merge pass) */
    PageList *pl = &wk->pages[page];
    size_t kept = 0, drop = 0;
    for (size_t j = 0; j < pl->len; j++) {
        while (drop < n_left && left_over[drop] < pl->idx[j]) drop++;
        if (drop < n_left && left_over[drop] == pl->idx[j]) continue;
        pl->idx[kept++] = pl->idx[j];
    }
    pl->len = kept;
    for (size_t src = new_count; src < wk->n && k < n_low; src++) {
        while (h < n_high && high[h] < src) h++;
        if (h < n_high && high[h] == src) continue;
        /* a rect (of any page) moves from src down into a hole: same place in its page's
         * list relative to the others? not always, so remove and insert */
        PageList *moved = &wk->pages[wk->pg[src]];
        pl_remove(moved, src);
        if (pl_insert(moved, left_over[k])) return -1;
        copy_free(wk, left_over[k++], src);
    }
    wk->n = new_count;
    return 0;
}

/* ------------------------------------------------------------------------------ */
/* page sizes: _PageSizing */

static int bit_length(i64 v) {
    int bits = 0;
    uint64_t u = (uint64_t)v;
    while (u) {
        bits++;
        u >>= 1;
    }
    return bits;
}

static i64 ceil_pow2(i64 v) { return (i64)1 << bit_length(v - 1 > 0 ? v - 1 : 0); }

static i64 ceil_div(i64 a, i64 d) { return (a + d - 1) / d; } /* a >= 0, d >= 1 */

static i64 isqrt64(i64 n) {
    if (n <= 0) return 0;
    uint64_t x = (uint64_t)sqrt((double)n);
    while (x * x > (uint64_t)n) x--;
    while ((x + 1) * (x + 1) <= (uint64_t)n) x++;
    return (i64)x;
}

static i64 min64(i64 a, i64 b) { return a < b ? a : b; }
static i64 max64(i64 a, i64 b) { return a > b ? a : b; }

static void initial_pow2(const Sizing *s, i64 area, i64 need_w, i64 need_h, i64 *out_w, i64 *out_h) {
    i64 pad = s->pad;
    int found = 0;
    i64 best_area = 0, best_skew = 0, best_negw = 0, best_w = 0, best_h = 0;
    for (i64 width = ceil_pow2(need_w); width <= s->max_w; width *= 2) {
        i64 height = ceil_pow2(need_h);
        while (height <= s->max_h) {
            if (s->square && width != height) {
                height *= 2;
                continue;
            }
            if ((width + pad) * (height + pad) >= area) {
                /* smallest area, then the most square, then wider rather than taller */
                i64 r_area = width * height, r_skew = bit_length(width) - bit_length(height), r_negw = -width;
                if (r_skew < 0) r_skew = -r_skew;
                if (!found || r_area < best_area ||
                    (r_area == best_area && (r_skew < best_skew || (r_skew == best_skew && r_negw < best_negw)))) {
                    found = 1;
                    best_area = r_area;
                    best_skew = r_skew;
                    best_negw = r_negw;
                    best_w = width;
                    best_h = height;
                }
                break;
            }
            height *= 2;
        }
    }
    if (found) {
        *out_w = best_w;
        *out_h = best_h;
    } else {
        *out_w = s->max_w;
        *out_h = s->max_h;
    }
}

static void initial_size(const Sizing *s, i64 area, i64 need_w, i64 need_h, i64 *out_w, i64 *out_h) {
    i64 pad = s->pad;
    need_w = min64(need_w, s->max_w);
    need_h = min64(need_h, s->max_h);
    /* Python: max(1, int(area * scale)); int -> double is correctly rounded both ways */
    area = max64(1, (i64)((double)area * s->scale));
    if (s->pow2) {
        initial_pow2(s, area, need_w, need_h, out_w, out_h);
        return;
    }
    if (s->square) {
        i64 side = max64(max64(isqrt64(area - 1) + 1 - pad, need_w), need_h);
        side = min64(side, s->max_w);
        *out_w = *out_h = side;
        return;
    }
    i64 skewed = max64((i64)((double)area * s->aspect), 1);
    i64 width = min64(max64(isqrt64(skewed - 1) + 1 - pad, need_w), s->max_w);
    i64 height = min64(max64(ceil_div(area, width + pad) - pad, need_h), s->max_h);
    *out_w = width;
    *out_h = height;
}

static void grown_size(const Sizing *s, i64 width, i64 height, i64 need_w, i64 need_h, i64 *out_w, i64 *out_h) {
    if (s->square) {
        i64 side = s->pow2 ? width * 2 : width + max64(max64(ceil_div(width, GROWTH_DIVISOR), need_w), need_h);
        side = min64(side, s->max_w);
        *out_w = *out_h = side;
        return;
    }
    int grow_width = width < s->max_w && (width <= height || height >= s->max_h);
    if (grow_width) {
        i64 step = s->pow2 ? width : max64(ceil_div(width, GROWTH_DIVISOR), need_w);
        *out_w = min64(width + step, s->max_w);
        *out_h = height;
        return;
    }
    if (height < s->max_h) {
        i64 step = s->pow2 ? height : max64(ceil_div(height, GROWTH_DIVISOR), need_h);
        *out_w = width;
        *out_h = min64(height + step, s->max_h);
        return;
    }
    *out_w = width;
    *out_h = height;
}

static int growable(const Sizing *s, i64 width, i64 height, i64 need_w, i64 need_h) {
    i64 gw, gh;
    grown_size(s, width, height, need_w, need_h, &gw, &gh);
    return gw != width || gh != height;
}

static void final_size(const Sizing *s, i64 used_w, i64 used_h, i64 *out_w, i64 *out_h) {
    if (s->square) used_w = used_h = max64(used_w, used_h);
    if (s->pow2) {
        used_w = ceil_pow2(used_w);
        used_h = ceil_pow2(used_h);
    }
    *out_w = min64(used_w, s->max_w);
    *out_h = min64(used_h, s->max_h);
}

/* ------------------------------------------------------------------------------ */
/* the packer */

/* _grow_page: enlarge one page's bin from old to new (real sizes) keeping the free
 * list maximal. */
static int grow_page(Work *wk, i64 page, i64 old_w, i64 old_h, i64 new_w, i64 new_h, i64 pad) {
    i64 old_r = old_w + pad, old_b = old_h + pad, new_r = new_w + pad, new_b = new_h + pad;
    PageList *pl = &wk->pages[page];
    size_t n0 = pl->len;
    for (size_t j = 0; j < n0; j++) {
        size_t i = pl->idx[j];
        if (wk->r[i] == old_r) wk->r[i] = new_r;
        if (wk->b[i] == old_b) wk->b[i] = new_b;
        wk->w[i] = wk->r[i] - wk->x[i];
        wk->h[i] = wk->b[i] - wk->y[i];
    }
    Rect4 strips[2];
    int n_strips = 0;
    if (new_r > old_r) strips[n_strips++] = (Rect4){old_r, 0, new_r, new_b};
    if (new_b > old_b) strips[n_strips++] = (Rect4){0, old_b, new_r, new_b};
    for (int k = 0; k < n_strips; k++) {
        Rect4 s = strips[k];
        int covered = 0;
        for (size_t j = 0; j < n0 && !covered; j++) {
            size_t i = pl->idx[j]; /* pl->idx may move when a strip is appended: read it here */
            covered = wk->x[i] <= s.x && wk->y[i] <= s.y && wk->r[i] >= s.r && wk->b[i] >= s.b;
        }
        if (!covered && append_free(wk, s.x, s.y, s.r, s.b, page)) return -1;
        pl = &wk->pages[page];
    }
    pl_refresh(wk, page);
    return 0;
}

static int piece_useful(const Rect4 *p, i64 min_w, i64 min_h, int has_border, i64 border_r, i64 border_b) {
    if (p->r - p->x >= min_w && p->b - p->y >= min_h) return 1;
    return has_border && (p->r == border_r || p->b == border_b);
}

static int contains(const Rect4 *q, const Rect4 *p) {
    return (q->x <= p->x) & (q->y <= p->y) & (q->r >= p->r) & (q->b >= p->b);
}

static i64 piece_area(const Rect4 *p) { return (p->r - p->x) * (p->b - p->y); }

/* stable sort by area, largest first (Python: list.sort(key=-area)) */
static void sort_pieces(Rect4 *a, Rect4 *tmp, size_t n) {
    if (n < 2) return;
    if (n <= 16) {
        i64 area[16];
        for (size_t i = 0; i < n; i++) area[i] = piece_area(&a[i]);
        for (size_t i = 1; i < n; i++) {
            Rect4 v = a[i];
            i64 av = area[i];
            size_t j = i;
            while (j > 0 && area[j - 1] < av) {
                a[j] = a[j - 1];
                area[j] = area[j - 1];
                j--;
            }
            a[j] = v;
            area[j] = av;
        }
        return;
    }
    size_t half = n / 2;
    sort_pieces(a, tmp, half);
    sort_pieces(a + half, tmp, n - half);
    size_t i = 0, j = half, k = 0;
    while (i < half && j < n) tmp[k++] = piece_area(&a[j]) > piece_area(&a[i]) ? a[j++] : a[i++];
    while (i < half) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof(Rect4));
}

/* _split_free: remove the placed rect [ux, ur) x [uy, ub) of ``page`` from the free rects. */
static int split_free(Work *wk, i64 page, i64 ux, i64 uy, i64 ur, i64 ub, i64 min_w, i64 min_h, int has_border,
                      i64 border_r, i64 border_b) {
    const PageList *pl = &wk->pages[page];
    if (reserve_scratch(wk, pl->len)) return -1;
    size_t n_holes = 0, n_pieces = 0, n_others = 0;
    for (size_t j = 0; j < pl->len; j++) {
        size_t i = pl->idx[j];
        /* closed test: the rects of this page that intersect or touch the placed one */
        if ((wk->x[i] > ur) | (wk->y[i] > ub) | (wk->r[i] < ux) | (wk->b[i] < uy)) continue;
        i64 x = wk->x[i], y = wk->y[i], r = wk->r[i], b = wk->b[i];
        if (x < ur && r > ux && y < ub && b > uy) {
            wk->holes[n_holes++] = i;
            Rect4 *out = wk->pieces;
            if (x < ux) out[n_pieces++] = (Rect4){x, y, ux, b};
            if (r > ur) out[n_pieces++] = (Rect4){ur, y, r, b};
            if (y < uy) out[n_pieces++] = (Rect4){x, y, r, uy};
            if (b > ub) out[n_pieces++] = (Rect4){x, ub, r, b};
        } else {
            wk->others[n_others++] = i;
        }
    }
    size_t n_useful = 0;
    for (size_t k = 0; k < n_pieces; k++)
        if (piece_useful(&wk->pieces[k], min_w, min_h, has_border, border_r, border_b))
            wk->pieces[n_useful++] = wk->pieces[k];
    sort_pieces(wk->pieces, wk->tmp, n_useful);
    size_t n_kept = 0;
    for (size_t k = 0; k < n_useful; k++) {
        const Rect4 *p = &wk->pieces[k];
        int inside = 0;
        for (size_t q = 0; q < n_kept && !inside; q++) inside = contains(&wk->kept[q], p);
        for (size_t q = 0; q < n_others && !inside; q++) {
            size_t o = wk->others[q];
            inside = (wk->x[o] <= p->x) & (wk->y[o] <= p->y) & (wk->r[o] >= p->r) & (wk->b[o] >= p->b);
        }
        if (!inside) wk->kept[n_kept++] = *p;
    }
    if (replace_free(wk, wk->holes, n_holes, wk->kept, n_kept, page)) return -1;
    pl_refresh(wk, page);
    return 0;
}

typedef struct {
    Py_ssize_t count;
    i64 *w, *h;          /* padded sizes, input order */
    i64 *real_w, *real_h;
    i64 *ow, *oh;        /* padded sizes in the attempt's order */
    i64 *area_left, *max_w_left, *max_h_left, *min_w_after, *min_h_after;
    i64 *dims_w, *dims_h, *used_w, *used_h, *areas; /* per page */
    i64 *step_page, *step_x, *step_y;               /* per step */
    i64 *long_side, *short_side, *area, *sort_tmp;  /* the sort keys of the orders */
    Work wk;
} Attempt;

enum { PACKED = 1, ABANDONED = 0, FAILED_MEMORY = -1, FAILED_INTERNAL = -2 };

/* Attempts of one order that differ only in their start (area scale, aspect) follow the
 * same trajectory until a page opens at a different size: nothing else depends on the
 * start (growth steps, final sizes and the bound do not). The first attempt of an order
 * (the reference) therefore records, at every page opening where some later start would
 * choose another size, the whole state just before it opens; each later start resumes
 * from the snapshot where it diverges, after checking the reference's per-step bound
 * figures over the shared prefix. A later start that never diverges would repeat the
 * reference exactly: same rank, so it cannot win (the earlier attempt wins a tie) and is
 * skipped, as it is when the reference was abandoned on that shared path (its bound can
 * only be lower). */
#define MAX_STARTS 64

typedef struct {
    Py_ssize_t step; /* the step whose rect opens page ``page`` */
    i64 page;        /* pages open before it */
    size_t n;        /* free rects */
    i64 *cols;       /* x, y, r, b, w, h, pg: 7 * n */
    PageList *lists; /* pages[0..page), their idx arrays in ``idx`` */
    size_t *idx;
    i64 *per_page;   /* dims_w, dims_h, used_w, used_h, areas: 5 * page */
    i64 sum_areas;
} Snapshot;

typedef struct {
    int n_later;
    Sizing later[MAX_STARTS];
    int diverges_at[MAX_STARTS]; /* snapshot index, -1 while still on the reference's path */
    Snapshot snaps[MAX_STARTS];
    int n_snaps;
    /* per step of the reference, after its placement: pages open, sum of final areas,
     * whether its page's span grew (the bound check's inputs); its placements */
    i64 *lb_pages, *lb_area, *ref_page, *ref_x, *ref_y;
    unsigned char *lb_grew;
} Shared;

/* memcpy that accepts an empty copy from or to a NULL pointer (not yet allocated) */
static void copy_items(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}

static void snapshot_free(Snapshot *sn) {
    free(sn->cols);
    free(sn->lists);
    free(sn->idx);
    free(sn->per_page);
    memset(sn, 0, sizeof(*sn));
}

static int snapshot_take(Snapshot *sn, const Attempt *at, Py_ssize_t step, i64 n_pages, i64 sum_areas) {
    const Work *wk = &at->wk;
    size_t n = wk->n, pages = (size_t)n_pages, n_idx = 0;
    for (size_t p = 0; p < pages; p++) n_idx += wk->pages[p].len;
    sn->step = step;
    sn->page = n_pages;
    sn->n = n;
    sn->sum_areas = sum_areas;
    sn->cols = malloc((7 * n + 1) * sizeof(i64));
    sn->lists = malloc((pages + 1) * sizeof(PageList));
    sn->idx = malloc((n_idx + 1) * sizeof(size_t));
    sn->per_page = malloc((5 * pages + 1) * sizeof(i64));
    if (!sn->cols || !sn->lists || !sn->idx || !sn->per_page) return -1;
    const i64 *rows[7] = {wk->x, wk->y, wk->r, wk->b, wk->w, wk->h, wk->pg};
    for (int c = 0; c < 7; c++) copy_items(sn->cols + (size_t)c * n, rows[c], n * sizeof(i64));
    size_t at_idx = 0;
    for (size_t p = 0; p < pages; p++) {
        sn->lists[p] = wk->pages[p];
        copy_items(sn->idx + at_idx, wk->pages[p].idx, wk->pages[p].len * sizeof(size_t));
        at_idx += wk->pages[p].len;
    }
    const i64 *per[5] = {at->dims_w, at->dims_h, at->used_w, at->used_h, at->areas};
    for (int c = 0; c < 5; c++) copy_items(sn->per_page + (size_t)c * pages, per[c], pages * sizeof(i64));
    return 0;
}

static int snapshot_restore(const Snapshot *sn, Attempt *at) {
    Work *wk = &at->wk;
    size_t n = sn->n, pages = (size_t)sn->page;
    if (reserve_free(wk, n)) return -1;
    i64 *rows[7] = {wk->x, wk->y, wk->r, wk->b, wk->w, wk->h, wk->pg};
    for (int c = 0; c < 7; c++) copy_items(rows[c], sn->cols + (size_t)c * n, n * sizeof(i64));
    wk->n = n;
    size_t at_idx = 0;
    for (size_t p = 0; p < pages; p++) {
        PageList *pl = &wk->pages[p];
        const PageList *saved = &sn->lists[p];
        if (saved->len > pl->cap) {
            if (grow_array(&pl->idx, saved->len, sizeof(size_t))) return -1;
            pl->cap = saved->len;
        }
        copy_items(pl->idx, sn->idx + at_idx, saved->len * sizeof(size_t));
        at_idx += saved->len;
        pl->len = saved->len;
        pl->max_w = saved->max_w;
        pl->max_h = saved->max_h;
        pl->fail_w = saved->fail_w;
        pl->fail_h = saved->fail_h;
    }
    i64 *per[5] = {at->dims_w, at->dims_h, at->used_w, at->used_h, at->areas};
    for (int c = 0; c < 5; c++) copy_items(per[c], sn->per_page + (size_t)c * pages, pages * sizeof(i64));
    return 0;
}

/* _pack_in_order for one order and sizing: the page, x and y of each step (order
 * position), and the page count in *pages. ABANDONED as soon as (pages, sum of final
 * page areas) so far reaches the bound. */
static int pack_in_order(Attempt *at, const i64 *order, const Sizing *s, int has_bound, i64 bound_pages,
                         i64 bound_area, i64 *pages_out, Shared *record, const Snapshot *resume) {
    Py_ssize_t count = at->count;
    i64 pad = s->pad;
    for (Py_ssize_t k = 0; k < count; k++) {
        at->ow[k] = at->w[order[k]];
        at->oh[k] = at->h[order[k]];
    }
    i64 area = 0, mw = 0, mh = 0, nw = NONE_AFTER, nh = NONE_AFTER;
    for (Py_ssize_t k = count - 1; k >= 0; k--) {
        at->min_w_after[k] = nw;
        at->min_h_after[k] = nh;
        area += at->ow[k] * at->oh[k];
        mw = max64(mw, at->ow[k]);
        mh = max64(mh, at->oh[k]);
        nw = min64(nw, at->ow[k]);
        nh = min64(nh, at->oh[k]);
        at->area_left[k] = area;
        at->max_w_left[k] = mw;
        at->max_h_left[k] = mh;
    }
    Work *wk = &at->wk;
    wk->n = 0;
    i64 n_pages = 0, sum_areas = 0;
    int last_growable = 0;
    Py_ssize_t first_step = 0;
    int resuming = resume != NULL;
    if (resume != NULL) { /* mid-step, just before a page opens (nothing fits, nothing grows) */
        if (snapshot_restore(resume, at)) return FAILED_MEMORY;
        n_pages = resume->page;
        sum_areas = resume->sum_areas;
        first_step = resume->step;
    }
    for (Py_ssize_t step = first_step; step < count; step++) {
        i64 w = at->ow[step], h = at->oh[step];
        int opened = 0;
        size_t best;
        for (;;) {
            /* The lowest page where it fits, then (short side left, long side left) packed
             * in one key (sides < 2**21), then top-most, left-most, first in the global
             * order (the page list's order). A page is skipped when its largest free sides
             * are too small, or when a rect no larger than this one fit nowhere on it. */
            uint64_t best_key = UINT64_MAX;
            best = 0;
            const i64 *fw = wk->w, *fh = wk->h;
            for (i64 p = 0; p < n_pages && best_key == UINT64_MAX; p++) {
                PageList *pl = &wk->pages[p];
                if (w > pl->max_w || h > pl->max_h || (w >= pl->fail_w && h >= pl->fail_h)) continue;
                const size_t *idx = pl->idx;
                for (size_t j = 0, len = pl->len; j < len; j++) {
                    size_t i = idx[j];
                    i64 dw = fw[i] - w, dh = fh[i] - h;
                    if ((dw | dh) < 0) continue;
                    uint64_t key = ((uint64_t)min64(dw, dh) << 21) | (uint64_t)max64(dw, dh);
                    if (key < best_key) {
                        best_key = key;
                        best = i;
                    } else if (key == best_key &&
                               (wk->y[i] < wk->y[best] || (wk->y[i] == wk->y[best] && wk->x[i] < wk->x[best]))) {
                        best = i;
                    }
                }
                if (best_key == UINT64_MAX && (pl->fail_w == NO_FAIL || w * h < pl->fail_w * pl->fail_h)) {
                    pl->fail_w = w;
                    pl->fail_h = h;
                }
            }
            int found = best_key != UINT64_MAX;
            /* a resumed attempt starts where the reference found no fit: it must not find one */
            if (found && resuming) return FAILED_INTERNAL;
            resuming = 0;
            if (found) break;
            /* fits nowhere: grow the last page, or open a new one */
            if (last_growable) {
                i64 last = n_pages - 1, gw, gh;
                grown_size(s, at->dims_w[last], at->dims_h[last], w, h, &gw, &gh);
                if (grow_page(wk, last, at->dims_w[last], at->dims_h[last], gw, gh, pad)) return FAILED_MEMORY;
                at->dims_w[last] = gw;
                at->dims_h[last] = gh;
                last_growable = growable(s, gw, gh, w, h);
                continue;
            }
            /* a new page always fits the rect (validated sizes): never open two for one */
            if (opened || n_pages >= count) return FAILED_INTERNAL;
            opened = 1;
            i64 pw, ph;
            initial_size(s, at->area_left[step], at->max_w_left[step] - pad, at->max_h_left[step] - pad, &pw, &ph);
            if (record != NULL) { /* later starts that open this page at another size leave here */
                int snap = -1;
                for (int k = 0; k < record->n_later; k++) {
                    if (record->diverges_at[k] >= 0) continue;
                    i64 kw, kh;
                    initial_size(&record->later[k], at->area_left[step], at->max_w_left[step] - pad,
                                 at->max_h_left[step] - pad, &kw, &kh);
                    if (kw == pw && kh == ph) continue;
                    if (snap < 0) {
                        snap = record->n_snaps++;
                        if (snapshot_take(&record->snaps[snap], at, step, n_pages, sum_areas)) return FAILED_MEMORY;
                    }
                    record->diverges_at[k] = snap;
                }
            }
            i64 page = n_pages++;
            at->dims_w[page] = pw;
            at->dims_h[page] = ph;
            at->used_w[page] = at->used_h[page] = at->areas[page] = 0;
            last_growable = growable(s, pw, ph, w, h);
            wk->pages[page].len = 0;
            if (append_free(wk, 0, 0, pw + pad, ph + pad, page)) return FAILED_MEMORY;
            pl_refresh(wk, page);
        }
        i64 ux = wk->x[best], uy = wk->y[best], page = wk->pg[best];
        at->step_page[step] = page;
        at->step_x[step] = ux;
        at->step_y[step] = uy;
        /* the bound's figures: pages open, the sum of their final areas so far */
        i64 right = ux + w - pad, bottom = uy + h - pad;
        int grew = right > at->used_w[page] || bottom > at->used_h[page];
        if (grew) {
            at->used_w[page] = max64(at->used_w[page], right);
            at->used_h[page] = max64(at->used_h[page], bottom);
            i64 fw, fh;
            final_size(s, at->used_w[page], at->used_h[page], &fw, &fh);
            sum_areas += fw * fh - at->areas[page];
            at->areas[page] = fw * fh;
        }
        if (record != NULL) {
            record->lb_pages[step] = n_pages;
            record->lb_area[step] = sum_areas;
            record->lb_grew[step] = (unsigned char)grew;
        }
        if (has_bound) {
            if (grew ? n_pages > bound_pages || (n_pages == bound_pages && sum_areas >= bound_area)
                     : n_pages > bound_pages)
                return ABANDONED;
        }
        int has_border = last_growable && page == n_pages - 1;
        i64 border_r = has_border ? at->dims_w[page] + pad : 0, border_b = has_border ? at->dims_h[page] + pad : 0;
        if (split_free(wk, page, ux, uy, ux + w, uy + h, at->min_w_after[step], at->min_h_after[step], has_border,
                       border_r, border_b))
            return FAILED_MEMORY;
    }
    *pages_out = n_pages;
    return PACKED;
}

/* ------------------------------------------------------------------------------ */
/* packing orders: _sort_orders (np.lexsort: by k1 descending, then k2 descending,
 * then the input index) */

static int key_before(const i64 *k1, const i64 *k2, i64 a, i64 b) {
    if (k1[a] != k1[b]) return k1[a] > k1[b];
    return k2[a] > k2[b];
}

/* stable merge sort of idx[0..n) by (k1 desc, k2 desc); equal keys keep their order */
static void sort_by_keys(i64 *idx, i64 *tmp, size_t n, const i64 *k1, const i64 *k2) {
    if (n < 2) return;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            i64 v = idx[i];
            size_t j = i;
            while (j > 0 && key_before(k1, k2, v, idx[j - 1])) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
        return;
    }
    size_t half = n / 2;
    sort_by_keys(idx, tmp, half, k1, k2);
    sort_by_keys(idx + half, tmp, n - half, k1, k2);
    size_t i = 0, j = half, k = 0;
    while (i < half && j < n) tmp[k++] = key_before(k1, k2, idx[j], idx[i]) ? idx[j++] : idx[i++];
    while (i < half) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof(i64));
}

/* The orders of _sort_orders, made when first needed: duplicates of an earlier order
 * are dropped (_attempts keeps the first), so order k is the k-th distinct one. */
typedef struct {
    size_t count, made;
    int next_key;
    const i64 *keys[4][2];
    i64 *orders, *tmp; /* 4 * count, count */
} Orders;

/* order ``k`` (NULL when there are fewer distinct orders) */
static const i64 *get_order(Orders *o, size_t k) {
    size_t count = o->count;
    while (o->made <= k && o->next_key < 4) {
        i64 *order = o->orders + o->made * count;
        for (size_t i = 0; i < count; i++) order[i] = (i64)i;
        sort_by_keys(order, o->tmp, count, o->keys[o->next_key][0], o->keys[o->next_key][1]);
        o->next_key++;
        int duplicate = 0;
        for (size_t seen = 0; seen < o->made && !duplicate; seen++)
            duplicate = memcmp(o->orders + seen * count, order, count * sizeof(i64)) == 0;
        if (!duplicate) o->made++;
    }
    return o->made > k ? o->orders + k * count : NULL;
}

/* ------------------------------------------------------------------------------ */
/* Python boundary */

static int read_int64_buffer(PyObject *obj, Py_ssize_t count, i64 *out, const char *what) {
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    const char *fmt = view.format ? view.format : "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@') fmt++;
    int ok = view.ndim == 1 && view.itemsize == 8 && (strcmp(fmt, "q") == 0 || strcmp(fmt, "l") == 0) &&
             view.len == count * 8;
    if (ok) memcpy(out, view.buf, (size_t)count * sizeof(i64));
    PyBuffer_Release(&view);
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s must be a 1-D int64 array of %zd items", what, count);
        return -1;
    }
    return 0;
}

static int read_i64(PyObject *obj, i64 low, i64 high, const char *what, i64 *out) {
    long long v = PyLong_AsLongLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < low || v > high) {
        PyErr_Format(PyExc_ValueError, "%s out of range: %lld", what, v);
        return -1;
    }
    *out = (i64)v;
    return 0;
}

static void *checked_calloc(size_t count, size_t item, int *failed) {
    void *p = calloc(count ? count : 1, item);
    if (p == NULL) *failed = 1;
    return p;
}

PyDoc_STRVAR(best_attempt_doc,
             "best_attempt(widths, heights, starts, budget, max_w, max_h, padding, power_of_two, square, beat)\n"
             "--\n\n"
             "maxrects._best_attempt: pack the int64 ``widths``/``heights`` (real sizes) once per attempt\n"
             "(the orders of _sort_orders x the (area_scale, aspect) ``starts``, at most max(1, budget //\n"
             "count) of them) and keep the one of fewest pages, then least page area (the earlier on a tie),\n"
             "ranking below ``beat`` (None or (pages, area)). Returns None, or (pages, xs, ys, page_sizes):\n"
             "three lists in input order and a tuple of (w, h).");

static PyObject *best_attempt(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *widths_obj, *heights_obj, *starts_obj, *budget_obj, *max_w_obj, *max_h_obj, *pad_obj, *beat_obj;
    int pow2, square;
    if (!PyArg_ParseTuple(args, "OOOOOOOppO:best_attempt", &widths_obj, &heights_obj, &starts_obj, &budget_obj,
                          &max_w_obj, &max_h_obj, &pad_obj, &pow2, &square, &beat_obj))
        return NULL;
    Sizing base = {0};
    i64 budget;
    if (read_i64(max_w_obj, 1, SPARKY_LIMIT, "max_w", &base.max_w) ||
        read_i64(max_h_obj, 1, SPARKY_LIMIT, "max_h", &base.max_h) ||
        read_i64(pad_obj, 0, SPARKY_LIMIT, "padding", &base.pad) ||
        read_i64(budget_obj, 1, NONE_AFTER, "budget", &budget))
        return NULL;
    if (max64(base.max_w, base.max_h) + base.pad + 2 > SPARKY_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "page size + padding too large for the compiled packer");
        return NULL;
    }
    if (square && base.max_w != base.max_h) {
        PyErr_SetString(PyExc_ValueError, "square pages need max_w == max_h");
        return NULL;
    }
    base.pow2 = pow2;
    base.square = square;
    int has_beat = beat_obj != Py_None;
    i64 beat_pages = 0, beat_area = 0;
    if (has_beat) {
        if (!PyTuple_Check(beat_obj) || PyTuple_GET_SIZE(beat_obj) != 2) {
            PyErr_SetString(PyExc_TypeError, "beat must be None or a (pages, area) tuple");
            return NULL;
        }
        if (read_i64(PyTuple_GET_ITEM(beat_obj, 0), 0, NONE_AFTER, "beat pages", &beat_pages) ||
            read_i64(PyTuple_GET_ITEM(beat_obj, 1), 0, NONE_AFTER, "beat area", &beat_area))
            return NULL;
    }
    Py_ssize_t count = PyObject_Length(widths_obj);
    if (count < 0) return NULL;
    if (count < 1 || count > SPARKY_LIMIT) {
        PyErr_Format(PyExc_ValueError, "rect count must be 1..%lld, found %zd", (long long)SPARKY_LIMIT, count);
        return NULL;
    }
    PyObject *starts = PySequence_Fast(starts_obj, "starts must be a sequence");
    if (starts == NULL) return NULL;
    Py_ssize_t n_starts = PySequence_Fast_GET_SIZE(starts);
    if (n_starts < 1 || n_starts > MAX_STARTS) {
        Py_DECREF(starts);
        PyErr_SetString(PyExc_ValueError, "starts must hold 1..64 (area_scale, aspect) pairs");
        return NULL;
    }

    size_t cnt = (size_t)count;
    int failed = 0;
    Attempt at;
    memset(&at, 0, sizeof(at));
    at.count = count;
    Sizing sizings[MAX_STARTS];
    i64 *orders = checked_calloc(4 * cnt, sizeof(i64), &failed);
    i64 **per_count[] = {&at.w, &at.h, &at.real_w, &at.real_h, &at.ow, &at.oh, &at.area_left, &at.max_w_left,
                         &at.max_h_left, &at.min_w_after, &at.min_h_after, &at.dims_w, &at.dims_h, &at.used_w,
                         &at.used_h, &at.areas, &at.step_page, &at.step_x, &at.step_y, &at.long_side,
                         &at.short_side, &at.area, &at.sort_tmp};
    const size_t n_per_count = sizeof(per_count) / sizeof(per_count[0]);
    for (size_t k = 0; k < n_per_count; k++) *per_count[k] = checked_calloc(cnt, sizeof(i64), &failed);
    i64 *best_page = checked_calloc(cnt, sizeof(i64), &failed), *best_x = checked_calloc(cnt, sizeof(i64), &failed);
    i64 *best_y = checked_calloc(cnt, sizeof(i64), &failed);
    i64 *best_sizes = checked_calloc(2 * cnt, sizeof(i64), &failed);
    at.wk.pages = checked_calloc(cnt, sizeof(PageList), &failed);
    Shared *shared = checked_calloc(1, sizeof(Shared), &failed);
    if (shared != NULL) {
        i64 **shared_rows[] = {&shared->lb_pages, &shared->lb_area, &shared->ref_page, &shared->ref_x, &shared->ref_y};
        for (size_t k = 0; k < 5; k++) *shared_rows[k] = checked_calloc(cnt, sizeof(i64), &failed);
        shared->lb_grew = checked_calloc(cnt, 1, &failed);
    }
    if (at.wk.pages != NULL) at.wk.n_pages_alloc = cnt;
    PyObject *result = NULL;
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    if (read_int64_buffer(widths_obj, count, at.real_w, "widths") ||
        read_int64_buffer(heights_obj, count, at.real_h, "heights"))
        goto done;
    for (size_t k = 0; k < cnt; k++) {
        /* real sizes 1..max (a rect larger than the page never gets here) */
        if (at.real_w[k] < 1 || at.real_w[k] > base.max_w || at.real_h[k] < 1 || at.real_h[k] > base.max_h) {
            PyErr_Format(PyExc_ValueError, "rect %zu: size %lldx%lld outside 1..max", k, (long long)at.real_w[k],
                         (long long)at.real_h[k]);
            goto done;
        }
        at.w[k] = at.real_w[k] + base.pad;
        at.h[k] = at.real_h[k] + base.pad;
        at.long_side[k] = max64(at.real_w[k], at.real_h[k]);
        at.short_side[k] = min64(at.real_w[k], at.real_h[k]);
        at.area[k] = at.real_w[k] * at.real_h[k];
    }
    /* longest side then shortest; area then longest side; height then width; width then height */
    Orders orders_of = {.count = cnt, .orders = orders, .tmp = at.sort_tmp,
                        .keys = {{at.long_side, at.short_side}, {at.area, at.long_side}, {at.real_h, at.real_w},
                                 {at.real_w, at.real_h}}};
    for (Py_ssize_t a = 0; a < n_starts; a++) {
        PyObject *item = PySequence_Fast_GET_ITEM(starts, a);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "a start must be an (area_scale, aspect) tuple");
            goto done;
        }
        double scale = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 0));
        double aspect = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 1));
        if (PyErr_Occurred()) goto done;
        /* area < 2^60 (padded side < 2^20, squared, times < 2^20 rects), times scale, then
         * times aspect, stays below 2^62: inside int64 (Python's starts: at most 1.2 and 1.3) */
        if (!(scale >= 0.0 && scale <= 2.0) || !(aspect >= 0.0 && aspect <= 2.0)) {
            PyErr_SetString(PyExc_ValueError, "area_scale and aspect must be within 0..2");
            goto done;
        }
        sizings[a] = base;
        sizings[a].scale = scale;
        sizings[a].aspect = aspect;
    }

    int status = PACKED, have_best = 0;
    i64 best_pages = 0, best_area = 0;
    Py_BEGIN_ALLOW_THREADS
    /* (order, start) pairs, order-major, within the placement budget (_attempts) */
    i64 n_attempts = max64(1, budget / count);
    for (i64 a = 0; a < n_attempts; a++) {
        const i64 *order = get_order(&orders_of, (size_t)(a / n_starts));
        if (order == NULL) break;
        const Sizing *sizing = &sizings[a % n_starts];
        /* bound: beat, or the best rank so far, or the smaller of the two */
        int has_bound = has_beat || have_best;
        i64 bound_pages = beat_pages, bound_area = beat_area;
        if (have_best && (!has_beat || best_pages < beat_pages || (best_pages == beat_pages && best_area < beat_area))) {
            bound_pages = best_pages;
            bound_area = best_area;
        }
        i64 pages = 0;
        int start = (int)(a % n_starts);
        if (start == 0) { /* the reference of this order: record what later starts reuse */
            for (int k = 0; k < shared->n_snaps; k++) snapshot_free(&shared->snaps[k]);
            shared->n_snaps = 0;
            shared->n_later = (int)(min64(n_starts, n_attempts - a) - 1);
            for (int k = 0; k < shared->n_later; k++) {
                shared->later[k] = sizings[k + 1];
                shared->diverges_at[k] = -1;
            }
            Shared *record = shared->n_later > 0 ? shared : NULL;
            status = pack_in_order(&at, order, sizing, has_bound, bound_pages, bound_area, &pages, record, NULL);
            if (record != NULL && status >= 0) {
                memcpy(shared->ref_page, at.step_page, cnt * sizeof(i64));
                memcpy(shared->ref_x, at.step_x, cnt * sizeof(i64));
                memcpy(shared->ref_y, at.step_y, cnt * sizeof(i64));
            }
        } else {
            int snap = shared->diverges_at[start - 1];
            if (snap < 0) continue; /* the reference's trajectory: cannot win, or abandoned */
            const Snapshot *sn = &shared->snaps[snap];
            int abandoned = 0; /* the bound over the shared prefix, as pack_in_order checks it */
            for (Py_ssize_t t = 0; t < sn->step && has_bound && !abandoned; t++) {
                i64 lp = shared->lb_pages[t], la = shared->lb_area[t];
                abandoned = shared->lb_grew[t] ? lp > bound_pages || (lp == bound_pages && la >= bound_area)
                                               : lp > bound_pages;
            }
            if (abandoned) continue;
            memcpy(at.step_page, shared->ref_page, (size_t)sn->step * sizeof(i64));
            memcpy(at.step_x, shared->ref_x, (size_t)sn->step * sizeof(i64));
            memcpy(at.step_y, shared->ref_y, (size_t)sn->step * sizeof(i64));
            status = pack_in_order(&at, order, sizing, has_bound, bound_pages, bound_area, &pages, NULL, sn);
        }
        if (status < 0) break;
        if (status == ABANDONED) continue;
        /* _finish: each page's final size from the span of its (real) rects */
        for (i64 p = 0; p < pages; p++) at.used_w[p] = at.used_h[p] = 0;
        for (size_t k = 0; k < cnt; k++) {
            i64 p = at.step_page[k], idx = order[k];
            at.used_w[p] = max64(at.used_w[p], at.step_x[k] + at.real_w[idx]);
            at.used_h[p] = max64(at.used_h[p], at.step_y[k] + at.real_h[idx]);
        }
        i64 area = 0;
        for (i64 p = 0; p < pages; p++) {
            i64 fw, fh;
            final_size(sizing, at.used_w[p], at.used_h[p], &fw, &fh);
            at.dims_w[p] = fw;
            at.dims_h[p] = fh;
            area += fw * fh;
        }
        int better = !have_best || pages < best_pages || (pages == best_pages && area < best_area);
        int beats = !has_beat || pages < beat_pages || (pages == beat_pages && area < beat_area);
        if (better && beats) {
            have_best = 1;
            best_pages = pages;
            best_area = area;
            for (size_t k = 0; k < cnt; k++) {
                i64 idx = order[k];
                best_page[idx] = at.step_page[k];
                best_x[idx] = at.step_x[k];
                best_y[idx] = at.step_y[k];
            }
            for (i64 p = 0; p < pages; p++) {
                best_sizes[2 * p] = at.dims_w[p];
                best_sizes[2 * p + 1] = at.dims_h[p];
            }
        }
        status = PACKED;
    }
    Py_END_ALLOW_THREADS
    if (status == FAILED_MEMORY) {
        PyErr_NoMemory();
        goto done;
    }
    if (status == FAILED_INTERNAL) {
        PyErr_SetString(PyExc_RuntimeError, "compiled packer: a new page did not fit its rect");
        goto done;
    }
    if (!have_best) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    {
        PyObject *lists[3] = {PyList_New(count), PyList_New(count), PyList_New(count)};
        PyObject *sizes = PyTuple_New((Py_ssize_t)best_pages);
        const i64 *columns[3] = {best_page, best_x, best_y};
        int ok = lists[0] && lists[1] && lists[2] && sizes;
        for (int c = 0; c < 3 && ok; c++) {
            for (Py_ssize_t k = 0; k < count && ok; k++) {
                PyObject *v = PyLong_FromLongLong(columns[c][k]);
                if (v == NULL) ok = 0;
                else PyList_SET_ITEM(lists[c], k, v);
            }
        }
        for (i64 p = 0; p < best_pages && ok; p++) {
            PyObject *pair = Py_BuildValue("(LL)", (long long)best_sizes[2 * p], (long long)best_sizes[2 * p + 1]);
            if (pair == NULL) ok = 0;
            else PyTuple_SET_ITEM(sizes, (Py_ssize_t)p, pair);
        }
        if (ok) result = PyTuple_Pack(4, lists[0], lists[1], lists[2], sizes);
        Py_XDECREF(lists[0]);
        Py_XDECREF(lists[1]);
        Py_XDECREF(lists[2]);
        Py_XDECREF(sizes);
    }
done:
    Py_DECREF(starts);
    free(orders);
    for (size_t k = 0; k < n_per_count; k++) free(*per_count[k]);
    free(best_page);
    free(best_x);
    free(best_y);
    free(best_sizes);
    work_free(&at.wk);
    if (shared != NULL) {
        for (int k = 0; k < shared->n_snaps; k++) snapshot_free(&shared->snaps[k]);
        free(shared->lb_pages);
        free(shared->lb_area);
        free(shared->ref_page);
        free(shared->ref_x);
        free(shared->ref_y);
        free(shared->lb_grew);
        free(shared);
    }
    return result;
}

PyDoc_STRVAR(sizes_doc,
             "sizes(sizes, limit_w, limit_h)\n"
             "--\n\n"
             "The fast path of maxrects._validated_sizes: for a list or tuple of (width, height) lists or\n"
             "tuples of plain ints within 1..limit, the bytes of their int64 (width, height) pairs; None for\n"
             "anything else (the Python loop then gives the result or the exact error).");

static PyObject *sizes_fast(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *seq;
    long long limit_w, limit_h;
    if (!PyArg_ParseTuple(args, "OLL:sizes", &seq, &limit_w, &limit_h)) return NULL;
    if (!PyList_CheckExact(seq) && !PyTuple_CheckExact(seq)) Py_RETURN_NONE;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (count > PY_SSIZE_T_MAX / 16) Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * 16);
    if (out == NULL || count == 0) return out;
    i64 *pairs = (i64 *)PyBytes_AS_STRING(out);
    /* only exact lists, tuples and ints are read: no Python code runs, the list cannot change */
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k);
        if ((!PyTuple_CheckExact(item) && !PyList_CheckExact(item)) || PySequence_Fast_GET_SIZE(item) != 2) break;
        PyObject *w = PySequence_Fast_GET_ITEM(item, 0), *h = PySequence_Fast_GET_ITEM(item, 1);
        if (!PyLong_CheckExact(w) || !PyLong_CheckExact(h)) break;
        int overflow_w = 0, overflow_h = 0;
        long long vw = PyLong_AsLongLongAndOverflow(w, &overflow_w);
        long long vh = PyLong_AsLongLongAndOverflow(h, &overflow_h);
        if (overflow_w || overflow_h || vw < 1 || vh < 1 || vw > limit_w || vh > limit_h) break;
        pairs[2 * k] = (i64)vw;
        pairs[2 * k + 1] = (i64)vh;
        if (k == count - 1) return out;
    }
    Py_DECREF(out);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(placements_doc,
             "placements(cls, pages, xs, ys)\n"
             "--\n\n"
             "tuple(map(cls, pages, xs, ys)) for maxrects.Placement, a frozen dataclass of the fields\n"
             "page, x, y: each object made as its generated __init__ makes it (object.__new__, then\n"
             "object.__setattr__ of the three fields) without running Python code per rect.");

static PyObject *name_page, *name_x, *name_y, *no_args;

static PyObject *placements(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cls, *lists[3];
    if (!PyArg_ParseTuple(args, "O!O!O!O!:placements", &PyType_Type, &cls, &PyList_Type, &lists[0], &PyList_Type,
                          &lists[1], &PyList_Type, &lists[2]))
        return NULL;
    PyTypeObject *type = (PyTypeObject *)cls;
    /* only a plain class: object's allocation, attributes stored the generic way */
    if (type->tp_new != PyBaseObject_Type.tp_new || type->tp_itemsize != 0) {
        PyErr_SetString(PyExc_TypeError, "placements: cls must be a plain class (object.__new__)");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(lists[0]);
    if (PyList_GET_SIZE(lists[1]) != count || PyList_GET_SIZE(lists[2]) != count) {
        PyErr_SetString(PyExc_ValueError, "placements: pages, xs and ys differ in length");
        return NULL;
    }
    PyObject *out = PyTuple_New(count);
    if (out == NULL) return NULL;
    PyObject *names[3] = {name_page, name_x, name_y};
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *obj = PyBaseObject_Type.tp_new(type, no_args, NULL);
        if (obj == NULL) goto fail;
        PyTuple_SET_ITEM(out, k, obj);
        for (int f = 0; f < 3; f++)
            if (PyObject_GenericSetAttr(obj, names[f], PyList_GET_ITEM(lists[f], k)) < 0) goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"placements", placements, METH_VARARGS, placements_doc},
    {"best_attempt", best_attempt, METH_VARARGS, best_attempt_doc},
    {"sizes", sizes_fast, METH_VARARGS, sizes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_cmaxrects",
    .m_doc = "Compiled core of sparky_assets.pack.maxrects (see maxrects.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__cmaxrects(void) {
    if (name_page == NULL) {
        name_page = PyUnicode_InternFromString("page");
        name_x = PyUnicode_InternFromString("x");
        name_y = PyUnicode_InternFromString("y");
        no_args = PyTuple_New(0);
        if (name_page == NULL || name_x == NULL || name_y == NULL || no_args == NULL) return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "LIMIT", (long)SPARKY_LIMIT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
