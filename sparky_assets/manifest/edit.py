"""Small, comment-preserving edits of ``sparky.toml`` (``reroll``).

Rewriting the whole file through a TOML writer would drop the user's comments and
layout, so edits change one line in place (located with :class:`KeyLocator`) and the
result is parsed again before it replaces the file atomically.
"""

from __future__ import annotations

import re
import secrets
import tomllib
from pathlib import Path

from ..errors import Diagnostic, InvalidInput, suggest
from .load import find_manifest, load_manifest
from .locate import KeyLocator

_SEED_VALUE = re.compile(r"seed\s*=\s*(0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+|[+]?[0-9][0-9_]*)")


def set_sprite_seed(path: str | Path, sprite: str, seed: int | None = None) -> tuple[int, Path]:
    from ..pipeline.fsutil import atomic_write

    file = find_manifest(path)
    manifest = load_manifest(file)
    names = [s.name for s in manifest.sprites]
    if sprite not in names:
        raise InvalidInput(Diagnostic(f"no sprite named '{sprite}'", file=str(file), hint=suggest(sprite, names)))
    spec = manifest.sprite(sprite)
    new_seed = seed if seed is not None else secrets.randbelow(2**31)
    text = file.read_bytes().decode("utf-8-sig")
    lines = text.splitlines(keepends=True)
    locator = KeyLocator(text)
    seed_pos = locator.positions.get(f"{spec.key}.seed")
    name_pos = locator.positions.get(f"{spec.key}.name")
    if seed_pos:
        line = lines[seed_pos[0] - 1]
        value = _SEED_VALUE.match(line, seed_pos[1] - 1)
        if value is None:
            raise InvalidInput(
                Diagnostic(
                    f"cannot edit the seed of sprite '{sprite}' in place",
                    file=str(file),
                    line=seed_pos[0],
                    column=seed_pos[1],
                    hint=f"set seed = {new_seed} by hand",
                )
            )
        # only the number changes: spacing and a trailing comment stay as written
        lines[seed_pos[0] - 1] = line[: value.start(1)] + str(new_seed) + line[value.end(1) :]
    elif name_pos:
        indent = lines[name_pos[0] - 1][: name_pos[1] - 1]
        lines.insert(name_pos[0], f"{indent}seed = {new_seed}\n")
    else:
        raise InvalidInput(
            Diagnostic(
                f"cannot edit sprite '{sprite}' in place (inline table?)",
                file=str(file),
                hint=f"set seed = {new_seed} by hand",
            )
        )
    new_text = "".join(lines)
    try:
        tomllib.loads(new_text)  # never write a manifest that does not parse
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            Diagnostic(f"cannot edit the seed of sprite '{sprite}' in place: {exc}", file=str(file))
        ) from None
    atomic_write(file, new_text.encode())
    return new_seed, file
