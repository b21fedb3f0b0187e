"""Colour maths shared by the palette lock and the procedural generator: sRGB ↔ OKLab.

One implementation of Björn Ottosson's OKLab (sRGB transfer curve, the two 3×3
matrices) for the whole package, in float64.

Determinism across CPUs and numpy versions: the matrices are applied as explicit
elementwise sums (``a*x + b*y + c*z``), never through ``@``/BLAS, whose kernels
change accumulation order and fused multiply-adds with the CPU. Basic IEEE
operations are correctly rounded on every machine, but ``power`` and ``cbrt`` are
not: numpy's SIMD paths (AVX-512 SVML and friends) may differ from the scalar libm
in the last bit. Every *discrete* decision taken from these floats therefore goes
through a rule that is stable under last-bit noise:

- :func:`nearest` treats distances within :data:`TIE_BAND` of the best as a tie
  and takes the lowest palette index;
- :func:`oklab_to_srgb` rounds each channel in float64 except within
  :data:`ROUND_BAND` of a half, where it recomputes that channel in 50-digit decimal
  arithmetic (software, identical everywhere).

The palette lock goes further for its exact (integer sRGB) inputs: see
:func:`exact_oklab` and :mod:`sparky_assets.process.quantize`.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np

TIE_BAND = 1e-9
"""Squared-OKLab distances closer than this are a tie (float noise is ~1e-15)."""
ROUND_BAND = 1e-7
"""``x*255`` within this of ``k + 0.5`` is rounded with exact decimal arithmetic."""

# linear sRGB → LMS (rows: l, m, s)
M1 = (
    (0.4122214708, 0.5363325363, 0.0514459929),
    (0.2119034982, 0.6806995451, 0.1073969566),
    (0.0883024619, 0.2817188376, 0.6299787005),
)
# cube-rooted LMS → OKLab (rows: L, a, b)
M2 = (
    (0.2104542553, 0.7936177850, -0.0040720468),
    (1.9779984951, -2.4285922050, 0.4505937099),
    (0.0259040371, 0.7827717662, -0.8086757660),
)
# OKLab → cube-rooted LMS
M2_INV = (
    (1.0, 0.3963377774, 0.2158037573),
    (1.0, -0.1055613458, -0.0638541728),
    (1.0, -0.0894841775, -1.2914855480),
)
# LMS → linear sRGB
M1_INV = (
    (4.0767416621, -3.3077115913, 0.2309699292),
    (-1.2684380046, 2.6097574011, -0.3413193965),
    (-0.0041960863, -0.7034186147, 1.7076147010),
)


def apply3(matrix, x: np.ndarray) -> np.ndarray:
    """``matrix @ x`` over the last axis of ``x`` as fixed elementwise sums (no BLAS)."""
    x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([(r[0] * x0 + r[1] * x1) + r[2] * x2 for r in matrix], axis=-1)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB channel values 0..255 (any numeric dtype) → linear light 0..1, float64."""
    c = np.asarray(c, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256))
"""The transfer curve for every 8-bit channel value."""


def linear_to_oklab(linear: np.ndarray) -> np.ndarray:
    return apply3(M2, np.cbrt(apply3(M1, linear)))


def srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB (0..255) → ``(..., 3)`` float64 OKLab."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return linear_to_oklab(SRGB8_TO_LINEAR[rgb])
    return linear_to_oklab(srgb_to_linear(rgb))


def _linear_to_srgb_unit(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def oklab_to_linear(lab: np.ndarray) -> np.ndarray:
    """OKLab → linear sRGB, clipped to the gamut [0, 1]."""
    lms = apply3(M2_INV, np.asarray(lab, dtype=np.float64))
    return np.clip(apply3(M1_INV, lms * lms * lms), 0.0, 1.0)


def oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """``(..., 3)`` OKLab → ``(..., 3)`` uint8 sRGB (gamut-clipped, rounded half to even;
    values near a rounding boundary are decided exactly, see the module docstring)."""
    lab = np.asarray(lab, dtype=np.float64)
    scaled = _linear_to_srgb_unit(oklab_to_linear(lab)) * 255.0
    out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    frac = scaled - np.floor(scaled)
    near = np.abs(frac - 0.5) < ROUND_BAND
    if near.any():
        flat_lab = lab.reshape(-1, 3)
        flat_out = out.reshape(-1, 3)
        rows, channels = np.nonzero(near.reshape(-1, 3))
        for row, channel in zip(rows.tolist(), channels.tolist()):
            flat_out[row, channel] = _exact_srgb_channel(flat_lab[row], channel)
    return out


def _exact_srgb_channel(lab: np.ndarray, channel: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 50
        lab_d = [Decimal(float(v)) for v in lab]
        lms = [sum((Decimal(r[j]) * lab_d[j] for j in range(3)), Decimal(0)) ** 3 for r in M2_INV]
        row = M1_INV[channel]
        linear = sum((Decimal(row[j]) * lms[j] for j in range(3)), Decimal(0))
        linear = min(max(linear, Decimal(0)), Decimal(1))
        if linear <= Decimal("0.0031308"):
            unit = linear * Decimal("12.92")
        else:
            unit = Decimal("1.055") * linear ** (Decimal(1) / Decimal("2.4")) - Decimal("0.055")
        value = unit * 255
        return int(min(max(value.to_integral_value(rounding="ROUND_HALF_EVEN"), 0), 255))


def exact_oklab(rgb: tuple[int, int, int]) -> tuple[Decimal, Decimal, Decimal]:
    """OKLab of an 8-bit sRGB colour in 50-digit decimal arithmetic: software maths,
    identical on every machine (the palette lock's tie-breaker)."""
    with localcontext() as ctx:
        ctx.prec = 50
        lin = []
        for c in rgb:
            u = Decimal(int(c)) / 255
            lin.append(
                u / Decimal("12.92")
                if u <= Decimal("0.04045")
                else ((u + Decimal("0.055")) / Decimal("1.055")) ** Decimal("2.4")
            )
        third = Decimal(1) / 3
        lms = [sum((Decimal(r[j]) * lin[j] for j in range(3)), Decimal(0)) for r in M1]
        root = [v**third if v > 0 else Decimal(0) for v in lms]
        lab = tuple(sum((Decimal(r[j]) * root[j] for j in range(3)), Decimal(0)) for r in M2)
    return lab  # type: ignore[return-value]


def squared_distances(lab: np.ndarray, palette_lab: np.ndarray, weights=(1.0, 1.0, 1.0)) -> np.ndarray:
    """``(n, k)`` weighted squared OKLab distances, summed in a fixed order."""
    d = [((lab[:, None, i] - palette_lab[None, :, i]) * weights[i]) ** 2 for i in range(3)]
    return (d[0] + d[1]) + d[2]


def argmin_with_ties(distances: np.ndarray) -> np.ndarray:
    """Row-wise argmin where entries within :data:`TIE_BAND` of the row minimum tie and
    the lowest column wins — the same answer whatever the last bits of the floats."""
    best = distances.min(axis=1, keepdims=True)
    return np.argmax(distances <= best + TIE_BAND, axis=1)


def nearest(lab: np.ndarray, palette_lab: np.ndarray, weights=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Index of the nearest palette entry for each row of ``lab`` (ties: lowest index)."""
    return argmin_with_ties(squared_distances(np.asarray(lab, dtype=np.float64).reshape(-1, 3), palette_lab, weights))


def lch(lightness: float, chroma: float, hue_degrees: float) -> np.ndarray:
    """An OKLCh colour as OKLab."""
    h = math.radians(hue_degrees)
    return np.array([lightness, chroma * math.cos(h), chroma * math.sin(h)])
