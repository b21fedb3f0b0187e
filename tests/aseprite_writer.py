"""A minimal ``.aseprite`` writer for tests (RGBA files): layers and groups, frames with
durations, raw/compressed/linked cels, tags with direction, repeat and user data,
slices with 9-slice centres, pivots and user data — laid out as Aseprite 1.3 writes
them (docs/ase-file-specs.md), so the reader is tested on every chunk it reads."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

DIRECTION_BYTE = {"forward": 0, "reverse": 1, "pingpong": 2, "pingpong_reverse": 3}


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<H", len(data)) + data


def _chunk(kind: int, body: bytes) -> bytes:
    return struct.pack("<IH", len(body) + 6, kind) + body


def _user_data(text: str) -> bytes:
    return _chunk(0x2020, struct.pack("<I", 1) + _string(text))


@dataclass
class WLayer:
    name: str
    visible: bool = True
    group: bool = False
    level: int = 0
    opacity: int = 255


@dataclass
class WCel:
    layer: int
    image: np.ndarray | None = None
    x: int = 0
    y: int = 0
    opacity: int = 255
    link: int | None = None
    compressed: bool = True


@dataclass
class WTag:
    name: str
    start: int
    end: int
    direction: str = "forward"
    repeat: int = 0
    data: str = ""


@dataclass
class WSlice:
    name: str
    rect: tuple[int, int, int, int]
    center: tuple[int, int, int, int] | None = None
    pivot: tuple[int, int] | None = None
    data: str = ""


@dataclass
class WFile:
    width: int
    height: int
    layers: list[WLayer]
    frames: list[list[WCel]]
    durations: list[int]
    tags: list[WTag] = field(default_factory=list)
    slices: list[WSlice] = field(default_factory=list)


def write_aseprite(f: WFile) -> bytes:
    frames = []
    for n, cels in enumerate(f.frames):
        chunks = []
        if n == 0:
            for layer in f.layers:
                flags = 1 if layer.visible else 0
                body = struct.pack("<HHHHHHB", flags, 1 if layer.group else 0, layer.level, 0, 0, 0, layer.opacity)
                chunks.append(_chunk(0x2004, body + b"\0" * 3 + _string(layer.name)))
            if f.tags:
                body = struct.pack("<H", len(f.tags)) + b"\0" * 8
                for t in f.tags:
                    body += struct.pack("<HHBH", t.start, t.end, DIRECTION_BYTE[t.direction], t.repeat)
                    body += b"\0" * 6 + b"\0\0\0" + b"\0" + _string(t.name)
                chunks.append(_chunk(0x2018, body))
                chunks += [_user_data(t.data) if t.data else _chunk(0x2020, struct.pack("<I", 0)) for t in f.tags]
            for s in f.slices:
                flags = (1 if s.center else 0) | (2 if s.pivot else 0)
                body = struct.pack("<III", 1, flags, 0) + _string(s.name)
                body += struct.pack("<IiiII", 0, *s.rect)
                if s.center:
                    body += struct.pack("<iiII", *s.center)
                if s.pivot:
                    body += struct.pack("<ii", *s.pivot)
                chunks.append(_chunk(0x2022, body))
                if s.data:
                    chunks.append(_user_data(s.data))
        for cel in cels:
            head = struct.pack("<HhhBHh", cel.layer, cel.x, cel.y, cel.opacity, 0, 0) + b"\0" * 5
            if cel.link is not None:
                head = struct.pack("<HhhBHh", cel.layer, cel.x, cel.y, cel.opacity, 1, 0) + b"\0" * 5
                chunks.append(_chunk(0x2005, head + struct.pack("<H", cel.link)))
                continue
            h, w = cel.image.shape[:2]
            pixels = np.ascontiguousarray(cel.image, dtype=np.uint8).tobytes()
            kind = 2 if cel.compressed else 0
            head = struct.pack("<HhhBHh", cel.layer, cel.x, cel.y, cel.opacity, kind, 0) + b"\0" * 5
            data = zlib.compress(pixels) if cel.compressed else pixels
            chunks.append(_chunk(0x2005, head + struct.pack("<HH", w, h) + data))
        body = b"".join(chunks)
        frames.append(
            struct.pack("<IHHHHI", 16 + len(body), 0xF1FA, len(chunks), f.durations[n], 0, len(chunks)) + body
        )
    data = b"".join(frames)
    header = struct.pack("<IHHHHHIHII", 128 + len(data), 0xA5E0, len(f.frames), f.width, f.height, 32, 1, 100, 0, 0)
    header += struct.pack("<B3xHBBhhHH", 0, 0, 1, 1, 0, 0, 16, 16)
    header += b"\0" * (128 - len(header))
    return header + data
