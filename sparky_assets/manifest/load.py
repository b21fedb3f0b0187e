"""Load and validate ``sparky.toml``.

:func:`load_manifest` reads the file, checks every key against the field tables —
the core ones in :mod:`.schema` and each plugin's own (a generator's sprite keys and
``[generator.<name>]`` table, an exporter's ``[export.<name>]`` table) — loads the
palettes, resolves defaults and paths, and either returns a frozen
:class:`~.schema.Manifest` or raises one :class:`~sparky_assets.errors.InvalidInput`
holding *every* problem found, each located by file, line, column and key path.
Every file it reads goes through the caller's :class:`~sparky_assets.reads.ReadContext`.
Checks that need a generator's judgement (a source image exists and fits, a model
folder is there) happen when the build resolves the sprites.
"""

from __future__ import annotations

import fnmatch
import hashlib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import Diagnostic, DiagnosticSink, InvalidInput, suggest, toml_error_position
from ..hotreload.protocol import DEFAULT_ENDPOINT
from ..palettes.model import Palette
from ..pipeline.safepath import real_path
from ..reads import ReadContext, ensure_reads
from .fields import Field, Report, check_table, check_value, describe
from .locate import KeyLocator
from .names import NAME_RULE, name_problem
from .schema import (
    ANIMATION_FIELDS,
    DIRECTIONS,
    MANIFEST_NAME,
    MAX_SPRITE_SIDE,
    NAMED_PIVOTS,
    SECTIONS,
    SPRITE_FIELDS,
    TOP_LEVEL_KEYS,
    Animation,
    AtlasSpec,
    ExportSpec,
    Manifest,
    Polygon,
    Slice,
    SpriteSpec,
    TilesetSpec,
    TileSpec,
)

GENERATORS = "sparky_assets.generators"
EXPORTERS = "sparky_assets.exporters"


def find_manifest(path: str | Path = ".") -> Path:
    """``path`` itself if it is a file, else ``path/sparky.toml``."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise InvalidInput(
            Diagnostic(
                f"no manifest found at {p}",
                file=str(p),
                hint="run `sparky-assets init` to create one, or pass the path of a sparky.toml",
            )
        )
    return p.resolve()


def derived_seed(base: int, name: str) -> int:
    """A sprite's default seed: stable across machines and Python versions."""
    digest = hashlib.sha256(f"{base}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class _Validator:
    """Walks the raw TOML data, collecting diagnostics with locations."""

    def __init__(self, file: Path, text: str, reads: ReadContext):
        self.file = file
        self.display = str(file)
        self.text = text
        self._locator: KeyLocator | None = None
        self.sink = DiagnosticSink()
        self.reads = reads
        """Every file read to load the manifest (it, palette files, images read for their
        size): a long-lived builder reuses the loaded manifest while they are unchanged."""

    @property
    def locator(self) -> KeyLocator:
        """Built on the first diagnostic only: a valid manifest never needs positions."""
        if self._locator is None:
            self._locator = KeyLocator(self.text)
        return self._locator

    def error(self, key: str, message: str, *, sprite: str | None = None, **extra: Any) -> None:
        line, col = self.locator.locate(key)
        self.sink.add(
            Diagnostic(
                message, file=self.display, line=line, column=col, key=key, sprite=sprite, stage="manifest", **extra
            )
        )

    # -- typed values --------------------------------------------------------

    def _reporter(self, sprite: str | None) -> Report:
        return lambda key, message, **extra: self.error(key, message, sprite=sprite, **extra)

    def value(self, key: str, raw: Any, spec: Field, sprite: str | None = None) -> Any:
        """The checked value, or None after recording an error."""
        return check_value(key, raw, spec, self._reporter(sprite))

    def table(
        self, key: str, raw: Any, fields: Mapping[str, Field], sprite: str | None = None, fill_defaults: bool = True
    ) -> dict[str, Any]:
        """Checked values of a table (defaults filled); unknown keys reported."""
        return check_table(key, raw, fields, self._reporter(sprite), fill_defaults=fill_defaults)


def _short_repr(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _inside(root: Path, value: str) -> Path | None:
    """``root/value`` with symlinks resolved, or None when it leaves ``root`` (or cannot
    be resolved: a symlink loop, a NUL byte)."""
    try:
        path = real_path(root / value)
        path.relative_to(root)
    except (ValueError, OSError, RuntimeError):
        return None
    return path


MAX_MANIFEST_BYTES = 16 << 20


def _syntax_error(file: Path, message: str, line: int | None = None, col: int | None = None, **extra) -> InvalidInput:
    return InvalidInput(Diagnostic(message, file=str(file), line=line, column=col, stage="manifest", **extra))


def decode_manifest(file: Path, data: bytes) -> str:
    """The manifest's text: strict UTF-8 (an invalid byte is reported at its line and
    column, never replaced), a leading byte-order mark dropped (editors on Windows add one)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise _syntax_error(file, f"manifest is {len(data)} bytes; at most {MAX_MANIFEST_BYTES} are read")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        raise _syntax_error(
            file, "not valid UTF-8", line, col, found=repr(data[exc.start : exc.end]), hint="save the file as UTF-8"
        ) from None


def parse_manifest(path: str | Path, reads: ReadContext | None = None) -> tuple[dict, _Validator]:
    file = find_manifest(path)
    reads = ensure_reads(reads)
    try:
        text = decode_manifest(file, reads.read_bytes(file))
    except OSError as exc:
        raise _syntax_error(file, f"cannot read the manifest: {exc.strerror or exc}") from None
    validator = _Validator(file, text, reads)
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise _syntax_error(
            file, "tables or arrays nested too deeply", hint="a manifest needs a few levels of nesting at most"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        message, line, col = toml_error_position(exc, text)
        raise InvalidInput(
            Diagnostic(f"TOML syntax error: {message}", file=str(file), line=line, column=col, stage="manifest")
        ) from None
    return data, validator


def load_manifest(path: str | Path = ".", reads: ReadContext | None = None) -> Manifest:
    """Parse and validate a manifest; raise ``InvalidInput`` with every problem. Every
    file read (the manifest, palette files, source images) is recorded in ``reads``."""
    data, v = parse_manifest(path, reads)
    return _load(data, v)


def _load(data: dict, v: _Validator) -> Manifest:
    root = v.file.parent
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            v.error(
                key,
                f"unknown section '{key}'",
                hint=suggest(key, TOP_LEVEL_KEYS) or f"valid sections: {', '.join(TOP_LEVEL_KEYS)}",
            )

    project = v.table("project", data.get("project", {}), SECTIONS["project"])
    name = project.get("name", "project")
    out_rel = project.get("out", "build/sprites")
    out = _inside(root, out_rel)
    if out is None:
        v.error(
            "project.out",
            "output folder is outside the project root",
            expected=f"a folder inside {root}",
            found=repr(out_rel),
        )
        out = root / "build" / "sprites"
    default_size = project.get("size", (16, 16))
    default_fps = float(project.get("fps", 8))
    base_seed = project.get("seed", 0)

    generators = data.get("generator", {})
    if not isinstance(generators, dict) or not all(isinstance(t, dict) for t in generators.values()):
        v.error("generator", "wrong type", expected="tables [generator.<name>]", found=describe(generators))
        generators = {}
    for gen_name, table in generators.items():
        gen_class = _plugin(v, GENERATORS, gen_name, f"generator.{gen_name}")
        if gen_class is not None:  # each generator checks its own table
            v.table(f"generator.{gen_name}", table, gen_class.settings_fields, fill_defaults=False)

    sprites = _sprites(v, data.get("sprite", []), project, default_size, default_fps, base_seed)
    atlases = _atlases(v, data.get("atlas", []), sprites)
    tilesets = _tilesets(v, data.get("tileset", []), root, project.get("palette", "pico-8"), sprites)
    palettes = _load_palettes(
        v,
        project.get("palette", "pico-8"),
        sprites,
        [(f"tileset[{t.index}].palette", t.palette) for t in tilesets],
    )
    # what the build reads, so far as the manifest knows it: the files read to load it and
    # every generator option declared as a path (an export folder must hold none of them)
    inputs = sorted(
        v.reads.paths() - {v.file}
        | {p for s in sprites for p in _option_paths(v, s)}
        | {p for t in tilesets for p in (t.template, *(tile.source for tile in t.tiles)) if p is not None}
    )
    exports = _exports(v, data.get("export", {}), root, out, inputs)
    hot = v.table("hot_reload", data.get("hot_reload", {}), SECTIONS["hot_reload"])

    v.sink.raise_if_any()
    return Manifest(
        path=v.file,
        root=root,
        name=name,
        out=out,
        palette=project.get("palette", "pico-8"),
        seed=base_seed,
        sprites=tuple(sprites),
        atlases=tuple(atlases),
        exports=tuple(exports),
        generators={k: dict(t) for k, t in sorted(generators.items())},
        endpoint=hot.get("endpoint", DEFAULT_ENDPOINT),
        allow_remote=hot.get("allow_remote", False),
        tilesets=tuple(tilesets),
        palettes=palettes,
    )


def _option_paths(v: _Validator, s: SpriteSpec) -> list[Path]:
    """The files a sprite's generator options name (fields of kind ``path``)."""
    from ..registry import plugin_class

    try:
        fields = plugin_class(GENERATORS, s.generator).option_fields
    except Exception:  # noqa: BLE001 - an unknown or broken generator is reported at its sprite
        return []
    paths = [
        _inside(v.file.parent, value) for k, value in s.options.items() if k in fields and fields[k].kind == "path"
    ]
    return [p for p in paths if p is not None]


def _load_palettes(
    v: _Validator, default: str, sprites: list[SpriteSpec], more: list[tuple[str, str]] = ()
) -> dict[str, Palette]:
    """Every palette named (built-in or file), loaded once for the build; problems
    located at the key that names it."""
    from ..palettes.load import load_palette

    palettes: dict[str, Palette] = {}
    seen: set[str] = set()
    named = [("project.palette", default)] + [(f"sprite[{s.index}].palette", s.palette) for s in sprites]
    for key, value in named + list(more):
        if value in seen:
            continue
        seen.add(value)
        try:
            palettes[value] = load_palette(value, v.file.parent, manifest_file=v.display, key=key, reads=v.reads)
        except InvalidInput as exc:
            for d in exc.diagnostics:
                if d.file in (None, v.display) and d.line is None:
                    line, col = v.locator.locate(key)
                    d = Diagnostic(
                        d.message,
                        file=v.display,
                        line=line,
                        column=col,
                        key=key,
                        expected=d.expected,
                        found=d.found,
                        hint=d.hint,
                        stage="manifest",
                    )
                v.sink.add(d)
    return palettes


def _sprites(
    v: _Validator, raw: Any, project: dict, default_size, default_fps: float, base_seed: int
) -> list[SpriteSpec]:
    if not isinstance(raw, list):
        v.error("sprite", "wrong type", expected="[[sprite]] tables", found=describe(raw))
        return []
    sprites: list[SpriteSpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        key = f"sprite[{i}]"
        raw_name = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else None
        generator = _sprite_generator(entry, project)
        gen_class = _plugin(v, GENERATORS, generator, f"{key}.generator", sprite=raw_name)
        if gen_class is None:  # its own keys cannot be checked: check the core keys only
            own: Mapping[str, Field] = {}
            entry = {k: x for k, x in entry.items() if k in SPRITE_FIELDS} if isinstance(entry, dict) else entry
        else:
            own = {k: f for k, f in gen_class.option_fields.items() if k not in SPRITE_FIELDS}
        fields = v.table(key, entry, {**SPRITE_FIELDS, **own}, sprite=raw_name)
        sname = fields.get("name")
        if sname is None:
            continue
        problem = name_problem(sname)
        if problem:
            v.error(f"{key}.name", f"invalid sprite name: {problem}", expected=NAME_RULE, found=_short_repr(sname))
            continue
        if sname in seen:
            v.error(
                f"{key}.name",
                f"duplicate sprite name '{sname}'",
                sprite=sname,
                hint=f"first defined as sprite[{seen[sname]}]",
            )
            continue
        seen[sname] = i
        # the generator's keys as written (no defaults filled: they are part of what the lock records),
        # and the facings, which every generator draws
        options = {k: fields[k] for k in own if k in fields and k in entry}
        if "directions" in fields:
            options["directions"] = fields["directions"]
        size = fields.get("size") or _default_size(v, key, gen_class, own, options, sname) or default_size
        fps = float(fields.get("fps", default_fps))
        loop = fields.get("loop", True)
        anims = _animations(v, f"{key}.animations", fields.get("animations", {}), fps, loop, sname)
        layout = None
        if gen_class is not None and hasattr(gen_class, "source_layout"):  # e.g. an .aseprite file's tags and slices
            layout = gen_class.source_layout(options, v.file.parent, v.reads)
        if layout is not None and "animations" not in entry:
            anims = tuple(
                Animation(
                    c.name,
                    len(c.frames),
                    min(240.0, max(0.1, 1000.0 / c.durations[0])),
                    c.loop,
                    durations=c.durations,
                    playback=c.direction,
                    repeat=c.repeat,
                )
                for c in layout[0]
            )
        anims = tuple(
            replace(a, pivot=_pivot(v, f"{key}.animations.{a.name}.pivot", a.pivot, size, sname)) for a in anims
        )
        if "directions" in fields:
            anims = _with_directions(v, f"{key}.directions", fields["directions"], anims, fps, loop, sname)
        spec = SpriteSpec(
            name=sname,
            index=i,
            width=size[0],
            height=size[1],
            animations=anims,
            generator=generator,
            seed=fields.get("seed", derived_seed(base_seed, sname)),
            palette=fields.get("palette", project.get("palette", "pico-8")),
            prompt=fields.get("prompt"),
            outline=fields.get("outline", False),
            dither=fields.get("dither", "none"),
            options=options,
            pivot=_pivot(v, f"{key}.pivot", fields.get("pivot"), size, sname),
            slices=_merged_slices(
                _slices(v, f"{key}.slices", fields.get("slices", {}), size, sname), layout[1] if layout else ()
            ),
        )
        if options.get("split_layers") and hasattr(gen_class, "source_layer_names"):
            # one sprite per visible layer, named <sprite>_<layer> (Aseprite's --split-layers)
            for layer, suffix in gen_class.source_layer_names(options, v.file.parent, v.reads):
                part = f"{sname}_{suffix}"
                if part in seen:
                    v.error(f"{key}.split_layers", f"layer sprite '{part}' clashes with another sprite", sprite=sname)
                    continue
                seen[part] = i
                sprites.append(
                    replace(
                        spec,
                        name=part,
                        seed=derived_seed(base_seed, part),
                        options={**options, "layers": [layer]},
                    )
                )
            continue
        sprites.append(spec)
    return sprites


def _with_directions(
    v: _Validator, key: str, count: Any, anims: tuple[Animation, ...], fps: float, loop: bool, sprite: str
) -> tuple[Animation, ...]:
    """One clip per (animation, facing): ``walk`` → ``walk_n``, ``walk_e``, …; a still
    sprite → one 1-frame clip per facing, named by it."""
    if count not in DIRECTIONS:
        v.error(key, "invalid directions", sprite=sprite, expected="4 or 8", found=_short_repr(count))
        return anims
    facings = DIRECTIONS[count]
    if not anims:
        return tuple(Animation(d, 1, fps, loop, direction=d) for d in facings)
    out = tuple(replace(a, name=f"{a.name}_{d}", direction=d, base=a.name) for a in anims for d in facings)
    names = {a.name for a in anims}
    clashes = sorted(a.name for a in out if a.name in names)
    if clashes:
        v.error(
            key,
            f"directional clip name '{clashes[0]}' is also an animation of this sprite",
            sprite=sprite,
            expected="animation names that do not end in a facing suffix (_n, _e, …)",
            found=", ".join(clashes),
        )
    return out


def _sprite_generator(entry: Any, project: dict) -> str:
    """The generator a sprite names, else ``image`` when it has a ``source``, else the project's."""
    named = entry.get("generator") if isinstance(entry, dict) else None
    if isinstance(named, str):
        return named
    if isinstance(entry, dict) and "source" in entry:
        source = entry["source"]
        if isinstance(source, str) and source.lower().endswith((".aseprite", ".ase")):
            return "aseprite"
        return "image"
    return project.get("generator", "procedural")


def _plugin(v: _Validator, group: str, name: str, key: str, sprite: str | None = None) -> Any:
    """The class of plugin ``name`` (its field tables), or None after reporting why not."""
    from ..registry import plugin_class

    try:
        return plugin_class(group, name)
    except InvalidInput as exc:
        for d in exc.diagnostics:
            v.error(key, d.message, sprite=sprite, hint=d.hint)
    except Exception as exc:  # noqa: BLE001 - a plugin that fails to import disables only itself
        kind = "generator" if group == GENERATORS else "export target"
        v.error(key, f"{kind} '{name}' cannot be loaded: {type(exc).__name__}: {exc}", sprite=sprite)
    return None


def _default_size(
    v: _Validator, key: str, gen_class: Any, own: Mapping[str, Field], options: dict, sprite: str
) -> tuple[int, int] | None:
    """The generator's size for a sprite that sets none (an image's own size), which
    must fit the largest sprite side."""
    if gen_class is None:
        return None
    size = gen_class.default_size(options, v.file.parent, v.reads)
    if size is None or max(size) <= MAX_SPRITE_SIDE:
        return size
    where = next((f"{key}.{k}" for k in options if own[k].kind == "path"), key)
    v.error(
        where,
        f"source image is {size[0]}x{size[1]}, larger than a sprite can be",
        sprite=sprite,
        expected=f"sides of at most {MAX_SPRITE_SIDE} px",
        hint="set size (with pixelize = {} to collapse it) or grid = [w, h] to slice it",
    )
    return (1, 1)


def _animations(v: _Validator, key: str, raw: Any, fps: float, loop: bool, sprite: str) -> tuple[Animation, ...]:
    if not isinstance(raw, dict):
        v.error(key, "wrong type", sprite=sprite, expected="a table { name = frames, … }", found=describe(raw))
        return ()
    out = []
    for name, value in raw.items():
        sub = f"{key}.{name}"
        problem = name_problem(name)
        if problem:
            v.error(
                sub, f"invalid animation name: {problem}", sprite=sprite, expected=NAME_RULE, found=_short_repr(name)
            )
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = {"frames": value}
        if not isinstance(value, dict):
            v.error(
                sub,
                "wrong type",
                sprite=sprite,
                expected="a frame count or { frames, fps, loop }",
                found=describe(value),
            )
            continue
        checked = v.table(sub, value, ANIMATION_FIELDS, sprite)
        if "frames" in checked:
            anim_fps = float(checked.get("fps", fps))
            durations = _frame_durations(v, sub, checked, anim_fps, sprite)
            out.append(
                Animation(
                    name,
                    checked["frames"],
                    anim_fps,
                    checked.get("loop", loop) and not checked.get("repeat"),
                    durations=durations,
                    playback=checked.get("direction", "forward"),
                    repeat=checked.get("repeat", 0),
                    pivot=checked.get("pivot"),  # resolved against the size by the caller
                )
            )
    return tuple(out)


def _pivot(v: _Validator, key: str, raw: Any, size: tuple[int, int], sprite: str) -> tuple[float, float] | None:
    """A checked pivot in frame pixels: a name scaled to the frame, or a point inside it
    (the far edges included: ``[16, 16]`` is the bottom-right corner of a 16x16 frame)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        fx, fy = NAMED_PIVOTS[raw]
        return (fx * size[0], fy * size[1])
    x, y = raw
    if not (0 <= x <= size[0] and 0 <= y <= size[1]):
        v.error(
            key,
            "pivot outside the frame",
            sprite=sprite,
            expected=f"x in 0..{size[0]}, y in 0..{size[1]}",
            found=f"[{x}, {y}]",
        )
        return None
    return (float(x), float(y))


def _merged_slices(manifest: tuple[Slice, ...], source) -> tuple[Slice, ...]:
    """A source file's slices (``SourceSlice``) then the manifest's; the manifest's win on a name."""
    named = {s.name for s in manifest}
    from_file = tuple(Slice(s.name, s.rect, s.center, s.pivot, s.data) for s in source if s.name not in named)
    return from_file + manifest


def _int_list(raw: Any, n: int) -> bool:
    return isinstance(raw, list) and len(raw) == n and all(type(x) is int for x in raw)


def _slices(v: _Validator, key: str, raw: Any, size: tuple[int, int], sprite: str) -> tuple[Slice, ...]:
    """Named rects/points/9-slices, each checked to lie inside the frame."""
    if not isinstance(raw, dict):
        v.error(key, "wrong type", sprite=sprite, expected="a table { name = [x, y, w, h], … }", found=describe(raw))
        return ()
    out = []
    shape = "[x, y, w, h], a point [x, y] or { rect, center, pivot }"
    for name, value in raw.items():
        sub = f"{key}.{name}"
        problem = name_problem(name)
        if problem:
            v.error(sub, f"invalid slice name: {problem}", sprite=sprite, expected=NAME_RULE, found=_short_repr(name))
            continue
        table = value if isinstance(value, dict) else {"rect": value}
        unknown = sorted(set(table) - {"rect", "center", "pivot"})
        if unknown:
            v.error(
                f"{sub}.{unknown[0]}",
                f"unknown key '{unknown[0]}'",
                sprite=sprite,
                hint="valid keys: rect, center, pivot",
            )
            continue
        rect = table.get("rect")
        if _int_list(rect, 2):
            rect = [rect[0], rect[1], 1, 1]
        if not _int_list(rect, 4) or rect[2] < 1 or rect[3] < 1:
            v.error(sub, "wrong slice", sprite=sprite, expected=shape + " with positive sizes", found=describe(rect))
            continue
        x, y, w, h = rect
        if x < 0 or y < 0 or x + w > size[0] or y + h > size[1]:
            v.error(
                sub, "slice outside the frame", sprite=sprite, expected=f"inside {size[0]}x{size[1]}", found=str(rect)
            )
            continue
        center = table.get("center")
        if center is not None:
            if not _int_list(center, 4) or center[2] < 1 or center[3] < 1:
                v.error(f"{sub}.center", "wrong type", sprite=sprite, expected="[x, y, w, h]", found=describe(center))
                continue
            cx, cy, cw, ch = center
            if cx < 0 or cy < 0 or cx + cw > w or cy + ch > h:
                v.error(
                    f"{sub}.center",
                    "9-slice centre outside its slice",
                    sprite=sprite,
                    expected=f"inside {w}x{h} (relative to the slice)",
                    found=str(center),
                )
                continue
        pivot = table.get("pivot")
        if pivot is not None and not _int_list(pivot, 2):
            v.error(
                f"{sub}.pivot",
                "wrong type",
                sprite=sprite,
                expected="[x, y] relative to the slice",
                found=describe(pivot),
            )
            continue
        out.append(
            Slice(
                name, (x, y, w, h), None if center is None else tuple(center), None if pivot is None else tuple(pivot)
            )
        )
    return tuple(out)


def _frame_durations(v: _Validator, key: str, checked: dict, fps: float, sprite: str) -> tuple[float, ...]:
    """Per-frame ms from ``durations`` or ``holds`` (ticks of ``fps``); one per frame."""
    if "durations" in checked and "holds" in checked:
        v.error(f"{key}.holds", "durations and holds both set", sprite=sprite, expected="one of them")
        return ()
    which = "durations" if "durations" in checked else "holds" if "holds" in checked else None
    if which is None:
        return ()
    values = checked[which]
    if len(values) != checked["frames"]:
        v.error(
            f"{key}.{which}",
            f"{which} has {len(values)} entries for {checked['frames']} frames",
            sprite=sprite,
            expected=f"one entry per frame ({checked['frames']})",
            found=str(len(values)),
        )
        return ()
    if which == "durations":
        return tuple(float(d) for d in values)
    return tuple(h * 1000.0 / fps for h in values)


def _named_tables(v: _Validator, raw: Any, section: str) -> Iterator[tuple[int, str, dict, str]]:
    """Each ``[[section]]`` table, checked against its fields, that has a valid name:
    (index, key, checked fields, name)."""
    if not isinstance(raw, list):
        v.error(section, "wrong type", expected=f"[[{section}]] tables", found=describe(raw))
        return
    for i, entry in enumerate(raw):
        key = f"{section}[{i}]"
        fields = v.table(key, entry, SECTIONS[section])
        name = fields.get("name")
        if name is None:
            continue
        problem = name_problem(name)
        if problem:
            v.error(f"{key}.name", f"invalid {section} name: {problem}", expected=NAME_RULE, found=_short_repr(name))
            continue
        yield i, key, fields, name


def _atlases(v: _Validator, raw: Any, sprites: list[SpriteSpec]) -> list[AtlasSpec]:
    names = [s.name for s in sprites]
    owner: dict[str, str] = {}
    atlases: list[AtlasSpec] = []
    atlas_names: set[str] = set()
    for i, key, fields, aname in _named_tables(v, raw, "atlas"):
        if aname in atlas_names or aname in names:
            v.error(
                f"{key}.name",
                f"duplicate name '{aname}'",
                hint="atlas names must differ from each other and from sprite names",
            )
            continue
        atlas_names.add(aname)
        matched: list[str] = []
        for pattern in fields.get("sprites", []):
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                v.error(f"{key}.sprites", f"'{pattern}' matches no sprite", hint=suggest(pattern, names))
            matched.extend(h for h in hits if h not in matched)
        if "sprites" in fields and not fields["sprites"]:
            v.error(f"{key}.sprites", "atlas names no sprite", expected="at least one sprite name or glob")
        for n in matched:
            if n in owner:
                v.error(
                    f"{key}.sprites",
                    f"sprite '{n}' is already in atlas '{owner[n]}'",
                    sprite=n,
                    hint="a sprite belongs to at most one atlas",
                )
            owner.setdefault(n, aname)
        matched = [n for n in matched if owner[n] == aname]
        max_w, max_h = fields.get("max_size", (2048, 2048))
        extrude = fields.get("extrude", 0)
        limit_w, limit_h, rules = usable_page(
            max_w, max_h, fields.get("power_of_two", False), fields.get("square", False)
        )
        by_name = {s.name: s for s in sprites}
        for n in matched:
            s = by_name[n]
            w, h = s.width + 2 * extrude, s.height + 2 * extrude
            if w > limit_w or h > limit_h:
                grown = f", {w}x{h} with extrude = {extrude}" if extrude else ""
                v.error(
                    f"{key}.max_size",
                    f"sprite '{n}' ({s.width}x{s.height}{grown}) does not fit a {limit_w}x{limit_h} page{rules}",
                    sprite=n,
                    hint="raise max_size, or lower extrude" if extrude else "raise max_size",
                )
        atlases.append(
            AtlasSpec(
                name=aname,
                index=i,
                patterns=tuple(fields.get("sprites", [])),
                sprites=tuple(matched),
                max_width=max_w,
                max_height=max_h,
                padding=fields.get("padding", 1),
                extrude=fields.get("extrude", 0),
                power_of_two=fields.get("power_of_two", False),
                square=fields.get("square", False),
                trim=fields.get("trim", False),
            )
        )
    # every sprite not in an atlas gets its own sheet
    for s in sprites:
        if s.name not in owner:
            side = 4096
            atlases.append(
                AtlasSpec(
                    name=s.name,
                    index=-1,
                    patterns=(s.name,),
                    sprites=(s.name,),
                    max_width=side,
                    max_height=side,
                    padding=0,
                    implicit=True,
                )
            )
    return atlases


def _collision(v: _Validator, key: str, raw: Any, side: int) -> tuple[Polygon, ...]:
    """A checked ``collision`` value as polygons in tile pixels (top-left origin)."""
    if raw == "none":
        return ()
    if raw == "full":
        return (((0.0, 0.0), (float(side), 0.0), (float(side), float(side)), (0.0, float(side))),)
    ((kind, items),) = raw.items()
    if kind == "polygon":
        polygons = (tuple((float(x), float(y)) for x, y in items),)
    else:
        polygons = tuple(
            ((float(x), float(y)), (float(x + w), float(y)), (float(x + w), float(y + h)), (float(x), float(y + h)))
            for x, y, w, h in items
        )
    outside = [p for polygon in polygons for p in polygon if not (0 <= p[0] <= side and 0 <= p[1] <= side)]
    if outside:
        v.error(
            f"{key}.{kind}",
            "collision point outside the tile",
            expected=f"points within 0..{side} (the tile size)",
            found=f"({outside[0][0]:g}, {outside[0][1]:g})",
        )
        return ()
    return polygons


def _tilesets(
    v: _Validator, raw: Any, root: Path, default_palette: str, sprites: list[SpriteSpec]
) -> list[TilesetSpec]:
    out: list[TilesetSpec] = []
    names: set[str] = set()
    for i, key, fields, name in _named_tables(v, raw, "tileset"):
        if name in names:
            v.error(f"{key}.name", f"duplicate tileset name '{name}'", hint="tileset names must differ")
            continue
        names.add(name)
        side = fields.get("tile_size", 16)
        if side % 2:
            v.error(
                f"{key}.tile_size",
                "invalid value",
                expected="an even size (autotiles are made of half tiles)",
                found=str(side),
            )
            continue
        template = _tileset_path(v, f"{key}.template", fields.get("template"), root)
        tiles_raw = fields.get("tiles", [])
        if not isinstance(tiles_raw, list):
            v.error(f"{key}.tiles", "wrong type", expected="[[tileset.tiles]] tables", found=describe(tiles_raw))
            tiles_raw = []
        tiles: list[TileSpec] = []
        tile_names: set[str] = set()
        for j, tile_raw in enumerate(tiles_raw):
            tkey = f"{key}.tiles[{j}]"
            tf = v.table(tkey, tile_raw, SECTIONS["tile"])
            tname, source = tf.get("name"), _tileset_path(v, f"{tkey}.source", tf.get("source"), root)
            if tname is None or source is None:
                continue
            problem = name_problem(tname)
            if problem or tname in tile_names:
                v.error(
                    f"{tkey}.name",
                    f"invalid tile name: {problem}" if problem else f"duplicate tile name '{tname}'",
                    expected=NAME_RULE,
                    found=_short_repr(tname),
                )
                continue
            tile_names.add(tname)
            col, row = tf.get("cell", (0, 0))
            if col < 0 or row < 0:
                v.error(
                    f"{tkey}.cell",
                    "invalid value",
                    expected="a [column, row] of non-negative integers",
                    found=str([col, row]),
                )
                continue
            tiles.append(
                TileSpec(
                    name=tname,
                    source=source,
                    cell=(int(col), int(row)),
                    frames=tf.get("frames", 1),
                    fps=float(tf.get("fps", 6)),
                    collision=_collision(v, f"{tkey}.collision", tf.get("collision", "none"), side),
                    data=dict(tf.get("data", {})),
                )
            )
        base = fields.get("base")
        if base is not None:
            by_name = {s.name: s for s in sprites}
            if fields.get("template") is not None:
                v.error(f"{key}.base", "a tileset takes a `template` or a `base`, not both")
                continue
            if base not in by_name:
                v.error(f"{key}.base", f"no sprite named '{base}'", hint=suggest(base, list(by_name)))
                continue
            sprite = by_name[base]
            if (sprite.width, sprite.height) != (side, side):
                v.error(
                    f"{key}.base",
                    f"sprite '{base}' is not one tile",
                    expected=f"a {side}x{side} sprite (the tile size)",
                    found=f"{sprite.width}x{sprite.height}",
                )
                continue
        if template is None and base is None and not tiles and fields.get("template") is None:
            v.error(key, "tileset has no tiles", expected="a `template`, a `base` or at least one [[tileset.tiles]]")
            continue
        out.append(
            TilesetSpec(
                name=name,
                index=i,
                tile_size=side,
                palette=fields.get("palette", default_palette),
                terrain=fields.get("terrain", name),
                template=template,
                base=base,
                layout="blob5x3" if base is not None else fields.get("layout", "blob5x3"),
                set=fields.get("set", "blob"),
                collision=_collision(v, f"{key}.collision", fields.get("collision", "full"), side),
                data=dict(fields.get("data", {})),
                tiles=tuple(tiles),
            )
        )
    return out


def _tileset_path(v: _Validator, key: str, value: str | None, root: Path) -> Path | None:
    """A tileset image path inside the project, or None (after an error when it is outside)."""
    if value is None:
        return None
    path = _inside(root, value)
    if path is None:
        v.error(key, "path is outside the project root", expected=f"a file inside {root}", found=repr(value))
    return path


def usable_page(max_w: int, max_h: int, power_of_two: bool, square: bool) -> tuple[int, int, str]:
    """The largest page a frame can use: ``square`` takes the smaller side, and
    ``power_of_two`` the largest power of two that fits (the packer's rule)."""
    w, h = max_w, max_h
    if square:
        w = h = min(w, h)
    if power_of_two:
        w, h = 1 << (w.bit_length() - 1), 1 << (h.bit_length() - 1)
    rules = [r for r, on in (("square", square), ("power_of_two", power_of_two)) if on]
    return w, h, (f" (max_size {max_w}x{max_h} with {' and '.join(rules)})" if rules else "")


def _clean_dir(value: str) -> str | None:
    """A relative ``/``-separated folder without ``.``/empty parts, or None if it escapes."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return None
    return "/".join(p for p in path.parts if p not in ("", "."))


def _exports(v: _Validator, raw: Any, root: Path, out: Path, inputs: list[Path]) -> list[ExportSpec]:
    """Export targets with their output roots. A root must stay inside the project, must
    not hold an input (a source image or palette), the bookkeeping folders or another
    target's root — outputs never overwrite what a build reads."""
    from ..export.registry import always_on, exporter_names

    if not isinstance(raw, dict):
        v.error("export", "wrong type", expected="tables [export.<target>]", found=describe(raw))
        return []
    known = exporter_names()
    exports = []
    roots: dict[Path, str] = {}
    reserved = [root / ".sparky", root / "sparky-generated"]
    for name in always_on():  # targets every build writes, under project.out (sheets)
        folder = _inside(root, (out / name).as_posix()) or out / name
        roots[folder] = f"project.out ({name})"
        held = [p for p in inputs if folder == p or folder in p.parents]
        if held:
            v.error(
                "project.out",
                f"the {name} folder {folder.relative_to(root).as_posix()} holds an input of the build "
                f"({held[0].relative_to(root).as_posix()})",
                hint=f"outputs would overwrite sources: keep art and palettes outside project.out/{name}",
            )
        if any(r == folder or r in folder.parents or folder in r.parents for r in reserved):
            v.error("project.out", "output folder overlaps .sparky/ or sparky-generated/", hint="choose another folder")
    for target, table in raw.items():
        key = f"export.{target}"
        if target not in known:
            v.error(
                key,
                f"unknown export target '{target}'",
                hint=suggest(target, known) or f"valid targets: {', '.join(known)}",
            )
            continue
        exporter_class = _plugin(v, EXPORTERS, target, key)
        if exporter_class is None:
            continue
        fields = v.table(key, table, exporter_class.option_fields)
        base_key, sub_key = exporter_class.root_key, exporter_class.subdir_key
        base = fields.get(base_key)
        base_field = exporter_class.option_fields.get(base_key)
        if base is None and not (base_field is not None and base_field.required):
            base = (out / target).relative_to(root).as_posix()  # not set: under project.out
        sub = fields.get(sub_key, "") if sub_key else ""
        if base is None:
            continue
        base_path = _inside(root, base)
        if base_path is None:
            v.error(
                f"{key}.{base_key}",
                "path is outside the project root",
                expected=f"a folder inside {root}",
                found=repr(base),
                hint="put sparky.toml in a folder that contains the game project",
            )
            continue
        clean = _clean_dir(sub)
        if clean is None:
            v.error(
                f"{key}.{sub_key}",
                "folder escapes its root",
                expected="a relative folder without '..'",
                found=repr(sub),
            )
            continue
        target_root = (base_path / clean) if clean else base_path
        where = f"{key}.{sub_key if sub_key and sub_key in fields else base_key}"
        clash = next(
            (r for r in roots if r == target_root or r in target_root.parents or target_root in r.parents), None
        )
        if clash is not None:
            v.error(
                where,
                f"output folder {target_root.relative_to(root).as_posix() or '.'} overlaps {roots[clash]}'s",
                hint="give each export target a folder of its own",
            )
            continue
        if any(target_root == r or r in target_root.parents or target_root in r.parents for r in reserved):
            v.error(where, "output folder overlaps .sparky/ or sparky-generated/", hint="choose another folder")
            continue
        held = [p for p in inputs if target_root in p.parents]
        if held:
            v.error(
                where,
                f"output folder holds an input of the build ({held[0].relative_to(root).as_posix()})",
                hint="outputs would overwrite sources: keep art and palettes outside export folders",
            )
            continue
        roots[target_root] = key
        settings = dict(fields)
        if sub_key:
            settings[sub_key] = clean
        exports.append(ExportSpec(target=target, root=target_root, settings=settings))
    return sorted(exports, key=lambda e: e.target)
