"""A writer for Godot 4 ``.pck`` packs, format version 3 (Godot 4.4+; the 4.6 web runtime reads it).

Role: turn ``{"res path": bytes}`` into a pack the Godot web export template mounts as ``res://``
(``--main-pack``), so tests can run their own project in the real runtime without an editor.

Layout (all integers little-endian)::

    header (104 bytes)
      u32  magic "GDPC" (0x43504447)
      u32  pack format version = 3
      u32  engine major, minor, patch (a reader refuses packs from a newer engine)
      u32  pack flags: bit 1 PACK_REL_FILEBASE (file offsets are relative to file_base)
      u64  file_base: where file data starts, from the start of the pack
      u64  dir_offset: where the file table starts, from the start of the pack
      u32 × 16 reserved (zero)
    padding to 16 bytes, then the files' bytes, each starting on a 16-byte boundary
    file table at dir_offset
      u32  file count
      per file:
        u32  path length L, padded up to a multiple of 4 (NUL bytes)
        L    path bytes (UTF-8, relative to res:// — no "res://" prefix), NUL padded
        u64  offset (relative to file_base)
        u64  size
        16   MD5 of the file's bytes
        u32  file flags (bit 0 encrypted, bit 1 removal; 0 here)

Invariants: the output depends only on the mapping (files are written in sorted path order),
so the same files give byte-identical packs. Paths are checked: relative, no ``..``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

PACK_MAGIC = 0x43504447  # "GDPC"
PACK_FORMAT_VERSION = 3
PACK_REL_FILEBASE = 1 << 1
ENGINE_VERSION = (4, 6, 0)
ALIGNMENT = 16
_HEADER = struct.Struct("<IIIIIIQQ64x")


def _pad(length: int, alignment: int) -> int:
    return (alignment - length % alignment) % alignment


def res_relative(path: str) -> str:
    """``res://a/b.gd`` or ``a/b.gd`` → ``a/b.gd``; rejects absolute paths and ``..``."""
    relative = path.removeprefix("res://")
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"not a plain res:// path: {path!r}")
    return relative


def write_pck(files: Mapping[str, bytes | str], engine_version: tuple[int, int, int] = ENGINE_VERSION) -> bytes:
    """The bytes of a PCK v3 pack holding ``files`` (res path → content; ``str`` is UTF-8)."""
    entries = sorted(
        (res_relative(path), data.encode("utf-8") if isinstance(data, str) else bytes(data))
        for path, data in files.items()
    )
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise ValueError("duplicate paths in pack")

    file_base = _HEADER.size + _pad(_HEADER.size, ALIGNMENT)
    body = bytearray()
    table = bytearray(struct.pack("<I", len(entries)))
    for name, data in entries:
        offset = len(body)
        body += data + bytes(_pad(len(data), ALIGNMENT))
        encoded = name.encode("utf-8")
        encoded += bytes(_pad(len(encoded), 4))
        table += struct.pack("<I", len(encoded)) + encoded
        table += struct.pack("<QQ", offset, len(data)) + hashlib.md5(data).digest() + struct.pack("<I", 0)

    dir_offset = file_base + len(body)
    header = _HEADER.pack(PACK_MAGIC, PACK_FORMAT_VERSION, *engine_version, PACK_REL_FILEBASE, file_base, dir_offset)
    return header + bytes(file_base - len(header)) + bytes(body) + bytes(table)


def read_pck(pack: bytes) -> dict[str, bytes]:
    """Inverse of :func:`write_pck` (for tests of the writer): res-relative path → bytes."""
    magic, version, _major, _minor, _patch, flags, file_base, dir_offset = _HEADER.unpack_from(pack, 0)
    if magic != PACK_MAGIC or version != PACK_FORMAT_VERSION:
        raise ValueError(f"not a PCK v3 pack (magic {magic:#x}, version {version})")
    base = file_base if flags & PACK_REL_FILEBASE else 0
    (count,) = struct.unpack_from("<I", pack, dir_offset)
    cursor = dir_offset + 4
    out: dict[str, bytes] = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<I", pack, cursor)
        name = pack[cursor + 4 : cursor + 4 + length].rstrip(b"\0").decode("utf-8")
        cursor += 4 + length
        offset, size = struct.unpack_from("<QQ", pack, cursor)
        digest = pack[cursor + 16 : cursor + 32]
        cursor += 36
        data = pack[base + offset : base + offset + size]
        if hashlib.md5(data).digest() != digest:
            raise ValueError(f"MD5 mismatch for {name}")
        out[name] = data
    return out
