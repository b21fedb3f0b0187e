"""Declarative manifest keys (:class:`Field`) and the one checker that walks them.

Every table of the manifest is described by a ``{key: Field}`` mapping: the core
sections in :mod:`.schema`, and each plugin's own tables (a generator's
``settings_fields`` and ``option_fields``, an exporter's ``option_fields``). The
checker knows nothing about where a table lives: it reports problems through a
callback with the full key path (``generator.diffusion.pixelize.grid``), and the
manifest loader turns that key into a file position. A plugin used without a
manifest (tests, scripts) gets the same problems from :func:`check_fields`.

Invariants: a checked value has the declared kind (``None`` never stands for a
value); unknown keys are reported with the closest valid key as a suggestion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Diagnostic, suggest

MAX_SPRITE_SIDE = 4096
DITHER_MODES = ("none", "bayer2", "bayer4", "bayer8")
NAMED_PIVOTS: dict[str, tuple[float, float]] = {
    "top-left": (0.0, 0.0),
    "top-center": (0.5, 0.0),
    "top-right": (1.0, 0.0),
    "center-left": (0.0, 0.5),
    "center": (0.5, 0.5),
    "center-right": (1.0, 0.5),
    "bottom-left": (0.0, 1.0),
    "bottom-center": (0.5, 1.0),
    "bottom-right": (1.0, 1.0),
}
"""Named pivots as fractions of the frame (x right, y down): ``bottom-center`` of a
16x16 frame is the pixel corner (8, 16), where its feet stand."""
_HEX_COLOR = re.compile(r"^#?[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Field:
    """One manifest key: its kind, default and documentation."""

    kind: str
    """``str`` ``path`` ``int`` ``bool`` ``number`` ``size`` ``pair`` ``str-list`` ``int-list`` ``table``
    ``animations`` ``outline`` ``dither`` ``any`` (``any``: only ``check`` decides).
    ``path``: a file relative to the project root that the build reads (an export
    folder may not hold it)."""
    doc: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    """Allowed values of a ``str`` key (a near miss gets a suggestion)."""
    example: str | None = None
    fields: Mapping[str, Field] | None = None
    """The keys of a ``table`` (checked like any table); None: a free-form table."""
    check: Callable[[Any], str | None] | None = None
    """Extra rule after the kind check: returns what was expected when the value is
    wrong (``"a multiple of 8"``), None when it is fine."""
    type_doc: str | None = None
    """How the reference page names the type (default: ``kind``)."""


Report = Callable[..., None]
"""``report(key, message, expected=…, found=…, hint=…)``: one problem at a key path."""


def one_of(choices: tuple[str, ...] | list[str]) -> str:
    items = list(choices)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def describe(raw: Any) -> str:
    """``integer 3``, ``string 'big'``: what was found, short."""
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(raw), type(raw).__name__
    )
    text = repr(raw)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"


def check_value(key: str, raw: Any, spec: Field, report: Report, *, fill_defaults: bool = True) -> Any:
    """The checked value, or None after reporting a problem."""
    value = _kind_value(key, raw, spec, report, fill_defaults)
    if value is None:
        return None
    if spec.choices is not None and value not in spec.choices:
        report(
            key,
            f"invalid value {raw!r}",
            expected=one_of(spec.choices),
            found=describe(raw),
            hint=suggest(str(raw), spec.choices),
        )
        return None
    if spec.check is not None:
        expected = spec.check(value)
        if expected is not None:
            report(key, "invalid value", expected=expected, found=describe(raw))
            return None
    return value


def _kind_value(key: str, raw: Any, spec: Field, report: Report, fill_defaults: bool) -> Any:
    kind = spec.kind

    def wrong(expected: str) -> None:
        report(key, "wrong type", expected=expected, found=describe(raw))
        return None

    if kind == "any":
        return raw
    if kind in ("str", "path"):
        return raw if isinstance(raw, str) else wrong("a string" if kind == "str" else "a path (a string)")
    if kind == "bool":
        return raw if isinstance(raw, bool) else wrong("true or false")
    if kind in ("int", "number"):
        ok = isinstance(raw, int) and not isinstance(raw, bool)
        if kind == "number":
            ok = ok or isinstance(raw, float)
        if not ok:
            return wrong("an integer" if kind == "int" else "a number")
        if isinstance(raw, float) and not math.isfinite(raw):
            report(key, "not a finite number", expected="a finite number", found=repr(raw))
            return None
        if (spec.minimum is not None and raw < spec.minimum) or (spec.maximum is not None and raw > spec.maximum):
            lo = "" if spec.minimum is None else spec.minimum
            hi = "" if spec.maximum is None else spec.maximum
            report(key, "value out of range", expected=f"a value in [{lo}, {hi}]", found=repr(raw))
            return None
        return raw
    if kind in ("size", "pair"):
        allow_int = kind == "size"
        if allow_int and isinstance(raw, int) and not isinstance(raw, bool):
            raw = [raw, raw]
        if not (
            isinstance(raw, list) and len(raw) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
        ):
            return wrong("an integer or [width, height]" if allow_int else "[width, height]")
        w, h = raw
        if not (1 <= w <= MAX_SPRITE_SIDE and 1 <= h <= MAX_SPRITE_SIDE):
            report(key, "size out of range", expected=f"sides in 1..{MAX_SPRITE_SIDE}", found=f"[{w}, {h}]")
            return None
        return (w, h)
    if kind == "str-list":
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            return wrong("a list of strings")
        return raw
    if kind == "int-list":
        if not (isinstance(raw, list) and raw and all(type(x) is int for x in raw)):
            return wrong("a non-empty list of integers")
        lo = -math.inf if spec.minimum is None else spec.minimum
        hi = math.inf if spec.maximum is None else spec.maximum
        bad = [x for x in raw if not lo <= x <= hi]
        if bad:
            report(
                key, "value out of range", expected=f"integers in [{spec.minimum}, {spec.maximum}]", found=repr(bad[0])
            )
            return None
        return raw
    if kind == "table":
        if not isinstance(raw, dict):
            return wrong("a table")
        if spec.fields is None:
            return raw
        return check_table(key, raw, spec.fields, report, fill_defaults=fill_defaults)
    if kind == "outline":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and _HEX_COLOR.match(raw):
            return "#" + raw.lstrip("#").lower()
        return wrong('true, false or a colour "#rrggbb"')
    if kind == "dither":
        if raw is True:
            return "bayer4"
        if raw is False:
            return "none"
        if isinstance(raw, str) and raw in DITHER_MODES:
            return raw
        hint = suggest(raw, DITHER_MODES) if isinstance(raw, str) else None
        report(key, "unknown dither mode", expected=" | ".join(DITHER_MODES), found=repr(raw), hint=hint)
        return None
    if kind == "pivot":
        if isinstance(raw, str):
            if raw in NAMED_PIVOTS:
                return raw
            report(
                key,
                "unknown pivot name",
                expected=" | ".join(NAMED_PIVOTS),
                found=repr(raw),
                hint=suggest(raw, NAMED_PIVOTS),
            )
            return None
        if isinstance(raw, list) and len(raw) == 2 and all(type(x) is int for x in raw):
            return tuple(raw)
        return wrong('a point [x, y] or a name like "bottom-center"')
    if kind in ("animations", "slices"):
        return raw  # checked by the manifest loader (names and per-animation tables; slices against the size)
    raise AssertionError(kind)


def check_table(
    key: str, raw: Any, fields: Mapping[str, Field], report: Report, *, fill_defaults: bool = True
) -> dict[str, Any]:
    """Checked values of a table (defaults filled unless ``fill_defaults`` is off);
    unknown and missing keys reported."""
    if not isinstance(raw, dict):
        report(key, "wrong type", expected="a table", found=describe(raw))
        return {}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        sub = f"{key}.{name}" if key else name
        if name not in fields:
            report(sub, f"unknown key '{name}'", hint=suggest(name, fields) or _valid_keys(fields))
            continue
        checked = check_value(sub, value, fields[name], report, fill_defaults=fill_defaults)
        if checked is not None:
            out[name] = checked
    for name, spec in fields.items():
        if name in raw:
            continue
        if spec.required:
            report(key, f"missing required key '{name}'", expected=f"{name} = {spec.example or spec.kind}")
        elif fill_defaults and spec.default is not None:
            out[name] = spec.default
    return out


def _valid_keys(fields: Mapping[str, Field]) -> str:
    return f"valid keys: {', '.join(fields)}" if fields else "this table takes no keys"


def check_fields(
    key: str,
    raw: Any,
    fields: Mapping[str, Field],
    *,
    stage: str | None = None,
    sprite: str | None = None,
    fill_defaults: bool = True,
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """:func:`check_table` without a manifest: the values and the problems, each keyed
    by its full path (no file position)."""
    problems: list[Diagnostic] = []

    def report(at: str, message: str, **extra: Any) -> None:
        problems.append(Diagnostic(message, key=at, stage=stage, sprite=sprite, **extra))

    return check_table(key, raw, fields, report, fill_defaults=fill_defaults), problems
