"""A small reader for Aseprite's ``.aseprite``/``.ase`` files (format of Aseprite 1.3's
``docs/ase-file-specs.md``): frames with durations, layers (groups, visibility,
opacity), cels (raw, linked, zlib-compressed), tags with direction and repeat, slices
with 9-slice centres and pivots, palettes and user data; plus :func:`compose`, which
flattens the visible layers of a frame to RGBA.

Why our own: the PyPI readers (``aseprite`` 0.1, ``aseprite-reader`` 1.1) require
Python 3.12 and this project supports 3.11; the format is small and well specified.

Invariants: files are untrusted — every read is bounds-checked and a malformed file
raises :class:`AsepriteError` (never an IndexError or a zlib error); canvases and cels
larger than :data:`MAX_SIDE` are refused before anything is decompressed. Only the
``normal`` blend mode is composed exactly; other modes are composed as ``normal``.
Tilemap layers are not drawn.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAX_SIDE = 4096
HEADER_MAGIC = 0xA5E0
FRAME_MAGIC = 0xF1FA
DIRECTIONS = ("forward", "reverse", "pingpong", "pingpong_reverse")
"""Tag directions by their byte in the file."""


class AsepriteError(ValueError):
    """The bytes are not a readable Aseprite file; the message says where."""


@dataclass
class Layer:
    name: str
    visible: bool
    kind: int
    """0 image, 1 group, 2 tilemap."""
    level: int
    opacity: int
    blend: int
    parent: int | None
    """Index of the group layer this one is in."""
    background: bool = False
    """The opaque bottom layer (indexed files draw its transparent index as a colour)."""
    data: str = ""


@dataclass
class Cel:
    layer: int
    x: int
    y: int
    opacity: int
    z: int
    image: np.ndarray | None
    """``(h, w, 4)`` RGBA (converted from the file's colour depth); None for a linked cel."""
    link: int | None = None
    data: str = ""


@dataclass
class Tag:
    name: str
    start: int
    end: int
    direction: str
    repeat: int
    """0: forever; n: n times."""
    data: str = ""


@dataclass
class SliceKey:
    frame: int
    rect: tuple[int, int, int, int]
    center: tuple[int, int, int, int] | None = None
    """Relative to ``rect``."""
    pivot: tuple[int, int] | None = None
    """Relative to ``rect``."""


@dataclass
class FileSlice:
    name: str
    keys: list[SliceKey]
    data: str = ""


@dataclass
class AsepriteFile:
    width: int
    height: int
    depth: int
    """Bits per pixel: 32 RGBA, 16 greyscale, 8 indexed."""
    durations: list[int]
    """Milliseconds per frame."""
    layers: list[Layer] = field(default_factory=list)
    cels: list[dict[int, Cel]] = field(default_factory=list)
    """Per frame, cels by layer index."""
    tags: list[Tag] = field(default_factory=list)
    slices: list[FileSlice] = field(default_factory=list)
    palette: list[tuple[int, int, int, int]] = field(default_factory=list)
    transparent_index: int = 0

    def layer_visible(self, index: int) -> bool:
        """Visible, and so is every group it is in."""
        while index is not None:
            layer = self.layers[index]
            if not layer.visible:
                return False
            index = layer.parent
        return True

    def image_layers(self) -> list[int]:
        """Indices of the drawable (image) layers, bottom to top."""
        return [i for i, layer in enumerate(self.layers) if layer.kind == 0]


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise AsepriteError(f"{self.where}: truncated at byte {self.pos} (wanted {n} more)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        n = self.unpack("H")
        return self.take(n).decode("utf-8", errors="replace")


def _pixels(raw: bytes, w: int, h: int, depth: int, palette, transparent: int, where: str) -> np.ndarray:
    size = w * h * (depth // 8)
    if len(raw) < size:
        raise AsepriteError(f"{where}: cel has {len(raw)} bytes of pixels, expected {size}")
    buf = np.frombuffer(raw[:size], dtype=np.uint8)
    if depth == 32:
        return buf.reshape(h, w, 4).copy()
    if depth == 16:
        va = buf.reshape(h, w, 2)
        return np.dstack([va[..., 0], va[..., 0], va[..., 0], va[..., 1]])
    table = np.zeros((256, 4), dtype=np.uint8)
    for i, colour in enumerate(palette[:256]):
        table[i] = colour
    if 0 <= transparent < 256:
        table[transparent] = (0, 0, 0, 0)
    return table[buf.reshape(h, w)]


def read_aseprite(data: bytes, name: str = "<aseprite>") -> AsepriteFile:
    """Parse a whole file (all frames and cels)."""
    r = _Reader(data, name)
    if len(data) < 128:
        raise AsepriteError(f"{name}: {len(data)} bytes, shorter than the 128-byte header")
    _size, magic, frames, width, height, depth, _flags = r.unpack("IHHHHHI")
    if magic != HEADER_MAGIC:
        raise AsepriteError(f"{name}: not an Aseprite file (magic {magic:#06x}, expected {HEADER_MAGIC:#06x})")
    if depth not in (8, 16, 32):
        raise AsepriteError(f"{name}: colour depth {depth}, expected 8, 16 or 32")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise AsepriteError(f"{name}: canvas {width}x{height}, sides must be 1..{MAX_SIDE}")
    r.take(2 + 8)  # speed (deprecated), two zero DWORDs
    transparent = r.unpack("B")
    r.pos = 128
    doc = AsepriteFile(width, height, depth, [], transparent_index=transparent)
    groups: list[int] = []  # open group per child level
    for frame_index in range(frames):
        where = f"{name}: frame {frame_index}"
        start = r.pos
        frame_bytes, fmagic, old_chunks, duration, _pad, new_chunks = r.unpack("IHHHHI")
        if fmagic != FRAME_MAGIC or frame_bytes < 16 or start + frame_bytes > len(data):
            raise AsepriteError(f"{where}: bad frame header")
        doc.durations.append(duration)
        cels: dict[int, Cel] = {}
        doc.cels.append(cels)
        last = None  # the object the next user-data chunk belongs to
        tag_cursor = 0
        for _ in range(new_chunks or old_chunks):
            cstart = r.pos
            csize, ctype = r.unpack("IH")
            if csize < 6 or cstart + csize > start + frame_bytes:
                raise AsepriteError(f"{where}: chunk {ctype:#06x} of {csize} bytes overruns the frame")
            c = _Reader(data[cstart + 6 : cstart + csize], f"{where} chunk {ctype:#06x}")
            if ctype == 0x2004:  # layer
                flags, kind, level, _dw, _dh, blend, opacity = c.unpack("HHHHHHB")
                c.take(3)
                lname = c.string()
                del groups[level:]
                parent = groups[level - 1] if 0 < level <= len(groups) else None
                doc.layers.append(Layer(lname, bool(flags & 1), kind, level, opacity, blend, parent, bool(flags & 8)))
                if kind == 1:
                    groups[level:] = [len(doc.layers) - 1]
                last = doc.layers[-1]
            elif ctype == 0x2005:  # cel
                layer, x, y, opacity, ctype_cel, z = c.unpack("HhhBHh")
                c.take(5)
                if ctype_cel == 1:
                    cels[layer] = Cel(layer, x, y, opacity, z, None, link=c.unpack("H"))
                elif ctype_cel in (0, 2):
                    w, h = c.unpack("HH")
                    if not (w <= MAX_SIDE and h <= MAX_SIDE):
                        raise AsepriteError(f"{where}: cel {w}x{h} is larger than {MAX_SIDE}")
                    raw = c.data[c.pos :]
                    if ctype_cel == 2:
                        limit = w * h * (depth // 8)
                        try:
                            z_obj = zlib.decompressobj()
                            raw = z_obj.decompress(raw, limit)
                        except zlib.error as exc:
                            raise AsepriteError(f"{where}: cel data does not decompress ({exc})") from None
                    background = layer < len(doc.layers) and doc.layers[layer].background
                    image = _pixels(raw, w, h, depth, doc.palette, -1 if background else transparent, where)
                    cels[layer] = Cel(layer, x, y, opacity, z, image)
                last = cels.get(layer)
            elif ctype == 0x2018:  # tags
                count = c.unpack("H")
                c.take(8)
                for _t in range(count):
                    t_from, t_to, direction, repeat = c.unpack("HHBH")
                    c.take(6 + 3 + 1)
                    if t_from > t_to or t_to >= frames or direction > 3:
                        raise AsepriteError(f"{where}: tag {t_from}..{t_to} direction {direction} is invalid")
                    doc.tags.append(Tag(c.string(), t_from, t_to, DIRECTIONS[direction], repeat))
                tag_cursor = len(doc.tags) - count
                last = "tags"
            elif ctype == 0x2019:  # palette
                _n, first, last_index = c.unpack("III")
                c.take(8)
                if last_index < first or last_index > 65535:
                    raise AsepriteError(f"{where}: palette range {first}..{last_index}")
                while len(doc.palette) <= last_index:
                    doc.palette.append((0, 0, 0, 255))
                for i in range(first, last_index + 1):
                    flags, red, green, blue, alpha = c.unpack("HBBBB")
                    doc.palette[i] = (red, green, blue, alpha)
                    if flags & 1:
                        c.string()
            elif ctype == 0x0004 and not doc.palette:  # old palette (files from Aseprite < 1.2)
                index = 0
                for _p in range(c.unpack("H")):
                    skip, count = c.unpack("BB")
                    index += skip
                    for _k in range(count or 256):
                        while len(doc.palette) <= index:
                            doc.palette.append((0, 0, 0, 255))
                        doc.palette[index] = (*c.unpack("BBB"), 255)
                        index += 1
            elif ctype == 0x2022:  # slice
                nkeys, flags, _reserved = c.unpack("III")
                sname = c.string()
                keys = []
                for _k in range(nkeys):
                    kframe, x, y, w, h = c.unpack("IiiII")
                    key = SliceKey(kframe, (x, y, w, h))
                    if flags & 1:
                        key.center = c.unpack("iiII")
                    if flags & 2:
                        key.pivot = c.unpack("ii")
                    keys.append(key)
                doc.slices.append(FileSlice(sname, keys))
                last = doc.slices[-1]
            elif ctype == 0x2020:  # user data: belongs to the chunk before (tags: one per tag, in order)
                flags = c.unpack("I")
                text = c.string() if flags & 1 else ""
                if last == "tags":
                    if tag_cursor < len(doc.tags):
                        doc.tags[tag_cursor].data = text
                        tag_cursor += 1
                elif last is not None and hasattr(last, "data"):
                    last.data = text
            r.pos = cstart + csize
        r.pos = start + frame_bytes
    for f, cels in enumerate(doc.cels):  # resolve linked cels
        for layer, cel in list(cels.items()):
            if cel.link is not None:
                target = doc.cels[cel.link].get(layer) if cel.link < len(doc.cels) else None
                if target is None or target.image is None:
                    raise AsepriteError(f"{name}: frame {f} layer {layer} links to frame {cel.link}, which has no cel")
                cels[layer] = Cel(layer, target.x, target.y, target.opacity, target.z, target.image, data=cel.data)
    return doc


def compose(doc: AsepriteFile, frame: int, layers: list[int] | None = None) -> np.ndarray:
    """Frame ``frame`` as ``(height, width, 4)`` uint8 RGBA: the given image layers (default:
    every visible one) drawn bottom to top with their cel and layer opacity ("normal"
    blending, straight alpha)."""
    chosen = [i for i in doc.image_layers() if doc.layer_visible(i)] if layers is None else layers
    out = np.zeros((doc.height, doc.width, 4), dtype=np.float64)
    cels = doc.cels[frame]
    order = sorted((i + cels[i].z, cels[i].z, i) for i in chosen if i in cels)
    for _, _, i in order:
        cel = cels[i]
        img = cel.image.astype(np.float64) / 255.0
        x0, y0 = max(cel.x, 0), max(cel.y, 0)
        x1, y1 = min(cel.x + img.shape[1], doc.width), min(cel.y + img.shape[0], doc.height)
        if x0 >= x1 or y0 >= y1:
            continue
        src = img[y0 - cel.y : y1 - cel.y, x0 - cel.x : x1 - cel.x]
        alpha = src[..., 3:4] * (cel.opacity / 255.0) * (doc.layers[i].opacity / 255.0)
        dst = out[y0:y1, x0:x1]
        out_alpha = alpha + dst[..., 3:4] * (1.0 - alpha)
        safe = np.where(out_alpha > 0, out_alpha, 1.0)
        rgb = (src[..., :3] * alpha + dst[..., :3] * dst[..., 3:4] * (1.0 - alpha)) / safe
        out[y0:y1, x0:x1] = np.concatenate([rgb, out_alpha], axis=2)
    result = np.rint(out * 255.0).astype(np.uint8)
    result[result[..., 3] == 0] = 0
    return result
