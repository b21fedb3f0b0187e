"""The palette value type."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Palette:
    """An ordered set of opaque RGB colours.

    ``colors`` keeps the order of the source (index 0 is the first swatch), with
    duplicates removed; at most 256 colours so a locked image can be an indexed PNG.
    """

    name: str
    colors: tuple[tuple[int, int, int], ...]

    def digest(self) -> str:
        """Content hash of the colours (the name does not matter); computed once."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            cached = hashlib.sha256(bytes(c for rgb in self.colors for c in rgb)).hexdigest()
            object.__setattr__(self, "_digest", cached)
        return cached

    def __len__(self) -> int:
        return len(self.colors)
